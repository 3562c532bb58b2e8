//! The tower layer: one [`Guard`] per resource server, one [`RequireScopes`] per route.
//!
//! Access tokens are accepted only in the `Authorization` header (RFC 6750 §2.1). A token
//! in the URI query (§2.3: "SHOULD NOT be used", it leaks into logs, history and
//! `Referer`) or in a form-encoded body (§2.2, optional for servers) is refused with 400
//! `invalid_request` — also, and especially, next to a header, since §2 forbids more than
//! one method in a request. To see a form body the guard reads it (at most
//! [`MAX_FORM_BYTES`]) and hands the handler a body rebuilt from the same bytes.

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

use crate::mtls::ClientCertificate;
use crate::verify::{parse_bearer, BearerError, TokenRejection, Verifier};

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
}

/// A token verifier that makes per-route layers.
#[derive(Clone, Debug)]
pub struct Guard {
    verifier: Arc<Verifier>,
    realm: Arc<str>,
}

impl Guard {
    /// A guard using `verifier`, with realm `deedbolt` in its challenges.
    pub fn new(verifier: Verifier) -> Self {
        Guard {
            verifier: Arc::new(verifier),
            realm: Arc::from("deedbolt"),
        }
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
    InsufficientScope,
    /// The revocation list cannot be checked right now: 503, fail closed.
    Unavailable,
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
    fn check<B>(&self, req: &Request<B>) -> Result<Arc<AccessTokenClaims>, Denial> {
        if req
            .uri()
            .query()
            .is_some_and(|q| has_access_token_param(q.as_bytes()))
        {
            return Err(token_elsewhere(req, Place::Query));
        }
        let token =
            parse_bearer(req.headers().get_all(AUTHORIZATION).iter()).map_err(|e| match e {
                BearerError::Missing => Denial::NoToken,
                BearerError::Malformed => Denial::BadRequest,
            })?;
        let claims = self.guard.verifier.check(token).map_err(|rejection| {
            tracing::debug!(reason = %rejection, "access token rejected");
            match rejection {
                TokenRejection::Unavailable => Denial::Unavailable,
                other => Denial::InvalidToken(other.description()),
            }
        })?;
        // RFC 8705 §3: a certificate-bound token only with its certificate.
        if !crate::mtls::certificate_binding_holds(
            claims.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref()),
            req.extensions().get::<ClientCertificate>(),
        ) {
            return Err(Denial::InvalidToken(
                "the access token is bound to a TLS client certificate this request did not present",
            ));
        }
        let allowed = if self.any {
            !self.scopes.intersection(&claims.scope).is_empty()
        } else {
            self.scopes.is_subset(&claims.scope)
        };
        if !allowed {
            return Err(Denial::InsufficientScope);
        }
        Ok(claims)
    }

    fn deny<B: From<String>>(&self, denial: Denial) -> Response<B> {
        let realm = &self.guard.realm;
        let (status, challenge, body) = match denial {
            Denial::NoToken => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer realm=\"{realm}\""),
                r#"{"error":"invalid_token","error_description":"a bearer access token is required"}"#.to_owned(),
            ),
            Denial::BadRequest => (
                StatusCode::BAD_REQUEST,
                format!("Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"malformed Authorization header\""),
                r#"{"error":"invalid_request","error_description":"malformed Authorization header"}"#.to_owned(),
            ),
            Denial::TokenElsewhere(text) => (
                StatusCode::BAD_REQUEST,
                format!("Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{text}\""),
                serde_json::json!({"error": "invalid_request", "error_description": text}).to_string(),
            ),
            Denial::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"the request body is too large\""),
                r#"{"error":"invalid_request","error_description":"the request body is too large"}"#.to_owned(),
            ),
            Denial::InvalidToken(text) => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{text}\""),
                serde_json::json!({"error": "invalid_token", "error_description": text}).to_string(),
            ),
            Denial::Unavailable => {
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
            Denial::InsufficientScope => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"{}\"",
                    self.scopes
                ),
                serde_json::json!({
                    "error": "insufficient_scope",
                    "error_description": "the token lacks a required scope",
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
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            headers.insert(WWW_AUTHENTICATE, v);
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
        let deny = |policy: &RequireScopes, denial| {
            Either::Left(futures_util::future::ready(Ok(policy.deny(denial))))
        };
        if !is_form(&req) {
            return match self.policy.check(&req) {
                Ok(claims) => {
                    req.extensions_mut().insert(Authorized { claims });
                    Either::Right(Either::Left(self.inner.call(req)))
                }
                Err(denial) => deny(&self.policy, denial),
            };
        }
        // A form body may carry a token (RFC 6750 §2.2): read it, look, and rebuild it.
        // The service that was polled ready goes into the future; a clone stays here.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        Either::Right(Either::Right(Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match http_body_util::Limited::new(body, MAX_FORM_BYTES)
                .collect()
                .await
            {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return Ok(policy.deny(Denial::BodyTooLarge)),
            };
            let mut req = Request::from_parts(parts, ReqBody::from(bytes.clone()));
            if has_access_token_param(&bytes) {
                return Ok(policy.deny(token_elsewhere(&req, Place::Body)));
            }
            match policy.check(&req) {
                Ok(claims) => {
                    req.extensions_mut().insert(Authorized { claims });
                    inner.call(req).await
                }
                Err(denial) => Ok(policy.deny(denial)),
            }
        })))
    }
}
