//! Who is on the other end of a request: the client address (the peer, or the
//! `X-Forwarded-For` entry a trusted proxy vouches for) and the user agent, as they
//! go into events and the login throttle.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// The longest user agent kept (a header is not a place to store a novel).
const MAX_USER_AGENT: usize = 512;

/// The client's address. Behind proxies listed in `http.trusted_proxies`, it is the
/// rightmost `X-Forwarded-For` entry that is not one of them (the entries left of it
/// were written by the client and prove nothing); from any other peer, the header
/// is ignored, so a client cannot pick the address its failures are counted under.
pub fn client_ip(
    trusted: &[ipnet::IpNet],
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<String> {
    let peer = peer?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer.to_string());
    }
    // Right to left: each trusted hop vouches for the entry before it; the first
    // entry that is no trusted proxy is the client. An entry that is no address ends
    // the walk (nothing left of it can be vouched for).
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Ok(ip) = entry.parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client.to_string())
}

/// The `User-Agent` header, cut to a sane length.
pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(MAX_USER_AGENT).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 4000))
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = forwarded("198.51.100.7, 203.0.113.9");
        // Straight from the internet: the header is the client's own claim.
        assert_eq!(
            client_ip(&trusted, &h, peer("192.0.2.1")).as_deref(),
            Some("192.0.2.1")
        );
        // Through the proxy: the rightmost untrusted entry, not the spoofable left one.
        assert_eq!(
            client_ip(&trusted, &h, peer("10.1.2.3")).as_deref(),
            Some("203.0.113.9")
        );
        // Through two proxies.
        let h = forwarded("203.0.113.9, 10.9.9.9");
        assert_eq!(
            client_ip(&trusted, &h, peer("10.1.2.3")).as_deref(),
            Some("203.0.113.9")
        );
        // Garbage left of a good entry does not hide it.
        assert_eq!(
            client_ip(&trusted, &forwarded("junk, 203.0.113.9"), peer("10.1.2.3")).as_deref(),
            Some("203.0.113.9")
        );
        // No header, or nothing usable in it: the proxy itself.
        assert_eq!(
            client_ip(&trusted, &HeaderMap::new(), peer("10.1.2.3")).as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(
            client_ip(&trusted, &forwarded("unknown"), peer("10.1.2.3")).as_deref(),
            Some("10.1.2.3")
        );
        // Nothing trusted (the default): always the peer.
        assert_eq!(
            client_ip(&[], &forwarded("203.0.113.9"), peer("10.1.2.3")).as_deref(),
            Some("10.1.2.3")
        );
    }

    proptest! {
        /// Whatever the header holds, the answer is an address: the peer's, or one
        /// the header spelled.
        #[test]
        fn any_forwarded_header_gives_an_address(value in "[ -~]{0,200}") {
            let Ok(v) = value.parse() else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", v);
            let trusted = nets(&["127.0.0.0/8"]);
            let ip = client_ip(&trusted, &h, peer("127.0.0.1")).unwrap();
            let ip: IpAddr = ip.parse().unwrap();
            let spelled = value.split(',').any(|e| e.trim().parse::<IpAddr>().ok() == Some(ip));
            prop_assert!(ip.to_string() == "127.0.0.1" || spelled);
        }
    }
}
