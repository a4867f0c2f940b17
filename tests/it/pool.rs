//! The supervisor's promises, seen from outside: time limits, bounded queue, recycling.
use crate::harness::Server;
use crate::http::get;
use std::time::{Duration, Instant};

fn pid_of(text: &str) -> String {
    text.split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn request_terminate_timeout_kills_the_worker_and_answers_504() {
    let s =
        Server::with_config("[pool]\nmax_children = 1\nrequest_terminate_timeout = \"500ms\"\n");
    let before = pid_of(&get(s.addr, "/sleep.php?ms=1").text());
    let t = Instant::now();
    let r = get(s.addr, "/sleep.php?ms=5000");
    assert_eq!(r.status, 504);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "answered at the limit, not when the script ended"
    );
    assert!(s.wait_for_log("request_terminate_timeout", Duration::from_secs(5)));
    let after = get(s.addr, "/sleep.php?ms=1");
    assert_eq!(after.status, 200);
    assert_ne!(
        before,
        pid_of(&after.text()),
        "the stuck worker was replaced"
    );
}

#[test]
fn full_queue_gets_503_with_retry_after_at_once() {
    let s =
        Server::with_config("[pool]\nmax_children = 1\nqueue_size = 1\nqueue_timeout = \"10s\"\n");
    let addr = s.addr;
    let busy = std::thread::spawn(move || get(addr, "/sleep.php?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
    let queued = std::thread::spawn(move || get(addr, "/sleep.php?ms=1"));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let r = get(addr, "/sleep.php?ms=1");
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "refused at once, not after waiting"
    );
    assert_eq!(busy.join().unwrap().status, 200);
    assert_eq!(
        queued.join().unwrap().status,
        200,
        "the queued request was served"
    );
}

#[test]
fn queue_timeout_gets_503() {
    let s = Server::with_config("[pool]\nmax_children = 1\nqueue_timeout = \"300ms\"\n");
    let addr = s.addr;
    let busy = std::thread::spawn(move || get(addr, "/sleep.php?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let r = get(addr, "/sleep.php?ms=1");
    assert_eq!(r.status, 503);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1400),
        "waited {waited:?}"
    );
    assert_eq!(busy.join().unwrap().status, 200);
}

#[test]
fn max_requests_recycles_workers() {
    let s = Server::with_config("[pool]\nmax_children = 1\nmax_requests = 3\n");
    let pids: Vec<String> = (0..7)
        .map(|_| pid_of(&get(s.addr, "/sleep.php?ms=1").text()))
        .collect();
    assert_eq!(pids[0], pids[1]);
    assert_eq!(pids[1], pids[2]);
    assert_ne!(pids[2], pids[3], "recycled after 3 requests: {pids:?}");
    assert_eq!(pids[3], pids[5]);
    assert_ne!(pids[5], pids[6]);
}

/// Sends a request and hangs up after `after`, without reading the answer.
fn send_and_leave(addr: std::net::SocketAddr, target: &str, after: Duration) {
    use std::io::Write;
    let mut c = crate::http::connect(addr);
    c.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    std::thread::sleep(after);
}

fn wait_for_file(path: &std::path::Path, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    path.exists()
}

/// With the default `run_abandoned = true`, a request whose client hangs up runs to its end
/// all the same: while it waits in the queue, and while its script works before its first
/// output (the exchange runs on the client's task until the client goes, then on its own).
#[test]
fn by_default_a_request_whose_client_hangs_up_still_runs_to_its_end() {
    let s = Server::with_config("[pool]\nmax_children = 1\nqueue_timeout = \"10s\"\n");
    let addr = s.addr;
    // Hung up while its script runs, before any output.
    send_and_leave(
        addr,
        "/late_touch.php?ms=600&tag=running",
        Duration::from_millis(150),
    );
    assert!(
        wait_for_file(&s.docroot.join("ran-running"), Duration::from_secs(10)),
        "a running request was cut short when its client left"
    );
    // Hung up while queued behind a busy worker.
    let busy = std::thread::spawn(move || get(addr, "/sleep.php?ms=800"));
    std::thread::sleep(Duration::from_millis(200));
    send_and_leave(addr, "/touch.php?tag=queued", Duration::from_millis(100));
    assert_eq!(busy.join().unwrap().status, 200);
    assert!(
        wait_for_file(&s.docroot.join("ran-queued"), Duration::from_secs(10)),
        "a queued request was dropped when its client left"
    );
    // And the worker serves on.
    let r = get(addr, "/touch.php?tag=after");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "touched");
}

#[test]
fn with_run_abandoned_off_a_client_that_leaves_the_queue_never_reaches_a_worker() {
    let s = Server::with_config(
        "[pool]\nmax_children = 1\nqueue_timeout = \"10s\"\nrun_abandoned = false\n",
    );
    let addr = s.addr;
    let busy = std::thread::spawn(move || get(addr, "/sleep.php?ms=1200"));
    std::thread::sleep(Duration::from_millis(300));
    // The client goes away while its request waits for the busy worker.
    send_and_leave(addr, "/touch.php?tag=gone", Duration::from_millis(200));
    assert_eq!(busy.join().unwrap().status, 200);
    assert_eq!(get(addr, "/touch.php?tag=stay").status, 200);
    assert!(s.docroot.join("ran-stay").exists());
    assert!(
        !s.docroot.join("ran-gone").exists(),
        "an abandoned queued request was run"
    );
}

#[test]
fn status_and_metrics_reflect_a_known_sequence() {
    // Admin on a free port: the second stdout line names it.
    let site = crate::harness::fixture_site();
    let docroot = site.path().to_path_buf();
    let s = Server::start_in(
        &docroot,
        &["--workers", "2", "--admin", "127.0.0.1:0"],
        Some(site),
    );
    let admin: std::net::SocketAddr = s.admin_addr().expect("admin address printed");
    for _ in 0..3 {
        assert_eq!(get(s.addr, "/hello.php").status, 200);
    }
    assert_eq!(get(s.addr, "/segv.php").status, 502);
    assert_eq!(
        get(s.addr, "/style.css").status,
        200,
        "static files do not count"
    );
    // The replacement may take a moment.
    let t = Instant::now();
    let mut j = serde_json::Value::Null;
    while t.elapsed() < Duration::from_secs(5) {
        j = get(admin, "/status").json();
        if j["pool"]["idle"] == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(j["pool"]["accepted"], 4, "{j}");
    assert_eq!(j["pool"]["crashed"], 1);
    assert_eq!(j["pool"]["crashes_by_signal"]["SIGSEGV"], 1);
    assert_eq!(j["pool"]["spawned"], 3);
    assert_eq!(j["pool"]["total"], 2);
    assert_eq!(j["pool"]["queue_len"], 0);
    assert_eq!(j["workers"].as_array().unwrap().len(), 2);
    assert_eq!(j["sites"][0]["pool"], j["pool"]);
    let site = j["sites"][0]["name"].as_str().unwrap().to_string();
    assert_eq!(
        site,
        j["docroot"].as_str().unwrap(),
        "a single site is named by its docroot"
    );
    let m = get(admin, "/metrics").text();
    assert!(
        m.contains(&format!(
            "isola_requests_accepted_total{{site=\"{site}\"}} 4"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "isola_worker_crashes_total{{site=\"{site}\",signal=\"SIGSEGV\"}} 1"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "isola_workers{{site=\"{site}\",state=\"idle\"}} 2"
        )),
        "{m}"
    );
    assert_eq!(get(admin, "/health").status, 200);
    let html = get(admin, "/status?html");
    assert!(html
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(html.text().contains("<h3>Workers</h3>"));
    assert!(html.text().contains(&format!("<h2>{site}</h2>")));
}

/// Workers counted by the admin status, polled until `want` holds or the time is up.
fn wait_workers(admin: std::net::SocketAddr, timeout: Duration, want: impl Fn(u64) -> bool) -> u64 {
    let t = Instant::now();
    loop {
        let total = get(admin, "/status").json()["pool"]["total"]
            .as_u64()
            .unwrap();
        if want(total) || t.elapsed() > timeout {
            return total;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn max_worker_memory_retires_a_worker_after_its_request() {
    // Every php-cgi process is far above 1 MiB of RSS: each request is its worker's last.
    let s = Server::with_config("[pool]\nmax_children = 1\nmax_worker_memory = \"1M\"\n");
    let a = pid_of(&get(s.addr, "/sleep.php?ms=1").text());
    let b = get(s.addr, "/sleep.php?ms=1");
    assert_eq!(b.status, 200, "the request itself is served");
    assert_ne!(a, pid_of(&b.text()));
    assert!(
        s.wait_for_log("max_worker_memory exceeded", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
    // With a budget no worker reaches, workers stay.
    let s = Server::with_config("[pool]\nmax_children = 1\nmax_worker_memory = \"4G\"\n");
    let a = pid_of(&get(s.addr, "/sleep.php?ms=1").text());
    let b = pid_of(&get(s.addr, "/sleep.php?ms=1").text());
    assert_eq!(a, b);
}

#[test]
fn dynamic_pool_scales_up_under_load_and_down_when_idle() {
    let (s, admin) = Server::with_admin("[pool]\npm = \"dynamic\"\nmax_children = 4\nstart_children = 1\nmin_spare = 1\nmax_spare = 1\n");
    assert_eq!(get(admin, "/status").json()["pool"]["total"], 1);
    let addr = s.addr;
    let load: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(addr, "/sleep.php?ms=1500")))
        .collect();
    let peak = wait_workers(admin, Duration::from_secs(5), |n| n >= 4);
    assert_eq!(peak, 4, "scaled up to max_children");
    for l in load {
        assert_eq!(l.join().unwrap().status, 200);
    }
    // Idle again: trimmed back to max_spare (1 idle worker).
    let after = wait_workers(admin, Duration::from_secs(8), |n| n <= 1);
    assert_eq!(after, 1);
}

#[test]
fn ondemand_pool_starts_workers_for_requests_and_retires_idle_ones() {
    let (s, admin) =
        Server::with_admin("[pool]\npm = \"ondemand\"\nmax_children = 3\nidle_timeout = \"1s\"\n");
    assert_eq!(
        wait_workers(admin, Duration::from_secs(6), |n| n == 0),
        0,
        "idle workers retired"
    );
    // Cold start: a request with no worker alive still gets served.
    let r = get(s.addr, "/sleep.php?ms=1");
    assert_eq!(r.status, 200);
    let addr = s.addr;
    let load: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get(addr, "/sleep.php?ms=1200")))
        .collect();
    assert_eq!(wait_workers(admin, Duration::from_secs(5), |n| n == 3), 3);
    for l in load {
        assert_eq!(l.join().unwrap().status, 200);
    }
    assert_eq!(wait_workers(admin, Duration::from_secs(6), |n| n == 0), 0);
}

/// PHP's own limit, as under php-fpm: `max_execution_time` counts CPU time on Linux
/// (ITIMER_PROF), stops a busy script with a fatal error (500 with display_errors off) and
/// leaves its worker serving; a script that waits is not stopped by it.
#[test]
fn max_execution_time_stops_a_busy_script_and_keeps_the_worker() {
    let s = Server::with_config("[pool]\nmax_children = 1\n");
    let before = pid_of(&get(s.addr, "/sleep.php?ms=1").text());
    let t = Instant::now();
    let r = get(s.addr, "/busy.php?limit=1&sec=20");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stopped by the limit, not at the end: {:?}",
        t.elapsed()
    );
    assert!(
        s.wait_for_log("Maximum execution time", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
    let after = get(s.addr, "/sleep.php?ms=1");
    assert_eq!(after.status, 200);
    assert_eq!(before, pid_of(&after.text()), "the same worker serves on");
    let r = get(s.addr, "/nap.php?ms=1500");
    assert_eq!(r.status, 200, "waiting is not CPU time: {}", r.text());
    assert!(r.text().starts_with("awake"), "{}", r.text());
}

/// A worker stopped from outside (SIGSTOP) in the middle of a request is like a hung one:
/// answered 504 at request_terminate_timeout, killed (SIGKILL reaches a stopped process),
/// reaped and replaced.
#[test]
fn a_stopped_worker_is_killed_at_request_terminate_timeout() {
    let s = Server::with_config("[pool]\nmax_children = 1\nrequest_terminate_timeout = \"1s\"\n");
    let before = pid_of(&get(s.addr, "/sleep.php?ms=1").text());
    let addr = s.addr;
    let slow = std::thread::spawn(move || {
        let t = Instant::now();
        (get(addr, "/sleep.php?ms=400").status, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(150));
    let pid: i32 = before.parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let (status, took) = slow.join().unwrap();
    assert_eq!(status, 504, "{}", s.stderr());
    assert!(took < Duration::from_secs(5), "{took:?}");
    let after = get(s.addr, "/sleep.php?ms=1");
    assert_eq!(after.status, 200, "{}", s.stderr());
    assert_ne!(
        before,
        pid_of(&after.text()),
        "the stopped worker was replaced"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the stopped worker is gone and reaped"
    );
    assert!(crate::harness::zombies_of(s.pid()).is_empty());
    assert!(s.stop().success());
}
