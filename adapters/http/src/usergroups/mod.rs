//! `/api/v2/usergroups` (v2 lists are arrays, the total in `x-total-count`).

pub mod associations;
pub mod crud;
pub mod members;

use crate::error::ApiError;

pub fn parse_id(id: &str) -> Result<castellan_domain::ObjectId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("user group"))
}

/// A group of the caller's org, or 404.
pub async fn existing(
    state: &crate::state::ApiState,
    org: &str,
    id: &str,
) -> Result<serde_json::Value, ApiError> {
    state
        .store
        .group(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user group"))
}
