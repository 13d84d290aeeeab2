//! Create, read, list, update and delete user groups.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;
use castellan_app::groups;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::consistency;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

async fn read_back(
    state: &ApiState,
    org: &str,
    id: &str,
    position: u64,
) -> Result<impl IntoResponse, ApiError> {
    consistency::wait_for(state, position).await?;
    let group = super::existing(state, org, id).await?;
    Ok(([consistency::position_header(position)], Json(group)))
}

fn fields(mut body: Map<String, Value>) -> Map<String, Value> {
    for k in ["id", "type", "membershipMethod"] {
        body.remove(k);
    }
    body
}

#[utoipa::path(
    get,
    path = "/api/v2/usergroups",
    tag = "usergroups",
    responses((status = 200, description = "done", body = [Object]), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let mut q = crate::systemusers::list::parse_v2_groups(raw.as_deref())?;
    q.sort.retain(|(f, _)| f == "name");
    let (mut groups, total) = state.store.groups(&caller.org.to_string(), &q).await?;
    // `fields` (comma-separated in v2): the keys each group keeps.
    crate::systemusers::list::narrow(
        &mut groups,
        crate::systemusers::list::parse_fields(raw.as_deref()).as_deref(),
    );
    Ok(([("x-total-count", HeaderValue::from(total))], Json(groups)))
}

#[utoipa::path(
    post,
    path = "/api/v2/usergroups",
    tag = "usergroups",
    request_body(content = crate::schemas::Group, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: Map<String, Value> = parse(&headers, &body)?;
    let (id, done) = groups::create(&*state.log, caller.org, caller.meta, fields(body)).await?;
    read_back(
        &state,
        &caller.org.to_string(),
        &id.to_string(),
        done.position,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/api/v2/usergroups/{id}",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "done", body = Object), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        super::existing(&state, &caller.org.to_string(), &id).await?,
    ))
}

#[utoipa::path(
    put,
    path = "/api/v2/usergroups/{id}",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id")),
    request_body(content = crate::schemas::Group, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
/// `PUT` replaces the group's fields: the name is required, as on create.
pub async fn put(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: Map<String, Value> = parse(&headers, &body)?;
    if !body.contains_key("name") {
        return Err(ApiError::bad_request(
            "invalid_field",
            Some("name"),
            "name: is required (PATCH changes a subset)",
        ));
    }
    update(state, caller, id, body).await
}

#[utoipa::path(
    patch,
    path = "/api/v2/usergroups/{id}",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id")),
    request_body(content = crate::schemas::GroupPatch, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
/// `PATCH` changes the fields it names.
pub async fn patch(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: Map<String, Value> = parse(&headers, &body)?;
    update(state, caller, id, body).await
}

async fn update(
    state: ApiState,
    caller: Caller,
    id: String,
    body: Map<String, Value>,
) -> Result<impl IntoResponse, ApiError> {
    let group_id = super::parse_id(&id)?;
    let done = groups::update(&*state.log, caller.org, group_id, caller.meta, fields(body)).await?;
    read_back(&state, &caller.org.to_string(), &id, done.position).await
}

#[utoipa::path(
    delete,
    path = "/api/v2/usergroups/{id}",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "done", body = Object), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let group_id = super::parse_id(&id)?;
    let before = super::existing(&state, &caller.org.to_string(), &id).await?;
    let done = groups::delete(&*state.log, caller.org, group_id, caller.meta).await?;
    consistency::wait_for(&state, done.position).await?;
    Ok(([consistency::position_header(done.position)], Json(before)))
}
