//! The event-log contract on the NATS JetStream adapter, against a real nats-server.

use std::sync::Arc;

use castellan_app::ports::EventLog;
use castellan_e2e::contract::{self, Harness};
use castellan_e2e::nats::NatsServer;
use castellan_log_nats::{NatsLog, StreamSettings};
use futures::future::BoxFuture;

struct Nats {
    server: NatsServer,
}

impl Harness for Nats {
    fn open(&mut self) -> BoxFuture<'_, Arc<dyn EventLog>> {
        Box::pin(async move {
            Arc::new(
                NatsLog::connect(&self.server.url(), StreamSettings::default())
                    .await
                    .unwrap(),
            ) as Arc<dyn EventLog>
        })
    }
    fn restart(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.server.kill();
            self.server.start_again();
        })
    }
}

async fn log() -> Option<(Nats, Arc<dyn EventLog>)> {
    let mut h = Nats {
        server: NatsServer::start()?,
    };
    let log = h.open().await;
    Some((h, log))
}

#[tokio::test]
async fn append_read_round_trip() {
    let Some((_h, log)) = log().await else { return };
    contract::append_read_round_trip(log).await;
}

#[tokio::test]
async fn stale_expected_version_conflicts_and_writes_nothing() {
    let Some((_h, log)) = log().await else { return };
    contract::stale_expected_version_conflicts_and_writes_nothing(log).await;
}

#[tokio::test]
async fn retried_commit_is_stored_once() {
    let Some((_h, log)) = log().await else { return };
    contract::retried_commit_is_stored_once(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_one_wins_per_version() {
    let Some((_h, log)) = log().await else { return };
    contract::concurrent_writers_one_wins_per_version(log).await;
}

#[tokio::test]
async fn auth_appends_skip_per_aggregate_checks() {
    let Some((_h, log)) = log().await else { return };
    contract::auth_appends_skip_per_aggregate_checks(log).await;
}

#[tokio::test]
async fn subscribe_delivers_every_later_commit_in_order() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let mut h = Nats { server };
    contract::subscribe_delivers_every_later_commit_in_order(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_keys_hold_under_concurrency() {
    let Some((_h, log)) = log().await else { return };
    contract::unique_keys_hold_under_concurrency(log).await;
}
