//! `PUT|GET|DELETE /api/organizations/{id}/logo`. The upload is the image itself
//! (`image/png` or `image/jpeg` body); the rules are the domain's (format, size,
//! dimensions, background), all reported at once.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use castellan_app::organizations;
use castellan_app::ports::BlobStore;

use crate::auth::Caller;
use crate::consistency;
use crate::error::ApiError;
use crate::state::ApiState;

#[utoipa::path(
    put,
    path = "/api/organizations/{id}/logo",
    tag = "organizations",
    params(("id" = String, Path, description = "24-hex object id")),
    request_body(content = Vec<u8>, content_type = "image/png"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 413, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn put(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    super::own(&caller, &id)?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_field",
            Some("logo"),
            "send the PNG or JPEG image as the request body",
        ));
    }
    let done = organizations::set_logo(
        &*state.log,
        &state.store,
        caller.org,
        caller.meta,
        body.to_vec(),
    )
    .await?;
    super::read_back(&state, &id, done.position).await
}

#[utoipa::path(
    delete,
    path = "/api/organizations/{id}/logo",
    tag = "organizations",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 204, description = "done"), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    super::own(&caller, &id)?;
    let done = organizations::remove_logo(&*state.log, caller.org, caller.meta).await?;
    consistency::wait_for(&state, done.position).await?;
    Ok((
        [consistency::position_header(done.position)],
        StatusCode::NO_CONTENT,
    ))
}

/// Public: the logo appears on the login page and in emails.
#[utoipa::path(
    get,
    path = "/api/organizations/{id}/logo",
    tag = "organizations",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 200, description = "the image", content_type = "image/png"), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let org = state
        .store
        .organization(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("logo"))?;
    let logo = org.logo.ok_or_else(|| ApiError::not_found("logo"))?;
    let (content_type, bytes) = state
        .store
        .get(&logo.sha256)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "read_store_unavailable", e))?
        .ok_or_else(|| ApiError::not_found("logo"))?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
