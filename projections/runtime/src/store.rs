//! The SQL read store and its migrations.

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("read store {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("read store migration {version} ({name}) failed: {reason}")]
    Migration {
        version: i64,
        name: &'static str,
        reason: String,
    },
    #[error("read store: {0}")]
    Query(#[from] sqlx::Error),
}

/// A connection pool plus what kind of database is behind it.
///
/// Writes go through [`ReadStore::begin_write`] or [`ReadStore::write_turn`]: on
/// SQLite the process's writers take turns, and a transaction takes the write lock
/// when it begins (`BEGIN IMMEDIATE`). A deferred transaction that read first and
/// then writes fails at once with `database is locked` when another writer committed
/// in between (SQLite cannot upgrade its snapshot, and no busy timeout helps), which
/// is how projections used to stall behind the mail outbox.
#[derive(Clone)]
pub struct ReadStore {
    pub pool: AnyPool,
    pub dialect: Dialect,
    writer: Arc<Mutex<()>>,
}

/// A write transaction; on SQLite it also holds the process's writer turn.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

/// The transaction's connection, as a `Transaction` derefs: `&mut *tx` executes.
impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl ReadStore {
    /// The writer turn for a single write statement outside a transaction (`None`
    /// on PostgreSQL, whose writers need no turns).
    pub async fn write_turn(&self) -> Option<OwnedMutexGuard<()>> {
        match self.dialect {
            Dialect::Sqlite => Some(self.writer.clone().lock_owned().await),
            Dialect::Postgres => None,
        }
    }

    /// Begins a write transaction (see [`ReadStore`]).
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = self.write_turn().await;
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx, _turn: turn })
    }
}

/// One schema change; `postgres` overrides `sql` where the dialects differ.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
    postgres: Option<&'static str>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "projection runtime",
        sql: "CREATE TABLE IF NOT EXISTS projection_checkpoints (
                  name TEXT PRIMARY KEY,
                  position BIGINT NOT NULL,
                  updated_at TEXT NOT NULL
              );
              CREATE TABLE IF NOT EXISTS projection_failed_events (
                  projection TEXT NOT NULL,
                  position BIGINT NOT NULL,
                  event_id TEXT NOT NULL,
                  event_type TEXT NOT NULL,
                  error TEXT NOT NULL,
                  failed_at TEXT NOT NULL,
                  PRIMARY KEY (projection, event_id)
              )",
        postgres: None,
    },
    Migration {
        version: 2,
        name: "portal: organizations and admins",
        sql: "CREATE TABLE IF NOT EXISTS organizations (
                  id TEXT PRIMARY KEY,
                  name TEXT NOT NULL,
                  contact_name TEXT,
                  contact_email TEXT,
                  settings TEXT NOT NULL,
                  logo TEXT,
                  created_at TEXT NOT NULL,
                  updated_at TEXT NOT NULL,
                  version BIGINT NOT NULL,
                  position BIGINT NOT NULL
              );
              CREATE TABLE IF NOT EXISTS admins (
                  id TEXT PRIMARY KEY,
                  org_id TEXT NOT NULL,
                  email TEXT NOT NULL,
                  role TEXT NOT NULL,
                  api_key_id TEXT,
                  created_at TEXT NOT NULL,
                  updated_at TEXT NOT NULL
              );
              CREATE INDEX IF NOT EXISTS admins_by_org ON admins (org_id, email)",
        postgres: None,
    },
    Migration {
        version: 3,
        name: "blobs",
        sql: "CREATE TABLE IF NOT EXISTS blobs (
                  sha256 TEXT PRIMARY KEY,
                  content_type TEXT NOT NULL,
                  bytes BLOB NOT NULL
              )",
        postgres: Some(
            "CREATE TABLE IF NOT EXISTS blobs (
                  sha256 TEXT PRIMARY KEY,
                  content_type TEXT NOT NULL,
                  bytes BYTEA NOT NULL
              )",
        ),
    },
    Migration {
        version: 4,
        name: "portal: users",
        sql: "CREATE TABLE IF NOT EXISTS users (
                  id TEXT PRIMARY KEY,
                  org_id TEXT NOT NULL,
                  username TEXT NOT NULL,
                  email TEXT NOT NULL,
                  firstname TEXT,
                  lastname TEXT,
                  state TEXT NOT NULL,
                  password_status TEXT NOT NULL,
                  account_locked BIGINT NOT NULL,
                  unix_uid BIGINT,
                  doc TEXT NOT NULL,
                  created_at TEXT NOT NULL,
                  updated_at TEXT NOT NULL,
                  version BIGINT NOT NULL
              );
              CREATE INDEX IF NOT EXISTS users_by_org_username ON users (org_id, username);
              CREATE INDEX IF NOT EXISTS users_by_org_created ON users (org_id, created_at)",
        postgres: None,
    },
    Migration {
        version: 5,
        name: "portal: user groups, members, associations",
        sql: "CREATE TABLE IF NOT EXISTS user_groups (
                  id TEXT PRIMARY KEY,
                  org_id TEXT NOT NULL,
                  name TEXT NOT NULL,
                  doc TEXT NOT NULL,
                  created_at TEXT NOT NULL,
                  updated_at TEXT NOT NULL,
                  version BIGINT NOT NULL
              );
              CREATE INDEX IF NOT EXISTS user_groups_by_org_name ON user_groups (org_id, name);
              CREATE TABLE IF NOT EXISTS group_members (
                  org_id TEXT NOT NULL,
                  group_id TEXT NOT NULL,
                  user_id TEXT NOT NULL,
                  PRIMARY KEY (group_id, user_id)
              );
              CREATE INDEX IF NOT EXISTS group_members_by_user ON group_members (org_id, user_id);
              CREATE TABLE IF NOT EXISTS group_associations (
                  org_id TEXT NOT NULL,
                  group_id TEXT NOT NULL,
                  target_type TEXT NOT NULL,
                  target_id TEXT NOT NULL,
                  attributes TEXT NOT NULL,
                  PRIMARY KEY (group_id, target_type, target_id)
              )",
        postgres: None,
    },
    Migration {
        version: 6,
        name: "outbox: emails waiting to be sent",
        sql: "CREATE TABLE IF NOT EXISTS outbox (
                  id TEXT PRIMARY KEY,
                  org_id TEXT NOT NULL,
                  to_addr TEXT NOT NULL,
                  subject TEXT NOT NULL,
                  body TEXT NOT NULL,
                  created_at TEXT NOT NULL,
                  sent_at TEXT
              );
              CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (sent_at, created_at)",
        postgres: None,
    },
    Migration {
        version: 7,
        name: "outbox delivery: attempts, last error, lease",
        sql: "ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
              ALTER TABLE outbox ADD COLUMN last_error TEXT;
              ALTER TABLE outbox ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0",
        postgres: None,
    },
    Migration {
        version: 8,
        name: "admin grants: admins serving other organizations",
        sql: "CREATE TABLE IF NOT EXISTS admin_grants (
                  org_id TEXT NOT NULL,
                  admin_id TEXT NOT NULL,
                  home_org_id TEXT NOT NULL,
                  email TEXT NOT NULL,
                  role TEXT NOT NULL,
                  created_at TEXT NOT NULL,
                  PRIMARY KEY (org_id, admin_id)
              )",
        postgres: None,
    },
    Migration {
        version: 9,
        name: "users: employeeIdentifier column, lookups by email and employeeIdentifier indexed",
        sql: "ALTER TABLE users ADD COLUMN employee_identifier TEXT;
              UPDATE users SET employee_identifier = json_extract(doc, '$.profile.employeeIdentifier');
              CREATE INDEX IF NOT EXISTS users_by_org_email ON users (org_id, email);
              CREATE INDEX IF NOT EXISTS users_by_org_employee ON users (org_id, employee_identifier)",
        postgres: Some(
            "ALTER TABLE users ADD COLUMN employee_identifier TEXT;
              UPDATE users SET employee_identifier = doc::jsonb #>> '{profile,employeeIdentifier}';
              CREATE INDEX IF NOT EXISTS users_by_org_email ON users (org_id, email);
              CREATE INDEX IF NOT EXISTS users_by_org_employee ON users (org_id, employee_identifier)",
        ),
    },
];

impl ReadStore {
    /// Connects to `sqlite://PATH` or `postgres://…` and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let err = |reason: String| StoreError::Connect {
            url: redact(url),
            reason,
        };
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(err(
                "the URL must start with sqlite:// or postgres://".into()
            ));
        };
        let url = match dialect {
            // Create the file on first use.
            Dialect::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(|e| err(e.to_string()))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| err(e.to_string()))?;
        let store = ReadStore {
            pool,
            dialect,
            writer: Arc::default(),
        };
        store.migrate().await?;
        if dialect == Dialect::Sqlite {
            tokio::spawn(checkpoint_wal(store.pool.clone()));
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS castellan_migrations (
                 version BIGINT PRIMARY KEY,
                 name TEXT NOT NULL
             )",
        )
        .execute(&self.pool)
        .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM castellan_migrations")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.get::<i64, _>(0))
            .collect();
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            let failed = |e: sqlx::Error| StoreError::Migration {
                version: m.version,
                name: m.name,
                reason: e.to_string(),
            };
            let sql = match self.dialect {
                Dialect::Postgres => m.postgres.unwrap_or(m.sql),
                Dialect::Sqlite => m.sql,
            };
            let mut tx = self.begin_write().await.map_err(failed)?;
            for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            }
            sqlx::query(
                "INSERT INTO castellan_migrations (version, name) VALUES ($1, $2)
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
        }
        Ok(())
    }

    /// Checks that the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Copies the SQLite WAL into the database every half second (PASSIVE: never blocks
/// a writer), until the pool is closed (or the runtime ends).
async fn checkpoint_wal(pool: AnyPool) {
    let closed = pool.close_event();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut closed => return,
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "read store WAL checkpoint failed");
        }
    }
}

/// Hides a password in a URL for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://me:secret@127.0.0.1:5432/db"),
            "postgres://me:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
