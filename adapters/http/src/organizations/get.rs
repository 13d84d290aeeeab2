//! `GET /api/organizations/{id}`

use crate::query::Query;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::consistency;
use crate::error::ApiError;
use crate::state::ApiState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadParams {
    pub min_position: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/organizations/{id}",
    tag = "organizations",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    super::own(&caller, &id)?;
    consistency::wait_for(
        &state,
        consistency::requested(&headers, params.min_position)?,
    )
    .await?;
    let org = state
        .store
        .organization(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(Json(super::to_json(&org)))
}
