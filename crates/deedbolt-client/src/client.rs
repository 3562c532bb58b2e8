//! [`OAuthClient`]: the HTTP side of an OAuth 2.0 client.
//!
//! - Discovery (RFC 8414): [`OAuthClient::discover`] reads the issuer's metadata and
//!   insists that its `issuer` equals the configured one exactly, the defence against
//!   mix-up attacks (RFC 8414 §3.3).
//! - The authorization request (RFC 6749 §4.1.1, PKCE S256 from RFC 7636) and response
//!   ([`OAuthClient::parse_callback`], which also checks the RFC 9207 `iss` parameter).
//! - The token endpoint: code exchange, refresh, client credentials (RFC 6749 §4.1.3,
//!   §6, §4.4), with `client_secret_basic` (id and secret form-urlencoded before base64,
//!   RFC 6749 §2.3.1), `client_secret_post`, or none for a public client.
//! - Revocation (RFC 7009).
//! - ID-token verification against the issuer's JWKS (cached), see [`crate::id_token`].
//!
//! Errors keep the server's answer: an RFC 6749 §5.2 error body becomes
//! [`ClientError::OAuth`] with its `error` code, so callers can match on
//! `"invalid_grant"` (sign in again) versus, say, a network failure (retry).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

use crate::clock::{self, Clock, SharedClock};
pub use crate::error::ClientError;
pub use crate::http::PlainHttp;
use crate::http::{check_endpoint, error_response, parse_endpoint, read_limited};
use crate::id_token::{self, IdTokenClaims, IdTokenError};
use crate::pkce::PkcePair;
use crate::token::{Secret, TokenSet};

/// How long a fetched JWKS is used before it is fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// The least time between two JWKS fetches caused by an unknown `kid`, so tokens naming
/// made-up keys cannot make the client hammer the server.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

/// The lifetime assumed when a token response has no `expires_in` (RFC 6749 §5.1 only
/// RECOMMENDS it): short, so a token of unknown lifetime is renewed early rather than used
/// after it expired.
pub const ASSUMED_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// How the client authenticates at the token and revocation endpoints.
#[derive(Debug, Clone)]
pub enum ClientCredentials {
    /// `client_secret_basic`: HTTP Basic with the form-urlencoded id and secret (RFC 6749
    /// §2.3.1).
    SecretBasic(Secret),
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    SecretPost(Secret),
    /// A public client (`none`): `client_id` in the body; PKCE protects the code.
    None,
}

/// `token_type_hint` for revocation (RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// `access_token`
    AccessToken,
    /// `refresh_token`
    RefreshToken,
}

impl TokenTypeHint {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenTypeHint::AccessToken => "access_token",
            TokenTypeHint::RefreshToken => "refresh_token",
        }
    }
}

/// Authorization-server metadata (RFC 8414 §2); the fields this client uses, plus a few
/// informational ones. Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct ServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// The authorization endpoint.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The JWKS URI.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The revocation endpoint (RFC 7009).
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// The introspection endpoint (RFC 7662).
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// The OpenID Connect UserInfo endpoint.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// The scopes the server knows.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// The grant types the server supports.
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
    /// The PKCE methods the server supports.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// The client authentication methods of the token endpoint.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207: every authorization response carries `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl ServerMetadata {
    /// Fetches `{issuer}/.well-known/oauth-authorization-server` (for an issuer with a
    /// path, the well-known segment goes before the path, RFC 8414 §3.1) and checks that
    /// its `issuer` is `issuer`, character for character (RFC 8414 §3.3).
    pub async fn fetch(
        http: &reqwest::Client,
        issuer: &str,
        plain_http: PlainHttp,
    ) -> Result<ServerMetadata, ClientError> {
        let url = well_known_url(issuer, plain_http)?;
        let res = http
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await?;
        let status = res.status();
        let body = read_limited(res).await?;
        if !status.is_success() {
            return Err(error_response(status, &body));
        }
        let metadata: ServerMetadata = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("metadata: {e}")))?;
        if metadata.issuer != issuer {
            return Err(ClientError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: Some(metadata.issuer),
            });
        }
        Ok(metadata)
    }
}

/// The RFC 8414 §3.1 metadata URL of `issuer`, which must be an `https` URL (or `http` as
/// `plain_http` allows) without query or fragment.
fn well_known_url(issuer: &str, plain_http: PlainHttp) -> Result<Url, ClientError> {
    let mut url = parse_endpoint("issuer", issuer, plain_http)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::Config(format!(
            "issuer {issuer} has a query or fragment"
        )));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    Ok(url)
}

/// Everything [`OAuthClient`] needs to know about the server and itself.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The issuer identifier, compared exactly as a string (so it is a `String`, not a
    /// `Url`, which would add a trailing slash).
    pub issuer: String,
    /// The authorization endpoint.
    pub authorization_endpoint: Url,
    /// The token endpoint.
    pub token_endpoint: Url,
    /// The revocation endpoint, if the server has one.
    pub revocation_endpoint: Option<Url>,
    /// The JWKS URI, needed to verify ID tokens.
    pub jwks_uri: Option<Url>,
    /// Whether the server puts `iss` in every authorization response (RFC 9207); if so,
    /// [`OAuthClient::parse_callback`] refuses a response without it.
    pub authorization_response_iss_parameter_supported: bool,
    /// This client's id.
    pub client_id: String,
    /// How this client authenticates.
    pub credentials: ClientCredentials,
    /// Whether plain-HTTP endpoints are allowed (default: loopback only).
    pub plain_http: PlainHttp,
}

impl ClientConfig {
    /// The configuration for `client_id` at the server `metadata` describes (endpoints
    /// must be `https`, or `http` on loopback).
    pub fn from_metadata(
        metadata: &ServerMetadata,
        client_id: &str,
        credentials: ClientCredentials,
    ) -> Result<ClientConfig, ClientError> {
        let plain_http = PlainHttp::default();
        let required = |what: &str, v: &Option<String>| {
            v.as_deref()
                .ok_or_else(|| ClientError::Protocol(format!("metadata has no {what}")))
                .and_then(|u| parse_endpoint(what, u, plain_http))
        };
        let optional = |what: &str, v: &Option<String>| {
            v.as_deref()
                .map(|u| parse_endpoint(what, u, plain_http))
                .transpose()
        };
        Ok(ClientConfig {
            issuer: metadata.issuer.clone(),
            authorization_endpoint: required(
                "authorization_endpoint",
                &metadata.authorization_endpoint,
            )?,
            token_endpoint: required("token_endpoint", &metadata.token_endpoint)?,
            revocation_endpoint: optional("revocation_endpoint", &metadata.revocation_endpoint)?,
            jwks_uri: optional("jwks_uri", &metadata.jwks_uri)?,
            authorization_response_iss_parameter_supported: metadata
                .authorization_response_iss_parameter_supported,
            client_id: client_id.to_owned(),
            credentials,
            plain_http,
        })
    }
}

/// A successful authorization response (RFC 6749 §4.1.2).
#[derive(Debug, Clone)]
pub struct AuthorizationResponse {
    /// The authorization code (single use, short-lived).
    pub code: Secret,
    /// The `state`: take the pending flow with it before redeeming the code.
    pub state: String,
}

/// A fetched JWKS and when it was fetched.
struct CachedJwks {
    keys: Arc<JwkSet>,
    fetched_at: SystemTime,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    clock: SharedClock,
    /// A std mutex: held only to read or replace the cached set, never across a fetch.
    jwks: Mutex<Option<CachedJwks>>,
}

/// An OAuth 2.0 / OpenID Connect client of one authorization server. Cheap to clone
/// (shared state behind an `Arc`, including the JWKS cache).
#[derive(Clone)]
pub struct OAuthClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("issuer", &self.inner.config.issuer)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

/// The token endpoint's success body (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: Option<Secret>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

impl OAuthClient {
    /// A client for `config`, sending its requests with `http` (see the crate docs on
    /// HTTPS and redirects). Refuses plain-HTTP endpoints the config does not allow.
    pub fn new(http: reqwest::Client, config: ClientConfig) -> Result<OAuthClient, ClientError> {
        let policy = config.plain_http;
        parse_endpoint("issuer", &config.issuer, policy)?;
        check_endpoint(
            "authorization_endpoint",
            &config.authorization_endpoint,
            policy,
        )?;
        check_endpoint("token_endpoint", &config.token_endpoint, policy)?;
        if let Some(u) = &config.revocation_endpoint {
            check_endpoint("revocation_endpoint", u, policy)?;
        }
        if let Some(u) = &config.jwks_uri {
            check_endpoint("jwks_uri", u, policy)?;
        }
        if config.client_id.is_empty() {
            return Err(ClientError::Config("empty client_id".into()));
        }
        Ok(OAuthClient {
            inner: Arc::new(Inner {
                http,
                config,
                clock: clock::system(),
                jwks: Mutex::new(None),
            }),
        })
    }

    /// Discovers the server at `issuer` (RFC 8414, see [`ServerMetadata::fetch`]) and
    /// makes a client for `client_id` there. `issuer` must be exactly the server's issuer
    /// identifier (for deedbolt, no trailing slash).
    pub async fn discover(
        http: reqwest::Client,
        issuer: &str,
        client_id: &str,
        credentials: ClientCredentials,
    ) -> Result<OAuthClient, ClientError> {
        let metadata = ServerMetadata::fetch(&http, issuer, PlainHttp::default()).await?;
        let config = ClientConfig::from_metadata(&metadata, client_id, credentials)?;
        OAuthClient::new(http, config)
    }

    /// The same client reading the time from `clock` (for `expires_at` and the JWKS
    /// cache). The JWKS cache starts empty.
    pub fn with_clock(self, clock: impl Clock + 'static) -> OAuthClient {
        OAuthClient {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                config: self.inner.config.clone(),
                clock: Arc::new(clock),
                jwks: Mutex::new(None),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// This client's id.
    pub fn client_id(&self) -> &str {
        &self.inner.config.client_id
    }

    /// The authorization request URL (RFC 6749 §4.1.1) to send the browser to:
    /// `response_type=code`, the client id, `redirect_uri` (exactly as registered),
    /// `scope`, `state`, the `nonce` if given (OpenID Connect) and the PKCE S256
    /// challenge. Query parameters already in the endpoint URL are kept.
    pub fn authorization_url(
        &self,
        redirect_uri: &str,
        scope: &str,
        state: &str,
        nonce: Option<&str>,
        pkce: &PkcePair,
    ) -> Url {
        let mut url = self.inner.config.authorization_endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.inner.config.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", scope)
                .append_pair("state", state);
            if let Some(n) = nonce {
                q.append_pair("nonce", n);
            }
            q.append_pair("code_challenge", pkce.challenge())
                .append_pair("code_challenge_method", pkce.method());
        }
        url
    }

    /// Reads the authorization response from the callback's query string (without the
    /// `?`).
    ///
    /// Checks `iss` (RFC 9207) first: if present it must be the issuer, and if the server
    /// advertises the parameter it must be present. Then an `error` becomes
    /// [`ClientError::Authorization`]; otherwise `code` and `state` are required. A
    /// repeated parameter is refused (RFC 6749 §3.1). The caller must still take the
    /// pending flow by `state` (see [`PendingFlows`](crate::PendingFlows)) before
    /// redeeming the code.
    pub fn parse_callback(&self, query: &str) -> Result<AuthorizationResponse, ClientError> {
        let mut seen: Vec<(String, Zeroizing<String>)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if seen.iter().any(|(s, _)| *s == k) {
                return Err(ClientError::Protocol(format!(
                    "parameter {k} repeated in the authorization response"
                )));
            }
            seen.push((k.into_owned(), Zeroizing::new(v.into_owned())));
        }
        let get = |name: &str| {
            seen.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let issuer = &self.inner.config.issuer;
        match get("iss") {
            Some(iss) if iss != issuer => {
                return Err(ClientError::IssuerMismatch {
                    expected: issuer.clone(),
                    found: Some(iss.to_owned()),
                })
            }
            None if self
                .inner
                .config
                .authorization_response_iss_parameter_supported =>
            {
                return Err(ClientError::IssuerMismatch {
                    expected: issuer.clone(),
                    found: None,
                })
            }
            _ => {}
        }
        if let Some(error) = get("error") {
            return Err(ClientError::Authorization {
                error: error.to_owned(),
                description: get("error_description").map(str::to_owned),
                state: get("state").map(str::to_owned),
            });
        }
        let code = get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ClientError::Protocol("no code in the authorization response".into()))?;
        let state = get("state").ok_or_else(|| {
            ClientError::Protocol("no state in the authorization response".into())
        })?;
        Ok(AuthorizationResponse {
            code: Secret::new(code),
            state: state.to_owned(),
        })
    }

    /// Redeems an authorization code (RFC 6749 §4.1.3) with the PKCE verifier of the
    /// flow. `redirect_uri` must be the one in the authorization request.
    ///
    /// The ID token, if any, is returned unverified: call
    /// [`OAuthClient::verify_id_token`] with the flow's nonce.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce: &PkcePair,
    ) -> Result<TokenSet, ClientError> {
        self.token_request(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", pkce.verifier().expose()),
            ],
            None,
        )
        .await
    }

    /// Refreshes `tokens` (RFC 6749 §6) with their refresh token, for the same scope.
    ///
    /// deedbolt rotates refresh tokens, so the result carries a new one and the old one
    /// must not be used again (a reuse revokes the whole family). If a server sends no new
    /// refresh token, the old one is kept; likewise the scope, and the ID token if none
    /// came back (a new one, when sent, is unverified: it has no nonce).
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ClientError> {
        let refresh_token = tokens
            .refresh_token
            .as_ref()
            .ok_or(ClientError::NoRefreshToken)?;
        let mut fresh = self.refresh_with(refresh_token, None).await?;
        if fresh.refresh_token.is_none() {
            fresh.refresh_token = Some(refresh_token.clone());
        }
        if fresh.scope.is_none() {
            fresh.scope.clone_from(&tokens.scope);
        }
        if fresh.id_token.is_none() {
            fresh.id_token.clone_from(&tokens.id_token);
        }
        Ok(fresh)
    }

    /// The refresh-token grant with an explicit token and an optional narrower `scope`.
    /// Unlike [`OAuthClient::refresh`] nothing is carried over: `refresh_token` is `None`
    /// in the result if the server sent none.
    pub async fn refresh_with(
        &self,
        refresh_token: &Secret,
        scope: Option<&str>,
    ) -> Result<TokenSet, ClientError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token_request(&form, scope).await
    }

    /// `Some(refreshed)` if `tokens` expire within `skew` of `now`
    /// ([`TokenSet::needs_refresh`]), else `None` (keep using them).
    pub async fn refresh_if_needed(
        &self,
        tokens: &TokenSet,
        now: SystemTime,
        skew: Duration,
    ) -> Result<Option<TokenSet>, ClientError> {
        if tokens.needs_refresh(now, skew) {
            self.refresh(tokens).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// The client-credentials grant (RFC 6749 §4.4), for `scope` or, if `None`, the
    /// client's registered scopes.
    pub async fn client_credentials(&self, scope: Option<&str>) -> Result<TokenSet, ClientError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token_request(&form, scope).await
    }

    /// Revokes `token` (RFC 7009). deedbolt revokes a refresh token's whole family and
    /// puts an access token on its revocation list. Success does not say whether the
    /// token was known (RFC 7009 §2.2).
    pub async fn revoke(&self, token: &Secret, hint: TokenTypeHint) -> Result<(), ClientError> {
        let endpoint = self
            .inner
            .config
            .revocation_endpoint
            .as_ref()
            .ok_or(ClientError::NoRevocationEndpoint)?;
        let res = self
            .post_form(
                endpoint,
                &[
                    ("token", token.expose()),
                    ("token_type_hint", hint.as_str()),
                ],
            )?
            .send()
            .await?;
        let status = res.status();
        let body = read_limited(res).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(error_response(status, &body))
        }
    }

    /// Verifies an ID token: its signature against the issuer's JWKS (fetched from
    /// `jwks_uri` and cached for 5 minutes; fetched again, at most every 10 seconds, when
    /// the token names a key the cached set lacks) and its claims, with `expected_nonce`
    /// from the flow (see [`crate::id_token`] for every check). Returns the claims.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        expected_nonce: &str,
        now: SystemTime,
    ) -> Result<IdTokenClaims, ClientError> {
        let (jwks, fresh) = self.cached_jwks(false).await?;
        match self.verify_id_token_claims(id_token, expected_nonce, now, &jwks) {
            Err(IdTokenError::UnknownKey) if !fresh => {
                let (jwks, _) = self.cached_jwks(true).await?;
                Ok(self.verify_id_token_claims(id_token, expected_nonce, now, &jwks)?)
            }
            other => Ok(other?),
        }
    }

    /// [`OAuthClient::verify_id_token`] against a JWKS the caller already has, without
    /// network: the signature and every claim check.
    pub fn verify_id_token_claims(
        &self,
        id_token: &str,
        expected_nonce: &str,
        now: SystemTime,
        jwks: &JwkSet,
    ) -> Result<IdTokenClaims, IdTokenError> {
        id_token::verify(
            id_token,
            jwks,
            &self.inner.config.issuer,
            &self.inner.config.client_id,
            expected_nonce,
            now,
        )
    }

    /// The issuer's JWKS, from the cache if it is younger than 5 minutes.
    pub async fn jwks(&self) -> Result<Arc<JwkSet>, ClientError> {
        Ok(self.cached_jwks(false).await?.0)
    }

    /// The JWKS and whether it was fetched by this call. With `refetch`, a fetch happens
    /// unless the cached set is younger than [`JWKS_MIN_REFETCH`].
    async fn cached_jwks(&self, refetch: bool) -> Result<(Arc<JwkSet>, bool), ClientError> {
        let now = self.inner.clock.now();
        let min_age = if refetch {
            JWKS_MIN_REFETCH
        } else {
            JWKS_MAX_AGE
        };
        {
            let cache = self
                .inner
                .jwks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = cache.as_ref() {
                let age = now.duration_since(c.fetched_at).unwrap_or(Duration::ZERO);
                if age < min_age {
                    return Ok((c.keys.clone(), false));
                }
            }
        }
        let keys = Arc::new(self.fetch_jwks().await?);
        *self
            .inner
            .jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(CachedJwks {
            keys: keys.clone(),
            fetched_at: now,
        });
        Ok((keys, true))
    }

    /// Fetches the JWKS. Keys this library cannot parse (a future key type) are skipped
    /// rather than failing the whole set.
    async fn fetch_jwks(&self) -> Result<JwkSet, ClientError> {
        let uri =
            self.inner.config.jwks_uri.as_ref().ok_or_else(|| {
                ClientError::Config("no jwks_uri to verify ID tokens with".into())
            })?;
        let res = self
            .inner
            .http
            .get(uri.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await?;
        let status = res.status();
        let body = read_limited(res).await?;
        if !status.is_success() {
            return Err(error_response(status, &body));
        }
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("JWKS: {e}")))?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .collect();
        Ok(JwkSet { keys })
    }

    /// A form POST to `endpoint` with this client's authentication.
    fn post_form(
        &self,
        endpoint: &Url,
        params: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let config = &self.inner.config;
        let mut buf = Zeroizing::new(String::with_capacity(512));
        let mut body = url::form_urlencoded::Serializer::new(&mut *buf);
        body.extend_pairs(params);
        let mut req = self
            .inner
            .http
            .post(endpoint.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json");
        match &config.credentials {
            ClientCredentials::SecretBasic(secret) => {
                req = req.header(AUTHORIZATION, basic_auth(&config.client_id, secret)?);
            }
            ClientCredentials::SecretPost(secret) => {
                body.append_pair("client_id", &config.client_id);
                body.append_pair("client_secret", secret.expose());
            }
            ClientCredentials::None => {
                body.append_pair("client_id", &config.client_id);
            }
        }
        let body = body.finish().as_bytes().to_vec();
        Ok(req.body(body))
    }

    /// A token-endpoint request; `requested_scope` fills in a response without `scope`.
    async fn token_request(
        &self,
        params: &[(&str, &str)],
        requested_scope: Option<&str>,
    ) -> Result<TokenSet, ClientError> {
        let sent_at = self.inner.clock.now();
        let res = self
            .post_form(&self.inner.config.token_endpoint, params)?
            .send()
            .await?;
        let status = res.status();
        let body = Zeroizing::new(read_limited(res).await?);
        if !status.is_success() {
            return Err(error_response(status, &body));
        }
        parse_token_response(&body, sent_at, requested_scope)
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1 (the
/// form-urlencoding is what lets ids and secrets contain `:` and non-ASCII).
fn basic_auth(client_id: &str, secret: &Secret) -> Result<HeaderValue, ClientError> {
    let mut pair = Zeroizing::new(String::new());
    pair.extend(url::form_urlencoded::byte_serialize(client_id.as_bytes()));
    pair.push(':');
    pair.extend(url::form_urlencoded::byte_serialize(
        secret.expose().as_bytes(),
    ));
    let value = Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes())));
    let mut header = HeaderValue::from_str(&value)
        .map_err(|_| ClientError::Config("client credentials do not fit a header".into()))?;
    header.set_sensitive(true);
    Ok(header)
}

fn parse_token_response(
    body: &[u8],
    sent_at: SystemTime,
    requested_scope: Option<&str>,
) -> Result<TokenSet, ClientError> {
    let r: TokenResponse = serde_json::from_slice(body)
        // serde_json's message can quote values (tokens): say only where it failed.
        .map_err(|e| {
            ClientError::Protocol(format!(
                "token response is not the expected JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
    let access_token = r
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ClientError::Protocol("no access_token".into()))?;
    let token_type = r
        .token_type
        .ok_or_else(|| ClientError::Protocol("no token_type".into()))?;
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(ClientError::Protocol(format!(
            "token_type {token_type:?} is not Bearer"
        )));
    }
    let lifetime = match r.expires_in {
        None | Some(serde_json::Value::Null) => ASSUMED_LIFETIME,
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| ClientError::Protocol("expires_in is not a whole number".into()))?,
        // Some servers send a numeric string.
        Some(serde_json::Value::String(s)) => s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| ClientError::Protocol("expires_in is not a number".into()))?,
        Some(_) => return Err(ClientError::Protocol("expires_in is not a number".into())),
    };
    let expires_at = sent_at
        .checked_add(lifetime)
        .ok_or_else(|| ClientError::Protocol("expires_in out of range".into()))?;
    Ok(TokenSet {
        access_token,
        token_type,
        expires_at,
        refresh_token: r.refresh_token.filter(|t| !t.is_empty()),
        id_token: r.id_token,
        scope: r.scope.or_else(|| requested_scope.map(str::to_owned)),
    })
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn config() -> ClientConfig {
        ClientConfig {
            issuer: "https://auth.example.com".into(),
            authorization_endpoint: Url::parse("https://auth.example.com/authorize?tenant=x")
                .unwrap(),
            token_endpoint: Url::parse("https://auth.example.com/token").unwrap(),
            revocation_endpoint: None,
            jwks_uri: None,
            authorization_response_iss_parameter_supported: true,
            client_id: "dbc_a:b é".into(),
            credentials: ClientCredentials::SecretBasic(Secret::new("s3cr+t:/=")),
            plain_http: PlainHttp::default(),
        }
    }

    fn client() -> OAuthClient {
        OAuthClient::new(reqwest::Client::new(), config()).unwrap()
    }

    #[test]
    fn basic_auth_form_urlencodes_before_base64() {
        let h = basic_auth("dbc_a:b é", &Secret::new("s3cr+t:/=")).unwrap();
        assert!(h.is_sensitive());
        let encoded = h.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "dbc_a%3Ab+%C3%A9:s3cr%2Bt%3A%2F%3D");
    }

    #[test]
    fn authorization_url_has_every_parameter_and_keeps_the_endpoints_query() {
        let pkce = PkcePair::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        let url = client().authorization_url(
            "https://app.example.com/cb?x=1",
            "openid tenant:read",
            "st",
            Some("nn"),
            &pkce,
        );
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let expected = [
            ("tenant", "x"),
            ("response_type", "code"),
            ("client_id", "dbc_a:b é"),
            ("redirect_uri", "https://app.example.com/cb?x=1"),
            ("scope", "openid tenant:read"),
            ("state", "st"),
            ("nonce", "nn"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(q, expected);
        assert!(!url.as_str().contains("dBjftJeZ4CVP"), "never the verifier");

        let without_nonce = client().authorization_url("https://a/cb", "x", "st", None, &pkce);
        assert!(!without_nonce.query_pairs().any(|(k, _)| k == "nonce"));
    }

    #[test]
    fn callback_checks_iss_then_error_then_code_and_state() {
        let c = client();
        let ok = c
            .parse_callback("code=abc&state=st&iss=https%3A%2F%2Fauth.example.com")
            .unwrap();
        assert_eq!(ok.code.expose(), "abc");
        assert_eq!(ok.state, "st");

        let wrong_iss = c.parse_callback("code=abc&state=st&iss=https%3A%2F%2Fevil.example");
        assert!(matches!(
            wrong_iss,
            Err(ClientError::IssuerMismatch { found: Some(_), .. })
        ));
        let no_iss = c.parse_callback("code=abc&state=st");
        assert!(matches!(
            no_iss,
            Err(ClientError::IssuerMismatch { found: None, .. })
        ));

        let denied = c
            .parse_callback(
                "error=access_denied&error_description=no&state=st&iss=https%3A%2F%2Fauth.example.com",
            )
            .unwrap_err();
        assert_eq!(denied.oauth_error(), Some("access_denied"));
        assert!(
            matches!(denied, ClientError::Authorization { state: Some(ref s), .. } if s == "st")
        );

        let iss = "&iss=https%3A%2F%2Fauth.example.com";
        for bad in [
            "state=st",
            "code=&state=st",
            "code=abc",
            "code=a&code=b&state=st",
        ] {
            assert!(
                matches!(
                    c.parse_callback(&format!("{bad}{iss}")),
                    Err(ClientError::Protocol(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn callback_without_iss_is_fine_when_the_server_does_not_send_it() {
        let mut cfg = config();
        cfg.authorization_response_iss_parameter_supported = false;
        let c = OAuthClient::new(reqwest::Client::new(), cfg).unwrap();
        assert!(c.parse_callback("code=abc&state=st").is_ok());
        assert!(c.parse_callback("code=abc&state=st&iss=x").is_err());
    }

    #[test]
    fn plain_http_only_on_loopback_unless_dangerously_allowed() {
        let mut cfg = config();
        cfg.token_endpoint = Url::parse("http://auth.example.com/token").unwrap();
        assert!(matches!(
            OAuthClient::new(reqwest::Client::new(), cfg.clone()),
            Err(ClientError::Config(_))
        ));
        cfg.plain_http = PlainHttp::DangerouslyAllowAnyHost;
        assert!(OAuthClient::new(reqwest::Client::new(), cfg).is_ok());

        for ok in [
            "http://127.0.0.1:8080",
            "http://[::1]:1",
            "http://localhost:9",
        ] {
            let mut cfg = config();
            cfg.issuer = ok.into();
            cfg.token_endpoint = Url::parse(&format!("{ok}/token")).unwrap();
            assert!(
                OAuthClient::new(reqwest::Client::new(), cfg).is_ok(),
                "{ok}"
            );
        }
        let mut cfg = config();
        cfg.issuer = "ftp://auth.example.com".into();
        assert!(OAuthClient::new(reqwest::Client::new(), cfg).is_err());
    }

    #[test]
    fn well_known_url_follows_rfc8414() {
        let p = PlainHttp::default();
        assert_eq!(
            well_known_url("https://auth.example.com", p)
                .unwrap()
                .as_str(),
            "https://auth.example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            well_known_url("https://auth.example.com/", p)
                .unwrap()
                .as_str(),
            "https://auth.example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            well_known_url("https://example.com/tenant1", p)
                .unwrap()
                .as_str(),
            "https://example.com/.well-known/oauth-authorization-server/tenant1"
        );
        assert!(well_known_url("https://example.com/?q=1", p).is_err());
        assert!(well_known_url("https://example.com/#f", p).is_err());
        assert!(well_known_url("http://example.com", p).is_err());
    }

    #[test]
    fn token_response_parsing() {
        let at = UNIX_EPOCH + Duration::from_secs(1_000);
        let t = parse_token_response(
            br#"{"access_token":"a","token_type":"bearer","expires_in":900,"refresh_token":"r","id_token":"i","scope":"s"}"#,
            at,
            Some("requested"),
        )
        .unwrap();
        assert_eq!(t.access_token.expose(), "a");
        assert_eq!(t.expires_at, at + Duration::from_secs(900));
        assert_eq!(t.refresh_token.unwrap().expose(), "r");
        assert_eq!(t.scope.as_deref(), Some("s"));

        let t = parse_token_response(
            br#"{"access_token":"a","token_type":"Bearer"}"#,
            at,
            Some("requested"),
        )
        .unwrap();
        assert_eq!(t.expires_at, at + ASSUMED_LIFETIME);
        assert_eq!(t.scope.as_deref(), Some("requested"));
        assert_eq!(t.refresh_token, None);

        let t = parse_token_response(
            br#"{"access_token":"a","token_type":"Bearer","expires_in":"60"}"#,
            at,
            None,
        )
        .unwrap();
        assert_eq!(t.expires_at, at + Duration::from_secs(60));

        for bad in [
            &br#"{"token_type":"Bearer","expires_in":1}"#[..],
            br#"{"access_token":"","token_type":"Bearer"}"#,
            br#"{"access_token":"a"}"#,
            br#"{"access_token":"a","token_type":"mac"}"#,
            br#"{"access_token":"a","token_type":"DPoP"}"#,
            br#"{"access_token":"a","token_type":"Bearer","expires_in":-1}"#,
            br#"{"access_token":"a","token_type":"Bearer","expires_in":1.5}"#,
            br#"{"access_token":"a","token_type":"Bearer","expires_in":18446744073709551615}"#,
            br#"not json"#,
        ] {
            assert!(
                matches!(
                    parse_token_response(bad, at, None),
                    Err(ClientError::Protocol(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn token_response_errors_never_echo_the_body() {
        let err = parse_token_response(
            br#"{"access_token":"SECRET-AT","token_type":7}"#,
            UNIX_EPOCH,
            None,
        )
        .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("SECRET-AT"));
    }

    #[test]
    fn error_bodies_become_oauth_errors() {
        let e = error_response(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_grant","error_description":"expired"}"#,
        );
        assert!(matches!(
            e,
            ClientError::OAuth { ref error, ref description, status: 400 }
                if error == "invalid_grant" && description.as_deref() == Some("expired")
        ));
        assert_eq!(e.oauth_error(), Some("invalid_grant"));
        let e = error_response(reqwest::StatusCode::SERVICE_UNAVAILABLE, b"<html>");
        assert!(matches!(e, ClientError::Status { status: 503 }));
    }

    #[test]
    fn debug_shows_no_secret() {
        let dbg = format!("{:?} {:?}", client(), config());
        assert!(!dbg.contains("s3cr+t"), "{dbg}");
    }
}
