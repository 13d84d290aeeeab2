//! `GET /api/systemusers`: `{results, totalCount}` with `limit` (default 10, max 100),
//! `skip`, `sort` (`-` for descending), `fields` (space-separated: the keys returned)
//! and `filter` (`field:op:value` with v1's `$eq`… or v2's `eq`…, repeatable or
//! comma-separated; every filter holds).

use axum::extract::{RawQuery, State};
use axum::Json;
use castellan_projections::user_filter::{check, Filter, Op};
use castellan_projections::users::{column, ListQuery};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ApiState;

/// Decodes `%XX` and `+` in a query component.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| {
                std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .flatten();
        match (b[i], hex) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (c, None) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `filter` value's conditions: commas separate them only where the next one
/// starts (`field:op:`), so a value may hold commas (`company:$eq:Acme, Inc.`).
pub fn split_filters(v: &str) -> Vec<&str> {
    let starts_condition = |rest: &str| {
        let mut parts = rest.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(field), Some(op), Some(_)) => {
                !field.is_empty()
                    && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && Op::parse(op).is_some()
            }
            _ => false,
        }
    };
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in v.match_indices(',') {
        if starts_condition(&v[i + 1..]) {
            out.push(&v[start..i]);
            start = i + 1;
        }
    }
    out.push(&v[start..]);
    out.into_iter().filter(|f| !f.is_empty()).collect()
}

/// One `field:op:value` condition, checked (field, operator and value).
pub fn parse_filter(f: &str) -> Result<Filter, ApiError> {
    let bad = |message: String| ApiError::bad_request("invalid_parameter", Some("filter"), message);
    let mut parts = f.splitn(3, ':');
    let (Some(field), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("filter: use field:op:value".into()));
    };
    let op = Op::parse(op).ok_or_else(|| {
        bad(format!(
            "filter: unknown operator {op:?} (v1: $eq $ne $gt $gte $lt $lte; v2: eq ne gt ge lt le search in between)"
        ))
    })?;
    check(field, op, value).map_err(|e| bad(format!("filter: {e}")))?;
    Ok(Filter::Is {
        field: field.to_string(),
        op,
        value: value.to_string(),
    })
}

/// The `search` parameter as a filter: the term in any of the fields.
pub fn search_filter(v: &str) -> Result<Filter, ApiError> {
    let bad = |message: String| ApiError::bad_request("invalid_parameter", Some("search"), message);
    let (term, fields) = match serde_json::from_str::<Value>(v) {
        Ok(Value::Object(o)) => {
            let term = o
                .get("searchTerm")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("search: {\"searchTerm\": text, \"fields\": [names]}".into()))?
                .to_string();
            let fields: Vec<String> = o
                .get("fields")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            (term, fields)
        }
        _ => (v.to_string(), Vec::new()),
    };
    if term.chars().count() > 256 {
        return Err(bad("search: the term is at most 256 characters".into()));
    }
    let fields = if fields.is_empty() {
        ["username", "email", "firstname", "lastname"]
            .map(str::to_string)
            .to_vec()
    } else {
        fields
    };
    if fields.len() > 32 {
        return Err(bad("search: at most 32 fields".into()));
    }
    let mut any = Vec::with_capacity(fields.len());
    for field in fields {
        check(&field, Op::Search, &term).map_err(|e| bad(format!("search: {e}")))?;
        any.push(Filter::Is {
            field,
            op: Op::Search,
            value: term.clone(),
        });
    }
    Ok(Filter::Any(any))
}

/// `fields`: the keys each result keeps (`_id` and `id` always), space-separated in
/// v1 and comma-separated in v2; None when every key is wanted.
pub fn parse_fields(raw: Option<&str>) -> Option<Vec<String>> {
    let mut wanted: Vec<String> = Vec::new();
    for pair in raw.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(k) == "fields" {
            wanted.extend(
                decode(v)
                    .split([' ', ','])
                    .filter(|f| !f.is_empty())
                    .map(str::to_string),
            );
        }
    }
    (!wanted.is_empty()).then_some(wanted)
}

/// Keeps only the `fields` of each object (and its `_id` and `id`).
pub fn narrow(results: &mut [Value], fields: Option<&[String]>) {
    let Some(fields) = fields else { return };
    for r in results {
        if let Value::Object(o) = r {
            o.retain(|k, _| k == "_id" || k == "id" || fields.iter().any(|f| f == k));
        }
    }
}

/// Parses the v1 list parameters.
pub fn parse(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        limit: 10,
        ..Default::default()
    };
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        match k.as_str() {
            "limit" => q.limit = crate::query::limit(&v)?,
            "skip" => q.skip = crate::query::skip(&v)?,
            "sort" => {
                for field in v.split([' ', ',']).filter(|f| !f.is_empty()) {
                    let (name, desc) = match field.strip_prefix('-') {
                        Some(n) => (n, true),
                        None => (field, false),
                    };
                    if column(name).is_none() {
                        return Err(ApiError::bad_request(
                            "invalid_parameter",
                            Some("sort"),
                            format!("sort: cannot sort by {name:?}"),
                        ));
                    }
                    q.sort.push((name.to_string(), desc));
                }
            }
            "filter" => {
                for f in split_filters(&v) {
                    q.filter.push(parse_filter(f)?);
                }
            }
            // `search`: `{"searchTerm", "fields"}` as JSON text, or a bare term over
            // username, email, firstname and lastname.
            "search" if !v.is_empty() => q.filter.push(search_filter(&v)?),
            "search" | "fields" | "minPosition" => {}
            other => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    Some(other),
                    format!("unknown query parameter {other:?}"),
                ))
            }
        }
    }
    Ok(q)
}

/// Group lists accept the same parameters but sort and filter on `name`.
pub fn parse_v2_groups(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut rest = Vec::new();
    let mut q = ListQuery::default();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v);
        match k {
            "sort" => {
                q.sort = v
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(|f| (f.trim_start_matches('-').to_string(), f.starts_with('-')))
                    .collect()
            }
            "filter" => {
                for f in split_filters(&v) {
                    let mut p = f.splitn(3, ':');
                    if let (Some(field), Some(op), Some(value)) = (p.next(), p.next(), p.next()) {
                        let op = Op::parse(op).ok_or_else(|| {
                            ApiError::bad_request(
                                "invalid_parameter",
                                Some("filter"),
                                format!("filter: unknown operator {op:?}"),
                            )
                        })?;
                        q.filter.push(Filter::Is {
                            field: field.into(),
                            op,
                            value: value.into(),
                        });
                    }
                }
            }
            "fields" => {}
            _ => rest.push(pair.to_string()),
        }
    }
    let base = parse(Some(&rest.join("&")))?;
    q.limit = base.limit;
    q.skip = base.skip;
    Ok(q)
}

#[utoipa::path(
    get,
    path = "/api/systemusers",
    tag = "systemusers",
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = parse(raw.as_deref())?;
    let (mut results, total) = state.store.users(&caller.org.to_string(), &q).await?;
    narrow(&mut results, parse_fields(raw.as_deref()).as_deref());
    Ok(Json(json!({"results": results, "totalCount": total})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_v1_parameters() {
        let q = parse(Some("limit=50&skip=100&sort=-created%20username&filter=state:eq:ACTIVATED,email:search:acme")).unwrap();
        assert_eq!(q.limit, 50);
        assert_eq!(q.skip, 100);
        assert_eq!(
            q.sort,
            vec![("created".into(), true), ("username".into(), false)]
        );
        assert_eq!(q.filter.len(), 2);
        assert!(parse(Some("limit=101")).is_err());
        assert!(parse(Some("sort=password")).is_err());
        assert!(parse(Some("filter=username:like:x")).is_err());
        assert!(parse(Some("filter=password_hash:eq:x")).is_err());
        assert!(parse(Some("filter=unix_uid:$gt:ten")).is_err());
        let q = parse(Some(
            "filter=department:$eq:R%26D&filter=company:eq:Acme,%20Inc.,jobTitle:search:eng",
        ))
        .unwrap();
        assert_eq!(q.filter.len(), 3);
        assert_eq!(
            q.filter[1],
            Filter::Is {
                field: "company".into(),
                op: Op::Eq,
                value: "Acme, Inc.".into()
            }
        );
        assert_eq!(
            parse_fields(Some("fields=username%20email&limit=5")),
            Some(vec!["username".to_string(), "email".to_string()])
        );
        assert!(parse(Some("bogus=1")).is_err());
        assert_eq!(decode("a%2Bb+c%"), "a+b c%");
    }
}
