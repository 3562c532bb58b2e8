//! What a dynamically registered client may be: the metadata of an RFC 7591 §2
//! registration request checked against the server's policy, pure and unit-tested.
//!
//! The rules, each refused with the RFC 7591 §3.2.2 error named:
//!
//! - **Redirect URIs** (`invalid_redirect_uri`): at most [`MAX_REDIRECT_URIS`], each an
//!   absolute URI without a fragment or userinfo ([`RedirectUri::parse`]), and:
//!   - `https` on any host, or only on hosts matching `--registration-redirect-hosts`
//!     patterns when some are configured ([`HostPattern`]: `app.example.com` exactly, or
//!     `*.tenant.example` for one label under it; the pattern constrains the host only,
//!     the path is whatever the client registers);
//!   - `http` only on the loopback IP literals `127.0.0.1` and `[::1]` (RFC 8252 §7.3;
//!     any port at authorization time). `localhost` is refused: RFC 8252 §8.3 calls it
//!     NOT RECOMMENDED, since the name may resolve elsewhere;
//!   - a private-use scheme in reverse-DNS form (`com.example.app:/cb`, RFC 8252 §7.1)
//!     only for public clients (`token_endpoint_auth_method=none`): that is what native
//!     apps are, and a server-side client has no use for one;
//!   - plain ASCII without backslashes, so the host checked is the host a browser visits;
//!   - never a wildcard (`*`) anywhere: redirect URIs are compared exactly (RFC 9700
//!     §2.1), so a pattern in a registered URI would be either a lie or an open redirector.
//! - **Grant and response types** (`invalid_client_metadata`): grant types this server
//!   serves (`authorization_code`, `client_credentials`, `refresh_token`); response types
//!   only `code`; `code` ⇔ `authorization_code` (OpenID Connect Registration §2), and
//!   `refresh_token` needs `authorization_code` (refresh tokens come only from codes). A
//!   public client cannot use `client_credentials`.
//! - **Scopes** (`invalid_client_metadata`): known scopes, never an administration scope,
//!   and within what this registration may get (the initial access token's scopes, or the
//!   open-registration set); none asked: all of those.
//! - **Client authentication** (`invalid_client_metadata`): one of the methods the token
//!   endpoint accepts ([`RegistrationPolicy::auth_methods`]: what discovery publishes; no
//!   secrets or public clients under `--profile fapi2`, no certificate methods without a
//!   mutual-TLS listener), given explicitly when the RFC 7591 default `client_secret_basic`
//!   is not among them; `tls_client_certificate_bound_access_tokens` only with mutual TLS;
//!   `private_key_jwt` and `self_signed_tls_client_auth` need exactly
//!   one of `jwks` and `jwks_uri` (`jwks` checked as [`ClientJwks::parse`] checks every
//!   client key set: public keys only, supported key types, unique `kid`s; a self-signed
//!   client's `jwks`, which carries certificates, as `crate::certauth::validate` checks it:
//!   public keys only, a certificate in `x5c`), an assertion
//!   algorithm of [`AssertionAlg`] if one is named, and
//!   `tls_client_auth` exactly one subject DN or SAN (RFC 8705 §2.1.2).
//! - **URIs** (`invalid_client_metadata`): `jwks_uri`, `client_uri`, `logo_uri`,
//!   `tos_uri` and `policy_uri` are `https` URLs without userinfo or fragment.
//! - **Sizes**: names, contacts ([`MAX_CONTACTS`]), software ids and every string are
//!   bounded; the HTTP layer bounds the body ([`MAX_BODY_BYTES`]).
//! - **Software statements** (`invalid_software_statement`): not accepted: this server
//!   trusts no statement issuer, and RFC 7591 §3.1.1 lets it refuse them.
//!
//! Metadata this server does not know is ignored (RFC 7591 §2), and not echoed.

use std::net::IpAddr;

use serde::Deserialize;

use crate::client::{
    AuthMethod, ClientKind, ClientMetadata, ClientName, ClientRuleError, GrantType, NewClient,
};
use crate::client_jwks::{AssertionAlg, ClientJwks};
use crate::redirect::{RedirectUri, RedirectUriError};
use crate::scope::{Scope, ScopeSet};

/// The largest registration request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most redirect URIs a client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// The most contacts a client may register.
pub const MAX_CONTACTS: usize = 5;
/// The longest URI (other than a redirect URI, which [`RedirectUri`] bounds).
const MAX_URI_LEN: usize = 2000;
/// The longest short string (software id and version, contact, DN, SAN).
const MAX_SHORT: usize = 255;
/// The name of a client that registered without `client_name`.
pub const DEFAULT_CLIENT_NAME: &str = "Dynamically registered client";

/// Why a registration is refused: the error codes of RFC 7591 §3.2.2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// "The value of one or more redirection URIs is invalid."
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    /// "The value of one of the client metadata fields is invalid and the server has
    /// rejected this request."
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// "The software statement presented is invalid."
    #[error("invalid_software_statement: {0}")]
    InvalidSoftwareStatement(String),
}

impl RegistrationError {
    /// The `error` code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            RegistrationError::InvalidClientMetadata(_) => "invalid_client_metadata",
            RegistrationError::InvalidSoftwareStatement(_) => "invalid_software_statement",
        }
    }

    /// The `error_description`.
    pub fn description(&self) -> &str {
        match self {
            RegistrationError::InvalidRedirectUri(d)
            | RegistrationError::InvalidClientMetadata(d)
            | RegistrationError::InvalidSoftwareStatement(d) => d,
        }
    }
}

fn metadata(d: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidClientMetadata(d.into())
}

/// Refuses a JWS algorithm the server's profile does not allow (FAPI 2.0 SP §5.4.1: no
/// RS256 under fapi2); `instead` names what the member may be.
fn refuse_outside_profile(
    policy: &RegistrationPolicy,
    member: &str,
    alg: &str,
    instead: &str,
) -> Result<(), RegistrationError> {
    if policy.profile.allows_jws_alg(alg) {
        Ok(())
    } else {
        Err(metadata(format!(
            "{member} {alg} is not allowed by this server's {} profile (use {instead})",
            policy.profile
        )))
    }
}

fn redirect(d: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidRedirectUri(d.into())
}

/// A host a registered `https` redirect URI may use: `app.example.com` (exactly) or
/// `*.tenant.example` (exactly one label under `tenant.example`, not `tenant.example`
/// itself, not two labels). Compared case-insensitively, on the host only.
///
/// ```
/// use deedbolt_core::registration::policy::HostPattern;
/// let p: HostPattern = "*.tenant.example".parse().unwrap();
/// assert!(p.matches("acme.tenant.example"));
/// assert!(p.matches("ACME.Tenant.Example"));
/// assert!(!p.matches("tenant.example"));
/// assert!(!p.matches("a.b.tenant.example"));
/// assert!(!p.matches("evil-tenant.example"));
/// let exact: HostPattern = "app.example.com".parse().unwrap();
/// assert!(exact.matches("app.example.com") && !exact.matches("x.app.example.com"));
/// assert!("*.com".parse::<HostPattern>().is_err());
/// assert!("a.*.example".parse::<HostPattern>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    /// The lowercase host, or the suffix after `*.`.
    host: String,
    /// Whether it is `*.` + host.
    wildcard: bool,
}

/// A host pattern that is not `host.name` or `*.host.name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a host pattern like app.example.com or *.tenant.example (a wildcard needs at least two labels after it)")]
pub struct BadHostPattern(String);

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

impl std::str::FromStr for HostPattern {
    type Err = BadHostPattern;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadHostPattern(s.chars().take(100).collect());
        let lower = s.trim().to_ascii_lowercase();
        let (wildcard, host) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower.clone()),
        };
        let labels: Vec<&str> = host.split('.').collect();
        if !labels.iter().all(|l| is_dns_label(l)) || (wildcard && labels.len() < 2) {
            return Err(bad());
        }
        Ok(HostPattern { host, wildcard })
    }
}

impl HostPattern {
    /// Whether `host` (as it appears in a URI) is allowed by this pattern.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if !self.wildcard {
            return host == self.host;
        }
        match host.strip_suffix(&self.host) {
            Some(prefix) => prefix.strip_suffix('.').is_some_and(is_dns_label),
            None => false,
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.wildcard {
            write!(f, "*.{}", self.host)
        } else {
            f.write_str(&self.host)
        }
    }
}

/// The server's registration policy: the redirect-URI hosts from
/// `--registration-redirect-hosts`, and what the server's token endpoint accepts, so
/// that nothing is registered that could never authenticate or get a token.
#[derive(Clone, Debug)]
pub struct RegistrationPolicy {
    /// The hosts registered `https` redirect URIs may use; empty: any host.
    pub redirect_hosts: Vec<HostPattern>,
    /// The client authentication methods the token endpoint accepts: the server sets them
    /// at start-up from what discovery publishes as `token_endpoint_auth_methods_supported`
    /// (the security profile and whether a mutual-TLS listener runs decide). Default:
    /// every method this server implements.
    pub auth_methods: Vec<AuthMethod>,
    /// Whether certificate-bound access tokens can be issued (RFC 8705 §3: a mutual-TLS
    /// listener runs). Default: yes; the server sets it at start-up.
    pub certificate_bound_tokens: bool,
    /// The server's security profile: which JWS algorithms a client may register for its
    /// ID tokens and assertions, and the ID-token algorithm of a client naming none.
    pub profile: crate::profile::Profile,
}

impl Default for RegistrationPolicy {
    fn default() -> Self {
        RegistrationPolicy {
            redirect_hosts: Vec::new(),
            auth_methods: AuthMethod::ALL.to_vec(),
            certificate_bound_tokens: true,
            profile: crate::profile::Profile::Default,
        }
    }
}

impl RegistrationPolicy {
    /// The accepted methods, for error messages.
    fn accepted_methods(&self) -> String {
        let names: Vec<&str> = self.auth_methods.iter().map(|m| m.as_str()).collect();
        names.join(", ")
    }
}

/// An RFC 7591 §2 registration request (or an RFC 7592 §2.2 update) as sent: every
/// field optional, and `null` the same as omitted for every field (RFC 7592 §2.2: omitted
/// fields "MUST be treated as null or empty values"); unknown fields are ignored. Types
/// are checked by serde (a wrong type is `invalid_client_metadata`), values by
/// [`validate`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[allow(missing_docs)] // the RFC 7591 §2 / RFC 7592 / RFC 8705 §2.1.2 metadata names
pub struct RegistrationRequest {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub token_endpoint_auth_signing_alg: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub scope: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub contacts: Vec<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub jwks_uri: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub software_statement: Option<String>,
    pub id_token_signed_response_alg: Option<String>,
    pub tls_client_auth_subject_dn: Option<String>,
    pub tls_client_auth_san_dns: Option<String>,
    pub tls_client_auth_san_uri: Option<String>,
    pub tls_client_auth_san_ip: Option<String>,
    pub tls_client_auth_san_email: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub require_pushed_authorization_requests: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub dpop_bound_access_tokens: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub tls_client_certificate_bound_access_tokens: bool,
}

/// `null` as the type's default (an empty list, `false`), like an omitted field.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A registration that passed [`validate`]: the client to store (without its id and
/// secrets, which the server makes), its metadata with `token_endpoint_auth_method`
/// always set.
#[derive(Clone, Debug)]
pub struct ValidRegistration {
    /// The client's registration, metadata included.
    pub client: NewClient,
    /// How it authenticates at the token endpoint.
    pub auth_method: AuthMethod,
}

impl ValidRegistration {
    /// Whether the server must give it a `client_secret` (the secret methods).
    pub fn needs_secret(&self) -> bool {
        matches!(
            self.auth_method,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

fn bounded(field: &str, value: &Option<String>, max: usize) -> Result<(), RegistrationError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(metadata(format!(
                "{field} must be 1 to {max} printable characters"
            )))
        }
        _ => Ok(()),
    }
}

/// Checks an `https` URL field: absolute, `https`, a host, no userinfo, no fragment.
fn https_url(field: &str, value: &Option<String>) -> Result<(), RegistrationError> {
    let Some(v) = value else { return Ok(()) };
    let bad = || {
        metadata(format!(
            "{field} must be an https URL without userinfo or fragment"
        ))
    };
    if v.len() > MAX_URI_LEN || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let url = url::Url::parse(v).map_err(|_| bad())?;
    if url.scheme() != "https"
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(bad());
    }
    Ok(())
}

/// Why an `http` redirect URI is refused.
const HTTP_LOOPBACK_ONLY: &str = "http is allowed only on the loopback addresses 127.0.0.1 and [::1] (RFC 8252 §7.3; not localhost, §8.3)";

/// Checks one redirect URI against the policy (see the module doc).
fn check_redirect(
    raw: &str,
    kind: ClientKind,
    policy: &RegistrationPolicy,
) -> Result<RedirectUri, RegistrationError> {
    let shown: String = raw.chars().take(100).collect();
    if raw.contains('*') {
        return Err(redirect(format!(
            "{shown}: wildcards are not allowed; redirect URIs are compared exactly"
        )));
    }
    // Only plain ASCII without backslashes: a browser reads a host out of non-ASCII (IDNA
    // mapping) or backslashes (treated as `/`) that a byte-level check does not see, and
    // the host policy must judge the host the browser will go to.
    if !raw.is_ascii() || raw.contains('\\') {
        return Err(redirect(format!(
            "{shown}: must be ASCII without backslashes (percent-encode the path, punycode the host)"
        )));
    }
    let uri = RedirectUri::parse(raw).map_err(|e| {
        let why = match e {
            RedirectUriError::NotAbsolute => {
                "must be an absolute URI with a host and without userinfo".to_owned()
            }
            // The general text allows `localhost`, which registration refuses.
            RedirectUriError::InsecureHttp => HTTP_LOOPBACK_ONLY.to_owned(),
            other => other.to_string(),
        };
        redirect(format!("{shown}: {why}"))
    })?;
    let (scheme, _) = raw.split_once(':').unwrap_or((raw, ""));
    match scheme {
        "https" => {
            let url = url::Url::parse(raw)
                .map_err(|_| redirect(format!("{shown}: not a valid https URL")))?;
            let host = url.host_str().unwrap_or_default();
            if !policy.redirect_hosts.is_empty()
                && !policy.redirect_hosts.iter().any(|p| p.matches(host))
            {
                let allowed: Vec<String> = policy
                    .redirect_hosts
                    .iter()
                    .map(|p| p.to_string())
                    .collect();
                return Err(redirect(format!(
                    "{shown}: the host is not allowed here (allowed: {})",
                    allowed.join(", ")
                )));
            }
        }
        "http" => {
            let url =
                url::Url::parse(raw).map_err(|_| redirect(format!("{shown}: not a valid URL")))?;
            let loopback = matches!(
                url.host(),
                Some(url::Host::Ipv4(ip)) if ip.is_loopback() && ip.octets() == [127, 0, 0, 1]
            ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
            if !loopback {
                return Err(redirect(format!("{shown}: {HTTP_LOOPBACK_ONLY}")));
            }
        }
        _ => {
            if kind != ClientKind::Public {
                return Err(redirect(format!(
                    "{shown}: private-use URI schemes are for native apps, which are public clients (token_endpoint_auth_method=none)"
                )));
            }
        }
    }
    Ok(uri)
}

/// Validates a registration request against `policy`, for a registration that may get
/// at most `allowed` (the initial access token's scopes, or the open-registration set).
pub fn validate(
    req: &RegistrationRequest,
    policy: &RegistrationPolicy,
    allowed: ScopeSet,
) -> Result<ValidRegistration, RegistrationError> {
    if req.software_statement.is_some() {
        return Err(RegistrationError::InvalidSoftwareStatement(
            "software statements are not accepted by this server".into(),
        ));
    }

    // How the client authenticates decides whether it is public. Only what the token
    // endpoint accepts: a client registered with another method could never get a token.
    let auth_method = match &req.token_endpoint_auth_method {
        None => AuthMethod::ClientSecretBasic, // RFC 7591 §2's default
        Some(m) => m.parse::<AuthMethod>().map_err(|_| {
            metadata(format!(
                "token_endpoint_auth_method `{}` is not supported",
                m.chars().take(40).collect::<String>()
            ))
        })?,
    };
    if !policy.auth_methods.contains(&auth_method) {
        return Err(metadata(match &req.token_endpoint_auth_method {
            // Not silently: the RFC's default would make a client that cannot authenticate.
            None => format!(
                "token_endpoint_auth_method is required here: its default, client_secret_basic \
                 (RFC 7591 §2), is not accepted by this server (accepted: {})",
                policy.accepted_methods()
            ),
            Some(_) => format!(
                "token_endpoint_auth_method `{}` is not accepted by this server (accepted: {})",
                auth_method.as_str(),
                policy.accepted_methods()
            ),
        }));
    }
    if req.tls_client_certificate_bound_access_tokens && !policy.certificate_bound_tokens {
        return Err(metadata(
            "tls_client_certificate_bound_access_tokens needs mutual TLS (RFC 8705), which \
             this server does not offer",
        ));
    }
    let kind = if auth_method == AuthMethod::None {
        ClientKind::Public
    } else {
        ClientKind::Confidential
    };

    // Grant and response types (RFC 7591 §2.1, OpenID Connect Registration §2).
    let grant_types = match &req.grant_types {
        None => vec![GrantType::AuthorizationCode],
        Some(list) => list
            .iter()
            .map(|g| {
                g.parse::<GrantType>().map_err(|_| {
                    metadata(format!(
                        "grant type `{}` is not supported",
                        g.chars().take(40).collect::<String>()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let code = grant_types.contains(&GrantType::AuthorizationCode);
    let response_types = match &req.response_types {
        None if code => vec!["code".to_owned()],
        None => vec![],
        Some(list) => list.clone(),
    };
    if let Some(other) = response_types.iter().find(|r| r.as_str() != "code") {
        return Err(metadata(format!(
            "response type `{}` is not supported (only code)",
            other.chars().take(40).collect::<String>()
        )));
    }
    let code_response = !response_types.is_empty();
    if code_response && !code {
        return Err(metadata(
            "response type code needs the authorization_code grant type",
        ));
    }
    if code && !code_response {
        return Err(metadata(
            "the authorization_code grant type needs response type code",
        ));
    }

    // Redirect URIs.
    if req.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(redirect(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs"
        )));
    }
    let redirect_uris = req
        .redirect_uris
        .iter()
        .map(|r| check_redirect(r, kind, policy))
        .collect::<Result<Vec<_>, _>>()?;

    // Scopes.
    let allowed = allowed.difference(&Scope::admin());
    let scopes = match &req.scope {
        None => allowed,
        Some(s) => {
            let asked: ScopeSet = s.parse().map_err(|e| metadata(format!("scope: {e}")))?;
            if asked.iter().any(Scope::is_admin) {
                return Err(metadata(
                    "administration scopes cannot be registered dynamically",
                ));
            }
            let beyond = asked.difference(&allowed);
            if !beyond.is_empty() {
                return Err(metadata(format!(
                    "scope `{beyond}` is beyond what this registration may get"
                )));
            }
            asked
        }
    };

    let name = ClientName::parse(req.client_name.as_deref().unwrap_or(DEFAULT_CLIENT_NAME))
        .map_err(|e| metadata(format!("client_name: {e}")))?;
    let mut client =
        NewClient::new(name, grant_types, scopes, redirect_uris, kind).map_err(|e| match e {
            ClientRuleError::NoRedirectUri | ClientRuleError::RedirectWithoutCode => {
                redirect(e.to_string().replace("--redirect-uri", "redirect URI"))
            }
            other => metadata(other.to_string()),
        })?;
    // A client naming no algorithm gets OpenID Connect's RS256, or ES256 under fapi2
    // (FAPI 2.0 SP §5.4.1); the answer says which (RFC 7591 §3.2.1).
    let id_token_alg = match &req.id_token_signed_response_alg {
        Some(alg) => alg.parse().map_err(|_| {
            metadata("id_token_signed_response_alg must be one of ES256, RS256, EdDSA")
        })?,
        None => policy.profile.default_id_token_alg(),
    };
    refuse_outside_profile(
        policy,
        "id_token_signed_response_alg",
        id_token_alg.as_str(),
        "ES256 or EdDSA",
    )?;
    client = client.with_id_token_alg(id_token_alg);

    // Keys and certificates.
    if req.jwks.is_some() && req.jwks_uri.is_some() {
        return Err(metadata(
            "jwks and jwks_uri must not both be present (RFC 7591 §2)",
        ));
    }
    https_url("jwks_uri", &req.jwks_uri)?;
    match &req.jwks {
        // A self-signed client's jwks carries its certificates, of any key type the TLS
        // handshake accepts: checked by certauth::validate below (public keys only, a
        // certificate), as `deedbolt client create` checks it.
        Some(_) if auth_method == AuthMethod::SelfSignedTlsClientAuth => {}
        // The same rules as `deedbolt client create --jwks-file` and the assertion check.
        Some(jwks) => {
            ClientJwks::parse(jwks).map_err(|e| metadata(format!("jwks: {e}")))?;
        }
        None => {}
    }
    if matches!(
        auth_method,
        AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth
    ) && req.jwks.is_none()
        && req.jwks_uri.is_none()
    {
        return Err(metadata(format!(
            "{} needs the client's public keys: jwks or jwks_uri",
            auth_method.as_str()
        )));
    }
    if let Some(alg) = &req.token_endpoint_auth_signing_alg {
        refuse_outside_profile(
            policy,
            "token_endpoint_auth_signing_alg",
            alg,
            "ES256, PS256 or EdDSA",
        )?;
        if alg.parse::<AssertionAlg>().is_err() {
            let names: Vec<&str> = AssertionAlg::ALL.iter().map(|a| a.as_str()).collect();
            return Err(metadata(format!(
                "token_endpoint_auth_signing_alg must be one of {}",
                names.join(", ")
            )));
        }
    }
    let tls_names = [
        (
            "tls_client_auth_subject_dn",
            &req.tls_client_auth_subject_dn,
        ),
        ("tls_client_auth_san_dns", &req.tls_client_auth_san_dns),
        ("tls_client_auth_san_uri", &req.tls_client_auth_san_uri),
        ("tls_client_auth_san_ip", &req.tls_client_auth_san_ip),
        ("tls_client_auth_san_email", &req.tls_client_auth_san_email),
    ];
    for (field, value) in tls_names {
        bounded(field, value, MAX_SHORT)?;
    }
    if let Some(ip) = &req.tls_client_auth_san_ip {
        ip.parse::<IpAddr>()
            .map_err(|_| metadata("tls_client_auth_san_ip must be an IP address"))?;
    }
    if let Some(uri) = &req.tls_client_auth_san_uri {
        url::Url::parse(uri)
            .map_err(|_| metadata("tls_client_auth_san_uri must be an absolute URI"))?;
    }
    if auth_method == AuthMethod::TlsClientAuth
        && tls_names.iter().filter(|(_, v)| v.is_some()).count() != 1
    {
        return Err(metadata(
            "tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email (RFC 8705 §2.1.2)",
        ));
    }

    // Informational metadata.
    for (field, value) in [
        ("client_uri", &req.client_uri),
        ("logo_uri", &req.logo_uri),
        ("tos_uri", &req.tos_uri),
        ("policy_uri", &req.policy_uri),
    ] {
        https_url(field, value)?;
    }
    if req.contacts.len() > MAX_CONTACTS {
        return Err(metadata(format!("at most {MAX_CONTACTS} contacts")));
    }
    for c in &req.contacts {
        bounded("contacts", &Some(c.clone()), MAX_SHORT)?;
    }
    bounded("software_id", &req.software_id, MAX_SHORT)?;
    bounded("software_version", &req.software_version, MAX_SHORT)?;

    let meta = ClientMetadata {
        token_endpoint_auth_method: Some(auth_method),
        token_endpoint_auth_signing_alg: req.token_endpoint_auth_signing_alg.clone(),
        jwks: req.jwks.clone(),
        jwks_uri: req.jwks_uri.clone(),
        tls_client_auth_subject_dn: req.tls_client_auth_subject_dn.clone(),
        tls_client_auth_san_dns: req.tls_client_auth_san_dns.clone(),
        tls_client_auth_san_uri: req.tls_client_auth_san_uri.clone(),
        tls_client_auth_san_ip: req.tls_client_auth_san_ip.clone(),
        tls_client_auth_san_email: req.tls_client_auth_san_email.clone(),
        require_pushed_authorization_requests: req.require_pushed_authorization_requests,
        dpop_bound_access_tokens: req.dpop_bound_access_tokens,
        tls_client_certificate_bound_access_tokens: req.tls_client_certificate_bound_access_tokens,
        client_uri: req.client_uri.clone(),
        logo_uri: req.logo_uri.clone(),
        tos_uri: req.tos_uri.clone(),
        policy_uri: req.policy_uri.clone(),
        contacts: req.contacts.clone(),
        software_id: req.software_id.clone(),
        software_version: req.software_version.clone(),
    };
    // The certificate methods as the token endpoint applies them (RFC 8705 §2): a subject DN
    // that parses, and a self-signed client's certificate in `jwks` (x5c).
    crate::certauth::validate(auth_method, &meta).map_err(|e| metadata(e.to_string()))?;
    let client = client
        .with_metadata(meta)
        .map_err(|e| metadata(e.to_string()))?;
    Ok(ValidRegistration {
        client,
        auth_method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: serde_json::Value) -> RegistrationRequest {
        serde_json::from_value(v).unwrap()
    }

    fn all() -> ScopeSet {
        "openid profile email property:read tenant:read"
            .parse()
            .unwrap()
    }

    fn ok(v: serde_json::Value) -> ValidRegistration {
        validate(&req(v), &RegistrationPolicy::default(), all()).unwrap()
    }

    fn err(v: serde_json::Value) -> RegistrationError {
        validate(&req(v), &RegistrationPolicy::default(), all()).unwrap_err()
    }

    fn code(v: serde_json::Value) -> &'static str {
        err(v).code()
    }

    #[test]
    fn a_web_app_registers_with_the_rfc_defaults() {
        let r = ok(json!({"redirect_uris": ["https://app.example.com/cb"], "client_name": "App"}));
        assert_eq!(r.auth_method, AuthMethod::ClientSecretBasic);
        assert!(r.needs_secret());
        assert_eq!(r.client.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(r.client.scopes, all(), "no scope asked: everything allowed");
        assert_eq!(r.client.name.as_str(), "App");
        assert_eq!(
            r.client.metadata.token_endpoint_auth_method,
            Some(AuthMethod::ClientSecretBasic)
        );
    }

    #[test]
    fn redirect_uris_follow_the_policy() {
        let uri = |u: &str| json!({"redirect_uris": [u]});
        assert_eq!(
            code(uri("http://app.example.com/cb")),
            "invalid_redirect_uri"
        );
        assert_eq!(
            code(uri("http://localhost:3000/cb")),
            "invalid_redirect_uri"
        );
        assert_eq!(
            code(uri("https://app.example.com/cb#x")),
            "invalid_redirect_uri"
        );
        assert_eq!(
            code(uri("https://u:p@app.example.com/cb")),
            "invalid_redirect_uri"
        );
        assert_eq!(
            code(uri("https://*.example.com/cb")),
            "invalid_redirect_uri"
        );
        assert_eq!(
            code(uri("https://app.example.com/*")),
            "invalid_redirect_uri"
        );
        assert_eq!(code(uri("/relative")), "invalid_redirect_uri");
        assert_eq!(code(uri("javascript:alert(1)")), "invalid_redirect_uri");
        assert_eq!(
            code(uri("https://app.example.com\\@evil.example/cb")),
            "invalid_redirect_uri"
        );
        assert_eq!(
            code(uri("https://app.example.com\\evil/cb")),
            "invalid_redirect_uri"
        );
        assert_eq!(
            code(uri("https://äpp.example.com/cb")),
            "invalid_redirect_uri"
        );
        // Loopback IP literals, any port.
        ok(uri("http://127.0.0.1/cb"));
        ok(uri("http://127.0.0.1:8400/cb"));
        ok(uri("http://[::1]:8400/cb"));
        // Private-use schemes only for public (native) clients.
        assert_eq!(code(uri("com.example.app:/cb")), "invalid_redirect_uri");
        let native = ok(
            json!({"redirect_uris": ["com.example.app:/cb"], "token_endpoint_auth_method": "none"}),
        );
        assert_eq!(native.client.kind, ClientKind::Public);
        assert!(!native.needs_secret());
        // Too many.
        let many: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
        assert_eq!(code(json!({"redirect_uris": many})), "invalid_redirect_uri");
        // A code client needs one.
        assert_eq!(code(json!({})), "invalid_redirect_uri");
    }

    #[test]
    fn host_patterns_constrain_https_hosts_only() {
        let policy = RegistrationPolicy {
            redirect_hosts: vec!["*.tenant.example".parse().unwrap()],
            ..RegistrationPolicy::default()
        };
        let check =
            |u: &str| validate(&req(json!({"redirect_uris": [u]})), &policy, all()).map(|_| ());
        assert!(check("https://acme.tenant.example/any/path?x=1").is_ok());
        assert!(check("https://tenant.example/cb").is_err());
        assert!(check("https://a.b.tenant.example/cb").is_err());
        assert!(check("https://evil.example/acme.tenant.example/cb").is_err());
        assert!(check("https://acme.tenant.example.evil.example/cb").is_err());
        assert!(check("https://acme.tenant.example\u{ff0f}.evil.example/cb").is_err());
        assert!(
            check("https://ACME.tenant.example/cb").is_ok(),
            "hosts are case-insensitive"
        );
        // Loopback is not a host the pattern governs.
        assert!(check("http://127.0.0.1/cb").is_ok());
    }

    #[test]
    fn grant_and_response_types_must_agree() {
        let cb = json!(["https://app.example.com/cb"]);
        assert_eq!(
            code(json!({"redirect_uris": cb, "grant_types": ["implicit"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": cb, "response_types": ["token"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "grant_types": ["authorization_code"], "response_types": []})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"grant_types": ["client_credentials"], "response_types": ["code"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"grant_types": ["refresh_token", "client_credentials"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"})
            ),
            "invalid_client_metadata"
        );
        let machine = ok(json!({"grant_types": ["client_credentials"], "scope": "property:read"}));
        assert_eq!(
            machine.client.grant_types,
            vec![GrantType::ClientCredentials]
        );
        let both = ok(
            json!({"redirect_uris": cb, "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}),
        );
        assert_eq!(both.client.grant_types.len(), 2);
    }

    #[test]
    fn scopes_stay_within_the_registration_and_never_admin() {
        let cb = json!(["https://app.example.com/cb"]);
        assert_eq!(
            code(json!({"redirect_uris": cb, "scope": "admin:read"})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": cb, "scope": "financial:write"})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": cb, "scope": "root"})),
            "invalid_client_metadata"
        );
        let r = ok(json!({"redirect_uris": cb, "scope": "openid tenant:read"}));
        assert_eq!(r.client.scopes.to_string(), "tenant:read openid");
        // Even an allowance naming admin scopes never grants them.
        let r = validate(
            &req(json!({"redirect_uris": cb})),
            &RegistrationPolicy::default(),
            "openid admin:read".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(r.client.scopes.to_string(), "openid");
    }

    #[test]
    fn key_based_methods_need_keys_and_tls_needs_one_name() {
        let cb = json!(["https://app.example.com/cb"]);
        let jwk = json!({"keys": [crate::client_jwks::tests::ec_jwk("k1")]});
        assert_eq!(
            code(json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt"})),
            "invalid_client_metadata"
        );
        let r = ok(
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwk}),
        );
        assert!(!r.needs_secret());
        assert_eq!(r.client.metadata.jwks, Some(jwk.clone()));
        // A self-signed client's certificate is the first x5c of a key in its jwks; a
        // jwks_uri is not read for it, nor is a key without a certificate enough.
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": "https://app.example.com/jwks"})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": jwk})
            ),
            "invalid_client_metadata"
        );
        let mut with_cert = crate::client_jwks::tests::ec_jwk("k2");
        with_cert["x5c"] = json!(["MIIB"]);
        ok(
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [with_cert]}}),
        );
        // Any certificate key type (here P-384, which assertions do not use), as the CLI
        // takes it; never a private key.
        let p384 = json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "x5c": ["MIIB"]});
        ok(
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [p384]}}),
        );
        let mut private = p384.clone();
        private["d"] = json!("AA");
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [private]}})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=a,"})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwk, "jwks_uri": "https://app.example.com/jwks"})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://app.example.com/jwks"})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwk, "token_endpoint_auth_signing_alg": "HS256"})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": cb, "token_endpoint_auth_method": "tls_client_auth"})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a.example"})
            ),
            "invalid_client_metadata"
        );
        ok(
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=app,O=Example"}),
        );
        assert_eq!(
            code(json!({"redirect_uris": cb, "token_endpoint_auth_method": "client_secret_jwt"})),
            "invalid_client_metadata"
        );
    }

    #[test]
    fn informational_metadata_is_https_and_bounded() {
        let cb = json!(["https://app.example.com/cb"]);
        for field in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
            let mut v = json!({"redirect_uris": cb});
            v[field] = json!("http://app.example.com/x");
            assert_eq!(code(v.clone()), "invalid_client_metadata", "{field}");
            v[field] = json!("https://app.example.com/x");
            ok(v);
        }
        let contacts: Vec<String> = (0..6).map(|i| format!("ops{i}@example.com")).collect();
        assert_eq!(
            code(json!({"redirect_uris": cb, "contacts": contacts})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": cb, "software_id": "x".repeat(256)})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": cb, "client_name": ""})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": cb, "id_token_signed_response_alg": "none"})),
            "invalid_client_metadata"
        );
        let r = ok(
            json!({"redirect_uris": cb, "id_token_signed_response_alg": "ES256", "unknown_thing": 1}),
        );
        assert_eq!(r.client.id_token_alg, crate::jose::SigningAlg::ES256);
    }

    #[test]
    fn only_methods_the_token_endpoint_accepts_are_registered() {
        let fapi2 = RegistrationPolicy {
            auth_methods: vec![AuthMethod::PrivateKeyJwt],
            certificate_bound_tokens: false,
            ..RegistrationPolicy::default()
        };
        let check = |v: serde_json::Value| validate(&req(v), &fapi2, all());
        let cc = json!({"grant_types": ["client_credentials"], "scope": "property:read"});
        let e = check(cc.clone()).unwrap_err();
        assert_eq!(e.code(), "invalid_client_metadata");
        assert!(e.description().contains("is required here"), "{e}");
        let mut public =
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"});
        assert!(check(public.clone()).is_err());
        public["token_endpoint_auth_method"] = json!("tls_client_auth");
        public["tls_client_auth_subject_dn"] = json!("CN=app");
        assert!(check(public).is_err());
        let mut bound = cc.clone();
        bound["token_endpoint_auth_method"] = json!("private_key_jwt");
        bound["jwks"] = json!({"keys": [crate::client_jwks::tests::ec_jwk("k1")]});
        assert!(check(bound.clone()).is_ok());
        bound["tls_client_certificate_bound_access_tokens"] = json!(true);
        assert!(check(bound).is_err());
    }

    #[test]
    fn null_is_the_same_as_omitted_for_every_field() {
        let r = ok(json!({
            "redirect_uris": ["https://app.example.com/cb"],
            "contacts": null, "client_name": null, "scope": null, "logo_uri": null,
            "require_pushed_authorization_requests": null,
            "dpop_bound_access_tokens": null,
            "tls_client_certificate_bound_access_tokens": null,
        }));
        assert!(r.client.metadata.contacts.is_empty());
        assert!(!r.client.metadata.require_pushed_authorization_requests);
        let r = ok(json!({"grant_types": ["client_credentials"], "redirect_uris": null}));
        assert!(r.client.redirect_uris.is_empty());
    }

    #[test]
    fn the_http_redirect_text_never_offers_localhost() {
        for uri in ["http://app.example.com/cb", "http://10.0.0.1/cb"] {
            let e = err(json!({"redirect_uris": [uri]}));
            assert!(e.description().contains("not localhost"), "{e}");
        }
    }

    #[test]
    fn software_statements_are_refused() {
        assert_eq!(
            code(
                json!({"redirect_uris": ["https://app.example.com/cb"], "software_statement": "eyJ..."})
            ),
            "invalid_software_statement"
        );
    }
}
