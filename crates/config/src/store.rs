//! `[store]`: the Redis-compatible store every PHP worker is pointed at — embedded in Isola
//! (default), a real Redis server, or none.
use crate::raw::RawStore;
use std::net::SocketAddr;

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// No store: workers get no `ISOLA_STORE`.
    Off,
    /// Isola's own store, on a unix socket in its runtime folder (and `listen`, if set).
    Embedded {
        /// Extra TCP listener.
        listen: Option<SocketAddr>,
        /// AUTH password.
        requirepass: Option<String>,
    },
    /// A Redis server elsewhere.
    External {
        /// As configured: `redis://...` or `unix:///...`.
        url: String,
    },
}

/// `[store]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Where.
    pub backend: StoreBackend,
    /// PHP sessions in the store: `Some(true)`/`Some(false)` as configured, `None` to decide
    /// by whether PHP has the redis extension.
    pub sessions: Option<bool>,
    /// This server's name among several sharing the store (`None`: host name and port).
    pub node_id: Option<String>,
}

pub(crate) fn validate(s: RawStore, errs: &mut Vec<String>) -> StoreSettings {
    let listen = s
        .listen
        .as_deref()
        .and_then(|a| match a.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                errs.push(format!(
                    "store.listen: {a:?} is not an address; use IP:PORT, e.g. \"127.0.0.1:6379\""
                ));
                None
            }
        });
    if let Some(p) = &s.requirepass {
        if p.is_empty() || p.contains(['&', '?', '#', '/', '@', ':', ' ', '\n']) {
            errs.push(
                "store.requirepass: must be non-empty, without spaces or any of & ? # / @ :"
                    .to_string(),
            );
        }
    }
    let backend = match (s.backend.as_deref(), s.url) {
        (Some("off"), None) => StoreBackend::Off,
        (None | Some("embedded"), None) => StoreBackend::Embedded {
            listen,
            requirepass: s.requirepass.clone(),
        },
        (None | Some("redis"), Some(url)) => {
            if crate::store::parse_url(&url).is_none() {
                errs.push(format!(
                    "store.url: {url:?} is not redis://[:password@]host[:port][/db] or unix:///path"
                ));
            }
            StoreBackend::External { url }
        }
        (Some(b @ ("off" | "embedded")), Some(_)) => {
            errs.push(format!("store.url: only applies without backend = {b:?}"));
            StoreBackend::Off
        }
        (Some(other), _) => {
            errs.push(format!(
                "store.backend: {other:?} is not a backend; use \"embedded\" or \"off\", or set url"
            ));
            StoreBackend::Off
        }
    };
    if !matches!(backend, StoreBackend::Embedded { .. }) {
        for (key, set) in [
            ("listen", s.listen.is_some()),
            ("requirepass", s.requirepass.is_some()),
        ] {
            if set {
                errs.push(format!("store.{key}: only applies to the embedded store"));
            }
        }
    }
    if let Some(id) = &s.node_id {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'*')
        {
            errs.push(format!(
                "store.node_id: {id:?} must be 1 to 64 printable characters without spaces or '*'"
            ));
        }
    }
    StoreSettings {
        backend,
        sessions: s.sessions,
        node_id: s.node_id,
    }
}

/// A store address as phpredis's session handler writes it: `tcp://host:port?database=N&auth=P`
/// or `unix:///path?...`. `None` when `url` is not one Isola understands.
pub fn parse_url(url: &str) -> Option<String> {
    if let Some(path) = url.strip_prefix("unix://") {
        return (path.starts_with('/') && !path.contains(['?', '#', ' '])).then(|| url.to_string());
    }
    let rest = url.strip_prefix("redis://")?;
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a.trim_start_matches(':').to_string()), r),
        None => (None, rest),
    };
    let (hostport, db) = match rest.split_once('/') {
        Some((h, d)) if !d.is_empty() => (h, Some(d.parse::<u16>().ok()?)),
        Some((h, _)) => (h, None),
        None => (rest, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse::<u16>().ok()?),
        _ => (hostport, 6379),
    };
    if host.is_empty() || host.contains([' ', '?', '#']) {
        return None;
    }
    let mut out = format!("tcp://{host}:{port}");
    let mut params = Vec::new();
    if let Some(d) = db {
        params.push(format!("database={d}"));
    }
    if let Some(a) = auth.filter(|a| !a.is_empty()) {
        params.push(format!("auth={a}"));
    }
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("redis://localhost").as_deref(),
            Some("tcp://localhost:6379")
        );
        assert_eq!(
            parse_url("redis://:s3cret@10.0.0.5:6380/2").as_deref(),
            Some("tcp://10.0.0.5:6380?database=2&auth=s3cret")
        );
        assert_eq!(
            parse_url("unix:///run/redis.sock").as_deref(),
            Some("unix:///run/redis.sock")
        );
        for bad in [
            "http://x",
            "redis://",
            "redis://h:port",
            "unix://relative",
            "redis://h/x",
        ] {
            assert_eq!(parse_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn backends() {
        let mut errs = Vec::new();
        let d = validate(RawStore::default(), &mut errs);
        assert_eq!(
            d.backend,
            StoreBackend::Embedded {
                listen: None,
                requirepass: None
            }
        );
        let off = validate(
            RawStore {
                backend: Some("off".into()),
                ..RawStore::default()
            },
            &mut errs,
        );
        assert_eq!(off.backend, StoreBackend::Off);
        assert!(errs.is_empty(), "{errs:?}");
        validate(
            RawStore {
                backend: Some("memcached".into()),
                ..RawStore::default()
            },
            &mut errs,
        );
        validate(
            RawStore {
                url: Some("redis://h".into()),
                listen: Some("nowhere".into()),
                ..RawStore::default()
            },
            &mut errs,
        );
        let all = errs.join("\n");
        for want in [
            "store.backend",
            "store.listen: \"nowhere\"",
            "store.listen: only applies",
        ] {
            assert!(all.contains(want), "{want} missing from {all}");
        }
    }
}
