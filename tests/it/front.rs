//! The web front's options: compression, connection limits and timeouts, trusted proxies,
//! access log, Cache-Control rules, deny/allow patterns, the Server header.
use crate::harness::{fixture_site, Server};
use crate::http::{self, get, request};
use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

/// The fixture site plus `files`, served with `toml`.
fn serve(toml: &str, files: &[(&str, &str)]) -> Server {
    let site = fixture_site();
    for (name, body) in files {
        let p = site.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, toml).unwrap();
    let docroot = site.path().to_path_buf();
    Server::start_in(&docroot, &["--config", cfg.to_str().unwrap()], Some(site))
}

const TEXT_PHP: &str =
    "<?php header('Content-Type: text/plain'); echo str_repeat(\"isola compresses text\\n\", 500);";

/// GET `target` with `Accept-Encoding: accept`.
fn accepting(addr: std::net::SocketAddr, target: &str, accept: &str) -> http::Response {
    request(
        addr,
        "GET",
        target,
        &[&format!("Accept-Encoding: {accept}")],
        b"",
    )
}

fn gunzip(b: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(b)
        .read_to_string(&mut out)
        .expect("valid gzip");
    out
}

#[test]
fn php_and_static_responses_are_compressed_when_the_client_accepts_it() {
    let css = "body { color: black; }\n".repeat(200);
    let s = serve(
        "[pool]\nmax_children = 1\n",
        &[("text.php", TEXT_PHP), ("big.css", &css)],
    );
    let plain = get(s.addr, "/text.php");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let z = accepting(s.addr, "/text.php", "gzip");
    assert_eq!(z.status, 200);
    assert_eq!(z.header("content-encoding"), Some("gzip"));
    assert_eq!(z.header("vary"), Some("Accept-Encoding"));
    assert!(
        z.body.len() < plain.body.len() / 10,
        "{} bytes",
        z.body.len()
    );
    assert_eq!(gunzip(&z.body), plain.text());
    let z = accepting(s.addr, "/big.css", "gzip");
    assert_eq!(z.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&z.body), css);
    // Images are left alone, and so is a client that accepts nothing Isola makes.
    let img = accepting(s.addr, "/image.png", "gzip");
    assert_eq!(img.header("content-encoding"), None);
    let r = accepting(s.addr, "/text.php", "compress");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, plain.body);
    assert!(s.stop().success());
}

#[test]
fn compression_keeps_flush_streaming() {
    let s = serve("[pool]\nmax_children = 1\n", &[]);
    // stream.php echoes, flushes and sleeps three times: the first compressed chunk must
    // decode to the first echo alone, before the script has produced the rest.
    let mut c = http::connect(s.addr);
    c.write_all(b"GET /stream.php HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(c);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let mut size = String::new();
    std::io::BufRead::read_line(&mut r, &mut size).unwrap();
    let n = usize::from_str_radix(size.trim(), 16).unwrap();
    let mut chunk = vec![0; n];
    r.read_exact(&mut chunk).unwrap();
    let mut first = Vec::new();
    let _ = flate2::read::GzDecoder::new(&chunk[..]).read_to_end(&mut first);
    let first = String::from_utf8_lossy(&first);
    assert!(first.contains("chunk 0"), "{first:?}");
    assert!(
        !first.contains("chunk 2"),
        "held back until the end: {first:?}"
    );
    assert!(s.stop().success());
}

#[test]
fn compression_can_be_turned_off_or_limited() {
    let s = serve(
        "[pool]\nmax_children = 1\n[server.compression]\nenabled = false\n",
        &[("text.php", TEXT_PHP)],
    );
    let r = accepting(s.addr, "/text.php", "gzip, br");
    assert_eq!(r.header("content-encoding"), None);
    assert!(s.stop().success());
    let s = serve(
        "[pool]\nmax_children = 1\n[server.compression]\ncodings = [\"gzip\"]\nmin_size = \"64KiB\"\n",
        &[(
            "big.php",
            "<?php header('Content-Type: text/plain'); echo str_repeat('a', 100000);",
        )],
    );
    // br is not offered, gzip is.
    let r = accepting(s.addr, "/big.php", "br");
    assert_eq!(r.header("content-encoding"), None);
    let r = accepting(s.addr, "/big.php", "br, gzip");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(s.stop().success());
}

/// Reads until the server closes the connection; true if it did within `limit`.
fn closed_within(c: &mut std::net::TcpStream, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn keepalive_timeout_and_header_read_timeout_are_separate() {
    let s = serve(
        "[server]\nkeepalive_timeout = \"1s\"\nheader_read_timeout = \"3s\"\n[pool]\nmax_children = 1\n",
        &[],
    );
    // Idle after a response: closed after keepalive_timeout, long before header_read_timeout.
    let mut c = http::connect(s.addr);
    c.write_all(b"GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = http::read_response(&mut BufReader::new(c.try_clone().unwrap()), false);
    assert_eq!(r.status, 200);
    let t = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(20)));
    let idle = t.elapsed();
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?}");
    assert!(s.stop().success());

    // The other way round: a keep-alive connection idle for longer than
    // header_read_timeout is still served.
    let s = serve(
        "[server]\nkeepalive_timeout = \"30s\"\nheader_read_timeout = \"1s\"\n[pool]\nmax_children = 1\n",
        &[],
    );
    let mut c = http::connect(s.addr);
    let mut reader = BufReader::new(c.try_clone().unwrap());
    c.write_all(b"GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(http::read_response(&mut reader, false).status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    c.write_all(b"GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(http::read_response(&mut reader, false).status, 200);
    // But a head that trickles in is cut after header_read_timeout.
    c.write_all(b"GET /hello.php HTTP/1.1\r\n").unwrap();
    let t = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(20)));
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert!(s.stop().success());
}

#[test]
fn max_connections_holds_further_clients_in_the_backlog() {
    let s = serve(
        "[server]\nmax_connections = 2\nheader_read_timeout = \"30s\"\n[pool]\nmax_children = 1\n",
        &[],
    );
    let idle: Vec<_> = (0..2).map(|_| http::connect(s.addr)).collect();
    // Both slots are taken by connections that have not sent anything.
    std::thread::sleep(Duration::from_millis(300));
    let mut third = http::connect(s.addr);
    third
        .write_all(b"GET /hello.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let mut buf = [0u8; 64];
    let early = third.read(&mut buf);
    assert!(early.is_err(), "served beyond max_connections: {early:?}");
    drop(idle);
    third
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let r = http::read_response(&mut BufReader::new(third), false);
    assert_eq!(r.status, 200);
    assert!(s.stop().success());
}

#[test]
fn oversized_heads_get_431() {
    let s = serve("[pool]\nmax_children = 1\n", &[]);
    let big = format!(
        "GET /hello.php HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    assert_eq!(http::raw(s.addr, big.as_bytes()).status, 431);
    let mut many = String::from("GET /hello.php HTTP/1.1\r\nHost: a\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(http::raw(s.addr, many.as_bytes()).status, 431);
    // Just under the limits is fine.
    let ok = format!(
        "GET /hello.php HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    assert_eq!(http::raw(s.addr, ok.as_bytes()).status, 200);
    assert!(s.stop().success());
}

#[test]
fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    let headers = [
        "X-Forwarded-For: 6.6.6.6, 203.0.113.9",
        "X-Forwarded-Proto: https",
    ];
    let s = serve("[pool]\nmax_children = 1\n", &[]);
    let j = request(s.addr, "GET", "/env.php", &headers, b"").json();
    assert_eq!(j["server"]["REMOTE_ADDR"], "127.0.0.1");
    assert!(j["server"].get("HTTPS").is_none());
    assert!(s.stop().success());

    let s = serve(
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n[pool]\nmax_children = 1\n",
        &[],
    );
    let j = request(s.addr, "GET", "/env.php", &headers, b"").json();
    assert_eq!(j["server"]["REMOTE_ADDR"], "203.0.113.9");
    assert_eq!(j["server"]["HTTPS"], "on");
    assert_eq!(j["server"]["REQUEST_SCHEME"], "https");
    let j = request(
        s.addr,
        "GET",
        "/env.php",
        &["Forwarded: for=\"[2001:db8::5]:999\";proto=http"],
        b"",
    )
    .json();
    assert_eq!(j["server"]["REMOTE_ADDR"], "2001:db8::5");
    assert!(j["server"].get("HTTPS").is_none());
    // The access log names the client, not the proxy.
    assert!(s.wait_for_log("203.0.113.9 - - [", Duration::from_secs(5)));
    assert!(s.stop().success());
}

#[test]
fn access_log_combined_on_stdout() {
    let s = serve("[pool]\nmax_children = 1\n", &[]);
    let r = request(
        s.addr,
        "GET",
        "/hello.php?a=%22b%22",
        &["User-Agent: test \"agent\"", "Referer: http://ref.example/"],
        b"",
    );
    let id = r.header("x-request-id").unwrap().to_string();
    assert!(s.wait_for_log(&id, Duration::from_secs(5)));
    let line = s
        .stdout_lines()
        .into_iter()
        .find(|l| l.contains(&id))
        .unwrap();
    let expect = format!(
        "\"GET /hello.php?a=%22b%22 HTTP/1.1\" 200 {} \"http://ref.example/\" \"test \\x22agent\\x22\" rt=",
        r.body.len()
    );
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains(&expect), "{line}\nwanted {expect}");
    assert!(line.contains(" pid="), "{line}");
    assert!(!line.contains("pid=-"), "{line}");
    // A static file has no worker.
    let r = get(s.addr, "/style.css");
    let id = r.header("x-request-id").unwrap().to_string();
    assert!(s.wait_for_log(&id, Duration::from_secs(5)));
    let line = s
        .stdout_lines()
        .into_iter()
        .find(|l| l.contains(&id))
        .unwrap();
    assert!(line.contains(" ut=- wt=- pid=-"), "{line}");
    assert!(s.stop().success());
}

/// Lines are written in batches; a stop (SIGTERM) right after the last answer still writes
/// every line.
#[test]
fn access_log_loses_no_line_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let s = serve(
        &format!(
            "[pool]\nmax_children = 2\n[log]\naccess_file = \"{}\"\n",
            log.display()
        ),
        &[],
    );
    let n = 300;
    for i in 0..n {
        let path = if i % 2 == 0 {
            "/hello.php"
        } else {
            "/style.css"
        };
        assert_eq!(get(s.addr, path).status, 200);
    }
    assert!(s.stop().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), n, "{text}");
    assert!(text.lines().all(|l| l.contains(" id=")), "whole lines");
}

#[test]
fn access_log_json_in_a_file_reopened_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let s = serve(
        &format!(
            "[pool]\nmax_children = 1\n[log]\naccess_format = \"json\"\naccess_file = \"{}\"\n",
            log.display()
        ),
        &[],
    );
    let read_lines = |p: &std::path::Path, n: usize| -> Vec<serde_json::Value> {
        let t = Instant::now();
        loop {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<_> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= n || t.elapsed() > Duration::from_secs(10) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let r = get(s.addr, "/hello.php");
    let lines = read_lines(&log, 1);
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert_eq!(l["status"], 200);
    assert_eq!(l["method"], "GET");
    assert_eq!(l["uri"], "/hello.php");
    assert_eq!(l["bytes"], r.body.len());
    assert_eq!(l["request_id"], r.header("x-request-id").unwrap());
    assert!(l["worker"].as_u64().unwrap() > 0);
    assert!(l["upstream_ms"].as_f64().is_some());
    assert!(l["duration_ms"].as_f64().unwrap() >= l["upstream_ms"].as_f64().unwrap());
    assert!(!s.stdout_lines().iter().any(|x| x.contains("/hello.php")));

    // logrotate: move the file away, SIGUSR1, and the next line goes to a new file.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    assert!(s.wait_for_log("access log reopened", Duration::from_secs(5)));
    get(s.addr, "/style.css");
    let lines = read_lines(&log, 1);
    assert_eq!(lines.len(), 1, "new file");
    assert_eq!(lines[0]["uri"], "/style.css");
    assert_eq!(read_lines(&rotated, 1).len(), 1);
    assert!(s.stop().success());
}

#[test]
fn cache_control_rules_apply_to_static_files_by_pattern() {
    let s = serve(
        "[pool]\nmax_children = 1\n\
         [[server.cache_control]]\npath = \"/assets/**\"\nvalue = \"public, max-age=31536000, immutable\"\n\
         [[server.cache_control]]\npath = \"*.css\"\nvalue = \"public, max-age=3600\"\n",
        &[("assets/app.css", "a{}"), ("assets/app.php", "<?php echo 'php';")],
    );
    let r = get(s.addr, "/assets/app.css");
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let etag = r.header("etag").unwrap().to_string();
    let r = get(s.addr, "/style.css");
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    // A revalidation keeps it; PHP and images without a rule are left alone.
    let r = request(
        s.addr,
        "GET",
        "/assets/app.css",
        &[&format!("If-None-Match: {etag}")],
        b"",
    );
    assert_eq!(r.status, 304);
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(get(s.addr, "/assets/app.php").header("cache-control"), None);
    assert_eq!(get(s.addr, "/image.png").header("cache-control"), None);
    assert!(s.stop().success());
}

#[test]
fn deny_and_allow_patterns() {
    let planted = "<?php file_put_contents(__DIR__ . '/../EVALUATED', 'x'); echo 'RAN';";
    let s = serve(
        "[server]\ndeny = [\"/private/**\", \"*.sql\", \"composer.json\"]\nallow = [\"/.hidden/**\"]\n[pool]\nmax_children = 1\n",
        &[
            ("private/run.php", planted),
            ("private/index.php", planted),
            ("private/data.txt", "PRIVATE"),
            ("dump.sql", "DROP TABLE"),
            ("lib/composer.json", "{}"),
        ],
    );
    for target in [
        "/private/run.php",
        "/private/run.php/x",
        "/private/",
        "/private",
        "/private/data.txt",
        "/%70rivate/run.php",
        "/x/../private/run.php",
        "/private/missing",
        "/dump.sql",
        "/lib/composer.json",
    ] {
        let r = get(s.addr, target);
        assert_eq!(r.status, 404, "{target}");
        assert!(
            !r.text().contains("RAN") && !r.text().contains("PRIVATE"),
            "{target}"
        );
    }
    assert!(!s.docroot.join("EVALUATED").exists(), "denied PHP ran");
    // Allowed: a dot folder's static files (never its scripts).
    let r = get(s.addr, "/.hidden/x.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "HIDDEN-SECRET\n");
    assert_eq!(get(s.addr, "/.env").status, 404);
    assert!(s.stop().success());
}

#[test]
fn server_header_without_version_unless_asked() {
    let s = serve("[pool]\nmax_children = 1\n", &[]);
    for target in ["/hello.php", "/style.css", "/nope.php"] {
        assert_eq!(
            get(s.addr, target).header("server"),
            Some("isola"),
            "{target}"
        );
    }
    assert!(s.stop().success());
    let s = serve(
        "[server]\nserver_tokens = true\n[pool]\nmax_children = 1\n",
        &[],
    );
    let v = get(s.addr, "/hello.php");
    assert_eq!(
        v.header("server"),
        Some(format!("isola/{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert!(s.stop().success());
}

/// Two sites in one folder (`a/`, `b/`), each with a script telling which site and pool
/// answered, served with `extra` config before the sites.
fn two_sites(extra: &str) -> (Server, Option<std::net::SocketAddr>) {
    let dir = tempfile::tempdir().unwrap();
    let who = "<?php echo basename(__DIR__), ' ', getenv('SITE_ENV') ?: '-', ' ', getmypid(), ' ', $_SERVER['HTTP_HOST'] ?? '';";
    for site in ["a", "b"] {
        std::fs::create_dir(dir.path().join(site)).unwrap();
        std::fs::write(dir.path().join(site).join("who.php"), who).unwrap();
        std::fs::write(dir.path().join(site).join("index.php"), who).unwrap();
    }
    std::fs::write(dir.path().join("b/only-b.txt"), "B-FILE").unwrap();
    let cfg = dir.path().join("isola.toml");
    std::fs::write(
        &cfg,
        format!(
            "{extra}[pool]\nmax_children = 1\n\
             [[site]]\nserver_names = [\"a.test\", \"www.a.test\"]\ndocroot = \"a\"\n\
             [[site]]\nserver_names = [\"b.test\", \"*.b.test\"]\ndocroot = \"b\"\n\
             [site.pool]\nmax_children = 2\n[site.php]\nenv = {{ SITE_ENV = \"bee\" }}\n"
        ),
    )
    .unwrap();
    let root = dir.path().to_path_buf();
    let s = Server::start_without_docroot(
        &root,
        &["--config", cfg.to_str().unwrap(), "--admin", "127.0.0.1:0"],
        Some(dir),
    );
    let admin = s.admin_addr();
    (s, admin)
}

fn host_get(addr: std::net::SocketAddr, host: &str, target: &str) -> http::Response {
    http::raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn sites_are_chosen_by_host_and_each_has_its_own_pool() {
    let (s, admin) = two_sites("");
    assert!(s.ready_line.contains("a.test, b.test"), "{}", s.ready_line);
    let a = host_get(s.addr, "a.test", "/who.php").text();
    assert!(a.starts_with("a - "), "{a}");
    let a2 = host_get(s.addr, "WWW.A.test.:80", "/who.php").text();
    assert!(a2.starts_with("a - "), "{a2}");
    let b = host_get(s.addr, "b.test", "/who.php").text();
    assert!(b.starts_with("b bee "), "{b}");
    let deep = host_get(s.addr, "x.y.b.test", "/who.php").text();
    assert!(deep.starts_with("b bee "), "wildcard: {deep}");
    // Different pools: a's worker never serves b.
    let pid = |t: &str| t.split(' ').nth(2).unwrap().to_string();
    assert_ne!(pid(&a), pid(&b));
    // Static files and routing are per site.
    assert_eq!(host_get(s.addr, "b.test", "/only-b.txt").text(), "B-FILE");
    assert_eq!(
        host_get(s.addr, "a.test", "/only-b.txt")
            .text()
            .split(' ')
            .next(),
        Some("a"),
        "a's front controller"
    );
    // Unknown hosts (and no Host at all) go to the first site by default.
    let other = host_get(s.addr, "elsewhere.test", "/who.php").text();
    assert!(other.starts_with("a - "), "{other}");
    let r = http::raw(s.addr, b"GET /who.php HTTP/1.0\r\n\r\n");
    assert!(r.text().starts_with("a - "), "{}", r.text());
    // The admin shows both pools.
    let j = get(admin.unwrap(), "/status").json();
    let names: Vec<_> = j["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a.test", "b.test"]);
    assert_eq!(j["sites"][1]["pool"]["max_children"], 2);
    let m = get(admin.unwrap(), "/metrics").text();
    assert!(m.contains("isola_workers_max{site=\"b.test\"} 2"), "{m}");
    assert!(s.stop().success());
}

#[test]
fn body_limits_are_per_site() {
    let dir = tempfile::tempdir().unwrap();
    for site in ["a", "b"] {
        std::fs::create_dir(dir.path().join(site)).unwrap();
        std::fs::write(
            dir.path().join(site).join("len.php"),
            "<?php echo strlen(file_get_contents('php://input'));",
        )
        .unwrap();
    }
    let cfg = dir.path().join("isola.toml");
    std::fs::write(
        &cfg,
        "[server]\nmax_body_size = \"1K\"\n[pool]\nmax_children = 1\n\
         [[site]]\nserver_names = [\"a.test\"]\ndocroot = \"a\"\n\
         [[site]]\nserver_names = [\"uploads.test\"]\ndocroot = \"b\"\nmax_body_size = \"1M\"\n",
    )
    .unwrap();
    let root = dir.path().to_path_buf();
    let s = Server::start_without_docroot(&root, &["--config", cfg.to_str().unwrap()], Some(dir));
    let body = vec![b'x'; 10_000];
    let post = |host: &str| {
        let mut raw = format!(
            "POST /len.php HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(&body);
        http::raw_lenient(s.addr, &raw)
    };
    assert_eq!(post("a.test").status, 413);
    let r = post("uploads.test");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "10000");
    assert!(s.stop().success());
}

#[test]
fn unknown_hosts_can_be_refused() {
    let (s, _) = two_sites("[server]\nunknown_host = \"421\"\n");
    assert_eq!(host_get(s.addr, "elsewhere.test", "/who.php").status, 421);
    assert_eq!(
        http::raw(s.addr, b"GET /who.php HTTP/1.0\r\n\r\n").status,
        421
    );
    assert!(host_get(s.addr, "b.test", "/who.php")
        .text()
        .starts_with("b bee"));
    assert!(s.stop().success());
    let (s, _) = two_sites("[server]\nunknown_host = \"404\"\n");
    assert_eq!(host_get(s.addr, "elsewhere.test", "/").status, 404);
    assert!(s.stop().success());
}

#[test]
fn sites_reload_together() {
    let (s, _) = two_sites("");
    let cfg = s.docroot.join("isola.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"www.a.test\"", "\"www.a.test\", \"c.test\"")
        .replace("SITE_ENV = \"bee\"", "SITE_ENV = \"wasp\"");
    std::fs::write(&cfg, text).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let t = Instant::now();
    while !host_get(s.addr, "b.test", "/who.php")
        .text()
        .starts_with("b wasp")
    {
        assert!(t.elapsed() < Duration::from_secs(15), "reload not applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(host_get(s.addr, "c.test", "/who.php")
        .text()
        .starts_with("a - "));
    // The old generation's workers (both sites') are gone: 1 + 2 workers remain.
    let t = Instant::now();
    while crate::harness::children_of(s.pid()).len() != 3 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "workers: {:?}",
            crate::harness::children_of(s.pid())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.stop().success());
}

#[test]
fn request_smuggling_shapes_are_refused_and_never_run() {
    let s = serve("[pool]\nmax_children = 1\n", &[]);
    // Content-Length with Transfer-Encoding: processed by the chunked framing alone and the
    // connection closed after the response (RFC 9112 6.3), so what follows is never read as
    // a second request.
    let mut c = http::connect(s.addr);
    c.write_all(b"POST /touch.php?tag=cl HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /touch.php?tag=smuggledcl HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    std::fs::remove_file(s.docroot.join("ran-cl")).ok();
    let cases: &[(&str, &[u8])] = &[
        (
            "two lengths",
            b"POST /touch.php?tag=twolen HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /touch.php?tag=smuggled2 HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            "bad chunk size",
            b"POST /touch.php?tag=badchunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "te not chunked last",
            b"POST /touch.php?tag=tegzip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        ),
        (
            "te obfuscated",
            b"POST /touch.php?tag=teobf HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\nabc",
        ),
    ];
    for (name, raw) in cases {
        let r = http::raw_lenient(s.addr, raw);
        assert!(
            (400..500).contains(&r.status) || r.status == 501,
            "{name}: {}",
            r.status
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let ran: Vec<_> = std::fs::read_dir(&s.docroot)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ran-"))
        .collect();
    assert!(
        ran.is_empty(),
        "a smuggled or malformed request ran: {ran:?}"
    );
    assert!(s.stop().success());
}

#[test]
fn aliases_serve_a_folder_outside_the_docroot() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("uploads")).unwrap();
    std::fs::write(outside.path().join("style.css"), "a{}").unwrap();
    std::fs::write(
        outside.path().join("info.php"),
        "<?php echo $_SERVER['SCRIPT_NAME'], ' ', $_SERVER['SCRIPT_FILENAME'];",
    )
    .unwrap();
    std::fs::write(
        outside.path().join("uploads/shell.php"),
        "<?php file_put_contents(__DIR__ . '/EVALUATED', 'x');",
    )
    .unwrap();
    let dir = outside.path().canonicalize().unwrap();
    let s = serve(
        &format!(
            "[server]\nno_exec = [\"content/uploads/\"]\n[[server.alias]]\npath = \"/content\"\ndir = \"{}\"\n\
             [[server.cache_control]]\npath = \"/content/**\"\nvalue = \"max-age=60\"\n[pool]\nmax_children = 1\n",
            dir.display()
        ),
        &[],
    );
    let r = get(s.addr, "/content/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "a{}");
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    let r = get(s.addr, "/content/info.php");
    assert_eq!(
        r.text(),
        format!("/content/info.php {}", dir.join("info.php").display())
    );
    assert_eq!(get(s.addr, "/content/uploads/shell.php").status, 403);
    assert!(!dir.join("uploads/EVALUATED").exists());
    assert_eq!(get(s.addr, "/content").status, 301);
    assert!(s.stop().success());
}

#[test]
fn isola_defer_runs_a_request_after_the_response() {
    let s = serve(
        "[pool]\nmax_children = 2\n",
        &[
            (
                "defer.php",
                "<?php header('Isola-Defer: /later.php?tag=' . $_GET['tag']); echo 'answered';",
            ),
            (
                "later.php",
                "<?php usleep(800000); file_put_contents(__DIR__ . '/deferred-' . preg_replace('/[^a-z0-9]/', '', $_GET['tag']), $_SERVER['HTTP_X_ISOLA_INTERNAL'] . ' ' . $_SERVER['REQUEST_URI']);",
            ),
            ("bad.php", "<?php header('Isola-Defer: http://elsewhere.example/x.php'); echo 'x';"),
        ],
    );
    let r = get(s.addr, "/defer.php?tag=one");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "answered");
    assert_eq!(
        r.header("isola-defer"),
        None,
        "the header is Isola's, not the client's"
    );
    // The deferred script sleeps before writing: it cannot have run before the response.
    let marker = s.docroot.join("deferred-one");
    assert!(
        !marker.exists(),
        "deferred work ran before the response was sent"
    );
    let t = Instant::now();
    while !marker.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "deferred request never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "defer /later.php?tag=one"
    );
    // A client cannot pose as an internal request.
    let j = request(s.addr, "GET", "/env.php", &["X-Isola-Internal: defer"], b"").json();
    assert!(
        j["server"].get("HTTP_X_ISOLA_INTERNAL").is_none(),
        "{}",
        j["server"]
    );
    // Only a path on this site is accepted.
    let r = get(s.addr, "/bad.php");
    assert_eq!(r.header("isola-defer"), None);
    assert!(s.wait_for_log("Isola-Defer ignored", Duration::from_secs(5)));
    assert!(s.stop().success());
}

#[test]
fn schedules_run_on_their_clock_and_never_overlap() {
    let s = serve(
        "[pool]\nmax_children = 3\n\
         [[schedule]]\nname = \"tick\"\nurl = \"/tick.php?kind=every\"\nevery = \"1s\"\n\
         [[schedule]]\nurl = \"/slow.php\"\ncron = \"* * * * * *\"\n\
         [[schedule]]\nurl = \"/missing.php\"\nevery = \"1s\"\n",
        &[
            (
                "tick.php",
                "<?php file_put_contents(__DIR__ . '/ticks', $_SERVER['HTTP_X_ISOLA_INTERNAL'] . ' ' . $_GET['kind'] . \"\\n\", FILE_APPEND);",
            ),
            (
                "slow.php",
                // A run takes 2.5 s and ticks come every second: a second run at once would
                // find the lock file.
                "<?php $l = __DIR__ . '/slow.lock'; if (file_exists($l)) { file_put_contents(__DIR__ . '/OVERLAP', 'x'); } touch($l); usleep(2500000); unlink($l); file_put_contents(__DIR__ . '/slow-runs', \"run\\n\", FILE_APPEND);",
            ),
        ],
    );
    let ticks = s.docroot.join("ticks");
    let t = Instant::now();
    while std::fs::read_to_string(&ticks)
        .unwrap_or_default()
        .lines()
        .count()
        < 3
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "every = 1s ran fewer than 3 times in 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::fs::read_to_string(&ticks)
        .unwrap()
        .lines()
        .all(|l| l == "schedule every"));
    let runs = s.docroot.join("slow-runs");
    while std::fs::read_to_string(&runs)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the cron schedule did not run twice"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !s.docroot.join("OVERLAP").exists(),
        "two runs of one schedule overlapped"
    );
    assert!(s.wait_for_log("this tick is skipped", Duration::from_secs(5)));
    assert!(s.wait_for_log("scheduled run failed", Duration::from_secs(5)));
    // Scheduled runs are in the access log like any request.
    assert!(s.wait_for_log(
        "\"GET /tick.php?kind=every HTTP/1.1\" 200",
        Duration::from_secs(5)
    ));
    assert!(s.stop().success());
}
