//! Subjects and the stream's configuration.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use castellan_domain::envelope::StreamId;
use castellan_domain::ObjectId;

/// Everything Castellan writes is under this prefix.
pub const ALL: &str = "castellan.>";

#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// The JetStream stream name.
    pub name: String,
    /// 1 for a single server; 3 for a cluster.
    pub replicas: usize,
    /// How long `Nats-Msg-Id` deduplicates retries (the server's default is 2 minutes).
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            name: "CASTELLAN".to_string(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

pub fn stream_config(s: &StreamSettings) -> Config {
    Config {
        name: s.name.clone(),
        description: Some("Castellan event log: directory and authentication events".into()),
        subjects: vec!["castellan.evt.>".into(), "castellan.auth.>".into()],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        storage: StorageType::File,
        num_replicas: s.replicas,
        duplicate_window: s.duplicate_window,
        allow_direct: true,
        // One commit is one message; the organization logo is stored elsewhere.
        max_message_size: 1024 * 1024,
        ..Default::default()
    }
}

/// The subject a stream's commits are published to.
pub fn subject(org: ObjectId, stream: &StreamId) -> String {
    match stream {
        StreamId::Aggregate { kind, id } => format!("castellan.evt.{org}.{kind}.{id}"),
        StreamId::Auth { service } => format!("castellan.auth.{org}.{service}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_brief() {
        let org: ObjectId = "5f0c1a2b3c4d5e6f70819203".parse().unwrap();
        assert_eq!(
            subject(org, &StreamId::aggregate("user", "aa")),
            "castellan.evt.5f0c1a2b3c4d5e6f70819203.user.aa"
        );
        assert_eq!(
            subject(org, &StreamId::auth("ldap")),
            "castellan.auth.5f0c1a2b3c4d5e6f70819203.ldap"
        );
    }
}
