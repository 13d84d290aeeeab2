//! The user group aggregate: name, description, email, custom attributes, the Linux
//! group (name + GID), Samba, sudo, RADIUS reply attributes, static members and the
//! associations (graph edges) to LDAP servers, RADIUS servers, applications and
//! device groups. Group fields use the hosted product's v2 names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::aggregate::{from_payload, Aggregate, DecideContext, DecodeError, EventCodec};
use crate::change::{diff, Change};
use crate::error::{DomainError, Violations};
use crate::organization::is_plausible_email;
use crate::upcast::upcast;

/// Targets a user group may be associated with.
pub const ASSOCIATION_TYPES: &[&str] = &[
    "ldap_server",
    "radius_server",
    "application",
    "system_group",
    "system",
];

/// RADIUS attributes a group may send in Access-Accept (FreeRADIUS dictionary names),
/// optionally tagged `Name:1`…`Name:31`.
pub const RADIUS_REPLY_ATTRIBUTES: &[&str] = &[
    "Tunnel-Type",
    "Tunnel-Medium-Type",
    "Tunnel-Private-Group-Id",
    "Tunnel-Assignment-Id",
    "Filter-Id",
    "Class",
    "Reply-Message",
    "Session-Timeout",
    "Idle-Timeout",
    "Termination-Action",
    "Service-Type",
    "Framed-Protocol",
    "Framed-IP-Address",
    "Framed-IP-Netmask",
    "Framed-Pool",
    "Framed-Route",
    "Framed-MTU",
    "Acct-Interim-Interval",
    "Login-LAT-Group",
    "Cisco-AVPair",
    "Aruba-User-Role",
    "Fortinet-Group-Name",
    "Juniper-Local-User-Name",
    "Airespace-Interface-Name",
    "Mikrotik-Group",
    "Ruckus-User-Groups",
];

pub fn is_radius_attribute(name: &str) -> bool {
    let (base, tag) = match name.split_once(':') {
        Some((b, t)) => (b, Some(t)),
        None => (name, None),
    };
    RADIUS_REPLY_ATTRIBUTES.contains(&base)
        && tag.is_none_or(|t| t.parse::<u8>().is_ok_and(|n| (1..=31).contains(&n)))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserGroup {
    pub exists: bool,
    pub deleted: bool,
    /// `name`, `description`, `email`, `attributes` (as in the v2 API).
    pub fields: Map<String, Value>,
    pub members: std::collections::BTreeSet<String>,
    /// `type/id` → edge attributes.
    pub associations: BTreeMap<String, Value>,
}

impl UserGroup {
    pub fn name(&self) -> &str {
        self.fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The Linux group (name, GID), if set.
    pub fn posix(&self) -> Option<(String, u64)> {
        let p = self.fields.get("attributes")?.get("posixGroups")?.get(0)?;
        Some((p.get("name")?.as_str()?.to_string(), p.get("id")?.as_u64()?))
    }
}

#[derive(Debug, Clone)]
pub enum UserGroupCommand {
    Create {
        fields: Map<String, Value>,
    },
    Update {
        fields: Map<String, Value>,
    },
    Delete,
    /// `op` add/remove of a user (already checked to exist in the org).
    Member {
        op: String,
        user_id: String,
    },
    Associate {
        op: String,
        target_type: String,
        target_id: String,
        attributes: Value,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupEventBody {
    pub changes: Vec<Change>,
    /// For `association_change`: `{op, type, id, attributes}` of the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub association: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEventKind {
    Create,
    Update,
    Delete,
    AssociationChange,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserGroupEvent {
    pub kind: GroupEventKind,
    pub body: GroupEventBody,
}

const KINDS: &[(GroupEventKind, &str)] = &[
    (GroupEventKind::Create, "group_create"),
    (GroupEventKind::Update, "group_update"),
    (GroupEventKind::Delete, "group_delete"),
    (GroupEventKind::AssociationChange, "association_change"),
];

impl EventCodec for UserGroupEvent {
    fn event_type(&self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self.kind)
            .map(|(_, t)| *t)
            .expect("named")
    }
    fn schema_version(&self) -> u32 {
        1
    }
    fn encode(&self) -> Value {
        serde_json::to_value(&self.body).expect("group events serialize")
    }
    fn decode(event_type: &str, version: u32, payload: Value) -> Result<Self, DecodeError> {
        let kind = KINDS
            .iter()
            .find(|(_, t)| *t == event_type)
            .map(|(k, _)| *k)
            .ok_or_else(|| DecodeError::new(event_type, version, "not a user group event"))?;
        let payload = upcast(event_type, version, payload, 1)?;
        Ok(UserGroupEvent {
            kind,
            body: from_payload(event_type, version, payload)?,
        })
    }
}

/// Checks group fields (complete on create, partial on update).
pub fn check_fields(fields: &Map<String, Value>, creating: bool) -> Result<(), DomainError> {
    let mut v = Violations::default();
    for (k, value) in fields {
        match k.as_str() {
            "name" => match value.as_str() {
                Some(n)
                    if !n.trim().is_empty()
                        && n.chars().count() <= 128
                        && !n.chars().any(char::is_control) => {}
                _ => v.add(
                    "name",
                    "is 1-128 characters, not blank, without control characters",
                ),
            },
            "description" => {
                if !(value.is_null() || value.as_str().is_some_and(|d| d.chars().count() <= 1024)) {
                    v.add("description", "is at most 1024 characters");
                }
            }
            "email" => {
                if !(value.is_null() || value.as_str().is_some_and(is_plausible_email)) {
                    v.add("email", "is not a valid address");
                }
            }
            "attributes" => {
                check_attributes(&mut v, value, fields.get("name").and_then(Value::as_str))
            }
            other => v.add(other, "is not a user group field"),
        }
    }
    if creating && !fields.contains_key("name") {
        v.add("name", "is required");
    }
    v.into_result()
}

fn check_attributes(v: &mut Violations, attrs: &Value, group_name: Option<&str>) {
    let Some(attrs) = attrs.as_object() else {
        v.add("attributes", "must be an object");
        return;
    };
    for (k, value) in attrs {
        let field = format!("attributes.{k}");
        match k.as_str() {
            "sambaEnabled" => {
                if !value.is_boolean() {
                    v.add(&field, "must be true or false");
                }
            }
            "sudo" => {
                let ok = value.as_object().is_some_and(|s| {
                    s.iter().all(|(k, b)| {
                        matches!(k.as_str(), "enabled" | "withoutPassword") && b.is_boolean()
                    })
                });
                if !ok {
                    v.add(
                        &field,
                        "must be {\"enabled\": bool, \"withoutPassword\": bool}",
                    );
                }
            }
            "posixGroups" => match value.as_array().map(Vec::as_slice) {
                Some([]) => {}
                Some([p]) => {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                    let id = p.get("id").and_then(Value::as_u64);
                    let valid_name = !name.is_empty()
                        && name.len() <= 32
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                    if !valid_name {
                        v.add(&field, "the Linux group name is 1-32 characters: letters, digits, '_', '-', '.'");
                    } else if group_name == Some(name) {
                        v.add(
                            &field,
                            "the Linux group name must differ from the group name",
                        );
                    }
                    if !id.is_some_and(|g| (1..=4_294_967_294).contains(&g)) {
                        v.add(&field, "the GID is a whole number from 1 to 4294967294");
                    }
                }
                _ => v.add(&field, "holds at most one {\"name\", \"id\"}"),
            },
            "radius" => {
                let reply = value.get("reply").and_then(Value::as_array);
                match reply {
                    Some(items) => {
                        for item in items {
                            let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                            if !is_radius_attribute(name) {
                                v.add(
                                    &field,
                                    format!(
                                        "{name:?} is not a RADIUS reply attribute Castellan knows"
                                    ),
                                );
                            }
                            if !item
                                .get("value")
                                .is_some_and(|x| x.is_string() || x.is_number())
                            {
                                v.add(&field, format!("{name:?} needs a value"));
                            }
                        }
                    }
                    None => v.add(&field, "must be {\"reply\": [{\"name\", \"value\"}]}"),
                }
            }
            "custom" => {
                let ok = value.as_array().is_some_and(|items| {
                    let mut names = std::collections::HashSet::new();
                    items.iter().all(|i| {
                        i.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| names.insert(n.to_string()))
                    })
                });
                if !ok {
                    v.add(
                        &field,
                        "is a list of {\"name\", \"value\"} with distinct names",
                    );
                }
            }
            "ldapGroups" => {}
            _ => v.add(&field, "is not a user group attribute"),
        }
    }
}

fn event(
    kind: GroupEventKind,
    changes: Vec<Change>,
    association: Option<Value>,
) -> Vec<UserGroupEvent> {
    vec![UserGroupEvent {
        kind,
        body: GroupEventBody {
            changes,
            association,
        },
    }]
}

impl Aggregate for UserGroup {
    const KIND: &'static str = "user_group";
    type Command = UserGroupCommand;
    type Event = UserGroupEvent;

    fn decide(
        &self,
        command: &UserGroupCommand,
        _: &DecideContext,
    ) -> Result<Vec<UserGroupEvent>, DomainError> {
        use UserGroupCommand::*;
        if let Create { .. } = command {
            if self.exists {
                return Err(DomainError::AlreadyExists { kind: "user group" });
            }
        } else if !self.exists || self.deleted {
            return Err(DomainError::NotFound { kind: "user group" });
        }
        let mut changes = Vec::new();
        match command {
            Create { fields } => {
                check_fields(fields, true)?;
                for (k, v) in fields {
                    diff(&mut changes, k, Value::Null, v.clone());
                }
                Ok(event(GroupEventKind::Create, changes, None))
            }
            Update { fields } => {
                let mut merged = self.fields.clone();
                for (k, v) in fields {
                    merged.insert(k.clone(), v.clone());
                }
                check_fields(&merged, false)?;
                for (k, to) in fields {
                    diff(
                        &mut changes,
                        k,
                        self.fields.get(k).cloned().unwrap_or(Value::Null),
                        to.clone(),
                    );
                }
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                Ok(event(GroupEventKind::Update, changes, None))
            }
            Delete => Ok(event(
                GroupEventKind::Delete,
                vec![Change::new("deleted", false, true)],
                None,
            )),
            Member { op, user_id } => {
                let present = self.members.contains(user_id);
                match (op.as_str(), present) {
                    ("add", false) | ("remove", true) => {}
                    ("add", true) | ("remove", false) => return Ok(vec![]),
                    _ => return Err(DomainError::invalid("op", "must be add or remove")),
                }
                let to = if op == "add" {
                    Value::String(user_id.clone())
                } else {
                    Value::Null
                };
                let from = if op == "add" {
                    Value::Null
                } else {
                    Value::String(user_id.clone())
                };
                Ok(event(
                    GroupEventKind::AssociationChange,
                    vec![Change::new("members", from, to)],
                    Some(json!({"op": op, "type": "user", "id": user_id})),
                ))
            }
            Associate {
                op,
                target_type,
                target_id,
                attributes,
            } => {
                if !ASSOCIATION_TYPES.contains(&target_type.as_str()) {
                    return Err(DomainError::invalid(
                        "type",
                        format!("one of {}", ASSOCIATION_TYPES.join(", ")),
                    ));
                }
                let key = format!("{target_type}/{target_id}");
                let present = self.associations.get(&key);
                let to = match (op.as_str(), present) {
                    ("add", None) | ("update", Some(_)) => Some(attributes.clone()),
                    ("remove", Some(_)) => None,
                    ("add", Some(_)) | ("remove", None) => return Ok(vec![]),
                    ("update", None) => {
                        return Err(DomainError::NotFound {
                            kind: "association",
                        })
                    }
                    _ => return Err(DomainError::invalid("op", "must be add, remove or update")),
                };
                let from = present.cloned().unwrap_or(Value::Null);
                let to = to.unwrap_or(Value::Null);
                if op == "update" && from == to {
                    return Ok(vec![]);
                }
                Ok(event(
                    GroupEventKind::AssociationChange,
                    vec![Change::new(format!("associations.{key}"), from, to)],
                    Some(
                        json!({"op": op, "type": target_type, "id": target_id, "attributes": attributes}),
                    ),
                ))
            }
        }
    }

    fn evolve(&mut self, e: &UserGroupEvent) {
        match e.kind {
            GroupEventKind::Create => self.exists = true,
            GroupEventKind::Delete => self.deleted = true,
            _ => {}
        }
        for c in &e.body.changes {
            self.apply_change(c);
        }
    }
}

impl UserGroup {
    pub fn apply_change(&mut self, c: &Change) {
        match c.field.as_str() {
            "deleted" => {}
            "members" => match (&c.from, &c.to) {
                (_, Value::String(id)) => {
                    self.members.insert(id.clone());
                }
                (Value::String(id), Value::Null) => {
                    self.members.remove(id);
                }
                _ => {}
            },
            f => {
                if let Some(key) = f.strip_prefix("associations.") {
                    if c.to.is_null() {
                        self.associations.remove(key);
                    } else {
                        self.associations.insert(key.to_string(), c.to.clone());
                    }
                } else if c.to.is_null() {
                    self.fields.remove(f);
                } else {
                    self.fields.insert(f.to_string(), c.to.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DecideContext {
        DecideContext {
            now: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn run(g: &mut UserGroup, c: UserGroupCommand) -> Vec<UserGroupEvent> {
        let events = g.decide(&c, &ctx()).unwrap();
        for e in &events {
            g.evolve(e);
        }
        events
    }

    #[test]
    fn groups_validate_linux_group_radius_and_attributes() {
        let err = UserGroup::default()
            .decide(
                &UserGroupCommand::Create {
                    fields: fields(json!({"name": "eng", "attributes": {
                        "posixGroups": [{"name": "eng", "id": 0}],
                        "radius": {"reply": [{"name": "Tunnel-Typo", "value": "13"}, {"name": "Tunnel-Type:40", "value": "13"}]},
                        "sudo": {"enabled": "yes"},
                        "colour": 1
                    }})),
                },
                &ctx(),
            )
            .unwrap_err();
        let DomainError::Invalid(list) = err else {
            panic!()
        };
        let messages: Vec<String> = list
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        assert_eq!(messages.len(), 6, "{messages:#?}");
        assert!(is_radius_attribute("Tunnel-Private-Group-Id:1"));
        assert!(!is_radius_attribute("Tunnel-Private-Group-Id:0"));
    }

    #[test]
    fn members_and_associations_are_association_changes() {
        let mut g = UserGroup::default();
        run(
            &mut g,
            UserGroupCommand::Create {
                fields: fields(
                    json!({"name": "eng", "attributes": {"posixGroups": [{"name": "engineers", "id": 7000}]}}),
                ),
            },
        );
        assert_eq!(g.posix(), Some(("engineers".into(), 7000)));
        let e = run(
            &mut g,
            UserGroupCommand::Member {
                op: "add".into(),
                user_id: "u1".into(),
            },
        );
        assert_eq!(e[0].event_type(), "association_change");
        assert!(run(
            &mut g,
            UserGroupCommand::Member {
                op: "add".into(),
                user_id: "u1".into()
            }
        )
        .is_empty());
        assert!(g.members.contains("u1"));
        run(
            &mut g,
            UserGroupCommand::Associate {
                op: "add".into(),
                target_type: "radius_server".into(),
                target_id: "r1".into(),
                attributes: json!({}),
            },
        );
        assert!(g.associations.contains_key("radius_server/r1"));
        run(
            &mut g,
            UserGroupCommand::Associate {
                op: "remove".into(),
                target_type: "radius_server".into(),
                target_id: "r1".into(),
                attributes: json!({}),
            },
        );
        assert!(g.associations.is_empty());
        run(
            &mut g,
            UserGroupCommand::Member {
                op: "remove".into(),
                user_id: "u1".into(),
            },
        );
        assert!(g.members.is_empty());
        assert!(g
            .decide(
                &UserGroupCommand::Associate {
                    op: "add".into(),
                    target_type: "planet".into(),
                    target_id: "x".into(),
                    attributes: json!({})
                },
                &ctx()
            )
            .is_err());
    }
}

/// A user's custom attributes as every protocol sees them: the user's own
/// (`attributes`: `[{name, value}]`) override their groups' (`attributes.custom`);
/// between groups, the group whose name sorts first wins, so the answer never depends
/// on the order memberships were made. Each item says where it came from.
pub fn effective_attributes(user: &Value, groups: &[(String, String, Value)]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let named = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                Some((
                    i.get("name")?.as_str()?.to_string(),
                    i.get("value")?.clone(),
                ))
            })
            .collect::<Vec<_>>()
    };
    for (name, value) in named(user) {
        if seen.insert(name.clone()) {
            out.push(serde_json::json!({"name": name, "value": value, "source": {"type": "user"}}));
        }
    }
    let mut groups: Vec<&(String, String, Value)> = groups.iter().collect();
    groups.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    for (id, group_name, custom) in groups {
        for (name, value) in named(custom) {
            if seen.insert(name.clone()) {
                out.push(serde_json::json!({"name": name, "value": value,
                    "source": {"type": "user_group", "id": id, "name": group_name}}));
            }
        }
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

#[cfg(test)]
mod attribute_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_user_overrides_groups_and_the_first_group_by_name_wins() {
        let user = json!([{"name": "shell", "value": "zsh"}]);
        let groups = vec![
            (
                "g2".to_string(),
                "ops".to_string(),
                json!([{"name": "shell", "value": "sh"}, {"name": "team", "value": "ops"}]),
            ),
            (
                "g1".to_string(),
                "eng".to_string(),
                json!([{"name": "team", "value": "eng"}, {"name": "floor", "value": 3}]),
            ),
        ];
        let got = effective_attributes(&user, &groups);
        let pairs: Vec<(String, Value, String)> = got
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().into(),
                    a["value"].clone(),
                    a["source"]["type"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("floor".into(), json!(3), "user_group".into()),
                ("shell".into(), json!("zsh"), "user".into()),
                ("team".into(), json!("eng"), "user_group".into()),
            ]
        );
        assert_eq!(got[2]["source"]["name"], "eng");
    }
}
