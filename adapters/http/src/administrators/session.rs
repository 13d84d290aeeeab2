//! `POST /api/admin/session {email, password, totp?}`: an admin portal session (cookie +
//! CSRF token); `DELETE /api/admin/session` ends every session of the admin, on every
//! node (the admin's session epoch moves). The checks, the lockout and the
//! `admin_login_attempt` events are `castellan_app::admin_login`'s.
//!
//! An admin with TOTP enrolled must send a code (401 `mfa_required` without one; a code
//! is used once). If the organization requires MFA and the admin has none yet, the
//! session may only enroll (`mfaEnrollmentRequired: true`; every other route answers
//! 403 `mfa_enrollment_required`).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use castellan_app::admin_login::{admin_login, AdminLoginOutcome, AdminLoginRequest};
use castellan_domain::admin::{Admin, AdminCommand};
use castellan_domain::envelope::{Actor, ActorKind, EventMeta};
use castellan_domain::ObjectId;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::session::{Session, COOKIE};
use crate::state::ApiState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(max_length = 254)]
    email: String,
    #[schema(max_length = 1024)]
    password: String,
    /// The current code of the admin's authenticator app, when TOTP is enrolled.
    #[schema(pattern = r"^[0-9]{6}$")]
    #[serde(default)]
    totp: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/admin/session",
    tag = "administrators",
    request_body(content = Credentials, content_type = "application/json"),
    responses((status = 200, description = "session cookie set", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 429, description = "too many failed logins from this address", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn login(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c: Credentials = parse(&headers, &body)?;
    let mut meta = EventMeta::new(
        state.clock.now(),
        Actor {
            kind: ActorKind::Admin,
            id: None,
            email: Some(c.email.trim().to_lowercase()),
        },
    );
    meta.client_ip = crate::client::client_ip(&state.trusted_proxies, &headers, Some(peer));
    meta.user_agent = crate::client::user_agent(&headers);
    let index = state.admins.snapshot();
    let home_of = |id: ObjectId| index.state.admins.get(&id).map(|p| p.org_id);
    let outcome = admin_login(
        &*state.log,
        &*state.failures,
        &state.keys,
        &home_of,
        meta,
        AdminLoginRequest {
            email: c.email,
            password: c.password,
            totp: c.totp,
        },
    )
    .await?;
    let (admin, org, enroll_only) = match outcome {
        AdminLoginOutcome::Success {
            admin,
            org,
            enroll_only,
            ..
        } => (admin, org, enroll_only),
        AdminLoginOutcome::MfaRequired => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_required",
                "send the current code of your authenticator app in totp",
            ))
        }
        AdminLoginOutcome::Invalid => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid credentials",
            ))
        }
        AdminLoginOutcome::Throttled {
            retry_after_seconds,
        } => return Err(ApiError::throttled(retry_after_seconds)),
    };
    let role = state
        .admins
        .snapshot()
        .state
        .admins
        .get(&admin)
        .map(|p| p.role);
    let (token, csrf) = issue(&state, admin, org, enroll_only);
    let body = json!({
        "adminId": admin.to_string(),
        "orgId": org.to_string(),
        "role": role,
        "csrfToken": csrf,
        "mfaEnrollmentRequired": enroll_only,
    });
    with_cookie(&state, Json(body).into_response(), &token)
}

/// A session token at the admin's current epoch, and its CSRF token.
pub fn issue(
    state: &ApiState,
    admin: ObjectId,
    org: ObjectId,
    enroll_only: bool,
) -> (String, String) {
    let epoch = state.admins.snapshot().state.session_epoch(admin);
    let token = state.session_key.issue(
        Session {
            admin,
            org,
            enroll_only,
            epoch,
        },
        state.clock.now().unix_timestamp(),
    );
    let csrf = state.session_key.csrf(&token);
    (token, csrf)
}

/// Sets the session cookie on a response (`Secure` when the public URL is https).
pub fn with_cookie(
    state: &ApiState,
    mut response: Response,
    token: &str,
) -> Result<Response, ApiError> {
    let secure = state.public_url.starts_with("https://");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&crate::session::cookie(token, secure)).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?,
    );
    Ok(response)
}

#[utoipa::path(
    delete,
    path = "/api/admin/session",
    tag = "administrators",
    responses((status = 204, description = "every session of the admin ended; cookie cleared"), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn logout(
    State(state): State<ApiState>,
    caller: crate::auth::Caller,
) -> Result<impl IntoResponse, ApiError> {
    let done = castellan_app::execute::execute::<Admin>(
        &*state.log,
        caller.admin.org_id,
        &caller.admin.admin_id.to_string(),
        caller.meta,
        AdminCommand::EndSessions,
    )
    .await?;
    // Every node refuses the old sessions once its admin index has folded this.
    state
        .admins
        .progress()
        .wait_for(done.position, state.consistency_wait)
        .await;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
    ))
}
