//! 103 Early Hints: `headers_send(103)` on the native backend reaches an HTTP/1.1 client
//! while the script still runs, is left out for HTTP/1.0 and HTTP/2, works in worker mode,
//! and does not exist on php-cgi.
use crate::harness::{fixture_site, Server};
use crate::http::{connect, read_response, Response};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

/// The suite's second pass runs with ISOLA_BACKEND=php-cgi: hints are native only.
fn skip() -> bool {
    std::env::var("ISOLA_BACKEND").is_ok_and(|b| b == "php-cgi")
}

fn native() -> Server {
    let s = Server::start(&["--backend", "native"]);
    assert!(
        s.wait_for_log("PHP backend: native", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
    s
}

const LINKS: [&str; 2] = [
    "</style.css>; rel=preload; as=style",
    "</app.js>; rel=preload; as=script",
];

/// What came back for one connection: every byte, and for the first 103 block, when it was
/// complete and whether the final response had begun by then.
struct Timed {
    bytes: Vec<u8>,
    hint: Option<(Duration, bool)>,
    end: Duration,
}

/// Sends `req` and reads until the server closes the connection.
fn send_timed(addr: std::net::SocketAddr, req: &[u8]) -> Timed {
    let mut s = connect(addr);
    let t0 = Instant::now();
    s.write_all(req).unwrap();
    let mut bytes = Vec::new();
    let mut hint = None;
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes);
        if hint.is_none() && text.starts_with("HTTP/1.1 103 ") && text.contains("\r\n\r\n") {
            hint = Some((t0.elapsed(), text.contains("HTTP/1.1 200")));
        }
    }
    Timed {
        bytes,
        hint,
        end: t0.elapsed(),
    }
}

/// One GET of `target` on a connection of its own: what came back, as text, and every
/// response in it.
fn fetch(addr: std::net::SocketAddr, target: &str) -> (Timed, String, Vec<Response>) {
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let t = send_timed(addr, req.as_bytes());
    let text = String::from_utf8_lossy(&t.bytes).into_owned();
    let all = responses(&t.bytes);
    (t, text, all)
}

/// Every response in `bytes`, interim ones included, in order.
fn responses(bytes: &[u8]) -> Vec<Response> {
    let mut r = bytes;
    let mut all = Vec::new();
    while !r.is_empty() {
        all.push(read_response(&mut r, false));
    }
    all
}

fn assert_hints(r: &Response) {
    assert_eq!(r.status, 103);
    assert_eq!(r.headers_named("link"), LINKS);
    assert!(r.header("content-length").is_none());
}

#[test]
fn the_103_reaches_the_client_while_the_script_still_runs() {
    if skip() {
        return;
    }
    let s = native();
    let (t, text, all) = fetch(s.addr, "/early_hints.php?nap=400");
    let (at, final_begun) = t.hint.unwrap_or_else(|| panic!("no 103 first: {text}"));
    assert!(!final_begun, "the 103 came with the final response: {text}");
    assert!(
        t.end - at >= Duration::from_millis(250),
        "the 103 came {at:?}, the end {:?}",
        t.end
    );
    assert!(text.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{text}");
    assert_eq!(all.len(), 2, "{text}");
    assert_hints(&all[0]);
    // The hints stay set for the final response; after its head, headers_send() fails
    // (SAPI_HEADER_SEND_FAILED) as there is nothing left to hint.
    assert_eq!(all[1].status, 200);
    assert_eq!(all[1].headers_named("link"), LINKS);
    assert_eq!(all[1].header("x-final"), Some("yes"));
    assert_eq!(all[1].text(), "hinted=1 late=3\n");
    s.stop();
}

#[test]
fn curl_shows_the_103_and_http2_and_http10_get_the_final_response_only() {
    if skip() {
        return;
    }
    let s = native();
    let url = format!("http://{}/early_hints.php", s.addr);
    let curl = |flag: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-v", "--max-time", "20", flag, &url])
            .output()
            .expect("curl is installed (scripts/setup --test)");
        assert!(out.status.success(), "{flag}: {out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (body, trace) = curl("--http1.1");
    assert!(trace.contains("< HTTP/1.1 103 Early Hints"), "{trace}");
    assert!(trace.contains("< HTTP/1.1 200 OK"), "{trace}");
    assert_eq!(body, "hinted=1 late=3\n");
    // hyper's HTTP/2 server cannot send an informational HEADERS frame: dropped, and the
    // response is intact.
    let (body, trace) = curl("--http2-prior-knowledge");
    assert!(trace.contains("< HTTP/2 200"), "{trace}");
    assert!(!trace.contains("HTTP/2 103"), "{trace}");
    assert_eq!(body, "hinted=1 late=3\n");
    // No 1xx to an HTTP/1.0 client (RFC 9110 15.2).
    let t = send_timed(
        s.addr,
        b"GET /early_hints.php HTTP/1.0\r\nHost: localhost\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&t.bytes).into_owned();
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(!text.contains(" 103 "), "{text}");
    s.stop();
}

#[test]
fn pipelined_requests_after_a_hinted_response_stay_in_order() {
    if skip() {
        return;
    }
    let s = native();
    let t = send_timed(
        s.addr,
        b"GET /early_hints.php HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /early_hints.php?nap=100 HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /hello.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&t.bytes).into_owned();
    let all = responses(&t.bytes);
    let statuses: Vec<u16> = all.iter().map(|r| r.status).collect();
    // A 103 is sent only with hyper's buffer drained: the second request's may be dropped,
    // never interleaved with the first response.
    assert!(
        statuses == [103, 200, 103, 200, 200] || statuses == [103, 200, 200, 200],
        "{statuses:?}: {text}"
    );
    for r in all.iter().filter(|r| r.status == 103) {
        assert_hints(r);
    }
    let finals: Vec<String> = all
        .iter()
        .filter(|r| r.status == 200)
        .map(Response::text)
        .collect();
    assert_eq!(finals[..2], ["hinted=1 late=3\n", "hinted=1 late=3\n"]);
    assert!(finals[2].starts_with("hello from /hello.php"), "{text}");
    s.stop();
}

#[test]
fn a_header_with_a_line_break_never_reaches_the_103() {
    if skip() {
        return;
    }
    let s = native();
    let (_, text, all) = fetch(s.addr, "/early_hints.php?evil=1");
    assert_eq!(all.len(), 2, "{text}");
    assert_hints(&all[0]);
    assert!(!text.to_ascii_lowercase().contains("x-evil"), "{text}");
    assert_eq!(all[1].status, 200);
    s.stop();
}

const WORKER: &str = r#"<?php
$n = 0;
while (frankenphp_handle_request(function () use (&$n) {
    $n++;
    header('Link: </worker.css>; rel=preload; as=style');
    $r = headers_send(103);
    usleep(300000);
    echo "worker hinted=$r n=$n";
})) {
}
"#;

#[test]
fn worker_mode_handlers_send_hints_too() {
    if skip() {
        return;
    }
    let site = fixture_site();
    std::fs::write(site.path().join("hints_worker.php"), WORKER).unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(
        &cfg,
        "[php]\nworker = \"hints_worker.php\"\n[pool]\nmax_children = 1\n",
    )
    .unwrap();
    let s = Server::start_in(
        site.path(),
        &["--config", cfg.to_str().unwrap(), "--backend", "native"],
        None,
    );
    for n in 1..=2 {
        let (t, text, all) = fetch(s.addr, "/hints_worker.php");
        let (at, final_begun) = t.hint.unwrap_or_else(|| panic!("no 103 first: {text}"));
        assert!(
            !final_begun && t.end - at >= Duration::from_millis(150),
            "{text}"
        );
        assert_eq!(all.len(), 2, "{text}");
        assert_eq!(all[0].status, 103);
        assert_eq!(
            all[0].headers_named("link"),
            ["</worker.css>; rel=preload; as=style"]
        );
        assert_eq!(all[1].text(), format!("worker hinted=1 n={n}"));
    }
    s.stop();
    drop(site);
}

#[test]
fn php_cgi_has_no_headers_send_and_sends_no_103() {
    let s = Server::start(&["--backend", "php-cgi"]);
    let (_, text, all) = fetch(s.addr, "/early_hints.php");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert_eq!(all.len(), 1, "{text}");
    assert_eq!(all[0].text(), "hinted=-1 late=-1\n");
    assert_eq!(all[0].headers_named("link"), LINKS);
    s.stop();
}
