//! Supervision under stress: slow requests, crash loops, saturation — reported once, never
//! per request, and recovered from without a restart.
use crate::harness::{assert_backtrace, backtrace_of, children_of, Server};
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
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("slow request ("))
        .collect();
    assert_eq!(lines.len(), 1, "logged once: {lines:?}");
    assert!(
        lines[0].contains("slow-one") && lines[0].contains("sleep.php"),
        "{}",
        lines[0]
    );
}

/// php-fpm's slowlog trace: the stack of a slow request, innermost first, each frame with
/// where it was called from, taken while the request runs on untouched (its sleep() is not
/// cut short). Only the native backend can take it; php-cgi logs the slow line alone.
#[test]
fn slow_requests_log_their_php_backtrace_on_the_native_backend() {
    let native = !std::env::var("ISOLA_BACKEND").is_ok_and(|b| b == "php-cgi");
    let toml = "[pool]\nmax_children = 1\nslowlog_timeout = \"400ms\"\n";
    let s = if native {
        Server::with_config_and(toml, &["--backend", "native"])
    } else {
        Server::with_config(toml)
    };
    let t = Instant::now();
    let r = crate::http::request(
        s.addr,
        "GET",
        "/slowtrace.php?s=2",
        &["X-Request-Id: traced-one"],
        b"",
    );
    assert_eq!(r.status, 200, "{}", s.stderr());
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "left=0 slept=full\n",
        "the request ran as without a trace"
    );
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert!(
        s.wait_for_log("slow request", Duration::from_secs(3)),
        "{}",
        s.stderr()
    );
    let log = s.stderr();
    if !native {
        let frames = backtrace_of(&log, "");
        assert!(frames.is_empty(), "php-cgi cannot take one: {frames:?}");
        return;
    }
    let file = s.docroot.join("slowtrace.php");
    let file = file.display();
    let want = [
        format!("#0: sleep() {file}:12"),
        format!("#1: Waiter->nap() {file}:7"),
        format!("#2: Waiter->wait() {file}:17"),
        format!("#3: Waiter::run() {file}:23"),
        format!("#4: outer() {file}:27"),
    ];
    assert_backtrace(&log, "traced-one", &want);
    assert_eq!(
        log.lines().filter(|l| l.contains("slow request (")).count(),
        1,
        "the slow line stays once per request"
    );
}

/// `slowlog_trace_depth` bounds the frames (the cut is said); included files are named by
/// the statement that included them.
#[test]
fn the_backtrace_depth_is_bounded_and_includes_are_named() {
    if std::env::var("ISOLA_BACKEND").is_ok_and(|b| b == "php-cgi") {
        return;
    }
    let s = Server::with_config_and(
        "[pool]\nmax_children = 1\nslowlog_timeout = \"400ms\"\nslowlog_trace_depth = 2\n",
        &["--backend", "native"],
    );
    let r = crate::http::request(
        s.addr,
        "GET",
        "/slowinclude.php",
        &["X-Request-Id: inc"],
        b"",
    );
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"included\n".as_slice())
    );
    let r = crate::http::request(
        s.addr,
        "GET",
        "/slowtrace.php?s=2",
        &["X-Request-Id: deep"],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(
        s.wait_for_log("more frames not shown", Duration::from_secs(3)),
        "{}",
        s.stderr()
    );
    let log = s.stderr();
    let dir = s.docroot.display();
    let want = [
        format!("#0: usleep() {dir}/slowinclude.inc:3"),
        format!("#1: require() {dir}/slowinclude.php:2"),
    ];
    assert_backtrace(&log, "inc", &want);
    let want = [
        format!("#0: sleep() {dir}/slowtrace.php:12"),
        format!("#1: Waiter->nap() {dir}/slowtrace.php:7"),
        "more frames not shown (slowlog_trace_depth = 2)".to_string(),
    ];
    assert_backtrace(&log, "deep", &want);
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

/// Crashes come from requests: a burst of them must not leave innocent requests without
/// a worker while replacements are delayed.
#[test]
fn a_crash_loop_keeps_half_the_pool_serving() {
    let s = Server::with_config(
        "[pool]\nmax_children = 4\nemergency_restart_threshold = 3\nqueue_timeout = \"500ms\"\n[log]\naccess = false\n",
    );
    for _ in 0..16 {
        assert_eq!(get(s.addr, "/segv.php").status, 502);
    }
    assert!(s.stderr().contains("crash loop"), "{}", s.stderr());
    for i in 0..10 {
        assert_eq!(
            get(s.addr, "/hello.php").status,
            200,
            "request {i}: {}",
            s.stderr()
        );
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
    let (s, admin) = Server::with_admin(
        "[pool]\nmax_children = \"auto\"\nmemory_budget = \"60M\"\nmemory_reserve = 0\nworker_memory_estimate = \"30M\"\nmax_children_ceiling = 10\n",
    );
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
    let usable_mib: u64 = line
        .split(" = ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let status = get(admin, "/status").json();
    if status["pool"]["backend"] == "native" {
        // The engine host's memory is taken out of the budget once, not per worker.
        assert!(line.contains(" - engine host "), "{line}");
        assert!(usable_mib < 60, "{line}");
    } else {
        assert_eq!(usable_mib, 60, "{line}");
    }
    assert!(worker_mib > 0 && worker_mib < 30, "{line}");
    assert!(limit > 2 && limit <= 10, "{line}");
    // The measured size is rounded up in the log, so usable/worker_mib is a lower bound.
    assert!(limit >= (usable_mib / worker_mib).min(10), "{line}");
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

#[test]
fn five_thousand_requests_with_crashes_leave_no_zombies_and_no_fd_growth() {
    let s = Server::with_config(
        "[pool]\nmax_children = 3\nemergency_restart_threshold = 0\n[log]\naccess = false\n",
    );
    for _ in 0..20 {
        get(s.addr, "/hello.php");
    }
    std::thread::sleep(Duration::from_millis(300));
    let fds_before = crate::harness::fd_count(s.pid());
    let addr = s.addr;
    let workers: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut counts = [0usize; 3];
                for i in 0..1250 {
                    let crash = (i + t * 7) % 100 == 0;
                    let r = get(addr, if crash { "/segv.php" } else { "/hello.php" });
                    match (crash, r.status) {
                        (false, 200) => counts[0] += 1,
                        (true, 502) => counts[1] += 1,
                        _ => counts[2] += 1,
                    }
                }
                counts
            })
        })
        .collect();
    let mut total = [0usize; 3];
    for w in workers {
        let c = w.join().unwrap();
        for k in 0..3 {
            total[k] += c[k];
        }
    }
    assert_eq!(
        total[0] + total[1],
        5000,
        "ok {}, crashed {}, unexpected {}",
        total[0],
        total[1],
        total[2]
    );
    let crashes = (0..4)
        .map(|t| (0..1250).filter(|i| (i + t * 7) % 100 == 0).count())
        .sum::<usize>();
    assert_eq!(total[1], crashes, "each crash cost exactly its own request");
    let t = Instant::now();
    while children_of(s.pid()).len() != 3 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(crate::harness::zombies_of(s.pid()).is_empty());
    assert_eq!(children_of(s.pid()).len(), 3);
    let fds_after = crate::harness::fd_count(s.pid());
    assert!(
        fds_after <= fds_before + 3,
        "fds grew from {fds_before} to {fds_after}"
    );
    assert!(s.stop().success());
}

#[test]
fn overload_gets_clean_503s_and_memory_stays_flat() {
    let s = Server::with_config("[pool]\nmax_children = 1\nqueue_size = 4\nqueue_timeout = \"200ms\"\n[log]\naccess = false\n");
    for _ in 0..10 {
        get(s.addr, "/hello.php");
    }
    let rss_before = crate::harness::rss_kib(s.pid());
    let addr = s.addr;
    let clients: Vec<_> = (0..48)
        .map(|_| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(3) {
                    let r = get(addr, "/sleep.php?ms=20");
                    seen.push((r.status, r.header("retry-after").is_some()));
                }
                seen
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for c in clients {
        for (status, retry_after) in c.join().unwrap() {
            match status {
                200 => ok += 1,
                503 => {
                    assert!(retry_after, "503 without Retry-After");
                    refused += 1;
                }
                other => panic!("unexpected status {other} under overload"),
            }
        }
    }
    assert!(ok > 20 && refused > 100, "ok {ok}, refused {refused}");
    let rss_after = crate::harness::rss_kib(s.pid());
    assert!(
        rss_after < rss_before + 30 * 1024,
        "server RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(
        get(addr, "/hello.php").status,
        200,
        "serves normally afterwards"
    );
}

#[test]
fn a_worker_that_died_while_idle_is_skipped_not_a_502() {
    let s = Server::with_config("[pool]\nmax_children = 2\n");
    for _ in 0..4 {
        assert_eq!(get(s.addr, "/hello.php").status, 200);
    }
    // Kill one idle worker behind the server's back: the next requests must not be sent to it.
    let kids = children_of(s.pid());
    assert_eq!(kids.len(), 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kids[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..10 {
        assert_eq!(get(s.addr, "/hello.php").status, 200);
    }
}

#[test]
fn failing_spawns_back_off_instead_of_looping_and_recover() {
    let site = crate::harness::fixture_site();
    let bin_dir = tempfile::tempdir().unwrap();
    let php = bin_dir.path().join("php-cgi");
    std::fs::copy("/usr/bin/php-cgi", &php).unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, format!("[pool]\nmax_children = 1\nemergency_restart_threshold = 0\nqueue_timeout = \"20s\"\n[php]\nbackend = \"php-cgi\"\nbinary = \"{}\"\n", php.display())).unwrap();
    let docroot = site.path().to_path_buf();
    let s = Server::start_in(&docroot, &["--config", cfg.to_str().unwrap()], Some(site));
    // The binary disappears, then the only worker dies: replacements cannot start.
    std::fs::rename(&php, bin_dir.path().join("php-cgi.away")).unwrap();
    assert_eq!(get(s.addr, "/segv.php").status, 502);
    std::thread::sleep(Duration::from_millis(2500));
    let failures = s
        .stderr()
        .lines()
        .filter(|l| l.contains("worker failed to start"))
        .count();
    assert!(
        (2..=8).contains(&failures),
        "{failures} attempts in 2.5 s: backoff, not a tight loop"
    );
    assert!(s.stderr().contains("retrying in"));
    // The binary comes back: a waiting request is served once a retry succeeds.
    std::fs::rename(bin_dir.path().join("php-cgi.away"), &php).unwrap();
    let r = get(s.addr, "/hello.php");
    assert_eq!(r.status, 200, "{}", s.stderr());
}

#[test]
fn a_leaking_worker_crosses_max_worker_memory_and_is_replaced() {
    // A fresh php-cgi worker holds about 30 MiB; leak.php leaves it near 70 MiB.
    let s = Server::with_config("[pool]\nmax_children = 1\nmax_worker_memory = \"48M\"\n");
    let pid = |t: String| t.split_whitespace().last().unwrap_or_default().to_string();
    let a = pid(get(s.addr, "/sleep.php?ms=1").text());
    let b = pid(get(s.addr, "/sleep.php?ms=1").text());
    assert_eq!(a, b, "a lean worker stays");
    let leak = get(s.addr, "/leak.php?mb=64");
    assert_eq!(leak.status, 200, "the leaking request itself is served");
    assert_eq!(pid(leak.text()), a);
    let c = pid(get(s.addr, "/sleep.php?ms=1").text());
    assert_ne!(c, a, "the leaking worker was retired after its request");
    assert!(
        s.stderr().contains("max_worker_memory exceeded"),
        "{}",
        s.stderr()
    );
}

#[test]
fn max_lifetime_recycles_old_workers() {
    let s = Server::with_config("[pool]\nmax_children = 1\nmax_lifetime = \"1s\"\n");
    let pid = |t: String| t.split_whitespace().last().unwrap_or_default().to_string();
    let a = pid(get(s.addr, "/sleep.php?ms=1").text());
    std::thread::sleep(Duration::from_millis(2200));
    let b = pid(get(s.addr, "/sleep.php?ms=1").text());
    assert_ne!(a, b);
    assert!(
        s.stderr().contains("max_lifetime reached"),
        "{}",
        s.stderr()
    );
}
