//! Login brute-force protection: failed attempts in a sliding window, counted per
//! (account, client IP), per client IP, and per account overall.
//!
//! Why three keys: a limit per account alone lets anyone lock any account (five wrong
//! passwords from anywhere lock the victim out, administrators included). So the tight
//! limit is per (account, IP): an attacker exhausts only their own attempts at the
//! victim's account, and the victim, from another IP, still signs in. Per IP, a larger
//! limit stops one IP spraying guesses over many accounts. Per account, a much larger
//! global ceiling still stops a distributed guess at one account from many IPs; reaching
//! it locks the account for everyone until the window slides, a price paid only under an
//! attack that already spans many addresses.
//!
//! The account key is the normalised email as typed, whether or not such a user exists, so
//! the throttle itself reveals nothing about which accounts exist.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::ports::StoreError;

/// Where failed-login counts live: in this process ([`LoginThrottle`], the default) or
/// shared by every instance (Redis), so that N instances do not allow N times the guesses.
#[async_trait]
pub trait LoginThrottleStore: Send + Sync + 'static {
    /// Starts a login attempt, atomically over the three counters (see
    /// [`LoginThrottle::attempt`]): `Ok(Ok(()))` if it may proceed (and it is counted),
    /// `Ok(Err(secs))` if throttled for `secs` more seconds.
    async fn attempt(
        &self,
        account: &str,
        ip: &str,
        now: UnixTime,
    ) -> Result<Result<(), i64>, StoreError>;

    /// Un-counts a successful attempt made at `at` (see [`LoginThrottle::succeeded`]).
    async fn succeeded(&self, account: &str, ip: &str, at: UnixTime) -> Result<(), StoreError>;
}

#[async_trait]
impl LoginThrottleStore for LoginThrottle {
    async fn attempt(
        &self,
        account: &str,
        ip: &str,
        now: UnixTime,
    ) -> Result<Result<(), i64>, StoreError> {
        Ok(LoginThrottle::attempt(self, account, ip, now))
    }

    async fn succeeded(&self, account: &str, ip: &str, at: UnixTime) -> Result<(), StoreError> {
        LoginThrottle::succeeded(self, account, ip, at);
        Ok(())
    }
}

/// The limits of a [`LoginThrottle`], for shared implementations of the same rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// The sliding window, in seconds.
    pub window_secs: i64,
    /// Failures allowed per (account, IP) in the window.
    pub per_account_ip: usize,
    /// Failures allowed per IP over all accounts.
    pub per_ip: usize,
    /// Failures allowed per account over all IPs.
    pub per_account: usize,
}

/// Limits on failed logins (attempts in flight count as failures until they succeed).
#[derive(Debug)]
pub struct LoginThrottle {
    window_secs: i64,
    per_account_ip: usize,
    per_ip: usize,
    per_account: usize,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

/// The most keys remembered; past this, the oldest windows are dropped wholesale.
const MAX_KEYS: usize = 100_000;

/// The three counters one attempt touches, in the order of the limits: (account, IP), IP,
/// account.
pub fn keys(account: &str, ip: &str) -> [String; 3] {
    [
        format!("ai:{ip} {account}"),
        format!("i:{ip}"),
        format!("a:{account}"),
    ]
}

impl LoginThrottle {
    /// At most `per_account_ip` failures per account from one IP, `per_ip` per IP over all
    /// accounts and `per_account` per account over all IPs, each in `window_secs`.
    pub fn new(window_secs: i64, per_account_ip: usize, per_ip: usize, per_account: usize) -> Self {
        LoginThrottle {
            window_secs,
            per_account_ip,
            per_ip,
            per_account,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The limits derived from one login limit of `count` per `window_secs`: `count` per
    /// (account, IP), four times that per IP (a shared NAT has many users) and ten times
    /// that per account over all IPs.
    ///
    /// ```
    /// use deedbolt_core::clock::UnixTime;
    /// use deedbolt_core::throttle::LoginThrottle;
    /// let t = LoginThrottle::from_limit(900, 5);
    /// for i in 0..5 {
    ///     assert!(t.attempt("victim@x.io", "203.0.113.66", UnixTime(i)).is_ok());
    /// }
    /// // The attacker's IP is done with this account; the victim's IP is not.
    /// assert!(t.attempt("victim@x.io", "203.0.113.66", UnixTime(9)).is_err());
    /// assert!(t.attempt("victim@x.io", "198.51.100.7", UnixTime(9)).is_ok());
    /// ```
    pub fn from_limit(window_secs: i64, count: usize) -> Self {
        Self::new(
            window_secs,
            count,
            count.saturating_mul(4),
            count.saturating_mul(10),
        )
    }

    /// The limits this throttle enforces.
    pub fn limits(&self) -> LoginLimits {
        LoginLimits {
            window_secs: self.window_secs,
            per_account_ip: self.per_account_ip,
            per_ip: self.per_ip,
            per_account: self.per_account,
        }
    }

    /// A throttle that never refuses (the login limit is off).
    pub fn unlimited() -> Self {
        Self::new(1, usize::MAX, usize::MAX, usize::MAX)
    }

    fn live(map: &mut HashMap<String, VecDeque<i64>>, key: &str, cutoff: i64) -> usize {
        match map.get_mut(key) {
            Some(q) => {
                while q.front().is_some_and(|t| *t <= cutoff) {
                    q.pop_front();
                }
                q.len()
            }
            None => 0,
        }
    }

    /// Starts a login attempt: `Ok` if it may proceed, and the attempt is counted *now*,
    /// before the (slow) password check, so that parallel guesses cannot all slip past the
    /// limit; otherwise the seconds until one may. Call [`LoginThrottle::succeeded`] if
    /// the password was right.
    pub fn attempt(&self, account: &str, ip: &str, now: UnixTime) -> Result<(), i64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        self.check_locked(&mut map, account, ip, now)?;
        self.push_locked(&mut map, account, ip, now);
        Ok(())
    }

    /// Un-counts a successful attempt made at `at`: the failures of this account from this
    /// IP are cleared, and the IP's and the account's overall counts lose this one entry
    /// (failures from elsewhere stay: a victim's login does not reset an attack on them).
    pub fn succeeded(&self, account: &str, ip: &str, at: UnixTime) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let [pair, ip_key, account_key] = keys(account, ip);
        map.remove(&pair);
        for key in [ip_key, account_key] {
            if let Some(q) = map.get_mut(&key) {
                if let Some(i) = q.iter().rposition(|t| *t == at.0) {
                    q.remove(i);
                }
            }
        }
    }

    /// `Ok` if a login attempt may proceed; otherwise the seconds until one may.
    pub fn check(&self, account: &str, ip: &str, now: UnixTime) -> Result<(), i64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        self.check_locked(&mut map, account, ip, now)
    }

    fn check_locked(
        &self,
        map: &mut HashMap<String, VecDeque<i64>>,
        account: &str,
        ip: &str,
        now: UnixTime,
    ) -> Result<(), i64> {
        let cutoff = now.0 - self.window_secs;
        let mut wait = 0;
        let limits = [self.per_account_ip, self.per_ip, self.per_account];
        for (key, limit) in keys(account, ip).into_iter().zip(limits) {
            if Self::live(map, &key, cutoff) >= limit {
                let oldest = map
                    .get(&key)
                    .and_then(|q| q.front().copied())
                    .unwrap_or(now.0);
                wait = wait.max(oldest + self.window_secs - now.0);
            }
        }
        if wait > 0 {
            Err(wait)
        } else {
            Ok(())
        }
    }

    /// Records a failed attempt.
    pub fn record_failure(&self, account: &str, ip: &str, now: UnixTime) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        self.push_locked(&mut map, account, ip, now);
    }

    fn push_locked(
        &self,
        map: &mut HashMap<String, VecDeque<i64>>,
        account: &str,
        ip: &str,
        now: UnixTime,
    ) {
        if map.len() >= MAX_KEYS {
            let cutoff = now.0 - self.window_secs;
            map.retain(|_, q| q.back().is_some_and(|t| *t > cutoff));
        }
        for key in keys(account, ip) {
            map.entry(key).or_default().push_back(now.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_locks_the_account_from_that_ip_until_the_window_slides() {
        let t = LoginThrottle::new(900, 5, 20, 50);
        for i in 0..5 {
            assert!(t.check("a@x.io", "1.1.1.1", UnixTime(i)).is_ok());
            t.record_failure("a@x.io", "1.1.1.1", UnixTime(i));
        }
        assert_eq!(t.check("a@x.io", "1.1.1.1", UnixTime(10)), Err(890));
        // Not from another IP, and not another account from the same IP.
        assert!(t.check("a@x.io", "2.2.2.2", UnixTime(10)).is_ok());
        assert!(t.check("b@x.io", "1.1.1.1", UnixTime(10)).is_ok());
        assert!(t.check("a@x.io", "1.1.1.1", UnixTime(900)).is_ok());
    }

    #[test]
    fn attempts_count_before_the_password_check_and_successes_are_uncounted() {
        let t = LoginThrottle::new(900, 2, 20, 20);
        assert!(t.attempt("a", "1.1.1.1", UnixTime(1)).is_ok());
        assert!(t.attempt("a", "1.1.1.1", UnixTime(1)).is_ok());
        // Two attempts in flight: a third is refused before any password is checked.
        assert!(t.attempt("a", "1.1.1.1", UnixTime(1)).is_err());
        t.succeeded("a", "1.1.1.1", UnixTime(1));
        assert!(t.attempt("a", "1.1.1.1", UnixTime(2)).is_ok());
    }

    #[test]
    fn the_ip_limit_spans_accounts_and_success_clears_only_that_pair() {
        let t = LoginThrottle::new(900, 5, 3, 50);
        for (i, who) in ["a", "b", "c"].iter().enumerate() {
            t.record_failure(who, "9.9.9.9", UnixTime(i as i64));
        }
        assert!(t.check("d", "9.9.9.9", UnixTime(5)).is_err());
        t.succeeded("a", "7.7.7.7", UnixTime(0));
        assert!(t.check("d", "9.9.9.9", UnixTime(5)).is_err());
        assert!(t.check("d", "8.8.8.8", UnixTime(5)).is_ok());
    }

    #[test]
    fn the_global_account_ceiling_stops_guesses_spread_over_many_ips() {
        let t = LoginThrottle::from_limit(900, 2);
        // 20 failures (10 x 2) from 10 IPs, each within its own pair limit.
        for i in 0..10 {
            let ip = format!("10.0.0.{i}");
            assert!(t.attempt("victim", &ip, UnixTime(i)).is_ok());
            assert!(t.attempt("victim", &ip, UnixTime(i)).is_ok());
        }
        assert_eq!(t.check("victim", "192.0.2.1", UnixTime(10)), Err(890));
        assert!(t.check("someone-else", "192.0.2.1", UnixTime(10)).is_ok());
    }

    #[test]
    fn a_victims_success_does_not_reset_the_attackers_counts() {
        let t = LoginThrottle::from_limit(900, 2);
        for _ in 0..2 {
            assert!(t.attempt("victim", "6.6.6.6", UnixTime(1)).is_ok());
        }
        assert!(t.attempt("victim", "1.2.3.4", UnixTime(2)).is_ok());
        t.succeeded("victim", "1.2.3.4", UnixTime(2));
        assert!(t.attempt("victim", "6.6.6.6", UnixTime(3)).is_err());
    }
}
