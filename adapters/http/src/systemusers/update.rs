//! `PUT /api/systemusers/{id}`: profile fields; `password` (through the policy; a
//! staged user is activated by it); `state` SUSPENDED / ACTIVATED or `suspended`
//! true / false; `account_locked: false` unlocks; `mfa` exclusions.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use castellan_app::users;
use castellan_domain::user::{UserCommand, UserState};
use serde_json::{Map, Value};

use super::create::parse_state;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

#[utoipa::path(
    put,
    path = "/api/systemusers/{id}",
    tag = "systemusers",
    params(("id" = String, Path, description = "24-hex object id")),
    request_body(content = crate::schemas::UserChanges, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let user_id = super::parse_id(&id)?;
    let body: Map<String, Value> = parse(&headers, &body)?;
    let super::UserBody {
        profile,
        password,
        state: user_state,
        require_mfa,
        suspended,
        activated: _,
        account_locked,
        mfa_exclusion,
    } = super::split_body(body)?;
    let unlock = match account_locked {
        None => false,
        Some(false) => true,
        Some(true) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                Some("account_locked"),
                "account_locked: only false (unlock) may be set",
            ))
        }
    };
    let user_state = parse_state(user_state)?;
    // `suspended` is the SDK's spelling of the same change as `state`.
    let suspend = match (user_state, suspended) {
        (Some(UserState::Suspended), _) | (None, Some(true)) => Some(true),
        (Some(UserState::Activated), _) | (None, Some(false)) => Some(false),
        (Some(UserState::Staged), _) | (None, None) => None,
    };
    if user_state.is_some() && suspended.is_some() && suspend != suspended {
        return Err(ApiError::bad_request(
            "invalid_field",
            Some("suspended"),
            "suspended: contradicts state",
        ));
    }
    // Everything that can be checked without the store is checked before the first
    // write, so a bad field changes nothing.
    castellan_domain::user::check_profile(&profile, false)?;
    super::check_exclusion(mfa_exclusion.as_ref(), caller.meta.occurred_at)?;
    let org = caller.org;
    let log = &*state.log;
    let mut position = 0;
    // The password first: its policy and history are the likeliest refusals left.
    // A password set on a staged user activates it, as the hosted product does.
    if let Some(p) = password {
        position = users::set_password(log, org, user_id, caller.meta.clone(), p, true, None)
            .await?
            .position;
    }
    if !profile.is_empty() {
        let done = users::update(log, org, user_id, caller.meta.clone(), profile).await?;
        position = position.max(done.position);
    }
    let command = suspend.map(|s| {
        if s {
            UserCommand::Suspend
        } else {
            UserCommand::Unsuspend
        }
    });
    let mfa = require_mfa.map(|(required, enrollment_days)| UserCommand::RequireMfa {
        required,
        enrollment_days,
    });
    for cmd in command
        .into_iter()
        .chain(unlock.then_some(UserCommand::Unlock))
        .chain(mfa)
        .chain(mfa_exclusion)
    {
        position = position.max(
            users::command(log, org, user_id, caller.meta.clone(), cmd)
                .await?
                .position,
        );
    }
    super::read_back(&state, &org.to_string(), &id, position).await
}
