//! deedbolt's shared fast state on Redis, for running several instances behind a load
//! balancer: what must be the same on every instance and checked on every request.
//!
//! # Layout
//! - [`RedisStore`]: one multiplexed connection (a `ConnectionManager`, which reconnects by
//!   itself) and a key prefix under which every key lives, so that several deployments
//!   (or test runs) can share one Redis.
//! - Rate limits ([`deedbolt_core::ratelimit::RateLimitStore`]): GCRA in one Lua script, one
//!   round trip, atomic (Redis runs a script without interleaving other commands).
//! - The revocation feed ([`deedbolt_core::revocation::RevocationFeed`], module
//!   `revocation`): publish on revoke, every instance subscribed, reload on resubscribe.
//! - Login throttling ([`deedbolt_core::throttle::LoginThrottleStore`], [`RedisLoginThrottle`]):
//!   the three sliding-window counters in one Lua script.
//! - The refresh grace cache ([`deedbolt_core::grace::GraceStore`]): `SET … PX`, sealed
//!   values (the HTTP layer seals them under a key derived from the rotated token).
//! - Replay detection ([`deedbolt_core::ports::ReplayCache`]): `SET … NX EXAT`, so a DPoP
//!   proof or client assertion is accepted by one instance only, once.
//! - Liveness ([`deedbolt_core::ports::Health`]): `PING`, for `/readyz`.
//!
//! # Failure
//! A connection that is refused, dropped or times out is
//! [`StoreError::Unavailable`]: callers fail closed (the HTTP layer answers 503), and the
//! connection manager reconnects on the next command once Redis is back.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::grace::GraceStore;
use deedbolt_core::ports::{Health, ReplayCache, StoreError};
use deedbolt_core::ratelimit::{gcra, Outcome, RateLimit, RateLimitStore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

mod revocation;
mod throttle;

pub use throttle::RedisLoginThrottle;

/// How long one command may take before the instance treats Redis as unavailable. Redis
/// answers in well under a millisecond on a healthy network; a second means it is gone.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    /// The URL does not parse (its text is not repeated: it may hold a password).
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] redis::RedisError),
    /// Redis did not answer.
    #[error("cannot connect to Redis")]
    Connect(#[source] redis::RedisError),
}

/// Maps a Redis error to the port's error: connectivity problems are
/// [`StoreError::Unavailable`] (503, retried later), anything else (a script or type error:
/// a bug) is [`StoreError::Backend`] (500).
pub fn store_error(e: redis::RedisError) -> StoreError {
    if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::backend(e)
    }
}

/// The shared state on one Redis, under one key prefix.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    gcra: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// One GCRA step on the TAT stored at `KEYS[1]`, the same decision as
/// [`deedbolt_core::ratelimit::gcra`]: ARGV = now, interval, tolerance (all ms). Returns the
/// TAT it found (or -1 for none); the caller computes the outcome from it with the core
/// function, so the numbers the client sees come from one implementation. The new TAT is
/// stored only when the request is allowed, and expires when the quota is whole again.
///
/// Lua numbers are doubles: millisecond timestamps (~2^41) are exact far below 2^53.
const GCRA_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local stored = redis.call('GET', KEYS[1])
local found = -1
local tat = now
if stored then
  found = tonumber(stored)
  if found > now then tat = found end
end
if tat - now <= tolerance then
  local new_tat = tat + interval
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now))
end
return found
";

impl RedisStore {
    /// Connects to `url` (`redis://host:port[/db]`, `rediss://` for TLS is not built in);
    /// every key is put under `prefix` (e.g. `deedbolt:`).
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(url).map_err(RedisStoreError::InvalidUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(RESPONSE_TIMEOUT)
            .set_connection_timeout(CONNECT_TIMEOUT)
            // Reconnection is retried on the next command, not in a long backoff loop, so
            // that an outage ends for the instance as soon as Redis answers again.
            .set_number_of_retries(1)
            .set_max_delay(200);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(RedisStoreError::Connect)?;
        Ok(RedisStore {
            client,
            conn,
            prefix: prefix.into(),
            gcra: redis::Script::new(GCRA_SCRIPT),
        })
    }

    /// The prefix every key is put under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }
}

#[async_trait]
impl RateLimitStore for RedisStore {
    /// One atomic round trip. The clock is the caller's `now_ms` (the injected clock), not
    /// Redis `TIME`: the port stays one contract for every backend (the conformance tests
    /// drive both with a fake clock), and instances already depend on synchronised clocks
    /// for token `iat`/`exp`; a skew of a few milliseconds only moves one request's
    /// boundary by as much.
    async fn acquire(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: i64,
    ) -> Result<Outcome, StoreError> {
        let mut conn = self.conn.clone();
        let found: i64 = self
            .gcra
            .key(self.key("rl", key))
            .arg(now_ms)
            .arg(limit.interval_ms())
            .arg(limit.tolerance_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        let tat = (found >= 0).then_some(found);
        Ok(gcra(tat, now_ms, limit).0)
    }
}

#[async_trait]
impl Health for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl GraceStore for RedisStore {
    /// `SET … PX`: Redis drops the entry when the grace period ends.
    async fn put(
        &self,
        key: &[u8; 32],
        value: Vec<u8>,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        let ttl_ms = (until.0 - now.0).max(0) * 1000;
        if ttl_ms == 0 {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.key("grace", &hex(key)))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_error)
    }

    /// Expiry is Redis's own (`now` is not needed).
    async fn get(&self, key: &[u8; 32], _now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(self.key("grace", &hex(key)))
            .query_async(&mut conn)
            .await
            .map_err(store_error)
    }
}

#[async_trait]
impl ReplayCache for RedisStore {
    /// `SET key 1 NX EXAT until`: set only when absent, so exactly one of any number of
    /// concurrent first uses, on any instance, gets `OK`. Redis expires the key at `until`
    /// by its own clock (instances and Redis are assumed to agree within seconds; the
    /// callers' windows are minutes).
    async fn first_use(&self, key: &str, until: UnixTime) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key("replay", key))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(until.0.max(1))
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(set.is_some())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
