//! Opening the log file: pragmas, schema, and refusing files that are not ours.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

/// Identifies a Castellan event log file.
const KIND: &str = "castellan-event-log";
const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("event log {0}: cannot open: {1}")]
    Unreadable(String, String),
    #[error("event log {0}: not a SQLite database (corrupt, or another kind of file)")]
    NotSqlite(String),
    #[error("event log {0}: a SQLite database of another application (no castellan_meta table); refusing to touch it")]
    Foreign(String),
    #[error("event log {0}: written by a newer Castellan (schema {1}, this one reads {2})")]
    TooNew(String, i64, i64),
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS castellan_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commits (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    stream_version INTEGER,
    body TEXT NOT NULL,
    UNIQUE (org_id, stream, stream_version)
);
"#;

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::from_str("sqlite://")
        .expect("static sqlite url")
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // Checkpoints run in the background (see `checkpointer`), not inside a commit.
        .pragma("wal_autocheckpoint", "0")
}

fn classify(path: &Path, e: sqlx::Error) -> OpenError {
    let text = e.to_string();
    let name = path.display().to_string();
    if text.contains("not a database") || text.contains("malformed") {
        OpenError::NotSqlite(name)
    } else {
        OpenError::Unreadable(name, text)
    }
}

/// Copies the WAL back into the database every half second, off the write path: an
/// automatic checkpoint would run inside whichever commit crossed the threshold and
/// stall every append queued behind it. PASSIVE never blocks the writer.
pub async fn checkpointer(path: std::path::PathBuf) {
    let Ok(mut conn) = SqliteConnection::connect_with(&options(&path)).await else {
        return;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// Opens the file: a dedicated writer connection and a pool of readers.
pub async fn open(path: &Path) -> Result<(SqliteConnection, SqlitePool), OpenError> {
    let name = path.display().to_string();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| OpenError::Unreadable(name.clone(), e.to_string()))?;
    }
    let mut conn = SqliteConnection::connect_with(&options(path))
        .await
        .map_err(|e| classify(path, e))?;
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut conn)
        .await
        .map_err(|e| classify(path, e))?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let ours = tables.iter().any(|t| t == "castellan_meta");
    if !ours && !tables.is_empty() {
        return Err(OpenError::Foreign(name));
    }
    if ours {
        let kind: Option<String> =
            sqlx::query_scalar("SELECT value FROM castellan_meta WHERE key = 'kind'")
                .fetch_optional(&mut conn)
                .await
                .map_err(|e| classify(path, e))?;
        if kind.as_deref() != Some(KIND) {
            return Err(OpenError::Foreign(name));
        }
        let version: Option<String> =
            sqlx::query_scalar("SELECT value FROM castellan_meta WHERE key = 'schema_version'")
                .fetch_optional(&mut conn)
                .await
                .map_err(|e| classify(path, e))?;
        let version = version.and_then(|v| v.parse().ok()).unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(OpenError::TooNew(name, version, SCHEMA_VERSION));
        }
    }
    for statement in SCHEMA.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .map_err(|e| classify(path, e))?;
    }
    sqlx::query("INSERT OR IGNORE INTO castellan_meta (key, value) VALUES ('kind', ?), ('schema_version', ?)")
        .bind(KIND)
        .bind(SCHEMA_VERSION.to_string())
        .execute(&mut conn)
        .await
        .map_err(|e| classify(path, e))?;
    let readers = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options(path).read_only(true))
        .await
        .map_err(|e| classify(path, e))?;
    Ok((conn, readers))
}
