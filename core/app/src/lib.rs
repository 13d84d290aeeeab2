//! Castellan's application layer: what turns requests into events, with no I/O of
//! its own. Adapters implement the ports; the server wires them.
//!
//! Map of the modules:
//! - [`ports`]: the event log port ([`ports::EventLog`]), its error, the clock and the blob store.
//! - [`execute`]: load an aggregate, `decide`, append with the expected version, retry on conflict.
//! - [`unique`]: unique keys (usernames, emails) as reservation streams that expect version 0.
//! - [`links`]: one-time link tokens (invitations, activation) and their expiry.
//! - [`password`]: argon2id hashing and verification, off the async runtime.
//! - [`organizations`]: organization commands (create, update, logo).
//! - [`admins`]: administrator commands (create, API keys) and `bootstrap`.
//! - [`users`]: user commands (create with unique username/email and a uid, update,
//!   passwords through the policy and history, lifecycle, delete).
//! - [`groups`]: user group commands (unique name, GID and Linux group; members; associations).
//! - [`import`]: CSV user import (exact header, per-row results, dry run, bounded memory).
//! - [`login`]: user login (and TOTP enrollment, which proves the same factors) with
//!   the shared lockout counter and per-address throttle; every attempt is an event.
//! - [`admin_login`]: administrator login, with lockout and throttling like users'.
//! - [`auth_events`]: authentication events, with the caller's texts capped.
//! - [`sealing`]: secrets that must be read back (TOTP), sealed with AES-256-GCM
//!   under `security.encryption_keys` before they reach the log.
//! - [`reseal`]: after a key rotation, every TOTP secret sealed anew under the current key.
//! - [`totp`]: TOTP enrollment (URI, QR PNG) and replay-proof verification.
//! - [`admin_totp`]: the same for administrators (optional, or required by the org).
//! - [`unix_ids`]: per-organization uid allocation under concurrency.
//! - [`error`]: the application error.

pub mod admin_login;
pub mod admin_totp;
pub mod admins;
pub mod auth_events;
pub mod error;
pub mod execute;
pub mod groups;
pub mod import;
pub mod links;
pub mod login;
pub mod organizations;
pub mod password;
pub mod ports;
pub mod reseal;
pub mod sealing;
pub mod totp;
pub mod unique;
pub mod unix_ids;
pub mod users;

pub use error::AppError;
pub use execute::{execute, Executed};
pub use ports::{Appended, BlobStore, Clock, EventLog, FakeClock, LogError, SystemClock};
