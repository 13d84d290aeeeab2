//! Read-your-writes. Every write answers with `x-castellan-position`, the log
//! position of its commit, and its body is read back only after the portal
//! projection reached it. A read may send `x-castellan-min-position` (or
//! `?minPosition=`) to wait, bounded, for a position it got from an earlier write.

use axum::http::{HeaderMap, HeaderValue, StatusCode};

use crate::error::ApiError;
use crate::state::ApiState;

pub const POSITION_HEADER: &str = "x-castellan-position";
pub const MIN_POSITION_HEADER: &str = "x-castellan-min-position";

/// The minimum position a read asks for (0 if none).
pub fn requested(headers: &HeaderMap, query: Option<u64>) -> Result<u64, ApiError> {
    match headers.get(MIN_POSITION_HEADER) {
        Some(v) => v.to_str().ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_header",
                Some(MIN_POSITION_HEADER),
                "must be a non-negative integer",
            )
        }),
        None => Ok(query.unwrap_or(0)),
    }
}

/// Waits until the portal projection reached `position`.
pub async fn wait_for(state: &ApiState, position: u64) -> Result<(), ApiError> {
    if position == 0
        || state
            .portal
            .wait_for(position, state.consistency_wait)
            .await
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_caught_up",
            format!(
                "the read model has not reached position {position} yet (at {}); retry",
                state.portal.position()
            ),
        ))
    }
}

pub fn position_header(position: u64) -> (&'static str, HeaderValue) {
    (POSITION_HEADER, HeaderValue::from(position))
}
