//! `GET|POST /api/v2/usergroups/{id}/members`, `GET …/membership`, and the other
//! direction, `GET /api/v2/users/{id}/memberof`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberOp {
    pub op: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub attributes: Option<Value>,
}

#[utoipa::path(
    get,
    path = "/api/v2/usergroups/{id}/members",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "default 10"), ("skip" = Option<u64>, Query, description = "items to pass over")),
    responses((status = 200, description = "done", body = [Object]), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let page = crate::query::page(raw.as_deref())?;
    let org = caller.org.to_string();
    super::existing(&state, &org, &id).await?;
    Ok(Json(state.store.group_members(&org, &id, page).await?))
}

#[utoipa::path(
    get,
    path = "/api/v2/usergroups/{id}/membership",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "default 10"), ("skip" = Option<u64>, Query, description = "items to pass over")),
    responses((status = 200, description = "done", body = [Object]), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn membership(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let page = crate::query::page(raw.as_deref())?;
    let org = caller.org.to_string();
    super::existing(&state, &org, &id).await?;
    Ok(Json(state.store.group_membership(&org, &id, page).await?))
}

#[utoipa::path(
    post,
    path = "/api/v2/usergroups/{id}/members",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id")),
    request_body(content = crate::schemas::MemberOp, content_type = "application/json"),
    responses((status = 204, description = "done"), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn change(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let group = super::parse_id(&id)?;
    let op: MemberOp = parse(&headers, &body)?;
    if op.kind != "user" {
        return Err(ApiError::bad_request(
            "invalid_field",
            Some("type"),
            "type: members of a user group are of type user",
        ));
    }
    if !matches!(op.op.as_str(), "add" | "remove") {
        return Err(ApiError::bad_request(
            "invalid_field",
            Some("op"),
            "op: add or remove",
        ));
    }
    super::associations::apply(&state, caller, group, op).await
}

#[utoipa::path(
    get,
    path = "/api/v2/users/{id}/memberof",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "default 10"), ("skip" = Option<u64>, Query, description = "items to pass over")),
    responses((status = 200, description = "done", body = [Object]), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn memberof(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let page = crate::query::page(raw.as_deref())?;
    let org = caller.org.to_string();
    state
        .store
        .user(&org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(state.store.user_memberof(&org, &id, page).await?))
}

#[utoipa::path(
    get,
    path = "/api/v2/users/{id}/attributes",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "the user's custom attributes with their groups' merged in (the user's own win; between groups, the first by name)", body = [Object]), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn attributes(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let org = caller.org.to_string();
    let user = state
        .store
        .user(&org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let groups = state.store.user_group_attributes(&org, &id).await?;
    Ok(Json(castellan_domain::user_group::effective_attributes(
        &user["attributes"],
        &groups,
    )))
}
