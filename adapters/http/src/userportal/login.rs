//! `POST /userportal/login {orgId, username, password, totp?}`: 200 on success;
//! 401 `invalid_credentials` alike for unknown users, wrong passwords and locked
//! accounts; 401 `mfa_required` when a TOTP code is needed; 403 with the reason for
//! other refusals after a correct password.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use castellan_app::login::{user_login, LoginOutcome, LoginRequest};
use castellan_domain::envelope::{Actor, ActorKind, EventMeta};
use castellan_domain::ObjectId;
use serde_json::{json, Value};

use super::Credentials;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

pub fn meta(
    state: &ApiState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    username: &str,
) -> EventMeta {
    let mut meta = EventMeta::new(
        state.clock.now(),
        Actor {
            kind: ActorKind::User,
            id: None,
            email: Some(username.chars().take(256).collect()),
        },
    );
    meta.client_ip = peer.map(|p| p.ip().to_string());
    meta.user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    meta
}

pub fn org(c: &Credentials) -> Result<ObjectId, ApiError> {
    c.org_id.parse().map_err(|_| {
        ApiError::bad_request("invalid_field", Some("orgId"), "orgId: an organization id")
    })
}

#[utoipa::path(
    post,
    path = "/userportal/login",
    tag = "userportal",
    request_body(content = crate::schemas::Login, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn handle(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c: Credentials = parse(&headers, &body)?;
    let org = org(&c)?;
    let meta = meta(&state, &headers, Some(peer), &c.username);
    let outcome = user_login(
        &*state.log,
        &*state.failures,
        org,
        meta,
        LoginRequest {
            username: c.username,
            password: c.password,
            totp: c.totp,
            service: "directory",
        },
    )
    .await
    .map_err(|e| match e {
        castellan_app::AppError::Domain(castellan_domain::DomainError::NotFound { .. }) => {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid credentials",
            )
        }
        other => other.into(),
    })?;
    Ok(match outcome {
        LoginOutcome::Success { user, mfa } => (
            StatusCode::OK,
            Json(json!({"success": true, "userId": user.to_string(), "mfa": mfa})),
        ),
        LoginOutcome::MfaRequired => (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"code": "mfa_required", "message": "enter the code from your authenticator app"}),
            ),
        ),
        LoginOutcome::Failure {
            reason: "invalid credentials",
        } => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": "invalid_credentials", "message": "invalid credentials"})),
        ),
        LoginOutcome::Failure { reason } => (
            StatusCode::FORBIDDEN,
            Json(json!({"code": "login_refused", "message": reason})),
        ),
    })
}
