//! Admin TOTP: `POST /api/admin/totp/start` (a new secret, `otpauth://` URI and QR
//! PNG for the caller; an admin with TOTP enrolled sends its current `code`, and the
//! old factor stays in force until `finish`), `POST /api/admin/totp/finish {code}` (confirms; an
//! enrollment-only session is upgraded to a full one), and
//! `DELETE /api/administrators/{id}/totp` (a manager of admins resets another's).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use castellan_app::admin_totp;
use castellan_domain::ObjectId;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::organizations::update::parse;
use crate::state::ApiState;

#[utoipa::path(
    post,
    path = "/api/admin/totp/start",
    tag = "administrators",
    request_body(content = Option<CurrentCode>, content_type = "application/json"),
    responses((status = 400, description = "TOTP is enrolled and no valid current code was sent", body = crate::error::ErrorBody), (status = 200, description = "secret, otpauth URI and QR code PNG (base64)", body = Object), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn start(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<admin_totp_enrollment::Body>, ApiError> {
    // No body, `null` and `{}` all mean "no current code"; a code, when sent, has
    // the shape of one whether or not it is needed.
    // (A derived struct would also take a JSON array, field by field: only an
    // object is a body here.)
    let current: CurrentCode = if body.is_empty() {
        CurrentCode::default()
    } else {
        match parse::<serde_json::Value>(&headers, &body)? {
            serde_json::Value::Null => CurrentCode::default(),
            serde_json::Value::Object(_) => parse::<CurrentCode>(&headers, &body)?,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_json",
                    None,
                    "the body must be a JSON object (or empty)",
                ))
            }
        }
    };
    if let Some(code) = &current.code {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::bad_request(
                "invalid_field",
                Some("code"),
                "code: the 6 digits of the authenticator",
            ));
        }
    }
    // Credentials live in the admin's home organization.
    let e = admin_totp::start(
        &*state.log,
        &state.keys,
        caller.admin.org_id,
        caller.admin.admin_id,
        caller.meta,
        "Castellan",
        current.code.as_deref(),
    )
    .await?;
    Ok(Json(admin_totp_enrollment::Body {
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
        qr_png_base64: e.qr_png_base64,
    }))
}

/// The enrollment as the API answers it.
pub mod admin_totp_enrollment {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Body {
        pub secret: String,
        pub otpauth_uri: String,
        pub qr_png_base64: String,
    }
}

/// To replace an enrolled factor: its current code.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CurrentCode {
    /// The current code of the enrolled authenticator (required when TOTP is enrolled).
    #[schema(pattern = r"^[0-9]{6}$")]
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Code {
    #[schema(pattern = r"^[0-9]{6}$")]
    code: String,
}

#[utoipa::path(
    post,
    path = "/api/admin/totp/finish",
    tag = "administrators",
    request_body(content = Code, content_type = "application/json"),
    responses((status = 200, description = "enrolled", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn finish(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c: Code = parse(&headers, &body)?;
    let done = admin_totp::finish(
        &*state.log,
        &state.keys,
        caller.admin.org_id,
        caller.admin.admin_id,
        caller.meta,
        &c.code,
    )
    .await?;
    let enrolled = json!({"totpEnrolled": done.state.totp.enrolled});
    if !caller.enroll_only {
        return Ok(Json(enrolled).into_response());
    }
    // The session that could only enroll becomes a full one.
    let (token, csrf) =
        super::session::issue(&state, caller.admin.admin_id, caller.admin.org_id, false);
    let body = json!({"totpEnrolled": true, "csrfToken": csrf});
    super::session::with_cookie(&state, Json(body).into_response(), &token)
}

#[utoipa::path(
    delete,
    path = "/api/administrators/{id}/totp",
    tag = "administrators",
    params(("id" = String, Path, description = "24-hex object id")),
    responses((status = 204, description = "TOTP removed; the admin enrolls again"), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 404, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn reset(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let target: ObjectId = id
        .parse()
        .map_err(|_| ApiError::not_found("administrator"))?;
    let done = castellan_app::execute::execute::<castellan_domain::admin::Admin>(
        &*state.log,
        caller.org,
        &target.to_string(),
        caller.meta,
        castellan_domain::admin::AdminCommand::ResetTotp,
    )
    .await?;
    // The admin's sessions end with the reset: answer once the index knows.
    state
        .admins
        .progress()
        .wait_for(done.position, state.consistency_wait)
        .await;
    Ok(StatusCode::NO_CONTENT)
}
