//! `POST /api/insights/sql {"sql": "SELECT …", "format": "json"|"csv"}`: read-only SQL
//! over one table, `events`, holding the caller's organization's events only.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::engine;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
    #[serde(default)]
    format: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/insights/sql",
    tag = "insights",
    request_body(content = crate::schemas::InsightsSql, content_type = "application/json"),
    responses((status = 200, description = "{\"rows\": […]} or CSV", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r: SqlRequest = parse(&headers, &body)?;
    let csv = match r.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                Some("format"),
                "format: json or csv",
            ))
        }
    };
    let batches = engine(&state)?.sql(&caller.org.to_string(), &r.sql).await?;
    if csv {
        let text = castellan_insights::sql::to_csv(&batches)?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response());
    }
    let rows = castellan_insights::sql::to_json_rows(&batches)?;
    Ok(Json(json!({"rows": rows})).into_response())
}
