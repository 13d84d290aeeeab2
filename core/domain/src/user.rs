//! The user aggregate (the hosted product's "systemuser").
//!
//! Every event carries the `changes` list of Directory Insights, and `evolve` applies
//! it field by field (the read model applies it with the same function). Secrets a
//! change needs (a password hash, a TOTP secret) travel beside the changes, never in
//! them: `changes` is what an audit trail shows.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::aggregate::{from_payload, Aggregate, DecideContext, DecodeError, EventCodec};
use crate::change::{diff, Change};
use crate::error::{DomainError, Violations};
use crate::organization::is_plausible_email;
use crate::totp::{CodeSteps, StoredSecrets, Totp};
use crate::upcast::upcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum UserState {
    #[default]
    Staged,
    Activated,
    Suspended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordStatus {
    #[default]
    Pending,
    Active,
    Expired,
}

/// The profile fields an admin edits, named as in the hosted product's API.
pub const TEXT_FIELDS: &[&str] = &[
    "username",
    "email",
    "firstname",
    "lastname",
    "displayname",
    "description",
    "employeeIdentifier",
    "employeeType",
    "jobTitle",
    "department",
    "costCenter",
    "company",
    "location",
    "middlename",
    "alternateEmail",
    "managedAppleId",
    "manager",
    "external_dn",
    "external_source_type",
    "external_password_expiration_date",
];
pub const FLAG_FIELDS: &[&str] = &[
    "sudo",
    "passwordless_sudo",
    "ldap_binding_user",
    "samba_service_user",
    "allow_public_key",
    "password_never_expires",
    "enable_managed_uid",
    "externally_managed",
    "disable_device_max_login_attempts",
];
pub const NUMBER_FIELDS: &[&str] = &["unix_uid", "unix_guid"];
/// Lists of `{name, value}` / `{name, public_key}` objects.
pub const LIST_FIELDS: &[&str] = &["attributes", "ssh_keys"];
/// Lists of contact objects whose fields are all text (`{type, number}`,
/// `{type, streetAddress, locality, …}`), as the SDK's models send them.
pub const CONTACT_FIELDS: &[&str] = &["addresses", "phoneNumbers", "relationships"];
/// `public_key`: one SSH public key, longer than a name field may be.
const PUBLIC_KEY_MAX: usize = 16 * 1024;
/// At most this many contact entries, each field at most 1024 characters.
const CONTACTS_MAX: usize = 20;

/// A user's state: the profile as a JSON object (so that every field the API knows
/// round-trips) plus what the directory enforces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    pub exists: bool,
    pub deleted: bool,
    pub profile: Map<String, Value>,
    pub state: UserState,
    pub password_status: PasswordStatus,
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// The most recent hashes, newest first (for the history rule).
    #[serde(skip)]
    pub password_history: Vec<String>,
    pub password_date: Option<String>,
    pub account_locked: bool,
    pub mfa_required: bool,
    pub mfa_enrollment_deadline: Option<String>,
    /// `mfa.exclusion`, `mfa.exclusionDays`, `mfa.exclusionUntil`.
    pub mfa_exclusion: bool,
    pub mfa_exclusion_days: Option<u32>,
    pub mfa_exclusion_until: Option<String>,
    pub totp: Totp,
    pub account_locked_date: Option<String>,
    /// SHA-256 of the activation link's one-time token, and when the link expires.
    #[serde(skip)]
    pub activation_token_hash: Option<String>,
    #[serde(skip)]
    pub activation_expires_at: Option<String>,
}

impl User {
    pub fn username(&self) -> &str {
        self.profile
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn email(&self) -> &str {
        self.profile
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn unix_uid(&self) -> Option<u64> {
        self.profile.get("unix_uid").and_then(Value::as_u64)
    }
}

#[derive(Debug, Clone)]
pub enum UserCommand {
    /// `profile` holds the fields given (already lowercased email, assigned uid/gid).
    Create {
        profile: Map<String, Value>,
        password_hash: Option<String>,
        /// STAGED or ACTIVATED; without a password a user is always STAGED.
        state: UserState,
    },
    /// A partial profile: the fields present change; `null` clears an optional field.
    Update {
        profile: Map<String, Value>,
    },
    SetPassword {
        hash: String,
        activate: bool,
        /// Through an activation link: the hash of its token, checked here so that two
        /// concurrent uses of one link cannot both succeed.
        link_token_hash: Option<String>,
    },
    /// A new activation link for a staged user without a password (the old one stops working).
    IssueActivation {
        token_hash: String,
        expires_at: String,
    },
    /// The same password, hashed again with stronger parameters (at login).
    Rehash {
        hash: String,
        from: String,
        to: String,
    },
    Activate,
    Suspend,
    Unsuspend,
    Lock,
    Unlock,
    ExpirePassword,
    RequireMfa {
        required: bool,
        enrollment_days: u32,
    },
    /// `mfa.exclusion`: while it holds (until `until`, or with no end), logins ask
    /// for no code and an ended enrollment period does not close the portal.
    /// `days` (1–365) sets `until` from now when `until` is not given.
    ExcludeFromMfa {
        exclusion: bool,
        days: Option<u32>,
        until: Option<String>,
    },
    /// Starts (or restarts) enrollment with a new secret. An enrolled user proves
    /// the current factor with `current` (its step is spent); the old secret stays in
    /// force until the new one is confirmed.
    StartTotp {
        secret: String,
        current: Option<CodeSteps>,
    },
    /// Confirms enrollment with the step of the first valid code (it cannot log in).
    FinishTotp {
        step: u64,
    },
    /// Records an accepted login code: the oldest matching step newer than the last one.
    UseTotp(CodeSteps),
    /// Replaces the stored TOTP secrets (`read`) with the same secrets sealed anew
    /// (`sealed`), after an encryption key rotation.
    ResealTotp {
        read: StoredSecrets,
        sealed: StoredSecrets,
    },
    ResetMfa,
    Delete,
}

/// The body every user event carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserEventBody {
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_step: Option<u64>,
    /// The TOTP secrets sealed anew (a `totp_resealed` event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_resealed: Option<StoredSecrets>,
    /// SHA-256 of an activation link's token and its expiry (never in `changes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_expires_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserEvent {
    pub kind: UserEventKind,
    pub body: UserEventBody,
}

/// Directory Insights event types of users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEventKind {
    Create,
    Update,
    Delete,
    PasswordChange,
    PasswordExpired,
    Activated,
    Suspended,
    Unsuspended,
    Lockout,
    Unlocked,
    TotpStart,
    TotpFinish,
    TotpDelete,
    TotpUsed,
    TotpResealed,
}

const KINDS: &[(UserEventKind, &str)] = &[
    (UserEventKind::Create, "user_create"),
    (UserEventKind::Update, "user_update"),
    (UserEventKind::Delete, "user_delete"),
    (UserEventKind::PasswordChange, "user_password_change"),
    (UserEventKind::PasswordExpired, "user_password_expired"),
    (UserEventKind::Activated, "user_activated"),
    (UserEventKind::Suspended, "user_suspended"),
    (UserEventKind::Unsuspended, "user_unsuspended"),
    (UserEventKind::Lockout, "user_lockout"),
    (UserEventKind::Unlocked, "user_unlocked"),
    (UserEventKind::TotpStart, "totp_start_enrollment"),
    (UserEventKind::TotpFinish, "totp_finish_enrollment"),
    (UserEventKind::TotpDelete, "totp_delete_enrollment"),
    (UserEventKind::TotpUsed, "totp_step_used"),
    (UserEventKind::TotpResealed, "totp_resealed"),
];

/// Every event type of the user aggregate.
pub fn event_types() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|(_, t)| *t)
}

impl EventCodec for UserEvent {
    fn event_type(&self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self.kind)
            .map(|(_, t)| *t)
            .expect("every kind is named")
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn encode(&self) -> Value {
        serde_json::to_value(&self.body).expect("user events serialize")
    }

    fn decode(event_type: &str, version: u32, payload: Value) -> Result<Self, DecodeError> {
        let kind = KINDS
            .iter()
            .find(|(_, t)| *t == event_type)
            .map(|(k, _)| *k)
            .ok_or_else(|| DecodeError::new(event_type, version, "not a user event"))?;
        let payload = upcast(event_type, version, payload, 1)?;
        Ok(UserEvent {
            kind,
            body: from_payload(event_type, version, payload)?,
        })
    }
}

fn event(kind: UserEventKind, changes: Vec<Change>) -> UserEvent {
    UserEvent {
        kind,
        body: UserEventBody {
            changes,
            ..Default::default()
        },
    }
}

fn state_value(s: UserState) -> Value {
    serde_json::to_value(s).expect("state")
}

fn status_value(s: PasswordStatus) -> Value {
    serde_json::to_value(s).expect("status")
}

/// Checks the fields of a profile (complete on create, partial on update).
pub fn check_profile(profile: &Map<String, Value>, creating: bool) -> Result<(), DomainError> {
    let mut v = Violations::default();
    for (key, value) in profile {
        let k = key.as_str();
        if TEXT_FIELDS.contains(&k) {
            match value {
                Value::String(s) if s.chars().count() > 256 => {
                    v.add(k, "is at most 256 characters")
                }
                Value::String(_) => {}
                Value::Null if k != "username" && k != "email" => {}
                _ => v.add(k, "must be a string"),
            }
        } else if FLAG_FIELDS.contains(&k) {
            if !value.is_boolean() {
                v.add(k, "must be true or false");
            }
        } else if NUMBER_FIELDS.contains(&k) {
            if !value
                .as_u64()
                .is_some_and(|n| (1..=4_294_967_294).contains(&n))
            {
                v.add(k, "must be a whole number from 1 to 4294967294");
            }
        } else if LIST_FIELDS.contains(&k) {
            check_list(&mut v, k, value);
        } else if CONTACT_FIELDS.contains(&k) {
            check_contacts(&mut v, k, value);
        } else if k == "tags" {
            let ok = value.as_array().is_some_and(|tags| {
                tags.len() <= 100
                    && tags
                        .iter()
                        .all(|t| t.as_str().is_some_and(|t| t.chars().count() <= 256))
            });
            if !ok && !value.is_null() {
                v.add(k, "must be a list of at most 100 names");
            }
        } else if k == "public_key" {
            match value {
                Value::String(s) if s.len() > PUBLIC_KEY_MAX => {
                    v.add(k, format!("is at most {PUBLIC_KEY_MAX} bytes"))
                }
                Value::String(_) | Value::Null => {}
                _ => v.add(k, "must be a string"),
            }
        } else if k == "recoveryEmail" {
            match value.get("address") {
                _ if value.is_null() => {}
                Some(Value::String(a)) if is_plausible_email(a) => {}
                Some(Value::Null) | None if value.is_object() => {}
                _ => v.add(k, "must be {address, verified} with a valid address"),
            }
        } else {
            v.add(k, "is not a user field");
        }
    }
    let username = profile.get("username").and_then(Value::as_str);
    match username {
        Some(u) if !is_username(u) => v.add(
            "username",
            "must be 1-64 characters: letters, digits, '.', '_', '-' (starting with a letter or digit)",
        ),
        None if creating => v.add("username", "is required"),
        _ => {}
    }
    match profile.get("email").and_then(Value::as_str) {
        Some(e) if !is_plausible_email(e) => v.add("email", "is not a valid address"),
        None if creating => v.add("email", "is required"),
        _ => {}
    }
    v.into_result()
}

fn check_list(v: &mut Violations, field: &str, value: &Value) {
    let Some(items) = value.as_array() else {
        v.add(field, "must be a list");
        return;
    };
    let mut names = std::collections::HashSet::new();
    for item in items {
        let name = item.get("name").and_then(Value::as_str);
        match name {
            Some(n) if !n.is_empty() && n.len() <= 128 => {
                if !names.insert(n.to_string()) {
                    v.add(field, format!("the name {n:?} appears twice"));
                }
            }
            _ => v.add(field, "every item needs a name (1-128 characters)"),
        }
        let inner = if field == "ssh_keys" {
            "public_key"
        } else {
            "value"
        };
        if item.get(inner).is_none_or(Value::is_null) {
            v.add(field, format!("every item needs a {inner}"));
        }
    }
}

fn check_contacts(v: &mut Violations, field: &str, value: &Value) {
    let Some(items) = value.as_array() else {
        v.add(field, "must be a list");
        return;
    };
    if items.len() > CONTACTS_MAX {
        v.add(field, format!("at most {CONTACTS_MAX} entries"));
    }
    for item in items {
        let Some(o) = item.as_object() else {
            v.add(field, "every entry is an object");
            return;
        };
        for (key, value) in o {
            match value {
                Value::String(s) if s.chars().count() > 1024 => {
                    v.add(field, format!("{key}: at most 1024 characters"))
                }
                Value::String(_) | Value::Null | Value::Bool(_) => {}
                _ => v.add(field, format!("{key}: must be text")),
            }
        }
    }
}

/// Usernames double as LDAP `uid` and Unix login names.
pub fn is_username(u: &str) -> bool {
    let mut chars = u.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && u.len() <= 64
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Aggregate for User {
    const KIND: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;

    fn decide(
        &self,
        command: &UserCommand,
        ctx: &DecideContext,
    ) -> Result<Vec<UserEvent>, DomainError> {
        use UserCommand::*;
        if let Create { .. } = command {
            if self.exists {
                return Err(DomainError::AlreadyExists { kind: "user" });
            }
        } else if !self.exists || self.deleted {
            return Err(DomainError::NotFound { kind: "user" });
        }
        let now = ctx
            .now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut changes = Vec::new();
        let one = |kind, changes| Ok(vec![event(kind, changes)]);
        match command {
            Create {
                profile,
                password_hash,
                state,
            } => {
                check_profile(profile, true)?;
                for (k, value) in profile {
                    diff(&mut changes, k, Value::Null, value.clone());
                }
                let state = if password_hash.is_some() {
                    *state
                } else {
                    UserState::Staged
                };
                changes.push(Change::new("state", Value::Null, state_value(state)));
                let status = if password_hash.is_some() {
                    PasswordStatus::Active
                } else {
                    PasswordStatus::Pending
                };
                changes.push(Change::new(
                    "password_status",
                    Value::Null,
                    status_value(status),
                ));
                if password_hash.is_some() {
                    changes.push(Change::new("password_date", Value::Null, now));
                }
                Ok(vec![UserEvent {
                    kind: UserEventKind::Create,
                    body: UserEventBody {
                        changes,
                        password_hash: password_hash.clone(),
                        ..Default::default()
                    },
                }])
            }
            Update { profile } => {
                check_profile(profile, false)?;
                for (k, to) in profile {
                    let from = self.profile.get(k).cloned().unwrap_or(Value::Null);
                    diff(&mut changes, k, from, to.clone());
                }
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                one(UserEventKind::Update, changes)
            }
            Rehash { hash, from, to } => Ok(vec![UserEvent {
                kind: UserEventKind::Update,
                body: UserEventBody {
                    changes: vec![Change::new(
                        "password_hash_params",
                        from.clone(),
                        to.clone(),
                    )],
                    password_hash: Some(hash.clone()),
                    ..Default::default()
                },
            }]),
            SetPassword {
                hash,
                activate,
                link_token_hash,
            } => {
                if let Some(given) = link_token_hash {
                    let expired = self
                        .activation_expires_at
                        .as_deref()
                        .and_then(|e| {
                            OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                                .ok()
                        })
                        .is_none_or(|e| ctx.now >= e);
                    if expired || self.activation_token_hash.as_deref() != Some(given.as_str()) {
                        return Err(DomainError::invalid(
                            "token",
                            "the link is invalid, used or expired",
                        ));
                    }
                }
                diff(
                    &mut changes,
                    "password_status",
                    status_value(self.password_status),
                    status_value(PasswordStatus::Active),
                );
                changes.push(Change::new(
                    "password_date",
                    self.password_date
                        .clone()
                        .map(Value::String)
                        .unwrap_or(Value::Null),
                    now,
                ));
                if *activate && self.state == UserState::Staged {
                    changes.push(Change::new(
                        "state",
                        state_value(self.state),
                        state_value(UserState::Activated),
                    ));
                }
                Ok(vec![UserEvent {
                    kind: UserEventKind::PasswordChange,
                    body: UserEventBody {
                        changes,
                        password_hash: Some(hash.clone()),
                        ..Default::default()
                    },
                }])
            }
            IssueActivation {
                token_hash,
                expires_at,
            } => {
                if self.state != UserState::Staged || self.password_hash.is_some() {
                    return Err(DomainError::state(
                        "state",
                        "only a staged user without a password gets an activation link",
                    ));
                }
                Ok(vec![UserEvent {
                    kind: UserEventKind::Update,
                    body: UserEventBody {
                        changes: vec![Change::new(
                            "activation_link_expires",
                            self.activation_expires_at
                                .clone()
                                .map(Value::String)
                                .unwrap_or(Value::Null),
                            expires_at.clone(),
                        )],
                        activation_token_hash: Some(token_hash.clone()),
                        activation_expires_at: Some(expires_at.clone()),
                        ..Default::default()
                    },
                }])
            }
            Activate => {
                if self.state != UserState::Staged {
                    return Ok(vec![]);
                }
                if self.password_hash.is_none() {
                    return Err(DomainError::state(
                        "password",
                        "a staged user needs a password before activation",
                    ));
                }
                one(
                    UserEventKind::Activated,
                    vec![Change::new(
                        "state",
                        state_value(self.state),
                        state_value(UserState::Activated),
                    )],
                )
            }
            Suspend => {
                if self.state == UserState::Suspended {
                    return Ok(vec![]);
                }
                one(
                    UserEventKind::Suspended,
                    vec![Change::new(
                        "state",
                        state_value(self.state),
                        state_value(UserState::Suspended),
                    )],
                )
            }
            Unsuspend => {
                if self.state != UserState::Suspended {
                    return Ok(vec![]);
                }
                let to = if self.password_hash.is_some() {
                    UserState::Activated
                } else {
                    UserState::Staged
                };
                one(
                    UserEventKind::Unsuspended,
                    vec![Change::new(
                        "state",
                        state_value(self.state),
                        state_value(to),
                    )],
                )
            }
            Lock => {
                if self.account_locked {
                    return Ok(vec![]);
                }
                one(
                    UserEventKind::Lockout,
                    vec![
                        Change::new("account_locked", false, true),
                        Change::new("account_locked_date", Value::Null, now),
                    ],
                )
            }
            Unlock => {
                if !self.account_locked {
                    return Ok(vec![]);
                }
                one(
                    UserEventKind::Unlocked,
                    vec![Change::new("account_locked", true, false)],
                )
            }
            ExpirePassword => {
                if self.password_status != PasswordStatus::Active {
                    return Ok(vec![]);
                }
                one(
                    UserEventKind::PasswordExpired,
                    vec![Change::new(
                        "password_status",
                        status_value(self.password_status),
                        status_value(PasswordStatus::Expired),
                    )],
                )
            }
            RequireMfa {
                required,
                enrollment_days,
            } => {
                if !(1..=365).contains(enrollment_days) {
                    return Err(DomainError::invalid(
                        "enrollmentDays",
                        "must be between 1 and 365",
                    ));
                }
                diff(
                    &mut changes,
                    "mfa.required",
                    Value::Bool(self.mfa_required),
                    Value::Bool(*required),
                );
                if *required && !self.totp.enrolled {
                    let deadline = (ctx.now + time::Duration::days(*enrollment_days as i64))
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    let from = self
                        .mfa_enrollment_deadline
                        .clone()
                        .map(Value::String)
                        .unwrap_or(Value::Null);
                    diff(
                        &mut changes,
                        "mfa.enrollment_deadline",
                        from,
                        Value::String(deadline),
                    );
                }
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                one(UserEventKind::Update, changes)
            }
            StartTotp { secret, current } => {
                let started = self.totp.start(current.as_ref())?;
                Ok(vec![UserEvent {
                    kind: UserEventKind::TotpStart,
                    body: UserEventBody {
                        changes: started.changes,
                        totp_secret: Some(secret.clone()),
                        totp_step: started.spent_step,
                        ..Default::default()
                    },
                }])
            }
            FinishTotp { step } => Ok(vec![UserEvent {
                kind: UserEventKind::TotpFinish,
                body: UserEventBody {
                    changes: self.totp.finish()?,
                    totp_step: Some(*step),
                    ..Default::default()
                },
            }]),
            UseTotp(code) => Ok(vec![UserEvent {
                kind: UserEventKind::TotpUsed,
                body: UserEventBody {
                    totp_step: Some(self.totp.accept(code)?),
                    ..Default::default()
                },
            }]),
            ResealTotp { read, sealed } => Ok(self
                .totp
                .reseal(read, sealed)?
                .map(|sealed| UserEvent {
                    kind: UserEventKind::TotpResealed,
                    body: UserEventBody {
                        totp_resealed: Some(sealed),
                        ..Default::default()
                    },
                })
                .into_iter()
                .collect()),
            ExcludeFromMfa {
                exclusion,
                days,
                until,
            } => {
                let until =
                    exclusion_until(*exclusion, *days, until.as_deref(), ctx.now)?.map(|u| {
                        u.format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()
                    });
                let opt_text =
                    |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
                diff(
                    &mut changes,
                    "mfa.exclusion",
                    Value::Bool(self.mfa_exclusion),
                    Value::Bool(*exclusion),
                );
                diff(
                    &mut changes,
                    "mfa.exclusionDays",
                    self.mfa_exclusion_days
                        .map(Value::from)
                        .unwrap_or(Value::Null),
                    days.filter(|_| *exclusion)
                        .map(Value::from)
                        .unwrap_or(Value::Null),
                );
                diff(
                    &mut changes,
                    "mfa.exclusionUntil",
                    opt_text(&self.mfa_exclusion_until),
                    opt_text(&until),
                );
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                one(UserEventKind::Update, changes)
            }
            ResetMfa => match self.totp.reset() {
                None => Ok(vec![]),
                Some(changes) => one(UserEventKind::TotpDelete, changes),
            },
            Delete => one(
                UserEventKind::Delete,
                vec![Change::new("deleted", false, true)],
            ),
        }
    }

    fn evolve(&mut self, e: &UserEvent) {
        match e.kind {
            UserEventKind::Create => self.exists = true,
            UserEventKind::Delete => self.deleted = true,
            UserEventKind::TotpFinish => self.mfa_enrollment_deadline = None,
            _ => {}
        }
        self.totp
            .apply_secrets(e.body.totp_secret.as_deref(), e.body.totp_step);
        if let Some(sealed) = &e.body.totp_resealed {
            self.totp.apply_resealed(sealed);
        }
        if e.body.activation_token_hash.is_some() {
            self.activation_token_hash = e.body.activation_token_hash.clone();
            self.activation_expires_at = e.body.activation_expires_at.clone();
        }
        if e.kind == UserEventKind::PasswordChange {
            // An activation link works once, and not after a password is set otherwise.
            self.activation_token_hash = None;
            self.activation_expires_at = None;
        }
        if let Some(hash) = &e.body.password_hash {
            if let Some(old) = self.password_hash.replace(hash.clone()) {
                self.password_history.insert(0, old);
                self.password_history.truncate(24);
            }
        }
        for change in &e.body.changes {
            self.apply_change(change);
        }
    }
}

impl User {
    /// Applies one change (shared with the read models).
    pub fn apply_change(&mut self, c: &Change) {
        let text = c.to.as_str().map(str::to_string);
        match c.field.as_str() {
            "state" => self.state = serde_json::from_value(c.to.clone()).unwrap_or_default(),
            "password_status" => {
                self.password_status = serde_json::from_value(c.to.clone()).unwrap_or_default()
            }
            "password_date" => self.password_date = text,
            "account_locked" => {
                self.account_locked = c.to.as_bool().unwrap_or(false);
                if !self.account_locked {
                    self.account_locked_date = None;
                }
            }
            "account_locked_date" => self.account_locked_date = text,
            "password_hash_params" | "activation_link_expires" => {}
            "deleted" => {}
            "totp_status" => self.totp.apply_status(&c.to),
            "mfa.required" => self.mfa_required = c.to.as_bool().unwrap_or(false),
            "mfa.enrollment_deadline" => self.mfa_enrollment_deadline = text,
            "mfa.exclusion" => self.mfa_exclusion = c.to.as_bool().unwrap_or(false),
            "mfa.exclusionDays" => {
                self.mfa_exclusion_days = c.to.as_u64().and_then(|d| u32::try_from(d).ok())
            }
            "mfa.exclusionUntil" => self.mfa_exclusion_until = text,
            field => {
                if c.to.is_null() {
                    self.profile.remove(field);
                } else {
                    self.profile.insert(field.to_string(), c.to.clone());
                }
            }
        }
    }

    /// An MFA exclusion holds now: no code is asked for.
    pub fn mfa_excluded(&self, now: OffsetDateTime) -> bool {
        self.mfa_exclusion
            && self
                .mfa_exclusion_until
                .as_deref()
                .and_then(parse_date_time)
                .is_none_or(|until| now < until)
    }

    /// The enrollment period ended without enrollment: the user portal is closed
    /// (unless an exclusion holds).
    pub fn mfa_enrollment_expired(&self, now: OffsetDateTime) -> bool {
        !self.mfa_excluded(now)
            && self.mfa_required
            && !self.totp.enrolled
            && self
                .mfa_enrollment_deadline
                .as_deref()
                .and_then(|d| {
                    OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).ok()
                })
                .is_some_and(|d| now >= d)
    }
}

/// When an MFA exclusion ends (None: no end, or no exclusion): `until` if given (in
/// the future), else `days` from `now`.
pub fn exclusion_until(
    exclusion: bool,
    days: Option<u32>,
    until: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, DomainError> {
    if days.is_some_and(|d| !(1..=365).contains(&d)) {
        return Err(DomainError::invalid(
            "mfa.exclusionDays",
            "must be between 1 and 365",
        ));
    }
    match (exclusion, until, days) {
        (false, _, _) => Ok(None),
        (true, Some(u), _) => {
            let at = parse_date_time(u).ok_or_else(|| {
                DomainError::invalid("mfa.exclusionUntil", "a date and time (RFC 3339) or a date")
            })?;
            if at <= now {
                return Err(DomainError::invalid(
                    "mfa.exclusionUntil",
                    "must be in the future",
                ));
            }
            Ok(Some(at))
        }
        (true, None, Some(d)) => Ok(Some(now + time::Duration::days(d as i64))),
        (true, None, None) => Ok(None),
    }
}

/// RFC 3339, or a bare date (`2026-12-31`, midnight UTC), as clients send dates.
fn parse_date_time(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        time::Date::parse(
            s,
            &time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()
        .map(|d| d.midnight().assume_utc())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> DecideContext {
        DecideContext {
            now: time::macros::datetime!(2026-11-28 12:00 UTC),
        }
    }

    fn profile(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn run(user: &mut User, cmd: UserCommand) -> Result<Vec<UserEvent>, DomainError> {
        let events = user.decide(&cmd, &ctx())?;
        for e in &events {
            user.evolve(e);
        }
        Ok(events)
    }

    fn alice() -> User {
        let mut u = User::default();
        run(
            &mut u,
            UserCommand::Create {
                profile: profile(json!({"username": "alice", "email": "alice@acme.test", "firstname": "Alice", "unix_uid": 5001, "unix_guid": 5001})),
                password_hash: None,
                state: UserState::Activated,
            },
        )
        .unwrap();
        u
    }

    #[test]
    fn a_user_without_a_password_is_staged_and_pending() {
        let u = alice();
        assert_eq!(u.state, UserState::Staged);
        assert_eq!(u.password_status, PasswordStatus::Pending);
        assert_eq!(u.username(), "alice");
        assert_eq!(u.unix_uid(), Some(5001));
    }

    #[test]
    fn setting_a_password_through_activation_activates() {
        let mut u = alice();
        let e = run(
            &mut u,
            UserCommand::SetPassword {
                hash: "h1".into(),
                activate: true,
                link_token_hash: None,
            },
        )
        .unwrap();
        assert_eq!(e[0].event_type(), "user_password_change");
        assert!(
            !e[0].body.changes.iter().any(|c| c.to == json!("h1")),
            "no hash in changes"
        );
        assert_eq!(u.state, UserState::Activated);
        assert_eq!(u.password_status, PasswordStatus::Active);
        run(
            &mut u,
            UserCommand::SetPassword {
                hash: "h2".into(),
                activate: false,
                link_token_hash: None,
            },
        )
        .unwrap();
        assert_eq!(u.password_history, ["h1"]);
    }

    #[test]
    fn an_activation_link_works_once_and_expires() {
        let mut u = alice();
        let expires = (ctx().now + time::Duration::hours(72))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let issue = |token: &str| UserCommand::IssueActivation {
            token_hash: token.into(),
            expires_at: expires.clone(),
        };
        let e = run(&mut u, issue("t1")).unwrap();
        assert!(
            !e[0].body.changes.iter().any(|c| c.to == json!("t1")),
            "the token hash is not a change"
        );
        run(&mut u, issue("t2")).unwrap();
        let with = |token: &str| UserCommand::SetPassword {
            hash: "h".into(),
            activate: true,
            link_token_hash: Some(token.into()),
        };
        let err = u.decide(&with("t1"), &ctx()).unwrap_err();
        assert_eq!(err.field(), Some("token"), "a replaced link is dead");
        let late = DecideContext {
            now: ctx().now + time::Duration::hours(73),
        };
        assert_eq!(
            u.decide(&with("t2"), &late).unwrap_err().field(),
            Some("token"),
            "expired"
        );
        run(&mut u, with("t2")).unwrap();
        assert_eq!(u.state, UserState::Activated);
        assert_eq!(
            run(&mut u, with("t2")).unwrap_err().field(),
            Some("token"),
            "used"
        );
        assert_eq!(
            run(&mut u, issue("t3")).unwrap_err().code(),
            "invalid_state",
            "active users get no link"
        );
    }

    #[test]
    fn lifecycle_events_have_their_insights_types() {
        let mut u = alice();
        run(
            &mut u,
            UserCommand::SetPassword {
                hash: "h".into(),
                activate: true,
                link_token_hash: None,
            },
        )
        .unwrap();
        let types: Vec<&str> = [
            UserCommand::Suspend,
            UserCommand::Unsuspend,
            UserCommand::Lock,
            UserCommand::Unlock,
            UserCommand::ExpirePassword,
            UserCommand::Delete,
        ]
        .into_iter()
        .map(|c| run(&mut u, c).unwrap()[0].event_type())
        .collect();
        assert_eq!(
            types,
            [
                "user_suspended",
                "user_unsuspended",
                "user_lockout",
                "user_unlocked",
                "user_password_expired",
                "user_delete"
            ]
        );
        assert!(u.deleted);
        assert_eq!(
            run(&mut u, UserCommand::Lock).unwrap_err().code(),
            "not_found"
        );
    }

    #[test]
    fn profile_errors_name_every_field() {
        let err = User::default()
            .decide(
                &UserCommand::Create {
                    profile: profile(
                        json!({"username": "-bad", "email": "nope", "sudo": "yes", "colour": 1}),
                    ),
                    password_hash: None,
                    state: UserState::Staged,
                },
                &ctx(),
            )
            .unwrap_err();
        let DomainError::Invalid(list) = err else {
            panic!()
        };
        let mut fields: Vec<&str> = list.iter().map(|e| e.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["colour", "email", "sudo", "username"]);
    }

    #[test]
    fn mfa_enrollment_period_expires_without_enrollment() {
        let mut u = alice();
        run(
            &mut u,
            UserCommand::RequireMfa {
                required: true,
                enrollment_days: 7,
            },
        )
        .unwrap();
        assert!(!u.mfa_enrollment_expired(ctx().now + time::Duration::days(6)));
        // An exclusion of 10 days keeps the portal open past the deadline, then ends.
        let mut excluded = u.clone();
        run(
            &mut excluded,
            UserCommand::ExcludeFromMfa {
                exclusion: true,
                days: Some(10),
                until: None,
            },
        )
        .unwrap();
        assert!(excluded.mfa_excluded(ctx().now + time::Duration::days(9)));
        assert!(!excluded.mfa_enrollment_expired(ctx().now + time::Duration::days(8)));
        assert!(excluded.mfa_enrollment_expired(ctx().now + time::Duration::days(10)));
        assert_eq!(excluded.mfa_exclusion_days, Some(10));
        let err = u
            .decide(
                &UserCommand::ExcludeFromMfa {
                    exclusion: true,
                    days: None,
                    until: Some("2020-01-01".into()),
                },
                &ctx(),
            )
            .unwrap_err();
        assert_eq!(err.field(), Some("mfa.exclusionUntil"));
        let mut lifted = excluded;
        run(
            &mut lifted,
            UserCommand::ExcludeFromMfa {
                exclusion: false,
                days: None,
                until: None,
            },
        )
        .unwrap();
        assert!(!lifted.mfa_excluded(ctx().now) && lifted.mfa_exclusion_until.is_none());
        assert!(u.mfa_enrollment_expired(ctx().now + time::Duration::days(7)));
        let start = |secret: &str, current| UserCommand::StartTotp {
            secret: secret.into(),
            current,
        };
        run(&mut u, start("S", None)).unwrap();
        run(&mut u, UserCommand::FinishTotp { step: 100 }).unwrap();
        assert!(u.totp.enrolled);
        // The confirming step cannot log in; a newer one can, once.
        let code = |secret: &str, steps: Vec<u64>| CodeSteps {
            secret: secret.into(),
            steps,
        };
        let used = |steps: Vec<u64>| UserCommand::UseTotp(code("S", steps));
        assert!(u.decide(&used(vec![100]), &ctx()).is_err());
        run(&mut u, used(vec![100, 101])).unwrap();
        assert_eq!(u.totp.last_step, 101);
        assert!(u.decide(&used(vec![101]), &ctx()).is_err());
        assert!(u
            .decide(&UserCommand::UseTotp(code("other", vec![102])), &ctx())
            .is_err());
        // Re-enrollment: not with the password alone, and the old secret stays in
        // force until the new one is confirmed.
        assert!(u.decide(&start("T", None), &ctx()).is_err());
        assert!(u
            .decide(&start("T", Some(code("S", vec![101]))), &ctx())
            .is_err());
        run(&mut u, start("T", Some(code("S", vec![102])))).unwrap();
        assert!(u.totp.enrolled);
        run(&mut u, used(vec![103])).unwrap();
        run(&mut u, UserCommand::FinishTotp { step: 104 }).unwrap();
        assert_eq!(u.totp.secret.as_deref(), Some("T"));
        assert!(!u.mfa_enrollment_expired(ctx().now + time::Duration::days(30)));
        assert!(u
            .decide(
                &UserCommand::RequireMfa {
                    required: true,
                    enrollment_days: 0
                },
                &ctx()
            )
            .is_err());
    }
}
