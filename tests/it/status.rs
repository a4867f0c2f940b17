//! The admin listener's live status page: the history ring, the page's script and policy,
//! and escaping of what requests put on the page.

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
    // The JSON carries it verbatim (the script shows it with textContent).
    let j = get(admin, "/status").json();
    assert!(j.to_string().contains("onmouseover"), "{j}");
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
