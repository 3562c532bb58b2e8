//! The admin console, read-only: a JSON API over the audit log and the alerts for a bearer
//! token of an administrator (`GET /admin/api/audit`, `GET /admin/api/alerts`), and a
//! server-rendered dashboard for a browser session of one (`GET /admin`,
//! `POST /admin/login`).
//!
//! An administrator is a user whose role is `admin`, looked up on every request: a demoted
//! user loses access at once, whatever token or session they still hold. Tokens are
//! checked by the guard layer, exactly as for the API (signature, expiry, audience,
//! revocation, DPoP and certificate binding, the same refusals and challenges, DPoP
//! nonces), and must carry the administration scope of the route: `admin:read` for
//! every route here (all of them only read). Being an administrator is not enough: an app
//! the administrator signed in to for something else (say `openid`) does not get to read
//! the security audit log. Only an administrator can delegate the admin scopes, and only
//! to a client registered for them (see `deedbolt_core::scope::Scope::admin`).
//! `admin:write` is defined for routes that change something; there are none yet.
//!
//! The dashboard shows recent alerts, the latest audit records, and a chart of tokens
//! issued and authentication failures per hour, drawn as inline SVG on the server: no
//! JavaScript, every value escaped, and the pages' CSP (which forbids inline `style`
//! attributes, so the chart uses SVG presentation attributes only).

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deedbolt_core::audit::{AuditFilter, AuditKind, AuditRecord};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::Params as _;
use deedbolt_core::ids::UserId;
use deedbolt_core::ports::{Session, StoredAlert};
use deedbolt_core::rand;
use deedbolt_core::scope::Scope;
use deedbolt_core::user::{Password, Role, User};
use deedbolt_guard::Authorized;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::oauth::authorize::PENDING_SECS;
use crate::oauth::login::{check_password, login_attempt, login_succeeded, read_csrf_form};
use crate::oauth::session::{browser_record, current_session, start_session};
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::cookies::SameSite;
use crate::web::form::Pairs;
use crate::web::no_store::no_store;
use crate::web::pages::{self, escape, see_other};

/// The default page size of the admin API.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest page size of the admin API.
pub const MAX_LIMIT: u32 = 500;
/// The double-submit CSRF cookie of the admin login form. Not the `/login` one, so an
/// admin login and an OAuth login open in two tabs do not invalidate each other.
const CSRF_COOKIE: &str = "deedbolt_admin_csrf";
/// Rows of each dashboard table.
const DASHBOARD_ROWS: u32 = 50;
/// Hours in the dashboard chart.
const CHART_HOURS: i64 = 24;
/// The same answer for a wrong password, an unknown email and a non-admin account, so the
/// form reveals neither who exists nor who is an administrator.
const INCORRECT: &str = "The email or password is incorrect.";
/// The description of a refusal of a valid token whose subject is not an administrator.
const NOT_ADMIN: &str = "an administrator is required";

// ---------------------------------------------------------------------------------------
// Who is an administrator
// ---------------------------------------------------------------------------------------

/// The user behind a token or session, if they are an administrator now.
async fn admin_user(state: &AppState, id: &UserId) -> Result<Option<User>, ApiError> {
    Ok(state
        .services
        .users
        .find_user(id)
        .await?
        .filter(|u| u.role == Role::Admin))
}

/// An administrator proven by an access token carrying `admin:read`: the one check of
/// every API endpoint.
///
/// The token itself is checked by the guard, as a [`RequireScopes`] layer for
/// [`AdminToken::REQUIRED`] on each admin API route (see `crate::router`), so the admin API
/// answers exactly as `/api` and `/userinfo` do: `Bearer`, or `DPoP` with its proof (a
/// DPoP-bound token as `Bearer` is refused, RFC 9449 §7.2), the same RFC 6750 §3 and RFC
/// 9449 §7.1 refusals and challenges, and the next `DPoP-Nonce` with every answer to a
/// DPoP request when nonces are required. This extractor then admits only an
/// administrator: a valid token whose subject is not one (client-credentials tokens
/// included: their subject is the client) gets 403 `insufficient_scope`, in the
/// challenge scheme the token came with.
///
/// [`RequireScopes`]: deedbolt_guard::RequireScopes
pub struct AdminToken(pub User);

impl AdminToken {
    /// The scope a token needs for the routes taking this extractor, which only read. A
    /// route that changes something would need [`Scope::AdminWrite`] instead.
    pub const REQUIRED: Scope = Scope::AdminRead;

    /// The guard layer every route taking this extractor sits behind.
    pub fn layer(state: &AppState) -> deedbolt_guard::RequireScopes {
        state
            .guard
            .require(deedbolt_core::scope::ScopeSet::empty().with(Self::REQUIRED))
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not `User`'s Debug: that includes the password hash.
        f.debug_tuple("AdminToken").field(&self.0.id).finish()
    }
}

/// Why a request to the admin API was refused past the guard.
#[derive(Debug)]
pub enum AdminRejection {
    /// A valid token of someone who is not an administrator, answered by
    /// [`Guard::forbid`](deedbolt_guard::Guard::forbid).
    NotAdmin(Response),
    /// The user store failed, or the route lacks its guard layer.
    Internal(ApiError),
}

/// A failure behind the check (the user store) answers as [`ApiError`] does.
impl From<ApiError> for AdminRejection {
    fn from(e: ApiError) -> Self {
        AdminRejection::Internal(e)
    }
}

impl IntoResponse for AdminRejection {
    fn into_response(self) -> Response {
        match self {
            AdminRejection::NotAdmin(response) => response,
            AdminRejection::Internal(e) => e.into_response(),
        }
    }
}

/// The admin API route ran without the guard layer that puts [`Authorized`] in the
/// request: a wiring mistake, refused (fail closed).
#[derive(Debug, thiserror::Error)]
#[error("an admin API route is not behind its guard layer")]
struct MissingGuard;

impl FromRequestParts<AppState> for AdminToken {
    type Rejection = AdminRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(authorized) = parts.extensions.get::<Authorized>().cloned() else {
            return Err(AdminRejection::Internal(ApiError::internal(MissingGuard)));
        };
        let claims = &authorized.claims;
        let not_admin = || {
            AdminRejection::NotAdmin(state.guard.forbid(
                &authorized,
                deedbolt_core::scope::ScopeSet::empty().with(Self::REQUIRED),
                NOT_ADMIN,
            ))
        };
        // A client-credentials token names the client as its subject: never a user.
        if claims.is_client_token() {
            return Err(not_admin());
        }
        let Ok(id) = UserId::parse(&claims.sub) else {
            return Err(not_admin());
        };
        match admin_user(state, &id).await? {
            Some(user) => Ok(AdminToken(user)),
            None => {
                tracing::info!(sub = %claims.sub, client_id = %claims.client_id, "admin API refused a non-admin token");
                Err(not_admin())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The JSON API
// ---------------------------------------------------------------------------------------

/// Query parameters, checked: each known name at most once, unknown names refused (a
/// misspelled filter would otherwise silently return everything).
fn query(raw: Option<&str>, known: &[&str]) -> Result<Pairs, ApiError> {
    let params = Pairs::parse(raw.unwrap_or("").as_bytes());
    if let Some(d) = &params.duplicate {
        return Err(ApiError::BadRequest(format!(
            "parameter `{}` is repeated",
            d.chars().take(40).collect::<String>()
        )));
    }
    if params.too_many {
        return Err(ApiError::BadRequest("too many parameters".into()));
    }
    if let Some((k, _)) = params
        .pairs
        .iter()
        .find(|(k, _)| !known.contains(&k.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "unknown parameter `{}`",
            k.chars().take(40).collect::<String>()
        )));
    }
    Ok(params)
}

/// `limit` (1–500, default 100) and `cursor` (an id from `next_cursor`).
fn page_of(params: &Pairs) -> Result<(u32, Option<i64>), ApiError> {
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
            })?,
    };
    let cursor = match params.get("cursor") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::BadRequest("cursor is not a valid cursor".into()))?,
        ),
    };
    Ok((limit, cursor))
}

/// `{"items": [...], "next_cursor": "<id>" | null}` from up to `limit + 1` items fetched
/// newest first: the extra one only says whether there is a next page.
fn page_response<T: serde::Serialize>(
    mut items: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> i64,
) -> Response {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = more
        .then(|| items.last().map(|i| id(i).to_string()))
        .flatten();
    let mut response = Json(json!({"items": items, "next_cursor": next})).into_response();
    no_store(response.headers_mut());
    response
}

fn bounded_filter(params: &Pairs, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    match params.get(name) {
        Some(v) if v.len() > max => Err(ApiError::BadRequest(format!("{name} is too long"))),
        v => Ok(v.map(str::to_owned)),
    }
}

/// `GET /admin/api/audit?limit=&cursor=&client=&user=&ip=&type=&since=`: audit records,
/// newest first. `since` is in Unix seconds; `type` is a record type such as `login`.
#[tracing::instrument(skip_all)]
pub async fn api_audit(
    State(state): State<AppState>,
    AdminToken(_admin): AdminToken,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query(
        raw.as_deref(),
        &["limit", "cursor", "client", "user", "ip", "type", "since"],
    )?;
    let (limit, cursor) = page_of(&params)?;
    let kind = params
        .get("type")
        .map(|t| {
            t.parse::<AuditKind>()
                .map_err(|_| ApiError::BadRequest("type is not an audit record type".into()))
        })
        .transpose()?;
    let since = params
        .get("since")
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(UnixTime)
                .ok_or_else(|| ApiError::BadRequest("since must be Unix seconds".into()))
        })
        .transpose()?;
    let filter = AuditFilter {
        client_id: bounded_filter(&params, "client", 128)?,
        user_id: bounded_filter(&params, "user", 128)?,
        ip: bounded_filter(&params, "ip", 64)?,
        kind,
        since,
        before_id: cursor,
        after_id: None,
        limit: limit + 1,
    };
    let items = state.services.audit_store.search_audit(&filter).await?;
    Ok(page_response(items, limit, |r: &AuditRecord| r.id))
}

/// `GET /admin/api/alerts?limit=&cursor=`: stored alerts with their delivery state,
/// newest first.
#[tracing::instrument(skip_all)]
pub async fn api_alerts(
    State(state): State<AppState>,
    AdminToken(_admin): AdminToken,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query(raw.as_deref(), &["limit", "cursor"])?;
    let (limit, cursor) = page_of(&params)?;
    let items = state.services.alerts.list_alerts(cursor, limit + 1).await?;
    Ok(page_response(items, limit, |a: &StoredAlert| a.id))
}

/// `GET /admin/api/registration-tokens`: the initial access tokens of dynamic client
/// registration (RFC 7591 §3), oldest first, with their state at this moment: ids, scopes,
/// uses and times only (the tokens themselves are not stored). They are issued and revoked
/// with `deedbolt client registration-token`.
#[tracing::instrument(skip_all)]
pub async fn api_registration_tokens(
    State(state): State<AppState>,
    AdminToken(_admin): AdminToken,
) -> Result<Response, ApiError> {
    let now = state.services.clock.now();
    let items: Vec<Value> = state
        .services
        .registration_tokens
        .list_registration_tokens()
        .await?
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "scope": t.scopes.map(|s| s.to_string()),
                "max_uses": t.max_uses,
                "uses": t.uses,
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "revoked_at": t.revoked_at,
                "state": t.state_at(now),
            })
        })
        .collect();
    let mut response = Json(json!({ "items": items })).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// The dashboard: login
// ---------------------------------------------------------------------------------------

/// The admin stylesheet: a wider page and tables, served like the main one so the CSP
/// needs no inline styles. On a narrow screen (a phone, 390 px) each table row becomes a
/// card of "label value" lines (the labels come from this stylesheet, by column), so the
/// page never scrolls sideways and every value stays readable.
const STYLE: &str = "main:has(> .admin){max-width:72rem}\
.admin header{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;flex-wrap:wrap}\
.admin header h1{margin:0}.admin header form{display:flex;align-items:center;gap:.75rem;flex-wrap:wrap}\
.admin header button{min-width:0;padding:.4rem 1rem}\
.admin table{border-collapse:collapse;width:100%;font-size:.85rem;margin-bottom:2rem}\
.admin th,.admin td{border-bottom:1px solid #d8dde3;padding:.3rem .4rem;text-align:left;vertical-align:top}\
.admin th{background:#f4f6fa}\
.admin td.time{white-space:nowrap}.admin td.wrap{overflow-wrap:anywhere}\
.admin td.num{text-align:right}.admin .fail{color:#a00}.admin .muted{color:#667}\
.admin svg{width:100%;height:auto}.admin .legend span{margin-right:1.5rem;display:inline-block}\
.admin .issued::before,.admin .failed::before{content:\"\";display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem}\
.admin .issued::before{background:#2f6fba}.admin .failed::before{background:#c0392b}\
@media (max-width:40rem){\
.admin table,.admin tbody,.admin tr,.admin td{display:block;width:100%}\
.admin thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%)}\
.admin tr{border:1px solid #d8dde3;border-radius:8px;padding:.4rem .6rem;margin-bottom:.75rem}\
.admin td,.admin td.num{border:0;padding:.15rem 0;text-align:left;white-space:normal;overflow-wrap:anywhere;\
display:grid;grid-template-columns:7.5rem 1fr;gap:.5rem}\
.admin td::before{font-weight:600;color:#5b6475}\
.admin td[colspan]{display:block}.admin td[colspan]::before{content:none}\
.admin #audit td:nth-child(1)::before{content:\"#\"}\
.admin #audit td:nth-child(2)::before{content:\"time (UTC)\"}\
.admin #audit td:nth-child(3)::before{content:\"type\"}\
.admin #audit td:nth-child(4)::before{content:\"outcome\"}\
.admin #audit td:nth-child(5)::before{content:\"client\"}\
.admin #audit td:nth-child(6)::before{content:\"user\"}\
.admin #audit td:nth-child(7)::before{content:\"IP\"}\
.admin #audit td:nth-child(8)::before{content:\"scope\"}\
.admin #audit td:nth-child(9)::before{content:\"error\"}\
.admin #audit td:nth-child(10)::before{content:\"detail\"}\
.admin #alerts td:nth-child(1)::before{content:\"#\"}\
.admin #alerts td:nth-child(2)::before{content:\"time (UTC)\"}\
.admin #alerts td:nth-child(3)::before{content:\"kind\"}\
.admin #alerts td:nth-child(4)::before{content:\"subject\"}\
.admin #alerts td:nth-child(5)::before{content:\"detail\"}\
.admin #alerts td:nth-child(6)::before{content:\"score\"}\
.admin #alerts td:nth-child(7)::before{content:\"recommended action\"}\
.admin #alerts td:nth-child(8)::before{content:\"delivered\"}\
}";

/// `GET /static/admin.css`
#[tracing::instrument(skip_all)]
pub async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/css")),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        STYLE,
    )
        .into_response()
}

fn admin_page(status: StatusCode, title: &str, body: &str) -> Response {
    pages::page(
        status,
        title,
        &format!(
            "<link rel=\"stylesheet\" href=\"/static/admin.css\"><div class=\"admin\">{body}</div>"
        ),
    )
}

/// The login form, with a fresh double-submit CSRF token (there is no session yet): a
/// random value in a SameSite=Strict cookie and in the form; both must match on submit.
fn login_form(
    state: &AppState,
    email: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let csrf = rand::token::<32>().map_err(ApiError::internal)?;
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    // The narrow layout of the other sign-in pages, not the dashboard's.
    let mut response = pages::page(
        status,
        "Admin sign-in",
        &format!(
            "<h1>deedbolt administration</h1>{message}\
             <form method=\"post\" action=\"/admin/login\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"email\">Email</label>\
             <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{email}\">\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <div class=\"actions\"><button type=\"submit\" id=\"login\" class=\"primary\">Sign in</button></div></form>",
            csrf = escape(&csrf),
            email = escape(email),
        ),
    );
    response.headers_mut().append(
        SET_COOKIE,
        state
            .cookies
            .set_root(CSRF_COOKIE, &csrf, PENDING_SECS, SameSite::Strict),
    );
    Ok(response)
}

/// `GET /admin`: the dashboard for an administrator's session, the login form otherwise.
#[tracing::instrument(skip_all)]
pub async fn dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(session) = current_session(&state, &headers).await? else {
        return login_form(&state, "", None, StatusCode::OK);
    };
    match admin_user(&state, &session.user_id).await? {
        Some(admin) => render_dashboard(&state, &admin, &session).await,
        None => login_form(
            &state,
            "",
            Some("Sign in with an administrator account."),
            StatusCode::OK,
        ),
    }
}

/// `POST /admin/login`: like `POST /login` (CSRF, throttle, argon2id off the async
/// workers, audit), but only an administrator gets a session; anyone else gets the same
/// "incorrect" answer as a wrong password.
#[tracing::instrument(skip_all)]
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
    let typed = form.get("email").unwrap_or("").trim().to_lowercase();
    let password = Password::presented(form.get("password").unwrap_or("").to_owned());
    let now = state.services.clock.now();
    let ip = client_ip(peer, &headers, &state.services.trusted_proxies).to_string();
    if let Err(wait) = login_attempt(&state, &typed, &ip, now).await? {
        let minutes = (wait + 59) / 60;
        tracing::warn!(ip = %ip, "admin login throttled");
        return login_form(
            &state,
            &typed,
            Some(&format!(
                "Too many failed sign-in attempts. Try again in {minutes} minute(s)."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let (user, password_ok) = check_password(&state, &typed, password).await?;
    let record = browser_record(AuditKind::Login, false, &state, &headers)
        .ip(&ip)
        .detail("via=admin");
    let user = match user {
        Some(u) if password_ok && u.role == Role::Admin => u,
        other => {
            // The attempt was counted by `attempt`; a non-admin's right password counts
            // as a failure too (this form is not theirs).
            state.services.security.auth_failure(&ip, now).await;
            let mut record = record.error(if password_ok && other.is_some() {
                "not_admin"
            } else {
                "invalid_credentials"
            });
            if let Some(u) = &other {
                record = record.user(&u.id);
            }
            state.services.audit.record(record).await;
            tracing::info!(ip = %ip, "admin login failed");
            return login_form(&state, &typed, Some(INCORRECT), StatusCode::UNAUTHORIZED);
        }
    };
    login_succeeded(&state, &typed, &ip, now).await?;
    tracing::info!(user_id = %user.id, "admin login succeeded");
    let mut record = record.user(&user.id);
    record.success = true;
    state.services.audit.record(record).await;
    // Post/redirect/get: a reload of the dashboard does not resubmit the password.
    let mut response = see_other("/admin");
    // The same session as /login: one sign-in for both.
    start_session(&state, &user, now, CSRF_COOKIE, &mut response).await?;
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// The dashboard: rendering
// ---------------------------------------------------------------------------------------

async fn render_dashboard(
    state: &AppState,
    admin: &User,
    session: &Session,
) -> Result<Response, ApiError> {
    let now = state.services.clock.now();
    let alerts = state
        .services
        .alerts
        .list_alerts(None, DASHBOARD_ROWS)
        .await?;
    let records = state
        .services
        .audit_store
        .search_audit(&AuditFilter {
            limit: DASHBOARD_ROWS,
            ..AuditFilter::default()
        })
        .await?;
    let first_hour = hour_of(now) - (CHART_HOURS - 1) * 3600;
    let counts = state
        .services
        .audit_store
        .hourly_audit_counts(UnixTime(first_hour))
        .await?;
    let buckets = hourly_buckets(&counts, now);
    let body = format!(
        "<header><h1>deedbolt administration</h1>\
         <form method=\"post\" action=\"/logout\">\
         <span class=\"muted\">Signed in as {email}</span> \
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"logout\" class=\"secondary\">Sign out</button></form></header>\
         <h2>Tokens and failures per hour</h2>\
         <p class=\"legend\"><span class=\"issued\">tokens issued or refreshed</span>\
         <span class=\"failed\">failed client authentications, logins and token requests</span>\
         <span class=\"muted\">last 24 hours, UTC</span></p>{chart}\
         <h2>Recent alerts</h2>{alerts}\
         <h2>Latest audit records</h2>{audit}",
        email = escape(admin.email.as_str()),
        csrf = escape(&session.csrf),
        chart = chart_svg(&buckets),
        alerts = alerts_table(&alerts),
        audit = audit_table(&records),
    );
    Ok(admin_page(StatusCode::OK, "Administration", &body))
}

/// The start of the hour containing `t`.
fn hour_of(t: UnixTime) -> i64 {
    t.0.div_euclid(3600) * 3600
}

/// One hour of the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    /// The hour's start (Unix seconds).
    hour: i64,
    /// Tokens issued or refreshed.
    issued: u64,
    /// Failed client authentications, logins and token requests.
    failed: u64,
}

/// The last 24 hours up to `now`, oldest first, from per-hour counts by kind and outcome.
fn hourly_buckets(counts: &[(UnixTime, String, bool, u64)], now: UnixTime) -> Vec<Bucket> {
    let first = hour_of(now) - (CHART_HOURS - 1) * 3600;
    let mut buckets: Vec<Bucket> = (0..CHART_HOURS)
        .map(|i| Bucket {
            hour: first + i * 3600,
            issued: 0,
            failed: 0,
        })
        .collect();
    for (hour, kind, success, n) in counts {
        let Ok(i) = usize::try_from((hour.0 - first).div_euclid(3600)) else {
            continue;
        };
        let Some(b) = buckets.get_mut(i) else {
            continue;
        };
        let kind = kind.parse::<AuditKind>().ok();
        match (kind, success) {
            (Some(AuditKind::TokenIssued | AuditKind::TokenRefreshed), true) => {
                b.issued = b.issued.saturating_add(*n);
            }
            (Some(AuditKind::ClientAuthFailed | AuditKind::TokenRequestFailed), _)
            | (Some(AuditKind::Login), false) => b.failed = b.failed.saturating_add(*n),
            _ => {}
        }
    }
    buckets
}

/// The chart: for each hour a blue bar (issued) and a red one (failures), on one scale,
/// with hour labels every three hours and a `<title>` per hour for the exact numbers.
fn chart_svg(buckets: &[Bucket]) -> String {
    const W: u64 = 720;
    const H: u64 = 200;
    const TOP: u64 = 20;
    const BOTTOM: u64 = 24;
    const LEFT: u64 = 40;
    let plot_h = H - TOP - BOTTOM;
    let max = buckets
        .iter()
        .flat_map(|b| [b.issued, b.failed])
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (W - LEFT) / (buckets.len().max(1) as u64);
    let bar = (slot.saturating_sub(4) / 2).max(1);
    let height = |n: u64| -> u64 {
        // Rounded up, so any non-zero count shows at least a sliver.
        (n.saturating_mul(plot_h)).div_ceil(max).min(plot_h)
    };
    let mut svg = format!(
        "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" \
         width=\"{W}\" height=\"{H}\" role=\"img\" aria-labelledby=\"chart-title\">\
         <title id=\"chart-title\">Tokens issued and authentication failures per hour, last 24 hours</title>\
         <line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{W}\" y2=\"{base}\" stroke=\"#667\" stroke-width=\"1\"/>\
         <text x=\"{lx}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"end\" fill=\"#667\">{max}</text>\
         <text x=\"{lx}\" y=\"{base}\" font-size=\"11\" text-anchor=\"end\" fill=\"#667\">0</text>",
        base = H - BOTTOM,
        lx = LEFT - 6,
        ty = TOP + 4,
    );
    for (i, b) in buckets.iter().enumerate() {
        let x = LEFT + i as u64 * slot + 2;
        let (hi, hf) = (height(b.issued), height(b.failed));
        let label = utc(UnixTime(b.hour));
        let hh = label.get(11..16).unwrap_or("");
        let _ = write!(
            svg,
            "<g><title>{hh} UTC: {issued} issued, {failed} failed</title>\
             <rect class=\"bar-issued\" x=\"{x}\" y=\"{yi}\" width=\"{bar}\" height=\"{hi}\" fill=\"#2f6fba\"/>\
             <rect class=\"bar-failed\" x=\"{xf}\" y=\"{yf}\" width=\"{bar}\" height=\"{hf}\" fill=\"#c0392b\"/></g>",
            issued = b.issued,
            failed = b.failed,
            yi = H - BOTTOM - hi,
            xf = x + bar,
            yf = H - BOTTOM - hf,
        );
        if i % 3 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x}\" y=\"{y}\" font-size=\"11\" fill=\"#667\">{hh}</text>",
                y = H - 6,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A table cell with a UTC time, kept on one line.
fn time_cell(t: Option<UnixTime>) -> String {
    match t {
        Some(t) => format!("<td class=\"time\">{}</td>", utc(t)),
        None => cell(None),
    }
}

/// A table cell with escaped text, or a muted dash for nothing.
fn cell(v: Option<&str>) -> String {
    match v {
        Some(v) if !v.is_empty() => format!("<td>{}</td>", escape(v)),
        _ => "<td class=\"muted\">–</td>".to_owned(),
    }
}

/// [`cell`] for long identifiers, which may break anywhere rather than widen the table.
fn wrap_cell(v: Option<&str>) -> String {
    match v {
        Some(v) if !v.is_empty() => format!("<td class=\"wrap\">{}</td>", escape(v)),
        _ => cell(None),
    }
}

fn alerts_table(alerts: &[StoredAlert]) -> String {
    let mut out = String::from(
        "<table id=\"alerts\"><thead><tr><th>#</th><th>time (UTC)</th><th>kind</th>\
         <th>subject</th><th>detail</th><th>score</th><th>recommended action</th>\
         <th>delivered</th></tr></thead><tbody>",
    );
    if alerts.is_empty() {
        out.push_str("<tr><td colspan=\"8\" class=\"muted\">No alerts.</td></tr>");
    }
    for a in alerts {
        let text = |k: &str| a.alert.get(k).and_then(Value::as_str);
        let at = a.alert.get("at").and_then(Value::as_i64).map(UnixTime);
        let score = a
            .alert
            .get("score")
            .and_then(Value::as_f64)
            .map(|s| format!("{s:.1}"));
        let delivered = match a.delivered_at {
            Some(t) => format!("yes, {}", utc(t)),
            None if a.attempts == 0 => "not yet".to_owned(),
            None => format!("no ({} failed attempts)", a.attempts),
        };
        let _ = write!(
            out,
            "<tr><td class=\"num\">{id}</td>{at}{kind}{subject}{detail}{score}{action}{delivered}</tr>",
            id = a.id,
            at = time_cell(at),
            kind = cell(text("kind")),
            subject = wrap_cell(text("subject")),
            detail = wrap_cell(text("detail")),
            score = cell(score.as_deref()),
            action = cell(text("recommended_action")),
            delivered = cell(Some(&delivered)),
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn audit_table(records: &[AuditRecord]) -> String {
    let mut out = String::from(
        "<table id=\"audit\"><thead><tr><th>#</th><th>time (UTC)</th><th>type</th>\
         <th>outcome</th><th>client</th><th>user</th><th>IP</th><th>scope</th>\
         <th>error</th><th>detail</th></tr></thead><tbody>",
    );
    if records.is_empty() {
        out.push_str("<tr><td colspan=\"10\" class=\"muted\">No records.</td></tr>");
    }
    for r in records {
        let _ = write!(
            out,
            "<tr><td class=\"num\">{id}</td>{at}{kind}{outcome}{client}{user}{ip}{scope}{error}{detail}</tr>",
            id = r.id,
            at = time_cell(Some(r.at)),
            kind = cell(Some(r.kind.as_str())),
            outcome = if r.success {
                "<td>ok</td>"
            } else {
                "<td class=\"fail\">failed</td>"
            },
            client = wrap_cell(r.client_id.as_deref()),
            user = wrap_cell(r.user_id.as_deref()),
            ip = cell(r.ip.as_deref()),
            scope = cell(r.scope.as_deref()),
            error = cell(r.error.as_deref()),
            detail = wrap_cell(r.detail.as_deref()),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (proleptic Gregorian; the days-to-civil algorithm of
/// Howard Hinnant's `chrono`-compatible date library).
fn utc(t: UnixTime) -> String {
    let days = t.0.div_euclid(86_400);
    let secs = t.0.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(UnixTime(0)), "1970-01-01 00:00:00");
        assert_eq!(utc(UnixTime(951_782_400)), "2000-02-29 00:00:00");
        assert_eq!(utc(UnixTime(1_700_000_000)), "2023-11-14 22:13:20");
        assert_eq!(utc(UnixTime(-1)), "1969-12-31 23:59:59");
    }

    #[test]
    fn buckets_cover_24_hours_and_sum_the_right_kinds() {
        let now = UnixTime(1_700_000_000);
        let this_hour = hour_of(now);
        let counts = vec![
            (UnixTime(this_hour), "token_issued".into(), true, 3),
            (UnixTime(this_hour), "token_refreshed".into(), true, 2),
            (UnixTime(this_hour), "client_auth_failed".into(), false, 4),
            (UnixTime(this_hour), "login".into(), false, 1),
            (UnixTime(this_hour), "login".into(), true, 9),
            (
                UnixTime(this_hour - 3600),
                "token_request_failed".into(),
                false,
                5,
            ),
            (UnixTime(this_hour - 3600), "consent".into(), true, 7),
            // Outside the window (too old, in the future) or unknown: ignored.
            (
                UnixTime(this_hour - 24 * 3600),
                "token_issued".into(),
                true,
                100,
            ),
            (UnixTime(this_hour + 3600), "token_issued".into(), true, 100),
            (UnixTime(this_hour), "nonsense".into(), true, 100),
        ];
        let b = hourly_buckets(&counts, now);
        assert_eq!(b.len(), 24);
        assert_eq!(b[0].hour, this_hour - 23 * 3600);
        assert_eq!((b[23].hour, b[23].issued, b[23].failed), (this_hour, 5, 5));
        assert_eq!((b[22].issued, b[22].failed), (0, 5));
        assert_eq!(b.iter().map(|x| x.issued).sum::<u64>(), 5);
    }

    #[test]
    fn chart_is_an_svg_without_inline_styles() {
        let now = UnixTime(1_700_000_000);
        let counts = vec![(UnixTime(hour_of(now)), "token_issued".into(), true, 7)];
        let svg = chart_svg(&hourly_buckets(&counts, now));
        assert!(svg.starts_with("<svg id=\"chart\""));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("style="), "CSP forbids inline styles");
        assert_eq!(svg.matches("class=\"bar-issued\"").count(), 24);
        // The one non-zero bar is full height (it is the maximum).
        assert!(svg.contains("height=\"156\" fill=\"#2f6fba\""), "{svg}");
        assert!(svg.contains("22:00 UTC: 7 issued, 0 failed"), "{svg}");
    }

    #[test]
    fn tables_escape_everything() {
        let alert = StoredAlert {
            id: 1,
            alert: json!({"kind": "multiple_auth_failures", "subject": "ip:<b>", "detail": "\"x\"", "at": 0}),
            delivered_at: None,
            attempts: 2,
        };
        let html = alerts_table(&[alert]);
        assert!(html.contains("ip:&lt;b&gt;") && html.contains("&quot;x&quot;"));
        assert!(html.contains("2 failed attempts"));
        let record = AuditRecord::new(AuditKind::Login, false, UnixTime(0)).user_agent(None);
        let mut record = record.detail("<script>");
        record.id = 5;
        let html = audit_table(&[record]);
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    }
}
