//! Edges where PHP servers commonly go wrong: early-complete responses, streams cut by a
//! crash, headers the server must not invent, clients that leave, `Expect: 100-continue`,
//! long names, symlinks out of the docroot, header injection through a redirect, and answers
//! that must not depend on what ran before.
use crate::harness::{fixture_site, Server};
use crate::http::{self, get};
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

#[test]
fn a_response_php_completes_early_is_delivered_before_the_script_ends() {
    // php-cgi has no fastcgi_finish_request(): apps send their own Content-Length, flush, and
    // go on working. The client must have the whole response long before the script ends.
    let s = Server::start(&["--workers", "1"]);
    let t = Instant::now();
    let r = get(s.addr, "/finish.php?ms=3000");
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "done early");
    assert!(
        took < Duration::from_millis(1500),
        "the response waited for the script's end: {took:?}"
    );
    assert!(r.header("transfer-encoding").is_none() || r.header("content-length").is_none());
}

#[test]
fn a_stream_cut_by_a_crash_is_never_ended_as_complete() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = http::connect(s.addr);
    c.write_all(b"GET /crash_mid_stream.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("FIRST-PART"), "the flushed part arrived");
    let head_lc = head.to_ascii_lowercase();
    if head_lc.contains("transfer-encoding: chunked") {
        assert!(
            !body.ends_with("0\r\n\r\n"),
            "a crashed stream ended with the last-chunk marker, as if complete"
        );
    } else {
        let len: usize = head_lc
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("chunked or a Content-Length")
            .trim()
            .parse()
            .unwrap();
        assert!(
            body.len() < len,
            "a crashed stream delivered its full Content-Length"
        );
    }
    assert_eq!(get(s.addr, "/hello.php").status, 200, "the pool recovered");
}

#[test]
fn no_content_type_or_length_is_invented() {
    let s = Server::start(&["--workers", "1"]);
    let r = get(s.addr, "/notype.php");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "untyped");
    assert_eq!(r.header("content-type"), None, "{:?}", r.headers);
    // HEAD on a script: PHP drops the body; a Content-Length: 0 would lie about the GET.
    let r = http::request(s.addr, "HEAD", "/hello.php", &[], b"");
    assert_eq!(r.status, 200);
    assert_ne!(r.header("content-length"), Some("0"), "{:?}", r.headers);
    // HEAD on a static file: the real length, no body.
    let r = http::request(s.addr, "HEAD", "/style.css", &[], b"");
    assert_eq!(r.header("content-length"), Some("21"));
    assert!(r.body.is_empty());
}

#[test]
fn clients_that_leave_do_not_hurt_the_pool() {
    let s = Server::start(&["--workers", "1"]);
    // Gone while the script runs.
    {
        let mut c = http::connect(s.addr);
        c.write_all(b"GET /sleep.php?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    // Gone in the middle of a streamed response.
    {
        let mut c = http::connect(s.addr);
        c.write_all(b"GET /stream.php HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut r = BufReader::new(c);
        let mut line = String::new();
        while !line.contains("chunk 0") {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0, "stream ended early");
        }
    }
    // Gone halfway through sending a body.
    {
        let mut c = http::connect(s.addr);
        c.write_all(b"POST /env.php HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial")
            .unwrap();
    }
    for _ in 0..3 {
        let r = get(s.addr, "/sleep.php?ms=1");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(crate::harness::zombies_of(s.pid()).is_empty());
    assert!(s.stop().success());
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    // curl sends `Expect: 100-continue` for bodies over 1 MiB and waits for it.
    let s = Server::start(&["--workers", "1"]);
    let body = vec![b'z'; 2 * 1024 * 1024];
    let mut c = http::connect(s.addr);
    write!(
        c,
        "PUT /env.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line)
        .expect("an interim 100 Continue within 5 s");
    assert!(line.starts_with("HTTP/1.1 100"), "{line:?}");
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "\r\n");
    c.write_all(&body).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let resp = http::read_response(&mut r, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["input_len"], body.len());
}

#[test]
fn long_names_are_never_a_server_error() {
    let s = Server::start(&["--workers", "1"]);
    // A component longer than NAME_MAX (255): ENAMETOOLONG must not become a 500.
    let long_php = format!("/{}.php", "a".repeat(300));
    assert_eq!(get(s.addr, &long_php).status, 404);
    let long_other = format!("/{}", "b".repeat(300));
    let r = get(s.addr, &long_other);
    assert!(r.text().starts_with("FRONT-CONTROLLER"), "{}", r.status);
    // A whole path longer than PATH_MAX (4096) in short components.
    let deep = "/abc".repeat(1200);
    let r = get(s.addr, &deep);
    assert!(
        r.status == 200 || r.status == 404 || r.status == 414,
        "deep path: {}",
        r.status
    );
    let r = get(s.addr, &format!("{deep}.php"));
    assert!(
        r.status == 404 || r.status == 414,
        "deep .php: {}",
        r.status
    );
}

#[test]
fn symlinks_out_of_the_docroot_are_not_followed() {
    let site = fixture_site();
    let root = site.path();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "OUTSIDE-SECRET\n").unwrap();
    std::fs::write(
        outside.path().join("run.php"),
        "<?php echo 'OUTSIDE-EXECUTED';",
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
    std::os::unix::fs::symlink(root.join("style.css"), root.join("alias.css")).unwrap();
    let s = Server::start_in(root, &["--workers", "1"], None);
    for target in ["/passwd.txt", "/out/secret.txt", "/out/run.php"] {
        let r = get(s.addr, target);
        assert_eq!(r.status, 404, "{target}: {}", r.text());
        let t = r.text();
        assert!(
            !t.contains("root:x:0") && !t.contains("OUTSIDE-"),
            "{target}: {t}"
        );
    }
    let r = get(s.addr, "/alias.css");
    assert_eq!(r.status, 200, "a symlink inside the docroot is fine");
    assert_eq!(r.text(), "body { color: red; }\n");
    drop(site);
}

#[test]
fn a_redirect_built_from_a_path_cannot_inject_headers() {
    let site = fixture_site();
    let root = site.path();
    std::fs::create_dir(root.join("a b")).unwrap();
    std::fs::write(root.join("a b/index.html"), "spaced dir\n").unwrap();
    let evil = "x\r\nSet-Cookie: injected=1";
    std::fs::create_dir(root.join(evil)).unwrap();
    std::fs::write(root.join(evil).join("index.html"), "evil dir\n").unwrap();
    let s = Server::start_in(root, &["--workers", "1"], None);
    let r = get(s.addr, "/a%20b?q=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/a%20b/?q=1"));
    let r = get(s.addr, "/x%0D%0ASet-Cookie:%20injected=1");
    assert!(r.status == 301 || r.status == 400, "{}", r.status);
    assert!(r.header("set-cookie").is_none(), "{:?}", r.headers);
    if let Some(l) = r.header("location") {
        assert!(
            !l.contains('\r') && !l.contains('\n') && !l.contains(' '),
            "{l:?}"
        );
    }
    drop(site);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = Server::start(&["--workers", "2"]);
    let mut c = http::connect(s.addr);
    // Three requests in one write: a slow script, a static file, a fast script.
    c.write_all(
        b"GET /sleep.php?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /hello.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(c);
    let a = http::read_response(&mut r, false);
    let b = http::read_response(&mut r, false);
    let d = http::read_response(&mut r, false);
    assert!(a.text().starts_with("slept"), "{}", a.text());
    assert_eq!(b.text(), "body { color: red; }\n");
    assert!(
        d.text().starts_with("hello from /hello.php"),
        "{}",
        d.text()
    );
}

/// What ran before a request never changes its answer. A script with a PATH_INFO into a
/// no-exec folder is asked after each kind of failing or hostile request (a crash, a fatal
/// error, an exit, too many input variables, a broken upload, a client leaving mid-body
/// or mid-response, smuggling shapes, denied paths with bodies), on a fresh connection and
/// on the same keep-alive one, and must answer exactly as it did first.
#[test]
fn a_request_answers_the_same_whatever_ran_before_it() {
    let s = Server::with_config(
        "[server]\nno_exec = [\"uploads/\"]\nmax_body_size = \"1M\"\n[pool]\nmax_children = 2\nmax_requests = 7\nemergency_restart_threshold = 2\nqueue_timeout = \"1s\"\n[log]\naccess = false\n",
    );
    let fine_req = b"GET /env.php/uploads/evil.phtml HTTP/1.1\r\nHost: x\r\n\r\n";
    let seen = |r: &http::Response| {
        assert_eq!(r.status, 200, "{}\n{}", r.text(), s.stderr());
        let j = r.json();
        let sv = &j["server"];
        serde_json::json!([
            sv["SCRIPT_NAME"],
            sv["SCRIPT_FILENAME"],
            sv["PATH_INFO"],
            sv["PATH_TRANSLATED"],
            sv["REQUEST_METHOD"],
            sv["CONTENT_LENGTH"],
            j["get"],
            j["post"],
            j["cookie"],
            j["files"],
            j["input_len"],
        ])
    };
    let first = seen(&http::raw(s.addr, fine_req));
    let vars: String = (0..3000).map(|i| format!("v{i}=1&")).collect();
    let post = |target: &str, ctype: &str, body: &[u8]| {
        let mut r = format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let upload = http::multipart(
        "b0",
        &[("f", Some("a.php"), b"<?php echo 1;"), ("t", None, b"x")],
    );
    let get_ = |target: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").into_bytes()
    };
    // (request, whether the client leaves before the answer, after reading this many bytes)
    let hostile: Vec<(Vec<u8>, Option<usize>)> = vec![
        (get_("/segv.php", ""), None),
        (get_("/fatal.php", ""), None),
        (get_("/segv.php", ""), None),
        (get_("/crash_mid_stream.php", ""), Some(1000)),
        (get_("/exit.php", ""), None),
        (post("/env.php", "application/x-www-form-urlencoded", vars.as_bytes()), None),
        (post("/env.php", "multipart/form-data; boundary=b0", &upload), None),
        (post("/env.php", "multipart/form-data; boundary=b0", b"--b0\r\ngarbage"), None),
        (post("/env.php/uploads/evil.phtml", "text/plain", &[b'y'; 70000]), None),
        (post("/missing.php", "text/plain", &[b'z'; 5000]), None),
        (post("/uploads/evil.jpg", "text/plain", &[b'z'; 5000]), None),
        (get_(&format!("/env.php?{}", "a[]=1&".repeat(1500)), ""), None),
        (get_("/env.php", &format!("Cookie: {}\r\n", "c=d; ".repeat(800))), None),
        (get_("/env.php/%2e%2e/%2e%2e/etc/passwd", ""), None),
        (get_("/uploads/evil.phtml", ""), None),
        (b"GET /env.php HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), None),
        (b"POST /env.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), None),
        (b"POST /env.php HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nonly this".to_vec(), Some(0)),
        (get_("/big.php", ""), Some(100)),
        (get_("/stream.php", ""), Some(10)),
        (get_("/sleep.php?ms=300", ""), Some(0)),
    ];
    for round in 0..2 {
        for (i, (req, leave)) in hostile.iter().enumerate() {
            let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
            let what = format!(
                "round {round}, after request {i}: {}",
                String::from_utf8_lossy(&line[..line.len().min(60)])
            );
            let mut c = http::connect(s.addr);
            let _ = c.write_all(req);
            match leave {
                Some(n) => {
                    let mut buf = vec![0; *n];
                    let _ = c.read_exact(&mut buf);
                    drop(c);
                    assert_eq!(seen(&http::raw(s.addr, fine_req)), first, "{what}");
                }
                None => {
                    // The same connection when it stays open, else a fresh one.
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut r = BufReader::new(c);
                    let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        http::read_response(&mut r, false).status
                    }));
                    assert!(answered.is_ok(), "{what}: no answer");
                    let mut c = r.into_inner();
                    let again = match c.write_all(fine_req) {
                        Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            http::read_response(&mut BufReader::new(&mut c), false)
                        }))
                        .ok(),
                        Err(_) => None,
                    };
                    let again = again.unwrap_or_else(|| http::raw(s.addr, fine_req));
                    assert_eq!(seen(&again), first, "{what}");
                    assert_eq!(seen(&http::raw(s.addr, fine_req)), first, "{what}");
                }
            }
        }
    }
}
