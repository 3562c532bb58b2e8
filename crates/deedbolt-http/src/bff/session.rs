//! The backend-for-frontend's state: its settings, the sealed session and flow cookies,
//! and the token refreshes it shares between concurrent requests of one session.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, HeaderValue};
use deedbolt_client::{
    ClientConfig, ClientCredentials, ClientError, OAuthClient, PkcePair, PlainHttp, SealKey,
    Sealer, Secret, TokenSet,
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use url::Url;

use crate::error::ApiError;
use crate::web::cookies::{CookiePolicy, SameSite};

/// The session cookie (sealed tokens).
pub const SESSION_COOKIE: &str = "deedbolt_bff";
/// The cookie holding the browser's pending sign-ins (sealed).
pub const FLOW_COOKIE: &str = "deedbolt_bff_flow";
/// The path of both BFF cookies. Not `/`, so they are sent to the BFF only; hence their
/// `__Secure-` prefix on https rather than `__Host-`, which requires `Path=/`.
pub(super) const COOKIE_PATH: &str = "/bff";
/// How long a sign-in may take, from `/bff/login` to `/bff/callback`.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// How many sign-ins one browser may have pending at once (tabs); a new one drops the
/// oldest. Bounds the flow cookie's size (well under the 4096 bytes browsers keep).
pub const MAX_PARALLEL_FLOWS: usize = 3;
/// The longest `return_to` kept (longer ones fall back to `/app`).
pub(super) const MAX_RETURN_TO: usize = 256;
/// How many spent states are remembered at most (then the oldest are forgotten).
pub(super) const SPENT_CAPACITY: usize = 10_000;
/// The header carrying the CSRF token on unsafe `/bff/api` methods and logout.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The default scope the BFF asks for: what the demo tenant app needs.
pub const DEFAULT_SCOPE: &str =
    "openid profile email tenant:read financial:read maintenance:request";
/// By default, refresh the access token when it expires within this.
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(60);
/// How long a refresh result is shared with concurrent requests that carried the same
/// (now rotated) refresh token.
pub(super) const REFRESH_SHARE: Duration = Duration::from_secs(30);
/// The sealing context of the session cookie (a sealed value cannot be moved elsewhere).
pub(super) const SESSION_CONTEXT: &[u8] = b"deedbolt-bff-session-v1";
/// The sealing context of the flow cookie.
pub(super) const FLOW_CONTEXT: &[u8] = b"deedbolt-bff-flow-v1";

/// How the BFF is configured.
pub struct BffSettings {
    /// Its client id (a confidential client registered for `authorization_code` and
    /// `refresh_token`, with redirect URI `{issuer}/bff/callback`).
    pub client_id: String,
    /// Its client secret.
    pub client_secret: Secret,
    /// Cookie sealing keys; the first seals.
    pub cookie_keys: Vec<SealKey>,
    /// The scope to request.
    pub scope: String,
    /// Refresh the access token when it expires within this.
    pub refresh_before: Duration,
}

impl std::fmt::Debug for BffSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BffSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("cookie_keys", &self.cookie_keys.len())
            .field("scope", &self.scope)
            .finish()
    }
}

/// Why the BFF could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BffError {
    /// A URL could not be built.
    #[error("invalid BFF endpoint URL: {0}")]
    Url(#[from] url::ParseError),
    /// The OAuth client could not be built.
    #[error("cannot configure the BFF's OAuth client: {0}")]
    Client(#[from] ClientError),
    /// The sealing keys are unusable.
    #[error("invalid BFF cookie keys: {0}")]
    Keys(#[from] deedbolt_client::SealKeyError),
}

/// What a pending sign-in remembers (sealed in the flow cookie).
#[derive(Serialize, Deserialize)]
pub(super) struct Flow {
    pub(super) state: String,
    pub(super) nonce: String,
    /// Serialized as the verifier only (see [`PkcePair`]).
    pub(super) pkce: PkcePair,
    pub(super) return_to: String,
    /// Unix seconds after which the flow is refused.
    pub(super) exp: u64,
}

/// The seconds since the Unix epoch.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// States already used at the callback, until they would have expired: single use
/// without a server-side table of pending flows. Bounded, and never refusing: when full
/// it forgets the oldest (see the module docs).
#[derive(Default)]
pub(super) struct SpentStates(Mutex<HashMap<[u8; 32], u64>>);

impl SpentStates {
    /// Marks `state` (valid until `exp`) as spent; `false` if it already was.
    pub(super) fn spend(&self, state: &str, exp: u64, now: u64) -> bool {
        let key = crate::web::csrf::hash(state);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(&key) {
            return false;
        }
        if map.len() >= SPENT_CAPACITY {
            map.retain(|_, until| *until > now);
            while map.len() >= SPENT_CAPACITY {
                let Some(oldest) = map.iter().min_by_key(|(_, until)| **until).map(|(k, _)| *k)
                else {
                    break;
                };
                map.remove(&oldest);
            }
        }
        map.insert(key, exp);
        true
    }
}

/// The sealed content of the session cookie.
#[derive(Serialize, Deserialize)]
pub(super) struct Session {
    pub(super) tokens: TokenSet,
    pub(super) sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    pub(super) csrf: String,
}

pub(super) type SharedRefresh = Arc<OnceCell<Result<TokenSet, String>>>;

/// The BFF: its OAuth client, sealer and the states spent at the callback.
pub struct Bff {
    pub(super) client: OAuthClient,
    pub(super) sealer: Sealer,
    pub(super) redirect_uri: String,
    pub(super) scope: String,
    pub(super) refresh_before: Duration,
    /// `http://127.0.0.1:PORT`: the local listener, for API calls.
    pub(super) api_base: String,
    /// The issuer's origin, which unsafe requests' `Origin` must equal.
    pub(super) origin: String,
    pub(super) http: reqwest::Client,
    pub(super) spent: SpentStates,
    /// Refreshes in flight or just done, by SHA-256 of the refresh token they spent:
    /// concurrent requests carrying the same session share one refresh instead of the
    /// second one presenting a rotated token (which the server treats as theft).
    pub(super) refreshes: Mutex<HashMap<[u8; 32], (Instant, SharedRefresh)>>,
}

impl std::fmt::Debug for Bff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bff")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl Bff {
    /// The BFF of the server with `issuer`, listening on `local`.
    pub fn new(settings: BffSettings, issuer: &str, local: SocketAddr) -> Result<Self, BffError> {
        let ip = match local.ip() {
            std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        let api_base = format!("http://{}", SocketAddr::new(ip, local.port()));
        let local_url = |path: &str| Url::parse(&format!("{api_base}{path}"));
        let config = ClientConfig {
            issuer: issuer.to_owned(),
            // The browser goes to the public issuer; the BFF itself calls the loopback
            // listener directly (no hairpin through a proxy, no TLS on loopback).
            authorization_endpoint: Url::parse(&format!("{issuer}/authorize"))?,
            token_endpoint: local_url("/token")?,
            revocation_endpoint: Some(local_url("/revoke")?),
            jwks_uri: Some(local_url("/jwks.json")?),
            authorization_response_iss_parameter_supported: true,
            client_id: settings.client_id,
            credentials: ClientCredentials::SecretBasic(settings.client_secret),
            plain_http: PlainHttp::LoopbackOnly,
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(ClientError::from)?;
        let client = OAuthClient::new(http.clone(), config)?;
        let origin = Url::parse(issuer)?.origin().ascii_serialization();
        Ok(Bff {
            client,
            sealer: Sealer::new(settings.cookie_keys)?,
            redirect_uri: format!("{issuer}/bff/callback"),
            scope: settings.scope,
            refresh_before: settings.refresh_before,
            api_base,
            origin,
            http,
            spent: SpentStates::default(),
            refreshes: Mutex::new(HashMap::new()),
        })
    }

    /// The user's `name` from UserInfo, if the scope and the user have one.
    pub(super) async fn userinfo_name(
        &self,
        tokens: &TokenSet,
        sub: &str,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
        let res = self
            .http
            .get(format!("{}/userinfo", self.api_base))
            .bearer_auth(tokens.access_token.expose())
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("UserInfo answered {}", res.status()).into());
        }
        let info: serde_json::Value = res.json().await?;
        if info.get("sub").and_then(|v| v.as_str()) != Some(sub) {
            return Err("UserInfo sub differs from the ID token's".into());
        }
        Ok(info.get("name").and_then(|v| v.as_str()).map(str::to_owned))
    }

    pub(super) fn open_session(
        &self,
        cookies: CookiePolicy,
        headers: &HeaderMap,
    ) -> Option<Session> {
        let sealed = cookies.find(headers, SESSION_COOKIE, COOKIE_PATH)?;
        self.sealer.open_json(SESSION_CONTEXT, sealed).ok()
    }

    /// The browser's pending sign-ins that have not expired (none if the cookie is
    /// missing, tampered with or sealed by a retired key).
    pub(super) fn open_flows(
        &self,
        cookies: CookiePolicy,
        headers: &HeaderMap,
        now: u64,
    ) -> Vec<Flow> {
        let Some(sealed) = cookies.find(headers, FLOW_COOKIE, COOKIE_PATH) else {
            return Vec::new();
        };
        let mut flows: Vec<Flow> = self
            .sealer
            .open_json(FLOW_CONTEXT, sealed)
            .unwrap_or_default();
        flows.retain(|f| f.exp > now);
        flows
    }

    /// The `Set-Cookie` that leaves the browser with `flows` pending (clears the cookie
    /// when there are none).
    pub(super) fn flow_cookie(
        &self,
        cookies: CookiePolicy,
        flows: &[Flow],
        now: u64,
    ) -> Result<HeaderValue, ApiError> {
        let Some(last) = flows.iter().map(|f| f.exp).max() else {
            return Ok(cookies.set(FLOW_COOKIE, "", COOKIE_PATH, Some(0), SameSite::Lax));
        };
        let sealed = self
            .sealer
            .seal_json(FLOW_CONTEXT, &flows)
            .map_err(ApiError::internal)?;
        let age = i64::try_from(last.saturating_sub(now)).unwrap_or(0);
        Ok(cookies.set(FLOW_COOKIE, &sealed, COOKIE_PATH, Some(age), SameSite::Lax))
    }

    pub(super) fn seal_session(&self, session: &Session) -> Result<String, ApiError> {
        self.sealer
            .seal_json(SESSION_CONTEXT, session)
            .map_err(ApiError::internal)
    }

    /// The session's tokens, refreshed if they expire soon. `Ok(None)`: the session is
    /// over (the refresh token was refused).
    pub(super) async fn fresh_tokens(
        &self,
        session: &Session,
    ) -> Result<Option<TokenSet>, ApiError> {
        if !session
            .tokens
            .needs_refresh(SystemTime::now(), self.refresh_before)
        {
            return Ok(Some(session.tokens.clone()));
        }
        let Some(refresh) = &session.tokens.refresh_token else {
            return Ok(None);
        };
        let key = crate::web::csrf::hash(refresh.expose());
        let cell = {
            let mut map = self.refreshes.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, (at, _)| at.elapsed() < REFRESH_SHARE);
            map.entry(key)
                .or_insert_with(|| (Instant::now(), Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        let result = cell
            .get_or_init(|| async {
                self.client
                    .refresh(&session.tokens)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
        match result {
            Ok(tokens) => Ok(Some(tokens.clone())),
            Err(e) => {
                tracing::info!(error = %e, sub = %session.sub, "BFF refresh refused; session ended");
                Ok(None)
            }
        }
    }
}
