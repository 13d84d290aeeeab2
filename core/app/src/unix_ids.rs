//! Unix uid allocation: unique per organization, under concurrency.
//!
//! Each org has an allocator stream `unixids/uid` whose last event holds the last
//! number handed out; allocating appends the next one expecting the version read, so
//! two concurrent allocations cannot get the same number. The number is then claimed
//! as a unique key, which also guards numbers admins set by hand: an allocation that
//! meets a hand-set number moves on to the next.

use castellan_domain::envelope::{Commit, EventMeta, ExpectedVersion, NewEvent, StreamId};
use castellan_domain::ids::new_event_id;
use castellan_domain::{DomainError, ObjectId};
use serde_json::json;
use uuid::Uuid;

use crate::error::AppError;
use crate::ports::EventLog;
use crate::unique;

/// Where automatic uids start unless the organization says otherwise
/// (`settings.unixUidStart`), above the usual system and local-user ranges.
pub const DEFAULT_UID_START: u64 = 5000;
pub const MAX_UID: u64 = 4_294_967_294;

/// Claims `uid` for `owner`, or answers that it is taken.
pub async fn claim(
    log: &dyn EventLog,
    org: ObjectId,
    uid: u64,
    owner: &str,
    meta: &EventMeta,
) -> Result<(), AppError> {
    unique::claim(log, org, "unix_uid", &uid.to_string(), owner, meta)
        .await
        .map(|_| ())
}

/// Releases `uid` held by `owner`.
pub async fn release(
    log: &dyn EventLog,
    org: ObjectId,
    uid: u64,
    owner: &str,
    meta: &EventMeta,
) -> Result<(), AppError> {
    unique::release(log, org, "unix_uid", &uid.to_string(), owner, meta).await
}

/// Reserves `n` consecutive uids at or above `start` with one append (bulk imports):
/// the caller hands them out and claims each, so a hand-set uid inside the block is
/// still detected by its claim.
pub async fn reserve(
    log: &dyn EventLog,
    org: ObjectId,
    start: u64,
    n: u64,
    meta: &EventMeta,
) -> Result<std::ops::RangeInclusive<u64>, AppError> {
    let stream = StreamId::aggregate("unixids", "uid");
    for _ in 0..64 {
        let last = log.read_last(org, &stream).await?;
        let (version, previous) = match &last {
            Some(c) => (
                c.stream_version,
                c.commit.events[0].payload["value"].as_u64().unwrap_or(0),
            ),
            None => (0, 0),
        };
        let first = (previous + 1).max(start);
        let end = first + n.max(1) - 1;
        if end > MAX_UID {
            return Err(DomainError::invalid(
                "unix_uid",
                "no uid left in the organization's range",
            )
            .into());
        }
        let commit = Commit {
            commit_id: Uuid::now_v7(),
            org_id: org,
            stream: stream.clone(),
            expected: ExpectedVersion::from_version(version),
            meta: meta.clone(),
            events: vec![NewEvent {
                event_id: new_event_id(),
                event_type: "unix_id_allocated".into(),
                schema_version: 1,
                payload: json!({"kind": "uid", "value": end, "from": first}),
            }],
        };
        match log.append(commit).await {
            Ok(_) => return Ok(first..=end),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Contention("unix uid reservation".into()))
}

/// Allocates the next free uid at or above `start` for `owner`.
pub async fn allocate(
    log: &dyn EventLog,
    org: ObjectId,
    start: u64,
    owner: &str,
    meta: &EventMeta,
) -> Result<u64, AppError> {
    for _ in 0..256 {
        let uid = *reserve(log, org, start, 1, meta).await?.start();
        match claim(log, org, uid, owner, meta).await {
            Ok(()) => return Ok(uid),
            // Set by hand on another user: take the next one.
            Err(AppError::Domain(DomainError::Taken { .. })) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(AppError::Contention("unix uid allocation".into()))
}
