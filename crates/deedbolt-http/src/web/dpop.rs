//! The DPoP header names (RFC 9449 §4.1, §8.1) and the `DPoP-Nonce` response header.

use axum::http::header::HeaderName;
use axum::http::{HeaderMap, HeaderValue};

/// The request header carrying a DPoP proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The response header carrying a server nonce for the next proof.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// Sets `DPoP-Nonce` to `nonce`, if there is one (nonces are base64url, always a valid
/// header value).
pub fn nonce_header(nonce: Option<&str>, headers: &mut HeaderMap) {
    if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        headers.insert(DPOP_NONCE, v);
    }
}
