//! `POST /api/search/systemusers`: `{"searchFilter": {"searchTerm", "fields"}, "filter":
//! [{"field": value}…] | {"and"|"or": […]}, "fields"}` plus the list parameters in the
//! query string.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use castellan_projections::user_filter::{check, Filter, Op};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

/// More fields than a user has.
const MAX_SEARCH_FIELDS: usize = 32;
/// The most conditions, and the deepest nesting, of one body's `filter`.
const MAX_CONDITIONS: usize = 100;
const MAX_DEPTH: usize = 4;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    search_filter: Option<SearchFilter>,
    /// A list of `{field: value}` (all hold), or `{"and": […]}` / `{"or": […]}`.
    #[serde(default)]
    filter: Value,
    /// The keys each result keeps: space- or comma-separated, or a list.
    #[serde(default)]
    fields: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchFilter {
    search_term: String,
    #[serde(default)]
    fields: Vec<String>,
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_field", Some(field), message.into())
}

/// The body's `filter` as a filter tree, checked; `budget` counts conditions.
fn filter_of(v: &Value, depth: usize, budget: &mut usize) -> Result<Filter, ApiError> {
    if depth > MAX_DEPTH {
        return Err(bad(
            "filter",
            format!("filter: nested more than {MAX_DEPTH} deep"),
        ));
    }
    match v {
        Value::Null => Ok(Filter::All(Vec::new())),
        Value::Array(items) => Ok(Filter::All(
            items
                .iter()
                .map(|i| filter_of(i, depth + 1, budget))
                .collect::<Result<_, _>>()?,
        )),
        Value::Object(o) if o.len() == 1 && (o.contains_key("and") || o.contains_key("or")) => {
            let (op, items) = o.iter().next().expect("one entry");
            let items = items
                .as_array()
                .ok_or_else(|| bad("filter", format!("filter.{op}: a list of conditions")))?;
            let parts = items
                .iter()
                .map(|i| filter_of(i, depth + 1, budget))
                .collect::<Result<_, _>>()?;
            Ok(if op == "and" {
                Filter::All(parts)
            } else {
                Filter::Any(parts)
            })
        }
        Value::Object(o) => {
            let mut parts = Vec::with_capacity(o.len());
            for (field, value) in o {
                *budget = budget.checked_sub(1).ok_or_else(|| {
                    bad(
                        "filter",
                        format!("filter: at most {MAX_CONDITIONS} conditions"),
                    )
                })?;
                let value = match value {
                    Value::String(s) => s.clone(),
                    Value::Bool(_) | Value::Number(_) => value.to_string(),
                    _ => {
                        return Err(bad(
                            field,
                            format!("filter.{field}: a text, number or true/false value"),
                        ))
                    }
                };
                check(field, Op::Eq, &value).map_err(|e| bad(field, format!("filter: {e}")))?;
                parts.push(Filter::Is {
                    field: field.clone(),
                    op: Op::Eq,
                    value,
                });
            }
            Ok(Filter::All(parts))
        }
        _ => Err(bad(
            "filter",
            "filter: a list of {field: value}, or {\"and\": […]} / {\"or\": […]}",
        )),
    }
}

fn fields_of(v: &Value) -> Result<Option<Vec<String>>, ApiError> {
    let fields: Vec<String> = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s
            .split([' ', ','])
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|f| f.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("fields", "fields: names"))?,
        _ => return Err(bad("fields", "fields: space-separated names, or a list")),
    };
    Ok((!fields.is_empty()).then_some(fields))
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
    let body: Value = parse(&headers, &body)?;
    // An object (serde would also take a list of its fields in order).
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "invalid_json",
            None,
            "the body is a JSON object ({} searches everything)",
        ));
    }
    let body: Body = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request("invalid_json", None, format!("invalid body: {e}")))?;
    let mut budget = MAX_CONDITIONS;
    q.filter.push(filter_of(&body.filter, 0, &mut budget)?);
    let fields = fields_of(&body.fields)?.or_else(|| super::list::parse_fields(raw.as_deref()));
    if let Some(sf) = body.search_filter {
        if sf.search_term.chars().count() > 256 {
            return Err(bad(
                "searchFilter.searchTerm",
                "searchFilter.searchTerm: is at most 256 characters",
            ));
        }
        if sf.fields.len() > MAX_SEARCH_FIELDS {
            return Err(bad(
                "searchFilter.fields",
                format!("searchFilter.fields: at most {MAX_SEARCH_FIELDS} fields"),
            ));
        }
        let searched = if sf.fields.is_empty() {
            vec![
                "username".to_string(),
                "email".into(),
                "firstname".into(),
                "lastname".into(),
            ]
        } else {
            sf.fields
        };
        // The term in any of the fields: one query.
        let mut any = Vec::with_capacity(searched.len());
        for field in searched {
            check(&field, Op::Search, &sf.search_term)
                .map_err(|e| bad("searchFilter.fields", format!("cannot search: {e}")))?;
            any.push(Filter::Is {
                field,
                op: Op::Search,
                value: sf.search_term.clone(),
            });
        }
        q.filter.push(Filter::Any(any));
    }
    let (mut results, total) = state.store.users(&caller.org.to_string(), &q).await?;
    super::list::narrow(&mut results, fields.as_deref());
    Ok(Json(json!({"results": results, "totalCount": total})))
}
