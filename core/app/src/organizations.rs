//! Organization commands.

use castellan_domain::envelope::EventMeta;
use castellan_domain::logo::validate_logo;
use castellan_domain::organization::{Organization, OrganizationCommand};
use castellan_domain::ObjectId;
use serde_json::{Map, Value};

use crate::error::AppError;
use crate::execute::{execute, Executed};
use crate::ports::{BlobStore, EventLog};

/// Creates an organization with a new id.
pub async fn create(
    log: &dyn EventLog,
    meta: EventMeta,
    name: &str,
    contact_name: Option<String>,
    contact_email: Option<String>,
) -> Result<(ObjectId, Executed<Organization>), AppError> {
    let id = ObjectId::generate(meta.occurred_at.unix_timestamp());
    let done = execute::<Organization>(
        log,
        id,
        &id.to_string(),
        meta,
        OrganizationCommand::Create {
            name: name.to_string(),
            contact_name,
            contact_email,
        },
    )
    .await?;
    Ok((id, done))
}

/// The fields an update may change; `None` leaves a field alone.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub settings: Option<Map<String, Value>>,
}

pub async fn update(
    log: &dyn EventLog,
    org: ObjectId,
    meta: EventMeta,
    patch: OrganizationPatch,
) -> Result<Executed<Organization>, AppError> {
    execute::<Organization>(
        log,
        org,
        &org.to_string(),
        meta,
        OrganizationCommand::Update {
            name: patch.name,
            contact_name: patch.contact_name,
            contact_email: patch.contact_email,
            settings: patch.settings,
        },
    )
    .await
}

/// Validates the logo, stores its bytes, then records it on the organization.
/// The blob is stored first and is content-addressed, so a failed append leaves at
/// most an unreferenced blob, never an event that points at nothing.
pub async fn set_logo(
    log: &dyn EventLog,
    blobs: &dyn BlobStore,
    org: ObjectId,
    meta: EventMeta,
    bytes: Vec<u8>,
) -> Result<Executed<Organization>, AppError> {
    // Each decode may hold up to MAX_DECODE_BYTES: two at a time per process.
    static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let _turn = DECODES
        .acquire()
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let (info, bytes) = tokio::task::spawn_blocking(move || (validate_logo(&bytes), bytes))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let info = info?;
    blobs
        .put(&info.sha256, &info.content_type, &bytes)
        .await
        .map_err(AppError::Internal)?;
    execute::<Organization>(
        log,
        org,
        &org.to_string(),
        meta,
        OrganizationCommand::SetLogo(info),
    )
    .await
}

pub async fn remove_logo(
    log: &dyn EventLog,
    org: ObjectId,
    meta: EventMeta,
) -> Result<Executed<Organization>, AppError> {
    execute::<Organization>(
        log,
        org,
        &org.to_string(),
        meta,
        OrganizationCommand::RemoveLogo,
    )
    .await
}
