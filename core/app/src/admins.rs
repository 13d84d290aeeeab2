//! Administrator commands and `bootstrap` (a new organization with its first admin).

use castellan_domain::admin::{Admin, AdminCommand, AdminRole};
use castellan_domain::envelope::{Actor, ActorKind, EventMeta};
use castellan_domain::ObjectId;
use rand::distributions::{Alphanumeric, DistString};

use crate::error::AppError;
use crate::execute::execute;
use crate::links;
use crate::organizations;
use crate::password;
use crate::ports::EventLog;
use crate::unique;
use castellan_domain::DomainError;

/// Admin emails are unique across the installation (an admin may serve several
/// organizations), so their keys live in this reserved organization's streams.
pub const INSTALLATION_ORG: &str = "000000000000000000000000";

pub fn installation_org() -> ObjectId {
    INSTALLATION_ORG.parse().expect("valid id")
}

/// SHA-256 of an API key, hex: what the read model indexes (keys are random, like
/// link tokens, so the same fast hash serves).
pub fn api_key_hash(key: &str) -> String {
    links::token_hash(key)
}

/// A new API key: 40 lowercase letters and digits (the hosted product's key shape).
fn new_api_key() -> String {
    Alphanumeric
        .sample_string(&mut rand::thread_rng(), 40)
        .to_lowercase()
}

pub struct CreatedAdmin {
    pub id: ObjectId,
    pub position: u64,
    /// The one-time set-password token of the invitation (when no password was given).
    pub invite_token: Option<String>,
}

/// Creates an admin in `org`; the email must not belong to another admin.
pub async fn create(
    log: &dyn EventLog,
    org: ObjectId,
    meta: EventMeta,
    email: &str,
    role: AdminRole,
    password: Option<String>,
) -> Result<CreatedAdmin, AppError> {
    let id = ObjectId::generate(meta.occurred_at.unix_timestamp());
    if let Some(p) = &password {
        // Admin passwords meet the default policy, whatever the org asks of its users.
        castellan_domain::password_policy::PasswordPolicy::default().check(
            "password",
            p,
            Some(&email.trim().to_lowercase()),
        )?;
    }
    let (password_hash, invite_token) = match password {
        Some(p) => (Some(password::hash(p).await?), None),
        None => (None, Some(links::new_token())),
    };
    let invite = invite_token
        .as_ref()
        .map(|t| (links::token_hash(t), links::expiry(meta.occurred_at)));
    unique::claim(
        log,
        installation_org(),
        "admin_email",
        email,
        &id.to_string(),
        &meta,
    )
    .await?;
    let result = execute::<Admin>(
        log,
        org,
        &id.to_string(),
        meta.clone(),
        AdminCommand::Create {
            email: email.to_string(),
            role,
            password_hash,
            invite,
        },
    )
    .await;
    match result {
        Ok(done) => Ok(CreatedAdmin {
            id,
            position: done.position,
            invite_token,
        }),
        Err(e) => {
            // Give the email back so that a corrected request can use it.
            let _ = unique::release(
                log,
                installation_org(),
                "admin_email",
                email,
                &id.to_string(),
                &meta,
            )
            .await;
            Err(e)
        }
    }
}

/// Sets the password through an invitation's one-time link.
pub async fn accept_invitation(
    log: &dyn EventLog,
    org: ObjectId,
    admin: ObjectId,
    meta: EventMeta,
    token: &str,
    new_password: String,
) -> Result<u64, AppError> {
    let a = crate::execute::load::<Admin>(
        log,
        org,
        &castellan_domain::envelope::StreamId::aggregate("admin", admin),
    )
    .await?
    .state;
    // Checked again inside the command, where a concurrent use of the link loses.
    if a.deleted || a.invite_token_hash.as_deref() != Some(links::token_hash(token).as_str()) {
        return Err(DomainError::invalid("token", "the link is invalid, used or expired").into());
    }
    castellan_domain::password_policy::PasswordPolicy::default().check(
        "password",
        &new_password,
        Some(&a.email),
    )?;
    let hash = password::hash(new_password).await?;
    Ok(execute::<Admin>(
        log,
        org,
        &admin.to_string(),
        meta,
        AdminCommand::SetPassword {
            hash,
            invite_token_hash: Some(links::token_hash(token)),
        },
    )
    .await?
    .position)
}

/// Deletes an admin. Nobody deletes their own account (an org keeps an admin who can act).
pub async fn delete(
    log: &dyn EventLog,
    org: ObjectId,
    acting: ObjectId,
    admin: ObjectId,
    meta: EventMeta,
) -> Result<u64, AppError> {
    if acting == admin {
        return Err(
            DomainError::state("id", "an administrator cannot delete their own account").into(),
        );
    }
    let done = execute::<Admin>(
        log,
        org,
        &admin.to_string(),
        meta.clone(),
        AdminCommand::Delete,
    )
    .await?;
    if done.state.home_org.is_some() {
        // A revoked grant: the admin and their email live on at home.
        return Ok(done.position);
    }
    unique::release(
        log,
        installation_org(),
        "admin_email",
        &done.state.email,
        &admin.to_string(),
        &meta,
    )
    .await?;
    Ok(done.position)
}

/// Issues a new API key for the admin, revoking the old one. The key is returned
/// once; only its hash is stored.
pub async fn rotate_api_key(
    log: &dyn EventLog,
    org: ObjectId,
    admin: ObjectId,
    meta: EventMeta,
) -> Result<(String, u64), AppError> {
    let key = new_api_key();
    // The id lists and insights show: random, so no part of the key is ever shown.
    let key_id = Alphanumeric
        .sample_string(&mut rand::thread_rng(), 12)
        .to_lowercase();
    let done = execute::<Admin>(
        log,
        org,
        &admin.to_string(),
        meta,
        AdminCommand::RotateApiKey {
            key_id,
            key_hash: api_key_hash(&key),
        },
    )
    .await?;
    Ok((key, done.position))
}

/// Revokes another admin's API key: the key stops working and no new key is made
/// (only its owner may make one, and see it).
pub async fn revoke_api_key(
    log: &dyn EventLog,
    org: ObjectId,
    admin: ObjectId,
    meta: EventMeta,
) -> Result<u64, AppError> {
    Ok(execute::<Admin>(
        log,
        org,
        &admin.to_string(),
        meta,
        AdminCommand::RevokeApiKey,
    )
    .await?
    .position)
}

/// What `castellan bootstrap` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bootstrapped {
    pub org_id: ObjectId,
    pub admin_id: ObjectId,
    pub api_key: String,
    pub position: u64,
}

/// Creates an organization, its first admin (administrator with billing) and an API key.
pub async fn bootstrap(
    log: &dyn EventLog,
    now: time::OffsetDateTime,
    org_name: &str,
    admin_email: &str,
    admin_password: Option<String>,
) -> Result<Bootstrapped, AppError> {
    let meta = EventMeta::new(
        now,
        Actor {
            kind: ActorKind::System,
            id: None,
            email: None,
        },
    );
    let (org_id, _) = organizations::create(
        log,
        meta.clone(),
        org_name,
        None,
        Some(admin_email.to_string()),
    )
    .await?;
    let admin = create(
        log,
        org_id,
        meta.clone(),
        admin_email,
        AdminRole::AdministratorWithBilling,
        admin_password,
    )
    .await?;
    let (api_key, position) = rotate_api_key(log, org_id, admin.id, meta).await?;
    Ok(Bootstrapped {
        org_id,
        admin_id: admin.id,
        api_key,
        position,
    })
}

/// Gives `admin` (whose home is `home_org`) the role `role` in `org`. Their password,
/// keys and TOTP stay in the home organization.
pub async fn grant(
    log: &dyn EventLog,
    org: ObjectId,
    meta: EventMeta,
    admin: ObjectId,
    home_org: ObjectId,
    email: &str,
    role: AdminRole,
) -> Result<u64, AppError> {
    if org == home_org {
        return Err(DomainError::Taken {
            field: "email".into(),
            value: email.to_string(),
        }
        .into());
    }
    Ok(execute::<Admin>(
        log,
        org,
        &admin.to_string(),
        meta,
        AdminCommand::Grant {
            email: email.to_string(),
            role,
            home_org: home_org.to_string(),
        },
    )
    .await?
    .position)
}
