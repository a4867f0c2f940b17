//! `[php]`: the backend, the binary, ini settings, the user workers run as, resource
//! limits, worker mode and the environment.
use crate::raw::{NumOrStr, RawPhp};
use crate::validate::{count, size};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// ini keys Isola sets itself; letting users change them would let PHP pick which file runs.
const RESERVED_INI: &[&str] = &["cgi.fix_pathinfo", "cgi.discard_path", "cgi.force_redirect"];

/// Validates `[php]`; `docroot` is the site's, for the worker script.
pub(crate) fn validate(
    php: RawPhp,
    base_dir: &Path,
    search_path: &[PathBuf],
    docroot: &Path,
    errs: &mut Vec<String>,
) -> PhpConfig {
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
        .map(|n| count(errs, "php.rlimit_files", Some(n), 1024, 16, 1 << 30) as u64);
    let rlimit_core = match &php.rlimit_core {
        None => None,
        Some(NumOrStr::Str(u)) if u == "unlimited" => Some(u64::MAX),
        v => Some(size(errs, "php.rlimit_core", v.clone(), 0)),
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
        let bad = rel
            .split('/')
            .any(|seg| seg == ".." || seg.is_empty() || seg.starts_with('.'))
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
            Ok(p) if p.is_file() && p.starts_with(docroot) => Some((p, format!("/{rel}"))),
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

    PhpConfig {
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
    }
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
