//! The authorization-code flow with PKCE (RFC 6749 §4.1, RFC 7636, RFC 9207) and the
//! OpenID Connect ID token (OIDC Core §2, §3.1.3.6).
//!
//! [`AuthorizationRequest::validate`] decides, in the order RFC 6749 §4.1.2.1 requires,
//! whether a bad request may be answered by redirecting: an unknown client or a redirect URI
//! that is not registered must never cause a redirect (that would make the server an open
//! redirector), so those become [`AuthorizeError::NoRedirect`] and are shown as an error
//! page; everything else is redirected back with `error`, `state` and `iss`.

use std::borrow::Cow;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::client::{Client, GrantType};
use crate::clock::UnixTime;
use crate::error::OAuthError;
use crate::grant::TokenClient;
use crate::ids::{ClientId, UserId};
use crate::jose::SigningAlg;
use crate::pkce::{self, CodeChallenge, CodeVerifier, PkceVerified};
use crate::rand::{self, RandomError};
use crate::scope::{Scope, ScopeSet};

/// How long an authorization code lives by default (RFC 6749 §4.1.2 recommends at most 10
/// minutes; a real client redeems within a second).
pub const CODE_LIFETIME_SECS: i64 = 60;

/// Bounds on `state` and `nonce`, which are echoed back and stored. FAPI 2.0 SP §5.3.2.2
/// NOTE 4 warns that clients may send a `state` "in excess of 1000 characters".
const MAX_STATE_LEN: usize = 2048;

/// The error codes of the authorization endpoint (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzErrorCode {
    /// Malformed request.
    InvalidRequest,
    /// The client may not use this flow.
    UnauthorizedClient,
    /// The user (or the server on their behalf) said no.
    AccessDenied,
    /// `response_type` other than `code`.
    UnsupportedResponseType,
    /// Unknown or disallowed scope.
    InvalidScope,
    /// `prompt=none` but the user must log in.
    LoginRequired,
    /// `prompt=none` but the user must consent.
    ConsentRequired,
    /// Our failure.
    ServerError,
}

impl AuthzErrorCode {
    /// The wire code.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthzErrorCode::InvalidRequest => "invalid_request",
            AuthzErrorCode::UnauthorizedClient => "unauthorized_client",
            AuthzErrorCode::AccessDenied => "access_denied",
            AuthzErrorCode::UnsupportedResponseType => "unsupported_response_type",
            AuthzErrorCode::InvalidScope => "invalid_scope",
            AuthzErrorCode::LoginRequired => "login_required",
            AuthzErrorCode::ConsentRequired => "consent_required",
            AuthzErrorCode::ServerError => "server_error",
        }
    }
}

/// Why an authorization request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Unknown client or unregistered redirect URI: show an error page, never redirect.
    NoRedirect(&'static str),
    /// Send the user agent back to the client with an error.
    Redirect(RedirectError),
    /// The request passed the client, redirect-URI and PKCE checks but names scopes beyond
    /// the client's registration: send it back with `invalid_scope` (like
    /// [`AuthorizeError::Redirect`]), and `requested` may feed the unusual-scope rule. Only
    /// such a request may: one that failed earlier checks proves nothing about the client.
    ScopeBeyondRegistration {
        /// The `invalid_scope` error to redirect with.
        error: RedirectError,
        /// The scopes the request named.
        requested: ScopeSet,
    },
}

/// An error to deliver to the client's redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    /// Where to send it (already matched against the registration).
    pub redirect_uri: String,
    /// The client's `state`, echoed.
    pub state: Option<String>,
    /// The code.
    pub error: AuthzErrorCode,
    /// A human-readable description.
    pub description: Cow<'static, str>,
}

/// What `prompt` asked for (OIDC Core §3.1.2.1); other values are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Prompt {
    /// Normal interaction.
    #[default]
    Default,
    /// No interaction: fail with `login_required`/`consent_required` instead.
    None,
    /// Ask for the password again even with a session.
    Login,
    /// Show the consent page even if consent is remembered.
    Consent,
}

/// A validated authorization request, ready to be shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: ClientId,
    /// The redirect URI as presented (it matched a registered one).
    pub redirect_uri: String,
    /// The requested scope, within the client's registration.
    #[serde(with = "crate::scope::stored")]
    pub scope: ScopeSet,
    /// Echoed back.
    pub state: Option<String>,
    /// Copied into the ID token.
    pub nonce: Option<String>,
    /// The PKCE challenge (S256).
    pub code_challenge: String,
    /// `prompt`.
    pub prompt: Prompt,
    /// `dpop_jkt` (RFC 9449 §10): the thumbprint of the DPoP key the code will be
    /// redeemed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// For a pushed request (RFC 9126): until when its `request_uri` may be used (the
    /// `expires_in` the client was told). A sign-in it started is continued by another
    /// load of the same URL only until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_until: Option<UnixTime>,
}

/// The parameters of an authorization request, each at most once.
pub trait Params {
    /// The value of `name`, if given (and non-empty).
    fn get(&self, name: &str) -> Option<&str>;
}

fn printable(s: &str) -> bool {
    s.len() <= MAX_STATE_LEN && s.chars().all(|c| !c.is_control())
}

impl AuthorizationRequest {
    /// Validates a request. `client` is the client looked up by `client_id` (if any);
    /// `duplicate` names a parameter that was given twice, if any.
    pub fn validate(
        params: &dyn Params,
        client: Option<&Client>,
        duplicate: Option<&str>,
    ) -> Result<Self, AuthorizeError> {
        // 1. Client and redirect URI: failures here never redirect.
        let client = client.ok_or(AuthorizeError::NoRedirect(
            "The application that sent you here is not registered with this server.",
        ))?;
        if duplicate == Some("client_id") || duplicate == Some("redirect_uri") {
            return Err(AuthorizeError::NoRedirect(
                "The sign-in request is malformed (a parameter was repeated).",
            ));
        }
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or(AuthorizeError::NoRedirect(
                "The sign-in request has no redirect_uri.",
            ))?;
        if !client.redirect_uris.iter().any(|r| r.matches(redirect_uri)) {
            return Err(AuthorizeError::NoRedirect(
                "The sign-in request's redirect_uri is not registered for this application.",
            ));
        }
        let state = params.get("state").map(str::to_owned);
        let redirect = |error, description: &'static str| RedirectError {
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone().filter(|s| printable(s)),
            error,
            description: Cow::Borrowed(description),
        };
        let fail = |error, description| AuthorizeError::Redirect(redirect(error, description));
        // 2. Everything else is reported to the client.
        if duplicate.is_some() {
            return Err(fail(
                AuthzErrorCode::InvalidRequest,
                "a parameter was given more than once",
            ));
        }
        if state.as_deref().is_some_and(|s| !printable(s)) {
            return Err(fail(
                AuthzErrorCode::InvalidRequest,
                "state is too long or not printable",
            ));
        }
        match params.get("response_type") {
            Some("code") => {}
            Some(_) => {
                return Err(fail(
                    AuthzErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ))
            }
            None => {
                return Err(fail(
                    AuthzErrorCode::InvalidRequest,
                    "response_type is required",
                ))
            }
        }
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(fail(
                AuthzErrorCode::UnauthorizedClient,
                "this client is not registered for the authorization_code grant",
            ));
        }
        if params.get("request").is_some() || params.get("request_uri").is_some() {
            return Err(fail(
                AuthzErrorCode::InvalidRequest,
                "request objects are not supported",
            ));
        }
        let challenge = CodeChallenge::parse(
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        )
        .map_err(|e| {
            let d = match e {
                pkce::PkceError::MissingChallenge => "code_challenge is required (PKCE with S256)",
                pkce::PkceError::Method => "code_challenge_method must be S256",
                _ => "code_challenge is malformed",
            };
            fail(AuthzErrorCode::InvalidRequest, d)
        })?;
        let scope = match params.get("scope") {
            None => client.scopes,
            Some(s) => s.parse::<ScopeSet>().map_err(|_| {
                fail(
                    AuthzErrorCode::InvalidScope,
                    "scope is malformed or unknown",
                )
            })?,
        };
        if !scope.is_subset(&client.scopes) {
            return Err(AuthorizeError::ScopeBeyondRegistration {
                error: redirect(
                    AuthzErrorCode::InvalidScope,
                    "scope exceeds the client's registration",
                ),
                requested: scope,
            });
        }
        let nonce = params.get("nonce").map(str::to_owned);
        if nonce.as_deref().is_some_and(|n| !printable(n)) {
            return Err(fail(
                AuthzErrorCode::InvalidRequest,
                "nonce is too long or not printable",
            ));
        }
        let dpop_jkt = params.get("dpop_jkt").map(str::to_owned);
        if dpop_jkt.as_deref().is_some_and(|j| !is_jwk_thumbprint(j)) {
            return Err(fail(
                AuthzErrorCode::InvalidRequest,
                "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
            ));
        }
        let prompt = match params.get("prompt") {
            Some(p) if p.split(' ').any(|v| v == "none") => Prompt::None,
            Some(p) if p.split(' ').any(|v| v == "login") => Prompt::Login,
            Some(p) if p.split(' ').any(|v| v == "consent") => Prompt::Consent,
            _ => Prompt::Default,
        };
        Ok(AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state,
            nonce,
            code_challenge: challenge.as_str().to_owned(),
            prompt,
            dpop_jkt,
            pushed_until: None,
        })
    }

    /// What the user can actually grant: the request within their role.
    pub fn grantable(&self, delegable: &ScopeSet) -> ScopeSet {
        self.scope.intersection(delegable)
    }

    /// An error to send back for this request.
    pub fn error(&self, error: AuthzErrorCode, description: &'static str) -> RedirectError {
        RedirectError {
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            error,
            description: Cow::Borrowed(description),
        }
    }
}

/// Whether `s` has the shape of an RFC 7638 SHA-256 thumbprint: 43 base64url characters.
fn is_jwk_thumbprint(s: &str) -> bool {
    s.len() == 43 && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32)
}

/// A fresh authorization code (256 bits) and the hash under which it is stored.
pub fn new_code() -> Result<(String, [u8; 32]), RandomError> {
    let code = rand::token::<32>()?;
    let hash = code_hash(&code);
    Ok((code, hash))
}

/// The storage key of a code: its SHA-256, so a database leak reveals no live code.
pub fn code_hash(code: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, code.as_bytes()).as_ref());
    out
}

/// What a code stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The redirect URI it was delivered to.
    pub redirect_uri: String,
    /// The PKCE challenge.
    pub code_challenge: String,
    /// The user who approved.
    pub user_id: UserId,
    /// The granted scope (stored; an empty one still reads back, see
    /// [`ScopeSet::parse_stored`]).
    #[serde(with = "crate::scope::stored")]
    pub scope: ScopeSet,
    /// For the ID token.
    pub nonce: Option<String>,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// When the code expires.
    pub expires_at: UnixTime,
    /// The DPoP key the client bound the code to with `dpop_jkt` (RFC 9449 §10): the
    /// code is redeemed only with a proof by that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// The token request's parameters for `grant_type=authorization_code`.
#[derive(Debug)]
pub struct CodeExchange<'a> {
    /// `redirect_uri` (required: the request included one).
    pub redirect_uri: Option<&'a str>,
    /// `code_verifier`.
    pub code_verifier: Option<&'a str>,
}

fn invalid_grant(d: &'static str) -> OAuthError {
    OAuthError::InvalidGrant(Cow::Borrowed(d))
}

/// Checks a code against the token request *before* it is redeemed (RFC 6749 §4.1.3,
/// RFC 7636 §4.6, RFC 9700 §4.5): it was issued to the authenticated client, the
/// `redirect_uri` is the one it was delivered to, and the verifier matches its challenge.
///
/// The handler runs this on the stored grant ([`crate::ports::FlowStore::peek_code`])
/// and only then spends the code, so a request that fails here changes nothing: another
/// client (or anyone without the verifier) holding a stolen code can neither burn it nor
/// trigger the replay revocation of the legitimate user's tokens. A wrong verifier is
/// deliberately not counted towards anything: a verifier has at least 256 bits of entropy
/// (43+ characters) and the code lives [`CODE_LIFETIME_SECS`], so guessing is infeasible,
/// and a counter that burnt the code would hand the attacker the same denial of service
/// this order prevents. Failures are audited (and rate-limited) like every token request.
///
/// Expiry is checked after redemption ([`check_unexpired`]), so that a replay of an
/// expired code by its own client still counts as a replay.
///
/// Every failure is `invalid_grant` except a missing or malformed verifier
/// (`invalid_request`).
pub fn check_exchange(
    client: &TokenClient,
    grant: &CodeGrant,
    exchange: &CodeExchange<'_>,
) -> Result<PkceVerified, OAuthError> {
    if grant.client_id != client.client().id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if exchange.redirect_uri != Some(grant.redirect_uri.as_str()) {
        return Err(invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    let verifier = exchange
        .code_verifier
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is required"))?;
    let verifier =
        CodeVerifier::parse(verifier).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
    let challenge = CodeChallenge::from_stored(&grant.code_challenge)
        .map_err(|_| invalid_grant("the code is corrupt"))?;
    pkce::verify(&verifier, &challenge)
        .map_err(|_| invalid_grant("code_verifier does not match the code_challenge"))
}

/// Refuses a code that has expired (`invalid_grant`).
pub fn check_unexpired(grant: &CodeGrant, now: UnixTime) -> Result<(), OAuthError> {
    if now >= grant.expires_at {
        return Err(invalid_grant("the code has expired"));
    }
    Ok(())
}

/// The claims of an ID token (OIDC Core §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Expiry.
    pub exp: UnixTime,
    /// Issued at.
    pub iat: UnixTime,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// The request's nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Half of the access token's hash (OIDC Core §3.1.3.6).
    pub at_hash: String,
    /// The client (OIDC Core §2: when aud is a single client it may be omitted; we include it).
    pub azp: String,
}

/// `at_hash`: the left half of the hash of the access token, with the hash of the ID
/// token's signing algorithm (SHA-256 for ES256/RS256; SHA-512 for Ed25519).
pub fn at_hash(access_token: &str, alg: SigningAlg) -> String {
    let algorithm = match alg {
        SigningAlg::ES256 | SigningAlg::RS256 => &digest::SHA256,
        SigningAlg::EdDSA => &digest::SHA512,
    };
    let d = digest::digest(algorithm, access_token.as_bytes());
    let bytes = d.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

/// Whether the grant asked for an ID token.
pub fn wants_id_token(grant: &CodeGrant) -> bool {
    grant.scope.contains(Scope::Openid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientName;
    use crate::redirect::RedirectUri;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);
    impl Params for Map {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).copied().filter(|v| !v.is_empty())
        }
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client() -> Client {
        Client {
            id: ClientId::parse("dbc_spa").unwrap(),
            name: ClientName::parse("spa").unwrap(),
            secret_hash: None,
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: "openid tenant:read financial:read".parse().unwrap(),
            redirect_uris: vec![RedirectUri::parse("https://app.example.com/cb").unwrap()],
            kind: crate::client::ClientKind::Public,
            allow_introspection: false,
            properties: None,
            id_token_alg: SigningAlg::RS256,
            metadata: Default::default(),
            registration_token_hash: None,
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        }
    }

    fn good() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("response_type", "code"),
            ("client_id", "dbc_spa"),
            ("redirect_uri", "https://app.example.com/cb"),
            ("scope", "openid tenant:read"),
            ("state", "xyz"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
    }

    fn validate(
        p: HashMap<&'static str, &'static str>,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        AuthorizationRequest::validate(&Map(p), Some(&client()), None)
    }

    fn redirected(r: Result<AuthorizationRequest, AuthorizeError>) -> AuthzErrorCode {
        match r {
            Err(AuthorizeError::Redirect(e)) => {
                assert_eq!(e.state.as_deref(), Some("xyz"));
                e.error
            }
            other => panic!("expected a redirect error, got {other:?}"),
        }
    }

    #[test]
    fn dpop_jkt_is_kept_when_it_is_a_thumbprint_and_refused_otherwise() {
        let mut p = good();
        p.insert("dpop_jkt", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
        let r = validate(p).unwrap();
        assert_eq!(
            r.dpop_jkt.as_deref(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
        assert_eq!(validate(good()).unwrap().dpop_jkt, None);
        for bad in [
            "short",
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I=",
            "!!!",
        ] {
            let mut p = good();
            p.insert("dpop_jkt", bad);
            assert_eq!(
                redirected(validate(p)),
                AuthzErrorCode::InvalidRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_good_request_validates() {
        let r = validate(good()).unwrap();
        assert_eq!(r.scope.to_string(), "tenant:read openid");
        assert_eq!(r.state.as_deref(), Some("xyz"));
    }

    #[test]
    fn unknown_client_and_bad_redirect_never_redirect() {
        let r = AuthorizationRequest::validate(&Map(good()), None, None);
        assert!(matches!(r, Err(AuthorizeError::NoRedirect(_))));
        for uri in ["https://evil.example/cb", "https://app.example.com/cb/", ""] {
            let mut p = good();
            p.insert("redirect_uri", uri);
            assert!(
                matches!(validate(p), Err(AuthorizeError::NoRedirect(_))),
                "{uri}"
            );
        }
        let r = AuthorizationRequest::validate(&Map(good()), Some(&client()), Some("redirect_uri"));
        assert!(matches!(r, Err(AuthorizeError::NoRedirect(_))));
    }

    #[test]
    fn pkce_is_required_and_s256_only() {
        let mut p = good();
        p.remove("code_challenge");
        assert_eq!(redirected(validate(p)), AuthzErrorCode::InvalidRequest);
        let mut p = good();
        p.insert("code_challenge_method", "plain");
        assert_eq!(redirected(validate(p)), AuthzErrorCode::InvalidRequest);
        let mut p = good();
        p.remove("code_challenge_method");
        assert_eq!(redirected(validate(p)), AuthzErrorCode::InvalidRequest);
    }

    #[test]
    fn other_errors_redirect_with_state() {
        let mut p = good();
        p.insert("response_type", "token");
        assert_eq!(
            redirected(validate(p)),
            AuthzErrorCode::UnsupportedResponseType
        );
        let mut p = good();
        p.insert("scope", "unknown:scope");
        assert_eq!(redirected(validate(p)), AuthzErrorCode::InvalidScope);
        let r = AuthorizationRequest::validate(&Map(good()), Some(&client()), Some("scope"));
        assert_eq!(redirected(r), AuthzErrorCode::InvalidRequest);
    }

    #[test]
    fn scopes_beyond_the_registration_are_named_only_after_the_pkce_check() {
        let mut p = good();
        p.insert("scope", "tenant:read property:write");
        match validate(p) {
            Err(AuthorizeError::ScopeBeyondRegistration { error, requested }) => {
                assert_eq!(error.error, AuthzErrorCode::InvalidScope);
                assert_eq!(error.state.as_deref(), Some("xyz"));
                assert_eq!(requested.to_string(), "property:write tenant:read");
            }
            other => panic!("expected scope beyond registration, got {other:?}"),
        }
        // Without PKCE the same scope is never looked at: the request proves nothing.
        let mut p = good();
        p.insert("scope", "property:write");
        p.remove("code_challenge");
        assert_eq!(redirected(validate(p)), AuthzErrorCode::InvalidRequest);
    }

    #[test]
    fn a_stored_grant_with_an_empty_scope_reads_back() {
        let grant = CodeGrant {
            client_id: ClientId::parse("dbc_spa").unwrap(),
            redirect_uri: "https://app.example.com/cb".into(),
            code_challenge: "c".repeat(43),
            user_id: UserId::parse("usr_1").unwrap(),
            scope: ScopeSet::empty(),
            nonce: None,
            auth_time: UnixTime(1),
            expires_at: UnixTime(61),
            dpop_jkt: None,
        };
        let json = serde_json::to_string(&grant).unwrap();
        assert_eq!(serde_json::from_str::<CodeGrant>(&json).unwrap(), grant);
    }

    #[test]
    fn at_hash_matches_the_oidc_example_shape() {
        let h = at_hash(
            "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
            SigningAlg::ES256,
        );
        assert_eq!(h.len(), 22); // 16 bytes, base64url
        assert_eq!(at_hash("x", SigningAlg::EdDSA).len(), 43); // 32 bytes
    }
}
