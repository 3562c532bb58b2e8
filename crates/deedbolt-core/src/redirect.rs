//! Redirect URIs: registered exactly, compared exactly (RFC 9700 §2.1; RFC 6749 §3.1.2).
//!
//! The registered string is kept as it was given and compared byte for byte. A semantic
//! comparison (normalising case, default ports, trailing slashes, percent-encoding) is
//! unsafe: every normalisation is a chance for an attacker's URI to "equal" a registered
//! one, and open redirectors have been built from exactly such leniency. The one exception
//! is RFC 8252 §7.3: for a loopback IP redirect of a native app, the port may differ,
//! because the app picks a free port at run time.

use std::fmt;

use serde::Serialize;

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    /// Not an absolute URI.
    #[error("redirect URI must be an absolute URI")]
    NotAbsolute,
    /// Has a fragment (RFC 6749 §3.1.2: MUST NOT include a fragment).
    #[error("redirect URI must not contain a fragment")]
    Fragment,
    /// `http` on a non-loopback host.
    #[error(
        "redirect URI must use https (http is allowed only for 127.0.0.1, [::1] and localhost)"
    )]
    InsecureHttp,
    /// Too long, or with spaces or control characters.
    #[error("redirect URI is too long or contains spaces or control characters")]
    Malformed,
    /// A private-use scheme without a dot (RFC 8252 §7.1 asks for reverse domain names).
    #[error(
        "custom redirect schemes must be reverse domain names, e.g. com.example.app:/callback"
    )]
    CustomScheme,
}

/// A redirect URI, kept exactly as registered.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RedirectUri(String);

/// The parts of a URI this module looks at.
struct Parts<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

fn split(uri: &str) -> Option<Parts<'_>> {
    let (scheme, after) = uri.split_once(':')?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let Some(authority_and_rest) = after.strip_prefix("//") else {
        return Some(Parts {
            scheme,
            host: "",
            port: None,
            rest: after,
        });
    };
    let end = authority_and_rest
        .find(['/', '?', '#'])
        .unwrap_or(authority_and_rest.len());
    let (authority, rest) = authority_and_rest.split_at(end);
    if authority.contains('@') {
        return None; // userinfo in a redirect URI is only ever a phishing aid
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']')?;
        let port = tail.strip_prefix(':');
        (&authority[..h.len() + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    Some(Parts {
        scheme,
        host,
        port,
        rest,
    })
}

fn is_loopback_ip(host: &str) -> bool {
    host == "127.0.0.1" || host == "[::1]"
}

impl RedirectUri {
    /// Validates a URI for registration.
    ///
    /// ```
    /// use deedbolt_core::redirect::RedirectUri;
    /// assert!(RedirectUri::parse("https://app.example.com/cb").is_ok());
    /// assert!(RedirectUri::parse("http://127.0.0.1:8400/cb").is_ok());
    /// assert!(RedirectUri::parse("com.example.app:/oauth2redirect").is_ok());
    /// assert!(RedirectUri::parse("http://app.example.com/cb").is_err());
    /// assert!(RedirectUri::parse("https://app.example.com/cb#frag").is_err());
    /// assert!(RedirectUri::parse("/relative").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, RedirectUriError> {
        if s.len() > 2000 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RedirectUriError::Malformed);
        }
        if s.contains('#') {
            return Err(RedirectUriError::Fragment);
        }
        let parts = split(s).ok_or(RedirectUriError::NotAbsolute)?;
        match parts.scheme {
            "https" if !parts.host.is_empty() => {}
            "http" if is_loopback_ip(parts.host) || parts.host == "localhost" => {}
            "http" => return Err(RedirectUriError::InsecureHttp),
            "https" => return Err(RedirectUriError::NotAbsolute),
            other if other.contains('.') => {}
            _ => return Err(RedirectUriError::CustomScheme),
        }
        Ok(RedirectUri(s.to_owned()))
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a presented `redirect_uri` matches this registered one: byte-for-byte, or,
    /// for `http` loopback IP literals, byte-for-byte except the port (RFC 8252 §7.3).
    ///
    /// ```
    /// use deedbolt_core::redirect::RedirectUri;
    /// let reg = RedirectUri::parse("http://127.0.0.1/cb").unwrap();
    /// assert!(reg.matches("http://127.0.0.1:51004/cb"));
    /// assert!(!reg.matches("http://127.0.0.1:51004/cb/../evil"));
    /// let web = RedirectUri::parse("https://app.example.com/cb").unwrap();
    /// assert!(web.matches("https://app.example.com/cb"));
    /// assert!(!web.matches("https://app.example.com/cb/"));
    /// assert!(!web.matches("https://APP.example.com/cb"));
    /// assert!(!web.matches("https://app.example.com:443/cb"));
    /// ```
    pub fn matches(&self, presented: &str) -> bool {
        if self.0 == presented {
            return true;
        }
        match (split(&self.0), split(presented)) {
            (Some(reg), Some(got)) => {
                reg.scheme == "http"
                    && got.scheme == "http"
                    && is_loopback_ip(reg.host)
                    && reg.host == got.host
                    && reg.rest == got.rest
                    && got
                        .port
                        .is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            }
            _ => false,
        }
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.0)
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_odd_schemes_are_refused() {
        assert!(RedirectUri::parse("https://app.example.com@evil.example/cb").is_err());
        assert!(RedirectUri::parse("javascript:alert(1)").is_err());
        assert!(RedirectUri::parse("data:text/html,hi").is_err());
        assert!(RedirectUri::parse("https:///nohost").is_err());
        assert!(RedirectUri::parse("http://localhost:3000/cb").is_ok());
    }

    #[test]
    fn localhost_by_name_gets_no_port_leniency() {
        let reg = RedirectUri::parse("http://localhost:3000/cb").unwrap();
        assert!(!reg.matches("http://localhost:3001/cb"));
    }

    #[test]
    fn loopback_port_leniency_keeps_host_and_path() {
        let reg = RedirectUri::parse("http://[::1]:8000/cb").unwrap();
        assert!(reg.matches("http://[::1]:9000/cb"));
        assert!(!reg.matches("http://127.0.0.1:9000/cb"));
        assert!(!reg.matches("http://[::1]:9000/cb?x=1"));
        assert!(!reg.matches("http://[::1]:x/cb"));
    }
}
