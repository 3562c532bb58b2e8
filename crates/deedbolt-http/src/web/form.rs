//! Request bodies: the size limit, the content type, and `application/x-www-form-urlencoded`
//! forms parsed strictly (RFC 6749 §3.2) for the OAuth endpoints ([`FormParams`]) and the
//! browser forms and queries ([`Pairs`]).

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use bytes::Bytes;
use deedbolt_core::error::OAuthError;
use deedbolt_core::flow::Params;

use crate::error::ApiError;

/// The parameters of a form body, each at most once.
#[derive(Debug, Default)]
pub struct FormParams {
    pairs: Vec<(String, String)>,
}

impl FormParams {
    /// Parses a body. A parameter given twice is `invalid_request` ("Request and response
    /// parameters MUST NOT be included more than once", RFC 6749 §3.1/§3.2).
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` given more than once",
                    k.chars().take(40).collect::<String>()
                )));
            }
            if pairs.len() >= 64 {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(FormParams { pairs })
    }

    /// The value of `name`; a parameter sent without a value counts as omitted (RFC 6749 §3.2).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Removes and returns `name`, so secrets do not linger in the parameter list.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == name)?;
        Some(self.pairs.swap_remove(i).1).filter(|v| !v.is_empty())
    }
}

/// A pushed authorization request's form is validated like `/authorize`'s query (RFC 9126
/// §2.1); a repeated parameter was already refused by [`FormParams::parse`].
impl Params for FormParams {
    fn get(&self, name: &str) -> Option<&str> {
        FormParams::get(self, name)
    }
}

/// The largest request body any endpoint reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Whether the request's content type is `expected` (parameters such as charset allowed).
pub(crate) fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|media| media.eq_ignore_ascii_case(expected))
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] (early, from Content-Length, when
/// the client declares it).
pub(crate) async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)
}

/// The most parameters a query or form may carry; more is refused, never truncated.
pub const MAX_PARAMS: usize = 64;

/// Query or form parameters, each at most once.
pub(crate) struct Pairs {
    pub(crate) pairs: Vec<(String, String)>,
    pub(crate) duplicate: Option<String>,
    /// More than [`MAX_PARAMS`] parameters were sent (the rest were not read): the request
    /// must be refused, since a dropped parameter could be the one that mattered.
    pub(crate) too_many: bool,
}

impl Pairs {
    pub(crate) fn parse(raw: &[u8]) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut duplicate = None;
        let mut too_many = false;
        for (i, (k, v)) in form_urlencoded::parse(raw).enumerate() {
            if i == MAX_PARAMS {
                too_many = true;
                break;
            }
            if pairs.iter().any(|(seen, _)| *seen == k) {
                duplicate.get_or_insert_with(|| k.to_string());
                continue;
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Pairs {
            pairs,
            duplicate,
            too_many,
        }
    }

    /// Whether a form must be refused as malformed: a repeated parameter, or too many.
    pub(crate) fn malformed(&self) -> bool {
        self.duplicate.is_some() || self.too_many
    }
}

impl Params for Pairs {
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

pub(crate) async fn read_form(headers: &HeaderMap, body: Body) -> Result<Option<Pairs>, ApiError> {
    if !has_content_type(headers, "application/x-www-form-urlencoded") {
        return Ok(None);
    }
    let body = read_body(headers, body).await?;
    Ok(Some(Pairs::parse(&body)))
}

/// Reads an `application/x-www-form-urlencoded` body into [`FormParams`] (any other
/// content type is `invalid_request`).
pub async fn read_form_params(headers: &HeaderMap, body: Body) -> Result<FormParams, ApiError> {
    if !has_content_type(headers, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the request must be application/x-www-form-urlencoded",
        )
        .into());
    }
    Ok(FormParams::parse(&read_body(headers, body).await?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameter_is_invalid_request() {
        let err = FormParams::parse(b"grant_type=a&scope=x&grant_type=b").unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(err.description().contains("grant_type"));
    }

    #[test]
    fn empty_value_counts_as_omitted() {
        let p = FormParams::parse(b"scope=&grant_type=client_credentials").unwrap();
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
    }

    #[test]
    fn values_are_percent_and_plus_decoded() {
        let mut p = FormParams::parse(b"scope=property%3Aread+tenant%3Aread&x=%2B").unwrap();
        assert_eq!(p.get("scope"), Some("property:read tenant:read"));
        assert_eq!(p.take("x").as_deref(), Some("+"));
        assert_eq!(p.get("x"), None);
    }
}
