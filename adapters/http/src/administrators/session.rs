//! `POST /api/admin/session {email, password}`: an admin portal session (cookie +
//! CSRF token); `DELETE /api/admin/session` ends it in the browser. Every attempt is an
//! `admin_login_attempt` authentication event.

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
use crate::session::{COOKIE, TTL_SECONDS};
use crate::state::ApiState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(max_length = 254)]
    email: String,
    #[schema(max_length = 1024)]
    password: String,
}

async fn record(
    state: &ApiState,
    meta: EventMeta,
    org: ObjectId,
    email: &str,
    admin: Option<ObjectId>,
    success: bool,
) -> Result<(), ApiError> {
    let commit = Commit {
        commit_id: uuid::Uuid::now_v7(),
        org_id: org,
        stream: StreamId::auth("directory"),
        expected: ExpectedVersion::Any,
        meta,
        events: vec![NewEvent {
            event_id: castellan_domain::ids::new_event_id(),
            event_type: "admin_login_attempt".into(),
            schema_version: 1,
            payload: json!({
                "success": success,
                "initiated_by": {"type": "admin", "id": admin.map(|a| a.to_string()), "email": email},
                "auth_method": "session",
                "mfa": false,
                "error_message": if success { serde_json::Value::Null } else { json!("invalid credentials") },
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
    let stored = match &principal {
        Some(p) => {
            castellan_app::execute::load::<Admin>(
                &*state.log,
                p.org_id,
                &StreamId::aggregate("admin", p.admin_id),
            )
            .await?
            .state
            .password_hash
        }
        None => None,
    };
    // Unknown admins and wrong passwords take the same time and get the same answer.
    let hash = stored
        .clone()
        .unwrap_or_else(|| castellan_app::login::dummy_hash().to_string());
    let ok = password::verify(c.password, hash).await.unwrap_or(false) && stored.is_some();
    let org = principal.as_ref().map(|p| p.org_id).unwrap_or(installation);
    let Some(p) = principal.filter(|_| ok) else {
        record(&state, meta, org, &email, id, false).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "invalid credentials",
        ));
    };
    record(&state, meta, org, &email, Some(p.admin_id), true).await?;
    let token = state
        .session_key
        .issue(p.admin_id, p.org_id, state.clock.now().unix_timestamp());
    let cookie =
        format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={TTL_SECONDS}");
    let mut response = Json(json!({
        "adminId": p.admin_id.to_string(),
        "orgId": p.org_id.to_string(),
        "role": p.role,
        "csrfToken": state.session_key.csrf(&token),
    }))
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| {
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
