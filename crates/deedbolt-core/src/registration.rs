//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592): the
//! initial access tokens that allow a registration, the registration access tokens that
//! manage one client, and the policy registered metadata is validated against
//! ([`policy`]).
//!
//! Both kinds of token are server-generated 256-bit bearer secrets, shown once and stored
//! only as their keyed hash ([`crate::secret::SecretHasher`]), exactly like client
//! secrets: a stolen database does not let anyone register or manage a client.

pub mod policy;

use std::fmt;
use std::str::FromStr;

use crate::client::Client;
use crate::clock::UnixTime;
use crate::rand::{self, RandomError};
use crate::scope::ScopeSet;
use crate::secret::{ClientSecret, SecretHash, SecretHasher};

/// The prefix of every initial access token (`deedbolt client registration-token create`).
pub const INITIAL_ACCESS_TOKEN_PREFIX: &str = "dbi_";

/// The prefix of every registration access token (RFC 7592 §1: it manages one client).
/// Distinct from refresh tokens' `dbr_`, so a leaked token says what it is.
pub const REGISTRATION_ACCESS_TOKEN_PREFIX: &str = "dbrat_";

/// The most uses an initial access token may be given.
pub const MAX_TOKEN_USES: u32 = 1_000_000;

/// The longest an initial access token may live: a year.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 366 * 86_400;

/// Whether a change from `before` to `after` voids the consents users gave the client:
/// a different set of redirect URIs (where codes go), name (what users agreed to), kind
/// or authentication method (who can redeem the codes), or scopes beyond the old ones.
/// Remembered consents were given to the client as it was; after such a change the users
/// must see the consent page again, or whoever holds a registration access token could
/// point every remembered consent at a new host without anyone noticing. Narrowing the
/// scopes, or changing only informational metadata, keeps them.
pub fn voids_consents(before: &Client, after: &Client) -> bool {
    before.redirect_uris != after.redirect_uris
        || before.name != after.name
        || before.kind != after.kind
        || before.auth_method() != after.auth_method()
        || !after.scopes.is_subset(&before.scopes)
}

/// How `/register` admits registrations (`--registration`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RegistrationMode {
    /// Only with an initial access token (RFC 7591 §3: "protected" registration). The
    /// default: whoever registers a client gets a client the tenants' users may be asked
    /// to consent to, so an operator decides who may.
    #[default]
    Token,
    /// Anyone may register, within the open-registration scope set; an initial access
    /// token, when presented, still applies its own scopes.
    Open,
    /// No dynamic registration: `/register` answers 404 and discovery does not advertise
    /// it.
    Off,
}

impl RegistrationMode {
    /// The configured name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RegistrationMode::Token => "token",
            RegistrationMode::Open => "open",
            RegistrationMode::Off => "off",
        }
    }
}

/// A registration mode name that is not `open`, `token` or `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registration mode must be open, token or off")]
pub struct UnknownRegistrationMode;

impl FromStr for RegistrationMode {
    type Err = UnknownRegistrationMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "token" => Ok(RegistrationMode::Token),
            "open" => Ok(RegistrationMode::Open),
            "off" => Ok(RegistrationMode::Off),
            _ => Err(UnknownRegistrationMode),
        }
    }
}

impl fmt::Display for RegistrationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How `/register` admits and validates registrations (from `--registration*`).
#[derive(Clone, Debug, Default)]
pub struct RegistrationSettings {
    /// Who may register.
    pub mode: RegistrationMode,
    /// What a registration may get when its initial access token names no scope, and in
    /// open registration.
    pub open_scopes: ScopeSet,
    /// The redirect-URI host policy.
    pub policy: policy::RegistrationPolicy,
}

/// An initial access token as stored (RFC 7591 §3: it authorizes registrations). Only its
/// keyed hash is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialAccessToken {
    /// Its public id, for listing and revoking (`iat_…`; not a secret).
    pub id: String,
    /// The keyed hash of the token.
    pub hash: SecretHash,
    /// The most a client registered with it may get; `None`: the server's
    /// open-registration scope set.
    pub scopes: Option<ScopeSet>,
    /// How many registrations it allows; `None`: any number until it expires.
    pub max_uses: Option<u32>,
    /// How many registrations it made.
    pub uses: u32,
    /// When it was issued.
    pub created_at: UnixTime,
    /// When it stops working.
    pub expires_at: UnixTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixTime>,
}

impl InitialAccessToken {
    /// Whether it still allows a registration at `now`: not revoked, not expired, uses
    /// left.
    ///
    /// ```
    /// use deedbolt_core::clock::UnixTime;
    /// use deedbolt_core::registration::IssuedToken;
    /// use deedbolt_core::secret::{Pepper, SecretHasher};
    /// let hasher = SecretHasher::new(&Pepper::generate().unwrap());
    /// let issued = IssuedToken::issue(&hasher, None, Some(1), UnixTime(0), 60).unwrap();
    /// let mut t = issued.record;
    /// assert!(t.usable_at(UnixTime(59)));
    /// assert!(!t.usable_at(UnixTime(60)));
    /// t.uses = 1;
    /// assert!(!t.usable_at(UnixTime(1)));
    /// ```
    pub fn usable_at(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none()
            && now < self.expires_at
            && self.max_uses.is_none_or(|max| self.uses < max)
    }

    /// Its state at `now`, for listings.
    pub fn state_at(&self, now: UnixTime) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if now >= self.expires_at {
            "expired"
        } else if self.max_uses.is_some_and(|max| self.uses >= max) {
            "used up"
        } else {
            "active"
        }
    }
}

/// Why an initial access token cannot be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueTokenError {
    /// A lifetime outside 1 s to [`MAX_TOKEN_LIFETIME_SECS`].
    #[error("the token's lifetime must be between 1 second and 366 days")]
    Lifetime,
    /// Zero uses, or more than [`MAX_TOKEN_USES`].
    #[error("--max-uses must be between 1 and 1000000")]
    Uses,
    /// Administration scopes are never registered dynamically.
    #[error("administration scopes cannot be registered dynamically")]
    AdminScope,
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A freshly issued initial access token: the record to store and the token to show once.
#[derive(Debug)]
pub struct IssuedToken {
    /// What to store.
    pub record: InitialAccessToken,
    /// The token itself (redacted in `Debug`).
    pub token: ClientSecret,
}

impl IssuedToken {
    /// Issues a token valid for `lifetime_secs` from `now`, for at most `max_uses`
    /// registrations of clients within `scopes`.
    pub fn issue(
        hasher: &SecretHasher,
        scopes: Option<ScopeSet>,
        max_uses: Option<u32>,
        now: UnixTime,
        lifetime_secs: i64,
    ) -> Result<Self, IssueTokenError> {
        if !(1..=MAX_TOKEN_LIFETIME_SECS).contains(&lifetime_secs) {
            return Err(IssueTokenError::Lifetime);
        }
        if max_uses.is_some_and(|n| n == 0 || n > MAX_TOKEN_USES) {
            return Err(IssueTokenError::Uses);
        }
        if scopes.is_some_and(|s| s.iter().any(|s| s.is_admin())) {
            return Err(IssueTokenError::AdminScope);
        }
        let token = ClientSecret::generate_prefixed(INITIAL_ACCESS_TOKEN_PREFIX)?;
        let record = InitialAccessToken {
            id: format!("iat_{}", rand::token::<9>()?),
            hash: hasher.hash(&token),
            scopes,
            max_uses,
            uses: 0,
            created_at: now,
            expires_at: now.plus_secs(lifetime_secs),
            revoked_at: None,
        };
        Ok(IssuedToken { record, token })
    }
}

/// Whether a presented bearer credential looks like an initial access token at all (its
/// prefix): anything else is refused without a store lookup.
pub fn looks_like_initial_token(presented: &str) -> bool {
    presented.starts_with(INITIAL_ACCESS_TOKEN_PREFIX) && presented.len() < 200
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Pepper;

    fn hasher() -> SecretHasher {
        SecretHasher::new(&Pepper::generate().unwrap())
    }

    #[test]
    fn modes_parse_from_their_names() {
        for m in [
            RegistrationMode::Open,
            RegistrationMode::Token,
            RegistrationMode::Off,
        ] {
            assert_eq!(m.as_str().parse::<RegistrationMode>(), Ok(m));
        }
        assert!("closed".parse::<RegistrationMode>().is_err());
        assert_eq!(RegistrationMode::default(), RegistrationMode::Token);
    }

    #[test]
    fn issued_tokens_are_hashed_prefixed_and_bounded() {
        let h = hasher();
        let issued = IssuedToken::issue(&h, None, None, UnixTime(100), 3600).unwrap();
        assert!(issued
            .token
            .expose_secret()
            .starts_with(INITIAL_ACCESS_TOKEN_PREFIX));
        assert!(h.verify(&issued.token, &issued.record.hash));
        assert_eq!(issued.record.expires_at, UnixTime(3700));
        assert!(issued.record.id.starts_with("iat_"));
        assert!(!format!("{issued:?}").contains(issued.token.expose_secret()));
        assert!(IssuedToken::issue(&h, None, None, UnixTime(0), 0).is_err());
        assert!(
            IssuedToken::issue(&h, None, None, UnixTime(0), MAX_TOKEN_LIFETIME_SECS + 1).is_err()
        );
        assert!(IssuedToken::issue(&h, None, Some(0), UnixTime(0), 60).is_err());
        let admin: ScopeSet = "admin:read".parse().unwrap();
        assert!(matches!(
            IssuedToken::issue(&h, Some(admin), None, UnixTime(0), 60),
            Err(IssueTokenError::AdminScope)
        ));
    }

    #[test]
    fn a_revoked_or_used_up_token_is_not_usable() {
        let h = hasher();
        let mut t = IssuedToken::issue(&h, None, Some(2), UnixTime(0), 60)
            .unwrap()
            .record;
        assert_eq!(t.state_at(UnixTime(1)), "active");
        t.uses = 2;
        assert_eq!(t.state_at(UnixTime(1)), "used up");
        assert!(!t.usable_at(UnixTime(1)));
        t.uses = 0;
        t.revoked_at = Some(UnixTime(5));
        assert_eq!(t.state_at(UnixTime(1)), "revoked");
        assert!(!t.usable_at(UnixTime(1)));
        t.revoked_at = None;
        assert_eq!(t.state_at(UnixTime(60)), "expired");
    }
}
