//! Virtual hosts: `[[site]]` entries, each a document root with its own routing, pool and
//! PHP settings, chosen by the request's Host.
//!
//! A site inherits every key it leaves out from `[server]` (routing keys), `[pool]` and
//! `[php]` (`ini` and `env` merged name by name), and is then validated by the same rules as
//! a single-site configuration; its problems are named `site[N].key`.
use crate::raw::{RawConfig, RawServer, RawSite};
use crate::validate::Config;
use crate::ConfigError;
use crate::PhpConfig;
use isola_front::{CacheControl, Limits, UnknownHost};
use isola_pool::PoolSettings;
use isola_router::RouterConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// One site, validated.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Host names, lowercase; `*.example.com` matches any name below example.com. Empty for
    /// the single site of a configuration without `[[site]]`: it answers every host.
    pub names: Vec<String>,
    /// The router's own settings: the canonical docroot and every routing rule.
    pub routing: RouterConfig,
    /// Cache-Control of static files by path pattern.
    pub cache_control: CacheControl,
    /// Folders a script may hand a file from.
    pub sendfile: Vec<crate::SendfileDir>,
    /// Its request limits (`max_body_size`, the pool's `request_terminate_timeout` and
    /// `run_abandoned`).
    pub limits: Limits,
    /// The site's pool.
    pub pool: PoolSettings,
    /// The site's PHP settings.
    pub php: PhpConfig,
}

impl SiteConfig {
    /// A short label for logs and metrics: the first name, else the docroot.
    pub fn label(&self) -> String {
        self.names
            .first()
            .cloned()
            .unwrap_or_else(|| self.routing.docroot.display().to_string())
    }

    fn from_config(c: &Config, names: Vec<String>) -> Self {
        let s = &c.server;
        SiteConfig {
            names,
            routing: s.routing.clone(),
            cache_control: s.cache_control.clone(),
            sendfile: s.sendfile.clone(),
            limits: c.limits.clone(),
            pool: c.pool.clone(),
            php: c.php.clone(),
        }
    }
}

/// Keys of `[server]` a site may set (and inherits).
const SITE_SERVER_KEYS: &[&str] = &[
    "docroot",
    "front_controller",
    "index",
    "no_exec",
    "follow_symlinks_outside",
    "deny",
    "allow",
    "cache_control",
    "alias",
    "sendfile",
    "max_body_size",
];

pub(crate) fn validate(
    mut raw: RawConfig,
    base_dir: &Path,
    env: &crate::Env,
) -> Result<Config, ConfigError> {
    let sites = raw.site.take().unwrap_or_default();
    let unknown = raw.server.unknown_host.take();
    if sites.is_empty() {
        let mut c = raw.validate_one(base_dir, env);
        if unknown.is_some() {
            let msg = "server.unknown_host: only applies with [[site]]".to_string();
            c = match c {
                Ok(_) => Err(ConfigError::Invalid(vec![msg])),
                Err(ConfigError::Invalid(mut e)) => {
                    e.push(msg);
                    Err(ConfigError::Invalid(e))
                }
                other => other,
            };
        }
        let mut c = c?;
        c.sites = vec![SiteConfig::from_config(&c, Vec::new())];
        if let Some(a) = &mut c.startup.acme {
            let mut errs = Vec::new();
            crate::acme::add_site_names(a, [], &mut errs);
            if !errs.is_empty() {
                return Err(ConfigError::Invalid(errs));
            }
        }
        return Ok(c);
    }

    let mut errs = Vec::new();
    if raw.server.docroot.is_some() {
        errs.push(
            "server.docroot: with [[site]], every site names its own docroot; move it into a [[site]]"
                .to_string(),
        );
    }
    let global = {
        let mut g = raw.clone();
        g.server.docroot = None;
        g.validate_one(base_dir, env)
    };
    let global_errs = match &global {
        Err(ConfigError::Invalid(e)) => e.clone(),
        Err(_) => return global,
        Ok(_) => Vec::new(),
    };
    errs.extend(global_errs.iter().cloned());

    let mut out = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut default = None;
    for (i, site) in sites.into_iter().enumerate() {
        let key = format!("site[{i}]");
        let names = site.server_names.clone().unwrap_or_default();
        if names.is_empty() {
            errs.push(format!(
                "{key}.server_names: missing; name the hosts this site answers, e.g. [\"example.com\", \"www.example.com\"]"
            ));
        }
        let mut lower = Vec::new();
        for n in &names {
            let l = n.trim_end_matches('.').to_ascii_lowercase();
            if !valid_name(&l) {
                errs.push(format!(
                    "{key}.server_names: {n:?} is not a host name (letters, digits, '-', '.', optionally starting with \"*.\")"
                ));
            } else if let Some((_, j)) = seen.iter().find(|(s, _)| *s == l) {
                errs.push(format!(
                    "{key}.server_names: {n:?} is already a name of site[{j}]"
                ));
            } else {
                if raw.tls.acme.is_some() {
                    crate::acme::check_name(&format!("{key}.server_names"), n, &l, &mut errs);
                }
                seen.push((l.clone(), i));
                lower.push(l);
            }
        }
        if site.default == Some(true) {
            match default {
                Some(j) => errs.push(format!(
                    "{key}.default: site[{j}] is already the default site"
                )),
                None => default = Some(i),
            }
        }
        if site.docroot.is_none() {
            errs.push(format!("{key}.docroot: missing; every site names its own"));
            continue;
        }
        let derived = match derive(&raw, site) {
            Ok(d) => d,
            Err(e) => {
                errs.push(format!("{key}: {e}"));
                continue;
            }
        };
        match derived.validate_one(base_dir, env) {
            Ok(c) => out.push(SiteConfig::from_config(&c, lower)),
            Err(ConfigError::Invalid(e)) => {
                for m in e {
                    if global_errs.contains(&m) {
                        continue;
                    }
                    let is_site_key = SITE_SERVER_KEYS
                        .iter()
                        .any(|k| m.starts_with(&format!("server.{k}")))
                        || m.starts_with("pool.")
                        || m.starts_with("php.");
                    if is_site_key {
                        let m = m.strip_prefix("server.").unwrap_or(&m);
                        errs.push(format!("{key}.{m}"));
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    let autos = out
        .iter()
        .filter(|s| s.pool.auto.as_ref().is_some_and(|a| a.budget.is_none()))
        .count();
    if out.len() > 1 && autos > 0 {
        errs.push(
            "pool.max_children: \"auto\" with several sites needs a memory_budget per site ([site.pool] memory_budget): the sites share the machine's memory"
                .to_string(),
        );
    }
    let unknown_host = match unknown.as_deref() {
        None | Some("default") => UnknownHost::Site(default.unwrap_or(0)),
        Some("404") => UnknownHost::NotFound,
        Some("421") => UnknownHost::Misdirected,
        Some(other) => {
            errs.push(format!(
                "server.unknown_host: {other:?} is not an answer; use \"default\", \"404\" or \"421\""
            ));
            UnknownHost::NotFound
        }
    };
    let mut global = global;
    if let Ok(Config {
        startup: crate::Startup { acme: Some(a), .. },
        ..
    }) = &mut global
    {
        let names = out.iter().flat_map(|s| s.names.iter().cloned());
        crate::acme::add_site_names(a, names, &mut errs);
    }
    if !errs.is_empty() {
        errs.dedup();
        return Err(ConfigError::Invalid(errs));
    }
    let mut c = global?;
    c.sites = out;
    c.unknown_host = unknown_host;
    Ok(c)
}

/// `example.com`, `www.example.com`, `*.example.com`, `localhost`.
pub(crate) fn valid_name(n: &str) -> bool {
    let host = n.strip_prefix("*.").unwrap_or(n);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The single-site configuration a `[[site]]` stands for: the top level with the site's
/// keys laid over it.
fn derive(top: &RawConfig, site: RawSite) -> Result<RawConfig, String> {
    let own = RawServer {
        docroot: site.docroot,
        front_controller: site.front_controller,
        index: site.index,
        no_exec: site.no_exec,
        follow_symlinks_outside: site.follow_symlinks_outside,
        deny: site.deny,
        allow: site.allow,
        cache_control: site.cache_control,
        alias: site.alias,
        sendfile: site.sendfile,
        max_body_size: site.max_body_size,
        ..RawServer::default()
    };
    let mut d = top.clone();
    d.server = overlay(&top.server, &own)?;
    if let Some(p) = site.pool {
        d.pool = overlay(&top.pool, &p)?;
    }
    if let Some(p) = site.php {
        d.php = overlay(&top.php, &p)?;
    }
    Ok(d)
}

/// `over`'s keys laid over `base`'s; tables one level down (`ini`, `env`) are merged key
/// by key.
fn overlay<T: Serialize + DeserializeOwned>(base: &T, over: &T) -> Result<T, String> {
    let mut b = toml::Table::try_from(base).map_err(|e| e.to_string())?;
    let o = toml::Table::try_from(over).map_err(|e| e.to_string())?;
    for (k, v) in o {
        match (b.get_mut(&k), v) {
            (Some(toml::Value::Table(bt)), toml::Value::Table(ot)) => bt.extend(ot),
            (_, v) => {
                b.insert(k, v);
            }
        }
    }
    toml::Value::Table(b).try_into().map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new() -> Self {
            let d = tempfile::tempdir().unwrap();
            for sub in ["a", "b"] {
                std::fs::create_dir(d.path().join(sub)).unwrap();
            }
            let bin = d.path().join("fake-php-cgi");
            std::fs::write(&bin, "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
            Dir(d)
        }

        fn validate(&self, text: &str) -> Result<Config, ConfigError> {
            let text = format!("[php]\nbinary = \"fake-php-cgi\"\nini = {{ memory_limit = \"128M\", display_errors = \"0\" }}\n{text}");
            let raw = RawConfig::from_toml(&text, Path::new("isola.toml"))?;
            raw.validate(self.0.path(), &crate::Env::for_tests(self.0.path()))
        }

        fn errors(&self, text: &str) -> String {
            match self.validate(text) {
                Err(ConfigError::Invalid(e)) => e.join("\n"),
                other => panic!("expected errors, got {other:?}"),
            }
        }
    }

    #[test]
    fn sites_inherit_and_override() {
        let d = Dir::new();
        let c = d
            .validate(
                "[server]\nfront_controller = \"app.php\"\nno_exec = [\"uploads\"]\n[pool]\nmax_children = 3\nmax_requests = 50\n\
                 [[site]]\nserver_names = [\"Example.COM\", \"*.example.com\"]\ndocroot = \"a\"\n\
                 [[site]]\nserver_names = [\"other.test\"]\ndocroot = \"b\"\nfront_controller = \"\"\ndefault = true\nmax_body_size = \"1G\"\n\
                 [site.pool]\nmax_children = 7\n[site.php]\nini = { memory_limit = \"256M\" }\nenv = { APP_ENV = \"prod\" }\n",
            )
            .unwrap();
        assert_eq!(c.sites.len(), 2);
        let (a, b) = (&c.sites[0], &c.sites[1]);
        assert_eq!(a.names, ["example.com", "*.example.com"]);
        assert!(a.routing.docroot.ends_with("a"));
        assert_eq!(a.routing.front_controller.as_deref(), Some("app.php"));
        assert_eq!(a.routing.no_exec, ["uploads"]);
        assert_eq!(a.pool.max_children, 3);
        assert_eq!(a.php.ini["memory_limit"], "128M");
        assert!(b.routing.docroot.ends_with("b"));
        assert_eq!(b.routing.front_controller, None);
        assert_eq!(b.pool.max_children, 7);
        assert_eq!(b.limits.max_body_size, 1 << 30);
        assert_eq!(a.limits.max_body_size, 100 << 20, "inherited default");
        assert_eq!(b.pool.max_requests, 50, "inherited");
        assert_eq!(b.php.ini["memory_limit"], "256M");
        assert_eq!(b.php.ini["display_errors"], "0", "ini merged by name");
        assert_eq!(b.php.env["APP_ENV"], "prod");
        assert_eq!(c.unknown_host, UnknownHost::Site(1));
        assert_eq!(a.label(), "example.com");
    }

    #[test]
    fn sendfile_folders_are_a_site_key() {
        let d = Dir::new();
        let b = d.0.path().join("b");
        let c = d
            .validate(&format!(
                "[[site]]\nserver_names = [\"a.test\"]\ndocroot = \"a\"\n\
                 [[site]]\nserver_names = [\"b.test\"]\ndocroot = \"b\"\n\
                 [[site.sendfile]]\ndir = \"{}\"\npath = \"/protected\"\n",
                b.display()
            ))
            .unwrap();
        assert!(c.sites[0].sendfile.is_empty());
        assert_eq!(c.sites[1].sendfile.len(), 1);
        assert_eq!(c.sites[1].sendfile[0].dir, b);
        let e = d.errors(
            "[[site]]\nserver_names = [\"a.test\"]\ndocroot = \"a\"\n[[site.sendfile]]\ndir = \"b\"\n",
        );
        assert!(
            e.contains("site[0]") && e.contains("sendfile[0].dir"),
            "{e}"
        );
    }

    #[test]
    fn single_site_answers_every_host() {
        let d = Dir::new();
        let c = d.validate("[server]\ndocroot = \"a\"\n").unwrap();
        assert_eq!(c.sites.len(), 1);
        assert!(c.sites[0].names.is_empty());
        assert_eq!(c.unknown_host, UnknownHost::Site(0));
        assert!(d
            .errors("[server]\ndocroot = \"a\"\nunknown_host = \"404\"\n")
            .contains("server.unknown_host"));
    }

    #[test]
    fn site_errors_are_named_by_site() {
        let d = Dir::new();
        let e = d.errors(
            "[server]\ndocroot = \"a\"\nunknown_host = \"teapot\"\n\
             [[site]]\nserver_names = [\"a.test\", \"bad host\"]\ndocroot = \"missing\"\ndefault = true\n\
             [[site]]\nserver_names = [\"a.test\"]\ndocroot = \"b\"\ndefault = true\n[site.pool]\nmax_children = 0\n\
             [[site]]\ndocroot = \"b\"\n\
             [[site]]\nserver_names = [\"c.test\"]\n",
        );
        for want in [
            "server.docroot: with [[site]]",
            "server.unknown_host",
            "site[0].server_names: \"bad host\"",
            "site[0].docroot:",
            "site[1].server_names: \"a.test\" is already a name of site[0]",
            "site[1].default",
            "site[1].pool.max_children",
            "site[2].server_names: missing",
            "site[3].docroot: missing",
        ] {
            assert!(e.contains(want), "{want:?} missing from:\n{e}");
        }
        let e = d.errors(
            "[pool]\nmax_children = \"auto\"\n[[site]]\nserver_names = [\"a.test\"]\ndocroot = \"a\"\n[[site]]\nserver_names = [\"b.test\"]\ndocroot = \"b\"\n",
        );
        assert!(e.contains("memory_budget per site"), "{e}");
    }

    #[test]
    fn unknown_host_answers() {
        let d = Dir::new();
        let base = "[[site]]\nserver_names = [\"a.test\"]\ndocroot = \"a\"\n[[site]]\nserver_names = [\"b.test\"]\ndocroot = \"b\"\n";
        assert_eq!(d.validate(base).unwrap().unknown_host, UnknownHost::Site(0));
        let c = d
            .validate(&format!("[server]\nunknown_host = \"421\"\n{base}"))
            .unwrap();
        assert_eq!(c.unknown_host, UnknownHost::Misdirected);
        let c = d
            .validate(&format!("[server]\nunknown_host = \"404\"\n{base}"))
            .unwrap();
        assert_eq!(c.unknown_host, UnknownHost::NotFound);
    }

    #[test]
    fn acme_certifies_every_site_name_once() {
        let d = Dir::new();
        let c = d
            .validate(
                "[server]\ntls_listen = \"127.0.0.1:8443\"\n[tls.acme]\nemail = \"ops@example.org\"\ndomains = [\"Extra.example.org\", \"a.example.org\"]\ndir = \"/srv/acme\"\n\
                 [[site]]\nserver_names = [\"a.example.org\", \"www.a.example.org\"]\ndocroot = \"a\"\n\
                 [[site]]\nserver_names = [\"b.example.org\"]\ndocroot = \"b\"\n",
            )
            .unwrap();
        let a = c.startup.acme.unwrap();
        assert_eq!(
            a.domains,
            [
                "extra.example.org",
                "a.example.org",
                "www.a.example.org",
                "b.example.org"
            ]
        );
        assert_eq!(a.directory, crate::LETS_ENCRYPT);
        assert_eq!(a.dir, Path::new("/srv/acme"));
        assert_eq!(
            a.challenges,
            [
                crate::AcmeChallenge::Http01,
                crate::AcmeChallenge::TlsAlpn01
            ]
        );
        assert!(c.tls_certs.is_empty());
        // The plain listener off port 80 and the TLS one on 443: TLS-ALPN-01 first.
        let c = d
            .validate("[server]\nlisten = \"127.0.0.1:8080\"\ntls_listen = \"0.0.0.0:443\"\n[tls.acme]\ndir = \"/srv/acme\"\ndomains = [\"a.example.org\"]\n[[site]]\nserver_names = [\"b.example.org\"]\ndocroot = \"a\"\n")
            .unwrap();
        assert_eq!(
            c.startup.acme.unwrap().challenges,
            [
                crate::AcmeChallenge::TlsAlpn01,
                crate::AcmeChallenge::Http01
            ]
        );
        let e = d.errors(
            "[server]\ntls_listen = \"127.0.0.1:8443\"\n[tls.acme]\ndir = \"/srv/acme\"\nrenew_before = \"soon\"\n\
             [[site]]\nserver_names = [\"*.example.org\"]\ndocroot = \"a\"\n",
        );
        assert!(
            e.contains("site[0].server_names: \"*.example.org\" is a wildcard"),
            "{e}"
        );
        assert!(e.contains("tls.acme.renew_before: "), "{e}");
    }
}
