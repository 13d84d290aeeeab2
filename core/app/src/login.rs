//! User login (the user portal's; LDAP, RADIUS and SSO will call the same function).
//!
//! Every attempt becomes a `user_login_attempt` authentication event. Failed password
//! checks count toward lockout through one counter shared by every protocol: the
//! security projection over those events. When the recent failures reach the
//! policy's limit, a `user_lockout` directory event locks the account. Unknown users
//! and wrong passwords answer alike (and take the same argon2 time).

use std::sync::OnceLock;

use async_trait::async_trait;
use castellan_domain::envelope::{Commit, EventMeta, ExpectedVersion, NewEvent, StreamId};
use castellan_domain::ids::new_event_id;
use castellan_domain::user::{PasswordStatus, User, UserCommand, UserState};
use castellan_domain::ObjectId;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::AppError;
use crate::execute::{execute, load};
use crate::ports::EventLog;
use crate::{password, totp, unique, users};

/// Recent failed logins per user, as every protocol reported them.
#[async_trait]
pub trait FailureCounter: Send + Sync {
    /// Failures of `user` since `since`, once the counter has seen `position`.
    async fn failures(
        &self,
        org: ObjectId,
        user: ObjectId,
        since: OffsetDateTime,
        position: u64,
    ) -> u32;
}

#[derive(Debug, Clone)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    pub totp: Option<String>,
    /// The Insights service the attempt belongs to (`directory` for the user portal).
    pub service: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    Success {
        user: ObjectId,
        mfa: bool,
    },
    /// Password right; a TOTP code is needed.
    MfaRequired,
    /// `reason` is safe to show the person logging in.
    Failure {
        reason: &'static str,
    },
}

/// A hash to verify against when the user does not exist, so that both take as long.
pub fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash_blocking("castellan-dummy-password").unwrap_or_default())
}

fn parse(ts: &Option<String>) -> Option<OffsetDateTime> {
    ts.as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
}

pub async fn user_login(
    log: &dyn EventLog,
    counter: &dyn FailureCounter,
    org: ObjectId,
    meta: EventMeta,
    req: LoginRequest,
) -> Result<LoginOutcome, AppError> {
    let now = meta.occurred_at;
    let rec = Recorder {
        log,
        org,
        meta: &meta,
        req: &req,
    };
    let (policy, _) = users::org_policy(log, org).await?;
    let owner = unique::holder_of(log, org, "username", &req.username).await?;
    let user_id: Option<ObjectId> = owner.and_then(|o| o.parse().ok());
    let user = match user_id {
        Some(id) => Some(
            load::<User>(log, org, &StreamId::aggregate("user", id))
                .await?
                .state,
        ),
        None => None,
    };
    let user = user.filter(|u| u.exists && !u.deleted);
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_string());
    let password_ok = password::verify(req.password.clone(), hash)
        .await
        .unwrap_or(false);
    let (Some(id), Some(user)) = (user_id, user) else {
        rec.record(None, false, false, "invalid credentials", false)
            .await?;
        return Ok(LoginOutcome::Failure {
            reason: "invalid credentials",
        });
    };

    // A lockout ends by itself after the policy's lockout time (0: only an admin unlocks).
    let mut locked = user.account_locked;
    if locked && policy.lockout_time_in_seconds > 0 {
        let until = parse(&user.account_locked_date)
            .map(|d| d + time::Duration::seconds(policy.lockout_time_in_seconds as i64));
        if until.is_some_and(|u| now >= u) {
            execute::<User>(log, org, &id.to_string(), meta.clone(), UserCommand::Unlock).await?;
            locked = false;
        }
    }
    if locked {
        rec.record(Some(id), false, false, "account locked", false)
            .await?;
        return Ok(LoginOutcome::Failure {
            reason: "invalid credentials",
        });
    }
    if !password_ok || user.password_hash.is_none() {
        let position = rec
            .record(Some(id), false, false, "invalid credentials", true)
            .await?;
        rec.lock_if_over_limit(counter, &policy, id, position)
            .await?;
        return Ok(LoginOutcome::Failure {
            reason: "invalid credentials",
        });
    }
    let state_problem = match user.state {
        UserState::Staged => Some("the account is not activated yet"),
        UserState::Suspended => Some("the account is suspended"),
        UserState::Activated => None,
    };
    if let Some(reason) = state_problem {
        rec.record(Some(id), false, false, reason, false).await?;
        return Ok(LoginOutcome::Failure { reason });
    }
    let expired_by_age = policy.password_expiration_in_days > 0
        && parse(&user.password_date).is_some_and(|d| {
            now >= d + time::Duration::days(policy.password_expiration_in_days as i64)
        });
    if expired_by_age && user.password_status == PasswordStatus::Active {
        execute::<User>(
            log,
            org,
            &id.to_string(),
            meta.clone(),
            UserCommand::ExpirePassword,
        )
        .await?;
    }
    if expired_by_age || user.password_status == PasswordStatus::Expired {
        rec.record(Some(id), false, false, "password expired", false)
            .await?;
        return Ok(LoginOutcome::Failure {
            reason: "the password has expired",
        });
    }
    if user.mfa_enrollment_expired(now) {
        rec.record(
            Some(id),
            false,
            false,
            "mfa enrollment period expired",
            false,
        )
        .await?;
        return Ok(LoginOutcome::Failure {
            reason: "the MFA enrollment period has ended; ask an administrator",
        });
    }
    if user.totp_enrolled {
        let Some(code) = req.totp.as_deref() else {
            return Ok(LoginOutcome::MfaRequired);
        };
        if let Err(e) = totp::verify(log, org, id, meta.clone(), code).await {
            let position = rec
                .record(Some(id), false, true, "invalid mfa code", true)
                .await?;
            tracing::debug!(error = %e, "TOTP refused");
            rec.lock_if_over_limit(counter, &policy, id, position)
                .await?;
            return Ok(LoginOutcome::Failure {
                reason: "invalid MFA code",
            });
        }
    }
    // A hash below today's floor is replaced now that the password is at hand.
    if let Some(old) = user
        .password_hash
        .as_deref()
        .filter(|h| password::needs_rehash(h))
    {
        let from = password::parameters(old);
        let hash = password::hash(req.password.clone()).await?;
        let to = password::parameters(&hash);
        execute::<User>(
            log,
            org,
            &id.to_string(),
            meta.clone(),
            UserCommand::Rehash { hash, from, to },
        )
        .await?;
    }
    rec.record(Some(id), true, user.totp_enrolled, "", false)
        .await?;
    Ok(LoginOutcome::Success {
        user: id,
        mfa: user.totp_enrolled,
    })
}

/// Writes the attempts of one login.
struct Recorder<'a> {
    log: &'a dyn EventLog,
    org: ObjectId,
    meta: &'a EventMeta,
    req: &'a LoginRequest,
}

impl Recorder<'_> {
    /// Locks the account when the shared counter, having seen the failure at
    /// `position`, reaches the policy's limit within its window.
    async fn lock_if_over_limit(
        &self,
        counter: &dyn FailureCounter,
        policy: &castellan_domain::password_policy::PasswordPolicy,
        user: ObjectId,
        position: u64,
    ) -> Result<(), AppError> {
        if policy.max_login_attempts == 0 {
            return Ok(());
        }
        let window = time::Duration::minutes(policy.reset_lockout_counter_minutes.max(1) as i64);
        let since = self.meta.occurred_at - window;
        if counter.failures(self.org, user, since, position).await >= policy.max_login_attempts {
            execute::<User>(
                self.log,
                self.org,
                &user.to_string(),
                self.meta.clone(),
                UserCommand::Lock,
            )
            .await?;
        }
        Ok(())
    }

    /// Appends the `user_login_attempt` authentication event; its position.
    async fn record(
        &self,
        user: Option<ObjectId>,
        success: bool,
        mfa: bool,
        error: &str,
        counts_toward_lockout: bool,
    ) -> Result<u64, AppError> {
        let (log, org, meta, req) = (self.log, self.org, self.meta, self.req);
        let payload = json!({
            "success": success,
            "username": req.username,
            "resource": {"type": "user", "id": user.map(|u| u.to_string()), "username": req.username},
            "auth_method": "password",
            "mfa": mfa,
            "mfa_meta": {"type": if mfa { "totp" } else { "none" }},
            "error_message": if error.is_empty() { serde_json::Value::Null } else { json!(error) },
            "counts_toward_lockout": counts_toward_lockout,
        });
        let commit = Commit {
            commit_id: Uuid::now_v7(),
            org_id: org,
            stream: StreamId::auth(req.service),
            expected: ExpectedVersion::Any,
            meta: meta.clone(),
            events: vec![NewEvent {
                event_id: new_event_id(),
                event_type: "user_login_attempt".into(),
                schema_version: 1,
                payload,
            }],
        };
        Ok(log.append(commit).await?.position)
    }
}
