//! Server-rendered HTML pages (login, consent, errors): no JavaScript, every value escaped,
//! and headers that keep them out of frames and caches.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, PRAGMA, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use deedbolt_core::scope::ScopeSet;

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1d2733}\
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;box-sizing:border-box}\
button{margin:1rem .5rem 0 0;padding:.5rem 1.2rem}.error{color:#a00}ul{padding-left:1.2rem}";

/// The stylesheet, served from `/static/deedbolt.css` so the CSP needs no inline styles.
#[tracing::instrument(skip_all)]
pub async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/css")),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        STYLE,
    )
        .into_response()
}

/// A complete page with the headers every page gets: no framing (clickjacking), no caching
/// (they carry CSRF tokens and personal data), a CSP that allows only our stylesheet.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · deedbolt</title><link rel=\"stylesheet\" href=\"/static/deedbolt.css\"></head>\
         <body>{body}</body></html>",
        escape(title)
    );
    (
        status,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (PRAGMA, HeaderValue::from_static("no-cache")),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            ),
        ],
        html,
    )
        .into_response()
}

/// An error page: used when redirecting back to the client would be unsafe.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in problem",
        &format!(
            "<h1>This sign-in cannot continue</h1><p class=\"error\">{}</p>\
             <p>Go back to the application and try again.</p>",
            escape(message)
        ),
    )
}

/// The login form.
pub fn login(
    client_name: &str,
    req: &str,
    csrf: &str,
    email: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    page(
        status,
        "Sign in",
        &format!(
            "<h1>Sign in to continue to {client}</h1>{message}\
             <form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"req\" value=\"{req}\">\
             <label for=\"email\">Email</label>\
             <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{email}\">\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\" id=\"login\">Sign in</button></form>",
            client = escape(client_name),
            csrf = escape(csrf),
            req = escape(req),
            email = escape(email),
        ),
    )
}

/// The consent page: the scopes in plain words, approve or deny. Administration scopes
/// are flagged in bold and announced by a warning above the list, since they open the
/// security audit log and the alerts of the whole server.
pub fn consent(
    client_name: &str,
    user_email: &str,
    scope: ScopeSet,
    req: &str,
    csrf: &str,
) -> Response {
    let items: String = scope
        .iter()
        .map(|s| {
            let (open, close) = if s.is_admin() {
                ("<li class=\"admin-scope\"><strong>", "</strong>")
            } else {
                ("<li>", "")
            };
            format!(
                "{open}{}{close} <small>({})</small></li>",
                escape(s.description()),
                s.as_str()
            )
        })
        .collect();
    let warning = if scope.iter().any(|s| s.is_admin()) {
        format!(
            "<p class=\"error\" role=\"alert\" id=\"admin-warning\">Warning: this gives {} \
             administrator access. It could read the security audit log and the alerts of \
             the whole server. Allow it only if you trust this app with that.</p>",
            escape(client_name)
        )
    } else {
        String::new()
    };
    page(
        StatusCode::OK,
        "Allow access",
        &format!(
            "<h1>{client} wants to access your account</h1>{warning}\
             <p>Signed in as {email}. If you allow it, {client} will be able to:</p><ul>{items}</ul>\
             <form method=\"post\" action=\"/consent\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"req\" value=\"{req}\">\
             <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Allow</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>",
            client = escape(client_name),
            email = escape(user_email),
            csrf = escape(csrf),
            req = escape(req),
        ),
    )
}

pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(LOCATION, v)]).into_response(),
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect address is invalid."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }
}
