//! The single writer with group commit.
//!
//! Appends arrive on a channel. The writer takes every request waiting (up to a
//! bound), writes them in one transaction and answers each after COMMIT returned,
//! i.e. after the fsync of synchronous=FULL. Under load many commits share one fsync;
//! alone, a commit pays one. Each commit's version check and insert is one statement,
//! so a conflicting commit writes nothing and does not disturb the others.

use castellan_app::ports::{Appended, LogError};
use castellan_domain::envelope::{Commit, Position};
use sqlx::{Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};

pub struct WriteRequest {
    pub commits: Vec<Commit>,
    pub reply: oneshot::Sender<Vec<Result<Appended, LogError>>>,
}

/// Commits written in one transaction at the most.
const MAX_GROUP: usize = 2048;

pub async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<WriteRequest>,
    head: watch::Sender<Position>,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let mut size = group[0].commits.len();
        while size < MAX_GROUP {
            match rx.try_recv() {
                Ok(req) => {
                    size += req.commits.len();
                    group.push(req);
                }
                Err(_) => break,
            }
        }
        let results = write_group(&mut conn, &group).await;
        if let Some(max) = results
            .iter()
            .flatten()
            .filter_map(|r| r.as_ref().ok())
            .map(|a| a.position)
            .max()
        {
            head.send_if_modified(|h| {
                let moved = max > *h;
                *h = (*h).max(max);
                moved
            });
        }
        for (req, res) in group.into_iter().zip(results) {
            let _ = req.reply.send(res);
        }
    }
}

async fn write_group(
    conn: &mut SqliteConnection,
    group: &[WriteRequest],
) -> Vec<Vec<Result<Appended, LogError>>> {
    let unavailable = |e: sqlx::Error| LogError::Unavailable(format!("SQLite: {e}"));
    let fail_all = |e: LogError| -> Vec<Vec<Result<Appended, LogError>>> {
        group
            .iter()
            .map(|r| vec![Err(e.clone()); r.commits.len()])
            .collect()
    };
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        return fail_all(unavailable(e));
    }
    let mut results = Vec::with_capacity(group.len());
    for req in group {
        let mut answers = Vec::with_capacity(req.commits.len());
        for commit in &req.commits {
            answers.push(write_one(conn, commit).await);
        }
        results.push(answers);
    }
    if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return fail_all(unavailable(e));
    }
    results
}

async fn write_one(conn: &mut SqliteConnection, commit: &Commit) -> Result<Appended, LogError> {
    let body = serde_json::to_string(commit).map_err(|e| LogError::Invalid(e.to_string()))?;
    let org = commit.org_id.to_string();
    let stream = commit.stream.to_string();
    let commit_id = commit.commit_id.to_string();
    let inserted = if commit.stream.is_auth() {
        sqlx::query(
            "INSERT INTO commits (commit_id, org_id, stream, stream_version, body)
             VALUES (?1, ?2, ?3, NULL, ?4) RETURNING position",
        )
        .bind(&commit_id)
        .bind(&org)
        .bind(&stream)
        .bind(&body)
        .fetch_optional(&mut *conn)
        .await
    } else {
        // Check and insert in one statement: the row is written only when the
        // stream's current version is the expected one.
        let expected = commit.expected.as_version().map(|v| v as i64);
        sqlx::query(
            "INSERT INTO commits (commit_id, org_id, stream, stream_version, body)
             SELECT ?1, ?2, ?3, COALESCE(MAX(stream_version), 0) + 1, ?4
             FROM commits WHERE org_id = ?2 AND stream = ?3
             HAVING ?5 IS NULL OR COALESCE(MAX(stream_version), 0) = ?5
             RETURNING position, stream_version",
        )
        .bind(&commit_id)
        .bind(&org)
        .bind(&stream)
        .bind(&body)
        .bind(expected)
        .fetch_optional(&mut *conn)
        .await
    };
    match inserted {
        Ok(Some(row)) => {
            let position: i64 = row.get(0);
            let version = if commit.stream.is_auth() {
                position
            } else {
                row.get(1)
            };
            Ok(Appended {
                position: position as u64,
                stream_version: version as u64,
                duplicate: false,
            })
        }
        Ok(None) => {
            if let Some(dup) = find_duplicate(conn, &commit_id).await? {
                return Ok(dup);
            }
            Err(LogError::Conflict {
                stream: stream.clone(),
                expected: commit.expected,
                actual: current_version(conn, &org, &stream).await.ok(),
            })
        }
        Err(e) if is_unique_violation(&e) => match find_duplicate(conn, &commit_id).await? {
            Some(dup) => Ok(dup),
            // The version slot was taken (a writer outside this process).
            None => Err(LogError::Conflict {
                stream,
                expected: commit.expected,
                actual: None,
            }),
        },
        Err(e) => Err(LogError::Unavailable(format!("SQLite: {e}"))),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

async fn find_duplicate(
    conn: &mut SqliteConnection,
    commit_id: &str,
) -> Result<Option<Appended>, LogError> {
    let row = sqlx::query(
        "SELECT position, COALESCE(stream_version, position) FROM commits WHERE commit_id = ?1",
    )
    .bind(commit_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| LogError::Unavailable(format!("SQLite: {e}")))?;
    Ok(row.map(|r| Appended {
        position: r.get::<i64, _>(0) as u64,
        stream_version: r.get::<i64, _>(1) as u64,
        duplicate: true,
    }))
}

async fn current_version(
    conn: &mut SqliteConnection,
    org: &str,
    stream: &str,
) -> Result<u64, sqlx::Error> {
    let v: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(stream_version), 0) FROM commits WHERE org_id = ?1 AND stream = ?2",
    )
    .bind(org)
    .bind(stream)
    .fetch_one(&mut *conn)
    .await?;
    Ok(v as u64)
}
