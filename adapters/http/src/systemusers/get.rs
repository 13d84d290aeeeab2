//! `GET /api/systemusers/{id}` (`fields`: the keys returned)

use crate::query::Query;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value;

use crate::auth::Caller;
use crate::consistency;
use crate::error::ApiError;
use crate::organizations::get::ReadParams;
use crate::state::ApiState;

#[utoipa::path(
    get,
    path = "/api/systemusers/{id}",
    tag = "systemusers",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<ReadParams>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    consistency::wait_for(
        &state,
        consistency::requested(&headers, params.min_position)?,
    )
    .await?;
    let user = state
        .store
        .user(&caller.org.to_string(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let mut one = [user];
    super::list::narrow(
        &mut one,
        super::list::parse_fields(raw.as_deref()).as_deref(),
    );
    let [user] = one;
    Ok(Json(user))
}
