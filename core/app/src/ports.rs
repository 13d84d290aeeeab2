//! The ports the application needs. Adapters implement them (SQLite, NATS JetStream,
//! SQL read stores); tests can use the fake clock.

use std::sync::Mutex;

use async_trait::async_trait;
use castellan_domain::envelope::{Commit, ExpectedVersion, Position, RecordedCommit, StreamId};
use castellan_domain::ObjectId;
use futures::stream::BoxStream;
use time::OffsetDateTime;

/// What a successful append reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The commit's global position.
    pub position: Position,
    /// The stream's version after the commit.
    pub stream_version: u64,
    /// True when the log had this commit id already and stored nothing new.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The stream's version is not the expected one. Nothing was written.
    #[error("version conflict on {stream}: expected {expected:?}, found {actual:?}")]
    Conflict {
        stream: String,
        expected: ExpectedVersion,
        /// The stream's actual version when the adapter can tell.
        actual: Option<u64>,
    },
    /// The log cannot be reached or refused to work; the write may be retried.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The commit itself is unacceptable (bad stream id, too large).
    #[error("invalid commit: {0}")]
    Invalid(String),
    /// Stored data that cannot be read back.
    #[error("event log data is corrupt: {0}")]
    Corrupt(String),
}

impl LogError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, LogError::Conflict { .. })
    }
}

/// Commits after a position, one at a time, in order, forever (until dropped).
pub type CommitStream = BoxStream<'static, Result<RecordedCommit, LogError>>;

/// A long-running reader of the whole log for one named consumer (the insights
/// materializer). Where the log has server-side consumers (JetStream), the server
/// tracks the reader's progress; the reader's own checkpoint stays the authority on
/// where it starts.
#[async_trait]
pub trait DurableReader: Send {
    /// Up to `limit` further commits, in order; fewer (possibly none) means the head
    /// was reached.
    async fn next_batch(&mut self, limit: usize) -> Result<Vec<RecordedCommit>, LogError>;

    /// Everything up to `position` is processed durably: the server may forget it.
    async fn processed(&mut self, position: Position) -> Result<(), LogError>;
}

/// The event log. One contract, two adapters (SQLite, NATS JetStream).
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends one commit atomically, checking `commit.expected` (unless `Any`).
    /// A commit id that was stored before is reported as a duplicate and stored once.
    async fn append(&self, commit: Commit) -> Result<Appended, LogError>;

    /// Appends several independent commits; each succeeds or fails on its own.
    /// Adapters batch them (one transaction, pipelined publishes).
    async fn append_batch(&self, commits: Vec<Commit>) -> Vec<Result<Appended, LogError>> {
        let mut out = Vec::with_capacity(commits.len());
        for c in commits {
            out.push(self.append(c).await);
        }
        out
    }

    /// Every commit of one stream, oldest first.
    async fn read_stream(
        &self,
        org: ObjectId,
        stream: &StreamId,
    ) -> Result<Vec<RecordedCommit>, LogError>;

    /// The last commit of one stream (cheaper than reading it whole).
    async fn read_last(
        &self,
        org: ObjectId,
        stream: &StreamId,
    ) -> Result<Option<RecordedCommit>, LogError> {
        Ok(self.read_stream(org, stream).await?.pop())
    }

    /// Up to `limit` commits with a position greater than `after`, in order.
    async fn read_after(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedCommit>, LogError>;

    /// Every commit after `after`, then each new one as it is stored.
    async fn subscribe(&self, after: Position) -> Result<CommitStream, LogError>;

    /// The position of the newest commit (0 for an empty log).
    async fn head(&self) -> Result<Position, LogError>;

    /// A durable reader named `name` starting after `after`, where the adapter has one
    /// (JetStream: a durable pull consumer). `None`: read with [`EventLog::read_after`].
    async fn durable_reader(
        &self,
        _name: &str,
        _after: Position,
    ) -> Result<Option<Box<dyn DurableReader>>, LogError> {
        Ok(None)
    }
}

/// Large immutable objects (logos) kept beside the log, addressed by SHA-256.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    async fn put(&self, sha256: &str, content_type: &str, bytes: &[u8]) -> Result<(), String>;
    async fn get(&self, sha256: &str) -> Result<Option<(String, Vec<u8>)>, String>;
}

/// Time, injected so that tests never sleep.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to.
pub struct FakeClock(Mutex<OffsetDateTime>);

impl FakeClock {
    pub fn new(at: OffsetDateTime) -> Self {
        FakeClock(Mutex::new(at))
    }

    pub fn advance(&self, by: time::Duration) {
        *self.0.lock().expect("clock lock") += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}
