//! In-memory projections: the state protocol servers answer from. Each batch of
//! commits is applied to a copy of the current state, which is then published as a
//! new immutable snapshot with one atomic pointer swap: readers never lock and never
//! see half a batch. At start the state is rebuilt from the log.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use castellan_app::ports::EventLog;
use castellan_domain::envelope::{Envelope, Position, RecordedCommit};
use futures::StreamExt;
use tokio::sync::watch;

use crate::progress::Progress;
use crate::runtime::ProjectionMetrics;

pub type MemoryReduceFn<S> = fn(&mut S, &Envelope) -> Result<(), String>;

/// A state and the log position it includes.
pub struct Snapshot<S> {
    pub position: Position,
    pub state: S,
}

pub struct MemoryProjection<S> {
    name: &'static str,
    reducers: HashMap<&'static str, MemoryReduceFn<S>>,
    current: ArcSwap<Snapshot<S>>,
    progress: watch::Sender<Position>,
    pub metrics: Arc<ProjectionMetrics>,
}

impl<S: Clone + Default + Send + Sync + 'static> MemoryProjection<S> {
    pub fn new(name: &'static str, reducers: &[(&'static str, MemoryReduceFn<S>)]) -> Arc<Self> {
        Arc::new(MemoryProjection {
            name,
            reducers: reducers.iter().copied().collect(),
            current: ArcSwap::from_pointee(Snapshot {
                position: 0,
                state: S::default(),
            }),
            progress: watch::channel(0).0,
            metrics: Arc::default(),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The current snapshot; holding it never blocks the writer.
    pub fn snapshot(&self) -> Arc<Snapshot<S>> {
        self.current.load_full()
    }

    pub fn progress(&self) -> Progress {
        Progress::new(self.progress.subscribe())
    }

    /// Applies a batch and publishes the new snapshot. Commits at or below the
    /// snapshot's position are skipped; an event a reducer refuses is logged and counted.
    pub fn apply(&self, batch: &[RecordedCommit]) {
        let old = self.current.load();
        let fresh: Vec<&RecordedCommit> =
            batch.iter().filter(|c| c.position > old.position).collect();
        let Some(last) = fresh.last().map(|c| c.position) else {
            return;
        };
        let mut state = old.state.clone();
        let (mut applied, mut failed) = (0, 0);
        for commit in fresh {
            for e in commit.envelopes() {
                if let Some(reduce) = self.reducers.get(e.event_type.as_str()) {
                    match reduce(&mut state, &e) {
                        Ok(()) => applied += 1,
                        Err(reason) => {
                            failed += 1;
                            tracing::error!(projection = self.name, position = e.position, event_id = %e.event_id, %reason, "event skipped");
                        }
                    }
                }
            }
        }
        self.current.store(Arc::new(Snapshot {
            position: last,
            state,
        }));
        self.metrics
            .events_applied
            .fetch_add(applied, Ordering::Relaxed);
        self.metrics
            .events_failed
            .fetch_add(failed, Ordering::Relaxed);
        self.metrics.position.store(last, Ordering::Relaxed);
        self.progress.send_replace(last);
    }

    /// Follows the log from the snapshot's position until shutdown.
    pub async fn run(self: Arc<Self>, log: Arc<dyn EventLog>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let from = self.snapshot().position;
            let subscription = log.subscribe(from).await;
            match subscription {
                Ok(stream) => {
                    let mut stream = stream.ready_chunks(1024);
                    loop {
                        tokio::select! {
                            batch = stream.next() => {
                                let Some(batch) = batch else { break };
                                let ok: Result<Vec<_>, _> = batch.into_iter().collect();
                                match ok {
                                    Ok(commits) => { self.apply(&commits); backoff = Duration::from_millis(100); }
                                    Err(e) => { tracing::warn!(projection = self.name, error = %e, "log read failed"); break; }
                                }
                            }
                            _ = shutdown.changed() => return,
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(projection = self.name, error = %e, "cannot subscribe; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
