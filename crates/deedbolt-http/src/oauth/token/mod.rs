//! The token endpoint, `POST /token` (RFC 6749 §3.2, §5): reads the form, dispatches on
//! `grant_type` to one file per grant (`code`, `client_credentials`, [`refresh`]) and
//! audits every request. What a token contains is decided in `deedbolt_core::issue`, from
//! the proofs the grant's checks leave.

mod client_credentials;
mod code;
pub(crate) mod dpop;
pub mod grace;
pub mod refresh;

use std::borrow::Cow;

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::client::ClientKind;
use deedbolt_core::client::GrantType;
use deedbolt_core::error::OAuthError;
use deedbolt_core::grant::{TokenClient, TokenResponse};
use deedbolt_core::token::{AccessTokenClaims, Confirmation, ACCESS_TOKEN_TYP};
use deedbolt_guard::dpop::ListenerBase;
use deedbolt_guard::ClientCertificate;

use crate::error::ApiError;
use crate::oauth::client_auth;
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::form::{has_content_type, read_body, FormParams};
use crate::web::no_store::no_store_json;

/// What the token endpoint learned about a request, for its audit record.
#[derive(Debug, Default)]
pub(crate) struct TokenAudit {
    pub(crate) grant: Option<GrantType>,
    pub(crate) client_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) jti: Option<String>,
    /// The client id the request claimed (unverified; only for failed authentication).
    pub(crate) claimed_client: Option<String>,
    /// The client's IP.
    pub(crate) ip: String,
}

/// How a client-authenticated request ended, for its audit record.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    /// Answered with success.
    Done,
    /// The client did not authenticate (`invalid_client`).
    ClientAuthFailed(&'static str),
    /// Throttled.
    RateLimited,
    /// Refused with this error code.
    Refused(&'static str),
}

impl Outcome {
    /// The outcome of `result`.
    pub(crate) fn of(result: &Result<Response, ApiError>) -> Self {
        match result {
            Ok(_) => Outcome::Done,
            Err(ApiError::OAuth(e @ OAuthError::InvalidClient(_))) => {
                Outcome::ClientAuthFailed(e.code())
            }
            Err(ApiError::OAuth(e)) => Outcome::Refused(e.code()),
            Err(ApiError::Dpop { error, .. }) => Outcome::Refused(error.code()),
            Err(ApiError::RateLimited { .. }) => Outcome::RateLimited,
            Err(_) => Outcome::Refused("server_error"),
        }
    }
}

impl TokenAudit {
    /// Writes the audit record of a finished client-authenticated request (token or PAR):
    /// `done` on success, `failed` on a refusal, `client_auth_failed` (which also feeds the
    /// per-IP failure detector, naming the claimed client) when the client did not
    /// authenticate, `rate_limited` when it was throttled. Takes the outcome as
    /// [`Outcome::of`] read it, since a response cannot be held across the write.
    pub(crate) async fn finish(
        &mut self,
        state: &AppState,
        headers: &HeaderMap,
        outcome: Outcome,
        done: AuditKind,
        failed: AuditKind,
        detail: Option<String>,
    ) {
        let services = &state.services;
        let now = services.clock.now();
        let (kind, error) = match outcome {
            Outcome::Done => (done, None),
            Outcome::ClientAuthFailed(code) => {
                services.security.auth_failure(&self.ip, now).await;
                if self.client_id.is_none() {
                    self.client_id = self.claimed_client.take();
                }
                (AuditKind::ClientAuthFailed, Some(code))
            }
            Outcome::RateLimited => (AuditKind::RateLimited, Some("rate_limit_exceeded")),
            Outcome::Refused(code) => (failed, Some(code)),
        };
        let mut record = AuditRecord::new(kind, error.is_none(), now)
            .ip(&self.ip)
            .user_agent(headers.get(USER_AGENT).and_then(|v| v.to_str().ok()));
        if let Some(d) = detail {
            record = record.detail(d);
        }
        if let Some(c) = &self.client_id {
            record = record.client(c);
        }
        if let Some(u) = &self.user_id {
            record = record.user(u);
        }
        if let Some(sc) = &self.scope {
            record = record.scope(sc);
        }
        if let Some(e) = error {
            record = record.error(e);
        }
        services.audit.record(record).await;
    }

    /// The rate-limit key of an authenticated client. A public client proves nothing by
    /// presenting its id, so anyone could spend its quota: its limit is also keyed by IP.
    pub(crate) fn limit_key(&self, auth: &TokenClient) -> String {
        let client = auth.client();
        if auth.kind() == ClientKind::Public {
            format!("{}@{}", client.id, self.ip)
        } else {
            client.id.to_string()
        }
    }

    /// The rate-limit key of a confidential client's grant made for one user
    /// (authorization code, refresh token): per client and user.
    pub(crate) fn user_limit_key(&self, auth: &TokenClient, user: &str) -> String {
        format!("{}/{user}", auth.client().id)
    }
}

/// `POST /token`
#[tracing::instrument(name = "token", skip_all, fields(grant_type, client_id))]
pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    tls: Option<Extension<ClientCertificate>>,
    listener: Option<Extension<ListenerBase>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let services = &state.services;
    // Only requests on the mutual-TLS listener carry a client certificate, and that
    // listener's own public URL, which DPoP proofs sent there name as their htu.
    let tls = tls.as_ref().map(|Extension(c)| c);
    let htu = dpop::endpoint_url(&state, listener.as_ref().map(|Extension(l)| l), "/token");
    let ip = client_ip(peer, &headers, &services.trusted_proxies).to_string();
    let mut audit = TokenAudit {
        ip: ip.clone(),
        ..TokenAudit::default()
    };
    let result = token_inner(&state, &headers, tls, &htu, body, &mut audit)
        .await
        .map(|r| dpop::with_nonce(&state, r));
    let done = match (&result, audit.grant) {
        (Ok(_), Some(GrantType::RefreshToken)) => AuditKind::TokenRefreshed,
        _ => AuditKind::TokenIssued,
    };
    let detail = audit.grant.map(|g| match &audit.jti {
        Some(j) => format!("grant={g} jti={j}"),
        None => format!("grant={g}"),
    });
    audit
        .finish(
            &state,
            &headers,
            Outcome::of(&result),
            done,
            AuditKind::TokenRequestFailed,
            detail,
        )
        .await;
    result
}

async fn token_inner(
    state: &AppState,
    headers: &HeaderMap,
    tls: Option<&ClientCertificate>,
    htu: &str,
    body: Body,
    audit: &mut TokenAudit,
) -> Result<Response, ApiError> {
    if !has_content_type(headers, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the token request must be application/x-www-form-urlencoded",
        )
        .into());
    }
    let body = read_body(headers, body).await?;
    let mut params = FormParams::parse(&body)?;
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let grant_type: GrantType = grant_type
        .parse()
        .map_err(|_| OAuthError::UnsupportedGrantType(Cow::Borrowed("unknown grant_type")))?;
    tracing::Span::current().record("grant_type", grant_type.as_str());
    audit.grant = Some(grant_type);
    audit.claimed_client = client_auth::claimed_client_id(headers, &params);
    match grant_type {
        GrantType::ClientCredentials => {
            client_credentials::client_credentials(state, headers, tls, htu, &mut params, audit)
                .await
        }
        GrantType::AuthorizationCode => {
            code::authorization_code(state, headers, tls, htu, &mut params, audit).await
        }
        GrantType::RefreshToken => {
            refresh::refresh_token_grant(state, headers, tls, htu, &mut params, audit).await
        }
    }
}

/// Under a profile that issues only sender-constrained tokens (FAPI 2.0), refuses a request
/// that binds to neither a DPoP key nor a client certificate, once the client is
/// authenticated and before its grant changes anything: no code is spent and no refresh
/// token rotated for a token that could never be issued. [`sign_access_token`] checks the
/// claims themselves again.
pub(crate) fn require_sender_constraint(
    state: &AppState,
    proof: &dpop::TokenProof,
    certificate: Option<&String>,
) -> Result<(), ApiError> {
    let offered = match (proof.jkt(), certificate) {
        (Some(jkt), _) => Some(Confirmation::dpop(jkt.as_str())),
        (None, Some(x5t)) => Some(Confirmation::certificate(x5t.as_str())),
        (None, None) => None,
    };
    state
        .services
        .profile
        .check_sender_constraint(offered.as_ref())?;
    Ok(())
}

/// Signs an access token: the one place every grant signs one, and so the last check
/// before issuance. Under a profile that issues only sender-constrained tokens
/// ([`deedbolt_core::profile::Profile::check_sender_constraint`], FAPI 2.0), claims without
/// a confirmation are refused with `invalid_request` and nothing is signed; the DPoP and
/// mutual-TLS bindings set `claims.cnf` before this.
pub(crate) fn sign_access_token(
    state: &AppState,
    claims: &AccessTokenClaims,
) -> Result<String, ApiError> {
    state
        .services
        .profile
        .check_sender_constraint(claims.cnf.as_ref())?;
    state
        .services
        .keys
        .current()
        .sign_jwt(ACCESS_TOKEN_TYP, claims)
        .map_err(ApiError::internal)
}

/// A 200 token response with the caching headers RFC 6749 §5.1 requires.
pub(crate) fn token_response(body: TokenResponse) -> Response {
    no_store_json(StatusCode::OK, body)
}
