//! Client authentication and the client-credentials grant (RFC 6749 §2.3, §4.4).
//!
//! Who asks at the token endpoint is a [`TokenClient`]: a confidential client that proved
//! possession of its secret ([`ClientAuthenticated`], made only by
//! [`authenticate_client`]) or a public client that only named itself ([`PublicClient`],
//! made only by [`identify_public_client`]). A public client never holds the
//! "authenticated" proof, so a grant that requires it (client credentials) cannot be
//! issued to one, and a handler that forgets to authenticate the client does not compile.
//! Issuance itself is in [`crate::issue`].

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::client::{Client, ClientKind, GrantType};
use crate::error::OAuthError;
use crate::scope::{Scope, ScopeSet};
use crate::secret::{ClientSecret, SecretHasher};
use crate::token::AccessTokenLifetime;

/// Proof that a confidential client authenticated in this request: by its secret (only
/// [`authenticate_client`]), by a client assertion (only
/// `crate::assertion::RedeemedAssertion::authenticate`) or by its registered TLS
/// certificate (only [`crate::certauth::authenticate`]). A public client never gets one.
#[derive(Debug)]
pub struct ClientAuthenticated {
    client: Client,
}

impl ClientAuthenticated {
    /// The proof for `client`, for the other authentication methods' checks in this crate
    /// (`crate::assertion::RedeemedAssertion::authenticate`,
    /// [`crate::certauth::authenticate`]); nothing outside makes one.
    pub(crate) fn new(client: Client) -> Self {
        ClientAuthenticated { client }
    }

    /// The authenticated client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// A public client (`token_endpoint_auth_method=none`) that presented its id: no proof of
/// anything. Only [`identify_public_client`] makes one.
#[derive(Debug)]
pub struct PublicClient {
    client: Client,
}

impl PublicClient {
    /// The client it named.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// The client of a token request, as far as the request proved it.
#[derive(Debug)]
pub enum TokenClient {
    /// A confidential client, authenticated by its secret.
    Confidential(ClientAuthenticated),
    /// A public client, identified by its id only (PKCE binds what it may redeem).
    Public(PublicClient),
}

impl TokenClient {
    /// The registered client.
    pub fn client(&self) -> &Client {
        match self {
            TokenClient::Confidential(auth) => auth.client(),
            TokenClient::Public(public) => public.client(),
        }
    }

    /// Whether the client is public or confidential.
    pub fn kind(&self) -> ClientKind {
        match self {
            TokenClient::Confidential(_) => ClientKind::Confidential,
            TokenClient::Public(_) => ClientKind::Public,
        }
    }

    /// The authentication proof, for a confidential client; `None` for a public one.
    pub fn authenticated(&self) -> Option<&ClientAuthenticated> {
        match self {
            TokenClient::Confidential(auth) => Some(auth),
            TokenClient::Public(_) => None,
        }
    }
}

/// Authenticates a confidential client by its secret.
///
/// `found` is the client looked up by the presented id (if any). Unknown client, client
/// without a secret and wrong secret all cost one HMAC and give the same error, so the
/// answer reveals nothing about which client ids exist.
pub fn authenticate_client(
    found: Option<Client>,
    presented: &ClientSecret,
    hasher: &SecretHasher,
) -> Result<ClientAuthenticated, OAuthError> {
    match found {
        Some(client) => match &client.secret_hash {
            // One method per client: a secret never authenticates a client registered for
            // another method (private_key_jwt, mutual TLS), even one that holds a hash.
            Some(_) if !client.auth_method().uses_secret() => {
                hasher.verify_dummy(presented);
                Err(OAuthError::client_authentication_failed())
            }
            Some(hash) if hasher.verify(presented, hash) => Ok(ClientAuthenticated { client }),
            Some(_) => Err(OAuthError::client_authentication_failed()),
            None => {
                hasher.verify_dummy(presented);
                Err(OAuthError::client_authentication_failed())
            }
        },
        None => {
            hasher.verify_dummy(presented);
            Err(OAuthError::client_authentication_failed())
        }
    }
}

/// Identifies a public client (`token_endpoint_auth_method=none`, RFC 6749 §2.1) that
/// presented only its id. It proves nothing by itself: the code grant it redeems is bound
/// to a PKCE challenge, which is what authenticates the exchange. A confidential client
/// must authenticate with its secret instead.
pub fn identify_public_client(found: Option<Client>) -> Result<PublicClient, OAuthError> {
    match found {
        Some(client) if client.kind() == ClientKind::Public => Ok(PublicClient { client }),
        _ => Err(OAuthError::client_authentication_failed()),
    }
}

/// Decides the scope of a client-credentials token (RFC 6749 §4.4.2, §3.3).
///
/// No `scope` parameter gives the client's registered scopes; a requested scope must be
/// well-formed, known, and within the registration, or the answer is `invalid_scope`.
///
/// The administration scopes ([`Scope::admin`]) are never issued here, even to a client
/// registered for them: only an administrator delegates them (authorization code), and a
/// client acting for itself has no administrator behind it. They are left out of the
/// default and refused when asked for by name.
pub fn client_credentials_scope(
    auth: &ClientAuthenticated,
    requested: Option<&str>,
) -> Result<ScopeSet, OAuthError> {
    let client = auth.client();
    if !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::UnauthorizedClient(Cow::Borrowed(
            "this client is not registered for the client_credentials grant",
        )));
    }
    let Some(requested) = requested else {
        let own = client.scopes.difference(&Scope::admin());
        if own.is_empty() {
            return Err(OAuthError::InvalidScope(Cow::Borrowed(
                "this client's scopes are only delegated by an administrator",
            )));
        }
        return Ok(own);
    };
    let requested: ScopeSet = requested
        .parse()
        .map_err(|e: crate::scope::ScopeError| OAuthError::InvalidScope(e.to_string().into()))?;
    let beyond = requested.difference(&client.scopes);
    if !beyond.is_empty() {
        return Err(OAuthError::InvalidScope(
            format!("scope not allowed for this client: {beyond}").into(),
        ));
    }
    let admin = requested.intersection(&Scope::admin());
    if !admin.is_empty() {
        return Err(OAuthError::InvalidScope(
            format!("{admin} is only delegated by an administrator, never issued with client_credentials").into(),
        ));
    }
    Ok(requested)
}

/// Where and for how long tokens are valid; fixed per server.
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    /// The `iss` of every token.
    pub issuer: String,
    /// The `aud` of access tokens: the protected API.
    pub audience: String,
    /// Access-token lifetime.
    pub lifetime: AccessTokenLifetime,
}

/// A signed access token. Redacted in `Debug`; serialized as the bare string.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct AccessToken(pub String);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// The granted scope (always sent, so clients need not guess).
    pub scope: ScopeSet,
    /// The refresh token, for clients registered for `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<AccessToken>,
    /// The OpenID Connect ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<AccessToken>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{AuthMethod, ClientName};
    use crate::clock::UnixTime;
    use crate::ids::ClientId;
    use crate::secret::Pepper;

    fn fixture(grants: Vec<GrantType>) -> (Client, ClientSecret, SecretHasher) {
        let hasher = SecretHasher::new(&Pepper::generate().unwrap());
        let secret = ClientSecret::generate().unwrap();
        let client = Client {
            id: ClientId::parse("dbc_test").unwrap(),
            name: ClientName::parse("bot").unwrap(),
            secret_hash: Some(hasher.hash(&secret)),
            grant_types: grants,
            scopes: "property:read financial:read".parse().unwrap(),
            redirect_uris: vec![],
            kind: ClientKind::Confidential,
            allow_introspection: false,
            properties: None,
            id_token_alg: crate::jose::SigningAlg::RS256,
            metadata: Default::default(),
            registration_token_hash: None,
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        };
        (client, secret, hasher)
    }

    #[test]
    fn unknown_client_and_wrong_secret_are_indistinguishable() {
        let (client, _, hasher) = fixture(vec![GrantType::ClientCredentials]);
        let wrong = ClientSecret::from_presented("dbs_wrong".into());
        let a = authenticate_client(Some(client), &wrong, &hasher).unwrap_err();
        let b = authenticate_client(None, &wrong, &hasher).unwrap_err();
        assert_eq!(a, b);
        assert_eq!(a.code(), "invalid_client");
    }

    #[test]
    fn a_secret_never_authenticates_a_client_registered_for_another_method() {
        let (mut client, secret, hasher) = fixture(vec![GrantType::ClientCredentials]);
        client.metadata.token_endpoint_auth_method = Some(AuthMethod::PrivateKeyJwt);
        let err = authenticate_client(Some(client.clone()), &secret, &hasher).unwrap_err();
        assert_eq!(err.code(), "invalid_client");
        client.metadata.token_endpoint_auth_method = Some(AuthMethod::ClientSecretPost);
        assert!(authenticate_client(Some(client), &secret, &hasher).is_ok());
    }

    #[test]
    fn default_scope_is_the_registration() {
        let (client, secret, hasher) = fixture(vec![GrantType::ClientCredentials]);
        let auth = authenticate_client(Some(client), &secret, &hasher).unwrap();
        assert_eq!(
            client_credentials_scope(&auth, None).unwrap().to_string(),
            "property:read financial:read"
        );
        assert_eq!(
            client_credentials_scope(&auth, Some("financial:read"))
                .unwrap()
                .to_string(),
            "financial:read"
        );
    }

    #[test]
    fn scope_beyond_registration_is_invalid_scope() {
        let (client, secret, hasher) = fixture(vec![GrantType::ClientCredentials]);
        let auth = authenticate_client(Some(client), &secret, &hasher).unwrap();
        let err =
            client_credentials_scope(&auth, Some("property:read property:write")).unwrap_err();
        assert_eq!(err.code(), "invalid_scope");
        assert!(err.description().contains("property:write"));
        assert_eq!(
            client_credentials_scope(&auth, Some("bogus"))
                .unwrap_err()
                .code(),
            "invalid_scope"
        );
    }

    #[test]
    fn admin_scopes_are_never_issued_with_client_credentials() {
        let (mut client, secret, hasher) = fixture(vec![GrantType::ClientCredentials]);
        client.scopes = "property:read admin:read".parse().unwrap();
        let auth = authenticate_client(Some(client.clone()), &secret, &hasher).unwrap();
        assert_eq!(
            client_credentials_scope(&auth, None).unwrap().to_string(),
            "property:read",
            "the default leaves them out"
        );
        let err = client_credentials_scope(&auth, Some("admin:read")).unwrap_err();
        assert_eq!(err.code(), "invalid_scope");
        assert!(err.description().contains("admin:read"));
        client.scopes = "admin:read".parse().unwrap();
        let auth = authenticate_client(Some(client), &secret, &hasher).unwrap();
        assert_eq!(
            client_credentials_scope(&auth, None).unwrap_err().code(),
            "invalid_scope"
        );
    }

    #[test]
    fn client_without_the_grant_is_unauthorized() {
        let (client, secret, hasher) = fixture(vec![GrantType::AuthorizationCode]);
        let auth = authenticate_client(Some(client), &secret, &hasher).unwrap();
        assert_eq!(
            client_credentials_scope(&auth, None).unwrap_err().code(),
            "unauthorized_client"
        );
    }
}
