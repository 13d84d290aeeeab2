//! Query strings parsed like axum's `Query`, but a bad one answers with the API's JSON
//! error (code `invalid_parameter`) instead of a plain-text rejection.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request("invalid_parameter", None, e.body_text()))
    }
}

/// A list's `limit`: a whole number from 1 to 100.
pub fn limit(v: &str) -> Result<u32, ApiError> {
    v.parse()
        .ok()
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                Some("limit"),
                "limit: a whole number from 1 to 100",
            )
        })
}

/// A list's `skip`: a whole number from 0 (to 2^63-1, as the stores count).
pub fn skip(v: &str) -> Result<u64, ApiError> {
    v.parse()
        .ok()
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                Some("skip"),
                "skip: a whole number ≥ 0",
            )
        })
}

/// `limit` (default 10, 1 to 100) and `skip` of a v2 list, from the raw query string
/// (other parameters are the handler's).
pub fn page(raw: Option<&str>) -> Result<castellan_projections::users::Page, ApiError> {
    let mut page = castellan_projections::users::Page { limit: 10, skip: 0 };
    for pair in raw.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "limit" => page.limit = limit(v)?,
            "skip" => page.skip = skip(v)?,
            _ => {}
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_default_to_ten_and_stop_at_a_hundred() {
        let p = super::page(Some("targets=system&limit=2&skip=4")).unwrap();
        assert_eq!((p.limit, p.skip), (2, 4));
        let p = super::page(None).unwrap();
        assert_eq!((p.limit, p.skip), (10, 0));
        assert!(super::page(Some("limit=101")).is_err());
        assert!(super::page(Some("limit=0")).is_err());
        assert!(super::page(Some("skip=-1")).is_err());
    }
}
