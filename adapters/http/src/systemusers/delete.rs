//! `DELETE /api/systemusers/{id}`: answers the user as it was; its history stays in the log.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use castellan_app::users;

use crate::auth::Caller;
use crate::consistency;
use crate::error::ApiError;
use crate::state::ApiState;

#[utoipa::path(
    delete,
    path = "/api/systemusers/{id}",
    tag = "systemusers",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "done", body = Object), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let user_id = super::parse_id(&id)?;
    let before = state
        .store
        .user(&caller.org.to_string(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let done = users::delete(&*state.log, caller.org, user_id, caller.meta).await?;
    consistency::wait_for(&state, done.position).await?;
    Ok(([consistency::position_header(done.position)], Json(before)))
}
