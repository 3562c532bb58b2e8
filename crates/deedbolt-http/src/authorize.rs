//! The authorization endpoint and the browser side of the code flow: `/authorize`, the
//! login form, the consent page, logout (RFC 6749 §4.1, RFC 7636, RFC 9207, OIDC Core §3.1).
//!
//! A validated request is stored server-side under a random id (`req`) for ten minutes
//! while the user logs in and consents; the forms carry only that id and a CSRF token.
//!
//! Anyone can send authorization requests, so what one sender can cost is bounded: the
//! requests are rate-limited per client IP (`--rate-limit-authorize`; over it a 429 page,
//! never a redirect), each IP holds at most [`MAX_PENDING_PER_IP`] pending requests (a new
//! one replaces its oldest), and requests without a signed-in user are audited as a sample
//! (at most one per IP per minute) rather than one audit row per hit.

use std::borrow::Cow;
use std::net::SocketAddr;

use aws_lc_rs::digest;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::client::Client;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{
    self, AuthorizationRequest, AuthorizeError, AuthzErrorCode, CodeGrant, Params, Prompt,
    RedirectError,
};
use deedbolt_core::ids::ClientId;
use deedbolt_core::ports::Session;
use deedbolt_core::rand;
use deedbolt_core::user::{Email, Password, User};

use crate::error::ApiError;
use crate::pages;
use crate::state::AppState;
use crate::token::{has_content_type, read_body};

/// How long a pending authorization request waits for the user.
pub(crate) const PENDING_SECS: i64 = 600;
/// How long a login session lasts.
pub(crate) const SESSION_SECS: i64 = 8 * 3600;
pub(crate) const SESSION_COOKIE: &str = "deedbolt_session";
const CSRF_COOKIE: &str = "deedbolt_csrf";
/// The most parameters a query or form may carry; more is refused, never truncated.
pub(crate) const MAX_PARAMS: usize = 64;
/// The most pending authorization requests one client IP holds at once; a new request
/// beyond this replaces that IP's oldest. Generous for a shared NAT (each pending request
/// is one sign-in in progress, for at most [`PENDING_SECS`]), tiny for the table.
pub const MAX_PENDING_PER_IP: usize = 64;
/// Anonymous authorization requests are audited as a sample: at most this many per client
/// IP per [`AUDIT_SAMPLE_WINDOW_SECS`] (requests of a signed-in user always are).
const AUDIT_SAMPLE_PER_IP: u32 = 1;
const AUDIT_SAMPLE_WINDOW_SECS: u32 = 60;

/// Query or form parameters, each at most once.
pub(crate) struct Pairs {
    pub(crate) pairs: Vec<(String, String)>,
    pub(crate) duplicate: Option<String>,
    /// More than [`MAX_PARAMS`] parameters were sent (the rest were not read): the request
    /// must be refused, since a dropped parameter could be the one that mattered.
    pub(crate) too_many: bool,
}

impl Pairs {
    pub(crate) fn parse(raw: &[u8]) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut duplicate = None;
        let mut too_many = false;
        for (i, (k, v)) in form_urlencoded::parse(raw).enumerate() {
            if i == MAX_PARAMS {
                too_many = true;
                break;
            }
            if pairs.iter().any(|(seen, _)| *seen == k) {
                duplicate.get_or_insert_with(|| k.to_string());
                continue;
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Pairs {
            pairs,
            duplicate,
            too_many,
        }
    }

    /// Whether a form must be refused as malformed: a repeated parameter, or too many.
    pub(crate) fn malformed(&self) -> bool {
        self.duplicate.is_some() || self.too_many
    }
}

impl Params for Pairs {
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(crate) fn hash(value: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, value.as_bytes()).as_ref());
    out
}

pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(LOCATION, v)]).into_response(),
        Err(_) => pages::error_page(StatusCode::BAD_REQUEST, "The redirect address is invalid."),
    }
}

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

fn redirect_error(state: &AppState, e: &RedirectError) -> Response {
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

pub(crate) async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, ApiError> {
    let Some(value) = request_cookie(state, headers, SESSION_COOKIE, "/") else {
        return Ok(None);
    };
    state
        .services
        .flow
        .find_session(&hash(value), state.services.clock.now())
        .await
        .map_err(ApiError::internal)
}

pub(crate) fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    max_age: i64,
    same_site: &str,
) -> HeaderValue {
    set_cookie_at(state, name, value, "/", Some(max_age), same_site)
}

/// The name cookie `name` with `path` has on the wire. On an https issuer it carries a
/// prefix browsers enforce, so a sibling subdomain or a plain-http page cannot plant or
/// overwrite it: `__Host-` for `Path=/` cookies (`Secure`, `Path=/`, no `Domain`: bound
/// to this exact host), `__Secure-` for the others, since `__Host-` requires `Path=/`
/// (still `Secure`-only, so no plain-http response can set it). Plain names on a
/// plain-http issuer (loopback development), where browsers refuse prefixed cookies.
pub(crate) fn cookie_name(state: &AppState, name: &str, path: &str) -> String {
    match (state.secure_cookies, path) {
        (false, _) => name.to_owned(),
        (true, "/") => format!("__Host-{name}"),
        (true, _) => format!("__Secure-{name}"),
    }
}

/// The value of cookie `name` (set with `path`) in the request, under its wire name
/// ([`cookie_name`]); an unprefixed copy on an https issuer is ignored.
pub(crate) fn request_cookie<'a>(
    state: &AppState,
    headers: &'a HeaderMap,
    name: &str,
    path: &str,
) -> Option<&'a str> {
    cookie(headers, &cookie_name(state, name, path))
}

/// A `Set-Cookie` value: `HttpOnly`, the given `SameSite` and `Path`, `Max-Age` if given
/// (none: a browser-session cookie), `Secure` when the issuer is https, and the name
/// prefixed there ([`cookie_name`]).
pub(crate) fn set_cookie_at(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<i64>,
    same_site: &str,
) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    let name = cookie_name(state, name, path);
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite={same_site}; Path={path}{age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `GET /authorize`
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

/// An audit record about the browser request in `headers`.
pub(crate) fn browser_record(
    kind: AuditKind,
    success: bool,
    state: &AppState,
    headers: &HeaderMap,
) -> AuditRecord {
    let mut r = AuditRecord::new(kind, success, state.services.clock.now()).user_agent(
        headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    if let Some(session) = request_cookie(state, headers, SESSION_COOKIE, "/") {
        // A short prefix of the session id's hash: correlates records, reveals nothing.
        let h = hash(session);
        r = r.session(
            &h[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        );
    }
    r
}

async fn authorize_with(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    params: Pairs,
) -> Result<Response, ApiError> {
    let ip = crate::limits::client_ip(peer, headers, &state.services.trusted_proxies);
    let ip_key = ip.to_string();
    // First, before any lookup or write: a flood from one IP costs one counter.
    let allowance = match crate::limits::check(
        state,
        "authorize",
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
            crate::limits::limited_headers(policy, limit, retry_after, page.headers_mut());
            return Ok(page);
        }
        Err(e) => return Err(e),
    };
    let session = current_session(state, headers).await?;
    let mut record = browser_record(AuditKind::AuthorizationRequest, true, state, headers).ip(ip);
    if let Some(c) = params.get("client_id") {
        record = record.client(c);
    }
    if let Some(sc) = params.get("scope") {
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
    let request = match AuthorizationRequest::validate(
        params,
        client.as_ref(),
        params.duplicate.as_deref(),
    ) {
        Ok(r) => r,
        Err(AuthorizeError::NoRedirect(message)) => {
            tracing::info!(client_id = ?params.get("client_id"), "authorization request refused without redirect");
            return Ok(pages::error_page(StatusCode::BAD_REQUEST, message));
        }
        Err(AuthorizeError::Redirect(e)) => return Ok(redirect_error(state, &e)),
        Err(AuthorizeError::ScopeBeyondRegistration { error, requested }) => {
            // Only now, with client, redirect URI and PKCE checked, may the request feed
            // the unusual-scope rule (which bounds its own alerts per client).
            if let Some(c) = &client {
                state
                    .services
                    .security
                    .scope_request(
                        c.id.as_str(),
                        c.scopes,
                        requested,
                        state.services.clock.now(),
                    )
                    .await;
            }
            return Ok(redirect_error(state, &error));
        }
    };
    if session.is_none() && request.prompt == Prompt::None {
        return Ok(redirect_error(
            state,
            &request.error(AuthzErrorCode::LoginRequired, "the user is not signed in"),
        ));
    }
    let now = state.services.clock.now();
    let req_id = rand::token::<16>().map_err(ApiError::internal)?;
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
        .await
        .map_err(ApiError::internal)?;
    match session {
        // `prompt=login` asks for the password again even with a session.
        Some(session) if request.prompt != Prompt::Login => {
            continue_with_session(state, &req_id, &request, &session).await
        }
        _ => Ok(see_other(&format!("/login?req={req_id}"))),
    }
}

async fn delete_pending(state: &AppState, req_id: &str) -> Result<(), ApiError> {
    state
        .services
        .flow
        .delete_pending(req_id)
        .await
        .map_err(ApiError::internal)
}

/// After login (or with a session): issue a code at once if consent is remembered,
/// otherwise show the consent page.
async fn continue_with_session(
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
async fn consent_remembered(
    state: &AppState,
    request: &AuthorizationRequest,
    user: &User,
) -> Result<bool, ApiError> {
    let granted = request.grantable(&user.role.delegable());
    Ok(state
        .services
        .flow
        .find_consent(&user.id, &request.client_id)
        .await
        .map_err(ApiError::internal)?
        .is_some_and(|s| granted.is_subset(&s)))
}

async fn find_user(state: &AppState, session: &Session) -> Result<Option<User>, ApiError> {
    state
        .services
        .users
        .find_user(&session.user_id)
        .await
        .map_err(ApiError::internal)
}

async fn issue_code(
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
        expires_at: now.plus_secs(flow::CODE_LIFETIME_SECS),
    };
    state
        .services
        .flow
        .insert_code(&code_hash, &grant)
        .await
        .map_err(ApiError::internal)?;
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

async fn pending(
    state: &AppState,
    req_id: Option<&str>,
) -> Result<Option<(String, AuthorizationRequest)>, ApiError> {
    let Some(id) = req_id.filter(|r| r.len() <= 64) else {
        return Ok(None);
    };
    Ok(state
        .services
        .flow
        .get_pending(id, state.services.clock.now())
        .await
        .map_err(ApiError::internal)?
        .map(|r| (id.to_owned(), r)))
}

fn expired_page() -> Response {
    pages::error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in request has expired or was already answered.",
    )
}

async fn client_name(state: &AppState, id: &ClientId) -> Result<String, ApiError> {
    Ok(state
        .services
        .clients
        .find_client(id)
        .await
        .map_err(ApiError::internal)?
        .map(|c| c.name.as_str().to_owned())
        .unwrap_or_else(|| id.to_string()))
}

fn login_form(
    state: &AppState,
    name: &str,
    req_id: &str,
    email: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    // Double-submit CSRF token for the login form (there is no session yet): a random
    // value in a SameSite=Strict cookie and in the form; both must match on submit.
    let csrf = rand::token::<32>().map_err(ApiError::internal)?;
    let mut response = pages::login(name, req_id, &csrf, email, message, status);
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(state, CSRF_COOKIE, &csrf, PENDING_SECS, "Strict"),
    );
    Ok(response)
}

/// `GET /login?req=…`
pub async fn login_page(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Pairs::parse(raw.as_deref().unwrap_or("").as_bytes());
    let Some((req_id, request)) = pending(&state, params.get("req")).await? else {
        return Ok(expired_page());
    };
    let name = client_name(&state, &request.client_id).await?;
    login_form(&state, &name, &req_id, "", None, StatusCode::OK)
}

pub(crate) async fn read_form(headers: &HeaderMap, body: Body) -> Result<Option<Pairs>, ApiError> {
    if !has_content_type(headers, "application/x-www-form-urlencoded") {
        return Ok(None);
    }
    let body = read_body(headers, body).await?;
    Ok(Some(Pairs::parse(&body)))
}

pub(crate) fn csrf_failed() -> Response {
    pages::error_page(
        StatusCode::FORBIDDEN,
        "The form could not be verified (it may have expired). Go back and try again.",
    )
}

/// Looks up the user by the typed email and verifies the password: `(user if any, ok)`.
///
/// argon2id takes tens of milliseconds of CPU: it runs on the blocking pool, never on the
/// async workers that serve the token endpoint. An unknown user costs the same (a dummy
/// verification), so timing reveals nothing about which accounts exist.
pub(crate) async fn check_password(
    state: &AppState,
    typed: &str,
    password: Password,
) -> Result<(Option<User>, bool), ApiError> {
    let user = match Email::parse(typed) {
        Ok(email) => state
            .services
            .users
            .find_user_by_email(&email)
            .await
            .map_err(ApiError::internal)?,
        Err(_) => None,
    };
    let hasher = state.services.passwords.clone();
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || match stored {
        Some(h) => hasher.verify(&password, &h),
        None => hasher.verify_dummy(&password),
    })
    .await
    .map_err(ApiError::internal)?;
    Ok((user, ok))
}

/// Reads a form protected by a double-submit CSRF token (the `csrf` field must equal the
/// `csrf_cookie` cookie): the form, or the page to answer with instead.
pub(crate) async fn read_csrf_form(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    csrf_cookie: &str,
) -> Result<Result<Pairs, Response>, ApiError> {
    let Some(form) = read_form(headers, body).await? else {
        return Ok(Err(pages::error_page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unexpected form encoding.",
        )));
    };
    let csrf_ok = match (
        request_cookie(state, headers, csrf_cookie, "/"),
        form.get("csrf"),
    ) {
        (Some(c), Some(f)) => constant_time_eq(c, f),
        _ => false,
    };
    if !csrf_ok || form.malformed() {
        return Ok(Err(csrf_failed()));
    }
    Ok(Ok(form))
}

/// Starts a login attempt through the login throttle (shared by every instance when
/// scaled out): `Ok(Err(secs))` when throttled for `secs` more seconds; an unreachable
/// throttle store is a 503.
pub(crate) async fn login_attempt(
    state: &AppState,
    account: &str,
    ip: &str,
    now: UnixTime,
) -> Result<Result<(), i64>, ApiError> {
    let outcome = state
        .services
        .login_throttle
        .attempt(account, ip, now)
        .await
        .map_err(ApiError::internal)?;
    if outcome.is_err() {
        state.services.metrics.rate_limited("login");
    }
    Ok(outcome)
}

/// Un-counts a successful login attempt made at `at`.
pub(crate) async fn login_succeeded(
    state: &AppState,
    account: &str,
    ip: &str,
    at: UnixTime,
) -> Result<(), ApiError> {
    state
        .services
        .login_throttle
        .succeeded(account, ip, at)
        .await
        .map_err(ApiError::internal)
}

/// `POST /login`
pub async fn login_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = match read_csrf_form(&state, &headers, body, CSRF_COOKIE).await? {
        Ok(form) => form,
        Err(page) => return Ok(page),
    };
    let Some((req_id, request)) = pending(&state, form.get("req")).await? else {
        return Ok(expired_page());
    };
    let name = client_name(&state, &request.client_id).await?;
    let typed = form.get("email").unwrap_or("").trim().to_lowercase();
    let password = Password::presented(form.get("password").unwrap_or("").to_owned());
    let now = state.services.clock.now();
    let ip = crate::limits::client_ip(peer, &headers, &state.services.trusted_proxies).to_string();
    if let Err(wait) = login_attempt(&state, &typed, &ip, now).await? {
        let minutes = (wait + 59) / 60;
        tracing::warn!(ip = %ip, "login throttled");
        return login_form(
            &state,
            &name,
            &req_id,
            &typed,
            Some(&format!(
                "Too many failed sign-in attempts. Try again in {minutes} minute(s)."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let (user, ok) = check_password(&state, &typed, password).await?;
    let known_user = user.as_ref().map(|u| u.id.clone());
    let Some(user) = user.filter(|_| ok) else {
        // The attempt was counted by `attempt`, before the password check.
        state.services.security.auth_failure(&ip, now).await;
        let mut record = browser_record(AuditKind::Login, false, &state, &headers)
            .ip(&ip)
            .client(&request.client_id)
            .error("invalid_credentials");
        if let Some(id) = known_user {
            record = record.user(id);
        }
        state.services.audit.record(record).await;
        tracing::info!(ip = %ip, "login failed");
        return login_form(
            &state,
            &name,
            &req_id,
            &typed,
            Some("The email or password is incorrect."),
            StatusCode::UNAUTHORIZED,
        );
    };
    login_succeeded(&state, &typed, &ip, now).await?;
    tracing::info!(user_id = %user.id, "login succeeded");
    state
        .services
        .audit
        .record(
            browser_record(AuditKind::Login, true, &state, &headers)
                .ip(&ip)
                .client(&request.client_id)
                .user(&user.id),
        )
        .await;
    let mut response = see_other(&format!("/consent?req={req_id}"));
    start_session(&state, &user, now, CSRF_COOKIE, &mut response).await?;
    Ok(response)
}

/// Starts a session for `user` after a successful password check: stores it (by the hash
/// of its cookie value), sets the session cookie on `response` and clears the login form's
/// CSRF cookie `csrf_cookie`.
pub(crate) async fn start_session(
    state: &AppState,
    user: &User,
    now: UnixTime,
    csrf_cookie: &str,
    response: &mut Response,
) -> Result<(), ApiError> {
    let session_value = rand::token::<32>().map_err(ApiError::internal)?;
    let session = Session {
        user_id: user.id.clone(),
        auth_time: now,
        csrf: rand::token::<32>().map_err(ApiError::internal)?,
        expires_at: now.plus_secs(SESSION_SECS),
    };
    state
        .services
        .flow
        .create_session(&hash(&session_value), &session)
        .await
        .map_err(ApiError::internal)?;
    // SameSite=Lax, not Strict: the session must be sent when the client app sends the
    // user back to /authorize by a cross-site top-level navigation; with Strict the
    // browser would withhold it and every authorization would ask for the password again.
    // Lax still withholds it from cross-site POSTs, and every form here also checks a
    // CSRF token.
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(state, SESSION_COOKIE, &session_value, SESSION_SECS, "Lax"),
    );
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(state, csrf_cookie, "", 0, "Strict"));
    Ok(())
}

/// `GET /consent?req=…`
pub async fn consent_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Pairs::parse(raw.as_deref().unwrap_or("").as_bytes());
    let Some((req_id, request)) = pending(&state, params.get("req")).await? else {
        return Ok(expired_page());
    };
    let Some(session) = current_session(&state, &headers).await? else {
        return Ok(see_other(&format!("/login?req={req_id}")));
    };
    let Some(user) = find_user(&state, &session).await? else {
        return Ok(see_other(&format!("/login?req={req_id}")));
    };
    let granted = request.grantable(&user.role.delegable());
    if consent_remembered(&state, &request, &user).await? && request.prompt != Prompt::Consent {
        return issue_code(&state, &req_id, &request, &user, session.auth_time).await;
    }
    if granted.is_empty() {
        return continue_with_session(&state, &req_id, &request, &session).await;
    }
    let name = client_name(&state, &request.client_id).await?;
    Ok(pages::consent(
        &name,
        user.email.as_str(),
        granted,
        &req_id,
        &session.csrf,
    ))
}

/// The audit record of a consent decision by `user` on `request`.
fn consent_record(
    success: bool,
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    request: &AuthorizationRequest,
    user: &User,
) -> AuditRecord {
    browser_record(AuditKind::Consent, success, state, headers)
        .ip(ip)
        .client(&request.client_id)
        .user(&user.id)
}

/// `POST /consent`: approve or deny.
pub async fn consent_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let ip = crate::limits::client_ip(peer, &headers, &state.services.trusted_proxies);
    let Some(form) = read_form(&headers, body).await? else {
        return Ok(pages::error_page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unexpected form encoding.",
        ));
    };
    let Some(session) = current_session(&state, &headers).await? else {
        return Ok(csrf_failed());
    };
    let csrf_ok = form
        .get("csrf")
        .is_some_and(|f| constant_time_eq(f, &session.csrf));
    if !csrf_ok || form.malformed() {
        return Ok(csrf_failed());
    }
    let Some((req_id, request)) = pending(&state, form.get("req")).await? else {
        return Ok(expired_page());
    };
    let Some(user) = find_user(&state, &session).await? else {
        return Ok(csrf_failed());
    };
    match form.get("decision") {
        Some("approve") => {
            let granted = request.grantable(&user.role.delegable());
            if granted.is_empty() {
                // Approving nothing: refuse it here, before a consent or a code is stored
                // (a code for no scope used to fail at redemption as corrupt data).
                delete_pending(&state, &req_id).await?;
                tracing::info!(user_id = %user.id, client_id = %request.client_id, "consent with nothing to grant refused");
                state
                    .services
                    .audit
                    .record(
                        consent_record(false, &state, &headers, ip, &request, &user)
                            .error("access_denied")
                            .detail("nothing to grant"),
                    )
                    .await;
                return Ok(pages::error_page(
                    StatusCode::BAD_REQUEST,
                    "There is nothing to allow: your account cannot grant any of the access \
                     this application asked for.",
                ));
            }
            state
                .services
                .flow
                .save_consent(
                    &user.id,
                    &request.client_id,
                    granted,
                    state.services.clock.now(),
                )
                .await
                .map_err(ApiError::internal)?;
            tracing::info!(user_id = %user.id, client_id = %request.client_id, scope = %granted, "consent granted");
            state
                .services
                .audit
                .record(consent_record(true, &state, &headers, ip, &request, &user).scope(granted))
                .await;
            issue_code(&state, &req_id, &request, &user, session.auth_time).await
        }
        Some("deny") => {
            delete_pending(&state, &req_id).await?;
            tracing::info!(user_id = %user.id, client_id = %request.client_id, "consent denied");
            state
                .services
                .audit
                .record(
                    consent_record(false, &state, &headers, ip, &request, &user)
                        .error("access_denied"),
                )
                .await;
            Ok(redirect_error(
                &state,
                &RedirectError {
                    redirect_uri: request.redirect_uri.clone(),
                    state: request.state.clone(),
                    error: AuthzErrorCode::AccessDenied,
                    description: Cow::Borrowed("the user denied the request"),
                },
            ))
        }
        _ => Ok(pages::error_page(
            StatusCode::BAD_REQUEST,
            "Choose Allow or Deny.",
        )),
    }
}

/// `POST /logout`: ends the session (CSRF-checked).
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(&headers, body).await?;
    let Some(value) = request_cookie(&state, &headers, SESSION_COOKIE, "/") else {
        return Ok(pages::page(
            StatusCode::OK,
            "Signed out",
            "<h1>You are signed out</h1>",
        ));
    };
    let session_hash = hash(value);
    if let Some(session) = current_session(&state, &headers).await? {
        let csrf_ok = form
            .as_ref()
            .and_then(|f| f.get("csrf"))
            .is_some_and(|f| constant_time_eq(f, &session.csrf));
        if !csrf_ok {
            return Ok(csrf_failed());
        }
    }
    state
        .services
        .flow
        .delete_session(&session_hash)
        .await
        .map_err(ApiError::internal)?;
    let mut response = pages::page(StatusCode::OK, "Signed out", "<h1>You are signed out</h1>");
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", 0, "Lax"));
    Ok(response)
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

    #[test]
    fn cookies_are_found_among_many() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; deedbolt_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
