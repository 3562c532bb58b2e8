//! Login brute-force protection: failed attempts per account and per client IP, in a
//! sliding window.
//!
//! The account key is the normalised email as typed, whether or not such a user exists, so
//! the throttle itself reveals nothing about which accounts exist.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::clock::UnixTime;

/// Limits on failed logins.
#[derive(Debug)]
pub struct LoginThrottle {
    window_secs: i64,
    per_account: usize,
    per_ip: usize,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

/// The most keys remembered; past this, the oldest windows are dropped wholesale.
const MAX_KEYS: usize = 100_000;

impl LoginThrottle {
    /// At most `per_account` failures per account and `per_ip` per IP in `window_secs`.
    pub fn new(window_secs: i64, per_account: usize, per_ip: usize) -> Self {
        LoginThrottle {
            window_secs,
            per_account,
            per_ip,
            failures: Mutex::new(HashMap::new()),
        }
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
        Self::check_locked(self, &mut map, account, ip, now)?;
        Self::push_locked(self, &mut map, account, ip, now);
        Ok(())
    }

    /// Un-counts a successful attempt made at `at`: the account's failures are cleared,
    /// and the IP loses this one entry (other failures from it stay).
    pub fn succeeded(&self, account: &str, ip: &str, at: UnixTime) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&format!("a:{account}"));
        if let Some(q) = map.get_mut(&format!("i:{ip}")) {
            if let Some(i) = q.iter().rposition(|t| *t == at.0) {
                q.remove(i);
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
        for (key, limit) in [
            (format!("a:{account}"), self.per_account),
            (format!("i:{ip}"), self.per_ip),
        ] {
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
        for key in [format!("a:{account}"), format!("i:{ip}")] {
            map.entry(key).or_default().push_back(now.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_locks_the_account_until_the_window_slides() {
        let t = LoginThrottle::new(900, 5, 20);
        for i in 0..5 {
            assert!(t.check("a@x.io", "1.1.1.1", UnixTime(i)).is_ok());
            t.record_failure("a@x.io", "1.1.1.1", UnixTime(i));
        }
        assert_eq!(t.check("a@x.io", "2.2.2.2", UnixTime(10)), Err(890));
        assert!(t.check("b@x.io", "1.1.1.1", UnixTime(10)).is_ok());
        assert!(t.check("a@x.io", "1.1.1.1", UnixTime(900)).is_ok());
    }

    #[test]
    fn attempts_count_before_the_password_check_and_successes_are_uncounted() {
        let t = LoginThrottle::new(900, 2, 20);
        assert!(t.attempt("a", "1.1.1.1", UnixTime(1)).is_ok());
        assert!(t.attempt("a", "1.1.1.1", UnixTime(1)).is_ok());
        // Two attempts in flight: a third is refused before any password is checked.
        assert!(t.attempt("a", "1.1.1.1", UnixTime(1)).is_err());
        t.succeeded("a", "1.1.1.1", UnixTime(1));
        assert!(t.attempt("a", "1.1.1.1", UnixTime(2)).is_ok());
    }

    #[test]
    fn the_ip_limit_spans_accounts_and_success_clears_only_the_account() {
        let t = LoginThrottle::new(900, 5, 3);
        for (i, who) in ["a", "b", "c"].iter().enumerate() {
            t.record_failure(who, "9.9.9.9", UnixTime(i as i64));
        }
        assert!(t.check("d", "9.9.9.9", UnixTime(5)).is_err());
        t.succeeded("a", "7.7.7.7", UnixTime(0));
        assert!(t.check("d", "9.9.9.9", UnixTime(5)).is_err());
        assert!(t.check("d", "8.8.8.8", UnixTime(5)).is_ok());
    }
}
