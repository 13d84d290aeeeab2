//! `POST /userportal/login {orgId, username, password, totp?}`: 200 on success;
//! 401 `invalid_credentials` alike for unknown users, wrong passwords and locked
//! accounts; 401 `mfa_required` when a TOTP code is needed; 429 while the client's
//! address is throttled; 403 with the reason for other refusals after a correct
//! password (a wrong or used code among them).

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
    // The username is the user's email only when it is one; the login event names
    // the user (id, username) in its own `initiated_by`.
    let email = username
        .contains('@')
        .then(|| username.chars().take(256).collect());
    let mut meta = EventMeta::new(
        state.clock.now(),
        Actor {
            kind: ActorKind::User,
            id: None,
            email,
        },
    );
    meta.client_ip = crate::client::client_ip(&state.trusted_proxies, headers, peer);
    meta.user_agent = crate::client::user_agent(headers);
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
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 429, description = "too many failed logins from this address", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
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
        &state.keys,
        org,
        meta,
        request(c),
    )
    .await
    .map_err(not_found_is_invalid)?;
    match outcome {
        LoginOutcome::Success { user, mfa } => Ok((
            StatusCode::OK,
            Json(json!({"success": true, "userId": user.to_string(), "mfa": mfa})),
        )),
        refused => Err(refusal(refused)),
    }
}

/// The login request of portal credentials.
pub fn request(c: Credentials) -> LoginRequest {
    LoginRequest {
        username: c.username,
        password: c.password,
        totp: c.totp,
        service: "directory",
    }
}

/// An organization that does not exist answers as wrong credentials do.
pub fn not_found_is_invalid(e: castellan_app::AppError) -> ApiError {
    match e {
        castellan_app::AppError::Domain(castellan_domain::DomainError::NotFound { .. }) => {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid credentials",
            )
        }
        other => other.into(),
    }
}

/// The answer to a login that did not succeed: 401 alike for unknown users, wrong
/// passwords or codes and locked accounts; 401 `mfa_required`; 429 when throttled;
/// 403 with the reason for other refusals after a correct password.
pub fn refusal(outcome: LoginOutcome) -> ApiError {
    match outcome {
        LoginOutcome::MfaRequired => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "mfa_required",
            "enter the code from your authenticator app",
        ),
        LoginOutcome::Throttled {
            retry_after_seconds,
        } => ApiError::throttled(retry_after_seconds),
        LoginOutcome::Failure {
            reason: reason @ "invalid credentials",
        } => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", reason),
        LoginOutcome::Failure { reason } => {
            ApiError::new(StatusCode::FORBIDDEN, "login_refused", reason)
        }
        LoginOutcome::Success { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "a successful login is no refusal",
        ),
    }
}
