//! Administrator login (the admin portal's session): the password (unknown admins
//! are verified against the dummy hash and answered alike), the lockout, the TOTP
//! code, and an `admin_login_attempt` authentication event for every attempt.
//!
//! Failures count per admin through the same shared counter as users' (every node
//! folds the same log). At the organization's `maxLoginAttempts` within its window
//! (or [`DEFAULT_MAX_FAILURES`] when the organization sets none) the admin is locked
//! (`admin_lockout`) for the organization's lockout time, or
//! [`DEFAULT_LOCKOUT_SECONDS`] when that is "until an admin unlocks", so no
//! organization can lose its last admin for good. A client address that failed too
//! often lately is refused before any check, as for users.

use castellan_domain::admin::{Admin, AdminCommand};
use castellan_domain::envelope::{EventMeta, StreamId};
use castellan_domain::ObjectId;
use serde_json::json;

use crate::error::AppError;
use crate::execute::{execute, load};
use crate::login::{dummy_hash, parse, FailureCounter};
use crate::ports::EventLog;
use crate::sealing::Keyring;
use crate::{admin_totp, admins, auth_events, password, unique, users};

/// Failures within the window that lock an admin when the org sets no limit.
pub const DEFAULT_MAX_FAILURES: u32 = 10;
pub const DEFAULT_WINDOW_MINUTES: u32 = 10;
/// How long an admin lockout lasts when the org's lockout never ends by itself.
pub const DEFAULT_LOCKOUT_SECONDS: u32 = 900;

#[derive(Debug, Clone)]
pub struct AdminLoginRequest {
    pub email: String,
    pub password: String,
    pub totp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminLoginOutcome {
    /// The session may only enroll TOTP when `enroll_only` (the org requires MFA).
    Success {
        admin: ObjectId,
        org: ObjectId,
        mfa: bool,
        enroll_only: bool,
    },
    MfaRequired,
    /// Unknown admin, wrong password, wrong code, or locked: answered alike.
    Invalid,
    Throttled {
        retry_after_seconds: u64,
    },
}

/// The limits that apply to `org`'s admins: (failures, window minutes, lockout seconds).
async fn limits(log: &dyn EventLog, org: ObjectId) -> Result<(u32, u32, u32), AppError> {
    let (policy, _) = users::org_policy(log, org).await?;
    Ok(if policy.max_login_attempts == 0 {
        (
            DEFAULT_MAX_FAILURES,
            DEFAULT_WINDOW_MINUTES,
            DEFAULT_LOCKOUT_SECONDS,
        )
    } else {
        (
            policy.max_login_attempts,
            policy.reset_lockout_counter_minutes.max(1),
            match policy.lockout_time_in_seconds {
                0 => DEFAULT_LOCKOUT_SECONDS,
                s => s,
            },
        )
    })
}

/// A login to the admin portal. `home_of` maps an admin id to their home
/// organization (the admin index), or `None` for an unknown or deleted admin.
pub async fn admin_login(
    log: &dyn EventLog,
    counter: &dyn FailureCounter,
    keys: &Keyring,
    home_of: &(dyn Fn(ObjectId) -> Option<ObjectId> + Send + Sync),
    meta: EventMeta,
    req: AdminLoginRequest,
) -> Result<AdminLoginOutcome, AppError> {
    let email = req.email.trim().to_lowercase();
    let now = meta.occurred_at;
    if let Some(wait) = meta
        .client_ip
        .as_deref()
        .and_then(|ip| counter.throttled(ip, now))
    {
        return Ok(AdminLoginOutcome::Throttled {
            retry_after_seconds: wait,
        });
    }
    let installation = admins::installation_org();
    let found = unique::holder_of(log, installation, "admin_email", &email)
        .await?
        .and_then(|o| o.parse::<ObjectId>().ok())
        .and_then(|id| home_of(id).map(|org| (id, org)));
    let admin = match found {
        Some((id, org)) => {
            load::<Admin>(log, org, &StreamId::aggregate("admin", id))
                .await?
                .state
        }
        None => Admin::default(),
    };
    let hash = admin
        .password_hash
        .clone()
        .unwrap_or_else(|| dummy_hash().to_string());
    let password_ok = password::verify(req.password, hash).await.unwrap_or(false)
        && admin.password_hash.is_some();
    let rec = Attempts {
        log,
        counter,
        meta: &meta,
        email: &email,
        org: found.map(|(_, org)| org).unwrap_or(installation),
        admin: found.map(|(id, _)| id),
    };
    let Some((id, org)) = found else {
        rec.record(false, false, "invalid credentials", false)
            .await?;
        return Ok(AdminLoginOutcome::Invalid);
    };
    let (max, window, lockout) = limits(log, org).await?;
    if admin.locked {
        let until = parse(&admin.locked_at).map(|d| d + time::Duration::seconds(lockout as i64));
        if until.is_some_and(|u| now >= u) {
            execute::<Admin>(
                log,
                org,
                &id.to_string(),
                meta.clone(),
                AdminCommand::Unlock,
            )
            .await?;
        } else {
            rec.record(false, false, "account locked", false).await?;
            return Ok(AdminLoginOutcome::Invalid);
        }
    }
    let meta_ref = &meta;
    let fail = |mfa: bool, error: &'static str| async move {
        let position = rec.record(false, mfa, error, true).await?;
        let since = now - time::Duration::minutes(window as i64);
        if counter.failures(org, id, since, position).await >= max {
            let meta = meta_ref.clone();
            execute::<Admin>(log, org, &id.to_string(), meta, AdminCommand::Lock).await?;
        }
        Ok::<_, AppError>(AdminLoginOutcome::Invalid)
    };
    if !password_ok {
        return fail(false, "invalid credentials").await;
    }
    let mut enroll_only = false;
    if admin.totp.enrolled {
        let Some(code) = req.totp.as_deref() else {
            rec.record(false, false, "mfa required", false).await?;
            return Ok(AdminLoginOutcome::MfaRequired);
        };
        match admin_totp::verify(log, keys, org, &admin, id, meta.clone(), code).await {
            Ok(_) => {}
            Err(AppError::Domain(_)) => return fail(true, "invalid TOTP code").await,
            Err(e) => return Err(e),
        }
    } else if admin_totp::org_requires_mfa(log, org).await? {
        enroll_only = true;
    }
    rec.record(true, admin.totp.enrolled, "", false).await?;
    Ok(AdminLoginOutcome::Success {
        admin: id,
        org,
        mfa: admin.totp.enrolled,
        enroll_only,
    })
}

/// Writes the `admin_login_attempt` events of one login.
#[derive(Clone, Copy)]
struct Attempts<'a> {
    log: &'a dyn EventLog,
    counter: &'a dyn FailureCounter,
    meta: &'a EventMeta,
    email: &'a str,
    org: ObjectId,
    admin: Option<ObjectId>,
}

impl Attempts<'_> {
    async fn record(
        &self,
        success: bool,
        mfa: bool,
        error: &str,
        counts_toward_lockout: bool,
    ) -> Result<u64, AppError> {
        let payload = json!({
            "success": success,
            "initiated_by": {"type": "admin", "id": self.admin.map(|id| id.to_string()), "email": self.email},
            "auth_method": "session",
            "mfa": mfa,
            "error_message": if error.is_empty() { serde_json::Value::Null } else { json!(error) },
            "counts_toward_lockout": counts_toward_lockout,
        });
        let position = auth_events::record(
            self.log,
            self.org,
            "directory",
            self.meta,
            "admin_login_attempt",
            payload,
        )
        .await?;
        if !success {
            self.counter.seen(position).await;
        }
        Ok(position)
    }
}
