//! [`TokenCache`]: a token kept until shortly before it expires, then fetched again, with
//! concurrent callers sharing one fetch.
//!
//! Made for machine clients (the client-credentials grant, [`ClientCredentialsSource`]):
//! every outgoing API call asks the cache, and the token endpoint sees one request per
//! token lifetime instead of one per call. Any other way of getting a token can be cached
//! by implementing [`TokenSource`].
//!
//! # Single flight
//!
//! When the token needs renewing, the first caller fetches while holding a
//! `tokio::sync::Mutex`; callers arriving meanwhile wait on that mutex and then find the
//! fresh token, so they do not fetch again. The token itself sits behind a std mutex that
//! is held only to copy an `Arc`, never across an `.await`. If the fetch fails, each
//! waiting caller tries in turn (one at a time) and gets its own error.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::client::OAuthClient;
use crate::clock::{self, Clock, SharedClock};
use crate::error::ClientError;
use crate::token::TokenSet;

/// How long before expiry a cached token is renewed unless configured otherwise: 60
/// seconds, enough for clock skew and the request that will carry the token.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);

/// Where a [`TokenCache`] gets a new token.
pub trait TokenSource: Send + Sync {
    /// Fetches a new token.
    fn fetch(&self) -> impl Future<Output = Result<TokenSet, ClientError>> + Send;
}

/// The client-credentials grant of an [`OAuthClient`], for a fixed scope.
#[derive(Debug, Clone)]
pub struct ClientCredentialsSource {
    client: OAuthClient,
    scope: Option<String>,
}

impl ClientCredentialsSource {
    /// Tokens for `scope` (or, if `None`, the client's registered scopes).
    pub fn new(client: OAuthClient, scope: Option<&str>) -> ClientCredentialsSource {
        ClientCredentialsSource {
            client,
            scope: scope.map(str::to_owned),
        }
    }
}

impl TokenSource for ClientCredentialsSource {
    async fn fetch(&self) -> Result<TokenSet, ClientError> {
        self.client.client_credentials(self.scope.as_deref()).await
    }
}

/// A cached token from a [`TokenSource`], renewed `skew` before it expires.
///
/// ```no_run
/// # async fn f(client: deedbolt_client::OAuthClient) -> Result<(), deedbolt_client::ClientError> {
/// use deedbolt_client::TokenCache;
///
/// let cache = TokenCache::client_credentials(client, Some("property:read"));
/// let token = cache.get().await?; // fetched
/// let again = cache.get().await?; // the same token, no request
/// # let _ = (token, again);
/// # Ok(()) }
/// ```
pub struct TokenCache<S> {
    source: S,
    skew: Duration,
    clock: SharedClock,
    /// The current token. A std mutex: held only to clone or replace the `Arc`.
    current: Mutex<Option<Arc<TokenSet>>>,
    /// Held by the one caller fetching a new token (across the fetch's `.await`).
    fetching: tokio::sync::Mutex<()>,
}

impl TokenCache<ClientCredentialsSource> {
    /// A cache of client-credentials tokens of `client` for `scope`.
    pub fn client_credentials(
        client: OAuthClient,
        scope: Option<&str>,
    ) -> TokenCache<ClientCredentialsSource> {
        TokenCache::new(ClientCredentialsSource::new(client, scope))
    }
}

impl<S: TokenSource> TokenCache<S> {
    /// An empty cache over `source`, with [`DEFAULT_SKEW`] and the system clock.
    pub fn new(source: S) -> TokenCache<S> {
        TokenCache {
            source,
            skew: DEFAULT_SKEW,
            clock: clock::system(),
            current: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The same, renewing tokens `skew` before they expire.
    pub fn with_skew(mut self, skew: Duration) -> TokenCache<S> {
        self.skew = skew;
        self
    }

    /// The same, reading the time from `clock`.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> TokenCache<S> {
        self.clock = Arc::new(clock);
        self
    }

    /// The cached token if it is good for at least `skew` more, else a new one (one fetch
    /// shared by every concurrent caller).
    pub async fn get(&self) -> Result<Arc<TokenSet>, ClientError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _fetching = self.fetching.lock().await;
        // Someone may have fetched while we waited.
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let token = Arc::new(self.source.fetch().await?);
        *self.lock() = Some(token.clone());
        Ok(token)
    }

    /// Drops `stale` from the cache if it is still the cached token (for example after a
    /// resource server answered 401 `invalid_token`), so the next [`TokenCache::get`]
    /// fetches. A token that was already replaced is left alone.
    pub fn invalidate(&self, stale: &Arc<TokenSet>) {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, stale)) {
            *current = None;
        }
    }

    /// Drops whatever token is cached.
    pub fn clear(&self) {
        *self.lock() = None;
    }

    fn fresh(&self) -> Option<Arc<TokenSet>> {
        let now = self.clock.now();
        self.lock()
            .as_ref()
            .filter(|t| !t.needs_refresh(now, self.skew))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<TokenSet>>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S> fmt::Debug for TokenCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::clock::ManualClock;
    use crate::token::Secret;

    /// Hands out `t1`, `t2`, … each valid for `lifetime` from the clock's now, after
    /// `delay`; fails instead while `fail` is set.
    struct Counting {
        calls: AtomicUsize,
        clock: ManualClock,
        lifetime: Duration,
        delay: Duration,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Counting {
        fn new(clock: &ManualClock) -> Arc<Counting> {
            Arc::new(Counting {
                calls: AtomicUsize::new(0),
                clock: clock.clone(),
                lifetime: Duration::from_secs(900),
                delay: Duration::ZERO,
                fail: false.into(),
            })
        }
    }

    impl TokenSource for Arc<Counting> {
        async fn fetch(&self) -> Result<TokenSet, ClientError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(ClientError::Status { status: 503 });
            }
            Ok(TokenSet {
                access_token: Secret::new(format!("t{n}")),
                token_type: "Bearer".into(),
                expires_at: self.clock.now() + self.lifetime,
                refresh_token: None,
                id_token: None,
                scope: None,
            })
        }
    }

    fn clock() -> ManualClock {
        ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    }

    #[tokio::test]
    async fn caches_until_skew_before_expiry() {
        let clock = clock();
        let source = Counting::new(&clock);
        let cache = TokenCache::new(source.clone()).with_clock(clock.clone());
        assert_eq!(cache.get().await.unwrap().access_token.expose(), "t1");
        clock.advance(Duration::from_secs(839));
        assert_eq!(cache.get().await.unwrap().access_token.expose(), "t1");
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
        // 900 s lifetime, 60 s skew: renewed from 840 s on.
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.get().await.unwrap().access_token.expose(), "t2");
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn skew_is_configurable() {
        let clock = clock();
        let source = Counting::new(&clock);
        let cache = TokenCache::new(source.clone())
            .with_clock(clock.clone())
            .with_skew(Duration::from_secs(300));
        cache.get().await.unwrap();
        clock.advance(Duration::from_secs(600));
        assert_eq!(cache.get().await.unwrap().access_token.expose(), "t2");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_share_one_fetch() {
        let clock = clock();
        let source = Arc::new(Counting {
            delay: Duration::from_millis(100),
            ..Arc::into_inner(Counting::new(&clock)).unwrap()
        });
        let cache = Arc::new(TokenCache::new(source.clone()).with_clock(clock.clone()));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await.unwrap() })
            })
            .collect();
        let mut tokens = Vec::new();
        for t in tasks {
            tokens.push(t.await.unwrap());
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
        assert!(tokens.iter().all(|t| Arc::ptr_eq(t, &tokens[0])));
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let clock = clock();
        let source = Counting::new(&clock);
        let cache = TokenCache::new(source.clone()).with_clock(clock.clone());
        source.fail.store(true, Ordering::SeqCst);
        assert!(matches!(
            cache.get().await,
            Err(ClientError::Status { status: 503 })
        ));
        source.fail.store(false, Ordering::SeqCst);
        assert_eq!(cache.get().await.unwrap().access_token.expose(), "t2");
    }

    #[tokio::test]
    async fn invalidate_drops_only_the_stale_token() {
        let clock = clock();
        let source = Counting::new(&clock);
        let cache = TokenCache::new(source.clone()).with_clock(clock.clone());
        let t1 = cache.get().await.unwrap();
        cache.invalidate(&t1);
        let t2 = cache.get().await.unwrap();
        assert_eq!(t2.access_token.expose(), "t2");
        // A second report about t1 (e.g. from a slower request) keeps t2.
        cache.invalidate(&t1);
        assert!(Arc::ptr_eq(&cache.get().await.unwrap(), &t2));
        cache.clear();
        assert_eq!(cache.get().await.unwrap().access_token.expose(), "t3");
    }
}
