//! The users of the portal read model: reducers and queries (the v1 list semantics:
//! `limit`, `skip`, `sort`, `filter`).

use castellan_domain::aggregate::{Aggregate, EventCodec};
use castellan_domain::envelope::{Envelope, StreamId};
use castellan_domain::user::{User, UserEvent, UserEventKind};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use sqlx::{AnyConnection, Row};
use time::format_description::well_known::Rfc3339;

use crate::runtime::ProjectionError;
use crate::store::ReadStore;

pub fn reduce<'c>(
    conn: &'c mut AnyConnection,
    e: &'c Envelope,
) -> BoxFuture<'c, Result<(), ProjectionError>> {
    Box::pin(async move {
        let StreamId::Aggregate { id, .. } = &e.stream else {
            return Err(ProjectionError::apply(e, "not an aggregate stream"));
        };
        let event = UserEvent::decode(&e.event_type, e.schema_version, e.payload.clone())
            .map_err(|err| ProjectionError::apply(e, err))?;
        let now = e.occurred_at.format(&Rfc3339).unwrap_or_default();
        if event.kind == UserEventKind::Delete {
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            // A deleted user leaves every group.
            sqlx::query("DELETE FROM group_members WHERE user_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            return Ok(());
        }
        let (mut user, created_at) = if event.kind == UserEventKind::Create {
            (User::default(), now.clone())
        } else {
            crate::portal::load_doc::<User>(&mut *conn, "users", id, e).await?
        };
        user.evolve(&event);
        let text = |k: &str| {
            user.profile
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let state = serde_json::to_value(user.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let status = serde_json::to_value(user.password_status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO users (id, org_id, username, email, firstname, lastname, state, password_status, account_locked, unix_uid, doc, created_at, updated_at, version, employee_identifier)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (id) DO UPDATE SET username = excluded.username, email = excluded.email,
                 employee_identifier = excluded.employee_identifier,
                 firstname = excluded.firstname, lastname = excluded.lastname, state = excluded.state,
                 password_status = excluded.password_status, account_locked = excluded.account_locked,
                 unix_uid = excluded.unix_uid, doc = excluded.doc, updated_at = excluded.updated_at, version = excluded.version",
        )
        .bind(id)
        .bind(e.org_id.to_string())
        .bind(user.username().to_string())
        .bind(user.email().to_string())
        .bind(text("firstname"))
        .bind(text("lastname"))
        .bind(state)
        .bind(status)
        .bind(user.account_locked as i64)
        .bind(user.unix_uid().map(|u| u as i64))
        .bind(serde_json::to_string(&user).unwrap_or_default())
        .bind(created_at)
        .bind(now)
        .bind(e.stream_version as i64)
        .bind(text("employeeIdentifier"))
        .execute(&mut *conn)
        .await?;
        Ok(())
    })
}

pub use crate::user_filter::{Filter, Op};

/// A list request in the hosted product's v1 shape.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: u32,
    pub skip: u64,
    /// (column, descending)
    pub sort: Vec<(String, bool)>,
    /// Every filter holds (each checked with [`crate::user_filter::check`]).
    pub filter: Vec<Filter>,
}

/// One page of a list: `limit` items after `skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub skip: u64,
}

/// Fields lists may sort on, and their columns.
pub const LIST_FIELDS: &[(&str, &str)] = &[
    ("username", "username"),
    ("email", "email"),
    ("firstname", "firstname"),
    ("lastname", "lastname"),
    ("state", "state"),
    ("password_status", "password_status"),
    ("account_locked", "account_locked"),
    ("unix_uid", "unix_uid"),
    ("created", "created_at"),
    ("employeeIdentifier", "employee_identifier"),
];

pub fn column(field: &str) -> Option<&'static str> {
    LIST_FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, c)| *c)
}

/// The API shape of a user.
pub fn to_json(id: &str, org: &str, user: &User, created: &str, updated: &str) -> Value {
    let mut out = Map::new();
    out.insert("_id".into(), json!(id));
    out.insert("id".into(), json!(id));
    for (k, v) in &user.profile {
        out.insert(k.clone(), v.clone());
    }
    let state = serde_json::to_value(user.state).unwrap_or_default();
    out.insert("activated".into(), json!(state == "ACTIVATED"));
    out.insert("suspended".into(), json!(state == "SUSPENDED"));
    out.insert("state".into(), state);
    let status = serde_json::to_value(user.password_status).unwrap_or_default();
    out.insert("password_expired".into(), json!(status == "expired"));
    out.insert("password_status".into(), status);
    out.insert("password_date".into(), json!(user.password_date));
    out.insert("account_locked".into(), json!(user.account_locked));
    out.insert("totp_enabled".into(), json!(user.totp.enrolled));
    let mut mfa = json!({
        "configured": user.totp.enrolled,
        "required": user.mfa_required,
        "enrollmentDeadline": user.mfa_enrollment_deadline,
        "exclusion": user.mfa_exclusion,
    });
    if user.mfa_exclusion {
        mfa["exclusionDays"] = json!(user.mfa_exclusion_days);
        mfa["exclusionUntil"] = json!(user.mfa_exclusion_until);
    }
    out.insert("mfa".into(), mfa);
    out.insert(
        "enable_user_portal_multifactor".into(),
        json!(user.mfa_required),
    );
    out.insert("organization".into(), json!(org));
    out.insert("created".into(), json!(created));
    out.insert("updated".into(), json!(updated));
    Value::Object(out)
}

impl ReadStore {
    pub async fn user(&self, org: &str, id: &str) -> Result<Option<Value>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, doc, created_at, updated_at FROM users WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            let user: User = serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default();
            to_json(
                &r.get::<String, _>(0),
                org,
                &user,
                &r.get::<String, _>(2),
                &r.get::<String, _>(3),
            )
        }))
    }

    /// One page of an organization's users and the total that match.
    /// Columns come from [`LIST_FIELDS`] only; values are bound, never spliced.
    pub async fn users(&self, org: &str, q: &ListQuery) -> Result<(Vec<Value>, u64), sqlx::Error> {
        let mut binds: Vec<String> = vec![org.to_string()];
        let mut clause = crate::user_filter::Clause::new(&mut binds, self.dialect);
        clause.push(&Filter::All(q.filter.clone()));
        let sql_where = format!("org_id = $1 AND {}", clause.sql);
        let mut order: Vec<String> = q
            .sort
            .iter()
            .filter_map(|(f, desc)| {
                column(f).map(|c| format!("{c} {}", if *desc { "DESC" } else { "ASC" }))
            })
            .collect();
        order.push("id ASC".into());
        let total_sql = format!("SELECT COUNT(*) FROM users WHERE {sql_where}");
        let page_sql = format!(
            "SELECT id, doc, created_at, updated_at FROM users WHERE {sql_where} ORDER BY {} LIMIT {} OFFSET {}",
            order.join(", "),
            q.limit,
            q.skip
        );
        let mut total = sqlx::query(&total_sql);
        let mut page = sqlx::query(&page_sql);
        for b in &binds {
            total = total.bind(b.clone());
            page = page.bind(b.clone());
        }
        let total: i64 = total.fetch_one(&self.pool).await?.get(0);
        let rows = page.fetch_all(&self.pool).await?;
        let results = rows
            .iter()
            .map(|r| {
                let user: User = serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default();
                to_json(
                    &r.get::<String, _>(0),
                    org,
                    &user,
                    &r.get::<String, _>(2),
                    &r.get::<String, _>(3),
                )
            })
            .collect();
        Ok((results, total as u64))
    }
}
