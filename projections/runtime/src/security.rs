//! The security counters: recent failed logins per user, from every protocol's
//! `user_login_attempt` events. One counter for all protocols, and for every node of
//! a cluster (each node folds the same log).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use castellan_app::login::FailureCounter;
use castellan_domain::envelope::Envelope;
use castellan_domain::ObjectId;
use time::OffsetDateTime;

use crate::memory::{MemoryProjection, MemoryReduceFn};

/// Failures kept per user, newest last (enough for any lockout policy).
const KEEP: usize = 128;

#[derive(Debug, Clone, Default)]
pub struct LoginFailures {
    by_user: HashMap<(ObjectId, String), VecDeque<OffsetDateTime>>,
}

impl LoginFailures {
    pub fn since(&self, org: ObjectId, user: &str, since: OffsetDateTime) -> u32 {
        self.by_user
            .get(&(org, user.to_string()))
            .map(|times| times.iter().filter(|t| **t >= since).count() as u32)
            .unwrap_or(0)
    }
}

fn reduce(state: &mut LoginFailures, e: &Envelope) -> Result<(), String> {
    let Some(user) = e.payload["resource"]["id"].as_str() else {
        return Ok(());
    };
    let key = (e.org_id, user.to_string());
    if e.payload["success"].as_bool() == Some(true) {
        state.by_user.remove(&key);
    } else if e.payload["counts_toward_lockout"].as_bool() == Some(true) {
        let times = state.by_user.entry(key).or_default();
        times.push_back(e.occurred_at);
        while times.len() > KEEP {
            times.pop_front();
        }
    }
    Ok(())
}

pub fn projection() -> Arc<MemoryProjection<LoginFailures>> {
    const REDUCERS: &[(&str, MemoryReduceFn<LoginFailures>)] = &[("user_login_attempt", reduce)];
    MemoryProjection::new("security_counters", REDUCERS)
}

/// The port the login service counts through.
pub struct Counter(pub Arc<MemoryProjection<LoginFailures>>);

#[async_trait]
impl FailureCounter for Counter {
    async fn failures(
        &self,
        org: ObjectId,
        user: ObjectId,
        since: OffsetDateTime,
        position: u64,
    ) -> u32 {
        // Read-your-writes: the attempt just recorded must be counted.
        self.0
            .progress()
            .wait_for(position, Duration::from_secs(5))
            .await;
        self.0.snapshot().state.since(org, &user.to_string(), since)
    }
}
