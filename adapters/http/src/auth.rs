//! Request authentication and event metadata.
//!
//! `x-api-key` is hashed (SHA-256) and looked up in the in-memory admin index; an
//! unknown key and a missing key answer alike. `x-org-id` selects the organization for
//! an admin of several (their home organization without it); one they do not serve
//! answers 403. The role is the admin's role in the selected organization.

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
    /// The admin, with `org_id` their home organization and `role` their role in `org`.
    pub admin: AdminPrincipal,
    /// The organization the request acts in.
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
    /// `org_id` is the home organization; `role` the role in `org`.
    pub admin: AdminPrincipal,
    /// The organization selected (`x-org-id`, else home).
    pub org: ObjectId,
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
    let mut who = identify(state, parts)?;
    if let Some(org) = header(parts, "x-org-id") {
        let index = state.admins.snapshot();
        let role = org
            .parse::<ObjectId>()
            .ok()
            .and_then(|o| index.state.role_in(&who.admin, o).map(|r| (o, r)));
        let Some((org, role)) = role else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "x-org-id names an organization you do not administer",
            ));
        };
        who.org = org;
        who.admin.role = role;
    }
    Ok(who)
}

/// The admin behind the key or the session, acting in their home organization.
fn identify(state: &ApiState, parts: &Parts) -> Result<Authenticated, ApiError> {
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
                org: admin.org_id,
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
    // A session issued before the admin's last logout (or password change, TOTP
    // reset, lockout) is over.
    let principal = index
        .state
        .admins
        .get(&session.admin)
        .filter(|p| p.org_id == session.org)
        .filter(|_| index.state.session_epoch(session.admin) == session.epoch)
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
        org: principal.org_id,
        admin: principal,
        enroll_only: session.enroll_only,
        session_token: Some(token.to_string()),
    })
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Authenticated {
            admin,
            org,
            enroll_only,
            ..
        } = authenticate(state, parts)?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let client_ip = crate::client::client_ip(&state.trusted_proxies, &parts.headers, peer);
        let meta = EventMeta {
            occurred_at: state.clock.now(),
            actor: Actor {
                kind: ActorKind::ApiKey,
                id: Some(admin.admin_id.to_string()),
                email: Some(admin.email.clone()),
            },
            client_ip,
            user_agent: crate::client::user_agent(&parts.headers),
            correlation_id: Some(
                header(parts, "x-request-id")
                    .map(|s| s.chars().take(128).collect())
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            ),
        };
        Ok(Caller {
            org,
            admin,
            meta,
            enroll_only,
        })
    }
}
