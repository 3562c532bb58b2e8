//! The tower layer: one [`Guard`] per resource server, one [`RequireScopes`] per route.

use std::sync::Arc;
use std::task::{Context, Poll};

use deedbolt_core::scope::ScopeSet;
use deedbolt_core::token::AccessTokenClaims;
use futures_util::future::{Either, Ready};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::verify::{parse_bearer, BearerError, Verifier};

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
    InvalidToken(&'static str),
    InsufficientScope,
}

impl RequireScopes {
    fn check<B>(&self, req: &Request<B>) -> Result<Arc<AccessTokenClaims>, Denial> {
        let token =
            parse_bearer(req.headers().get_all(AUTHORIZATION).iter()).map_err(|e| match e {
                BearerError::Missing => Denial::NoToken,
                BearerError::Malformed => Denial::BadRequest,
            })?;
        let claims = self.guard.verifier.check(token).map_err(|rejection| {
            tracing::debug!(reason = %rejection, "access token rejected");
            Denial::InvalidToken(rejection.description())
        })?;
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
            Denial::InvalidToken(text) => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{text}\""),
                serde_json::json!({"error": "invalid_token", "error_description": text}).to_string(),
            ),
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
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<ResBody>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match self.policy.check(&req) {
            Ok(claims) => {
                req.extensions_mut().insert(Authorized { claims });
                Either::Right(self.inner.call(req))
            }
            Err(denial) => Either::Left(futures_util::future::ready(Ok(self.policy.deny(denial)))),
        }
    }
}
