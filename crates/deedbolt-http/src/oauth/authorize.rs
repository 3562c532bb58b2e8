//! The authorization endpoint, `/authorize` (RFC 6749 §4.1, RFC 7636, RFC 9207, OIDC Core
//! §3.1): validating the request, and answering it with a code or an error once the user
//! has signed in ([`crate::oauth::login`]) and consented ([`crate::oauth::consent`]).
//!
//! A request may also have been pushed first ([`crate::oauth::par`], RFC 9126): then
//! `client_id` and `request_uri` name it, and a client that must push (its registration,
//! `--require-par` or the profile) is refused without one.
//!
//! A validated request is stored server-side under a random id (`req`; for a pushed
//! request, one derived from its reference) for ten minutes while the user logs in and
//! consents; the forms carry only that id and a CSRF token.
//!
//! Anyone can send authorization requests, so what one sender can cost is bounded: the
//! requests are rate-limited per client IP (`--rate-limit-authorize`; over it a 429 page,
//! never a redirect), each IP holds at most [`MAX_PENDING_PER_IP`] pending requests (a new
//! one replaces its oldest), and requests without a signed-in user are audited as a sample
//! (at most one per IP per minute) rather than one audit row per hit.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use deedbolt_core::audit::AuditKind;
use deedbolt_core::client::Client;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{
    self, AuthorizationRequest, AuthorizeError, AuthzErrorCode, CodeGrant, Params, Prompt,
    RedirectError,
};
use deedbolt_core::ids::ClientId;
use deedbolt_core::par::ParRequirement;
use deedbolt_core::ports::Session;
use deedbolt_core::rand;
use deedbolt_core::user::User;

use crate::error::ApiError;
use crate::oauth::par;
use crate::oauth::request::validate_request;
use crate::oauth::session::{browser_record, current_session};
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::form::{read_form, Pairs};
use crate::web::pages::{self, see_other};
use crate::web::rate_limit::limited_headers;
use crate::web::rate_limit::Policy;

/// How long a pending authorization request waits for the user.
pub(crate) const PENDING_SECS: i64 = 600;
/// The most pending authorization requests one client IP holds at once; a new request
/// beyond this replaces that IP's oldest. Generous for a shared NAT (each pending request
/// is one sign-in in progress, for at most [`PENDING_SECS`]), tiny for the table.
pub const MAX_PENDING_PER_IP: usize = 64;
/// Anonymous authorization requests are audited as a sample: at most this many per client
/// IP per [`AUDIT_SAMPLE_WINDOW_SECS`] (requests of a signed-in user always are).
const AUDIT_SAMPLE_PER_IP: u32 = 1;
const AUDIT_SAMPLE_WINDOW_SECS: u32 = 60;

/// Appends query parameters to a redirect URI that may already have a query.
fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::from(uri);
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.extend(form_urlencoded::byte_serialize(v.as_bytes()));
        sep = '&';
    }
    out
}

pub(crate) fn redirect_error(state: &AppState, e: &RedirectError) -> Response {
    let issuer = state.services.policy.issuer.as_str();
    let mut params = vec![
        ("error", e.error.as_str()),
        ("error_description", e.description.as_ref()),
    ];
    if let Some(s) = &e.state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    see_other(&with_params(&e.redirect_uri, &params))
}

async fn find_client(state: &AppState, id: Option<&str>) -> Result<Option<Client>, ApiError> {
    let Some(id) = id.and_then(|i| ClientId::parse(i).ok()) else {
        return Ok(None);
    };
    state
        .services
        .clients
        .find_client(&id)
        .await
        .map_err(ApiError::internal)
}

/// `GET /authorize`
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn authorize(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Pairs::parse(raw.as_deref().unwrap_or("").as_bytes());
    authorize_with(&state, peer, &headers, params).await
}

/// `POST /authorize`: the same request as a form (OIDC Core §3.1.2.1 requires both).
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn authorize_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    match read_form(&headers, body).await? {
        Some(params) => authorize_with(&state, peer, &headers, params).await,
        None => Ok(pages::error_page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unexpected form encoding.",
        )),
    }
}

async fn authorize_with(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    params: Pairs,
) -> Result<Response, ApiError> {
    let ip = client_ip(peer, headers, &state.services.trusted_proxies);
    let ip_key = ip.to_string();
    // First, before any lookup or write: a flood from one IP costs one counter.
    let allowance = match crate::limits::check(
        state,
        Policy::Authorize,
        state.services.limits.authorize,
        &ip_key,
    )
    .await
    {
        Ok(allowance) => allowance,
        Err(ApiError::RateLimited {
            policy,
            limit,
            retry_after,
        }) => {
            let mut page = pages::error_page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many sign-in requests from your network. Try again in {retry_after} second(s)."
                ),
            );
            limited_headers(policy, limit, retry_after, page.headers_mut());
            return Ok(page);
        }
        Err(e) => return Err(e),
    };
    let session = current_session(state, headers).await?;
    let mut record = browser_record(AuditKind::AuthorizationRequest, true, state, headers).ip(ip);
    if let Some(c) = params.get("client_id") {
        tracing::Span::current().record("client_id", c);
        record = record.client(c);
    }
    if params.get("request_uri").is_some() {
        // A pushed request: its scope is the stored one (the push was audited with it);
        // a `scope` beside the reference is ignored, so it is not recorded either.
        record = record.detail("request_uri");
    } else if let Some(sc) = params.get("scope") {
        record = record.scope(sc);
    }
    if let Some(s) = &session {
        record = record.user(&s.user_id);
    }
    let mut response = authorize_inner(state, &params, session, &ip_key).await;
    if let (Ok(r), Some(a)) = (response.as_mut(), allowance) {
        a.apply(r.headers_mut());
    }
    if !audit_this_request(state, record.user_id.is_some(), &ip_key).await {
        return response;
    }
    // A redirect carrying `error=` is a refused request; so is an error page.
    let location = response
        .as_ref()
        .ok()
        .and_then(|r| r.headers().get(LOCATION))
        .and_then(|l| l.to_str().ok())
        .unwrap_or("");
    let error = location
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("error="))
        .map(str::to_owned);
    let failed = error.is_some()
        || response
            .as_ref()
            .map(|r| r.status().is_client_error())
            .unwrap_or(true);
    record.success = !failed;
    if let Some(e) = &error {
        record = record.error(e);
    } else if failed {
        record = record.error("invalid_request");
    }
    state.services.audit.record(record).await;
    response
}

/// Whether to audit an authorization request: always for a signed-in user, otherwise a
/// sample per client IP, so that an anonymous flood cannot write one audit row per hit.
async fn audit_this_request(state: &AppState, signed_in: bool, ip: &str) -> bool {
    if signed_in {
        return true;
    }
    let sample = deedbolt_core::ratelimit::RateLimit {
        count: AUDIT_SAMPLE_PER_IP,
        window_secs: AUDIT_SAMPLE_WINDOW_SECS,
    };
    match state
        .services
        .limiter
        .acquire(
            &format!("authorize-audit:{ip}"),
            sample,
            state.services.clock.now_ms(),
        )
        .await
    {
        Ok(outcome) => matches!(outcome, deedbolt_core::ratelimit::Outcome::Allowed { .. }),
        // Audit rather than lose the record when the sampler is unavailable.
        Err(_) => true,
    }
}

/// The answer to an authorization request that failed validation: an error page when the
/// redirect URI is not known to be the client's, a redirect with `error` otherwise.
fn refusal(state: &AppState, client_id: Option<&str>, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::NoRedirect(message) => {
            tracing::info!(client_id = ?client_id, "authorization request refused without redirect");
            pages::error_page(StatusCode::BAD_REQUEST, message)
        }
        AuthorizeError::Redirect(e) | AuthorizeError::ScopeBeyondRegistration { error: e, .. } => {
            redirect_error(state, &e)
        }
    }
}

/// Why a request that was not pushed is refused when pushing is required.
const PAR_REQUIRED: &str = "pushed authorization requests (RFC 9126) are required: \
     send the request to the pushed_authorization_request_endpoint first";

/// The request to answer, and the sign-in it belongs to.
enum Resolved {
    /// A request to start a sign-in for, under this id (a pushed request's is derived
    /// from its reference) or a fresh random one.
    Start(AuthorizationRequest, Option<String>),
    /// A pushed request whose sign-in an earlier load started: continue it.
    Resume(String, AuthorizationRequest),
}

/// The request to answer: the pushed one `request_uri` names (RFC 9126 §4), or the
/// parameters themselves when the client need not push them.
async fn resolve_request(
    state: &AppState,
    params: &Pairs,
    client: Option<&Client>,
) -> Result<Result<Resolved, Response>, ApiError> {
    let client_id = params.get("client_id");
    if let Some(request_uri) = params.get("request_uri") {
        let Some(client) = client else {
            return Ok(Err(refusal(
                state,
                client_id,
                AuthorizeError::NoRedirect(
                    "The application that sent you here is not registered with this server.",
                ),
            )));
        };
        if params.duplicate.is_some() {
            return Ok(Err(pages::error_page(
                StatusCode::BAD_REQUEST,
                "The sign-in request is malformed (a parameter was repeated).",
            )));
        }
        return Ok(match par::take(state, request_uri, client).await? {
            Ok(par::Taken::Fresh {
                request,
                sign_in_id,
            }) => Ok(Resolved::Start(request, Some(sign_in_id))),
            Ok(par::Taken::Resumed {
                sign_in_id,
                request,
            }) => Ok(Resolved::Resume(sign_in_id, request)),
            Err(par::TakeError::Invalid(e)) => Err(refusal(state, client_id, e)),
            Err(par::TakeError::Unusable) => Err(pages::error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in request has expired or was already used. Go back to the \
                 application and start again.",
            )),
        });
    }
    let validated = validate_request(state, params, client, params.duplicate.as_deref()).await;
    // A client that must push (RFC 9126 §4): "the authorization server will refuse, using
    // the invalid_request error code, to process any request to the authorization endpoint
    // that does not have a request_uri parameter with a value obtained from the PAR
    // endpoint". That is the answer whatever else is wrong with the request, once its
    // redirect URI is known to be the client's (otherwise: an error page, never a redirect).
    if client.is_some_and(|c| ParRequirement::of(state.services.require_par, c).is_required()) {
        let redirect = match validated {
            Ok(request) => request.error(AuthzErrorCode::InvalidRequest, PAR_REQUIRED),
            Err(
                AuthorizeError::Redirect(e)
                | AuthorizeError::ScopeBeyondRegistration { error: e, .. },
            ) => RedirectError {
                error: AuthzErrorCode::InvalidRequest,
                description: PAR_REQUIRED.into(),
                ..e
            },
            Err(e @ AuthorizeError::NoRedirect(_)) => return Ok(Err(refusal(state, client_id, e))),
        };
        return Ok(Err(redirect_error(state, &redirect)));
    }
    let request = match validated {
        Ok(r) => r,
        Err(e) => return Ok(Err(refusal(state, client_id, e))),
    };
    Ok(Ok(Resolved::Start(request, None)))
}

async fn authorize_inner(
    state: &AppState,
    params: &Pairs,
    session: Option<Session>,
    ip: &str,
) -> Result<Response, ApiError> {
    if params.too_many {
        return Ok(pages::error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in request has too many parameters.",
        ));
    }
    let client = find_client(state, params.get("client_id")).await?;
    let (req_id, request, resumed) = match resolve_request(state, params, client.as_ref()).await? {
        Ok(Resolved::Start(request, id)) => (id, request, false),
        Ok(Resolved::Resume(id, request)) => (Some(id), request, true),
        Err(refused) => return Ok(refused),
    };
    if session.is_none() && request.prompt == Prompt::None {
        // The answer ends the sign-in (and with it a pushed request's reference).
        if let Some(id) = req_id.as_deref().filter(|_| resumed) {
            delete_pending(state, id).await?;
        }
        return Ok(redirect_error(
            state,
            &request.error(AuthzErrorCode::LoginRequired, "the user is not signed in"),
        ));
    }
    let req_id = match req_id {
        Some(id) => id,
        None => rand::token::<16>().map_err(ApiError::internal)?,
    };
    if !resumed {
        let now = state.services.clock.now();
        state
            .services
            .flow
            .put_pending(
                &req_id,
                &request,
                now.plus_secs(PENDING_SECS),
                ip,
                MAX_PENDING_PER_IP,
            )
            .await?;
    }
    match session {
        // `prompt=login` asks for the password again even with a session.
        Some(session) if request.prompt != Prompt::Login => {
            continue_with_session(state, &req_id, &request, &session).await
        }
        _ => Ok(see_other(&format!("/login?req={req_id}"))),
    }
}

pub(crate) async fn delete_pending(state: &AppState, req_id: &str) -> Result<(), ApiError> {
    state
        .services
        .flow
        .delete_pending(req_id)
        .await
        .map_err(ApiError::internal)
}

/// After login (or with a session): issue a code at once if consent is remembered,
/// otherwise show the consent page.
pub(crate) async fn continue_with_session(
    state: &AppState,
    req_id: &str,
    request: &AuthorizationRequest,
    session: &Session,
) -> Result<Response, ApiError> {
    let Some(user) = find_user(state, session).await? else {
        return Ok(see_other(&format!("/login?req={req_id}")));
    };
    let granted = request.grantable(&user.role.delegable());
    if granted.is_empty() {
        return nothing_grantable(state, req_id, request).await;
    }
    if consent_remembered(state, request, &user).await? && request.prompt != Prompt::Consent {
        return issue_code(state, req_id, request, &user, session.auth_time).await;
    }
    if request.prompt == Prompt::None {
        delete_pending(state, req_id).await?;
        return Ok(redirect_error(
            state,
            &request.error(
                AuthzErrorCode::ConsentRequired,
                "the user has not consented",
            ),
        ));
    }
    Ok(see_other(&format!("/consent?req={req_id}")))
}

/// Answers a request of which the user's role can grant nothing: forgets it and sends
/// `access_denied` back to the client.
async fn nothing_grantable(
    state: &AppState,
    req_id: &str,
    request: &AuthorizationRequest,
) -> Result<Response, ApiError> {
    delete_pending(state, req_id).await?;
    Ok(redirect_error(
        state,
        &request.error(
            AuthzErrorCode::AccessDenied,
            "the user's role allows none of the requested scopes",
        ),
    ))
}

/// Whether the user already granted this client everything this request would grant.
pub(crate) async fn consent_remembered(
    state: &AppState,
    request: &AuthorizationRequest,
    user: &User,
) -> Result<bool, ApiError> {
    let granted = request.grantable(&user.role.delegable());
    Ok(state
        .services
        .flow
        .find_consent(&user.id, &request.client_id)
        .await?
        .is_some_and(|s| granted.is_subset(&s)))
}

pub(crate) async fn find_user(
    state: &AppState,
    session: &Session,
) -> Result<Option<User>, ApiError> {
    state
        .services
        .users
        .find_user(&session.user_id)
        .await
        .map_err(ApiError::internal)
}

pub(crate) async fn issue_code(
    state: &AppState,
    req_id: &str,
    request: &AuthorizationRequest,
    user: &User,
    auth_time: UnixTime,
) -> Result<Response, ApiError> {
    let scope = request.grantable(&user.role.delegable());
    if scope.is_empty() {
        // A code for nothing would be a token for nothing: refuse (the callers check
        // first; this keeps it true whatever the path).
        return nothing_grantable(state, req_id, request).await;
    }
    let now = state.services.clock.now();
    let (code, code_hash) = flow::new_code().map_err(ApiError::internal)?;
    let grant = CodeGrant {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        user_id: user.id.clone(),
        scope,
        nonce: request.nonce.clone(),
        auth_time,
        expires_at: now.plus_secs(state.services.profile.code_lifetime_secs()),
        dpop_jkt: request.dpop_jkt.clone(),
    };
    state.services.flow.insert_code(&code_hash, &grant).await?;
    delete_pending(state, req_id).await?;
    tracing::info!(client_id = %grant.client_id, user_id = %grant.user_id, scope = %grant.scope, "authorization code issued");
    let issuer = state.services.policy.issuer.as_str();
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &request.state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    Ok(see_other(&with_params(&request.redirect_uri, &params)))
}

/// The pending authorization request `req_id` (the `req` of the login and consent forms),
/// if it exists and has not expired. Its client id goes on the handler's span.
pub(crate) async fn pending(
    state: &AppState,
    req_id: Option<&str>,
) -> Result<Option<(String, AuthorizationRequest)>, ApiError> {
    let Some(id) = req_id.filter(|r| r.len() <= 64) else {
        return Ok(None);
    };
    let found = state
        .services
        .flow
        .get_pending(id, state.services.clock.now())
        .await?;
    if let Some(r) = &found {
        tracing::Span::current().record("client_id", r.client_id.as_str());
    }
    Ok(found.map(|r| (id.to_owned(), r)))
}

pub(crate) fn expired_page() -> Response {
    pages::error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in request has expired or was already answered.",
    )
}

pub(crate) async fn client_name(state: &AppState, id: &ClientId) -> Result<String, ApiError> {
    Ok(state
        .services
        .clients
        .find_client(id)
        .await?
        .map(|c| c.name.as_str().to_owned())
        .unwrap_or_else(|| id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_params_are_appended_and_encoded() {
        assert_eq!(
            with_params("https://a.example/cb", &[("code", "x y"), ("state", "s&t")]),
            "https://a.example/cb?code=x+y&state=s%26t"
        );
        assert_eq!(
            with_params("https://a.example/cb?v=1", &[("code", "c")]),
            "https://a.example/cb?v=1&code=c"
        );
    }
}
