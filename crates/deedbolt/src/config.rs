//! Configuration: defaults, then a TOML file (`--config`), then `DEEDBOLT_*` environment
//! variables, then command-line flags; validated once at start, failing closed.
//!
//! Flags and environment variables are the same clap arguments (`#[arg(long, env)]`), so
//! a flag always wins over its variable, and both win over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use deedbolt_core::jose::SigningAlg;
use deedbolt_core::seal::MasterKey;
use deedbolt_core::token::AccessTokenLifetime;
use serde::Deserialize;

/// The environment variable holding the master key. Deliberately not a flag: flags show
/// up in `ps` and shell history.
pub const MASTER_KEY_ENV: &str = "DEEDBOLT_MASTER_KEY";

/// The environment variable holding the alert webhook's HMAC key; like the master key,
/// never a flag (nor a config-file key, which tends to end up in version control).
pub const WEBHOOK_SECRET_ENV: &str = "DEEDBOLT_ALERT_WEBHOOK_SECRET";

/// Every `DEEDBOLT_*` variable deedbolt reads; any other one is probably a typo and is
/// warned about, since a misspelled security setting would otherwise fail silently.
pub const KNOWN_ENV: &[&str] = &[
    "DEEDBOLT_CONFIG",
    "DEEDBOLT_DATA_DIR",
    "DEEDBOLT_DATABASE_URL",
    "DEEDBOLT_LOG",
    "DEEDBOLT_LOG_FORMAT",
    "DEEDBOLT_LISTEN",
    "DEEDBOLT_ISSUER",
    "DEEDBOLT_AUDIENCE",
    "DEEDBOLT_ACCESS_TOKEN_TTL",
    "DEEDBOLT_SIGNING_ALG",
    "DEEDBOLT_KEY_REFRESH_INTERVAL",
    "DEEDBOLT_REFRESH_TOKEN_TTL",
    "DEEDBOLT_REFRESH_FAMILY_TTL",
    "DEEDBOLT_REFRESH_GRACE",
    "DEEDBOLT_RATE_LIMIT_TOKEN",
    "DEEDBOLT_RATE_LIMIT_REFRESH",
    "DEEDBOLT_RATE_LIMIT_API",
    "DEEDBOLT_RATE_LIMIT_LOGIN",
    "DEEDBOLT_RATE_LIMIT_AUTHORIZE",
    "DEEDBOLT_TRUSTED_PROXIES",
    "DEEDBOLT_AUDIT_RETENTION",
    "DEEDBOLT_AUTO_REVOKE",
    "DEEDBOLT_ANOMALY_THRESHOLD",
    "DEEDBOLT_ALERT_AUTH_FAILURES",
    "DEEDBOLT_ALERT_WEBHOOK",
    "DEEDBOLT_BFF_CLIENT_ID",
    "DEEDBOLT_BFF_SCOPE",
    "DEEDBOLT_BFF_REFRESH_BEFORE",
    "DEEDBOLT_METRICS_LISTEN",
    METRICS_TOKEN_ENV,
    "DEEDBOLT_DATABASE_MAX_CONNECTIONS",
    "DEEDBOLT_REDIS_URL",
    "DEEDBOLT_REDIS_PREFIX",
    BFF_SECRET_ENV,
    BFF_COOKIE_KEYS_ENV,
    WEBHOOK_SECRET_ENV,
    MASTER_KEY_ENV,
];

/// The backend-for-frontend's client secret; environment only, like the master key.
pub const BFF_SECRET_ENV: &str = "DEEDBOLT_BFF_CLIENT_SECRET";

/// The backend-for-frontend's cookie sealing keys, `id:base64url(32 bytes)` separated by
/// commas, the first sealing (rotation: prepend a new key, drop the old one once its
/// cookies have expired); environment only.
pub const BFF_COOKIE_KEYS_ENV: &str = "DEEDBOLT_BFF_COOKIE_KEYS";

/// The bearer token that reads `/metrics` (at least 32 characters); environment only.
pub const METRICS_TOKEN_ENV: &str = "DEEDBOLT_METRICS_TOKEN";

/// The `DEEDBOLT_*` variables set in the environment that deedbolt does not know.
pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("DEEDBOLT_") && !KNOWN_ENV.contains(&k.as_str()))
        .collect()
}

/// The contents of the `--config` TOML file. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the embedded database lives.
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of the embedded database, `postgres://user:password@host/db`
    /// (prefer `DEEDBOLT_DATABASE_URL` for a URL with a password: files get copied).
    pub database_url: Option<String>,
    /// The most PostgreSQL connections one instance keeps open (default 16).
    pub database_max_connections: Option<u32>,
    /// Shared fast state on Redis, `redis://host:port` (several instances).
    pub redis_url: Option<String>,
    /// The prefix of every Redis key (default `deedbolt:`).
    pub redis_prefix: Option<String>,
    /// The address to listen on.
    pub listen: Option<String>,
    /// The issuer URL.
    pub issuer: Option<String>,
    /// The `aud` of access tokens.
    pub audience: Option<String>,
    /// Access-token lifetime, e.g. `"15m"` or `900`.
    pub access_token_ttl: Option<DurationValue>,
    /// `ES256`, `RS256` or `EdDSA`.
    pub signing_alg: Option<String>,
    /// How often a running server reloads keys rotated by the CLI.
    pub key_refresh_interval: Option<DurationValue>,
    /// Lifetime of one refresh token, e.g. `"14d"`.
    pub refresh_token_ttl: Option<DurationValue>,
    /// Absolute lifetime of a refresh-token family, e.g. `"90d"`.
    pub refresh_family_ttl: Option<DurationValue>,
    /// Grace period for a repeated refresh, e.g. `"0s"`.
    pub refresh_grace: Option<DurationValue>,
    /// Token requests per client, `COUNT/WINDOW` or `off`.
    pub rate_limit_token: Option<String>,
    /// Refresh requests per client.
    pub rate_limit_refresh: Option<String>,
    /// API calls per client.
    pub rate_limit_api: Option<String>,
    /// Failed logins per account and IP (four times that per IP, ten times per account).
    pub rate_limit_login: Option<String>,
    /// Authorization requests per client IP.
    pub rate_limit_authorize: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// How long audit records are kept, e.g. `"90d"`.
    pub audit_retention: Option<DurationValue>,
    /// Revoke tokens whose usage is anomalous.
    pub auto_revoke: Option<bool>,
    /// The anomaly score that raises an alert (default 5).
    pub anomaly_threshold: Option<f64>,
    /// Failed authentications per IP that raise an alert, `COUNT/WINDOW` (default `5/5m`).
    pub alert_auth_failures: Option<String>,
    /// Where alerts are POSTed (https, or http on loopback). The HMAC key is
    /// `DEEDBOLT_ALERT_WEBHOOK_SECRET`, from the environment only.
    pub alert_webhook: Option<String>,
    /// The backend-for-frontend's client id (its secret and cookie keys come from
    /// `DEEDBOLT_BFF_CLIENT_SECRET` and `DEEDBOLT_BFF_COOKIE_KEYS`).
    pub bff_client_id: Option<String>,
    /// The scope the backend-for-frontend requests.
    pub bff_scope: Option<String>,
    /// How long before its expiry the backend-for-frontend refreshes an access token.
    pub bff_refresh_before: Option<DurationValue>,
    /// A separate listener serving only `/metrics` (e.g. on a private network).
    pub metrics_listen: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// A tracing filter, e.g. `info,deedbolt=debug`.
    pub log: Option<String>,
}

/// A duration in a config file: seconds as a number, or a string with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    /// Whole seconds.
    Secs(u64),
    /// `"90s"`, `"15m"`, `"1h"`, `"250ms"`.
    Text(String),
}

impl DurationValue {
    fn resolve(&self, what: &str) -> anyhow::Result<Duration> {
        match self {
            DurationValue::Secs(s) => Ok(Duration::from_secs(*s)),
            DurationValue::Text(t) => parse_duration(t).with_context(|| format!("invalid {what}")),
        }
    }
}

/// Parses `"250ms"`, `"90s"`, `"15m"`, `"1h"`, `"14d"`, `"2w"` or bare seconds (`"900"`).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a duration like 90s, 15m or 1h"))?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        "w" => Duration::from_secs(n.saturating_mul(7 * 86_400)),
        other => bail!("unknown duration unit `{other}` in `{s}` (use ms, s, m, h, d or w)"),
    };
    Ok(d)
}

/// Reads and parses the TOML config file.
pub fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where durable state lives: the SQLite file in the data directory, or PostgreSQL.
    pub database: crate::storage::Database,
}

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./deedbolt-data";

/// Resolves the data directory (flag/env, then file, then the default) and the database
/// (PostgreSQL if a URL is given by flag/env or the file; the embedded SQLite file
/// otherwise), with its pool size (flag/env, then file, then 16).
pub fn resolve_common(
    flag: Option<PathBuf>,
    database_url: Option<crate::storage::DatabaseUrl>,
    max_connections: Option<u32>,
    file: &FileConfig,
) -> anyhow::Result<CommonSettings> {
    let database_url = match database_url {
        Some(url) => Some(url),
        None => file
            .database_url
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("invalid database_url in the config file")?,
    };
    let max_connections = max_connections
        .or(file.database_max_connections)
        .unwrap_or(deedbolt_store_postgres::DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        bail!("the database pool needs at least 1 connection (database_max_connections)");
    }
    Ok(CommonSettings {
        data_dir: flag
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        database: match database_url {
            Some(url) => crate::storage::Database::Postgres {
                url,
                max_connections,
            },
            None => crate::storage::Database::Embedded,
        },
    })
}

/// Resolves the Redis settings from the flags/environment, then the file; `None`: no
/// Redis (in-process shared state, one instance).
pub fn resolve_redis(
    url: Option<String>,
    prefix: Option<String>,
    file: &FileConfig,
) -> anyhow::Result<Option<RedisSettings>> {
    let url = url
        .or_else(|| file.redis_url.clone())
        .filter(|u| !u.trim().is_empty());
    let Some(url) = url else { return Ok(None) };
    let prefix = prefix
        .or_else(|| file.redis_prefix.clone())
        .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned());
    if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("the Redis key prefix must be non-empty, without spaces or control characters");
    }
    Ok(Some(RedisSettings {
        url: RedisUrl::parse(&url)?,
        prefix,
    }))
}

/// Validated settings of `deedbolt serve`.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Shared settings.
    pub common: CommonSettings,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The issuer, if configured; otherwise derived from the bound address.
    pub issuer: Option<String>,
    /// The access-token audience, if configured; otherwise `{issuer}/api`.
    pub audience: Option<String>,
    /// Access-token lifetime.
    pub access_token_lifetime: AccessTokenLifetime,
    /// Signing algorithm for new keys.
    pub signing_alg: SigningAlg,
    /// How often to reload keys from storage.
    pub key_refresh_interval: Duration,
    /// Refresh-token lifetimes.
    pub refresh: deedbolt_core::refresh::RefreshPolicy,
    /// Rate limits.
    pub limits: deedbolt_http::RateLimits,
    /// Proxies whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long audit records are kept, in seconds.
    pub audit_retention_secs: i64,
    /// Detection settings.
    pub detection: deedbolt_http::runtime::security::DetectionSettings,
    /// The alert webhook, if one is configured.
    pub alert_webhook: Option<deedbolt_http::runtime::webhook::WebhookSettings>,
    /// The backend-for-frontend, if configured.
    pub bff: Option<BffConfig>,
    /// The listener serving only `/metrics`, if configured.
    pub metrics_listen: Option<SocketAddr>,
    /// The token that reads `/metrics`, if configured.
    pub metrics_token: Option<deedbolt_http::metrics::MetricsToken>,
    /// Shared fast state on Redis; `None`: in-process (one instance).
    pub redis: Option<RedisSettings>,
}

/// Where the shared fast state (rate limits, revocation propagation) lives when scaled out.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: RedisUrl,
    /// Every key is put under this prefix (several deployments can share one Redis).
    pub prefix: String,
}

/// The default [`RedisSettings::prefix`].
pub const DEFAULT_REDIS_PREFIX: &str = "deedbolt:";

/// A Redis URL. It may carry a password, so `Debug` and `Display` show it with the
/// user information replaced by `***`; [`RedisUrl::expose`] gives the real text.
#[derive(Clone)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Parses `redis://…`; the error never repeats the text.
    ///
    /// ```
    /// use deedbolt::config::RedisUrl;
    /// let url = RedisUrl::parse("redis://:hunter2@10.0.0.5:6379/0").unwrap();
    /// assert_eq!(url.to_string(), "redis://***@10.0.0.5:6379/0");
    /// assert!(!format!("{url:?}").contains("hunter2"));
    /// assert!(RedisUrl::parse("http://10.0.0.5").is_err());
    /// ```
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if !text.starts_with("redis://") || text.len() <= "redis://".len() {
            bail!("the Redis URL must look like redis://host:port (not repeated: it may hold a password)");
        }
        Ok(RedisUrl(text.to_owned()))
    }

    /// The URL as given, password included: for the client only, never for a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rest = &self.0["redis://".len()..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => write!(f, "redis://***{}", &rest[at..]),
            None => f.write_str(&self.0),
        }
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// The backend-for-frontend's settings.
#[derive(Clone)]
pub struct BffConfig {
    /// Its client id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: deedbolt_client::Secret,
    /// Cookie sealing keys, the first sealing.
    pub cookie_keys: Vec<deedbolt_client::SealKey>,
    /// The scope it requests.
    pub scope: String,
    /// Refresh access tokens expiring within this.
    pub refresh_before: Duration,
}

impl std::fmt::Debug for BffConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BffConfig")
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The serve flags as clap parsed them (flag or environment variable), before merging.
#[derive(Debug, Default, Clone)]
pub struct ServeOverrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--issuer`.
    pub issuer: Option<String>,
    /// `--audience`.
    pub audience: Option<String>,
    /// `--access-token-ttl`.
    pub access_token_ttl: Option<String>,
    /// `--signing-alg`.
    pub signing_alg: Option<String>,
    /// `--key-refresh-interval`.
    pub key_refresh_interval: Option<String>,
    /// `--refresh-token-ttl`.
    pub refresh_token_ttl: Option<String>,
    /// `--refresh-family-ttl`.
    pub refresh_family_ttl: Option<String>,
    /// `--refresh-grace`.
    pub refresh_grace: Option<String>,
    /// `--rate-limit-token`.
    pub rate_limit_token: Option<String>,
    /// `--rate-limit-refresh`.
    pub rate_limit_refresh: Option<String>,
    /// `--rate-limit-api`.
    pub rate_limit_api: Option<String>,
    /// `--rate-limit-login`.
    pub rate_limit_login: Option<String>,
    /// `--rate-limit-authorize`.
    pub rate_limit_authorize: Option<String>,
    /// `--trusted-proxies` (comma-separated IPs).
    pub trusted_proxies: Option<String>,
    /// `--audit-retention`.
    pub audit_retention: Option<String>,
    /// `--auto-revoke`.
    pub auto_revoke: Option<bool>,
    /// `--anomaly-threshold`.
    pub anomaly_threshold: Option<f64>,
    /// `--alert-auth-failures`.
    pub alert_auth_failures: Option<String>,
    /// `--alert-webhook`.
    pub alert_webhook: Option<String>,
    /// `DEEDBOLT_ALERT_WEBHOOK_SECRET` (see [`webhook_secret_from_env`]; never a flag).
    pub alert_webhook_secret: Option<deedbolt_http::runtime::webhook::WebhookSecret>,
    /// `--bff-client-id`.
    pub bff_client_id: Option<String>,
    /// `--bff-scope`.
    pub bff_scope: Option<String>,
    /// `--bff-refresh-before`.
    pub bff_refresh_before: Option<String>,
    /// `DEEDBOLT_BFF_CLIENT_SECRET` (never a flag).
    pub bff_client_secret: Option<String>,
    /// `DEEDBOLT_BFF_COOKIE_KEYS` (never a flag).
    pub bff_cookie_keys: Option<String>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<String>,
    /// `DEEDBOLT_METRICS_TOKEN` (never a flag).
    pub metrics_token: Option<String>,
    /// `--redis-url`.
    pub redis_url: Option<String>,
    /// `--redis-prefix`.
    pub redis_prefix: Option<String>,
}

/// The metrics listener and token: an address to bind, and a token of at least
/// [`MIN_TOKEN_CHARS`](deedbolt_http::metrics::MIN_TOKEN_CHARS) characters.
fn metrics_settings(
    listen: Option<String>,
    token: Option<String>,
) -> anyhow::Result<(
    Option<SocketAddr>,
    Option<deedbolt_http::metrics::MetricsToken>,
)> {
    use deedbolt_http::metrics::{MetricsToken, MIN_TOKEN_CHARS};
    let listen = listen
        .map(|text| {
            text.parse::<SocketAddr>().with_context(|| {
                format!("invalid metrics listen address `{text}` (expected IP:PORT)")
            })
        })
        .transpose()?;
    let token = token.map(MetricsToken::new);
    if token.as_ref().is_some_and(|t| t.chars() < MIN_TOKEN_CHARS) {
        bail!("{METRICS_TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters long");
    }
    Ok((listen, token))
}

/// The backend-for-frontend from its three settings: all or none.
fn bff_config(
    client_id: Option<String>,
    secret: Option<String>,
    keys: Option<String>,
    scope: Option<String>,
    refresh_before: Duration,
) -> anyhow::Result<Option<BffConfig>> {
    if refresh_before > Duration::from_secs(3600) {
        bail!("bff_refresh_before must be at most 1h (the longest access-token lifetime)");
    }
    match (client_id, secret, keys) {
        (None, None, None) => Ok(None),
        (Some(id), Some(secret), Some(keys)) => {
            deedbolt_core::ids::ClientId::parse(&id).context("invalid BFF client id")?;
            let cookie_keys = deedbolt_client::SealKey::parse_list(&keys)
                .with_context(|| format!("invalid {BFF_COOKIE_KEYS_ENV}"))?;
            let scope = scope.unwrap_or_else(|| deedbolt_http::bff::DEFAULT_SCOPE.to_owned());
            let parsed: deedbolt_core::scope::ScopeSet =
                scope.parse().context("invalid BFF scope")?;
            if !parsed.contains(deedbolt_core::scope::Scope::Openid) {
                bail!("the BFF scope must include openid (the BFF verifies an ID token)");
            }
            Ok(Some(BffConfig {
                client_id: id,
                client_secret: deedbolt_client::Secret::new(secret),
                cookie_keys,
                scope,
                refresh_before,
            }))
        }
        (id, secret, keys) => {
            let missing: Vec<&str> = [
                (id.is_none(), "DEEDBOLT_BFF_CLIENT_ID (or --bff-client-id)"),
                (secret.is_none(), BFF_SECRET_ENV),
                (keys.is_none(), BFF_COOKIE_KEYS_ENV),
            ]
            .into_iter()
            .filter_map(|(m, name)| m.then_some(name))
            .collect();
            bail!(
                "the backend-for-frontend needs all of its settings; missing: {} \
                 (or run the demo with `deedbolt serve --demo`, which stores its own)",
                missing.join(", ")
            )
        }
    }
}

/// Reads an environment-only setting; set but empty is an error.
pub fn secret_env(name: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => bail!("{name} is set but empty"),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

fn limit(
    flag: Option<String>,
    file: &Option<String>,
    default: &str,
    what: &str,
) -> anyhow::Result<Option<deedbolt_core::ratelimit::RateLimit>> {
    let text = flag
        .or_else(|| file.clone())
        .unwrap_or_else(|| default.to_owned());
    deedbolt_core::ratelimit::RateLimit::parse(&text)
        .with_context(|| format!("invalid {what} rate limit"))
}

fn pick(
    flag: Option<String>,
    file: &Option<DurationValue>,
    default: Duration,
    what: &str,
) -> anyhow::Result<Duration> {
    match flag {
        Some(t) => parse_duration(&t).with_context(|| format!("invalid {what}")),
        None => match file {
            Some(v) => v.resolve(what),
            None => Ok(default),
        },
    }
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl ServeSettings {
    /// Merges flags/env over the file over defaults, and validates the result.
    pub fn resolve(
        common: CommonSettings,
        o: ServeOverrides,
        file: &FileConfig,
    ) -> anyhow::Result<Self> {
        let listen_text = o
            .listen
            .or_else(|| file.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!(
                "invalid listen address `{listen_text}` (expected IP:PORT, e.g. 127.0.0.1:8080)"
            )
        })?;

        let issuer = o.issuer.or_else(|| file.issuer.clone());
        if let Some(issuer) = &issuer {
            validate_issuer(issuer)?;
        } else if listen.ip().is_unspecified() {
            bail!(
                "listening on {listen} needs an explicit issuer: set --issuer or DEEDBOLT_ISSUER \
                 to the public https URL of this server"
            );
        }
        let audience = o.audience.or_else(|| file.audience.clone());
        if audience.as_deref().is_some_and(|a| a.trim().is_empty()) {
            bail!("audience must not be empty");
        }

        let ttl = match o.access_token_ttl {
            Some(t) => parse_duration(&t).context("invalid access-token lifetime")?,
            None => match &file.access_token_ttl {
                Some(v) => v.resolve("access_token_ttl")?,
                None => Duration::from_secs(AccessTokenLifetime::default().as_secs() as u64),
            },
        };
        let access_token_lifetime = AccessTokenLifetime::from_secs(ttl.as_secs() as i64)?;

        let alg_text = o
            .signing_alg
            .or_else(|| file.signing_alg.clone())
            .unwrap_or_else(|| "ES256".into());
        let signing_alg: SigningAlg = alg_text.parse()?;

        let refresh_interval = match o.key_refresh_interval {
            Some(t) => parse_duration(&t).context("invalid key refresh interval")?,
            None => match &file.key_refresh_interval {
                Some(v) => v.resolve("key_refresh_interval")?,
                None => Duration::from_secs(1),
            },
        };
        if refresh_interval < Duration::from_millis(50)
            || refresh_interval > Duration::from_secs(3600)
        {
            bail!("key refresh interval must be between 50ms and 1h");
        }

        let defaults = deedbolt_core::refresh::RefreshPolicy::default();
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let refresh = deedbolt_core::refresh::RefreshPolicy::new(
            secs(pick(
                o.refresh_token_ttl,
                &file.refresh_token_ttl,
                Duration::from_secs(defaults.idle_secs as u64),
                "refresh_token_ttl",
            )?),
            secs(pick(
                o.refresh_family_ttl,
                &file.refresh_family_ttl,
                Duration::from_secs(defaults.absolute_secs as u64),
                "refresh_family_ttl",
            )?),
            secs(pick(
                o.refresh_grace,
                &file.refresh_grace,
                Duration::ZERO,
                "refresh_grace",
            )?),
        )?;

        let limits = deedbolt_http::RateLimits {
            token: limit(o.rate_limit_token, &file.rate_limit_token, "10/1h", "token")?,
            refresh: limit(
                o.rate_limit_refresh,
                &file.rate_limit_refresh,
                "5/5m",
                "refresh",
            )?,
            api: limit(o.rate_limit_api, &file.rate_limit_api, "1000/1h", "API")?,
            login: limit(o.rate_limit_login, &file.rate_limit_login, "5/15m", "login")?,
            authorize: limit(
                o.rate_limit_authorize,
                &file.rate_limit_authorize,
                "60/1m",
                "authorize",
            )?,
        };
        let proxies: Vec<String> = match o.trusted_proxies {
            Some(list) => list
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
            None => file.trusted_proxies.clone().unwrap_or_default(),
        };
        let trusted_proxies = proxies
            .iter()
            .map(|p| {
                p.parse::<std::net::IpAddr>()
                    .with_context(|| format!("invalid trusted proxy `{p}` (an IP address)"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let retention = pick(
            o.audit_retention,
            &file.audit_retention,
            Duration::from_secs(90 * 86_400),
            "audit_retention",
        )?;
        if retention < Duration::from_secs(86_400) {
            bail!("audit retention must be at least 1 day");
        }
        let threshold = o
            .anomaly_threshold
            .or(file.anomaly_threshold)
            .unwrap_or(deedbolt_core::detect::DEFAULT_ANOMALY_THRESHOLD);
        if !(threshold.is_finite() && threshold > 0.0) {
            bail!("anomaly threshold must be a positive number");
        }
        let failures = o
            .alert_auth_failures
            .or_else(|| file.alert_auth_failures.clone())
            .unwrap_or_else(|| "5/5m".into());
        let failures = deedbolt_core::ratelimit::RateLimit::parse(&failures)
            .context("invalid alert_auth_failures (COUNT/WINDOW)")?
            .context("alert_auth_failures cannot be off")?;
        let detection = deedbolt_http::runtime::security::DetectionSettings {
            auth_failure_threshold: failures.count as usize,
            auth_failure_window_secs: i64::from(failures.window_secs),
            anomaly_threshold: threshold,
            auto_revoke: o.auto_revoke.or(file.auto_revoke).unwrap_or(false),
        };
        let alert_webhook = webhook_settings(
            o.alert_webhook.or_else(|| file.alert_webhook.clone()),
            o.alert_webhook_secret,
        )?;
        let bff = bff_config(
            o.bff_client_id.or_else(|| file.bff_client_id.clone()),
            o.bff_client_secret,
            o.bff_cookie_keys,
            o.bff_scope.or_else(|| file.bff_scope.clone()),
            pick(
                o.bff_refresh_before,
                &file.bff_refresh_before,
                deedbolt_http::bff::DEFAULT_REFRESH_BEFORE,
                "bff_refresh_before",
            )?,
        )?;
        let redis = resolve_redis(o.redis_url, o.redis_prefix, file)?;

        let (metrics_listen, metrics_token) = metrics_settings(
            o.metrics_listen.or_else(|| file.metrics_listen.clone()),
            o.metrics_token,
        )?;
        if metrics_listen.is_some_and(|m| m == listen && listen.port() != 0) {
            bail!("the metrics listener must not use the main listen address {listen}");
        }

        Ok(ServeSettings {
            metrics_listen,
            metrics_token,
            common,
            listen,
            issuer,
            audience,
            access_token_lifetime,
            signing_alg,
            key_refresh_interval: refresh_interval,
            refresh,
            limits,
            trusted_proxies,
            audit_retention_secs: i64::try_from(retention.as_secs()).unwrap_or(i64::MAX),
            detection,
            alert_webhook,
            bff,
            redis,
        })
    }
}

/// The alert webhook from its URL and key: https (http only on loopback, for development
/// and tests) and a key of at least 32 characters. A URL without a key is refused rather
/// than sending unsigned alerts, which a receiver could not tell from forged ones.
pub fn webhook_settings(
    url: Option<String>,
    secret: Option<deedbolt_http::runtime::webhook::WebhookSecret>,
) -> anyhow::Result<Option<deedbolt_http::runtime::webhook::WebhookSettings>> {
    use deedbolt_http::runtime::webhook::MIN_SECRET_CHARS;
    let Some(text) = url else {
        if secret.is_some() {
            tracing::warn!(
                "{WEBHOOK_SECRET_ENV} is set but no alert webhook URL is: alerts are not sent"
            );
        }
        return Ok(None);
    };
    // Never echo the URL itself: webhook URLs often embed a token.
    let url = url::Url::parse(text.trim()).context("the alert webhook is not a URL")?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        "http" => {
            bail!("the alert webhook must use https (plain http is only allowed on loopback)")
        }
        other => bail!("the alert webhook's scheme `{other}` is not http(s)"),
    }
    if url.host().is_none() {
        bail!("the alert webhook URL has no host");
    }
    if url.fragment().is_some() {
        bail!("the alert webhook URL must not have a fragment");
    }
    let Some(secret) = secret else {
        bail!(
            "an alert webhook is configured but {WEBHOOK_SECRET_ENV} is not set: set it to a \
             random key of at least {MIN_SECRET_CHARS} characters (alerts are signed with it)"
        );
    };
    if secret.chars() < MIN_SECRET_CHARS {
        bail!("{WEBHOOK_SECRET_ENV} must be at least {MIN_SECRET_CHARS} characters long");
    }
    Ok(Some(deedbolt_http::runtime::webhook::WebhookSettings {
        url,
        secret,
    }))
}

/// An issuer is an `https` URL with no query or fragment (RFC 8414 §2); plain `http` is
/// allowed only on loopback hosts, for development.
pub fn validate_issuer(issuer: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(issuer).with_context(|| format!("issuer `{issuer}` is not a URL"))?;
    if url.query().is_some() || url.fragment().is_some() {
        bail!("issuer `{issuer}` must not have a query or fragment");
    }
    if issuer.ends_with('/') {
        bail!("issuer `{issuer}` must not end with a slash");
    }
    if url.path() != "/" && !url.path().is_empty() {
        bail!("issuer `{issuer}` must not have a path (serve deedbolt at the root of its origin)");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => {
            bail!("issuer `{issuer}` must use https (plain http is only allowed on loopback)")
        }
        other => bail!("issuer scheme `{other}` is not http(s)"),
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Reads `DEEDBOLT_ALERT_WEBHOOK_SECRET`; set but empty is an error.
pub fn webhook_secret_from_env(
) -> anyhow::Result<Option<deedbolt_http::runtime::webhook::WebhookSecret>> {
    Ok(secret_env(WEBHOOK_SECRET_ENV)?.map(deedbolt_http::runtime::webhook::WebhookSecret::new))
}

/// Reads `DEEDBOLT_MASTER_KEY`. Absent means development mode; present but malformed or a
/// placeholder is an error, never a fallback.
pub fn master_key_from_env() -> anyhow::Result<Option<MasterKey>> {
    match secret_env(MASTER_KEY_ENV)? {
        Some(v) => Ok(Some(MasterKey::parse(&v)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> CommonSettings {
        CommonSettings {
            data_dir: PathBuf::from("/tmp/x"),
            database: crate::storage::Database::Embedded,
        }
    }

    #[test]
    fn defaults_are_secure_and_local() {
        let s = ServeSettings::resolve(common(), ServeOverrides::default(), &FileConfig::default())
            .unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.access_token_lifetime.as_secs(), 900);
        assert_eq!(s.signing_alg, SigningAlg::ES256);
        assert!(s.issuer.is_none());
        assert_eq!(
            s.limits.authorize.map(|l| (l.count, l.window_secs)),
            Some((60, 60)),
            "authorization requests are limited per IP by default"
        );
    }

    #[test]
    fn flags_win_over_file() {
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\naccess_token_ttl = \"30m\"\nsigning_alg = \"EdDSA\"",
        )
        .unwrap();
        let s = ServeSettings::resolve(
            common(),
            ServeOverrides {
                listen: Some("127.0.0.1:9100".into()),
                ..Default::default()
            },
            &file,
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9100);
        assert_eq!(s.access_token_lifetime.as_secs(), 1800);
        assert_eq!(s.signing_alg, SigningAlg::EdDSA);
    }

    #[test]
    fn out_of_range_lifetime_and_bad_alg_are_refused() {
        let bad_ttl = ServeOverrides {
            access_token_ttl: Some("2h".into()),
            ..Default::default()
        };
        let err = ServeSettings::resolve(common(), bad_ttl, &FileConfig::default()).unwrap_err();
        assert!(format!("{err:#}").contains("between 300 and 3600"));
        let bad_alg = ServeOverrides {
            signing_alg: Some("HS256".into()),
            ..Default::default()
        };
        assert!(ServeSettings::resolve(common(), bad_alg, &FileConfig::default()).is_err());
    }

    #[test]
    fn the_file_can_name_the_database_and_redis_and_flags_win() {
        use crate::storage::Database;
        let file: FileConfig = toml::from_str(
            "database_url = \"postgres://app:filesecret@db.internal/deedbolt\"\n\
             database_max_connections = 40\n\
             redis_url = \"redis://cache.internal:6379\"\n\
             redis_prefix = \"tenant-a:\"",
        )
        .unwrap();
        let c = resolve_common(None, None, None, &file).unwrap();
        let Database::Postgres {
            url,
            max_connections,
        } = &c.database
        else {
            panic!("PostgreSQL from the file: {c:?}");
        };
        assert!(url.to_string().contains("db.internal"));
        assert!(!format!("{c:?}").contains("filesecret"));
        assert_eq!(*max_connections, 40);
        // Flags and environment win over the file.
        let flag: crate::storage::DatabaseUrl = "postgres://other@db2.internal/x".parse().unwrap();
        let c = resolve_common(None, Some(flag), Some(8), &file).unwrap();
        assert!(
            matches!(&c.database, Database::Postgres { url, max_connections: 8 } if url.to_string().contains("db2.internal"))
        );
        let redis = resolve_redis(None, None, &file).unwrap().unwrap();
        assert_eq!(redis.prefix, "tenant-a:");
        assert_eq!(redis.url.to_string(), "redis://cache.internal:6379");
        let redis = resolve_redis(Some("redis://r2:1".into()), Some("b:".into()), &file)
            .unwrap()
            .unwrap();
        assert_eq!(
            (redis.url.to_string().as_str(), redis.prefix.as_str()),
            ("redis://r2:1", "b:")
        );
        // Bad values are refused, never echoed.
        let bad: FileConfig = toml::from_str("database_url = \"mysql://u:pw@h/db\"").unwrap();
        let err = resolve_common(None, None, None, &bad).unwrap_err();
        assert!(format!("{err:#}").contains("database_url"), "{err:#}");
        assert!(!format!("{err:#}").contains("pw@"), "{err:#}");
        let zero: FileConfig = toml::from_str("database_max_connections = 0").unwrap();
        assert!(resolve_common(None, None, None, &zero).is_err());
        assert!(resolve_redis(Some("redis://h:1".into()), Some("a b".into()), &file).is_err());
        // Without a URL anywhere: the embedded database and no Redis.
        let none = FileConfig::default();
        assert!(matches!(
            resolve_common(None, None, None, &none).unwrap().database,
            Database::Embedded
        ));
        assert!(resolve_redis(None, None, &none).unwrap().is_none());
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("listn = \"x\"").is_err());
    }

    #[test]
    fn issuer_rules() {
        assert!(validate_issuer("https://auth.example.com").is_ok());
        assert!(validate_issuer("http://127.0.0.1:8080").is_ok());
        assert!(validate_issuer("http://localhost:8080").is_ok());
        assert!(validate_issuer("http://auth.example.com").is_err());
        assert!(validate_issuer("https://auth.example.com/").is_err());
        assert!(validate_issuer("https://auth.example.com?x=1").is_err());
        assert!(validate_issuer("https://auth.example.com/tenant").is_err());
        assert!(validate_issuer("not a url").is_err());
    }

    #[test]
    fn wildcard_listen_needs_an_issuer() {
        let o = ServeOverrides {
            listen: Some("0.0.0.0:8080".into()),
            ..Default::default()
        };
        assert!(ServeSettings::resolve(common(), o, &FileConfig::default()).is_err());
    }

    #[test]
    fn webhook_rules() {
        use deedbolt_http::runtime::webhook::WebhookSecret;
        let key = || Some(WebhookSecret::new("k".repeat(32)));
        let ok = |u: &str| webhook_settings(Some(u.into()), key());
        assert!(webhook_settings(None, None).unwrap().is_none());
        assert!(webhook_settings(None, key()).unwrap().is_none());
        let s = ok("https://hooks.example.com/deedbolt?t=1")
            .unwrap()
            .unwrap();
        assert_eq!(s.url.as_str(), "https://hooks.example.com/deedbolt?t=1");
        assert!(ok("http://127.0.0.1:9000/hook").unwrap().is_some());
        assert!(ok("http://localhost:9000/hook").unwrap().is_some());
        assert!(ok("http://[::1]:9000/hook").unwrap().is_some());
        for bad in [
            "http://hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "https://hooks.example.com/x#frag",
            "not a url",
        ] {
            assert!(ok(bad).is_err(), "{bad} should be refused");
        }
        let no_key = webhook_settings(Some("https://hooks.example.com".into()), None).unwrap_err();
        assert!(format!("{no_key:#}").contains(WEBHOOK_SECRET_ENV));
        let short = webhook_settings(
            Some("https://hooks.example.com".into()),
            Some(WebhookSecret::new("k".repeat(31))),
        )
        .unwrap_err();
        assert!(format!("{short:#}").contains("at least 32"));
    }

    #[test]
    fn webhook_errors_never_echo_the_url() {
        let err = webhook_settings(
            Some("http://hooks.example.com/T/SECRET-TOKEN".into()),
            Some(deedbolt_http::runtime::webhook::WebhookSecret::new(
                "k".repeat(32),
            )),
        )
        .unwrap_err();
        assert!(!format!("{err:#}").contains("SECRET-TOKEN"));
    }

    #[test]
    fn metrics_rules() {
        assert!(metrics_settings(None, None).unwrap().0.is_none());
        let (listen, token) =
            metrics_settings(Some("127.0.0.1:9102".into()), Some("m".repeat(32))).unwrap();
        assert_eq!(listen.unwrap().port(), 9102);
        assert!(token.unwrap().matches(&"m".repeat(32)));
        let short = metrics_settings(None, Some("m".repeat(31))).unwrap_err();
        assert!(format!("{short:#}").contains("at least 32"), "{short:#}");
        assert!(
            !format!("{short:#}").contains(&"m".repeat(31)),
            "never echoed"
        );
        assert!(metrics_settings(Some("localhost".into()), None).is_err());
        let same = ServeOverrides {
            listen: Some("127.0.0.1:9100".into()),
            metrics_listen: Some("127.0.0.1:9100".into()),
            ..Default::default()
        };
        assert!(ServeSettings::resolve(common(), same, &FileConfig::default()).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("900").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("15 minutes").is_err());
        assert!(parse_duration("").is_err());
    }
}
