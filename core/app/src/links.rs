//! One-time links (admin invitations, user activation): a random token goes into the
//! emailed URL; only its SHA-256 is stored in the event, with the link's expiry.

use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// How long a link works.
pub const LINK_HOURS: i64 = 72;

/// A new token: 43 letters and digits (~256 bits).
pub fn new_token() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 43)
}

/// SHA-256 of a token, hex: what events store. Tokens are random, so a fast hash is enough.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// When a link made at `now` expires, as RFC 3339.
pub fn expiry(now: OffsetDateTime) -> String {
    (now + time::Duration::hours(LINK_HOURS))
        .format(&Rfc3339)
        .unwrap_or_default()
}
