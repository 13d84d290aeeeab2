//! Read-only SQL for admins: one table, `events`, holding their organization's events
//! only (the table is made of that organization's files). DDL, DML and statements
//! (SET, COPY…) are refused before planning; results as JSON rows or CSV.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;

use crate::query::Insights;
use crate::schema::read_schema;
use crate::InsightsError;

/// The largest SQL text accepted.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

impl Insights {
    /// Runs `sql` over the organization's events.
    pub async fn sql(&self, org: &str, sql: &str) -> Result<Vec<RecordBatch>, InsightsError> {
        if sql.trim().is_empty() || sql.len() > MAX_SQL_BYTES {
            return Err(InsightsError::bad("sql", "a query of 1 byte to 64 KiB"));
        }
        let files = self.files(org, None).await?;
        let ctx = self.context();
        match self.table(&files)? {
            Some(t) => ctx.register_table("events", t)?,
            None => ctx.register_table(
                "events",
                Arc::new(MemTable::try_new(read_schema(), vec![vec![]])?),
            )?,
        };
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| InsightsError::bad("sql", e.to_string()))?;
        Ok(df.collect().await?)
    }
}

/// Batches as JSON rows.
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, InsightsError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::ArrayWriter::new(&mut buf);
        for b in batches {
            w.write(b)
                .map_err(|e| InsightsError::Internal(e.to_string()))?;
        }
        w.finish()
            .map_err(|e| InsightsError::Internal(e.to_string()))?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| InsightsError::Internal(e.to_string()))
}

/// Batches as CSV with a header.
pub fn to_csv(batches: &[RecordBatch]) -> Result<String, InsightsError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        for b in batches {
            w.write(b)
                .map_err(|e| InsightsError::Internal(e.to_string()))?;
        }
    }
    String::from_utf8(buf).map_err(|e| InsightsError::Internal(e.to_string()))
}
