//! Projections: the read side of Castellan.
//!
//! Map of the modules:
//! - [`store`]: the SQL read store (SQLite embedded, PostgreSQL in cluster mode) on
//!   sqlx's `Any` driver, and its migrations (one text for both dialects where they agree).
//! - [`runtime`]: SQL projections as data (name, reducers: event type → fn, tables),
//!   the runner that applies commits with the checkpoint in the same transaction,
//!   the failed-events table, rebuild from 0, and per-projection metrics.
//! - [`progress`]: positions reached, for read-your-writes waits.
//! - [`memory`]: in-memory projections publishing immutable snapshots, swapped atomically.
//! - [`portal`]: the portal read model (organizations, admins) behind the admin API.
//! - [`groups`]: user groups, members and associations of the portal read model.
//! - [`users`]: the users of the portal read model and their list queries.
//! - [`user_filter`]: list filters over every scalar user field, as SQL.
//! - [`admin_index`]: the in-memory index of admins and API keys used to authenticate requests.
//! - [`security`]: the in-memory failed-login counters every protocol shares.
//! - [`outbox`]: emails waiting for a relay (invitations), and admin listings.
//! - [`blobs`]: the blob store (logos) in the read store.

pub mod admin_index;
pub mod blobs;
pub mod groups;
pub mod memory;
pub mod outbox;
pub mod portal;
pub mod progress;
pub mod runtime;
pub mod security;
pub mod store;
pub mod user_filter;
pub mod users;

pub use progress::Progress;
pub use runtime::{ProjectionError, ProjectionMetrics, SqlProjection};
pub use store::{Dialect, ReadStore};

/// The error of a read-store query.
pub type QueryError = sqlx::Error;
