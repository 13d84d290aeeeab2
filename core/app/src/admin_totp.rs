//! TOTP for administrators: the same RFC 6238 codes and rules as users' (±1 step, a
//! step used once, enrollment confirmed by a first code that cannot log in), kept in
//! the admin's stream. Whether a login needs it: the admin enrolled, or the
//! organization's `settings.requireAdminMfa`.

use castellan_domain::admin::{Admin, AdminCommand};
use castellan_domain::envelope::{EventMeta, StreamId};
use castellan_domain::totp::CodeSteps;
use castellan_domain::{DomainError, ObjectId};

use crate::error::AppError;
use crate::execute::{execute, load, Executed};
use crate::ports::EventLog;
use crate::sealing::Keyring;
use crate::totp::{confirming_step, enrollment, login_steps, new_secret, Enrollment, SecretPlace};

/// Starts (or restarts) the admin's enrollment with a new secret. An admin with TOTP
/// enrolled must send its current `code` (an API key or a session alone cannot
/// replace the factor); the code is spent and the old secret stays in force until
/// the new one is confirmed.
pub async fn start(
    log: &dyn EventLog,
    keys: &Keyring,
    org: ObjectId,
    admin: ObjectId,
    meta: EventMeta,
    issuer: &str,
    code: Option<&str>,
) -> Result<Enrollment, AppError> {
    let state = load::<Admin>(log, org, &StreamId::aggregate("admin", admin))
        .await?
        .state;
    let place = SecretPlace::admin(keys, org, admin);
    let current = match (&state.totp.secret, code) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(DomainError::invalid(
                "code",
                "TOTP is enrolled: send the current code of your authenticator app in code",
            )
            .into())
        }
        (Some(secret), Some(code)) => Some(CodeSteps {
            secret: secret.clone(),
            steps: login_steps(&place.open(secret)?, code, &meta, "code")?,
        }),
    };
    let secret = new_secret()?;
    let done = execute::<Admin>(
        log,
        org,
        &admin.to_string(),
        meta,
        AdminCommand::StartTotp {
            secret: place.seal(&secret),
            current,
        },
    )
    .await?;
    enrollment(secret, &done.state.email, issuer)
}

/// Confirms the enrollment with a valid code; that code's step is spent.
pub async fn finish(
    log: &dyn EventLog,
    keys: &Keyring,
    org: ObjectId,
    admin: ObjectId,
    meta: EventMeta,
    code: &str,
) -> Result<Executed<Admin>, AppError> {
    let a = load::<Admin>(log, org, &StreamId::aggregate("admin", admin))
        .await?
        .state;
    let secret = a
        .totp
        .pending_secret
        .ok_or_else(|| DomainError::state("totp", "no enrollment was started"))?;
    let secret = SecretPlace::admin(keys, org, admin).open(&secret)?;
    let step = confirming_step(&secret, code, &meta)?;
    execute::<Admin>(
        log,
        org,
        &admin.to_string(),
        meta,
        AdminCommand::FinishTotp { step },
    )
    .await
}

/// Checks a login code against the enrolled secret; `Ok` spends its step.
pub async fn verify(
    log: &dyn EventLog,
    keys: &Keyring,
    org: ObjectId,
    admin: &Admin,
    admin_id: ObjectId,
    meta: EventMeta,
    code: &str,
) -> Result<Executed<Admin>, AppError> {
    let secret = admin
        .totp
        .secret
        .clone()
        .ok_or_else(|| DomainError::state("totp", "TOTP is not enrolled"))?;
    let plain = SecretPlace::admin(keys, org, admin_id).open(&secret)?;
    let steps = login_steps(&plain, code, &meta, "totp")?;
    execute::<Admin>(
        log,
        org,
        &admin_id.to_string(),
        meta,
        AdminCommand::UseTotp(CodeSteps { secret, steps }),
    )
    .await
}

/// Whether the organization requires every admin to log in with TOTP.
pub async fn org_requires_mfa(log: &dyn EventLog, org: ObjectId) -> Result<bool, AppError> {
    let loaded = load::<castellan_domain::organization::Organization>(
        log,
        org,
        &StreamId::aggregate("organization", org),
    )
    .await?;
    Ok(loaded.state.requires_admin_mfa())
}
