//! Store URLs (`redis://`, `unix://`) parsed into an address, a database and a password.
//!
//! Never connects, so a URL can be checked before anything starts.

use crate::ClientError;
use std::path::PathBuf;

/// Where a store listens and how to log in, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Transport.
    pub addr: Addr,
    /// AUTH password.
    pub password: Option<String>,
    /// Database to SELECT (0 is not selected).
    pub db: u16,
}

/// A store's transport address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A unix socket path.
    Unix(PathBuf),
    /// Host and port.
    Tcp(String, u16),
}

impl Endpoint {
    /// Parses `redis://[:password@]host[:port][/db]` or `unix:///path[?db=N&password=P]`
    /// (also `database=` and `auth=`, as phpredis writes them).
    pub fn parse(url: &str) -> Result<Endpoint, ClientError> {
        let bad = || ClientError::BadUrl(url.to_string());
        if let Some(rest) = url.strip_prefix("unix://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if !path.starts_with('/') {
                return Err(bad());
            }
            let mut ep = Endpoint {
                addr: Addr::Unix(PathBuf::from(path)),
                password: None,
                db: 0,
            };
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("db" | "database", d)) => ep.db = d.parse().map_err(|_| bad())?,
                    Some(("password" | "auth", p)) if !p.is_empty() => {
                        ep.password = Some(p.to_string())
                    }
                    _ => return Err(bad()),
                }
            }
            return Ok(ep);
        }
        let rest = url.strip_prefix("redis://").ok_or_else(bad)?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => {
                // `user:password@` or `:password@`; users (ACL) are not supported.
                let pass = a.rsplit_once(':').map_or(a, |(_, p)| p);
                (Some(pass.to_string()).filter(|p| !p.is_empty()), r)
            }
            None => (None, rest),
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((h, d)) if !d.is_empty() => (h, d.parse::<u16>().map_err(|_| bad())?),
            Some((h, _)) => (h, 0),
            None => (rest, 0),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || (h.starts_with('[') && h.ends_with(']')) => {
                (h, p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (hostport, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains([' ', '?', '#', '/']) {
            return Err(bad());
        }
        Ok(Endpoint {
            addr: Addr::Tcp(host.to_string(), port),
            password: auth,
            db,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("redis://:secret@10.0.0.1:6380/2").unwrap();
        assert_eq!(e.addr, Addr::Tcp("10.0.0.1".into(), 6380));
        assert_eq!((e.password.as_deref(), e.db), (Some("secret"), 2));
        let e = Endpoint::parse("redis://localhost").unwrap();
        assert_eq!(
            (e.addr, e.password, e.db),
            (Addr::Tcp("localhost".into(), 6379), None, 0)
        );
        let e = Endpoint::parse("redis://[::1]:7000/").unwrap();
        assert_eq!(e.addr, Addr::Tcp("::1".into(), 7000));
        let e = Endpoint::parse("unix:///run/s.sock?database=3&auth=pw").unwrap();
        assert_eq!(e.addr, Addr::Unix("/run/s.sock".into()));
        assert_eq!((e.password.as_deref(), e.db), (Some("pw"), 3));
        for bad in [
            "http://x",
            "unix://rel",
            "redis://",
            "redis://h:99999",
            "unix:///s?x=1",
            "redis://h/x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
