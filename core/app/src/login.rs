//! User login: the one function every path that checks a user's password goes
//! through (the user portal's login and TOTP enrollment today; LDAP, RADIUS and SSO
//! will call it too).
//!
//! Every attempt becomes a `user_login_attempt` authentication event. Failed password
//! and code checks count toward lockout through one counter shared by every protocol:
//! the security projection over those events. When the recent failures reach the
//! policy's limit, a `user_lockout` directory event locks the account. Unknown users
//! and wrong passwords answer alike (and take the same argon2 time). A client address
//! that failed too often lately is refused before any check ([`FailureCounter::throttled`]),
//! and such refusals are not recorded, so a flood cannot grow the log.

use std::sync::OnceLock;

use async_trait::async_trait;
use castellan_domain::envelope::{EventMeta, StreamId};
use castellan_domain::password_policy::PasswordPolicy;
use castellan_domain::totp::CodeSteps;
use castellan_domain::user::{PasswordStatus, User, UserCommand, UserState};
use castellan_domain::{DomainError, ObjectId};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::error::AppError;
use crate::execute::{execute, load};
use crate::ports::EventLog;
use crate::sealing::Keyring;
use crate::{auth_events, password, totp, unique, users};

/// Recent failed logins per account and per client address, as every protocol
/// reported them.
#[async_trait]
pub trait FailureCounter: Send + Sync {
    /// Failures of `account` (a user's or an admin's id) since `since`, once the
    /// counter has seen `position`.
    async fn failures(
        &self,
        org: ObjectId,
        account: ObjectId,
        since: OffsetDateTime,
        position: u64,
    ) -> u32;

    /// When `ip` failed so often lately that its attempts are refused now: the
    /// seconds until it may try again.
    fn throttled(&self, ip: &str, now: OffsetDateTime) -> Option<u64>;

    /// Waits (bounded) until the counter has seen `position`: a failure is answered
    /// only once it counts, so the next attempt's throttle sees it.
    async fn seen(&self, position: u64);
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
    /// The client's address failed too often lately; nothing was checked.
    Throttled {
        retry_after_seconds: u64,
    },
}

const INVALID: LoginOutcome = LoginOutcome::Failure {
    reason: "invalid credentials",
};
const INVALID_CODE: LoginOutcome = LoginOutcome::Failure {
    reason: "invalid MFA code",
};

/// A hash to verify against when the user does not exist, so that both take as long.
pub fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash_blocking("castellan-dummy-password").unwrap_or_default())
}

pub(crate) fn parse(ts: &Option<String>) -> Option<OffsetDateTime> {
    ts.as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
}

/// A login: the password, the account's state, and the TOTP code when enrolled.
pub async fn user_login(
    log: &dyn EventLog,
    counter: &dyn FailureCounter,
    keys: &Keyring,
    org: ObjectId,
    meta: EventMeta,
    req: LoginRequest,
) -> Result<LoginOutcome, AppError> {
    let rec = Recorder::new(log, counter, org, &meta, &req);
    let mut account = match rec.check_password().await? {
        Ok(account) => account,
        Err(refused) => return Ok(refused),
    };
    // An admin's MFA exclusion (`mfa.exclusion`) waives the code while it holds.
    let mfa = account.user.totp.enrolled && !account.user.mfa_excluded(meta.occurred_at);
    if mfa {
        let Some(code) = req.totp.as_deref() else {
            return Ok(LoginOutcome::MfaRequired);
        };
        match totp::verify(log, keys, org, account.id, meta.clone(), code).await {
            Ok(_) => {}
            Err(AppError::Domain(e)) => {
                tracing::debug!(error = %e, "TOTP refused");
                return rec
                    .code_failed(&account)
                    .await
                    .map(|r| r.unwrap_or_else(|o| o));
            }
            Err(e) => return Err(e),
        }
    }
    rec.rehash_if_weak(&mut account).await?;
    rec.succeeded(&account, mfa).await
}

/// Starts a TOTP enrollment for the person who proves to be the user as a login
/// does. An enrolled user must also send the current code (`req.totp`), which is
/// spent; the old secret stays in force until the new one is confirmed.
pub async fn start_totp_enrollment(
    log: &dyn EventLog,
    counter: &dyn FailureCounter,
    keys: &Keyring,
    org: ObjectId,
    meta: EventMeta,
    req: LoginRequest,
    issuer: &str,
) -> Result<Result<totp::Enrollment, LoginOutcome>, AppError> {
    let rec = Recorder::new(log, counter, org, &meta, &req);
    let account = match rec.check_password().await? {
        Ok(account) => account,
        Err(refused) => return Ok(Err(refused)),
    };
    let current = match (&account.user.totp.secret, req.totp.as_deref()) {
        (None, _) => None,
        (Some(_), None) => return Ok(Err(LoginOutcome::MfaRequired)),
        (Some(secret), Some(code)) => match totp::SecretPlace::user(keys, org, account.id)
            .open(secret)
            .and_then(|plain| totp::login_steps(&plain, code, &meta, "totp"))
        {
            Ok(steps) => Some(CodeSteps {
                secret: secret.clone(),
                steps,
            }),
            Err(_) => return rec.code_failed(&account).await,
        },
    };
    let proven = current.is_some();
    match totp::start(log, keys, org, account.id, meta.clone(), issuer, current).await {
        Ok(enrollment) => {
            rec.record(Some(account.id), true, proven, "", false)
                .await?;
            Ok(Ok(enrollment))
        }
        // The current code was already used (or TOTP was reset meanwhile).
        Err(AppError::Domain(e)) if proven && e.field() == Some("totp") => {
            rec.code_failed(&account).await
        }
        Err(e) => Err(e),
    }
}

/// Confirms the enrollment started by [`start_totp_enrollment`] with the first code
/// of the new secret (`code`) and the password; a wrong code counts toward lockout.
pub async fn finish_totp_enrollment(
    log: &dyn EventLog,
    counter: &dyn FailureCounter,
    keys: &Keyring,
    org: ObjectId,
    meta: EventMeta,
    req: LoginRequest,
    code: &str,
) -> Result<Result<(), LoginOutcome>, AppError> {
    let rec = Recorder::new(log, counter, org, &meta, &req);
    let account = match rec.check_password().await? {
        Ok(account) => account,
        Err(refused) => return Ok(Err(refused)),
    };
    if account.user.totp.pending_secret.is_none() {
        return Err(DomainError::state("totp", "no enrollment was started").into());
    }
    match totp::finish(log, keys, org, account.id, meta.clone(), code).await {
        Ok(_) => {
            rec.record(Some(account.id), true, true, "", false).await?;
            Ok(Ok(()))
        }
        Err(AppError::Domain(e)) if e.field() == Some("code") => rec.code_failed(&account).await,
        Err(e) => Err(e),
    }
}

/// A user whose password was right and whose account may log in.
struct Account {
    id: ObjectId,
    user: User,
    policy: PasswordPolicy,
}

/// One login's checks and the attempts it records.
struct Recorder<'a> {
    log: &'a dyn EventLog,
    counter: &'a dyn FailureCounter,
    org: ObjectId,
    meta: &'a EventMeta,
    req: &'a LoginRequest,
}

impl<'a> Recorder<'a> {
    fn new(
        log: &'a dyn EventLog,
        counter: &'a dyn FailureCounter,
        org: ObjectId,
        meta: &'a EventMeta,
        req: &'a LoginRequest,
    ) -> Self {
        Recorder {
            log,
            counter,
            org,
            meta,
            req,
        }
    }

    /// The throttle, the password (against the dummy hash for unknown users), the
    /// lockout and the account's state: the account, or the answer to give.
    async fn check_password(&self) -> Result<Result<Account, LoginOutcome>, AppError> {
        let (log, org, meta, req) = (self.log, self.org, self.meta, self.req);
        let now = meta.occurred_at;
        if let Some(wait) = meta
            .client_ip
            .as_deref()
            .and_then(|ip| self.counter.throttled(ip, now))
        {
            return Ok(Err(LoginOutcome::Throttled {
                retry_after_seconds: wait,
            }));
        }
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
            // No account to lock; the failure still counts toward the address's throttle.
            self.record(None, false, false, "invalid credentials", false)
                .await?;
            return Ok(Err(INVALID));
        };
        let account = Account { id, user, policy };

        // A lockout ends by itself after the policy's lockout time (0: only an admin unlocks).
        let mut locked = account.user.account_locked;
        if locked && account.policy.lockout_time_in_seconds > 0 {
            let until = parse(&account.user.account_locked_date).map(|d| {
                d + time::Duration::seconds(account.policy.lockout_time_in_seconds as i64)
            });
            if until.is_some_and(|u| now >= u) {
                execute::<User>(log, org, &id.to_string(), meta.clone(), UserCommand::Unlock)
                    .await?;
                locked = false;
            }
        }
        if locked {
            self.record(Some(id), false, false, "account locked", false)
                .await?;
            return Ok(Err(INVALID));
        }
        if !password_ok || account.user.password_hash.is_none() {
            return self
                .failed(&account, false, "invalid credentials", INVALID)
                .await;
        }
        if let Some(refused) = self.state_problem(&account).await? {
            return Ok(Err(refused));
        }
        Ok(Ok(account))
    }

    /// Why an account with the right password may not log in now, recorded.
    async fn state_problem(&self, account: &Account) -> Result<Option<LoginOutcome>, AppError> {
        let (user, policy, id) = (&account.user, &account.policy, account.id);
        let now = self.meta.occurred_at;
        let state_problem = match user.state {
            UserState::Staged => Some("the account is not activated yet"),
            UserState::Suspended => Some("the account is suspended"),
            UserState::Activated => None,
        };
        if let Some(reason) = state_problem {
            self.record(Some(id), false, false, reason, false).await?;
            return Ok(Some(LoginOutcome::Failure { reason }));
        }
        // `password_never_expires` exempts the user from the policy's expiry.
        let never_expires = user
            .profile
            .get("password_never_expires")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let expired_by_age = !never_expires
            && policy.password_expiration_in_days > 0
            && parse(&user.password_date).is_some_and(|d| {
                now >= d + time::Duration::days(policy.password_expiration_in_days as i64)
            });
        if expired_by_age && user.password_status == PasswordStatus::Active {
            execute::<User>(
                self.log,
                self.org,
                &id.to_string(),
                self.meta.clone(),
                UserCommand::ExpirePassword,
            )
            .await?;
        }
        if expired_by_age || user.password_status == PasswordStatus::Expired {
            self.record(Some(id), false, false, "password expired", false)
                .await?;
            return Ok(Some(LoginOutcome::Failure {
                reason: "the password has expired",
            }));
        }
        if user.mfa_enrollment_expired(now) {
            let reason = "mfa enrollment period expired";
            self.record(Some(id), false, false, reason, false).await?;
            return Ok(Some(LoginOutcome::Failure {
                reason: "the MFA enrollment period has ended; ask an administrator",
            }));
        }
        Ok(None)
    }

    /// A wrong TOTP code: recorded, counted toward lockout.
    async fn code_failed<T>(&self, account: &Account) -> Result<Result<T, LoginOutcome>, AppError> {
        self.failed(account, true, "invalid mfa code", INVALID_CODE)
            .await
    }

    /// Records a failure that counts toward lockout, and locks the account when the
    /// shared counter reaches the policy's limit within its window.
    async fn failed<T>(
        &self,
        account: &Account,
        mfa: bool,
        error: &str,
        answer: LoginOutcome,
    ) -> Result<Result<T, LoginOutcome>, AppError> {
        let position = self
            .record(Some(account.id), false, mfa, error, true)
            .await?;
        let policy = &account.policy;
        if policy.max_login_attempts > 0 {
            let window =
                time::Duration::minutes(policy.reset_lockout_counter_minutes.max(1) as i64);
            let since = self.meta.occurred_at - window;
            let failures = self
                .counter
                .failures(self.org, account.id, since, position)
                .await;
            if failures >= policy.max_login_attempts {
                execute::<User>(
                    self.log,
                    self.org,
                    &account.id.to_string(),
                    self.meta.clone(),
                    UserCommand::Lock,
                )
                .await?;
            }
        }
        Ok(Err(answer))
    }

    /// A hash below today's floor is replaced now that the password is at hand.
    async fn rehash_if_weak(&self, account: &mut Account) -> Result<(), AppError> {
        let Some(old) = account
            .user
            .password_hash
            .as_deref()
            .filter(|h| password::needs_rehash(h))
        else {
            return Ok(());
        };
        let from = password::parameters(old);
        let hash = password::hash(self.req.password.clone()).await?;
        let to = password::parameters(&hash);
        execute::<User>(
            self.log,
            self.org,
            &account.id.to_string(),
            self.meta.clone(),
            UserCommand::Rehash { hash, from, to },
        )
        .await?;
        Ok(())
    }

    async fn succeeded(&self, account: &Account, mfa: bool) -> Result<LoginOutcome, AppError> {
        self.record(Some(account.id), true, mfa, "", false).await?;
        Ok(LoginOutcome::Success {
            user: account.id,
            mfa,
        })
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
        let req = self.req;
        // Who tried, as Elastic's pipeline maps it: the user's id (when the username
        // is one of theirs), type `user`, the username, and the email only when the
        // username is one.
        let mut initiated_by = json!({
            "id": user.map(|u| u.to_string()),
            "type": "user",
            "username": req.username,
        });
        if req.username.contains('@') {
            initiated_by["email"] = json!(req.username);
        }
        let payload = json!({
            "initiated_by": initiated_by,
            "success": success,
            "username": req.username,
            "resource": {"type": "user", "id": user.map(|u| u.to_string()), "username": req.username},
            "auth_method": "password",
            "mfa": mfa,
            "mfa_meta": {"type": if mfa { "totp" } else { "none" }},
            "error_message": if error.is_empty() { serde_json::Value::Null } else { json!(error) },
            "counts_toward_lockout": counts_toward_lockout,
        });
        let position = auth_events::record(
            self.log,
            self.org,
            req.service,
            self.meta,
            "user_login_attempt",
            payload,
        )
        .await?;
        if !success {
            self.counter.seen(position).await;
        }
        Ok(position)
    }
}
