//! The composition root: opens storage, loads keys, picks the backends once, binds the
//! listener and runs the server until a shutdown signal.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use deedbolt_core::cache::CachedClients;
use deedbolt_core::clock::{Clock, SystemClock};
use deedbolt_core::grace::{GraceStore, MemoryGrace};
use deedbolt_core::grant::TokenPolicy;
use deedbolt_core::ids::KeyId;
use deedbolt_core::jose::SigningAlg;
use deedbolt_core::keyring::KeyVault;
use deedbolt_core::ports::ReplayCache;
use deedbolt_core::ports::{AllHealthy, FlowStore, Health};
use deedbolt_core::ratelimit::{MemoryRateLimits, RateLimitStore};
use deedbolt_core::replay::MemoryReplayCache;
use deedbolt_core::revocation::{RevocationFeed, RevocationList, StoreSyncOnly};
use deedbolt_core::seal::MasterKey;
use deedbolt_core::secret::SecretHasher;
use deedbolt_core::throttle::{LoginThrottle, LoginThrottleStore};
use deedbolt_core::user::PasswordHasher;
use deedbolt_http::runtime::audit::AuditLog;
use deedbolt_http::runtime::security::Security;
use deedbolt_http::runtime::webhook::Webhook;
use deedbolt_http::{AppState, KeyRing, Services};
use tokio::net::TcpListener;

use crate::config::{CommonSettings, ServeSettings};
use crate::storage::Store;

/// The most clients the token endpoint keeps in memory.
const CLIENT_CACHE_CAPACITY: usize = 100_000;

/// The database file inside the data directory (when no PostgreSQL URL is configured).
pub const DB_FILE: &str = crate::storage::DB_FILE;

/// Opens the configured storage backend (see [`crate::storage::open`]).
pub async fn open_store(common: &CommonSettings) -> anyhow::Result<Store> {
    crate::storage::open(&common.database, &common.data_dir).await
}

/// Says loudly that keys are not encrypted at rest.
pub fn warn_development_mode(data_dir: &Path) {
    tracing::warn!(
        data_dir = %data_dir.display(),
        "DEVELOPMENT MODE: DEEDBOLT_MASTER_KEY is not set, so private signing keys are stored \
         UNENCRYPTED in the data directory. Set DEEDBOLT_MASTER_KEY (see `deedbolt keys \
         generate-master-key`) before using this server for anything real."
    );
}

/// Whether `serve` runs the demo (`--demo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demo {
    /// A plain server.
    Off,
    /// Seed the demo on first start and run the demo app with the settings stored in the
    /// data directory (see [`crate::demo::bff_settings`]).
    On,
}

/// The task that keeps this instance subscribed to revocations announced by the others.
type FeedTask = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A built, bound, not yet running server.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    /// The listener serving only `/metrics`, if configured.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    /// TLS on the main listener, if configured.
    tls: Option<crate::tls::Tls>,
    /// The mutual-TLS listener and its TLS, if configured.
    mtls_listener: Option<(TcpListener, SocketAddr, crate::tls::Tls)>,
    issuer: String,
    state: AppState,
    store: Store,
    vault: Arc<KeyVault>,
    keys: Arc<KeyRing>,
    clients: Arc<CachedClients>,
    revocations: Arc<RevocationList>,
    feed_task: Option<FeedTask>,
    security: Arc<Security>,
    audit_rx: tokio::sync::mpsc::Receiver<deedbolt_core::audit::AuditRecord>,
    webhook: Option<Webhook>,
    metrics: Arc<deedbolt_http::metrics::Metrics>,
    settings: ServeSettings,
    clock: Arc<dyn Clock>,
    /// What `--demo` seeded on this start, until the CLI has shown it.
    demo_seeded: Option<crate::demo::Seeded>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens storage, ensures a signing key, binds the listener.
    pub async fn build(settings: ServeSettings, master: Option<MasterKey>) -> anyhow::Result<Self> {
        Self::build_with(settings, master, Demo::Off).await
    }

    /// Like [`Application::build`]; with [`Demo::On`] also seeds the demo (on a data
    /// directory without it) and runs the demo app with its stored settings, unless the
    /// backend-for-frontend is configured explicitly.
    pub async fn build_with(
        settings: ServeSettings,
        master: Option<MasterKey>,
        demo: Demo,
    ) -> anyhow::Result<Self> {
        let data_dir: PathBuf = settings.common.data_dir.clone();
        for (name, limit) in [
            ("token", settings.limits.token),
            ("refresh", settings.limits.refresh),
            ("API", settings.limits.api),
            ("login", settings.limits.login),
            ("authorize", settings.limits.authorize),
        ] {
            if limit.is_none() {
                tracing::warn!(
                    limit = name,
                    "rate limit is OFF; set it to COUNT/WINDOW to protect this endpoint"
                );
            }
        }
        if master.is_none() {
            warn_development_mode(&data_dir);
        }
        let store = open_store(&settings.common).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let vault = Arc::new(KeyVault::new(store.clone(), master.map(Arc::new)));
        for (alg, kid) in vault
            .ensure_current(clock.now())
            .await
            .context("cannot create a signing key")?
        {
            tracing::info!(%kid, %alg, "created a new signing key");
        }
        let loaded = vault
            .load(clock.now())
            .await
            .context("cannot load signing keys")?;
        if vault.is_sealing() && loaded.unsealed > 0 {
            tracing::warn!(
                count = loaded.unsealed,
                "some signing keys were stored before a master key was set and are not \
                 encrypted; run `deedbolt keys rotate` and let them expire"
            );
        }
        let keys = Arc::new(KeyRing::new(&loaded, settings.signing_alg)?);
        let pepper = vault
            .pepper()
            .await
            .context("cannot load the client-secret pepper")?;

        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let metrics_listener = match settings.metrics_listen {
            Some(at) => {
                let l = TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {at}"))?;
                let bound = l.local_addr()?;
                Some((l, bound))
            }
            None => None,
        };
        // TLS: the server identities are loaded (and checked) before anything is served.
        let tls = match &settings.tls {
            Some(files) => Some(crate::tls::Tls::server_only(
                crate::tls::ServerIdentity::load(&files.cert, &files.key)?,
            )),
            None => None,
        };
        let mtls_listener = match &settings.mtls {
            Some(m) => {
                let identity = crate::tls::ServerIdentity::load(&m.identity.cert, &m.identity.key)?;
                let policy = crate::tls::OptionalClientCert::new(m.client_ca.as_deref())?;
                let l = TcpListener::bind(m.listen)
                    .await
                    .with_context(|| format!("cannot listen for mTLS on {}", m.listen))?;
                let bound = l.local_addr()?;
                Some((l, bound, crate::tls::Tls::mutual(identity, policy)))
            }
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = settings
            .issuer
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"));
        let mtls_base_url =
            settings
                .mtls
                .as_ref()
                .zip(mtls_listener.as_ref())
                .map(|(m, (_, bound, _))| {
                    m.base_url
                        .clone()
                        .unwrap_or_else(|| format!("https://{bound}"))
                });
        // The mTLS listener's requests carry its public URL: the htu of DPoP proofs sent
        // to its endpoint aliases.
        let mtls_listener = mtls_listener.map(|(l, bound, tls)| match &mtls_base_url {
            Some(url) => (l, bound, tls.with_listener_base(url)),
            None => (l, bound, tls),
        });
        let audience = settings
            .audience
            .clone()
            .unwrap_or_else(|| format!("{issuer}/api"));
        let store_arc = store.clone();
        // Three independent start-up steps at once: the revocation list (the longest, on a
        // data directory with many revoked tokens), the client cache and the password
        // hasher (one argon2id hash, on the blocking pool).
        let revocations = Arc::new(RevocationList::new());
        let (clients, (), passwords) = tokio::try_join!(
            async {
                CachedClients::new(store_arc.clone(), CLIENT_CACHE_CAPACITY)
                    .await
                    .context("cannot read the client change counter")
            },
            async {
                revocations
                    .sync(store_arc.as_ref(), clock.now())
                    .await
                    .context("cannot load the revocation list")?;
                revocations
                    .sync_cutoffs(store_arc.as_ref(), clock.now())
                    .await
                    .context("cannot load revocation cutoffs")?;
                anyhow::Ok(())
            },
            async {
                tokio::task::spawn_blocking(PasswordHasher::new)
                    .await
                    .context("cannot start the password hasher")?
                    .context("cannot start the password hasher")
            },
        )?;
        let clients = Arc::new(clients);
        let passwords = Arc::new(passwords);
        // Advice for the operator, off the start-up path: it reads every client.
        let (advice_store, profile) = (store_arc.clone(), settings.common.profile);
        tokio::spawn(async move {
            if let Err(e) =
                warn_about_clients_outside_the_profile(advice_store.as_ref(), profile).await
            {
                tracing::warn!(error = %e, "cannot check the clients against the profile");
            }
        });
        // The shared fast state, chosen once: Redis when configured (several instances),
        // otherwise in this process.
        let shared = match &settings.redis {
            Some(r) => {
                let redis = deedbolt_store_redis::RedisStore::connect(r.url.expose(), &r.prefix)
                    .await
                    .with_context(|| format!("cannot use Redis at {}", r.url))?;
                tracing::info!(url = %r.url, prefix = %r.prefix, "shared state on Redis");
                Some(redis)
            }
            None => None,
        };
        let limiter: Arc<dyn RateLimitStore> = match &shared {
            Some(redis) => Arc::new(redis.clone()),
            None => Arc::new(MemoryRateLimits::new()),
        };
        // Revocations reach every instance at once through Redis; without it, through the
        // store sync only.
        let (revocation_feed, feed_task): (Arc<dyn RevocationFeed>, Option<FeedTask>) =
            match &shared {
                Some(redis) => (
                    Arc::new(redis.clone()),
                    Some(Box::pin(
                        redis
                            .revocation_feed(revocations.clone())
                            .await
                            .context("cannot subscribe to revocations on Redis")?,
                    )),
                ),
                None => (Arc::new(StoreSyncOnly), None),
            };
        // Per account and IP: the login limit; per IP: four times it (a shared NAT has
        // many users); per account over all IPs: ten times it.
        let local_throttle = match settings.limits.login {
            Some(l) => LoginThrottle::from_limit(i64::from(l.window_secs), l.count as usize),
            None => LoginThrottle::unlimited(),
        };
        let login_throttle: Arc<dyn LoginThrottleStore> = match &shared {
            Some(redis) => Arc::new(redis.login_throttle(local_throttle.limits())),
            None => Arc::new(local_throttle),
        };
        let grace: Arc<dyn GraceStore> = match &shared {
            Some(redis) => Arc::new(redis.clone()),
            None => Arc::new(MemoryGrace::default()),
        };
        let replay: Arc<dyn ReplayCache> = match &shared {
            Some(redis) => Arc::new(redis.clone()),
            None => Arc::new(MemoryReplayCache::new(clock.clone())),
        };
        let health: Arc<dyn Health> = match &shared {
            Some(redis) => Arc::new(AllHealthy(vec![store_arc.clone(), Arc::new(redis.clone())])),
            None => store_arc.clone(),
        };
        let metrics = Arc::new(deedbolt_http::metrics::Metrics::default());
        let (audit, audit_rx) = AuditLog::new(metrics.clone());
        let security = Arc::new(Security::new(
            settings.detection,
            store_arc.clone(),
            store_arc.clone(),
            revocations.clone(),
            revocation_feed.clone(),
            audit.clone(),
            metrics.clone(),
        ));
        // Built here, not in `run_until`, so a client that cannot be built stops the start.
        let webhook = settings
            .alert_webhook
            .as_ref()
            .map(|w| Webhook::new(w, store_arc.clone(), clock.clone()))
            .transpose()?;
        security
            .load_history()
            .await
            .context("cannot load the scope history")?;
        let hasher = Arc::new(SecretHasher::new(&pepper));
        // DPoP server nonces under a key derived from the stored (sealed) pepper, so every
        // instance issues and accepts the same ones; proofs are checked the same way at
        // /token and the API.
        let dpop = {
            use deedbolt_http::dpop::{DpopNonces, DpopVerifier};
            // The nonce key is there in both modes: with nonces off, a proof that carries
            // a nonce the server did not supply is still refused (RFC 9449 §8).
            // The profile's algorithms only (FAPI 2.0 SP §5.4.1: no RS256).
            let profile = settings.common.profile;
            DpopVerifier::new(clock.clone())
                .with_algs(|alg| profile.allows_jws_alg(alg))
                .with_nonces(
                    Arc::new(DpopNonces::new(
                        &pepper.derive_key(b"deedbolt dpop nonce v1"),
                    )),
                    settings.dpop_nonce,
                )
        };
        let mut demo_seeded = None;
        let bff_config = match (settings.bff.clone(), demo) {
            (Some(explicit), Demo::On) => {
                tracing::info!(
                    "--demo: the demo app runs with the explicitly configured DEEDBOLT_BFF_* \
                     settings, not the stored ones"
                );
                Some(explicit)
            }
            (Some(explicit), Demo::Off) => Some(explicit),
            (None, Demo::On) => {
                if !crate::demo::is_seeded(&store).await? {
                    demo_seeded = Some(crate::demo::seed(&store, &hasher).await?);
                    tracing::info!("demo portfolio, users and clients seeded");
                }
                Some(
                    crate::demo::bff_settings(
                        &store,
                        &vault,
                        &hasher,
                        &issuer,
                        deedbolt_http::bff::DEFAULT_REFRESH_BEFORE,
                    )
                    .await?,
                )
            }
            (None, Demo::Off) => None,
        };
        if let Some(b) = &bff_config {
            crate::bff_check::validate(&store, &hasher, b, &issuer).await?;
        }
        let bff = bff_config
            .map(|b| {
                deedbolt_http::bff::Bff::new(
                    deedbolt_http::bff::BffSettings {
                        client_id: b.client_id,
                        client_secret: b.client_secret,
                        cookie_keys: b.cookie_keys,
                        scope: b.scope,
                        refresh_before: b.refresh_before,
                    },
                    &issuer,
                    addr,
                )
                .map(Arc::new)
            })
            .transpose()
            .context("cannot set up the backend-for-frontend")?;
        let client_keys = Arc::new(
            deedbolt_http::oauth::client_keys::ClientKeys::new(
                &settings.outbound_roots,
                settings.outbound_networks,
            )
            .context("cannot set up fetching of client key sets")?,
        );
        let state = AppState::new(Services {
            dpop,
            client_keys,
            bff,
            metrics_token: settings.metrics_token.clone(),
            cors: settings.cors.clone(),
            mtls: mtls_base_url
                .map(|base_url| deedbolt_http::oauth::mtls::MtlsEndpoints { base_url }),
            registration_tokens: store_arc.clone(),
            registration: settings.registration.clone(),
            clients: clients.clone(),
            crm: store_arc.clone(),
            users: store_arc.clone(),
            flow: store_arc.clone(),
            pushed: store_arc.clone(),
            profile: settings.common.profile,
            require_par: settings.require_par,
            passwords,
            revocations: revocations.clone(),
            revocation_feed,
            login_throttle,
            grace,
            replay,
            limits: settings.limits,
            limiter,
            trusted_proxies: settings.trusted_proxies.clone(),
            metrics: metrics.clone(),
            audit: audit.clone(),
            audit_store: store_arc.clone(),
            alerts: store_arc.clone(),
            security: security.clone(),
            refresh: store_arc.clone(),
            refresh_policy: settings.refresh,
            health,
            clock: clock.clone(),
            hasher,
            keys: keys.clone(),
            policy: TokenPolicy {
                issuer: issuer.clone(),
                audience,
                lifetime: settings.access_token_lifetime,
            },
        });
        Ok(Application {
            listener,
            addr,
            metrics_listener,
            tls,
            mtls_listener,
            issuer,
            state,
            store,
            vault,
            keys,
            clients,
            revocations,
            feed_task,
            security,
            audit_rx,
            webhook,
            metrics,
            settings,
            clock,
            demo_seeded,
        })
    }

    /// What `--demo` seeded on this start (the users' one-time passwords), once.
    pub fn take_demo_seeded(&mut self) -> Option<crate::demo::Seeded> {
        self.demo_seeded.take()
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics listener's bound address, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, a)| *a)
    }

    /// The mutual-TLS listener's bound address, if there is one.
    pub fn mtls_addr(&self) -> Option<SocketAddr> {
        self.mtls_listener.as_ref().map(|(_, a, _)| *a)
    }

    /// The issuer identifier in force.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Serves until `shutdown` completes, then drains in-flight requests and closes storage.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let writer = tokio::spawn(deedbolt_http::runtime::audit::run_writer(
            self.audit_rx,
            self.store.clone(),
            self.metrics.clone(),
        ));
        let feed = self.feed_task.map(tokio::spawn);
        let refresher = tokio::spawn(sync_loop(Sync {
            security: self.security.clone(),
            passwords: self.state.services.passwords.clone(),
            audit_retention_secs: self.settings.audit_retention_secs,
            vault: self.vault.clone(),
            ring: self.keys.clone(),
            clients: self.clients.clone(),
            revocations: self.revocations.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            every: self.settings.key_refresh_interval,
        }));
        // Alerts wait in the store's outbox; the worker delivers what is due at once (alerts
        // left undelivered before a restart included), then whenever one is stored.
        let webhook = self
            .webhook
            .map(|w| tokio::spawn(w.run(self.security.alert_stored.clone())));
        // One shutdown signal for both listeners.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let metrics_addr = self.metrics_listener.as_ref().map(|(_, a)| *a);
        let metrics_server = self.metrics_listener.map(|(listener, _)| {
            let app = deedbolt_http::ops::metrics_router(self.state.clone());
            tokio::spawn(
                axum::serve(listener, app.into_make_service())
                    .with_graceful_shutdown(stopped(stop_rx.clone()))
                    .into_future(),
            )
        });
        if metrics_addr.is_none() && self.settings.metrics_token.is_none() {
            tracing::info!(
                "/metrics is not served: set --metrics-listen or DEEDBOLT_METRICS_TOKEN"
            );
        }
        tracing::info!(
            addr = %self.addr,
            metrics_addr = metrics_addr.map(|a| a.to_string()),
            issuer = %self.issuer,
            data_dir = %self.settings.common.data_dir.display(),
            "deedbolt is ready"
        );
        let stop_on_signal = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_on_signal.send(true);
        });
        let app = deedbolt_http::router(self.state);
        // The mutual-TLS listener serves the same application; its requests carry the
        // client certificate.
        let mtls_server = self.mtls_listener.map(|(listener, at, tls)| {
            tracing::info!(addr = %at, "mutual-TLS listener ready");
            let app = app.clone();
            let stop = stopped(stop_rx.clone());
            tokio::spawn(async move { tls.serve(listener, app, stop).await })
        });
        let served = match &self.tls {
            Some(tls) => tls.serve(self.listener, app, stopped(stop_rx)).await,
            None => axum::serve(
                self.listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopped(stop_rx))
            .await
            .map_err(anyhow::Error::from),
        };
        // Also when the main listener failed: the other listeners stop with it.
        let _ = stop_tx.send(true);
        if let Some(m) = mtls_server {
            match m.await {
                Ok(Err(e)) => tracing::error!(error = %e, "mTLS listener failed"),
                Err(e) => tracing::error!(error = %e, "mTLS listener task failed"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(m) = metrics_server {
            match m.await {
                Ok(Err(e)) => tracing::error!(error = %e, "metrics listener failed"),
                Err(e) => tracing::error!(error = %e, "metrics listener task failed"),
                Ok(Ok(())) => {}
            }
        }
        refresher.abort();
        let _ = refresher.await;
        if let Some(f) = feed {
            f.abort();
            let _ = f.await;
        }
        // A delivery cut short is not marked delivered: it is sent again after a restart.
        if let Some(w) = webhook {
            w.abort();
            let _ = w.await;
        }
        // Every handler, the sync loop and the detectors are gone, and with them every
        // audit sender: the writer drains what is queued and ends.
        drop(self.security);
        if tokio::time::timeout(std::time::Duration::from_secs(10), writer)
            .await
            .is_err()
        {
            tracing::error!("audit writer did not finish within 10 s");
        }
        self.store.close().await;
        tracing::info!("deedbolt stopped");
        served.context("server error")
    }
}

/// What the sync loop keeps fresh.
struct Sync {
    security: Arc<Security>,
    passwords: Arc<PasswordHasher>,
    audit_retention_secs: i64,
    vault: Arc<KeyVault>,
    ring: Arc<KeyRing>,
    clients: Arc<CachedClients>,
    revocations: Arc<RevocationList>,
    store: Store,
    clock: Arc<dyn Clock>,
    every: std::time::Duration,
}

/// Logs a warning for each client whose OpenID requests `profile` refuses: under fapi2,
/// clients with RS256 ID tokens (FAPI 2.0 SP §5.4.1), e.g. created before the profile
/// refused them, so the operator learns it at start rather than from a client's error.
/// Runs in the background after start-up: it reads every client.
async fn warn_about_clients_outside_the_profile(
    store: &dyn deedbolt_core::ports::ClientStore,
    profile: deedbolt_core::profile::Profile,
) -> anyhow::Result<()> {
    if profile.allows_jws_alg(SigningAlg::RS256.as_str()) {
        return Ok(());
    }
    let clients = store
        .list_clients()
        .await
        .context("cannot list the clients")?;
    for c in clients.iter().filter(|c| {
        c.scopes.contains(deedbolt_core::scope::Scope::Openid)
            && !profile.allows_jws_alg(c.id_token_alg.as_str())
    }) {
        tracing::warn!(
            client_id = %c.id,
            alg = %c.id_token_alg,
            "the {profile} profile refuses this client's OpenID requests: its ID tokens are {}; \
             change them with `deedbolt client set-id-token-alg {} ES256`",
            c.id_token_alg,
            c.id
        );
    }
    Ok(())
}

/// Picks up what other processes (the CLI, other instances) changed: reloads keys, so
/// rotations take effect without a restart and retired keys leave the JWKS on time;
/// clears the client cache when any client was changed or deleted elsewhere; pulls new
/// revocations; and prunes expired flow state.
async fn sync_loop(s: Sync) {
    let mut tick = tokio::time::interval(s.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut current: Vec<KeyId> = SigningAlg::ALL
        .iter()
        .map(|alg| s.ring.signer(*alg).kid().clone())
        .collect();
    loop {
        tick.tick().await;
        let now = s.clock.now();
        match s.clients.sync().await {
            Ok(true) => tracing::debug!("clients changed elsewhere; client cache cleared"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "cannot check for client changes"),
        }
        if let Err(e) = s.revocations.sync(s.store.as_ref(), now).await {
            tracing::error!(error = %e, "cannot sync the revocation list");
        }
        if let Err(e) = s.revocations.sync_cutoffs(s.store.as_ref(), now).await {
            tracing::error!(error = %e, "cannot sync revocation cutoffs");
        }
        if let Err(e) = FlowStore::prune_expired(s.store.as_ref(), now).await {
            tracing::error!(error = %e, "cannot prune expired flow state");
        }
        s.security.persist_usage(now).await;
        // The argon2 arenas (19 MiB a core) go back a minute after the last login.
        s.passwords.release_idle(std::time::Duration::from_secs(60));
        if let Err(e) = deedbolt_core::ports::AuditStore::prune_audit(
            s.store.as_ref(),
            now.minus_secs(s.audit_retention_secs),
        )
        .await
        {
            tracing::error!(error = %e, "cannot prune old audit records");
        }
        match s.vault.load(now).await {
            Ok(loaded) => {
                if let Err(e) = s.ring.install(&loaded) {
                    tracing::error!(error = %e, "cannot install reloaded keys");
                    continue;
                }
                for (alg, seen) in SigningAlg::ALL.into_iter().zip(current.iter_mut()) {
                    let kid = loaded.signers.get(alg).kid();
                    if kid != seen {
                        *seen = kid.clone();
                        tracing::info!(%kid, %alg, "signing key rotated in");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot reload signing keys"),
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}
