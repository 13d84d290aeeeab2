//! `POST /api/admin/session {email, password, totp?}`: an admin portal session (cookie +
//! CSRF token); `DELETE /api/admin/session` ends it in the browser. Every attempt is an
//! `admin_login_attempt` authentication event.
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
use castellan_app::{password, unique};
use castellan_domain::admin::Admin;
use castellan_domain::envelope::{
    Actor, ActorKind, Commit, EventMeta, ExpectedVersion, NewEvent, StreamId,
};
use castellan_domain::ObjectId;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::session::COOKIE;
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

/// One login attempt as the event records it.
struct Attempt<'a> {
    org: ObjectId,
    email: &'a str,
    admin: Option<ObjectId>,
    success: bool,
    mfa: bool,
    error: Option<&'a str>,
}

async fn record(state: &ApiState, meta: EventMeta, a: Attempt<'_>) -> Result<(), ApiError> {
    let commit = Commit {
        commit_id: uuid::Uuid::now_v7(),
        org_id: a.org,
        stream: StreamId::auth("directory"),
        expected: ExpectedVersion::Any,
        meta,
        events: vec![NewEvent {
            event_id: castellan_domain::ids::new_event_id(),
            event_type: "admin_login_attempt".into(),
            schema_version: 1,
            payload: json!({
                "success": a.success,
                "initiated_by": {"type": "admin", "id": a.admin.map(|id| id.to_string()), "email": a.email},
                "auth_method": "session",
                "mfa": a.mfa,
                "error_message": a.error,
            }),
        }],
    };
    state
        .log
        .append(commit)
        .await
        .map_err(castellan_app::AppError::from)?;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/admin/session",
    tag = "administrators",
    request_body(content = Credentials, content_type = "application/json"),
    responses((status = 200, description = "session cookie set", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn login(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c: Credentials = parse(&headers, &body)?;
    let email = c.email.trim().to_lowercase();
    let mut meta = EventMeta::new(
        state.clock.now(),
        Actor {
            kind: ActorKind::Admin,
            id: None,
            email: Some(email.chars().take(254).collect()),
        },
    );
    meta.client_ip = Some(peer.ip().to_string());
    meta.user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    let installation = castellan_app::admins::installation_org();
    let id: Option<ObjectId> = unique::holder_of(&*state.log, installation, "admin_email", &email)
        .await?
        .and_then(|o| o.parse().ok());
    let principal = id.and_then(|id| state.admins.snapshot().state.admins.get(&id).cloned());
    let admin = match &principal {
        Some(p) => {
            castellan_app::execute::load::<Admin>(
                &*state.log,
                p.org_id,
                &StreamId::aggregate("admin", p.admin_id),
            )
            .await?
            .state
        }
        None => Admin::default(),
    };
    let stored = admin.password_hash.clone();
    // Unknown admins and wrong passwords take the same time and get the same answer.
    let hash = stored
        .clone()
        .unwrap_or_else(|| castellan_app::login::dummy_hash().to_string());
    let ok = password::verify(c.password, hash).await.unwrap_or(false) && stored.is_some();
    let org = principal.as_ref().map(|p| p.org_id).unwrap_or(installation);
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "invalid credentials",
        )
    };
    let Some(p) = principal.filter(|_| ok) else {
        record(
            &state,
            meta,
            Attempt {
                org,
                email: &email,
                admin: id,
                success: false,
                mfa: false,
                error: Some("invalid credentials"),
            },
        )
        .await?;
        return Err(invalid());
    };
    let mut enroll_only = false;
    if admin.totp_enrolled {
        let Some(code) = c.totp.as_deref() else {
            record(
                &state,
                meta,
                Attempt {
                    org,
                    email: &email,
                    admin: id,
                    success: false,
                    mfa: false,
                    error: Some("mfa required"),
                },
            )
            .await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_required",
                "send the current code of your authenticator app in totp",
            ));
        };
        let used = castellan_app::admin_totp::verify(
            &*state.log,
            p.org_id,
            &admin,
            p.admin_id,
            meta.clone(),
            code,
        )
        .await;
        if let Err(e) = used {
            if !matches!(e, castellan_app::AppError::Domain(_)) {
                return Err(e.into());
            }
            record(
                &state,
                meta,
                Attempt {
                    org,
                    email: &email,
                    admin: id,
                    success: false,
                    mfa: true,
                    error: Some("invalid TOTP code"),
                },
            )
            .await?;
            return Err(invalid());
        }
    } else if castellan_app::admin_totp::org_requires_mfa(&*state.log, p.org_id).await? {
        enroll_only = true;
    }
    record(
        &state,
        meta,
        Attempt {
            org,
            email: &email,
            admin: Some(p.admin_id),
            success: true,
            mfa: admin.totp_enrolled,
            error: None,
        },
    )
    .await?;
    let token = state.session_key.issue(
        p.admin_id,
        p.org_id,
        state.clock.now().unix_timestamp(),
        enroll_only,
    );
    let body = json!({
        "adminId": p.admin_id.to_string(),
        "orgId": p.org_id.to_string(),
        "role": p.role,
        "csrfToken": state.session_key.csrf(&token),
        "mfaEnrollmentRequired": enroll_only,
    });
    with_cookie(Json(body).into_response(), &token)
}

/// Sets the session cookie on a response.
pub fn with_cookie(mut response: Response, token: &str) -> Result<Response, ApiError> {
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&crate::session::cookie(token)).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?,
    );
    Ok(response)
}

#[utoipa::path(
    delete,
    path = "/api/admin/session",
    tag = "administrators",
    responses((status = 204, description = "cookie cleared"), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn logout(_caller: crate::auth::Caller) -> impl IntoResponse {
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
    )
}
