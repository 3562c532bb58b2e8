//! Security profiles: the server-wide switch (`deedbolt serve --profile`) that tightens
//! deedbolt's defaults to a published profile. [`Profile::Fapi2`] is the FAPI 2.0 Security
//! Profile (OpenID Foundation, Final, February 2025), "FAPI 2.0 SP" below; each rule's doc
//! quotes the clause it enforces from §5.3.2.1 (general requirements for authorization
//! servers) or §5.3.2.2 (flows that use the authorization endpoint).
//!
//! The rules are pure and are asked by the code that enforces them, so that every
//! endpoint agrees: client authentication ([`Profile::allows_auth_method`]), the
//! authorization endpoint ([`Profile::requires_par`]), issuance
//! ([`Profile::check_sender_constraint`], [`Profile::code_lifetime_secs`]), the
//! `private_key_jwt` audience ([`Profile::assertion_audience_must_be_a_string`]),
//! algorithms ([`Profile::allows_jws_alg`]) and DPoP nonces ([`Profile::dpop_nonce_required`]). Discovery lists only what the profile
//! allows.
//!
//! What deedbolt already does in every profile is not repeated here (§5.3.2.2): PKCE with
//! S256 only ("shall require PKCE with `S256` as the code challenge method"),
//! `response_type=code` only ("shall require the value of `response_type` ... to be
//! `code`"), `redirect_uri` required in every authorization request, pushed or not, the
//! `iss` authorization response parameter of RFC 9207, single-use codes, 303 redirects and
//! `request_uri` lifetimes under 600 s; and (§5.3.2.1) no resource owner password
//! credentials grant.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::client::AuthMethod;
use crate::error::OAuthError;
use crate::flow::CODE_LIFETIME_SECS;
use crate::token::Confirmation;

/// The security profile the server enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// deedbolt's own secure defaults: PAR, DPoP and mTLS are offered, not required.
    #[default]
    Default,
    /// The FAPI 2.0 Security Profile.
    Fapi2,
}

/// The longest an authorization code may live under FAPI 2.0 SP §5.3.2.1 ("shall issue
/// authorization codes with a maximum lifetime of 60 seconds").
pub const FAPI2_MAX_CODE_LIFETIME_SECS: i64 = 60;

/// A profile name that is not `default` or `fapi2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile `{0}` (expected `default` or `fapi2`)")]
pub struct UnknownProfile(String);

impl Profile {
    /// The name used by the `--profile` setting.
    pub const fn as_str(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Fapi2 => "fapi2",
        }
    }

    /// Whether every authorization request must be pushed (RFC 9126) first.
    ///
    /// FAPI 2.0 SP §5.3.2.2: "shall reject authorization requests sent without [RFC9126]";
    /// refused with `invalid_request` (RFC 9126 §4).
    pub const fn requires_par(self) -> bool {
        matches!(self, Profile::Fapi2)
    }

    /// Whether a client may authenticate (at the token, PAR, revocation and introspection
    /// endpoints) with `method`.
    ///
    /// FAPI 2.0 SP §5.3.2.1: "shall only support confidential clients" and "shall
    /// authenticate clients using one of the following methods: MTLS as specified in
    /// section 2 of [RFC8705] (`tls_client_auth`, `self_signed_tls_client_auth`), or
    /// `private_key_jwt`". Shared secrets and public clients are refused with
    /// `invalid_client`.
    ///
    /// ```
    /// use deedbolt_core::client::AuthMethod;
    /// use deedbolt_core::profile::Profile;
    /// assert!(Profile::Default.allows_auth_method(AuthMethod::ClientSecretBasic));
    /// assert!(!Profile::Fapi2.allows_auth_method(AuthMethod::ClientSecretBasic));
    /// assert!(!Profile::Fapi2.allows_auth_method(AuthMethod::None));
    /// assert!(Profile::Fapi2.allows_auth_method(AuthMethod::PrivateKeyJwt));
    /// ```
    pub const fn allows_auth_method(self, method: AuthMethod) -> bool {
        match self {
            Profile::Default => true,
            Profile::Fapi2 => matches!(
                method,
                AuthMethod::PrivateKeyJwt
                    | AuthMethod::TlsClientAuth
                    | AuthMethod::SelfSignedTlsClientAuth
            ),
        }
    }

    /// Refuses a client authentication method the profile does not allow
    /// ([`Profile::allows_auth_method`]) with `invalid_client`.
    pub fn check_auth_method(self, method: AuthMethod) -> Result<(), OAuthError> {
        if self.allows_auth_method(method) {
            Ok(())
        } else {
            Err(OAuthError::InvalidClient(Cow::Owned(format!(
                "client authentication `{}` is not allowed by the {} profile \
                 (use private_key_jwt, tls_client_auth or self_signed_tls_client_auth)",
                method.as_str(),
                self.as_str()
            ))))
        }
    }

    /// Whether every access token must be sender-constrained (carry `cnf`).
    ///
    /// FAPI 2.0 SP §5.3.2.1: "shall only issue sender-constrained access tokens" using
    /// MTLS (RFC 8705) or DPoP (RFC 9449).
    pub const fn requires_sender_constraint(self) -> bool {
        matches!(self, Profile::Fapi2)
    }

    /// The last check before an access token is signed: under a profile that requires
    /// sender-constrained tokens, a claim set without a confirmation (`cnf.jkt` from a DPoP
    /// proof or `cnf.x5t#S256` from the client certificate) is refused with
    /// `invalid_request`, and nothing is issued.
    pub fn check_sender_constraint(self, cnf: Option<&Confirmation>) -> Result<(), OAuthError> {
        let bound = cnf.is_some_and(|c| c.jkt.is_some() || c.x5t_s256.is_some());
        if self.requires_sender_constraint() && !bound {
            return Err(OAuthError::invalid_request(format!(
                "the {} profile issues only sender-constrained access tokens: \
                 send a DPoP proof (RFC 9449) or use a mutual-TLS client certificate (RFC 8705)",
                self.as_str()
            )));
        }
        Ok(())
    }

    /// How long an authorization code lives, in seconds.
    ///
    /// FAPI 2.0 SP §5.3.2.1: "shall issue authorization codes with a maximum lifetime of 60
    /// seconds".
    pub fn code_lifetime_secs(self) -> i64 {
        match self {
            Profile::Default => CODE_LIFETIME_SECS,
            Profile::Fapi2 => CODE_LIFETIME_SECS.min(FAPI2_MAX_CODE_LIFETIME_SECS),
        }
    }

    /// Whether a `private_key_jwt` client assertion's `aud` must be the issuer identifier
    /// as a JSON string (in every profile it is the issuer alone, RFC 10070; the default
    /// profile also takes it as a one-element array, which RFC 10070 allows).
    ///
    /// FAPI 2.0 SP §5.3.2.1: "shall only accept its issuer identifier value (as defined in
    /// [RFC8414]) as a string in the `aud` claim received in client authentication
    /// assertions".
    pub const fn assertion_audience_must_be_a_string(self) -> bool {
        matches!(self, Profile::Fapi2)
    }

    /// Whether JWS algorithm `alg` may sign what this server verifies or issues: client
    /// assertions, DPoP proofs (the DPoP verifier is configured with this rule, and
    /// discovery and the `algs` of `DPoP` challenges follow it), access and ID tokens.
    ///
    /// FAPI 2.0 SP §5.4.1: "shall use `PS256`, `ES256`, or `EdDSA` (using the `Ed25519`
    /// variant) algorithms", so RS256 (RSASSA-PKCS1-v1_5) is refused under the profile.
    ///
    /// ```
    /// use deedbolt_core::profile::Profile;
    /// assert!(Profile::Default.allows_jws_alg("RS256"));
    /// assert!(!Profile::Fapi2.allows_jws_alg("RS256"));
    /// assert!(Profile::Fapi2.allows_jws_alg("PS256"));
    /// ```
    pub fn allows_jws_alg(self, alg: &str) -> bool {
        match self {
            Profile::Default => true,
            Profile::Fapi2 => matches!(alg, "PS256" | "ES256" | "EdDSA"),
        }
    }

    /// The ID-token algorithm of a client that names none: OpenID Connect's RS256
    /// (Registration §2), or ES256 under fapi2, which does not allow RS256 (§5.4.1).
    pub const fn default_id_token_alg(self) -> crate::jose::SigningAlg {
        match self {
            Profile::Default => crate::client::DEFAULT_ID_TOKEN_ALG,
            Profile::Fapi2 => crate::jose::SigningAlg::ES256,
        }
    }

    /// Whether DPoP proofs must carry a server-provided nonce (RFC 9449 §8). FAPI 2.0 SP
    /// §5.3.2.1 lets the server decide ("if using DPoP, may use the server provided nonce
    /// mechanism"); deedbolt requires them under the profile so that a proof cannot be made
    /// in advance.
    pub const fn dpop_nonce_required(self) -> bool {
        matches!(self, Profile::Fapi2)
    }

    /// Whether `response_type` may be `value` (FAPI 2.0 SP §5.3.2.2: "shall require the
    /// value of `response_type` ... to be `code`"; deedbolt supports nothing else in any
    /// profile).
    pub fn allows_response_type(self, value: &str) -> bool {
        value == "code"
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Profile::Default),
            "fapi2" => Ok(Profile::Fapi2),
            other => Err(UnknownProfile(other.chars().take(40).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_METHODS: [AuthMethod; 6] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth,
        AuthMethod::None,
    ];

    #[test]
    fn names_round_trip() {
        for p in [Profile::Default, Profile::Fapi2] {
            assert_eq!(p.as_str().parse::<Profile>(), Ok(p));
        }
        assert!("FAPI2".parse::<Profile>().is_err());
        assert!("fapi1".parse::<Profile>().is_err());
        assert_eq!(Profile::default(), Profile::Default);
    }

    #[test]
    fn the_default_profile_allows_everything_deedbolt_supports() {
        let p = Profile::Default;
        assert!(!p.requires_par());
        assert!(!p.requires_sender_constraint());
        assert!(!p.assertion_audience_must_be_a_string());
        assert!(["RS256", "PS256", "ES256", "EdDSA"]
            .into_iter()
            .all(|a| p.allows_jws_alg(a)));
        assert!(!p.dpop_nonce_required());
        assert!(ALL_METHODS.into_iter().all(|m| p.allows_auth_method(m)));
        assert!(p.check_sender_constraint(None).is_ok());
        assert_eq!(p.code_lifetime_secs(), CODE_LIFETIME_SECS);
    }

    #[test]
    fn fapi2_allows_only_private_key_jwt_and_mtls_client_authentication() {
        let allowed: Vec<_> = ALL_METHODS
            .into_iter()
            .filter(|m| Profile::Fapi2.allows_auth_method(*m))
            .collect();
        assert_eq!(
            allowed,
            [
                AuthMethod::PrivateKeyJwt,
                AuthMethod::TlsClientAuth,
                AuthMethod::SelfSignedTlsClientAuth
            ]
        );
        let err = Profile::Fapi2
            .check_auth_method(AuthMethod::ClientSecretPost)
            .unwrap_err();
        assert_eq!(err.code(), "invalid_client");
        assert!(Profile::Fapi2
            .check_auth_method(AuthMethod::TlsClientAuth)
            .is_ok());
    }

    #[test]
    fn fapi2_issues_only_sender_constrained_tokens() {
        let p = Profile::Fapi2;
        assert_eq!(
            p.check_sender_constraint(None).unwrap_err().code(),
            "invalid_request"
        );
        let empty = Confirmation {
            jkt: None,
            x5t_s256: None,
        };
        assert!(p.check_sender_constraint(Some(&empty)).is_err());
        assert!(p
            .check_sender_constraint(Some(&Confirmation::dpop("jkt")))
            .is_ok());
        assert!(p
            .check_sender_constraint(Some(&Confirmation::certificate("x5t")))
            .is_ok());
    }

    #[test]
    fn fapi2_requires_par_short_codes_issuer_audience_and_dpop_nonces() {
        let p = Profile::Fapi2;
        assert!(p.requires_par());
        assert!(p.code_lifetime_secs() <= FAPI2_MAX_CODE_LIFETIME_SECS);
        assert!(p.assertion_audience_must_be_a_string());
        assert!(!p.allows_jws_alg("RS256"));
        assert!(p.allows_jws_alg(p.default_id_token_alg().as_str()));
        assert!(["PS256", "ES256", "EdDSA"]
            .into_iter()
            .all(|a| p.allows_jws_alg(a)));
        assert!(p.dpop_nonce_required());
        assert!(p.allows_response_type("code"));
        assert!(!p.allows_response_type("code id_token"));
    }
}
