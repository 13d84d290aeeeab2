//! The event-log contract on the embedded SQLite adapter.

use std::path::PathBuf;
use std::sync::Arc;

use castellan_app::ports::EventLog;
use castellan_e2e::contract::{self, Harness};
use castellan_log_sqlite::SqliteLog;
use futures::future::BoxFuture;

struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        Sqlite { _dir: dir, path }
    }
}

impl Harness for Sqlite {
    fn open(&mut self) -> BoxFuture<'_, Arc<dyn EventLog>> {
        Box::pin(async move {
            Arc::new(SqliteLog::open(&self.path).await.unwrap()) as Arc<dyn EventLog>
        })
    }
    fn restart(&mut self) -> BoxFuture<'_, ()> {
        // The handles were dropped by the caller; the next open reads the same file.
        Box::pin(async {})
    }
}

async fn log() -> (Sqlite, Arc<dyn EventLog>) {
    let mut h = Sqlite::new();
    let log = h.open().await;
    (h, log)
}

#[tokio::test]
async fn append_read_round_trip() {
    let (_h, log) = log().await;
    contract::append_read_round_trip(log).await;
}

#[tokio::test]
async fn stale_expected_version_conflicts_and_writes_nothing() {
    let (_h, log) = log().await;
    contract::stale_expected_version_conflicts_and_writes_nothing(log).await;
}

#[tokio::test]
async fn retried_commit_is_stored_once() {
    let (_h, log) = log().await;
    contract::retried_commit_is_stored_once(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_one_wins_per_version() {
    let (_h, log) = log().await;
    contract::concurrent_writers_one_wins_per_version(log).await;
}

#[tokio::test]
async fn auth_appends_skip_per_aggregate_checks() {
    let (_h, log) = log().await;
    contract::auth_appends_skip_per_aggregate_checks(log).await;
}

#[tokio::test]
async fn subscribe_delivers_every_later_commit_in_order() {
    let mut h = Sqlite::new();
    contract::subscribe_delivers_every_later_commit_in_order(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_keys_hold_under_concurrency() {
    let (_h, log) = log().await;
    contract::unique_keys_hold_under_concurrency(log).await;
}

#[tokio::test]
async fn a_foreign_or_corrupt_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    let err = SqliteLog::open(&garbage)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("garbage.db") && err.contains("not a SQLite database"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        vec![0x42u8; 8192],
        "file untouched"
    );

    let foreign = dir.path().join("foreign.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&foreign)
        .create_if_missing(true);
    let mut conn = sqlx::ConnectOptions::connect(&opts).await.unwrap();
    sqlx::query("CREATE TABLE invoices (id INTEGER)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let err = SqliteLog::open(&foreign)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("foreign.db") && err.contains("another application"),
        "{err}"
    );
}
