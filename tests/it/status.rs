//! The admin listener's live status page: the history ring, the page's script and policy,
//! and escaping of what requests put on the page; request outcomes and latency in the
//! history and `/metrics`; following a request into PHP's logs (request id on PHP's error
//! log lines, W3C `traceparent`).

use crate::harness::Server;
use crate::http::{get, request};
use std::time::{Duration, Instant};

/// Reads `/status/history` until it holds more than `n` samples.
fn history_longer_than(admin: std::net::SocketAddr, n: usize) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let h = get(admin, "/status/history").json();
        let len = h["samples"].as_array().map_or(0, Vec::len);
        if len > n || t.elapsed() > Duration::from_secs(10) {
            return h;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn status_history_advances_once_a_second_and_counts_requests() {
    let (s, admin) = Server::with_admin("");
    let first = history_longer_than(admin, 0);
    assert_eq!(first["capacity"], 900, "{first}");
    assert_eq!(first["interval_ms"], 1000, "{first}");
    let fields: Vec<&str> = first["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    let col = |name: &str| fields.iter().position(|f| *f == name).unwrap();
    for _ in 0..5 {
        assert_eq!(get(s.addr, "/hello.php").status, 200);
    }
    let n = first["samples"].as_array().unwrap().len();
    let later = history_longer_than(admin, n + 1);
    let rows = later["samples"].as_array().unwrap();
    assert!(rows.len() >= n + 2, "{later}");
    assert!(rows.len() <= 900);
    let last = &rows[rows.len() - 1];
    let prev = &rows[rows.len() - 2];
    let dt = last[col("t_ms")].as_u64().unwrap() - prev[col("t_ms")].as_u64().unwrap();
    assert!((500..=2500).contains(&dt), "samples {dt} ms apart");
    // The requests are in the newest sample, and agree with /metrics.
    let accepted = last[col("accepted")].as_u64().unwrap();
    assert!(accepted >= 5, "{last}");
    assert!(last[col("idle")].as_u64().unwrap() >= 1, "{last}");
    let metrics = get(admin, "/metrics").text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("isola_requests_accepted_total"))
        .unwrap();
    let m: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(m >= accepted, "{line} vs {accepted}");
}

#[test]
fn status_page_is_live_under_a_strict_policy_and_escapes_hostile_requests() {
    let (s, admin) = Server::with_admin("");
    let html = request(admin, "GET", "/status", &["Accept: text/html"], b"");
    assert_eq!(html.status, 200);
    let csp = html.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline'; connect"), "{csp}");
    assert!(html.text().contains("<script src=\"/status.js\"></script>"));
    // No inline script: the only <script is the same-origin one.
    assert_eq!(html.text().matches("<script").count(), 1);
    let js = get(admin, "/status.js");
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/javascript"));
    assert!(js.text().contains("/status/history"));
    // The script inserts data as text only.
    assert!(!js.text().contains("innerHTML"));

    // `<` and `>` cannot reach a request target (hyper refuses them with 400); quotes
    // can. A request whose path carries them is running while the page is read.
    assert_eq!(get(s.addr, "/sleep.php?x=<script>").status, 400);
    let hostile = "/sleep.php/\"onmouseover=\"alert(1)'{}?ms=3000";
    let addr = s.addr;
    let busy = std::thread::spawn(move || get(addr, hostile).status);
    let t = Instant::now();
    let page = loop {
        let p = request(admin, "GET", "/status?html", &[], b"").text();
        if p.contains("sleep.php") || busy.is_finished() || t.elapsed() > Duration::from_secs(5) {
            break p;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        page.contains("/sleep.php/&quot;onmouseover=&quot;alert(1)'{}?ms=3000"),
        "{page}"
    );
    assert!(!page.contains("\"onmouseover"), "{page}");
    // The busy row names the client too.
    assert!(page.contains("<td>127.0.0.1</td>"), "{page}");
    // The JSON carries it verbatim (the script shows it with textContent).
    let j = get(admin, "/status").json();
    assert!(j.to_string().contains("onmouseover"), "{j}");
    let running: Vec<&serde_json::Value> = j["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| !w["request"].is_null())
        .collect();
    if let Some(w) = running.first() {
        assert_eq!(w["request"]["client"], "127.0.0.1", "{j}");
    }
    // The script renders the client cell, as text.
    assert!(
        js.text().contains("r.client"),
        "client column in the script"
    );
    assert_eq!(busy.join().unwrap(), 200);
}

#[test]
fn status_admin_token_is_required_when_set() {
    let (_s, admin) = Server::with_admin("[admin]\ntoken = \"0123456789abcdef0123\"\n");
    let none = get(admin, "/status");
    assert_eq!(none.status, 401);
    assert!(none.header("www-authenticate").is_some());
    assert_eq!(get(admin, "/metrics?token=wrong").status, 401);
    assert_eq!(
        get(admin, "/status/history?token=0123456789abcdef0123x").status,
        401
    );
    let bearer = request(
        admin,
        "GET",
        "/status",
        &["Authorization: Bearer 0123456789abcdef0123"],
        b"",
    );
    assert_eq!(bearer.status, 200);
    assert_eq!(bearer.json()["sites"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        get(admin, "/status/history?token=0123456789abcdef0123").status,
        200
    );
    // The script holds no figures: a page opened with ?token can load it.
    assert_eq!(get(admin, "/status.js").status, 200);
    // Nor does the icon a browser asks for (an empty answer, not a 404 console error).
    assert_eq!(get(admin, "/favicon.ico").status, 204);
    assert_eq!(get(admin, "/nope").status, 401);
}

#[test]
fn status_admin_token_too_short_is_refused_at_start() {
    let site = crate::harness::fixture_site();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, "[admin]\ntoken = \"short\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
        .env("STATE_DIRECTORY", site.path().join("state"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin.token: use at least 16 characters"),
        "{err}"
    );
}

/// Column `name` of `row`, by the history's field list.
fn field(h: &serde_json::Value, row: &serde_json::Value, name: &str) -> u64 {
    let i = h["fields"]
        .as_array()
        .unwrap()
        .iter()
        .position(|f| f == name)
        .unwrap_or_else(|| panic!("no field {name} in {}", h["fields"]));
    row[i].as_u64().unwrap()
}

/// The value of the `/metrics` line that starts with `prefix` (name and labels).
fn metric(text: &str, prefix: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn status_history_splits_outcomes_latency_and_recycling_and_agrees_with_metrics() {
    // One worker, one queue slot: a slow request holds the worker, a second waits, a third
    // is shed. max_requests = 3 recycles the worker during the test.
    let (s, admin) = Server::with_admin(
        "[pool]\nmax_children = 1\nqueue_size = 1\nqueue_timeout = \"10s\"\nmax_requests = 3\n",
    );
    let addr = s.addr;
    let slow = std::thread::spawn(move || get(addr, "/sleep.php?ms=1500").status);
    std::thread::sleep(Duration::from_millis(500));
    let queued = std::thread::spawn(move || get(addr, "/sleep.php?ms=10").status);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(s.addr, "/hello.php").status, 503, "shed");
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200);
    assert_eq!(get(s.addr, "/hello.php").status, 200);
    for _ in 0..2 {
        assert_eq!(get(s.addr, "/status.php?code=404").status, 404);
    }
    assert_eq!(get(s.addr, "/nope.php").status, 404);
    assert_eq!(get(s.addr, "/status.php?code=500").status, 500);

    // Wait for a sample with all of it, then one more (nothing changes in between), so the
    // newest sample and /metrics read the same totals.
    let t = Instant::now();
    let h = loop {
        let h = get(admin, "/status/history").json();
        let rows = h["samples"].as_array().unwrap();
        let last = &rows[rows.len() - 1];
        if (field(&h, last, "responses_5xx") >= 1 && field(&h, last, "retired_requests") >= 1)
            || t.elapsed() > Duration::from_secs(10)
        {
            let n = rows.len();
            break history_longer_than(admin, n);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let rows = h["samples"].as_array().unwrap();
    let last = &rows[rows.len() - 1];
    assert_eq!(field(&h, last, "responses_2xx"), 3, "{h}");
    assert_eq!(field(&h, last, "responses_4xx"), 3, "{h}");
    assert_eq!(field(&h, last, "responses_5xx"), 1, "{h}");
    assert_eq!(field(&h, last, "shed"), 1, "{h}");
    assert!(field(&h, last, "retired_requests") >= 1, "{h}");
    // Memory: the worker's PSS is read (and is no more than its RSS).
    let pss = field(&h, last, "worker_pss");
    assert!(pss > 0 && pss <= field(&h, last, "worker_rss"), "{h}");
    assert!(field(&h, last, "waited") >= 5, "{h}");
    // The queued request waited over a second for the worker.
    assert!(field(&h, last, "wait_us") >= 1_000_000, "{h}");
    // The slow request (1.5 s) is in some second's p99, between the 1 s and 2.5 s bucket
    // bounds; p50 never exceeds p99.
    let p99_max = rows
        .iter()
        .map(|r| field(&h, r, "latency_p99_us"))
        .max()
        .unwrap();
    assert!((1_000_000..=2_500_000).contains(&p99_max), "{h}");
    for r in rows {
        assert!(
            field(&h, r, "latency_p50_us") <= field(&h, r, "latency_p99_us"),
            "{r}"
        );
    }

    let m = get(admin, "/metrics").text();
    assert_eq!(metric(&m, "isola_responses_total{class=\"2xx\"}"), 3);
    assert_eq!(metric(&m, "isola_responses_total{class=\"4xx\"}"), 3);
    assert_eq!(metric(&m, "isola_responses_total{class=\"5xx\"}"), 1);
    assert_eq!(metric(&m, "isola_requests_shed_total"), 1);
    assert_eq!(metric(&m, "isola_request_duration_seconds_count"), 8);
    assert_eq!(
        metric(&m, "isola_request_duration_seconds_bucket{le=\"+Inf\"}"),
        8
    );
    // Two requests took over a second: the cumulative 1 s bucket holds the other six.
    assert_eq!(
        metric(&m, "isola_request_duration_seconds_bucket{le=\"1\"}"),
        6
    );
    assert!(metric(&m, "isola_workers_retired_total{site=") >= 1, "{m}");
    assert!(m.contains("reason=\"requests\""), "{m}");
    assert!(metric(&m, "isola_workers_pss_bytes{site=") > 0, "{m}");
    let j = get(admin, "/status").json();
    assert!(
        j["pool"]["retired_by"]["requests"].as_u64() >= Some(1),
        "{j}"
    );
    assert_eq!(
        metric(&m, "isola_queue_wait_seconds_count"),
        field(&h, last, "waited")
    );
    assert!(s.stop().success());
}

#[test]
fn status_traceparent_is_kept_when_valid_and_made_when_not() {
    let s = Server::with_config("[pool]\nmax_children = 1\n");
    let env = |headers: &[&str]| {
        let r = request(s.addr, "GET", "/env.php", headers, b"");
        assert_eq!(r.status, 200);
        let id = r.header("x-request-id").unwrap().to_string();
        let tp = r.json()["server"]["HTTP_TRACEPARENT"]
            .as_str()
            .unwrap_or_else(|| panic!("no HTTP_TRACEPARENT"))
            .to_string();
        (id, tp)
    };
    let is_valid = |tp: &str| {
        let parts: Vec<&str> = tp.split('-').collect();
        parts.len() == 4
            && parts[0] == "00"
            && parts[1].len() == 32
            && parts[2].len() == 16
            && parts[3] == "01"
            && parts[1..3].iter().all(|p| {
                p.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                    && p.bytes().any(|b| b != b'0')
            })
    };
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (id_kept, kept) = env(&[&format!("traceparent: {good}")]);
    assert_eq!(kept, good);
    let (_, replaced) = env(&["traceparent: 00-zzzz-00f067aa0ba902b7-01"]);
    assert!(is_valid(&replaced), "{replaced}");
    let zero_id = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let (_, zero) = env(&[&format!("traceparent: {zero_id}")]);
    assert!(is_valid(&zero) && zero != zero_id, "{zero}");
    let (id_made, made) = env(&[]);
    let (_, made2) = env(&[]);
    assert!(is_valid(&made) && is_valid(&made2), "{made} {made2}");
    assert_ne!(made, made2);
    // The access log (combined, on stdout) carries what PHP saw.
    for (id, tp) in [(&id_kept, &kept), (&id_made, &made)] {
        assert!(s.wait_for_log(id, Duration::from_secs(5)));
        let line = s
            .stdout_lines()
            .into_iter()
            .find(|l| l.contains(id.as_str()))
            .unwrap();
        assert!(line.contains(&format!(" tp={tp}")), "{line}");
    }
    // An internal request (here one a response defers) gets one of its own too.
    std::fs::write(
        s.docroot.join("tp_defer.php"),
        "<?php header('Isola-Defer: /tp_later.php'); echo 'ok';",
    )
    .unwrap();
    std::fs::write(
        s.docroot.join("tp_later.php"),
        "<?php file_put_contents(__DIR__ . '/tp-deferred', $_SERVER['HTTP_TRACEPARENT'] ?? 'none');",
    )
    .unwrap();
    let r = request(
        s.addr,
        "GET",
        "/tp_defer.php",
        &[&format!("traceparent: {good}")],
        b"",
    );
    assert_eq!(r.status, 200);
    let marker = s.docroot.join("tp-deferred");
    let t = Instant::now();
    while !marker.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    let deferred = std::fs::read_to_string(&marker).unwrap();
    assert!(is_valid(&deferred) && deferred != good, "{deferred}");
    assert!(s.wait_for_log(&format!(" tp={deferred}"), Duration::from_secs(5)));
    assert!(s.stop().success());
}

#[test]
fn status_php_error_log_lines_carry_the_request_id() {
    // Runs on the backend the suite runs with (native, or php-cgi with
    // ISOLA_BACKEND=php-cgi): both send error_log() as the request's FastCGI STDERR.
    let s = Server::with_config("[pool]\nmax_children = 1\n");
    let r = request(
        s.addr,
        "GET",
        "/errlog.php?m=first",
        &["X-Request-Id: errlog-req-0001"],
        b"",
    );
    assert_eq!(r.status, 200);
    let r = request(
        s.addr,
        "GET",
        "/errlog.php?m=second",
        &["X-Request-Id: errlog-req-0002"],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(s.wait_for_log("errlog-marker second", Duration::from_secs(5)));
    let log = s.stderr();
    for (m, id) in [("first", "errlog-req-0001"), ("second", "errlog-req-0002")] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("errlog-marker {m}")))
            .unwrap_or_else(|| panic!("no {m} line in\n{log}"));
        assert!(line.contains(id), "{line}");
    }
    assert!(s.stop().success());
}

#[test]
fn server_threads_sets_the_fronts_runtime_threads_and_status_shows_them() {
    let (s, admin) = Server::with_admin("[server]\nthreads = 1\n");
    assert_eq!(get(s.addr, "/hello.php").status, 200);
    assert_eq!(get(admin, "/status").json()["threads"], 1);
    let (s, admin) = Server::with_admin("[server]\nthreads = 3\n");
    assert_eq!(get(s.addr, "/hello.php").status, 200);
    assert_eq!(get(admin, "/status").json()["threads"], 3);
}
