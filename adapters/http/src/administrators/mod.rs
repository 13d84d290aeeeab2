//! `/api/administrators`: list, invite (create), delete, rotate an API key, accept an
//! invitation; `/api/outbox`: the emails waiting for a relay.

pub mod session;
pub mod totp;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use castellan_app::admins;
use castellan_domain::admin::AdminRole;
use castellan_domain::ObjectId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::consistency;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::roles::{allows, Need};
use crate::state::ApiState;

#[utoipa::path(
    get,
    path = "/api/administrators",
    tag = "administrators",
    responses((status = 200, description = "done", body = [Object]), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(state.store.admins(&caller.org.to_string()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAdmin {
    email: String,
    role: AdminRole,
    #[serde(default)]
    password: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/administrators",
    tag = "administrators",
    request_body(content = crate::schemas::NewAdmin, content_type = "application/json"),
    responses((status = 201, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let new: NewAdmin = parse(&headers, &body)?;
    if !caller.admin.role.may_grant(new.role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "role: you may give only roles up to your own",
        ));
    }
    let email = new.email.trim().to_lowercase();
    // An admin of another organization is granted a role here instead (their
    // credentials stay at home); they are told by email. The answer is the one a new
    // admin gets, so nobody learns from it whom other organizations employ.
    let holder = castellan_app::unique::holder_of(
        &*state.log,
        admins::installation_org(),
        "admin_email",
        &email,
    )
    .await?
    .and_then(|h| h.parse::<ObjectId>().ok())
    .and_then(|id| state.admins.snapshot().state.admins.get(&id).cloned());
    if let Some(existing) = holder.filter(|h| h.org_id != caller.org) {
        let invitation_sent = match new.password {
            // Checked and hashed as for a new admin (same errors, same time), then
            // dropped: the admin keeps the password of their home organization.
            Some(p) => {
                castellan_domain::password_policy::PasswordPolicy::default().check(
                    "password",
                    &p,
                    Some(&email),
                )?;
                castellan_app::password::hash(p).await?;
                false
            }
            None => true,
        };
        let position = admins::grant(
            &*state.log,
            caller.org,
            caller.meta,
            existing.admin_id,
            existing.org_id,
            &email,
            new.role,
        )
        .await?;
        crate::mail::granted(&state, caller.org, &email).await?;
        consistency::wait_for(&state, position).await?;
        state
            .admins
            .progress()
            .wait_for(position, state.consistency_wait)
            .await;
        return Ok((
            StatusCode::CREATED,
            [consistency::position_header(position)],
            Json(
                json!({"id": existing.admin_id.to_string(), "email": email, "role": new.role, "invitationSent": invitation_sent}),
            ),
        ));
    }
    let created = admins::create(
        &*state.log,
        caller.org,
        caller.meta,
        &new.email,
        new.role,
        new.password,
    )
    .await?;
    let mut invitation = false;
    if let Some(token) = &created.invite_token {
        crate::mail::invitation(
            &state,
            caller.org,
            created.id,
            &new.email.to_lowercase(),
            token,
        )
        .await?;
        invitation = true;
    }
    consistency::wait_for(&state, created.position).await?;
    Ok((
        StatusCode::CREATED,
        [consistency::position_header(created.position)],
        Json(
            json!({"id": created.id.to_string(), "email": new.email.to_lowercase(), "role": new.role, "invitationSent": invitation}),
        ),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/administrators/{id}",
    tag = "administrators",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 204, description = "done"), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let target: ObjectId = id
        .parse()
        .map_err(|_| ApiError::not_found("administrator"))?;
    let position = admins::delete(
        &*state.log,
        caller.org,
        caller.admin.admin_id,
        target,
        caller.meta,
    )
    .await?;
    consistency::wait_for(&state, position).await?;
    // The deleted admin's key stops working before we answer.
    state
        .admins
        .progress()
        .wait_for(position, state.consistency_wait)
        .await;
    Ok((
        [consistency::position_header(position)],
        StatusCode::NO_CONTENT,
    ))
}

/// Any admin may rotate their own key and is shown the new one, once. Another
/// admin's key (with admin management, and a role up to one's own) is revoked: it
/// stops working and no key is handed to the caller; its owner makes a new one.
#[utoipa::path(
    post,
    path = "/api/administrators/{id}/apikey",
    tag = "administrators",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "your new key (shown once), or another admin's key revoked", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn rotate_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let target: ObjectId = id
        .parse()
        .map_err(|_| ApiError::not_found("administrator"))?;
    if target == caller.admin.admin_id {
        // Your own key lives in your home organization's stream.
        let (key, position) =
            admins::rotate_api_key(&*state.log, caller.admin.org_id, target, caller.meta).await?;
        state
            .admins
            .progress()
            .wait_for(position, state.consistency_wait)
            .await;
        return Ok(Json(
            json!({"apiKey": key, "note": "shown once; the previous key no longer works"}),
        ));
    }
    let forbidden = |message| ApiError::new(StatusCode::FORBIDDEN, "forbidden", message);
    if !allows(caller.admin.role, Need::AdminManage) {
        return Err(forbidden("only your own API key"));
    }
    let index = state.admins.snapshot();
    let target_role = index
        .state
        .admins
        .get(&target)
        .and_then(|p| index.state.role_in(p, caller.org))
        .ok_or_else(|| ApiError::not_found("administrator"))?;
    if !caller.admin.role.may_grant(target_role) {
        return Err(forbidden(
            "only the keys of administrators whose role is up to your own",
        ));
    }
    let position = admins::revoke_api_key(&*state.log, caller.org, target, caller.meta).await?;
    state
        .admins
        .progress()
        .wait_for(position, state.consistency_wait)
        .await;
    Ok(Json(
        json!({"apiKeyRevoked": true, "note": "the key no longer works; its owner makes a new one"}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Accept {
    org_id: String,
    admin_id: String,
    token: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/api/administrators/invitations/accept",
    tag = "administrators",
    request_body(content = crate::schemas::AcceptInvitation, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "the link is invalid, used or expired", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn accept(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let a: Accept = parse(&headers, &body)?;
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_link",
            "the link is invalid, used or expired",
        )
    };
    let org: ObjectId = a.org_id.parse().map_err(|_| bad())?;
    let admin: ObjectId = a.admin_id.parse().map_err(|_| bad())?;
    let meta = castellan_domain::envelope::EventMeta::new(
        state.clock.now(),
        castellan_domain::envelope::Actor {
            kind: castellan_domain::envelope::ActorKind::Admin,
            id: Some(admin.to_string()),
            email: None,
        },
    );
    admins::accept_invitation(&*state.log, org, admin, meta, &a.token, a.password)
        .await
        .map_err(|e| match e {
            castellan_app::AppError::Domain(castellan_domain::DomainError::NotFound { .. }) => {
                bad()
            }
            castellan_app::AppError::Domain(ref d) if d.field() == Some("token") => bad(),
            other => other.into(),
        })?;
    Ok(Json(json!({"passwordSet": true})))
}

#[utoipa::path(
    get,
    path = "/api/outbox",
    tag = "administrators",
    responses((status = 200, description = "done", body = [Object]), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn outbox(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(state.store.outbox(&caller.org.to_string()).await?))
}
