//! The login session of the browser flow: its cookie, its lookup, and how it starts.

use axum::http::header::SET_COOKIE;
use axum::http::HeaderMap;
use axum::response::Response;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ports::Session;
use deedbolt_core::rand;
use deedbolt_core::user::User;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::cookies::SameSite;
use crate::web::csrf::hash;

/// How long a login session lasts.
pub(crate) const SESSION_SECS: i64 = 8 * 3600;

pub(crate) const SESSION_COOKIE: &str = "deedbolt_session";

pub(crate) async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, ApiError> {
    let Some(value) = state.cookies.find(headers, SESSION_COOKIE, "/") else {
        return Ok(None);
    };
    state
        .services
        .flow
        .find_session(&hash(value), state.services.clock.now())
        .await
        .map_err(ApiError::internal)
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
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    if let Some(session) = state.cookies.find(headers, SESSION_COOKIE, "/") {
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
        .await?;
    // SameSite=Lax, not Strict: the session must be sent when the client app sends the
    // user back to /authorize by a cross-site top-level navigation; with Strict the
    // browser would withhold it and every authorization would ask for the password again.
    // Lax still withholds it from cross-site POSTs, and every form here also checks a
    // CSRF token.
    response.headers_mut().append(
        SET_COOKIE,
        state
            .cookies
            .set_root(SESSION_COOKIE, &session_value, SESSION_SECS, SameSite::Lax),
    );
    response.headers_mut().append(
        SET_COOKIE,
        state.cookies.set_root(csrf_cookie, "", 0, SameSite::Strict),
    );
    Ok(())
}
