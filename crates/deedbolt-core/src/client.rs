//! Registered clients and the rules for registering one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::ids::ClientId;
use crate::jose::SigningAlg;
use crate::redirect::RedirectUri;
use crate::scope::{Scope, ScopeSet};
use crate::secret::SecretHash;

/// An OAuth 2.0 grant type (RFC 6749 §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `client_credentials` (RFC 6749 §4.4): a machine client acting for itself.
    ClientCredentials,
    /// `authorization_code` (RFC 6749 §4.1) with PKCE.
    AuthorizationCode,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
}

impl GrantType {
    /// Every grant type.
    pub const ALL: [GrantType; 3] = [
        GrantType::ClientCredentials,
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
    ];

    /// The `grant_type` value on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `grant_type` value deedbolt does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown grant type")]
pub struct UnknownGrantType;

impl FromStr for GrantType {
    type Err = UnknownGrantType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or(UnknownGrantType)
    }
}

/// How a client authenticates at the token endpoint: the `token_endpoint_auth_method`
/// values of RFC 7591 §2, RFC 7523 / OpenID Connect Core §9 (`private_key_jwt`) and
/// RFC 8705 §2 (the two mutual-TLS methods).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A secret in HTTP Basic (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// A secret in the request body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT signed with one of the client's registered keys (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A client certificate from a trusted CA naming the client (RFC 8705 §2.1).
    TlsClientAuth,
    /// A self-signed client certificate registered with the client (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
    /// No authentication: a public client (PKCE only).
    None,
}

impl AuthMethod {
    /// Every method.
    pub const ALL: [AuthMethod; 6] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth,
        AuthMethod::None,
    ];

    /// The `token_endpoint_auth_method` value on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            AuthMethod::None => "none",
        }
    }

    /// Whether the method uses a shared secret (basic or post).
    pub const fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }

    /// The client kind the method implies: `none` is a public client, every other method
    /// authenticates a confidential one.
    pub const fn kind(self) -> ClientKind {
        match self {
            AuthMethod::None => ClientKind::Public,
            _ => ClientKind::Confidential,
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `token_endpoint_auth_method` deedbolt does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token_endpoint_auth_method (known: client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth, self_signed_tls_client_auth, none)")]
pub struct UnknownAuthMethod;

impl FromStr for AuthMethod {
    type Err = UnknownAuthMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuthMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or(UnknownAuthMethod)
    }
}

/// The registration metadata of a client beyond its core fields (RFC 7591 §2, RFC 8705
/// §2.1.2 and §3.4, RFC 9126 §6, RFC 9449 §5.2): how it authenticates, its keys, its
/// sender-constraint and PAR requirements, and the informational URIs a registration
/// document carries.
///
/// The SQL stores keep it as one JSON document, so a new field needs no migration; every
/// field defaults, so documents written by older releases still load.
///
/// ```
/// use deedbolt_core::client::{AuthMethod, ClientMetadata};
/// let m: ClientMetadata = serde_json::from_str(r#"{"token_endpoint_auth_method":"private_key_jwt"}"#).unwrap();
/// assert_eq!(m.token_endpoint_auth_method, Some(AuthMethod::PrivateKeyJwt));
/// assert!(!m.require_pushed_authorization_requests);
/// assert_eq!(serde_json::from_str::<ClientMetadata>("{}").unwrap(), ClientMetadata::default());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientMetadata {
    /// The registered `token_endpoint_auth_method`; `None` for clients registered before
    /// it was recorded (see [`Client::auth_method`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    /// The JWS `alg` its client assertions must use (`private_key_jwt`), if it named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// Its public keys, inline (a JWK Set document).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Where its public keys are published (https only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// `tls_client_auth`: the expected subject distinguished name of its certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// `tls_client_auth`: the expected dNSName SAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// `tls_client_auth`: the expected uniformResourceIdentifier SAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    /// `tls_client_auth`: the expected iPAddress SAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    /// `tls_client_auth`: the expected rfc822Name SAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    /// Its authorization requests must be pushed (RFC 9126 §6).
    pub require_pushed_authorization_requests: bool,
    /// Its access tokens must be DPoP-bound (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: bool,
    /// Its access tokens must be certificate-bound (RFC 8705 §3.4).
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Its home page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Its logo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Its terms of service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// Its privacy policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// People responsible for it (usually email addresses).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// Identifier of the software it runs (the same for every instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// Version of that software.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
}

/// A client's display name, as the login and consent pages show it to users: 1 to 100
/// characters, at least one of them visible, and none that hides or reorders text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ClientName(String);

/// Letters that render as nothing (Hangul fillers, the blank Braille pattern): not
/// visible, although their category says letter or symbol.
const BLANK_GRAPHICS: [char; 5] = ['\u{115F}', '\u{1160}', '\u{2800}', '\u{3164}', '\u{FFA0}'];

/// Whether `c` hides or reorders text: controls (Cc), format characters (Cf: zero-width
/// spaces and joiners, bidi embeddings, overrides and isolates, the BOM, …) and the line
/// and paragraph separators.
fn is_hidden(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory as _};
    matches!(
        c.general_category(),
        G::Control | G::Format | G::LineSeparator | G::ParagraphSeparator
    )
}

/// Whether `c` shows something: a letter, number, punctuation or symbol.
fn is_visible(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup as G, UnicodeGeneralCategory as _};
    matches!(
        c.general_category_group(),
        G::Letter | G::Number | G::Punctuation | G::Symbol
    ) && !BLANK_GRAPHICS.contains(&c)
}

impl ClientName {
    /// Parses a name, trimming surrounding whitespace. Refused: an empty or longer than
    /// 100 characters name, one with a control or format character (general category Cc
    /// or Cf: zero-width characters, bidi overrides such as `abc\u{202E}gnp.exe`), and one
    /// with no visible character, so the consent page cannot show an invisible or
    /// reordered name. The CLI and `/register` both parse names here.
    ///
    /// ```
    /// use deedbolt_core::client::ClientName;
    /// assert!(ClientName::parse("  Tenant portal ").is_ok_and(|n| n.as_str() == "Tenant portal"));
    /// assert!(ClientName::parse("Zürich Immobilien 🏠").is_ok());
    /// assert!(ClientName::parse("\u{200B}\u{200B}").is_err()); // zero-width spaces
    /// assert!(ClientName::parse("abc\u{202E}gnp.exe").is_err()); // right-to-left override
    /// assert!(ClientName::parse("App\u{2066}").is_err()); // a bidi isolate
    /// assert!(ClientName::parse("\u{3164}\u{3000}").is_err()); // a filler and a space
    /// assert!(ClientName::parse("a\nb").is_err());
    /// assert!(ClientName::parse(&"x".repeat(101)).is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, ClientRuleError> {
        let s = s.trim();
        if s.is_empty()
            || s.chars().count() > 100
            || s.chars().any(is_hidden)
            || !s.chars().any(is_visible)
        {
            return Err(ClientRuleError::Name);
        }
        Ok(ClientName(s.to_owned()))
    }

    /// A name read back from storage, under the rule it was stored with (non-empty, no
    /// control characters): a client named before [`ClientName::parse`] refused format
    /// characters still loads. The pages show the redirect host beside the name.
    pub fn from_stored(s: &str) -> Result<Self, ClientRuleError> {
        if s.trim().is_empty() || s.chars().any(char::is_control) {
            return Err(ClientRuleError::Name);
        }
        Ok(ClientName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a client registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientRuleError {
    /// Bad name.
    #[error("client name must be 1 to 100 characters with at least one visible character, and no control or format characters (such as zero-width or bidi control characters)")]
    Name,
    /// No grant types.
    #[error("a client needs at least one grant type")]
    NoGrant,
    /// No scopes.
    #[error("a client needs at least one scope")]
    NoScope,
    /// A grant this release cannot serve yet.
    #[error("grant type `{0}` is not supported yet")]
    UnsupportedGrant(GrantType),
    /// refresh_token without authorization_code (refresh tokens come only from codes).
    #[error("refresh_token needs the authorization_code grant: refresh tokens are only issued with codes")]
    RefreshWithoutCode,
    /// authorization_code without a redirect URI.
    #[error("the authorization_code grant needs at least one --redirect-uri")]
    NoRedirectUri,
    /// Redirect URIs on a client that cannot use them.
    #[error("redirect URIs are only used by the authorization_code grant")]
    RedirectWithoutCode,
    /// A public client asking for client_credentials.
    #[error("a public client cannot use client_credentials (it has no secret)")]
    PublicClientCredentials,
    /// Administration scopes on a client that cannot get them: only an administrator
    /// delegates them, through the authorization_code grant.
    #[error("admin scopes are only delegated by an administrator: they need the authorization_code grant")]
    AdminScopeWithoutCode,
    /// A token endpoint authentication method that does not fit the client's kind.
    #[error("token_endpoint_auth_method `{0}` does not fit the client: `none` is for public clients only, and public clients can use no other")]
    AuthMethodKind(AuthMethod),
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// Its display name.
    pub name: ClientName,
    /// The keyed hash of its secret (confidential clients).
    pub secret_hash: Option<SecretHash>,
    /// The grant types it may use.
    pub grant_types: Vec<GrantType>,
    /// The scopes it is registered for: the most it can ever get, and its default.
    pub scopes: ScopeSet,
    /// Registered redirect URIs (authorization-code clients).
    pub redirect_uris: Vec<RedirectUri>,
    /// Public (`token_endpoint_auth_method=none`: no secret, PKCE only) or confidential.
    pub kind: ClientKind,
    /// A resource server: introspection (RFC 7662) also tells it about other clients'
    /// access tokens for the audience it serves (see [`Client::may_introspect`]).
    pub allow_introspection: bool,
    /// The properties its own (client-credentials) tokens reach in the PropTech API;
    /// `None` for the whole portfolio within its scopes. Tokens acting for a user are
    /// bound by the user instead.
    pub properties: Option<Vec<i64>>,
    /// The algorithm its ID tokens are signed with: its registered
    /// `id_token_signed_response_alg` (OpenID Connect Dynamic Client Registration §2),
    /// [`DEFAULT_ID_TOKEN_ALG`] unless it asked for another.
    pub id_token_alg: SigningAlg,
    /// Its registration metadata beyond the fields above.
    pub metadata: ClientMetadata,
    /// The keyed hash of its RFC 7592 registration access token: set for clients that
    /// registered themselves at the registration endpoint, which may then read, update and
    /// delete their registration with it; `None` for clients an operator created.
    pub registration_token_hash: Option<SecretHash>,
    /// When it was registered.
    pub created_at: UnixTime,
    /// When it last changed (e.g. secret rotation).
    pub updated_at: UnixTime,
}

impl Client {
    /// Whether the client is public or confidential.
    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    /// How the client authenticates: its registered method; for clients registered before
    /// the method was recorded, `none` for a public client and `client_secret_basic` for a
    /// confidential one (a secret client may present its secret by Basic or in the body).
    pub fn auth_method(&self) -> AuthMethod {
        self.metadata
            .token_endpoint_auth_method
            .unwrap_or(match self.kind {
                ClientKind::Public => AuthMethod::None,
                ClientKind::Confidential => AuthMethod::ClientSecretBasic,
            })
    }

    /// Whether the client may use `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether introspection may tell this (authenticated, confidential) client about
    /// `token` (RFC 7662 §4: the answer must not leak tokens to parties they were not
    /// meant for). `served_audience` is the audience this server issues access tokens
    /// for (`--audience`), which every resource server registered with
    /// `--allow-introspection` serves.
    ///
    /// - A token issued to the client itself: yes.
    /// - An access token of another client: only to a resource server, and only when the
    ///   token's audience is the one it serves.
    /// - A refresh token of another client: never (only the client and this server ever
    ///   hold a refresh token; a resource server has no business with it).
    ///
    /// Everything else is answered `{"active": false}`, like an unknown token.
    pub fn may_introspect(&self, token: IntrospectedToken<'_>, served_audience: &str) -> bool {
        match token {
            IntrospectedToken::Access {
                client_id,
                audience,
            } => client_id == &self.id || (self.allow_introspection && audience == served_audience),
            IntrospectedToken::Refresh { client_id } => client_id == &self.id,
        }
    }
}

/// A client's list fields as the SQL backends store them: space-separated, since no grant
/// type, redirect URI or property id contains a space. One encoding for every backend.
pub mod stored {
    use std::num::ParseIntError;
    use std::str::FromStr;

    use super::{GrantType, UnknownGrantType};
    use crate::redirect::{RedirectUri, RedirectUriError};

    fn words(s: &str) -> impl Iterator<Item = &str> {
        s.split(' ').filter(|w| !w.is_empty())
    }

    /// Grant types, space-separated.
    ///
    /// ```
    /// use deedbolt_core::client::{stored, GrantType};
    /// let s = stored::grant_types(&[GrantType::ClientCredentials, GrantType::RefreshToken]);
    /// assert_eq!(stored::parse_grant_types(&s).unwrap().len(), 2);
    /// assert_eq!(stored::parse_grant_types("").unwrap(), []);
    /// ```
    pub fn grant_types(list: &[GrantType]) -> String {
        list.iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Parses what [`grant_types`] stored.
    pub fn parse_grant_types(s: &str) -> Result<Vec<GrantType>, UnknownGrantType> {
        words(s).map(GrantType::from_str).collect()
    }

    /// Redirect URIs, exactly as registered, space-separated.
    pub fn redirect_uris(list: &[RedirectUri]) -> String {
        list.iter()
            .map(RedirectUri::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Parses what [`redirect_uris`] stored.
    pub fn parse_redirect_uris(s: &str) -> Result<Vec<RedirectUri>, RedirectUriError> {
        words(s).map(RedirectUri::parse).collect()
    }

    /// The property ids a client is limited to, space-separated; `None` for all.
    ///
    /// ```
    /// use deedbolt_core::client::stored;
    /// assert_eq!(stored::properties(Some(&[3, 5])).as_deref(), Some("3 5"));
    /// assert_eq!(stored::parse_properties("3 5").unwrap(), [3, 5]);
    /// assert_eq!(stored::properties(None), None);
    /// ```
    pub fn properties(ids: Option<&[i64]>) -> Option<String> {
        ids.map(|ids| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" "))
    }

    /// Parses what [`properties`] stored (when it stored something).
    pub fn parse_properties(s: &str) -> Result<Vec<i64>, ParseIntError> {
        words(s).map(str::parse::<i64>).collect()
    }
}

/// A live token as introspection sees it, for [`Client::may_introspect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntrospectedToken<'a> {
    /// An access token issued to `client_id` for `audience`.
    Access {
        /// The client it was issued to.
        client_id: &'a ClientId,
        /// Its `aud`.
        audience: &'a str,
    },
    /// A refresh token issued to `client_id`.
    Refresh {
        /// The client it was issued to.
        client_id: &'a ClientId,
    },
}

/// The `id_token_signed_response_alg` of a client that registered none: RS256, as OpenID
/// Connect Dynamic Client Registration §2 defines it (and as relying-party libraries such
/// as openid-client assume).
pub const DEFAULT_ID_TOKEN_ALG: SigningAlg = SigningAlg::RS256;

/// A validated registration request.
#[derive(Clone, Debug)]
pub struct NewClient {
    /// Display name.
    pub name: ClientName,
    /// Grant types, deduplicated and sorted.
    pub grant_types: Vec<GrantType>,
    /// Registered scopes.
    pub scopes: ScopeSet,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// Public (no secret) or confidential.
    pub kind: ClientKind,
    /// The algorithm its ID tokens are signed with ([`DEFAULT_ID_TOKEN_ALG`] unless set
    /// with [`NewClient::with_id_token_alg`]).
    pub id_token_alg: SigningAlg,
    /// Registration metadata beyond the fields above (default unless set with
    /// [`NewClient::with_metadata`]).
    pub metadata: ClientMetadata,
}

/// Whether a client is public or confidential (RFC 6749 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// Holds a secret (server-side apps, machine clients).
    Confidential,
    /// Cannot keep a secret (single-page and native apps): PKCE only.
    Public,
}

impl ClientKind {
    /// The kind a stored `public` flag stands for.
    pub const fn from_public(public: bool) -> Self {
        if public {
            ClientKind::Public
        } else {
            ClientKind::Confidential
        }
    }

    /// Whether this is a public client (the stored flag).
    pub const fn is_public(self) -> bool {
        matches!(self, ClientKind::Public)
    }
}

impl NewClient {
    /// Validates a registration: a name, at least one grant type this release serves, at
    /// least one scope, redirect URIs exactly when the authorization-code grant is used,
    /// administration scopes only with the authorization-code grant, and no client
    /// credentials for public clients.
    pub fn new(
        name: ClientName,
        mut grant_types: Vec<GrantType>,
        scopes: ScopeSet,
        mut redirect_uris: Vec<RedirectUri>,
        kind: ClientKind,
    ) -> Result<Self, ClientRuleError> {
        grant_types.sort();
        grant_types.dedup();
        redirect_uris.dedup();
        if grant_types.is_empty() {
            return Err(ClientRuleError::NoGrant);
        }
        if grant_types.contains(&GrantType::RefreshToken)
            && !grant_types.contains(&GrantType::AuthorizationCode)
        {
            return Err(ClientRuleError::RefreshWithoutCode);
        }
        if scopes.is_empty() {
            return Err(ClientRuleError::NoScope);
        }
        let code = grant_types.contains(&GrantType::AuthorizationCode);
        if code && redirect_uris.is_empty() {
            return Err(ClientRuleError::NoRedirectUri);
        }
        if !code && !redirect_uris.is_empty() {
            return Err(ClientRuleError::RedirectWithoutCode);
        }
        if !code && !scopes.intersection(&Scope::admin()).is_empty() {
            return Err(ClientRuleError::AdminScopeWithoutCode);
        }
        let public = kind == ClientKind::Public;
        if public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(ClientRuleError::PublicClientCredentials);
        }
        Ok(NewClient {
            name,
            grant_types,
            scopes,
            redirect_uris,
            kind,
            id_token_alg: DEFAULT_ID_TOKEN_ALG,
            metadata: ClientMetadata::default(),
        })
    }

    /// The same registration with `metadata`. A registered `token_endpoint_auth_method`
    /// must agree with the client's kind (`none` exactly for public clients).
    pub fn with_metadata(self, metadata: ClientMetadata) -> Result<Self, ClientRuleError> {
        if let Some(method) = metadata.token_endpoint_auth_method {
            if method.kind() != self.kind {
                return Err(ClientRuleError::AuthMethodKind(method));
            }
        }
        Ok(NewClient { metadata, ..self })
    }

    /// The same registration with ID tokens signed with `alg`. Every supported algorithm
    /// is allowed: the server keeps a current key of each.
    pub fn with_id_token_alg(self, alg: SigningAlg) -> Self {
        NewClient {
            id_token_alg: alg,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(ClientName::parse("  bot ").unwrap().as_str(), "bot");
        assert!(ClientName::parse("   ").is_err());
        assert!(ClientName::parse(&"x".repeat(101)).is_err());
        assert!(ClientName::parse("a\u{7}b").is_err());
    }

    #[test]
    fn registration_needs_grant_and_scope() {
        let name = ClientName::parse("bot").unwrap();
        let scopes: ScopeSet = "property:read".parse().unwrap();
        let conf = ClientKind::Confidential;
        assert_eq!(
            NewClient::new(name.clone(), vec![], scopes, vec![], conf).unwrap_err(),
            ClientRuleError::NoGrant
        );
        assert_eq!(
            NewClient::new(
                name.clone(),
                vec![GrantType::ClientCredentials],
                ScopeSet::empty(),
                vec![],
                conf
            )
            .unwrap_err(),
            ClientRuleError::NoScope
        );
        let ok = NewClient::new(
            name,
            vec![GrantType::ClientCredentials, GrantType::ClientCredentials],
            scopes,
            vec![],
            conf,
        )
        .unwrap();
        assert_eq!(ok.grant_types, vec![GrantType::ClientCredentials]);
    }

    #[test]
    fn code_clients_need_redirects_and_public_clients_no_client_credentials() {
        let name = ClientName::parse("spa").unwrap();
        let scopes: ScopeSet = "openid tenant:read".parse().unwrap();
        let cb = RedirectUri::parse("https://app.example.com/cb").unwrap();
        let code = vec![GrantType::AuthorizationCode];
        assert_eq!(
            NewClient::new(
                name.clone(),
                code.clone(),
                scopes,
                vec![],
                ClientKind::Public
            )
            .unwrap_err(),
            ClientRuleError::NoRedirectUri
        );
        assert_eq!(
            NewClient::new(
                name.clone(),
                vec![GrantType::ClientCredentials],
                scopes,
                vec![cb.clone()],
                ClientKind::Confidential
            )
            .unwrap_err(),
            ClientRuleError::RedirectWithoutCode
        );
        assert_eq!(
            NewClient::new(
                name.clone(),
                vec![GrantType::ClientCredentials, GrantType::AuthorizationCode],
                scopes,
                vec![cb.clone()],
                ClientKind::Public
            )
            .unwrap_err(),
            ClientRuleError::PublicClientCredentials
        );
        assert!(
            NewClient::new(name, code, scopes, vec![cb], ClientKind::Public)
                .unwrap()
                .kind
                .is_public()
        );
    }

    #[test]
    fn id_tokens_default_to_rs256_unless_the_client_asks_otherwise() {
        let name = ClientName::parse("rp").unwrap();
        let scopes: ScopeSet = "openid".parse().unwrap();
        let cb = RedirectUri::parse("https://rp.example.com/cb").unwrap();
        let new = NewClient::new(
            name,
            vec![GrantType::AuthorizationCode],
            scopes,
            vec![cb],
            ClientKind::Confidential,
        )
        .unwrap();
        assert_eq!(new.id_token_alg, SigningAlg::RS256);
        assert_eq!(
            new.with_id_token_alg(SigningAlg::EdDSA).id_token_alg,
            SigningAlg::EdDSA
        );
    }

    fn client(id: &str, resource_server: bool) -> Client {
        Client {
            id: ClientId::parse(id).unwrap(),
            name: ClientName::parse(id).unwrap(),
            secret_hash: None,
            grant_types: vec![GrantType::ClientCredentials],
            scopes: "property:read".parse().unwrap(),
            redirect_uris: vec![],
            kind: ClientKind::Confidential,
            allow_introspection: resource_server,
            properties: None,
            id_token_alg: DEFAULT_ID_TOKEN_ALG,
            metadata: ClientMetadata::default(),
            registration_token_hash: None,
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        }
    }

    #[test]
    fn introspection_shows_own_tokens_and_to_resource_servers_access_tokens_they_serve() {
        const AUD: &str = "https://as.example.com/api";
        let app = client("dbc_app", false);
        let rs = client("dbc_rs", true);
        let other = ClientId::parse("dbc_other").unwrap();
        let access = |client_id, audience| IntrospectedToken::Access {
            client_id,
            audience,
        };
        let refresh = |client_id| IntrospectedToken::Refresh { client_id };
        // Own tokens: both kinds, to anyone.
        assert!(app.may_introspect(access(&app.id, AUD), AUD));
        assert!(app.may_introspect(refresh(&app.id), AUD));
        assert!(rs.may_introspect(refresh(&rs.id), AUD));
        // Another client's access token: only a resource server, for its audience.
        assert!(!app.may_introspect(access(&other, AUD), AUD));
        assert!(rs.may_introspect(access(&other, AUD), AUD));
        assert!(!rs.may_introspect(access(&other, "https://elsewhere/api"), AUD));
        // Another client's refresh token: nobody.
        assert!(!app.may_introspect(refresh(&other), AUD));
        assert!(!rs.may_introspect(refresh(&other), AUD));
    }

    #[test]
    fn admin_scopes_need_the_authorization_code_grant() {
        let name = ClientName::parse("console").unwrap();
        let admin: ScopeSet = "admin:read".parse().unwrap();
        let cb = RedirectUri::parse("https://ops.example.com/cb").unwrap();
        assert_eq!(
            NewClient::new(
                name.clone(),
                vec![GrantType::ClientCredentials],
                admin,
                vec![],
                ClientKind::Confidential
            )
            .unwrap_err(),
            ClientRuleError::AdminScopeWithoutCode
        );
        let ok = NewClient::new(
            name,
            vec![GrantType::AuthorizationCode],
            admin,
            vec![cb],
            ClientKind::Confidential,
        )
        .unwrap();
        assert_eq!(ok.scopes.to_string(), "admin:read");
    }

    #[test]
    fn the_auth_method_defaults_by_kind_and_must_fit_it() {
        let mut c = client("dbc_m", false);
        assert_eq!(c.auth_method(), AuthMethod::ClientSecretBasic);
        c.kind = ClientKind::Public;
        assert_eq!(c.auth_method(), AuthMethod::None);
        c.kind = ClientKind::Confidential;
        c.metadata.token_endpoint_auth_method = Some(AuthMethod::PrivateKeyJwt);
        assert_eq!(c.auth_method(), AuthMethod::PrivateKeyJwt);

        let new = NewClient::new(
            ClientName::parse("m2m").unwrap(),
            vec![GrantType::ClientCredentials],
            "property:read".parse().unwrap(),
            vec![],
            ClientKind::Confidential,
        )
        .unwrap();
        let with = |m: AuthMethod| ClientMetadata {
            token_endpoint_auth_method: Some(m),
            ..ClientMetadata::default()
        };
        assert_eq!(
            new.clone()
                .with_metadata(with(AuthMethod::None))
                .unwrap_err(),
            ClientRuleError::AuthMethodKind(AuthMethod::None)
        );
        let ok = new.with_metadata(with(AuthMethod::TlsClientAuth)).unwrap();
        assert_eq!(
            ok.metadata.token_endpoint_auth_method,
            Some(AuthMethod::TlsClientAuth)
        );
        for m in AuthMethod::ALL {
            assert_eq!(m.as_str().parse::<AuthMethod>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        assert!("client_secret_jwt".parse::<AuthMethod>().is_err());
    }

    #[test]
    fn grant_types_parse_from_the_wire_names() {
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>(), Ok(g));
        }
        assert!("password".parse::<GrantType>().is_err());
    }
}
