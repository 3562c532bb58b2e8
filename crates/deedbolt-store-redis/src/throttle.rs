//! Login throttling on Redis: the same three sliding-window counters as
//! [`deedbolt_core::throttle::LoginThrottle`], shared by every instance.
//!
//! Each counter is a sorted set of attempts scored by their time (seconds); one Lua script
//! drops what slid out of the window, checks all three and counts the attempt in all three,
//! atomically and in one round trip, so parallel guesses on several instances cannot slip
//! past the limit together. Like the rate limits, the time is the caller's clock.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ports::StoreError;
use deedbolt_core::throttle::{keys, LoginLimits, LoginThrottleStore};

use crate::{store_error, RedisStore};

/// KEYS: (account, IP), IP, account. ARGV: now, window, the three limits, a unique member.
/// Returns 0 when the attempt may proceed (and was counted), else the seconds to wait.
const ATTEMPT_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cutoff = now - window
local wait = 0
for i = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', cutoff)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[2 + i]) then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local first = now
    if oldest[2] then first = tonumber(oldest[2]) end
    local w = first + window - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i = 1, 3 do
  redis.call('ZADD', KEYS[i], now, ARGV[6])
  redis.call('EXPIRE', KEYS[i], window)
end
return 0
";

/// KEYS as above; ARGV: the time of the successful attempt. Clears the (account, IP)
/// counter and removes one attempt made at that time from the other two.
const SUCCEEDED_SCRIPT: &str = r"
redis.call('DEL', KEYS[1])
for i = 2, 3 do
  local m = redis.call('ZRANGEBYSCORE', KEYS[i], ARGV[1], ARGV[1], 'LIMIT', 0, 1)
  if m[1] then redis.call('ZREM', KEYS[i], m[1]) end
end
return 0
";

/// The login throttle on a [`RedisStore`].
#[derive(Debug, Clone)]
pub struct RedisLoginThrottle {
    store: RedisStore,
    limits: LoginLimits,
    attempt: redis::Script,
    succeeded: redis::Script,
}

impl RedisStore {
    /// The login throttle with these limits, on this store.
    pub fn login_throttle(&self, limits: LoginLimits) -> RedisLoginThrottle {
        RedisLoginThrottle {
            store: self.clone(),
            limits,
            attempt: redis::Script::new(ATTEMPT_SCRIPT),
            succeeded: redis::Script::new(SUCCEEDED_SCRIPT),
        }
    }
}

impl RedisLoginThrottle {
    fn script_keys(&self, account: &str, ip: &str) -> [String; 3] {
        keys(account, ip).map(|k| self.store.key("login", &k))
    }
}

#[async_trait]
impl LoginThrottleStore for RedisLoginThrottle {
    async fn attempt(
        &self,
        account: &str,
        ip: &str,
        now: UnixTime,
    ) -> Result<Result<(), i64>, StoreError> {
        // Attempts in the same second need distinct members.
        let member = format!(
            "{}:{}",
            now.0,
            deedbolt_core::rand::token::<9>().map_err(StoreError::backend)?
        );
        let l = self.limits;
        let mut conn = self.store.conn.clone();
        let mut invocation = self.attempt.prepare_invoke();
        for k in self.script_keys(account, ip) {
            invocation.key(k);
        }
        // Limits as text: "off" is usize::MAX, which Lua reads as a (huge) double.
        let wait: i64 = invocation
            .arg(now.0)
            .arg(l.window_secs)
            .arg(l.per_account_ip.to_string())
            .arg(l.per_ip.to_string())
            .arg(l.per_account.to_string())
            .arg(member)
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(if wait > 0 { Err(wait) } else { Ok(()) })
    }

    async fn succeeded(&self, account: &str, ip: &str, at: UnixTime) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        let mut invocation = self.succeeded.prepare_invoke();
        for k in self.script_keys(account, ip) {
            invocation.key(k);
        }
        invocation
            .arg(at.0)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
