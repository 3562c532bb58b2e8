//! Small HTTP helpers shared by the client: bounded response bodies, the plain-HTTP
//! policy and the RFC 6749 §5.2 error body.

use std::net::IpAddr;

use serde::Deserialize;
use url::{Host, Url};

use crate::error::ClientError;

/// Whether plain `http://` endpoints are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlainHttp {
    /// Only on loopback (`127.0.0.0/8`, `::1`, `localhost`): development and a server on
    /// the same host. Everything else must be `https`.
    #[default]
    LoopbackOnly,
    /// Anywhere. Tokens and client secrets then cross the network in clear text: only for
    /// a network you trust completely (e.g. a private container network).
    DangerouslyAllowAnyHost,
}

/// The largest response body read from the authorization server (metadata, JWKS, token
/// responses are a few KiB): a misbehaving server cannot make the client buffer more.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Reads the whole body, refusing more than [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_limited(mut res: reqwest::Response) -> Result<Vec<u8>, ClientError> {
    if res
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(ClientError::Protocol("response body too large".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(ClientError::Http)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ClientError::Protocol("response body too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An RFC 6749 §5.2 error body.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The error for a non-success answer: [`ClientError::OAuth`] if the body is an RFC 6749
/// §5.2 error, else [`ClientError::Status`].
pub(crate) fn error_response(status: reqwest::StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.error.is_empty() => ClientError::OAuth {
            error: e.error,
            description: e.error_description,
            status: status.as_u16(),
        },
        _ => ClientError::Status {
            status: status.as_u16(),
        },
    }
}

/// Whether `url` is a loopback address (`127.0.0.0/8`, `::1`, or `localhost`).
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Refuses an endpoint that is not `https`, or `http` on loopback, unless `policy`
/// dangerously allows plain HTTP anywhere.
pub(crate) fn check_endpoint(what: &str, url: &Url, policy: PlainHttp) -> Result<(), ClientError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) || policy == PlainHttp::DangerouslyAllowAnyHost => Ok(()),
        "http" => Err(ClientError::Config(format!(
            "{what} {url} uses plain http on a non-loopback host"
        ))),
        other => Err(ClientError::Config(format!(
            "{what} {url} has unsupported scheme {other}"
        ))),
    }
}

/// Parses an endpoint URL from metadata or configuration and applies the policy.
pub(crate) fn parse_endpoint(what: &str, url: &str, policy: PlainHttp) -> Result<Url, ClientError> {
    let parsed =
        Url::parse(url).map_err(|e| ClientError::Config(format!("{what} {url:?}: {e}")))?;
    check_endpoint(what, &parsed, policy)?;
    Ok(parsed)
}
