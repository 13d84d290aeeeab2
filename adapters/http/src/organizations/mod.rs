//! `/api/organizations`: one file per operation.
//!
//! The body follows the hosted product's v1 organization (`_id`, `displayName`,
//! `logoUrl`, `settings`) plus the contact fields Castellan keeps.

pub mod get;
pub mod list;
pub mod logo;
pub mod update;

use castellan_projections::portal::OrganizationView;
use serde_json::{json, Value};

use crate::error::ApiError;

pub fn to_json(o: &OrganizationView) -> Value {
    json!({
        "_id": o.id,
        "id": o.id,
        "displayName": o.name,
        "logoUrl": o.logo.as_ref().map(|_| format!("/api/organizations/{}/logo", o.id)).unwrap_or_default(),
        "logo": o.logo,
        "contactName": o.contact_name,
        "contactEmail": o.contact_email,
        "settings": o.settings,
        "created": o.created_at,
        "updated": o.updated_at,
        "version": o.version,
    })
}

/// A write's answer: the organization once the portal projection has applied the
/// write (read-your-writes), with the write's log position in a header.
pub async fn read_back(
    state: &crate::state::ApiState,
    id: &str,
    position: u64,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    crate::consistency::wait_for(state, position).await?;
    let org = state
        .store
        .organization(id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok((
        [crate::consistency::position_header(position)],
        axum::Json(to_json(&org)),
    ))
}

/// The caller may only see its own organization; any other id is "not found".
pub fn own(caller: &crate::auth::Caller, id: &str) -> Result<(), ApiError> {
    if id.parse::<castellan_domain::ObjectId>().ok() == Some(caller.org) {
        Ok(())
    } else {
        Err(ApiError::not_found("organization"))
    }
}
