//! Delivers the outbox through an SMTP relay with lettre.
//!
//! Map of the modules:
//! - [`config`]: the `[smtp]` settings (host, port, TLS mode, credentials, sender).
//! - [`relay`]: the delivery loop: lease unsent rows, send, mark sent or record the
//!   error and retry with backoff.
//!
//! Every email is a row of the read store's `outbox` first (queued by the API), so a
//! relay that is down, misconfigured or absent loses nothing: rows wait, and admins
//! can read them (`GET /api/outbox`).

pub mod config;
pub mod relay;

pub use config::{SmtpConfig, TlsMode};
pub use relay::Relay;
