//! The consent page of the browser flow (`/consent`): approve or deny what a client asks.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::flow::{
    AuthorizationRequest, AuthzErrorCode, Params as _, Prompt, RedirectError,
};
use deedbolt_core::user::User;

use crate::error::ApiError;
use crate::oauth::authorize::{
    client_name, consent_remembered, continue_with_session, delete_pending, expired_page,
    find_user, issue_code, pending, redirect_error,
};
use crate::oauth::session::{browser_record, current_session};
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::csrf::{constant_time_eq, csrf_failed};
use crate::web::form::{read_form, Pairs};
use crate::web::pages::{self, see_other};

/// `GET /consent?req=…`
#[tracing::instrument(skip_all, fields(client_id))]
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
        &pages::redirect_destination(&request.redirect_uri),
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
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn consent_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let ip = client_ip(peer, &headers, &state.services.trusted_proxies);
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
                .await?;
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
