//! `POST /userportal/totp/start` and `/userportal/totp/finish` (with `code`). Both
//! prove the user as a login does (the one login function: lockout, throttle,
//! events). A user with TOTP enrolled also sends the current code in `totp` to
//! start a new enrollment; the old factor stays in force until `finish` confirms
//! the new one with its first code.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::Json;
use castellan_app::login;
use serde_json::{json, Value};

use super::login::{meta, not_found_is_invalid, org, refusal, request};
use super::Credentials;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

#[utoipa::path(
    post,
    path = "/userportal/totp/start",
    tag = "userportal",
    request_body(content = crate::schemas::Login, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 429, description = "too many failed logins from this address", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn start(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let c: Credentials = parse(&headers, &body)?;
    let org = org(&c)?;
    let meta = meta(&state, &headers, Some(peer), &c.username);
    let issuer = state
        .store
        .organization(&org.to_string())
        .await?
        .map(|o| o.name)
        .unwrap_or_else(|| "Castellan".into());
    let enrollment = login::start_totp_enrollment(
        &*state.log,
        &*state.failures,
        &state.keys,
        org,
        meta,
        request(c),
        &issuer,
    )
    .await
    .map_err(not_found_is_invalid)?
    .map_err(refusal)?;
    Ok(Json(
        json!({"secret": enrollment.secret, "otpauthUri": enrollment.otpauth_uri, "qrPng": enrollment.qr_png_base64}),
    ))
}

#[utoipa::path(
    post,
    path = "/userportal/totp/finish",
    tag = "userportal",
    request_body(content = crate::schemas::TotpFinish, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 429, description = "too many failed logins from this address", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn finish(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let c: Credentials = parse(&headers, &body)?;
    let code = c
        .code
        .clone()
        .filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_field",
                Some("code"),
                "code: the first six-digit code from the app",
            )
        })?;
    let org = org(&c)?;
    let meta = meta(&state, &headers, Some(peer), &c.username);
    login::finish_totp_enrollment(
        &*state.log,
        &*state.failures,
        &state.keys,
        org,
        meta,
        request(c),
        &code,
    )
    .await
    .map_err(not_found_is_invalid)?
    .map_err(refusal)?;
    Ok(Json(json!({"enrolled": true})))
}
