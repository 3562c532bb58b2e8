//! Cross-origin resource sharing (the Fetch standard's CORS protocol) for the endpoints a
//! browser app calls itself: a single-page app that is a public client reads discovery
//! and the JWKS, redeems its code at `/token`, revokes at `/revoke` and reads `/userinfo`.
//!
//! Off by default: without configured origins no response carries a CORS header, so no
//! other origin can read any answer. The operator lists the origins of their apps
//! (`--cors-origins`); `*` opens only the public metadata (discovery documents and the
//! JWKS) to every origin, never the token endpoints. Credentials (cookies) are never
//! allowed cross-origin: the endpoints with CORS authenticate with PKCE or a bearer token
//! in a header, and the pages that use cookies (`/authorize`, `/login`, `/consent`,
//! `/admin`, the backend-for-frontend) get no CORS at all.

use std::time::Duration;

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Why a configured CORS origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsOriginError {
    /// Not `scheme://host[:port]`: a path, query, fragment or user information, or no host.
    #[error("CORS origin `{0}` is not an origin (scheme://host[:port], nothing after it)")]
    NotAnOrigin(String),
    /// `http` on a host other than loopback: a network attacker could pose as it.
    #[error("CORS origin `{0}` must use https (http only for localhost, 127.0.0.1 and [::1])")]
    Insecure(String),
}

/// The origins allowed to read the CORS-enabled endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsOrigins {
    /// `*` was configured: the public metadata is open to every origin.
    any_for_metadata: bool,
    /// The listed origins, as browsers send them in `Origin` (ASCII serialization).
    origins: Vec<HeaderValue>,
}

impl CorsOrigins {
    /// No CORS (the default): no response carries a CORS header.
    pub fn none() -> Self {
        CorsOrigins::default()
    }

    /// Parses a list of origins, `https://app.example.com` (http only on loopback), and
    /// `*` for "every origin may read the public metadata".
    ///
    /// ```
    /// use deedbolt_http::web::cors::CorsOrigins;
    /// let o = CorsOrigins::parse(["https://App.example.com:443", "*"]).unwrap();
    /// assert_eq!(o.origins(), ["https://app.example.com"]);
    /// assert!(o.any_for_metadata());
    /// assert!(CorsOrigins::parse(["https://app.example.com/cb"]).is_err());
    /// assert!(CorsOrigins::parse(["http://app.example.com"]).is_err());
    /// assert!(CorsOrigins::parse(["http://localhost:5173"]).is_ok());
    /// assert!(CorsOrigins::parse(["null"]).is_err());
    /// ```
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, CorsOriginError> {
        let mut out = CorsOrigins::none();
        for item in items.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                out.any_for_metadata = true;
                continue;
            }
            let origin = parse_origin(item)?;
            if !out.origins.contains(&origin) {
                out.origins.push(origin);
            }
        }
        Ok(out)
    }

    /// Whether `*` was configured.
    pub fn any_for_metadata(&self) -> bool {
        self.any_for_metadata
    }

    /// The listed origins.
    pub fn origins(&self) -> Vec<&str> {
        self.origins
            .iter()
            .filter_map(|o| o.to_str().ok())
            .collect()
    }

    /// The CORS layer of the public metadata (discovery documents, JWKS): GET from every
    /// origin if `*` was configured, else from the listed origins; `None` without either.
    pub fn metadata_layer(&self) -> Option<CorsLayer> {
        let allow = if self.any_for_metadata {
            AllowOrigin::any()
        } else if self.origins.is_empty() {
            return None;
        } else {
            AllowOrigin::list(self.origins.clone())
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::HEAD])
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }

    /// The CORS layer of `/token`, `/revoke` and `/userinfo`: the listed origins only
    /// (never `*`), no credentials; `None` when no origin is listed.
    pub fn endpoint_layer(&self) -> Option<CorsLayer> {
        if self.origins.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.origins.clone()))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([AUTHORIZATION, CONTENT_TYPE, HeaderName::from_static("dpop")])
                // An app reads why its token was refused, when to retry, and the DPoP
                // nonce for its next proof (RFC 9449 §8).
                .expose_headers([
                    WWW_AUTHENTICATE,
                    RETRY_AFTER,
                    HeaderName::from_static("dpop-nonce"),
                ])
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }
}

/// `item` as the ASCII serialization of its origin, which is what browsers send.
fn parse_origin(item: &str) -> Result<HeaderValue, CorsOriginError> {
    let not_origin = || CorsOriginError::NotAnOrigin(item.chars().take(100).collect());
    let url = url::Url::parse(item).map_err(|_| not_origin())?;
    // `https://app.example.com/` is accepted too: the slash is the empty path.
    let bare = url.path() == "/";
    if !matches!(url.scheme(), "https" | "http")
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || !bare
    {
        return Err(not_origin());
    }
    if url.scheme() == "http" {
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if !loopback {
            return Err(CorsOriginError::Insecure(item.chars().take(100).collect()));
        }
    }
    HeaderValue::from_str(&url.origin().ascii_serialization()).map_err(|_| not_origin())
}
