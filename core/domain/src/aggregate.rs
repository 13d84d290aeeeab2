//! Aggregates are pure: `decide` turns a command into events or a domain error,
//! `evolve` folds one event into the state. Loading, appending and retrying on a
//! version conflict live in the application layer.

use serde_json::Value;
use time::OffsetDateTime;

use crate::error::DomainError;

/// What `decide` may know besides the state and the command.
#[derive(Debug, Clone, Copy)]
pub struct DecideContext {
    pub now: OffsetDateTime,
}

pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The stream kind, e.g. `organization`.
    const KIND: &'static str;
    type Command: Send + Sync;
    type Event: EventCodec + Send + Sync;

    fn decide(
        &self,
        command: &Self::Command,
        ctx: &DecideContext,
    ) -> Result<Vec<Self::Event>, DomainError>;

    fn evolve(&mut self, event: &Self::Event);
}

/// A stored payload that cannot be turned into a typed event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {event_type} v{schema_version}: {reason}")]
pub struct DecodeError {
    pub event_type: String,
    pub schema_version: u32,
    pub reason: String,
}

impl DecodeError {
    pub fn new(event_type: &str, schema_version: u32, reason: impl ToString) -> Self {
        DecodeError {
            event_type: event_type.to_string(),
            schema_version,
            reason: reason.to_string(),
        }
    }
}

/// How a typed event becomes an `(event_type, schema_version, payload)` triple and back.
/// `decode` upcasts older schema versions first (see [`crate::upcast`]).
pub trait EventCodec: Sized {
    fn event_type(&self) -> &'static str;
    fn schema_version(&self) -> u32;
    fn encode(&self) -> Value;
    fn decode(event_type: &str, schema_version: u32, payload: Value) -> Result<Self, DecodeError>;
}

/// Decodes a serde payload, mapping the error to a [`DecodeError`].
pub fn from_payload<T: serde::de::DeserializeOwned>(
    event_type: &str,
    schema_version: u32,
    payload: Value,
) -> Result<T, DecodeError> {
    serde_json::from_value(payload).map_err(|e| DecodeError::new(event_type, schema_version, e))
}
