//! X-Sendfile and X-Accel-Redirect: a script names a file in `[[server.sendfile]]` folders
//! and Isola sends it as a static file (ranges, validators, compression) with the script's
//! headers, while the worker is already free; nothing outside those folders, no PHP source,
//! and no internal URL for clients.
use crate::harness::{fixture_site, Server};
use crate::http::{self, get, request};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A site with a private folder (outside the document root) and the config serving it.
struct Env {
    s: Server,
    /// The private folder, as configured.
    private: PathBuf,
    _dir: tempfile::TempDir,
}

const REPORT: &str = "%PDF-1.4 quarterly figures\n";

fn private_files(private: &Path, outside: &Path) {
    std::fs::create_dir_all(private.join("docs")).unwrap();
    std::fs::write(private.join("report.pdf"), REPORT).unwrap();
    std::fs::write(private.join("docs/notes.txt"), "0123456789abcdefghij").unwrap();
    std::fs::write(
        private.join("docs/big.css"),
        "body { color: black; }\n".repeat(400),
    )
    .unwrap();
    std::fs::write(private.join("secret.php"), "<?php // PHP-SOURCE-SECRET").unwrap();
    std::fs::write(private.join(".htpasswd"), "DOT-SECRET").unwrap();
    std::fs::write(outside.join("outside.txt"), "OUTSIDE-SECRET").unwrap();
    std::os::unix::fs::symlink(outside.join("outside.txt"), private.join("link.txt")).unwrap();
}

/// Serves the fixture site with `toml`, where `{private}` stands for the private folder.
fn serve(toml: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private");
    private_files(&private, dir.path());
    let site = fixture_site();
    // A folder of the same name in the document root stays unreachable too.
    std::fs::create_dir_all(site.path().join("protected")).unwrap();
    std::fs::write(site.path().join("protected/report.pdf"), "DOCROOT-COPY").unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, toml.replace("{private}", private.to_str().unwrap())).unwrap();
    let docroot = site.path().to_path_buf();
    let s = Server::start_in(&docroot, &["--config", cfg.to_str().unwrap()], Some(site));
    Env {
        s,
        private,
        _dir: dir,
    }
}

const CONFIG: &str =
    "[pool]\nmax_children = 1\n[[server.sendfile]]\npath = \"/protected/\"\ndir = \"{private}\"\n";

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/sendfile/send.php` naming `f` by header `h`, with `extra` request headers.
fn send(e: &Env, h: &str, f: &str, query: &str, extra: &[&str]) -> http::Response {
    request(
        e.s.addr,
        "GET",
        &format!("/sendfile/send.php?h={h}&f={}{query}", enc(f)),
        extra,
        b"",
    )
}

#[test]
fn accel_redirect_sends_the_file_with_the_scripts_headers() {
    let e = serve(CONFIG);
    let r = send(
        &e,
        "accel",
        "/protected/report.pdf",
        "&type=application/pdf",
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), REPORT);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"report.pdf\"")
    );
    assert_eq!(r.header("set-cookie"), Some("downloaded=1"));
    assert_eq!(r.header("cache-control"), Some("private, max-age=60"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        r.header("content-length"),
        Some(REPORT.len().to_string().as_str())
    );
    let etag = r.header("etag").unwrap();
    assert_ne!(etag, "\"from-php\"", "validators are the file's");
    assert_ne!(
        r.header("last-modified"),
        Some("Thu, 01 Jan 1970 00:00:00 GMT")
    );
    for gone in ["x-accel-redirect", "x-sendfile"] {
        assert_eq!(r.header(gone), None, "{gone} is for Isola only");
    }
    // The access log line says the body was the file.
    let id = r.header("x-request-id").unwrap().to_string();
    assert!(e
        .s
        .wait_for_log(&format!("id={id}"), Duration::from_secs(5)));
    let line =
        e.s.stdout_lines()
            .into_iter()
            .find(|l| l.contains(&format!("id={id}")))
            .unwrap();
    assert!(
        line.contains(&format!("\" 200 {} ", REPORT.len())) && line.ends_with(" sendfile"),
        "{line}"
    );
    // Without a type from the script, the file's own.
    let r = send(&e, "accel", "/protected/docs/notes.txt", "", &[]);
    assert_eq!(r.text(), "0123456789abcdefghij");
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{:?}",
        r.header("content-type")
    );
    // Percent-decoded and normalised like a request path; the query is ignored.
    let r = send(&e, "accel", "/protected//docs/./notes%2Etxt?x=1", "", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "0123456789abcdefghij");
}

#[test]
fn x_sendfile_sends_an_absolute_path_inside_the_folder() {
    let e = serve(CONFIG);
    let path = e.private.join("report.pdf");
    let r = send(
        &e,
        "sendfile",
        path.to_str().unwrap(),
        "&type=application/pdf",
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), REPORT);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"report.pdf\"")
    );
    // By its real path too (what PHP's realpath() gives), and by lighttpd's header name.
    let real = std::fs::canonicalize(e.private.join("docs/notes.txt")).unwrap();
    let r = send(&e, "lighttpd", real.to_str().unwrap(), "", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "0123456789abcdefghij");
}

#[test]
fn nothing_outside_the_folders_and_no_php_source_or_dotfiles_is_sent() {
    let e = serve(CONFIG);
    let p = |rest: &str| format!("{}{rest}", e.private.display());
    let outside = e.private.parent().unwrap().join("outside.txt");
    let cases: Vec<(&str, String)> = vec![
        ("accel", "/protected/../outside.txt".into()),
        ("accel", "/protected/%2e%2e/outside.txt".into()),
        ("accel", "/protected/link.txt".into()),
        ("accel", "/protected/secret.php".into()),
        ("accel", "/protected/.htpasswd".into()),
        ("accel", "/protected/docs".into()),
        ("accel", "/protected/docs/".into()),
        ("accel", "/sendfile/send.php".into()),
        ("accel", "/etc/passwd".into()),
        ("sendfile", p("/../outside.txt")),
        ("sendfile", p("/link.txt")),
        ("sendfile", p("/secret.php")),
        ("sendfile", p("/.htpasswd")),
        ("sendfile", outside.to_str().unwrap().into()),
        ("sendfile", "/etc/passwd".into()),
        ("sendfile", "report.pdf".into()),
    ];
    for (h, f) in &cases {
        let r = send(&e, h, f, "", &[]);
        assert_eq!(r.status, 404, "{h} {f}: {}", r.text());
        let body = r.text();
        for secret in [
            "OUTSIDE-SECRET",
            "PHP-SOURCE-SECRET",
            "DOT-SECRET",
            "PHP BODY",
            "root:",
        ] {
            assert!(!body.contains(secret), "{h} {f} leaked {secret}");
        }
    }
    assert!(
        e.s.wait_for_log("refused", Duration::from_secs(5)),
        "refusals are logged: {}",
        e.s.stderr()
    );
}

#[test]
fn without_a_configured_folder_the_header_is_dropped_not_acted_on() {
    let e = serve("[pool]\nmax_children = 1\n");
    let path = e.private.join("report.pdf");
    let r = send(&e, "sendfile", path.to_str().unwrap(), "", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "PHP BODY", "the script's own response");
    assert_eq!(r.header("x-sendfile"), None, "never shown to the client");
    let r = send(&e, "accel", "/protected/report.pdf", "", &[]);
    assert_eq!(r.text(), "PHP BODY");
    assert_eq!(r.header("x-accel-redirect"), None);
    assert!(e.s.wait_for_log("ignored", Duration::from_secs(5)));
    // Frameworks are not told to use it, whatever the client claims.
    let r = request(
        e.s.addr,
        "GET",
        "/env.php",
        &[
            "X-Sendfile-Type: X-Sendfile",
            "X-Accel-Mapping: /=/protected/",
        ],
        b"",
    );
    let j = r.json();
    assert!(j["server"].get("HTTP_X_SENDFILE_TYPE").is_none(), "{j}");
    assert!(j["server"].get("HTTP_X_ACCEL_MAPPING").is_none(), "{j}");
    // The internal prefix is only that where it is configured.
    assert_eq!(
        get(e.s.addr, "/protected/report.pdf").text(),
        "DOCROOT-COPY"
    );
}

#[test]
fn internal_urls_are_404_to_clients_and_frameworks_are_told_by_isola_alone() {
    let e = serve(CONFIG);
    for target in [
        "/protected/report.pdf",
        "/protected/",
        "/protected",
        "//protected/./report.pdf",
        "/%70rotected/report.pdf",
        "/sendfile/../protected/report.pdf",
    ] {
        let r = get(e.s.addr, target);
        assert_eq!(r.status, 404, "{target}");
        assert!(!r.text().contains("DOCROOT-COPY") && !r.text().contains("quarterly"));
    }
    let r = request(
        e.s.addr,
        "GET",
        "/env.php",
        &[
            "X-Sendfile-Type: X-Accel-Redirect",
            "X-Accel-Mapping: /=/protected/",
        ],
        b"",
    );
    let j = r.json();
    assert_eq!(j["server"]["HTTP_X_SENDFILE_TYPE"], "X-Sendfile");
    assert!(j["server"].get("HTTP_X_ACCEL_MAPPING").is_none(), "{j}");
}

#[test]
fn ranges_validators_compression_and_head_are_the_static_files() {
    let e = serve(CONFIG);
    let f = "/protected/docs/notes.txt";
    let r = send(&e, "accel", f, "", &["Range: bytes=2-5"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "2345");
    assert_eq!(r.header("content-range"), Some("bytes 2-5/20"));
    let r = send(&e, "accel", f, "", &["Range: bytes=100-"]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */20"));

    let etag = send(&e, "accel", f, "", &[])
        .header("etag")
        .unwrap()
        .to_string();
    let r = send(&e, "accel", f, "", &[&format!("If-None-Match: {etag}")]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("set-cookie"), Some("downloaded=1"));

    let css = "/protected/docs/big.css";
    let plain = send(&e, "accel", css, "", &[]);
    let z = send(&e, "accel", css, "", &["Accept-Encoding: gzip"]);
    assert_eq!(z.status, 200);
    assert_eq!(z.header("content-encoding"), Some("gzip"));
    assert!(
        z.body.len() < plain.body.len() / 5,
        "{} bytes",
        z.body.len()
    );
    let mut out = String::new();
    flate2::read::GzDecoder::new(&z.body[..])
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out.as_bytes(), &plain.body[..]);
    // A PDF is not compressed.
    let r = send(
        &e,
        "accel",
        "/protected/report.pdf",
        "&type=application/pdf",
        &["Accept-Encoding: gzip"],
    );
    assert_eq!(r.header("content-encoding"), None);

    let r = request(
        e.s.addr,
        "HEAD",
        &format!("/sendfile/send.php?h=accel&f={f}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("20"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"report.pdf\"")
    );
}

#[test]
fn cache_control_rules_apply_when_the_script_sets_none() {
    let e = serve(&format!(
        "{CONFIG}[[server.cache_control]]\npath = \"/protected/**\"\nvalue = \"private, max-age=3600\"\n"
    ));
    let r = send(&e, "accel", "/protected/report.pdf", "&nocache=1", &[]);
    assert_eq!(r.header("cache-control"), Some("private, max-age=3600"));
    let r = send(&e, "accel", "/protected/report.pdf", "", &[]);
    assert_eq!(
        r.header("cache-control"),
        Some("private, max-age=60"),
        "the script's wins"
    );
}

#[test]
fn the_worker_is_free_while_the_file_is_still_being_sent() {
    let e = serve(CONFIG);
    // Far more than socket buffers hold: the stream stays in flight while nobody reads it.
    let big = vec![b'x'; 64 * 1024 * 1024];
    std::fs::write(e.private.join("big.bin"), &big).unwrap();
    let mut slow = http::connect(e.s.addr);
    slow.write_all(
        b"GET /sendfile/send.php?h=accel&f=/protected/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut first = [0u8; 64];
    slow.read_exact(&mut first).unwrap();
    assert!(
        first.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    // One worker in the pool: the next script runs only if the download does not hold it.
    let started = Instant::now();
    let r = get(e.s.addr, "/env.php");
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
    // And the download is whole when read.
    let mut rest = Vec::new();
    slow.read_to_end(&mut rest).unwrap();
    let body_start = [&first[..], &rest[..]].concat();
    let split = body_start
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap();
    assert_eq!(body_start.len() - split - 4, big.len());
}

#[test]
fn symfony_binary_file_response_is_sent_by_isola() {
    let e = serve(CONFIG);
    let real = std::fs::canonicalize(e.private.join("docs/notes.txt")).unwrap();
    let target = format!("/sendfile/symfony.php?path={}", enc(real.to_str().unwrap()));
    // Whatever the client claims, Symfony is told X-Sendfile by Isola.
    let r = request(
        e.s.addr,
        "GET",
        &target,
        &[
            "X-Sendfile-Type: X-Accel-Redirect",
            "X-Accel-Mapping: /=/elsewhere/",
        ],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "0123456789abcdefghij");
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=report.txt")
    );
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.header("x-sendfile"), None);
    let r = request(e.s.addr, "GET", &target, &["Range: bytes=10-"], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "abcdefghij");
    // A file outside the folders is refused, not sent by PHP instead.
    let outside = e.private.parent().unwrap().join("outside.txt");
    let r = get(
        e.s.addr,
        &format!(
            "/sendfile/symfony.php?path={}",
            enc(outside.to_str().unwrap())
        ),
    );
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("OUTSIDE-SECRET"));
}

#[test]
fn a_bad_sendfile_entry_stops_the_server_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(
        dir.path().join("isola.toml"),
        "[server]\ndocroot = \"www\"\nlisten = \"127.0.0.1:0\"\n\
         [[server.sendfile]]\ndir = \"relative\"\n\
         [[server.sendfile]]\ndir = \"/nonexistent/private\"\n\
         [[server.sendfile]]\ndir = \"/tmp\"\npath = \"protected\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .args(["serve", "--config"])
        .arg(dir.path().join("isola.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "server.sendfile[0].dir: relative must be an absolute path",
        "server.sendfile[1].dir: /nonexistent/private is not a folder",
        "server.sendfile[2].path: \"protected\" must be a URL folder",
    ] {
        assert!(err.contains(want), "{want:?} missing from {err}");
    }
}

#[test]
fn a_script_that_goes_on_after_its_head_is_not_waited_for() {
    let e = serve(CONFIG);
    let started = Instant::now();
    let r = send(&e, "accel", "/protected/report.pdf", "&linger=1", &[]);
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), REPORT, "neither the early nor the late output");
    assert!(took < Duration::from_millis(700), "took {took:?}");
    // The worker finishes its script and serves again.
    for _ in 0..3 {
        assert_eq!(get(e.s.addr, "/env.php").status, 200);
    }
}
