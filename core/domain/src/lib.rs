//! Castellan's domain: pure types and pure functions, no I/O.
//!
//! Map of the modules:
//! - [`ids`]: 24-hex object ids (organizations, admins, users…) and UUIDv7 event ids.
//! - [`envelope`]: what the event log stores: commits of events, their metadata,
//!   streams, positions and the explicit expected-version enum.
//! - [`change`]: the `changes: [{field, from, to}]` list that Directory Insights events carry.
//! - [`aggregate`]: the `Aggregate` trait (pure `decide` / `evolve`) and event encoding.
//! - [`upcast`]: schema-version upcasting of stored payloads to the current shape.
//! - [`organization`]: the organization aggregate.
//! - [`admin`]: the administrator aggregate (the slice the spine needs: create, API keys).
//! - [`user`]: the user aggregate (the hosted product's systemuser).
//! - [`user_group`]: the user group aggregate (members, associations, Linux group, RADIUS replies).
//! - [`password_policy`]: the organization's password rules and the one check every
//!   path that sets a password uses.
//! - [`totp`]: the TOTP enrollment value object users and admins share.
//! - [`logo`]: organization logo validation (format, size, dimensions, background).
//! - [`error`]: the domain error, with a stable code and the field it names.

pub mod admin;
pub mod aggregate;
pub mod change;
pub mod envelope;
pub mod error;
pub mod ids;
pub mod logo;
pub mod organization;
pub mod password_policy;
pub mod totp;
pub mod upcast;
pub mod user;
pub mod user_group;

pub use aggregate::{Aggregate, EventCodec};
pub use change::Change;
pub use envelope::{
    Actor, ActorKind, Commit, Envelope, EventMeta, ExpectedVersion, NewEvent, Position,
    RecordedCommit, StreamId,
};
pub use error::DomainError;
pub use ids::{EventId, ObjectId};
