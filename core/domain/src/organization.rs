//! The organization aggregate: name, contact, settings bag and logo.
//!
//! Every change is an `organization_create` or `organization_update` event whose
//! `changes` list is the single source of truth: `evolve` applies it field by field.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aggregate::{from_payload, Aggregate, DecideContext, DecodeError, EventCodec};
use crate::change::{diff, Change};
use crate::error::{DomainError, Violations};
use crate::logo::LogoInfo;
use crate::upcast::upcast;

pub const MAX_NAME_CHARS: usize = 100;
/// The settings bag is small configuration, not storage.
pub const MAX_SETTINGS_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Organization {
    /// True once `organization_create` happened (the id is the stream's).
    pub exists: bool,
    pub name: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub settings: Map<String, Value>,
    pub logo: Option<LogoInfo>,
}

#[derive(Debug, Clone)]
pub enum OrganizationCommand {
    Create {
        name: String,
        contact_name: Option<String>,
        contact_email: Option<String>,
    },
    /// Fields left `None` are unchanged. `settings` is a merge patch: a `null`
    /// value removes the key.
    Update {
        name: Option<String>,
        contact_name: Option<String>,
        contact_email: Option<String>,
        settings: Option<Map<String, Value>>,
    },
    SetLogo(LogoInfo),
    RemoveLogo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganizationCreated {
    pub name: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    #[serde(default)]
    pub settings: Map<String, Value>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganizationUpdated {
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrganizationEvent {
    Created(OrganizationCreated),
    Updated(OrganizationUpdated),
}

const CREATE: &str = "organization_create";
const UPDATE: &str = "organization_update";
const CREATE_VERSION: u32 = 2;
const UPDATE_VERSION: u32 = 2;

impl EventCodec for OrganizationEvent {
    fn event_type(&self) -> &'static str {
        match self {
            OrganizationEvent::Created(_) => CREATE,
            OrganizationEvent::Updated(_) => UPDATE,
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            OrganizationEvent::Created(_) => CREATE_VERSION,
            OrganizationEvent::Updated(_) => UPDATE_VERSION,
        }
    }

    fn encode(&self) -> Value {
        match self {
            OrganizationEvent::Created(e) => serde_json::to_value(e),
            OrganizationEvent::Updated(e) => serde_json::to_value(e),
        }
        .expect("organization events serialize")
    }

    fn decode(event_type: &str, version: u32, payload: Value) -> Result<Self, DecodeError> {
        match event_type {
            CREATE => {
                let payload = upcast(event_type, version, payload, CREATE_VERSION)?;
                Ok(OrganizationEvent::Created(from_payload(
                    event_type, version, payload,
                )?))
            }
            UPDATE => {
                let payload = upcast(event_type, version, payload, UPDATE_VERSION)?;
                Ok(OrganizationEvent::Updated(from_payload(
                    event_type, version, payload,
                )?))
            }
            other => Err(DecodeError::new(
                other,
                version,
                "not an organization event",
            )),
        }
    }
}

/// A syntactic check: one `@`, a dot in the domain, no spaces, at most 254 characters.
pub fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = (2..=9).contains(&labels.len())
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    email.len() <= 254 && local_ok && domain_ok
}

fn check_name(v: &mut Violations, name: &str) {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        v.add("name", "the organization name is required");
    } else if trimmed.chars().count() > MAX_NAME_CHARS {
        v.add("name", "the organization name is at most 100 characters");
    }
}

fn check_contact(v: &mut Violations, name: Option<&str>, email: Option<&str>) {
    if let Some(name) = name {
        if name.chars().count() > MAX_NAME_CHARS {
            v.add("contact_name", "the contact name is at most 100 characters");
        }
    }
    if let Some(email) = email {
        if !email.is_empty() && !is_plausible_email(email) {
            v.add("contact_email", "the contact email is not a valid address");
        }
    }
}

fn opt(value: &Option<String>) -> Value {
    value.clone().map(Value::String).unwrap_or(Value::Null)
}

/// Empty strings clear optional fields.
fn normalize(value: &Option<String>) -> Option<Option<String>> {
    value.as_ref().map(|s| {
        let t = s.trim();
        (!t.is_empty()).then(|| t.to_string())
    })
}

impl Aggregate for Organization {
    const KIND: &'static str = "organization";
    type Command = OrganizationCommand;
    type Event = OrganizationEvent;

    fn decide(
        &self,
        command: &OrganizationCommand,
        _ctx: &DecideContext,
    ) -> Result<Vec<OrganizationEvent>, DomainError> {
        use OrganizationCommand::*;
        match command {
            Create {
                name,
                contact_name,
                contact_email,
            } => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: "organization",
                    });
                }
                let mut v = Violations::default();
                check_name(&mut v, name);
                check_contact(&mut v, contact_name.as_deref(), contact_email.as_deref());
                v.into_result()?;
                let name = name.trim().to_string();
                let contact_name = normalize(contact_name).flatten();
                let contact_email = normalize(contact_email).flatten().map(|e| e.to_lowercase());
                let mut changes = vec![Change::new("name", Value::Null, name.clone())];
                diff(
                    &mut changes,
                    "contact_name",
                    Value::Null,
                    opt(&contact_name),
                );
                diff(
                    &mut changes,
                    "contact_email",
                    Value::Null,
                    opt(&contact_email),
                );
                Ok(vec![OrganizationEvent::Created(OrganizationCreated {
                    name,
                    contact_name,
                    contact_email,
                    settings: Map::new(),
                    changes,
                })])
            }
            Update {
                name,
                contact_name,
                contact_email,
                settings,
            } => {
                self.require_exists()?;
                let mut v = Violations::default();
                if let Some(name) = name {
                    check_name(&mut v, name);
                }
                check_contact(&mut v, contact_name.as_deref(), contact_email.as_deref());
                if let Some(patch) = settings {
                    check_settings(&mut v, &self.settings, patch);
                }
                v.into_result()?;
                let mut changes = Vec::new();
                if let Some(name) = name {
                    let to = Value::String(name.trim().to_string());
                    diff(&mut changes, "name", Value::String(self.name.clone()), to);
                }
                if let Some(to) = normalize(contact_name) {
                    diff(
                        &mut changes,
                        "contact_name",
                        opt(&self.contact_name),
                        opt(&to),
                    );
                }
                if let Some(to) = normalize(contact_email) {
                    let to = to.map(|e| e.to_lowercase());
                    diff(
                        &mut changes,
                        "contact_email",
                        opt(&self.contact_email),
                        opt(&to),
                    );
                }
                if let Some(patch) = settings {
                    for (key, to) in patch {
                        let from = self.settings.get(key).cloned().unwrap_or(Value::Null);
                        diff(&mut changes, &format!("settings.{key}"), from, to.clone());
                    }
                }
                Ok(self.update(changes))
            }
            SetLogo(logo) => {
                self.require_exists()?;
                let from = self.logo_value();
                let to = serde_json::to_value(logo).expect("logo serializes");
                let mut changes = Vec::new();
                diff(&mut changes, "logo", from, to);
                Ok(self.update(changes))
            }
            RemoveLogo => {
                self.require_exists()?;
                let mut changes = Vec::new();
                diff(&mut changes, "logo", self.logo_value(), Value::Null);
                Ok(self.update(changes))
            }
        }
    }

    fn evolve(&mut self, event: &OrganizationEvent) {
        match event {
            OrganizationEvent::Created(e) => {
                self.name = e.name.clone();
                self.contact_name = e.contact_name.clone();
                self.contact_email = e.contact_email.clone();
                self.settings = e.settings.clone();
                self.exists = true;
            }
            OrganizationEvent::Updated(e) => {
                for change in &e.changes {
                    self.apply_change(change);
                }
            }
        }
    }
}

impl Organization {
    /// The password policy in force (the defaults until an admin sets one).
    pub fn password_policy(&self) -> crate::password_policy::PasswordPolicy {
        self.settings
            .get("passwordPolicy")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default()
    }

    /// `settings.requireAdminMfa`: every admin must log in with TOTP (those not enrolled
    /// enroll at their next login before they can do anything else).
    pub fn requires_admin_mfa(&self) -> bool {
        self.settings
            .get("requireAdminMfa")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn require_exists(&self) -> Result<(), DomainError> {
        if !self.exists {
            return Err(DomainError::NotFound {
                kind: "organization",
            });
        }
        Ok(())
    }

    fn logo_value(&self) -> Value {
        self.logo
            .as_ref()
            .map(|l| serde_json::to_value(l).expect("logo serializes"))
            .unwrap_or(Value::Null)
    }

    /// No event for a command that changes nothing.
    fn update(&self, changes: Vec<Change>) -> Vec<OrganizationEvent> {
        if changes.is_empty() {
            Vec::new()
        } else {
            vec![OrganizationEvent::Updated(OrganizationUpdated { changes })]
        }
    }

    /// Applies one change of an `organization_update` (shared with the read models).
    pub fn apply_change(&mut self, change: &Change) {
        let text = change.to.as_str().map(str::to_string);
        match change.field.as_str() {
            "name" => self.name = text.unwrap_or_default(),
            "contact_name" => self.contact_name = text,
            "contact_email" => self.contact_email = text,
            "logo" => self.logo = serde_json::from_value(change.to.clone()).ok(),
            field => {
                if let Some(key) = field.strip_prefix("settings.") {
                    if change.to.is_null() {
                        self.settings.remove(key);
                    } else {
                        self.settings.insert(key.to_string(), change.to.clone());
                    }
                }
            }
        }
    }
}

fn check_settings(v: &mut Violations, current: &Map<String, Value>, patch: &Map<String, Value>) {
    let mut merged = current.clone();
    for (key, value) in patch {
        if !crate::envelope::is_token(key) {
            v.add(
                &format!("settings.{key}"),
                "a settings key is 1-64 ASCII letters, digits, '_' or '-'",
            );
        }
        if value.is_null() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    if let Some(policy) = patch.get("passwordPolicy").filter(|p| !p.is_null()) {
        match serde_json::from_value::<crate::password_policy::PasswordPolicy>(policy.clone()) {
            Err(e) => v.add("settings.passwordPolicy", e.to_string()),
            Ok(p) => {
                if let Err(DomainError::Invalid(list)) = p.validate() {
                    for e in list {
                        v.add(&format!("settings.{}", e.field), e.message);
                    }
                }
            }
        }
    }
    if patch
        .get("requireAdminMfa")
        .is_some_and(|b| !b.is_null() && !b.is_boolean())
    {
        v.add("settings.requireAdminMfa", "must be true or false");
    }
    let size = serde_json::to_vec(&merged).map(|b| b.len()).unwrap_or(0);
    if size > MAX_SETTINGS_BYTES {
        v.add("settings", "the settings are at most 64 KiB of JSON");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::OffsetDateTime;

    fn ctx() -> DecideContext {
        DecideContext {
            now: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn given(events: &[OrganizationEvent]) -> Organization {
        let mut org = Organization::default();
        for e in events {
            org.evolve(e);
        }
        org
    }

    fn created() -> OrganizationEvent {
        Organization::default()
            .decide(
                &OrganizationCommand::Create {
                    name: " Acme ".into(),
                    contact_name: Some("Ada".into()),
                    contact_email: Some("Ada@Acme.test".into()),
                },
                &ctx(),
            )
            .unwrap()
            .remove(0)
    }

    #[test]
    fn create_records_every_field_as_a_change() {
        let OrganizationEvent::Created(e) = created() else {
            panic!()
        };
        assert_eq!(e.name, "Acme");
        assert_eq!(e.contact_email.as_deref(), Some("ada@acme.test"));
        assert_eq!(
            e.changes,
            vec![
                Change::new("name", Value::Null, "Acme"),
                Change::new("contact_name", Value::Null, "Ada"),
                Change::new("contact_email", Value::Null, "ada@acme.test"),
            ]
        );
    }

    #[test]
    fn create_twice_is_refused() {
        let org = given(&[created()]);
        let err = org
            .decide(
                &OrganizationCommand::Create {
                    name: "Again".into(),
                    contact_name: None,
                    contact_email: None,
                },
                &ctx(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "already_exists");
    }

    #[test]
    fn invalid_fields_are_all_reported() {
        let err = Organization::default()
            .decide(
                &OrganizationCommand::Create {
                    name: "  ".into(),
                    contact_name: None,
                    contact_email: Some("not-an-email".into()),
                },
                &ctx(),
            )
            .unwrap_err();
        let DomainError::Invalid(list) = err else {
            panic!()
        };
        let fields: Vec<_> = list.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "contact_email"]);
    }

    #[test]
    fn update_lists_from_and_to_and_settings_patch_merges() {
        let org = given(&[created()]);
        let mut patch = Map::new();
        patch.insert("theme".into(), json!("dark"));
        let events = org
            .decide(
                &OrganizationCommand::Update {
                    name: Some("Acme Corp".into()),
                    contact_name: Some("Ada".into()),
                    contact_email: None,
                    settings: Some(patch),
                },
                &ctx(),
            )
            .unwrap();
        let OrganizationEvent::Updated(u) = &events[0] else {
            panic!()
        };
        assert_eq!(
            u.changes,
            vec![
                Change::new("name", "Acme", "Acme Corp"),
                Change::new("settings.theme", Value::Null, "dark"),
            ]
        );
        let org = given(&[created(), events[0].clone()]);
        assert_eq!(org.name, "Acme Corp");
        assert_eq!(org.settings["theme"], json!("dark"));

        let mut removal = Map::new();
        removal.insert("theme".into(), Value::Null);
        let events = org
            .decide(
                &OrganizationCommand::Update {
                    name: None,
                    contact_name: None,
                    contact_email: None,
                    settings: Some(removal),
                },
                &ctx(),
            )
            .unwrap();
        let mut org = org;
        org.evolve(&events[0]);
        assert!(org.settings.is_empty());
    }

    #[test]
    fn an_update_that_changes_nothing_emits_nothing() {
        let org = given(&[created()]);
        let events = org
            .decide(
                &OrganizationCommand::Update {
                    name: Some("Acme".into()),
                    contact_name: None,
                    contact_email: None,
                    settings: None,
                },
                &ctx(),
            )
            .unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn update_of_a_missing_organization_is_not_found() {
        let err = Organization::default()
            .decide(&OrganizationCommand::RemoveLogo, &ctx())
            .unwrap_err();
        assert_eq!(err.code(), "not_found");
    }

    #[test]
    fn events_round_trip_through_the_codec() {
        let e = created();
        let back =
            OrganizationEvent::decode(e.event_type(), e.schema_version(), e.encode()).unwrap();
        assert_eq!(back, e);
    }
}
