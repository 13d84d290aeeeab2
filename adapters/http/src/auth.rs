//! Request authentication and event metadata.
//!
//! `x-api-key` is hashed (SHA-256) and looked up in the in-memory admin index; an
//! unknown key and a missing key answer alike. `x-org-id`, when sent, must name the
//! admin's organization.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use castellan_domain::envelope::{Actor, ActorKind, EventMeta};
use castellan_domain::ObjectId;
use castellan_projections::admin_index::AdminPrincipal;

use crate::error::ApiError;
use crate::state::ApiState;

/// An authenticated admin and the metadata its changes are recorded with.
pub struct Caller {
    pub admin: AdminPrincipal,
    pub org: ObjectId,
    pub meta: EventMeta,
    /// A portal session that may only enroll TOTP.
    pub enroll_only: bool,
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid x-api-key header is required",
    )
}

/// Who is calling, and how.
pub struct Authenticated {
    pub admin: AdminPrincipal,
    /// A portal session that may only enroll TOTP (the org requires MFA).
    pub enroll_only: bool,
    /// The session token, when the caller came with the cookie.
    pub session_token: Option<String>,
}

/// The admin a request acts for: by `x-api-key`, or by the session cookie (whose
/// state-changing requests must carry the CSRF token).
pub fn principal(state: &ApiState, parts: &Parts) -> Result<AdminPrincipal, ApiError> {
    authenticate(state, parts).map(|a| a.admin)
}

pub fn authenticate(state: &ApiState, parts: &Parts) -> Result<Authenticated, ApiError> {
    let index = state.admins.snapshot();
    if let Some(key) = header(parts, "x-api-key") {
        if key.len() > 256 {
            return Err(unauthorized());
        }
        let hash = castellan_app::admins::api_key_hash(key);
        return index
            .state
            .by_api_key_hash(&hash)
            .cloned()
            .map(|admin| Authenticated {
                admin,
                enroll_only: false,
                session_token: None,
            })
            .ok_or_else(unauthorized);
    }
    let token = header(parts, "cookie")
        .and_then(crate::session::from_cookies)
        .ok_or_else(unauthorized)?;
    let now = state.clock.now().unix_timestamp();
    let session = state
        .session_key
        .verify(token, now)
        .ok_or_else(unauthorized)?;
    let principal = index
        .state
        .admins
        .get(&session.admin)
        .filter(|p| p.org_id == session.org)
        .cloned()
        .ok_or_else(unauthorized)?;
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !safe
        && header(parts, crate::session::CSRF_HEADER)
            != Some(state.session_key.csrf(token).as_str())
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "send the session's x-csrf-token",
        ));
    }
    Ok(Authenticated {
        admin: principal,
        enroll_only: session.enroll_only,
        session_token: Some(token.to_string()),
    })
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Authenticated {
            admin, enroll_only, ..
        } = authenticate(state, parts)?;
        if let Some(org) = header(parts, "x-org-id") {
            if org.parse::<ObjectId>().ok() != Some(admin.org_id) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "x-org-id names an organization this key does not administer",
                ));
            }
        }
        let client_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let meta = EventMeta {
            occurred_at: state.clock.now(),
            actor: Actor {
                kind: ActorKind::ApiKey,
                id: Some(admin.admin_id.to_string()),
                email: Some(admin.email.clone()),
            },
            client_ip,
            user_agent: header(parts, "user-agent").map(|s| s.chars().take(512).collect()),
            correlation_id: Some(
                header(parts, "x-request-id")
                    .map(|s| s.chars().take(128).collect())
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            ),
        };
        Ok(Caller {
            org: admin.org_id,
            admin,
            meta,
            enroll_only,
        })
    }
}
