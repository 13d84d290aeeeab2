//! The event-log contract on the embedded SQLite adapter.

use std::path::PathBuf;
use std::sync::Arc;

use castellan_app::ports::EventLog;
use castellan_e2e::contract::Harness;
use castellan_log_sqlite::SqliteLog;
use futures::future::BoxFuture;

struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Harness for Sqlite {
    fn open(&mut self) -> BoxFuture<'_, Arc<dyn EventLog>> {
        Box::pin(async move {
            Arc::new(SqliteLog::open(&self.path).await.unwrap()) as Arc<dyn EventLog>
        })
    }
    fn restart(&mut self) -> BoxFuture<'_, ()> {
        // The caller dropped its handles (the writer stops); the next open reads the file.
        Box::pin(async {})
    }
}

async fn harness() -> Option<Sqlite> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    Some(Sqlite { _dir: dir, path })
}

castellan_e2e::contract_tests!(harness().await);

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
