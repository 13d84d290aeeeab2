//! The cluster event log: NATS JetStream.
//!
//! Map of the modules:
//! - [`subjects`]: subject names (`castellan.evt.<org>.<kind>.<id>`,
//!   `castellan.auth.<org>.<service>`) and the stream configuration.
//! - [`append`]: one commit = one message; `Nats-Msg-Id` = commit id (dedup of
//!   retries), `Nats-Expected-Last-Subject-Sequence` = the version read (0 for a new
//!   stream) for optimistic concurrency. A stream's version is the JetStream sequence
//!   of its last message; a commit's position is its own sequence.
//! - [`read`]: stream reads by direct get, and subscriptions by ordered consumer.
//! - [`durable`]: a durable pull consumer for a long-running reader (insights).
//!
//! Works with nats-server 2.9 and later (no atomic batch API needed, since a commit is
//! one message). Durability of an acknowledged write depends on the server's
//! `sync_interval` (2.10+): see deploy/nats.

mod append;
mod durable;
mod read;
mod subjects;

use async_nats::jetstream::{self, stream::Stream};
use async_trait::async_trait;
use castellan_app::ports::{Appended, CommitStream, DurableReader, EventLog, LogError};
use castellan_domain::envelope::{Commit, Position, RecordedCommit, StreamId};
use castellan_domain::ObjectId;

pub use subjects::{stream_config, StreamSettings};

/// How long a request to NATS may take before it counts as unavailable.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// The JetStream event log. Cheap to clone.
#[derive(Clone)]
pub struct NatsLog {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: Stream,
    settings: StreamSettings,
}

impl NatsLog {
    /// Connects to `url` and creates (or opens) the event stream.
    pub async fn connect(url: &str, settings: StreamSettings) -> Result<Self, LogError> {
        let client = async_nats::ConnectOptions::new()
            .name("castellan")
            .connection_timeout(std::time::Duration::from_secs(5))
            // While NATS is unreachable, requests fail after this instead of hanging,
            // so that callers get a clear "unavailable" error.
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(url)
            .await
            .map_err(|e| LogError::Unavailable(format!("NATS {url}: {e}")))?;
        Self::with_client(client, settings).await
    }

    pub async fn with_client(
        client: async_nats::Client,
        settings: StreamSettings,
    ) -> Result<Self, LogError> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        let stream = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            js.get_or_create_stream(stream_config(&settings)),
        )
        .await
        .map_err(|_| LogError::Unavailable("NATS: JetStream did not answer within 10 s".into()))?
        .map_err(|e| {
            LogError::Unavailable(format!("NATS: cannot open stream {}: {e}", settings.name))
        })?;
        Ok(NatsLog {
            client,
            js,
            stream,
            settings,
        })
    }

    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }
}

impl NatsLog {
    /// The server checks the expected subject sequence before `Nats-Msg-Id`
    /// deduplication, so a retry of a commit that landed reports a conflict. If
    /// the first message after the expected version is this very commit, the retry
    /// is a duplicate, not a conflict.
    async fn recognise_retry(
        &self,
        commit: &Commit,
        result: Result<Appended, LogError>,
    ) -> Result<Appended, LogError> {
        let (Err(LogError::Conflict { .. }), Some(expected)) =
            (&result, commit.expected.as_version())
        else {
            return result;
        };
        let subject = subjects::subject(commit.org_id, &commit.stream);
        match read::next(&self.stream, &subject, expected + 1).await? {
            Some(found) if found.commit.commit_id == commit.commit_id => Ok(Appended {
                position: found.position,
                stream_version: found.position,
                duplicate: true,
            }),
            _ => result,
        }
    }
}

#[async_trait]
impl EventLog for NatsLog {
    async fn append(&self, commit: Commit) -> Result<Appended, LogError> {
        let pending = append::publish(&self.js, &commit).await?;
        let result = append::settle(&commit, pending.await);
        self.recognise_retry(&commit, result).await
    }

    async fn append_batch(&self, commits: Vec<Commit>) -> Vec<Result<Appended, LogError>> {
        // Publish everything first, then collect the acks: pipelined, not one RTT each.
        let mut pending = Vec::with_capacity(commits.len());
        for commit in &commits {
            pending.push(append::publish(&self.js, commit).await);
        }
        let mut out = Vec::with_capacity(commits.len());
        for (commit, p) in commits.iter().zip(pending) {
            let result = match p {
                Ok(ack) => append::settle(commit, ack.await),
                Err(e) => Err(e),
            };
            out.push(self.recognise_retry(commit, result).await);
        }
        out
    }

    async fn read_stream(
        &self,
        org: ObjectId,
        stream: &StreamId,
    ) -> Result<Vec<RecordedCommit>, LogError> {
        read::stream(&self.stream, &subjects::subject(org, stream)).await
    }

    async fn read_last(
        &self,
        org: ObjectId,
        stream: &StreamId,
    ) -> Result<Option<RecordedCommit>, LogError> {
        read::last(&self.stream, &subjects::subject(org, stream)).await
    }

    async fn read_after(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedCommit>, LogError> {
        read::after(&self.stream, after, limit).await
    }

    async fn subscribe(&self, after: Position) -> Result<CommitStream, LogError> {
        read::subscribe(&self.stream, after).await
    }

    async fn head(&self) -> Result<Position, LogError> {
        let info = self
            .js
            .get_stream(&self.settings.name)
            .await
            .map_err(|e| LogError::Unavailable(format!("NATS: {e}")))?;
        Ok(info.cached_info().state.last_sequence)
    }

    async fn durable_reader(
        &self,
        name: &str,
        after: Position,
    ) -> Result<Option<Box<dyn DurableReader>>, LogError> {
        Ok(Some(Box::new(
            durable::open(&self.stream, name, after).await?,
        )))
    }
}
