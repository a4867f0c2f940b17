//! Supervision under stress: slow requests, crash loops, saturation — reported once, never
//! per request, and recovered from without a restart.
use crate::harness::{children_of, Server};
use crate::http::get;
use std::time::{Duration, Instant};

#[test]
fn slow_requests_are_logged_once_with_their_script() {
    let s = Server::with_config("[pool]\nmax_children = 1\nslowlog_timeout = \"400ms\"\n");
    let r = crate::http::request(
        s.addr,
        "GET",
        "/sleep.php?ms=2500",
        &["X-Request-Id: slow-one"],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(
        s.wait_for_log("slow request", Duration::from_secs(3)),
        "{}",
        s.stderr()
    );
    let log = s.stderr();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("slow request")).collect();
    assert_eq!(lines.len(), 1, "logged once: {lines:?}");
    assert!(
        lines[0].contains("slow-one") && lines[0].contains("sleep.php"),
        "{}",
        lines[0]
    );
    assert!(!log
        .lines()
        .any(|l| l.contains("slow request") && l.contains("ms=1")));
}

#[test]
fn crash_loop_backs_off_and_recovers() {
    let s = Server::with_config(
        "[pool]\nmax_children = 2\nemergency_restart_threshold = 3\nemergency_restart_interval = \"20s\"\nqueue_timeout = \"10s\"\n",
    );
    for _ in 0..5 {
        assert_eq!(get(s.addr, "/segv.php").status, 502);
    }
    assert!(
        s.wait_for_log("crash loop", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
    // Still serving, and back to full strength once the delay has passed.
    let t = Instant::now();
    loop {
        if get(s.addr, "/hello.php").status == 200 && children_of(s.pid()).len() == 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "did not recover: {}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn saturation_is_logged_once_per_interval_not_per_request() {
    let s = Server::with_config("[pool]\nmax_children = 1\nqueue_size = 0\n");
    let addr = s.addr;
    let busy = std::thread::spawn(move || get(addr, "/sleep.php?ms=2000"));
    std::thread::sleep(Duration::from_millis(300));
    let refused = (0..30)
        .filter(|_| get(addr, "/hello.php").status == 503)
        .count();
    assert_eq!(refused, 30);
    assert!(
        s.wait_for_log("pool saturated", Duration::from_secs(3)),
        "{}",
        s.stderr()
    );
    assert_eq!(busy.join().unwrap().status, 200);
    let log = s.stderr();
    let n = log.lines().filter(|l| l.contains("pool saturated")).count();
    assert_eq!(n, 1, "one summary, not one line per refused request");
    assert!(log.contains("queue_full=30"), "{log}");
}

#[test]
fn auto_max_children_follows_budget_and_measured_worker_size() {
    let site = crate::harness::fixture_site();
    let cfg = site.path().join("isola.toml");
    std::fs::write(
        &cfg,
        "[pool]\nmax_children = \"auto\"\nmemory_budget = \"60M\"\nmemory_reserve = 0\nworker_memory_estimate = \"30M\"\nmax_children_ceiling = 10\n",
    )
    .unwrap();
    let docroot = site.path().to_path_buf();
    let s = Server::start_in(
        &docroot,
        &["--config", cfg.to_str().unwrap(), "--admin", "127.0.0.1:0"],
        Some(site),
    );
    let admin = s.admin_addr().unwrap();
    // Before any measurement: 60 MiB / 30 MiB estimate = 2 workers.
    assert!(
        s.stderr().contains(
            "budget 60 MiB (memory_budget) - reserve 0 MiB = 60 MiB / worker 30 MiB (estimate) → 2"
        ),
        "{}",
        s.stderr()
    );
    // php-cgi workers measure far below 30 MiB: the limit grows, with the arithmetic logged.
    assert!(
        s.wait_for_log("(measured PSS, p90)", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
    let log = s.stderr();
    let line = log.lines().find(|l| l.contains("measured PSS")).unwrap();
    let worker_mib: u64 = line
        .split("/ worker ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let limit: u64 = line
        .split("→ ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(worker_mib > 0 && worker_mib < 30, "{line}");
    assert!(limit > 2 && limit <= 10, "{line}");
    // The measured size is rounded up in the log, so 60/worker_mib is a lower bound.
    assert!(limit >= (60 / worker_mib).min(10), "{line}");
    let status = get(admin, "/status").json();
    assert_eq!(
        status["pool"]["max_children"].as_u64(),
        Some(limit),
        "{status}"
    );
    // The static pool grows to the new limit.
    let t = Instant::now();
    while (children_of(s.pid()).len() as u64) < limit && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(children_of(s.pid()).len() as u64, limit);
}

#[test]
fn workers_drop_privileges_and_get_their_limits() {
    let site = crate::harness::fixture_site();
    let root_run = nix::unistd::Uid::effective().is_root();
    let nobody = nix::unistd::User::from_name("nobody").unwrap();
    let cfg = site.path().join("isola.toml");
    let user = if root_run && nobody.is_some() {
        "user = \"nobody\"\n"
    } else {
        ""
    };
    std::fs::write(
        &cfg,
        format!("[php]\n{user}rlimit_files = 321\nrlimit_core = 0\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(site.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let docroot = site.path().to_path_buf();
    let s = Server::start_in(&docroot, &["--config", cfg.to_str().unwrap()], Some(site));
    let j = get(s.addr, "/whoami.php").json();
    assert_eq!(j["files"], 321, "{j}");
    assert_eq!(j["core"], 0, "{j}");
    if let (true, Some(n)) = (root_run, nobody) {
        assert_eq!(j["uid"], n.uid.as_raw(), "{j}");
        assert_eq!(j["gid"], n.gid.as_raw(), "{j}");
    } else {
        eprintln!("not root: privilege drop not exercised");
    }
    // Workers still die with the server.
    assert!(s.stop().success());
}
