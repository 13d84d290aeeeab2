//! User group commands: unique name (case-insensitive), unique GID and Linux group
//! name (case-sensitive), members that must be users of the org, associations.

use castellan_domain::envelope::{EventMeta, StreamId};
use castellan_domain::user::User;
use castellan_domain::user_group::{check_fields, UserGroup, UserGroupCommand};
use castellan_domain::{DomainError, ObjectId};
use serde_json::{Map, Value};

use crate::error::AppError;
use crate::execute::{execute, load, Executed};
use crate::ports::EventLog;
use crate::unique;

/// The unique keys a group's fields hold: (kind, value).
fn keys(fields: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let mut keys = Vec::new();
    if let Some(name) = fields.get("name").and_then(Value::as_str) {
        keys.push(("group_name", name.trim().to_string()));
    }
    let posix = fields
        .get("attributes")
        .and_then(|a| a.get("posixGroups"))
        .and_then(|p| p.get(0));
    if let Some(p) = posix {
        if let Some(gid) = p.get("id").and_then(Value::as_u64) {
            keys.push(("gid", gid.to_string()));
        }
        if let Some(name) = p.get("name").and_then(Value::as_str) {
            // Linux group names are case-sensitive: key on the exact bytes.
            keys.push(("linux_group", hex::encode(name)));
        }
    }
    keys
}

async fn claim_all(
    log: &dyn EventLog,
    org: ObjectId,
    owner: &str,
    meta: &EventMeta,
    wanted: &[(&'static str, String)],
) -> Result<(), AppError> {
    for (i, (kind, value)) in wanted.iter().enumerate() {
        if let Err(e) = unique::claim(log, org, kind, value, owner, meta).await {
            for (k, v) in &wanted[..i] {
                let _ = unique::release(log, org, k, v, owner, meta).await;
            }
            return Err(match e {
                AppError::Domain(DomainError::Taken { field, .. }) if field == "linux_group" => {
                    DomainError::Taken {
                        field: "attributes.posixGroups".into(),
                        value: "the Linux group name".into(),
                    }
                    .into()
                }
                other => other,
            });
        }
    }
    Ok(())
}

pub async fn create(
    log: &dyn EventLog,
    org: ObjectId,
    meta: EventMeta,
    mut fields: Map<String, Value>,
) -> Result<(ObjectId, Executed<UserGroup>), AppError> {
    if let Some(Value::String(n)) = fields.get_mut("name") {
        *n = n.trim().to_string();
    }
    check_fields(&fields, true)?;
    let id = ObjectId::generate(meta.occurred_at.unix_timestamp());
    let owner = id.to_string();
    let wanted = keys(&fields);
    claim_all(log, org, &owner, &meta, &wanted).await?;
    match execute::<UserGroup>(
        log,
        org,
        &owner,
        meta.clone(),
        UserGroupCommand::Create { fields },
    )
    .await
    {
        Ok(done) => Ok((id, done)),
        Err(e) => {
            for (k, v) in &wanted {
                let _ = unique::release(log, org, k, v, &owner, &meta).await;
            }
            Err(e)
        }
    }
}

pub async fn update(
    log: &dyn EventLog,
    org: ObjectId,
    id: ObjectId,
    meta: EventMeta,
    fields: Map<String, Value>,
) -> Result<Executed<UserGroup>, AppError> {
    let owner = id.to_string();
    let current = load::<UserGroup>(log, org, &StreamId::aggregate("user_group", id))
        .await?
        .state;
    if !current.exists || current.deleted {
        return Err(DomainError::NotFound { kind: "user group" }.into());
    }
    let mut merged = current.fields.clone();
    merged.extend(fields.clone());
    check_fields(&merged, false)?;
    let old = keys(&current.fields);
    let new = keys(&merged);
    let added: Vec<_> = new.iter().filter(|k| !old.contains(k)).cloned().collect();
    let dropped: Vec<_> = old.iter().filter(|k| !new.contains(k)).cloned().collect();
    claim_all(log, org, &owner, &meta, &added).await?;
    match execute::<UserGroup>(
        log,
        org,
        &owner,
        meta.clone(),
        UserGroupCommand::Update { fields },
    )
    .await
    {
        Ok(done) => {
            for (k, v) in &dropped {
                let _ = unique::release(log, org, k, v, &owner, &meta).await;
            }
            Ok(done)
        }
        Err(e) => {
            for (k, v) in &added {
                let _ = unique::release(log, org, k, v, &owner, &meta).await;
            }
            Err(e)
        }
    }
}

pub async fn delete(
    log: &dyn EventLog,
    org: ObjectId,
    id: ObjectId,
    meta: EventMeta,
) -> Result<Executed<UserGroup>, AppError> {
    let done = execute::<UserGroup>(
        log,
        org,
        &id.to_string(),
        meta.clone(),
        UserGroupCommand::Delete,
    )
    .await?;
    for (k, v) in keys(&done.state.fields) {
        unique::release(log, org, k, &v, &id.to_string(), &meta).await?;
    }
    Ok(done)
}

/// Adds or removes a member, which must be a user of the organization.
pub async fn member(
    log: &dyn EventLog,
    org: ObjectId,
    id: ObjectId,
    meta: EventMeta,
    op: &str,
    user: ObjectId,
) -> Result<Executed<UserGroup>, AppError> {
    if op == "add" {
        let u = load::<User>(log, org, &StreamId::aggregate("user", user))
            .await?
            .state;
        if !u.exists || u.deleted {
            return Err(DomainError::NotFound { kind: "user" }.into());
        }
    }
    execute::<UserGroup>(
        log,
        org,
        &id.to_string(),
        meta,
        UserGroupCommand::Member {
            op: op.to_string(),
            user_id: user.to_string(),
        },
    )
    .await
}

/// One edge of the graph: `{op, type, id, attributes}`.
pub struct Edge<'a> {
    pub op: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub attributes: Value,
}

pub async fn associate(
    log: &dyn EventLog,
    org: ObjectId,
    id: ObjectId,
    meta: EventMeta,
    edge: Edge<'_>,
) -> Result<Executed<UserGroup>, AppError> {
    execute::<UserGroup>(
        log,
        org,
        &id.to_string(),
        meta,
        UserGroupCommand::Associate {
            op: edge.op.to_string(),
            target_type: edge.target_type.to_string(),
            target_id: edge.target_id.to_string(),
            attributes: edge.attributes,
        },
    )
    .await
}
