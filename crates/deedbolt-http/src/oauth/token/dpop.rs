//! DPoP at the token endpoint (RFC 9449 §5, §8, §10).
//!
//! A valid `DPoP` proof for `POST {issuer}/token` (or the mutual-TLS listener's alias of
//! it, for a request that came in there) binds the access token to the proof key
//! (`cnf.jkt`, `token_type: DPoP`) for every grant. A client registered with
//! `dpop_bound_access_tokens` must send one. A code requested with `dpop_jkt` is redeemed
//! only with a proof by that key; a public client's refresh-token family is bound to the
//! key of the first proof it sees, at code redemption or at a later refresh (a
//! confidential client's is bound by its client authentication, §5). The proof is checked after client authentication and before the
//! grant changes anything, so a refused proof spends no code and rotates no token.

use std::borrow::Cow;

use axum::http::HeaderMap;
use axum::response::Response;
use deedbolt_core::client::Client;
use deedbolt_core::error::OAuthError;
use deedbolt_core::token::{AccessTokenClaims, Confirmation};
use deedbolt_guard::dpop::{DpopError, DpopRequest, Jkt, ListenerBase};

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::dpop::{nonce_header, DPOP};

/// The DPoP key a token request proved possession of, if it sent a proof.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenProof(Option<Jkt>);

impl TokenProof {
    /// The proven key's thumbprint.
    pub(crate) fn jkt(&self) -> Option<&Jkt> {
        self.0.as_ref()
    }

    /// Binds `claims` to the proven key (`cnf.jkt`), keeping any other confirmation
    /// (a certificate thumbprint) already set.
    pub(crate) fn bind(&self, claims: &mut AccessTokenClaims) {
        if let Some(jkt) = &self.0 {
            match &mut claims.cnf {
                Some(cnf) => cnf.jkt = Some(jkt.to_string()),
                None => claims.cnf = Some(Confirmation::dpop(jkt.as_str())),
            }
        }
    }

    /// The `token_type` of the response: `DPoP` for a bound token (RFC 9449 §5).
    pub(crate) fn token_type(&self) -> &'static str {
        if self.0.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
    }

    /// Checks that the proof's key is `bound` (a code's `dpop_jkt`, a family's key):
    /// without a proof `invalid_dpop_proof`, with another key `invalid_grant` (the grant
    /// belongs to another key).
    pub(crate) fn require_key(
        &self,
        state: &AppState,
        bound: Option<&str>,
        what: &'static str,
    ) -> Result<(), ApiError> {
        let Some(bound) = bound else { return Ok(()) };
        match &self.0 {
            None => Err(refusal(state, DpopError::Missing)),
            Some(jkt) if jkt.matches(bound) => Ok(()),
            Some(_) => Err(OAuthError::InvalidGrant(Cow::Borrowed(what)).into()),
        }
    }
}

/// A refused proof, with a fresh nonce for `use_dpop_nonce` and when nonces are required.
pub(crate) fn refusal(state: &AppState, error: DpopError) -> ApiError {
    ApiError::Dpop {
        error,
        nonce: state.services.dpop.refusal_nonce(error),
    }
}

/// The public URL of the endpoint at `path` as the request addressed it, for `htu`
/// (RFC 9449 §4.3 check 9): on the listener's own public URL when the request came in on
/// one that has it (the mutual-TLS listener's `mtls_endpoint_aliases`), else from the issuer.
pub(crate) fn endpoint_url(
    state: &AppState,
    listener: Option<&ListenerBase>,
    path: &str,
) -> String {
    match listener {
        Some(base) => base.url(path),
        None => format!(
            "{}{path}",
            state.services.policy.issuer.trim_end_matches('/')
        ),
    }
}

/// Checks the request's `DPoP` proof, if any, for `client` (RFC 9449 §4.3 with `htm`
/// `POST` and `htu` the token endpoint's URL on the listener the request came in on,
/// [`endpoint_url`]). A client registered with `dpop_bound_access_tokens` must send one.
pub(crate) async fn token_proof(
    state: &AppState,
    headers: &HeaderMap,
    htu: &str,
    client: &Client,
) -> Result<TokenProof, ApiError> {
    let s = &state.services;
    let mut values = headers.get_all(DPOP).iter().peekable();
    if values.peek().is_none() {
        if client.metadata.dpop_bound_access_tokens {
            return Err(refusal(state, DpopError::Missing));
        }
        return Ok(TokenProof(None));
    }
    let request = DpopRequest {
        method: "POST",
        uri: htu,
        access_token: None,
    };
    match s.dpop.check(values, &request, s.replay.as_ref()).await {
        Ok(proof) => Ok(TokenProof(Some(proof.jkt))),
        Err(error) => {
            tracing::info!(client_id = %client.id, reason = %error, "DPoP proof refused at the token endpoint");
            Err(refusal(state, error))
        }
    }
}

/// A `DPoP` proof sent with a pushed authorization request (RFC 9449 §10.1, `htu` the PAR
/// endpoint's URL on the listener the request came in on) binds the code like `dpop_jkt`:
/// the proof key becomes the request's `dpop_jkt`, and a `dpop_jkt` that names another
/// key is refused.
pub(crate) async fn bind_pushed(
    state: &AppState,
    headers: &HeaderMap,
    listener: Option<&ListenerBase>,
    request: &mut deedbolt_core::flow::AuthorizationRequest,
) -> Result<(), ApiError> {
    let s = &state.services;
    let mut values = headers.get_all(DPOP).iter().peekable();
    if values.peek().is_none() {
        return Ok(());
    }
    let htu = endpoint_url(state, listener, "/par");
    let proof_request = DpopRequest {
        method: "POST",
        uri: &htu,
        access_token: None,
    };
    let proof = s
        .dpop
        .check(values, &proof_request, s.replay.as_ref())
        .await
        .map_err(|e| refusal(state, e))?;
    match &request.dpop_jkt {
        Some(named) if !proof.jkt.matches(named) => Err(refusal(state, DpopError::KeyMismatch)),
        _ => {
            request.dpop_jkt = Some(proof.jkt.to_string());
            Ok(())
        }
    }
}

/// Adds a fresh `DPoP-Nonce` to a token response, when the server issues nonces.
pub(crate) fn with_nonce(state: &AppState, mut response: Response) -> Response {
    nonce_header(
        state.services.dpop.nonce().as_deref(),
        response.headers_mut(),
    );
    response
}
