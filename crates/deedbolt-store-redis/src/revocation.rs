//! The revocation feed on Redis: every instance learns of a revocation at once.
//!
//! A revocation is first recorded durably in the database (the source of truth every
//! instance also syncs from), then published here in one atomic `MULTI`: added to the
//! sorted set `PREFIX revoked` (member the `jti`, score its expiry) and announced on the
//! channel `PREFIX revocations` as `EXPIRY JTI`. A cutoff (every token of a client or a
//! user issued up to a time) goes the same way: into the sorted set `PREFIX cutoffs`
//! (member `KIND SUBJECT`, score the cutoff, only ever raised) and onto the channel as
//! `cutoff KIND AT SUBJECT`. Each instance subscribes; on every
//! (re)subscription it first subscribes, then loads the whole set, so that nothing
//! published while it was away, or between the two steps, is missed.
//!
//! While the subscription is down (its connection closed, or a `PING` on it unanswered for
//! three seconds) the instance's list is marked not current, and token checks fail
//! closed with 503 until it is back and reloaded. A closed connection (Redis stopped or
//! restarted) is noticed at once; the ping only catches a connection that went silent, and
//! its timeout is generous so that a saturated machine, whose tasks all run late, is not
//! mistaken for a dead Redis.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::TokenId;
use deedbolt_core::ports::{CutoffKind, StoreError};
use deedbolt_core::revocation::{Cutoff, RevocationFeed, RevocationList, Revoked};
use deedbolt_core::token::AccessTokenLifetime;
use futures_util::StreamExt as _;

use crate::{store_error, RedisStore};

/// How often the subscription is pinged.
const PING_EVERY: Duration = Duration::from_secs(1);

/// A ping unanswered for this long means the subscription is dead. Three times the ping
/// interval: a pong that is merely late on a loaded machine must not fail every token check.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Pause between attempts to subscribe again while Redis is away.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(100);

impl RedisStore {
    fn revoked_key(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    fn cutoffs_key(&self) -> String {
        format!("{}cutoffs", self.prefix)
    }

    fn revocation_channel(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    /// Every member of the sorted set `key` with its score.
    async fn all_scored(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        key: String,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(conn)
            .await
            .map_err(store_error)
    }

    /// In one `MULTI`: records `member` with `score` in the sorted set `key` (`ZADD` with
    /// `flags`), drops the members scored below `stale`, and announces `payload` on the
    /// revocation channel.
    async fn record_and_announce(
        &self,
        key: String,
        flags: &[&str],
        score: i64,
        member: &str,
        stale: i64,
        payload: String,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("ZADD")
            .arg(&key)
            .arg(flags)
            .arg(score)
            .arg(member)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({stale}"))
            .ignore()
            .cmd("PUBLISH")
            .arg(self.revocation_channel())
            .arg(payload)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_error)
    }

    /// Subscribes to the revocation channel, then loads every announced revocation into
    /// `list`; the stream of later announcements, with its sink for pings.
    async fn subscribe_and_load(
        &self,
        list: &RevocationList,
    ) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), StoreError> {
        let pubsub = tokio::time::timeout(crate::CONNECT_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Unavailable("Redis subscription timed out".into()))?
            .map_err(store_error)?;
        let (mut sink, stream) = pubsub.split();
        sink.subscribe(self.revocation_channel())
            .await
            .map_err(store_error)?;
        let mut conn = self.conn.clone();
        for (jti, expires_at) in self.all_scored(&mut conn, self.revoked_key()).await? {
            if let Ok(jti) = TokenId::parse(&jti) {
                list.revoke_local(jti, UnixTime(expires_at));
            }
        }
        for (member, at) in self.all_scored(&mut conn, self.cutoffs_key()).await? {
            let parsed = member
                .split_once(' ')
                .and_then(|(kind, subject)| Some((CutoffKind::parse(kind)?, subject)));
            if let Some((kind, subject)) = parsed {
                list.cut_off_local(kind, subject, UnixTime(at));
            }
        }
        Ok((sink, stream))
    }

    /// Subscribes `list` to the revocations every instance announces (loading those already
    /// announced), and returns the task that keeps it subscribed: run it for the server's
    /// lifetime. Fails if Redis cannot be reached now (at start-up: refuse to start).
    pub async fn revocation_feed(
        &self,
        list: Arc<RevocationList>,
    ) -> Result<impl Future<Output = ()> + Send + 'static, StoreError> {
        let first = self.subscribe_and_load(&list).await?;
        list.set_feed_down(false);
        let store = self.clone();
        Ok(async move {
            let (mut sink, mut stream) = first;
            loop {
                let why = follow(&list, &mut sink, &mut stream).await;
                list.set_feed_down(true);
                tracing::error!(
                    reason = why,
                    "revocation feed lost: token checks answer 503 until Redis is back"
                );
                loop {
                    tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                    match store.subscribe_and_load(&list).await {
                        Ok((new_sink, new_stream)) => {
                            sink = new_sink;
                            stream = new_stream;
                            list.set_feed_down(false);
                            tracing::info!("revocation feed restored");
                            break;
                        }
                        Err(e) => tracing::debug!(error = %e, "revocation feed still down"),
                    }
                }
            }
        })
    }
}

/// Applies announcements until the subscription ends or stops answering pings; says which.
async fn follow(
    list: &RevocationList,
    sink: &mut redis::aio::PubSubSink,
    stream: &mut redis::aio::PubSubStream,
) -> &'static str {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return "the subscription's connection closed" };
                match msg.get_payload::<String>().ok().as_deref().and_then(parse) {
                    Some(Announcement::Token(r)) => list.revoke_local(r.jti, r.expires_at),
                    Some(Announcement::Cutoff(c)) => list.cut_off_local(c.kind, &c.subject, c.at),
                    None => tracing::warn!("ignoring a malformed revocation announcement"),
                }
            }
            _ = tick.tick() => {
                match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return "a ping on the subscription failed",
                    Err(_) => return "a ping on the subscription went unanswered",
                }
            }
        }
    }
}

/// What one message on the channel announces.
#[derive(Debug, PartialEq, Eq)]
enum Announcement {
    /// `EXPIRY JTI`.
    Token(Revoked),
    /// `cutoff KIND AT SUBJECT`.
    Cutoff(Cutoff),
}

fn parse(payload: &str) -> Option<Announcement> {
    if let Some(rest) = payload.strip_prefix("cutoff ") {
        let mut parts = rest.splitn(3, ' ');
        let kind = CutoffKind::parse(parts.next()?)?;
        let at = UnixTime(parts.next()?.parse().ok()?);
        let subject = parts.next().filter(|s| !s.is_empty())?;
        return Some(Announcement::Cutoff(Cutoff {
            kind,
            subject: subject.to_owned(),
            at,
        }));
    }
    let (exp, jti) = payload.split_once(' ')?;
    Some(Announcement::Token(Revoked {
        jti: TokenId::parse(jti).ok()?,
        expires_at: UnixTime(exp.parse().ok()?),
    }))
}

#[async_trait]
impl RevocationFeed for RedisStore {
    async fn publish(&self, revoked: &Revoked) -> Result<(), StoreError> {
        // Entries that expired before any live token was issued are dropped on the way: a
        // token expiring `MAX_SECS` before this one cannot be live (clock-free pruning).
        let stale = revoked.expires_at.0 - AccessTokenLifetime::MAX_SECS;
        self.record_and_announce(
            self.revoked_key(),
            &[],
            revoked.expires_at.0,
            revoked.jti.as_str(),
            stale,
            format!("{} {}", revoked.expires_at.0, revoked.jti.as_str()),
        )
        .await
    }

    async fn publish_cutoff(&self, cutoff: &Cutoff) -> Result<(), StoreError> {
        // A cutoff only matters for tokens issued up to it, which expire at most `MAX_SECS`
        // later; a deleted client's cutoff is at most `MAX_SECS` ahead of now. So cutoffs
        // more than two lifetimes below this one can be dropped on the way (clock-free).
        // `GT`: a cutoff is only ever raised.
        let stale = cutoff.at.0 - 2 * AccessTokenLifetime::MAX_SECS;
        let kind = cutoff.kind.as_str();
        self.record_and_announce(
            self.cutoffs_key(),
            &["GT"],
            cutoff.at.0,
            &format!("{kind} {}", cutoff.subject),
            stale,
            format!("cutoff {kind} {} {}", cutoff.at.0, cutoff.subject),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse_and_junk_does_not() {
        let jti = TokenId::generate().unwrap();
        let Some(Announcement::Token(r)) = parse(&format!("1800000000 {}", jti.as_str())) else {
            panic!("a token announcement")
        };
        assert_eq!(r.jti, jti);
        assert_eq!(r.expires_at, UnixTime(1_800_000_000));
        assert_eq!(
            parse("cutoff client 1800000000 svc-42"),
            Some(Announcement::Cutoff(Cutoff {
                kind: CutoffKind::Client,
                subject: "svc-42".into(),
                at: UnixTime(1_800_000_000),
            }))
        );
        for junk in [
            "",
            "1800000000",
            "x abc",
            "1 a b",
            "1 \u{0}",
            "cutoff",
            "cutoff client 1800000000",
            "cutoff client 1800000000 ",
            "cutoff nobody 1800000000 x",
            "cutoff subject soon x",
        ] {
            assert!(parse(junk).is_none(), "{junk:?}");
        }
    }
}
