//! The login form of the browser flow (`/login`) and `/logout`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use deedbolt_core::audit::AuditKind;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::Params as _;
use deedbolt_core::rand;
use deedbolt_core::user::{Email, Password, User};

use crate::error::ApiError;
use crate::oauth::authorize::{client_name, expired_page, pending, PENDING_SECS};
use crate::oauth::session::{browser_record, current_session, start_session, SESSION_COOKIE};
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::cookies::SameSite;
use crate::web::csrf::{constant_time_eq, csrf_failed, hash};
use crate::web::form::{read_form, Pairs};
use crate::web::pages::{self, see_other};

const CSRF_COOKIE: &str = "deedbolt_csrf";

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
        state
            .cookies
            .set_root(CSRF_COOKIE, &csrf, PENDING_SECS, SameSite::Strict),
    );
    Ok(response)
}

/// `GET /login?req=…`
#[tracing::instrument(skip_all, fields(client_id))]
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
        Ok(email) => state.services.users.find_user_by_email(&email).await?,
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
        state.cookies.find(headers, csrf_cookie, "/"),
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
        .await?;
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
#[tracing::instrument(skip_all, fields(client_id))]
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
    let ip = client_ip(peer, &headers, &state.services.trusted_proxies).to_string();
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

/// `POST /logout`: ends the session (CSRF-checked).
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(&headers, body).await?;
    let Some(value) = state.cookies.find(&headers, SESSION_COOKIE, "/") else {
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
    state.services.flow.delete_session(&session_hash).await?;
    let mut response = pages::page(StatusCode::OK, "Signed out", "<h1>You are signed out</h1>");
    response.headers_mut().append(
        SET_COOKIE,
        state.cookies.set_root(SESSION_COOKIE, "", 0, SameSite::Lax),
    );
    Ok(response)
}
