//! Dynamic client registration (RFC 7591) at `POST /register`, and its management
//! protocol (RFC 7592) at the `registration_client_uri`, `/register/{client_id}`:
//! `GET` reads the registration, `PUT` replaces it (rotating the registration access
//! token), `DELETE` deletes the client and revokes its tokens.
//!
//! Who may register depends on `--registration` ([`RegistrationMode`]): with `token` (the
//! default) an initial access token is required as a bearer credential; with `open`
//! anyone may; with `off` none of these routes exist. What may be registered is
//! `deedbolt_core::registration::policy`; this module only reads requests, checks bearer
//! credentials, stores, audits and answers. Every request is counted against the
//! `register` rate limit of its client IP.
//!
//! The registration access token is a 256-bit bearer secret, shown once (in the
//! registration response and in every update response, which rotates it) and stored only
//! as its keyed hash on the client, compared in constant time. A client registered by the
//! CLI has none, and cannot be managed here. A missing, unknown or wrong token, and an
//! unknown client, are the same 401 (RFC 7592 §2), so client ids cannot be probed.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::client::Client;
use deedbolt_core::ids::ClientId;
use deedbolt_core::registration::policy::{
    validate, RegistrationError, RegistrationRequest, ValidRegistration,
};
use deedbolt_core::registration::{
    looks_like_initial_token, voids_consents, InitialAccessToken, RegistrationMode,
    REGISTRATION_ACCESS_TOKEN_PREFIX,
};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::secret::ClientSecret;
use deedbolt_guard::{parse_bearer, BearerError};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::form::{has_content_type, read_body};
use crate::web::no_store::no_store_json;
use crate::web::rate_limit::Policy;

/// How long a registration access token spent on an update stays in the replay cache:
/// far longer than the update takes, after which the token no longer verifies anyway.
const REGISTRATION_TOKEN_SPEND_SECS: i64 = 300;

/// The registration routes; none when registration is off (404, like any unknown path).
pub fn routes(mode: RegistrationMode) -> Router<AppState> {
    if mode == RegistrationMode::Off {
        return Router::new();
    }
    Router::new().route("/register", post(register)).route(
        "/register/{client_id}",
        axum::routing::get(read).put(update).delete(delete),
    )
}

/// One request's context: who sent it, for the limit and the audit records.
struct Caller {
    ip: String,
    user_agent: Option<String>,
}

impl Caller {
    fn of(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Self {
        Caller {
            ip: client_ip(peer, headers, &state.services.trusted_proxies).to_string(),
            user_agent: headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    fn record(&self, state: &AppState, kind: AuditKind, success: bool) -> AuditRecord {
        AuditRecord::new(kind, success, state.services.clock.now())
            .ip(&self.ip)
            .user_agent(self.user_agent.as_deref())
    }
}

/// Counts the request against the per-IP registration limit.
async fn limit(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    crate::limits::check(
        state,
        Policy::Register,
        state.services.limits.register,
        &caller.ip,
    )
    .await
    .map(|_| ())
}

/// Audits a refusal and returns the error.
async fn refused(
    state: &AppState,
    caller: &Caller,
    client_id: Option<&str>,
    error: ApiError,
) -> ApiError {
    let code = match &error {
        ApiError::Registration(e) => e.code(),
        ApiError::BearerRequired { .. } => "invalid_token",
        ApiError::RateLimited { .. } => "rate_limited",
        ApiError::UnsupportedMediaType(_) | ApiError::PayloadTooLarge => "invalid_request",
        _ => "server_error",
    };
    let mut record = caller
        .record(state, AuditKind::RegistrationRefused, false)
        .error(code);
    if let Some(id) = client_id {
        record = record.client(id);
    }
    state.services.audit.record(record).await;
    error
}

/// The bearer credential of the request: `Ok(None)` when none was sent.
fn bearer(headers: &HeaderMap) -> Result<Option<ClientSecret>, ApiError> {
    match parse_bearer(headers.get_all(AUTHORIZATION).iter()) {
        Ok(token) => Ok(Some(ClientSecret::from_presented(token.to_owned()))),
        Err(BearerError::Missing) => Ok(None),
        Err(BearerError::Malformed) => Err(invalid_token("malformed Authorization header")),
    }
}

fn invalid_token(description: &'static str) -> ApiError {
    ApiError::BearerRequired {
        presented: true,
        description,
    }
}

fn token_required(description: &'static str) -> ApiError {
    ApiError::BearerRequired {
        presented: false,
        description,
    }
}

/// The `{client_id}` of a management path. A segment that is not UTF-8 (`/register/%FF`)
/// names no client: it becomes an empty id, which [`managed_client`] refuses with the
/// same 401 `invalid_token` as any unknown client, instead of axum's plain-text 400.
fn path_client_id(path: Result<Path<String>, PathRejection>) -> String {
    path.map(|Path(id)| id).unwrap_or_default()
}

/// Reads the JSON body into a registration request (RFC 7591 §3.1: `application/json`).
async fn read_request(headers: &HeaderMap, body: Body) -> Result<RegistrationRequest, ApiError> {
    if !has_content_type(headers, "application/json") {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    }
    let bytes = read_body(headers, body).await?;
    // RFC 7591 §3.1 (and RFC 7592 §2.2): "a JSON document consisting of a JSON object".
    // serde would also decode the struct from an array, positionally; only an object is
    // metadata. Checked on the first token rather than by decoding into a map first, so
    // that serde still refuses a repeated member (`duplicate field`) instead of a map
    // silently keeping the last one.
    if bytes.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b'{') {
        return Err(ApiError::Registration(
            RegistrationError::InvalidClientMetadata(
                "the body must be a JSON object of client metadata (RFC 7591 §3.1)".into(),
            ),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        // serde's message names the field and the expected type, and can quote the value
        // sent: it goes back only to its sender (this answer), never to the log or audit.
        let what: String = e.to_string().chars().take(200).collect();
        ApiError::Registration(RegistrationError::InvalidClientMetadata(format!(
            "the body is not valid registration metadata: {what}"
        )))
    })
}

/// The registration response (RFC 7591 §3.2.1, RFC 7592 §3): the client's id and every
/// registered metadata value as stored, plus the secrets shown this once.
fn client_document(
    state: &AppState,
    client: &Client,
    secret: Option<&ClientSecret>,
    registration_token: Option<&ClientSecret>,
) -> Value {
    let issuer = &state.services.policy.issuer;
    let code = client
        .grant_types
        .contains(&deedbolt_core::client::GrantType::AuthorizationCode);
    let mut doc = match serde_json::to_value(&client.metadata) {
        Ok(Value::Object(map)) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
                .collect(),
        ),
        _ => json!({}),
    };
    doc["client_id"] = json!(client.id);
    doc["client_id_issued_at"] = json!(client.created_at);
    doc["client_name"] = json!(client.name);
    doc["redirect_uris"] = json!(client.redirect_uris);
    doc["grant_types"] = json!(client.grant_types);
    doc["response_types"] = if code { json!(["code"]) } else { json!([]) };
    doc["scope"] = json!(client.scopes.to_string());
    doc["token_endpoint_auth_method"] = json!(client.auth_method().as_str());
    doc["id_token_signed_response_alg"] = json!(client.id_token_alg);
    // RFC 9126 §6: whether this client must push its requests, which it must when the
    // server requires it of every client (`--require-par`, `--profile fapi2`).
    doc["require_pushed_authorization_requests"] =
        json!(client.metadata.require_pushed_authorization_requests || state.services.require_par);
    doc["registration_client_uri"] = json!(format!("{issuer}/register/{}", client.id));
    if client.secret_hash.is_some() {
        // The secret never expires (RFC 7591 §3.2.1: 0), and is shown only when made.
        doc["client_secret_expires_at"] = json!(0);
    }
    if let Some(secret) = secret {
        doc["client_secret"] = json!(secret.expose_secret());
    }
    if let Some(token) = registration_token {
        doc["registration_access_token"] = json!(token.expose_secret());
    }
    doc
}

/// Checks the initial access token of a registration (when one is needed or presented)
/// and returns it with what the registration may get.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Option<InitialAccessToken>, ScopeSet), ApiError> {
    let services = &state.services;
    let settings = &services.registration;
    let Some(presented) = bearer(headers)? else {
        return match settings.mode {
            RegistrationMode::Open => Ok((None, settings.open_scopes)),
            _ => Err(token_required(
                "registration requires an initial access token",
            )),
        };
    };
    if !looks_like_initial_token(presented.expose_secret()) {
        return Err(invalid_token("the initial access token is not valid"));
    }
    let hash = services.hasher.hash(&presented);
    let now = services.clock.now();
    match services
        .registration_tokens
        .find_registration_token(&hash)
        .await?
    {
        Some(token) if token.usable_at(now) => {
            let allowed = token.scopes.unwrap_or(settings.open_scopes);
            Ok((Some(token), allowed))
        }
        _ => Err(invalid_token(
            "the initial access token is not valid (unknown, expired, used up or revoked)",
        )),
    }
}

/// A fresh client from a validated registration: its id, its secret when its method
/// needs one, and its registration access token.
fn new_client(
    state: &AppState,
    valid: ValidRegistration,
) -> Result<(Client, Option<ClientSecret>, ClientSecret), ApiError> {
    let services = &state.services;
    let now = services.clock.now();
    let secret = if valid.needs_secret() {
        Some(ClientSecret::generate().map_err(ApiError::internal)?)
    } else {
        None
    };
    let token = ClientSecret::generate_prefixed(REGISTRATION_ACCESS_TOKEN_PREFIX)
        .map_err(ApiError::internal)?;
    let new = valid.client;
    let client = Client {
        id: ClientId::generate().map_err(ApiError::internal)?,
        name: new.name,
        secret_hash: secret.as_ref().map(|s| services.hasher.hash(s)),
        grant_types: new.grant_types,
        scopes: new.scopes,
        redirect_uris: new.redirect_uris,
        kind: new.kind,
        allow_introspection: false,
        properties: None,
        id_token_alg: new.id_token_alg,
        metadata: new.metadata,
        registration_token_hash: Some(services.hasher.hash(&token)),
        created_at: now,
        updated_at: now,
    };
    Ok((client, secret, token))
}

/// `POST /register` (RFC 7591 §3).
#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty))]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = Caller::of(&state, peer, &headers);
    match register_inner(&state, &caller, &headers, body).await {
        Ok(response) => response,
        Err(e) => refused(&state, &caller, None, e).await.into_response(),
    }
}

async fn register_inner(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    limit(state, caller).await?;
    let services = &state.services;
    let (token, allowed) = admit(state, headers).await?;
    let request = read_request(headers, body).await?;
    let valid = validate(&request, &services.registration.policy, allowed)
        .map_err(ApiError::Registration)?;
    let (client, secret, registration_token) = new_client(state, valid)?;
    services.clients.insert_client(&client).await?;
    // Spend the initial token only after the client is stored, so neither a refused nor a
    // failed registration costs a use. The spend is one conditional update, so with N uses
    // left at most N registrations win it; one that loses (or fails to spend) deletes the
    // client it just stored, whose credentials nobody has been shown.
    if let Some(token) = &token {
        let now = services.clock.now();
        let spent = services
            .registration_tokens
            .spend_registration_token(&token.hash, now)
            .await;
        if !matches!(spent, Ok(Some(_))) {
            if let Err(e) = services.clients.delete_client(&client.id).await {
                tracing::warn!(
                    error.message = %e,
                    client_id = %client.id,
                    "could not delete a registered client whose initial access token use was not spent; \
                     nobody holds its credentials"
                );
            }
            spent?;
            return Err(invalid_token(
                "the initial access token is not valid (unknown, expired, used up or revoked)",
            ));
        }
    }
    tracing::Span::current().record("client_id", client.id.as_str());
    let via = token.as_ref().map_or_else(
        || "open registration".to_owned(),
        |t| format!("initial_token={}", t.id),
    );
    services
        .audit
        .record(
            caller
                .record(state, AuditKind::ClientRegistered, true)
                .client(&client.id)
                .scope(client.scopes)
                .detail(format!(
                    "{via}; token_endpoint_auth_method={}",
                    client.auth_method().as_str()
                )),
        )
        .await;
    let doc = client_document(state, &client, secret.as_ref(), Some(&registration_token));
    Ok(no_store_json(StatusCode::CREATED, doc))
}

/// Authenticates a management request (RFC 7592 §2): the bearer registration access
/// token of the client named in the path. Every failure is the same 401. Returns the
/// client and the token it presented.
async fn managed_client(
    state: &AppState,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<(Client, ClientSecret), ApiError> {
    let services = &state.services;
    let Some(presented) = bearer(headers)? else {
        return Err(token_required(
            "managing a registration requires its registration access token",
        ));
    };
    let found = match ClientId::parse(client_id) {
        Ok(id) => services.clients.find_client(&id).await?,
        Err(_) => None,
    };
    let refused = || invalid_token("the registration access token is not valid for this client");
    match found {
        Some(client) => match &client.registration_token_hash {
            Some(hash) if services.hasher.verify(&presented, hash) => Ok((client, presented)),
            Some(_) => Err(refused()),
            None => {
                // A client registered by the CLI: no token can manage it. Spend the same
                // work as a comparison, so this answer takes no less time.
                services.hasher.verify_dummy(&presented);
                Err(refused())
            }
        },
        None => {
            services.hasher.verify_dummy(&presented);
            Err(refused())
        }
    }
}

/// `GET /register/{client_id}` (RFC 7592 §2.1): the registration as stored, with the
/// registration access token the request presented (RFC 7592 §3 requires it in the
/// answer; it is not rotated by a read). The client secret is stored as a hash only, so it
/// is not in it.
#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty))]
pub async fn read(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    client_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::of(&state, peer, &headers);
    let client_id = path_client_id(client_id);
    tracing::Span::current().record("client_id", client_id.as_str());
    let result = async {
        limit(&state, &caller).await?;
        let (client, presented) = managed_client(&state, &headers, &client_id).await?;
        Ok::<_, ApiError>(no_store_json(
            StatusCode::OK,
            client_document(&state, &client, None, Some(&presented)),
        ))
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => refused(&state, &caller, Some(&client_id), e)
            .await
            .into_response(),
    }
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the registration with the
/// request's metadata (validated like a new one), rotates the registration access token
/// and answers with the new one.
#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty))]
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    client_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = Caller::of(&state, peer, &headers);
    let client_id = path_client_id(client_id);
    tracing::Span::current().record("client_id", client_id.as_str());
    match update_inner(&state, &caller, &client_id, &headers, body).await {
        Ok(r) => r,
        Err(e) => refused(&state, &caller, Some(&client_id), e)
            .await
            .into_response(),
    }
}

async fn update_inner(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    limit(state, caller).await?;
    let services = &state.services;
    let (current, presented) = managed_client(state, headers, client_id).await?;
    let request = read_request(headers, body).await?;
    // RFC 7592 §2.2: the request MUST carry the client_id, and a client_secret, if sent,
    // MUST match the current one.
    if request.client_id.as_deref() != Some(current.id.as_str()) {
        return Err(ApiError::Registration(
            RegistrationError::InvalidClientMetadata(
                "client_id must be present and match the client being updated".into(),
            ),
        ));
    }
    if let Some(sent) = &request.client_secret {
        let sent = ClientSecret::from_presented(sent.clone());
        let matches = current
            .secret_hash
            .as_ref()
            .is_some_and(|h| services.hasher.verify(&sent, h));
        if !matches {
            return Err(ApiError::Registration(
                RegistrationError::InvalidClientMetadata(
                    "client_secret does not match the client's current secret".into(),
                ),
            ));
        }
    }
    // An update keeps within what the client was registered for (plus, in open
    // registration, what anyone may get): a registration access token cannot widen it.
    let mut allowed = current.scopes;
    if services.registration.mode == RegistrationMode::Open {
        allowed = allowed.union(&services.registration.open_scopes);
    }
    let valid = validate(&request, &services.registration.policy, allowed)
        .map_err(ApiError::Registration)?;
    let needs_secret = valid.needs_secret();
    let new = valid.client;
    // The secret stays while the client still authenticates with one; a client switching
    // to a secret method gets a new one, shown in this answer.
    let (secret_hash, new_secret) = match (&current.secret_hash, needs_secret) {
        (Some(hash), true) => (Some(hash.clone()), None),
        (None, true) => {
            let s = ClientSecret::generate().map_err(ApiError::internal)?;
            (Some(services.hasher.hash(&s)), Some(s))
        }
        (_, false) => (None, None),
    };
    let token = ClientSecret::generate_prefixed(REGISTRATION_ACCESS_TOKEN_PREFIX)
        .map_err(ApiError::internal)?;
    let updated = Client {
        id: current.id.clone(),
        name: new.name,
        secret_hash,
        grant_types: new.grant_types,
        scopes: new.scopes,
        redirect_uris: new.redirect_uris,
        kind: new.kind,
        allow_introspection: current.allow_introspection,
        properties: current.properties.clone(),
        id_token_alg: new.id_token_alg,
        metadata: new.metadata,
        registration_token_hash: Some(services.hasher.hash(&token)),
        created_at: current.created_at,
        updated_at: services.clock.now(),
    };
    // Each registration access token makes at most one update, also when two updates
    // race (on any instance): the first to get here spends it in the replay cache. The
    // entry needs to outlive only this request, after which the token's hash is no longer
    // stored; validation failures above do not spend it. It is spent before the store
    // write, which is what makes racing updates exclusive: if that write then fails (a
    // store error, answered 500), the registration is unchanged and the token still reads
    // and deletes it, but makes no update until the entry expires
    // (REGISTRATION_TOKEN_SPEND_SECS). docs/registration.md says so.
    let spent = format!(
        "regtoken:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(services.hasher.hash(&presented).as_bytes())
    );
    let until = services
        .clock
        .now()
        .plus_secs(REGISTRATION_TOKEN_SPEND_SECS);
    if !services.replay.first_use(&spent, until).await? {
        return Err(invalid_token(
            "the registration access token was already used for an update",
        ));
    }
    // Remembered consents were given to the client as it was: after a change to where
    // codes go, its name or how it authenticates, every user sees the consent page again.
    // Forgotten before the update (so a failure cannot leave the new registration with the
    // old consents) and again after it (a consent saved in between was to the old one).
    let voids = voids_consents(&current, &updated);
    let mut forgotten = 0;
    if voids {
        forgotten += services.flow.revoke_client_consents(&current.id).await?;
    }
    if !services.clients.update_client(&updated).await? {
        // Deleted meanwhile: as for an unknown client.
        return Err(invalid_token(
            "the registration access token is not valid for this client",
        ));
    }
    if voids {
        forgotten += services.flow.revoke_client_consents(&current.id).await?;
    }
    services
        .audit
        .record(
            caller
                .record(state, AuditKind::ClientRegistrationUpdated, true)
                .client(&updated.id)
                .scope(updated.scopes)
                .detail(format!(
                    "registration access token rotated; token_endpoint_auth_method={}; \
                     remembered consents forgotten: {forgotten}",
                    updated.auth_method().as_str()
                )),
        )
        .await;
    let doc = client_document(state, &updated, new_secret.as_ref(), Some(&token));
    Ok(no_store_json(StatusCode::OK, doc))
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): deletes the client the way
/// `deedbolt client delete` does: its access tokens stop working on every instance, its
/// refresh-token families are revoked, and client caches drop it. 204.
#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty))]
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    client_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::of(&state, peer, &headers);
    let client_id = path_client_id(client_id);
    tracing::Span::current().record("client_id", client_id.as_str());
    let result = async {
        limit(&state, &caller).await?;
        let (client, _) = managed_client(&state, &headers, &client_id).await?;
        let services = &state.services;
        let now = services.clock.now();
        let Some(deleted) = deedbolt_core::revocation::delete_client_and_tokens(
            services.clients.as_ref(),
            services.refresh.as_ref(),
            services.revocation_feed.as_ref(),
            &client.id,
            now,
        )
        .await?
        else {
            return Err(invalid_token(
                "the registration access token is not valid for this client",
            ));
        };
        if !deleted.announced {
            tracing::warn!(
                "could not announce the deleted client's cutoff; other instances apply it at their next sync"
            );
        }
        services.revocations.cut_off_local(
            deleted.cutoff.kind,
            &deleted.cutoff.subject,
            deleted.cutoff.at,
        );
        services
            .audit
            .record(
                caller
                    .record(&state, AuditKind::ClientRegistrationDeleted, true)
                    .client(&client.id)
                    .detail(format!(
                        "its tokens and {} refresh-token families revoked",
                        deleted.families
                    )),
            )
            .await;
        Ok::<_, ApiError>(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => refused(&state, &caller, Some(&client_id), e)
            .await
            .into_response(),
    }
}
