//! `Cache-Control: no-store`: on responses that carry tokens, personal data or the audit
//! log, which no browser or shared cache may keep (RFC 6749 §5.1, RFC 7009, RFC 7662).
//! `Pragma: no-cache` goes with it for HTTP/1.0 caches, as RFC 6749 §5.1 shows.

use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Sets `Cache-Control: no-store` and `Pragma: no-cache`.
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A JSON answer that no cache keeps ([`no_store`]).
pub fn no_store_json(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    no_store(response.headers_mut());
    response
}
