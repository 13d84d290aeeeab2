//! `castellan keys reseal`: after a new key is put first in
//! `security.encryption_keys`, every TOTP secret still sealed under an older key (or
//! stored before sealing existed) is sealed anew under the current one, by a
//! `totp_resealed` event (users) or an `admin_update` carrying the resealed secrets
//! (admins). Once it reports nothing left, the older keys can be removed: the
//! secrets in older events then no longer open, and nothing needs them.
//!
//! Safe beside running nodes: each reseal is an append that expects the version it
//! read, and a reseal whose secrets changed meanwhile is refused and retried here.

use std::collections::BTreeSet;

use castellan_domain::admin::{Admin, AdminCommand};
use castellan_domain::envelope::{Actor, EventMeta, Position, StreamId};
use castellan_domain::totp::StoredSecrets;
use castellan_domain::user::{User, UserCommand};
use castellan_domain::ObjectId;
use time::OffsetDateTime;

use crate::error::AppError;
use crate::execute::{execute, load};
use crate::ports::EventLog;
use crate::sealing::Keyring;
use crate::totp::SecretPlace;

/// What a reseal found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResealReport {
    /// Accounts whose events ever carried a TOTP secret.
    pub accounts_seen: usize,
    /// Accounts whose secrets were (or, in a dry run, would be) sealed anew.
    pub resealed: usize,
    /// Accounts already sealed under the current key (or without a secret now).
    pub current: usize,
    /// Deleted accounts, left as they are (their secrets go with the old keys).
    pub deleted: usize,
    /// The key that seals now.
    pub key_id: String,
}

const READ_BATCH: usize = 1000;
const ATTEMPTS: usize = 5;

/// Reseals every TOTP secret that is not under the keyring's current key.
pub async fn reseal_totp(
    log: &dyn EventLog,
    keys: &Keyring,
    dry_run: bool,
) -> Result<ResealReport, AppError> {
    let accounts = accounts_with_secrets(log).await?;
    let mut report = ResealReport {
        accounts_seen: accounts.len(),
        key_id: keys.current_id().to_string(),
        ..Default::default()
    };
    for (org, kind, id) in accounts {
        match reseal_account(log, keys, org, &kind, &id, dry_run).await? {
            Outcome::Resealed => report.resealed += 1,
            Outcome::Current => report.current += 1,
            Outcome::Deleted => report.deleted += 1,
        }
    }
    Ok(report)
}

/// Every (org, aggregate kind, id) whose stream ever carried a TOTP secret.
async fn accounts_with_secrets(
    log: &dyn EventLog,
) -> Result<BTreeSet<(ObjectId, String, String)>, AppError> {
    let mut found = BTreeSet::new();
    let mut after: Position = 0;
    loop {
        let batch = log.read_after(after, READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for rc in batch {
            let StreamId::Aggregate { kind, id } = &rc.commit.stream else {
                continue;
            };
            if (kind == "user" || kind == "admin")
                && rc
                    .commit
                    .events
                    .iter()
                    .any(|e| e.payload.get("totp_secret").is_some())
            {
                found.insert((rc.commit.org_id, kind.clone(), id.clone()));
            }
        }
    }
    Ok(found)
}

enum Outcome {
    Resealed,
    Current,
    Deleted,
}

/// Reseals one account's secrets (in a dry run: says whether it would).
async fn reseal_account(
    log: &dyn EventLog,
    keys: &Keyring,
    org: ObjectId,
    kind: &str,
    id: &str,
    dry_run: bool,
) -> Result<Outcome, AppError> {
    let account: ObjectId = id
        .parse()
        .map_err(|_| AppError::Internal(format!("{kind} stream id {id} is not an object id")))?;
    let place = if kind == "user" {
        SecretPlace::user(keys, org, account)
    } else {
        SecretPlace::admin(keys, org, account)
    };
    let stream = StreamId::aggregate(kind, id);
    for _ in 0..ATTEMPTS {
        let (gone, read) = if kind == "user" {
            let u = load::<User>(log, org, &stream).await?.state;
            (!u.exists || u.deleted, u.totp.stored())
        } else {
            let a = load::<Admin>(log, org, &stream).await?.state;
            (!a.exists || a.deleted, a.totp.stored())
        };
        if gone {
            return Ok(Outcome::Deleted);
        }
        let stale = |s: &Option<String>| s.as_deref().is_some_and(|s| !keys.is_current(s));
        if !stale(&read.enrolled) && !stale(&read.pending) {
            return Ok(Outcome::Current);
        }
        if dry_run {
            return Ok(Outcome::Resealed);
        }
        let anew = |s: &Option<String>| -> Result<Option<String>, AppError> {
            s.as_deref()
                .map(|s| place.open(s).map(|plain| place.seal(&plain)))
                .transpose()
        };
        let sealed = StoredSecrets {
            enrolled: anew(&read.enrolled)?,
            pending: anew(&read.pending)?,
        };
        let meta = EventMeta::new(OffsetDateTime::now_utc(), Actor::system());
        let result = if kind == "user" {
            execute::<User>(log, org, id, meta, UserCommand::ResealTotp { read, sealed })
                .await
                .map(|_| ())
        } else {
            execute::<Admin>(
                log,
                org,
                id,
                meta,
                AdminCommand::ResealTotp { read, sealed },
            )
            .await
            .map(|_| ())
        };
        match result {
            Ok(()) => return Ok(Outcome::Resealed),
            // Enrolled or reset meanwhile: read again.
            Err(AppError::Domain(e)) if e.field() == Some("totp") => continue,
            Err(e) => return Err(e),
        }
    }
    Err(AppError::Internal(format!(
        "the TOTP secrets of {kind} {id} kept changing during the reseal; run it again"
    )))
}
