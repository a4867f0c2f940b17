//! Trusted proxies: who the client is, and whether it used HTTPS, when a load balancer or
//! CDN stands in front of Isola.
//!
//! Owns: reading `Forwarded` (RFC 7239) and `X-Forwarded-For` / `X-Forwarded-Proto`, and
//! believing them only from configured peers. The address chain is walked from the right
//! (the hop nearest to Isola) past every trusted proxy; the first untrusted address is the
//! client (nginx `real_ip_recursive on`). `Forwarded` wins over the `X-` headers when both
//! are present.
//!
//! Never: believes a header from a peer that is not trusted, or lets a malformed entry
//! name the client: the walk stops at it and the last good hop is the client.
use http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The client as Isola believes it to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    /// The client's address (REMOTE_ADDR); the peer's port is kept.
    pub addr: SocketAddr,
    /// The client used HTTPS (to Isola, or to the trusted proxy).
    pub https: bool,
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    proxies.iter().any(|n| n.contains(&ip))
}

/// The client of a request that came from `peer` over a connection that is (`https`) or is
/// not TLS, given the request's headers and the trusted proxies.
pub(crate) fn client(
    peer: SocketAddr,
    https: bool,
    headers: &HeaderMap,
    proxies: &[IpNet],
) -> Client {
    let mut c = Client { addr: peer, https };
    if proxies.is_empty() || !trusted(peer.ip(), proxies) {
        return c;
    }
    let forwarded: Vec<&str> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| split_outside_quotes(v, ','))
        .collect();
    let (chain, proto): (Vec<Option<IpAddr>>, Option<String>) = if !forwarded.is_empty() {
        let mut chain = Vec::new();
        let mut proto = None;
        for element in &forwarded {
            let mut addr = None;
            for pair in split_outside_quotes(element, ';') {
                let Some((k, v)) = pair.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "for" => addr = Some(node_ip(v)),
                    "proto" => proto = Some(v.to_ascii_lowercase()),
                    _ => {}
                }
            }
            chain.push(addr.flatten());
        }
        (chain, proto)
    } else {
        let chain = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or(",").split(','))
            .map(|a| node_ip(a.trim()))
            .collect();
        let proto = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .map(|p| p.trim().to_ascii_lowercase());
        (chain, proto)
    };
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) => {
                c.addr = SocketAddr::new(ip.to_canonical(), peer.port());
                if !trusted(*ip, proxies) {
                    break;
                }
            }
            None => break,
        }
    }
    match proto.as_deref() {
        Some("https") => c.https = true,
        Some("http") => c.https = false,
        _ => {}
    }
    c
}

/// An address as Forwarded (`192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80`) or
/// X-Forwarded-For writes it; `unknown` and obfuscated identifiers are `None`.
fn node_ip(v: &str) -> Option<IpAddr> {
    let v = v.trim();
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// Splits on `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, ch) in s.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|p| !p.is_empty());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn who(peer: &str, pairs: &[(&'static str, &str)], proxies: &[&str]) -> (String, bool) {
        let c = client(
            peer.parse().unwrap(),
            false,
            &headers(pairs),
            &nets(proxies),
        );
        (c.addr.ip().to_string(), c.https)
    }

    #[test]
    fn untrusted_peers_are_not_believed() {
        let h = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ];
        assert_eq!(who("192.0.2.9:5000", &h, &[]), ("192.0.2.9".into(), false));
        assert_eq!(
            who("192.0.2.9:5000", &h, &["10.0.0.0/8"]),
            ("192.0.2.9".into(), false)
        );
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right_past_trusted_hops() {
        let proxies = ["10.0.0.0/8", "127.0.0.1/32"];
        let h = [
            ("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.1.1.1"),
            ("x-forwarded-proto", "https"),
        ];
        // The client forged 6.6.6.6; the proxy appended the real one.
        assert_eq!(
            who("127.0.0.1:4000", &h, &proxies),
            ("203.0.113.5".into(), true)
        );
        // Several header lines are one list.
        let h = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.5"),
        ];
        assert_eq!(
            who("10.0.0.2:1", &h, &proxies),
            ("203.0.113.5".into(), false)
        );
        // All trusted: the leftmost.
        let h = [("x-forwarded-for", "10.9.9.9, 10.1.1.1")];
        assert_eq!(who("10.0.0.2:1", &h, &proxies), ("10.9.9.9".into(), false));
        // Garbage stops the walk at the last good hop.
        let h = [("x-forwarded-for", "203.0.113.5, garbage, 10.1.1.1")];
        assert_eq!(who("10.0.0.2:1", &h, &proxies), ("10.1.1.1".into(), false));
    }

    #[test]
    fn forwarded_wins_and_understands_quoting_and_ports() {
        let proxies = ["::1/128", "10.0.0.0/8"];
        let h = [
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https, for=10.2.2.2",
            ),
            ("x-forwarded-for", "9.9.9.9"),
        ];
        assert_eq!(
            who("[::1]:4000", &h, &proxies),
            ("2001:db8::7".into(), true)
        );
        let h = [("forwarded", "for=unknown;proto=http")];
        assert_eq!(who("10.0.0.1:1", &h, &proxies), ("10.0.0.1".into(), false));
        let h = [(
            "forwarded",
            "for=192.0.2.60;proto=\"https\";by=203.0.113.43",
        )];
        assert_eq!(who("10.0.0.1:1", &h, &proxies), ("192.0.2.60".into(), true));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_blocks() {
        let h = [("x-forwarded-for", "203.0.113.5")];
        assert_eq!(
            who("[::ffff:127.0.0.1]:80", &h, &["127.0.0.0/8"]),
            ("203.0.113.5".into(), false)
        );
    }
}
