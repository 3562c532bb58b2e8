//! Cookies: reading them from a request, and the one [`CookiePolicy`] that decides their
//! wire names and attributes, so every cookie this server sets (login session, CSRF
//! tokens, the backend-for-frontend's session and flow) follows the same rules.

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};

/// How cookies are named and flagged, decided once from the issuer's scheme.
///
/// On an https issuer ([`CookiePolicy::Secure`]) every cookie gets the `Secure` attribute
/// and a name prefix browsers enforce, so a sibling subdomain or a plain-http page cannot
/// plant or overwrite it: `__Host-` for `Path=/` cookies (`Secure`, `Path=/`, no `Domain`:
/// bound to this exact host), `__Secure-` for the others, since `__Host-` requires
/// `Path=/` (still `Secure`-only, so no plain-http response can set it). On a plain-http
/// issuer (loopback development, [`CookiePolicy::Plain`]) names stay plain: browsers
/// refuse prefixed cookies there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookiePolicy {
    /// An https issuer: `Secure` and prefixed names.
    Secure,
    /// A plain-http issuer: plain names, no `Secure`.
    Plain,
}

/// The `SameSite` attribute of a cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    /// Never sent on cross-site requests.
    Strict,
    /// Sent on cross-site top-level GET navigations only.
    Lax,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
        }
    }
}

impl CookiePolicy {
    /// The policy for an issuer URL: [`CookiePolicy::Secure`] when it is https.
    pub fn for_issuer(issuer: &str) -> Self {
        if issuer.starts_with("https://") {
            CookiePolicy::Secure
        } else {
            CookiePolicy::Plain
        }
    }

    /// The name cookie `name` with `path` has on the wire (see [`CookiePolicy`]).
    pub fn name(self, name: &str, path: &str) -> String {
        match (self, path) {
            (CookiePolicy::Plain, _) => name.to_owned(),
            (CookiePolicy::Secure, "/") => format!("__Host-{name}"),
            (CookiePolicy::Secure, _) => format!("__Secure-{name}"),
        }
    }

    /// The value of cookie `name` (set with `path`) in the request, under its wire name;
    /// an unprefixed copy on an https issuer is ignored.
    pub fn find<'a>(self, headers: &'a HeaderMap, name: &str, path: &str) -> Option<&'a str> {
        cookie(headers, &self.name(name, path))
    }

    /// A `Set-Cookie` value: `HttpOnly`, the given `SameSite` and `Path`, `Max-Age` if
    /// given (none: a browser-session cookie), and `Secure` plus the name prefix under
    /// [`CookiePolicy::Secure`]. `max_age` 0 with an empty value clears the cookie.
    pub fn set(
        self,
        name: &str,
        value: &str,
        path: &str,
        max_age: Option<i64>,
        same_site: SameSite,
    ) -> HeaderValue {
        let secure = match self {
            CookiePolicy::Secure => "; Secure",
            CookiePolicy::Plain => "",
        };
        let age = max_age
            .map(|a| format!("; Max-Age={a}"))
            .unwrap_or_default();
        let name = self.name(name, path);
        let same_site = same_site.as_str();
        HeaderValue::from_str(&format!(
            "{name}={value}; HttpOnly; SameSite={same_site}; Path={path}{age}{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// [`CookiePolicy::set`] for a `Path=/` cookie that lives `max_age` seconds.
    pub fn set_root(
        self,
        name: &str,
        value: &str,
        max_age: i64,
        same_site: SameSite,
    ) -> HeaderValue {
        self.set(name, value, "/", Some(max_age), same_site)
    }
}

/// The value of the cookie called exactly `name` (its wire name) in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_many() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; deedbolt_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, "deedbolt_session"), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn https_cookies_are_prefixed_and_secure() {
        let secure = CookiePolicy::for_issuer("https://as.example");
        assert_eq!(secure.name("s", "/"), "__Host-s");
        assert_eq!(secure.name("s", "/bff"), "__Secure-s");
        let v = secure.set("s", "v", "/bff", None, SameSite::Strict);
        assert_eq!(
            v.to_str().unwrap(),
            "__Secure-s=v; HttpOnly; SameSite=Strict; Path=/bff; Secure"
        );
    }

    #[test]
    fn plain_http_cookies_keep_their_names() {
        let plain = CookiePolicy::for_issuer("http://127.0.0.1:8080");
        assert_eq!(plain.name("s", "/"), "s");
        let v = plain.set_root("s", "", 0, SameSite::Lax);
        assert_eq!(
            v.to_str().unwrap(),
            "s=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
        );
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("__Host-s=x; s=y"));
        assert_eq!(plain.find(&h, "s", "/"), Some("y"));
        assert_eq!(CookiePolicy::Secure.find(&h, "s", "/"), Some("x"));
    }
}
