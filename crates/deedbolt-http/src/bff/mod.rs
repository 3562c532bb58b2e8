//! The backend-for-frontend (BFF): browser apps sign in and call the API through it, and
//! tokens never reach JavaScript.
//!
//! - `GET /bff/login` starts authorization code + PKCE (S256) with a fresh single-use
//!   `state` and `nonce`. What the callback needs (state, nonce, PKCE verifier, the page
//!   to return to, the expiry: 10 minutes) is kept in the browser that started the
//!   sign-in, sealed in the flow cookie, not on the server: anonymous requests cannot
//!   fill a server-side table, and any instance can finish a sign-in another began.
//! - `GET /bff/callback` checks `iss` (RFC 9207), that the state is one of the flow
//!   cookie's (login CSRF, RFC 6749 §10.12), and that it was not used before, redeems the
//!   code, verifies the ID token (signature and nonce) and sets the session cookie.
//! - `GET /bff/session` tells the app whether it is signed in and gives it the CSRF token
//!   (never a token); a session whose tokens were revoked (logout, reuse detection, an
//!   operator) is not signed in.
//! - `/bff/api/*` forwards to `/api/*` with the access token, refreshing it shortly before
//!   it expires; unsafe methods need the CSRF token in `X-CSRF-Token` (and a same-origin
//!   `Origin`, when the browser sends one).
//! - `POST /bff/logout` revokes the refresh token (and with it its family's access tokens)
//!   and the access token, and clears the cookie.
//!
//! The session is stateless: the tokens are sealed into the session cookie with
//! AES-256-GCM ([`deedbolt_client::Sealer`]: a random 96-bit nonce per seal, keys from
//! configuration, the first sealing and all opening, so keys rotate without signing anyone
//! out). The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/bff` and, when the issuer is
//! https, `Secure` and named `__Secure-deedbolt_bff`.
//!
//! # The flow cookie
//!
//! Sealed with the same keys under its own context (`deedbolt-bff-flow-v1`), so neither
//! cookie opens as the other. It holds the browser's last [`MAX_PARALLEL_FLOWS`] pending
//! sign-ins (several tabs may sign in at once; starting another drops the oldest), each
//! with its expiry. It is `HttpOnly`, `Path=/bff` (`/bff/login` reads it to add a flow,
//! `/bff/callback` to finish one) and `SameSite=Lax`, not `Strict`: the callback is a
//! top-level redirect from the authorization server, and when the chain of redirects
//! began on another site (a link to `/bff/login`, a user already signed in at the
//! authorization server) browsers treat it as cross-site and would withhold a `Strict`
//! cookie. `Lax` is still sent only on top-level GET navigations.
//!
//! A state is single use: the callback removes its flow from the cookie (answering with
//! the rest), and remembers the state as spent until it would have expired, so a saved
//! copy of the cookie cannot finish the sign-in twice on this instance. That memory
//! never refuses a sign-in: full, it forgets the oldest states, and a replay it forgot
//! (or one sent to another instance) reaches the token endpoint with a redeemed code,
//! which is refused there (RFC 6749 §4.1.2). The BFF is an ordinary confidential client of this server: it talks to
//! the token, revocation and API endpoints over the loopback listener with
//! [`deedbolt_client::OAuthClient`].

pub mod session;

pub use session::{
    Bff, BffError, BffSettings, CSRF_HEADER, DEFAULT_REFRESH_BEFORE, DEFAULT_SCOPE, FLOW_COOKIE,
    FLOW_TTL, MAX_PARALLEL_FLOWS, SESSION_COOKIE,
};

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, ORIGIN, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use deedbolt_client::{ClientError, PkcePair, TokenTypeHint};

use serde_json::json;

use self::session::{unix_now, Flow, Session, COOKIE_PATH, MAX_RETURN_TO};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::cookies::SameSite;
use crate::web::csrf::constant_time_eq;
use crate::web::form::{read_body, MAX_BODY_BYTES};
use crate::web::pages;

fn clear_session(state: &AppState) -> HeaderValue {
    state
        .cookies
        .set(SESSION_COOKIE, "", COOKIE_PATH, Some(0), SameSite::Strict)
}

fn session_cookie(state: &AppState, sealed: &str) -> HeaderValue {
    state
        .cookies
        .set(SESSION_COOKIE, sealed, COOKIE_PATH, None, SameSite::Strict)
}

fn bff(state: &AppState) -> Result<&Bff, ApiError> {
    state.bff.as_deref().ok_or(ApiError::NotFound(
        "the backend-for-frontend is not configured",
    ))
}

fn no_store(mut r: Response) -> Response {
    crate::web::no_store::no_store(r.headers_mut());
    r
}

fn session_over(state: &AppState) -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "not_signed_in", "error_description": "sign in again at /bff/login"})),
    )
        .into_response();
    r.headers_mut().append(SET_COOKIE, clear_session(state));
    no_store(r)
}

fn csrf_refused() -> Response {
    no_store(
        (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "csrf_failed", "error_description": "missing or wrong X-CSRF-Token, or a cross-origin request"})),
        )
            .into_response(),
    )
}

/// The CSRF defence for unsafe methods: the session's token in `X-CSRF-Token`, and an
/// `Origin` (when the browser sends one) equal to ours. The session cookie is also
/// `SameSite=Strict`.
fn csrf_ok(bff: &Bff, headers: &HeaderMap, session: &Session) -> bool {
    if let Some(origin) = headers.get(ORIGIN) {
        if origin.to_str().ok() != Some(bff.origin.as_str()) {
            return false;
        }
    }
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| constant_time_eq(t, &session.csrf))
}

/// A local path under `/app` to return to after signing in (never another origin, never
/// outside `/app`): plain segments only (no dot segments, no percent-encoding, which a
/// browser could turn into `..`), and an optional query of plain characters.
fn return_to(raw: Option<&str>) -> String {
    let target = raw
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "return_to")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| "/app".to_owned());
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target.as_str(), None),
    };
    let plain_segment = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    };
    let path_ok = target.len() <= MAX_RETURN_TO
        && (path == "/app"
            || path
                .strip_prefix("/app/")
                .is_some_and(|rest| rest.is_empty() || rest.split('/').all(plain_segment)));
    let query_ok = query.is_none_or(|q| {
        q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~=&".contains(&b))
    });
    if path_ok && query_ok {
        target
    } else {
        "/app".to_owned()
    }
}

/// `GET /bff/login`: starts a sign-in (`?return_to=/app/...` to come back elsewhere).
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let bff = bff(&state)?;
    let now = unix_now();
    let pkce = PkcePair::generate().map_err(ApiError::internal)?;
    let flow = Flow {
        state: deedbolt_core::rand::token::<32>().map_err(ApiError::internal)?,
        nonce: deedbolt_core::rand::token::<32>().map_err(ApiError::internal)?,
        pkce,
        return_to: return_to(raw.as_deref()),
        exp: now + FLOW_TTL.as_secs(),
    };
    let url = bff.client.authorization_url(
        &bff.redirect_uri,
        &bff.scope,
        &flow.state,
        Some(&flow.nonce),
        &flow.pkce,
    );
    // This browser's other sign-ins in progress (other tabs) stay; the oldest goes when
    // there are too many.
    let mut flows = bff.open_flows(state.cookies, &headers, now);
    flows.push(flow);
    let excess = flows.len().saturating_sub(MAX_PARALLEL_FLOWS);
    flows.drain(..excess);
    let location = HeaderValue::from_str(url.as_str()).map_err(ApiError::internal)?;
    let mut r = (StatusCode::FOUND, [(LOCATION, location)]).into_response();
    r.headers_mut()
        .append(SET_COOKIE, bff.flow_cookie(state.cookies, &flows, now)?);
    Ok(no_store(r))
}

/// A failed sign-in's page; `flows` is the flow cookie to leave behind (the failed
/// flow removed), if it changes.
fn callback_failed(status: StatusCode, message: &str, flows: Option<HeaderValue>) -> Response {
    let mut r = pages::page(
        status,
        "Sign-in failed",
        &format!(
            "<h1>Sign-in failed</h1><p>{}</p><p><a href=\"/app\">Back to the app</a></p>",
            pages::escape(message)
        ),
    );
    if let Some(cookie) = flows {
        r.headers_mut().append(SET_COOKIE, cookie);
    }
    no_store(r)
}

/// `GET /bff/callback`: finishes a sign-in.
#[tracing::instrument(skip_all)]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let bff = bff(&state)?;
    let now = unix_now();
    let mut flows = bff.open_flows(state.cookies, &headers, now);
    let raw = raw.as_deref().unwrap_or("");
    let response = match bff.client.parse_callback(raw) {
        Ok(r) => r,
        Err(ClientError::Authorization { error, .. }) => {
            // The user declined, or the server refused the request: spend the flow.
            let returned = form_urlencoded::parse(raw.as_bytes())
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let before = flows.len();
            flows.retain(|f| !constant_time_eq(&f.state, &returned));
            let cookie = (flows.len() != before)
                .then(|| bff.flow_cookie(state.cookies, &flows, now))
                .transpose()?;
            let message = if error == "access_denied" {
                "You declined the sign-in.".to_owned()
            } else {
                format!("The authorization server answered `{error}`.")
            };
            return Ok(callback_failed(StatusCode::BAD_REQUEST, &message, cookie));
        }
        Err(e) => {
            tracing::info!(error = %e, "BFF callback refused");
            return Ok(callback_failed(
                StatusCode::BAD_REQUEST,
                "The sign-in response was malformed or came from the wrong server.",
                None,
            ));
        }
    };
    // The browser that comes back must be the one that started the flow (login CSRF):
    // the state must be one of its flow cookie's. The flow is spent whatever happens next.
    let Some(at) = flows
        .iter()
        .position(|f| constant_time_eq(&f.state, &response.state))
    else {
        return Ok(callback_failed(
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser, or took longer than 10 minutes. \
             Start again.",
            None,
        ));
    };
    let pending = flows.remove(at);
    let rest = bff.flow_cookie(state.cookies, &flows, now)?;
    if !bff.spent.spend(&pending.state, pending.exp, now) {
        return Ok(callback_failed(
            StatusCode::BAD_REQUEST,
            "This sign-in link was already used. Start again.",
            Some(rest),
        ));
    }
    let mut tokens = match bff
        .client
        .exchange_code(response.code.expose(), &bff.redirect_uri, &pending.pkce)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "BFF code exchange failed");
            return Ok(callback_failed(
                StatusCode::BAD_GATEWAY,
                "The sign-in could not be completed. Start again.",
                Some(rest),
            ));
        }
    };
    let Some(id_token) = tokens.id_token.take() else {
        return Ok(callback_failed(
            StatusCode::BAD_GATEWAY,
            "The sign-in server sent no ID token (the app must request the openid scope).",
            Some(rest),
        ));
    };
    let claims = match bff
        .client
        .verify_id_token(&id_token, &pending.nonce, SystemTime::now())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "BFF ID token refused");
            if let Some(r) = &tokens.refresh_token {
                let _ = bff.client.revoke(r, TokenTypeHint::RefreshToken).await;
            }
            return Ok(callback_failed(
                StatusCode::BAD_GATEWAY,
                "The sign-in could not be verified. Start again.",
                Some(rest),
            ));
        }
    };
    // OIDC Core §5.4: with an access token issued, profile claims come from UserInfo,
    // whose `sub` must be the ID token's (§5.3.2).
    let name = match bff.userinfo_name(&tokens, &claims.sub).await {
        Ok(name) => name,
        Err(e) => {
            tracing::warn!(error = %e, "BFF could not read UserInfo; signing in without a name");
            None
        }
    };
    let session = Session {
        tokens,
        sub: claims.sub.clone(),
        name,
        csrf: deedbolt_core::rand::token::<32>().map_err(ApiError::internal)?,
    };
    let sealed = bff.seal_session(&session)?;
    let location = HeaderValue::from_str(&pending.return_to).map_err(ApiError::internal)?;
    let mut r = (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response();
    r.headers_mut()
        .append(SET_COOKIE, session_cookie(&state, &sealed));
    r.headers_mut().append(SET_COOKIE, rest);
    tracing::info!(sub = %session.sub, "BFF session started");
    Ok(no_store(r))
}

/// `GET /bff/session`: whether the browser is signed in, who as, and the CSRF token for
/// unsafe requests. Never a token.
///
/// A cookie that opens is not enough: its tokens are refreshed if they expire soon and
/// the access token is checked like the API checks it (signature, expiry, revocation),
/// so a copy of a cookie kept from before a logout, or a session revoked by reuse
/// detection or an operator, is not signed in (and the cookie is cleared).
#[tracing::instrument(skip_all)]
pub async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bff = bff(&state)?;
    let signed_out = || Json(json!({"authenticated": false, "login_url": "/bff/login"}));
    let Some(session) = bff.open_session(state.cookies, &headers) else {
        return Ok(no_store(signed_out().into_response()));
    };
    let live = match bff.fresh_tokens(&session).await? {
        Some(tokens) => state
            .guard
            .verifier()
            .check(tokens.access_token.expose())
            .is_ok()
            .then_some(tokens),
        None => None,
    };
    let Some(tokens) = live else {
        let mut r = signed_out().into_response();
        r.headers_mut().append(SET_COOKIE, clear_session(&state));
        return Ok(no_store(r));
    };
    let refreshed = tokens.access_token != session.tokens.access_token;
    let session = Session { tokens, ..session };
    let renewed = refreshed.then(|| bff.seal_session(&session)).transpose()?;
    let mut r = Json(json!({
        "authenticated": true,
        "sub": session.sub,
        "name": session.name,
        "scope": session.tokens.scope,
        "csrf_token": session.csrf,
    }))
    .into_response();
    if let Some(sealed) = renewed {
        r.headers_mut()
            .append(SET_COOKIE, session_cookie(&state, &sealed));
    }
    Ok(no_store(r))
}

/// `POST /bff/logout`: revokes the session's tokens and clears the cookie.
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bff = bff(&state)?;
    let Some(session) = bff.open_session(state.cookies, &headers) else {
        let mut r = StatusCode::NO_CONTENT.into_response();
        r.headers_mut().append(SET_COOKIE, clear_session(&state));
        return Ok(no_store(r));
    };
    if !csrf_ok(bff, &headers, &session) {
        return Ok(csrf_refused());
    }
    // The refresh token first: revoking it ends its whole family, including every access
    // token issued from it; then the access token itself, in case the family is gone.
    if let Some(r) = &session.tokens.refresh_token {
        if let Err(e) = bff.client.revoke(r, TokenTypeHint::RefreshToken).await {
            tracing::warn!(error = %e, "BFF logout: refresh token revocation failed");
            return Err(ApiError::internal(e));
        }
    }
    if let Err(e) = bff
        .client
        .revoke(&session.tokens.access_token, TokenTypeHint::AccessToken)
        .await
    {
        tracing::warn!(error = %e, "BFF logout: access token revocation failed");
        return Err(ApiError::internal(e));
    }
    tracing::info!(sub = %session.sub, "BFF session ended by logout");
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().append(SET_COOKIE, clear_session(&state));
    Ok(no_store(r))
}

/// The part of `/bff/api/...` after `/bff/api`, if it is a plain path: segments of
/// unreserved characters only, no dot segments, no encoded characters (which could hide
/// `..` or `/`). The API's own paths never need more.
fn api_path(uri_path: &str) -> Option<&str> {
    let rest = uri_path.strip_prefix("/bff/api")?;
    let plain = rest.starts_with('/')
        && rest[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        });
    plain.then_some(rest)
}

/// `/bff/api/*`: the same request to `/api/*` with the session's access token.
#[tracing::instrument(skip_all)]
pub async fn api(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let bff = bff(&state)?;
    let (parts, body) = request.into_parts();
    let Some(path) = api_path(parts.uri.path()) else {
        return Err(ApiError::NotFound("no such API path"));
    };
    let Some(session) = bff.open_session(state.cookies, &parts.headers) else {
        return Ok(session_over(&state));
    };
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && !csrf_ok(bff, &parts.headers, &session) {
        return Ok(csrf_refused());
    }
    let Some(tokens) = bff.fresh_tokens(&session).await? else {
        return Ok(session_over(&state));
    };
    let refreshed = tokens.access_token != session.tokens.access_token;
    let body = read_body(&parts.headers, body).await?;
    let mut url = format!("{}/api{path}", bff.api_base);
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let method =
        Method::from_bytes(parts.method.as_str().as_bytes()).map_err(ApiError::internal)?;
    let mut req = bff
        .http
        .request(method, &url)
        .bearer_auth(tokens.access_token.expose());
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        req = req.header(CONTENT_TYPE.as_str(), ct.as_bytes());
    }
    if !body.is_empty() {
        req = req.body(body);
    }
    let upstream = req.send().await.map_err(ApiError::internal)?;
    let status = StatusCode::from_u16(upstream.status().as_u16()).map_err(ApiError::internal)?;
    if status == StatusCode::UNAUTHORIZED {
        // The token was revoked (logout elsewhere, reuse detection, an operator): the
        // session is over.
        return Ok(session_over(&state));
    }
    let content_type = upstream.headers().get(CONTENT_TYPE.as_str()).cloned();
    let location = upstream
        .headers()
        .get(LOCATION.as_str())
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.strip_prefix("/api/"))
        .map(|rest| format!("/bff/api/{rest}"));
    // Read with the cap applied while reading, so an oversized answer is never held whole.
    let mut upstream = upstream;
    let mut bytes = Vec::new();
    while let Some(chunk) = upstream.chunk().await.map_err(ApiError::internal)? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES * 16 {
            return Err(ApiError::internal(std::io::Error::other(
                "API response too large to forward",
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    if let Some(ct) = content_type {
        if let Ok(v) = HeaderValue::from_bytes(ct.as_bytes()) {
            r.headers_mut().insert(CONTENT_TYPE, v);
        }
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(LOCATION, l);
    }
    if refreshed {
        let renewed = Session { tokens, ..session };
        let sealed = bff.seal_session(&renewed)?;
        r.headers_mut()
            .append(SET_COOKIE, session_cookie(&state, &sealed));
    }
    Ok(no_store(r))
}

/// The demo app's content security policy: its own script and style only.
const APP_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(APP_CSP)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `GET /app`: the demo app (it uses only the BFF); without a BFF configured, a page
/// saying so and how to turn it on.
#[tracing::instrument(skip_all)]
pub async fn app_page(State(state): State<AppState>) -> Response {
    if state.bff.is_none() {
        return pages::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Demo app not enabled",
            "<h1>The demo app is not enabled on this server</h1>\
             <p>It needs its sign-in settings, which this server was started without.</p>\
             <p class=\"muted\">Operators: run <code>deedbolt serve --demo</code> to seed a demo \
             portfolio and enable the app, or configure an existing client with \
             <code>--bff-client-id</code>, <code>DEEDBOLT_BFF_CLIENT_SECRET</code> and \
             <code>DEEDBOLT_BFF_COOKIE_KEYS</code>.</p><p><a href=\"/\">Home</a></p>",
        );
    }
    asset(
        "text/html; charset=utf-8",
        include_str!("../../assets/app/index.html"),
    )
}

/// `GET /app/app.js`.
#[tracing::instrument(skip_all)]
pub async fn app_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app/app.js"),
    )
}

/// `GET /app/app.css`.
#[tracing::instrument(skip_all)]
pub async fn app_style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/app/app.css"),
    )
}

/// The BFF's and the demo app's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/bff/login", get(login))
        .route("/bff/callback", get(callback))
        .route("/bff/session", get(session))
        .route("/bff/logout", post(logout))
        .route("/bff/api/{*path}", any(api))
        .route("/app", get(app_page))
        .route("/app/app.js", get(app_script))
        .route("/app/app.css", get(app_style))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_api_paths_are_forwarded() {
        assert_eq!(
            api_path("/bff/api/tenants/1/ledger"),
            Some("/tenants/1/ledger")
        );
        for bad in [
            "/bff/api/../token",
            "/bff/api/%2e%2e/token",
            "/bff/api/tenants/..",
            "/bff/api//admin",
            "/bff/api",
            "/bff/apix/y",
            "/bff/api/a%2Fb",
        ] {
            assert_eq!(api_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn return_to_stays_in_the_app() {
        assert_eq!(
            return_to(Some("return_to=%2Fapp%2Frequests")),
            "/app/requests"
        );
        for bad in [
            "return_to=https%3A%2F%2Fevil.example",
            "return_to=%2F%2Fevil.example",
            "return_to=%2Fapp%2F%2Fevil.example",
            "return_to=%2Fadmin",
            "return_to=%2Fapp%5C..",
            "return_to=%2Fapp%2F..%2Fadmin",
            "return_to=%2Fapp%2F%252e%252e%2Fadmin",
            "return_to=%2Fapp%2F.%2Fx",
            "return_to=%2Fapp%3Fx%3D%2F%2Fevil",
        ] {
            assert_eq!(return_to(Some(bad)), "/app", "{bad}");
        }
        assert_eq!(return_to(None), "/app");
        assert_eq!(
            return_to(Some("return_to=%2Fapp%2F%3Ftab%3Dmine")),
            "/app/?tab=mine"
        );
    }
}
