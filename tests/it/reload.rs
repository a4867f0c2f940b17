//! Configuration reload: SIGHUP or `isola reload` starts workers with the new settings and
//! retires the old ones after their requests, without failing any request.
use crate::harness::Server;
use crate::http::get;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn hup(s: &Server) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

fn wait_for_body(s: &Server, target: &str, needle: &str) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if get(s.addr, target).text().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn reload_under_load_loses_no_request() {
    let s = Server::with_config("[pool]\nmax_children = 2\n[php]\nenv = { APP_VERSION = \"1\" }\n");
    assert!(get(s.addr, "/version.php").text().starts_with("version=1"));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = s.addr;
    let load: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let target = if i % 2 == 0 {
                        "/version.php"
                    } else {
                        "/sleep.php?ms=30"
                    };
                    let r = get(addr, target);
                    seen.push((r.status, r.text()));
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(
        s.docroot.join("isola.toml"),
        "[pool]\nmax_children = 3\n[php]\nenv = { APP_VERSION = \"2\" }\n",
    )
    .unwrap();
    hup(&s);
    assert!(
        wait_for_body(&s, "/version.php", "version=2"),
        "new configuration in force"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut statuses = std::collections::BTreeMap::new();
    let mut versions = std::collections::BTreeSet::new();
    for l in load {
        for (status, text) in l.join().unwrap() {
            *statuses.entry(status).or_insert(0) += 1;
            if let Some(v) = text.strip_prefix("version=") {
                versions.insert(v.chars().next().unwrap());
            }
        }
    }
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "every request succeeded: {statuses:?}"
    );
    assert_eq!(
        versions,
        ['1', '2'].into_iter().collect(),
        "served by both generations"
    );
    assert!(s.wait_for_log("reloaded", Duration::from_secs(2)));
    // The old generation's workers are gone: three workers remain.
    let t = Instant::now();
    while crate::harness::children_of(s.pid()).len() != 3 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(crate::harness::children_of(s.pid()).len(), 3);
    assert!(s.stop().success());
}

#[test]
fn invalid_config_on_reload_keeps_the_running_one() {
    let s = Server::with_config("[pool]\nmax_children = 1\n[php]\nenv = { APP_VERSION = \"1\" }\n");
    std::fs::write(s.docroot.join("isola.toml"), "[pool]\nmax_childern = 3\n").unwrap();
    hup(&s);
    assert!(
        s.wait_for_log("reload refused", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
    assert!(s.stderr().contains("max_childern"));
    let r = get(s.addr, "/version.php");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("version=1"));
}

#[test]
fn reload_follows_a_switched_current_symlink() {
    let base = tempfile::tempdir().unwrap();
    for (rel, text) in [("release1", "one"), ("release2", "two")] {
        std::fs::create_dir(base.path().join(rel)).unwrap();
        std::fs::write(
            base.path().join(rel).join("index.php"),
            format!("<?php echo 'release {text}';"),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("release1", base.path().join("current")).unwrap();
    let pid_file = base.path().join("isola.pid");
    let cfg = base.path().join("isola.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndocroot = \"current\"\npid_file = \"{}\"\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let s = Server::start_in(
        &base.path().join("current"),
        &["--config", cfg.to_str().unwrap()],
        None,
    );
    assert_eq!(get(s.addr, "/").text(), "release one");
    // Deploy: switch the symlink atomically, then `isola reload`.
    std::os::unix::fs::symlink("release2", base.path().join("current.new")).unwrap();
    std::fs::rename(base.path().join("current.new"), base.path().join("current")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["reload", "--pid-file"])
        .arg(&pid_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wait_for_body(&s, "/", "release two"), "{}", s.stderr());
    assert!(s.stop().success());
    assert!(!pid_file.exists(), "pid file removed on exit");
}

#[test]
fn a_reload_names_the_settings_that_wait_for_a_restart_and_applies_the_rest() {
    let s = Server::with_config(
        "[server]\nkeepalive_timeout = \"5s\"\nmax_connections = 100\n\
         [php]\nenv = { APP_VERSION = \"1\" }\n",
    );
    std::fs::write(
        s.docroot.join("isola.toml"),
        "[server]\nkeepalive_timeout = \"7s\"\nmax_connections = 200\n\
         [php]\nenv = { APP_VERSION = \"2\" }\n",
    )
    .unwrap();
    hup(&s);
    assert!(
        wait_for_body(&s, "/version.php", "version=2"),
        "{}",
        s.stderr()
    );
    for key in ["server timeouts", "server.max_connections"] {
        let line = format!("reload: {key} changed; it takes effect at the next restart");
        assert!(
            s.wait_for_log(&line, Duration::from_secs(5)),
            "{line:?} not logged:\n{}",
            s.stderr()
        );
    }
    // Only what changed is named: the listen address, the log and the store did not.
    let log = s.stderr();
    for key in [
        "server.listen",
        "reload: log changed",
        "reload: store changed",
    ] {
        assert!(!log.contains(key), "{key} named:\n{log}");
    }
}
