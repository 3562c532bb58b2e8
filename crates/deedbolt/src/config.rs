//! Configuration: defaults, then a TOML file (`--config`), then `DEEDBOLT_*` environment
//! variables, then command-line flags; validated once at start, failing closed.
//!
//! Each setting is declared once, in a *layer* struct whose fields are all `Option`s:
//! [`GlobalOverrides`] (what every command shares) and [`ServeOverrides`] (`serve`). The
//! same struct is the clap arguments (`#[arg(long, env)]`: a flag wins over its variable)
//! and the TOML file's keys ([`FileConfig`] holds one of each), and layers merge setting by
//! setting with `over` (flags/env over the file); [`resolve_common`] and
//! [`ServeSettings::resolve`] then apply the defaults and validate. Secrets are fields that
//! are neither flags nor file keys: they come from the environment only.

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
    "DEEDBOLT_PROFILE",
    "DEEDBOLT_DPOP_NONCE",
    "DEEDBOLT_REQUIRE_PAR",
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
    "DEEDBOLT_RATE_LIMIT_REGISTER",
    "DEEDBOLT_REGISTRATION",
    "DEEDBOLT_REGISTRATION_SCOPE",
    "DEEDBOLT_REGISTRATION_REDIRECT_HOSTS",
    "DEEDBOLT_TRUSTED_PROXIES",
    "DEEDBOLT_CORS_ORIGINS",
    "DEEDBOLT_AUDIT_RETENTION",
    "DEEDBOLT_AUTO_REVOKE",
    "DEEDBOLT_ANOMALY_THRESHOLD",
    "DEEDBOLT_ALERT_AUTH_FAILURES",
    "DEEDBOLT_ALERT_WEBHOOK",
    "DEEDBOLT_BFF_CLIENT_ID",
    "DEEDBOLT_BFF_SCOPE",
    "DEEDBOLT_BFF_REFRESH_BEFORE",
    "DEEDBOLT_METRICS_LISTEN",
    "DEEDBOLT_TLS_CERT",
    "DEEDBOLT_TLS_KEY",
    "DEEDBOLT_MTLS_LISTEN",
    "DEEDBOLT_MTLS_CLIENT_CA",
    "DEEDBOLT_MTLS_BASE_URL",
    "DEEDBOLT_MTLS_CERT",
    "DEEDBOLT_MTLS_KEY",
    "DEEDBOLT_OUTBOUND_CA_FILE",
    "DEEDBOLT_OUTBOUND_ALLOW_PRIVATE_NETWORKS",
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

/// Declares a configuration layer: a struct whose settings are all `Option`s, with
/// [`over`](ServeOverrides::over) merging two layers setting by setting. Each layer is at
/// once the clap arguments (flag and `DEEDBOLT_*` variable) and the TOML file's keys, so a
/// setting is declared once.
macro_rules! config_layer {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : Option<$ty:ty>, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: Option<$ty>, )*
        }

        impl $name {
            /// This layer over `lower`: every setting from `self` where it is set, from
            /// `lower` otherwise.
            #[must_use]
            pub fn over(self, lower: Self) -> Self {
                Self { $( $field: self.$field.or(lower.$field), )* }
            }
        }
    };
}

config_layer! {
    /// The settings every command shares, as one layer: the global flags (and their
    /// `DEEDBOLT_*` variables) or the config file's keys of the same names.
    #[derive(Debug, Default, Clone, Deserialize, clap::Args)]
    pub struct GlobalOverrides {
        /// Data directory holding the embedded database [default: ./deedbolt-data].
        #[arg(long, env = "DEEDBOLT_DATA_DIR", global = true)]
        pub data_dir: Option<PathBuf>,
        /// PostgreSQL URL (`postgres://user:password@host:port/db`) for durable state shared
        /// by several instances [default: the SQLite file in the data directory]. Its value
        /// is never shown (it may hold a password; prefer the variable to the file, which
        /// gets copied).
        #[arg(long, env = "DEEDBOLT_DATABASE_URL", global = true, hide_env_values = true)]
        pub database_url: Option<crate::storage::DatabaseUrl>,
        /// The most PostgreSQL connections this process keeps open [default: 16].
        #[arg(long, env = "DEEDBOLT_DATABASE_MAX_CONNECTIONS", global = true)]
        pub database_max_connections: Option<u32>,
        /// Shared fast state (rate limits, revocation propagation) on Redis,
        /// `redis://host:port`, for running several instances [default: in-process, one
        /// instance]. The CLI uses it to announce revocations to running servers at once.
        /// Never shown (it may hold a password).
        #[arg(long, env = "DEEDBOLT_REDIS_URL", global = true, hide_env_values = true)]
        pub redis_url: Option<String>,
        /// The prefix of every Redis key [default: deedbolt:].
        #[arg(long, env = "DEEDBOLT_REDIS_PREFIX", global = true)]
        pub redis_prefix: Option<String>,
        /// Log line format [default: text].
        #[arg(long, env = "DEEDBOLT_LOG_FORMAT", value_enum, global = true)]
        pub log_format: Option<crate::telemetry::LogFormat>,
        /// Log filter, e.g. `info` or `info,deedbolt_http=debug` [default: info].
        #[arg(long, env = "DEEDBOLT_LOG", global = true)]
        pub log: Option<String>,
        /// Security profile: `default`, or `fapi2` to enforce the FAPI 2.0 Security Profile
        /// (PAR for every authorization request, only private_key_jwt or mutual-TLS client
        /// authentication, only sender-constrained access tokens; docs/par-and-fapi2.md).
        /// The server enforces it; `client create` warns about clients it would refuse
        /// [default: default].
        #[arg(long, env = "DEEDBOLT_PROFILE", global = true)]
        pub profile: Option<deedbolt_core::profile::Profile>,
    }
}

config_layer! {
    /// The settings of `deedbolt serve`, as one layer. The same struct is the `serve`
    /// flags (and their `DEEDBOLT_*` variables), the config file's keys of the same names,
    /// and what tests override. The secrets at the end are read from the environment only
    /// (flags show up in `ps` and shell history, files in version control): they are
    /// neither flags nor file keys.
    #[derive(Debug, Default, Clone, Deserialize, clap::Args)]
    pub struct ServeOverrides {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "DEEDBOLT_LISTEN")]
        pub listen: Option<String>,
        /// Issuer URL [default: http://<listen address>]; must be https except on loopback.
        #[arg(long, env = "DEEDBOLT_ISSUER")]
        pub issuer: Option<String>,
        /// Audience (`aud`) of access tokens [default: <issuer>/api].
        #[arg(long, env = "DEEDBOLT_AUDIENCE")]
        pub audience: Option<String>,
        /// Access-token lifetime, 5m to 60m [default: 15m].
        #[arg(long, env = "DEEDBOLT_ACCESS_TOKEN_TTL")]
        pub access_token_ttl: Option<DurationValue>,
        /// Algorithm of access tokens: ES256, RS256 or EdDSA (a key of each is kept; ID
        /// tokens use each client's --id-token-alg) [default: ES256].
        #[arg(long, env = "DEEDBOLT_SIGNING_ALG")]
        pub signing_alg: Option<String>,
        /// How often to pick up keys and clients changed by the CLI or other instances
        /// [default: 1s].
        #[arg(long, env = "DEEDBOLT_KEY_REFRESH_INTERVAL")]
        pub key_refresh_interval: Option<DurationValue>,
        /// Lifetime of one refresh token, 1d to 8w [default: 14d].
        #[arg(long, env = "DEEDBOLT_REFRESH_TOKEN_TTL")]
        pub refresh_token_ttl: Option<DurationValue>,
        /// Absolute lifetime of a refresh-token family [default: 90d].
        #[arg(long, env = "DEEDBOLT_REFRESH_FAMILY_TTL")]
        pub refresh_family_ttl: Option<DurationValue>,
        /// Grace period in which a repeated refresh gets the same new pair, 0s to 60s
        /// [default: 0s].
        #[arg(long, env = "DEEDBOLT_REFRESH_GRACE")]
        pub refresh_grace: Option<DurationValue>,
        /// Token requests per client, COUNT/WINDOW or `off` [default: 10/1h: raise it for
        /// clients that fetch many tokens, e.g. `--rate-limit-token 600/1h`].
        #[arg(long, env = "DEEDBOLT_RATE_LIMIT_TOKEN")]
        pub rate_limit_token: Option<String>,
        /// Refresh requests per client [default: 5/5m].
        #[arg(long, env = "DEEDBOLT_RATE_LIMIT_REFRESH")]
        pub rate_limit_refresh: Option<String>,
        /// API calls per client [default: 1000/1h].
        #[arg(long, env = "DEEDBOLT_RATE_LIMIT_API")]
        pub rate_limit_api: Option<String>,
        /// Failed logins per account and client IP; four times as many per IP, ten times as
        /// many per account over all IPs [default: 5/15m].
        #[arg(long, env = "DEEDBOLT_RATE_LIMIT_LOGIN")]
        pub rate_limit_login: Option<String>,
        /// Authorization requests (/authorize) per client IP, COUNT/WINDOW or `off`
        /// [default: 60/1m].
        #[arg(long, env = "DEEDBOLT_RATE_LIMIT_AUTHORIZE")]
        pub rate_limit_authorize: Option<String>,
        /// Require every client to push its authorization requests to /par first (RFC
        /// 9126); otherwise only clients registered with
        /// require_pushed_authorization_requests must. Always on under `--profile fapi2`
        /// [default: false].
        #[arg(long, env = "DEEDBOLT_REQUIRE_PAR")]
        pub require_par: Option<bool>,
        /// Dynamic client registration at /register (RFC 7591): `token` (an initial access
        /// token from `deedbolt client registration-token create` is required), `open`
        /// (anyone may register, within --registration-scope) or `off` (404, not in
        /// discovery) [default: token].
        #[arg(long, env = "DEEDBOLT_REGISTRATION")]
        pub registration: Option<String>,
        /// The most a dynamically registered client may get when its initial access token
        /// names no scope, or in open registration (administration scopes never)
        /// [default: openid profile email property:read tenant:read maintenance:request].
        #[arg(long, env = "DEEDBOLT_REGISTRATION_SCOPE")]
        pub registration_scope: Option<String>,
        /// Comma-separated hosts that dynamically registered https redirect URIs may use:
        /// `app.example.com`, or `*.tenant.example` for one label under it (a list in the
        /// config file) [default: any host].
        #[arg(long, env = "DEEDBOLT_REGISTRATION_REDIRECT_HOSTS", value_delimiter = ',')]
        pub registration_redirect_hosts: Option<Vec<String>>,
        /// Registration requests (/register and /register/{client_id}) per client IP,
        /// COUNT/WINDOW or `off` [default: 20/1h].
        #[arg(long, env = "DEEDBOLT_RATE_LIMIT_REGISTER")]
        pub rate_limit_register: Option<String>,
        /// Comma-separated IPs of reverse proxies whose X-Forwarded-For is believed (a list
        /// in the config file) [default: none].
        #[arg(long, env = "DEEDBOLT_TRUSTED_PROXIES", value_delimiter = ',')]
        pub trusted_proxies: Option<Vec<String>>,
        /// Comma-separated origins of browser apps (e.g. https://app.example.com) that may
        /// call discovery, the JWKS, /token, /revoke and /userinfo cross-origin; `*` opens
        /// discovery and the JWKS only (a list in the config file) [default: none, no CORS
        /// headers].
        #[arg(long, env = "DEEDBOLT_CORS_ORIGINS", value_delimiter = ',')]
        pub cors_origins: Option<Vec<String>>,
        /// How long audit records are kept [default: 90d].
        #[arg(long, env = "DEEDBOLT_AUDIT_RETENTION")]
        pub audit_retention: Option<DurationValue>,
        /// Revoke a token automatically when its usage is anomalous [default: false].
        #[arg(long, env = "DEEDBOLT_AUTO_REVOKE")]
        pub auto_revoke: Option<bool>,
        /// Usage anomaly score that raises token_usage_anomaly [default: 5].
        #[arg(long, env = "DEEDBOLT_ANOMALY_THRESHOLD")]
        pub anomaly_threshold: Option<f64>,
        /// Failed authentications per IP that raise multiple_auth_failures [default: 5/5m].
        #[arg(long, env = "DEEDBOLT_ALERT_AUTH_FAILURES")]
        pub alert_auth_failures: Option<String>,
        /// URL to POST alerts to, signed with HMAC-SHA256 under
        /// DEEDBOLT_ALERT_WEBHOOK_SECRET (environment only, at least 32 characters); https,
        /// or http on loopback [default: none].
        #[arg(long, env = "DEEDBOLT_ALERT_WEBHOOK")]
        pub alert_webhook: Option<String>,
        /// The backend-for-frontend's client id; enables `/bff` and the demo app at `/app`.
        /// Its secret and cookie keys come from DEEDBOLT_BFF_CLIENT_SECRET and
        /// DEEDBOLT_BFF_COOKIE_KEYS (environment only) [default: none].
        #[arg(long, env = "DEEDBOLT_BFF_CLIENT_ID")]
        pub bff_client_id: Option<String>,
        /// The scope the backend-for-frontend requests [default: openid profile email
        /// tenant:read financial:read maintenance:request].
        #[arg(long, env = "DEEDBOLT_BFF_SCOPE")]
        pub bff_scope: Option<String>,
        /// How long before an access token expires the backend-for-frontend refreshes it,
        /// up to 1h [default: 60s].
        #[arg(long, env = "DEEDBOLT_BFF_REFRESH_BEFORE")]
        pub bff_refresh_before: Option<DurationValue>,
        /// A separate listener serving only /metrics, e.g. on a private network. On the
        /// main listener /metrics needs DEEDBOLT_METRICS_TOKEN (environment only, at least
        /// 32 characters) as a bearer token, and is not served without one [default: none].
        #[arg(long, env = "DEEDBOLT_METRICS_LISTEN")]
        pub metrics_listen: Option<String>,
        /// DPoP server nonces (RFC 9449 §8, §9): `required` makes every DPoP proof at
        /// /token and the API carry a nonce from a `DPoP-Nonce` header (clients retry once
        /// after `use_dpop_nonce`); `off` relies on `iat` and the `jti` replay cache
        /// [default: off; required, and not to be turned off, under `--profile fapi2`].
        #[arg(long, env = "DEEDBOLT_DPOP_NONCE")]
        pub dpop_nonce: Option<String>,
        /// PEM certificate chain (leaf first) that makes the main listener HTTPS; needs
        /// --tls-key [default: none, plain HTTP].
        #[arg(long, env = "DEEDBOLT_TLS_CERT")]
        pub tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert [default: none].
        #[arg(long, env = "DEEDBOLT_TLS_KEY")]
        pub tls_key: Option<PathBuf>,
        /// A second, mutual-TLS listener (RFC 8705) that requests client certificates:
        /// tls_client_auth, self_signed_tls_client_auth and certificate-bound tokens. Needs
        /// --tls-cert and --tls-key, or --mtls-cert and --mtls-key [default: none].
        #[arg(long, env = "DEEDBOLT_MTLS_LISTEN")]
        pub mtls_listen: Option<String>,
        /// PEM bundle of the CA(s) that issue client certificates for tls_client_auth;
        /// without it only self-signed certificates are accepted [default: none].
        #[arg(long, env = "DEEDBOLT_MTLS_CLIENT_CA")]
        pub mtls_client_ca: Option<PathBuf>,
        /// Public https URL of the mTLS listener, for the discovery document's
        /// mtls_endpoint_aliases [default: https://<mtls listen address>].
        #[arg(long, env = "DEEDBOLT_MTLS_BASE_URL")]
        pub mtls_base_url: Option<String>,
        /// PEM certificate chain of the mTLS listener alone, e.g. when the main listener
        /// stays plain HTTP behind a TLS-terminating proxy [default: --tls-cert].
        #[arg(long, env = "DEEDBOLT_MTLS_CERT")]
        pub mtls_cert: Option<PathBuf>,
        /// PEM private key of --mtls-cert [default: --tls-key].
        #[arg(long, env = "DEEDBOLT_MTLS_KEY")]
        pub mtls_key: Option<PathBuf>,
        /// A PEM file of extra CA certificates trusted for outbound https fetches of
        /// clients' key sets (`jwks_uri` of private_key_jwt clients), e.g. an internal CA;
        /// the public web PKI roots stay trusted [default: none].
        #[arg(long, env = "DEEDBOLT_OUTBOUND_CA_FILE")]
        pub outbound_ca_file: Option<PathBuf>,
        /// Let outbound fetches of clients' key sets reach private, loopback and
        /// link-local addresses (key sets on an internal network). Off, a `jwks_uri` whose
        /// host is or resolves only to such an address is refused, so clients cannot make
        /// the server probe its own network [default: false].
        #[arg(long, env = "DEEDBOLT_OUTBOUND_ALLOW_PRIVATE_NETWORKS")]
        pub outbound_allow_private_networks: Option<bool>,
        /// `DEEDBOLT_ALERT_WEBHOOK_SECRET` (see [`webhook_secret_from_env`]).
        #[arg(skip)]
        #[serde(skip)]
        pub alert_webhook_secret: Option<deedbolt_http::runtime::webhook::WebhookSecret>,
        /// `DEEDBOLT_BFF_CLIENT_SECRET`.
        #[arg(skip)]
        #[serde(skip)]
        pub bff_client_secret: Option<String>,
        /// `DEEDBOLT_BFF_COOKIE_KEYS`.
        #[arg(skip)]
        #[serde(skip)]
        pub bff_cookie_keys: Option<String>,
        /// `DEEDBOLT_METRICS_TOKEN`.
        #[arg(skip)]
        #[serde(skip)]
        pub metrics_token: Option<String>,
    }
}

impl ServeOverrides {
    /// The environment-only secrets (see [`ServeOverrides`]): each set but empty variable
    /// is an error.
    pub fn secrets_from_env() -> anyhow::Result<Self> {
        Ok(ServeOverrides {
            alert_webhook_secret: webhook_secret_from_env()?,
            bff_client_secret: secret_env(BFF_SECRET_ENV)?,
            bff_cookie_keys: secret_env(BFF_COOKIE_KEYS_ENV)?,
            metrics_token: secret_env(METRICS_TOKEN_ENV)?,
            ..ServeOverrides::default()
        })
    }
}

/// The contents of the `--config` TOML file: the keys of [`GlobalOverrides`] and
/// [`ServeOverrides`], flat. Unknown keys are errors (a misspelled setting would otherwise
/// be ignored), and so are the environment-only secrets.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(try_from = "FileLayer")]
pub struct FileConfig {
    /// The shared settings.
    pub global: GlobalOverrides,
    /// The `serve` settings.
    pub serve: ServeOverrides,
}

/// What the file deserializes into first: each layer takes its keys, and what is left
/// over is unknown.
#[derive(Deserialize)]
struct FileLayer {
    #[serde(flatten)]
    global: GlobalOverrides,
    #[serde(flatten)]
    serve: ServeOverrides,
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, toml::Value>,
}

impl TryFrom<FileLayer> for FileConfig {
    type Error = String;

    fn try_from(layer: FileLayer) -> Result<Self, String> {
        if let Some(key) = layer.unknown.keys().next() {
            let env = format!("DEEDBOLT_{}", key.to_ascii_uppercase());
            if [
                MASTER_KEY_ENV,
                WEBHOOK_SECRET_ENV,
                BFF_SECRET_ENV,
                BFF_COOKIE_KEYS_ENV,
                METRICS_TOKEN_ENV,
            ]
            .contains(&env.as_str())
            {
                return Err(format!(
                    "`{key}` is a secret: it is read from the environment only ({env})"
                ));
            }
            return Err(format!(
                "unknown key `{key}` (the configuration table in the README lists the keys)"
            ));
        }
        Ok(FileConfig {
            global: layer.global,
            serve: layer.serve,
        })
    }
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

/// Flags and variables give the text; it is checked with the other settings.
impl std::str::FromStr for DurationValue {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DurationValue::Text(s.to_owned()))
    }
}

/// `"15m"`: as a flag would give it.
impl From<&str> for DurationValue {
    fn from(s: &str) -> Self {
        DurationValue::Text(s.to_owned())
    }
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
    parse_file(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Parses the TOML config file's text. An error names the line but never quotes it: the
/// line may hold a password (`database_url`, `redis_url`).
pub fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
    toml::from_str(text).map_err(|e| {
        let Some(start) = e.span().map(|span| span.start) else {
            return anyhow::anyhow!("{}", e.message());
        };
        let before = text.get(..start).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        // The key of that line, if it has a plain one (a key is no secret, its value may be).
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let key = text[line_start..]
            .split_once('=')
            .map(|(k, _)| k.trim())
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        match key {
            Some(key) => anyhow::anyhow!("line {line}, `{key}`: {}", e.message()),
            None => anyhow::anyhow!("line {line}: {}", e.message()),
        }
    })
}

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Whether the data directory was chosen or is the default.
    pub data_dir_source: DataDirSource,
    /// Where durable state lives: the SQLite file in the data directory, or PostgreSQL.
    pub database: crate::storage::Database,
    /// Shared fast state on Redis; `None`: in-process (one instance).
    pub redis: Option<RedisSettings>,
    /// The security profile.
    pub profile: deedbolt_core::profile::Profile,
}

/// A PEM certificate chain (leaf first) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// The mutual-TLS listener (RFC 8705).
#[derive(Debug, Clone)]
pub struct MtlsSettings {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The server certificate it presents: `--mtls-cert`/`--mtls-key`, else the main
    /// listener's.
    pub identity: CertFiles,
    /// The CA bundle client certificates may chain to (tls_client_auth); `None`: only
    /// self-signed certificates are accepted.
    pub client_ca: Option<PathBuf>,
    /// Its public base URL, if configured; otherwise `https://<bound address>`.
    pub base_url: Option<String>,
}

/// A certificate and its key, both or neither.
fn cert_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    flags: &str,
) -> anyhow::Result<Option<CertFiles>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(CertFiles { cert, key })),
        (None, None) => Ok(None),
        _ => bail!("{flags} go together"),
    }
}

/// The TLS settings from their flags: the main listener's certificate, and the mTLS
/// listener with its own certificate or the main one, its own address, and an explicit
/// base URL when it listens on a wildcard address (like the issuer).
fn tls_settings(
    o: &mut ServeOverrides,
    listen: SocketAddr,
) -> anyhow::Result<(Option<CertFiles>, Option<MtlsSettings>)> {
    let main = cert_files(
        o.tls_cert.take(),
        o.tls_key.take(),
        "--tls-cert and --tls-key",
    )?;
    let own = cert_files(
        o.mtls_cert.take(),
        o.mtls_key.take(),
        "--mtls-cert and --mtls-key",
    )?;
    let Some(text) = o.mtls_listen.take() else {
        if o.mtls_client_ca.is_some() || o.mtls_base_url.is_some() || own.is_some() {
            bail!("--mtls-client-ca, --mtls-base-url and --mtls-cert need --mtls-listen");
        }
        return Ok((main, None));
    };
    let at: SocketAddr = text
        .parse()
        .with_context(|| format!("invalid mTLS listen address `{text}` (expected IP:PORT)"))?;
    if at == listen && at.port() != 0 {
        bail!("the mTLS listener must not use the main listen address {listen}");
    }
    let base_url = o.mtls_base_url.take();
    match &base_url {
        Some(url) => validate_mtls_base_url(url)?,
        None if at.ip().is_unspecified() => bail!(
            "listening for mTLS on {at} needs --mtls-base-url (DEEDBOLT_MTLS_BASE_URL), the \
             public https URL of that listener"
        ),
        None => {}
    }
    let Some(identity) = own.or_else(|| main.clone()) else {
        bail!(
            "--mtls-listen needs a server certificate: set --tls-cert and --tls-key (or \
             --mtls-cert and --mtls-key for the mTLS listener alone)"
        );
    };
    let mtls = MtlsSettings {
        listen: at,
        identity,
        client_ca: o.mtls_client_ca.take(),
        base_url,
    };
    Ok((main, Some(mtls)))
}

/// The mTLS base URL: https, no query, fragment or trailing slash.
fn validate_mtls_base_url(url: &str) -> anyhow::Result<()> {
    let parsed =
        url::Url::parse(url).with_context(|| format!("mTLS base URL `{url}` is not a URL"))?;
    if parsed.scheme() != "https" {
        bail!("mTLS base URL `{url}` must use https");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || url.ends_with('/') {
        bail!("mTLS base URL `{url}` must not have a query, a fragment or a trailing slash");
    }
    Ok(())
}

/// Where [`CommonSettings::data_dir`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirSource {
    /// `--data-dir`, `DEEDBOLT_DATA_DIR` or the config file.
    Given,
    /// Nothing named one: [`DEFAULT_DATA_DIR`], relative to the working directory.
    Default,
}

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./deedbolt-data";

/// Resolves the shared settings of one merged layer (flags/env over the file): the data
/// directory (or the default), the database (PostgreSQL if a URL is given; the embedded
/// SQLite file otherwise) with its pool size (default 16), and Redis.
pub fn resolve_common(layer: &GlobalOverrides) -> anyhow::Result<CommonSettings> {
    let max_connections = layer
        .database_max_connections
        .unwrap_or(deedbolt_store_postgres::DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        bail!("the database pool needs at least 1 connection (database_max_connections)");
    }
    let (data_dir, data_dir_source) = match &layer.data_dir {
        Some(dir) => (dir.clone(), DataDirSource::Given),
        None => (PathBuf::from(DEFAULT_DATA_DIR), DataDirSource::Default),
    };
    Ok(CommonSettings {
        data_dir,
        data_dir_source,
        database: match layer.database_url.clone() {
            Some(url) => crate::storage::Database::Postgres {
                url,
                max_connections,
            },
            None => crate::storage::Database::Embedded,
        },
        redis: resolve_redis(layer)?,
        profile: layer.profile.unwrap_or_default(),
    })
}

/// Resolves the Redis settings; `None`: no Redis (in-process shared state, one instance).
fn resolve_redis(layer: &GlobalOverrides) -> anyhow::Result<Option<RedisSettings>> {
    let url = layer.redis_url.as_ref().filter(|u| !u.trim().is_empty());
    let Some(url) = url else { return Ok(None) };
    let prefix = layer
        .redis_prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned());
    if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("the Redis key prefix must be non-empty, without spaces or control characters");
    }
    Ok(Some(RedisSettings {
        url: RedisUrl::parse(url)?,
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
    /// The algorithm access tokens are signed with.
    pub signing_alg: SigningAlg,
    /// How often to reload keys from storage.
    pub key_refresh_interval: Duration,
    /// Refresh-token lifetimes.
    pub refresh: deedbolt_core::refresh::RefreshPolicy,
    /// Rate limits.
    pub limits: deedbolt_http::RateLimits,
    /// Whether every client must push its authorization requests (RFC 9126): the
    /// setting, or the profile's requirement.
    pub require_par: bool,
    /// Proxies whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins allowed to call the CORS-enabled endpoints (none by default).
    pub cors: deedbolt_http::web::cors::CorsOrigins,
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
    /// Extra trust roots for outbound fetches of client key sets (none by default).
    pub outbound_roots: deedbolt_http::oauth::client_keys::OutboundRoots,
    /// Which addresses those fetches may reach.
    pub outbound_networks: deedbolt_http::oauth::client_keys::OutboundNetworks,
    /// Shared fast state on Redis; `None`: in-process (one instance).
    pub redis: Option<RedisSettings>,
    /// Whether DPoP proofs must carry a server nonce. A profile that requires nonces
    /// (FAPI 2.0) sets it to [`NonceMode::Required`](deedbolt_http::dpop::NonceMode).
    pub dpop_nonce: deedbolt_http::dpop::NonceMode,
    /// HTTPS on the main listener, if configured.
    pub tls: Option<CertFiles>,
    /// The mutual-TLS listener, if configured.
    pub mtls: Option<MtlsSettings>,
    /// Dynamic client registration.
    pub registration: deedbolt_core::registration::RegistrationSettings,
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
    value: Option<String>,
    default: &str,
    what: &str,
) -> anyhow::Result<Option<deedbolt_core::ratelimit::RateLimit>> {
    let text = value.unwrap_or_else(|| default.to_owned());
    deedbolt_core::ratelimit::RateLimit::parse(&text)
        .with_context(|| format!("invalid {what} rate limit"))
}

fn pick(value: Option<DurationValue>, default: Duration, what: &str) -> anyhow::Result<Duration> {
    value.map_or(Ok(default), |v| v.resolve(what))
}

/// The default token-endpoint limit per client: deliberately low (a client normally
/// reuses its token until it expires); raise it with `--rate-limit-token`.
pub const DEFAULT_TOKEN_RATE_LIMIT: &str = "10/1h";

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl ServeSettings {
    /// Merges `o` (flags, environment, secrets) over the file's `serve` layer over the
    /// defaults, and validates the result.
    pub fn resolve(
        common: CommonSettings,
        o: ServeOverrides,
        file: &FileConfig,
    ) -> anyhow::Result<Self> {
        let mut o = o.over(file.serve.clone());
        let listen_text = o.listen.take().unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!(
                "invalid listen address `{listen_text}` (expected IP:PORT, e.g. 127.0.0.1:8080)"
            )
        })?;

        let (tls, mtls) = tls_settings(&mut o, listen)?;

        let issuer = o.issuer;
        if let Some(issuer) = &issuer {
            validate_issuer(issuer)?;
        } else if listen.ip().is_unspecified() {
            bail!(
                "listening on {listen} needs an explicit issuer: set --issuer or DEEDBOLT_ISSUER \
                 to the public https URL of this server"
            );
        }
        let audience = o.audience;
        if audience.as_deref().is_some_and(|a| a.trim().is_empty()) {
            bail!("audience must not be empty");
        }

        let default_ttl = Duration::from_secs(AccessTokenLifetime::default().as_secs() as u64);
        let ttl = pick(o.access_token_ttl, default_ttl, "access-token lifetime")?;
        let access_token_lifetime = AccessTokenLifetime::from_secs(ttl.as_secs() as i64)?;

        let signing_alg: SigningAlg = o.signing_alg.as_deref().unwrap_or("ES256").parse()?;

        let refresh_interval = pick(
            o.key_refresh_interval,
            Duration::from_secs(1),
            "key refresh interval",
        )?;
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
                Duration::from_secs(defaults.idle_secs as u64),
                "refresh_token_ttl",
            )?),
            secs(pick(
                o.refresh_family_ttl,
                Duration::from_secs(defaults.absolute_secs as u64),
                "refresh_family_ttl",
            )?),
            secs(pick(o.refresh_grace, Duration::ZERO, "refresh_grace")?),
        )?;

        let limits = deedbolt_http::RateLimits {
            token: limit(o.rate_limit_token, DEFAULT_TOKEN_RATE_LIMIT, "token")?,
            refresh: limit(o.rate_limit_refresh, "5/5m", "refresh")?,
            api: limit(o.rate_limit_api, "1000/1h", "API")?,
            login: limit(o.rate_limit_login, "5/15m", "login")?,
            authorize: limit(o.rate_limit_authorize, "60/1m", "authorize")?,
            register: limit(o.rate_limit_register, "20/1h", "register")?,
        };
        let profile = common.profile;
        let require_par = match o.require_par {
            Some(false) if profile.requires_par() => bail!(
                "require_par cannot be false under the {profile} profile, which requires \
                 pushed authorization requests"
            ),
            Some(required) => required,
            None => profile.requires_par(),
        };
        if !profile.allows_jws_alg(signing_alg.as_str()) {
            bail!(
                "signing_alg {signing_alg} is not allowed under the {profile} profile \
                 (FAPI 2.0 allows PS256, ES256 and EdDSA): use ES256 or EdDSA"
            );
        }
        let registration = registration_settings(
            o.registration,
            o.registration_scope,
            o.registration_redirect_hosts,
        )?;
        let trusted_proxies = o
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<std::net::IpAddr>()
                    .with_context(|| format!("invalid trusted proxy `{p}` (an IP address)"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let cors = deedbolt_http::web::cors::CorsOrigins::parse(
            o.cors_origins.iter().flatten().map(String::as_str),
        )?;

        let retention = pick(
            o.audit_retention,
            Duration::from_secs(90 * 86_400),
            "audit_retention",
        )?;
        if retention < Duration::from_secs(86_400) {
            bail!("audit retention must be at least 1 day");
        }
        let threshold = o
            .anomaly_threshold
            .unwrap_or(deedbolt_core::detect::DEFAULT_ANOMALY_THRESHOLD);
        if !(threshold.is_finite() && threshold > 0.0) {
            bail!("anomaly threshold must be a positive number");
        }
        let failures = o.alert_auth_failures.unwrap_or_else(|| "5/5m".into());
        let failures = deedbolt_core::ratelimit::RateLimit::parse(&failures)
            .context("invalid alert_auth_failures (COUNT/WINDOW)")?
            .context("alert_auth_failures cannot be off")?;
        let detection = deedbolt_http::runtime::security::DetectionSettings {
            auth_failure_threshold: failures.count as usize,
            auth_failure_window_secs: i64::from(failures.window_secs),
            anomaly_threshold: threshold,
            auto_revoke: o.auto_revoke.unwrap_or(false),
        };
        let alert_webhook = webhook_settings(o.alert_webhook, o.alert_webhook_secret)?;
        let bff = bff_config(
            o.bff_client_id,
            o.bff_client_secret,
            o.bff_cookie_keys,
            o.bff_scope,
            pick(
                o.bff_refresh_before,
                deedbolt_http::bff::DEFAULT_REFRESH_BEFORE,
                "bff_refresh_before",
            )?,
        )?;
        if require_par && bff.is_some() {
            bail!(
                "the backend-for-frontend does not push its authorization requests (RFC 9126): \
                 it cannot run with require_par or the fapi2 profile"
            );
        }
        let redis = common.redis.clone();
        // A profile that requires DPoP nonces (FAPI 2.0) turns them on, and cannot have
        // them turned off.
        let profile = common.profile;
        let dpop_nonce = match o.dpop_nonce.as_deref().map(str::trim) {
            Some("required") => deedbolt_http::dpop::NonceMode::Required,
            None if profile.dpop_nonce_required() => deedbolt_http::dpop::NonceMode::Required,
            Some("off") if profile.dpop_nonce_required() => bail!(
                "the {} profile requires DPoP nonces: dpop_nonce cannot be off",
                profile.as_str()
            ),
            None | Some("off") => deedbolt_http::dpop::NonceMode::Off,
            Some(other) => bail!("invalid dpop_nonce `{other}` (expected `required` or `off`)"),
        };
        if tls.is_some() && bff.is_some() {
            bail!(
                "the backend-for-frontend calls the main listener over plain HTTP on loopback: \
                 it cannot run with --tls-cert (terminate TLS in front of deedbolt instead)"
            );
        }

        let (metrics_listen, metrics_token) = metrics_settings(o.metrics_listen, o.metrics_token)?;
        if metrics_listen.is_some_and(|m| m == listen && listen.port() != 0) {
            bail!("the metrics listener must not use the main listen address {listen}");
        }

        let outbound_roots = outbound_roots(o.outbound_ca_file.as_deref())?;

        let outbound_networks = if o.outbound_allow_private_networks.unwrap_or(false) {
            deedbolt_http::oauth::client_keys::OutboundNetworks::AllowPrivate
        } else {
            deedbolt_http::oauth::client_keys::OutboundNetworks::PublicOnly
        };

        Ok(ServeSettings {
            outbound_roots,
            outbound_networks,
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
            require_par,
            trusted_proxies,
            cors,
            audit_retention_secs: i64::try_from(retention.as_secs()).unwrap_or(i64::MAX),
            detection,
            alert_webhook,
            bff,
            redis,
            dpop_nonce,
            tls,
            mtls,
            registration,
        })
    }
}

/// The default `--registration-scope`: what a dynamically registered client may get
/// unless its initial access token says otherwise. No write scope, nothing financial,
/// nothing administrative: more takes an operator's token with `--scope`.
pub const DEFAULT_REGISTRATION_SCOPE: &str =
    "openid profile email property:read tenant:read maintenance:request";

/// The dynamic-registration settings from their three layers' values.
fn registration_settings(
    mode: Option<String>,
    scope: Option<String>,
    hosts: Option<Vec<String>>,
) -> anyhow::Result<deedbolt_core::registration::RegistrationSettings> {
    use deedbolt_core::registration::policy::{HostPattern, RegistrationPolicy};
    let mode: deedbolt_core::registration::RegistrationMode = mode
        .as_deref()
        .unwrap_or("token")
        .parse()
        .context("invalid --registration")?;
    let open_scopes: deedbolt_core::scope::ScopeSet = scope
        .as_deref()
        .unwrap_or(DEFAULT_REGISTRATION_SCOPE)
        .parse()
        .context("invalid --registration-scope")?;
    if open_scopes
        .iter()
        .any(deedbolt_core::scope::Scope::is_admin)
    {
        bail!("--registration-scope cannot include administration scopes");
    }
    let redirect_hosts = hosts
        .unwrap_or_default()
        .iter()
        .map(|h| h.trim())
        .filter(|h| !h.is_empty())
        .map(|h| {
            h.parse::<HostPattern>()
                .context("invalid --registration-redirect-hosts")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(deedbolt_core::registration::RegistrationSettings {
        mode,
        open_scopes,
        policy: RegistrationPolicy {
            redirect_hosts,
            // Replaced at start-up by what the token endpoint accepts (AppState::new).
            ..RegistrationPolicy::default()
        },
    })
}

/// The extra outbound trust roots from `--outbound-ca-file` (none without it).
pub fn outbound_roots(
    file: Option<&Path>,
) -> anyhow::Result<deedbolt_http::oauth::client_keys::OutboundRoots> {
    let Some(file) = file else {
        return Ok(deedbolt_http::oauth::client_keys::OutboundRoots::default());
    };
    let pem = std::fs::read(file)
        .with_context(|| format!("cannot read the outbound CA file {}", file.display()))?;
    deedbolt_http::oauth::client_keys::OutboundRoots::from_pem(&pem)
        .with_context(|| format!("invalid outbound CA file {}", file.display()))
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
            data_dir_source: DataDirSource::Given,
            database: crate::storage::Database::Embedded,
            redis: None,
            profile: deedbolt_core::profile::Profile::Default,
        }
    }

    /// The file's global layer under `flags`, resolved.
    fn common_of(flags: GlobalOverrides, file: &FileConfig) -> anyhow::Result<CommonSettings> {
        resolve_common(&flags.over(file.global.clone()))
    }

    #[test]
    fn dpop_nonces_are_off_by_default_and_required_on_request() {
        use deedbolt_http::dpop::NonceMode;
        let resolve = |v: Option<&str>| {
            ServeSettings::resolve(
                common(),
                ServeOverrides {
                    dpop_nonce: v.map(str::to_owned),
                    ..ServeOverrides::default()
                },
                &FileConfig::default(),
            )
        };
        assert_eq!(resolve(None).unwrap().dpop_nonce, NonceMode::Off);
        assert_eq!(resolve(Some("off")).unwrap().dpop_nonce, NonceMode::Off);
        assert_eq!(
            resolve(Some("required")).unwrap().dpop_nonce,
            NonceMode::Required
        );
        let err = resolve(Some("sometimes")).unwrap_err().to_string();
        assert!(err.contains("required") && err.contains("off"), "{err}");
        let file: FileConfig = toml::from_str("dpop_nonce = \"required\"").unwrap();
        let s = ServeSettings::resolve(common(), ServeOverrides::default(), &file).unwrap();
        assert_eq!(s.dpop_nonce, NonceMode::Required);
        // The fapi2 profile requires them and cannot have them off.
        let fapi2 = CommonSettings {
            profile: deedbolt_core::profile::Profile::Fapi2,
            ..common()
        };
        let s = ServeSettings::resolve(
            fapi2.clone(),
            ServeOverrides::default(),
            &FileConfig::default(),
        )
        .unwrap();
        assert_eq!(s.dpop_nonce, NonceMode::Required);
        let off = ServeOverrides {
            dpop_nonce: Some("off".into()),
            ..ServeOverrides::default()
        };
        let err = ServeSettings::resolve(fapi2, off, &FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("fapi2"), "{err}");
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
    fn cors_origins_come_from_the_file_or_the_flag_and_bad_ones_are_refused() {
        let none =
            ServeSettings::resolve(common(), ServeOverrides::default(), &FileConfig::default())
                .unwrap();
        assert_eq!(none.cors, deedbolt_http::web::cors::CorsOrigins::none());
        let file: FileConfig =
            toml::from_str("cors_origins = [\"https://spa.example.com\", \"*\"]").unwrap();
        let s = ServeSettings::resolve(common(), ServeOverrides::default(), &file).unwrap();
        assert_eq!(s.cors.origins(), ["https://spa.example.com"]);
        assert!(s.cors.any_for_metadata());
        let flag = ServeOverrides {
            cors_origins: Some(vec![
                "https://a.example.com".into(),
                " http://localhost:5173".into(),
            ]),
            ..Default::default()
        };
        let s = ServeSettings::resolve(common(), flag, &file).unwrap();
        assert_eq!(
            s.cors.origins(),
            ["https://a.example.com", "http://localhost:5173"]
        );
        assert!(
            !s.cors.any_for_metadata(),
            "the flag replaces the file's list"
        );
        for bad in ["https://a.example.com/app", "http://a.example.com", "null"] {
            let o = ServeOverrides {
                cors_origins: Some(vec![bad.into()]),
                ..Default::default()
            };
            let err = ServeSettings::resolve(common(), o, &FileConfig::default()).unwrap_err();
            assert!(format!("{err:#}").contains(bad), "{err:#}");
        }
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
        let c = common_of(GlobalOverrides::default(), &file).unwrap();
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
        assert_eq!(c.data_dir_source, DataDirSource::Default);
        let redis = c.redis.unwrap();
        assert_eq!(redis.prefix, "tenant-a:");
        assert_eq!(redis.url.to_string(), "redis://cache.internal:6379");
        // Flags and environment win over the file.
        let flags = GlobalOverrides {
            database_url: Some("postgres://other@db2.internal/x".parse().unwrap()),
            database_max_connections: Some(8),
            redis_url: Some("redis://r2:1".into()),
            redis_prefix: Some("b:".into()),
            data_dir: Some("/srv/deedbolt".into()),
            ..Default::default()
        };
        let c = common_of(flags, &file).unwrap();
        assert!(
            matches!(&c.database, Database::Postgres { url, max_connections: 8 } if url.to_string().contains("db2.internal"))
        );
        let redis = c.redis.unwrap();
        assert_eq!(
            (redis.url.to_string().as_str(), redis.prefix.as_str()),
            ("redis://r2:1", "b:")
        );
        assert_eq!(c.data_dir_source, DataDirSource::Given);
        // Bad values are refused, never echoed.
        let err = parse_file("database_url = \"mysql://u:pw@h/db\"").unwrap_err();
        assert!(format!("{err:#}").contains("database_url"), "{err:#}");
        assert!(!format!("{err:#}").contains("pw@"), "{err:#}");
        let zero: FileConfig = toml::from_str("database_max_connections = 0").unwrap();
        assert!(common_of(GlobalOverrides::default(), &zero).is_err());
        let spaced = GlobalOverrides {
            redis_url: Some("redis://h:1".into()),
            redis_prefix: Some("a b".into()),
            ..Default::default()
        };
        assert!(common_of(spaced, &file).is_err());
        // Without a URL anywhere: the embedded database and no Redis.
        let none = common_of(GlobalOverrides::default(), &FileConfig::default()).unwrap();
        assert!(matches!(none.database, Database::Embedded));
        assert!(none.redis.is_none());
    }

    #[test]
    fn every_serve_setting_layers_file_then_env_or_flag() {
        // One key of each kind of value, from the file.
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\n\
             access_token_ttl = 600\n\
             refresh_grace = \"10s\"\n\
             trusted_proxies = [\"10.0.0.1\", \"10.0.0.2\"]\n\
             auto_revoke = true\n\
             anomaly_threshold = 7\n\
             rate_limit_token = \"20/1h\"\n\
             log_format = \"json\"\n\
             log = \"debug\"",
        )
        .unwrap();
        assert_eq!(
            file.global.log_format,
            Some(crate::telemetry::LogFormat::Json)
        );
        assert_eq!(file.global.log.as_deref(), Some("debug"));
        let s = ServeSettings::resolve(common(), ServeOverrides::default(), &file).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.access_token_lifetime.as_secs(), 600);
        assert_eq!(s.refresh.grace_secs, 10);
        assert_eq!(s.trusted_proxies.len(), 2);
        assert!(s.detection.auto_revoke);
        assert!((s.detection.anomaly_threshold - 7.0).abs() < f64::EPSILON);
        assert_eq!(s.limits.token.map(|l| l.count), Some(20));
        // The flag layer (clap: flags and DEEDBOLT_* variables) wins, key by key.
        let flags = ServeOverrides {
            trusted_proxies: Some(vec!["10.0.0.9".into()]),
            auto_revoke: Some(false),
            ..Default::default()
        };
        let s = ServeSettings::resolve(common(), flags, &file).unwrap();
        assert_eq!(
            s.trusted_proxies,
            vec!["10.0.0.9".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(!s.detection.auto_revoke);
        assert_eq!(s.listen.port(), 9000, "unset flags leave the file's value");
        // A bad value in the file is checked like a flag.
        let err = parse_file("log_format = \"xml\"").unwrap_err();
        assert!(
            err.to_string().contains("`log_format`"),
            "the key is named: {err}"
        );
        assert!(
            err.to_string().contains("json"),
            "valid values listed: {err}"
        );
    }

    #[test]
    fn secrets_are_not_file_keys() {
        for key in [
            "bff_client_secret",
            "metrics_token",
            "master_key",
            "alert_webhook_secret",
        ] {
            let err = parse_file(&format!("{key} = \"x\"")).unwrap_err();
            assert!(err.to_string().contains("environment only"), "{key}: {err}");
        }
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let err = parse_file("listen = \"127.0.0.1:1\"\nlistn = \"x\"").unwrap_err();
        assert!(err.to_string().contains("`listn`"), "{err}");
        // The line is named, never quoted (it may hold a password).
        let err = parse_file("\nredis_url = \"redis://:hunter2@h:1\" x").unwrap_err();
        assert!(err.to_string().starts_with("line 2"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
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
    fn tls_rules() {
        let resolve =
            |o: ServeOverrides| ServeSettings::resolve(common(), o, &FileConfig::default());
        let err = |o: ServeOverrides| format!("{:#}", resolve(o).unwrap_err());
        assert!(resolve(ServeOverrides::default()).unwrap().tls.is_none());
        let cert = || Some(PathBuf::from("/tls/cert.pem"));
        let key = || Some(PathBuf::from("/tls/key.pem"));
        assert!(err(ServeOverrides {
            tls_cert: cert(),
            ..Default::default()
        })
        .contains("go together"));
        assert!(err(ServeOverrides {
            mtls_listen: Some("127.0.0.1:8443".into()),
            ..Default::default()
        })
        .contains("--tls-cert"));
        assert!(err(ServeOverrides {
            mtls_client_ca: Some("/tls/ca.pem".into()),
            ..Default::default()
        })
        .contains("need --mtls-listen"));
        assert!(err(ServeOverrides {
            mtls_listen: Some("127.0.0.1:8443".into()),
            mtls_cert: cert(),
            ..Default::default()
        })
        .contains("--mtls-cert and --mtls-key go together"));
        // The mTLS listener with its own certificate; the main listener stays plain.
        let own = resolve(ServeOverrides {
            mtls_listen: Some("127.0.0.1:8443".into()),
            mtls_cert: Some("/tls/mtls.pem".into()),
            mtls_key: Some("/tls/mtls.key".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(own.tls.is_none());
        assert_eq!(
            own.mtls.unwrap().identity.cert,
            PathBuf::from("/tls/mtls.pem")
        );
        let mtls = |listen: &str, base: Option<&str>| ServeOverrides {
            tls_cert: cert(),
            tls_key: key(),
            mtls_listen: Some(listen.into()),
            mtls_base_url: base.map(str::to_owned),
            issuer: Some("https://as.example".into()),
            ..Default::default()
        };
        assert!(err(mtls("0.0.0.0:8443", None)).contains("--mtls-base-url"));
        assert!(err(mtls("0.0.0.0:8443", Some("http://mtls.example"))).contains("https"));
        assert!(err(mtls("0.0.0.0:8443", Some("https://mtls.example/"))).contains("trailing"));
        assert!(err(mtls("127.0.0.1:8080", None)).contains("main listen address"));
        let s = resolve(mtls("0.0.0.0:8443", Some("https://mtls.example"))).unwrap();
        let m = s.mtls.unwrap();
        assert_eq!(m.identity.cert, PathBuf::from("/tls/cert.pem"));
        assert_eq!(m.listen.port(), 8443);
        assert_eq!(m.base_url.as_deref(), Some("https://mtls.example"));
        // The same settings from the file.
        let file: FileConfig = toml::from_str(
            "tls_cert = \"/tls/cert.pem\"\n\
             tls_key = \"/tls/key.pem\"\n\
             mtls_listen = \"127.0.0.1:8443\"\n\
             mtls_client_ca = \"/tls/ca.pem\"",
        )
        .unwrap();
        let s = ServeSettings::resolve(common(), ServeOverrides::default(), &file).unwrap();
        assert_eq!(s.tls.unwrap().cert, PathBuf::from("/tls/cert.pem"));
        assert_eq!(
            s.mtls.unwrap().client_ca,
            Some(PathBuf::from("/tls/ca.pem"))
        );
    }

    #[test]
    fn the_profile_and_require_par_layer_and_fapi2_cannot_drop_par() {
        use deedbolt_core::profile::Profile;
        let s = ServeSettings::resolve(common(), ServeOverrides::default(), &FileConfig::default())
            .unwrap();
        assert_eq!(s.common.profile, Profile::Default);
        assert!(!s.require_par, "PAR is optional by default");
        let file = parse_file("profile = \"fapi2\"\nrequire_par = true").unwrap();
        assert_eq!(file.global.profile, Some(Profile::Fapi2));
        assert_eq!(file.serve.require_par, Some(true));
        let flags = GlobalOverrides {
            profile: Some(Profile::Default),
            ..Default::default()
        };
        assert_eq!(
            common_of(flags, &file).unwrap().profile,
            Profile::Default,
            "the flag wins"
        );
        let fapi2 = common_of(GlobalOverrides::default(), &file).unwrap();
        assert_eq!(fapi2.profile, Profile::Fapi2);
        let s = ServeSettings::resolve(
            fapi2.clone(),
            ServeOverrides::default(),
            &FileConfig::default(),
        )
        .unwrap();
        assert!(s.require_par, "the profile requires PAR");
        let off = ServeOverrides {
            require_par: Some(false),
            ..Default::default()
        };
        let err = ServeSettings::resolve(fapi2.clone(), off, &FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("fapi2"), "{err}");
        assert!(parse_file("profile = \"fapi1\"").is_err());
        // FAPI 2.0 SP §5.4.1: no RS256 access tokens.
        let rs256 = ServeOverrides {
            signing_alg: Some("RS256".into()),
            ..Default::default()
        };
        let err = ServeSettings::resolve(fapi2, rs256, &FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("RS256"), "{err}");
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
