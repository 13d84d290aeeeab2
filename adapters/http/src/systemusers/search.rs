//! `POST /api/search/systemusers`: `{"searchFilter": {"searchTerm", "fields"}, "filter":
//! [{"field": value}…]}` plus the list parameters in the query string.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use castellan_projections::users::column;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

/// More fields than a user has; each listed field costs one query.
const MAX_SEARCH_FIELDS: usize = 32;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    search_filter: Option<SearchFilter>,
    #[serde(default)]
    filter: Vec<serde_json::Map<String, Value>>,
    /// Accepted for compatibility; every field is returned.
    #[serde(rename = "fields")]
    _fields: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchFilter {
    search_term: String,
    #[serde(default)]
    fields: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/search/systemusers",
    tag = "systemusers",
    request_body(content = crate::schemas::SearchBody, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut q = super::list::parse(raw.as_deref())?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            None,
            "send a JSON body ({} searches everything)",
        ));
    }
    let body: Body = parse(&headers, &body)?;
    for f in &body.filter {
        for (field, value) in f {
            if column(field).is_none() {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    Some(field),
                    format!("cannot filter on {field:?}"),
                ));
            }
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            q.filter.push((field.clone(), "eq".into(), value));
        }
    }
    let mut results: Vec<Value>;
    let total;
    match body.search_filter {
        // A term over several fields is an OR: query each field and merge by id.
        Some(sf) if sf.search_term.chars().count() > 256 => {
            return Err(ApiError::bad_request(
                "invalid_field",
                Some("searchFilter.searchTerm"),
                "searchFilter.searchTerm: is at most 256 characters",
            ));
        }
        Some(sf) => {
            let fields = if sf.fields.is_empty() {
                vec![
                    "username".into(),
                    "email".into(),
                    "firstname".into(),
                    "lastname".into(),
                ]
            } else if sf.fields.len() > MAX_SEARCH_FIELDS {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    Some("searchFilter.fields"),
                    format!("searchFilter.fields: at most {MAX_SEARCH_FIELDS} fields"),
                ));
            } else {
                // A field named twice is searched once (each costs a query).
                let mut seen = std::collections::HashSet::new();
                sf.fields
                    .into_iter()
                    .filter(|f| seen.insert(f.clone()))
                    .collect()
            };
            let mut merged = std::collections::BTreeMap::new();
            for field in fields {
                if column(&field).is_none() {
                    return Err(ApiError::bad_request(
                        "invalid_field",
                        Some("searchFilter.fields"),
                        format!("cannot search {field:?}"),
                    ));
                }
                let mut fq = q.clone();
                fq.limit = 100_000;
                fq.skip = 0;
                fq.filter
                    .push((field, "search".into(), sf.search_term.clone()));
                for u in state.store.users(&caller.org.to_string(), &fq).await?.0 {
                    merged.insert(u["id"].as_str().unwrap_or_default().to_string(), u);
                }
            }
            total = merged.len() as u64;
            results = merged
                .into_values()
                .skip(q.skip as usize)
                .take(q.limit as usize)
                .collect();
        }
        None => {
            let (r, t) = state.store.users(&caller.org.to_string(), &q).await?;
            results = r;
            total = t;
        }
    }
    results.truncate(q.limit as usize);
    Ok(Json(json!({"results": results, "totalCount": total})))
}
