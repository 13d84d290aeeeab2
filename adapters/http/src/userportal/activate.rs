//! `POST /userportal/activate {orgId, userId, token, password}`: the activation link.
//! The password goes through the organization's policy; the user becomes ACTIVATED and
//! the link is spent (a second use, even a concurrent one, answers 401).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use castellan_app::users;
use castellan_domain::envelope::{Actor, ActorKind, EventMeta};
use castellan_domain::ObjectId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Activation {
    org_id: String,
    user_id: String,
    token: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/userportal/activate",
    tag = "userportal",
    request_body(content = crate::schemas::Activation, content_type = "application/json"),
    responses((status = 200, description = "password set, account active", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "the link is invalid, used or expired", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn handle(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let a: Activation = parse(&headers, &body)?;
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_link",
            "the link is invalid, used or expired",
        )
    };
    let org: ObjectId = a.org_id.parse().map_err(|_| bad())?;
    let user: ObjectId = a.user_id.parse().map_err(|_| bad())?;
    let mut meta = EventMeta::new(
        state.clock.now(),
        Actor {
            kind: ActorKind::User,
            id: Some(user.to_string()),
            email: None,
        },
    );
    meta.user_agent = crate::client::user_agent(&headers);
    let done = users::set_password(
        &*state.log,
        org,
        user,
        meta,
        a.password,
        true,
        Some(&a.token),
    )
    .await
    .map_err(|e| match e {
        castellan_app::AppError::Domain(castellan_domain::DomainError::NotFound { .. }) => bad(),
        castellan_app::AppError::Domain(ref d) if d.field() == Some("token") => bad(),
        other => other.into(),
    })?;
    crate::consistency::wait_for(&state, done.position).await?;
    Ok(Json(json!({"activated": true})))
}
