//! Castellan insights: every event as Parquet, queried with DataFusion.
//!
//! Map of the modules:
//! - [`event`]: a log event as a Directory Insights event (secrets dropped).
//! - [`schema`]: the Parquet table's columns, and rows to Arrow batches.
//! - [`row_writer`]: one event's JSON and column values, written in one pass.
//! - [`parquet_file`]: encoding one file (sorted, zstd, page index) and merging files.
//! - [`storage`]: the local directory or S3 bucket (object_store), file layout,
//!   durable writes, the checkpoint, and which files readers see.
//! - [`materializer`]: the projection that writes the files, exactly once, and
//!   compacts small ones.
//! - [`query`]: the Directory Insights queries (events, count, distinct, interval).
//! - [`scan`]: their scans, built as physical plans directly.
//! - [`page`]: the first rows of an event page, kept as batches stream by.
//! - [`sql`]: read-only SQL for admins over their organization's events.
//! - [`udf`]: `di_field(event, 'a.b')`, a field of the event JSON (for fields without
//!   a column).

pub mod event;
pub mod materializer;
mod page;
pub mod parquet_file;
pub mod query;
pub mod row_writer;
mod scan;
pub mod schema;
pub mod sql;
pub mod storage;
pub mod udf;

pub use materializer::{Materializer, MaterializerConfig, Status};
pub use query::{EventQuery, Insights};
pub use storage::{S3Config, Storage};

#[derive(Debug, thiserror::Error)]
pub enum InsightsError {
    /// The request is wrong; `field` names what.
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    #[error("insights storage: {0}")]
    Storage(String),
    #[error("insights: {0}")]
    Internal(String),
}

impl InsightsError {
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        InsightsError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<datafusion::error::DataFusionError> for InsightsError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        InsightsError::Internal(e.to_string())
    }
}
