//! Pushed authorization requests (RFC 9126): the `request_uri` references the PAR endpoint
//! hands out, and the rules for when a client must use them.
//!
//! A client pushes its authorization request to `/par`, authenticated exactly as at the
//! token endpoint; the server validates it as it would at `/authorize`
//! ([`crate::flow::AuthorizationRequest::validate`]), stores it for
//! [`PUSHED_REQUEST_LIFETIME_SECS`] and answers with a [`RequestUri`]. The browser then
//! brings only `client_id` and that `request_uri` to `/authorize`, which takes the stored
//! request once ([`crate::ports::PushedRequestStore::take_pushed`]): single use, bound to
//! the client that pushed it, short-lived.
//!
//! The reference is 256 random bits; like codes, only its SHA-256 is stored
//! ([`RequestUri::storage_key`]), so a database leak reveals no live reference.

use std::fmt;

use aws_lc_rs::digest;

use crate::client::Client;
use crate::flow::{AuthorizationRequest, AuthorizeError, Params, Prompt};
use crate::rand::{self, RandomError};

/// The URN prefix of every `request_uri` this server issues (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How long a pushed request waits for its `/authorize` (RFC 9126 §2.2: "the lifetime of
/// the request URI ... a short lifetime, e.g. between 5 and 600 seconds"; FAPI 2.0 asks
/// for less than 600 s). The browser is sent there right after the push.
pub const PUSHED_REQUEST_LIFETIME_SECS: i64 = 60;

/// Length of the random part: 32 bytes, base64url without padding.
const RANDOM_LEN: usize = 43;

/// A `request_uri` reference: [`REQUEST_URI_PREFIX`] and 256 random bits. Whoever holds
/// it can start the pushed request's sign-in, so it is redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestUri(String);

impl fmt::Debug for RequestUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestUri([redacted])")
    }
}

/// A `request_uri` that this server cannot have issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request_uri is not a pushed authorization request reference of this server")]
pub struct MalformedRequestUri;

impl RequestUri {
    /// A fresh reference.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(RequestUri(format!(
            "{REQUEST_URI_PREFIX}{}",
            rand::token::<32>()?
        )))
    }

    /// Parses a presented reference: the prefix and a random part of the right shape.
    /// Anything else (another server's URN, an `https` request URI of RFC 9101, which this
    /// server never fetches) is refused before any lookup.
    ///
    /// ```
    /// use deedbolt_core::par::RequestUri;
    /// let issued = RequestUri::generate().unwrap();
    /// assert_eq!(RequestUri::parse(issued.as_str()), Ok(issued));
    /// assert!(RequestUri::parse("https://client.example/request.jwt").is_err());
    /// assert!(RequestUri::parse("urn:ietf:params:oauth:request_uri:short").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, MalformedRequestUri> {
        let random = s
            .strip_prefix(REQUEST_URI_PREFIX)
            .ok_or(MalformedRequestUri)?;
        if random.len() != RANDOM_LEN
            || !random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(MalformedRequestUri);
        }
        Ok(RequestUri(s.to_owned()))
    }

    /// The reference, for the PAR response.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key it is stored under: its SHA-256.
    pub fn storage_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, self.0.as_bytes()).as_ref());
        out
    }

    /// The id of the sign-in that the first use of this reference at `/authorize` starts
    /// (the `req` of the login and consent forms): derived from the reference, so that
    /// loading the same `/authorize` URL again finds that sign-in instead of failing. The
    /// reference is thereby spent when the user completes the authorization, not when a
    /// browser or a scanner first loads the page (FAPI 2.0 SP §5.3.2.2 NOTE 3). Whoever
    /// can compute it holds the reference, which could start the same sign-in anyway; a
    /// domain prefix keeps it apart from [`RequestUri::storage_key`].
    pub fn sign_in_id(&self) -> String {
        use base64::Engine as _;
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"deedbolt pushed sign-in\0");
        ctx.update(self.0.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.finish().as_ref())
    }
}

/// Who decides that a client must push its authorization requests (RFC 9126 §5, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParRequirement {
    /// PAR is optional for this client.
    Optional,
    /// Required by the server's policy (`--require-par` or the active profile).
    Server,
    /// Required by the client's registration (`require_pushed_authorization_requests`).
    Client,
}

impl ParRequirement {
    /// Whether `client` must use PAR, given whether the server requires it of everyone
    /// (RFC 9126 §4: "Authorization server policy MAY dictate, either globally or on a
    /// per-client basis, that PAR be the only means for a client to pass authorization
    /// request data").
    pub fn of(server_requires: bool, client: &Client) -> Self {
        if server_requires {
            ParRequirement::Server
        } else if client.metadata.require_pushed_authorization_requests {
            ParRequirement::Client
        } else {
            ParRequirement::Optional
        }
    }

    /// Whether PAR is required.
    pub fn is_required(self) -> bool {
        self != ParRequirement::Optional
    }
}

/// A stored request's parameters, as `/authorize` would have received them.
struct StoredParams<'a> {
    request: &'a AuthorizationRequest,
    scope: String,
}

impl Params for StoredParams<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        let r = self.request;
        let value = match name {
            "response_type" => Some("code"),
            "client_id" => Some(r.client_id.as_str()),
            "redirect_uri" => Some(r.redirect_uri.as_str()),
            "scope" => Some(self.scope.as_str()),
            "state" => r.state.as_deref(),
            "nonce" => r.nonce.as_deref(),
            "dpop_jkt" => r.dpop_jkt.as_deref(),
            "code_challenge" => Some(r.code_challenge.as_str()),
            "code_challenge_method" => Some("S256"),
            "prompt" => match r.prompt {
                Prompt::Default => None,
                Prompt::None => Some("none"),
                Prompt::Login => Some("login"),
                Prompt::Consent => Some("consent"),
            },
            _ => None,
        };
        value.filter(|v| !v.is_empty())
    }
}

/// Validates a request taken from the pushed-request store again, exactly as `/authorize`
/// validates any request, against the client *as registered now*: RFC 9126 §4 ("The
/// authorization server MUST validate authorization requests arising from a pushed request
/// as it would any other authorization request"), and the client's redirect URIs, grants
/// or scopes may have changed since the push. A request that still passes comes back
/// unchanged.
pub fn revalidate(
    request: &AuthorizationRequest,
    client: &Client,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let params = StoredParams {
        request,
        scope: request.scope.to_string(),
    };
    AuthorizationRequest::validate(&params, Some(client), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientKind, ClientName, GrantType};
    use crate::clock::UnixTime;
    use crate::ids::ClientId;
    use crate::jose::SigningAlg;
    use crate::redirect::RedirectUri;

    fn client() -> Client {
        Client {
            id: ClientId::parse("dbc_spa").unwrap(),
            name: ClientName::parse("spa").unwrap(),
            secret_hash: None,
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: "openid tenant:read financial:read".parse().unwrap(),
            redirect_uris: vec![RedirectUri::parse("https://app.example.com/cb").unwrap()],
            kind: ClientKind::Public,
            allow_introspection: false,
            properties: None,
            id_token_alg: SigningAlg::RS256,
            metadata: Default::default(),
            registration_token_hash: None,
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        }
    }

    fn stored(prompt: Prompt) -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: ClientId::parse("dbc_spa").unwrap(),
            redirect_uri: "https://app.example.com/cb".into(),
            scope: "openid financial:read".parse().unwrap(),
            state: Some("st".into()),
            nonce: None,
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            prompt,
            dpop_jkt: None,
            pushed_until: None,
        }
    }

    #[test]
    fn a_stored_request_revalidates_unchanged() {
        for prompt in [
            Prompt::Default,
            Prompt::None,
            Prompt::Login,
            Prompt::Consent,
        ] {
            let r = stored(prompt);
            assert_eq!(revalidate(&r, &client()), Ok(r));
        }
        // The DPoP key binding (RFC 9449 §10.1) survives too.
        let r = AuthorizationRequest {
            dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
            ..stored(Prompt::Default)
        };
        assert_eq!(revalidate(&r, &client()), Ok(r));
    }

    #[test]
    fn a_registration_changed_since_the_push_is_applied() {
        let mut c = client();
        c.redirect_uris = vec![RedirectUri::parse("https://app.example.com/other").unwrap()];
        assert!(matches!(
            revalidate(&stored(Prompt::Default), &c),
            Err(AuthorizeError::NoRedirect(_))
        ));
        let mut c = client();
        c.scopes = "openid".parse().unwrap();
        assert!(matches!(
            revalidate(&stored(Prompt::Default), &c),
            Err(AuthorizeError::ScopeBeyondRegistration { .. })
        ));
    }

    #[test]
    fn the_server_or_the_client_can_require_par() {
        let mut c = client();
        assert_eq!(ParRequirement::of(false, &c), ParRequirement::Optional);
        assert!(ParRequirement::of(true, &c).is_required());
        c.metadata.require_pushed_authorization_requests = true;
        assert_eq!(ParRequirement::of(false, &c), ParRequirement::Client);
    }

    #[test]
    fn a_reference_names_one_sign_in_apart_from_its_storage_key() {
        use base64::Engine as _;
        let a = RequestUri::generate().unwrap();
        let b = RequestUri::generate().unwrap();
        assert_eq!(a.sign_in_id(), a.clone().sign_in_id());
        assert_ne!(a.sign_in_id(), b.sign_in_id());
        let storage = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(a.storage_key());
        assert_ne!(a.sign_in_id(), storage);
        assert_eq!(a.sign_in_id().len(), 43);
    }

    #[test]
    fn references_are_random_prefixed_and_hashed_for_storage() {
        let a = RequestUri::generate().unwrap();
        let b = RequestUri::generate().unwrap();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with(REQUEST_URI_PREFIX));
        assert_ne!(a.storage_key(), b.storage_key());
        assert_eq!(
            a.storage_key(),
            RequestUri::parse(a.as_str()).unwrap().storage_key()
        );
        assert_eq!(format!("{a:?}"), "RequestUri([redacted])");
    }

    #[test]
    fn foreign_or_malformed_references_are_refused() {
        let good = RequestUri::generate().unwrap();
        let random = &good.as_str()[REQUEST_URI_PREFIX.len()..];
        for bad in [
            String::new(),
            random.to_owned(),
            format!("urn:example:{random}"),
            format!("{REQUEST_URI_PREFIX}{random}x"),
            format!("{REQUEST_URI_PREFIX}{}", &random[1..]),
            format!("{REQUEST_URI_PREFIX}{}%", &random[1..]),
            format!("{REQUEST_URI_PREFIX}{}'", &random[1..]),
        ] {
            assert_eq!(RequestUri::parse(&bad), Err(MalformedRequestUri), "{bad}");
        }
    }
}
