//! The four Directory Insights queries. Bodies follow the hosted product: `service`
//! and `start_time` required, `end_time`, `limit` (default 1000, max 10000), `sort`
//! (ASC/DESC), `fields`, `search_term` (`and`/`or`/`not`, dot notation), `search_after`.
//! `events` answers the paging headers `X-Result-Count`, `X-Limit`, `X-Sort`,
//! `X-Search_after` and `X-Request-Id`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use castellan_insights::EventQuery;
use serde_json::{json, Value};

use super::engine;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ApiState;

/// The body as JSON whatever its content type: the guide's own example posts it with
/// `curl -d @query.txt`, which labels it a form (these queries only read, and the key
/// is in a header, so taking any label opens no cross-site path).
fn query(_headers: &HeaderMap, body: &Bytes) -> Result<(Value, EventQuery), ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", None, format!("invalid JSON body: {e}"))
    })?;
    let q = EventQuery::parse(&v)?;
    Ok((v, q))
}

fn header(name: &'static str, value: String) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
    )
}

/// A JSON array of events already in JSON text.
fn json_array(events: &[String]) -> ([(HeaderName, HeaderValue); 1], String) {
    let mut body = String::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(e);
    }
    body.push(']');
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
}

#[utoipa::path(
    post,
    path = "/insights/directory/v1/events",
    tag = "insights",
    request_body(content = crate::schemas::InsightsQuery, content_type = "application/json"),
    responses((status = 200, description = "events, oldest first (or newest with sort DESC)", body = [Object]), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, q) = query(&headers, &body)?;
    let (events, after) = engine(&state)?.events(&caller.org.to_string(), &q).await?;
    let request_id = caller.meta.correlation_id.clone().unwrap_or_default();
    let headers = [
        header("x-result-count", events.len().to_string()),
        header("x-limit", q.limit.to_string()),
        header(
            "x-sort",
            if q.descending { "DESC" } else { "ASC" }.to_string(),
        ),
        header("x-search_after", after.to_string()),
        header("x-request-id", request_id),
    ];
    Ok((headers, json_array(&events)).into_response())
}

#[utoipa::path(
    post,
    path = "/insights/directory/v1/events/count",
    tag = "insights",
    request_body(content = crate::schemas::InsightsQuery, content_type = "application/json"),
    responses((status = 200, description = "{\"count\": n}", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn count(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (_, q) = query(&headers, &body)?;
    let n = engine(&state)?.count(&caller.org.to_string(), &q).await?;
    Ok(Json(json!({"count": n})))
}

#[utoipa::path(
    post,
    path = "/insights/directory/v1/events/distinct",
    tag = "insights",
    request_body(content = crate::schemas::InsightsDistinct, content_type = "application/json"),
    responses((status = 200, description = "{\"buckets\": [{key, doc_count}], …}", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn distinct(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (v, q) = query(&headers, &body)?;
    let field = v.get("field").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("invalid_field", Some("field"), "field: is required")
    })?;
    Ok(Json(
        engine(&state)?
            .distinct(&caller.org.to_string(), &q, field)
            .await?,
    ))
}

/// `-0500`, `+0130`, `Z` or empty as minutes east of UTC.
fn tz_minutes(tz: &str) -> Option<i32> {
    if tz.is_empty() || tz == "Z" || tz == "UTC" {
        return Some(0);
    }
    let (sign, rest) = match tz.as_bytes().first()? {
        b'+' => (1, &tz[1..]),
        b'-' => (-1, &tz[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i32, i32) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

#[utoipa::path(
    post,
    path = "/insights/directory/v1/events/interval",
    tag = "insights",
    request_body(content = crate::schemas::InsightsInterval, content_type = "application/json"),
    responses((status = 200, description = "{\"buckets\": [{key, key_as_string, doc_count}]}", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn interval(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (v, q) = query(&headers, &body)?;
    let unit = v
        .get("interval_unit")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_field",
                Some("interval_unit"),
                "interval_unit: is required (s, m, h, d or w)",
            )
        })?;
    let value = match v.get("interval_value") {
        None | Some(Value::Null) => Some(1),
        Some(Value::String(s)) => s.parse().ok(),
        Some(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
    }
    .ok_or_else(|| {
        ApiError::bad_request(
            "invalid_field",
            Some("interval_value"),
            "interval_value: a whole number",
        )
    })?;
    // Absent or null means UTC; anything but a string is refused, not read as UTC.
    let tz = match v.get("timezone") {
        None | Some(Value::Null) => Some(""),
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => None,
    };
    let tz = tz.and_then(tz_minutes).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_field",
            Some("timezone"),
            "timezone: an offset such as -0500",
        )
    })?;
    Ok(Json(
        engine(&state)?
            .interval(&caller.org.to_string(), &q, unit, value, tz)
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_zones_are_offsets() {
        assert_eq!(super::tz_minutes("-0500"), Some(-300));
        assert_eq!(super::tz_minutes("+05:30"), Some(330));
        assert_eq!(super::tz_minutes(""), Some(0));
        assert_eq!(super::tz_minutes("EST"), None);
    }
}
