//! Pushed authorization requests (RFC 9126): the endpoint `POST /par`, and what
//! `/authorize` does with the `request_uri` it hands out.
//!
//! `/par` authenticates the client exactly as the token endpoint does
//! ([`crate::oauth::client_auth`]; a public client identifies itself by `client_id`),
//! validates the parameters with the same function as `/authorize`
//! ([`crate::oauth::request::validate_request`]), refuses a `request_uri` inside a pushed
//! request (§2.1), stores the validated request for
//! [`deedbolt_core::par::PUSHED_REQUEST_LIFETIME_SECS`] and answers `201 Created` with the
//! `request_uri` and `expires_in` (§2.2), never cached. A refusal is the token endpoint's
//! JSON error with the authorization endpoint's codes (§2.3). Requests are rate-limited
//! per client like token requests (a public client per client and IP) and audited.
//!
//! At `/authorize`, a `request_uri` replaces every other parameter but `client_id`, which
//! must name the client that pushed it: RFC 9126 §4 builds the request as RFC 9101 does,
//! whose §6.3 says the server "MUST only use the parameters in the Request Object, even if
//! the same parameter is provided in the query parameter". Other parameters are therefore
//! ignored, not refused. The stored request is taken once ([`take`]), validated again
//! against the client as registered now (§4), and then follows the ordinary sign-in,
//! stored under an id derived from the reference: loading the same URL again continues
//! that sign-in, and the reference is spent when the user's answer goes back to the client
//! (FAPI 2.0 SP §5.3.2.2 NOTE 3: at the point of authorization, not when a browser or a
//! scanner first loads the page). An unknown, expired, spent or foreign reference gets an
//! error page, never a redirect: without the stored request there is no redirect URI known
//! to be the client's.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use deedbolt_core::audit::AuditKind;
use deedbolt_core::client::Client;
use deedbolt_core::error::OAuthError;
use deedbolt_core::flow::{AuthorizationRequest, AuthorizeError, AuthzErrorCode, RedirectError};
use deedbolt_core::par::{self, RequestUri, PUSHED_REQUEST_LIFETIME_SECS};
use deedbolt_guard::ClientCertificate;
use serde::Serialize;

use crate::error::ApiError;
use crate::oauth::client_auth;
use crate::oauth::request::validate_request;
use crate::oauth::token::{Outcome, TokenAudit};
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::form::read_form_params;
use crate::web::no_store::no_store_json;
use crate::web::rate_limit::Policy;

/// The body of a successful push (RFC 9126 §2.2).
#[derive(Debug, Serialize)]
struct PushedResponse<'a> {
    request_uri: &'a str,
    expires_in: i64,
}

/// `POST /par` (RFC 9126 §2).
#[tracing::instrument(name = "par", skip_all, fields(client_id))]
pub async fn par_endpoint(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    tls: Option<Extension<ClientCertificate>>,
    listener: Option<Extension<deedbolt_guard::dpop::ListenerBase>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let services = &state.services;
    // Certificate clients (RFC 8705) push over the mutual-TLS listener.
    let tls = tls.as_ref().map(|Extension(c)| c);
    let ip = client_ip(peer, &headers, &services.trusted_proxies).to_string();
    let mut audit = TokenAudit {
        ip: ip.clone(),
        ..TokenAudit::default()
    };
    let listener = listener.as_ref().map(|Extension(l)| l);
    let result = push(&state, &headers, tls, listener, body, &mut audit)
        .await
        .map(|r| crate::oauth::token::dpop::with_nonce(&state, r));
    audit
        .finish(
            &state,
            &headers,
            Outcome::of(&result),
            AuditKind::PushedAuthorizationRequest,
            AuditKind::PushedAuthorizationRequest,
            Some("endpoint=par".to_owned()),
        )
        .await;
    result
}

async fn push(
    state: &AppState,
    headers: &HeaderMap,
    tls: Option<&ClientCertificate>,
    listener: Option<&deedbolt_guard::dpop::ListenerBase>,
    body: Body,
    audit: &mut TokenAudit,
) -> Result<Response, ApiError> {
    let services = &state.services;
    let mut params = read_form_params(headers, body).await?;
    audit.claimed_client = client_auth::claimed_client_id(headers, &params);
    let auth = client_auth::authenticate(state, headers, tls, &mut params).await?;
    let client = auth.client();
    audit.client_id = Some(client.id.to_string());
    let allowance = crate::limits::check(
        state,
        Policy::Par,
        services.limits.token,
        &audit.limit_key(&auth),
    )
    .await?;
    // §2.1: "The request_uri authorization request parameter is one exception, and it
    // MUST NOT be provided."
    if params.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request(
            "request_uri must not be sent in a pushed authorization request (RFC 9126 §2.1)",
        )
        .into());
    }
    // The authenticated client is the request's client; `client_id`, if sent, was checked
    // against it by the client authentication (and taken from the parameters).
    let mut request = validate_request(state, &params, Some(client), None)
        .await
        .map_err(pushed_error)?;
    crate::oauth::token::dpop::bind_pushed(state, headers, listener, &mut request).await?;
    audit.scope = Some(request.scope.to_string());
    let uri = RequestUri::generate().map_err(ApiError::internal)?;
    let now = services.clock.now();
    let expires = now.plus_secs(PUSHED_REQUEST_LIFETIME_SECS);
    request.pushed_until = Some(expires);
    services
        .pushed
        .put_pushed(&uri.storage_key(), &request, expires)
        .await?;
    tracing::info!(client_id = %client.id, scope = %request.scope, "authorization request pushed");
    let mut response = no_store_json(
        StatusCode::CREATED,
        PushedResponse {
            request_uri: uri.as_str(),
            expires_in: PUSHED_REQUEST_LIFETIME_SECS,
        },
    );
    if let Some(a) = allowance {
        a.apply(response.headers_mut());
    }
    Ok(response)
}

/// A refused pushed request as the JSON error of RFC 9126 §2.3, with the code `/authorize`
/// would have redirected with.
fn pushed_error(e: AuthorizeError) -> ApiError {
    let redirect = |e: RedirectError| -> OAuthError {
        let d = e.description;
        match e.error {
            AuthzErrorCode::UnauthorizedClient => OAuthError::UnauthorizedClient(d),
            AuthzErrorCode::UnsupportedResponseType => OAuthError::UnsupportedResponseType(d),
            AuthzErrorCode::InvalidScope => OAuthError::InvalidScope(d),
            _ => OAuthError::InvalidRequest(d),
        }
    };
    match e {
        // An unregistered redirect URI or a missing one: what /authorize shows as a page.
        AuthorizeError::NoRedirect(m) => OAuthError::InvalidRequest(Cow::Borrowed(m)),
        AuthorizeError::Redirect(e) => redirect(e),
        AuthorizeError::ScopeBeyondRegistration { error, .. } => redirect(error),
    }
    .into()
}

/// What `/authorize` gets from a `request_uri`.
#[derive(Debug)]
pub(crate) enum Taken {
    /// The pushed request, taken now (single use): start its sign-in under `sign_in_id`.
    Fresh {
        /// The request, validated again.
        request: AuthorizationRequest,
        /// The id its sign-in must be stored under ([`RequestUri::sign_in_id`]).
        sign_in_id: String,
    },
    /// The reference was taken by an earlier load whose sign-in is still in progress:
    /// continue that one (FAPI 2.0 SP §5.3.2.2 NOTE 3).
    Resumed {
        /// The sign-in's id.
        sign_in_id: String,
        /// Its request.
        request: AuthorizationRequest,
    },
}

/// Why `/authorize` could not use a `request_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TakeError {
    /// Malformed, unknown, expired, already used, or pushed by another client: one
    /// answer, so a reference cannot be probed.
    Unusable,
    /// The request was taken, but no longer passes validation (the client's registration
    /// changed since the push).
    Invalid(AuthorizeError),
}

/// Takes the pushed request `request_uri` refers to for `client` (single use), and
/// validates it again against the client as registered now (RFC 9126 §4). A reference
/// already taken whose sign-in has not been answered yet resumes that sign-in while the
/// reference is valid (its `expires_in`), so a page loaded twice (a browser preloading it,
/// a scanner following the link) does not spend the reference: the sign-in is forgotten,
/// and the reference with it, when the user's answer is sent back to the client.
pub(crate) async fn take(
    state: &AppState,
    request_uri: &str,
    client: &Client,
) -> Result<Result<Taken, TakeError>, ApiError> {
    let Ok(uri) = RequestUri::parse(request_uri) else {
        return Ok(Err(TakeError::Unusable));
    };
    let now = state.services.clock.now();
    let sign_in_id = uri.sign_in_id();
    let Some(stored) = state
        .services
        .pushed
        .take_pushed(&uri.storage_key(), &client.id, now)
        .await?
    else {
        let resumed = state.services.flow.get_pending(&sign_in_id, now).await?;
        return Ok(match resumed {
            // Continued only for its client, and only while the reference itself is valid
            // (RFC 9126 §2.2 `expires_in`).
            Some(request)
                if request.client_id == client.id
                    && request.pushed_until.is_some_and(|until| now < until) =>
            {
                Ok(Taken::Resumed {
                    sign_in_id,
                    request,
                })
            }
            _ => {
                tracing::info!(client_id = %client.id, "unusable request_uri at the authorization endpoint");
                Err(TakeError::Unusable)
            }
        });
    };
    let revalidated = par::revalidate(&stored, client).and_then(|request| {
        crate::oauth::request::id_token_alg_allowed(state, &request, client)?;
        Ok(request)
    });
    Ok(match revalidated {
        Ok(mut request) => {
            request.pushed_until = stored.pushed_until;
            Ok(Taken::Fresh {
                request,
                sign_in_id,
            })
        }
        Err(e) => Err(TakeError::Invalid(e)),
    })
}
