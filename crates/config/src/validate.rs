//! From [`RawConfig`] to [`Config`]: defaults, units, cross-checks, every problem reported.
use crate::raw::{NumOrStr, RawConfig};
use crate::units::{parse_duration, parse_size};
use crate::{ConfigError, DEFAULT_LISTEN};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[pool]`
    pub pool: PoolSettings,
    /// `[php]`
    pub php: PhpConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[admin] listen`: the admin listener's address, if enabled.
    pub admin_listen: Option<SocketAddr>,
    /// `[admin] token`: the secret admin requests must carry, if set.
    pub admin_token: Option<String>,
    /// `[[tls.cert]]`: certificate files, in order (the first is the default); empty
    /// exactly when `server.tls_listen` is unset.
    pub tls_certs: Vec<TlsCertFiles>,
    /// `[tls.acme]`: certificates obtained from an ACME CA, if enabled.
    pub acme: Option<crate::AcmeConfig>,
    /// The sites served: the `[[site]]` list, or one site made of `[server]`, `[pool]` and
    /// `[php]` (with no names: it answers every host).
    pub sites: Vec<crate::SiteConfig>,
    /// What a Host that no site names gets.
    pub unknown_host: crate::UnknownHost,
    /// `[[schedule]]`: requests run on a clock.
    pub schedules: Vec<crate::ScheduleConfig>,
    /// `[[queue]]`: job queues run by the pool (with the built-in `defer` queue); empty
    /// when there is no store.
    pub queues: Vec<crate::QueueConfig>,
    /// `[store]`.
    pub store: crate::StoreSettings,
}

/// One `[[tls.cert]]`, validated: both files exist. Their contents are checked when they
/// are loaded (by the front), which names the key as [`TlsCertFiles::key_name`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCertFiles {
    /// Certificate chain PEM, absolute.
    pub cert: PathBuf,
    /// Private key PEM, absolute.
    pub key: PathBuf,
}

impl TlsCertFiles {
    /// The config key of field `field` (`"cert"` or `"key"`) of the `index`th certificate,
    /// for error messages: `tls.cert[0].key`.
    pub fn key_name(index: usize, field: &str) -> String {
        format!("tls.cert[{index}].{field}")
    }
}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Public listen address.
    pub listen: SocketAddr,
    /// HTTPS listen address, if enabled.
    pub tls_listen: Option<SocketAddr>,
    /// Redirect plain-HTTP requests to HTTPS (only with `tls_listen`).
    pub redirect_http_to_https: bool,
    /// Canonical absolute document root.
    pub docroot: PathBuf,
    /// Front controller relative to the docroot, if any.
    pub front_controller: Option<String>,
    /// Index files.
    pub index: Vec<String>,
    /// Folders below which PHP never executes.
    pub no_exec: Vec<String>,
    /// Follow symlinks leading outside the docroot.
    pub follow_symlinks_outside: bool,
    /// Largest request body, bytes.
    pub max_body_size: u64,
    /// Time allowed for the request head.
    pub header_read_timeout: Duration,
    /// Idle keep-alive time.
    pub keepalive_timeout: Duration,
    /// Longest wait for in-flight requests on stop.
    pub shutdown_timeout: Duration,
    /// Pid file, relative paths resolved against the config file's folder.
    pub pid_file: Option<PathBuf>,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Peers whose Forwarded / X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Version in the `Server` header.
    pub server_tokens: bool,
    /// Path patterns answered 404 (checked by [`isola_router::PathPatterns`]).
    pub deny: Vec<String>,
    /// Path patterns exempt from `deny` and the dotfile rule.
    pub allow: Vec<String>,
    /// Cache-Control of static files by path pattern, first match wins.
    pub cache_control: Vec<CacheRule>,
    /// URL prefixes served from other folders: (`/wp-content`, canonical folder).
    pub aliases: Vec<(String, PathBuf)>,
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

/// One `[[server.cache_control]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRule {
    /// Path pattern.
    pub path: String,
    /// Cache-Control value.
    pub value: String,
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

/// `pool.pm`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmMode {
    /// Fixed number of workers.
    Static,
    /// Spare workers between bounds.
    Dynamic {
        /// Workers at start.
        start: usize,
        /// Fewest idle.
        min_spare: usize,
        /// Most idle.
        max_spare: usize,
    },
    /// Workers on demand, retired when idle.
    OnDemand {
        /// Idle time before retirement.
        idle_timeout: Duration,
    },
}

/// `max_children = "auto"`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoChildren {
    /// Budget in bytes; `None`: detect (cgroup limit, else MemAvailable).
    pub budget: Option<u64>,
    /// Reserve in bytes; `None`: a tenth of the budget, at least 64 MiB.
    pub reserve: Option<u64>,
    /// Per-worker estimate before measurements, bytes.
    pub estimate: u64,
    /// Most workers.
    pub ceiling: usize,
}

/// `[pool]`, validated.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `max_children = "auto"` settings; `max_children` is then only the ceiling.
    pub auto_children: Option<AutoChildren>,
    /// Process manager mode.
    pub pm: PmMode,
    /// Retire workers whose RSS exceeds this after a request.
    pub max_worker_memory: Option<u64>,
    /// Retire workers after this long.
    pub max_lifetime: Option<Duration>,
    /// Crash-loop protection: (crashes, window); `None` when the threshold is 0.
    pub crash_loop: Option<(u32, Duration)>,
    /// Slow request threshold.
    pub slowlog_timeout: Option<Duration>,
    /// Most PHP frames logged for a slow request; 0 = none.
    pub slowlog_trace_depth: u32,
    /// Number of workers.
    pub max_children: usize,
    /// Requests before recycling; 0 = never.
    pub max_requests: u64,
    /// Most waiting requests.
    pub queue_size: usize,
    /// Longest wait for a worker.
    pub queue_timeout: Duration,
    /// Longest run of one request; `None` = unlimited.
    pub request_terminate_timeout: Option<Duration>,
    /// Run a complete request even when its client hung up while it waited.
    pub run_abandoned: bool,
}

/// `[php]`, validated.
#[derive(Debug, Clone)]
pub struct PhpConfig {
    /// Which backend runs PHP.
    pub backend: PhpBackend,
    /// Workers' user and group, as (uid, gid), with the names for logs.
    pub credentials: Option<(u32, u32)>,
    /// RLIMIT_NOFILE of workers.
    pub rlimit_files: Option<u64>,
    /// RLIMIT_CORE of workers.
    pub rlimit_core: Option<u64>,
    /// Absolute path of php-cgi.
    pub binary: PathBuf,
    /// ini settings, rendered as strings.
    pub ini: BTreeMap<String, String>,
    /// php.ini read instead of the backend's default one.
    pub ini_file: Option<PathBuf>,
    /// Worker environment.
    pub env: BTreeMap<String, String>,
    /// Worker mode: the worker script (canonical absolute path inside the docroot) and
    /// its name as a URL path (`/public/index.php`).
    pub worker: Option<(PathBuf, String)>,
    /// Worker mode: replace the workers when code below the docroot changes.
    pub worker_watch: bool,
}

/// `[php] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhpBackend {
    /// Native where the engine library loads, else php-cgi (the reason is logged).
    Auto,
    /// The embedded engine, workers forked from a zygote; no fallback.
    Native,
    /// One php-cgi process per worker.
    PhpCgi,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    /// nginx/Apache `combined`, followed by Isola's fields as `key=value`.
    Combined,
    /// One JSON object per line.
    Json,
}

/// `[log]`, validated.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Format.
    pub format: LogFormat,
    /// Filter directive.
    pub level: String,
    /// Access log on.
    pub access: bool,
    /// Access log format.
    pub access_format: AccessFormat,
    /// Access log file; stdout when `None`.
    pub access_file: Option<PathBuf>,
}

/// ini keys Isola sets itself; letting users change them would let PHP pick which file runs.
const RESERVED_INI: &[&str] = &["cgi.fix_pathinfo", "cgi.discard_path", "cgi.force_redirect"];

impl RawConfig {
    /// Applies defaults and checks every value. `base_dir` anchors a relative docroot (the
    /// config file's folder, or the working directory); `search_path` is where a php binary
    /// given by name is looked for.
    pub fn validate(self, base_dir: &Path, search_path: &[PathBuf]) -> Result<Config, ConfigError> {
        crate::sites::validate(self, base_dir, search_path)
    }

    /// [`RawConfig::validate`] without `[[site]]`: `[server]`, `[pool]` and `[php]` as one
    /// site.
    pub(crate) fn validate_one(
        self,
        base_dir: &Path,
        search_path: &[PathBuf],
    ) -> Result<Config, ConfigError> {
        let mut errs = Vec::new();
        let s = self.server;

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
                if f.split('/').any(|seg| seg == ".." || seg.starts_with('.'))
                    || !f.ends_with(".php")
                {
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
        let max_body_size = size(
            &mut errs,
            "server.max_body_size",
            s.max_body_size,
            100 << 20,
        );
        let header_read_timeout = duration(
            &mut errs,
            "server.header_read_timeout",
            s.header_read_timeout,
            10,
        );
        let keepalive_timeout = duration(
            &mut errs,
            "server.keepalive_timeout",
            s.keepalive_timeout,
            75,
        );
        let shutdown_timeout =
            duration(&mut errs, "server.shutdown_timeout", s.shutdown_timeout, 30);

        let max_connections = count(
            &mut errs,
            "server.max_connections",
            s.max_connections,
            10_000,
            1,
            1 << 24,
        );
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
        let mut patterns = |key: &str, list: Option<Vec<String>>| -> Vec<String> {
            let list = list.unwrap_or_default();
            for p in &list {
                if let Err(e) = isola_router::PathPatterns::new(std::slice::from_ref(p)) {
                    errs.push(format!("{key}: {e}"));
                }
            }
            list
        };
        let deny = patterns("server.deny", s.deny);
        let allow = patterns("server.allow", s.allow);
        let mut cache_control = Vec::new();
        for (i, r) in s.cache_control.unwrap_or_default().into_iter().enumerate() {
            let key = format!("server.cache_control[{i}]");
            match (r.path, r.value) {
                (Some(path), Some(value)) => {
                    if let Err(e) = isola_router::PathPatterns::new(std::slice::from_ref(&path)) {
                        errs.push(format!("{key}.path: {e}"));
                    }
                    if value.is_empty() || value.bytes().any(|b| b < 0x20 || b == 0x7f) {
                        errs.push(format!("{key}.value: {value:?} is not a header value"));
                    }
                    cache_control.push(CacheRule { path, value });
                }
                (None, _) => errs.push(format!("{key}.path: missing; e.g. \"/assets/**\"")),
                (_, None) => errs.push(format!(
                    "{key}.value: missing; e.g. \"public, max-age=31536000, immutable\""
                )),
            }
        }
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
        let sendfile = sendfile_dirs(s.sendfile.unwrap_or_default(), &mut errs);
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
            min_size: size(&mut errs, "server.compression.min_size", c.min_size, 1024),
            codings,
        };

        let p = self.pool;
        let ceiling = count(
            &mut errs,
            "pool.max_children_ceiling",
            p.max_children_ceiling,
            std::thread::available_parallelism().map_or(4, |n| (n.get() * 4).max(4)) as i64,
            1,
            4096,
        );
        let (max_children, auto_children) = match &p.max_children {
            Some(NumOrStr::Str(a)) if a == "auto" => (
                ceiling,
                Some(AutoChildren {
                    budget: match &p.memory_budget {
                        None => None,
                        Some(NumOrStr::Str(a)) if a == "auto" => None,
                        v => Some(size(&mut errs, "pool.memory_budget", v.clone(), 0)),
                    },
                    reserve: p
                        .memory_reserve
                        .clone()
                        .map(|v| size(&mut errs, "pool.memory_reserve", Some(v), 0)),
                    estimate: size(
                        &mut errs,
                        "pool.worker_memory_estimate",
                        p.worker_memory_estimate.clone(),
                        64 << 20,
                    )
                    .max(1 << 20),
                    ceiling,
                }),
            ),
            Some(NumOrStr::Str(other)) => {
                errs.push(format!(
                    "pool.max_children: {other:?} is not a number or \"auto\""
                ));
                (4, None)
            }
            Some(NumOrStr::Num(n)) => (
                count(&mut errs, "pool.max_children", Some(*n), 4, 1, 4096),
                None,
            ),
            None => (4, None),
        };
        if auto_children.is_none() {
            for (key, set) in [
                ("memory_budget", p.memory_budget.is_some()),
                ("memory_reserve", p.memory_reserve.is_some()),
                ("worker_memory_estimate", p.worker_memory_estimate.is_some()),
                ("max_children_ceiling", p.max_children_ceiling.is_some()),
            ] {
                if set {
                    errs.push(format!(
                        "pool.{key}: only applies with max_children = \"auto\""
                    ));
                }
            }
        }
        let max_requests = count(
            &mut errs,
            "pool.max_requests",
            p.max_requests,
            1000,
            0,
            i64::MAX,
        ) as u64;
        let queue_size = count(&mut errs, "pool.queue_size", p.queue_size, 512, 0, 1 << 20);
        let queue_timeout = duration(&mut errs, "pool.queue_timeout", p.queue_timeout, 5);
        let rtt = duration(
            &mut errs,
            "pool.request_terminate_timeout",
            p.request_terminate_timeout,
            60,
        );
        let request_terminate_timeout = (!rtt.is_zero()).then_some(rtt);
        let pm = match p.pm.as_deref().unwrap_or("static") {
            "static" => PmMode::Static,
            "dynamic" => {
                let min_spare = count(&mut errs, "pool.min_spare", p.min_spare, 1, 0, 4096);
                let max_spare = count(
                    &mut errs,
                    "pool.max_spare",
                    p.max_spare,
                    (max_children as i64).min(3),
                    1,
                    4096,
                );
                let start_default =
                    (min_spare + (max_spare.saturating_sub(min_spare)) / 2).max(1) as i64;
                let start = count(
                    &mut errs,
                    "pool.start_children",
                    p.start_children,
                    start_default,
                    1,
                    4096,
                );
                if min_spare > max_spare {
                    errs.push(format!(
                        "pool.min_spare: {min_spare} is above pool.max_spare ({max_spare})"
                    ));
                }
                if max_spare > max_children {
                    errs.push(format!(
                        "pool.max_spare: {max_spare} is above pool.max_children ({max_children})"
                    ));
                }
                if start > max_children {
                    errs.push(format!(
                        "pool.start_children: {start} is above pool.max_children ({max_children})"
                    ));
                }
                PmMode::Dynamic {
                    start,
                    min_spare,
                    max_spare,
                }
            }
            "ondemand" => PmMode::OnDemand {
                idle_timeout: duration(&mut errs, "pool.idle_timeout", p.idle_timeout.clone(), 10),
            },
            other => {
                errs.push(format!(
                    "pool.pm: {other:?} is not a mode; use \"static\", \"dynamic\" or \"ondemand\""
                ));
                PmMode::Static
            }
        };
        if !matches!(pm, PmMode::Dynamic { .. }) {
            for (key, set) in [
                ("start_children", p.start_children.is_some()),
                ("min_spare", p.min_spare.is_some()),
                ("max_spare", p.max_spare.is_some()),
            ] {
                if set {
                    errs.push(format!("pool.{key}: only applies with pm = \"dynamic\""));
                }
            }
        }
        if p.idle_timeout.is_some() && !matches!(pm, PmMode::OnDemand { .. }) {
            errs.push("pool.idle_timeout: only applies with pm = \"ondemand\"".to_string());
        }
        let max_worker_memory = p
            .max_worker_memory
            .map(|v| size(&mut errs, "pool.max_worker_memory", Some(v), 0))
            .filter(|&b| b > 0);
        let threshold = count(
            &mut errs,
            "pool.emergency_restart_threshold",
            p.emergency_restart_threshold,
            10,
            0,
            100_000,
        );
        let interval = duration(
            &mut errs,
            "pool.emergency_restart_interval",
            p.emergency_restart_interval,
            60,
        );
        let crash_loop =
            (threshold > 0 && !interval.is_zero()).then_some((threshold as u32, interval));
        let slowlog_timeout = p
            .slowlog_timeout
            .map(|v| duration(&mut errs, "pool.slowlog_timeout", Some(v), 0))
            .filter(|d| !d.is_zero());
        let slowlog_trace_depth = count(
            &mut errs,
            "pool.slowlog_trace_depth",
            p.slowlog_trace_depth,
            20,
            0,
            1000,
        ) as u32;
        let max_lifetime = p
            .max_lifetime
            .map(|v| duration(&mut errs, "pool.max_lifetime", Some(v), 0))
            .filter(|d| !d.is_zero());

        let php = self.php;
        let backend = match php.backend.as_deref() {
            None | Some("auto") => PhpBackend::Auto,
            Some("native") => PhpBackend::Native,
            Some("php-cgi") | Some("cgi") => PhpBackend::PhpCgi,
            Some(other) => {
                errs.push(format!(
                    "php.backend: {other:?} is not a backend; use \"auto\", \"native\" or \"php-cgi\""
                ));
                PhpBackend::Auto
            }
        };
        let binary_name = php.binary.unwrap_or_else(|| "php-cgi".to_string());
        let binary = find_binary(&binary_name, base_dir, search_path).unwrap_or_else(|| {
            // Native needs no php-cgi; auto finds out at start whether it falls back.
            if backend == PhpBackend::PhpCgi {
                errs.push(format!(
                    "php.binary: {binary_name:?} not found; install php-cgi (Debian/Ubuntu: apt-get install php-cgi) or set [php] binary to its path"
                ));
            }
            PathBuf::from(&binary_name)
        });
        let mut ini = BTreeMap::new();
        for (key, value) in php.ini.unwrap_or_default() {
            if RESERVED_INI.contains(&key.as_str()) {
                errs.push(format!(
                    "php.ini.{key}: set by Isola to keep routing safe; remove it"
                ));
                continue;
            }
            if key.is_empty() || key.contains(['=', '\n', '\0', ' ']) {
                errs.push(format!("php.ini: {key:?} is not an ini setting name"));
                continue;
            }
            match ini_value(&value) {
                Some(v) => {
                    ini.insert(key, v);
                }
                None => errs.push(format!(
                    "php.ini.{key}: must be a string, number or boolean"
                )),
            }
        }
        let credentials = match (&php.user, &php.group) {
            (None, None) => None,
            (None, Some(_)) => {
                errs.push("php.group: set php.user too".to_string());
                None
            }
            (Some(user), group) => {
                let u = nix::unistd::User::from_name(user).ok().flatten();
                let g = match group {
                    Some(g) => nix::unistd::Group::from_name(g)
                        .ok()
                        .flatten()
                        .map(|g| g.gid.as_raw())
                        .or_else(|| {
                            errs.push(format!("php.group: no group named {g:?}"));
                            None
                        }),
                    None => u.as_ref().map(|u| u.gid.as_raw()),
                };
                match (u, g) {
                    (None, _) => {
                        errs.push(format!("php.user: no user named {user:?}"));
                        None
                    }
                    (Some(_), _) if !nix::unistd::Uid::effective().is_root() => {
                        errs.push(format!(
                            "php.user: switching workers to {user:?} needs Isola to start as root"
                        ));
                        None
                    }
                    (Some(u), Some(g)) => Some((u.uid.as_raw(), g)),
                    _ => None,
                }
            }
        };
        let rlimit_files = php
            .rlimit_files
            .map(|n| count(&mut errs, "php.rlimit_files", Some(n), 1024, 16, 1 << 30) as u64);
        let rlimit_core = match &php.rlimit_core {
            None => None,
            Some(NumOrStr::Str(u)) if u == "unlimited" => Some(u64::MAX),
            v => Some(size(&mut errs, "php.rlimit_core", v.clone(), 0)),
        };
        let ini_file = php.ini_file.as_deref().and_then(|f| {
            match std::fs::File::open(f).and_then(|h| h.metadata()) {
                Ok(m) if m.is_file() => std::fs::canonicalize(f).ok(),
                Ok(_) => {
                    errs.push(format!("php.ini_file: {f:?} is not a file"));
                    None
                }
                Err(e) => {
                    errs.push(format!("php.ini_file: {f:?}: {e}"));
                    None
                }
            }
        });
        let worker = php.worker.as_deref().and_then(|w| {
            let rel = w.trim_start_matches('/');
            let bad = rel.split('/').any(|seg| seg == ".." || seg.is_empty() || seg.starts_with('.'))
                || !rel.ends_with(".php");
            if bad {
                errs.push(format!(
                    "php.worker: {w:?} must be a .php file inside the docroot, without dot segments"
                ));
                return None;
            }
            if backend == PhpBackend::PhpCgi {
                errs.push(
                    "php.worker: worker mode runs on the native backend, not php.backend = \"php-cgi\""
                        .to_string(),
                );
                return None;
            }
            match docroot.join(rel).canonicalize() {
                Ok(p) if p.is_file() && p.starts_with(&docroot) => Some((p, format!("/{rel}"))),
                Ok(_) => {
                    errs.push(format!(
                        "php.worker: {w:?} is not a file inside the docroot {}",
                        docroot.display()
                    ));
                    None
                }
                Err(e) => {
                    errs.push(format!("php.worker: {w:?} in {}: {e}", docroot.display()));
                    None
                }
            }
        });
        let env = php.env.unwrap_or_default();
        for key in env.keys() {
            if key.is_empty() || key.contains(['=', '\0']) {
                errs.push(format!("php.env: {key:?} is not a variable name"));
            }
        }

        let l = self.log;
        let format = match l.format.as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                errs.push(format!(
                    "log.format: {other:?} is not a format; use \"human\" or \"json\""
                ));
                LogFormat::Human
            }
        };
        let level = l.level.unwrap_or_else(|| "info".to_string());
        let access_format = match l.access_format.as_deref() {
            None if format == LogFormat::Json => AccessFormat::Json,
            None | Some("combined") => AccessFormat::Combined,
            Some("json") => AccessFormat::Json,
            Some(other) => {
                errs.push(format!(
                    "log.access_format: {other:?} is not a format; use \"combined\" or \"json\""
                ));
                AccessFormat::Combined
            }
        };
        let access_file = l.access_file.map(|f| base_dir.join(f));
        if let Some(f) = &access_file {
            match f.parent() {
                Some(dir) if dir.is_dir() => {}
                _ => errs.push(format!(
                    "log.access_file: the folder of {} does not exist",
                    f.display()
                )),
            }
        }

        let admin_listen = self.admin.listen.and_then(|a| match a.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                errs.push(format!("admin.listen: {a:?} is not an address; use IP:PORT, e.g. \"127.0.0.1:9180\""));
                None
            }
        });
        let admin_token = self.admin.token.filter(|t| {
            let ok = t.len() >= 16 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
            if !ok {
                errs.push("admin.token: use at least 16 characters of letters, digits and -._~+/= (e.g. the output of `openssl rand -hex 16`)".to_string());
            }
            ok
        });
        if admin_listen.is_some_and(|a| a == listen && a.port() != 0) {
            errs.push("admin.listen: must differ from server.listen".to_string());
        }

        let tls_listen = s.tls_listen.and_then(|a| match a.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                errs.push(format!(
                    "server.tls_listen: {a:?} is not an address; use IP:PORT, e.g. \"0.0.0.0:443\""
                ));
                None
            }
        });
        if let Some(t) = tls_listen {
            if t.port() != 0 && (t == listen || Some(t) == admin_listen) {
                errs.push(
                    "server.tls_listen: must differ from server.listen and admin.listen"
                        .to_string(),
                );
            }
        }
        let redirect_http_to_https = s.redirect_http_to_https.unwrap_or(false);
        if redirect_http_to_https && tls_listen.is_none() {
            errs.push(
                "server.redirect_http_to_https: needs server.tls_listen to redirect to".to_string(),
            );
        }
        let raw_certs = self.tls.cert.unwrap_or_default();
        let acme = self
            .tls
            .acme
            .map(|a| crate::acme::validate(a, listen, tls_listen, base_dir, &mut errs));
        if tls_listen.is_some() && raw_certs.is_empty() && acme.is_none() {
            errs.push(
                "tls.cert: server.tls_listen is set but no certificate is; add [[tls.cert]] with cert and key files, or [tls.acme]"
                    .to_string(),
            );
        }
        if tls_listen.is_none() && !raw_certs.is_empty() {
            errs.push("tls.cert: certificates are set but server.tls_listen is not".to_string());
        }
        let mut tls_certs = Vec::new();
        for (i, c) in raw_certs.into_iter().enumerate() {
            let mut file = |field: &str, p: Option<PathBuf>| -> PathBuf {
                let key = TlsCertFiles::key_name(i, field);
                let Some(p) = p else {
                    errs.push(format!("{key}: missing; name a PEM file"));
                    return PathBuf::new();
                };
                let p = base_dir.join(p);
                if !p.is_file() {
                    errs.push(format!("{key}: {} is not a readable file", p.display()));
                }
                p
            };
            let cert = file("cert", c.cert);
            let key = file("key", c.key);
            tls_certs.push(TlsCertFiles { cert, key });
        }

        let schedules =
            crate::schedule::validate(self.schedule.unwrap_or_default(), base_dir, &mut errs);
        let store = crate::store::validate(self.store, &mut errs);
        let mut queues =
            crate::queue::validate(self.queue.unwrap_or_default(), base_dir, &mut errs);
        if store.backend == crate::StoreBackend::Off {
            if queues.iter().any(|q| q.name != crate::DEFER_QUEUE) {
                errs.push(
                    "queue: queues live in the store, and [store] backend is \"off\"".to_string(),
                );
            }
            queues.clear();
        }

        if !errs.is_empty() {
            return Err(ConfigError::Invalid(errs));
        }
        Ok(Config {
            server: crate::ServerConfig {
                listen,
                tls_listen,
                redirect_http_to_https,
                docroot,
                front_controller,
                index,
                no_exec,
                follow_symlinks_outside: s.follow_symlinks_outside.unwrap_or(false),
                max_body_size,
                header_read_timeout,
                keepalive_timeout,
                shutdown_timeout,
                pid_file: s.pid_file.map(|p| base_dir.join(p)),
                max_connections,
                trusted_proxies,
                server_tokens: s.server_tokens.unwrap_or(false),
                deny,
                allow,
                cache_control,
                aliases,
                sendfile,
                compression,
            },
            pool: PoolSettings {
                auto_children,
                crash_loop,
                slowlog_timeout,
                slowlog_trace_depth,
                pm,
                max_worker_memory,
                max_lifetime,
                max_children,
                max_requests,
                queue_size,
                queue_timeout,
                request_terminate_timeout,
                run_abandoned: p.run_abandoned.unwrap_or(true),
            },
            php: PhpConfig {
                backend,
                credentials,
                rlimit_files,
                rlimit_core,
                binary,
                ini,
                ini_file,
                env,
                worker,
                worker_watch: php.worker_watch.unwrap_or(true),
            },
            log: LogConfig {
                format,
                level,
                access: l.access.unwrap_or(true),
                access_format,
                access_file,
            },
            admin_listen,
            admin_token,
            tls_certs: if tls_listen.is_some() {
                tls_certs
            } else {
                Vec::new()
            },
            acme,
            sites: Vec::new(),
            unknown_host: crate::UnknownHost::Default(0),
            schedules,
            queues,
            store,
        })
    }
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

fn ini_value(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) if !s.contains(['\n', '\0']) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

fn count(
    errs: &mut Vec<String>,
    key: &str,
    v: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
) -> usize {
    let v = v.unwrap_or(default);
    if v < min || v > max {
        errs.push(format!("{key}: {v} is out of range ({min} to {max})"));
        return default as usize;
    }
    v as usize
}

pub(crate) fn duration(
    errs: &mut Vec<String>,
    key: &str,
    v: Option<NumOrStr>,
    default_secs: u64,
) -> Duration {
    match v {
        None => Duration::from_secs(default_secs),
        Some(NumOrStr::Num(n)) if n >= 0 => Duration::from_secs(n as u64),
        Some(NumOrStr::Num(n)) => {
            errs.push(format!("{key}: {n} must not be negative"));
            Duration::from_secs(default_secs)
        }
        Some(NumOrStr::Str(s)) => parse_duration(&s).unwrap_or_else(|e| {
            errs.push(format!("{key}: {e}"));
            Duration::from_secs(default_secs)
        }),
    }
}

pub(crate) fn size(errs: &mut Vec<String>, key: &str, v: Option<NumOrStr>, default: u64) -> u64 {
    match v {
        None => default,
        Some(NumOrStr::Num(n)) if n >= 0 => n as u64,
        Some(NumOrStr::Num(n)) => {
            errs.push(format!("{key}: {n} must not be negative"));
            default
        }
        Some(NumOrStr::Str(s)) => parse_size(&s).unwrap_or_else(|e| {
            errs.push(format!("{key}: {e}"));
            default
        }),
    }
}

/// A name with a slash is a path (relative to `base_dir`); a bare name is looked up in
/// `search_path`. Only executable regular files count.
fn find_binary(name: &str, base_dir: &Path, search_path: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = base_dir.join(name);
        return is_exec(&p).then_some(p);
    }
    search_path
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| is_exec(p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn validate(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("public")).unwrap();
        let bin = dir.path().join("fake-php-cgi");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let raw = RawConfig::from_toml(text, Path::new("isola.toml"))?;
        raw.validate(dir.path(), &[dir.path().to_path_buf()])
    }

    fn errors(text: &str) -> String {
        match validate(text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("expected an error for {text}"),
        }
    }

    #[test]
    fn defaults_fill_everything() {
        let c =
            validate("[server]\ndocroot = \"public\"\n[php]\nbinary = \"fake-php-cgi\"\n").unwrap();
        assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.server.docroot.ends_with("public"));
        assert_eq!(c.server.front_controller.as_deref(), Some("index.php"));
        assert_eq!(c.pool.max_children, 4);
        assert_eq!(
            c.pool.request_terminate_timeout,
            Some(Duration::from_secs(60))
        );
        assert_eq!(c.pool.slowlog_timeout, None);
        assert_eq!(c.pool.slowlog_trace_depth, 20, "php-fpm's default");
        assert_eq!(c.log.format, LogFormat::Human);
    }

    #[test]
    fn slowlog_trace_depth_is_bounded() {
        let base = "[server]\ndocroot = \"public\"\n[php]\nbinary = \"fake-php-cgi\"\n[pool]\n";
        let c = validate(&format!("{base}slowlog_trace_depth = 0\n")).unwrap();
        assert_eq!(c.pool.slowlog_trace_depth, 0);
        let c = validate(&format!("{base}slowlog_trace_depth = 100\n")).unwrap();
        assert_eq!(c.pool.slowlog_trace_depth, 100);
        let e = errors(&format!("{base}slowlog_trace_depth = 5000\n"));
        assert!(e.contains("pool.slowlog_trace_depth"), "{e}");
    }

    #[test]
    fn values_and_units() {
        let c = validate(
            r#"
            [server]
            docroot = "public"
            listen = "0.0.0.0:9000"
            front_controller = ""
            max_body_size = "8M"
            [pool]
            max_children = 8
            request_terminate_timeout = 0
            queue_timeout = "250ms"
            [php]
            binary = "fake-php-cgi"
            ini = { memory_limit = "64M", "opcache.enable" = true, max_execution_time = 5 }
            [log]
            format = "json"
            "#,
        )
        .unwrap();
        assert_eq!(c.server.front_controller, None);
        assert_eq!(c.server.max_body_size, 8 << 20);
        assert_eq!(c.pool.max_children, 8);
        assert_eq!(c.pool.request_terminate_timeout, None);
        assert_eq!(c.pool.queue_timeout, Duration::from_millis(250));
        assert_eq!(c.php.ini["opcache.enable"], "1");
        assert_eq!(c.php.ini["max_execution_time"], "5");
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn process_manager_modes() {
        let base = "[server]\ndocroot = \"public\"\n[php]\nbinary = \"fake-php-cgi\"\n";
        let c = validate(&format!(
            "{base}[pool]\npm = \"dynamic\"\nmax_children = 10\nmin_spare = 2\nmax_spare = 6\n"
        ))
        .unwrap();
        assert_eq!(
            c.pool.pm,
            PmMode::Dynamic {
                start: 4,
                min_spare: 2,
                max_spare: 6
            }
        );
        let c = validate(&format!("{base}[pool]\npm = \"ondemand\"\nidle_timeout = \"30s\"\nmax_worker_memory = \"256M\"\nmax_lifetime = \"1h\"\n")).unwrap();
        assert_eq!(
            c.pool.pm,
            PmMode::OnDemand {
                idle_timeout: Duration::from_secs(30)
            }
        );
        assert_eq!(c.pool.max_worker_memory, Some(256 << 20));
        assert_eq!(c.pool.max_lifetime, Some(Duration::from_secs(3600)));
        let e = errors(&format!(
            "{base}[pool]\npm = \"dynamic\"\nmax_children = 4\nmin_spare = 5\nmax_spare = 3\n"
        ));
        assert!(e.contains("pool.min_spare"), "{e}");
        let e = errors(&format!("{base}[pool]\nmin_spare = 1\n"));
        assert!(e.contains("only applies with pm = \"dynamic\""), "{e}");
        let e = errors(&format!("{base}[pool]\npm = \"lazy\"\n"));
        assert!(e.contains("pool.pm"), "{e}");
    }

    #[test]
    fn auto_max_children() {
        let base = "[server]\ndocroot = \"public\"\n[php]\nbinary = \"fake-php-cgi\"\n";
        let c = validate(&format!("{base}[pool]\nmax_children = \"auto\"\nmemory_budget = \"300M\"\nworker_memory_estimate = \"50M\"\nmax_children_ceiling = 8\n")).unwrap();
        assert_eq!(
            c.pool.auto_children,
            Some(AutoChildren {
                budget: Some(300 << 20),
                reserve: None,
                estimate: 50 << 20,
                ceiling: 8
            })
        );
        assert_eq!(c.pool.max_children, 8);
        let c = validate(&format!(
            "{base}[pool]\nmax_children = \"auto\"\nmemory_budget = \"auto\"\n"
        ))
        .unwrap();
        assert_eq!(c.pool.auto_children.unwrap().budget, None);
        let e = errors(&format!("{base}[pool]\nmax_children = \"lots\"\n"));
        assert!(e.contains("pool.max_children"), "{e}");
        let e = errors(&format!(
            "{base}[pool]\nmax_children = 4\nmemory_budget = \"1G\"\n"
        ));
        assert!(e.contains("pool.memory_budget: only applies"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = errors("[pool]\nmax_childern = 4\n");
        assert!(e.contains("max_childern"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = errors("[pool]\nmax_children = \"many\"\n");
        assert!(e.contains("max_children"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = errors(
            "[server]\ndocroot = \"missing\"\nlisten = \"nowhere\"\n[pool]\nmax_children = 0\n[php]\nbackend = \"php-cgi\"\nbinary = \"no-such-php\"\n",
        );
        for key in [
            "server.docroot",
            "server.listen",
            "pool.max_children",
            "php.binary",
        ] {
            assert!(e.contains(key), "{key} missing from {e}");
        }
        assert!(e.contains("apt-get install php-cgi"), "{e}");
    }

    #[test]
    fn reserved_ini_is_refused() {
        let e = errors("[server]\ndocroot = \"public\"\n[php]\nbinary = \"fake-php-cgi\"\nini = { \"cgi.fix_pathinfo\" = 0 }\n");
        assert!(e.contains("php.ini.cgi.fix_pathinfo"), "{e}");
    }

    const PHP: &str = "[php]\nbinary = \"fake-php-cgi\"\n";

    #[test]
    fn front_options_and_their_errors() {
        let c = validate(&format!(
            "{PHP}[server]\nmax_connections = 100\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"192.168.1.7/24\"]\nserver_tokens = true\ndeny = [\"*.sql\", \"/vendor/**\"]\nallow = [\"/.well-known/**\"]\n[[server.cache_control]]\npath = \"/assets/**\"\nvalue = \"public, max-age=31536000, immutable\"\n[server.compression]\nmin_size = \"2KiB\"\ncodings = [\"gzip\", \"br\"]\n[log]\naccess_format = \"json\"\naccess_file = \"access.log\"\n"
        ))
        .unwrap();
        let s = &c.server;
        assert_eq!(s.max_connections, 100);
        let nets: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "::1/128", "192.168.1.0/24"]);
        assert!(s.server_tokens);
        assert_eq!(s.deny, ["*.sql", "/vendor/**"]);
        assert_eq!(
            s.cache_control[0].value,
            "public, max-age=31536000, immutable"
        );
        assert_eq!(s.compression.min_size, 2048);
        assert_eq!(s.compression.codings, ["gzip", "br"]);
        assert!(s.compression.enabled);
        assert_eq!(c.log.access_format, AccessFormat::Json);
        assert!(c.log.access_file.as_ref().unwrap().ends_with("access.log"));

        let d = validate(PHP).unwrap();
        assert_eq!(d.server.max_connections, 10_000);
        assert!(d.server.trusted_proxies.is_empty());
        assert!(!d.server.server_tokens);
        assert_eq!(d.server.compression.codings, ["br", "zstd", "gzip"]);
        assert_eq!(d.log.access_format, AccessFormat::Combined);
        assert_eq!(d.log.access_file, None);
        let j = validate(&format!("{PHP}[log]\nformat = \"json\"\n")).unwrap();
        assert_eq!(j.log.access_format, AccessFormat::Json);

        let e = errors(
            "[server]\nmax_connections = 0\ntrusted_proxies = [\"10.0.0.0/33\"]\ndeny = [\"vendor/**\"]\nallow = [\"/a/[b\"]\n[[server.cache_control]]\npath = \"*.css\"\n[server.compression]\ncodings = [\"lzma\"]\n[log]\naccess_format = \"clf\"\naccess_file = \"/no/such/dir/a.log\"\n",
        );
        for key in [
            "server.max_connections",
            "server.trusted_proxies",
            "server.deny",
            "server.allow",
            "server.cache_control[0].value",
            "server.compression.codings",
            "log.access_format",
            "log.access_file",
        ] {
            assert!(e.contains(key), "{key} missing from {e}");
        }
    }

    #[test]
    fn sendfile_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let c = validate(&format!(
            "{PHP}[[server.sendfile]]\npath = \"/protected/\"\ndir = \"{d}/\"\n[[server.sendfile]]\ndir = \"{d}\"\n"
        ))
        .unwrap();
        assert_eq!(c.server.sendfile.len(), 2);
        assert_eq!(c.server.sendfile[0].path.as_deref(), Some("/protected"));
        assert_eq!(c.server.sendfile[0].dir, dir.path());
        assert_eq!(c.server.sendfile[1].path, None);
        assert_eq!(c.sites[0].sendfile, c.server.sendfile);
        assert!(
            validate(PHP).unwrap().server.sendfile.is_empty(),
            "off by default"
        );
        let e = errors(&format!(
            "{PHP}[[server.sendfile]]\npath = \"protected\"\ndir = \"{d}\"\n\
             [[server.sendfile]]\ndir = \"public\"\n\
             [[server.sendfile]]\ndir = \"{d}/missing\"\n\
             [[server.sendfile]]\npath = \"/p\"\n\
             [[server.sendfile]]\ndir = \"/\"\n\
             [[server.sendfile]]\npath = \"/a\"\ndir = \"{d}\"\n\
             [[server.sendfile]]\npath = \"/a/\"\ndir = \"{d}\"\n"
        ));
        for key in [
            "server.sendfile[0].path",
            "server.sendfile[1].dir: public must be an absolute path",
            "server.sendfile[2].dir",
            "server.sendfile[3].dir: missing",
            "server.sendfile[4].dir: /",
            "server.sendfile[6].path",
        ] {
            assert!(e.contains(key), "{key} missing from {e}");
        }
        assert!(!e.contains("server.sendfile[5]"), "{e}");
    }

    #[test]
    fn aliases() {
        let c = validate(&format!(
            "{PHP}[[server.alias]]\npath = \"/assets/\"\ndir = \"public\"\n"
        ))
        .unwrap();
        assert_eq!(c.server.aliases.len(), 1);
        assert_eq!(c.server.aliases[0].0, "/assets");
        assert!(c.server.aliases[0].1.is_absolute());
        assert_eq!(c.sites[0].aliases, c.server.aliases);
        let e = errors(&format!(
            "{PHP}[[server.alias]]\npath = \"/\"\ndir = \"public\"\n[[server.alias]]\npath = \"/a/../b\"\ndir = \"public\"\n[[server.alias]]\npath = \"/x\"\ndir = \"missing\"\n[[server.alias]]\npath = \"/y\"\n"
        ));
        for key in [
            "server.alias[0].path",
            "server.alias[1].path",
            "server.alias[2].dir",
            "server.alias[3].dir: missing",
        ] {
            assert!(e.contains(key), "{key} missing from {e}");
        }
    }

    #[test]
    fn tls_listener_and_certificates() {
        let base = "[server]\ndocroot = \"public\"\n[php]\nbinary = \"fake-php-cgi\"\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("public")).unwrap();
        std::fs::write(dir.path().join("fake-php-cgi"), "").unwrap();
        std::fs::write(dir.path().join("a.pem"), "").unwrap();
        std::fs::write(dir.path().join("a.key"), "").unwrap();
        let raw = RawConfig::from_toml(
            "[server]\ndocroot = \"public\"\ntls_listen = \"127.0.0.1:8443\"\nredirect_http_to_https = true\n[php]\nbinary = \"/bin/sh\"\n[[tls.cert]]\ncert = \"a.pem\"\nkey = \"a.key\"\n",
            Path::new("isola.toml"),
        )
        .unwrap();
        let c = raw.validate(dir.path(), &[]).unwrap();
        assert_eq!(c.server.tls_listen.unwrap().to_string(), "127.0.0.1:8443");
        assert!(c.server.redirect_http_to_https);
        assert_eq!(
            c.tls_certs,
            vec![TlsCertFiles {
                cert: dir.path().join("a.pem"),
                key: dir.path().join("a.key")
            }]
        );

        let c = validate(base).unwrap();
        assert_eq!(c.server.tls_listen, None);
        assert!(!c.server.redirect_http_to_https);
        assert!(c.tls_certs.is_empty());

        let e = errors(
            "[server]\ndocroot = \"public\"\ntls_listen = \"127.0.0.1:8443\"\n[php]\nbinary = \"fake-php-cgi\"\n",
        );
        assert!(e.contains("tls.cert: server.tls_listen is set"), "{e}");
        let e = errors(
            "[server]\ndocroot = \"public\"\nredirect_http_to_https = true\n[php]\nbinary = \"fake-php-cgi\"\n",
        );
        assert!(e.contains("server.redirect_http_to_https"), "{e}");
        let e = errors(&format!(
            "{base}[[tls.cert]]\ncert = \"a.pem\"\nkey = \"a.key\"\n"
        ));
        assert!(e.contains("server.tls_listen is not"), "{e}");
        let e = errors(
            "[server]\ndocroot = \"public\"\ntls_listen = \"here\"\n[php]\nbinary = \"fake-php-cgi\"\n[[tls.cert]]\ncert = \"none.pem\"\n",
        );
        assert!(e.contains("server.tls_listen: \"here\""), "{e}");
        assert!(e.contains("tls.cert[0].cert: "), "{e}");
        assert!(e.contains("none.pem is not a readable file"), "{e}");
        assert!(e.contains("tls.cert[0].key: missing"), "{e}");
        let e = errors(&format!(
            "{base}[[tls.cert]]\ncert = \"a.pem\"\nkye = \"a.key\"\n"
        ));
        assert!(e.contains("kye"), "{e}");
    }

    #[test]
    fn bad_units_are_named() {
        let e = errors("[server]\ndocroot = \"public\"\nmax_body_size = \"lots\"\n[php]\nbinary = \"fake-php-cgi\"\n[pool]\nqueue_timeout = \"5 fortnights\"\n");
        assert!(e.contains("server.max_body_size"), "{e}");
        assert!(e.contains("pool.queue_timeout"), "{e}");
    }
}
