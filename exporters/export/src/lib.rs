//! The serverless export app of the hosted product's guide, built in: each time window
//! of events as one gzipped JSON array (newest first) in S3 or a local directory.
//!
//! Map of the modules:
//! - [`config`]: the `[export]` settings (schedule, services, format, key form, sink).
//! - [`schedule`]: windows from an increment (minute(s)/hour(s)/day(s) × amount) or a
//!   cron expression.
//! - [`render`]: a window's events as the app writes them (MultiLine or SingleLine JSON,
//!   gzip level 6) and its object key.
//! - [`sink`]: where objects go: S3 (aws-sdk-s3, multipart for large windows) or a
//!   directory (fsync before the window counts as done).
//! - [`exporter`]: the loop: the next window of each organization, once the
//!   materializer has every event of it; the window is marked done only after its PUT.

pub mod config;
pub mod exporter;
pub mod render;
pub mod schedule;
pub mod sink;

pub use config::ExportConfig;
pub use exporter::{ExportMetrics, Exporter};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export.{0}: {1}")]
    Config(&'static str, String),
    #[error("export sink: {0}")]
    Sink(String),
    #[error("export: {0}")]
    Query(String),
}
