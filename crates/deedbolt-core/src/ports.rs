//! The storage ports of the authorization server: the traits that every backend (SQLite,
//! PostgreSQL, and Redis for the shared ephemeral state) implements and the HTTP layer uses
//! as trait objects. The PropTech port lives in `deedbolt_proptech::store`.
//!
//! Each operation that must be atomic says so in its name and doc, and backends implement
//! it as one statement or one transaction.

use std::fmt;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::audit::{AuditFilter, AuditRecord};
use crate::client::Client;
use crate::clock::UnixTime;
use crate::flow::{AuthorizationRequest, CodeGrant};
use crate::ids::{ClientId, KeyId, TokenId, UserId};
use crate::jose::SigningAlg;
use crate::refresh::RefreshRecord;
use crate::scope::ScopeSet;
use crate::secret::SecretHash;
use crate::user::{Email, Role, User};

/// A storage failure. Never shown to clients: the HTTP layer answers 500 and logs it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, connection, constraint).
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored row does not parse back into a domain value.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A uniqueness rule was broken (e.g. an email registered twice).
    #[error("already exists: {0}")]
    Conflict(&'static str),
    /// The backend cannot be reached right now (connection refused, dropped or timed out).
    /// Callers fail closed: the HTTP layer answers 503, and the request may be retried once
    /// the backend is back.
    #[error("storage backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync + 'static {
    /// Stores a new client.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// The client with this id, if any.
    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError>;
    /// Every client, oldest first.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Replaces the client's secret hash; `false` if there is no such client.
    async fn replace_secret(
        &self,
        id: &ClientId,
        hash: &SecretHash,
        at: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Replaces everything about the client but its id and creation time (name, grants,
    /// scopes, redirect URIs, kind, secret and registration-token hashes, metadata,
    /// `updated_at`), as one registration update (RFC 7592 §2.2) does; `false` if there is
    /// no such client. Caches see the change through [`ClientStore::clients_generation`].
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
    /// Deletes the client; `false` if there was no such client.
    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError>;
    /// A counter that changes whenever any client is updated or deleted, by any process.
    /// Caches poll it to drop what they remember (see [`crate::cache`]).
    async fn clients_generation(&self) -> Result<i64, StoreError>;
}

/// Initial access tokens of dynamic client registration (RFC 7591 §3), stored by their
/// keyed hash only.
#[async_trait]
pub trait RegistrationTokenStore: Send + Sync + 'static {
    /// Stores a newly issued token; [`StoreError::Conflict`] if its id or hash exists.
    async fn insert_registration_token(
        &self,
        token: &crate::registration::InitialAccessToken,
    ) -> Result<(), StoreError>;
    /// Every token (revoked and expired ones too), oldest first.
    async fn list_registration_tokens(
        &self,
    ) -> Result<Vec<crate::registration::InitialAccessToken>, StoreError>;
    /// The token with this hash, whatever its state.
    async fn find_registration_token(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<crate::registration::InitialAccessToken>, StoreError>;
    /// Atomically spends one use of the token with this hash, *if* it is usable at `now`
    /// (not revoked, not expired, uses left): one conditional update, so N concurrent
    /// registrations with a token of N-1 uses left make exactly N-1 clients. Returns the
    /// token after the use, or `None` when it was not usable.
    async fn spend_registration_token(
        &self,
        hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<crate::registration::InitialAccessToken>, StoreError>;
    /// Revokes the token with this id at `at`; `false` if there is no such token or it was
    /// revoked already.
    async fn revoke_registration_token(&self, id: &str, at: UnixTime) -> Result<bool, StoreError>;
}

/// Private key bytes as stored: sealed under the master key, or plain in development mode.
pub enum KeyMaterial {
    /// AES-256-GCM sealed (see [`crate::seal`]).
    Sealed(Vec<u8>),
    /// Plain bytes (development mode only). Zeroed on drop.
    Plain(Zeroizing<Vec<u8>>),
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::Sealed(_) => f.write_str("KeyMaterial::Sealed(..)"),
            KeyMaterial::Plain(_) => f.write_str("KeyMaterial::Plain([redacted])"),
        }
    }
}

/// A signing key as stored.
#[derive(Debug)]
pub struct StoredKey {
    /// Its id (JWK thumbprint).
    pub kid: KeyId,
    /// Its algorithm.
    pub alg: SigningAlg,
    /// Its PKCS#8 private key.
    pub material: KeyMaterial,
    /// When it was made.
    pub created_at: UnixTime,
    /// When it stopped signing; `None` for the current key of its algorithm.
    pub retired_at: Option<UnixTime>,
}

/// Signing keys and other server secrets.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Atomically makes `key` the current signing key of its algorithm and retires the
    /// previous current key of that algorithm at `now` (keys of other algorithms stay
    /// current).
    async fn rotate_in(&self, key: &StoredKey, now: UnixTime) -> Result<(), StoreError>;
    /// Every stored key, newest first.
    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Deletes keys retired before `cutoff`; returns how many.
    async fn prune_keys(&self, cutoff: UnixTime) -> Result<u64, StoreError>;
    /// Atomically stores `value` under `name` unless one is stored already, and returns
    /// the stored value, so concurrent first starts agree on one secret.
    async fn secret_or_insert(
        &self,
        name: &str,
        value: &KeyMaterial,
    ) -> Result<KeyMaterial, StoreError>;
}

/// A cheap liveness check of the backend, for `/readyz`.
#[async_trait]
pub trait Health: Send + Sync + 'static {
    /// Succeeds when the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Several backends (the database and the shared cache): healthy when every one answers.
pub struct AllHealthy(pub Vec<std::sync::Arc<dyn Health>>);

impl fmt::Debug for AllHealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllHealthy")
            .field("backends", &self.0.len())
            .finish()
    }
}

#[async_trait]
impl Health for AllHealthy {
    async fn ping(&self) -> Result<(), StoreError> {
        for h in &self.0 {
            h.ping().await?;
        }
        Ok(())
    }
}

/// Users (resource owners).
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new user; [`StoreError::Conflict`] if the email is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    /// The user with this id.
    async fn find_user(&self, id: &UserId) -> Result<Option<User>, StoreError>;
    /// The user with this email.
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    /// Every user, oldest first.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Changes a user's role; `false` if there is no such user. Takes effect on the
    /// user's next request and next refresh (both look the role up).
    async fn set_role(&self, id: &UserId, role: Role) -> Result<bool, StoreError>;
    /// Deletes a user with their sessions and consents; `false` if there was no such user.
    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError>;
}

/// A browser session after login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Who logged in.
    pub user_id: UserId,
    /// When they entered their password.
    pub auth_time: UnixTime,
    /// The anti-CSRF token of this session's forms.
    pub csrf: String,
    /// When the session ends.
    pub expires_at: UnixTime,
}

/// What redeeming a code found.
#[derive(Debug)]
pub enum Redemption {
    /// First redemption: the code is now spent.
    Fresh(CodeGrant),
    /// The code was redeemed before: a replay. Carries the access token issued from the
    /// first redemption, if it was recorded yet, so the caller can revoke it.
    Replayed(Option<(TokenId, UnixTime)>),
    /// No such code (or expired and pruned).
    Unknown,
}

/// The state of the authorization-code flow: pending requests, sessions, consents, codes,
/// and revoked access tokens.
#[async_trait]
pub trait FlowStore: Send + Sync + 'static {
    /// Remembers a validated authorization request while the user logs in and consents.
    /// `owner` is who started it (the client IP): in the same atomic step, that owner's
    /// oldest pending requests beyond the newest `max_per_owner` are forgotten, so one
    /// requester cannot grow the table without bound.
    async fn put_pending(
        &self,
        id: &str,
        request: &AuthorizationRequest,
        expires_at: UnixTime,
        owner: &str,
        max_per_owner: usize,
    ) -> Result<(), StoreError>;
    /// A pending request that has not expired.
    async fn get_pending(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<AuthorizationRequest>, StoreError>;
    /// Forgets a pending request (it was answered).
    async fn delete_pending(&self, id: &str) -> Result<(), StoreError>;

    /// Stores a session under the hash of its cookie value.
    async fn create_session(&self, id_hash: &[u8; 32], session: &Session)
        -> Result<(), StoreError>;
    /// The live session with this hash.
    async fn find_session(
        &self,
        id_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<Session>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError>;

    /// The scopes the user has already granted the client.
    async fn find_consent(
        &self,
        user: &UserId,
        client: &ClientId,
    ) -> Result<Option<ScopeSet>, StoreError>;
    /// Adds `scope` to what the user has granted the client.
    async fn save_consent(
        &self,
        user: &UserId,
        client: &ClientId,
        scope: ScopeSet,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Forgets the user's consents (to one client, or all); returns how many.
    async fn revoke_consents(
        &self,
        user: &UserId,
        client: Option<&ClientId>,
    ) -> Result<u64, StoreError>;
    /// Forgets every user's consent to `client` (its registration changed what the users
    /// agreed to: where codes go, its name, how it authenticates); returns how many.
    async fn revoke_client_consents(&self, client: &ClientId) -> Result<u64, StoreError>;

    /// Stores a new code under its hash.
    async fn insert_code(&self, hash: &[u8; 32], grant: &CodeGrant) -> Result<(), StoreError>;
    /// The grant a code stands for, redeemed or not, *without* spending it: the token
    /// endpoint checks the client, redirect URI and PKCE against it first, so a request
    /// that fails those checks cannot burn the code ([`crate::flow::check_exchange`]).
    async fn peek_code(&self, hash: &[u8; 32]) -> Result<Option<CodeGrant>, StoreError>;
    /// Atomically spends a code: the first caller gets [`Redemption::Fresh`], every later
    /// (or concurrent) caller [`Redemption::Replayed`], and the code is marked replayed.
    async fn redeem_code(&self, hash: &[u8; 32], now: UnixTime) -> Result<Redemption, StoreError>;
    /// Records the access token issued from a code. Returns `true` if the code was replayed
    /// in the meantime, in which case the caller must revoke that token.
    async fn record_code_token(
        &self,
        hash: &[u8; 32],
        jti: &TokenId,
        expires_at: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Puts an access token's `jti` on the revocation list until it expires.
    async fn revoke_token(
        &self,
        jti: &TokenId,
        expires_at: UnixTime,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Revocations recorded after `cursor`, and the new cursor.
    async fn revoked_since(
        &self,
        cursor: i64,
    ) -> Result<(Vec<(TokenId, UnixTime)>, i64), StoreError>;
    /// Deletes expired pending requests, pushed requests, sessions, codes and revocations.
    async fn prune_expired(&self, now: UnixTime) -> Result<(), StoreError>;
}

/// Pushed authorization requests (RFC 9126): validated requests waiting, for a short
/// while, for the browser to bring their `request_uri` to `/authorize`. Shared by every
/// instance (the push and the `/authorize` may reach different ones), so they live in the
/// database, keyed by the SHA-256 of the reference ([`crate::par::RequestUri::storage_key`]).
#[async_trait]
pub trait PushedRequestStore: Send + Sync + 'static {
    /// Stores a validated request pushed by `request.client_id`, until `expires_at`.
    async fn put_pushed(
        &self,
        key: &[u8; 32],
        request: &AuthorizationRequest,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Atomically takes (reads and deletes, in one statement) the unexpired request stored
    /// under `key` *if it was pushed by `client`*: the first caller gets it, every later or
    /// concurrent caller `None` (single use). A request of another client is neither
    /// returned nor spent, so presenting a stolen reference with the wrong `client_id`
    /// cannot burn the rightful client's request.
    async fn take_pushed(
        &self,
        key: &[u8; 32],
        client: &ClientId,
        now: UnixTime,
    ) -> Result<Option<AuthorizationRequest>, StoreError>;
}

/// Whose tokens a revocation cutoff applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutoffKind {
    /// Every token issued to a client.
    Client,
    /// Every token whose `sub` is this user (or client, for client credentials).
    Subject,
}

impl CutoffKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CutoffKind::Client => "client",
            CutoffKind::Subject => "subject",
        }
    }

    /// The kind with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client" => Some(CutoffKind::Client),
            "subject" => Some(CutoffKind::Subject),
            _ => None,
        }
    }
}

/// A new refresh-token family with its first token.
#[derive(Debug, Clone)]
pub struct NewFamily {
    /// Family id (random).
    pub family_id: String,
    /// The client.
    pub client_id: ClientId,
    /// The user.
    pub user_id: UserId,
    /// The granted scope.
    pub scope: ScopeSet,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// When the family ends.
    pub expires_at: UnixTime,
    /// The DPoP key thumbprint a public client's family is bound to (RFC 9449 §5): every
    /// refresh needs a proof by this key.
    pub dpop_jkt: Option<String>,
}

/// Refresh tokens and operator-level revocation.
#[async_trait]
pub trait RefreshStore: Send + Sync + 'static {
    /// Creates a family and its first token.
    async fn create_family(
        &self,
        family: &NewFamily,
        token_hash: &[u8; 32],
        issued_at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// The token with this hash and its family's facts.
    async fn find_refresh(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<RefreshRecord>, StoreError>;
    /// Atomically rotates: marks the old token rotated *if it is still active* and adds the
    /// new one to the family. `false` if another request rotated it first.
    async fn rotate_refresh(
        &self,
        old_hash: &[u8; 32],
        new_hash: &[u8; 32],
        now: UnixTime,
        new_expires_at: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Binds a family that has no DPoP key yet to `jkt` (RFC 9449 §5: a public client's
    /// refresh tokens are bound to the key of the first valid proof presented with them),
    /// in one conditional update (`WHERE dpop_jkt IS NULL`), so of concurrent binds with
    /// different keys exactly one wins. `true` if the family is now bound to `jkt` (by
    /// this call or an earlier one); `false` if it is bound to another key or unknown.
    async fn bind_family_key(&self, family_id: &str, jkt: &str) -> Result<bool, StoreError>;
    /// Records an access token issued in a family. Returns `true` if the family is
    /// revoked (perhaps by a concurrent reuse), in which case the caller must revoke the
    /// token: whichever of the two transactions commits second sees the other.
    async fn record_family_access(
        &self,
        family_id: &str,
        jti: &TokenId,
        expires_at: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Revokes a family: every refresh token, and returns the live access tokens issued in
    /// it (for the revocation list).
    async fn revoke_family(
        &self,
        family_id: &str,
        now: UnixTime,
    ) -> Result<Vec<(TokenId, UnixTime)>, StoreError>;
    /// The family an access token was issued in, if any.
    async fn family_of_access(&self, jti: &TokenId) -> Result<Option<String>, StoreError>;
    /// Revokes every family of a client or user; returns how many.
    async fn revoke_families_of(
        &self,
        kind: CutoffKind,
        subject: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError>;
    /// Records "tokens of this client/subject issued at or before `cutoff` are revoked".
    async fn set_cutoff(
        &self,
        kind: CutoffKind,
        subject: &str,
        cutoff: UnixTime,
    ) -> Result<(), StoreError>;
    /// Cutoffs later than `since` (older ones no longer matter: their tokens expired).
    async fn cutoffs_since(
        &self,
        since: UnixTime,
    ) -> Result<Vec<(CutoffKind, String, UnixTime)>, StoreError>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends records in one transaction; returns how many.
    async fn insert_audit(&self, records: &[AuditRecord]) -> Result<u64, StoreError>;
    /// Records matching `filter`, newest first.
    async fn search_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Deletes records older than `before` (retention); returns how many.
    async fn prune_audit(&self, before: UnixTime) -> Result<u64, StoreError>;
    /// Per hour since `since`: (hour start, kind, success, count), for the admin chart.
    async fn hourly_audit_counts(
        &self,
        since: UnixTime,
    ) -> Result<Vec<(UnixTime, String, bool, u64)>, StoreError>;
}

/// A stored alert.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StoredAlert {
    /// Its id.
    pub id: i64,
    /// The alert, as JSON (see `crate::detect::Alert`).
    pub alert: serde_json::Value,
    /// When it was delivered to the webhook, if it was.
    pub delivered_at: Option<UnixTime>,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// Alerts and their webhook deliveries (an outbox: nothing is lost on restart).
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// Stores an alert (JSON) raised at `at`; returns its id.
    async fn insert_alert(
        &self,
        alert: &serde_json::Value,
        at: UnixTime,
    ) -> Result<i64, StoreError>;
    /// Alerts, newest first, with ids below `before_id`.
    async fn list_alerts(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError>;
    /// Undelivered alerts due for a (re)try at `now`.
    async fn due_alerts(&self, now: UnixTime, limit: u32) -> Result<Vec<StoredAlert>, StoreError>;
    /// Marks an alert delivered.
    async fn mark_alert_delivered(&self, id: i64, at: UnixTime) -> Result<(), StoreError>;
    /// Records a failed attempt; the next try is due at `next`.
    async fn mark_alert_failed(&self, id: i64, next: UnixTime) -> Result<(), StoreError>;
    /// Adds `count` API calls of a client in the hour starting at `hour`.
    async fn add_usage(&self, client_id: &str, hour: i64, count: u64) -> Result<(), StoreError>;
    /// Remembers the privileged scopes a client has used (replacing what was stored).
    async fn save_privileged_seen(
        &self,
        client_id: &str,
        scopes: ScopeSet,
    ) -> Result<(), StoreError>;
    /// Every client's remembered privileged scopes, to seed the detector at start-up.
    async fn privileged_seen(&self) -> Result<Vec<(String, ScopeSet)>, StoreError>;
    /// The hourly call counts of a client for hours in `[from_hour, to_hour)`, starting at
    /// its first recorded hour (empty for a client with no history); missing hours are 0.
    async fn usage_history(
        &self,
        client_id: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<u64>, StoreError>;
}

/// Single-use values that must not be accepted twice while they are valid: DPoP proof
/// `jti`s (RFC 9449 §11.1) and client-assertion `jti`s (RFC 7523 §3 item 7). Shared by
/// every instance when Redis is configured; in-process otherwise.
#[async_trait]
pub trait ReplayCache: Send + Sync + 'static {
    /// Records `key` as used until `until`: `true` the first time, `false` while an
    /// earlier use of the same key has not expired (a replay). Callers namespace their
    /// keys (`dpop:`, `assertion:`) so different kinds of value never collide.
    async fn first_use(&self, key: &str, until: UnixTime) -> Result<bool, StoreError>;
}

/// Every authorization-server storage port of one backend: what the composition root
/// chooses once at start-up and hands out as each port, and what the conformance suite
/// checks every backend for. The PropTech port (`deedbolt_proptech::store::CrmStore`) is
/// not part of it: the backends implement it beside these.
#[async_trait]
pub trait Storage:
    ClientStore
    + KeyStore
    + Health
    + UserStore
    + FlowStore
    + PushedRequestStore
    + RefreshStore
    + AuditStore
    + AlertStore
    + RegistrationTokenStore
{
    /// Closes the backend's connections, waiting for them to finish.
    async fn close(&self);
}

/// A client's hourly call counts for hours in `[from_hour, to_hour)` from the stored
/// `(hour, count)` rows, as [`AlertStore::usage_history`] returns them: starting at the
/// first recorded hour (hours before it are not "zero calls" but "not a client yet", and
/// padding them with zeros would make every new client look anomalous), missing hours 0,
/// empty without rows. At most a year and a day of hours.
///
/// ```
/// use deedbolt_core::ports::usage_series;
/// assert_eq!(usage_series(&[(5, 1), (3, 7)], 0, 7), [7, 0, 1, 0]);
/// assert_eq!(usage_series(&[], 0, 7), Vec::<u64>::new());
/// ```
pub fn usage_series(rows: &[(i64, u64)], from_hour: i64, to_hour: i64) -> Vec<u64> {
    let Some(first) = rows.iter().map(|(h, _)| *h).min() else {
        return Vec::new();
    };
    let start = first.max(from_hour);
    let len = usize::try_from((to_hour - start).max(0))
        .unwrap_or(0)
        .min(24 * 366);
    let mut out = vec![0u64; len];
    for (hour, count) in rows {
        if let Some(slot) = usize::try_from(hour - start)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            *slot = *count;
        }
    }
    out
}
