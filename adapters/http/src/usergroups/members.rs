//! `GET|POST /api/v2/usergroups/{id}/members`, `GET …/membership`, and the other
//! direction, `GET /api/v2/users/{id}/memberof`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use castellan_app::groups;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::consistency;
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

pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let org = caller.org.to_string();
    super::existing(&state, &org, &id).await?;
    Ok(Json(state.store.group_members(&org, &id).await?))
}

pub async fn membership(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let org = caller.org.to_string();
    super::existing(&state, &org, &id).await?;
    Ok(Json(state.store.group_membership(&org, &id).await?))
}

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
    let user = op.id.parse().map_err(|_| {
        ApiError::bad_request("invalid_field", Some("id"), "id: a user id (24 hex digits)")
    })?;
    let done = groups::member(&*state.log, caller.org, group, caller.meta, &op.op, user).await?;
    consistency::wait_for(&state, done.position).await?;
    Ok((
        [consistency::position_header(done.position)],
        StatusCode::NO_CONTENT,
    ))
}

pub async fn memberof(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let org = caller.org.to_string();
    state
        .store
        .user(&org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(state.store.user_memberof(&org, &id).await?))
}
