//! `GET /api/organizations`: the organizations the caller administers, as a v1 list.

use crate::query::Query;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::get::ReadParams;
use crate::auth::Caller;
use crate::consistency;
use crate::error::ApiError;
use crate::state::ApiState;

#[utoipa::path(
    get,
    path = "/api/organizations",
    tag = "organizations",
    responses((status = 200, description = "done", body = Object), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    consistency::wait_for(
        &state,
        consistency::requested(&headers, params.min_position)?,
    )
    .await?;
    // Every organization the caller administers (home first).
    let orgs = state
        .admins
        .snapshot()
        .state
        .organizations_of(&caller.admin);
    let mut results: Vec<Value> = Vec::new();
    for org in orgs {
        if let Some(o) = state.store.organization(&org.to_string()).await? {
            results.push(super::to_json(&o));
        }
    }
    Ok(Json(
        json!({"totalCount": results.len(), "results": results}),
    ))
}
