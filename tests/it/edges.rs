//! Edges where PHP servers commonly go wrong: early-complete responses, streams cut by a
//! crash, headers the server must not invent, clients that leave, `Expect: 100-continue`,
//! long names, symlinks out of the docroot, and header injection through a redirect.
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
