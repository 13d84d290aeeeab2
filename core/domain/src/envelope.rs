//! What the event log stores.
//!
//! The unit of writing is a [`Commit`]: the events one command produced for one stream,
//! stored atomically as one JetStream message or one SQLite row. The log gives each
//! commit a global [`Position`]; every event of the commit carries that position.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::{EventId, ObjectId};

/// A global position in the log: JetStream stream sequence or SQLite row id.
/// Monotonic; 0 means "before the first commit".
pub type Position = u64;

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Admin,
    User,
    ApiKey,
    System,
    Agent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Actor {
            kind: ActorKind::System,
            id: None,
            email: None,
        }
    }
}

/// Which stream a commit belongs to.
///
/// Directory streams hold one aggregate each and are written with optimistic
/// concurrency. Authentication streams are append-only, one per service, with no
/// per-aggregate checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StreamId {
    Aggregate { kind: String, id: String },
    Auth { service: String },
}

impl StreamId {
    /// A directory stream. `kind` and `id` must be subject-safe tokens
    /// (ASCII letters, digits, `_` and `-`).
    pub fn aggregate(kind: &str, id: impl fmt::Display) -> Self {
        StreamId::Aggregate {
            kind: kind.to_string(),
            id: id.to_string(),
        }
    }

    pub fn auth(service: &str) -> Self {
        StreamId::Auth {
            service: service.to_string(),
        }
    }

    pub fn is_auth(&self) -> bool {
        matches!(self, StreamId::Auth { .. })
    }

    /// Checks that every token is safe in a NATS subject and a SQL key.
    pub fn validate(&self) -> Result<(), String> {
        let tokens: Vec<&str> = match self {
            StreamId::Aggregate { kind, id } => vec![kind, id],
            StreamId::Auth { service } => vec![service],
        };
        for token in tokens {
            if !is_token(token) {
                return Err(format!(
                    "stream token {token:?} must be 1-64 ASCII letters, digits, '_' or '-'"
                ));
            }
        }
        Ok(())
    }
}

/// True for 1–64 characters of `[A-Za-z0-9_-]`: safe as a NATS subject token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamId::Aggregate { kind, id } => write!(f, "{kind}/{id}"),
            StreamId::Auth { service } => write!(f, "auth/{service}"),
        }
    }
}

impl From<StreamId> for String {
    fn from(s: StreamId) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for StreamId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (kind, id) = s
            .split_once('/')
            .ok_or_else(|| format!("stream {s:?} is not KIND/ID"))?;
        let stream = if kind == "auth" {
            StreamId::auth(id)
        } else {
            StreamId::aggregate(kind, id)
        };
        stream.validate()?;
        Ok(stream)
    }
}

/// What a writer expects of a stream's version when it appends.
///
/// Stream versions are opaque, strictly increasing per stream, and 0 for a stream
/// that does not exist. (On JetStream a version is the sequence of the stream's last
/// message; on SQLite it counts commits. Neither is promised to be contiguous.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check: authentication events and other append-only writes.
    #[default]
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream's last version must be exactly this one.
    Exact(u64),
}

impl ExpectedVersion {
    /// The version to compare with, if any (`NoStream` is version 0).
    pub fn as_version(self) -> Option<u64> {
        match self {
            ExpectedVersion::Any => None,
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::Exact(v) => Some(v),
        }
    }

    /// The expectation for a stream last read at `version` (0 = absent).
    pub fn from_version(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }
}

/// Metadata shared by all events of one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMeta {
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl EventMeta {
    pub fn new(occurred_at: OffsetDateTime, actor: Actor) -> Self {
        EventMeta {
            occurred_at,
            actor,
            client_ip: None,
            user_agent: None,
            correlation_id: None,
        }
    }
}

/// An event about to be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub event_id: EventId,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Value,
}

/// The events one command produced for one stream: written atomically or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// Identifies the commit for deduplication of retries.
    pub commit_id: Uuid,
    pub org_id: ObjectId,
    pub stream: StreamId,
    /// Checked by the log, never stored.
    #[serde(skip)]
    pub expected: ExpectedVersion,
    pub meta: EventMeta,
    pub events: Vec<NewEvent>,
}

/// A stored event with everything the brief's envelope lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: EventId,
    pub org_id: ObjectId,
    pub stream: StreamId,
    pub stream_version: u64,
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub commit_id: Uuid,
    pub payload: Value,
}

/// A commit as read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCommit {
    pub position: Position,
    pub stream_version: u64,
    pub commit: Commit,
}

impl RecordedCommit {
    /// The commit's events as envelopes, moving the payloads out (no copy); the
    /// commit's stream and metadata are copied for all but the last event, which takes
    /// them (most commits hold one event).
    pub fn into_envelopes(self) -> impl Iterator<Item = Envelope> {
        let RecordedCommit {
            position,
            stream_version,
            commit:
                Commit {
                    commit_id,
                    org_id,
                    stream,
                    meta,
                    events,
                    ..
                },
        } = self;
        let last = events.len().saturating_sub(1);
        let mut shared = Some((stream, meta));
        events.into_iter().enumerate().map(move |(i, e)| {
            let (stream, meta) = if i == last {
                shared.take()
            } else {
                shared.clone()
            }
            .expect("only the last event takes the commit's stream and metadata");
            Envelope {
                event_id: e.event_id,
                org_id,
                stream,
                stream_version,
                position,
                event_type: e.event_type,
                schema_version: e.schema_version,
                occurred_at: meta.occurred_at,
                actor: meta.actor,
                client_ip: meta.client_ip,
                user_agent: meta.user_agent,
                correlation_id: meta.correlation_id,
                commit_id,
                payload: e.payload,
            }
        })
    }

    /// The commit's events as envelopes (copies; see [`Self::into_envelopes`]).
    pub fn envelopes(&self) -> impl Iterator<Item = Envelope> {
        self.clone().into_envelopes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_round_trip_and_reject_subject_metacharacters() {
        let s = StreamId::aggregate("organization", "5f0c1a2b3c4d5e6f70819203");
        assert_eq!(s.to_string(), "organization/5f0c1a2b3c4d5e6f70819203");
        assert_eq!(StreamId::try_from(s.to_string()).unwrap(), s);
        assert_eq!(
            StreamId::try_from("auth/ldap".to_string()).unwrap(),
            StreamId::auth("ldap")
        );
        assert!(StreamId::aggregate("user", "a.b").validate().is_err());
        assert!(StreamId::aggregate("user", "a*").validate().is_err());
        assert!(StreamId::aggregate("user", "").validate().is_err());
        assert!(StreamId::try_from("nokind".to_string()).is_err());
    }

    #[test]
    fn every_event_of_a_commit_carries_its_stream_and_metadata() {
        let event = |t: &str| NewEvent {
            event_id: crate::ids::new_event_id(),
            event_type: t.into(),
            schema_version: 1,
            payload: serde_json::json!({ "t": t }),
        };
        let commit = RecordedCommit {
            position: 9,
            stream_version: 3,
            commit: Commit {
                commit_id: Uuid::now_v7(),
                org_id: crate::ObjectId::generate(1),
                stream: StreamId::aggregate("user", "u1"),
                expected: ExpectedVersion::Any,
                meta: EventMeta {
                    occurred_at: OffsetDateTime::UNIX_EPOCH,
                    actor: Actor {
                        kind: ActorKind::Admin,
                        id: Some("a1".into()),
                        email: None,
                    },
                    client_ip: Some("10.0.0.1".into()),
                    user_agent: Some("curl/8".into()),
                    correlation_id: Some("req-1".into()),
                },
                events: vec![event("a"), event("b"), event("c")],
            },
        };
        let envelopes: Vec<Envelope> = commit.clone().into_envelopes().collect();
        assert_eq!(envelopes.len(), 3);
        for (e, t) in envelopes.iter().zip(["a", "b", "c"]) {
            assert_eq!(e.event_type, t);
            assert_eq!(e.payload["t"], t);
            assert_eq!(e.stream, commit.commit.stream);
            assert_eq!(e.actor, commit.commit.meta.actor);
            assert_eq!(e.client_ip, commit.commit.meta.client_ip);
            assert_eq!(e.user_agent, commit.commit.meta.user_agent);
            assert_eq!(e.correlation_id, commit.commit.meta.correlation_id);
            assert_eq!((e.position, e.stream_version), (9, 3));
        }
        let mut empty = commit;
        empty.commit.events.clear();
        assert_eq!(empty.into_envelopes().count(), 0);
    }

    #[test]
    fn expected_version_maps_zero_to_no_stream() {
        assert_eq!(ExpectedVersion::from_version(0), ExpectedVersion::NoStream);
        assert_eq!(ExpectedVersion::from_version(7), ExpectedVersion::Exact(7));
        assert_eq!(ExpectedVersion::NoStream.as_version(), Some(0));
        assert_eq!(ExpectedVersion::Any.as_version(), None);
    }
}
