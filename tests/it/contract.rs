//! The binary's outward contract, seen by ordinary clients: the ready line on stdout, logs on
//! stderr (human and JSON), `--help`/`--version`, redirects a client sees unfollowed, and
//! requests made with a stock HTTP client library (ureq) rather than hand-written bytes.
use crate::harness::Server;
use crate::http;
use std::process::Command;
use std::time::Duration;

/// A client like an application's: bounded, and never following redirects by itself, so
/// the test sees what the server answered.
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(30))
        .build()
}

/// The status and the response, for success and error statuses alike.
fn call(r: Result<ureq::Response, ureq::Error>) -> ureq::Response {
    match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    }
}

#[test]
fn ready_line_names_the_docroot_and_url_and_logs_go_to_stderr() {
    let s = Server::start(&["--workers", "1"]);
    let docroot = s.docroot.canonicalize().unwrap();
    let url = format!("http://{}/", s.addr);
    assert!(
        s.ready_line.starts_with("Isola ") && s.ready_line.contains(&url),
        "{:?}",
        s.ready_line
    );
    assert!(
        s.ready_line.contains(docroot.to_str().unwrap())
            || s.ready_line.contains(s.docroot.to_str().unwrap()),
        "absolute docroot in {:?}",
        s.ready_line
    );
    let r = call(agent().get(&format!("{url}hello.php")).call());
    assert_eq!(r.status(), 200);
    let id = r.header("x-request-id").unwrap().to_string();
    assert!(s.wait_for_log(&id, Duration::from_secs(5)), "access log");
    let status = s.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let s = Server::start(&["--workers", "1", "--log-format", "json"]);
    let r = http::request(
        s.addr,
        "GET",
        "/fatal.php",
        &["X-Request-Id: json-log-1"],
        b"",
    );
    assert_eq!(r.status, 500);
    assert!(
        s.wait_for_log("json-log-1", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
    // php-cgi's stderr (the fatal error) is logged too; every line stays JSON.
    std::thread::sleep(Duration::from_millis(200));
    let log = s.stderr();
    let mut with_id = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"));
        assert!(v.is_object(), "{line}");
        if line.contains("json-log-1") {
            with_id += 1;
        }
    }
    assert!(with_id >= 1, "{log}");
}

#[test]
fn help_and_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_isola"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("serve"));
    let out = Command::new(env!("CARGO_BIN_EXE_isola"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn stock_client_sees_redirects_statuses_and_bodies() {
    let s = Server::start(&["--workers", "2"]);
    let base = format!("http://{}", s.addr);
    let a = agent();

    let r = call(a.get(&format!("{base}/redirect.php")).call());
    assert_eq!(r.status(), 302);
    assert_eq!(r.header("location"), Some("/elsewhere?x=1"));
    let r = call(a.get(&format!("{base}/redirect.php?permanent=1")).call());
    assert_eq!(r.status(), 301);
    assert_eq!(r.header("location"), Some("/target"));
    // A Location with no Status line from PHP is a client redirect: 302 (RFC 3875 6.2.3).
    let r = call(a.get(&format!("{base}/redirect.php?bare=1")).call());
    assert_eq!(r.status(), 302);
    assert_eq!(r.header("location"), Some("/bare-target"));
    assert!(r.header("status").is_none());
    let r = call(a.get(&format!("{base}/dir?x=1")).call());
    assert_eq!(r.status(), 301);
    assert_eq!(r.header("location"), Some("/dir/?x=1"));

    let r = call(a.get(&format!("{base}/status.php?code=418")).call());
    assert_eq!(r.status(), 418);
    assert_eq!(r.into_string().unwrap(), "status page 418");
    let r = call(a.get(&format!("{base}/missing.php")).call());
    assert_eq!(r.status(), 404);

    let r = call(
        a.post(&format!("{base}/env.php?q=1"))
            .set("X-Custom", "from-ureq")
            .send_form(&[("name", "Ada L"), ("x", "&y")]),
    );
    assert_eq!(r.status(), 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let id = r.header("x-request-id").unwrap().to_string();
    let j: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(j["post"]["name"], "Ada L");
    assert_eq!(j["post"]["x"], "&y");
    assert_eq!(j["get"]["q"], "1");
    assert_eq!(j["server"]["HTTP_X_CUSTOM"], "from-ureq");
    assert_eq!(j["server"]["HTTP_X_REQUEST_ID"], id.as_str());
    assert_eq!(j["server"]["ISOLA_REQUEST_ID"], id.as_str());

    let r = call(a.get(&format!("{base}/cookies.php")).call());
    assert_eq!(r.all("set-cookie").len(), 2);

    let r = call(a.get(&format!("{base}/style.css")).call());
    assert_eq!(r.status(), 200);
    assert!(r.content_type() == "text/css");
}

// A supervisor may signal as soon as the server says it is ready: by then SIGTERM must
// already mean a graceful stop (exit 0), and SIGHUP must not kill it.

#[test]
fn sighup_right_after_the_ready_line_does_not_kill_the_server() {
    for round in 0..5 {
        let s = Server::start(&["--workers", "1"]);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let dead = crate::harness::zombies_of(std::process::id()).contains(&s.pid());
        assert!(
            !dead,
            "round {round}: SIGHUP sent right after the ready line killed the server (its handler \
             is installed only after the line is printed); stderr:\n{}",
            s.stderr()
        );
        assert_eq!(http::get(s.addr, "/hello.php").status, 200, "round {round}");
    }
}

#[test]
fn sigterm_right_after_the_ready_line_is_a_graceful_stop() {
    for round in 0..5 {
        let s = Server::start(&["--workers", "1"]);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = s.stop();
        assert!(
            status.success(),
            "round {round}: SIGTERM right after the ready line: {status:?} (a graceful stop exits 0)"
        );
    }
}
