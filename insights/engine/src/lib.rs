//! Castellan insights: every event as Parquet, queried with DataFusion.
//!
//! Map of the modules:
//! - [`event`]: a log event as a Directory Insights event (secrets and bookkeeping
//!   dropped).
//! - [`enrich`]: the user agent parsed, the client address placed (GeoIP).
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
//! - [`limits`]: how many queries at once, for how long, with how much memory, on
//!   which threads.
//! - [`sql`]: read-only SQL for admins over their organization's events.
//! - [`udf`]: `di_field(event, 'a.b')`, a field of the event JSON (for fields without
//!   a column).

pub mod enrich;
pub mod event;
pub mod limits;
pub mod materializer;
mod page;
pub mod parquet_file;
pub mod query;
#[cfg(test)]
mod query_props;
pub mod row_writer;
mod scan;
pub mod schema;
pub mod sql;
pub mod storage;
pub mod udf;

pub use limits::QueryLimits;
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
    /// A limit of [`QueryLimits`] was reached; the message names its setting.
    #[error("{message}")]
    Limit {
        setting: &'static str,
        message: String,
    },
    /// As many queries as allowed are running: retry shortly.
    #[error("{0}")]
    Busy(String),
    /// The query ran longer than allowed.
    #[error("{0}")]
    Timeout(String),
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
        match e.find_root() {
            datafusion::error::DataFusionError::ResourcesExhausted(_) => InsightsError::Limit {
                setting: "insights.query_memory_mb",
                message: "the query needs more memory than queries may hold \
                          (insights.query_memory_mb); narrow it: a shorter time range, \
                          fewer groups, a LIMIT"
                    .into(),
            },
            _ => InsightsError::Internal(e.to_string()),
        }
    }
}
