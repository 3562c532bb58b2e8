//! The tower layer: one [`Guard`] per resource server, one [`RequireScopes`] per route.
//!
//! Access tokens are accepted only in the `Authorization` header (RFC 6750 §2.1). A token
//! in the URI query (§2.3: "SHOULD NOT be used", it leaks into logs, history and
//! `Referer`) or in a form-encoded body (§2.2, optional for servers) is refused with 400
//! `invalid_request` — also, and especially, next to a header, since §2 forbids more than
//! one method in a request. To see a form body the guard reads it (at most
//! [`MAX_FORM_BYTES`]) and hands the handler a body rebuilt from the same bytes.
//!
//! With [`Guard::with_dpop`], sender-constrained tokens (RFC 9449 §7) are checked too:
//! `Authorization: DPoP <token>` with a `DPoP` proof whose key is the token's `cnf.jkt`,
//! whose `ath` is the token's hash and whose `htu` is the public URL of the request; a
//! DPoP-bound token presented as `Bearer` is refused (§7.2).

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::token::AccessTokenClaims;
use futures_util::future::{BoxFuture, Either, Ready};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use tower::{Layer, Service};

use crate::dpop::{DpopError, DpopRequest, DpopVerifier, Jkt, ListenerBase};
use crate::mtls::ClientCertificate;
use crate::verify::{parse_authorization, BearerError, Scheme, TokenRejection, Verifier};

/// The request header carrying a DPoP proof.
const DPOP_HEADER: &str = "dpop";
/// The response header carrying a DPoP server nonce.
const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// The largest form-encoded body the guard reads to look for an `access_token`
/// parameter; a larger one is refused with 413.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The RFC 6750 §2.2/§2.3 parameter name.
const ACCESS_TOKEN_PARAM: &str = "access_token";

/// The verified claims of the request's access token, put into the request extensions
/// by the guard. Handlers behind a [`RequireScopes`] layer can rely on it being there.
#[derive(Clone, Debug)]
pub struct Authorized {
    /// The verified claims.
    pub claims: Arc<AccessTokenClaims>,
    /// The DPoP key the request proved possession of, for a DPoP-bound token.
    pub dpop_jkt: Option<Jkt>,
}

/// A token verifier that makes per-route layers.
#[derive(Clone, Debug)]
pub struct Guard {
    verifier: Arc<Verifier>,
    realm: Arc<str>,
    dpop: Option<Arc<DpopSettings>>,
}

/// How a [`Guard`] checks DPoP proofs.
struct DpopSettings {
    verifier: DpopVerifier,
    replay: Arc<dyn deedbolt_core::ports::ReplayCache>,
    /// The public URL the routes' paths are appended to, for `htu`.
    public_base: String,
}

impl std::fmt::Debug for DpopSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopSettings")
            .field("verifier", &self.verifier)
            .field("public_base", &self.public_base)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard using `verifier`, with realm `deedbolt` in its challenges.
    pub fn new(verifier: Verifier) -> Self {
        Guard {
            verifier: Arc::new(verifier),
            realm: Arc::from("deedbolt"),
            dpop: None,
        }
    }

    /// Accepts DPoP-bound tokens (RFC 9449 §7): `Authorization: DPoP` with a proof checked
    /// by `verifier`, its `jti` recorded in `replay` (shared by every instance). The proof's
    /// `htu` must be `public_base` (the public URL of this server, e.g. the issuer; never
    /// the bind address) followed by the request path (the full one, also under an axum
    /// `Router::nest`: see the crate docs); a request carrying a
    /// [`ListenerBase`] extension (it came in on a listener with a public URL of its own)
    /// is checked against that base instead.
    pub fn with_dpop(
        mut self,
        verifier: DpopVerifier,
        replay: Arc<dyn deedbolt_core::ports::ReplayCache>,
        public_base: impl Into<String>,
    ) -> Self {
        let public_base = public_base.into().trim_end_matches('/').to_owned();
        self.dpop = Some(Arc::new(DpopSettings {
            verifier,
            replay,
            public_base,
        }));
        self
    }

    /// Checks the access token of a request outside a tower stack (e.g. a handler that
    /// authorizes by itself): the `Authorization` header, `Bearer` or (with
    /// [`Guard::with_dpop`]) `DPoP` with its proof. Scopes are the caller's business.
    pub async fn authorize_request(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Authorized, GuardRefusal> {
        let (scheme, token) = parse_authorization(parts.headers.get_all(AUTHORIZATION).iter())
            .map_err(|e| match e {
                BearerError::Missing => GuardRefusal::NoToken,
                BearerError::Malformed => GuardRefusal::Malformed,
            })?;
        let denial = |d: Denial| match d {
            Denial::Unavailable => GuardRefusal::Unavailable,
            Denial::Dpop(e) => GuardRefusal::Dpop(e),
            Denial::InvalidToken(t) => GuardRefusal::InvalidToken(t),
            _ => GuardRefusal::Malformed,
        };
        match scheme {
            Scheme::Bearer => {
                let claims = self.bearer(token, &parts.extensions).map_err(denial)?;
                Ok(Authorized {
                    claims,
                    dpop_jkt: None,
                })
            }
            Scheme::Dpop => {
                let (claims, jkt) = self
                    .dpop(
                        &parts.method,
                        request_path(&parts.uri, &parts.extensions),
                        &parts.headers,
                        &parts.extensions,
                        token,
                    )
                    .await
                    .map_err(denial)?;
                Ok(Authorized {
                    claims,
                    dpop_jkt: Some(jkt),
                })
            }
        }
    }

    /// The `DPoP-Nonce` to send now, if DPoP nonces are issued.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.dpop.as_ref().and_then(|d| d.verifier.nonce())
    }

    /// A bearer token: verified, refused if it is DPoP-bound (RFC 9449 §7.2) or bound to a
    /// certificate the request did not present (RFC 8705 §3).
    fn bearer(
        &self,
        token: &str,
        extensions: &http::Extensions,
    ) -> Result<Arc<AccessTokenClaims>, Denial> {
        let claims = self.verifier.check(token).map_err(rejected)?;
        if claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some()) {
            return Err(Denial::InvalidToken(BOUND_AS_BEARER));
        }
        certificate_bound(&claims, extensions)?;
        Ok(claims)
    }

    /// A DPoP token: verified, bound to the key of a valid proof for this request.
    async fn dpop(
        &self,
        method: &http::Method,
        path: &str,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
        token: &str,
    ) -> Result<(Arc<AccessTokenClaims>, Jkt), Denial> {
        let Some(settings) = &self.dpop else {
            // DPoP is not accepted here: as if no token had been sent.
            return Err(Denial::NoToken);
        };
        let claims = self.verifier.check(token).map_err(rejected)?;
        certificate_bound(&claims, extensions)?;
        let Some(bound) = claims.cnf.as_ref().and_then(|c| c.jkt.clone()) else {
            return Err(Denial::InvalidToken(NOT_BOUND));
        };
        // The public URL of the listener the request came in on, if it said so; else the
        // configured one.
        let base = extensions
            .get::<ListenerBase>()
            .map_or(settings.public_base.as_str(), ListenerBase::as_str);
        let htu = format!("{base}{path}");
        let request = DpopRequest {
            method: method.as_str(),
            uri: &htu,
            access_token: Some(token),
        };
        let proof = settings
            .verifier
            .check(
                headers.get_all(DPOP_HEADER).iter(),
                &request,
                settings.replay.as_ref(),
            )
            .await
            .map_err(Denial::Dpop)?;
        if !proof.jkt.matches(&bound) {
            return Err(Denial::Dpop(DpopError::KeyMismatch));
        }
        Ok((claims, proof.jkt))
    }

    /// The answer to a request that passed a [`RequireScopes`] layer for `scopes` but that
    /// the handler refuses for want of a privilege beyond them (e.g. an administrator
    /// role): 403 `insufficient_scope` with `description` (a fixed text: no quotes or
    /// backslashes) and `scope` naming `scopes`, in a challenge of the scheme the token
    /// was presented with, exactly as the layer answers a missing scope.
    pub fn forbid<B: From<String>>(
        &self,
        authorized: &Authorized,
        scopes: ScopeSet,
        description: &'static str,
    ) -> Response<B> {
        self.require(scopes).deny(
            Denial::Forbidden(description),
            authorized.dpop_jkt.is_some(),
        )
    }

    /// The verifier, for code that checks tokens outside a tower stack.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// A layer that admits only requests whose token carries every scope in `scopes`.
    pub fn require(&self, scopes: ScopeSet) -> RequireScopes {
        RequireScopes {
            guard: self.clone(),
            scopes,
            any: false,
        }
    }

    /// A layer that lets a request through with a valid token carrying *at least one* of
    /// `scopes` (e.g. a route that tenants reach with `maintenance:request` and staff with
    /// `maintenance:manage`; the handler then tells them apart).
    pub fn require_any(&self, scopes: ScopeSet) -> RequireScopes {
        RequireScopes {
            guard: self.clone(),
            scopes,
            any: true,
        }
    }
}

/// Why [`Guard::authorize_request`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardRefusal {
    /// No `Authorization` header for a known scheme: a bare challenge.
    NoToken,
    /// A malformed `Authorization` header: `invalid_request`.
    Malformed,
    /// The token is not valid (the fixed description): `invalid_token`.
    InvalidToken(&'static str),
    /// The DPoP proof is not valid: `invalid_dpop_proof` or `use_dpop_nonce`.
    Dpop(DpopError),
    /// The revocation list or replay cache cannot be checked: 503.
    Unavailable,
}

/// The description of a token without the route's scopes.
const MISSING_SCOPE: &str = "the token lacks a required scope";
/// The description of a DPoP-bound token presented as a bearer token.
const BOUND_AS_BEARER: &str =
    "the token is DPoP-bound and must be presented with the DPoP scheme and a proof";
/// The description of a bearer token presented with the DPoP scheme.
const NOT_BOUND: &str = "the token is not DPoP-bound; present it as a Bearer token";

/// The request path as the client sent it, for `htu`. Inside an axum `Router::nest` the
/// router hands on the URI with the nest's prefix stripped and keeps the original as
/// axum's `OriginalUri` extension, which is read with the `axum` feature (on by default).
/// Without it, the guard must see the full path (sit outside any nesting), or the request
/// must carry a [`ListenerBase`] that ends with the prefix.
#[cfg(feature = "axum")]
fn request_path<'a>(uri: &'a http::Uri, extensions: &'a http::Extensions) -> &'a str {
    extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(uri.path(), |original| original.0.path())
}

/// The request path as the guard sees it (built without the `axum` feature).
#[cfg(not(feature = "axum"))]
fn request_path<'a>(uri: &'a http::Uri, _extensions: &'a http::Extensions) -> &'a str {
    uri.path()
}

/// RFC 8705 §3: a certificate-bound token only with its certificate (the TLS listener puts
/// the client's certificate into the request extensions).
fn certificate_bound(
    claims: &AccessTokenClaims,
    extensions: &http::Extensions,
) -> Result<(), Denial> {
    if crate::mtls::certificate_binding_holds(
        claims.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref()),
        extensions.get::<ClientCertificate>(),
    ) {
        Ok(())
    } else {
        Err(Denial::InvalidToken(
            "the access token is bound to a TLS client certificate this request did not present",
        ))
    }
}

fn rejected(rejection: TokenRejection) -> Denial {
    tracing::debug!(reason = %rejection, "access token rejected");
    match rejection {
        TokenRejection::Unavailable => Denial::Unavailable,
        other => Denial::InvalidToken(other.description()),
    }
}

/// The per-route layer made by [`Guard::require`].
#[derive(Clone, Debug)]
pub struct RequireScopes {
    guard: Guard,
    scopes: ScopeSet,
    /// One of `scopes` suffices (else all are needed).
    any: bool,
}

impl<S> Layer<S> for RequireScopes {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            policy: self.clone(),
        }
    }
}

/// The service made by [`RequireScopes`].
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    inner: S,
    policy: RequireScopes,
}

enum Denial {
    NoToken,
    BadRequest,
    /// A token outside the `Authorization` header (query or form body): `invalid_request`.
    TokenElsewhere(&'static str),
    BodyTooLarge,
    InvalidToken(&'static str),
    /// The token lacks the route's scopes, or (with its own description) a privilege the
    /// handler requires beyond them: 403 `insufficient_scope`.
    Forbidden(&'static str),
    /// The revocation list cannot be checked right now: 503, fail closed.
    Unavailable,
    /// A DPoP proof was refused (RFC 9449 §7.1): 401 `invalid_dpop_proof` or
    /// `use_dpop_nonce`.
    Dpop(DpopError),
}

/// Whether a form-encoded (query or body) string has an `access_token` parameter.
fn has_access_token_param(form: &[u8]) -> bool {
    form_urlencoded::parse(form).any(|(k, _)| k == ACCESS_TOKEN_PARAM)
}

/// Whether the request's body is form-encoded (RFC 6750 §2.2's only body method).
fn is_form<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|m| m.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// The refusal of a token found outside the header, saying whether a header came too.
fn token_elsewhere<B>(req: &Request<B>, place: Place) -> Denial {
    let with_header = req.headers().contains_key(AUTHORIZATION);
    Denial::TokenElsewhere(match (place, with_header) {
        (_, true) => "the access token must be sent in exactly one way, the Authorization header",
        (Place::Query, false) => {
            "access tokens are not accepted in the URL; use the Authorization header"
        }
        (Place::Body, false) => {
            "access tokens are not accepted in the request body; use the Authorization header"
        }
    })
}

/// Where a token outside the header was found.
#[derive(Clone, Copy)]
enum Place {
    Query,
    Body,
}

impl RequireScopes {
    /// Whether the request presents a token with the DPoP scheme (checked asynchronously).
    fn is_dpop<B>(req: &Request<B>) -> bool {
        matches!(
            parse_authorization(req.headers().get_all(AUTHORIZATION).iter()),
            Ok((Scheme::Dpop, _))
        )
    }

    fn query_token<B>(req: &Request<B>) -> Result<(), Denial> {
        if req
            .uri()
            .query()
            .is_some_and(|q| has_access_token_param(q.as_bytes()))
        {
            return Err(token_elsewhere(req, Place::Query));
        }
        Ok(())
    }

    fn parse<B>(req: &Request<B>) -> Result<(Scheme, &str), Denial> {
        parse_authorization(req.headers().get_all(AUTHORIZATION).iter()).map_err(|e| match e {
            BearerError::Missing => Denial::NoToken,
            BearerError::Malformed => Denial::BadRequest,
        })
    }

    fn allowed(&self, claims: &AccessTokenClaims) -> Result<(), Denial> {
        let allowed = if self.any {
            !self.scopes.intersection(&claims.scope).is_empty()
        } else {
            self.scopes.is_subset(&claims.scope)
        };
        if allowed {
            Ok(())
        } else {
            Err(Denial::Forbidden(MISSING_SCOPE))
        }
    }

    /// The synchronous check of a request without DPoP.
    fn check<B>(&self, req: &Request<B>) -> Result<Authorized, Denial> {
        Self::query_token(req)?;
        let (_, token) = Self::parse(req)?;
        let claims = self.guard.bearer(token, req.extensions())?;
        self.allowed(&claims)?;
        Ok(Authorized {
            claims,
            dpop_jkt: None,
        })
    }

    /// The full check: a DPoP request needs the (shared) replay cache.
    async fn check_async(&self, req: &http::request::Parts) -> Result<Authorized, Denial> {
        let probe = Request::from_parts(req.clone(), ());
        Self::query_token(&probe)?;
        match Self::parse(&probe)? {
            (Scheme::Bearer, _) => self.check(&probe),
            (Scheme::Dpop, token) => {
                let (claims, jkt) = self
                    .guard
                    .dpop(
                        &req.method,
                        request_path(&req.uri, &req.extensions),
                        &req.headers,
                        &req.extensions,
                        token,
                    )
                    .await?;
                self.allowed(&claims)?;
                Ok(Authorized {
                    claims,
                    dpop_jkt: Some(jkt),
                })
            }
        }
    }

    /// The refusal of `denial`; `dpop` tells whether the request used the DPoP scheme,
    /// so the challenge names the scheme the client must use.
    fn deny<B: From<String>>(&self, denial: Denial, dpop: bool) -> Response<B> {
        let realm = &self.guard.realm;
        let dpop_on = self.guard.dpop.is_some();
        let algs = self
            .guard
            .dpop
            .as_ref()
            .map(|d| d.verifier.algs().join(" "))
            .unwrap_or_default();
        // The scheme of an error challenge: DPoP for a DPoP request, and for a DPoP-bound
        // token that came as a bearer token (RFC 9449 §7.2).
        let dpop_challenge = dpop
            || matches!(denial, Denial::InvalidToken(t) if t == BOUND_AS_BEARER)
            || matches!(denial, Denial::Dpop(_));
        let challenge = |params: String| {
            if dpop_challenge && dpop_on {
                format!("DPoP realm=\"{realm}\", {params}, algs=\"{algs}\"")
            } else {
                format!("Bearer realm=\"{realm}\", {params}")
            }
        };
        let mut nonce = None;
        let (status, challenges, body) = match denial {
            Denial::NoToken => {
                let mut c = vec![format!("Bearer realm=\"{realm}\"")];
                if dpop_on {
                    c.push(format!("DPoP realm=\"{realm}\", algs=\"{algs}\""));
                }
                (
                    StatusCode::UNAUTHORIZED,
                    c,
                    r#"{"error":"invalid_token","error_description":"a bearer access token is required"}"#.to_owned(),
                )
            }
            Denial::BadRequest => (
                StatusCode::BAD_REQUEST,
                vec![challenge("error=\"invalid_request\", error_description=\"malformed Authorization header\"".to_owned())],
                r#"{"error":"invalid_request","error_description":"malformed Authorization header"}"#.to_owned(),
            ),
            Denial::TokenElsewhere(text) => (
                StatusCode::BAD_REQUEST,
                vec![challenge(format!("error=\"invalid_request\", error_description=\"{text}\""))],
                serde_json::json!({"error": "invalid_request", "error_description": text}).to_string(),
            ),
            Denial::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                vec![challenge("error=\"invalid_request\", error_description=\"the request body is too large\"".to_owned())],
                r#"{"error":"invalid_request","error_description":"the request body is too large"}"#.to_owned(),
            ),
            Denial::InvalidToken(text) => (
                StatusCode::UNAUTHORIZED,
                vec![challenge(format!("error=\"invalid_token\", error_description=\"{text}\""))],
                serde_json::json!({"error": "invalid_token", "error_description": text}).to_string(),
            ),
            Denial::Dpop(DpopError::Unavailable) | Denial::Unavailable => {
                let mut response = Response::new(B::from(
                    serde_json::json!({
                        "error": "temporarily_unavailable",
                        "error_description": TokenRejection::Unavailable.description(),
                    })
                    .to_string(),
                ));
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            Denial::Dpop(e) => {
                if e == DpopError::UseNonce {
                    nonce = self
                        .guard
                        .dpop
                        .as_ref()
                        .and_then(|d| d.verifier.refusal_nonce(e));
                }
                let (code, text) = (e.code(), e.description());
                (
                    StatusCode::UNAUTHORIZED,
                    vec![challenge(format!("error=\"{code}\", error_description=\"{text}\""))],
                    serde_json::json!({"error": code, "error_description": text}).to_string(),
                )
            }
            Denial::Forbidden(text) => (
                StatusCode::FORBIDDEN,
                vec![challenge(format!(
                    "error=\"insufficient_scope\", error_description=\"{text}\", scope=\"{}\"",
                    self.scopes
                ))],
                serde_json::json!({
                    "error": "insufficient_scope",
                    "error_description": text,
                    "scope": self.scopes.to_string(),
                })
                .to_string(),
            ),
        };
        let mut response = Response::new(B::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for c in challenges {
            if let Ok(v) = HeaderValue::from_str(&c) {
                headers.append(WWW_AUTHENTICATE, v);
            }
        }
        if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert(DPOP_NONCE_HEADER, v);
        }
        response
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GuardService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<
        Ready<Result<Response<ResBody>, S::Error>>,
        Either<S::Future, BoxFuture<'static, Result<Response<ResBody>, S::Error>>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let form = is_form(&req);
        let dpop = RequireScopes::is_dpop(&req);
        if !form && !dpop {
            // The fast path: a bearer token, checked without awaiting anything.
            return match self.policy.check(&req) {
                Ok(authorized) => {
                    req.extensions_mut().insert(authorized);
                    Either::Right(Either::Left(self.inner.call(req)))
                }
                Err(denial) => Either::Left(futures_util::future::ready(Ok(self
                    .policy
                    .deny(denial, false)))),
            };
        }
        // A form body may carry a token (RFC 6750 §2.2): read it, look, and rebuild it. A
        // DPoP proof's `jti` goes through the shared replay cache. The service that was
        // polled ready goes into the future; a clone stays here.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        Either::Right(Either::Right(Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let body = if form {
                let bytes = match http_body_util::Limited::new(body, MAX_FORM_BYTES)
                    .collect()
                    .await
                {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => return Ok(policy.deny(Denial::BodyTooLarge, dpop)),
                };
                if has_access_token_param(&bytes) {
                    let probe = Request::from_parts(parts, ());
                    return Ok(policy.deny(token_elsewhere(&probe, Place::Body), dpop));
                }
                ReqBody::from(bytes)
            } else {
                body
            };
            match policy.check_async(&parts).await {
                Ok(authorized) => {
                    let bound = authorized.dpop_jkt.is_some();
                    parts.extensions.insert(authorized);
                    let req = Request::from_parts(parts, body);
                    let mut response = inner.call(req).await?;
                    // A fresh nonce with every answer to a DPoP request (RFC 9449 §9), so
                    // the client's next proof need not fail first.
                    if bound {
                        if let Some(v) = policy
                            .guard
                            .dpop_nonce()
                            .and_then(|n| HeaderValue::from_str(&n).ok())
                        {
                            response.headers_mut().insert(DPOP_NONCE_HEADER, v);
                        }
                    }
                    Ok(response)
                }
                Err(denial) => Ok(policy.deny(denial, dpop)),
            }
        })))
    }
}
