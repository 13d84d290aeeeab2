//! The embedded event log: one SQLite file (WAL, synchronous=FULL).
//!
//! Map of the modules:
//! - [`open`]: opening the file, recognising a foreign or corrupt one, the schema.
//! - [`writer`]: the single writer task with group commit: concurrent appends are
//!   gathered into one transaction (one fsync), each checked on its own.
//! - [`read`]: stream reads, reads after a position, and subscriptions.
//!
//! Table `commits`: one row per commit, `position` is the global position
//! (AUTOINCREMENT: never reused), `UNIQUE(org_id, stream, stream_version)` backs the
//! optimistic concurrency check, `UNIQUE(commit_id)` deduplicates retries.
//! Authentication streams store a NULL version (no per-stream check).

mod open;
mod read;
mod writer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use castellan_app::ports::{Appended, CommitStream, EventLog, LogError};
use castellan_domain::envelope::{Commit, Position, RecordedCommit, StreamId};
use castellan_domain::ObjectId;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot, watch};

pub use open::OpenError;

/// The SQLite event log. Cheap to clone.
#[derive(Clone)]
pub struct SqliteLog {
    inner: Arc<Inner>,
}

struct Inner {
    readers: SqlitePool,
    /// Stopped with the last handle.
    checkpoints: tokio::task::JoinHandle<()>,
    writes: mpsc::Sender<writer::WriteRequest>,
    head: watch::Receiver<Position>,
}

impl SqliteLog {
    /// Opens (or creates) the log file at `path`.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        let (writer_conn, readers) = open::open(path).await?;
        let head_now = read::head(&readers)
            .await
            .map_err(|e| OpenError::Unreadable(path.display().to_string(), e.to_string()))?;
        let (head_tx, head) = watch::channel(head_now);
        let (writes, rx) = mpsc::channel(4096);
        tokio::spawn(writer::run(writer_conn, rx, head_tx));
        let checkpoints = tokio::spawn(open::checkpointer(path.to_path_buf()));
        Ok(SqliteLog {
            inner: Arc::new(Inner {
                readers,
                checkpoints,
                writes,
                head,
            }),
        })
    }

    async fn submit(
        &self,
        commits: Vec<Commit>,
    ) -> Result<Vec<Result<Appended, LogError>>, LogError> {
        for c in &commits {
            c.stream.validate().map_err(LogError::Invalid)?;
            if c.events.is_empty() {
                return Err(LogError::Invalid(
                    "a commit needs at least one event".into(),
                ));
            }
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .writes
            .send(writer::WriteRequest { commits, reply })
            .await
            .map_err(|_| LogError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| LogError::Unavailable("the SQLite writer has stopped".into()))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.checkpoints.abort();
    }
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(&self, commit: Commit) -> Result<Appended, LogError> {
        self.submit(vec![commit])
            .await?
            .pop()
            .unwrap_or_else(|| Err(LogError::Unavailable("no answer from the writer".into())))
    }

    async fn append_batch(&self, commits: Vec<Commit>) -> Vec<Result<Appended, LogError>> {
        let n = commits.len();
        match self.submit(commits).await {
            Ok(results) => results,
            Err(e) => vec![Err(e); n],
        }
    }

    async fn read_stream(
        &self,
        org: ObjectId,
        stream: &StreamId,
    ) -> Result<Vec<RecordedCommit>, LogError> {
        read::stream(&self.inner.readers, org, stream).await
    }

    async fn read_last(
        &self,
        org: ObjectId,
        stream: &StreamId,
    ) -> Result<Option<RecordedCommit>, LogError> {
        read::last(&self.inner.readers, org, stream).await
    }

    async fn read_after(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedCommit>, LogError> {
        read::after(&self.inner.readers, after, limit).await
    }

    async fn subscribe(&self, after: Position) -> Result<CommitStream, LogError> {
        Ok(read::subscribe(
            self.inner.readers.clone(),
            self.inner.head.clone(),
            after,
        ))
    }

    async fn head(&self) -> Result<Position, LogError> {
        read::head(&self.inner.readers).await
    }
}
