//! The in-memory index of administrators, their API keys and their grants to other
//! organizations. Every API request is authenticated against it, without a database
//! round trip.

use std::collections::HashMap;
use std::sync::Arc;

use castellan_domain::admin::{AdminEvent, AdminRole, EVENT_TYPES};
use castellan_domain::aggregate::EventCodec;
use castellan_domain::envelope::{Envelope, StreamId};
use castellan_domain::ObjectId;

use crate::memory::{MemoryProjection, MemoryReduceFn};

#[derive(Debug, Clone, PartialEq)]
pub struct AdminPrincipal {
    pub admin_id: ObjectId,
    pub org_id: ObjectId,
    pub email: String,
    pub role: AdminRole,
}

#[derive(Debug, Clone, Default)]
pub struct AdminIndex {
    pub admins: HashMap<ObjectId, AdminPrincipal>,
    /// SHA-256 (hex) of an API key → its admin.
    pub by_key_hash: HashMap<String, ObjectId>,
    key_of: HashMap<ObjectId, String>,
    /// Admin → the other organizations they serve, with their role there.
    pub grants: HashMap<ObjectId, HashMap<ObjectId, AdminRole>>,
    /// Admin → how many times their sessions were ended (logout, password change,
    /// TOTP reset, lockout): a session issued at an older epoch no longer works.
    pub session_epochs: HashMap<ObjectId, u64>,
}

impl AdminIndex {
    /// The admin's role in `org`: their own role at home, the granted one elsewhere.
    pub fn role_in(&self, admin: &AdminPrincipal, org: ObjectId) -> Option<AdminRole> {
        if org == admin.org_id {
            return Some(admin.role);
        }
        self.grants.get(&admin.admin_id)?.get(&org).copied()
    }

    /// Every organization the admin serves, home first.
    pub fn organizations_of(&self, admin: &AdminPrincipal) -> Vec<ObjectId> {
        let mut orgs = vec![admin.org_id];
        if let Some(g) = self.grants.get(&admin.admin_id) {
            let mut others: Vec<ObjectId> = g.keys().copied().collect();
            others.sort();
            orgs.extend(others);
        }
        orgs
    }

    /// The admin's current session epoch.
    pub fn session_epoch(&self, admin: ObjectId) -> u64 {
        self.session_epochs.get(&admin).copied().unwrap_or(0)
    }

    pub fn by_api_key_hash(&self, hash: &str) -> Option<&AdminPrincipal> {
        self.by_key_hash
            .get(hash)
            .and_then(|id| self.admins.get(id))
    }
}

fn admin_id(e: &Envelope) -> Result<ObjectId, String> {
    match &e.stream {
        StreamId::Aggregate { id, .. } => id.parse().map_err(|err| format!("{err}")),
        _ => Err("admin event outside an admin stream".into()),
    }
}

fn reduce(state: &mut AdminIndex, e: &Envelope) -> Result<(), String> {
    let id = admin_id(e)?;
    let event = AdminEvent::decode(&e.event_type, e.schema_version, e.payload.clone())
        .map_err(|e| e.to_string())?;
    let home = state.admins.get(&id).is_some_and(|a| a.org_id == e.org_id);
    let ends_sessions = match &event {
        AdminEvent::PasswordChanged(_) | AdminEvent::Locked(_) | AdminEvent::SessionsEnded(_) => {
            true
        }
        AdminEvent::Updated(u) => u
            .changes
            .iter()
            .any(|c| c.field == "totp_status" && c.to.is_null()),
        _ => false,
    };
    if home && ends_sessions {
        *state.session_epochs.entry(id).or_default() += 1;
    }
    match event {
        AdminEvent::Created(c) if c.home_org.is_some() => {
            state.grants.entry(id).or_default().insert(e.org_id, c.role);
        }
        AdminEvent::Created(c) => {
            state.admins.insert(
                id,
                AdminPrincipal {
                    admin_id: id,
                    org_id: e.org_id,
                    email: c.email,
                    role: c.role,
                },
            );
        }
        AdminEvent::Updated(u) => {
            // Keys come from the home stream only (grants refuse them anyway).
            if let Some(key) = u.api_key.filter(|_| home) {
                if let Some(old) = state.key_of.insert(id, key.key_hash.clone()) {
                    state.by_key_hash.remove(&old);
                }
                state.by_key_hash.insert(key.key_hash, id);
            }
            let revoked = u
                .changes
                .iter()
                .any(|c| c.field == "api_key" && c.to.is_null());
            if home && revoked {
                if let Some(old) = state.key_of.remove(&id) {
                    state.by_key_hash.remove(&old);
                }
            }
        }
        AdminEvent::PasswordChanged(_)
        | AdminEvent::Locked(_)
        | AdminEvent::Unlocked(_)
        | AdminEvent::SessionsEnded(_) => {}
        // A revoked grant.
        AdminEvent::Deleted(_) if state.admins.get(&id).is_none_or(|a| a.org_id != e.org_id) => {
            if let Some(g) = state.grants.get_mut(&id) {
                g.remove(&e.org_id);
            }
        }
        // A deleted admin's key stops working at once.
        AdminEvent::Deleted(_) => {
            state.admins.remove(&id);
            if let Some(old) = state.key_of.remove(&id) {
                state.by_key_hash.remove(&old);
            }
        }
    }
    Ok(())
}

pub fn projection() -> Arc<MemoryProjection<AdminIndex>> {
    let reducers: Vec<(&'static str, MemoryReduceFn<AdminIndex>)> =
        EVENT_TYPES.iter().map(|t| (*t, reduce as _)).collect();
    MemoryProjection::new("admin_index", &reducers)
}
