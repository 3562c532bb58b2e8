//! Users (resource owners), their roles, and their passwords (argon2id).
//!
//! A role bounds what a user can delegate to a client: the scope a client gets in the
//! authorization-code flow is the intersection of what it asked for, what it is registered
//! for, and what the user's role allows.

use std::fmt;
use std::str::FromStr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use argon2_rust::params::Memory;
use argon2_rust::{Algorithm, Argon2, Hasher, Params, Version};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::clock::UnixTime;
use crate::ids::UserId;
use crate::scope::{Scope, ScopeSet};

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Rents a unit: can share their own record, ledger and maintenance requests.
    Tenant,
    /// Manages properties for an owner.
    Manager,
    /// Runs the platform.
    Admin,
}

impl Role {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Tenant => "tenant",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// The scopes a user with this role may delegate to a client.
    ///
    /// Only an administrator may delegate the administration scopes (`admin:read`,
    /// `admin:write`): a client asking a tenant or a manager for them gets the rest of its
    /// request, without them.
    ///
    /// ```
    /// use deedbolt_core::scope::Scope;
    /// use deedbolt_core::user::Role;
    /// let tenant = Role::Tenant.delegable();
    /// assert_eq!(tenant.to_string(), "tenant:read financial:read maintenance:request openid profile email");
    /// assert!(tenant.is_subset(&Role::Manager.delegable()));
    /// assert!(Role::Manager.delegable().is_subset(&Role::Admin.delegable()));
    /// assert!(Scope::admin().is_subset(&Role::Admin.delegable()));
    /// assert!(Role::Manager.delegable().intersection(&Scope::admin()).is_empty());
    /// ```
    pub fn delegable(self) -> ScopeSet {
        let oidc = Scope::oidc();
        match self {
            Role::Tenant => ScopeSet::empty()
                .with(Scope::TenantRead)
                .with(Scope::FinancialRead)
                .with(Scope::MaintenanceRequest)
                .union(&oidc),
            Role::Manager => ScopeSet::empty()
                .with(Scope::PropertyRead)
                .with(Scope::PropertyWrite)
                .with(Scope::TenantRead)
                .with(Scope::TenantWrite)
                .with(Scope::FinancialRead)
                .with(Scope::MaintenanceRequest)
                .with(Scope::MaintenanceManage)
                .union(&oidc),
            // Everything, the administration scopes included.
            Role::Admin => ScopeSet::all(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role must be tenant, manager or admin")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tenant" => Ok(Role::Tenant),
            "manager" => Ok(Role::Manager),
            "admin" => Ok(Role::Admin),
            _ => Err(UnknownRole),
        }
    }
}

/// An email address, trimmed and lower-cased, so one person cannot register twice by case.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// A malformed email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid email address")]
pub struct BadEmail;

impl Email {
    /// Parses an address: `local@domain.tld`, at most 254 characters, no spaces.
    ///
    /// ```
    /// use deedbolt_core::user::Email;
    /// assert_eq!(Email::parse(" Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
    /// assert!(Email::parse("alice").is_err());
    /// assert!(Email::parse("alice@localhost").is_err());
    /// assert!(Email::parse("a b@example.com").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, BadEmail> {
        let s = s.trim().to_lowercase();
        let (local, domain) = s.split_once('@').ok_or(BadEmail)?;
        let ok = !local.is_empty()
            && s.len() <= 254
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Email(s))
        } else {
            Err(BadEmail)
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

/// A registered user.
#[derive(Clone, Debug)]
pub struct User {
    /// Stable id; the `sub` of their tokens.
    pub id: UserId,
    /// Login name.
    pub email: Email,
    /// Display name (the `name` claim with scope `profile`).
    pub name: Option<String>,
    /// What they may delegate.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When they were registered.
    pub created_at: UnixTime,
}

/// A password in plain text. Zeroed on drop and redacted in `Debug`.
pub struct Password(Zeroizing<String>);

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// Fewer than 12 or more than 128 characters.
    #[error("password must be 12 to 128 characters long")]
    Length,
    /// Too few distinct characters ("aaaaaaaaaaaa", "abababababab").
    #[error("password must use at least 5 different characters")]
    Variety,
    /// Contains the email's local part.
    #[error("password must not contain your email address")]
    ContainsEmail,
    /// A well-known password.
    #[error("password is too common")]
    Common,
}

/// A few of the most common passwords of 12+ characters; the length rule does the rest.
const COMMON: &[&str] = &[
    "123456789012",
    "1234567890123",
    "password1234",
    "password123!",
    "qwertyuiopas",
    "qwerty123456",
    "iloveyou1234",
    "letmein12345",
    "administrator",
    "changeme1234",
];

impl Password {
    /// Wraps a password as presented at login (no policy: it is only compared).
    pub fn presented(s: String) -> Self {
        Password(Zeroizing::new(s))
    }

    /// Checks a new password against the policy (NIST SP 800-63B: length over
    /// composition rules, and no known-bad passwords).
    pub fn new_for(s: String, email: &Email) -> Result<Self, PasswordPolicyError> {
        let s = Zeroizing::new(s);
        let len = s.chars().count();
        if !(12..=128).contains(&len) {
            return Err(PasswordPolicyError::Length);
        }
        let mut distinct: Vec<char> = s.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 5 {
            return Err(PasswordPolicyError::Variety);
        }
        let local = email.as_str().split('@').next().unwrap_or("");
        if local.len() >= 4 && s.to_lowercase().contains(local) {
            return Err(PasswordPolicyError::ContainsEmail);
        }
        if COMMON.contains(&s.to_lowercase().as_str()) {
            return Err(PasswordPolicyError::Common);
        }
        Ok(Password(s))
    }

    fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Hashing failed (only on a broken random source).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane).
///
/// The implementation is `argon2-rust` (a port of the reference implementation, checked
/// bit for bit against its test vectors) for its SIMD compression function, and each hash
/// runs in a kept arena instead of 19 MiB mapped, faulted in and unmapped per call. There
/// is one arena per core, made on first use: a call waits for a free one, so at most one
/// hash per core runs at a time (more would only share the cores and fault in more
/// memory), and the memory is bounded at 19 MiB per core. An arena is wiped whenever a
/// call returns, and freed by [`PasswordHasher::release_idle`] once logins stop. See
/// docs/benchmarks.md for what each of the two changes is worth.
pub struct PasswordHasher {
    argon2: Argon2,
    arenas: Mutex<Arenas>,
    /// Signalled when an arena is returned.
    returned: Condvar,
    /// How many arenas there may be (the number of cores).
    keep: usize,
    /// Verified against for unknown users, so both paths cost one argon2id.
    dummy: String,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHasher(argon2id)")
    }
}

/// The arenas of a [`PasswordHasher`].
struct Arenas {
    idle: Vec<Hasher>,
    /// Arenas in existence, idle or lent.
    made: usize,
    /// When an arena was last returned.
    last_used: Instant,
}

/// An arena on loan: returned to its owner when dropped.
struct Lent<'a> {
    owner: &'a PasswordHasher,
    hasher: Hasher,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        // `Argon2::hasher` allocates nothing: the placeholder holds no arena.
        let h = std::mem::replace(&mut self.hasher, self.owner.argon2.hasher());
        let mut arenas = self.owner.lock_arenas();
        arenas.idle.push(h);
        arenas.last_used = Instant::now();
        drop(arenas);
        self.owner.returned.notify_one();
    }
}

/// Memory cost in KiB (OWASP: 19 MiB).
const M_COST_KIB: u64 = 19 * 1024;
/// Passes (OWASP: 2 with 19 MiB).
const T_COST: u32 = 2;

impl PasswordHasher {
    /// The hasher with deedbolt's parameters.
    pub fn new() -> Result<Self, HashError> {
        let params = Params::builder()
            .memory(Memory::kib(M_COST_KIB))
            .passes(T_COST)
            .lanes(1)
            .build()
            .map_err(|e| HashError(e.to_string()))?;
        let keep = std::thread::available_parallelism().map_or(2, usize::from);
        let mut hasher = PasswordHasher {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            arenas: Mutex::new(Arenas {
                idle: Vec::with_capacity(keep),
                made: 0,
                last_used: Instant::now(),
            }),
            returned: Condvar::new(),
            keep,
            dummy: String::new(),
        };
        hasher.dummy = hasher.hash(&Password::presented("deedbolt dummy password".into()))?;
        // No memory held until the first login.
        hasher.release_idle(Duration::ZERO);
        Ok(hasher)
    }

    /// Frees the idle arenas if no hash has run for `idle`, so that memory taken by a burst
    /// of logins goes back; returns how many were freed. Arenas on loan are kept.
    pub fn release_idle(&self, idle: Duration) -> usize {
        let mut arenas = self.lock_arenas();
        if arenas.last_used.elapsed() < idle {
            return 0;
        }
        let freed = arenas.idle.len();
        arenas.made -= freed;
        arenas.idle.clear();
        freed
    }

    /// Runs `f` with an arena: an idle one, a new one while there are fewer than one per
    /// core, or else the first one returned. The arena goes back even if `f` panics.
    fn with_arena<R>(&self, f: impl FnOnce(&mut Hasher) -> R) -> R {
        let mut arenas = self.lock_arenas();
        let hasher = loop {
            if let Some(h) = arenas.idle.pop() {
                break h;
            }
            if arenas.made < self.keep {
                arenas.made += 1;
                break self.argon2.hasher();
            }
            arenas = self
                .returned
                .wait(arenas)
                .unwrap_or_else(|e| e.into_inner());
        };
        drop(arenas);
        let mut lent = Lent {
            owner: self,
            hasher,
        };
        f(&mut lent.hasher)
    }

    fn lock_arenas(&self) -> MutexGuard<'_, Arenas> {
        self.arenas.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The PHC string to store for `password`.
    pub fn hash(&self, password: &Password) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        crate::rand::fill(&mut salt).map_err(|e| HashError(e.to_string()))?;
        self.with_arena(|h| h.hash_password(password.expose(), &salt))
            .map_err(|e| HashError(e.to_string()))
    }

    /// Whether `password` matches the stored PHC string (argon2id only; any parameters
    /// up to the ones deedbolt uses are read from the string itself).
    pub fn verify(&self, password: &Password, stored: &str) -> bool {
        self.with_arena(|h| {
            h.verify_encoded(stored, password.expose(), Algorithm::Argon2id)
                .is_ok()
        })
    }

    /// Spends one verification and fails; for unknown users (no enumeration by timing).
    pub fn verify_dummy(&self, password: &Password) -> bool {
        let _ = self.verify(password, &self.dummy);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_right_password() {
        let h = PasswordHasher::new().unwrap();
        let email = Email::parse("alice@example.com").unwrap();
        let pw = Password::new_for("correct horse battery".into(), &email).unwrap();
        let stored = h.hash(&pw).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify(
            &Password::presented("correct horse battery".into()),
            &stored
        ));
        assert!(!h.verify(
            &Password::presented("correct horse battery!".into()),
            &stored
        ));
        assert!(!h.verify(&pw, "not a phc string"));
        assert!(!h.verify_dummy(&pw));
    }

    /// Hashes stored before the switch of implementation (made by RustCrypto's `argon2`
    /// 0.5 with the same parameters) still verify, and other algorithms do not.
    #[test]
    fn verifies_hashes_made_by_the_previous_implementation() {
        let h = PasswordHasher::new().unwrap();
        let stored = "$argon2id$v=19$m=19456,t=2,p=1$ZGVlZGJvbHQtc2FsdC0xNg$wwMEjZ2rumcYxO5rKx8zHTOIEePa+SkiozP9Lr0Vj6E";
        assert!(h.verify(&Password::presented("correct horse battery".into()), stored));
        assert!(!h.verify(&Password::presented("correct horse batterY".into()), stored));
        let argon2i = stored.replacen("argon2id", "argon2i", 1);
        assert!(!h.verify(
            &Password::presented("correct horse battery".into()),
            &argon2i
        ));
    }

    #[test]
    fn there_is_at_most_one_arena_per_core_and_each_is_reused() {
        let h = PasswordHasher::new().unwrap();
        let pw = Password::presented("correct horse battery".into());
        let stored = h.hash(&pw).unwrap();
        std::thread::scope(|s| {
            for _ in 0..h.keep + 3 {
                s.spawn(|| assert!(h.verify(&pw, &stored)));
            }
        });
        {
            let arenas = h.lock_arenas();
            assert!(arenas.made <= h.keep, "{} arenas", arenas.made);
            assert_eq!(arenas.idle.len(), arenas.made, "every arena returned");
            assert!(arenas.idle.iter().all(|a| a.reserved_blocks() >= 19 * 1024));
        }
        // Freed only once idle for long enough; hashing still works afterwards.
        assert_eq!(h.release_idle(Duration::from_secs(3600)), 0);
        let made = h.lock_arenas().made;
        assert_eq!(h.release_idle(Duration::ZERO), made);
        assert_eq!(h.lock_arenas().made, 0);
        assert!(h.verify(&pw, &stored));
    }

    #[test]
    fn an_arena_comes_back_when_the_hash_panics() {
        let h = PasswordHasher::new().unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            h.with_arena(|_| panic!("boom"))
        }));
        assert!(panicked.is_err());
        let arenas = h.lock_arenas();
        assert_eq!((arenas.made, arenas.idle.len()), (1, 1));
    }

    #[test]
    fn policy() {
        let email = Email::parse("alice.smith@example.com").unwrap();
        let check = |s: &str| Password::new_for(s.into(), &email).map(|_| ());
        assert_eq!(check("short"), Err(PasswordPolicyError::Length));
        assert_eq!(check(&"x".repeat(129)), Err(PasswordPolicyError::Length));
        assert_eq!(check("abababababab"), Err(PasswordPolicyError::Variety));
        assert_eq!(
            check("my alice.smith pw"),
            Err(PasswordPolicyError::ContainsEmail)
        );
        assert_eq!(check("Password1234"), Err(PasswordPolicyError::Common));
        assert_eq!(check("tenant of harbour view"), Ok(()));
    }

    #[test]
    fn roles_parse() {
        assert_eq!("manager".parse::<Role>(), Ok(Role::Manager));
        assert!("root".parse::<Role>().is_err());
        assert!(!Role::Tenant.delegable().contains(Scope::PropertyWrite));
    }

    #[test]
    fn only_administrators_may_delegate_the_admin_scopes() {
        for role in [Role::Tenant, Role::Manager] {
            for scope in Scope::admin().iter() {
                assert!(
                    !role.delegable().contains(scope),
                    "{role} may not delegate {scope}"
                );
            }
        }
        assert!(Scope::admin().is_subset(&Role::Admin.delegable()));
    }
}
