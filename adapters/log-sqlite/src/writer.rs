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
    let commits: Vec<&Commit> = group.iter().flat_map(|r| r.commits.iter()).collect();
    let flat = match write_bulk(conn, &commits).await {
        Ok(results) => results,
        Err(e) => {
            // A statement failed (a writer outside this process took a version slot,
            // say): start over one commit at a time, each with its own answer.
            tracing::debug!(error = %e, "bulk insert failed; writing commit by commit");
            if let Err(e) = restart_transaction(conn).await {
                return fail_all(unavailable(e));
            }
            let mut out = Vec::with_capacity(commits.len());
            for commit in &commits {
                out.push(write_one(conn, commit).await);
            }
            out
        }
    };
    if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return fail_all(unavailable(e));
    }
    let mut flat = flat.into_iter();
    group
        .iter()
        .map(|r| flat.by_ref().take(r.commits.len()).collect())
        .collect()
}

async fn restart_transaction(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    Ok(())
}

/// Rows per multi-row statement (5 parameters a row, well under SQLite's limit).
const CHUNK: usize = 200;

/// Writes a group with a few statements instead of one per commit: look up known
/// commit ids and current stream versions, decide every commit in memory (in order,
/// so two commits of one stream in a group see each other), insert the accepted ones.
/// Runs inside the writer's transaction; nobody else writes meanwhile
/// (BEGIN IMMEDIATE holds SQLite's write lock).
async fn write_bulk(
    conn: &mut SqliteConnection,
    commits: &[&Commit],
) -> Result<Vec<Result<Appended, LogError>>, sqlx::Error> {
    use std::collections::HashMap;

    let ids: Vec<String> = commits.iter().map(|c| c.commit_id.to_string()).collect();
    let mut known: HashMap<String, Appended> = HashMap::new();
    for chunk in ids.chunks(CHUNK * 2) {
        let sql = format!(
            "SELECT commit_id, position, COALESCE(stream_version, position) FROM commits WHERE commit_id IN ({})",
            placeholders(chunk.len(), 1)
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            known.insert(
                row.get(0),
                Appended {
                    position: row.get::<i64, _>(1) as u64,
                    stream_version: row.get::<i64, _>(2) as u64,
                    duplicate: true,
                },
            );
        }
    }

    let keys: Vec<(String, String)> = commits
        .iter()
        .filter(|c| !c.stream.is_auth())
        .map(|c| (c.org_id.to_string(), c.stream.to_string()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut versions: HashMap<(String, String), u64> = HashMap::new();
    for chunk in keys.chunks(CHUNK * 2) {
        let pairs: Vec<String> = (0..chunk.len())
            .map(|i| format!("(?{}, ?{})", 2 * i + 1, 2 * i + 2))
            .collect();
        // A correlated MAX per pair seeks the (org_id, stream, stream_version)
        // index; `(org_id, stream) IN (VALUES …)` would scan the whole index.
        let sql = format!(
            "SELECT v.column1, v.column2,
                    (SELECT MAX(stream_version) FROM commits WHERE org_id = v.column1 AND stream = v.column2)
             FROM (VALUES {}) AS v",
            pairs.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (org, stream) in chunk {
            q = q.bind(org).bind(stream);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let v: Option<i64> = row.get(2);
            versions.insert((row.get(0), row.get(1)), v.unwrap_or(0) as u64);
        }
    }

    // Decide each commit; accepted ones become rows.
    enum Fate {
        Done(Result<Appended, LogError>),
        Insert(usize),
    }
    let mut fates = Vec::with_capacity(commits.len());
    let mut rows: Vec<(String, String, String, Option<i64>, String)> = Vec::new();
    for (commit, id) in commits.iter().zip(&ids) {
        if let Some(dup) = known.get(id) {
            fates.push(Fate::Done(Ok(*dup)));
            continue;
        }
        let body = match serde_json::to_string(commit) {
            Ok(b) => b,
            Err(e) => {
                fates.push(Fate::Done(Err(LogError::Invalid(e.to_string()))));
                continue;
            }
        };
        let org = commit.org_id.to_string();
        let stream = commit.stream.to_string();
        let version = if commit.stream.is_auth() {
            None
        } else {
            let current = versions.entry((org.clone(), stream.clone())).or_insert(0);
            if let Some(expected) = commit.expected.as_version() {
                if expected != *current {
                    fates.push(Fate::Done(Err(LogError::Conflict {
                        stream,
                        expected: commit.expected,
                        actual: Some(*current),
                    })));
                    continue;
                }
            }
            *current += 1;
            Some(*current as i64)
        };
        // A commit id repeated inside the group is a retry of the first.
        known.insert(
            id.clone(),
            Appended {
                position: 0,
                stream_version: 0,
                duplicate: true,
            },
        );
        fates.push(Fate::Insert(rows.len()));
        rows.push((id.clone(), org, stream, version, body));
    }

    let mut positions: HashMap<String, u64> = HashMap::new();
    for chunk in rows.chunks(CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 5 * i;
                format!(
                    "(?{}, ?{}, ?{}, ?{}, ?{})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO commits (commit_id, org_id, stream, stream_version, body) VALUES {} RETURNING commit_id, position",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (id, org, stream, version, body) in chunk {
            q = q.bind(id).bind(org).bind(stream).bind(*version).bind(body);
        }
        for row in q.fetch_all(&mut *conn).await? {
            positions.insert(row.get(0), row.get::<i64, _>(1) as u64);
        }
    }

    let mut first_of: HashMap<&str, Appended> = HashMap::new();
    let mut out = Vec::with_capacity(commits.len());
    for (fate, id) in fates.into_iter().zip(&ids) {
        out.push(match fate {
            Fate::Done(r) => match r {
                // A repeat of a commit inserted earlier in this very group.
                Ok(a) if a.position == 0 => Ok(first_of
                    .get(id.as_str())
                    .map(|f| Appended {
                        duplicate: true,
                        ..*f
                    })
                    .unwrap_or(a)),
                other => other,
            },
            Fate::Insert(row) => {
                let position = positions[&rows[row].0];
                let a = Appended {
                    position,
                    stream_version: rows[row].3.map(|v| v as u64).unwrap_or(position),
                    duplicate: false,
                };
                first_of.insert(id.as_str(), a);
                Ok(a)
            }
        });
    }
    Ok(out)
}

/// `?1, ?2, …` for `n` parameters starting at `first`.
fn placeholders(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
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
