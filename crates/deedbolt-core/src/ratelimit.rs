//! Rate limits as a generic cell rate algorithm (GCRA).
//!
//! GCRA is a true sliding limit: "10 per hour" lets a client make 10 requests at once and
//! then one more every 6 minutes, and never more than 10 in any hour-long window. A fixed
//! window whose expiry is reset on every request would instead let a steady client be
//! locked out forever, or a bursty one double its quota across a window boundary.
//!
//! The state per key is one number, the theoretical arrival time (TAT), so a shared store
//! (Redis, in `deedbolt-store-redis`) can hold it and decide in one atomic script. The decision itself is the
//! pure function [`gcra`]; [`MemoryRateLimits`] is the embedded default store.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::StoreError;

/// `COUNT` requests per `WINDOW`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window (also the largest burst).
    pub count: u32,
    /// The window, in seconds.
    pub window_secs: u32,
}

/// A malformed limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit must be COUNT/WINDOW like 10/1h, 5/5m or 1000/1h (or `off`), got `{0}`")]
pub struct BadRateLimit(pub String);

impl RateLimit {
    /// Parses `COUNT/WINDOW` (`10/1h`, `5/5m`, `100/30s`, `10000/1d`) or `off` (`None`).
    ///
    /// ```
    /// use deedbolt_core::ratelimit::RateLimit;
    /// assert_eq!(RateLimit::parse("10/1h").unwrap(), Some(RateLimit { count: 10, window_secs: 3600 }));
    /// assert_eq!(RateLimit::parse("off").unwrap(), None);
    /// assert!(RateLimit::parse("0/1h").is_err());
    /// assert!(RateLimit::parse("10 per hour").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Option<Self>, BadRateLimit> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || BadRateLimit(s.chars().take(40).collect());
        let (count, window) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let split = window
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(window.len());
        let (n, unit) = window.split_at(split);
        let n: u32 = if n.is_empty() {
            1
        } else {
            n.parse().map_err(|_| bad())?
        };
        let unit_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        let window_secs = n.checked_mul(unit_secs).ok_or_else(bad)?;
        if count == 0 || window_secs == 0 {
            return Err(bad());
        }
        Ok(Some(RateLimit { count, window_secs }))
    }

    /// The window in milliseconds.
    pub fn window_ms(&self) -> i64 {
        i64::from(self.window_secs) * 1000
    }

    /// The emission interval T: one request is earned back every T milliseconds.
    pub fn interval_ms(&self) -> i64 {
        (self.window_ms() / i64::from(self.count)).max(1)
    }

    /// How far (ms) the TAT may run ahead of now and still allow a request: (count - 1)
    /// intervals, not window - interval: with integer division the latter would let
    /// rounding slack add up to an extra request in a burst.
    pub fn tolerance_ms(&self) -> i64 {
        self.interval_ms() * (i64::from(self.count) - 1)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.window_secs)
    }
}

impl FromStr for RateLimit {
    type Err = BadRateLimit;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RateLimit::parse(s)?.ok_or_else(|| BadRateLimit(s.to_owned()))
    }
}

/// The outcome of one request against a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed.
    Allowed {
        /// Requests that would still be allowed right now.
        remaining: u32,
        /// Seconds until the full quota is available again.
        reset_secs: u32,
    },
    /// Over the limit.
    Limited {
        /// Seconds until one request is allowed again (at least 1).
        retry_after_secs: u32,
    },
}

/// One GCRA step: given the key's TAT (milliseconds; `None` for a new key), decides and
/// returns the new TAT to store (unchanged when limited).
///
/// ```
/// use deedbolt_core::ratelimit::{gcra, Outcome, RateLimit};
/// let limit = RateLimit { count: 10, window_secs: 3600 };
/// let mut tat = None;
/// for i in 0..10 {
///     let (outcome, new_tat) = gcra(tat, 0, limit);
///     assert!(matches!(outcome, Outcome::Allowed { remaining, .. } if remaining == 9 - i));
///     tat = Some(new_tat);
/// }
/// // The 11th at the same instant is refused; one more is allowed 6 minutes later.
/// assert_eq!(gcra(tat, 0, limit).0, Outcome::Limited { retry_after_secs: 360 });
/// assert!(matches!(gcra(tat, 360_000, limit).0, Outcome::Allowed { .. }));
/// ```
pub fn gcra(tat: Option<i64>, now_ms: i64, limit: RateLimit) -> (Outcome, i64) {
    let interval = limit.interval_ms();
    let tolerance = limit.tolerance_ms();
    let tat = tat.unwrap_or(now_ms).max(now_ms);
    if tat - now_ms > tolerance {
        let wait_ms = tat - now_ms - tolerance;
        let retry = u32::try_from((wait_ms + 999) / 1000)
            .unwrap_or(u32::MAX)
            .max(1);
        return (
            Outcome::Limited {
                retry_after_secs: retry,
            },
            tat,
        );
    }
    let new_tat = tat + interval;
    let used_ms = new_tat - now_ms;
    let remaining = u32::try_from((limit.window_ms() - used_ms) / interval).unwrap_or(0);
    let reset = u32::try_from((used_ms + 999) / 1000).unwrap_or(u32::MAX);
    (
        Outcome::Allowed {
            remaining,
            reset_secs: reset,
        },
        new_tat,
    )
}

/// Where limiter state lives: in process by default, a shared store when scaled out.
#[async_trait]
pub trait RateLimitStore: Send + Sync + 'static {
    /// Counts one request for `key` against `limit` at `now_ms`, atomically.
    async fn acquire(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: i64,
    ) -> Result<Outcome, StoreError>;
}

/// The in-process limiter store.
#[derive(Debug, Default)]
pub struct MemoryRateLimits {
    tats: Mutex<HashMap<String, i64>>,
}

/// Past this many keys, keys whose quota is fully replenished are dropped.
const MAX_KEYS: usize = 200_000;

impl MemoryRateLimits {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request (synchronously).
    pub fn acquire_now(&self, key: &str, limit: RateLimit, now_ms: i64) -> Outcome {
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        if tats.len() >= MAX_KEYS {
            tats.retain(|_, tat| *tat > now_ms);
        }
        let (outcome, new_tat) = gcra(tats.get(key).copied(), now_ms, limit);
        match tats.get_mut(key) {
            Some(tat) => *tat = new_tat,
            None => {
                tats.insert(key.to_owned(), new_tat);
            }
        }
        outcome
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimits {
    async fn acquire(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: i64,
    ) -> Result<Outcome, StoreError> {
        Ok(self.acquire_now(key, limit, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn five_per_five_minutes_slides() {
        let limit = RateLimit::parse("5/5m").unwrap().unwrap();
        let store = MemoryRateLimits::new();
        for _ in 0..5 {
            assert!(matches!(
                store.acquire_now("k", limit, 0),
                Outcome::Allowed { .. }
            ));
        }
        assert_eq!(
            store.acquire_now("k", limit, 0),
            Outcome::Limited {
                retry_after_secs: 60
            }
        );
        // Not a fixed window: one slot comes back after 60 s, not after 5 minutes.
        assert!(matches!(
            store.acquire_now("k", limit, 60_000),
            Outcome::Allowed { remaining: 0, .. }
        ));
        assert!(matches!(
            store.acquire_now("k", limit, 60_000),
            Outcome::Limited { .. }
        ));
        // Other keys are independent.
        assert!(matches!(
            store.acquire_now("other", limit, 0),
            Outcome::Allowed { remaining: 4, .. }
        ));
    }

    #[test]
    fn limited_requests_do_not_extend_the_wait() {
        let limit = RateLimit {
            count: 1,
            window_secs: 10,
        };
        let (_, tat) = gcra(None, 0, limit);
        let (o1, tat2) = gcra(Some(tat), 1_000, limit);
        assert_eq!(
            o1,
            Outcome::Limited {
                retry_after_secs: 9
            }
        );
        assert_eq!(tat2, tat);
    }

    #[test]
    fn parse_rejects_junk() {
        for s in [
            "",
            "10",
            "10/",
            "/1h",
            "10/1y",
            "-1/1h",
            "10/0s",
            "99999999999/1h",
        ] {
            assert!(RateLimit::parse(s).is_err(), "{s}");
        }
        assert_eq!(
            RateLimit::parse("1000/1h").unwrap().unwrap().window_secs,
            3600
        );
        assert_eq!(RateLimit::parse("3/s").unwrap().unwrap().window_secs, 1);
    }

    proptest! {
        /// The GCRA guarantee: in any interval of length L, at most `count` (the burst)
        /// plus one per emission interval T are allowed: `count + L / T`.
        #[test]
        fn burst_plus_rate_is_never_exceeded(
            count in 1u32..20,
            window in 1u32..100,
            gaps in proptest::collection::vec(0i64..5_000, 1..200),
        ) {
            let limit = RateLimit { count, window_secs: window };
            let interval = limit.interval_ms();
            let mut tat = None;
            let mut now = 0i64;
            let mut allowed_at = Vec::new();
            for g in gaps {
                now += g;
                let (o, t) = gcra(tat, now, limit);
                tat = Some(t);
                if matches!(o, Outcome::Allowed { .. }) {
                    allowed_at.push(now);
                }
            }
            for (i, start) in allowed_at.iter().enumerate() {
                for (j, end) in allowed_at.iter().enumerate().skip(i) {
                    let n = (j - i + 1) as i64;
                    prop_assert!(n <= i64::from(count) + (end - start) / interval);
                }
            }
        }
    }
}
