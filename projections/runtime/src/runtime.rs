//! SQL projections and their runner.
//!
//! A projection is data: a name, reducers (event type → fn writing rows), and the
//! tables it owns (cleared on rebuild). The runner follows the log from the
//! projection's checkpoint and applies each batch of commits in one transaction that
//! also moves the checkpoint, so rows and checkpoint never disagree. Commits at or
//! below the checkpoint are skipped (idempotent apply). A reducer error sends the
//! event to `projection_failed_events` (its partial writes rolled back to a savepoint)
//! and the projection goes on instead of crash-looping.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use castellan_app::ports::EventLog;
use castellan_domain::envelope::{Envelope, Position, RecordedCommit};
use futures::future::BoxFuture;
use futures::StreamExt;
use sqlx::{AnyConnection, Connection, Row};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::progress::Progress;
use crate::store::{Dialect, ReadStore, WriteTx};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("cannot apply {event_type}: {reason}")]
    Apply { event_type: String, reason: String },
    #[error("read store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("event log: {0}")]
    Log(#[from] castellan_app::LogError),
}

impl ProjectionError {
    pub fn apply(e: &Envelope, reason: impl ToString) -> Self {
        ProjectionError::Apply {
            event_type: e.event_type.clone(),
            reason: reason.to_string(),
        }
    }

    /// Whether trying again later can succeed: the store or the log was busy or
    /// unreachable. Such an error pauses the projection (it retries from its
    /// checkpoint); only the others set an event aside in `projection_failed_events`.
    pub fn is_transient(&self) -> bool {
        match self {
            ProjectionError::Apply { .. } => false,
            ProjectionError::Log(_) => true,
            ProjectionError::Store(e) => transient_store_error(e),
        }
    }
}

/// Busy, locked, unreachable or shutting down, as opposed to a statement that can
/// never succeed (a constraint, a type, a syntax error).
pub fn transient_store_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite: BUSY (5) and LOCKED (6) with their extended codes (the low
            // byte). PostgreSQL: connection exceptions (08), serialization failures
            // and deadlocks (40), insufficient resources (53), operator intervention
            // (57: shutdown, cancel).
            let sqlite_busy = code
                .parse::<i64>()
                .map(|c| matches!(c & 0xff, 5 | 6))
                .unwrap_or(false);
            sqlite_busy
                || ["08", "40", "53", "57"]
                    .iter()
                    .any(|class| code.starts_with(class))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// Commits applied per transaction while following the log live.
const LIVE_BATCH: usize = 64;

pub type ReduceFn =
    for<'c> fn(&'c mut AnyConnection, &'c Envelope) -> BoxFuture<'c, Result<(), ProjectionError>>;

/// One event type and what to do with it.
pub struct Reducer {
    pub event_type: &'static str,
    pub reduce: ReduceFn,
}

pub struct SqlProjection {
    pub name: &'static str,
    pub reducers: &'static [Reducer],
    /// Cleared on rebuild.
    pub tables: &'static [&'static str],
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct ProjectionMetrics {
    pub position: AtomicU64,
    pub events_applied: AtomicU64,
    pub events_failed: AtomicU64,
    /// Occurred-at to applied, of the last event applied, in microseconds.
    pub last_lag_micros: AtomicU64,
}

fn now_text() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The stored checkpoint of a projection (0 if it never ran).
pub async fn checkpoint(store: &ReadStore, name: &str) -> Result<Position, sqlx::Error> {
    let row = sqlx::query("SELECT position FROM projection_checkpoints WHERE name = $1")
        .bind(name)
        .fetch_optional(&store.pool)
        .await?;
    Ok(row.map(|r| r.get::<i64, _>(0) as u64).unwrap_or(0))
}

/// Clears the projection's tables, failed events and checkpoint in one transaction.
pub async fn reset(store: &ReadStore, projection: &SqlProjection) -> Result<(), sqlx::Error> {
    let mut tx = store.begin_write().await?;
    for table in projection.tables {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM projection_failed_events WHERE projection = $1")
        .bind(projection.name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
        .bind(projection.name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Runs one SQL projection against the log.
pub struct Runner {
    store: ReadStore,
    log: Arc<dyn EventLog>,
    projection: &'static SqlProjection,
    reducers: HashMap<&'static str, ReduceFn>,
    progress: watch::Sender<Position>,
    pub metrics: Arc<ProjectionMetrics>,
}

impl Runner {
    pub fn new(
        store: ReadStore,
        log: Arc<dyn EventLog>,
        projection: &'static SqlProjection,
    ) -> Self {
        let reducers = projection
            .reducers
            .iter()
            .map(|r| (r.event_type, r.reduce))
            .collect();
        Runner {
            store,
            log,
            projection,
            reducers,
            progress: watch::channel(0).0,
            metrics: Arc::default(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.projection.name
    }

    pub fn progress(&self) -> Progress {
        Progress::new(self.progress.subscribe())
    }

    /// Follows the log until `shutdown` turns true. Transient failures (log or store
    /// unreachable) are retried with backoff from the stored checkpoint.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        const FIRST_BACKOFF: Duration = Duration::from_millis(100);
        let mut backoff = FIRST_BACKOFF;
        let mut paused_at = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.follow(&mut shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    // A pause after progress starts the backoff over: one busy
                    // moment an hour must not cost the next one five seconds.
                    let at = *self.progress.borrow();
                    if paused_at != Some(at) {
                        backoff = FIRST_BACKOFF;
                    }
                    paused_at = Some(at);
                    tracing::warn!(projection = self.projection.name, error = %e, "projection paused; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn follow(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ProjectionError> {
        let from = checkpoint(&self.store, self.projection.name).await?;
        self.publish(from);
        // Small live batches: a commit becomes visible when its batch commits, so the
        // batch size bounds the latency; catch-up (below) uses large ones.
        let mut commits = self.log.subscribe(from).await?.ready_chunks(LIVE_BATCH);
        loop {
            tokio::select! {
                batch = commits.next() => {
                    let Some(batch) = batch else { return Err(castellan_app::LogError::Unavailable("subscription ended".into()).into()) };
                    let batch: Vec<RecordedCommit> = batch.into_iter().collect::<Result<_, _>>()?;
                    self.apply(&batch).await?;
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    fn publish(&self, position: Position) {
        self.metrics.position.store(position, Ordering::Relaxed);
        self.progress.send_if_modified(|p| {
            let moved = position > *p;
            *p = (*p).max(position);
            moved
        });
    }

    /// Applies the commits above the checkpoint in one transaction with the checkpoint.
    pub async fn apply(&self, batch: &[RecordedCommit]) -> Result<(), ProjectionError> {
        let Some(last) = batch.last().map(|c| c.position) else {
            return Ok(());
        };
        let mut tx = self.store.begin_write().await?;
        let lock = match self.store.dialect {
            // Another replica applying the same projection waits here, then skips
            // what it finds already applied.
            Dialect::Postgres => {
                "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE"
            }
            Dialect::Sqlite => "SELECT position FROM projection_checkpoints WHERE name = $1",
        };
        let current = sqlx::query(lock)
            .bind(self.projection.name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get::<i64, _>(0) as u64)
            .unwrap_or(0);
        if last <= current {
            tx.rollback().await?;
            self.publish(current);
            return Ok(());
        }
        // Fast path: the whole batch without savepoints. Should a reducer fail, the
        // batch is rolled back and applied again with a savepoint per event, so that
        // only the failing events are set aside.
        let fresh: Vec<&RecordedCommit> = batch.iter().filter(|c| c.position > current).collect();
        let (applied, failed, newest) = match self.apply_events(&mut tx, &fresh, false).await? {
            Some(outcome) => outcome,
            None => {
                tx.rollback().await?;
                tx = self.store.begin_write().await?;
                sqlx::query(lock)
                    .bind(self.projection.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                self.apply_events(&mut tx, &fresh, true)
                    .await?
                    .expect("with savepoints every failure is recorded")
            }
        };
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(self.projection.name)
        .bind(last as i64)
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.metrics
            .events_applied
            .fetch_add(applied, Ordering::Relaxed);
        self.metrics
            .events_failed
            .fetch_add(failed, Ordering::Relaxed);
        if let Some(at) = newest {
            let lag = (OffsetDateTime::now_utc() - at).whole_microseconds().max(0) as u64;
            self.metrics.last_lag_micros.store(lag, Ordering::Relaxed);
        }
        self.publish(last);
        Ok(())
    }

    /// Runs the reducers over `commits`. Without savepoints, returns `None` at the
    /// first reducer error (the caller rolls back); with savepoints, records each
    /// failing event and goes on.
    async fn apply_events(
        &self,
        tx: &mut WriteTx,
        commits: &[&RecordedCommit],
        savepoints: bool,
    ) -> Result<Option<(u64, u64, Option<OffsetDateTime>)>, ProjectionError> {
        let (mut applied, mut failed) = (0u64, 0u64);
        let mut newest: Option<OffsetDateTime> = None;
        for commit in commits {
            for envelope in commit.envelopes() {
                let Some(reduce) = self.reducers.get(envelope.event_type.as_str()) else {
                    continue;
                };
                if !savepoints {
                    match reduce(&mut *tx, &envelope).await {
                        Ok(()) => {
                            applied += 1;
                            newest = Some(envelope.occurred_at);
                        }
                        Err(e) if e.is_transient() => return Err(e),
                        Err(_) => return Ok(None),
                    }
                    continue;
                }
                let mut savepoint = (**tx).begin().await?;
                match reduce(&mut savepoint, &envelope).await {
                    Ok(()) => {
                        savepoint.commit().await?;
                        applied += 1;
                        newest = Some(envelope.occurred_at);
                    }
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        savepoint.rollback().await?;
                        failed += 1;
                        tracing::error!(projection = self.projection.name, position = envelope.position,
                            event_id = %envelope.event_id, error = %e, "event sent to projection_failed_events");
                        record_failure(tx, self.projection.name, &envelope, &e.to_string()).await?;
                    }
                }
            }
        }
        Ok(Some((applied, failed, newest)))
    }

    /// Applies everything up to the log's current head, then returns (for the CLI).
    pub async fn catch_up(&self) -> Result<Position, ProjectionError> {
        let head = self.log.head().await?;
        let mut at = checkpoint(&self.store, self.projection.name).await?;
        if at < head {
            let mut commits = self.log.subscribe(at).await?.ready_chunks(1000);
            while at < head {
                let Some(batch) = commits.next().await else {
                    break;
                };
                let batch: Vec<RecordedCommit> = batch.into_iter().collect::<Result<_, _>>()?;
                self.apply(&batch).await?;
                at = batch.last().map(|c| c.position).unwrap_or(at);
            }
        }
        self.publish(at);
        Ok(at)
    }
}

async fn record_failure(
    conn: &mut AnyConnection,
    projection: &str,
    e: &Envelope,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_failed_events (projection, position, event_id, event_type, error, failed_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (projection, event_id) DO UPDATE SET error = excluded.error, failed_at = excluded.failed_at",
    )
    .bind(projection)
    .bind(e.position as i64)
    .bind(e.event_id.to_string())
    .bind(&e.event_type)
    .bind(error)
    .bind(now_text())
    .execute(conn)
    .await?;
    Ok(())
}
