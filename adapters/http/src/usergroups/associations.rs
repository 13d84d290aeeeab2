//! `GET /api/v2/usergroups/{id}/associations?targets=TYPE` and
//! `POST …/associations {op: add|remove|update, type, id, attributes}`.

use crate::query::Query;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use castellan_app::groups;
use castellan_domain::user_group::ASSOCIATION_TYPES;
use serde::Deserialize;
use serde_json::{json, Value};

use super::members::MemberOp;
use crate::auth::Caller;
use crate::consistency;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

#[derive(Deserialize)]
pub struct Targets {
    targets: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v2/usergroups/{id}/associations",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id"), ("targets" = inline(crate::schemas::TargetType), Query, description = "the type of the associated objects"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "default 10"), ("skip" = Option<u64>, Query, description = "items to pass over")),
    responses((status = 200, description = "done", body = [Object]), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(t): Query<Targets>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let page = crate::query::page(raw.as_deref())?;
    let target = t
        .targets
        .filter(|t| ASSOCIATION_TYPES.contains(&t.as_str()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                Some("targets"),
                format!("targets: one of {}", ASSOCIATION_TYPES.join(", ")),
            )
        })?;
    let org = caller.org.to_string();
    super::existing(&state, &org, &id).await?;
    Ok(Json(
        state
            .store
            .group_associations(&org, &id, &target, page)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v2/usergroups/{id}/associations",
    tag = "usergroups",
    params(("id" = String, Path, description = "24-hex object id")),
    request_body(content = crate::schemas::AssociationOp, content_type = "application/json"),
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
    apply(&state, caller, group, op).await
}

/// Applies one edge: a member (`type: user`) or an association to another target.
/// Shared with `POST …/members`.
pub async fn apply(
    state: &ApiState,
    caller: Caller,
    group: castellan_domain::ObjectId,
    op: MemberOp,
) -> Result<impl IntoResponse, ApiError> {
    if op.id.is_empty() || op.id.len() > 64 || !castellan_domain::envelope::is_token(&op.id) {
        return Err(ApiError::bad_request(
            "invalid_field",
            Some("id"),
            "id: the target's id",
        ));
    }
    let done = if op.kind == "user" {
        let user = op
            .id
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_field", Some("id"), "id: a user id"))?;
        groups::member(&*state.log, caller.org, group, caller.meta, &op.op, user).await?
    } else {
        let attributes = op.attributes.unwrap_or_else(|| json!({}));
        let edge = groups::Edge {
            op: &op.op,
            target_type: &op.kind,
            target_id: &op.id,
            attributes,
        };
        groups::associate(&*state.log, caller.org, group, caller.meta, edge).await?
    };
    consistency::wait_for(state, done.position).await?;
    Ok((
        [consistency::position_header(done.position)],
        StatusCode::NO_CONTENT,
    ))
}
