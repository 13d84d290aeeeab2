//! `POST /api/systemusers/{id}/unlock | /expire | /resetmfa | /state/activate | /activation`.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use castellan_app::users;
use castellan_domain::user::UserCommand;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ApiState;

async fn run(
    state: ApiState,
    caller: Caller,
    id: String,
    command: UserCommand,
) -> Result<impl IntoResponse, ApiError> {
    let user_id = super::parse_id(&id)?;
    let done = users::command(&*state.log, caller.org, user_id, caller.meta, command).await?;
    super::read_back(&state, &caller.org.to_string(), &id, done.position).await
}

#[utoipa::path(
    post,
    path = "/api/systemusers/{id}/unlock",
    tag = "systemusers",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn unlock(
    State(s): State<ApiState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, c, id, UserCommand::Unlock).await
}

#[utoipa::path(
    post,
    path = "/api/systemusers/{id}/expire",
    tag = "systemusers",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn expire(
    State(s): State<ApiState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, c, id, UserCommand::ExpirePassword).await
}

#[utoipa::path(
    post,
    path = "/api/systemusers/{id}/resetmfa",
    tag = "systemusers",
    params(("id" = String, Path, description = "24-hex object id")),
    request_body(content = Option<crate::schemas::MfaExclusion>, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn reset_mfa(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let user_id = super::parse_id(&id)?;
    // `{exclusion, exclusionDays, exclusionUntil}` (optional): a grace period in which
    // the user logs in without a code and enrolls again.
    let exclusion = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v: serde_json::Value = crate::organizations::update::parse(&headers, &body)?;
        super::mfa_exclusion(&v)?
    };
    super::check_exclusion(exclusion.as_ref(), caller.meta.occurred_at)?;
    let (log, org) = (&*state.log, caller.org);
    let mut position = users::command(
        log,
        org,
        user_id,
        caller.meta.clone(),
        UserCommand::ResetMfa,
    )
    .await?
    .position;
    if let Some(cmd) = exclusion {
        position = users::command(log, org, user_id, caller.meta, cmd)
            .await?
            .position;
    }
    super::read_back(&state, &org.to_string(), &id, position).await
}

#[utoipa::path(
    post,
    path = "/api/systemusers/{id}/state/activate",
    tag = "systemusers",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn activate(
    State(s): State<ApiState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, c, id, UserCommand::Activate).await
}

/// Emails a new activation link to a staged user without a password (the previous
/// link stops working).
#[utoipa::path(
    post,
    path = "/api/systemusers/{id}/activation",
    tag = "systemusers",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn send_activation(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let user_id = super::parse_id(&id)?;
    let (token, done) =
        users::issue_activation(&*state.log, caller.org, user_id, caller.meta).await?;
    crate::mail::activation(&state, caller.org, user_id, done.state.email(), &token).await?;
    super::read_back(&state, &caller.org.to_string(), &id, done.position).await
}
