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
    /// `enable_user_portal_multifactor` and `enrollmentDays` (default 7).
    pub require_mfa: Option<(bool, u32)>,
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
    let days = match body.remove("enrollmentDays") {
        None | Some(Value::Null) => 7,
        // 7 and 7.0 are the same JSON number.
        Some(v) => v
            .as_f64()
            .filter(|d| d.fract() == 0.0 && (1.0..=365.0).contains(d))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_field",
                    Some("enrollmentDays"),
                    "enrollmentDays: 1 to 365",
                )
            })? as u32,
    };
    let require_mfa = match body.remove("enable_user_portal_multifactor") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some((b, days)),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                Some("enable_user_portal_multifactor"),
                "enable_user_portal_multifactor: true or false",
            ))
        }
    };
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
        require_mfa,
    })
}
