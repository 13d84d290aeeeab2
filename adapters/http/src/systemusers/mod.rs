//! `/api/systemusers` (v1): one file per operation.

pub mod actions;
pub mod create;
pub mod delete;
pub mod get;
pub mod import;
pub mod list;
pub mod search;
pub mod update;

use serde_json::Value;

use crate::error::ApiError;
use crate::state::ApiState;

/// A write's answer: the user once the read model has the write, with its position.
pub async fn read_back(
    state: &ApiState,
    org: &str,
    id: &str,
    position: u64,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    crate::consistency::wait_for(state, position).await?;
    let user = state
        .store
        .user(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok((
        [crate::consistency::position_header(position)],
        axum::Json(user),
    ))
}

/// Parses a path id; anything that is not one of this org's users is "not found".
pub fn parse_id(id: &str) -> Result<castellan_domain::ObjectId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("user"))
}

/// A user request body taken apart.
pub struct UserBody {
    pub profile: serde_json::Map<String, Value>,
    pub password: Option<String>,
    pub state: Option<Value>,
}

/// Splits a request body into the profile, the password and the state.
pub fn split_body(mut body: serde_json::Map<String, Value>) -> Result<UserBody, ApiError> {
    let password = match body.remove("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                Some("password"),
                "password: must be a string",
            ))
        }
    };
    let state = body.remove("state");
    // Read-only fields a client may echo back from a GET.
    for k in [
        "_id",
        "id",
        "organization",
        "created",
        "updated",
        "activated",
        "suspended",
        "password_expired",
        "password_status",
        "password_date",
        "totp_enabled",
        "mfa",
    ] {
        body.remove(k);
    }
    Ok(UserBody {
        profile: body,
        password,
        state,
    })
}
