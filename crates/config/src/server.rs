//! `[server]`: listeners, the document root and routing rules, request limits, static
//! file and compression settings.
use crate::raw::RawServer;
use crate::validate::{count, duration, size};
use crate::DEFAULT_LISTEN;
use isola_front::{CacheControl, ConnLimits};
use isola_router::{PathPatterns, RouterConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `[server]`, validated: what a reload applies (the listeners and connection limits are
/// in [`crate::Startup`]).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The router's own settings: the canonical docroot, index files, front controller,
    /// no-exec folders, symlink rule, `deny`/`allow` patterns (compiled once) and aliases.
    pub routing: RouterConfig,
    /// Peers whose Forwarded / X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Version in the `Server` header.
    pub server_tokens: bool,
    /// Cache-Control of static files by path pattern, first match wins.
    pub cache_control: CacheControl,
    /// Folders a script may hand a file from (X-Sendfile, X-Accel-Redirect).
    pub sendfile: Vec<SendfileDir>,
    /// On-the-fly compression.
    pub compression: Compression,
}

/// One `[[server.sendfile]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendfileDir {
    /// The folder as configured (absolute, no trailing slash), not canonicalised: a deploy
    /// that swaps a symlink in it is followed, as for the document root.
    pub dir: PathBuf,
    /// Internal URL prefix for X-Accel-Redirect (`/protected`), if any.
    pub path: Option<String>,
}

/// `[server]`, validated, in the parts [`crate::Config`] keeps apart.
pub(crate) struct ServerSection {
    /// What a reload applies.
    pub server: ServerConfig,
    /// What it does not.
    pub startup: ServerStartup,
    /// `server.max_body_size`, bytes (for [`isola_front::Limits`]).
    pub max_body_size: u64,
}

/// The keys of `[server]` a reload does not apply, validated (they go to
/// [`crate::Startup`]).
pub(crate) struct ServerStartup {
    pub listen: SocketAddr,
    pub tls_listen: Option<SocketAddr>,
    pub redirect_http_to_https: bool,
    pub http3: bool,
    pub conn: ConnLimits,
    pub pid_file: Option<PathBuf>,
    pub threads: Option<usize>,
}

/// `[server.compression]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// On.
    pub enabled: bool,
    /// Smallest body compressed, bytes.
    pub min_size: u64,
    /// Codings offered (`br`, `zstd`, `gzip`), in server preference order.
    pub codings: Vec<String>,
}

/// Validates `[server]`; relative paths are anchored at `base_dir`.
pub(crate) fn validate(s: RawServer, base_dir: &Path, errs: &mut Vec<String>) -> ServerSection {
    let listen_text = s.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        errs.push(format!(
            "server.listen: {listen_text:?} is not an address; use IP:PORT, e.g. \"127.0.0.1:8080\""
        ));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });

    let docroot_given = s.docroot.unwrap_or_else(|| PathBuf::from("."));
    let docroot_abs = base_dir.join(&docroot_given);
    let docroot = match docroot_abs.canonicalize() {
        Ok(p) if p.is_dir() => p,
        Ok(p) => {
            errs.push(format!(
                "server.docroot: {} is not a directory",
                p.display()
            ));
            p
        }
        Err(e) => {
            errs.push(format!(
                "server.docroot: {} does not exist ({e})",
                docroot_abs.display()
            ));
            docroot_abs
        }
    };

    let front_controller = match s.front_controller {
        None => Some("index.php".to_string()),
        Some(f) if f.is_empty() => None,
        Some(f) => {
            let f = f.trim_start_matches('/').to_string();
            if f.split('/').any(|seg| seg == ".." || seg.starts_with('.')) || !f.ends_with(".php") {
                errs.push(format!(
                    "server.front_controller: {f:?} must be a .php file inside the docroot, without dot segments"
                ));
            }
            Some(f)
        }
    };

    let index = s
        .index
        .unwrap_or_else(|| vec!["index.php".into(), "index.html".into()]);
    for name in &index {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            errs.push(format!("server.index: {name:?} must be a plain file name"));
        }
    }

    let no_exec = s.no_exec.unwrap_or_default();
    for dir in &no_exec {
        if dir.split('/').any(|seg| seg == "..") || dir.contains('\0') {
            errs.push(format!(
                "server.no_exec: {dir:?} must be a folder inside the docroot"
            ));
        }
    }
    let max_body_size = size(errs, "server.max_body_size", s.max_body_size, 100 << 20);
    let header_read_timeout = duration(
        errs,
        "server.header_read_timeout",
        s.header_read_timeout,
        10,
    );
    let keepalive_timeout = duration(errs, "server.keepalive_timeout", s.keepalive_timeout, 75);
    let shutdown_timeout = duration(errs, "server.shutdown_timeout", s.shutdown_timeout, 30);

    let max_connections = count(
        errs,
        "server.max_connections",
        s.max_connections,
        10_000,
        1,
        1 << 24,
    );
    let threads = s
        .threads
        .map(|n| count(errs, "server.threads", Some(n), 1, 1, 1024));
    let mut trusted_proxies = Vec::new();
    for t in s.trusted_proxies.unwrap_or_default() {
        let net = t
            .parse::<ipnet::IpNet>()
            .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match net {
            Ok(n) => trusted_proxies.push(n.trunc()),
            Err(_) => errs.push(format!(
                "server.trusted_proxies: {t:?} is not an address or CIDR block (e.g. \"10.0.0.0/8\", \"::1\")"
            )),
        }
    }
    let deny = patterns(errs, "server.deny", s.deny.unwrap_or_default());
    let allow = patterns(errs, "server.allow", s.allow.unwrap_or_default());
    let cache_control = cache_control(errs, s.cache_control.unwrap_or_default());
    let mut aliases = Vec::new();
    for (i, a) in s.alias.unwrap_or_default().into_iter().enumerate() {
        let key = format!("server.alias[{i}]");
        let path = a.path.unwrap_or_default();
        let folder = match url_folder(&key, &path, "/wp-content") {
            Ok(f) => f,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        let Some(dir) = a.dir else {
            errs.push(format!(
                "{key}.dir: missing; name the folder served at {path}"
            ));
            continue;
        };
        match base_dir.join(&dir).canonicalize() {
            Ok(d) if d.is_dir() => aliases.push((folder, d)),
            _ => errs.push(format!(
                "{key}.dir: {} is not a folder",
                base_dir.join(&dir).display()
            )),
        }
    }
    let sendfile = sendfile_dirs(s.sendfile.unwrap_or_default(), errs);
    let c = s.compression.unwrap_or_default();
    let mut codings = Vec::new();
    for coding in c
        .codings
        .unwrap_or_else(|| vec!["br".into(), "zstd".into(), "gzip".into()])
    {
        if !matches!(coding.as_str(), "br" | "zstd" | "gzip") {
            errs.push(format!(
                "server.compression.codings: {coding:?} is not a coding; use \"br\", \"zstd\" or \"gzip\""
            ));
        } else if !codings.contains(&coding) {
            codings.push(coding);
        }
    }
    let compression = Compression {
        enabled: c.enabled.unwrap_or(true),
        min_size: size(errs, "server.compression.min_size", c.min_size, 1024),
        codings,
    };

    let tls_listen = s.tls_listen.and_then(|a| match a.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errs.push(format!(
                "server.tls_listen: {a:?} is not an address; use IP:PORT, e.g. \"0.0.0.0:443\""
            ));
            None
        }
    });
    let redirect_http_to_https = s.redirect_http_to_https.unwrap_or(false);
    if redirect_http_to_https && tls_listen.is_none() {
        errs.push(
            "server.redirect_http_to_https: needs server.tls_listen to redirect to".to_string(),
        );
    }
    let http3 = s.http3.unwrap_or(false);
    if http3 && tls_listen.is_none() {
        errs.push("server.http3: needs server.tls_listen (QUIC serves its port over UDP)".into());
    }
    let startup = ServerStartup {
        pid_file: s.pid_file.clone().map(|p| base_dir.join(p)),
        listen,
        tls_listen,
        redirect_http_to_https,
        http3,
        threads,
        conn: ConnLimits {
            header_read_timeout,
            keepalive_timeout,
            shutdown_timeout,
            max_connections,
        },
    };
    let server = ServerConfig {
        routing: RouterConfig {
            docroot,
            index,
            front_controller,
            no_exec,
            follow_symlinks_outside: s.follow_symlinks_outside.unwrap_or(false),
            deny,
            allow,
            aliases,
        },
        trusted_proxies,
        server_tokens: s.server_tokens.unwrap_or(false),
        cache_control,
        sendfile,
        compression,
    };
    ServerSection {
        server,
        startup,
        max_body_size,
    }
}

/// `key`'s path patterns, compiled once; every bad one is named.
fn patterns(errs: &mut Vec<String>, key: &str, list: Vec<String>) -> PathPatterns {
    PathPatterns::new(&list).unwrap_or_else(|_| {
        for p in &list {
            if let Err(e) = PathPatterns::new(std::slice::from_ref(p)) {
                errs.push(format!("{key}: {e}"));
            }
        }
        PathPatterns::default()
    })
}

/// `[[server.cache_control]]`, built once; every bad rule is named, in order.
fn cache_control(errs: &mut Vec<String>, raw: Vec<crate::RawCacheControl>) -> CacheControl {
    // (index, value problem) of the complete rules; the patterns are checked all at once.
    let mut rules = Vec::new();
    let mut found: Vec<(usize, String)> = Vec::new();
    let mut value_errs: Vec<(usize, String)> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("server.cache_control[{i}]");
        match (r.path, r.value) {
            (Some(path), Some(value)) => {
                if value.is_empty() || value.bytes().any(|b| b < 0x20 || b == 0x7f) {
                    value_errs.push((i, format!("{key}.value: {value:?} is not a header value")));
                }
                rules.push((i, (path, value)));
            }
            (None, _) => found.push((i, format!("{key}.path: missing; e.g. \"/assets/**\""))),
            (_, None) => found.push((
                i,
                format!("{key}.value: missing; e.g. \"public, max-age=31536000, immutable\""),
            )),
        }
    }
    let pairs: Vec<(String, String)> = rules.iter().map(|(_, r)| r.clone()).collect();
    let built = CacheControl::new(&pairs);
    if built.is_err() {
        // Name each rule whose pattern is at fault.
        for (i, (path, _)) in &rules {
            if let Err(e) = PathPatterns::new(std::slice::from_ref(path)) {
                found.push((*i, format!("server.cache_control[{i}].path: {e}")));
            }
        }
    }
    // A rule's path problem before its value problem, as the keys are read.
    found.extend(value_errs);
    found.sort_by_key(|(i, _)| *i);
    let ok = found.is_empty();
    errs.extend(found.into_iter().map(|(_, m)| m));
    match built {
        Ok(c) if ok => c,
        _ => CacheControl::default(),
    }
}

/// `[[server.sendfile]]`: each folder absolute and there, each internal prefix a URL folder
/// named once.
fn sendfile_dirs(raw: Vec<crate::RawSendfile>, errs: &mut Vec<String>) -> Vec<SendfileDir> {
    let mut out: Vec<SendfileDir> = Vec::new();
    for (i, e) in raw.into_iter().enumerate() {
        let key = format!("server.sendfile[{i}]");
        let path = match e.path.map(|p| url_folder(&key, &p, "/protected")) {
            None => None,
            Some(Ok(f)) if out.iter().any(|o| o.path.as_ref() == Some(&f)) => {
                errs.push(format!("{key}.path: {f:?} is named by an earlier entry"));
                continue;
            }
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                errs.push(e);
                continue;
            }
        };
        let Some(dir) = e.dir else {
            errs.push(format!(
                "{key}.dir: missing; name the folder files are sent from, e.g. \"/srv/private\""
            ));
            continue;
        };
        if !dir.is_absolute() {
            errs.push(format!(
                "{key}.dir: {} must be an absolute path (X-Sendfile names files by absolute path)",
                dir.display()
            ));
            continue;
        }
        if !dir.is_dir() {
            errs.push(format!("{key}.dir: {} is not a folder", dir.display()));
            continue;
        }
        let mut bytes = std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str());
        while let [rest @ .., b'/'] = bytes {
            bytes = rest;
        }
        if bytes.is_empty() {
            errs.push(format!(
                "{key}.dir: / would let a script send any file; name a folder of its own"
            ));
            continue;
        }
        let dir =
            PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes));
        out.push(SendfileDir { dir, path });
    }
    out
}

/// `{key}.path` as a URL folder `/seg/seg` (slashes collapsed, none trailing), or the
/// problem (shown with `example`) when it is not one: no leading `/`, the root itself, a dot
/// segment, or a byte that would be decoded or cut off (`%`, `?`, `#`, NUL).
fn url_folder(key: &str, path: &str, example: &str) -> Result<String, String> {
    let segments: Vec<&str> = path.split('/').filter(|x| !x.is_empty()).collect();
    let bad = !path.starts_with('/')
        || segments.is_empty()
        || segments.iter().any(|x| x.starts_with('.'))
        || path.contains(['\0', '%', '?', '#']);
    if bad {
        return Err(format!(
            "{key}.path: {path:?} must be a URL folder like \"{example}\" (not \"/\", no dot segments)"
        ));
    }
    Ok(format!("/{}", segments.join("/")))
}
