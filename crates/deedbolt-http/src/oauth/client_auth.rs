//! Client credentials from a token request: HTTP Basic (`client_secret_basic`, RFC 6749
//! §2.3.1, with the form-url-decoding it requires), the body (`client_secret_post`) or a
//! signed JWT (`private_key_jwt`, RFC 7523: [`crate::oauth::private_key_jwt`]).
//! Using two at once is refused ("MUST NOT use more than one authentication method").
//!
//! [`authenticate`] then checks them against the registered client for every endpoint
//! that authenticates clients (token, PAR, revocation, introspection), after the security
//! profile's allowed methods.

use std::borrow::Cow;

use std::net::SocketAddr;

use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use deedbolt_core::assertion::PresentedAssertion;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::error::OAuthError;
use deedbolt_core::grant::{self, TokenClient};
use deedbolt_core::ids::ClientId;
use deedbolt_core::secret::ClientSecret;

use crate::error::ApiError;
use crate::oauth::client_auth_tls;
use crate::oauth::private_key_jwt;
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::form::FormParams;
use deedbolt_core::certauth::ByCertificate;
use deedbolt_guard::ClientCertificate;

/// How the client authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
}

/// Who the client says it is, and how it proves it.
#[derive(Debug)]
pub enum Presented {
    /// A secret, by Basic or in the body.
    Secret(PresentedCredentials),
    /// Only a `client_id` in the body: a public client (`token_endpoint_auth_method=none`),
    /// or a certificate client (RFC 8705 §2) on the mutual-TLS listener.
    PublicId(ClientId),
    /// A signed JWT (`private_key_jwt`, RFC 7523), not yet verified.
    Assertion(PresentedAssertion),
}

impl Presented {
    /// The `token_endpoint_auth_method` this presentation uses.
    pub fn method(&self) -> deedbolt_core::client::AuthMethod {
        use deedbolt_core::client::AuthMethod as Registered;
        match self {
            Presented::Secret(c) => match c.method {
                AuthMethod::ClientSecretBasic => Registered::ClientSecretBasic,
                AuthMethod::ClientSecretPost => Registered::ClientSecretPost,
            },
            // Or a certificate method (RFC 8705), known only after the look-up.
            Presented::PublicId(_) => Registered::None,
            Presented::Assertion(_) => Registered::PrivateKeyJwt,
        }
    }
}

/// Presented client credentials, not yet verified.
#[derive(Debug)]
pub struct PresentedCredentials {
    /// The claimed client id.
    pub client_id: ClientId,
    /// The presented secret.
    pub secret: ClientSecret,
    /// How they were presented.
    pub method: AuthMethod,
}

fn failed(msg: &'static str) -> OAuthError {
    OAuthError::InvalidClient(Cow::Borrowed(msg))
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space.
fn form_decode(s: &str) -> Result<String, OAuthError> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| failed("malformed Basic credentials"))
}

fn parse_basic(value: &str) -> Result<(String, String), OAuthError> {
    let (scheme, encoded) = value
        .split_once(' ')
        .ok_or_else(|| failed("malformed Basic credentials"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(failed("unsupported authentication scheme; use Basic"));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| failed("malformed Basic credentials: bad base64"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| failed("malformed Basic credentials: not UTF-8"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| failed("malformed Basic credentials: no colon"))?;
    Ok((form_decode(id)?, form_decode(secret)?))
}

/// The client id a request *claims*, before any authentication (for audit records of failed
/// authentication; never trusted for anything else).
pub fn claimed_client_id(headers: &HeaderMap, params: &FormParams) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return parse_basic(value).ok().map(|(id, _)| id);
    }
    params.get("client_id").map(str::to_owned).or_else(|| {
        deedbolt_core::assertion::claimed_subject(params.get("client_assertion")?)
            .map(|id| id.to_string())
    })
}

/// Extracts credentials, also accepting a bare `client_id` in the body (public clients).
pub fn extract_any(headers: &HeaderMap, params: &mut FormParams) -> Result<Presented, OAuthError> {
    let mut auth_headers = headers.get_all(AUTHORIZATION).iter();
    let header = auth_headers.next();
    if auth_headers.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let body_id = params.take("client_id");
    let body_secret = params.take("client_secret");
    let assertion_type = params.take("client_assertion_type");
    let assertion = params.take("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        let other = private_key_jwt::OtherCredentials {
            header: header.is_some(),
            client_id: body_id,
            secret: body_secret.is_some(),
        };
        return private_key_jwt::presented(assertion_type.as_deref(), assertion.as_deref(), &other)
            .map(Presented::Assertion);
    }
    let (id, secret, method) = match header {
        Some(value) => {
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not both Basic and client_secret",
                ));
            }
            let value = value
                .to_str()
                .map_err(|_| failed("malformed Basic credentials"))?;
            let (id, secret) = parse_basic(value)?;
            if body_id.as_deref().is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the authenticated client",
                ));
            }
            (id, secret, AuthMethod::ClientSecretBasic)
        }
        None => match (body_id, body_secret) {
            (Some(id), Some(secret)) => (id, secret, AuthMethod::ClientSecretPost),
            (Some(id), None) => {
                let id =
                    ClientId::parse(&id).map_err(|_| OAuthError::client_authentication_failed())?;
                return Ok(Presented::PublicId(id));
            }
            _ => return Err(failed("client authentication required")),
        },
    };
    let secret = ClientSecret::from_presented(secret);
    let client_id = ClientId::parse(&id).map_err(|_| OAuthError::client_authentication_failed())?;
    Ok(Presented::Secret(PresentedCredentials {
        client_id,
        secret,
        method,
    }))
}

/// Audits a failed client authentication at `endpoint`, naming the client the request
/// claimed to be (if any), and feeds the per-IP detector.
pub(crate) async fn audit_client_auth_failure(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    endpoint: &str,
    claimed: Option<&str>,
) {
    let services = &state.services;
    let now = services.clock.now();
    let ip = client_ip(peer, headers, &services.trusted_proxies).to_string();
    services.security.auth_failure(&ip, now).await;
    let mut record = AuditRecord::new(AuditKind::ClientAuthFailed, false, now)
        .ip(&ip)
        .user_agent(headers.get(USER_AGENT).and_then(|v| v.to_str().ok()))
        .error("invalid_client")
        .detail(format!("endpoint={endpoint}"));
    if let Some(id) = claimed {
        record = record.client(id);
    }
    services.audit.record(record).await;
}

/// Authenticates a confidential client by secret, assertion or (over mutual TLS, for a
/// client registered for it) certificate, or identifies a public one by id: only the
/// former carry the [`deedbolt_core::grant::ClientAuthenticated`] proof. A method the
/// security profile does not allow is refused first (`invalid_client`, FAPI 2.0
/// §5.3.2.1), before any look-up; a bare `client_id` next to a client certificate is
/// judged once the look-up tells `none` from a certificate method.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    tls: Option<&ClientCertificate>,
    params: &mut FormParams,
) -> Result<TokenClient, ApiError> {
    let services = &state.services;
    let presented = extract_any(headers, params)?;
    let certificate_pending = matches!(presented, Presented::PublicId(_)) && tls.is_some();
    if !certificate_pending {
        services.profile.check_auth_method(presented.method())?;
    }
    match presented {
        Presented::Secret(presented) => {
            tracing::Span::current().record("client_id", presented.client_id.as_str());
            let found = services.clients.find_client(&presented.client_id).await?;
            let auth = grant::authenticate_client(found, &presented.secret, &services.hasher)?;
            Ok(TokenClient::Confidential(auth))
        }
        Presented::PublicId(id) => {
            tracing::Span::current().record("client_id", id.as_str());
            let found = services.clients.find_client(&id).await?;
            // RFC 8705 §2: a client registered for a certificate method proves itself by
            // the mutual-TLS certificate; any other client naming itself is public.
            match client_auth_tls::authenticate(found, tls)? {
                ByCertificate::Authenticated(auth) => {
                    services
                        .profile
                        .check_auth_method(auth.client().auth_method())?;
                    Ok(TokenClient::Confidential(auth))
                }
                ByCertificate::NotACertificateClient(found) => {
                    // Not a certificate client: a bare client_id is `none`.
                    services
                        .profile
                        .check_auth_method(deedbolt_core::client::AuthMethod::None)?;
                    Ok(TokenClient::Public(grant::identify_public_client(found)?))
                }
            }
        }
        Presented::Assertion(assertion) => Ok(TokenClient::Confidential(
            private_key_jwt::authenticate(state, assertion).await?,
        )),
    }
}

/// Client authentication for these endpoints; failures are audited like the token
/// endpoint's.
pub(crate) async fn authenticated(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    tls: Option<&ClientCertificate>,
    params: &mut FormParams,
    endpoint: &str,
) -> Result<TokenClient, ApiError> {
    // Read before authentication takes the credentials out of the form.
    let claimed = claimed_client_id(headers, params);
    match authenticate(state, headers, tls, params).await {
        Err(e @ ApiError::OAuth(OAuthError::InvalidClient(_))) => {
            audit_client_auth_failure(state, peer, headers, endpoint, claimed.as_deref()).await;
            Err(e)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// Only secret-bearing credentials, for these tests.
    fn extract(
        headers: &HeaderMap,
        params: &mut FormParams,
    ) -> Result<PresentedCredentials, OAuthError> {
        match extract_any(headers, params)? {
            Presented::Secret(c) => Ok(c),
            Presented::PublicId(_) | Presented::Assertion(_) => {
                Err(failed("client authentication required"))
            }
        }
    }

    fn basic(raw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw))).unwrap(),
        );
        h
    }

    #[test]
    fn basic_credentials_are_form_url_decoded() {
        let mut params = FormParams::default();
        let c = extract(&basic("dbc_a%2Bb:s%3Acret+x"), &mut params).unwrap();
        assert_eq!(c.client_id.as_str(), "dbc_a+b");
        assert_eq!(c.secret.expose_secret(), "s:cret x");
        assert_eq!(c.method, AuthMethod::ClientSecretBasic);
    }

    #[test]
    fn bad_base64_is_invalid_client() {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic !!!notbase64"),
        );
        let err = extract(&h, &mut FormParams::default()).unwrap_err();
        assert_eq!(err.code(), "invalid_client");
    }

    #[test]
    fn both_methods_at_once_is_invalid_request() {
        let mut params = FormParams::parse(b"client_secret=x").unwrap();
        let err = extract(&basic("a:b"), &mut params).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn post_with_only_an_id_is_a_public_client() {
        let mut params = FormParams::parse(b"client_id=a").unwrap();
        assert!(matches!(
            extract_any(&HeaderMap::new(), &mut params).unwrap(),
            Presented::PublicId(id) if id.as_str() == "a"
        ));
        let mut params = FormParams::default();
        assert_eq!(
            extract_any(&HeaderMap::new(), &mut params)
                .unwrap_err()
                .code(),
            "invalid_client"
        );
        let mut params = FormParams::parse(b"client_id=a&client_secret=b").unwrap();
        let c = extract(&HeaderMap::new(), &mut params).unwrap();
        assert_eq!(c.method, AuthMethod::ClientSecretPost);
    }
}
