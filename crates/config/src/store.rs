//! `[store]`: the Redis-compatible store every PHP worker is pointed at — embedded in Isola
//! (default), a real Redis server, or none.
use crate::raw::RawStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// When the embedded store's log reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppendFsync {
    /// fsync before replying (group commit): nothing acknowledged is lost.
    Always,
    /// fsync every second: at most about a second of acknowledged writes is lost.
    #[default]
    EverySec,
    /// Left to the kernel.
    No,
}

/// The embedded store's data directory, log and memory settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedStore {
    /// Data directory (locked while running); `None` keeps everything in memory only.
    pub dir: Option<PathBuf>,
    /// `dir` was chosen by Isola, not written in the config: when it cannot be used the store
    /// runs in memory only with a warning instead of refusing to start.
    pub dir_is_default: bool,
    /// Keep the append-only log.
    pub appendonly: bool,
    /// fsync policy.
    pub appendfsync: AppendFsync,
    /// Compact the log when it grew by this percentage since the last compaction (0: never).
    pub auto_aof_rewrite_percentage: u64,
    /// ... and is at least this many bytes.
    pub auto_aof_rewrite_min_size: u64,
    /// Damage before the end of the log truncates instead of refusing to start.
    pub aof_load_truncate: bool,
    /// Memory limit for keys and values in bytes; 0 means none.
    pub maxmemory: u64,
    /// `noeviction`, `allkeys-lru`, `volatile-lru` or `allkeys-random`.
    pub maxmemory_policy: String,
}

/// The eviction policies the embedded store knows.
pub const MAXMEMORY_POLICIES: [&str; 4] = [
    "noeviction",
    "allkeys-lru",
    "volatile-lru",
    "allkeys-random",
];

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
        /// Data directory, log and memory settings.
        data: Box<EmbeddedStore>,
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
    /// Database of Isola's own keys (queues, node heartbeats, tick locks), apart from the
    /// application's so that its `KEYS`, `SCAN`, `DBSIZE` and `FLUSHDB` never meet them.
    pub isola_db: u16,
}

/// Default for [`StoreSettings::isola_db`]: the last of Redis's 16 databases, the one apps
/// are least likely to use.
pub const DEFAULT_ISOLA_DB: u16 = 15;

pub(crate) fn validate(
    s: RawStore,
    state_dir: Option<&Path>,
    errs: &mut Vec<String>,
) -> StoreSettings {
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
    let embedded_keys = [
        ("dir", s.dir.is_some()),
        ("appendonly", s.appendonly.is_some()),
        ("appendfsync", s.appendfsync.is_some()),
        (
            "auto_aof_rewrite_percentage",
            s.auto_aof_rewrite_percentage.is_some(),
        ),
        (
            "auto_aof_rewrite_min_size",
            s.auto_aof_rewrite_min_size.is_some(),
        ),
        ("aof_load_corrupt", s.aof_load_corrupt.is_some()),
        ("maxmemory", s.maxmemory.is_some()),
        ("maxmemory_policy", s.maxmemory_policy.is_some()),
    ];
    let backend = match (s.backend.as_deref(), s.url.clone()) {
        (Some("off"), None) => StoreBackend::Off,
        (None | Some("embedded"), None) => StoreBackend::Embedded {
            listen,
            requirepass: s.requirepass.clone(),
            data: Box::new(embedded(&s, state_dir, errs)),
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
        ]
        .into_iter()
        .chain(embedded_keys)
        {
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
    let isola_db = match s.isola_db {
        None => DEFAULT_ISOLA_DB,
        Some(n) => match u16::try_from(n) {
            Ok(n) if !matches!(backend, StoreBackend::Embedded { .. }) || n < 16 => n,
            _ => {
                errs.push(format!(
                    "store.isola_db: {n} is not a database; the embedded store has 0 to 15"
                ));
                DEFAULT_ISOLA_DB
            }
        },
    };
    StoreSettings {
        backend,
        sessions: s.sessions,
        node_id: s.node_id,
        isola_db,
    }
}

fn embedded(s: &RawStore, state_dir: Option<&Path>, errs: &mut Vec<String>) -> EmbeddedStore {
    let appendonly = s.appendonly.unwrap_or(true);
    let dir = match s.dir.as_deref() {
        Some(d) if d.starts_with('/') && !d.contains('\0') => Some(PathBuf::from(d)),
        Some(d) => {
            errs.push(format!("store.dir: {d:?} must be an absolute path"));
            None
        }
        None if appendonly => match state_dir {
            Some(d) => Some(d.to_path_buf()),
            None => {
                errs.push(
                    "store.dir: no default (none of STATE_DIRECTORY, XDG_STATE_HOME, HOME is set); set dir or appendonly = false"
                        .to_string(),
                );
                None
            }
        },
        None => None,
    };
    let appendfsync = match s.appendfsync.as_deref() {
        None | Some("everysec") => AppendFsync::EverySec,
        Some("always") => AppendFsync::Always,
        Some("no") => AppendFsync::No,
        Some(other) => {
            errs.push(format!(
                "store.appendfsync: {other:?} is not a policy; use \"everysec\", \"always\" or \"no\""
            ));
            AppendFsync::EverySec
        }
    };
    let auto_aof_rewrite_percentage = match s.auto_aof_rewrite_percentage {
        None => 100,
        Some(p) if p >= 0 => p as u64,
        Some(p) => {
            errs.push(format!(
                "store.auto_aof_rewrite_percentage: {p} must not be negative (0 turns compaction off)"
            ));
            100
        }
    };
    let auto_aof_rewrite_min_size = crate::validate::size(
        errs,
        "store.auto_aof_rewrite_min_size",
        s.auto_aof_rewrite_min_size.clone(),
        64 << 20,
    );
    let aof_load_truncate = match s.aof_load_corrupt.as_deref() {
        None | Some("refuse") => false,
        Some("truncate") => true,
        Some(other) => {
            errs.push(format!(
                "store.aof_load_corrupt: {other:?} is not a choice; use \"refuse\" or \"truncate\""
            ));
            false
        }
    };
    let maxmemory = crate::validate::size(errs, "store.maxmemory", s.maxmemory.clone(), 0);
    let maxmemory_policy = match s.maxmemory_policy.as_deref() {
        None => "noeviction".to_string(),
        Some(p) if MAXMEMORY_POLICIES.contains(&p) => p.to_string(),
        Some(other) => {
            errs.push(format!(
                "store.maxmemory_policy: {other:?} is not a policy; use one of {}",
                MAXMEMORY_POLICIES.join(", ")
            ));
            "noeviction".to_string()
        }
    };
    if !appendonly
        && (s.appendfsync.is_some()
            || s.auto_aof_rewrite_percentage.is_some()
            || s.auto_aof_rewrite_min_size.is_some()
            || s.aof_load_corrupt.is_some())
    {
        errs.push("store.appendfsync, auto_aof_rewrite_*, aof_load_corrupt: only apply with appendonly = true".to_string());
    }
    EmbeddedStore {
        dir_is_default: s.dir.is_none() && dir.is_some(),
        dir,
        appendonly,
        appendfsync,
        auto_aof_rewrite_percentage,
        auto_aof_rewrite_min_size,
        aof_load_truncate,
        maxmemory,
        maxmemory_policy,
    }
}

/// The state directory when none is configured: systemd's `StateDirectory=`, else the
/// system location as root, else the user's state directory. `var` reads the process
/// environment (the binary passes it: this crate reads none itself).
pub fn default_state_dir(
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
    root: bool,
) -> Option<PathBuf> {
    let env = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(d) = env("STATE_DIRECTORY") {
        // systemd lists several directories separated by ':' when several are configured.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        if first.starts_with('/') {
            return Some(PathBuf::from(first));
        }
    }
    if root {
        return Some(PathBuf::from("/var/lib/isola"));
    }
    if let Some(x) = env("XDG_STATE_HOME").filter(|x| x.to_string_lossy().starts_with('/')) {
        return Some(PathBuf::from(x).join("isola"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".local/state/isola"))
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
    fn the_default_state_dir_follows_systemd_then_root_then_the_user() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let all = vars(&[
            ("STATE_DIRECTORY", "/var/lib/isola-a:/var/lib/isola-b"),
            ("XDG_STATE_HOME", "/home/u/.state"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(
            default_state_dir(all, false),
            Some("/var/lib/isola-a".into())
        );
        let user = vars(&[("XDG_STATE_HOME", "/home/u/.state"), ("HOME", "/home/u")]);
        assert_eq!(default_state_dir(user, true), Some("/var/lib/isola".into()));
        assert_eq!(
            default_state_dir(user, false),
            Some("/home/u/.state/isola".into())
        );
        let home = vars(&[("STATE_DIRECTORY", "relative"), ("HOME", "/home/u")]);
        assert_eq!(
            default_state_dir(home, false),
            Some("/home/u/.local/state/isola".into())
        );
        assert_eq!(default_state_dir(vars(&[("HOME", "")]), false), None);
    }

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
    fn persistence_and_memory_keys() {
        let mut errs = Vec::new();
        let d = validate(
            RawStore {
                appendonly: Some(false),
                maxmemory: Some(crate::raw::NumOrStr::Str("256MiB".into())),
                maxmemory_policy: Some("allkeys-lru".into()),
                ..RawStore::default()
            },
            Some(Path::new("/var/lib/isola")),
            &mut errs,
        );
        assert!(errs.is_empty(), "{errs:?}");
        let StoreBackend::Embedded { data, .. } = d.backend else {
            panic!("embedded expected");
        };
        assert_eq!(data.dir, None);
        assert_eq!(data.maxmemory, 256 << 20);
        assert_eq!(data.maxmemory_policy, "allkeys-lru");
        validate(
            RawStore {
                dir: Some("relative/dir".into()),
                appendfsync: Some("sometimes".into()),
                maxmemory: Some(crate::raw::NumOrStr::Str("lots".into())),
                maxmemory_policy: Some("lru".into()),
                aof_load_corrupt: Some("ignore".into()),
                ..RawStore::default()
            },
            Some(Path::new("/var/lib/isola")),
            &mut errs,
        );
        validate(
            RawStore {
                backend: Some("off".into()),
                maxmemory: Some(crate::raw::NumOrStr::Num(1)),
                ..RawStore::default()
            },
            Some(Path::new("/var/lib/isola")),
            &mut errs,
        );
        let all = errs.join("\n");
        for want in [
            "store.dir: \"relative/dir\" must be an absolute path",
            "store.appendfsync: \"sometimes\"",
            "store.maxmemory: invalid size",
            "store.maxmemory_policy: \"lru\"",
            "store.aof_load_corrupt: \"ignore\"",
            "store.maxmemory: only applies to the embedded store",
        ] {
            assert!(all.contains(want), "{want} missing from {all}");
        }
    }

    #[test]
    fn isola_db() {
        let mut errs = Vec::new();
        let d = validate(
            RawStore::default(),
            Some(Path::new("/var/lib/isola")),
            &mut errs,
        );
        assert_eq!(d.isola_db, DEFAULT_ISOLA_DB);
        let d = validate(
            RawStore {
                url: Some("redis://10.0.0.5/0".into()),
                isola_db: Some(40),
                ..RawStore::default()
            },
            Some(Path::new("/var/lib/isola")),
            &mut errs,
        );
        assert_eq!(d.isola_db, 40, "a real Redis may have more databases");
        assert!(errs.is_empty(), "{errs:?}");
        for bad in [16, -1] {
            validate(
                RawStore {
                    isola_db: Some(bad),
                    ..RawStore::default()
                },
                Some(Path::new("/var/lib/isola")),
                &mut errs,
            );
        }
        assert_eq!(
            errs,
            [
                "store.isola_db: 16 is not a database; the embedded store has 0 to 15",
                "store.isola_db: -1 is not a database; the embedded store has 0 to 15"
            ]
        );
    }

    #[test]
    fn backends() {
        let mut errs = Vec::new();
        let d = validate(
            RawStore {
                dir: Some("/srv/state".into()),
                ..RawStore::default()
            },
            Some(Path::new("/var/lib/isola")),
            &mut errs,
        );
        assert_eq!(
            d.backend,
            StoreBackend::Embedded {
                listen: None,
                requirepass: None,
                data: Box::new(EmbeddedStore {
                    dir: Some(PathBuf::from("/srv/state")),
                    dir_is_default: false,
                    appendonly: true,
                    appendfsync: AppendFsync::EverySec,
                    auto_aof_rewrite_percentage: 100,
                    auto_aof_rewrite_min_size: 64 << 20,
                    aof_load_truncate: false,
                    maxmemory: 0,
                    maxmemory_policy: "noeviction".into(),
                })
            }
        );
        let off = validate(
            RawStore {
                backend: Some("off".into()),
                ..RawStore::default()
            },
            Some(Path::new("/var/lib/isola")),
            &mut errs,
        );
        assert_eq!(off.backend, StoreBackend::Off);
        assert!(errs.is_empty(), "{errs:?}");
        validate(
            RawStore {
                backend: Some("memcached".into()),
                ..RawStore::default()
            },
            Some(Path::new("/var/lib/isola")),
            &mut errs,
        );
        validate(
            RawStore {
                url: Some("redis://h".into()),
                listen: Some("nowhere".into()),
                ..RawStore::default()
            },
            Some(Path::new("/var/lib/isola")),
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
