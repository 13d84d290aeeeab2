//! Directory Insights, compatible with the hosted product's API:
//! `POST /insights/directory/v1/events | /events/count | /events/distinct |
//! /events/interval`, and read-only SQL for admins (`POST /api/insights/sql`).
//! Every query reads the caller's organization only.

pub mod events;
pub mod sql;

use axum::http::StatusCode;
use castellan_insights::{Insights, InsightsError};

use crate::error::ApiError;
use crate::state::ApiState;

impl From<InsightsError> for ApiError {
    fn from(e: InsightsError) -> Self {
        match e {
            InsightsError::BadRequest { field, message } => {
                let text = format!("{field}: {message}");
                ApiError::bad_request("invalid_field", Some(&field), text)
            }
            // The message names the setting; the request has to change, not wait.
            InsightsError::Limit { message, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "limit_exceeded", message)
            }
            InsightsError::Timeout(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "query_timeout", message)
            }
            InsightsError::Busy(message) => {
                let mut e =
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "insights_busy", message);
                e.retry_after_seconds = Some(1);
                e
            }
            other => {
                tracing::error!(error = %other, "insights query failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "insights_unavailable",
                    other.to_string(),
                )
            }
        }
    }
}

/// The query engine, or 503 when this node runs without insights.
pub fn engine(state: &ApiState) -> Result<&Insights, ApiError> {
    state.insights.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "insights_unavailable",
            "insights are not configured on this node",
        )
    })
}
