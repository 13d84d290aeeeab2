//! An event log decorator that counts appends for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use castellan_app::ports::{Appended, CommitStream, EventLog, LogError};
use castellan_domain::envelope::{Commit, Position, RecordedCommit, StreamId};
use castellan_domain::ObjectId;

#[derive(Default)]
pub struct LogMetrics {
    pub commits_ok: AtomicU64,
    pub events_ok: AtomicU64,
    pub conflicts: AtomicU64,
    pub failures: AtomicU64,
    pub append_micros: AtomicU64,
}

pub struct MeteredLog {
    inner: Arc<dyn EventLog>,
    pub metrics: Arc<LogMetrics>,
}

impl MeteredLog {
    pub fn new(inner: Arc<dyn EventLog>) -> Self {
        MeteredLog {
            inner,
            metrics: Arc::default(),
        }
    }

    fn count(&self, events: usize, result: &Result<Appended, LogError>) {
        let m = &self.metrics;
        match result {
            Ok(_) => {
                m.commits_ok.fetch_add(1, Ordering::Relaxed);
                m.events_ok.fetch_add(events as u64, Ordering::Relaxed);
            }
            Err(LogError::Conflict { .. }) => {
                m.conflicts.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                m.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[async_trait]
impl EventLog for MeteredLog {
    async fn append(&self, commit: Commit) -> Result<Appended, LogError> {
        let started = Instant::now();
        let events = commit.events.len();
        let result = self.inner.append(commit).await;
        self.metrics
            .append_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.count(events, &result);
        result
    }

    async fn append_batch(&self, commits: Vec<Commit>) -> Vec<Result<Appended, LogError>> {
        let started = Instant::now();
        let sizes: Vec<usize> = commits.iter().map(|c| c.events.len()).collect();
        let results = self.inner.append_batch(commits).await;
        self.metrics
            .append_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        for (n, r) in sizes.into_iter().zip(&results) {
            self.count(n, r);
        }
        results
    }

    async fn read_stream(
        &self,
        org: ObjectId,
        stream: &StreamId,
    ) -> Result<Vec<RecordedCommit>, LogError> {
        self.inner.read_stream(org, stream).await
    }

    async fn read_last(
        &self,
        org: ObjectId,
        stream: &StreamId,
    ) -> Result<Option<RecordedCommit>, LogError> {
        self.inner.read_last(org, stream).await
    }

    async fn read_after(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedCommit>, LogError> {
        self.inner.read_after(after, limit).await
    }

    async fn subscribe(&self, after: Position) -> Result<CommitStream, LogError> {
        self.inner.subscribe(after).await
    }

    async fn head(&self) -> Result<Position, LogError> {
        self.inner.head().await
    }
}
