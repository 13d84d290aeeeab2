//! Logos and other immutable blobs in the read store, content-addressed by SHA-256,
//! so the same store serves them on SQLite and PostgreSQL alike.

use async_trait::async_trait;
use castellan_app::ports::BlobStore;
use sqlx::Row;

use crate::store::ReadStore;

#[async_trait]
impl BlobStore for ReadStore {
    async fn put(&self, sha256: &str, content_type: &str, bytes: &[u8]) -> Result<(), String> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO blobs (sha256, content_type, bytes) VALUES ($1, $2, $3)
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(content_type)
        .bind(bytes.to_vec())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| format!("blob store: {e}"))
    }

    async fn get(&self, sha256: &str) -> Result<Option<(String, Vec<u8>)>, String> {
        let row = sqlx::query("SELECT content_type, bytes FROM blobs WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| format!("blob store: {e}"))?;
        Ok(row.map(|r| (r.get::<String, _>(0), r.get::<Vec<u8>, _>(1))))
    }
}
