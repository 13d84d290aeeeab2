//! The administrator aggregate, in the slice the spine needs: an admin is created
//! with an email, a role and (optionally) a password hash, and holds at most one
//! API key, stored hashed; rotating it revokes the previous key.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{from_payload, Aggregate, DecideContext, DecodeError, EventCodec};
use crate::change::Change;
use crate::error::{DomainError, Violations};
use crate::organization::is_plausible_email;
use crate::upcast::upcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    AdministratorWithBilling,
    Administrator,
    Manager,
    HelpDesk,
    ReadOnly,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admin {
    pub exists: bool,
    pub deleted: bool,
    pub invite_token_hash: Option<String>,
    pub invite_expires_at: Option<String>,
    pub email: String,
    pub role: Option<AdminRole>,
    pub password_hash: Option<String>,
    pub api_key_id: Option<String>,
}

#[derive(Debug, Clone)]
pub enum AdminCommand {
    Create {
        email: String,
        role: AdminRole,
        password_hash: Option<String>,
        /// (token hash, expiry) of the invitation email's set-password link.
        invite: Option<(String, String)>,
    },
    /// Replaces the admin's API key; the old one stops working.
    RotateApiKey {
        key_id: String,
        key_hash: String,
    },
    SetPassword {
        hash: String,
        /// Through the invitation link: the hash of its token, checked here so that
        /// two concurrent uses of one link cannot both succeed.
        invite_token_hash: Option<String>,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminCreated {
    pub email: String,
    pub role: AdminRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// SHA-256 of the one-time set-password token of the invitation, and its expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_expires_at: Option<String>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyHash {
    pub key_id: String,
    /// SHA-256 of the key, hex. Keys are 40 random characters, so a fast hash is enough.
    pub key_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminUpdated {
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyHash>,
}

/// `admin_password_change` and `admin_delete` carry their changes (and the hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminChanged {
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AdminEvent {
    Created(AdminCreated),
    Updated(AdminUpdated),
    PasswordChanged(AdminChanged),
    Deleted(AdminChanged),
}

const CREATE: &str = "admin_create";
const UPDATE: &str = "admin_update";
const PASSWORD: &str = "admin_password_change";
const DELETE: &str = "admin_delete";

impl EventCodec for AdminEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AdminEvent::Created(_) => CREATE,
            AdminEvent::Updated(_) => UPDATE,
            AdminEvent::PasswordChanged(_) => PASSWORD,
            AdminEvent::Deleted(_) => DELETE,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn encode(&self) -> Value {
        match self {
            AdminEvent::Created(e) => serde_json::to_value(e),
            AdminEvent::Updated(e) => serde_json::to_value(e),
            AdminEvent::PasswordChanged(e) | AdminEvent::Deleted(e) => serde_json::to_value(e),
        }
        .expect("admin events serialize")
    }

    fn decode(event_type: &str, version: u32, payload: Value) -> Result<Self, DecodeError> {
        let payload = upcast(event_type, version, payload, 1)?;
        match event_type {
            CREATE => Ok(AdminEvent::Created(from_payload(
                event_type, version, payload,
            )?)),
            UPDATE => Ok(AdminEvent::Updated(from_payload(
                event_type, version, payload,
            )?)),
            PASSWORD => Ok(AdminEvent::PasswordChanged(from_payload(
                event_type, version, payload,
            )?)),
            DELETE => Ok(AdminEvent::Deleted(from_payload(
                event_type, version, payload,
            )?)),
            other => Err(DecodeError::new(other, version, "not an admin event")),
        }
    }
}

impl Aggregate for Admin {
    const KIND: &'static str = "admin";
    type Command = AdminCommand;
    type Event = AdminEvent;

    fn decide(
        &self,
        command: &AdminCommand,
        ctx: &DecideContext,
    ) -> Result<Vec<AdminEvent>, DomainError> {
        match command {
            AdminCommand::Create {
                email,
                role,
                password_hash,
                invite,
            } => {
                if self.exists {
                    return Err(DomainError::AlreadyExists { kind: "admin" });
                }
                let email = email.trim().to_lowercase();
                let mut v = Violations::default();
                if !is_plausible_email(&email) {
                    v.add("email", "the email is not a valid address");
                }
                v.into_result()?;
                let changes = vec![
                    Change::new("email", Value::Null, email.clone()),
                    Change::new(
                        "role",
                        Value::Null,
                        serde_json::to_value(role).expect("role"),
                    ),
                ];
                Ok(vec![AdminEvent::Created(AdminCreated {
                    email,
                    role: *role,
                    password_hash: password_hash.clone(),
                    invite_token_hash: invite.as_ref().map(|(h, _)| h.clone()),
                    invite_expires_at: invite.as_ref().map(|(_, e)| e.clone()),
                    changes,
                })])
            }
            AdminCommand::RotateApiKey { key_id, key_hash } => {
                if !self.exists {
                    return Err(DomainError::NotFound { kind: "admin" });
                }
                let from = self
                    .api_key_id
                    .clone()
                    .map(Value::String)
                    .unwrap_or(Value::Null);
                Ok(vec![AdminEvent::Updated(AdminUpdated {
                    changes: vec![Change::new("api_key", from, key_id.clone())],
                    api_key: Some(ApiKeyHash {
                        key_id: key_id.clone(),
                        key_hash: key_hash.clone(),
                    }),
                })])
            }
            AdminCommand::SetPassword {
                hash,
                invite_token_hash,
            } => {
                if !self.exists || self.deleted {
                    return Err(DomainError::NotFound { kind: "admin" });
                }
                if let Some(given) = invite_token_hash {
                    let expired = self
                        .invite_expires_at
                        .as_deref()
                        .and_then(|e| {
                            time::OffsetDateTime::parse(
                                e,
                                &time::format_description::well_known::Rfc3339,
                            )
                            .ok()
                        })
                        .is_none_or(|e| ctx.now >= e);
                    if expired || self.invite_token_hash.as_deref() != Some(given.as_str()) {
                        return Err(DomainError::invalid(
                            "token",
                            "the link is invalid, used or expired",
                        ));
                    }
                }
                Ok(vec![AdminEvent::PasswordChanged(AdminChanged {
                    changes: vec![Change::new("password", Value::Null, Value::Null)],
                    password_hash: Some(hash.clone()),
                })])
            }
            AdminCommand::Delete => {
                if !self.exists || self.deleted {
                    return Err(DomainError::NotFound { kind: "admin" });
                }
                Ok(vec![AdminEvent::Deleted(AdminChanged {
                    changes: vec![Change::new("deleted", false, true)],
                    password_hash: None,
                })])
            }
        }
    }

    fn evolve(&mut self, event: &AdminEvent) {
        match event {
            AdminEvent::Created(e) => {
                self.exists = true;
                self.email = e.email.clone();
                self.role = Some(e.role);
                self.password_hash = e.password_hash.clone();
                self.invite_token_hash = e.invite_token_hash.clone();
                self.invite_expires_at = e.invite_expires_at.clone();
            }
            AdminEvent::Updated(e) => {
                if let Some(key) = &e.api_key {
                    self.api_key_id = Some(key.key_id.clone());
                }
            }
            AdminEvent::PasswordChanged(e) => {
                self.password_hash = e.password_hash.clone();
                // The invitation link works once.
                self.invite_token_hash = None;
            }
            AdminEvent::Deleted(_) => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    #[test]
    fn rotating_a_key_records_the_old_and_new_key_ids() {
        let ctx = DecideContext {
            now: OffsetDateTime::UNIX_EPOCH,
        };
        let mut admin = Admin::default();
        for e in admin
            .decide(
                &AdminCommand::Create {
                    email: "Root@Example.com".into(),
                    role: AdminRole::AdministratorWithBilling,
                    password_hash: None,
                    invite: None,
                },
                &ctx,
            )
            .unwrap()
        {
            admin.evolve(&e);
        }
        assert_eq!(admin.email, "root@example.com");
        let rotate = |admin: &Admin, id: &str| {
            admin
                .decide(
                    &AdminCommand::RotateApiKey {
                        key_id: id.into(),
                        key_hash: "h".into(),
                    },
                    &ctx,
                )
                .unwrap()
        };
        let first = rotate(&admin, "k1");
        admin.evolve(&first[0]);
        let second = rotate(&admin, "k2");
        let AdminEvent::Updated(u) = &second[0] else {
            panic!()
        };
        assert_eq!(u.changes, vec![Change::new("api_key", "k1", "k2")]);
    }

    #[test]
    fn bad_email_is_refused() {
        let err = Admin::default()
            .decide(
                &AdminCommand::Create {
                    email: "nope".into(),
                    role: AdminRole::ReadOnly,
                    password_hash: None,
                    invite: None,
                },
                &DecideContext {
                    now: OffsetDateTime::UNIX_EPOCH,
                },
            )
            .unwrap_err();
        assert_eq!(err.field(), Some("email"));
    }
}
