//! Secrets that must be read back (TOTP secrets today) are sealed before they reach
//! the event log: AES-256-GCM under a key from `security.encryption_keys`, bound to
//! what they belong to (purpose, organization, account) so that a sealed value
//! copied onto another account does not open.
//!
//! A sealed value reads `enc1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The
//! keyring's first key seals; every key opens, so a new key can be put first while
//! values sealed under the old one still open until they are resealed (see
//! `castellan keys reseal`). Values stored before sealing existed are plain base32
//! and open as they are.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "enc1:";

/// What a sealed value is bound to. Opening with any other binding fails.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub purpose: &'a str,
    pub org: &'a str,
    pub account: &'a str,
}

impl Binding<'_> {
    fn aad(&self, key_id: &str) -> Vec<u8> {
        [self.purpose, self.org, self.account, key_id]
            .join("\0")
            .into_bytes()
    }
}

/// Why a keyring or a sealed value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Keyring(String),
    #[error("the sealed value names key `{0}`, which is not in security.encryption_keys")]
    UnknownKey(String),
    #[error("the sealed value does not open (damaged, or bound to another account)")]
    Damaged,
}

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keys secrets are sealed and opened with; the first one seals.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// Parses `id:base64key` entries separated by commas, spaces or new lines (the
    /// key is 32 bytes in standard or URL-safe base64).
    pub fn parse(text: &str) -> Result<Keyring, SealError> {
        let mut keys: Vec<Key> = Vec::new();
        for entry in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let (id, encoded) = entry.split_once(':').ok_or_else(|| {
                SealError::Keyring(format!(
                    "`{}…` is not `id:base64key`",
                    entry.chars().take(8).collect::<String>()
                ))
            })?;
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(SealError::Keyring(format!(
                    "key id `{id}`: 1-32 letters, digits, '-' or '_'"
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(SealError::Keyring(format!("key id `{id}` appears twice")));
            }
            let bytes = STANDARD
                .decode(encoded)
                .or_else(|_| URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')))
                .map_err(|_| SealError::Keyring(format!("key `{id}` is not base64")))?;
            if bytes.len() != 32 {
                return Err(SealError::Keyring(format!(
                    "key `{id}` is {} bytes; it must be 32",
                    bytes.len()
                )));
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| SealError::Keyring(format!("key `{id}` is unusable")))?;
            keys.push(Key {
                id: id.to_string(),
                key: LessSafeKey::new(key),
            });
        }
        if keys.is_empty() {
            return Err(SealError::Keyring("no key is given".into()));
        }
        Ok(Keyring { keys })
    }

    /// A new key entry `id:base64key` with random bytes.
    pub fn new_entry(id: &str) -> String {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system random source works");
        format!("{id}:{}", STANDARD.encode(bytes))
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn seal(&self, binding: Binding<'_>, plain: &str) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system random source works");
        let mut data = plain.as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding.aad(&key.id)),
                &mut data,
            )
            .expect("AES-GCM seals any short value");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!("{PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, binding: Binding<'_>, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            // Stored before sealing existed.
            return Ok(stored.to_string());
        };
        let (id, encoded) = rest.split_once(':').ok_or(SealError::Damaged)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let mut data = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| SealError::Damaged)?;
        if data.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let mut ciphertext = data.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&data).map_err(|_| SealError::Damaged)?;
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(binding.aad(id)), &mut ciphertext)
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Damaged)
    }

    /// Whether a stored value is sealed under the current key (else it should be resealed).
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Binding = Binding {
        purpose: "totp",
        org: "o1",
        account: "alice",
    };

    #[test]
    fn sealed_values_open_under_their_binding_only() {
        let ring = Keyring::parse(&Keyring::new_entry("k1")).unwrap();
        let sealed = ring.seal(ALICE, "JBSWY3DPEHPK3PXP");
        assert!(sealed.starts_with("enc1:k1:"));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            sealed,
            ring.seal(ALICE, "JBSWY3DPEHPK3PXP"),
            "a fresh nonce"
        );
        assert_eq!(ring.open(ALICE, &sealed).unwrap(), "JBSWY3DPEHPK3PXP");
        let bob = Binding {
            account: "bob",
            ..ALICE
        };
        assert_eq!(ring.open(bob, &sealed), Err(SealError::Damaged));
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            ring.open(ALICE, &String::from_utf8(flipped).unwrap()),
            Err(SealError::Damaged)
        );
        // Stored before sealing: plain base32 opens as it is.
        assert_eq!(ring.open(ALICE, "JBSWY3DP").unwrap(), "JBSWY3DP");
        assert!(!ring.is_current("JBSWY3DP"));
    }

    #[test]
    fn a_new_key_first_seals_and_the_old_one_still_opens() {
        let (old, new) = (Keyring::new_entry("old"), Keyring::new_entry("new"));
        let before = Keyring::parse(&old).unwrap();
        let sealed = before.seal(ALICE, "S");
        let after = Keyring::parse(&format!("{new},\n{old}")).unwrap();
        assert_eq!(after.current_id(), "new");
        assert_eq!(after.open(ALICE, &sealed).unwrap(), "S");
        assert!(!after.is_current(&sealed));
        assert!(after.is_current(&after.seal(ALICE, "S")));
        let dropped = Keyring::parse(&new).unwrap();
        assert_eq!(
            dropped.open(ALICE, &sealed),
            Err(SealError::UnknownKey("old".into()))
        );
    }

    #[test]
    fn keyring_errors_say_what_is_wrong() {
        for (text, says) in [
            ("", "no key"),
            ("k1", "id:base64key"),
            ("k 1:AAAA", "id:base64key"),
            ("k1:AAAA", "3 bytes"),
            ("k1:!!!", "not base64"),
            ("bad/id:AAAA", "key id"),
        ] {
            let e = Keyring::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        let entry = Keyring::new_entry("k1");
        let e = Keyring::parse(&format!("{entry} {entry}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
