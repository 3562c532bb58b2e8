//! The one mapping from errors to HTTP responses.
//!
//! OAuth errors become RFC 6749 §5.2 JSON with the right status (401 plus a `Basic`
//! challenge for `invalid_client`); API validation errors become 422, listing at most
//! [`MAX_FIELD_ERRORS`] fields; an unreachable backend becomes 503
//! `temporarily_unavailable` (RFC 6749 §4.1.2.1's code) with `Retry-After`; anything
//! internal becomes a bare 500 `server_error`. Details of both go to the log only.

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deedbolt_core::error::OAuthError;
use deedbolt_core::ports::StoreError;
use deedbolt_proptech::{FieldError, MAX_FIELD_ERRORS};
use serde_json::json;

use crate::web::challenge::Challenge;
use crate::web::no_store::no_store;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An OAuth protocol error, shown to the client as is.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// A dynamic registration refused (RFC 7591 §3.2.2): 400 with its code.
    #[error(transparent)]
    Registration(#[from] deedbolt_core::registration::policy::RegistrationError),
    /// The body exceeded the size limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body's content type is not the one the endpoint takes.
    #[error("unsupported content type; expected {0}")]
    UnsupportedMediaType(&'static str),
    /// A malformed API request (query or JSON syntax).
    #[error("{0}")]
    BadRequest(String),
    /// The API object does not exist, or the caller may not see it (the same answer, so
    /// ids cannot be probed).
    #[error("not found")]
    NotFound(&'static str),
    /// The caller's token may reach the object but not do this to it (e.g. a tenant
    /// posting to their own ledger).
    #[error("forbidden")]
    Forbidden(&'static str),
    /// A verified token whose subject cannot be served here: not (or no longer) a known
    /// user or client, or a client's own token where a user's is needed. RFC 6750
    /// `invalid_token`, with this description.
    #[error("{0}")]
    InvalidSubject(&'static str),
    /// A bearer credential that is not a token of this server (the metrics token) was
    /// missing (`presented: false`: a bare challenge, RFC 6750 §3.1) or wrong
    /// (`invalid_token`).
    #[error("{description}")]
    BearerRequired {
        /// Whether a credential was sent at all.
        presented: bool,
        /// What is needed.
        description: &'static str,
    },
    /// Input that parsed but broke the rules.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Over a rate limit.
    #[error("rate limited")]
    RateLimited {
        /// The limit.
        policy: crate::web::rate_limit::Policy,
        /// The limit.
        limit: deedbolt_core::ratelimit::RateLimit,
        /// Seconds until a request is allowed.
        retry_after: u32,
    },
    /// A backend the answer depends on (the shared cache holding rate limits and
    /// revocations, or the database) cannot be reached: fail closed with 503, the cause
    /// logged, never shown. Clients may retry; the instance recovers by itself.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A DPoP proof refused at the token endpoint (RFC 9449 §5, §8): 400 with
    /// `invalid_dpop_proof`, or `use_dpop_nonce` with a fresh `DPoP-Nonce` header. (At the
    /// API the guard answers 401 itself.)
    #[error("{error}")]
    Dpop {
        /// Why.
        error: deedbolt_guard::dpop::DpopError,
        /// The nonce to send in `DPoP-Nonce`, when the server issues nonces.
        nonce: Option<String>,
    },
    /// A failure that is ours, not the client's. Logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A store failure: [`StoreError::Unavailable`] (the backend cannot be reached) is a 503
/// with `Retry-After`; anything else is a generic 500. The cause chain goes to the log
/// only. Handlers use `?` on store calls.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl ApiError {
    /// Wraps an internal failure; a [`StoreError::Unavailable`] becomes
    /// [`ApiError::Unavailable`] (503) instead of a 500.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        let e: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        if matches!(
            e.downcast_ref::<StoreError>(),
            Some(StoreError::Unavailable(_))
        ) {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

/// An error and its causes, `a: b: c`, for logs.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        cur = cause.source();
    }
    out
}

fn body(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match &self {
            ApiError::OAuth(e) => {
                let status = match e {
                    OAuthError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::BAD_REQUEST,
                };
                let mut r = body(status, e.code(), e.description());
                if status == StatusCode::UNAUTHORIZED {
                    r.headers_mut().insert(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"deedbolt\", charset=\"UTF-8\""),
                    );
                }
                r
            }
            ApiError::Registration(e) => body(StatusCode::BAD_REQUEST, e.code(), e.description()),
            ApiError::PayloadTooLarge => body(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            ),
            ApiError::UnsupportedMediaType(expected) => body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                &format!("unsupported content type; expected {expected}"),
            ),
            ApiError::NotFound(what) => body(StatusCode::NOT_FOUND, "not_found", what),
            ApiError::Forbidden(what) => body(StatusCode::FORBIDDEN, "forbidden", what),
            ApiError::InvalidSubject(text) => {
                let mut r = body(StatusCode::UNAUTHORIZED, "invalid_token", text);
                Challenge::invalid_token(text).apply(r.headers_mut());
                r
            }
            ApiError::BearerRequired {
                presented,
                description,
            } => {
                let mut r = body(StatusCode::UNAUTHORIZED, "invalid_token", description);
                let challenge = if *presented {
                    Challenge::invalid_token(description)
                } else {
                    Challenge::bare()
                };
                challenge.apply(r.headers_mut());
                r
            }
            ApiError::BadRequest(msg) => body(StatusCode::BAD_REQUEST, "invalid_request", msg),
            ApiError::Validation(fields) => {
                // At most MAX_FIELD_ERRORS, and a note of how many more, so the answer
                // stays small however many bad fields a request carries.
                let shown = fields.get(..MAX_FIELD_ERRORS).unwrap_or(fields);
                let mut body = json!({
                    "error": "validation_failed",
                    "error_description": "the request has invalid fields",
                    "fields": shown,
                });
                if fields.len() > shown.len() {
                    body["truncated"] = json!(true);
                    body["fields_omitted"] = json!(fields.len() - shown.len());
                }
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
            ApiError::RateLimited {
                policy,
                limit,
                retry_after,
            } => {
                let mut r = body(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_exceeded",
                    &format!("too many {policy} requests; retry after {retry_after} seconds"),
                );
                crate::web::rate_limit::limited_headers(
                    *policy,
                    *limit,
                    *retry_after,
                    r.headers_mut(),
                );
                r
            }
            ApiError::Unavailable(e) => {
                tracing::error!(error.cause_chain = %error_chain(e.as_ref()), "backend unavailable");
                let mut r = body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the service is temporarily unavailable; retry shortly",
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            ApiError::Dpop { error, nonce } => {
                if *error == deedbolt_guard::dpop::DpopError::Unavailable {
                    let mut r = body(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        error.description(),
                    );
                    r.headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                    r
                } else {
                    let mut r = body(StatusCode::BAD_REQUEST, error.code(), error.description());
                    crate::web::dpop::nonce_header(nonce.as_deref(), r.headers_mut());
                    r
                }
            }
            ApiError::Internal(e) => {
                tracing::error!(error.cause_chain = %error_chain(e.as_ref()), "internal error");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the server could not complete the request",
                )
            }
        };
        let headers = response.headers_mut();
        no_store(headers);
        response
    }
}
