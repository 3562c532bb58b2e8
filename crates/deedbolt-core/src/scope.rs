//! The PropTech scope catalogue, the OpenID Connect scopes, the administration scopes, and
//! scope sets (RFC 6749 §3.3).
//!
//! A scope string is parsed once, at the edge, into a [`ScopeSet`]; everything after that
//! works on the typed set. Unknown or malformed scope strings are rejected rather than
//! ignored, so a client never silently gets less (or more) than it asked for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One scope: the PropTech catalogue, the OpenID Connect scopes, and the administration
/// scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read properties (addresses, types, units).
    PropertyRead,
    /// Create and change properties.
    PropertyWrite,
    /// Read tenant records.
    TenantRead,
    /// Create and change tenant records.
    TenantWrite,
    /// Read the financial ledger (rent charges, payments, balances).
    FinancialRead,
    /// Post entries to the financial ledger.
    FinancialWrite,
    /// Open and read one's own maintenance requests.
    MaintenanceRequest,
    /// Update, assign and close maintenance requests (staff).
    MaintenanceManage,
    /// OpenID Connect: sign the user in and issue an ID token.
    Openid,
    /// OpenID Connect: the user's name.
    Profile,
    /// OpenID Connect: the user's email address.
    Email,
    /// Administration: read the security audit log and the alerts (`GET /admin/api/*`).
    /// Only an administrator can delegate it (see [`Scope::admin`]).
    AdminRead,
    /// Administration: change things through the admin API. Reserved: the admin API has no
    /// route that changes anything yet, so no route requires it; it exists so that a future
    /// one cannot be reached with a read-only grant.
    AdminWrite,
}

impl Scope {
    /// Every scope, in canonical order.
    pub const ALL: [Scope; 13] = [
        Scope::PropertyRead,
        Scope::PropertyWrite,
        Scope::TenantRead,
        Scope::TenantWrite,
        Scope::FinancialRead,
        Scope::FinancialWrite,
        Scope::MaintenanceRequest,
        Scope::MaintenanceManage,
        Scope::Openid,
        Scope::Profile,
        Scope::Email,
        Scope::AdminRead,
        Scope::AdminWrite,
    ];

    /// The OpenID Connect scopes (OIDC Core §5.4), which grant no API access.
    pub fn oidc() -> ScopeSet {
        ScopeSet::empty()
            .with(Scope::Openid)
            .with(Scope::Profile)
            .with(Scope::Email)
    }

    /// The administration scopes, which reach the security audit log and the alerts of the
    /// whole server. Only users with role admin may delegate them, and they are never issued
    /// to a client acting for itself (client credentials): the admin API serves
    /// administrators, through the apps they chose.
    ///
    /// ```
    /// use deedbolt_core::scope::{Scope, ScopeSet};
    /// assert_eq!(Scope::admin().to_string(), "admin:read admin:write");
    /// assert!(Scope::AdminRead.is_admin() && !Scope::PropertyWrite.is_admin());
    /// ```
    pub fn admin() -> ScopeSet {
        ScopeSet::empty()
            .with(Scope::AdminRead)
            .with(Scope::AdminWrite)
    }

    /// Whether this is an administration scope (see [`Scope::admin`]).
    pub const fn is_admin(self) -> bool {
        matches!(self, Scope::AdminRead | Scope::AdminWrite)
    }

    /// The scope token as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::PropertyRead => "property:read",
            Scope::PropertyWrite => "property:write",
            Scope::TenantRead => "tenant:read",
            Scope::TenantWrite => "tenant:write",
            Scope::FinancialRead => "financial:read",
            Scope::FinancialWrite => "financial:write",
            Scope::MaintenanceRequest => "maintenance:request",
            Scope::MaintenanceManage => "maintenance:manage",
            Scope::Openid => "openid",
            Scope::Profile => "profile",
            Scope::Email => "email",
            Scope::AdminRead => "admin:read",
            Scope::AdminWrite => "admin:write",
        }
    }

    /// A plain-words description, for consent pages and documentation.
    pub const fn description(self) -> &'static str {
        match self {
            Scope::PropertyRead => "See properties: addresses, types and units",
            Scope::PropertyWrite => "Create and change properties",
            Scope::TenantRead => "See tenant records",
            Scope::TenantWrite => "Create and change tenant records",
            Scope::FinancialRead => "See the financial ledger: rent charges, payments, balances",
            Scope::FinancialWrite => "Post rent charges and payments",
            Scope::MaintenanceRequest => "Open and follow maintenance requests",
            Scope::MaintenanceManage => "Update, assign and close maintenance requests",
            Scope::Openid => "Confirm who you are",
            Scope::Profile => "See your name",
            Scope::Email => "See your email address",
            Scope::AdminRead => {
                "Administrator access: read the security audit log and alerts of the whole \
                 server (who signed in, from which IP address, which apps got tokens)"
            }
            Scope::AdminWrite => {
                "Administrator access: make changes in the administration of the whole server"
            }
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a scope string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A well-formed token that is not in the catalogue.
    #[error("unknown scope `{0}`")]
    Unknown(String),
    /// The string is not a space-separated list of scope tokens.
    #[error("malformed scope string: {0}")]
    Malformed(&'static str),
}

/// The longest unknown scope token echoed in an error message.
const MAX_ECHO: usize = 64;

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ScopeError::Unknown(crate::text::truncated(s, MAX_ECHO)))
    }
}

/// A set of catalogue scopes.
///
/// Sets are compared with [`ScopeSet::is_subset`]:
///
/// ```
/// use deedbolt_core::scope::ScopeSet;
/// let registered: ScopeSet = "property:read financial:read".parse().unwrap();
/// let requested: ScopeSet = "financial:read".parse().unwrap();
/// assert!(requested.is_subset(&registered));
/// assert!(!registered.is_subset(&requested));
/// assert!(ScopeSet::empty().is_subset(&requested));
/// ```
///
/// Parsing follows RFC 6749 §3.3: tokens separated by single spaces, no empty tokens, and
/// every token must be in the catalogue:
///
/// ```
/// use deedbolt_core::scope::ScopeSet;
/// assert!("property:read  tenant:read".parse::<ScopeSet>().is_err()); // double space
/// assert!(" property:read".parse::<ScopeSet>().is_err());
/// assert!("".parse::<ScopeSet>().is_err());
/// assert!("admin".parse::<ScopeSet>().is_err());
/// // Order and repetition do not matter; display is canonical.
/// let s: ScopeSet = "tenant:read property:read tenant:read".parse().unwrap();
/// assert_eq!(s.to_string(), "property:read tenant:read");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u16);

impl ScopeSet {
    /// The empty set.
    pub const fn empty() -> Self {
        ScopeSet(0)
    }

    /// The whole catalogue.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    pub const fn contains(&self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds `scope` to the set.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// The set with `scope` added.
    pub const fn with(self, scope: Scope) -> Self {
        ScopeSet(self.0 | scope.bit())
    }

    /// Whether every scope in `self` is also in `other`.
    pub const fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scopes in both sets.
    pub const fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & other.0)
    }

    /// The scopes in either set.
    pub const fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0 | other.0)
    }

    /// The scopes in `self` that are not in `other`.
    pub const fn difference(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The number of scopes in the set.
    pub const fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// The scopes in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        Scope::ALL.into_iter().filter(|s| self.contains(*s))
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::empty();
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ScopeError::Malformed("empty scope string"));
        }
        let mut set = ScopeSet::empty();
        for token in s.split(' ') {
            if token.is_empty() {
                return Err(ScopeError::Malformed(
                    "scope tokens must be separated by single spaces",
                ));
            }
            set.insert(token.parse()?);
        }
        Ok(set)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
            first = false;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({self})")
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl ScopeSet {
    /// Parses a set as stored by [`Display`](fmt::Display): the canonical string, which is
    /// empty for the empty set.
    ///
    /// On the wire an empty scope string is malformed (RFC 6749 §3.3 requires at least one
    /// token) and [`FromStr`] refuses it; in storage an empty set is a legitimate value
    /// (a grant that ended up with nothing, a consent merged from nothing), and refusing
    /// it there turned a stored empty grant into "stored data is corrupt".
    ///
    /// ```
    /// use deedbolt_core::scope::ScopeSet;
    /// assert_eq!(ScopeSet::parse_stored(""), Ok(ScopeSet::empty()));
    /// let set: ScopeSet = "tenant:read".parse().unwrap();
    /// assert_eq!(ScopeSet::parse_stored(&set.to_string()), Ok(set));
    /// assert!(ScopeSet::parse_stored(" ").is_err());
    /// assert!(ScopeSet::parse_stored("root").is_err());
    /// ```
    pub fn parse_stored(s: &str) -> Result<ScopeSet, ScopeError> {
        if s.is_empty() {
            Ok(ScopeSet::empty())
        } else {
            s.parse()
        }
    }
}

/// Serde for a [`ScopeSet`] field of a stored record (`#[serde(with = "crate::scope::stored")]`):
/// like the set's own serde, except that the empty string is the empty set (see
/// [`ScopeSet::parse_stored`]). Wire formats (token claims, requests) keep the strict form.
pub mod stored {
    use super::ScopeSet;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the canonical string (empty for the empty set).
    pub fn serialize<S: Serializer>(set: &ScopeSet, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(set)
    }

    /// Reads the canonical string; the empty string is the empty set.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ScopeSet, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ScopeSet::parse_stored(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_scope_round_trips() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
    }

    #[test]
    fn unknown_scope_is_named_in_the_error() {
        let err = "property:read property:delete"
            .parse::<ScopeSet>()
            .unwrap_err();
        assert_eq!(err, ScopeError::Unknown("property:delete".into()));
    }

    #[test]
    fn huge_unknown_scope_is_truncated_in_the_error() {
        let huge = "x".repeat(10_000);
        let ScopeError::Unknown(shown) = huge.parse::<ScopeSet>().unwrap_err() else {
            panic!("expected Unknown");
        };
        assert!(shown.len() < 100);
    }

    #[test]
    fn scope_names_are_case_sensitive() {
        assert!("Property:Read".parse::<ScopeSet>().is_err());
    }

    #[test]
    fn trailing_space_is_malformed() {
        assert!(matches!(
            "property:read ".parse::<ScopeSet>(),
            Err(ScopeError::Malformed(_))
        ));
    }

    #[test]
    fn serde_goes_through_from_str() {
        let set: ScopeSet = serde_json::from_str("\"tenant:read financial:read\"").unwrap();
        assert_eq!(
            set,
            ScopeSet::empty()
                .with(Scope::TenantRead)
                .with(Scope::FinancialRead)
        );
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            "\"tenant:read financial:read\""
        );
        assert!(serde_json::from_str::<ScopeSet>("\"root\"").is_err());
    }

    fn any_set() -> impl Strategy<Value = ScopeSet> {
        (0u16..(1 << Scope::ALL.len())).prop_map(ScopeSet)
    }

    proptest! {
        #[test]
        fn every_set_round_trips_through_its_stored_form(set in any_set()) {
            prop_assert_eq!(ScopeSet::parse_stored(&set.to_string()), Ok(set));
        }

        #[test]
        fn display_then_parse_is_identity(set in any_set()) {
            prop_assume!(!set.is_empty());
            prop_assert_eq!(set.to_string().parse::<ScopeSet>(), Ok(set));
        }

        #[test]
        fn intersection_is_subset_of_both(a in any_set(), b in any_set()) {
            let i = a.intersection(&b);
            prop_assert!(i.is_subset(&a));
            prop_assert!(i.is_subset(&b));
        }

        #[test]
        fn subset_agrees_with_membership(a in any_set(), b in any_set()) {
            let by_members = a.iter().all(|s| b.contains(s));
            prop_assert_eq!(a.is_subset(&b), by_members);
        }

        #[test]
        fn parser_never_panics(s in ".{0,80}") {
            let _ = s.parse::<ScopeSet>();
        }
    }
}
