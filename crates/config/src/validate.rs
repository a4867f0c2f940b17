//! From [`RawConfig`] to [`Config`]: each section validated by its own module (`server.rs`,
//! `pool.rs`, `php.rs`, `logging.rs`, `store.rs`, `queue.rs`, `schedule.rs`), then the
//! checks across sections (listeners that must differ, certificates that need a TLS
//! listener), every problem reported at once. Also the value parsers the sections share.
use crate::raw::{NumOrStr, RawConfig};
use crate::units::{parse_duration, parse_size};
use crate::{ConfigError, LogConfig, PhpConfig, PoolSettings, ServerConfig};
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
        let server = crate::server::validate(self.server, base_dir, &mut errs);
        let pool = crate::pool::validate(self.pool, &mut errs);
        let php = crate::php::validate(self.php, base_dir, search_path, &server.docroot, &mut errs);
        let log = crate::logging::validate(self.log, base_dir, &mut errs);
        let (admin_listen, admin_token) = admin(self.admin, &mut errs);
        let listen = server.listen;
        let tls_listen = server.tls_listen;
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
        let acme = self
            .tls
            .acme
            .map(|a| crate::acme::validate(a, listen, tls_listen, base_dir, &mut errs));
        let tls_certs = tls_certs(
            self.tls.cert,
            tls_listen,
            acme.is_some(),
            base_dir,
            &mut errs,
        );

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
            server,
            pool,
            php,
            log,
            admin_listen,
            admin_token,
            tls_certs,
            acme,
            sites: Vec::new(),
            unknown_host: crate::UnknownHost::Default(0),
            schedules,
            queues,
            store,
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
) -> Vec<TlsCertFiles> {
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
    use crate::{AccessFormat, AutoChildren, LogFormat, PmMode, DEFAULT_LISTEN};

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
        assert!(!c.server.http3, "HTTP/3 is off unless asked for");
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
