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
    /// `suspended` (PUT: suspends or unsuspends).
    pub suspended: Option<bool>,
    /// `activated` (POST: ACTIVATED or STAGED).
    pub activated: Option<bool>,
    /// `account_locked` (false unlocks; true is refused).
    pub account_locked: Option<bool>,
    /// `mfa.exclusion`, `mfa.exclusionDays`, `mfa.exclusionUntil`.
    pub mfa_exclusion: Option<castellan_domain::user::UserCommand>,
}

fn flag(body: &mut serde_json::Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_field",
            Some(key),
            format!("{key}: true or false"),
        )),
    }
}

/// Checks an MFA exclusion command before anything is written (its end must lie in
/// the future), so that a bad one changes nothing.
pub fn check_exclusion(
    command: Option<&castellan_domain::user::UserCommand>,
    now: time::OffsetDateTime,
) -> Result<(), ApiError> {
    if let Some(castellan_domain::user::UserCommand::ExcludeFromMfa {
        exclusion,
        days,
        until,
    }) = command
    {
        castellan_domain::user::exclusion_until(*exclusion, *days, until.as_deref(), now)?;
    }
    Ok(())
}

/// `mfa` as the SDK sends it: `{configured, exclusion, exclusionDays, exclusionUntil}`
/// (`configured` is the server's to say and is ignored); the exclusion command, if
/// the body says anything of one.
pub fn mfa_exclusion(mfa: &Value) -> Result<Option<castellan_domain::user::UserCommand>, ApiError> {
    let bad = |field: &str, message: &str| {
        ApiError::bad_request("invalid_field", Some(field), format!("{field}: {message}"))
    };
    let Some(o) = mfa.as_object() else {
        return if mfa.is_null() {
            Ok(None)
        } else {
            Err(bad("mfa", "an object"))
        };
    };
    let exclusion = match o.get("exclusion") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(bad("mfa.exclusion", "true or false")),
    };
    let days = match o.get("exclusionDays") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| bad("mfa.exclusionDays", "a whole number of days (1 to 365)"))?,
        ),
    };
    let until = match o.get("exclusionUntil") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("mfa.exclusionUntil", "a date and time")),
    };
    let exclusion = match exclusion {
        Some(e) => e,
        // Days or a date alone mean an exclusion.
        None if days.is_some() || until.is_some() => true,
        None => return Ok(None),
    };
    Ok(Some(castellan_domain::user::UserCommand::ExcludeFromMfa {
        exclusion,
        days,
        until,
    }))
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
    let suspended = flag(&mut body, "suspended")?;
    let activated = flag(&mut body, "activated")?;
    let account_locked = flag(&mut body, "account_locked")?;
    let mfa_exclusion = match body.remove("mfa") {
        Some(mfa) => mfa_exclusion(&mfa)?,
        None => None,
    };
    // Read-only fields a client may echo back from a GET.
    for k in [
        "_id",
        "id",
        "organization",
        "created",
        "updated",
        "password_expired",
        "password_status",
        "password_date",
        "totp_enabled",
        "account_locked_date",
        "mfaEnrollment",
        "badLoginAttempts",
        "creationSource",
        "password_expiration_date",
    ] {
        body.remove(k);
    }
    Ok(UserBody {
        profile: body,
        password,
        state,
        require_mfa,
        suspended,
        activated,
        account_locked,
        mfa_exclusion,
    })
}
