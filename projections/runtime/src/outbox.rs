//! The outbox: every email Castellan means to send (invitations, activation links) is
//! a row here first. A relay (SMTP, `castellan-mail`) leases rows, delivers them and
//! marks them sent (or records the error and retries later); without one, admins read
//! the outbox (`GET /api/outbox`) and the rows stay.

use serde_json::{json, Value};
use sqlx::Row;
use time::format_description::well_known::Rfc3339;

use crate::store::ReadStore;

/// An email leased for delivery.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// Failed attempts so far.
    pub attempts: i64,
}

impl ReadStore {
    pub async fn enqueue_mail(
        &self,
        org: &str,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<String, sqlx::Error> {
        let id = uuid_like();
        let _turn = self.write_turn().await;
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
            "SELECT id, to_addr, subject, body, created_at, sent_at, attempts, last_error FROM outbox WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                json!({"id": r.get::<String, _>(0), "to": r.get::<String, _>(1), "subject": r.get::<String, _>(2),
                       "body": r.get::<String, _>(3), "created": r.get::<String, _>(4), "sent": r.get::<Option<String>, _>(5),
                       "attempts": r.get::<i64, _>(6), "lastError": r.get::<Option<String>, _>(7)})
            })
            .collect())
    }

    /// Leases up to `limit` unsent emails whose lease ran out (or never began) until
    /// `lease_until` (unix ms), oldest first. A row is leased by a conditional UPDATE, so
    /// relays on several nodes never hold the same email at once.
    pub async fn lease_mail(
        &self,
        now_ms: i64,
        lease_until: i64,
        max_attempts: i64,
        limit: i64,
    ) -> Result<Vec<OutgoingMail>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, to_addr, subject, body, attempts FROM outbox
             WHERE sent_at IS NULL AND lease_until < $1 AND attempts < $2
             ORDER BY created_at, id LIMIT $3",
        )
        .bind(now_ms)
        .bind(max_attempts)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut leased = Vec::new();
        for r in rows {
            let id: String = r.get(0);
            let _turn = self.write_turn().await;
            let won = sqlx::query(
                "UPDATE outbox SET lease_until = $1 WHERE id = $2 AND sent_at IS NULL AND lease_until < $3",
            )
            .bind(lease_until)
            .bind(&id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?
            .rows_affected()
                == 1;
            if won {
                leased.push(OutgoingMail {
                    id,
                    to: r.get(1),
                    subject: r.get(2),
                    body: r.get(3),
                    attempts: r.get(4),
                });
            }
        }
        Ok(leased)
    }

    pub async fn mark_mail_sent(&self, id: &str) -> Result<(), sqlx::Error> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE outbox SET sent_at = $1, last_error = NULL WHERE id = $2")
            .bind(
                time::OffsetDateTime::now_utc()
                    .format(&Rfc3339)
                    .unwrap_or_default(),
            )
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed delivery; the row is retried after `retry_at` (unix ms) unless
    /// `attempts` reached the relay's limit.
    pub async fn mark_mail_failed(
        &self,
        id: &str,
        attempts: i64,
        error: &str,
        retry_at: i64,
    ) -> Result<(), sqlx::Error> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE outbox SET attempts = $1, last_error = $2, lease_until = $3 WHERE id = $4",
        )
        .bind(attempts)
        .bind(error.chars().take(1000).collect::<String>())
        .bind(retry_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The admins of an organization: its own, and those of other organizations it
    /// granted a role (`homeOrganization` names theirs; their keys are not shown).
    pub async fn admins(&self, org: &str) -> Result<Vec<Value>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, email, role, api_key_id, created_at, NULL AS home FROM admins WHERE org_id = $1
             UNION ALL
             SELECT admin_id, email, role, NULL, created_at, home_org_id FROM admin_grants WHERE org_id = $1
             ORDER BY 2",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                json!({"id": r.get::<String, _>(0), "email": r.get::<String, _>(1), "role": r.get::<String, _>(2),
                       "apiKeyId": r.get::<Option<String>, _>(3), "created": r.get::<String, _>(4),
                       "homeOrganization": r.get::<Option<String>, _>(5)})
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
