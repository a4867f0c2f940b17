//! From [`RawConfig`] to [`Config`]: each section validated by its own module (`server.rs`,
//! `pool.rs`, `php.rs`, `logging.rs`, `store.rs`, `queue.rs`, `schedule.rs`), then the
//! checks across sections (listeners that must differ, certificates that need a TLS
//! listener), every problem reported at once. Also the value parsers the sections share.
use crate::raw::{NumOrStr, RawConfig};
use crate::units::{parse_duration, parse_size};
use crate::{AccessLogConfig, ConfigError, LogConfig, PhpConfig, ServerConfig};
use isola_front::tls::CertFiles;
use isola_front::{ConnLimits, Limits, UnknownHost};
use isola_pool::PoolSettings;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated configuration: what a reload applies, and in [`Config::startup`] what it
/// does not.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings taken at start only (listeners, server log, connection limits, store,
    /// ACME).
    pub startup: Startup,
    /// `[server]`
    pub server: ServerConfig,
    /// `[pool]`: the pool's own settings.
    pub pool: PoolSettings,
    /// The request limits of `[server]` and `[pool]`.
    pub limits: Limits,
    /// `[php]`
    pub php: PhpConfig,
    /// `[log]`: the access log.
    pub log: AccessLogConfig,
    /// `[[tls.cert]]`: certificate files, in order (the first is the default); empty
    /// exactly when `server.tls_listen` is unset. Their contents are checked when they are
    /// loaded (by the front), which names the key as [`tls_cert_key`] does.
    pub tls_certs: Vec<CertFiles>,
    /// The sites served: the `[[site]]` list, or one site made of `[server]`, `[pool]` and
    /// `[php]` (with no names: it answers every host).
    pub sites: Vec<crate::SiteConfig>,
    /// What a Host that no site names gets.
    pub unknown_host: UnknownHost,
    /// `[[schedule]]`: requests run on a clock.
    pub schedules: Vec<crate::ScheduleConfig>,
    /// `[[queue]]`: job queues run by the pool (with the built-in `defer` queue); empty
    /// when there is no store.
    pub queues: Vec<crate::QueueConfig>,
}

/// The settings a reload does not apply: they are set up once, when the server starts. A
/// reload that changes one says so ([`Startup::changed`]) and applies the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    /// `server.listen`: the public listen address.
    pub listen: SocketAddr,
    /// `server.tls_listen`: the HTTPS listen address, if enabled.
    pub tls_listen: Option<SocketAddr>,
    /// `server.redirect_http_to_https` (only with `tls_listen`).
    pub redirect_http_to_https: bool,
    /// `server.http3`: HTTP/3 over QUIC on `tls_listen`'s port, UDP (experimental; only
    /// with `tls_listen`).
    pub http3: bool,
    /// `admin.listen`: the admin listener's address, if enabled.
    pub admin_listen: Option<SocketAddr>,
    /// `admin.token`: the secret admin requests must carry, if set.
    pub admin_token: Option<String>,
    /// `server.pid_file`, relative paths resolved against the config file's folder.
    pub pid_file: Option<PathBuf>,
    /// `server.threads`: threads of the front's runtime; `None`: one per core.
    pub threads: Option<usize>,
    /// `log.format`, `log.level`: the server log.
    pub log: LogConfig,
    /// `server.header_read_timeout`, `keepalive_timeout`, `shutdown_timeout`,
    /// `max_connections`.
    pub conn: ConnLimits,
    /// `[store]`.
    pub store: crate::StoreSettings,
    /// `[tls.acme]`: certificates obtained from an ACME CA, if enabled.
    pub acme: Option<crate::AcmeConfig>,
}

impl Startup {
    /// The settings that differ between `self` and `other`, by name, in a fixed order.
    pub fn changed(&self, other: &Self) -> Vec<&'static str> {
        // Taken apart field by field, so a setting added to `Startup` (or to `ConnLimits`)
        // does not compile until it is named here.
        let Startup {
            listen,
            tls_listen,
            redirect_http_to_https,
            http3,
            admin_listen,
            admin_token,
            pid_file,
            threads,
            log,
            conn,
            store,
            acme,
        } = self;
        let ConnLimits {
            header_read_timeout,
            keepalive_timeout,
            shutdown_timeout,
            max_connections,
        } = conn;
        let o = &other.conn;
        [
            ("server.listen", *listen != other.listen),
            ("admin.listen", *admin_listen != other.admin_listen),
            ("admin.token", *admin_token != other.admin_token),
            ("server.pid_file", *pid_file != other.pid_file),
            ("server.threads", *threads != other.threads),
            ("server.tls_listen", *tls_listen != other.tls_listen),
            (
                "server.redirect_http_to_https",
                *redirect_http_to_https != other.redirect_http_to_https,
            ),
            ("server.http3", *http3 != other.http3),
            ("log", *log != other.log),
            (
                "server timeouts",
                *header_read_timeout != o.header_read_timeout
                    || *keepalive_timeout != o.keepalive_timeout
                    || *shutdown_timeout != o.shutdown_timeout,
            ),
            (
                "server.max_connections",
                *max_connections != o.max_connections,
            ),
            ("store", *store != other.store),
            ("tls.acme", *acme != other.acme),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }
}

/// The config key of field `field` (`"cert"` or `"key"`) of the `index`th certificate, for
/// error messages: `tls.cert[0].key`.
pub fn tls_cert_key(index: usize, field: &str) -> String {
    format!("tls.cert[{index}].{field}")
}

impl RawConfig {
    /// Applies defaults and checks every value. `base_dir` anchors a relative docroot (the
    /// config file's folder, or the working directory); `env` is what the caller read from
    /// the process environment.
    pub fn validate(self, base_dir: &Path, env: &crate::Env) -> Result<Config, ConfigError> {
        crate::sites::validate(self, base_dir, env)
    }

    /// [`RawConfig::validate`] without `[[site]]`: `[server]`, `[pool]` and `[php]` as one
    /// site.
    pub(crate) fn validate_one(
        self,
        base_dir: &Path,
        env: &crate::Env,
    ) -> Result<Config, ConfigError> {
        let mut errs = Vec::new();
        let crate::server::ServerSection {
            server,
            startup: s,
            max_body_size,
        } = crate::server::validate(self.server, base_dir, &mut errs);
        let pool = crate::pool::validate(self.pool, &mut errs);
        let limits = Limits {
            max_body_size,
            request_terminate_timeout: pool.request_terminate_timeout,
            run_abandoned: pool.run_abandoned,
        };
        let php = crate::php::validate(
            self.php,
            base_dir,
            &env.search_path,
            &server.routing.docroot,
            &mut errs,
        );
        let (log, access_log) = crate::logging::validate(self.log, base_dir, &mut errs);
        let (admin_listen, admin_token) = admin(self.admin, &mut errs);
        let listen = s.listen;
        let tls_listen = s.tls_listen;
        if admin_listen.is_some_and(|a| a == listen && a.port() != 0) {
            errs.push("admin.listen: must differ from server.listen".to_string());
        }

        if let Some(t) = tls_listen {
            if t.port() != 0 && (t == listen || Some(t) == admin_listen) {
                errs.push(
                    "server.tls_listen: must differ from server.listen and admin.listen"
                        .to_string(),
                );
            }
        }
        let acme = self.tls.acme.map(|a| {
            crate::acme::validate(
                a,
                listen,
                tls_listen,
                base_dir,
                env.state_dir.as_deref(),
                &mut errs,
            )
        });
        let tls_certs = tls_certs(
            self.tls.cert,
            tls_listen,
            acme.is_some(),
            base_dir,
            &mut errs,
        );

        let schedules =
            crate::schedule::validate(self.schedule.unwrap_or_default(), base_dir, &mut errs);
        let store = crate::store::validate(self.store, env.state_dir.as_deref(), &mut errs);
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
            startup: Startup {
                listen,
                tls_listen,
                redirect_http_to_https: s.redirect_http_to_https,
                http3: s.http3,
                admin_listen,
                admin_token,
                pid_file: s.pid_file,
                threads: s.threads,
                log,
                conn: s.conn,
                store,
                acme,
            },
            server,
            pool: pool.settings,
            limits,
            php,
            log: access_log,
            tls_certs,
            sites: Vec::new(),
            unknown_host: UnknownHost::Site(0),
            schedules,
            queues,
        })
    }
}

pub(crate) fn count(
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

/// `[admin]`: its listener and token.
fn admin(
    raw: crate::raw::RawAdmin,
    errs: &mut Vec<String>,
) -> (Option<SocketAddr>, Option<String>) {
    let admin_listen = raw.listen.and_then(|a| match a.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errs.push(format!(
                "admin.listen: {a:?} is not an address; use IP:PORT, e.g. \"127.0.0.1:9180\""
            ));
            None
        }
    });
    let admin_token = raw.token.filter(|t| {
        let ok = t.len() >= 16 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
        if !ok {
            errs.push("admin.token: use at least 16 characters of letters, digits and -._~+/= (e.g. the output of `openssl rand -hex 16`)".to_string());
        }
        ok
    });
    (admin_listen, admin_token)
}

/// `[[tls.cert]]`: certificate and key files, only with a TLS listener; none needed when
/// `acme` (certificates come from the CA).
fn tls_certs(
    certs: Option<Vec<crate::raw::RawTlsCert>>,
    tls_listen: Option<SocketAddr>,
    acme: bool,
    base_dir: &Path,
    errs: &mut Vec<String>,
) -> Vec<CertFiles> {
    let raw_certs = certs.unwrap_or_default();
    if tls_listen.is_some() && raw_certs.is_empty() && !acme {
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
            let key = tls_cert_key(i, field);
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
        tls_certs.push(CertFiles { cert, key });
    }

    if tls_listen.is_some() {
        tls_certs
    } else {
        Vec::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{LogFormat, DEFAULT_LISTEN};
    use isola_front::AccessFormat;
    use isola_pool::{AutoSettings, ProcessManager};

    fn validate(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("public")).unwrap();
        let bin = dir.path().join("fake-php-cgi");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let raw = RawConfig::from_toml(text, Path::new("isola.toml"))?;
        raw.validate(dir.path(), &crate::Env::for_tests(dir.path()))
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
        assert_eq!(c.startup.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.server.routing.docroot.ends_with("public"));
        assert_eq!(
            c.server.routing.front_controller.as_deref(),
            Some("index.php")
        );
        assert_eq!(c.pool.max_children, 4);
        assert_eq!(
            c.limits.request_terminate_timeout,
            Some(Duration::from_secs(60))
        );
        assert_eq!(c.pool.slowlog_timeout, None);
        assert_eq!(c.pool.slowlog_trace_depth, 20, "php-fpm's default");
        assert_eq!(c.startup.log.format, LogFormat::Human);
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
        assert_eq!(c.server.routing.front_controller, None);
        assert_eq!(c.limits.max_body_size, 8 << 20);
        assert_eq!(c.pool.max_children, 8);
        assert_eq!(c.limits.request_terminate_timeout, None);
        assert_eq!(c.pool.queue_timeout, Duration::from_millis(250));
        assert_eq!(c.php.ini["opcache.enable"], "1");
        assert_eq!(c.php.ini["max_execution_time"], "5");
        assert_eq!(c.startup.log.format, LogFormat::Json);
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
            ProcessManager::Dynamic {
                start: 4,
                min_spare: 2,
                max_spare: 6
            }
        );
        let c = validate(&format!("{base}[pool]\npm = \"ondemand\"\nidle_timeout = \"30s\"\nmax_worker_memory = \"256M\"\nmax_lifetime = \"1h\"\n")).unwrap();
        assert_eq!(
            c.pool.pm,
            ProcessManager::OnDemand {
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
            c.pool.auto,
            Some(AutoSettings {
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
        assert_eq!(c.pool.auto.unwrap().budget, None);
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
            "{PHP}[server]\nmax_connections = 100\nthreads = 3\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"192.168.1.7/24\"]\nserver_tokens = true\ndeny = [\"*.sql\", \"/vendor/**\"]\nallow = [\"/.well-known/**\"]\n[[server.cache_control]]\npath = \"/assets/**\"\nvalue = \"public, max-age=31536000, immutable\"\n[server.compression]\nmin_size = \"2KiB\"\ncodings = [\"gzip\", \"br\"]\n[log]\naccess_format = \"json\"\naccess_file = \"access.log\"\n"
        ))
        .unwrap();
        let s = &c.server;
        assert_eq!(c.startup.conn.max_connections, 100);
        assert_eq!(c.startup.threads, Some(3));
        let nets: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "::1/128", "192.168.1.0/24"]);
        assert!(s.server_tokens);
        assert!(s.routing.deny.matches(b"/db.sql") && s.routing.deny.matches(b"/vendor/a.php"));
        assert!(!s.routing.deny.matches(b"/index.php"));
        assert!(s.routing.allow.matches(b"/.well-known/x"));
        assert_eq!(
            s.cache_control
                .lookup(b"/assets/a.css")
                .map(|v| v.as_bytes()),
            Some(&b"public, max-age=31536000, immutable"[..])
        );
        assert_eq!(s.compression.min_size, 2048);
        assert_eq!(s.compression.codings, ["gzip", "br"]);
        assert!(s.compression.enabled);
        assert_eq!(c.log.access_format, AccessFormat::Json);
        assert!(c.log.access_file.as_ref().unwrap().ends_with("access.log"));

        let d = validate(PHP).unwrap();
        assert_eq!(d.startup.conn.max_connections, 10_000);
        assert_eq!(d.startup.threads, None, "one per core unless set");
        assert!(d.server.trusted_proxies.is_empty());
        assert!(!d.server.server_tokens);
        assert_eq!(d.server.compression.codings, ["br", "zstd", "gzip"]);
        assert_eq!(d.log.access_format, AccessFormat::Combined);
        assert_eq!(d.log.access_file, None);
        let j = validate(&format!("{PHP}[log]\nformat = \"json\"\n")).unwrap();
        assert_eq!(j.log.access_format, AccessFormat::Json);

        let e = errors(
            "[server]\nmax_connections = 0\nthreads = 0\ntrusted_proxies = [\"10.0.0.0/33\"]\ndeny = [\"vendor/**\"]\nallow = [\"/a/[b\"]\n[[server.cache_control]]\npath = \"*.css\"\n[server.compression]\ncodings = [\"lzma\"]\n[log]\naccess_format = \"clf\"\naccess_file = \"/no/such/dir/a.log\"\n",
        );
        for key in [
            "server.max_connections",
            "server.threads",
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
    fn cache_control_problems_name_their_rule() {
        let e = errors(&format!(
            "{PHP}[[server.cache_control]]\nvalue = \"max-age=60\"\n[[server.cache_control]]\npath = \"/a/[b\"\nvalue = \"\"\n"
        ));
        let lines: Vec<&str> = e.lines().collect();
        assert!(
            lines[0].starts_with("server.cache_control[0].path: missing"),
            "{e}"
        );
        assert!(
            lines[1].starts_with("server.cache_control[1].path: "),
            "{e}"
        );
        assert!(
            lines[2].starts_with("server.cache_control[1].value: "),
            "{e}"
        );
    }

    #[test]
    fn startup_changes_are_named() {
        let a = validate(PHP).unwrap();
        assert!(a.startup.changed(&a.startup.clone()).is_empty());
        let b = validate(&format!(
            "{PHP}[server]\nlisten = \"127.0.0.1:9999\"\nshutdown_timeout = 5\n[log]\nlevel = \"debug\"\n"
        ))
        .unwrap();
        assert_eq!(
            a.startup.changed(&b.startup),
            ["server.listen", "log", "server timeouts"]
        );
        // Read once at start too: a reload that changes them must say it does not apply them.
        let c = validate(&format!(
            "{PHP}[server]\npid_file = \"/run/isola-test.pid\"\nthreads = 2\n[admin]\nlisten = \"127.0.0.1:9180\"\ntoken = \"0123456789abcdef0123\"\n"
        ))
        .unwrap();
        assert_eq!(
            a.startup.changed(&c.startup),
            [
                "admin.listen",
                "admin.token",
                "server.pid_file",
                "server.threads"
            ]
        );
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
        assert_eq!(c.server.routing.aliases.len(), 1);
        assert_eq!(c.server.routing.aliases[0].0, "/assets");
        assert!(c.server.routing.aliases[0].1.is_absolute());
        assert_eq!(c.sites[0].routing.aliases, c.server.routing.aliases);
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
        let c = raw
            .validate(dir.path(), &crate::Env::for_tests(dir.path()))
            .unwrap();
        assert_eq!(c.startup.tls_listen.unwrap().to_string(), "127.0.0.1:8443");
        assert!(c.startup.redirect_http_to_https);
        assert!(!c.startup.http3, "HTTP/3 is off unless asked for");
        assert_eq!(
            c.tls_certs,
            vec![CertFiles {
                cert: dir.path().join("a.pem"),
                key: dir.path().join("a.key")
            }]
        );

        let c = validate(base).unwrap();
        assert_eq!(c.startup.tls_listen, None);
        assert!(!c.startup.redirect_http_to_https);
        assert!(c.tls_certs.is_empty());

        let e = errors(
            "[server]\ndocroot = \"public\"\ntls_listen = \"127.0.0.1:8443\"\n[php]\nbinary = \"fake-php-cgi\"\n",
        );
        assert!(e.contains("tls.cert: server.tls_listen is set"), "{e}");
        let e = errors(
            "[server]\ndocroot = \"public\"\nredirect_http_to_https = true\n[php]\nbinary = \"fake-php-cgi\"\n",
        );
        assert!(e.contains("server.redirect_http_to_https"), "{e}");
        let e = errors(
            "[server]\ndocroot = \"public\"\nhttp3 = true\n[php]\nbinary = \"fake-php-cgi\"\n",
        );
        assert!(e.contains("server.http3: needs server.tls_listen"), "{e}");
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
