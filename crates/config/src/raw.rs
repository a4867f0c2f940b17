//! The file format as written: every key optional, unknown keys rejected.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A number or a string with a unit, as durations and sizes may be written either way.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum NumOrStr {
    /// A bare integer (seconds for durations, bytes for sizes).
    Num(i64),
    /// A string with a unit.
    Str(String),
}

/// `isola.toml` as parsed, before defaults and validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`
    #[serde(default)]
    pub server: RawServer,
    /// `[pool]`
    #[serde(default)]
    pub pool: RawPool,
    /// `[php]`
    #[serde(default)]
    pub php: RawPhp,
    /// `[log]`
    #[serde(default)]
    pub log: RawLog,
    /// `[admin]`
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[tls]`
    #[serde(default)]
    pub tls: RawTls,
    /// `[[site]]`: virtual hosts, each with its own document root and pool.
    pub site: Option<Vec<RawSite>>,
    /// `[[schedule]]`: requests run on a clock.
    pub schedule: Option<Vec<RawSchedule>>,
    /// `[[queue]]`: job queues in the store, consumed by the pool.
    pub queue: Option<Vec<RawQueue>>,
    /// `[store]`: the Redis-compatible store PHP workers are pointed at.
    #[serde(default)]
    pub store: RawStore,
}

/// `[store]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `embedded` (default) or `off`; with `url`, the store is that server instead.
    pub backend: Option<String>,
    /// A Redis (or Valkey) server to use instead of the embedded store:
    /// `redis://[:password@]host[:port][/db]` or `unix:///path`.
    pub url: Option<String>,
    /// Embedded store: also listen on this TCP address.
    pub listen: Option<String>,
    /// Embedded store: password clients must send (AUTH).
    pub requirepass: Option<String>,
    /// Keep PHP sessions in the store (default: when PHP has the redis extension).
    pub sessions: Option<bool>,
    /// This server's name among several sharing one store (default: host name and port).
    pub node_id: Option<String>,
    /// Database of Isola's own keys (queues, node heartbeats, tick locks); default 15.
    pub isola_db: Option<i64>,
    /// Embedded store: directory of the append-only log (default: `$STATE_DIRECTORY`, else
    /// `/var/lib/isola` as root, else `$XDG_STATE_HOME/isola` or `~/.local/state/isola`).
    pub dir: Option<String>,
    /// Embedded store: keep an append-only log so writes survive restarts (default true).
    pub appendonly: Option<bool>,
    /// Embedded store: `everysec` (default), `always` or `no`.
    pub appendfsync: Option<String>,
    /// Embedded store: compact the log when it grew by this percentage (default 100, 0: never).
    pub auto_aof_rewrite_percentage: Option<i64>,
    /// Embedded store: ... and is at least this large (default 64MiB).
    pub auto_aof_rewrite_min_size: Option<NumOrStr>,
    /// Embedded store: damage before the end of the log: `refuse` (default) or `truncate`.
    pub aof_load_corrupt: Option<String>,
    /// Embedded store: memory limit for keys and values (default: none).
    pub maxmemory: Option<NumOrStr>,
    /// Embedded store: `noeviction` (default), `allkeys-lru`, `volatile-lru`, `allkeys-random`.
    pub maxmemory_policy: Option<String>,
}

/// One `[[queue]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    /// The queue's name: jobs are pushed to the list `isola:queue:NAME`.
    pub name: Option<String>,
    /// The PHP file that runs each job (relative paths from the config file's folder).
    pub script: Option<PathBuf>,
    /// The site whose pool and PHP settings run the jobs (default: the default site).
    pub site: Option<String>,
    /// Jobs run at once on this node (default 1: one at a time, in order).
    pub concurrency: Option<i64>,
    /// Longest a job may run before it is killed and counted failed.
    pub timeout: Option<NumOrStr>,
    /// Runs of a job before it goes to the dead list.
    pub max_attempts: Option<i64>,
    /// Wait before the first retry; doubles with each further attempt.
    pub backoff: Option<NumOrStr>,
    /// Workers of the pool kept free for web requests.
    pub reserve: Option<i64>,
    /// `"shared"` (the site's web pool, default) or `"own"` (a pool of `concurrency`
    /// workers for this queue alone).
    pub pool: Option<String>,
}

/// One `[[schedule]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// A name for logs (default: the URL).
    pub name: Option<String>,
    /// The request to run: a path and query on the site, naming a PHP script.
    pub url: Option<String>,
    /// Or a PHP file to run (relative paths from the config file's folder), possibly
    /// outside the document root.
    pub script: Option<PathBuf>,
    /// Cron pattern: 5 fields (minute hour day month weekday), or 6 with seconds first.
    pub cron: Option<String>,
    /// Time zone of the cron pattern (IANA name); UTC when unset.
    pub timezone: Option<String>,
    /// Or a fixed interval.
    pub every: Option<NumOrStr>,
    /// The site's host name (default: the default site).
    pub site: Option<String>,
    /// Start a run while the previous one is still going.
    pub overlap: Option<bool>,
    /// Delay each run by a random time up to this.
    pub jitter: Option<NumOrStr>,
}

/// One `[[site]]`: a virtual host. Keys left out are taken from `[server]`, `[pool]` and
/// `[php]` (`ini` and `env` merged name by name).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// Host names this site answers (`example.com`, `*.example.com`).
    pub server_names: Option<Vec<String>>,
    /// Gets requests for hosts no site names (with `server.unknown_host = "default"`).
    pub default: Option<bool>,
    /// Document root.
    pub docroot: Option<PathBuf>,
    /// Script that gets every request nothing else matches; `""` disables.
    pub front_controller: Option<String>,
    /// Index files tried in a directory.
    pub index: Option<Vec<String>>,
    /// Folders (relative to the docroot) below which PHP never executes.
    pub no_exec: Option<Vec<String>>,
    /// Follow symlinks that lead outside the document root.
    pub follow_symlinks_outside: Option<bool>,
    /// URL path patterns answered 404.
    pub deny: Option<Vec<String>>,
    /// URL path patterns exempt from the dotfile rule and from `deny`.
    pub allow: Option<Vec<String>>,
    /// Cache-Control of static files, by path pattern.
    pub cache_control: Option<Vec<RawCacheControl>>,
    /// URL prefixes served from other folders.
    pub alias: Option<Vec<RawAlias>>,
    /// Folders a script may hand a file from (X-Sendfile, X-Accel-Redirect).
    pub sendfile: Option<Vec<RawSendfile>>,
    /// Largest request body accepted by this site.
    pub max_body_size: Option<NumOrStr>,
    /// `[site.pool]`: this site's pool settings over `[pool]`.
    pub pool: Option<RawPool>,
    /// `[site.php]`: this site's PHP settings over `[php]`.
    pub php: Option<RawPhp>,
}

/// `[tls]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// `[[tls.cert]]`: certificates served on `server.tls_listen`; each is picked by the
    /// names in it (SNI), the first also for clients that send no name.
    pub cert: Option<Vec<RawTlsCert>>,
    /// `[tls.acme]`: obtain and renew a certificate from an ACME CA (RFC 8555).
    pub acme: Option<RawAcme>,
}

/// `[tls.acme]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    /// Contact address given to the CA.
    pub email: Option<String>,
    /// Names on the certificate, beside every `[[site]]` server name.
    pub domains: Option<Vec<String>>,
    /// The CA's directory URL (default: Let's Encrypt).
    pub directory: Option<String>,
    /// PEM file of a root to trust for the CA's own HTTPS endpoint (internal CAs, Pebble).
    pub ca_root: Option<PathBuf>,
    /// Challenge types to use, in order of preference: `"http-01"`, `"tls-alpn-01"`.
    pub challenges: Option<Vec<String>>,
    /// Renew this long before expiry (default: when a third of the lifetime is left).
    pub renew_before: Option<NumOrStr>,
    /// Folder of the account key and certificates (default: `acme` in the data folder).
    pub dir: Option<String>,
}

/// One `[[tls.cert]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsCert {
    /// PEM file with the certificate, then its intermediates.
    pub cert: Option<PathBuf>,
    /// PEM file with the certificate's private key.
    pub key: Option<PathBuf>,
}

/// `[admin]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin listener (status, metrics, health); off when unset.
    pub listen: Option<String>,
    /// A secret every admin request must carry (`Authorization: Bearer ...` or
    /// `?token=...`); none when unset.
    pub token: Option<String>,
}

/// `[server]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Public listen address.
    pub listen: Option<String>,
    /// HTTPS listen address (certificates in `[[tls.cert]]`); off when unset.
    pub tls_listen: Option<String>,
    /// Answer plain-HTTP requests with a redirect to the same URL over HTTPS.
    pub redirect_http_to_https: Option<bool>,
    /// Also serve HTTP/3 over QUIC on `tls_listen`'s port (UDP); experimental, off by default.
    pub http3: Option<bool>,
    /// Document root.
    pub docroot: Option<PathBuf>,
    /// Script that gets every request nothing else matches; `""` disables.
    pub front_controller: Option<String>,
    /// Index files tried in a directory.
    pub index: Option<Vec<String>>,
    /// Folders (relative to the docroot) below which PHP never executes.
    pub no_exec: Option<Vec<String>>,
    /// Follow symlinks that lead outside the document root.
    pub follow_symlinks_outside: Option<bool>,
    /// Largest request body accepted.
    pub max_body_size: Option<NumOrStr>,
    /// Time allowed for a client to send the request head.
    pub header_read_timeout: Option<NumOrStr>,
    /// How long an idle keep-alive connection is kept.
    pub keepalive_timeout: Option<NumOrStr>,
    /// Longest wait for in-flight requests on stop.
    pub shutdown_timeout: Option<NumOrStr>,
    /// Where to write the server's pid.
    pub pid_file: Option<PathBuf>,
    /// Most client connections open at once; further clients wait in the listen backlog.
    pub max_connections: Option<i64>,
    /// Threads of the front's runtime (nginx `worker_processes`); one per core when unset.
    pub threads: Option<i64>,
    /// Peers (addresses or CIDR blocks) whose Forwarded / X-Forwarded-* headers are believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// Send the version in the `Server` header (nginx `server_tokens`).
    pub server_tokens: Option<bool>,
    /// URL path patterns answered 404 whatever they name.
    pub deny: Option<Vec<String>>,
    /// URL path patterns exempt from the dotfile rule and from `deny`.
    pub allow: Option<Vec<String>>,
    /// `[[server.cache_control]]`: Cache-Control of static files, by path pattern.
    pub cache_control: Option<Vec<RawCacheControl>>,
    /// `[[server.alias]]`: URL prefixes served from other folders.
    pub alias: Option<Vec<RawAlias>>,
    /// `[[server.sendfile]]`: folders a script may hand a file from (X-Sendfile,
    /// X-Accel-Redirect); none when unset.
    pub sendfile: Option<Vec<RawSendfile>>,
    /// `[server.compression]`
    pub compression: Option<RawCompression>,
    /// With `[[site]]`: what a Host no site names gets: `default` (the default site),
    /// `404` or `421`.
    pub unknown_host: Option<String>,
}

/// One `[[server.alias]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlias {
    /// URL prefix, e.g. `/wp-content`.
    pub path: Option<String>,
    /// The folder served there.
    pub dir: Option<PathBuf>,
}

/// One `[[server.sendfile]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSendfile {
    /// The folder (absolute) files may be sent from.
    pub dir: Option<PathBuf>,
    /// Internal URL prefix for X-Accel-Redirect, e.g. `/protected`; never reachable by a
    /// client. Without it, only X-Sendfile paths reach the folder.
    pub path: Option<String>,
}

/// One `[[server.cache_control]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheControl {
    /// Path pattern (`*.css`, `/assets/**`).
    pub path: Option<String>,
    /// The Cache-Control value sent with matching static files.
    pub value: Option<String>,
}

/// `[server.compression]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    /// Compress responses on the fly.
    pub enabled: Option<bool>,
    /// Bodies known to be smaller are sent as they are.
    pub min_size: Option<NumOrStr>,
    /// Codings offered, in order of preference among those the client weighs alike.
    pub codings: Option<Vec<String>>,
}

/// `[pool]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// `static`, `dynamic` or `ondemand` (php-fpm `pm`).
    pub pm: Option<String>,
    /// Number of workers, or the most (php-fpm `pm.max_children`); `"auto"` derives it from
    /// memory.
    pub max_children: Option<NumOrStr>,
    /// auto: memory for the pool (`"auto"`: the cgroup limit, else MemAvailable).
    pub memory_budget: Option<NumOrStr>,
    /// auto: memory kept out of the budget.
    pub memory_reserve: Option<NumOrStr>,
    /// auto: cost of one worker until workers are measured.
    pub worker_memory_estimate: Option<NumOrStr>,
    /// auto: most workers whatever the memory.
    pub max_children_ceiling: Option<i64>,
    /// dynamic: workers at start (php-fpm `pm.start_servers`).
    pub start_children: Option<i64>,
    /// dynamic: fewest idle workers (php-fpm `pm.min_spare_servers`).
    pub min_spare: Option<i64>,
    /// dynamic: most idle workers (php-fpm `pm.max_spare_servers`).
    pub max_spare: Option<i64>,
    /// ondemand: idle time before a worker is retired (php-fpm `pm.process_idle_timeout`).
    pub idle_timeout: Option<NumOrStr>,
    /// Retire a worker whose RSS exceeds this after a request.
    pub max_worker_memory: Option<NumOrStr>,
    /// Retire a worker after this long.
    pub max_lifetime: Option<NumOrStr>,
    /// Crashes within `emergency_restart_interval` that start the crash-loop backoff.
    pub emergency_restart_threshold: Option<i64>,
    /// Window for `emergency_restart_threshold`.
    pub emergency_restart_interval: Option<NumOrStr>,
    /// Log requests running longer than this (php-fpm `request_slowlog_timeout`).
    pub slowlog_timeout: Option<NumOrStr>,
    /// Most PHP frames logged for a slow request, native backend (php-fpm
    /// `request_slowlog_trace_depth`).
    pub slowlog_trace_depth: Option<i64>,
    /// Requests before a worker is recycled (php-fpm `pm.max_requests`).
    pub max_requests: Option<i64>,
    /// Most requests waiting for a worker.
    pub queue_size: Option<i64>,
    /// Longest wait for a worker before 503.
    pub queue_timeout: Option<NumOrStr>,
    /// Longest a request may run before its worker is killed (php-fpm
    /// `request_terminate_timeout`).
    pub request_terminate_timeout: Option<NumOrStr>,
    /// Run a complete request whose client hung up while it waited for a worker.
    pub run_abandoned: Option<bool>,
}

/// `[php]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhp {
    /// `auto` (native where the engine library is installed, else php-cgi), `native` or
    /// `php-cgi`.
    pub backend: Option<String>,
    /// php-cgi binary, a path or a name looked up in PATH.
    pub binary: Option<String>,
    /// php.ini settings passed to every worker as `-d name=value`.
    pub ini: Option<BTreeMap<String, toml::Value>>,
    /// php.ini to read instead of the default one (php-cgi's `-c`).
    pub ini_file: Option<String>,
    /// Worker mode: this script (relative to the docroot) boots once per worker and serves
    /// its requests in a loop (`frankenphp_handle_request`); native backend only.
    pub worker: Option<String>,
    /// Worker mode: replace the workers when a PHP file (or config) below the docroot
    /// changes (default true).
    pub worker_watch: Option<bool>,
    /// Environment variables of every worker.
    pub env: Option<BTreeMap<String, String>>,
    /// Run workers as this user (Isola started as root).
    pub user: Option<String>,
    /// Run workers with this group (default: the user's primary group).
    pub group: Option<String>,
    /// RLIMIT_NOFILE of workers (php-fpm `rlimit_files`).
    pub rlimit_files: Option<i64>,
    /// RLIMIT_CORE of workers (php-fpm `rlimit_core`); 0 disables core dumps.
    pub rlimit_core: Option<NumOrStr>,
}

/// `[log]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `human` or `json`.
    pub format: Option<String>,
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter directive.
    pub level: Option<String>,
    /// Write one access log line per request.
    pub access: Option<bool>,
    /// `combined` or `json`.
    pub access_format: Option<String>,
    /// Access log file (reopened on SIGUSR1); stdout when unset.
    pub access_file: Option<PathBuf>,
}
