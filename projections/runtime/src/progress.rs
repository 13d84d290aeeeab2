//! Positions reached by projections, so that a read can wait (bounded) until the
//! write it follows is visible: read-your-writes.

use std::time::Duration;

use castellan_domain::envelope::Position;
use tokio::sync::watch;

/// A handle on one projection's position.
#[derive(Clone)]
pub struct Progress(watch::Receiver<Position>);

impl Progress {
    pub fn new(rx: watch::Receiver<Position>) -> Self {
        Progress(rx)
    }

    pub fn position(&self) -> Position {
        *self.0.borrow()
    }

    /// Waits for the next move of the position; `None` once the projection is gone.
    pub async fn changed(&mut self) -> Option<Position> {
        self.0.changed().await.ok()?;
        Some(*self.0.borrow_and_update())
    }

    /// Waits until the projection has applied `min`. False if `timeout` passed first.
    pub async fn wait_for(&self, min: Position, timeout: Duration) -> bool {
        if self.position() >= min {
            return true;
        }
        let mut rx = self.0.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= min))
            .await
            .map(|r| r.is_ok());
        reached.unwrap_or(false)
    }
}
