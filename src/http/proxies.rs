//! The client's address behind a load balancer. Only when the TCP peer is one of
//! `COATCHECK_TRUSTED_PROXIES` is `X-Forwarded-For` believed, and then only as far as it was
//! written by trusted proxies: the right-most entry that is not a trusted proxy is the client
//! (each proxy appends the address it received the request from; everything left of the first
//! untrusted one may have been made up by the client). A header from anyone else changes
//! nothing. Login throttling, the new-session budget, the hashing queue's per-client share and
//! the session registry all use the address found here. The same trust decides whether a
//! request ID (`x-request-id`) that came with the request is kept for its log lines.

use app::server::client::ClientIp;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Addresses (`10.0.0.5`) and networks (`10.0.0.0/8`, `fd00::/8`), separated by commas
    /// or spaces. An empty list trusts nobody.
    pub fn parse(text: &str) -> Result<TrustedProxies, String> {
        let mut networks = Vec::new();
        for entry in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let network = match entry.parse::<IpNet>() {
                Ok(network) => network,
                Err(_) => IpNet::from(entry.parse::<IpAddr>().map_err(|_| entry.to_string())?),
            };
            networks.push(network.trunc());
        }
        Ok(TrustedProxies(networks.into()))
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|network| network.contains(&ip))
    }

    /// The client's address for a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        // Every X-Forwarded-For header, in order, as one list.
        let mut entries: Vec<&str> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else {
                return peer;
            };
            entries.extend(value.split(',').map(str::trim));
        }
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_forwarded(entry) else {
                // Not an address: whatever is left of it cannot be trusted either.
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// An IPv4 address that arrived as IPv6 (`::ffff:192.0.2.1`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `192.0.2.1`, `2001:db8::1`, or either with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// The header that carries a request's ID between a load balancer, this server and its logs.
pub const REQUEST_ID: &str = "x-request-id";

/// Puts the client's address on the request, for everything after it, and drops an
/// `x-request-id` that a trusted proxy did not send (or that is not a sane ID), so that the
/// request-ID layer after this one generates a fresh one: a client must not be able to plant
/// text in the logs or pose as another request.
pub async fn resolve_client(
    State(proxies): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(peer) = peer {
        let client = proxies.client(peer, request.headers());
        request.extensions_mut().insert(ClientIp(client));
    }
    let keep_id = peer.is_some_and(|peer| proxies.trusts(peer))
        && request.headers().get_all(REQUEST_ID).iter().count() == 1
        && request
            .headers()
            .get(REQUEST_ID)
            .is_some_and(|id| is_sane_request_id(id.as_bytes()));
    if !keep_id {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// 1 to 128 characters of letters, digits and `-_.:/+=`: what load balancers generate (UUIDs,
/// hex, base64), and nothing that could break a log line.
fn is_sane_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn forwarded(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_static(value));
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.0.2.10").unwrap();
        let spoofed = forwarded(&["203.0.113.9"]);
        assert_eq!(
            proxies.client(ip("198.51.100.1"), &spoofed),
            ip("198.51.100.1")
        );
        assert_eq!(proxies.client(ip("10.1.2.3"), &spoofed), ip("203.0.113.9"));
        assert_eq!(
            proxies.client(ip("192.0.2.10"), &spoofed),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("10.1.2.3"), &spoofed),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client made up the first entry; the load balancer appended the real one.
        let headers = forwarded(&["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("203.0.113.9"));
        // Ports, IPv6, IPv4-mapped IPv6.
        let headers = forwarded(&["[2001:db8::7]:4711"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("2001:db8::7"));
        let headers = forwarded(&["203.0.113.9:5000"]);
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.1"), &headers),
            ip("203.0.113.9")
        );
        // Garbage: no further than the last address a trusted proxy wrote.
        let headers = forwarded(&["203.0.113.9, not-an-address, 10.0.0.3"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("10.0.0.3"));
        // No header: the peer.
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn only_plain_request_ids_are_kept() {
        assert!(is_sane_request_id(b"6f1c2a9e-5b7d-4c1e-9a0b-2f3e4d5c6b7a"));
        assert!(is_sane_request_id(b"lb-01:1234/abc+def=="));
        assert!(!is_sane_request_id(b""));
        assert!(!is_sane_request_id(b"id with spaces"));
        assert!(!is_sane_request_id(b"id\"quoted\""));
        assert!(!is_sane_request_id("\u{e9}t\u{e9}".as_bytes()));
        assert!(!is_sane_request_id(&[b'a'; 129]));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.internal").is_err());
        assert_eq!(
            TrustedProxies::parse("  ").unwrap(),
            TrustedProxies::default()
        );
    }
}
