//! `PUT /api/organizations/{id}`: name, contact and settings (a merge patch: `null`
//! removes a key). Accepts the hosted product's `displayName` for the name.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use castellan_app::organizations::{self, OrganizationPatch};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ApiState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Body {
    #[serde(alias = "name")]
    display_name: Option<String>,
    #[serde(alias = "contact_name")]
    contact_name: Option<String>,
    #[serde(alias = "contact_email")]
    contact_email: Option<String>,
    settings: Option<Map<String, Value>>,
}

/// Parses a JSON body, naming the problem (and the field, when serde knows it).
pub fn parse<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.starts_with("application/json") || ct.contains("+json"))
        .unwrap_or(true);
    if !json {
        return Err(ApiError::bad_request(
            "unsupported_media_type",
            None,
            "send the body as application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", None, format!("invalid JSON body: {e}")))
}

#[utoipa::path(
    put,
    path = "/api/organizations/{id}",
    tag = "organizations",
    params(("id" = String, Path, description = "24-hex object id")),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    super::own(&caller, &id)?;
    let body: Body = parse(&headers, &body)?;
    let done = organizations::update(
        &*state.log,
        caller.org,
        caller.meta,
        OrganizationPatch {
            name: body.display_name,
            contact_name: body.contact_name,
            contact_email: body.contact_email,
            settings: body.settings,
        },
    )
    .await?;
    super::read_back(&state, &id, done.position).await
}
