//! Where `private_key_jwt` clients' public keys come from: the JWK Set registered inline
//! (`jwks`) or fetched from the client's `jwks_uri` (RFC 7591 §2), with the limits a server
//! must put on fetching URLs that its clients choose.
//!
//! Fetching a `jwks_uri`:
//!
//! - **https only.** An `http:` URI is refused before any connection (and the connector
//!   cannot speak plain http anyway). Up to [`MAX_REDIRECTS`] redirects are followed, each
//!   to an https URL; a redirect to anything else fails the fetch.
//! - **Trust.** The Mozilla root store (`webpki-roots`, as the alert webhook uses), plus the
//!   operator's extra roots (`--outbound-ca-file`, e.g. an internal CA), never fewer.
//! - **Bounded.** Connecting within [`CONNECT_TIMEOUT`], the whole fetch (redirects and
//!   body included) within [`FETCH_TIMEOUT`], at most [`MAX_JWKS_BYTES`] of body.
//! - **Cached** per URI for the response's `Cache-Control: max-age`, clamped to
//!   [`MIN_TTL`]..=[`MAX_TTL`] ([`DEFAULT_TTL`] without one). An assertion naming a `kid`
//!   the cached set lacks (the client rotated its keys) triggers a refetch, but at most once
//!   per [`REFETCH_INTERVAL`] per URI, so made-up `kid`s cannot turn the server into a
//!   fetch amplifier. A failed fetch is not retried for [`FAILURE_BACKOFF`].
//! - **Public addresses only** (unless the operator allows private networks with
//!   `--outbound-allow-private-networks`): a URI whose host is, or resolves only to, a
//!   loopback, private, link-local, shared, documentation or otherwise non-global address
//!   is refused, on the first request and on every redirect, so a client that registers its
//!   own `jwks_uri` cannot make the server probe its internal network (server-side request
//!   forgery). The check runs on the addresses actually connected to, after resolution.
//! - **Never blocking others.** Each URI has its own lock: requests for one client's slow
//!   endpoint wait at most for its timeout, and nobody else waits at all.
//!
//! Every failure is the caller's `invalid_client` (and a log line with the reason).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use deedbolt_core::client_jwks::{ClientJwks, JwksError};
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, LOCATION, USER_AGENT};
use http::StatusCode;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use tokio::time::Instant;
use url::Url;

/// The largest JWK Set document accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How long connecting (TCP) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole fetch may take: connecting, TLS, redirects and the body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest time a fetched set is kept, whatever its `Cache-Control` says.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// The longest time a fetched set is kept, whatever its `Cache-Control` says.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// How long a fetched set is kept without `Cache-Control: max-age`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The least time between two fetches of one URI caused by unknown `kid`s.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long after a failed fetch the URI is not tried again.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// The most redirects followed (each to https).
pub const MAX_REDIRECTS: usize = 3;
/// Above this many cached URIs, expired entries are dropped.
const MAX_CACHED: usize = 10_000;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector<AddressPolicy>>, Empty<Bytes>>;

/// Which addresses outbound fetches may connect to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutboundNetworks {
    /// Only globally routable addresses (the default).
    #[default]
    PublicOnly,
    /// Private, loopback and link-local addresses too (`--outbound-allow-private-networks`:
    /// for key sets hosted on an internal network, and for tests on loopback).
    AllowPrivate,
}

impl OutboundNetworks {
    /// Whether a fetch may connect to `ip`.
    ///
    /// ```
    /// use deedbolt_http::oauth::client_keys::OutboundNetworks;
    /// let public = OutboundNetworks::PublicOnly;
    /// assert!(public.allows("93.184.215.14".parse().unwrap()));
    /// assert!(public.allows("2606:4700::1111".parse().unwrap()));
    /// for internal in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    ///                  "100.64.0.1", "0.0.0.0", "::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1",
    ///                  "192.0.2.1", "2001:db8::1", "224.0.0.1", "255.255.255.255"] {
    ///     assert!(!public.allows(internal.parse().unwrap()), "{internal}");
    /// }
    /// assert!(OutboundNetworks::AllowPrivate.allows("127.0.0.1".parse().unwrap()));
    /// ```
    pub fn allows(self, ip: std::net::IpAddr) -> bool {
        self == OutboundNetworks::AllowPrivate || is_global(ip)
    }
}

/// Whether `ip` is globally routable: not loopback, private (RFC 1918, RFC 4193),
/// link-local, shared (RFC 6598), documentation, benchmarking, multicast, reserved or
/// unspecified. (`IpAddr::is_global` is not stable yet.)
fn is_global(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_global(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// The system resolver, keeping only the addresses [`OutboundNetworks`] allows: a name
/// that resolves only to internal addresses fails to connect.
#[derive(Clone, Debug)]
struct AddressPolicy {
    resolver: GaiResolver,
    networks: OutboundNetworks,
}

/// A name that resolves only to addresses outbound fetches may not reach.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves only to non-public addresses")]
struct NonPublicHost;

impl tower::Service<Name> for AddressPolicy {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.resolver.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let networks = self.networks;
        let resolving = self.resolver.call(name);
        Box::pin(async move {
            let allowed: Vec<_> = resolving
                .await?
                .filter(|addr| networks.allows(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(NonPublicHost.into());
            }
            Ok(allowed.into_iter())
        })
    }
}

/// Extra trust anchors for outbound https fetches (`--outbound-ca-file`), on top of the
/// public web PKI roots.
#[derive(Clone, Default)]
pub struct OutboundRoots(Vec<CertificateDer<'static>>);

impl fmt::Debug for OutboundRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OutboundRoots")
            .field(&format_args!("{} certificates", self.0.len()))
            .finish()
    }
}

/// The extra roots or the fetcher could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The PEM file holds no certificate, or one that does not parse.
    #[error("the outbound CA file holds no usable PEM certificate")]
    NoCertificates,
    /// A certificate is not a usable trust anchor.
    #[error("the outbound CA file holds a certificate that is not a usable trust anchor")]
    BadAnchor(#[source] rustls::Error),
    /// The TLS configuration could not be built.
    #[error("cannot build the outbound TLS configuration")]
    Tls(#[source] rustls::Error),
}

impl OutboundRoots {
    /// Parses PEM text holding one or more `CERTIFICATE` blocks.
    pub fn from_pem(pem: &[u8]) -> Result<Self, OutboundError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| OutboundError::NoCertificates)?;
        if certs.is_empty() {
            return Err(OutboundError::NoCertificates);
        }
        let mut store = rustls::RootCertStore::empty();
        for c in &certs {
            store.add(c.clone()).map_err(OutboundError::BadAnchor)?;
        }
        Ok(OutboundRoots(certs))
    }

    /// How many extra roots there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a client's keys could not be had. Shown only in logs: the client gets
/// `invalid_client`.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The client registered neither `jwks` nor `jwks_uri`.
    #[error("the client has no registered keys (jwks or jwks_uri)")]
    NoKeys,
    /// The `jwks_uri` (or a redirect) is not an https URL.
    #[error("the jwks_uri (or a redirect) is not an https URL")]
    NotHttps,
    /// No answer within [`FETCH_TIMEOUT`].
    #[error("no complete answer within {FETCH_TIMEOUT:?}")]
    Timeout,
    /// Connecting, TLS or HTTP failed.
    #[error("fetch failed: {0}")]
    Fetch(String),
    /// The endpoint answered with something other than 200 (or a followed redirect).
    #[error("the endpoint answered {0}")]
    Status(StatusCode),
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("too many redirects")]
    Redirects,
    /// The body exceeds [`MAX_JWKS_BYTES`].
    #[error("the JWK Set exceeds {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The document is not an acceptable JWK Set.
    #[error("the JWK Set is not acceptable: {0}")]
    Invalid(#[from] JwksError),
    /// The previous fetch failed less than [`FAILURE_BACKOFF`] ago.
    #[error("the previous fetch failed moments ago; not retried yet")]
    BackingOff,
}

#[derive(Default)]
struct Slot {
    keys: Option<Arc<ClientJwks>>,
    fresh_until: Option<Instant>,
    last_attempt: Option<Instant>,
    last_failed: bool,
    /// The last fetch caused by a `kid` the cached set lacked.
    last_kid_refetch: Option<Instant>,
}

/// The `jwks_uri` fetcher and its cache.
pub struct ClientKeys {
    http: HttpClient,
    networks: OutboundNetworks,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKeys").finish_non_exhaustive()
    }
}

impl ClientKeys {
    /// A fetcher trusting the public web PKI roots and `extra`, connecting only to the
    /// addresses `networks` allows.
    pub fn new(extra: &OutboundRoots, networks: OutboundNetworks) -> Result<Self, OutboundError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for c in &extra.0 {
            roots.add(c.clone()).map_err(OutboundError::BadAnchor)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(OutboundError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(AddressPolicy {
            resolver: GaiResolver::new(),
            networks,
        });
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(ClientKeys {
            http: Client::builder(TokioExecutor::new()).build(https),
            networks,
            slots: Mutex::default(),
        })
    }

    /// The keys registered inline.
    pub fn inline(jwks: &serde_json::Value) -> Result<ClientJwks, KeysError> {
        Ok(ClientJwks::parse(jwks)?)
    }

    /// The keys at `uri`, from the cache or fetched; `kid` is the one the assertion names,
    /// which may warrant a refetch when the cached set lacks it.
    pub async fn from_uri(
        &self,
        uri: &str,
        kid: Option<&str>,
    ) -> Result<Arc<ClientJwks>, KeysError> {
        let url = https_url(uri)?;
        let slot = self.slot(url.as_str());
        let mut slot = slot.lock().await;
        let now = Instant::now();
        let within = |at: Option<Instant>, interval: Duration| {
            at.is_some_and(|t| now.saturating_duration_since(t) < interval)
        };
        if let Some(keys) = &slot.keys {
            if slot.fresh_until.is_some_and(|t| now < t) {
                if kid.is_none_or(|k| keys.has_kid(k)) {
                    return Ok(keys.clone());
                }
                // An unknown kid: refetch, unless one did so moments ago.
                if within(slot.last_kid_refetch, REFETCH_INTERVAL) {
                    return Ok(keys.clone());
                }
                slot.last_kid_refetch = Some(now);
            }
        }
        if slot.last_failed && within(slot.last_attempt, FAILURE_BACKOFF) {
            return Err(KeysError::BackingOff);
        }
        slot.last_attempt = Some(now);
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch(url)).await {
            Ok(Ok((keys, ttl))) => {
                let keys = Arc::new(keys);
                slot.keys = Some(keys.clone());
                slot.fresh_until = Some(now + ttl);
                slot.last_failed = false;
                Ok(keys)
            }
            outcome => {
                slot.last_failed = true;
                Err(match outcome {
                    Ok(Err(e)) => e,
                    _ => KeysError::Timeout,
                })
            }
        }
    }

    fn slot(&self, uri: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= MAX_CACHED && !slots.contains_key(uri) {
            // Entries nobody is using and that are past their freshness go first.
            let now = Instant::now();
            slots.retain(|_, s| {
                Arc::strong_count(s) > 1
                    || s.try_lock()
                        .map(|s| s.fresh_until.is_some_and(|t| now < t))
                        .unwrap_or(true)
            });
        }
        slots.entry(uri.to_owned()).or_default().clone()
    }

    /// One fetch, following https redirects.
    async fn fetch(&self, mut url: Url) -> Result<(ClientJwks, Duration), KeysError> {
        for _ in 0..=MAX_REDIRECTS {
            // An address literal never reaches the resolver: judge it here.
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(|ip| !self.networks.allows(ip)) {
                return Err(KeysError::Fetch(NonPublicHost.to_string()));
            }
            let request = http::Request::get(url.as_str())
                .header(ACCEPT, "application/jwk-set+json, application/json")
                .header(USER_AGENT, concat!("deedbolt/", env!("CARGO_PKG_VERSION")))
                .body(Empty::new())
                .map_err(|e| KeysError::Fetch(e.to_string()))?;
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| KeysError::Fetch(crate::error::error_chain(&e)))?;
            let status = response.status();
            if status.is_redirection() {
                let next = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or(KeysError::Status(status))?;
                url = https_url(next.as_str())?;
                continue;
            }
            if status != StatusCode::OK {
                return Err(KeysError::Status(status));
            }
            let declared = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
                return Err(KeysError::TooLarge);
            }
            let ttl = ttl(response.headers().get(CACHE_CONTROL));
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        KeysError::TooLarge
                    } else {
                        KeysError::Fetch(e.to_string())
                    }
                })?
                .to_bytes();
            let keys = ClientJwks::parse_published_json(&body)?;
            return Ok((keys, ttl));
        }
        Err(KeysError::Redirects)
    }
}

/// `uri` as a URL if it is `https:` with a host (and no credentials in it).
fn https_url(uri: &str) -> Result<Url, KeysError> {
    let url = Url::parse(uri).map_err(|_| KeysError::NotHttps)?;
    if url.scheme() != "https" || url.host().is_none() || !url.username().is_empty() {
        return Err(KeysError::NotHttps);
    }
    Ok(url)
}

/// Whether a registered `jwks_uri` is acceptable: an https URL with a host, no
/// credentials and no fragment.
pub fn check_jwks_uri(uri: &str) -> Result<(), &'static str> {
    let url = https_url(uri).map_err(|_| "jwks_uri must be an https URL with a host")?;
    if url.password().is_some() || url.fragment().is_some() {
        return Err("jwks_uri must not carry credentials or a fragment");
    }
    Ok(())
}

/// How long to keep a set answered with this `Cache-Control`.
fn ttl(cache_control: Option<&http::HeaderValue>) -> Duration {
    let Some(value) = cache_control.and_then(|v| v.to_str().ok()) else {
        return DEFAULT_TTL;
    };
    let mut ttl = DEFAULT_TTL;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_TTL;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            if let Ok(secs) = secs.trim_matches('"').parse::<u64>() {
                ttl = Duration::from_secs(secs);
            }
        }
    }
    ttl.clamp(MIN_TTL, MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_clamped() {
        let hv = |s: &'static str| http::HeaderValue::from_static(s);
        assert_eq!(ttl(None), DEFAULT_TTL);
        assert_eq!(
            ttl(Some(&hv("public, max-age=600"))),
            Duration::from_secs(600)
        );
        assert_eq!(ttl(Some(&hv("max-age=1"))), MIN_TTL);
        assert_eq!(ttl(Some(&hv("max-age=99999999"))), MAX_TTL);
        assert_eq!(ttl(Some(&hv("no-store"))), MIN_TTL);
        assert_eq!(ttl(Some(&hv("max-age=abc"))), DEFAULT_TTL);
    }

    #[test]
    fn only_https_uris_are_fetched() {
        assert!(https_url("https://keys.example.com/jwks.json").is_ok());
        assert!(matches!(
            https_url("http://keys.example.com/jwks.json"),
            Err(KeysError::NotHttps)
        ));
        assert!(https_url("https://user:pw@keys.example.com/").is_err());
        assert!(https_url("file:///etc/passwd").is_err());
        assert!(check_jwks_uri("https://k.example/j#x").is_err());
        assert!(check_jwks_uri("https://k.example/j").is_ok());
    }

    #[test]
    fn the_fetcher_builds_with_its_own_crypto_provider() {
        assert!(ClientKeys::new(&OutboundRoots::default(), OutboundNetworks::PublicOnly).is_ok());
        assert!(matches!(
            OutboundRoots::from_pem(b"not pem"),
            Err(OutboundError::NoCertificates)
        ));
    }

    #[tokio::test]
    async fn an_http_uri_is_refused_without_connecting() {
        let keys =
            ClientKeys::new(&OutboundRoots::default(), OutboundNetworks::PublicOnly).unwrap();
        assert!(matches!(
            keys.from_uri("http://127.0.0.1:9/jwks", None).await,
            Err(KeysError::NotHttps)
        ));
    }
}
