//! `POST /api/systemusers`: `username` and `email` required; with `password` the
//! user is ACTIVATED (after the password policy), without it STAGED and emailed an
//! activation link (CSV imports send no email).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use castellan_app::users::{self, NewUser};
use castellan_domain::user::UserState;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

pub fn parse_state(value: Option<Value>) -> Result<Option<UserState>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_field",
                Some("state"),
                "state: STAGED, ACTIVATED or SUSPENDED",
            )
        }),
    }
}

#[utoipa::path(
    post,
    path = "/api/systemusers",
    tag = "systemusers",
    request_body(content = crate::schemas::NewUser, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: Map<String, Value> = parse(&headers, &body)?;
    let super::UserBody {
        profile,
        password,
        state: user_state,
        require_mfa,
        suspended,
        activated,
        account_locked,
        mfa_exclusion,
    } = super::split_body(body)?;
    let mut user_state = parse_state(user_state)?;
    if user_state == Some(UserState::Suspended) || suspended == Some(true) {
        return Err(ApiError::bad_request(
            "invalid_field",
            Some(if suspended == Some(true) {
                "suspended"
            } else {
                "state"
            }),
            "a new user is STAGED or ACTIVATED, not suspended",
        ));
    }
    if account_locked == Some(true) {
        return Err(ApiError::bad_request(
            "invalid_field",
            Some("account_locked"),
            "account_locked: a new user is not locked",
        ));
    }
    // Checked before anything is written, so a bad exclusion creates no user.
    super::check_exclusion(mfa_exclusion.as_ref(), caller.meta.occurred_at)?;
    // `activated` (the SDK's field) says the same as `state`.
    match (user_state, activated) {
        (None, Some(true)) => user_state = Some(UserState::Activated),
        (None, Some(false)) => user_state = Some(UserState::Staged),
        (Some(s), Some(a)) if (s == UserState::Activated) != a => {
            return Err(ApiError::bad_request(
                "invalid_field",
                Some("activated"),
                "activated: contradicts state",
            ))
        }
        _ => {}
    }
    let (id, done) = users::create(
        &*state.log,
        caller.org,
        caller.meta.clone(),
        NewUser {
            profile,
            password,
            state: user_state,
        },
        None,
    )
    .await?;
    let mut position = done.position;
    // A user created without a password gets an activation link by email.
    if done.state.password_hash.is_none() {
        let (token, sent) =
            users::issue_activation(&*state.log, caller.org, id, caller.meta.clone()).await?;
        crate::mail::activation(&state, caller.org, id, sent.state.email(), &token).await?;
        position = sent.position;
    }
    let require_mfa = require_mfa.map(|(required, enrollment_days)| {
        castellan_domain::user::UserCommand::RequireMfa {
            required,
            enrollment_days,
        }
    });
    for cmd in require_mfa.into_iter().chain(mfa_exclusion) {
        let done = users::command(&*state.log, caller.org, id, caller.meta.clone(), cmd).await?;
        position = position.max(done.position);
    }
    super::read_back(&state, &caller.org.to_string(), &id.to_string(), position).await
}
