//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s) with totp-rs: enrollment with an
//! `otpauth://` URI and a QR code PNG, confirmation by a first valid code, and login
//! verification that accepts ±1 step and never the same step twice. The last accepted
//! step lives in the user's stream and moves by an append that expects the version
//! read: two concurrent submissions of one code race on the log, and one loses.

use castellan_domain::envelope::{EventMeta, StreamId};
use castellan_domain::totp::CodeSteps;
use castellan_domain::user::{User, UserCommand};
use castellan_domain::{DomainError, ObjectId};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::error::AppError;
use crate::execute::{execute, load, Executed};
use crate::ports::EventLog;
use crate::sealing::{Binding, Keyring};

pub const STEP_SECONDS: u64 = 30;

/// Where an account's TOTP secrets are sealed: the keyring and the account they are
/// bound to. Events carry secrets only sealed; codes are computed from the opened one.
pub(crate) struct SecretPlace<'a> {
    keys: &'a Keyring,
    org: String,
    account: String,
}

impl<'a> SecretPlace<'a> {
    pub(crate) fn user(keys: &'a Keyring, org: ObjectId, user: ObjectId) -> Self {
        SecretPlace {
            keys,
            org: org.to_string(),
            account: format!("user/{user}"),
        }
    }

    pub(crate) fn admin(keys: &'a Keyring, org: ObjectId, admin: ObjectId) -> Self {
        SecretPlace {
            keys,
            org: org.to_string(),
            account: format!("admin/{admin}"),
        }
    }

    fn binding(&self) -> Binding<'_> {
        Binding {
            purpose: "totp",
            org: &self.org,
            account: &self.account,
        }
    }

    pub(crate) fn seal(&self, plain: &str) -> String {
        self.keys.seal(self.binding(), plain)
    }

    pub(crate) fn open(&self, stored: &str) -> Result<String, AppError> {
        self.keys
            .open(self.binding(), stored)
            .map_err(|e| AppError::Internal(format!("the TOTP secret of {}: {e}", self.account)))
    }
}

fn totp(secret_b32: &str, account: &str, issuer: &str) -> Result<TOTP, AppError> {
    let bytes = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|e| AppError::Internal(format!("stored TOTP secret: {e:?}")))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECONDS,
        bytes,
        Some(issuer.replace(':', " ")),
        account.replace(':', " "),
    )
    .map_err(|e| AppError::Internal(format!("TOTP: {e:?}")))
}

/// The time steps within ±1 of `now` whose code is `code` (constant-time compare).
pub fn matching_steps(secret_b32: &str, code: &str, now_unix: u64) -> Result<Vec<u64>, AppError> {
    let t = totp(secret_b32, "x", "x")?;
    let current = now_unix / STEP_SECONDS;
    let code = code.trim();
    Ok([current.saturating_sub(1), current, current + 1]
        .into_iter()
        .filter(|step| {
            let expected = t.generate(step * STEP_SECONDS);
            expected.len() == code.len()
                && expected
                    .bytes()
                    .zip(code.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
        .collect())
}

/// The step an enrollment's first code spends (the newest that matches), or the error.
pub(crate) fn confirming_step(secret: &str, code: &str, meta: &EventMeta) -> Result<u64, AppError> {
    let now = meta.occurred_at.unix_timestamp().max(0) as u64;
    matching_steps(secret, code, now)?
        .into_iter()
        .max()
        .ok_or_else(|| DomainError::invalid("code", "the code is not valid").into())
}

/// The steps a login code matches; none is an error naming `field`.
pub(crate) fn login_steps(
    secret: &str,
    code: &str,
    meta: &EventMeta,
    field: &str,
) -> Result<Vec<u64>, AppError> {
    let now = meta.occurred_at.unix_timestamp().max(0) as u64;
    let steps = matching_steps(secret, code, now)?;
    if steps.is_empty() {
        return Err(DomainError::invalid(field, "the code is not valid").into());
    }
    Ok(steps)
}

/// What the user needs to set up an authenticator app.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Enrollment {
    pub secret: String,
    pub otpauth_uri: String,
    /// PNG of the URI as a QR code, base64.
    pub qr_png_base64: String,
}

/// Starts (or restarts) an enrollment: a new secret, generated here. An enrolled
/// user's `current` code proves the factor being replaced (see
/// [`crate::login::start_totp_enrollment`], the only caller that should be).
pub(crate) async fn start(
    log: &dyn EventLog,
    keys: &Keyring,
    org: ObjectId,
    user: ObjectId,
    meta: EventMeta,
    issuer: &str,
    current: Option<CodeSteps>,
) -> Result<Enrollment, AppError> {
    let secret = new_secret()?;
    let done = execute::<User>(
        log,
        org,
        &user.to_string(),
        meta,
        UserCommand::StartTotp {
            secret: SecretPlace::user(keys, org, user).seal(&secret),
            current,
        },
    )
    .await?;
    enrollment(secret, done.state.username(), issuer)
}

/// A new random secret, base32.
pub(crate) fn new_secret() -> Result<String, AppError> {
    match Secret::generate_secret().to_encoded() {
        Secret::Encoded(s) => Ok(s),
        Secret::Raw(_) => Err(AppError::Internal("secret encoding".into())),
    }
}

/// The URI and QR code an authenticator app scans.
pub(crate) fn enrollment(
    secret: String,
    account: &str,
    issuer: &str,
) -> Result<Enrollment, AppError> {
    let t = totp(&secret, account, issuer)?;
    Ok(Enrollment {
        otpauth_uri: t.get_url(),
        qr_png_base64: t.get_qr_base64().map_err(AppError::Internal)?,
        secret,
    })
}

/// Confirms the enrollment with a valid code; that code's step is spent.
pub(crate) async fn finish(
    log: &dyn EventLog,
    keys: &Keyring,
    org: ObjectId,
    user: ObjectId,
    meta: EventMeta,
    code: &str,
) -> Result<Executed<User>, AppError> {
    let u = load::<User>(log, org, &StreamId::aggregate("user", user))
        .await?
        .state;
    let secret = u
        .totp
        .pending_secret
        .ok_or_else(|| DomainError::state("totp", "no enrollment was started"))?;
    let secret = SecretPlace::user(keys, org, user).open(&secret)?;
    let step = confirming_step(&secret, code, &meta)?;
    execute::<User>(
        log,
        org,
        &user.to_string(),
        meta,
        UserCommand::FinishTotp { step },
    )
    .await
}

/// Checks a login code; `Ok` spends its step.
pub(crate) async fn verify(
    log: &dyn EventLog,
    keys: &Keyring,
    org: ObjectId,
    user: ObjectId,
    meta: EventMeta,
    code: &str,
) -> Result<Executed<User>, AppError> {
    let u = load::<User>(log, org, &StreamId::aggregate("user", user))
        .await?
        .state;
    let secret = u
        .totp
        .secret
        .ok_or_else(|| DomainError::state("totp", "TOTP is not enrolled"))?;
    let plain = SecretPlace::user(keys, org, user).open(&secret)?;
    let steps = login_steps(&plain, code, &meta, "code")?;
    execute::<User>(
        log,
        org,
        &user.to_string(),
        meta,
        UserCommand::UseTotp(CodeSteps { secret, steps }),
    )
    .await
}

/// The code for a secret at a time (for tests and tools).
pub fn code_at(secret_b32: &str, unix: u64) -> Result<String, AppError> {
    Ok(totp(secret_b32, "x", "x")?.generate(unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    #[test]
    fn accepts_one_step_either_side_and_no_further() {
        let t = 1_700_000_000u64;
        let step = t / 30;
        for (offset, ok) in [
            (-60i64, false),
            (-30, true),
            (0, true),
            (30, true),
            (60, false),
        ] {
            let code = code_at(SECRET, (t as i64 + offset) as u64).unwrap();
            let steps = matching_steps(SECRET, &code, t).unwrap();
            assert_eq!(!steps.is_empty(), ok, "offset {offset}");
            if ok {
                assert!(steps.contains(&((step as i64 + offset / 30) as u64)));
            }
        }
        assert!(matching_steps(SECRET, "12345", t).unwrap().is_empty());
        assert!(matching_steps(SECRET, "abcdef", t).unwrap().is_empty());
    }
}
