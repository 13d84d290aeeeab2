//! The security counters: recent failed logins per account (user or admin) and per
//! client address, from every protocol's `user_login_attempt` and
//! `admin_login_attempt` events. One counter for all protocols, and for every node of
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

/// Failures kept per account and per address, newest last (enough for any policy).
const KEEP: usize = 128;

#[derive(Debug, Clone, Default)]
pub struct LoginFailures {
    by_account: HashMap<(ObjectId, String), VecDeque<OffsetDateTime>>,
    by_address: HashMap<String, VecDeque<OffsetDateTime>>,
}

fn push(times: &mut VecDeque<OffsetDateTime>, at: OffsetDateTime) {
    times.push_back(at);
    while times.len() > KEEP {
        times.pop_front();
    }
}

impl LoginFailures {
    pub fn since(&self, org: ObjectId, account: &str, since: OffsetDateTime) -> u32 {
        self.by_account
            .get(&(org, account.to_string()))
            .map(|times| times.iter().filter(|t| **t >= since).count() as u32)
            .unwrap_or(0)
    }

    /// The failures from `ip` since `since`, and the oldest of them.
    pub fn from_address(&self, ip: &str, since: OffsetDateTime) -> (u32, Option<OffsetDateTime>) {
        let Some(times) = self.by_address.get(ip) else {
            return (0, None);
        };
        let recent = times.iter().filter(|t| **t >= since);
        (recent.clone().count() as u32, recent.min().copied())
    }
}

fn reduce(state: &mut LoginFailures, e: &Envelope) -> Result<(), String> {
    let success = e.payload["success"].as_bool() == Some(true);
    if !success {
        if let Some(ip) = &e.client_ip {
            push(
                state.by_address.entry(ip.clone()).or_default(),
                e.occurred_at,
            );
        }
    }
    let account = if e.event_type == "admin_login_attempt" {
        e.payload["initiated_by"]["id"].as_str()
    } else {
        e.payload["resource"]["id"].as_str()
    };
    let Some(account) = account else {
        return Ok(());
    };
    let key = (e.org_id, account.to_string());
    if success {
        state.by_account.remove(&key);
    } else if e.payload["counts_toward_lockout"].as_bool() == Some(true) {
        push(state.by_account.entry(key).or_default(), e.occurred_at);
    }
    Ok(())
}

pub fn projection() -> Arc<MemoryProjection<LoginFailures>> {
    const REDUCERS: &[(&str, MemoryReduceFn<LoginFailures>)] = &[
        ("user_login_attempt", reduce),
        ("admin_login_attempt", reduce),
    ];
    MemoryProjection::new("security_counters", REDUCERS)
}

/// How many failed logins one client address may make within a window before its
/// attempts are refused (on every protocol) until the oldest of them leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// 0 turns the throttle off.
    pub max_failures: u32,
    pub window: Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            max_failures: 30,
            window: Duration::from_secs(300),
        }
    }
}

/// The port the login services count through.
pub struct Counter {
    pub failures: Arc<MemoryProjection<LoginFailures>>,
    pub throttle: Throttle,
}

impl Counter {
    pub fn new(failures: Arc<MemoryProjection<LoginFailures>>, throttle: Throttle) -> Self {
        Counter { failures, throttle }
    }
}

#[async_trait]
impl FailureCounter for Counter {
    async fn failures(
        &self,
        org: ObjectId,
        account: ObjectId,
        since: OffsetDateTime,
        position: u64,
    ) -> u32 {
        // Read-your-writes: the attempt just recorded must be counted.
        self.failures
            .progress()
            .wait_for(position, Duration::from_secs(5))
            .await;
        self.failures
            .snapshot()
            .state
            .since(org, &account.to_string(), since)
    }

    async fn seen(&self, position: u64) {
        self.failures
            .progress()
            .wait_for(position, Duration::from_secs(5))
            .await;
    }

    fn throttled(&self, ip: &str, now: OffsetDateTime) -> Option<u64> {
        if self.throttle.max_failures == 0 {
            return None;
        }
        let since = now - self.throttle.window;
        let (count, oldest) = self.failures.snapshot().state.from_address(ip, since);
        if count < self.throttle.max_failures {
            return None;
        }
        let free_at = oldest? + self.throttle.window;
        Some((free_at - now).whole_seconds().max(1) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_throttled_until_its_oldest_failure_leaves_the_window() {
        let mut s = LoginFailures::default();
        let t0 = time::macros::datetime!(2026-12-01 12:00 UTC);
        for i in 0..3 {
            push(
                s.by_address.entry("10.0.0.1".into()).or_default(),
                t0 + time::Duration::seconds(i),
            );
        }
        assert_eq!(s.from_address("10.0.0.1", t0), (3, Some(t0)));
        assert_eq!(s.from_address("10.0.0.2", t0), (0, None));
        assert_eq!(
            s.from_address("10.0.0.1", t0 + time::Duration::seconds(1))
                .0,
            2
        );
    }
}
