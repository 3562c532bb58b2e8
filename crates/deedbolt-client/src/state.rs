//! Authorization requests in progress: the `state` (RFC 6749 §10.12, CSRF) and the OpenID
//! Connect `nonce` (replay) of each, with a payload the callback needs (typically the
//! [`PkcePair`](crate::PkcePair) and the page to return to).
//!
//! [`PendingFlows::begin`] makes a fresh random `state` and `nonce` and remembers the
//! payload under the state; [`PendingFlows::take`] hands it back exactly once. Entries
//! expire (10 minutes by default) and the map is bounded, so abandoned sign-ins cannot
//! grow it without limit; when it is full of live flows, `begin` refuses rather than
//! evicting someone's sign-in in progress.
//!
//! This is in-memory, per process. A deployment with several instances behind a load
//! balancer needs the callback to reach the same instance, or should keep the payload
//! in a sealed cookie instead (see [`Sealer`](crate::Sealer)).
//!
//! # Why a map lookup is a fine comparison here
//!
//! A state is 256 random bits, used once, for minutes. Timing differences in the hash-map
//! lookup could at most tell an attacker whether some guessed string is a live state, and
//! guessing one is hopeless (2^256 candidates per guess), so a constant-time comparison
//! would buy nothing. The map's hasher is std's randomly keyed SipHash, so an attacker
//! cannot choose colliding keys either.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::clock::{self, Clock, SharedClock};
use crate::random::{self, RandomError};

/// How long a flow stays pending unless configured otherwise: 10 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);

/// How many flows may be pending at once unless configured otherwise.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Why a state was refused, or a flow could not begin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// No pending flow has this state: never issued, already taken, or purged after
    /// expiring. Treat the callback as forged or replayed.
    #[error("unknown or already used state")]
    Unknown,
    /// The flow was pending for longer than the time-to-live; it has been removed.
    #[error("the sign-in took too long; start again")]
    Expired,
    /// The map holds its capacity of live flows; `begin` refuses rather than evict one.
    #[error("too many sign-ins in progress")]
    Full,
    /// No randomness for the state and nonce.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A flow that has begun: put `state` (and, for OpenID Connect, `nonce`) in the
/// authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    /// The `state` parameter: 256 random bits, base64url (43 characters).
    pub state: String,
    /// The `nonce` parameter: 256 random bits, base64url (43 characters).
    pub nonce: String,
}

/// A flow handed back by [`PendingFlows::take`].
#[derive(Debug, Clone)]
pub struct Pending<T> {
    /// What was passed to [`PendingFlows::begin`].
    pub payload: T,
    /// The nonce to expect in the ID token.
    pub nonce: String,
    /// When the flow began.
    pub created_at: SystemTime,
}

struct Entry<T> {
    payload: T,
    nonce: String,
    created_at: SystemTime,
}

/// Pending authorization flows by `state`: single use, expiring, bounded, thread-safe.
///
/// ```
/// use deedbolt_client::{PendingFlows, StateError};
///
/// let flows: PendingFlows<&str> = PendingFlows::new();
/// let begun = flows.begin("/dashboard").unwrap();
/// let pending = flows.take(&begun.state).unwrap();
/// assert_eq!(pending.payload, "/dashboard");
/// assert_eq!(pending.nonce, begun.nonce);
/// // Single use.
/// assert_eq!(flows.take(&begun.state).unwrap_err(), StateError::Unknown);
/// ```
pub struct PendingFlows<T> {
    /// A std mutex, not tokio's: it is held only for a map operation, never across an
    /// `.await`, and a poisoned lock is recovered because no update can leave the map
    /// half-changed.
    entries: Mutex<HashMap<String, Entry<T>>>,
    ttl: Duration,
    capacity: usize,
    clock: SharedClock,
}

impl<T> PendingFlows<T> {
    /// An empty map with the defaults: [`DEFAULT_TTL`], [`DEFAULT_CAPACITY`] and the
    /// system clock.
    pub fn new() -> PendingFlows<T> {
        PendingFlows {
            entries: Mutex::new(HashMap::new()),
            ttl: DEFAULT_TTL,
            capacity: DEFAULT_CAPACITY,
            clock: clock::system(),
        }
    }

    /// The same, with flows expiring after `ttl`.
    pub fn with_ttl(mut self, ttl: Duration) -> PendingFlows<T> {
        self.ttl = ttl;
        self
    }

    /// The same, holding at most `capacity` flows.
    pub fn with_capacity(mut self, capacity: usize) -> PendingFlows<T> {
        self.capacity = capacity;
        self
    }

    /// The same, reading the time from `clock`.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> PendingFlows<T> {
        self.clock = Arc::new(clock);
        self
    }

    /// Starts a flow: a fresh random state and nonce, with `payload` kept under the state.
    ///
    /// When the map is full, expired flows are purged first; if it is still full this
    /// returns [`StateError::Full`] and no live flow is evicted.
    pub fn begin(&self, payload: T) -> Result<Begun, StateError> {
        let state = random::token_256()?;
        let nonce = random::token_256()?;
        let now = self.clock.now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            self.purge_locked(&mut entries, now);
            if entries.len() >= self.capacity {
                return Err(StateError::Full);
            }
        }
        if entries.contains_key(&state) {
            // Two equal 256-bit random values mean the generator is broken.
            return Err(StateError::Random(RandomError));
        }
        entries.insert(
            state.clone(),
            Entry {
                payload,
                nonce: nonce.clone(),
                created_at: now,
            },
        );
        Ok(Begun { state, nonce })
    }

    /// Takes the flow with `state`, which cannot be taken again.
    ///
    /// An expired flow is removed and reported as [`StateError::Expired`]; a state that is
    /// not pending is [`StateError::Unknown`].
    pub fn take(&self, state: &str) -> Result<Pending<T>, StateError> {
        let now = self.clock.now();
        let entry = self.lock().remove(state).ok_or(StateError::Unknown)?;
        if self.is_expired(&entry, now) {
            return Err(StateError::Expired);
        }
        Ok(Pending {
            payload: entry.payload,
            nonce: entry.nonce,
            created_at: entry.created_at,
        })
    }

    /// Removes every expired flow and returns how many there were. `begin` does this by
    /// itself when the map is full; call it periodically to free memory sooner.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        self.purge_locked(&mut self.lock(), now)
    }

    /// How many flows are pending (expired ones not yet purged included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no flow is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_expired(&self, entry: &Entry<T>, now: SystemTime) -> bool {
        // A clock that went backwards leaves the entry alive until it expires by the
        // new clock.
        now.duration_since(entry.created_at)
            .is_ok_and(|age| age >= self.ttl)
    }

    fn purge_locked(&self, entries: &mut HashMap<String, Entry<T>>, now: SystemTime) -> usize {
        let before = entries.len();
        entries.retain(|_, e| !self.is_expired(e, now));
        before - entries.len()
    }
}

impl<T> Default for PendingFlows<T> {
    fn default() -> PendingFlows<T> {
        PendingFlows::new()
    }
}

impl<T> fmt::Debug for PendingFlows<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingFlows")
            .field("pending", &self.len())
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::clock::ManualClock;

    fn clocked(ttl: Duration, capacity: usize) -> (PendingFlows<u32>, ManualClock) {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let flows = PendingFlows::new()
            .with_ttl(ttl)
            .with_capacity(capacity)
            .with_clock(clock.clone());
        (flows, clock)
    }

    #[test]
    fn begin_makes_distinct_256_bit_state_and_nonce() {
        let flows: PendingFlows<()> = PendingFlows::new();
        let a = flows.begin(()).unwrap();
        let b = flows.begin(()).unwrap();
        for s in [&a.state, &a.nonce, &b.state, &b.nonce] {
            assert_eq!(s.len(), 43, "{s}");
            assert!(s
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        }
        assert_ne!(a.state, b.state);
        assert_ne!(a.state, a.nonce);
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(flows.len(), 2);
    }

    #[test]
    fn take_is_single_use() {
        let (flows, _) = clocked(DEFAULT_TTL, 10);
        let begun = flows.begin(7).unwrap();
        let pending = flows.take(&begun.state).unwrap();
        assert_eq!(pending.payload, 7);
        assert_eq!(pending.nonce, begun.nonce);
        assert_eq!(flows.take(&begun.state).unwrap_err(), StateError::Unknown);
        assert!(flows.is_empty());
    }

    #[test]
    fn unknown_state_is_refused() {
        let (flows, _) = clocked(DEFAULT_TTL, 10);
        flows.begin(1).unwrap();
        assert_eq!(flows.take("forged").unwrap_err(), StateError::Unknown);
        assert_eq!(flows.take("").unwrap_err(), StateError::Unknown);
        assert_eq!(flows.len(), 1, "a failed take removes nothing else");
    }

    #[test]
    fn expired_flow_is_refused_and_removed() {
        let (flows, clock) = clocked(Duration::from_secs(600), 10);
        let begun = flows.begin(1).unwrap();
        clock.advance(Duration::from_secs(599));
        let still = flows.begin(2).unwrap();
        assert_eq!(flows.take(&still.state).unwrap().payload, 2);
        let again = flows.begin(3).unwrap();
        clock.advance(Duration::from_secs(1));
        assert_eq!(flows.take(&begun.state).unwrap_err(), StateError::Expired);
        assert_eq!(
            flows.take(&begun.state).unwrap_err(),
            StateError::Unknown,
            "removed when found expired"
        );
        assert_eq!(flows.take(&again.state).unwrap().payload, 3);
    }

    #[test]
    fn default_ttl_is_ten_minutes() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
        let flows = PendingFlows::new().with_clock(clock.clone());
        let a = flows.begin(()).unwrap();
        let b = flows.begin(()).unwrap();
        clock.advance(Duration::from_secs(599));
        assert!(flows.take(&a.state).is_ok());
        clock.advance(Duration::from_secs(1));
        assert_eq!(flows.take(&b.state).unwrap_err(), StateError::Expired);
    }

    #[test]
    fn full_map_purges_expired_flows_first() {
        let (flows, clock) = clocked(Duration::from_secs(60), 2);
        flows.begin(1).unwrap();
        clock.advance(Duration::from_secs(30));
        let live = flows.begin(2).unwrap();
        clock.advance(Duration::from_secs(30));
        // The first is now expired: it makes room.
        let new = flows.begin(3).unwrap();
        assert_eq!(flows.len(), 2);
        assert_eq!(flows.take(&live.state).unwrap().payload, 2);
        assert_eq!(flows.take(&new.state).unwrap().payload, 3);
    }

    #[test]
    fn full_map_of_live_flows_refuses_instead_of_evicting() {
        let (flows, _) = clocked(Duration::from_secs(60), 2);
        let a = flows.begin(1).unwrap();
        let b = flows.begin(2).unwrap();
        assert_eq!(flows.begin(3).unwrap_err(), StateError::Full);
        assert_eq!(flows.take(&a.state).unwrap().payload, 1);
        assert_eq!(flows.take(&b.state).unwrap().payload, 2);
        assert!(flows.begin(4).is_ok(), "room again once taken");
    }

    #[test]
    fn purge_expired_counts_what_it_removed() {
        let (flows, clock) = clocked(Duration::from_secs(60), 10);
        flows.begin(1).unwrap();
        flows.begin(2).unwrap();
        clock.advance(Duration::from_secs(61));
        flows.begin(3).unwrap();
        assert_eq!(flows.purge_expired(), 2);
        assert_eq!(flows.len(), 1);
    }

    #[test]
    fn clock_going_backwards_does_not_expire_flows() {
        let (flows, clock) = clocked(Duration::from_secs(60), 10);
        let begun = flows.begin(1).unwrap();
        clock.set(UNIX_EPOCH);
        assert_eq!(flows.take(&begun.state).unwrap().payload, 1);
    }

    #[test]
    fn concurrent_takes_hand_a_flow_out_once() {
        let flows: Arc<PendingFlows<u32>> = Arc::new(PendingFlows::new());
        let begun = flows.begin(9).unwrap();
        let winners: usize = (0..8)
            .map(|_| {
                let flows = flows.clone();
                let state = begun.state.clone();
                std::thread::spawn(move || flows.take(&state).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(winners, 1);
    }
}
