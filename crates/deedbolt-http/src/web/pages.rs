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

/// The pages' stylesheet: one column that fits a phone, a primary button for the action
/// the page is for (Sign in, Allow) and a quieter secondary one for the way out (Deny).
const STYLE: &str = "\
*,*::before,*::after{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;line-height:1.5;color:#1d2733;\
background:#f4f6fa;margin:0;padding:2.5rem 1rem}\
main{max-width:30rem;margin:0 auto;background:#fff;border:1px solid #dde3ec;border-radius:10px;\
padding:1.5rem 1.5rem 1.75rem;box-shadow:0 1px 3px rgba(16,24,40,.06)}\
main.wide{max-width:46rem}\
h1{font-size:1.35rem;line-height:1.3;margin:0 0 1rem}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}\
label{display:block;margin:.9rem 0 .25rem;font-weight:600;font-size:.95rem}\
input{width:100%;padding:.6rem .7rem;font:inherit;border:1px solid #b8c2d0;border-radius:6px}\
input:focus{outline:2px solid #1f5eff;outline-offset:1px;border-color:#1f5eff}\
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.5rem}\
button,.button{font:inherit;font-weight:600;padding:.6rem 1.4rem;border-radius:6px;cursor:pointer;\
text-decoration:none;display:inline-block;text-align:center;min-width:7rem}\
.primary{background:#1f5eff;color:#fff;border:1px solid #1f5eff}\
.primary:hover{background:#1748c7;border-color:#1748c7}\
.secondary{background:#fff;color:#1d2733;border:1px solid #b8c2d0}\
.secondary:hover{background:#eef1f6}\
button:focus-visible,.button:focus-visible{outline:3px solid #99b4ff;outline-offset:2px}\
.error{color:#a11b1b;background:#fdf0f0;border:1px solid #f3c7c7;border-radius:6px;padding:.6rem .8rem}\
.muted{color:#5b6475;font-size:.9rem}\
ul{padding-left:1.2rem}li{margin:.35rem 0}\
ul.links{list-style:none;padding:0}ul.links li{margin:.6rem 0}\
a{color:#1748c7}code{font-size:.9em;background:#eef1f6;padding:.05rem .3rem;border-radius:4px}\
@media (max-width:30rem){body{padding:1rem .5rem}main{padding:1.1rem}.actions button{flex:1}}";

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
         <body><main>{body}</main></body></html>",
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
             <div class=\"actions\"><button type=\"submit\" id=\"login\" class=\"primary\">Sign in</button></div></form>",
            client = escape(client_name),
            csrf = escape(csrf),
            req = escape(req),
            email = escape(email),
        ),
    )
}

/// The consent page: the scopes in plain words (not their identifiers), approve or deny. Administration scopes
/// are flagged in bold and announced by a warning above the list, since they open the
/// security audit log and the alerts of the whole server.
///
/// `destination` is where the answer goes: the host of the redirect URI (see
/// [`redirect_destination`]), shown so a user can see where they are sent whatever the
/// client calls itself.
pub fn consent(
    client_name: &str,
    destination: &str,
    user_email: &str,
    scope: ScopeSet,
    req: &str,
    csrf: &str,
) -> Response {
    let items: String = scope
        .iter()
        .map(|s| {
            // The identifier stays in the markup (for developers and tests), not in view.
            let (class, open, close) = if s.is_admin() {
                (" class=\"admin-scope\"", "<strong>", "</strong>")
            } else {
                ("", "", "")
            };
            format!(
                "<li{class} data-scope=\"{}\">{open}{}{close}</li>",
                s.as_str(),
                escape(s.description())
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
             <p id=\"redirect-host\">Whatever you choose, you will be sent to <strong>{destination}</strong>.</p>\
             <form method=\"post\" action=\"/consent\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"req\" value=\"{req}\">\
             <div class=\"actions\">\
             <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\" class=\"primary\">Allow</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\" class=\"secondary\">Deny</button>\
             </div></form>",
            client = escape(client_name),
            email = escape(user_email),
            destination = escape(destination),
            csrf = escape(csrf),
            req = escape(req),
        ),
    )
}

/// Where a redirect URI sends the browser, in words for the consent page: the host of an
/// `https` or `http` URI (with "this device" for a loopback address), or the scheme of a
/// native app's private-use URI.
///
/// ```
/// use deedbolt_http::web::pages::redirect_destination;
/// assert_eq!(redirect_destination("https://App.Example.com:8443/cb"), "app.example.com");
/// assert_eq!(redirect_destination("http://127.0.0.1:5000/cb"), "127.0.0.1 (this device)");
/// assert_eq!(redirect_destination("com.example.app:/cb"), "the app com.example.app on this device");
/// ```
pub fn redirect_destination(redirect_uri: &str) -> String {
    let Ok(url) = url::Url::parse(redirect_uri) else {
        return redirect_uri.to_owned();
    };
    match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => format!("{ip} (this device)"),
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => format!("[{ip}] (this device)"),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        None => format!("the app {} on this device", url.scheme()),
    }
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
