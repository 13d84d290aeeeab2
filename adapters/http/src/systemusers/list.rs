//! `GET /api/systemusers`: `{results, totalCount}` with `limit` (default 10, max 100),
//! `skip`, `sort` (`-` for descending) and `filter` (`field:op:value`, repeatable).

use axum::extract::{RawQuery, State};
use axum::Json;
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
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_parameter",
                            Some("limit"),
                            "limit: a whole number from 1 to 100",
                        )
                    })?
            }
            "skip" => {
                q.skip = v.parse().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        Some("skip"),
                        "skip: a whole number ≥ 0",
                    )
                })?
            }
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
                for f in v.split(',').filter(|f| !f.is_empty()) {
                    let mut parts = f.splitn(3, ':');
                    let (Some(field), Some(op), Some(value)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return Err(ApiError::bad_request(
                            "invalid_parameter",
                            Some("filter"),
                            "filter: use field:op:value",
                        ));
                    };
                    if column(field).is_none() {
                        return Err(ApiError::bad_request(
                            "invalid_parameter",
                            Some("filter"),
                            format!("filter: cannot filter on {field:?}"),
                        ));
                    }
                    if !matches!(op, "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "search") {
                        return Err(ApiError::bad_request(
                            "invalid_parameter",
                            Some("filter"),
                            format!("filter: unknown operator {op:?}"),
                        ));
                    }
                    q.filter
                        .push((field.to_string(), op.to_string(), value.to_string()));
                }
            }
            "fields" | "minPosition" => {}
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
                for f in v.split(',') {
                    let mut p = f.splitn(3, ':');
                    if let (Some(field), Some(op), Some(value)) = (p.next(), p.next(), p.next()) {
                        q.filter.push((field.into(), op.into(), value.into()));
                    }
                }
            }
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
    let (results, total) = state.store.users(&caller.org.to_string(), &q).await?;
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
        assert!(parse(Some("bogus=1")).is_err());
        assert_eq!(decode("a%2Bb+c%"), "a+b c%");
    }
}
