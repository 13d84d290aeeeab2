//! Identifiers. Directory objects use 24-hex ids, as the hosted product's API does;
//! events use UUIDv7 so that their ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 12-byte id written as 24 lowercase hex digits: 4 bytes of seconds since the epoch
/// followed by 8 random bytes (the shape of a MongoDB ObjectId, which the hosted
/// product exposes as `_id`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 12]);

impl ObjectId {
    /// A new id for an object created at `unix_seconds`.
    pub fn generate(unix_seconds: i64) -> Self {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&(unix_seconds as u32).to_be_bytes());
        rand::Rng::fill(&mut rand::thread_rng(), &mut bytes[4..]);
        ObjectId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an object id is 24 hexadecimal digits, got {0:?}")]
pub struct BadObjectId(pub String);

impl FromStr for ObjectId {
    type Err = BadObjectId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 24 {
            return Err(BadObjectId(s.chars().take(64).collect()));
        }
        let mut bytes = [0u8; 12];
        hex::decode_to_slice(s.to_ascii_lowercase(), &mut bytes)
            .map_err(|_| BadObjectId(s.chars().take(64).collect()))?;
        Ok(ObjectId(bytes))
    }
}

impl ObjectId {
    /// The 24 hex digits, written into `digits` (no allocation).
    pub fn encode_hex<'d>(&self, digits: &'d mut [u8; 24]) -> &'d str {
        hex::encode_to_slice(self.0, digits).expect("24 digits for 12 bytes");
        std::str::from_utf8(digits).expect("hex digits are ASCII")
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On the stack: ids are written for every event materialized and every row
        // served, and `hex::encode` builds a String a char at a time.
        f.write_str(self.encode_hex(&mut [0u8; 24]))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An event's id: a UUIDv7, so ids sort by time.
pub type EventId = uuid::Uuid;

/// A new UUIDv7 for an event or a commit.
pub fn new_event_id() -> EventId {
    uuid::Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_id_round_trips_as_24_hex() {
        let id = ObjectId::generate(1_700_000_000);
        let text = id.to_string();
        assert_eq!(text.len(), 24);
        assert!(text.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(text.parse::<ObjectId>().unwrap(), id);
        assert_eq!(&text[..8], "6553f100");
    }

    #[test]
    fn bad_object_ids_are_rejected() {
        assert!("abc".parse::<ObjectId>().is_err());
        assert!("zz3f1000aaaaaaaaaaaaaaaa".parse::<ObjectId>().is_err());
        assert!(serde_json::from_str::<ObjectId>("\"123\"").is_err());
    }
}
