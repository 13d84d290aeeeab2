//! User commands: create (unique username and email, uid allocation, password policy,
//! argon2id), update, password changes with history, lifecycle, delete.

use castellan_domain::envelope::{EventMeta, StreamId};
use castellan_domain::organization::Organization;
use castellan_domain::password_policy::PasswordPolicy;
use castellan_domain::user::{check_profile, User, UserCommand, UserState};
use castellan_domain::{DomainError, ObjectId};
use serde_json::{Map, Value};

use crate::error::AppError;
use crate::execute::{execute, load, Executed};
use crate::links;
use crate::password;
use crate::ports::EventLog;
use crate::unique;
use crate::unix_ids;

/// What an admin (or an import) asks for.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub profile: Map<String, Value>,
    pub password: Option<String>,
    /// STAGED or ACTIVATED (ACTIVATED needs a password).
    pub state: Option<UserState>,
}

/// The organization's password policy and uid range start, read from its stream.
pub async fn org_policy(
    log: &dyn EventLog,
    org: ObjectId,
) -> Result<(PasswordPolicy, u64), AppError> {
    let loaded = load::<Organization>(log, org, &StreamId::aggregate("organization", org)).await?;
    if !loaded.state.exists {
        return Err(DomainError::NotFound {
            kind: "organization",
        }
        .into());
    }
    let start = loaded
        .state
        .settings
        .get("unixUidStart")
        .and_then(Value::as_u64)
        .unwrap_or(unix_ids::DEFAULT_UID_START);
    Ok((loaded.state.password_policy(), start))
}

/// Trims text fields and lowercases the email, as the hosted product stores them.
/// Usernames and emails are taken as sent (spaces make them invalid), and a value over
/// the length limit is left whole so that the check reports the length as sent.
fn normalize(profile: &mut Map<String, Value>) {
    for (k, v) in profile.iter_mut() {
        if let Value::String(s) = v {
            if k == "email" {
                *v = Value::String(s.to_lowercase());
            } else if k != "username" && s.chars().count() <= 256 {
                *v = Value::String(s.trim().to_string());
            }
        }
    }
}

/// Undo list: the keys claimed so far, released if the command fails.
struct Claims<'a> {
    log: &'a dyn EventLog,
    org: ObjectId,
    owner: String,
    meta: &'a EventMeta,
    keys: Vec<(&'static str, String)>,
    uid: Option<u64>,
}

impl Claims<'_> {
    async fn claim(&mut self, kind: &'static str, value: &str) -> Result<(), AppError> {
        unique::claim(self.log, self.org, kind, value, &self.owner, self.meta).await?;
        self.keys.push((kind, value.to_string()));
        Ok(())
    }

    async fn release_all(self) {
        for (kind, value) in &self.keys {
            let _ = unique::release(self.log, self.org, kind, value, &self.owner, self.meta).await;
        }
        if let Some(uid) = self.uid {
            let _ = unix_ids::release(self.log, self.org, uid, &self.owner, self.meta).await;
        }
    }
}

/// Creates a user. With `policy` given (a bulk import), the organization is not read again.
pub async fn create(
    log: &dyn EventLog,
    org: ObjectId,
    meta: EventMeta,
    mut new: NewUser,
    policy: Option<(PasswordPolicy, u64)>,
) -> Result<(ObjectId, Executed<User>), AppError> {
    normalize(&mut new.profile);
    check_profile(&new.profile, true)?;
    let (policy, uid_start) = match policy {
        Some(p) => p,
        None => org_policy(log, org).await?,
    };
    let username = new.profile["username"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let email = new.profile["email"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if new.state == Some(UserState::Activated) && new.password.is_none() {
        return Err(DomainError::invalid("password", "an ACTIVATED user needs a password").into());
    }
    let password_hash = match new.password.take() {
        Some(p) => {
            policy.check("password", &p, Some(&username))?;
            Some(password::hash(p).await?)
        }
        None => None,
    };
    let id = ObjectId::generate(meta.occurred_at.unix_timestamp());
    let mut claims = Claims {
        log,
        org,
        owner: id.to_string(),
        meta: &meta,
        keys: Vec::new(),
        uid: None,
    };
    let result = async {
        claims.claim("username", &username).await?;
        claims.claim("email", &email).await?;
        let uid = match new.profile.get("unix_uid").and_then(Value::as_u64) {
            Some(uid) => {
                unix_ids::claim(log, org, uid, &claims.owner, &meta).await?;
                uid
            }
            None => unix_ids::allocate(log, org, uid_start, &claims.owner, &meta).await?,
        };
        claims.uid = Some(uid);
        new.profile.insert("unix_uid".into(), uid.into());
        new.profile.entry("unix_guid").or_insert(uid.into());
        let state = new.state.unwrap_or(if password_hash.is_some() {
            UserState::Activated
        } else {
            UserState::Staged
        });
        execute::<User>(
            log,
            org,
            &id.to_string(),
            meta.clone(),
            UserCommand::Create {
                profile: new.profile.clone(),
                password_hash,
                state,
            },
        )
        .await
    }
    .await;
    match result {
        Ok(done) => Ok((id, done)),
        Err(e) => {
            claims.release_all().await;
            Err(e)
        }
    }
}

/// Changes profile fields; a new username or email is claimed first and the old one
/// released after. `state` SUSPENDED/ACTIVATED suspends or unsuspends.
pub async fn update(
    log: &dyn EventLog,
    org: ObjectId,
    id: ObjectId,
    meta: EventMeta,
    mut profile: Map<String, Value>,
) -> Result<Executed<User>, AppError> {
    normalize(&mut profile);
    check_profile(&profile, false)?;
    let current = load::<User>(log, org, &StreamId::aggregate("user", id))
        .await?
        .state;
    if !current.exists || current.deleted {
        return Err(DomainError::NotFound { kind: "user" }.into());
    }
    let owner = id.to_string();
    let mut claims = Claims {
        log,
        org,
        owner: owner.clone(),
        meta: &meta,
        keys: Vec::new(),
        uid: None,
    };
    let mut released: Vec<(&'static str, String)> = Vec::new();
    let result = async {
        for kind in ["username", "email"] {
            if let Some(new) = profile.get(kind).and_then(Value::as_str) {
                let old = if kind == "username" {
                    current.username()
                } else {
                    current.email()
                };
                if !new.eq_ignore_ascii_case(old) {
                    claims.claim(kind, new).await?;
                    released.push((kind, old.to_string()));
                }
            }
        }
        if let Some(uid) = profile.get("unix_uid").and_then(Value::as_u64) {
            if Some(uid) != current.unix_uid() {
                unix_ids::claim(log, org, uid, &owner, &meta).await?;
                claims.uid = Some(uid);
            }
        }
        execute::<User>(
            log,
            org,
            &owner,
            meta.clone(),
            UserCommand::Update {
                profile: profile.clone(),
            },
        )
        .await
    }
    .await;
    match result {
        Ok(done) => {
            for (kind, old) in released {
                let _ = unique::release(log, org, kind, &old, &owner, &meta).await;
            }
            if claims.uid.is_some() {
                if let Some(old) = current.unix_uid() {
                    let _ = unix_ids::release(log, org, old, &owner, &meta).await;
                }
            }
            Ok(done)
        }
        Err(e) => {
            claims.release_all().await;
            Err(e)
        }
    }
}

/// Sets a password through the policy, including history; `activate` moves a staged
/// user to ACTIVATED. With `link_token` (the activation link's path) the token must be
/// the user's current, unexpired one, and it is spent by this change.
pub async fn set_password(
    log: &dyn EventLog,
    org: ObjectId,
    id: ObjectId,
    meta: EventMeta,
    new_password: String,
    activate: bool,
    link_token: Option<&str>,
) -> Result<Executed<User>, AppError> {
    let (policy, _) = org_policy(log, org).await?;
    let user = load::<User>(log, org, &StreamId::aggregate("user", id))
        .await?
        .state;
    if !user.exists || user.deleted {
        return Err(DomainError::NotFound { kind: "user" }.into());
    }
    // A dead link is refused before the password is judged (the command checks again,
    // where a concurrent use loses).
    if let Some(token) = link_token {
        if user.activation_token_hash.as_deref() != Some(links::token_hash(token).as_str()) {
            return Err(
                DomainError::invalid("token", "the link is invalid, used or expired").into(),
            );
        }
    }
    policy.check("password", &new_password, Some(user.username()))?;
    if policy.max_history > 0 {
        let recent = user
            .password_hash
            .iter()
            .chain(user.password_history.iter())
            .take(policy.max_history as usize);
        for old in recent {
            if password::verify(new_password.clone(), old.clone()).await? {
                return Err(DomainError::invalid(
                    "password",
                    format!(
                        "may not be one of the {} most recent passwords",
                        policy.max_history
                    ),
                )
                .into());
            }
        }
    }
    let hash = password::hash(new_password).await?;
    execute::<User>(
        log,
        org,
        &id.to_string(),
        meta,
        UserCommand::SetPassword {
            hash,
            activate,
            link_token_hash: link_token.map(links::token_hash),
        },
    )
    .await
}

/// Issues a new activation link for a staged user without a password; returns the
/// token (for the email) and the executed command. The previous link stops working.
pub async fn issue_activation(
    log: &dyn EventLog,
    org: ObjectId,
    id: ObjectId,
    meta: EventMeta,
) -> Result<(String, Executed<User>), AppError> {
    let token = links::new_token();
    let command = UserCommand::IssueActivation {
        token_hash: links::token_hash(&token),
        expires_at: links::expiry(meta.occurred_at),
    };
    let done = execute::<User>(log, org, &id.to_string(), meta, command).await?;
    Ok((token, done))
}

/// A lifecycle command (suspend, unlock, expire, reset MFA, activate…).
pub async fn command(
    log: &dyn EventLog,
    org: ObjectId,
    id: ObjectId,
    meta: EventMeta,
    command: UserCommand,
) -> Result<Executed<User>, AppError> {
    execute::<User>(log, org, &id.to_string(), meta, command).await
}

/// Deletes the user (its history stays in the log) and frees its username, email and uid.
pub async fn delete(
    log: &dyn EventLog,
    org: ObjectId,
    id: ObjectId,
    meta: EventMeta,
) -> Result<Executed<User>, AppError> {
    let done =
        execute::<User>(log, org, &id.to_string(), meta.clone(), UserCommand::Delete).await?;
    let owner = id.to_string();
    let user = &done.state;
    unique::release(log, org, "username", user.username(), &owner, &meta).await?;
    unique::release(log, org, "email", user.email(), &owner, &meta).await?;
    if let Some(uid) = user.unix_uid() {
        unix_ids::release(log, org, uid, &owner, &meta).await?;
    }
    Ok(done)
}
