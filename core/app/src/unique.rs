//! Unique keys (a username or an email per organization) as reservation streams.
//!
//! A key's stream is `unique/<kind>-<hash of the lowercased value>` in the org. A claim
//! appends `unique_claim` expecting the version last read (0 for a key never claimed),
//! so two concurrent claims of one key race on the log's own concurrency check and
//! exactly one wins. A release appends `unique_release`; the key can then be claimed
//! again. The same value in another org is another stream.

use castellan_domain::envelope::{Commit, EventMeta, ExpectedVersion, NewEvent, StreamId};
use castellan_domain::ids::new_event_id;
use castellan_domain::{DomainError, ObjectId};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::AppError;
use crate::ports::{Appended, EventLog};

pub const CLAIM: &str = "unique_claim";
pub const RELEASE: &str = "unique_release";

/// The stream that guards `value` of `kind` (case-insensitive).
pub fn key_stream(kind: &str, value: &str) -> StreamId {
    let digest = Sha256::digest(value.trim().to_lowercase().as_bytes());
    StreamId::aggregate("unique", format!("{kind}-{}", &hex::encode(digest)[..40]))
}

/// Who holds the key now, and the stream's version.
async fn holder(
    log: &dyn EventLog,
    org: ObjectId,
    stream: &StreamId,
) -> Result<(Option<String>, u64), AppError> {
    let commits = log.read_stream(org, stream).await?;
    let mut owner = None;
    let mut version = 0;
    for c in &commits {
        for e in &c.commit.events {
            owner = match e.event_type.as_str() {
                CLAIM => e.payload["owner"].as_str().map(str::to_string),
                _ => None,
            };
        }
        version = c.stream_version;
    }
    Ok((owner, version))
}

/// Who holds `value` of `kind` now, if anybody.
pub async fn holder_of(
    log: &dyn EventLog,
    org: ObjectId,
    kind: &str,
    value: &str,
) -> Result<Option<String>, AppError> {
    Ok(holder(log, org, &key_stream(kind, value)).await?.0)
}

/// Claims `value` of `kind` for `owner`. Claiming a key one already holds succeeds.
pub async fn claim(
    log: &dyn EventLog,
    org: ObjectId,
    kind: &str,
    value: &str,
    owner: &str,
    meta: &EventMeta,
) -> Result<Option<Appended>, AppError> {
    let stream = key_stream(kind, value);
    for _ in 0..2 {
        let (current, version) = holder(log, org, &stream).await?;
        match current {
            Some(o) if o == owner => return Ok(None),
            Some(_) => return Err(taken(kind, value)),
            None => {}
        }
        let commit = key_commit(org, &stream, version, meta, CLAIM, kind, value, owner);
        match log.append(commit).await {
            Ok(a) => return Ok(Some(a)),
            // Somebody else moved the key meanwhile: read again to tell who holds it.
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(taken(kind, value))
}

/// Releases `value` of `kind` if `owner` holds it.
pub async fn release(
    log: &dyn EventLog,
    org: ObjectId,
    kind: &str,
    value: &str,
    owner: &str,
    meta: &EventMeta,
) -> Result<(), AppError> {
    let stream = key_stream(kind, value);
    let (current, version) = holder(log, org, &stream).await?;
    if current.as_deref() != Some(owner) {
        return Ok(());
    }
    let commit = key_commit(org, &stream, version, meta, RELEASE, kind, value, owner);
    log.append(commit).await?;
    Ok(())
}

fn taken(kind: &str, value: &str) -> AppError {
    AppError::Domain(DomainError::Taken {
        field: kind.to_string(),
        value: value.to_string(),
    })
}

#[allow(clippy::too_many_arguments)]
fn key_commit(
    org: ObjectId,
    stream: &StreamId,
    version: u64,
    meta: &EventMeta,
    event_type: &str,
    kind: &str,
    value: &str,
    owner: &str,
) -> Commit {
    Commit {
        commit_id: Uuid::now_v7(),
        org_id: org,
        stream: stream.clone(),
        expected: ExpectedVersion::from_version(version),
        meta: meta.clone(),
        events: vec![NewEvent {
            event_id: new_event_id(),
            event_type: event_type.to_string(),
            schema_version: 1,
            payload: json!({"kind": kind, "value": value.trim().to_lowercase(), "owner": owner}),
        }],
    }
}
