//! `isola check` (and `isola serve --check`): validates the configuration and what it
//! points at without serving, like `nginx -t`. Owns the checks of files, users, PHP,
//! certificates, listen addresses and the store's directory; never starts a pool or the
//! front, and never changes a file.
use crate::cli::ServeArgs;
use isola_config::{Config, ConfigError, PhpBackend, PhpConfig, StoreBackend};
use nix::unistd::{AccessFlags, Gid, Uid, User};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Exit status when every check passed.
pub const OK: u8 = 0;
/// Exit status when a check failed (a configuration error, as `serve` uses).
pub const PROBLEM: u8 = 2;

/// Runs every check, prints one line per problem on stderr and a summary, and returns the
/// exit status.
pub fn run(args: &ServeArgs) -> u8 {
    let problems = match crate::run::load_config(args) {
        Ok(cfg) => check_config(&cfg),
        Err(e) => config_problems(&e),
    };
    let origin = args.config.as_ref().map_or_else(
        || "the configuration".to_string(),
        |p| p.display().to_string(),
    );
    for p in &problems {
        eprintln!("isola: check: {p}");
    }
    if problems.is_empty() {
        println!("isola: {origin}: configuration ok");
        OK
    } else {
        eprintln!(
            "isola: {origin}: check failed, {} problem{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        PROBLEM
    }
}

/// A configuration that did not load: each of its problems, one a line.
fn config_problems(e: &anyhow::Error) -> Vec<String> {
    match e.downcast_ref::<ConfigError>() {
        Some(ConfigError::Invalid(lines)) => lines.clone(),
        Some(c) => vec![c.to_string()],
        None => vec![format!("{e:#}")],
    }
}

fn check_config(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let many = cfg.sites.len() > 1;
    for (i, site) in cfg.sites.iter().enumerate() {
        let key = |field: &str| {
            if many {
                format!("site[{i}].{field}")
            } else {
                format!("server.{field}")
            }
        };
        let user = site.php.credentials;
        readable_dir(&mut out, &key("docroot"), &site.routing.docroot, user);
        for (prefix, dir) in &site.routing.aliases {
            readable_dir(&mut out, &format!("{} {prefix}", key("alias")), dir, user);
        }
        for d in &site.sendfile {
            // The script names the file (Symfony checks it is readable), Isola sends it.
            readable_dir(
                &mut out,
                &format!("{} {}", key("sendfile"), d.dir.display()),
                &d.dir,
                user,
            );
        }
    }
    // Sites inheriting `[php]` share its settings: check each distinct PHP once.
    let mut seen = BTreeSet::new();
    for site in &cfg.sites {
        let php = &site.php;
        let id = format!("{:?}{:?}{:?}", php.binary, php.ini, php.backend);
        if seen.insert(id) {
            check_php(&mut out, php);
        }
    }
    if cfg.tls_certs.is_empty() {
    } else if let Err(e) = crate::run::load_tls(cfg) {
        out.extend(config_problems(&e.into()));
    }
    let mut addrs = vec![("server.listen", Some(cfg.startup.listen))];
    addrs.push(("server.tls_listen", cfg.startup.tls_listen));
    addrs.push(("admin.listen", cfg.startup.admin_listen));
    if let StoreBackend::Embedded { listen, data, .. } = &cfg.startup.store.backend {
        addrs.push(("store.listen", *listen));
        if data.appendonly {
            if let Some(dir) = &data.dir {
                store_dir(&mut out, dir, data.dir_is_default);
            }
        }
    }
    for (key, addr) in addrs {
        if let Some(a) = addr.filter(|a| a.port() != 0) {
            if let Err(e) = TcpListener::bind(a) {
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                    " (a server, maybe Isola itself, already listens there)"
                } else {
                    ""
                };
                out.push(format!("{key}: cannot listen on {a}: {e}{hint}"));
            }
        }
    }
    out
}

/// The folder must exist, and the PHP user must be able to list and enter it and every
/// folder above it.
fn readable_dir(out: &mut Vec<String>, key: &str, dir: &Path, user: Option<(u32, u32)>) {
    match std::fs::metadata(dir) {
        Err(e) => out.push(format!("{key}: {}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => out.push(format!("{key}: {}: not a folder", dir.display())),
        Ok(_) => {
            if let Some(why) = denied(dir, user) {
                out.push(format!("{key}: {}: {why}", dir.display()));
            }
        }
    }
}

/// Why the PHP user cannot read and enter `dir`, if it cannot.
fn denied(dir: &Path, user: Option<(u32, u32)>) -> Option<String> {
    let Some((uid, gid)) = user else {
        // Workers run as Isola's own user.
        return nix::unistd::access(dir, AccessFlags::R_OK | AccessFlags::X_OK)
            .err()
            .map(|e| format!("not readable by Isola's user: {}", e.desc()));
    };
    if uid == 0 {
        return None;
    }
    let groups = groups_of(uid, gid);
    let name = User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name);
    let mut at = Some(dir);
    let mut wanted = 0o5; // read and search on the folder itself
    while let Some(d) = at {
        let Ok(m) = std::fs::metadata(d) else {
            return Some(format!("{} cannot be read", d.display()));
        };
        if !allows(m.mode(), m.uid(), m.gid(), uid, &groups, wanted) {
            let what = if wanted == 0o5 { "read" } else { "enter" };
            return Some(format!(
                "the PHP user {name} cannot {what} {} (mode {:o}, owner {}:{})",
                d.display(),
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            ));
        }
        wanted = 0o1; // search on the folders above
        at = d.parent();
    }
    None
}

/// The groups a worker running as `uid` with primary group `gid` is in.
fn groups_of(uid: u32, gid: u32) -> Vec<u32> {
    let mut groups = vec![gid];
    if let Some(u) = User::from_uid(Uid::from_raw(uid)).ok().flatten() {
        if let Ok(name) = std::ffi::CString::new(u.name) {
            if let Ok(list) = nix::unistd::getgrouplist(&name, Gid::from_raw(gid)) {
                groups.extend(list.into_iter().map(Gid::as_raw));
            }
        }
    }
    groups
}

/// Whether permission bits `want` (rwx as 0o4/0o2/0o1) are granted on a file of `mode`
/// owned by `owner:group` to `uid` in `groups`, as the kernel decides for a non-root user.
fn allows(mode: u32, owner: u32, group: u32, uid: u32, groups: &[u32], want: u32) -> bool {
    let bits = if owner == uid {
        mode >> 6
    } else if groups.contains(&group) {
        mode >> 3
    } else {
        mode
    };
    bits & want == want
}

/// The embedded store writes its log in `dir`: it must be a writable folder, or creatable.
fn store_dir(out: &mut Vec<String>, dir: &Path, is_default: bool) {
    let target: PathBuf = match dir.ancestors().find(|a| a.exists()) {
        Some(a) => a.to_path_buf(),
        None => return,
    };
    let problem = if !target.is_dir() {
        Some(format!("{} is not a folder", target.display()))
    } else {
        nix::unistd::access(&target, AccessFlags::W_OK | AccessFlags::X_OK)
            .err()
            .map(|e| format!("{} is not writable: {}", target.display(), e.desc()))
    };
    if let Some(p) = problem {
        if is_default {
            // serve then keeps the store in memory, with a warning: not a failure.
            println!(
                "isola: check: note: store.dir (default {}): {p}; the store would run in memory only",
                dir.display()
            );
        } else {
            out.push(format!("store.dir: {p}"));
        }
    }
}

fn check_php(out: &mut Vec<String>, php: &PhpConfig) {
    let wants_native = php.backend != PhpBackend::PhpCgi;
    let native_reason = if wants_native {
        match native_version(php) {
            Ok(v) => {
                println!("isola: check: php: native backend: {v}");
                None
            }
            Err(r) => Some(r),
        }
    } else {
        None
    };
    if php.backend == PhpBackend::Native {
        if let Some(r) = &native_reason {
            out.push(format!("php.backend: \"native\": {r}"));
        }
    }
    let uses_cgi = php.backend == PhpBackend::PhpCgi || native_reason.is_some();
    if !php.binary.is_file() {
        if uses_cgi && php.backend != PhpBackend::Native {
            let native = native_reason.map_or_else(String::new, |r| format!("native: {r}; "));
            out.push(format!(
                "php.binary: {}: not found ({native}install php-cgi or libphp8.2-embed)",
                php.binary.display()
            ));
        }
        return;
    }
    // The ini settings are tried with php-cgi, the same PHP as the engine's on Debian.
    match php_cgi_probe(php) {
        Ok((version, problems)) => {
            if uses_cgi {
                println!("isola: check: php: {}: {version}", php.binary.display());
            }
            out.extend(problems);
        }
        Err(e) => out.push(format!("php.binary: {}: {e}", php.binary.display())),
    }
}

/// The native engine's description, after starting it once.
fn native_version(php: &PhpConfig) -> Result<String, String> {
    isola_engine::built_in().map_err(str::to_string)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let store = crate::store_link::StoreLink::none();
    rt.block_on(async {
        match crate::run::native_note(php, &store).await {
            Ok(note) => Ok(note),
            Err(e) => Err(format!("{e:#}")),
        }
    })
}

/// A script that names the ini keys PHP does not know (given one a line in the
/// environment) and prints the version.
const PROBE: &str = r#"<?php
foreach (explode("\n", (string) getenv('ISOLA_CHECK_KEYS')) as $k) {
    if ($k !== '' && ini_get($k) === false) { echo "unknown\t$k\n"; }
}
echo "version\t" . PHP_VERSION . "\n";
"#;

/// Runs php-cgi with the configured ini file and settings on [`PROBE`]: its version, and
/// one problem per setting PHP warns about or does not know.
fn php_cgi_probe(php: &PhpConfig) -> Result<(String, Vec<String>), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary folder: {e}"))?;
    let script = dir.path().join("probe.php");
    std::fs::write(&script, PROBE).map_err(|e| format!("cannot write the probe: {e}"))?;
    let mut cmd = Command::new(&php.binary);
    if let Some(f) = &php.ini_file {
        cmd.arg("-c").arg(f);
    }
    for (k, v) in &php.ini {
        cmd.arg("-d").arg(format!("{k}={v}"));
    }
    let keys = php.ini.keys().fold(String::new(), |mut s, k| {
        let _ = writeln!(s, "{k}");
        s
    });
    let out = cmd
        .arg("-q")
        .arg(&script)
        .env("ISOLA_CHECK_KEYS", keys)
        .env_remove("REQUEST_METHOD")
        .output()
        .map_err(|e| format!("cannot run: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    let mut version = None;
    for line in stdout.lines() {
        match line.split_once('\t') {
            Some(("unknown", k)) => {
                problems.push(format!("php.ini.{k}: PHP knows no such setting"));
            }
            Some(("version", v)) => version = Some(format!("PHP {v}")),
            _ => {}
        }
    }
    // Warnings go to stderr (display_startup_errors) or, under php-cgi, to stdout.
    for line in stderr.lines().chain(stdout.lines()) {
        let Some(msg) = line.trim().strip_prefix("PHP Warning:") else {
            continue;
        };
        let msg = msg.trim().trim_end_matches(" in Unknown on line 0");
        let key = php
            .ini
            .keys()
            .find(|k| msg.contains(k.as_str()))
            .map_or_else(|| "php.ini".to_string(), |k| format!("php.ini.{k}"));
        problems.push(format!("{key}: PHP: {msg}"));
    }
    match version {
        Some(v) => Ok((v, problems)),
        None if !out.status.success() => Err(format!(
            "exits with {}: {}",
            out.status,
            stderr.lines().next().unwrap_or("")
        )),
        None => Err("did not run the probe script (is it php-cgi?)".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::allows;

    #[test]
    fn permission_bits_follow_owner_then_group_then_others() {
        // 0750 root:www-data: the group may read, others may not.
        assert!(allows(0o750, 0, 33, 33, &[33], 0o5));
        assert!(!allows(0o750, 0, 0, 33, &[33], 0o5));
        // The owner's bits count for the owner even when others have more.
        assert!(!allows(0o077, 33, 0, 33, &[0], 0o4));
        assert!(allows(0o711, 0, 0, 33, &[33], 0o1));
        assert!(!allows(0o711, 0, 0, 33, &[33], 0o4));
    }
}
