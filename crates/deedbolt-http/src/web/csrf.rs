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

/// Whether two secrets (CSRF tokens, `state`s, the metrics token) are equal, in time that
/// does not depend on where they differ (aws-lc-rs's comparison; lengths are not secret).
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

pub(crate) fn csrf_failed() -> Response {
    pages::error_page(
        StatusCode::FORBIDDEN,
        "The form could not be verified (it may have expired). Go back and try again.",
    )
}
