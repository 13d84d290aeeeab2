//! `POST /api/systemusers/import[?dryRun=true]`: the CSV as the body (`text/csv`) or
//! as the first file of a `multipart/form-data` form. Answers a JSON summary with the
//! per-row results, or the result CSV itself with `Accept: text/csv`. A malformed file
//! is refused whole (400 naming the line) before anything is imported.

use crate::query::Query;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use castellan_app::import::{self, ImportError};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ApiState;

/// The largest CSV accepted over HTTP (the CLI has no limit).
pub const MAX_CSV_BYTES: usize = 128 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    #[serde(default)]
    dry_run: bool,
}

async fn csv_bytes(request: Request, state: &ApiState) -> Result<Bytes, ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the CSV is larger than 128 MiB; use `castellan users import`",
        )
    };
    if !multipart {
        return Bytes::from_request(request, state)
            .await
            .map_err(|_| too_large());
    }
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::bad_request("invalid_multipart", None, e.to_string()))?;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request("invalid_multipart", None, e.to_string()))?
    {
        if field.file_name().is_some() || field.name() == Some("file") {
            return field.bytes().await.map_err(|_| too_large());
        }
    }
    Err(ApiError::bad_request(
        "invalid_multipart",
        Some("file"),
        "the form has no file field",
    ))
}

#[utoipa::path(
    post,
    path = "/api/systemusers/import",
    tag = "systemusers",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "done", body = Object), (status = 400, description = "error", body = crate::error::ErrorBody), (status = 401, description = "error", body = crate::error::ErrorBody), (status = 403, description = "error", body = crate::error::ErrorBody), (status = 409, description = "error", body = crate::error::ErrorBody), (status = 413, description = "error", body = crate::error::ErrorBody), (status = 503, description = "error", body = crate::error::ErrorBody)),
    security(("api_key" = [])),
)]
pub async fn handle(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<Params>,
    request: Request,
) -> Result<Response, ApiError> {
    let wants_csv = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    let bytes = csv_bytes(request, &state).await?;
    import::check_structure(&bytes[..]).map_err(|e| {
        ApiError::bad_request(
            "invalid_csv",
            Some("file"),
            format!("{e}; nothing was imported"),
        )
    })?;
    let mut results = Vec::new();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let summary = import::import(
        &*state.log,
        caller.org,
        caller.meta,
        &bytes[..],
        params.dry_run,
        cores * 2,
        |row, _| results.push(row.clone()),
    )
    .await
    .map_err(|e| match e {
        ImportError::File(m) => ApiError::bad_request("invalid_csv", Some("file"), m),
        ImportError::App(a) => a.into(),
    })?;
    // Read-your-writes: the imported users are listable when the answer arrives.
    let head = state
        .log
        .head()
        .await
        .map_err(castellan_app::AppError::from)?;
    crate::consistency::wait_for(&state, head).await?;
    if wants_csv {
        let mut body = String::from(import::result_csv_header());
        for r in &results {
            body.push_str(&import::result_csv_row(r));
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(
        Json(json!({"dryRun": params.dry_run, "summary": summary, "results": results}))
            .into_response(),
    )
}
