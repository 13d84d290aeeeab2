//! `POST /api/systemusers/{id}/unlock | /expire | /resetmfa | /state/activate`.

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

pub async fn unlock(
    State(s): State<ApiState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, c, id, UserCommand::Unlock).await
}

pub async fn expire(
    State(s): State<ApiState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, c, id, UserCommand::ExpirePassword).await
}

pub async fn reset_mfa(
    State(s): State<ApiState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, c, id, UserCommand::ResetMfa).await
}

pub async fn activate(
    State(s): State<ApiState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, c, id, UserCommand::Activate).await
}
