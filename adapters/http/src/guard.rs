//! The outermost layer of every route: a handler that panics answers 500 in the
//! error shape (and is logged) instead of dropping the connection, and the refusals
//! axum answers itself in plain text (a body over the limit, a method the route has
//! not) answer in the error shape too, so clients parse every error the same way.

use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;

use crate::error::ApiError;

pub async fn guard(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("");
            tracing::error!(%method, %path, panic = what, "a handler panicked");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed on a defect (it was logged); check the resource before retrying",
            )
            .into_response();
        }
    };
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json || !status.is_client_error() {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "body_too_large",
            format!(
                "the request body is larger than {} KiB",
                crate::MAX_BODY_BYTES / 1024
            ),
        ),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        _ => return response,
    };
    let mut answer = error.into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    answer
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body, Bytes};
    use axum::extract::DefaultBodyLimit;
    use axum::routing::post;
    use axum::Router;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    async fn answer(app: &Router, request: Request) -> (StatusCode, Value, Option<String>) {
        let r = app.clone().oneshot(request).await.expect("an answer");
        let status = r.status();
        let allow = r
            .headers()
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap().to_string());
        let body = to_bytes(r.into_body(), 1 << 20).await.expect("body");
        (
            status,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
            allow,
        )
    }

    #[tokio::test]
    async fn a_panic_a_large_body_and_a_wrong_method_answer_in_the_error_shape() {
        let app = Router::new()
            .route(
                "/boom",
                post(|| async {
                    if std::hint::black_box(true) {
                        panic!("boom");
                    }
                    "unreachable"
                }),
            )
            .route("/echo", post(|b: Bytes| async move { b.len().to_string() }))
            .layer(DefaultBodyLimit::max(16))
            .layer(axum::middleware::from_fn(guard));
        let post_to =
            |path: &str, body: &'static str| Request::post(path).body(Body::from(body)).unwrap();

        let (s, body, _) = answer(&app, post_to("/boom", "")).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal");
        // The server goes on answering.
        let (s, _, _) = answer(&app, post_to("/echo", "hello")).await;
        assert_eq!(s, StatusCode::OK);

        let (s, body, _) =
            answer(&app, post_to("/echo", "a body of more than sixteen bytes")).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], "body_too_large", "{body}");

        let (s, body, allow) =
            answer(&app, Request::get("/echo").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["code"], "method_not_allowed", "{body}");
        assert_eq!(allow.as_deref(), Some("POST"));
    }
}
