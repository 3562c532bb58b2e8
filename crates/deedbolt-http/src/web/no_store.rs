//! `Cache-Control: no-store`: on responses that carry tokens, personal data or the audit
//! log, which no browser or shared cache may keep (RFC 6749 §5.1, RFC 7009, RFC 7662).

use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A JSON answer with `Cache-Control: no-store` and `Pragma: no-cache`.
pub fn no_store_json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(body),
    )
        .into_response()
}
