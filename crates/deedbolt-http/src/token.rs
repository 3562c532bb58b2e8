//! The token endpoint, `POST /token` (RFC 6749 §3.2, §4.4, §5).

use std::borrow::Cow;

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::client::GrantType;
use deedbolt_core::error::OAuthError;
use deedbolt_core::flow::{self, CodeExchange, IdTokenClaims};
use deedbolt_core::grant::{self, AccessToken, ClientAuthenticated, TokenResponse};
use deedbolt_core::ports::Redemption;
use deedbolt_core::token::ACCESS_TOKEN_TYP;

use crate::client_auth;
use crate::error::ApiError;
use crate::form::FormParams;
use crate::state::AppState;

/// The largest request body any endpoint reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Whether the request's content type is `expected` (parameters such as charset allowed).
pub(crate) fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|media| media.eq_ignore_ascii_case(expected))
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] (early, from Content-Length, when
/// the client declares it).
pub(crate) async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)
}

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

impl TokenAudit {
    /// The rate-limit key of an authenticated client. A public client proves nothing by
    /// presenting its id, so anyone could spend its quota: its limit is also keyed by IP.
    pub(crate) fn limit_key(&self, auth: &ClientAuthenticated) -> String {
        let client = auth.client();
        if client.public {
            format!("{}@{}", client.id, self.ip)
        } else {
            client.id.to_string()
        }
    }

    /// The rate-limit key of a confidential client's grant made for one user
    /// (authorization code, refresh token): per client and user.
    pub(crate) fn user_limit_key(&self, auth: &ClientAuthenticated, user: &str) -> String {
        format!("{}/{user}", auth.client().id)
    }
}

/// `POST /token`
#[tracing::instrument(name = "token", skip_all, fields(grant_type, client_id))]
pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let services = &state.services;
    let ip = crate::limits::client_ip(peer, &headers, &services.trusted_proxies).to_string();
    let mut audit = TokenAudit {
        ip: ip.clone(),
        ..TokenAudit::default()
    };
    let result = token_inner(&state, &headers, body, &mut audit).await;
    let now = services.clock.now();
    let (kind, success, error) = match &result {
        Ok(_) if audit.grant == Some(GrantType::RefreshToken) => {
            (AuditKind::TokenRefreshed, true, None)
        }
        Ok(_) => (AuditKind::TokenIssued, true, None),
        Err(ApiError::OAuth(e @ OAuthError::InvalidClient(_))) => {
            services.security.auth_failure(&ip, now).await;
            if audit.client_id.is_none() {
                audit.client_id = audit.claimed_client.take();
            }
            (AuditKind::ClientAuthFailed, false, Some(e.code()))
        }
        Err(ApiError::OAuth(e)) => (AuditKind::TokenRequestFailed, false, Some(e.code())),
        Err(ApiError::RateLimited { .. }) => {
            (AuditKind::RateLimited, false, Some("rate_limit_exceeded"))
        }
        Err(_) => (AuditKind::TokenRequestFailed, false, Some("server_error")),
    };
    let mut record = AuditRecord::new(kind, success, now)
        .ip(&ip)
        .user_agent(headers.get(USER_AGENT).and_then(|v| v.to_str().ok()));
    if let Some(g) = audit.grant {
        record = record.detail(match &audit.jti {
            Some(j) => format!("grant={g} jti={j}"),
            None => format!("grant={g}"),
        });
    }
    if let Some(c) = &audit.client_id {
        record = record.client(c);
    }
    if let Some(u) = &audit.user_id {
        record = record.user(u);
    }
    if let Some(sc) = &audit.scope {
        record = record.scope(sc);
    }
    if let Some(e) = error {
        record = record.error(e);
    }
    services.audit.record(record).await;
    result
}

async fn token_inner(
    state: &AppState,
    headers: &HeaderMap,
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
            client_credentials(state, headers, &mut params, audit).await
        }
        GrantType::AuthorizationCode => {
            authorization_code(state, headers, &mut params, audit).await
        }
        GrantType::RefreshToken => {
            crate::refresh::refresh_token_grant(state, headers, &mut params, audit).await
        }
    }
}

async fn client_credentials(
    state: &AppState,
    headers: &HeaderMap,
    params: &mut FormParams,
    audit: &mut TokenAudit,
) -> Result<Response, ApiError> {
    let services = &state.services;
    // A public client cannot be registered for client credentials, so the grant check in
    // `client_credentials_scope` refuses it.
    let auth = authenticate(state, headers, params).await?;
    audit.client_id = Some(auth.client().id.to_string());
    // An authenticated request: scopes beyond the registration may alert. (No `scope`
    // means the registered scopes; the first use of privileged ones is judged on issuance.)
    let requested = match params.get("scope") {
        Some(sc) => sc.parse().ok(),
        None => Some(auth.client().scopes),
    };
    if let Some(requested) = requested {
        audit.scope = params.get("scope").map(str::to_owned);
        services
            .security
            .scope_request(
                auth.client().id.as_str(),
                auth.client().scopes,
                requested,
                services.clock.now(),
            )
            .await;
    }
    let allowance = crate::limits::check(
        state,
        "token",
        services.limits.token,
        &audit.limit_key(&auth),
    )
    .await?;
    let scope = grant::client_credentials_scope(&auth, params.get("scope"))?;
    let claims = services
        .policy
        .client_credentials_claims(&auth, scope, services.clock.now())
        .map_err(ApiError::internal)?;
    let jwt = services
        .keys
        .current()
        .sign_jwt(ACCESS_TOKEN_TYP, &claims)
        .map_err(ApiError::internal)?;
    tracing::debug!(jti = %claims.jti, scope = %scope, "access token issued");
    services.metrics.token_issued(GrantType::ClientCredentials);
    audit.scope = Some(scope.to_string());
    audit.jti = Some(claims.jti.to_string());
    // First use of a privileged scope: judged on what was issued, never on requests.
    services
        .security
        .scopes_issued(auth.client().id.as_str(), scope, services.clock.now())
        .await;
    let mut response = token_response(TokenResponse {
        access_token: AccessToken(jwt),
        token_type: "Bearer",
        expires_in: services.policy.lifetime.as_secs(),
        scope,
        refresh_token: None,
        id_token: None,
    });
    if let Some(a) = allowance {
        a.apply(response.headers_mut());
    }
    Ok(response)
}

/// Audits a failed client authentication at `endpoint` and feeds the per-IP detector.
pub(crate) async fn audit_client_auth_failure(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    endpoint: &str,
) {
    let services = &state.services;
    let now = services.clock.now();
    let ip = crate::limits::client_ip(peer, headers, &services.trusted_proxies).to_string();
    services.security.auth_failure(&ip, now).await;
    services
        .audit
        .record(
            AuditRecord::new(AuditKind::ClientAuthFailed, false, now)
                .ip(&ip)
                .user_agent(headers.get(USER_AGENT).and_then(|v| v.to_str().ok()))
                .error("invalid_client")
                .detail(format!("endpoint={endpoint}")),
        )
        .await;
}

/// Authenticates a confidential client by secret, or identifies a public one by id.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &mut FormParams,
) -> Result<ClientAuthenticated, ApiError> {
    let services = &state.services;
    match client_auth::extract_any(headers, params)? {
        client_auth::Presented::Secret(presented) => {
            tracing::Span::current().record("client_id", presented.client_id.as_str());
            let found = services
                .clients
                .find_client(&presented.client_id)
                .await
                .map_err(ApiError::internal)?;
            Ok(grant::authenticate_client(
                found,
                &presented.secret,
                &services.hasher,
            )?)
        }
        client_auth::Presented::PublicId(id) => {
            tracing::Span::current().record("client_id", id.as_str());
            let found = services
                .clients
                .find_client(&id)
                .await
                .map_err(ApiError::internal)?;
            Ok(grant::identify_public_client(found)?)
        }
    }
}

/// Revokes an access token here (at once) and in the store (for other instances), then
/// announces it.
pub(crate) async fn revoke(
    state: &AppState,
    jti: &deedbolt_core::ids::TokenId,
    exp: deedbolt_core::clock::UnixTime,
) -> Result<(), ApiError> {
    let services = &state.services;
    services.revocations.revoke_local(jti.clone(), exp);
    services
        .flow
        .revoke_token(jti, exp, services.clock.now())
        .await
        .map_err(ApiError::internal)?;
    announce(state, [(jti.clone(), exp)]).await
}

/// Applies revocations the store has already recorded to this instance's list and tells
/// the other instances through the revocation feed, so their guards refuse the tokens
/// within a second instead of at their next store sync. A feed that cannot be reached is
/// a 503 (the revocation itself is durable; every instance also picks it up from the
/// store).
pub(crate) async fn announce(
    state: &AppState,
    revoked: impl IntoIterator<Item = (deedbolt_core::ids::TokenId, deedbolt_core::clock::UnixTime)>,
) -> Result<(), ApiError> {
    let services = &state.services;
    let mut failed = None;
    for (jti, expires_at) in revoked {
        services.revocations.revoke_local(jti.clone(), expires_at);
        // Every entry is applied locally even if the feed fails for one.
        if let Err(e) = services
            .revocation_feed
            .publish(&deedbolt_core::revocation::Revoked { jti, expires_at })
            .await
        {
            failed = Some(e);
        }
    }
    match failed {
        Some(e) => Err(ApiError::internal(e)),
        None => Ok(()),
    }
}

/// A code redeemed a second time by its own client, with the right verifier (RFC 6749
/// §4.1.2): revokes the access token issued from the first redemption and the refresh
/// family started with it, and answers `invalid_grant`.
async fn replayed(
    state: &AppState,
    auth: &ClientAuthenticated,
    issued: Option<(deedbolt_core::ids::TokenId, deedbolt_core::clock::UnixTime)>,
    now: deedbolt_core::clock::UnixTime,
) -> Result<Response, ApiError> {
    let services = &state.services;
    if let Some((jti, exp)) = issued {
        revoke(state, &jti, exp).await?;
        if let Some(family) = services
            .refresh
            .family_of_access(&jti)
            .await
            .map_err(ApiError::internal)?
        {
            let jtis = services
                .refresh
                .revoke_family(&family, now)
                .await
                .map_err(ApiError::internal)?;
            announce(state, jtis).await?;
        }
    }
    services
        .audit
        .record(
            AuditRecord::new(AuditKind::ReuseDetected, false, now)
                .client(&auth.client().id)
                .detail("authorization code replayed"),
        )
        .await;
    tracing::warn!(client_id = %auth.client().id, "authorization code replayed; tokens issued from it revoked");
    Err(OAuthError::InvalidGrant(Cow::Borrowed("the code was already used")).into())
}

async fn authorization_code(
    state: &AppState,
    headers: &HeaderMap,
    params: &mut FormParams,
    audit: &mut TokenAudit,
) -> Result<Response, ApiError> {
    let services = &state.services;
    let auth = authenticate(state, headers, params).await?;
    audit.client_id = Some(auth.client().id.to_string());
    // A public client proves nothing by presenting its id: it is limited per client and IP
    // before any work. A confidential client is limited per client and user, below.
    let public_allowance = if auth.client().public {
        Some(
            crate::limits::check(
                state,
                "token",
                services.limits.token,
                &audit.limit_key(&auth),
            )
            .await?,
        )
    } else {
        None
    };
    if !auth.client().allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::UnauthorizedClient(Cow::Borrowed(
            "this client is not registered for the authorization_code grant",
        ))
        .into());
    }
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let code_hash = flow::code_hash(code);
    let now = services.clock.now();
    // Check the client binding, redirect URI and PKCE against the stored grant *before*
    // spending the code (RFC 9700 §4.5, RFC 7636 §4.6): a request that fails here changes
    // nothing, so a stolen code presented by another client, or without the verifier,
    // neither burns it nor revokes the user's tokens as a "replay".
    let Some(stored) = services
        .flow
        .peek_code(&code_hash)
        .await
        .map_err(ApiError::internal)?
    else {
        return Err(OAuthError::InvalidGrant(Cow::Borrowed("unknown or expired code")).into());
    };
    let exchange = CodeExchange {
        redirect_uri: params.get("redirect_uri"),
        code_verifier: params.get("code_verifier"),
    };
    let _pkce = flow::check_exchange(&auth, &stored, &exchange)?;
    if stored.scope.is_empty() {
        // No code is issued for nothing (the consent refuses it), but one stored by an
        // older version must not turn into a token that grants nothing.
        return Err(OAuthError::InvalidGrant(Cow::Borrowed("the code grants no scope")).into());
    }
    // A confidential client: per client *and user*, since each code stands for one
    // user's fresh login and a client serving many users (a backend-for-frontend) must not
    // share one quota among them. Checked before redemption, so a code refused for the
    // limit is not spent.
    let allowance = match public_allowance {
        Some(a) => a,
        None => {
            crate::limits::check(
                state,
                "token",
                services.limits.token,
                &audit.user_limit_key(&auth, stored.user_id.as_str()),
            )
            .await?
        }
    };
    // Redemption itself stays one conditional update: of concurrent requests that all
    // passed the checks, exactly one gets the code; the others are genuine replays.
    let grant = match services
        .flow
        .redeem_code(&code_hash, now)
        .await
        .map_err(ApiError::internal)?
    {
        Redemption::Fresh(grant) => grant,
        Redemption::Unknown => {
            return Err(OAuthError::InvalidGrant(Cow::Borrowed("unknown or expired code")).into())
        }
        Redemption::Replayed(issued) => {
            // RFC 6749 §4.1.2: a code used twice revokes what was issued from it. Only a
            // replay by the code's own client with the right verifier gets here.
            return replayed(state, &auth, issued, now).await;
        }
    };
    flow::check_unexpired(&grant, now)?;
    if services
        .users
        .find_user(&grant.user_id)
        .await
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(OAuthError::InvalidGrant(Cow::Borrowed("the user no longer exists")).into());
    }
    let policy = &services.policy;
    let claims = flow::user_access_claims(
        &policy.issuer,
        &policy.audience,
        policy.lifetime.as_secs(),
        &grant,
        now,
    )
    .map_err(ApiError::internal)?;
    let key = services.keys.current();
    let access = key
        .sign_jwt(ACCESS_TOKEN_TYP, &claims)
        .map_err(ApiError::internal)?;
    // The family exists, with this access token in it, before the token is recorded on the
    // code: a replay that finds the token recorded then finds the family too and revokes it
    // (another instance's replay may land at any point in between).
    let family = if auth.client().allows_grant(GrantType::RefreshToken) {
        Some(crate::refresh::start_family(state, &grant, &claims, now).await?)
    } else {
        None
    };
    if services
        .flow
        .record_code_token(&code_hash, &claims.jti, claims.exp)
        .await
        .map_err(ApiError::internal)?
    {
        // A replay arrived between redemption and now: nothing issued here may live.
        revoke(state, &claims.jti, claims.exp).await?;
        if let Some((family_id, _)) = &family {
            crate::refresh::revoke_family(state, family_id, now).await?;
        }
        return Err(OAuthError::InvalidGrant(Cow::Borrowed("the code was already used")).into());
    }
    let id_token = if flow::wants_id_token(&grant) {
        // Signed with the algorithm the client registered (OpenID Connect Core §3.1.3.7:
        // RS256 unless it asked otherwise), which need not be the access tokens' one; the
        // at_hash follows the ID token's algorithm (§3.1.3.6).
        let id_key = services.keys.signer(auth.client().id_token_alg);
        let id = IdTokenClaims {
            iss: policy.issuer.clone(),
            sub: grant.user_id.as_str().to_owned(),
            aud: grant.client_id.as_str().to_owned(),
            exp: now.plus_secs(policy.lifetime.as_secs()),
            iat: now,
            auth_time: grant.auth_time,
            nonce: grant.nonce.clone(),
            at_hash: flow::at_hash(&access, id_key.alg()),
            azp: grant.client_id.as_str().to_owned(),
        };
        Some(AccessToken(
            id_key.sign_jwt("JWT", &id).map_err(ApiError::internal)?,
        ))
    } else {
        None
    };
    let refresh_token = family.map(|(_, token)| AccessToken(token.expose().to_owned()));
    tracing::info!(jti = %claims.jti, user_id = %grant.user_id, scope = %grant.scope, "access token issued for a code");
    services.metrics.token_issued(GrantType::AuthorizationCode);
    audit.user_id = Some(grant.user_id.to_string());
    audit.scope = Some(grant.scope.to_string());
    audit.jti = Some(claims.jti.to_string());
    services
        .security
        .scopes_issued(grant.client_id.as_str(), grant.scope, now)
        .await;
    let mut response = token_response(TokenResponse {
        access_token: AccessToken(access),
        token_type: "Bearer",
        expires_in: policy.lifetime.as_secs(),
        scope: grant.scope,
        refresh_token,
        id_token,
    });
    if let Some(a) = allowance {
        a.apply(response.headers_mut());
    }
    Ok(response)
}

/// A 200 token response with the caching headers RFC 6749 §5.1 requires.
pub(crate) fn token_response(body: TokenResponse) -> Response {
    (
        [
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(body),
    )
        .into_response()
}
