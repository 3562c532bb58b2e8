//! Time as the protocol sees it: whole seconds since the Unix epoch, from an injected clock.
//!
//! Nothing in core reads the system time directly; adapters pass a [`Clock`] so that
//! expiry rules can be tested at exact boundaries.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch (UTC), the unit of JWT `exp`/`iat`/`nbf` (RFC 7519 §2 NumericDate).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// The time `secs` seconds after this one (saturating).
    pub fn plus_secs(self, secs: i64) -> UnixTime {
        UnixTime(self.0.saturating_add(secs))
    }

    /// The time `secs` seconds before this one (saturating).
    pub fn minus_secs(self, secs: i64) -> UnixTime {
        UnixTime(self.0.saturating_sub(secs))
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> UnixTime;

    /// The current time in milliseconds, for rate limiting; whole seconds by default.
    fn now_ms(&self) -> i64 {
        self.now().0.saturating_mul(1000)
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        // A clock before 1970 is a broken machine; treating it as the epoch keeps every
        // token expired rather than panicking on a request path.
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests of expiry boundaries.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: UnixTime) -> Self {
        ManualClock(AtomicI64::new(at.0))
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: UnixTime) {
        self.0.store(at.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(UnixTime(1_000));
        assert_eq!(clock.now(), UnixTime(1_000));
        clock.advance(59);
        assert_eq!(clock.now(), UnixTime(1_059));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > UnixTime(1_577_836_800));
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixTime(i64::MAX).plus_secs(1), UnixTime(i64::MAX));
        assert_eq!(UnixTime(i64::MIN).minus_secs(1), UnixTime(i64::MIN));
    }
}
