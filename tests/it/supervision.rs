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
