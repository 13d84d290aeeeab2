//! Admin portal sessions: a signed, expiring cookie (HttpOnly, SameSite=Strict) and a
//! CSRF token derived from it that every state-changing request made with the cookie
//! must echo in `x-csrf-token` (requests with `x-api-key` carry no cookie and need none).
//!
//! Tokens are signed (`base64url(admin.org.expiry.scope.epoch).hmac`), so any node with
//! the same secret accepts them, and revocable: a token carries the admin's session
//! epoch from the admin index (which every node folds from the log), and the epoch
//! moves on logout, password change, TOTP reset and lockout, ending every session
//! issued before. A deleted admin's session stops at once because the admin must
//! still be in the admin index. The scope `enroll` marks a session that may only
//! enroll TOTP (its organization requires MFA and the admin has none yet).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use castellan_domain::ObjectId;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "castellan_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const TTL_SECONDS: i64 = 8 * 3600;

#[derive(Clone)]
pub struct SessionKey([u8; 32]);

/// What a valid session token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub admin: ObjectId,
    pub org: ObjectId,
    /// Only TOTP enrollment (and logout) until the admin enrolls.
    pub enroll_only: bool,
    /// The admin's session epoch when it was issued.
    pub epoch: u64,
}

/// A cookie carrying `token` (HttpOnly, SameSite=Strict, and Secure when the API is
/// reached over https).
pub fn cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={TTL_SECONDS}{secure}")
}

impl SessionKey {
    /// From the configured secret; an empty one gives a random key (sessions end with the process).
    pub fn from_secret(secret: &str) -> Self {
        if secret.is_empty() {
            let mut key = [0u8; 32];
            rand::Rng::fill(&mut rand::thread_rng(), &mut key);
            SessionKey(key)
        } else {
            SessionKey(Sha256::digest(secret.as_bytes()).into())
        }
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    pub fn issue(&self, session: Session, now: i64) -> String {
        let Session {
            admin,
            org,
            enroll_only,
            epoch,
        } = session;
        let scope = if enroll_only { "enroll" } else { "full" };
        let body = URL_SAFE_NO_PAD.encode(format!(
            "{admin}.{org}.{}.{scope}.{epoch}",
            now + TTL_SECONDS
        ));
        let sig = URL_SAFE_NO_PAD.encode(self.mac(body.as_bytes()));
        format!("{body}.{sig}")
    }

    /// The session of a valid, unexpired token.
    pub fn verify(&self, token: &str, now: i64) -> Option<Session> {
        let (body, sig) = token.split_once('.')?;
        let expected = self.mac(body.as_bytes());
        let given = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut diff = (given.len() != expected.len()) as u8;
        for (a, b) in given.iter().zip(&expected) {
            diff |= a ^ b;
        }
        if diff != 0 {
            return None;
        }
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let mut parts = text.split('.');
        let admin = parts.next()?.parse().ok()?;
        let org = parts.next()?.parse().ok()?;
        let expires: i64 = parts.next()?.parse().ok()?;
        let enroll_only = match parts.next()? {
            "full" => false,
            "enroll" => true,
            _ => return None,
        };
        let epoch = parts.next()?.parse().ok()?;
        (now < expires).then_some(Session {
            admin,
            org,
            enroll_only,
            epoch,
        })
    }

    /// The CSRF token that goes with a session token.
    pub fn csrf(&self, token: &str) -> String {
        hex::encode(self.mac(format!("csrf:{token}").as_bytes()))
    }
}

/// The session token in a `Cookie` header, if any.
pub fn from_cookies(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_expire_and_resist_tampering() {
        let key = SessionKey::from_secret("s3cret");
        let (a, o) = (ObjectId::generate(1), ObjectId::generate(2));
        let full = Session {
            admin: a,
            org: o,
            enroll_only: false,
            epoch: 3,
        };
        let t = key.issue(full, 1000);
        assert_eq!(key.verify(&t, 1001), Some(full));
        let enroll = Session {
            enroll_only: true,
            ..full
        };
        let e = key.issue(enroll, 1000);
        assert_eq!(key.verify(&e, 1001), Some(enroll));
        assert_eq!(key.verify(&t, 1000 + TTL_SECONDS), None, "expired");
        assert_eq!(
            SessionKey::from_secret("other").verify(&t, 1001),
            None,
            "another key"
        );
        let mut forged = t.clone();
        forged.insert(3, 'x');
        assert_eq!(key.verify(&forged, 1001), None);
        assert_ne!(key.csrf(&t), key.csrf(&key.issue(full, 2000)));
        assert_eq!(
            from_cookies(&format!("a=b; {COOKIE}={t}; c=d")),
            Some(t.as_str())
        );
    }
}
