//! Start-up validation of the backend-for-frontend's settings against the registered
//! client, so a wrong id, secret, redirect URI or scope stops the start with an error
//! naming the setting, instead of a failed sign-in later in someone's browser.

use deedbolt_core::client::GrantType;
use deedbolt_core::ids::ClientId;
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::secret::{ClientSecret, SecretHasher};

use crate::config::{BffConfig, BFF_SECRET_ENV};
use crate::storage::Store;

/// What is wrong with the backend-for-frontend's settings.
#[derive(Debug, thiserror::Error)]
pub enum BffSettingsError {
    /// The client id is not a client id.
    #[error("the backend-for-frontend client id (DEEDBOLT_BFF_CLIENT_ID) `{0}` is not a valid client id")]
    BadClientId(String),
    /// No client has this id.
    #[error(
        "the backend-for-frontend client id (DEEDBOLT_BFF_CLIENT_ID) `{0}` is not a registered \
         client (see `deedbolt client list`)"
    )]
    UnknownClient(String),
    /// The client is public: the backend-for-frontend authenticates with a secret.
    #[error(
        "the backend-for-frontend client `{0}` is a public client; it must be confidential \
         (registered with a secret)"
    )]
    PublicClient(String),
    /// The client may not use a grant the backend-for-frontend needs.
    #[error(
        "the backend-for-frontend client `{client}` is not registered for the {grant} grant \
         (it needs authorization_code and refresh_token)"
    )]
    MissingGrant {
        /// The client id.
        client: String,
        /// The grant.
        grant: &'static str,
    },
    /// The redirect URI the backend-for-frontend uses is not registered.
    #[error(
        "the backend-for-frontend client `{client}` has no redirect URI matching {expected} \
         (registered: {registered}); register it, or run with the issuer it was registered for"
    )]
    RedirectUri {
        /// The client id.
        client: String,
        /// `{issuer}/bff/callback`.
        expected: String,
        /// The registered ones.
        registered: String,
    },
    /// The secret does not match the client's.
    #[error("{BFF_SECRET_ENV} is not the secret of the backend-for-frontend client `{0}`")]
    WrongSecret(String),
    /// The scope asks for more than the client is registered for, or is not a scope.
    #[error(
        "the backend-for-frontend scope (DEEDBOLT_BFF_SCOPE) `{scope}` is not within the scopes \
         client `{client}` is registered for ({registered})"
    )]
    Scope {
        /// The client id.
        client: String,
        /// The configured scope.
        scope: String,
        /// The registered scopes.
        registered: String,
    },
    /// The store failed.
    #[error("cannot read the backend-for-frontend client")]
    Store(#[source] deedbolt_core::ports::StoreError),
}

/// Checks `bff` against its registered client: it exists, is confidential, may use the
/// authorization-code and refresh grants, has the redirect URI `{issuer}/bff/callback`
/// (on loopback with any port, RFC 8252 §7.3), the secret is its secret, and the scope is
/// within its registered scopes.
pub async fn validate(
    store: &Store,
    hasher: &SecretHasher,
    bff: &BffConfig,
    issuer: &str,
) -> Result<(), BffSettingsError> {
    let raw = bff.client_id.clone();
    let id = ClientId::parse(&raw).map_err(|_| BffSettingsError::BadClientId(raw.clone()))?;
    let client = store
        .find_client(&id)
        .await
        .map_err(BffSettingsError::Store)?
        .ok_or_else(|| BffSettingsError::UnknownClient(raw.clone()))?;
    let Some(hash) = client
        .secret_hash
        .as_ref()
        .filter(|_| !client.kind.is_public())
    else {
        return Err(BffSettingsError::PublicClient(raw));
    };
    for grant in [GrantType::AuthorizationCode, GrantType::RefreshToken] {
        if !client.allows_grant(grant) {
            return Err(BffSettingsError::MissingGrant {
                client: raw,
                grant: grant.as_str(),
            });
        }
    }
    let expected = format!("{issuer}/bff/callback");
    if !client.redirect_uris.iter().any(|r| r.matches(&expected)) {
        let registered: Vec<&str> = client.redirect_uris.iter().map(|r| r.as_str()).collect();
        return Err(BffSettingsError::RedirectUri {
            client: raw,
            expected,
            registered: if registered.is_empty() {
                "none".to_owned()
            } else {
                registered.join(" ")
            },
        });
    }
    let secret = ClientSecret::from_presented(bff.client_secret.expose().to_owned());
    if !hasher.verify(&secret, hash) {
        return Err(BffSettingsError::WrongSecret(raw));
    }
    let within = bff
        .scope
        .parse::<ScopeSet>()
        .is_ok_and(|s| s.is_subset(&client.scopes));
    if !within {
        return Err(BffSettingsError::Scope {
            client: raw,
            scope: bff.scope.clone(),
            registered: client.scopes.to_string(),
        });
    }
    Ok(())
}
