//! The outbox: every email Castellan means to send (invitations, activation links) is
//! a row here first. A relay (SMTP) delivers and marks rows sent; without one, admins
//! read the outbox (`GET /api/outbox`) and the rows stay.

use serde_json::{json, Value};
use sqlx::Row;
use time::format_description::well_known::Rfc3339;

use crate::store::ReadStore;

impl ReadStore {
    pub async fn enqueue_mail(
        &self,
        org: &str,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<String, sqlx::Error> {
        let id = uuid_like();
        sqlx::query("INSERT INTO outbox (id, org_id, to_addr, subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(org)
            .bind(to)
            .bind(subject)
            .bind(body)
            .bind(time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default())
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    pub async fn outbox(&self, org: &str) -> Result<Vec<Value>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, to_addr, subject, body, created_at, sent_at FROM outbox WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                json!({"id": r.get::<String, _>(0), "to": r.get::<String, _>(1), "subject": r.get::<String, _>(2),
                       "body": r.get::<String, _>(3), "created": r.get::<String, _>(4), "sent": r.get::<Option<String>, _>(5)})
            })
            .collect())
    }

    /// The admins of an organization.
    pub async fn admins(&self, org: &str) -> Result<Vec<Value>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, email, role, api_key_id, created_at FROM admins WHERE org_id = $1 ORDER BY email")
            .bind(org)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                json!({"id": r.get::<String, _>(0), "email": r.get::<String, _>(1), "role": r.get::<String, _>(2),
                       "apiKeyId": r.get::<Option<String>, _>(3), "created": r.get::<String, _>(4)})
            })
            .collect())
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("{t:032x}{:08x}", N.fetch_add(1, Ordering::Relaxed))
}
