//! Token issuance: the one place where access-token claims (RFC 9068 §2.2) and ID-token
//! claims (OIDC Core §2) are built, for every grant.
//!
//! Each grant's issuance takes the evidence its checks left, so a handler that skips a
//! check does not compile:
//!
//! - client credentials: [`ClientAuthenticated`] (a confidential client that proved its
//!   secret; a public client never holds one);
//! - authorization code: the [`TokenClient`] the code was checked against and the
//!   [`PkceVerified`] proof of that check (taken by value: one check, one issuance);
//! - refresh token: the [`TokenClient`] and the family's record, which must belong to it.
//!
//! Signing stays with the caller, which holds the keys.

use crate::clock::UnixTime;
use crate::flow::{at_hash, CodeGrant, IdTokenClaims};
use crate::grant::{ClientAuthenticated, TokenClient, TokenPolicy};
use crate::ids::{ClientId, TokenId};
use crate::jose::SigningAlg;
use crate::pkce::PkceVerified;
use crate::rand::RandomError;
use crate::refresh::RefreshRecord;
use crate::scope::ScopeSet;
use crate::token::AccessTokenClaims;

/// Why claims could not be built.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No randomness for the token id.
    #[error("no token id: {0}")]
    Random(#[from] RandomError),
    /// The grant (code or refresh family) belongs to another client than the one that
    /// presented it. The grant checks refuse this first; reaching here is a bug.
    #[error("the grant belongs to another client")]
    WrongClient,
}

impl TokenPolicy {
    /// The claims every access token has: this policy's issuer, audience and lifetime, a
    /// fresh `jti`.
    fn access_claims(
        &self,
        sub: &str,
        client_id: &ClientId,
        scope: ScopeSet,
        now: UnixTime,
    ) -> Result<AccessTokenClaims, IssueError> {
        Ok(AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: self.audience.clone(),
            exp: now.plus_secs(self.lifetime.as_secs()),
            iat: now,
            nbf: None,
            jti: TokenId::generate()?,
            client_id: client_id.clone(),
            scope,
            cnf: None,
        })
    }

    /// The claims of an access token for an authenticated client acting for itself
    /// (client credentials). RFC 9068 §2.2: with no resource owner, `sub` is the client's
    /// own id.
    pub fn client_credentials_claims(
        &self,
        auth: &ClientAuthenticated,
        scope: ScopeSet,
        now: UnixTime,
    ) -> Result<AccessTokenClaims, IssueError> {
        let client = auth.client();
        self.access_claims(client.id.as_str(), &client.id, scope, now)
    }

    /// The claims of an access token for the user behind a redeemed code, issued to the
    /// client the code was checked against, with the proof of its PKCE check.
    pub fn code_claims(
        &self,
        client: &TokenClient,
        grant: &CodeGrant,
        _pkce: PkceVerified,
        now: UnixTime,
    ) -> Result<AccessTokenClaims, IssueError> {
        if grant.client_id != client.client().id {
            return Err(IssueError::WrongClient);
        }
        self.access_claims(grant.user_id.as_str(), &grant.client_id, grant.scope, now)
    }

    /// The claims of an access token issued by rotating a refresh token of `record`'s
    /// family, with `scope` (the rotation's, bounded by the user's current role).
    pub fn refresh_claims(
        &self,
        client: &TokenClient,
        record: &RefreshRecord,
        scope: ScopeSet,
        now: UnixTime,
    ) -> Result<AccessTokenClaims, IssueError> {
        if record.client_id != client.client().id {
            return Err(IssueError::WrongClient);
        }
        self.access_claims(record.user_id.as_str(), &record.client_id, scope, now)
    }

    /// The claims of the ID token issued with `access` (signed as `access_jwt` with
    /// `alg`) for a code: OIDC Core §2, with `at_hash` (§3.1.3.6) and `azp`.
    pub fn id_token_claims(
        &self,
        grant: &CodeGrant,
        access_jwt: &str,
        alg: SigningAlg,
        now: UnixTime,
    ) -> IdTokenClaims {
        IdTokenClaims {
            iss: self.issuer.clone(),
            sub: grant.user_id.as_str().to_owned(),
            aud: grant.client_id.as_str().to_owned(),
            exp: now.plus_secs(self.lifetime.as_secs()),
            iat: now,
            auth_time: grant.auth_time,
            nonce: grant.nonce.clone(),
            at_hash: at_hash(access_jwt, alg),
            azp: grant.client_id.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Client, ClientName, GrantType};
    use crate::grant::{authenticate_client, identify_public_client};
    use crate::pkce::{self, CodeChallenge, CodeVerifier};
    use crate::secret::{ClientSecret, Pepper, SecretHasher};
    use crate::token::AccessTokenLifetime;

    fn client(id: &str, public: bool, hasher: &SecretHasher, secret: &ClientSecret) -> Client {
        Client {
            id: ClientId::parse(id).unwrap(),
            name: ClientName::parse("app").unwrap(),
            secret_hash: (!public).then(|| hasher.hash(secret)),
            grant_types: vec![GrantType::ClientCredentials, GrantType::AuthorizationCode],
            scopes: "property:read".parse().unwrap(),
            redirect_uris: vec![],
            kind: crate::client::ClientKind::from_public(public),
            id_token_alg: crate::client::DEFAULT_ID_TOKEN_ALG,
            metadata: Default::default(),
            registration_token_hash: None,
            allow_introspection: false,
            properties: None,
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        }
    }

    fn policy() -> TokenPolicy {
        TokenPolicy {
            issuer: "https://as".into(),
            audience: "https://as/api".into(),
            lifetime: AccessTokenLifetime::default(),
        }
    }

    fn pkce_proof() -> PkceVerified {
        // RFC 7636 Appendix B.
        let v = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        let c = CodeChallenge::parse(
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            Some("S256"),
        )
        .unwrap();
        pkce::verify(&v, &c).unwrap()
    }

    fn grant(client_id: &str) -> CodeGrant {
        CodeGrant {
            client_id: ClientId::parse(client_id).unwrap(),
            redirect_uri: "https://app.example/cb".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            user_id: crate::ids::UserId::parse("dbu_alice").unwrap(),
            scope: "openid property:read".parse().unwrap(),
            nonce: Some("n".into()),
            auth_time: UnixTime(900),
            expires_at: UnixTime(1_600),
        }
    }

    #[test]
    fn client_credentials_claims_follow_the_policy() {
        let hasher = SecretHasher::new(&Pepper::generate().unwrap());
        let secret = ClientSecret::generate().unwrap();
        let auth = authenticate_client(
            Some(client("dbc_test", false, &hasher, &secret)),
            &secret,
            &hasher,
        )
        .unwrap();
        let policy = policy();
        let claims = policy
            .client_credentials_claims(&auth, ScopeSet::empty(), UnixTime(1_000))
            .unwrap();
        assert_eq!(claims.exp, UnixTime(1_900));
        assert_eq!(claims.sub, "dbc_test");
        assert_eq!(claims.client_id.as_str(), "dbc_test");
        assert!(claims.is_client_token());
        let other = policy
            .client_credentials_claims(&auth, ScopeSet::empty(), UnixTime(1_000))
            .unwrap();
        assert_ne!(claims.jti, other.jti);
    }

    #[test]
    fn a_public_client_holds_no_authenticated_proof() {
        let hasher = SecretHasher::new(&Pepper::generate().unwrap());
        let secret = ClientSecret::generate().unwrap();
        let public = identify_public_client(Some(client("dbc_spa", true, &hasher, &secret)))
            .map(TokenClient::Public)
            .unwrap();
        assert_eq!(public.kind(), crate::client::ClientKind::Public);
        assert!(public.authenticated().is_none());
        // A confidential client cannot pass as public.
        let confidential = client("dbc_web", false, &hasher, &secret);
        assert!(identify_public_client(Some(confidential)).is_err());
    }

    #[test]
    fn code_claims_are_the_users_and_need_the_codes_own_client() {
        let hasher = SecretHasher::new(&Pepper::generate().unwrap());
        let secret = ClientSecret::generate().unwrap();
        let spa = identify_public_client(Some(client("dbc_spa", true, &hasher, &secret)))
            .map(TokenClient::Public)
            .unwrap();
        let claims = policy()
            .code_claims(&spa, &grant("dbc_spa"), pkce_proof(), UnixTime(1_000))
            .unwrap();
        assert_eq!(claims.sub, "dbu_alice");
        assert_eq!(claims.client_id.as_str(), "dbc_spa");
        assert!(!claims.is_client_token());
        assert!(matches!(
            policy().code_claims(&spa, &grant("dbc_other"), pkce_proof(), UnixTime(1_000)),
            Err(IssueError::WrongClient)
        ));
    }

    #[test]
    fn id_token_claims_bind_the_access_token_and_nonce() {
        let g = grant("dbc_spa");
        let id = policy().id_token_claims(&g, "a.b.c", SigningAlg::ES256, UnixTime(1_000));
        assert_eq!(id.aud, "dbc_spa");
        assert_eq!(id.azp, "dbc_spa");
        assert_eq!(id.nonce.as_deref(), Some("n"));
        assert_eq!(id.auth_time, UnixTime(900));
        assert_eq!(id.at_hash, at_hash("a.b.c", SigningAlg::ES256));
    }
}
