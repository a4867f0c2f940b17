//! Requests and responses end to end: methods, bodies, headers, cookies, statuses, streaming.
use crate::harness::Server;
use crate::http::{self, get, multipart, request, sha256_hex};
use std::time::{Duration, Instant};

#[test]
fn get_with_query_cookies_and_custom_headers() {
    let s = Server::start(&["--workers", "2"]);
    let r = request(
        s.addr,
        "GET",
        "/env.php?a[]=1&a[]=2&b=1&b=2&sp=%20x",
        &[
            "Cookie: c1=one",
            "Cookie: c2=two",
            "X-Custom: yes",
            "X_Under: spoof",
            "Proxy: http://evil",
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["get"]["a"], serde_json::json!(["1", "2"]));
    assert_eq!(j["get"]["b"], "2");
    assert_eq!(j["get"]["sp"], " x");
    assert_eq!(j["cookie"]["c1"], "one");
    assert_eq!(j["cookie"]["c2"], "two");
    assert_eq!(j["server"]["HTTP_COOKIE"], "c1=one; c2=two");
    assert_eq!(j["server"]["HTTP_X_CUSTOM"], "yes");
    assert!(
        j["server"].get("HTTP_X_UNDER").is_none(),
        "underscore header must be dropped"
    );
    assert!(j["server"].get("HTTP_PROXY").is_none(), "httpoxy");
    assert_eq!(j["server"]["QUERY_STRING"], "a[]=1&a[]=2&b=1&b=2&sp=%20x");
    assert_eq!(
        j["server"]["REQUEST_URI"],
        "/env.php?a[]=1&a[]=2&b=1&b=2&sp=%20x"
    );
    assert_eq!(j["server"]["REQUEST_METHOD"], "GET");
    assert_eq!(j["server"]["GATEWAY_INTERFACE"], "CGI/1.1");
    assert_eq!(j["server"]["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(j["server"]["REDIRECT_STATUS"], "200");
    assert_eq!(j["server"]["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(j["server"]["SERVER_PORT"], s.addr.port().to_string());
    assert_eq!(j["server"]["SCRIPT_NAME"], "/env.php");
    assert_eq!(j["server"]["PHP_SELF"], "/env.php");
    let docroot = s.docroot.canonicalize().unwrap();
    assert_eq!(j["server"]["DOCUMENT_ROOT"], docroot.to_str().unwrap());
    assert_eq!(
        j["server"]["SCRIPT_FILENAME"],
        docroot.join("env.php").to_str().unwrap()
    );
}

#[test]
fn request_id_reaches_php_and_client() {
    let s = Server::start(&["--workers", "1"]);
    let r = get(s.addr, "/env.php");
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 32);
    let j = r.json();
    assert_eq!(j["server"]["ISOLA_REQUEST_ID"], id.as_str());
    assert_eq!(j["server"]["HTTP_X_REQUEST_ID"], id.as_str());
    assert!(
        s.wait_for_log(&id, Duration::from_secs(5)),
        "id in the access log"
    );
    // A sane incoming id is kept; a hostile one is replaced.
    let r = request(s.addr, "GET", "/env.php", &["X-Request-Id: trace-42"], b"");
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    assert_eq!(r.json()["server"]["ISOLA_REQUEST_ID"], "trace-42");
    let r = request(
        s.addr,
        "GET",
        "/env.php",
        &["X-Request-Id: bad id <script>"],
        b"",
    );
    assert_ne!(r.header("x-request-id"), Some("bad id <script>"));
}

#[test]
fn post_urlencoded_json_put_delete() {
    let s = Server::start(&["--workers", "2"]);
    let r = request(
        s.addr,
        "POST",
        "/env.php",
        &["Content-Type: application/x-www-form-urlencoded"],
        b"name=Ada+L&x=%26y",
    );
    let j = r.json();
    assert_eq!(j["post"]["name"], "Ada L");
    assert_eq!(j["post"]["x"], "&y");
    assert_eq!(j["server"]["CONTENT_LENGTH"], "17");

    let body = br#"{"k":[1,2,3]}"#;
    let r = request(
        s.addr,
        "POST",
        "/env.php",
        &["Content-Type: application/json"],
        body,
    );
    let j = r.json();
    assert_eq!(j["input_len"], body.len());
    assert_eq!(j["input_sha256"], sha256_hex(body));
    assert_eq!(j["server"]["CONTENT_TYPE"], "application/json");

    for m in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = request(s.addr, m, "/env.php", &[], b"payload");
        assert_eq!(r.status, 200, "{m}");
        assert_eq!(r.json()["server"]["REQUEST_METHOD"], m);
        assert_eq!(r.json()["input_len"], 7);
    }
}

#[test]
fn multipart_upload_with_binary_file() {
    // php.ini's upload_max_filesize (2M by default) is PHP's own limit; raise it as a site would.
    let site = crate::harness::fixture_site();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, "[pool]\nmax_children = 1\n[php]\nini = { upload_max_filesize = \"16M\", post_max_size = \"32M\" }\n").unwrap();
    let s = Server::start_in(site.path(), &["--config", cfg.to_str().unwrap()], None);
    let big: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let small = b"hello, file".to_vec();
    let body = multipart(
        "XyZzY",
        &[
            ("title", None, b"two files"),
            ("f1", Some("small.txt"), &small),
            ("f2", Some("big.bin"), &big),
        ],
    );
    let r = request(
        s.addr,
        "POST",
        "/env.php",
        &["Content-Type: multipart/form-data; boundary=XyZzY"],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["post"]["title"], "two files");
    assert_eq!(j["files"]["f1"]["size"], small.len());
    assert_eq!(j["files"]["f1"]["sha256"], sha256_hex(&small));
    assert_eq!(j["files"]["f2"]["name"], "big.bin");
    assert_eq!(j["files"]["f2"]["size"], big.len());
    assert_eq!(j["files"]["f2"]["sha256"], sha256_hex(&big));
}

#[test]
fn chunked_request_body_reaches_php_whole() {
    let s = Server::start(&["--workers", "1"]);
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut req = b"POST /env.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in payload.chunks(70_000) {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = http::raw(s.addr, &req);
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["server"]["CONTENT_LENGTH"], payload.len().to_string());
    assert_eq!(j["input_len"], payload.len());
    assert_eq!(j["input_sha256"], sha256_hex(&payload));
}

#[test]
fn broken_chunked_body_never_reaches_php() {
    let s = Server::start(&["--workers", "1"]);
    let r = http::raw(
        s.addr,
        b"POST /env.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\nZZZ\r\nbroken\r\n",
    );
    assert_eq!(r.status, 400);
    // The worker is fine: the next request is served.
    assert_eq!(get(s.addr, "/hello.php").status, 200);
}

#[test]
fn huge_upload_is_spooled_not_held_in_memory() {
    let site = crate::harness::fixture_site();
    let cfg = site.path().join("isola.toml");
    std::fs::write(
        &cfg,
        "[server]\nmax_body_size = \"300M\"\n[pool]\nmax_children = 1\n",
    )
    .unwrap();
    let s = Server::start_in(site.path(), &["--config", cfg.to_str().unwrap()], None);
    let total: usize = 200 * 1024 * 1024;
    let mut conn = http::connect(s.addr);
    use std::io::Write;
    write!(conn, "PUT /upload_hash.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {total}\r\n\r\n").unwrap();
    let block: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut peak = 0;
    for i in 0..200 {
        conn.write_all(&block).unwrap();
        if i % 20 == 0 {
            peak = peak.max(crate::harness::rss_kib(s.pid()));
        }
    }
    let r = http::read_response(&mut std::io::BufReader::new(conn), false);
    assert_eq!(r.status, 200, "{}", r.text());
    let expected = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for _ in 0..200 {
            h.update(&block);
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(r.text(), format!("{total} {expected}"));
    assert!(
        peak < 100 * 1024,
        "isola RSS reached {peak} KiB during a 200 MiB upload"
    );
}

#[test]
fn body_over_the_limit_is_413_before_php() {
    let site = crate::harness::fixture_site();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, "[server]\nmax_body_size = \"1K\"\n").unwrap();
    let s = Server::start_in(site.path(), &["--config", cfg.to_str().unwrap()], None);
    let r = request(s.addr, "POST", "/env.php", &[], &[b'x'; 2000]);
    assert_eq!(r.status, 413);
    let r = request(s.addr, "POST", "/env.php", &[], &[b'x'; 1000]);
    assert_eq!(r.status, 200);
    drop(site);
}

#[test]
fn head_statuses_redirects_cookies() {
    let s = Server::start(&["--workers", "2"]);
    let r = http::raw(
        s.addr,
        b"HEAD /hello.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    for code in [404, 500, 418, 201] {
        let r = get(s.addr, &format!("/status.php?code={code}"));
        assert_eq!(r.status, code);
        assert_eq!(
            r.text(),
            format!("status page {code}"),
            "PHP's own body passes through"
        );
    }
    let r = get(s.addr, "/redirect.php");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/elsewhere?x=1"));
    let r = get(s.addr, "/redirect.php?permanent=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/target"));
    let r = get(s.addr, "/cookies.php");
    let cookies = r.headers_named("set-cookie");
    assert_eq!(cookies.len(), 2, "{:?}", r.headers);
    assert!(cookies[0].starts_with("a=1"));
    assert!(cookies[1].starts_with("b=2"));
    assert!(r.header("status").is_none());
}

#[test]
fn fatal_error_empty_output_and_exit() {
    let s = Server::start(&["--workers", "1"]);
    let r = get(s.addr, "/fatal.php");
    assert_eq!(r.status, 500);
    let r = get(s.addr, "/empty.php");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = get(s.addr, "/exit.php");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "before exit");
}

#[test]
fn big_response_is_intact() {
    let s = Server::start(&["--workers", "1"]);
    let r = get(s.addr, "/big.php");
    assert_eq!(r.status, 200);
    let mut block = Vec::new();
    for i in 0..1024u32 {
        block.push((i % 251) as u8);
    }
    let expected: Vec<u8> = block
        .iter()
        .copied()
        .cycle()
        .take(8 * 1024 * 1024)
        .collect();
    assert_eq!(r.body.len(), expected.len());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&expected));
}

#[test]
fn flushed_output_streams_to_the_client() {
    use std::io::{BufRead, BufReader, Write};
    let s = Server::start(&["--workers", "1"]);
    let mut c = http::connect(s.addr);
    c.write_all(b"GET /stream.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let start = Instant::now();
    let mut r = BufReader::new(c);
    let mut first_chunk_at = None;
    let mut all = String::new();
    let mut line = String::new();
    while r.read_line(&mut line).unwrap() > 0 {
        if line.contains("chunk 0") && first_chunk_at.is_none() {
            first_chunk_at = Some(start.elapsed());
        }
        all.push_str(&line);
        line.clear();
    }
    let total = start.elapsed();
    assert!(all.contains("chunk 2"), "{all}");
    let first = first_chunk_at.expect("first chunk seen");
    // The script sleeps 800 ms in all; the first chunk must not wait for the end.
    assert!(total >= Duration::from_millis(700), "total {total:?}");
    assert!(
        first + Duration::from_millis(500) < total,
        "first chunk at {first:?}, end at {total:?}"
    );
}

#[test]
fn http_1_0_and_keep_alive() {
    let s = Server::start(&["--workers", "1"]);
    let r = http::raw(s.addr, b"GET /env.php HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["server"]["SERVER_PROTOCOL"], "HTTP/1.0");
    // Several requests on one connection.
    use std::io::{BufReader, Write};
    let mut c = http::connect(s.addr);
    let mut reader = BufReader::new(c.try_clone().unwrap());
    for i in 0..5 {
        write!(c, "GET /hello.php?i={i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = http::read_response(&mut reader, false);
        assert_eq!(r.status, 200);
        assert!(r.text().starts_with("hello from /hello.php"));
    }
}

#[test]
fn fifty_concurrent_requests_on_four_workers() {
    let s = Server::start(&["--workers", "4"]);
    let addr = s.addr;
    let handles: Vec<_> = (0..50)
        .map(|i| std::thread::spawn(move || get(addr, &format!("/sleep.php?ms=50&i={i}"))))
        .collect();
    let mut pids = std::collections::HashSet::new();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        pids.insert(r.text().split_whitespace().last().unwrap().to_string());
    }
    assert!(
        pids.len() <= 4,
        "at most 4 worker processes served: {pids:?}"
    );
    assert!(crate::harness::zombies_of(s.pid()).is_empty());
    assert!(s.stop().success());
}

#[test]
fn user_ini_files_apply_per_directory() {
    let s = Server::start(&["--workers", "1"]);
    let r = get(s.addr, "/userini/show.php");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "77M", ".user.ini of the script's folder applies");
    let r = get(s.addr, "/userini/.user.ini");
    assert_eq!(r.status, 404, "and is never served");
}

const INI_PHP: &str = r#"<?php
echo json_encode([
    'loaded' => php_ini_loaded_file(),
    'scanned' => php_ini_scanned_files(),
    'scan_env' => getenv('PHP_INI_SCAN_DIR'),
    'memory_limit' => ini_get('memory_limit'),
]);
"#;

/// Both backends read php-cgi's php.ini by default (Debian: /etc/php/8.2/cgi), so a site
/// keeps its settings when the backend changes; `[php] ini_file` replaces it on both, like
/// php-cgi's `-c`.
#[test]
fn php_ini_is_php_cgi_s_by_default_and_ini_file_replaces_it() {
    let s = Server::start(&[]);
    std::fs::write(s.docroot.join("ini.php"), INI_PHP).unwrap();
    let j = get(s.addr, "/ini.php").json();
    if std::path::Path::new("/etc/php/8.2/cgi/php.ini").is_file() {
        assert_eq!(j["loaded"], "/etc/php/8.2/cgi/php.ini", "{j}");
        assert!(
            j["scanned"]
                .as_str()
                .is_some_and(|f| f.contains("/etc/php/8.2/cgi/conf.d/")),
            "{j}"
        );
    }
    assert_eq!(
        j["scan_env"], false,
        "workers' environment stays clean: {j}"
    );
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("site.ini");
    std::fs::write(&ini, "memory_limit = 77M\n").unwrap();
    let s = Server::with_config(&format!("[php]\nini_file = {:?}\n", ini.to_str().unwrap()));
    std::fs::write(s.docroot.join("ini.php"), INI_PHP).unwrap();
    let j = get(s.addr, "/ini.php").json();
    assert_eq!(j["loaded"], ini.to_str().unwrap(), "{j}");
    assert_eq!(j["memory_limit"], "77M", "{j}");
    assert!(s.stop().success());
}
