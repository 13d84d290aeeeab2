//! API errors: `{"code", "message", "field"?, "errors"?}` with the HTTP status that
//! fits. The code is stable; the message is for people.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use castellan_app::{AppError, LogError};
use castellan_domain::DomainError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub errors: Vec<castellan_domain::error::FieldError>,
    /// Sent as `Retry-After` (throttled logins, busy queries).
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            errors: Vec::new(),
            retry_after_seconds: None,
        }
    }

    /// 429: the client's address failed to log in too often lately.
    pub fn throttled(retry_after_seconds: u64) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins from your address; retry in {retry_after_seconds} s"),
        );
        e.retry_after_seconds = Some(retry_after_seconds);
        e
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn bad_request(
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, code, message);
        e.field = field.map(str::to_string);
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Domain(d) => d.into(),
            AppError::Log(LogError::Unavailable(reason)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "log_unavailable",
                format!("the event log is unavailable; retry later: {reason}"),
            ),
            AppError::Log(LogError::Conflict { .. }) | AppError::Contention(_) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the object was changed concurrently; retry",
            ),
            AppError::Log(LogError::Invalid(m)) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m)
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    other.to_string(),
                )
            }
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(d: DomainError) -> Self {
        let status = match &d {
            DomainError::Invalid(_) => StatusCode::BAD_REQUEST,
            DomainError::NotFound { .. } => StatusCode::NOT_FOUND,
            DomainError::AlreadyExists { .. }
            | DomainError::Taken { .. }
            | DomainError::State { .. } => StatusCode::CONFLICT,
        };
        let mut e = ApiError::new(status, d.code(), d.to_string());
        e.field = d.field().map(str::to_string);
        if let DomainError::Invalid(list) = d {
            e.errors = list;
        }
        e
    }
}

impl From<castellan_projections::QueryError> for ApiError {
    fn from(e: castellan_projections::QueryError) -> Self {
        tracing::error!(error = %e, "read store failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "read_store_unavailable",
            "the read store is unavailable",
        )
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// The body of every error answer (for the OpenAPI document).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable.
    pub code: String,
    /// For people.
    pub message: String,
    /// The field at fault, when there is one.
    pub field: Option<String>,
    /// Every violated rule, for invalid input.
    pub errors: Option<Vec<ErrorItem>>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorItem {
    pub field: String,
    pub message: String,
}
