//! The shared state of every handler.
//!
//! It imports no handler module: handlers depend on the state, never the other way round.

use std::ops::Deref;
use std::sync::Arc;

use deedbolt_core::clock::Clock;
use deedbolt_core::grant::TokenPolicy;
use deedbolt_core::ports::{
    ClientStore, FlowStore, Health, PushedRequestStore, RefreshStore, UserStore,
};
use deedbolt_core::profile::Profile;
use deedbolt_core::refresh::RefreshPolicy;
use deedbolt_core::revocation::RevocationList;
use deedbolt_core::secret::SecretHasher;
use deedbolt_core::throttle::LoginThrottleStore;
use deedbolt_core::user::PasswordHasher;
use deedbolt_guard::{Guard, Verifier};
use deedbolt_proptech::store::CrmStore;

use crate::bff::session::Bff;
use crate::keys::KeyRing;
use crate::metrics::{Metrics, MetricsToken};
use crate::oauth::token::grace::GraceCache;
use crate::runtime::audit::AuditLog;
use crate::runtime::security::Security;
use crate::web::cookies::CookiePolicy;
use crate::web::rate_limit::RateLimits;

/// What the composition root hands to the HTTP layer: ports as trait objects, never a
/// concrete backend.
pub struct Services {
    /// Registered clients.
    pub clients: Arc<dyn ClientStore>,
    /// The PropTech resources (properties, tenants, ledger, maintenance).
    pub crm: Arc<dyn CrmStore>,
    /// Backend liveness, for `/readyz`.
    pub health: Arc<dyn Health>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Client-secret hashing.
    pub hasher: Arc<SecretHasher>,
    /// Signing and verification keys.
    pub keys: Arc<KeyRing>,
    /// Issuer, audience and lifetimes.
    pub policy: TokenPolicy,
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Authorization-code flow state.
    pub flow: Arc<dyn FlowStore>,
    /// Pushed authorization requests (RFC 9126).
    pub pushed: Arc<dyn PushedRequestStore>,
    /// The security profile enforced (`--profile`): its rules are asked where they apply.
    pub profile: Profile,
    /// Whether every client must push its authorization requests (`--require-par`, or
    /// the profile requires it); otherwise only clients registered with
    /// `require_pushed_authorization_requests` must.
    pub require_par: bool,
    /// User passwords (argon2id; run off the async workers).
    pub passwords: Arc<PasswordHasher>,
    /// Revoked access tokens.
    pub revocations: Arc<RevocationList>,
    /// Tells the other instances of revocations made here.
    pub revocation_feed: Arc<dyn deedbolt_core::revocation::RevocationFeed>,
    /// Failed-login limits.
    pub login_throttle: Arc<dyn LoginThrottleStore>,
    /// Refresh-token families and operator cutoffs.
    pub refresh: Arc<dyn RefreshStore>,
    /// Refresh-token lifetimes and grace period.
    pub refresh_policy: RefreshPolicy,
    /// Answers to recent rotations, for retries within the grace period.
    pub grace: Arc<dyn deedbolt_core::grace::GraceStore>,
    /// Single-use values seen (DPoP proof and client-assertion `jti`s): shared through
    /// Redis when configured, in-process otherwise.
    pub replay: Arc<dyn deedbolt_core::ports::ReplayCache>,
    /// Rate limits.
    pub limits: RateLimits,
    /// Where limiter state lives.
    pub limiter: Arc<dyn deedbolt_core::ratelimit::RateLimitStore>,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The audit log.
    pub audit: AuditLog,
    /// Audit storage, for searches (the admin API).
    pub audit_store: Arc<dyn deedbolt_core::ports::AuditStore>,
    /// Alerts, for the admin API and the webhook.
    pub alerts: Arc<dyn deedbolt_core::ports::AlertStore>,
    /// The detectors.
    pub security: Arc<Security>,
    /// The backend-for-frontend, if configured.
    pub bff: Option<Arc<Bff>>,
    /// The token that reads `/metrics`, if configured.
    pub metrics_token: Option<MetricsToken>,
    /// DPoP proof checks and server nonces (RFC 9449), at `/token` and the API.
    pub dpop: deedbolt_guard::dpop::DpopVerifier,
    /// Initial access tokens of dynamic client registration.
    pub registration_tokens: Arc<dyn deedbolt_core::ports::RegistrationTokenStore>,
    /// How `/register` admits and validates registrations.
    pub registration: deedbolt_core::registration::RegistrationSettings,
    /// `private_key_jwt` clients' keys fetched from their `jwks_uri`, cached.
    pub client_keys: Arc<crate::oauth::client_keys::ClientKeys>,
    /// The origins whose browser apps may call discovery, the JWKS, `/token`, `/revoke`
    /// and `/userinfo` (none by default).
    pub cors: crate::web::cors::CorsOrigins,
    /// The mutual-TLS listener (RFC 8705), if one runs.
    pub mtls: Option<crate::oauth::mtls::MtlsEndpoints>,
}

impl Services {
    /// The client authentication methods the token endpoint accepts: the secret methods,
    /// `private_key_jwt` and `none`, the two certificate methods when a mutual-TLS listener
    /// runs, less what the security profile forbids. Discovery publishes exactly these as
    /// `token_endpoint_auth_methods_supported`, and `/register` registers only these.
    pub fn token_auth_methods(&self) -> Vec<deedbolt_core::client::AuthMethod> {
        use deedbolt_core::client::AuthMethod;
        let mut methods = vec![
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::PrivateKeyJwt,
            AuthMethod::None,
        ];
        if self.mtls.is_some() {
            methods.extend([
                AuthMethod::TlsClientAuth,
                AuthMethod::SelfSignedTlsClientAuth,
            ]);
        }
        methods.retain(|m| self.profile.allows_auth_method(*m));
        methods
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

/// Handler state: the services plus what is derived from them once at start-up.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// The services.
    pub services: Services,
    /// The guard protecting the API.
    pub guard: Guard,
    /// How cookies are named and flagged (from the issuer's scheme).
    pub cookies: CookiePolicy,
    /// Answers given to refresh requests, kept for the reuse grace period.
    pub grace: GraceCache,
    /// The backend-for-frontend, if configured.
    pub bff: Option<Arc<Bff>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("cookies", &self.cookies)
            .finish_non_exhaustive()
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state and the guard.
    pub fn new(mut services: Services) -> Self {
        // Registration accepts exactly what the token endpoint does (and discovery says).
        services.registration.policy.auth_methods = services.token_auth_methods();
        services.registration.policy.certificate_bound_tokens = services.mtls.is_some();
        services.registration.policy.profile = services.profile;
        let verifier = Verifier::new(
            services.policy.issuer.clone(),
            services.policy.audience.clone(),
            services.keys.verifying(),
            services.clock.clone(),
        )
        .with_revocations(services.revocations.clone());
        AppState(Arc::new(Inner {
            guard: Guard::new(verifier).with_dpop(
                services.dpop.clone(),
                services.replay.clone(),
                services.policy.issuer.clone(),
            ),
            cookies: CookiePolicy::for_issuer(&services.policy.issuer),
            grace: GraceCache::new(services.grace.clone()),
            bff: services.bff.clone(),
            services,
        }))
    }
}
