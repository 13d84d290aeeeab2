//! `POST /userportal/totp/start` and `/userportal/totp/finish` (with `code`).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use castellan_app::{password, totp, unique};
use castellan_domain::envelope::StreamId;
use castellan_domain::user::User;
use castellan_domain::ObjectId;
use serde_json::{json, Value};

use super::login::{meta, org};
use super::Credentials;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

fn denied() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "invalid credentials",
    )
}

/// The user the credentials prove to be (no lockout bookkeeping: enrollment is not a login).
async fn authenticate(state: &ApiState, c: &Credentials) -> Result<(ObjectId, ObjectId), ApiError> {
    let org = org(c)?;
    let id: ObjectId = unique::holder_of(&*state.log, org, "username", &c.username)
        .await?
        .and_then(|o| o.parse().ok())
        .ok_or_else(denied)?;
    let user =
        castellan_app::execute::load::<User>(&*state.log, org, &StreamId::aggregate("user", id))
            .await?
            .state;
    let hash = user.password_hash.clone().ok_or_else(denied)?;
    if user.deleted
        || user.account_locked
        || !password::verify(c.password.clone(), hash)
            .await
            .unwrap_or(false)
    {
        return Err(denied());
    }
    Ok((org, id))
}

#[utoipa::path(
    post,
    path = "/userportal/totp/start",
    tag = "userportal",
    request_body(content = crate::schemas::Login, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn start(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let c: Credentials = parse(&headers, &body)?;
    let (org, id) = authenticate(&state, &c).await?;
    let issuer = state
        .store
        .organization(&org.to_string())
        .await?
        .map(|o| o.name)
        .unwrap_or_else(|| "Castellan".into());
    let enrollment = totp::start(
        &*state.log,
        org,
        id,
        meta(&state, &headers, Some(peer), &c.username),
        &issuer,
    )
    .await?;
    Ok(Json(
        json!({"secret": enrollment.secret, "otpauthUri": enrollment.otpauth_uri, "qrPng": enrollment.qr_png_base64}),
    ))
}

#[utoipa::path(
    post,
    path = "/userportal/totp/finish",
    tag = "userportal",
    request_body(content = crate::schemas::TotpFinish, content_type = "application/json"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
)]
pub async fn finish(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let c: Credentials = parse(&headers, &body)?;
    let code = c.code.clone().ok_or_else(|| {
        ApiError::bad_request(
            "invalid_field",
            Some("code"),
            "code: the first code from the app",
        )
    })?;
    let (org, id) = authenticate(&state, &c).await?;
    totp::finish(
        &*state.log,
        org,
        id,
        meta(&state, &headers, Some(peer), &c.username),
        &code,
    )
    .await?;
    Ok(Json(json!({"enrolled": true})))
}
