//! Read-only SQL for admins: one table, `events`, holding their organization's events
//! only (the table is made of that organization's files). DDL, DML and statements
//! (SET, COPY…) are refused before planning; results as JSON rows or CSV.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use futures::StreamExt;

use crate::query::Insights;
use crate::schema::read_schema;
use crate::InsightsError;

/// The largest SQL text accepted.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

impl Insights {
    /// Runs `sql` over the organization's events, on the query threads and within
    /// the limits: a result over `max_result_rows` rows or `max_result_bytes` is
    /// refused (add a LIMIT), not cut short without a word.
    pub async fn sql(&self, org: &str, sql: &str) -> Result<Vec<RecordBatch>, InsightsError> {
        if sql.trim().is_empty() || sql.len() > MAX_SQL_BYTES {
            return Err(InsightsError::bad("sql", "a query of 1 byte to 64 KiB"));
        }
        let (org, sql) = (org.to_string(), sql.to_string());
        self.bounded(|me| async move { me.sql_on_query_thread(&org, &sql).await })
            .await
    }

    async fn sql_on_query_thread(
        &self,
        org: &str,
        sql: &str,
    ) -> Result<Vec<RecordBatch>, InsightsError> {
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
        let df =
            ctx.sql_with_options(sql, options)
                .await
                .map_err(|e| match InsightsError::from(e) {
                    InsightsError::Internal(e) => InsightsError::bad("sql", e),
                    limit => limit,
                })?;
        let explains = matches!(
            df.logical_plan(),
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)
        );
        let limits = self.limits().clone();
        let mut stream = df.execute_stream().await?;
        let (mut batches, mut rows, mut bytes) = (Vec::new(), 0usize, 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows();
            bytes += batch.get_array_memory_size();
            if rows > limits.max_result_rows {
                return Err(InsightsError::Limit {
                    setting: "insights.max_result_rows",
                    message: format!(
                        "the result has more than {} rows (insights.max_result_rows); add a LIMIT or narrow the query",
                        limits.max_result_rows
                    ),
                });
            }
            if bytes > limits.max_result_bytes {
                return Err(InsightsError::Limit {
                    setting: "insights.max_result_bytes",
                    message: format!(
                        "the result is larger than {} MiB (insights.max_result_bytes); select fewer columns or add a LIMIT",
                        limits.max_result_bytes >> 20
                    ),
                });
            }
            batches.push(if explains {
                without_storage_paths(&batch)?
            } else {
                batch
            });
        }
        Ok(batches)
    }
}

/// A plan's text without where the files are: each path is cut to the part from its
/// organization's directory on (`org=…/date=…/….parquet`), so EXPLAIN shows which
/// files a query reads but not the data directory, bucket or prefix.
fn without_storage_paths(batch: &RecordBatch) -> Result<RecordBatch, InsightsError> {
    let columns = batch
        .columns()
        .iter()
        .map(
            |column| match column.as_any().downcast_ref::<StringArray>() {
                Some(text) => Arc::new(
                    text.iter()
                        .map(|v| v.map(cut_paths))
                        .collect::<StringArray>(),
                ) as ArrayRef,
                None => column.clone(),
            },
        )
        .collect();
    RecordBatch::try_new(batch.schema(), columns)
        .map_err(|e| InsightsError::Internal(e.to_string()))
}

/// `text` with every token that holds `org=` starting there.
pub(crate) fn cut_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("org=") {
        let before = &rest[..at];
        let start = before
            .rfind(|c: char| c.is_whitespace() || "[]{}(),=\"'".contains(c))
            .map_or(0, |i| i + 1);
        out.push_str(&before[..start]);
        out.push_str("org=");
        rest = &rest[at + 4..];
    }
    out.push_str(rest);
    out
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
