//! Who is asking: the client's address as the sign-in throttle counts it.
//!
//! Behind a reverse proxy every request arrives from the proxy's address, so a per-address
//! limit would make all clients share one budget, and one person guessing keys would lock
//! everyone out. `X-Forwarded-For` says who the proxy talked to, but anyone can send that
//! header: it is believed only when the TCP peer is a proxy the operator named
//! (`KIT_OAUTH_TRUSTED_PROXIES`). Then the client is the right-most address in the header that
//! is not itself a trusted proxy: the hops to its right were appended by proxies we trust, the
//! ones to its left were written by the client and prove nothing.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::HeaderMap;
use http::request::Parts;
use ipnet::IpNet;

use crate::AppState;

/// The proxies whose `X-Forwarded-For` is believed (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// Why a trusted-proxy list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither an IP address nor a network like 10.0.0.0/8")]
pub struct BadProxyEntry(pub String);

impl TrustedProxies {
    /// None: `X-Forwarded-For` is ignored and the TCP peer is the client.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// A comma-separated list of addresses and networks: `10.0.0.0/8, 192.168.1.7, ::1`.
    ///
    /// # Errors
    /// The first entry that is neither.
    pub fn parse(raw: &str) -> Result<Self, BadProxyEntry> {
        raw.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadProxyEntry(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client behind `peer`, given the request's headers.
    #[must_use]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Every X-Forwarded-For line, in order, is one list (RFC 7230 §3.2.2).
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            // A hop we cannot read stops the walk: the last address we could vouch for stands.
            let Ok(address) = hop.parse::<IpAddr>() else {
                break;
            };
            client = canonical(address);
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// IPv4 addresses that arrive mapped into IPv6 (`::ffff:10.0.0.1`) are the same clients.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// The client's address: the TCP peer, or who a trusted proxy says it forwarded for. `None`
/// when the server was started without connect info (`app::start` provides it; a router
/// served without it sees `None`, and all its clients share one sign-in budget).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(
            |ConnectInfo(peer)| {
                state
                    .options
                    .trusted_proxies
                    .client(canonical(peer.ip()), &parts.headers)
            },
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::none();
        assert_eq!(
            none.client(ip("10.0.0.1"), &forwarded(&["203.0.113.9"])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            proxies.client(ip("198.51.100.2"), &forwarded(&["203.0.113.9"])),
            ip("198.51.100.2")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        // The client wrote "1.2.3.4" itself; 203.0.113.9 reached our proxies' edge.
        let headers = forwarded(&["1.2.3.4, 203.0.113.9", "192.168.1.7"]);
        assert_eq!(proxies.client(ip("10.1.2.3"), &headers), ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_itself_the_client() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_last_address_vouched_for() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let headers = forwarded(&["203.0.113.9, not-an-address, 10.0.0.5"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("10.0.0.5"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
        assert_eq!(
            proxies.client(ip("::ffff:127.0.0.1"), &forwarded(&["203.0.113.9"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn malformed_entries_are_named() {
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/8, proxy.local"),
            Err(BadProxyEntry("proxy.local".into()))
        );
        assert_eq!(TrustedProxies::parse(" , "), Ok(TrustedProxies::none()));
    }
}
