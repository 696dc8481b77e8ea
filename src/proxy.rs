//! The client's address, behind a reverse proxy or not.
//!
//! Behind nginx every connection a server accepts comes from nginx, so the TCP
//! peer's address says nothing about the client. nginx says who the client is
//! in the `X-Forwarded-For` header (`proxy_set_header X-Forwarded-For
//! $proxy_add_x_forwarded_for` in `deploy/nginx.conf`): it appends the address
//! it got the request from to whatever list the request already carried.
//!
//! Anyone can send that header, though. So [`ClientAddr`] believes it only when
//! the TCP peer is a proxy named by `--trust-proxy` ([`ProxyArgs`]), and then
//! only as far as the proxies it trusts vouch for it: reading the list from the
//! right, the client is the first address that is not a trusted proxy. What the
//! client wrote to the left of that is ignored. A request from any other peer is
//! taken to come from that peer, whatever its headers say.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::ExtensionRejection;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

// ANCHOR: args
/// The `--trust-proxy` flag, for the servers that look at who their clients
/// are. Flatten it into an example's arguments with `#[command(flatten)]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProxyArgs {
    /// The address of a reverse proxy (such as nginx) whose X-Forwarded-For
    /// header is believed (repeatable). A request from any other address comes
    /// from that address, whatever its headers say
    #[arg(long = "trust-proxy", value_name = "ADDR")]
    pub trust_proxy: Vec<IpAddr>,
}
// ANCHOR_END: args

impl ProxyArgs {
    /// The proxies these flags name.
    pub fn trusted(&self) -> TrustedProxies {
        TrustedProxies::new(self.trust_proxy.iter().copied())
    }
}

/// The proxies whose `X-Forwarded-For` is believed; none by default. Cloning is
/// cheap.
///
/// A server's state holds it, so that [`ClientAddr`] can find it:
/// `#[derive(FromRef)]` on the state does the rest.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpAddr]>);

impl TrustedProxies {
    /// Trusts `proxies`, and no one else.
    pub fn new(proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        Self(proxies.into_iter().map(|ip| ip.to_canonical()).collect())
    }

    /// Whether `addr` is one of the trusted proxies.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr.to_canonical())
    }

    // ANCHOR: client_addr
    /// The client's address, for a request that came from `peer` (the TCP
    /// peer) with `headers`.
    ///
    /// From an untrusted peer: the peer, whatever the headers say. From a
    /// trusted proxy: `X-Forwarded-For` read from the right, where each proxy
    /// appended the address it got the request from; the first address that is
    /// not a trusted proxy is the client. Anything to its left was written by
    /// the client, or by proxies that we do not know, and is ignored. An entry
    /// that is not an address ends the search at the last address known.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // Several X-Forwarded-For lines read as one list, in order.
        let from_the_right = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|line| line.as_bytes().rsplit(|&byte| byte == b','));
        for entry in from_the_right {
            let Some(hop) = parse_hop(entry) else {
                break;
            };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
    // ANCHOR_END: client_addr
}

/// One entry of `X-Forwarded-For`: an address, possibly with a port (some
/// proxies add it), in IPv6's case between brackets.
fn parse_hop(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    let ip = text
        .parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()?;
    Some(ip.to_canonical())
}

// ANCHOR: extractor
/// The client's address, as [`TrustedProxies::client_addr`] works it out:
/// take it as an argument of a handler or a middleware function.
///
/// It needs the TCP peer's address, which axum knows when the app is served
/// with `into_make_service_with_connect_info::<SocketAddr>()` (as
/// [`crate::serve`] does), and the [`TrustedProxies`], from the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl<S> FromRequestParts<S> for ClientAddr
where
    TrustedProxies: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ExtensionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) =
            ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await?;
        let trusted = TrustedProxies::from_ref(state);
        Ok(ClientAddr(trusted.client_addr(peer.ip(), &parts.headers)))
    }
}
// ANCHOR_END: extractor

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX: &str = "127.0.0.1";

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// The client that `trusted` sees for a request from `peer` with these
    /// X-Forwarded-For lines.
    fn client(trusted: &[&str], peer: &str, lines: &[&str]) -> IpAddr {
        let trusted = TrustedProxies::new(trusted.iter().map(|t| ip(t)));
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        trusted.client_addr(ip(peer), &headers)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(client(&[], "10.1.1.1", &["6.6.6.6"]), ip("10.1.1.1"));
        assert_eq!(client(&[NGINX], "10.1.1.1", &["6.6.6.6"]), ip("10.1.1.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_client() {
        assert_eq!(client(&[NGINX], NGINX, &["10.2.2.2"]), ip("10.2.2.2"));
        // The client forged the left part; nginx appended the right one.
        let forged = ["6.6.6.6, 10.2.2.2"];
        assert_eq!(client(&[NGINX], NGINX, &forged), ip("10.2.2.2"));
        let two_lines = ["6.6.6.6", "10.2.2.2"];
        assert_eq!(client(&[NGINX], NGINX, &two_lines), ip("10.2.2.2"));
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_through() {
        let proxies = [NGINX, "10.0.0.9"];
        let chain = ["6.6.6.6, 10.2.2.2, 10.0.0.9"];
        assert_eq!(client(&proxies, NGINX, &chain), ip("10.2.2.2"));
        // A proxy we do not trust is as far as we can see.
        assert_eq!(client(&[NGINX], NGINX, &chain), ip("10.0.0.9"));
    }

    #[test]
    fn without_a_usable_header_the_last_known_address_is_the_client() {
        assert_eq!(client(&[NGINX], NGINX, &[]), ip(NGINX));
        assert_eq!(client(&[NGINX], NGINX, &["unknown"]), ip(NGINX));
        let proxies = [NGINX, "10.0.0.9"];
        let garbled = ["6.6.6.6, junk, 10.0.0.9"];
        assert_eq!(client(&proxies, NGINX, &garbled), ip("10.0.0.9"));
    }

    #[test]
    fn ports_brackets_and_mapped_ipv4_are_understood() {
        let with_port = ["10.2.2.2:5555"];
        assert_eq!(client(&[NGINX], NGINX, &with_port), ip("10.2.2.2"));
        let v6 = ["[2001:db8::1]:443"];
        assert_eq!(client(&[NGINX], NGINX, &v6), ip("2001:db8::1"));
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
        let mapped = "::ffff:127.0.0.1";
        assert_eq!(client(&[NGINX], mapped, &["10.2.2.2"]), ip("10.2.2.2"));
    }
}
