//! Refresh tokens: rotation, reuse detection and lifetimes, as a state machine
//! (RFC 6749 §6, §10.4; RFC 9700 §4.14).
//!
//! Every refresh token belongs to a *family*: the chain that started with one
//! authorization code. Using an active token rotates it (it becomes `Rotated` and a new
//! active token joins the family). Presenting a token that was already rotated is reuse:
//! either the legitimate client or an attacker holds a stolen copy, and the server cannot
//! tell which, so the whole family is revoked — every refresh token and every access
//! token issued in it. The one exception is a configurable grace period for a client that
//! sent the same refresh twice at once (a retry after a lost response): within it, the
//! second caller gets the very same new pair, never a second one.

use std::fmt;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::ids::{ClientId, UserId};
use crate::rand::{self, RandomError};
use crate::scope::ScopeSet;
use crate::user::Role;

/// The prefix of refresh tokens (easy to grep for when leaked).
pub const REFRESH_TOKEN_PREFIX: &str = "dbr_";

/// Lifetimes of refresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// How long one refresh token lives (default 14 days).
    pub idle_secs: i64,
    /// How long a family lives from its first token, however often it is rotated (default 90 days).
    pub absolute_secs: i64,
    /// How long after a rotation the old token may be presented again and get the same
    /// new pair (default 0: never).
    pub grace_secs: i64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            idle_secs: 14 * 86_400,
            absolute_secs: 90 * 86_400,
            grace_secs: 0,
        }
    }
}

/// A refresh-token setting out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshPolicyError {
    /// Outside 1 day – 8 weeks.
    #[error("refresh-token lifetime must be between 1 day and 8 weeks")]
    Idle,
    /// Shorter than the idle lifetime or longer than a year.
    #[error(
        "refresh-token family lifetime must be at least the token lifetime and at most 365 days"
    )]
    Absolute,
    /// Outside 0–60 s.
    #[error("refresh-token reuse grace period must be between 0 and 60 seconds")]
    Grace,
}

impl RefreshPolicy {
    /// Validates a policy.
    ///
    /// ```
    /// use deedbolt_core::refresh::RefreshPolicy;
    /// assert!(RefreshPolicy::new(86_400, 86_400, 0).is_ok());
    /// assert!(RefreshPolicy::new(3_600, 86_400, 0).is_err());
    /// assert!(RefreshPolicy::new(86_400, 3_600, 0).is_err());
    /// assert!(RefreshPolicy::new(86_400, 86_400, 61).is_err());
    /// ```
    pub fn new(
        idle_secs: i64,
        absolute_secs: i64,
        grace_secs: i64,
    ) -> Result<Self, RefreshPolicyError> {
        if !(86_400..=8 * 7 * 86_400).contains(&idle_secs) {
            return Err(RefreshPolicyError::Idle);
        }
        if absolute_secs < idle_secs || absolute_secs > 365 * 86_400 {
            return Err(RefreshPolicyError::Absolute);
        }
        if !(0..=60).contains(&grace_secs) {
            return Err(RefreshPolicyError::Grace);
        }
        Ok(RefreshPolicy {
            idle_secs,
            absolute_secs,
            grace_secs,
        })
    }
}

/// The state of one refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// May be used once.
    Active,
    /// Used; replaced by a newer token of the family.
    Rotated,
    /// Revoked (by reuse detection, the client, or an operator).
    Revoked,
}

impl TokenState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Rotated => "rotated",
            TokenState::Revoked => "revoked",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(TokenState::Active),
            "rotated" => Some(TokenState::Rotated),
            "revoked" => Some(TokenState::Revoked),
            _ => None,
        }
    }
}

/// A stored refresh token (by hash) and its family's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// The family.
    pub family_id: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user.
    pub user_id: UserId,
    /// The scope of the family (a refresh may narrow it, never widen it).
    pub scope: ScopeSet,
    /// This token's state.
    pub state: TokenState,
    /// When this token was issued.
    pub issued_at: UnixTime,
    /// When this token expires.
    pub expires_at: UnixTime,
    /// When the family must end.
    pub family_expires_at: UnixTime,
    /// Whether the family was revoked.
    pub family_revoked: bool,
    /// When this token was rotated, if it was.
    pub rotated_at: Option<UnixTime>,
    /// When the user authenticated (for ID tokens).
    pub auth_time: UnixTime,
    /// The DPoP key thumbprint the family is bound to (public clients, RFC 9449 §5).
    pub dpop_jkt: Option<String>,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Rotate it: issue a new pair with this scope.
    Rotate(ScopeSet),
    /// A rotated token presented again within the grace period: answer with the pair
    /// issued at the rotation.
    ReplayWithinGrace,
    /// A rotated token presented again: revoke the family.
    Reuse,
    /// Issued to another client: refuse, and record a suspicious event.
    WrongClient,
    /// Expired, or its family expired or was revoked: refuse.
    Dead,
    /// The requested scope is not within the family's scope: `invalid_scope`.
    ScopeWidened,
}

/// Decides what a refresh request may do. Pure: the caller applies the decision
/// atomically (rotation as one conditional update).
pub fn decide(
    record: &RefreshRecord,
    presenter: &ClientId,
    requested: Option<ScopeSet>,
    policy: &RefreshPolicy,
    now: UnixTime,
) -> Decision {
    if &record.client_id != presenter {
        return Decision::WrongClient;
    }
    if record.family_revoked || record.state == TokenState::Revoked {
        return Decision::Dead;
    }
    if record.state == TokenState::Rotated {
        let within_grace = record
            .rotated_at
            .is_some_and(|at| policy.grace_secs > 0 && now.0 <= at.0 + policy.grace_secs);
        return if within_grace {
            Decision::ReplayWithinGrace
        } else {
            Decision::Reuse
        };
    }
    if now >= record.expires_at || now >= record.family_expires_at {
        return Decision::Dead;
    }
    match requested {
        Some(s) if !s.is_subset(&record.scope) => Decision::ScopeWidened,
        Some(s) => Decision::Rotate(s),
        None => Decision::Rotate(record.scope),
    }
}

/// What the family's user, as they are *now*, allows a refresh to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserBound {
    /// Issue this scope: the rotation's scope within what the user's current role may
    /// delegate.
    Scope(ScopeSet),
    /// The user no longer exists: refuse (`invalid_grant`) and revoke the family.
    UserGone,
    /// The user's current role may delegate none of the scope: refuse (`invalid_grant`).
    /// The family stays, so a user whose role is restored keeps the app signed in.
    NothingDelegable,
}

/// Bounds a rotation by the user behind the family (`role` is `None` when the user was
/// deleted). A refresh is a new grant made without the user present, so it may carry no
/// more than the user could grant today: a demoted user's app keeps only what the new
/// role may delegate (RFC 6749 §6: the scope must not exceed what the resource owner
/// granted; a role bounds what they can grant).
///
/// ```
/// use deedbolt_core::refresh::{bound_by_user, UserBound};
/// use deedbolt_core::scope::ScopeSet;
/// use deedbolt_core::user::Role;
/// let scope: ScopeSet = "openid property:read tenant:read".parse().unwrap();
/// assert_eq!(bound_by_user(scope, Some(Role::Manager)), UserBound::Scope(scope));
/// assert_eq!(
///     bound_by_user(scope, Some(Role::Tenant)),
///     UserBound::Scope("openid tenant:read".parse().unwrap())
/// );
/// let staff_only: ScopeSet = "property:write".parse().unwrap();
/// assert_eq!(bound_by_user(staff_only, Some(Role::Tenant)), UserBound::NothingDelegable);
/// assert_eq!(bound_by_user(scope, None), UserBound::UserGone);
/// ```
pub fn bound_by_user(scope: ScopeSet, role: Option<Role>) -> UserBound {
    let Some(role) = role else {
        return UserBound::UserGone;
    };
    let bounded = scope.intersection(&role.delegable());
    if bounded.is_empty() {
        UserBound::NothingDelegable
    } else {
        UserBound::Scope(bounded)
    }
}

/// What the client, as it is registered *now*, allows a refresh to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBound {
    /// Issue this scope: the rotation's scope within the client's current scopes.
    Scope(ScopeSet),
    /// The client is no longer registered for any of the scope: refuse (`invalid_grant`).
    NothingRegistered,
}

/// Bounds a rotation by the client's current registration (`registered`, its `scopes`).
/// A client's scopes can shrink after the family was granted (an RFC 7592 update, or any
/// other change to the stored client); `/authorize` then refuses the removed scopes, and
/// a refresh must not hand them out either, or a narrowing would never take effect for the
/// users who had already signed in.
///
/// ```
/// use deedbolt_core::refresh::{bound_by_client, ClientBound};
/// use deedbolt_core::scope::ScopeSet;
/// let granted: ScopeSet = "openid tenant:read".parse().unwrap();
/// let now: ScopeSet = "openid".parse().unwrap();
/// assert_eq!(bound_by_client(granted, now), ClientBound::Scope(now));
/// assert_eq!(bound_by_client(granted, granted), ClientBound::Scope(granted));
/// let other: ScopeSet = "property:read".parse().unwrap();
/// assert_eq!(bound_by_client(granted, other), ClientBound::NothingRegistered);
/// ```
pub fn bound_by_client(scope: ScopeSet, registered: ScopeSet) -> ClientBound {
    let bounded = scope.intersection(&registered);
    if bounded.is_empty() {
        ClientBound::NothingRegistered
    } else {
        ClientBound::Scope(bounded)
    }
}

/// A refresh token in plain text. Zeroed on drop, redacted in `Debug`.
pub struct RefreshToken(zeroize::Zeroizing<String>);

impl RefreshToken {
    /// A fresh token: 256 random bits with the [`REFRESH_TOKEN_PREFIX`].
    pub fn generate() -> Result<Self, RandomError> {
        Ok(RefreshToken(zeroize::Zeroizing::new(format!(
            "{REFRESH_TOKEN_PREFIX}{}",
            rand::token::<32>()?
        ))))
    }

    /// Wraps a presented token.
    pub fn presented(s: &str) -> Self {
        RefreshToken(zeroize::Zeroizing::new(s.to_owned()))
    }

    /// The token, to send to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its storage key: SHA-256, so a database leak reveals no usable token.
    pub fn hash(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, self.0.as_bytes()).as_ref());
        out
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(state: TokenState) -> RefreshRecord {
        RefreshRecord {
            family_id: "f".into(),
            client_id: ClientId::parse("dbc_a").unwrap(),
            user_id: UserId::parse("usr_a").unwrap(),
            scope: "openid tenant:read financial:read".parse().unwrap(),
            state,
            issued_at: UnixTime(1_000),
            expires_at: UnixTime(2_000),
            family_expires_at: UnixTime(5_000),
            family_revoked: false,
            rotated_at: (state == TokenState::Rotated).then_some(UnixTime(1_500)),
            auth_time: UnixTime(900),
            dpop_jkt: None,
        }
    }

    fn me() -> ClientId {
        ClientId::parse("dbc_a").unwrap()
    }

    #[test]
    fn active_token_rotates_and_may_narrow() {
        let p = RefreshPolicy::default();
        let r = record(TokenState::Active);
        assert_eq!(
            decide(&r, &me(), None, &p, UnixTime(1_100)),
            Decision::Rotate(r.scope)
        );
        let narrow: ScopeSet = "tenant:read".parse().unwrap();
        assert_eq!(
            decide(&r, &me(), Some(narrow), &p, UnixTime(1_100)),
            Decision::Rotate(narrow)
        );
        let wide: ScopeSet = "tenant:write".parse().unwrap();
        assert_eq!(
            decide(&r, &me(), Some(wide), &p, UnixTime(1_100)),
            Decision::ScopeWidened
        );
    }

    #[test]
    fn rotated_token_is_reuse_unless_within_grace() {
        let r = record(TokenState::Rotated);
        let no_grace = RefreshPolicy::default();
        assert_eq!(
            decide(&r, &me(), None, &no_grace, UnixTime(1_500)),
            Decision::Reuse
        );
        let grace = RefreshPolicy {
            grace_secs: 5,
            ..no_grace
        };
        assert_eq!(
            decide(&r, &me(), None, &grace, UnixTime(1_505)),
            Decision::ReplayWithinGrace
        );
        assert_eq!(
            decide(&r, &me(), None, &grace, UnixTime(1_506)),
            Decision::Reuse
        );
    }

    #[test]
    fn expiry_family_and_client_binding() {
        let p = RefreshPolicy::default();
        let r = record(TokenState::Active);
        assert_eq!(decide(&r, &me(), None, &p, UnixTime(2_000)), Decision::Dead);
        let mut fam = r.clone();
        fam.family_expires_at = UnixTime(1_050);
        assert_eq!(
            decide(&fam, &me(), None, &p, UnixTime(1_100)),
            Decision::Dead
        );
        let mut revoked = r.clone();
        revoked.family_revoked = true;
        assert_eq!(
            decide(&revoked, &me(), None, &p, UnixTime(1_100)),
            Decision::Dead
        );
        let other = ClientId::parse("dbc_b").unwrap();
        assert_eq!(
            decide(&r, &other, None, &p, UnixTime(1_100)),
            Decision::WrongClient
        );
    }

    fn any_state() -> impl Strategy<Value = TokenState> {
        prop_oneof![
            Just(TokenState::Active),
            Just(TokenState::Rotated),
            Just(TokenState::Revoked)
        ]
    }

    proptest! {
        #[test]
        fn only_active_live_tokens_of_the_right_client_rotate(
            state in any_state(),
            now in 0i64..10_000,
            grace in 0i64..=60,
            revoked in any::<bool>(),
            same_client in any::<bool>(),
            requested in proptest::option::of(0u16..(1 << 11)),
        ) {
            let mut r = record(state);
            r.family_revoked = revoked;
            let presenter = if same_client { me() } else { ClientId::parse("dbc_x").unwrap() };
            let requested = requested.map(|bits| {
                crate::scope::Scope::ALL.iter().enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, s)| *s)
                    .collect::<ScopeSet>()
            });
            let p = RefreshPolicy { grace_secs: grace, ..RefreshPolicy::default() };
            match decide(&r, &presenter, requested, &p, UnixTime(now)) {
                Decision::Rotate(scope) => {
                    prop_assert!(same_client && !revoked && state == TokenState::Active);
                    prop_assert!(UnixTime(now) < r.expires_at && UnixTime(now) < r.family_expires_at);
                    prop_assert!(scope.is_subset(&r.scope));
                }
                Decision::ReplayWithinGrace => prop_assert!(state == TokenState::Rotated && grace > 0),
                Decision::Reuse => prop_assert!(state == TokenState::Rotated && same_client && !revoked),
                Decision::WrongClient => prop_assert!(!same_client),
                Decision::Dead | Decision::ScopeWidened => prop_assert!(same_client),
            }
        }
    }
}
