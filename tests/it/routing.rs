//! Routing like a carefully configured nginx + php-fpm, and hostile paths. Every hostile
//! case checks the status and that no planted PHP marker was ever evaluated or leaked.
use crate::harness::Server;
use crate::http::{self, get};

fn never_executed(r: &http::Response) {
    let t = r.text();
    for marker in [
        "EVIL-EXECUTED",
        "SOURCE-EXECUTED",
        "SOURCE-LEAKED",
        "DOTENV-SECRET",
        "GIT-SECRET",
        "HIDDEN-SECRET",
        "root:x:0",
    ] {
        assert!(!t.contains(marker), "{marker} in response: {t}");
    }
}

#[test]
fn static_files_with_types() {
    let s = Server::start(&["--workers", "1"]);
    let r = get(s.addr, "/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.text(), "body { color: red; }\n");
    let r = get(s.addr, "/image.png");
    assert_eq!(r.header("content-type"), Some("image/png"));
    let r = get(s.addr, "/a%20b+c.txt");
    assert_eq!(r.status, 200, "space encoded, plus literal");
    assert_eq!(r.text(), "spaced file\n");
    let etag = get(s.addr, "/style.css")
        .header("etag")
        .unwrap()
        .to_string();
    let r = http::request(
        s.addr,
        "GET",
        "/style.css",
        &[&format!("If-None-Match: {etag}")],
        b"",
    );
    assert_eq!(r.status, 304);
    let r = http::request(s.addr, "GET", "/style.css", &["Range: bytes=0-3"], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "body");
    let r = http::request(s.addr, "POST", "/style.css", &[], b"x");
    assert_eq!(r.status, 405);
}

#[test]
fn directories_and_index_files() {
    let s = Server::start(&["--workers", "1"]);
    assert_eq!(get(s.addr, "/dir/").text(), "DIR-INDEX-PHP");
    assert!(get(s.addr, "/dir2/").text().contains("DIR2-INDEX-HTML"));
    assert_eq!(get(s.addr, "/dir3/").status, 403);
    let r = get(s.addr, "/dir?x=1&y=%20");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/dir/?x=1&y=%20"));
}

#[test]
fn front_controller_and_path_info() {
    let s = Server::start(&["--workers", "1"]);
    let r = get(s.addr, "/blog/%C3%A9t%C3%A9?x=%20y");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "FRONT-CONTROLLER uri=/blog/%C3%A9t%C3%A9?x=%20y script=/index.php"
    );
    assert_eq!(
        get(s.addr, "/missing.php").status,
        404,
        "a missing .php is 404, not the front controller"
    );
    let r = get(s.addr, "/env.php/extra/p%20ath?q=1");
    let j = r.json();
    assert_eq!(j["server"]["SCRIPT_NAME"], "/env.php");
    assert_eq!(j["server"]["PATH_INFO"], "/extra/p ath");
    assert_eq!(j["server"]["PHP_SELF"], "/env.php/extra/p ath");
    assert_eq!(j["server"]["REQUEST_URI"], "/env.php/extra/p%20ath?q=1");
    let r = get(s.addr, "/hello.php/uploads/evil.jpg");
    assert_eq!(
        r.text(),
        "hello from /hello.php path_info=/uploads/evil.jpg"
    );
    never_executed(&r);
}

#[test]
fn hostile_paths_are_refused() {
    let s = Server::start(&["--workers", "1"]);
    let cases: &[(&str, u16)] = &[
        ("/.env", 404),
        ("/.git/config", 404),
        ("/.hidden/x.txt", 404),
        ("/%2eenv", 404),
        ("/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/..%2f..%2fetc/passwd", 400),
        ("/a/../../etc/passwd", 400),
        ("/env.php%00.txt", 400),
        ("/uploads/evil.jpg/x.php", 404),
        ("/uploads/evil.jpg%00.php", 400),
        ("/lib.inc", 404),
        ("/x.phtml", 404),
        ("/x.phtml/y.php", 404),
        ("/%zz", 400),
    ];
    for (target, status) in cases {
        let r = get(s.addr, target);
        assert_eq!(r.status, *status, "{target}: {}", r.text());
        never_executed(&r);
    }
    // Like nginx's case-sensitive `\.php$`, a missing /ENV.PHP is not a PHP request: the
    // front controller gets it, and nothing else runs.
    let r = get(s.addr, "/ENV.PHP");
    assert!(r.text().starts_with("FRONT-CONTROLLER"), "{}", r.text());
    // The evil file is served as the image it claims to be, never run.
    let r = get(s.addr, "/uploads/evil.jpg");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert!(r.text().contains("<?php"), "served as bytes, not executed");
}

#[test]
fn no_exec_folders_never_run_php() {
    let site = crate::harness::fixture_site();
    std::fs::write(
        site.path().join("uploads/shell.php"),
        "<?php echo 'EVIL-EXECUTED';",
    )
    .unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, "[server]\nno_exec = [\"uploads/\"]\n").unwrap();
    let s = Server::start_in(site.path(), &["--config", cfg.to_str().unwrap()], None);
    let r = get(s.addr, "/uploads/shell.php");
    assert_eq!(r.status, 403);
    never_executed(&r);
    drop(site);
}

#[test]
fn malformed_requests_get_400() {
    let s = Server::start(&["--workers", "1"]);
    let cases: &[&[u8]] = &[
        b"GET /hello.php HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /hello.php HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        b"GET /hello.php HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ];
    for raw in cases {
        let r = http::raw(s.addr, raw);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(raw));
    }
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let r = http::raw(s.addr, big.as_bytes());
    assert!(
        r.status == 431 || r.status == 400,
        "oversized head: {}",
        r.status
    );
}

#[test]
fn precompressed_siblings_are_chosen_by_accept_encoding() {
    let site = crate::harness::fixture_site();
    std::fs::write(site.path().join("style.css.br"), "BR-BYTES").unwrap();
    std::fs::write(site.path().join("style.css.gz"), "GZ-BYTES").unwrap();
    let docroot = site.path().to_path_buf();
    let s = Server::start_in(&docroot, &["--workers", "1"], Some(site));
    let r = http::request(
        s.addr,
        "GET",
        "/style.css",
        &["Accept-Encoding: gzip, br"],
        b"",
    );
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.text(), "BR-BYTES");
    let r = http::request(s.addr, "GET", "/style.css", &["Accept-Encoding: gzip"], b"");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.text(), "GZ-BYTES");
    let plain = get(s.addr, "/style.css");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(plain.text(), "body { color: red; }\n");
    assert_ne!(
        plain.header("etag"),
        r.header("etag"),
        "each representation has its own ETag"
    );
}

/// A precompressed sibling is the file next to the original, never a symlink planted there:
/// one pointing out of the document root would serve what lies outside it.
#[test]
fn a_symlinked_precompressed_sibling_is_not_followed() {
    let site = crate::harness::fixture_site();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.gz");
    std::fs::write(&secret, "OUTSIDE-SECRET").unwrap();
    std::os::unix::fs::symlink(&secret, site.path().join("style.css.gz")).unwrap();
    let docroot = site.path().to_path_buf();
    let s = Server::start_in(&docroot, &["--workers", "1"], Some(site));
    let r = http::request(s.addr, "GET", "/style.css", &["Accept-Encoding: gzip"], b"");
    assert_eq!(r.status, 200);
    assert!(
        !r.text().contains("OUTSIDE-SECRET"),
        "followed a sibling symlink"
    );
    assert_eq!(
        r.header("content-encoding"),
        None,
        "too small to compress on the fly"
    );
    assert_eq!(r.text(), "body { color: red; }\n");
    let plain = get(s.addr, "/style.css");
    assert_eq!(plain.text(), "body { color: red; }\n");
}

/// Editor, backup and package-manager copies of a script are 404 however they are reached,
/// and an `allow` pattern opens exactly the copies it names.
#[test]
fn php_backup_copies_are_never_served() {
    let site = crate::harness::fixture_site();
    let copies = [
        "index.php~",
        "#index.php#",
        "index.php.swp",
        "index.php.bak",
        "index.php.old",
        "index.php.orig",
        "index.php.save",
        "index.php.dpkg-dist",
        "index.php.1",
        "index.php.txt",
        "index.php___jb_old___",
        ".index.php.swp",
        ".index.php.Xa81Zq",
        "kept.php.bak",
    ];
    let source = "<?php echo 'hi'; // SOURCE-LEAKED\n";
    for f in copies {
        std::fs::write(site.path().join(f), source).unwrap();
    }
    std::fs::write(site.path().join("chart.php.png"), "PNG-BYTES").unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, "[server]\nallow = [\"/kept.php.bak\"]\n").unwrap();
    let s = Server::start_in(site.path(), &["--config", cfg.to_str().unwrap()], None);
    for target in [
        "/index.php~",
        "/index.php%7e",
        "/index.php%7E",
        "/%23index.php%23",
        "/index.php.swp",
        "/index.php.bak",
        "/index.php.old",
        "/index.php.orig",
        "/index.php.save",
        "/index.php.dpkg-dist",
        "/index.php.1",
        "/index.php.txt",
        "/index.php___jb_old___",
        "/.index.php.swp",
        "/.index.php.Xa81Zq",
        "/static/../index.php.bak",
        "/hello.php/../index.php~",
        "/dir/..%2findex.php.bak",
    ] {
        let r = get(s.addr, target);
        assert_eq!(r.status, 404, "{target}: {}", r.text());
        never_executed(&r);
    }
    let r = get(s.addr, "/kept.php.bak");
    assert_eq!(r.status, 200, "allow overrides the rule");
    assert!(r.text().contains("SOURCE-LEAKED"));
    assert_eq!(get(s.addr, "/chart.php.png").text(), "PNG-BYTES");
    assert_eq!(get(s.addr, "/style.css").status, 200);
    assert!(get(s.addr, "/index.php")
        .text()
        .starts_with("FRONT-CONTROLLER"));
    drop(site);
}
