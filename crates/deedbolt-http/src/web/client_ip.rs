//! The client's IP address: the peer, or what a trusted proxy says in `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// An `X-Forwarded-For` entry from a trusted proxy that is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an X-Forwarded-For entry from a trusted proxy is not an IP address")]
pub struct MalformedForwardedFor;

/// One `X-Forwarded-For` entry as an IP address. Proxies write `ip`, and some `ip:port`,
/// `[v6]` or `[v6]:port`: the address is taken from each. IPv4-mapped IPv6 addresses
/// count as their IPv4 address. Anything else is `None`.
pub fn parse_forwarded_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The client's IP: the peer, or — only when the peer is a trusted proxy — the rightmost
/// address in `X-Forwarded-For` that is not itself a trusted proxy (the peer when every
/// entry is). An entry that is no address is an error, never a reason to fall back to
/// the proxy's own address (which would put every client behind it in one rate-limit
/// bucket). Never trusted by default.
pub fn forwarded_client_ip(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> Result<IpAddr, MalformedForwardedFor> {
    let peer = peer.ip().to_canonical();
    if !trusted.contains(&peer) {
        return Ok(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().map_err(|_| MalformedForwardedFor))
        .collect::<Result<Vec<_>, _>>()?;
    let hops = forwarded
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // Empty list elements are allowed and mean nothing (RFC 9110 §5.6.1).
        .filter(|h| !h.is_empty())
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match parse_forwarded_hop(hop) {
            Some(ip) if trusted.contains(&ip) => continue,
            Some(ip) => return Ok(ip),
            None => return Err(MalformedForwardedFor),
        }
    }
    Ok(peer)
}

/// [`forwarded_client_ip`] for handlers: the router has already refused requests whose
/// `X-Forwarded-For` is malformed ([`crate::web::edge`]), so the peer
/// fallback here is never reached behind it.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    forwarded_client_ip(peer, headers, trusted).unwrap_or_else(|_| peer.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("9.9.9.9, 10.0.0.5"),
        );
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(client_ip(peer, &h, &[]), peer.ip());
        let trusted = ["10.0.0.1".parse().unwrap()];
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
        let both = ["10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()];
        assert_eq!(
            client_ip(peer, &h, &both),
            "9.9.9.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_entries_with_ports_or_brackets_give_their_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (hop, expected) in [
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7:51234", "203.0.113.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("[::ffff:203.0.113.7]:80", "203.0.113.7"),
        ] {
            assert_eq!(parse_forwarded_hop(hop), Some(ip(expected)), "{hop}");
        }
        for bad in [
            "junk",
            "unknown",
            "203.0.113.7:",
            "203.0.113.7:port",
            "[203.0.113.7]",
            "[2001:db8::7",
            "2001:db8::7]:80",
            "fe80::1%eth0",
            "203.0.113.7 , x",
        ] {
            assert_eq!(parse_forwarded_hop(bad), None, "{bad}");
        }
    }

    #[test]
    fn behind_a_trusted_proxy_the_parsed_address_is_taken_or_the_request_refused() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let trusted = ["10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()];
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", HeaderValue::from_static(v));
            h
        };
        let ip = |s: &str| Ok(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            forwarded_client_ip(peer, &with("9.9.9.9:1234"), &trusted),
            ip("9.9.9.9")
        );
        assert_eq!(
            forwarded_client_ip(peer, &with("9.9.9.9, [2001:db8::1]:80"), &trusted),
            ip("2001:db8::1")
        );
        // A trusted proxy's own entry, with a port, is skipped like a bare one.
        assert_eq!(
            forwarded_client_ip(peer, &with("9.9.9.9, 10.0.0.5:8080"), &trusted),
            ip("9.9.9.9")
        );
        // An empty trailing element is no entry.
        assert_eq!(
            forwarded_client_ip(peer, &with("9.9.9.9, "), &trusted),
            ip("9.9.9.9")
        );
        for bad in ["junk", "9.9.9.9, junk", "[9.9.9.9]"] {
            assert_eq!(
                forwarded_client_ip(peer, &with(bad), &trusted),
                Err(MalformedForwardedFor),
                "{bad}"
            );
        }
        // Junk to the left of the client's address is the client's own claim: not read.
        assert_eq!(
            forwarded_client_ip(peer, &with("junk, 9.9.9.9"), &trusted),
            ip("9.9.9.9")
        );
        // Not from a trusted proxy: the header is never read, malformed or not.
        let stranger: SocketAddr = "192.0.2.9:1".parse().unwrap();
        assert_eq!(
            forwarded_client_ip(stranger, &with("junk"), &trusted),
            ip("192.0.2.9")
        );
        // No header: the proxy itself is the client.
        assert_eq!(
            forwarded_client_ip(peer, &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }
}
