//! Who the client is: its address as the server found it for a request, and the network it is
//! budgeted as (every per-client budget and throttle keys by it).

/// The client's address, as the server found it for this request: the TCP peer, or, when
/// that is a trusted proxy, the address the proxies forwarded (`COATCHECK_TRUSTED_PROXIES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);

/// The client's address of a request: its [`ClientIp`], or the TCP peer when the server's
/// outer layer did not run (a router assembled without it).
pub fn client_addr(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<ClientIp>()
        .map(|client| client.0)
        .or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip())
        })
}

/// The network a client address is budgeted as: an IPv4 address is itself; an IPv6 address
/// stands for its /64, the smallest network one subscriber is given (RFC 6177: a home or
/// office gets a /64 or more, and picks addresses in it at will — one client with a /64 has
/// 2^64 addresses, so a budget per IPv6 address would be no budget). Every per-client budget
/// and throttle keys by this: new sessions, registrations, login failures, the hashing share,
/// connections and event streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientNet(std::net::IpAddr);

impl ClientNet {
    pub fn of(ip: std::net::IpAddr) -> ClientNet {
        use std::net::{IpAddr, Ipv6Addr};
        match ip {
            IpAddr::V4(v4) => ClientNet(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientNet(IpAddr::V4(v4)),
                None => ClientNet(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & !((1u128 << 64) - 1),
                ))),
            },
        }
    }
}

impl std::fmt::Display for ClientNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            std::net::IpAddr::V4(v4) => write!(f, "{v4}"),
            std::net::IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}
