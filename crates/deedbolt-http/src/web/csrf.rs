//! Form protection: the digest that names secrets in storage, constant-time comparison of
//! CSRF tokens, and the page a failed check answers with.

use aws_lc_rs::digest;
use axum::http::StatusCode;
use axum::response::Response;

use crate::web::pages;

pub(crate) fn hash(value: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, value.as_bytes()).as_ref());
    out
}

pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub(crate) fn csrf_failed() -> Response {
    pages::error_page(
        StatusCode::FORBIDDEN,
        "The form could not be verified (it may have expired). Go back and try again.",
    )
}
