//! Reads: a stream, commits after a position, and subscriptions that follow the head.

use castellan_app::ports::{CommitStream, LogError};
use castellan_domain::envelope::{Commit, Position, RecordedCommit, StreamId};
use castellan_domain::ObjectId;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, watch};

fn unavailable(e: sqlx::Error) -> LogError {
    LogError::Unavailable(format!("SQLite: {e}"))
}

fn decode(row: &SqliteRow) -> Result<RecordedCommit, LogError> {
    let position: i64 = row.get(0);
    let version: Option<i64> = row.get(1);
    let body: String = row.get(2);
    let commit: Commit = serde_json::from_str(&body)
        .map_err(|e| LogError::Corrupt(format!("commit at position {position}: {e}")))?;
    Ok(RecordedCommit {
        position: position as u64,
        stream_version: version.unwrap_or(position) as u64,
        commit,
    })
}

pub async fn head(pool: &SqlitePool) -> Result<Position, LogError> {
    let p: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM commits")
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    Ok(p as u64)
}

pub async fn stream(
    pool: &SqlitePool,
    org: ObjectId,
    stream: &StreamId,
) -> Result<Vec<RecordedCommit>, LogError> {
    sqlx::query(
        "SELECT position, stream_version, body FROM commits
         WHERE org_id = ?1 AND stream = ?2 ORDER BY position",
    )
    .bind(org.to_string())
    .bind(stream.to_string())
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(decode)
    .collect()
}

pub async fn last(
    pool: &SqlitePool,
    org: ObjectId,
    stream: &StreamId,
) -> Result<Option<RecordedCommit>, LogError> {
    sqlx::query(
        "SELECT position, stream_version, body FROM commits
         WHERE org_id = ?1 AND stream = ?2 ORDER BY stream_version DESC LIMIT 1",
    )
    .bind(org.to_string())
    .bind(stream.to_string())
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?
    .as_ref()
    .map(decode)
    .transpose()
}

pub async fn after(
    pool: &SqlitePool,
    after: Position,
    limit: usize,
) -> Result<Vec<RecordedCommit>, LogError> {
    sqlx::query(
        "SELECT position, stream_version, body FROM commits
         WHERE position > ?1 ORDER BY position LIMIT ?2",
    )
    .bind(after as i64)
    .bind(limit.min(100_000) as i64)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(decode)
    .collect()
}

/// Follows the log from `from`: pages through what is stored, then waits for the
/// writer to move the head. The feeding task ends when the subscriber drops.
pub fn subscribe(
    pool: SqlitePool,
    mut head: watch::Receiver<Position>,
    from: Position,
) -> CommitStream {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut next = from;
        loop {
            match after(&pool, next, 512).await {
                Ok(batch) if batch.is_empty() => {
                    // Wait until the head passes what we have delivered.
                    let waited = head.wait_for(|h| *h > next).await;
                    if waited.is_err() {
                        return;
                    }
                }
                Ok(batch) => {
                    for commit in batch {
                        next = commit.position;
                        if tx.send(Ok(commit)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
