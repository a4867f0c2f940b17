//! The server's and the workers' lives: crashes, replacement, graceful stop, bad config.
use crate::harness::{children_of, fd_count, zombies_of, Server};
use crate::http::get;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_crashing_script_fails_alone_and_its_worker_is_replaced() {
    let s = Server::start(&["--workers", "1"]);
    let before = get(s.addr, "/sleep.php?ms=1").text();
    let r = get(s.addr, "/segv.php");
    assert_eq!(r.status, 502);
    assert!(
        s.wait_for_log("SIGSEGV", Duration::from_secs(5)),
        "crash logged: {}",
        s.stderr()
    );
    assert!(s.stderr().contains("/segv.php"));
    let after = get(s.addr, "/sleep.php?ms=1");
    assert_eq!(after.status, 200);
    assert_ne!(before, after.text(), "a new worker process serves");
}

#[test]
fn crashes_leave_no_zombies_and_no_fd_growth() {
    let s = Server::start(&["--workers", "2"]);
    for _ in 0..5 {
        get(s.addr, "/segv.php");
        get(s.addr, "/hello.php");
    }
    std::thread::sleep(Duration::from_millis(300));
    let fds = fd_count(s.pid());
    for i in 0..40 {
        let r = get(
            s.addr,
            if i % 4 == 0 {
                "/segv.php"
            } else {
                "/hello.php"
            },
        );
        assert!(r.status == 200 || r.status == 502);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        zombies_of(s.pid()).is_empty(),
        "zombies: {:?}",
        zombies_of(s.pid())
    );
    // A crash loop may be delaying the second replacement (half the pool serves meanwhile).
    let t = std::time::Instant::now();
    while children_of(s.pid()).len() != 2 && t.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(children_of(s.pid()).len(), 2, "pool back to two workers");
    let after = fd_count(s.pid());
    assert!(after <= fds + 2, "fds grew from {fds} to {after}");
    assert!(s.stop().success());
}

#[test]
fn sigterm_finishes_the_request_in_flight() {
    let s = Server::start(&["--workers", "1"]);
    let addr = s.addr;
    let slow = std::thread::spawn(move || get(addr, "/sleep.php?ms=800"));
    std::thread::sleep(Duration::from_millis(200));
    let status = s.stop();
    assert!(status.success(), "{status:?}");
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("slept"));
}

#[test]
fn bad_config_names_the_key_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("isola.toml");
    let run = |text: &str| {
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_isola"))
            .env("STATE_DIRECTORY", dir.path().join("state"))
            // The config file must decide, not the suite's backend choice.
            .env_remove("ISOLA_BACKEND")
            .args(["serve", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("[pool]\nmax_childern = 3\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("max_childern"), "{err}");
    let (code, err) = run("[pool]\nmax_children = \"lots\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("pool.max_children"), "{err}");
    let (code, err) = run("[server]\ndocroot = \"/no/such/dir\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("server.docroot"), "{err}");
    let (code, err) = run("[php]\nbackend = \"php-cgi\"\nbinary = \"no-such-php-cgi\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("apt-get install php-cgi"), "{err}");
    let (code, err) = run("[php]\nbackend = \"fpm\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("php.backend"), "{err}");
    let (code, err) = run("[php]\nini_file = \"/no/such/php.ini\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("php.ini_file"), "{err}");
    let (code, err) = run("[server]\nlisten = \"nonsense\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("server.listen"), "{err}");
}

#[test]
fn broken_php_setup_is_reported_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("php-cgi");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'PHP Fatal: broken install' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_isola"))
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "php-cgi",
            "--php",
        ])
        .arg(&fake)
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken install"), "stderr of php shown: {err}");
}

#[test]
fn help_explains_the_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in ["--listen", "--workers", "--config", "--php", "DOCROOT"] {
        assert!(text.contains(opt), "{opt} missing from help");
    }
}
