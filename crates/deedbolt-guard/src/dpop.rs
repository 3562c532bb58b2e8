//! DPoP proofs (RFC 9449): checking a `DPoP` request header, and stateless server nonces.
//!
//! Used by the authorization server at `/token` and by resource servers (this crate's
//! [`Guard`](crate::Guard)) alike. [`DpopVerifier::check`] applies RFC 9449 §4.3 in order:
//!
//! 1. exactly one `DPoP` header, holding a compact JWS (three base64url parts);
//! 2. the header's `typ` is `dpop+jwt`, its `alg` one of [`DPOP_SIGNING_ALGS`] (asymmetric
//!    only: `none` and HS* cannot be named) that the verifier accepts
//!    ([`DpopVerifier::with_algs`]), no `crit`;
//! 3. the `jwk` header member is a public key (no private members such as `d`) of the
//!    kind the `alg` needs, and the signature verifies with it;
//! 4. the claims have `jti`, `htm`, `htu` and `iat`; `htm` is the request method; `htu`
//!    is the request URI without query and fragment, both compared after normalisation
//!    ([`normalize_htu`]: scheme and host case, default port, dot segments, percent-encoding);
//! 5. `iat` lies within the acceptance window ([`DpopVerifier::DEFAULT_MAX_AGE_SECS`] in
//!    the past, [`DpopVerifier::DEFAULT_MAX_FUTURE_SECS`] in the future);
//! 6. when an access token is presented with the proof, `ath` is the base64url SHA-256 of
//!    that token;
//! 7. when the server requires nonces ([`NonceMode::Required`]), `nonce` is one the server
//!    issued recently ([`DpopNonces`]), else `use_dpop_nonce`; a proof that carries a
//!    `nonce` although none is required must carry a valid one too (§8: a nonce the
//!    server did not supply is refused), whenever the verifier has a nonce key;
//! 8. the `jti` has not been seen before within the window: a replay cache keyed by
//!    `dpop:` + thumbprint + `jti`, shared by every instance (the
//!    [`ReplayCache`](deedbolt_core::ports::ReplayCache) port).
//!
//! The outcome is the RFC 7638 thumbprint of the proof key ([`Jkt`]), which the
//! authorization server binds tokens to (`cnf.jkt`) and a resource server compares with the
//! token's `cnf.jkt`.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::{digest, hmac};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use deedbolt_core::clock::{Clock, UnixTime};
use deedbolt_core::jose::JwkParams;
use serde::Deserialize;

/// Every `alg` value a DPoP proof may be signed with. A verifier accepts these or the
/// subset it was configured with ([`DpopVerifier::with_algs`]), and advertises that in
/// `dpop_signing_alg_values_supported` and in `WWW-Authenticate: DPoP algs="..."`
/// ([`DpopVerifier::algs`]).
pub const DPOP_SIGNING_ALGS: [&str; 4] = ["ES256", "EdDSA", "PS256", "RS256"];

/// The `typ` a DPoP proof must carry (RFC 9449 §4.2).
pub const DPOP_TYP: &str = "dpop+jwt";

/// Proofs longer than this are refused before any parsing.
const MAX_PROOF_LEN: usize = 8 * 1024;

/// The longest `jti` accepted: it becomes part of a cache key.
const MAX_JTI_LEN: usize = 256;

/// The smallest RSA modulus accepted in a proof key, in bytes (2048 bits).
const MIN_RSA_MODULUS: usize = 256;

/// JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The RFC 7638 SHA-256 thumbprint of a DPoP proof key, base64url: the value of `cnf.jkt`
/// (RFC 9449 §6.1) and of the `dpop_jkt` authorization request parameter (§10).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Jkt(String);

impl Jkt {
    /// A thumbprint as found in a token's `cnf.jkt` or a `dpop_jkt` parameter; `None`
    /// unless it is 43 base64url characters (a SHA-256 digest).
    pub fn parse(s: &str) -> Option<Jkt> {
        (s.len() == 43 && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32))
            .then(|| Jkt(s.to_owned()))
    }

    /// The base64url thumbprint.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` (e.g. a token's `cnf.jkt`) names this key; constant-time.
    pub fn matches(&self, other: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), other.as_bytes())
            .is_ok()
    }
}

impl fmt::Display for Jkt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Jkt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jkt({})", self.0)
    }
}

/// Why a DPoP proof was refused. Every variant but [`DpopError::UseNonce`] is
/// `invalid_dpop_proof` on the wire (RFC 9449 §7.1, §12.2); the descriptions are fixed
/// texts that never echo the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// No `DPoP` header where one is required.
    #[error("a DPoP proof is required")]
    Missing,
    /// More than one `DPoP` header (§4.3 check 1).
    #[error("exactly one DPoP header is allowed")]
    Multiple,
    /// Not a compact JWS with JSON header and claims (§4.3 checks 2, 3).
    #[error("the DPoP proof is not a well-formed JWT")]
    Malformed,
    /// `typ` is not `dpop+jwt` (check 4).
    #[error("the DPoP proof typ must be dpop+jwt")]
    Type,
    /// `alg` is not an accepted asymmetric algorithm (check 5).
    #[error("the DPoP proof algorithm is not accepted")]
    Algorithm,
    /// The header has a `crit` member; no extension is understood here.
    #[error("the DPoP proof uses critical header extensions that are not understood")]
    Critical,
    /// No `jwk`, a private or unusable key, or one that does not fit `alg` (check 7).
    #[error("the DPoP proof jwk is missing, private or does not fit the algorithm")]
    Key,
    /// The signature does not verify with the `jwk` (check 6).
    #[error("the DPoP proof signature is invalid")]
    Signature,
    /// A required claim (`jti`, `htm`, `htu`, `iat`) is missing or mistyped (check 3).
    #[error("the DPoP proof lacks required claims")]
    Claims,
    /// `htm` is not the request method (check 8).
    #[error("the DPoP proof htm does not match the request method")]
    Method,
    /// `htu` is not the request URI (check 9).
    #[error("the DPoP proof htu does not match the request URI")]
    Uri,
    /// `iat` is outside the acceptance window (check 11).
    #[error("the DPoP proof is too old or issued in the future")]
    IssuedAt,
    /// The `jti` was used before (check 12, RFC 9449 §11.1).
    #[error("the DPoP proof was already used")]
    Replayed,
    /// `ath` is missing or is not the hash of the presented access token (check 10).
    #[error("the DPoP proof ath does not match the access token")]
    AccessTokenHash,
    /// The proof key is not the one the token or grant is bound to.
    #[error("the DPoP proof key does not match the key the token is bound to")]
    KeyMismatch,
    /// The server requires a nonce and the proof has none, or an expired or foreign one
    /// (§8, §9): `use_dpop_nonce`, answered with a fresh `DPoP-Nonce`.
    #[error("the DPoP proof must carry the nonce the server provides")]
    UseNonce,
    /// The replay cache cannot be reached: refused, fail closed.
    #[error("the DPoP proof cannot be checked for replay right now")]
    Unavailable,
}

impl DpopError {
    /// The RFC 9449 error code: `use_dpop_nonce` or `invalid_dpop_proof`.
    pub const fn code(self) -> &'static str {
        match self {
            DpopError::UseNonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }

    /// The fixed `error_description` (no quotes or backslashes, so it fits an auth-param).
    pub fn description(self) -> &'static str {
        match self {
            DpopError::Missing => "a DPoP proof is required",
            DpopError::Multiple => "exactly one DPoP header is allowed",
            DpopError::Malformed => "the DPoP proof is not a well-formed JWT",
            DpopError::Type => "the DPoP proof typ must be dpop+jwt",
            DpopError::Algorithm => "the DPoP proof algorithm is not accepted",
            DpopError::Critical => {
                "the DPoP proof uses critical header extensions that are not understood"
            }
            DpopError::Key => {
                "the DPoP proof jwk is missing, private or does not fit the algorithm"
            }
            DpopError::Signature => "the DPoP proof signature is invalid",
            DpopError::Claims => "the DPoP proof lacks required claims",
            DpopError::Method => "the DPoP proof htm does not match the request method",
            DpopError::Uri => "the DPoP proof htu does not match the request URI",
            DpopError::IssuedAt => "the DPoP proof is too old or issued in the future",
            DpopError::Replayed => "the DPoP proof was already used",
            DpopError::AccessTokenHash => "the DPoP proof ath does not match the access token",
            DpopError::KeyMismatch => {
                "the DPoP proof key does not match the key the token is bound to"
            }
            DpopError::UseNonce => "the DPoP proof must carry the nonce the server provides",
            DpopError::Unavailable => "the DPoP proof cannot be checked for replay right now",
        }
    }
}

/// Whether proofs must carry a server nonce (RFC 9449 §8 at the token endpoint, §9 at
/// resource servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonceMode {
    /// Nonces are not required and not handed out with answers; freshness rests on `iat`
    /// and the `jti` replay cache. A proof that carries a `nonce` anyway is still checked
    /// when the verifier has a nonce key (RFC 9449 §8): an invalid one is
    /// `use_dpop_nonce`, answered with a fresh nonce.
    #[default]
    Off,
    /// Every proof must carry a nonce issued by [`DpopNonces`] within its last two slots;
    /// otherwise `use_dpop_nonce` with a fresh `DPoP-Nonce` header.
    Required,
}

/// Stateless server nonces: an HMAC-SHA-256 over a time slot, valid for the current and
/// the previous slot. Every instance holding the same key issues and accepts the same
/// nonces, with nothing stored and nothing shared at run time.
pub struct DpopNonces {
    key: hmac::Key,
    slot_secs: i64,
}

impl fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopNonces")
            .field("slot_secs", &self.slot_secs)
            .finish_non_exhaustive()
    }
}

impl DpopNonces {
    /// The default slot: a nonce lives between 5 and 10 minutes.
    pub const DEFAULT_SLOT_SECS: i64 = 300;

    /// Nonces under a 256-bit secret (derive it from a server secret with a domain label;
    /// never reuse a key meant for something else as is).
    pub fn new(secret: &[u8; 32]) -> Self {
        DpopNonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            slot_secs: Self::DEFAULT_SLOT_SECS,
        }
    }

    /// Changes the slot length (10 s to 1 h).
    pub fn with_slot_secs(mut self, secs: i64) -> Self {
        self.slot_secs = secs.clamp(10, 3600);
        self
    }

    fn slot(&self, now: UnixTime) -> i64 {
        now.0.div_euclid(self.slot_secs)
    }

    fn tag(&self, slot: i64) -> hmac::Tag {
        let mut msg = Vec::with_capacity(24);
        msg.extend_from_slice(b"dpop-nonce");
        msg.extend_from_slice(&slot.to_be_bytes());
        hmac::sign(&self.key, &msg)
    }

    /// The nonce to hand out now (the `DPoP-Nonce` header value).
    pub fn current(&self, now: UnixTime) -> String {
        URL_SAFE_NO_PAD.encode(self.tag(self.slot(now)).as_ref())
    }

    /// Whether `nonce` was issued in the current or the previous slot (constant-time).
    pub fn is_valid(&self, nonce: &str, now: UnixTime) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let slot = self.slot(now);
        [slot, slot - 1].into_iter().any(|s| {
            let mut msg = Vec::with_capacity(24);
            msg.extend_from_slice(b"dpop-nonce");
            msg.extend_from_slice(&s.to_be_bytes());
            hmac::verify(&self.key, &msg, &bytes).is_ok()
        })
    }
}

/// The public base URL (scheme, host and port, no trailing slash) of the listener a
/// request arrived on, as a request extension. A server reachable under several public
/// URLs (deedbolt's mutual-TLS listener, advertised in `mtls_endpoint_aliases`, RFC 8705
/// §5) tags each request of such a listener with its URL; DPoP checks then take `htu` from
/// it rather than from the configured public base (RFC 9449 §4.3 check 9: `htu` is the
/// URI of the request the proof came with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerBase(String);

impl ListenerBase {
    /// The base URL `url` (a trailing slash is dropped).
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        ListenerBase(url.trim_end_matches('/').to_owned())
    }

    /// The base URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The public URL of `path` (which starts with `/`) on this listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

/// What a proof is checked against: the request it came with.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// The HTTP method (`htm`).
    pub method: &'a str,
    /// The request URI as the client addressed it: the public URL, not the bind address
    /// (`htu`). A query or fragment is ignored.
    pub uri: &'a str,
    /// The access token presented with the proof, if any (`ath`).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check; its `jti` is recorded in the replay cache.
#[derive(Debug, Clone)]
pub struct DpopProof {
    /// The thumbprint of the proof key.
    pub jkt: Jkt,
    /// The proof's `iat`.
    pub iat: UnixTime,
}

/// Checks DPoP proofs (see the [module docs](self)).
#[derive(Clone)]
pub struct DpopVerifier {
    clock: Arc<dyn Clock>,
    max_age_secs: i64,
    max_future_secs: i64,
    nonce_mode: NonceMode,
    nonces: Option<Arc<DpopNonces>>,
    /// The accepted `alg` values, a subset of [`DPOP_SIGNING_ALGS`] in its order.
    algs: Vec<&'static str>,
}

impl fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("max_age_secs", &self.max_age_secs)
            .field("max_future_secs", &self.max_future_secs)
            .field("nonce_mode", &self.nonce_mode)
            .field("algs", &self.algs)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ProofHeader {
    #[serde(default)]
    typ: Option<String>,
    alg: String,
    #[serde(default)]
    jwk: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

impl DpopVerifier {
    /// How old a proof may be by default (`iat` in the past).
    pub const DEFAULT_MAX_AGE_SECS: i64 = 60;
    /// How far in the future a proof's `iat` may lie by default (clock skew): 10 s, as
    /// FAPI 2.0 Security Profile §5.3.2.1 requires of every server ("shall accept JWTs with
    /// an `iat` value ... between 0 and 10 seconds in the future").
    pub const DEFAULT_MAX_FUTURE_SECS: i64 = 10;

    /// A verifier with the default window and no nonces.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        DpopVerifier {
            clock,
            max_age_secs: Self::DEFAULT_MAX_AGE_SECS,
            max_future_secs: Self::DEFAULT_MAX_FUTURE_SECS,
            nonce_mode: NonceMode::Off,
            nonces: None,
            algs: DPOP_SIGNING_ALGS.to_vec(),
        }
    }

    /// Accepts only the algorithms of [`DPOP_SIGNING_ALGS`] that `allowed` admits (e.g. a
    /// security profile's rule: `|alg| profile.allows_jws_alg(alg)`); proofs signed
    /// otherwise are refused like an unknown `alg`.
    pub fn with_algs(mut self, allowed: impl Fn(&str) -> bool) -> Self {
        self.algs = DPOP_SIGNING_ALGS
            .into_iter()
            .filter(|a| allowed(a))
            .collect();
        self
    }

    /// The algorithms accepted, for `dpop_signing_alg_values_supported` and the `algs`
    /// parameter of `DPoP` challenges.
    pub fn algs(&self) -> &[&'static str] {
        &self.algs
    }

    /// Changes the acceptance window for `iat`: `max_age_secs` in the past (1–600),
    /// `max_future_secs` in the future (0–60).
    pub fn with_window(mut self, max_age_secs: i64, max_future_secs: i64) -> Self {
        self.max_age_secs = max_age_secs.clamp(1, 600);
        self.max_future_secs = max_future_secs.clamp(0, 60);
        self
    }

    /// Checks nonces with `nonces`: with [`NonceMode::Required`] every proof must carry
    /// one and every answer hands out the next; with [`NonceMode::Off`] only a proof that
    /// carries a `nonce` is checked, and nonces are handed out only with `use_dpop_nonce`.
    pub fn with_nonces(mut self, nonces: Arc<DpopNonces>, mode: NonceMode) -> Self {
        self.nonces = Some(nonces);
        self.nonce_mode = mode;
        self
    }

    /// Whether proofs must carry a server nonce.
    pub fn nonce_mode(&self) -> NonceMode {
        self.nonce_mode
    }

    /// The nonce to send in a `DPoP-Nonce` header with every answer to a DPoP request
    /// now: only when nonces are required (RFC 9449 §8.2, §9).
    pub fn nonce(&self) -> Option<String> {
        match self.nonce_mode {
            NonceMode::Required => self.fresh_nonce(),
            NonceMode::Off => None,
        }
    }

    /// A fresh nonce, whenever the verifier has a nonce key (whatever the mode).
    pub fn fresh_nonce(&self) -> Option<String> {
        self.nonces.as_ref().map(|n| n.current(self.clock.now()))
    }

    /// The nonce to send with the refusal `error`: a fresh one for `use_dpop_nonce` (also
    /// when nonces are not required and the proof carried an invalid one), otherwise the
    /// one every answer carries ([`DpopVerifier::nonce`]).
    pub fn refusal_nonce(&self, error: DpopError) -> Option<String> {
        match error {
            DpopError::UseNonce => self.fresh_nonce(),
            _ => self.nonce(),
        }
    }

    /// Checks the proof in `values` (all `DPoP` header values of the request) against
    /// `request`, then records its `jti` in `replay`: every rule of RFC 9449 §4.3.
    pub async fn check<'a>(
        &self,
        values: impl Iterator<Item = &'a http::HeaderValue>,
        request: &DpopRequest<'_>,
        replay: &dyn deedbolt_core::ports::ReplayCache,
    ) -> Result<DpopProof, DpopError> {
        let (proof, jti) = self.verify_stateless(values, request)?;
        let key = format!("dpop:{}:{}", proof.jkt, jti);
        let until = proof.iat.plus_secs(self.max_age_secs + 1);
        match replay.first_use(&key, until).await {
            Ok(true) => Ok(proof),
            Ok(false) => Err(DpopError::Replayed),
            Err(e) => {
                tracing::error!(error = %e, "DPoP replay cache unavailable");
                Err(DpopError::Unavailable)
            }
        }
    }

    /// Every check but the replay cache; returns the proof and its `jti`.
    pub fn verify_stateless<'a>(
        &self,
        mut values: impl Iterator<Item = &'a http::HeaderValue>,
        request: &DpopRequest<'_>,
    ) -> Result<(DpopProof, String), DpopError> {
        let value = values.next().ok_or(DpopError::Missing)?;
        if values.next().is_some() {
            return Err(DpopError::Multiple);
        }
        let proof = value.to_str().map_err(|_| DpopError::Malformed)?.trim();
        if proof.len() > MAX_PROOF_LEN {
            return Err(DpopError::Malformed);
        }
        let mut parts = proof.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DpopError::Malformed);
        };
        let header: ProofHeader = decode_json(header_b64)?;
        match header.typ.as_deref() {
            Some(t) if t.eq_ignore_ascii_case(DPOP_TYP) => {}
            _ => return Err(DpopError::Type),
        }
        let alg = ProofAlg::parse(&header.alg)
            .filter(|_| self.algs.contains(&header.alg.as_str()))
            .ok_or(DpopError::Algorithm)?;
        if header.crit.is_some() {
            return Err(DpopError::Critical);
        }
        let jwk = header.jwk.ok_or(DpopError::Key)?;
        let (params, key) = public_key(&jwk, alg)?;
        let message = &proof[..header_b64.len() + 1 + claims_b64.len()];
        let verified =
            jsonwebtoken::crypto::verify(sig_b64, message.as_bytes(), &key, alg.jwt_alg())
                .map_err(|_| DpopError::Signature)?;
        if !verified {
            return Err(DpopError::Signature);
        }
        let claims: ProofClaims = decode_json(claims_b64).map_err(|_| DpopError::Claims)?;
        if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
            return Err(DpopError::Claims);
        }
        if claims.htm != request.method {
            return Err(DpopError::Method);
        }
        match (normalize_htu(&claims.htu), normalize_htu(request.uri)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return Err(DpopError::Uri),
        }
        let now = self.clock.now();
        let iat = UnixTime(claims.iat);
        if iat < now.minus_secs(self.max_age_secs) || iat > now.plus_secs(self.max_future_secs) {
            return Err(DpopError::IssuedAt);
        }
        if let Some(token) = request.access_token {
            let expected = access_token_hash(token);
            let ok = claims.ath.as_deref().is_some_and(|ath| {
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    ath.as_bytes(),
                    expected.as_bytes(),
                )
                .is_ok()
            });
            if !ok {
                return Err(DpopError::AccessTokenHash);
            }
        }
        // RFC 9449 §8: a nonce the server did not supply is refused, also when none is
        // required (the server can tell whenever it has a nonce key); §8, §9: when nonces
        // are required, a proof without one is refused too.
        let fresh = match (&self.nonces, claims.nonce.as_deref()) {
            (Some(nonces), Some(n)) => nonces.is_valid(n, now),
            (None, Some(_)) | (_, None) => self.nonce_mode == NonceMode::Off,
        };
        if !fresh {
            return Err(DpopError::UseNonce);
        }
        let jkt = Jkt(params.thumbprint());
        Ok((DpopProof { jkt, iat }, claims.jti))
    }
}

/// `base64url(SHA-256(token))`: the `ath` claim of a proof sent with `token` (RFC 9449 §4.2).
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, DpopError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| DpopError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| DpopError::Malformed)
}

/// The algorithms a proof may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProofAlg {
    Es256,
    EdDsa,
    Ps256,
    Rs256,
}

impl ProofAlg {
    fn parse(s: &str) -> Option<ProofAlg> {
        match s {
            "ES256" => Some(ProofAlg::Es256),
            "EdDSA" => Some(ProofAlg::EdDsa),
            "PS256" => Some(ProofAlg::Ps256),
            "RS256" => Some(ProofAlg::Rs256),
            _ => None,
        }
    }

    fn jwt_alg(self) -> jsonwebtoken::Algorithm {
        match self {
            ProofAlg::Es256 => jsonwebtoken::Algorithm::ES256,
            ProofAlg::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            ProofAlg::Ps256 => jsonwebtoken::Algorithm::PS256,
            ProofAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

/// The public key in a proof's `jwk` header, checked to be public and to fit `alg`.
fn public_key(
    jwk: &serde_json::Map<String, serde_json::Value>,
    alg: ProofAlg,
) -> Result<(JwkParams, jsonwebtoken::DecodingKey), DpopError> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(DpopError::Key);
    }
    let text = |name: &str| jwk.get(name).and_then(|v| v.as_str()).ok_or(DpopError::Key);
    // Each member must be canonical base64url of the right size: the thumbprint is
    // computed over these exact strings.
    let bytes = |name: &str| {
        let s = text(name)?;
        let b = URL_SAFE_NO_PAD.decode(s).map_err(|_| DpopError::Key)?;
        if URL_SAFE_NO_PAD.encode(&b) != s {
            return Err(DpopError::Key);
        }
        Ok::<_, DpopError>((s.to_owned(), b))
    };
    let kty = text("kty")?;
    if let Some(a) = jwk.get("alg").and_then(|v| v.as_str()) {
        if ProofAlg::parse(a) != Some(alg) {
            return Err(DpopError::Key);
        }
    }
    match (alg, kty) {
        (ProofAlg::Es256, "EC") => {
            if text("crv")? != "P-256" {
                return Err(DpopError::Key);
            }
            let (x, xb) = bytes("x")?;
            let (y, yb) = bytes("y")?;
            if xb.len() != 32 || yb.len() != 32 {
                return Err(DpopError::Key);
            }
            let key = jsonwebtoken::DecodingKey::from_ec_components(&x, &y)
                .map_err(|_| DpopError::Key)?;
            let params = JwkParams::Ec {
                crv: "P-256".into(),
                x,
                y,
            };
            Ok((params, key))
        }
        (ProofAlg::EdDsa, "OKP") => {
            if text("crv")? != "Ed25519" {
                return Err(DpopError::Key);
            }
            let (x, xb) = bytes("x")?;
            if xb.len() != 32 {
                return Err(DpopError::Key);
            }
            let key =
                jsonwebtoken::DecodingKey::from_ed_components(&x).map_err(|_| DpopError::Key)?;
            let params = JwkParams::Okp {
                crv: "Ed25519".into(),
                x,
            };
            Ok((params, key))
        }
        (ProofAlg::Ps256 | ProofAlg::Rs256, "RSA") => {
            let (n, nb) = bytes("n")?;
            let (e, eb) = bytes("e")?;
            let significant = nb.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS || nb.len() > 1024 || eb.is_empty() || eb.len() > 8 {
                return Err(DpopError::Key);
            }
            let key = jsonwebtoken::DecodingKey::from_rsa_components(&n, &e)
                .map_err(|_| DpopError::Key)?;
            Ok((JwkParams::Rsa { n, e }, key))
        }
        _ => Err(DpopError::Key),
    }
}

/// `htu` as compared (RFC 9449 §4.3 check 9, which asks for the syntax-based and
/// scheme-based normalisation of RFC 3986 §6.2.2–6.2.3): scheme and host in lower case,
/// the default port dropped, dot segments removed, an empty path as `/`, percent-encoding
/// normalised in the path (hex digits in upper case, percent-encoded unreserved
/// characters decoded: [`normalize_percent_encoding`]), no query and no fragment. `None`
/// for anything but an absolute http(s) URL.
///
/// ```
/// use deedbolt_guard::dpop::normalize_htu;
/// assert_eq!(
///     normalize_htu("HTTPS://AS.Example:443/token?x=1#f").as_deref(),
///     Some("https://as.example/token")
/// );
/// assert_eq!(normalize_htu("http://a:8080").as_deref(), Some("http://a:8080/"));
/// assert_eq!(
///     normalize_htu("https://a/%74oken/a%2fb").as_deref(),
///     Some("https://a/token/a%2Fb")
/// );
/// assert_eq!(normalize_htu("/token"), None);
/// ```
pub fn normalize_htu(s: &str) -> Option<String> {
    let mut url = url::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    // Scheme, host and port as the URL parser normalised them; then the path.
    let origin = &url[..url::Position::BeforePath];
    Some(format!(
        "{origin}{}",
        normalize_percent_encoding(url.path())
    ))
}

/// RFC 3986 §6.2.2.1–6.2.2.2 percent-encoding normalisation: every `%xx` triplet of an
/// unreserved character (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `.`, `_`, `~`) is decoded, every
/// other one is written with upper-case hex digits. A `%` not followed by two hex digits
/// is left as it is.
///
/// ```
/// use deedbolt_guard::dpop::normalize_percent_encoding;
/// assert_eq!(normalize_percent_encoding("/%7euser/%41b%2fc"), "/~user/Ab%2Fc");
/// assert_eq!(normalize_percent_encoding("/100%"), "/100%");
/// ```
pub fn normalize_percent_encoding(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let triplet = (bytes[i] == b'%')
            .then(|| {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                Some((hi << 4) | lo)
            })
            .flatten();
        match triplet {
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                out.push(char::from(b));
                i += 3;
            }
            Some(b) => {
                out.push('%');
                out.push(char::from(UPPER_HEX[usize::from(b >> 4)]));
                out.push(char::from(UPPER_HEX[usize::from(b & 0xf)]));
                i += 3;
            }
            // Not a triplet: copy one character (`i` is always at a char boundary).
            None => match s.get(i..).and_then(|rest| rest.chars().next()) {
                Some(c) => {
                    out.push(c);
                    i += c.len_utf8();
                }
                None => break,
            },
        }
    }
    out
}

#[cfg(test)]
mod tests;
