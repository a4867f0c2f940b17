//! Differential conformance: the same requests to Isola and to a real nginx + php-fpm set up
//! exactly as Debian ships them (`snippets/fastcgi-php.conf`, `fastcgi.conf`, and
//! `try_files $uri $uri/ /index.php?$query_string;`), with the same document root.
//!
//! Compared: status, Content-Type, Location (as the URL it resolves to), the Set-Cookie list,
//! and the body; for the env-dump script, the CGI variables PHP sees. Every place where Isola
//! deliberately differs is a [`Deviation`] below with its reason, and is itself checked: a
//! listed deviation that no longer differs fails the test, so the list stays true.
//!
//! The reference stack runs from its own temp folder (configs, sockets, pid files, logs, temp
//! paths) on a free loopback port, and is always stopped. The test is skipped, with a message,
//! only when nginx or php-fpm is not installed.
use crate::harness::{fixture_site, wait_timeout, Server};
use crate::http::{self, Response};
use serde_json::Value;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";
const FPM_CANDIDATES: &[&str] = &["/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm"];

/// What a case's response is compared on.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// Status, Content-Type, Location, Set-Cookie and the exact body.
    Plain,
    /// A page the web server itself makes (an error page, a directory redirect): its wording
    /// is each server's own, so status and Location only.
    ServerPage,
    /// The env dump (env.php, or index.php which includes it): status, Content-Type and the
    /// CGI variables and request data PHP saw.
    Env,
}

/// One request, sent byte for byte the same to both servers.
struct Case {
    name: &'static str,
    kind: Kind,
    raw: Vec<u8>,
}

fn case(
    name: &'static str,
    kind: Kind,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &[u8],
) -> Case {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut raw = req.into_bytes();
    raw.extend_from_slice(body);
    Case { name, kind, raw }
}

fn get(name: &'static str, kind: Kind, target: &str) -> Case {
    case(name, kind, "GET", target, &[], b"")
}

fn raw_case(name: &'static str, kind: Kind, raw: &[u8]) -> Case {
    Case {
        name,
        kind,
        raw: raw.to_vec(),
    }
}

fn cases() -> Vec<Case> {
    use Kind::*;
    let chunked = b"POST /env.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    vec![
        // Scripts and what PHP sees.
        get("env plain", Env, "/env.php"),
        get(
            "env query",
            Env,
            "/env.php?a[]=1&a[]=2&b=1&b=2&sp=%20x&plus=a+b&empty&=v",
        ),
        get("env bare ?", Env, "/env.php?"),
        get("env path_info", Env, "/env.php/extra/p%20ath?q=1"),
        get("env path_info plus", Env, "/env.php/a+b/c%2Bd"),
        get("env path_info utf8", Env, "/env.php/%C3%A9t%C3%A9"),
        get("env double slash", Env, "/env.php//double//slash"),
        case(
            "env headers",
            Env,
            "GET",
            "/env.php",
            &[
                "X-Custom: yes",
                "X-Multi-Word-Header: a, b",
                "Accept: text/html",
                "User-Agent: conformance/1",
                "X_Under: spoof",
            ],
            b"",
        ),
        case(
            "env cookie",
            Env,
            "GET",
            "/env.php",
            &["Cookie: c1=one; c2=two"],
            b"",
        ),
        case(
            "env cookie lines",
            Env,
            "GET",
            "/env.php",
            &["Cookie: c1=one", "Cookie: c2=two"],
            b"",
        ),
        case(
            "env repeated accept",
            Env,
            "GET",
            "/env.php",
            &["Accept: text/html", "Accept: */*"],
            b"",
        ),
        case(
            "env httpoxy",
            Env,
            "GET",
            "/env.php",
            &["Proxy: http://evil.example"],
            b"",
        ),
        case(
            "env incoming request id",
            Env,
            "GET",
            "/env.php",
            &["X-Request-Id: trace-42"],
            b"",
        ),
        case(
            "env post urlencoded",
            Env,
            "POST",
            "/env.php?q=1",
            &["Content-Type: application/x-www-form-urlencoded"],
            b"name=Ada+L&x=%26y&arr[]=1&arr[]=2",
        ),
        case(
            "env post json",
            Env,
            "POST",
            "/env.php",
            &["Content-Type: application/json"],
            br#"{"k":[1,2,3]}"#,
        ),
        case("env post empty", Env, "POST", "/env.php", &[], b""),
        case(
            "env put",
            Env,
            "PUT",
            "/env.php",
            &["Content-Type: application/octet-stream"],
            b"payload\x00\xff",
        ),
        case("env delete", Env, "DELETE", "/env.php", &[], b""),
        case(
            "env patch",
            Env,
            "PATCH",
            "/env.php",
            &["Content-Type: text/plain"],
            b"patch",
        ),
        case(
            "env multipart",
            Env,
            "POST",
            "/env.php",
            &["Content-Type: multipart/form-data; boundary=XyZzY"],
            &http::multipart(
                "XyZzY",
                &[
                    ("title", None, b"two files"),
                    ("f1", Some("a.txt"), b"hello"),
                    ("f2", Some("b.bin"), &[0u8, 1, 2, 255]),
                ],
            ),
        ),
        raw_case("env chunked body", Env, chunked),
        raw_case(
            "env http/1.0",
            Env,
            b"GET /env.php?v=10 HTTP/1.0\r\nHost: localhost\r\n\r\n",
        ),
        // Front controller (index.php is the env dump on this site) and index files.
        get("front root", Env, "/"),
        get("front root query", Env, "/?page=2"),
        get("front pretty url", Env, "/blog/%C3%A9t%C3%A9?x=%20y"),
        get("front pretty url plus", Env, "/tag/c++/a%2Fb"),
        get("front missing static", Env, "/missing.css"),
        get("front deep slash", Env, "/deep/er/path/"),
        get("front uppercase PHP", Env, "/ENV.PHP"),
        get("front index.php direct", Env, "/index.php/some/path?z=1"),
        get("missing php", ServerPage, "/missing.php"),
        get("missing php path_info", ServerPage, "/missing.php/x"),
        get("dir index.php", Plain, "/dir/"),
        get("dir index.php query", Plain, "/dir/?x=1"),
        get("dir2 index.html", Plain, "/dir2/"),
        get("dir3 no index", ServerPage, "/dir3/"),
        get("dir redirect", ServerPage, "/dir?x=1&y=%20"),
        get("dir redirect no query", ServerPage, "/dir2"),
        // PHP's own responses.
        get("hello", Plain, "/hello.php"),
        get("hello path_info", Plain, "/hello.php/extra/path"),
        get("hello path_info evil", Plain, "/hello.php/uploads/evil.jpg"),
        get("status 404", Plain, "/status.php?code=404"),
        get("status 500", Plain, "/status.php?code=500"),
        get("status 418", Plain, "/status.php?code=418"),
        get("status 201", Plain, "/status.php?code=201"),
        get("redirect 302", Plain, "/redirect.php"),
        get("redirect 301", Plain, "/redirect.php?permanent=1"),
        get("redirect bare location", Plain, "/redirect.php?bare=1"),
        get("no content type", Plain, "/notype.php"),
        get(
            "php header status-line",
            Plain,
            "/headers.php?case=status-line",
        ),
        get(
            "php header status-header",
            Plain,
            "/headers.php?case=status-header",
        ),
        get(
            "php header te-chunked",
            Plain,
            "/headers.php?case=te-chunked",
        ),
        get("php header cl-short", Plain, "/headers.php?case=cl-short"),
        get("php header cl-long", Plain, "/headers.php?case=cl-long"),
        get(
            "php header no-content",
            Plain,
            "/headers.php?case=no-content",
        ),
        get(
            "php header not-modified",
            Plain,
            "/headers.php?case=not-modified",
        ),
        get(
            "php header connection",
            Plain,
            "/headers.php?case=connection",
        ),
        get("php header multi", Plain, "/headers.php?case=multi"),
        get(
            "php header big-header",
            Plain,
            "/headers.php?case=big-header",
        ),
        get("complete early", Plain, "/finish.php?ms=10"),
        get("encoded slash to script", Plain, "/dir%2Findex.php"),
        get("static then path", Env, "/style.css/x"),
        get("cookies", Plain, "/cookies.php"),
        get("empty", Plain, "/empty.php"),
        get("exit", Plain, "/exit.php"),
        get("fatal", Plain, "/fatal.php"),
        get("big", Plain, "/big.php"),
        case("head script", Plain, "HEAD", "/hello.php", &[], b""),
        case("head static", Plain, "HEAD", "/style.css", &[], b""),
        // Static files.
        get("static css", Plain, "/style.css"),
        get("static png", Plain, "/image.png"),
        get("static spaces plus", Plain, "/a%20b+c.txt"),
        get("static html", Plain, "/dir2/index.html"),
        get("static evil jpg", Plain, "/uploads/evil.jpg"),
        // Hostile or private paths.
        get("dotenv", ServerPage, "/.env"),
        get("git config", ServerPage, "/.git/config"),
        get("dot dir", ServerPage, "/.hidden/x.txt"),
        get("php source inc", ServerPage, "/lib.inc"),
        get("php source phtml", ServerPage, "/x.phtml"),
        get("phtml then php", ServerPage, "/x.phtml/y.php"),
        get("evil jpg as php dir", ServerPage, "/uploads/evil.jpg/x.php"),
        get("evil jpg nul php", ServerPage, "/uploads/evil.jpg%00.php"),
        get("nul in script", ServerPage, "/env.php%00.txt"),
        get(
            "traversal encoded dots",
            ServerPage,
            "/%2e%2e/%2e%2e/etc/passwd",
        ),
        get(
            "traversal encoded slashes",
            ServerPage,
            "/..%2f..%2fetc/passwd",
        ),
        get("traversal plain", ServerPage, "/a/../../etc/passwd"),
        get("dot segments inside", Env, "/dir/../env.php?dots=1"),
        get("bad escape", ServerPage, "/%zz"),
        get("trailing dot", Env, "/env.php."),
        get("trailing encoded space", Env, "/env.php%20"),
        get("uppercase extension", Env, "/env.PHP"),
        get("encoded slash static", Plain, "/dir2%2Findex.html"),
        get("raw utf8 and percent in query", Env, "/env.php?q=caf\u{e9}&p=100%&s=a%2Bb"),
        get("long query", Env, &format!("/env.php?long={}", "x".repeat(8000))),
        raw_case(
            "absolute-form target",
            Env,
            b"GET http://localhost/env.php?abs=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ),
        raw_case(
            "other host",
            Env,
            b"GET /env.php HTTP/1.1\r\nHost: Example.COM:8080\r\nConnection: close\r\n\r\n",
        ),
        raw_case(
            "obs-text header",
            Env,
            b"GET /env.php HTTP/1.1\r\nHost: localhost\r\nX-Latin: caf\xe9\r\nConnection: close\r\n\r\n",
        ),
    ]
}

/// An aspect of a response that two servers may differ on.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Aspect {
    Status,
    ContentType,
    Body,
    /// A CGI variable (`$_SERVER[...]`) in the env dump.
    Var(&'static str),
}

/// Which differences a [`Deviation`] covers.
#[derive(Clone, Copy, Debug)]
enum Scope {
    /// The servers give different answers altogether (different status, or a different
    /// script ran): every difference in the case.
    Whole,
    /// Only this aspect.
    Only(Aspect),
}

/// A place where Isola deliberately answers differently from Debian's nginx + php-fpm. The
/// difference must exist (else the entry is stale) and Isola's side must pass `isola`, which
/// gets (the case's name, nginx's response, Isola's response).
struct Deviation {
    cases: &'static [&'static str],
    scope: Scope,
    reason: &'static str,
    isola: fn(&str, &Response, &Response) -> bool,
}

fn status_is(r: &Response, code: u16) -> bool {
    r.status == code
}

fn server_var(r: &Response, k: &str) -> Option<String> {
    serde_json::from_slice::<Value>(&r.body).ok()?["server"][k]
        .as_str()
        .map(str::to_string)
}

/// The script Isola ran and the PATH_INFO it gave, from the env dump.
fn ran_with_path_info(r: &Response, script: &str, path_info: &str) -> bool {
    server_var(r, "SCRIPT_NAME").as_deref() == Some(script)
        && server_var(r, "PATH_INFO").as_deref() == Some(path_info)
        && server_var(r, "PHP_SELF") == Some(format!("{script}{path_info}"))
}

const DEVIATIONS: &[Deviation] = &[
    Deviation {
        cases: &["php header big-header"],
        scope: Scope::Whole,
        reason: "a 20 KB response header: nginx's default fastcgi_buffer_size (one memory page) cannot hold \
                 it and answers 502; Isola accepts a CGI head up to 64 KiB",
        isola: |_, _, o| o.status == 200 && o.header("x-big").is_some_and(|v| v.len() == 20000),
    },
    Deviation {
        cases: &["php header cl-long"],
        scope: Scope::Only(Aspect::Body),
        reason: "the script declares Content-Length: 100 but ends its FastCGI request after 9 bytes: nginx relays \
                 the false length and cuts the connection (the client sees a broken response); Isola has the \
                 whole body when the request ends and sends it with its true length",
        isola: |_, _, o| !o.truncated && o.text() == "only this" && o.header("content-length") == Some("9"),
    },
    Deviation {
        cases: &["other host"],
        scope: Scope::Only(Aspect::Var("SERVER_NAME")),
        reason: "nginx's SERVER_NAME is its configured server_name; Isola has no server_name setting and gives \
                 the request's host without the port, as Apache does with UseCanonicalName Off",
        isola: |_, _, o| server_var(o, "SERVER_NAME").is_some_and(|n| n.eq_ignore_ascii_case("example.com")),
    },
    Deviation {
        cases: &["dotenv", "git config", "dot dir"],
        scope: Scope::Whole,
        reason: "nginx serves dotfiles and dot-directories by default (here .env and .git/config with their \
                 secrets, 200); Isola never serves them (404)",
        isola: |_, _, o| status_is(o, 404),
    },
    Deviation {
        cases: &["php source inc", "php source phtml"],
        scope: Scope::Whole,
        reason: "nginx serves lib.inc and x.phtml as plain files, leaking PHP source; Isola neither serves nor \
                 runs PHP source (404)",
        isola: |_, _, o| status_is(o, 404),
    },
    Deviation {
        cases: &[
            "env path_info",
            "env path_info plus",
            "env path_info utf8",
            "env double slash",
            "front index.php direct",
        ],
        scope: Scope::Whole,
        reason: "Debian's `location ~ \\.php$` never matches /script.php/extra (the URI does not end in .php), so \
                 nginx hands it to the front controller and the PATH_INFO split of fastcgi-php.conf never \
                 happens; Isola runs script.php with PATH_INFO, as that snippet intends",
        isola: |case, _, o| match case {
            "env path_info" => ran_with_path_info(o, "/env.php", "/extra/p ath"),
            "env path_info plus" => ran_with_path_info(o, "/env.php", "/a+b/c+d"),
            "env path_info utf8" => ran_with_path_info(o, "/env.php", "/\u{e9}t\u{e9}"),
            "env double slash" => ran_with_path_info(o, "/env.php", "/double/slash"),
            _ => ran_with_path_info(o, "/index.php", "/some/path"),
        },
    },
    Deviation {
        cases: &["hello path_info", "hello path_info evil"],
        scope: Scope::Whole,
        reason: "as above: nginx runs the front controller for /hello.php/extra; Isola runs hello.php with \
                 PATH_INFO (and never the .jpg named in the PATH_INFO)",
        isola: |case, _, o| {
            let path_info = if case == "hello path_info" { "/extra/path" } else { "/uploads/evil.jpg" };
            o.status == 200 && o.text() == format!("hello from /hello.php path_info={path_info}")
        },
    },
    Deviation {
        cases: &["missing php path_info"],
        scope: Scope::Whole,
        reason: "as above, nginx gives /missing.php/x to the front controller; for Isola it names a script that \
                 does not exist, and a missing *.php is 404, as nginx answers for /missing.php itself",
        isola: |_, _, o| status_is(o, 404),
    },
    Deviation {
        cases: &["env cookie lines"],
        scope: Scope::Whole,
        reason: "nginx 1.22 passes each Cookie line as its own HTTP_COOKIE param and PHP keeps only the last, \
                 losing cookies; Isola joins them with \"; \", as nginx 1.23+ does",
        isola: |_, _, o| server_var(o, "HTTP_COOKIE").as_deref() == Some("c1=one; c2=two"),
    },
    Deviation {
        cases: &["env repeated accept"],
        scope: Scope::Only(Aspect::Var("HTTP_ACCEPT")),
        reason: "nginx 1.22 passes each Accept line as its own param and PHP keeps one; Isola joins repeated \
                 headers with \", \" (RFC 9110 5.3), as nginx 1.23+ does",
        isola: |_, _, o| server_var(o, "HTTP_ACCEPT").as_deref() == Some("text/html, */*"),
    },
    Deviation {
        cases: &[
            "env post urlencoded",
            "env post json",
            "env put",
            "env patch",
            "env multipart",
            "env chunked body",
        ],
        scope: Scope::Only(Aspect::Var("HTTP_CONTENT_TYPE")),
        reason: "nginx also passes Content-Type as HTTP_CONTENT_TYPE; Isola gives it only as CONTENT_TYPE, as \
                 RFC 3875 4.1.18 recommends and Apache does",
        isola: |_, t, o| {
            server_var(o, "HTTP_CONTENT_TYPE").is_none()
                && server_var(o, "CONTENT_TYPE") == server_var(t, "CONTENT_TYPE")
        },
    },
    Deviation {
        cases: &[
            "env post urlencoded",
            "env post json",
            "env post empty",
            "env put",
            "env patch",
            "env multipart",
        ],
        scope: Scope::Only(Aspect::Var("HTTP_CONTENT_LENGTH")),
        reason: "nginx also passes Content-Length as HTTP_CONTENT_LENGTH; Isola gives it only as \
                 CONTENT_LENGTH (RFC 3875 4.1.18, Apache)",
        isola: |_, t, o| {
            server_var(o, "HTTP_CONTENT_LENGTH").is_none()
                && server_var(o, "CONTENT_LENGTH") == server_var(t, "CONTENT_LENGTH")
        },
    },
    Deviation {
        cases: &[
            "static css",
            "head static",
            "static spaces plus",
            "static html",
            "dir2 index.html",
            "encoded slash static",
        ],
        scope: Scope::Only(Aspect::ContentType),
        reason: "Isola labels static text files UTF-8 (as nginx does with `charset utf-8;`, which Debian leaves \
                 off); the media type is the same",
        isola: |_, t, o| {
            t.header("content-type").map(|v| format!("{v}; charset=utf-8")).as_deref()
                == o.header("content-type")
        },
    },
];

#[test]
fn isola_matches_nginx_php_fpm() {
    let Some(fpm) = FPM_CANDIDATES.iter().map(Path::new).find(|p| p.exists()) else {
        eprintln!("SKIPPED conformance: php-fpm is not installed (looked for {FPM_CANDIDATES:?}); scripts/setup --test installs it");
        return;
    };
    if !Path::new(NGINX).exists() {
        eprintln!("SKIPPED conformance: nginx is not installed at {NGINX}; scripts/setup --test installs it");
        return;
    }
    let names: Vec<&str> = cases().iter().map(|c| c.name).collect();
    for d in DEVIATIONS {
        for c in d.cases {
            assert!(names.contains(c), "DEVIATIONS names an unknown case {c:?}");
        }
    }
    let site = fixture_site();
    let docroot = site.path().canonicalize().unwrap();
    // The front controller dumps the environment too, so front-controller requests can be
    // compared variable by variable.
    std::fs::write(
        docroot.join("index.php"),
        "<?php require __DIR__ . '/env.php';\n",
    )
    .unwrap();

    let reference = Reference::start(fpm, &docroot);
    let isola = Server::start_in(&docroot, &["--workers", "2"], None);

    let mut report = String::new();
    // (deviation, case) pairs that were seen to differ.
    let mut seen: Vec<(usize, &str)> = Vec::new();
    for c in cases() {
        let theirs = send(reference.addr, &c.raw);
        let ours = send(isola.addr, &c.raw);
        let mut found: Vec<(Aspect, String)> = Vec::new();
        compare(&c, &theirs, &ours, &docroot, &mut found);
        never_leaks(&c, &ours);
        for (aspect, detail) in found {
            let covering = DEVIATIONS.iter().position(|d| {
                d.cases.contains(&c.name)
                    && match d.scope {
                        Scope::Whole => true,
                        Scope::Only(a) => a == aspect,
                    }
            });
            match covering {
                Some(i) => {
                    let d = &DEVIATIONS[i];
                    if !seen.contains(&(i, c.name)) {
                        seen.push((i, c.name));
                        eprintln!("conformance: {:?}: deliberate: {}", c.name, d.reason);
                        if !(d.isola)(c.name, &theirs, &ours) {
                            writeln!(
                                report,
                                "- {:?}: a deliberate deviation ({}), but Isola's answer is not the intended one: \
                                 {} {:?} {:?}",
                                c.name,
                                d.reason,
                                ours.status,
                                ours.header("content-type"),
                                tail(&ours.text(), 400)
                            )
                            .unwrap();
                        }
                    }
                    eprintln!("  {aspect:?}: {}", tail(&detail, 200));
                }
                None => writeln!(report, "- {:?} {aspect:?}: {detail}", c.name).unwrap(),
            }
        }
    }
    for (i, d) in DEVIATIONS.iter().enumerate() {
        for c in d.cases {
            if !seen.contains(&(i, c)) {
                writeln!(
                    report,
                    "- {c:?} {:?}: listed as a deliberate deviation but both servers now agree; update DEVIATIONS",
                    d.scope
                )
                .unwrap();
            }
        }
    }
    assert!(
        report.is_empty(),
        "Isola differs from nginx + php-fpm (left: nginx + php-fpm, right: Isola):\n{report}\nIsola stderr:\n{}\nnginx error log:\n{}",
        tail(&isola.stderr(), 4000),
        tail(&reference.error_log(), 4000)
    );
}

/// Sends one request on a fresh connection and reads one response (bounded by the client's
/// socket timeouts).
fn send(addr: SocketAddr, raw: &[u8]) -> Response {
    http::raw_lenient(addr, raw)
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// Response bodies from Isola never contain planted secrets or output of code that must
/// never run, whatever the status.
fn never_leaks(c: &Case, ours: &Response) {
    let t = ours.text();
    for marker in [
        "SOURCE-EXECUTED",
        "SOURCE-LEAKED",
        "DOTENV-SECRET",
        "GIT-SECRET",
        "HIDDEN-SECRET",
        "root:x:0",
    ] {
        assert!(
            !t.contains(marker),
            "{:?}: Isola's response contains {marker}: {t}",
            c.name
        );
    }
    if c.name != "static evil jpg" {
        assert!(
            !t.contains("EVIL-EXECUTED"),
            "{:?}: Isola's response contains EVIL-EXECUTED: {t}",
            c.name
        );
    }
}

/// A Location as the URL it points to: nginx makes relative redirects absolute
/// (`absolute_redirect on`) with its own port; `http://localhost:PORT/x` and `/x` name the
/// same resource for the client that sent `Host: localhost`.
fn location(r: &Response) -> Option<String> {
    let l = r.header("location")?;
    if let Some(rest) = l.strip_prefix("http://localhost") {
        let rest = rest
            .strip_prefix(':')
            .map_or(rest, |p| p.trim_start_matches(|c: char| c.is_ascii_digit()));
        return Some(rest.to_string());
    }
    Some(l.to_string())
}

fn compare(
    c: &Case,
    theirs: &Response,
    ours: &Response,
    docroot: &Path,
    found: &mut Vec<(Aspect, String)>,
) {
    if theirs.status != ours.status {
        found.push((
            Aspect::Status,
            format!("{} vs {}", theirs.status, ours.status),
        ));
        // Different outcomes: the rest would only repeat the difference.
        return;
    }
    if location(theirs) != location(ours) {
        found.push((
            Aspect::Body,
            format!("Location {:?} vs {:?}", location(theirs), location(ours)),
        ));
    }
    if c.kind == Kind::ServerPage {
        return;
    }
    if theirs.truncated != ours.truncated {
        found.push((
            Aspect::Body,
            format!("body cut short: {} vs {}", theirs.truncated, ours.truncated),
        ));
    }
    let (ct_t, ct_o) = (theirs.header("content-type"), ours.header("content-type"));
    if ct_t != ct_o {
        found.push((Aspect::ContentType, format!("{ct_t:?} vs {ct_o:?}")));
    }
    let (ck_t, ck_o) = (
        theirs.headers_named("set-cookie"),
        ours.headers_named("set-cookie"),
    );
    if ck_t != ck_o {
        found.push((Aspect::Body, format!("Set-Cookie {ck_t:?} vs {ck_o:?}")));
    }
    match c.kind {
        Kind::Plain => {
            if theirs.body != ours.body {
                found.push((
                    Aspect::Body,
                    format!(
                        "body ({} bytes) {:?} vs ({} bytes) {:?}",
                        theirs.body.len(),
                        tail(&theirs.text(), 300),
                        ours.body.len(),
                        tail(&ours.text(), 300)
                    ),
                ));
            }
        }
        Kind::Env => compare_env(theirs, ours, docroot, found),
        Kind::ServerPage => {}
    }
}

/// CGI variables compared one by one; absent and empty are different (`isset()` tells them
/// apart). Everything else in `$_SERVER` legitimately differs (ports, SERVER_SOFTWARE,
/// request ids and times, FCGI_ROLE, ORIG_*, the worker's environment) and is not compared.
const VARS: &[&str] = &[
    "REQUEST_URI",
    "QUERY_STRING",
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PHP_SELF",
    "DOCUMENT_ROOT",
    "DOCUMENT_URI",
    "REQUEST_METHOD",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_PROTOCOL",
    "GATEWAY_INTERFACE",
    "REDIRECT_STATUS",
    "REQUEST_SCHEME",
    "SERVER_NAME",
    "SERVER_ADDR",
    "REMOTE_ADDR",
    "HTTPS",
];

/// Request ids and the trace context (made when the client sent none) are Isola's own
/// additions (README: "What PHP sees").
const IGNORED_HTTP: &[&str] = &["HTTP_X_REQUEST_ID", "HTTP_TRACEPARENT"];

fn compare_env(
    theirs: &Response,
    ours: &Response,
    docroot: &Path,
    found: &mut Vec<(Aspect, String)>,
) {
    let parse = |r: &Response| serde_json::from_slice::<Value>(&r.body).ok();
    let (Some(t), Some(o)) = (parse(theirs), parse(ours)) else {
        found.push((
            Aspect::Body,
            format!(
                "env dump not JSON: {:?} vs {:?}",
                tail(&theirs.text(), 300),
                tail(&ours.text(), 300)
            ),
        ));
        return;
    };
    let root = docroot.to_str().unwrap();
    let var = |j: &Value, k: &str| -> Option<String> {
        let v = j["server"].get(k)?;
        let s = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // SCRIPT_FILENAME relative to the docroot, so the comparison says what ran.
        Some(if k == "SCRIPT_FILENAME" {
            s.strip_prefix(root)
                .map_or(s.clone(), |r| format!("$DOCROOT{r}"))
        } else {
            s
        })
    };
    let mut names: Vec<&str> = VARS.to_vec();
    let http_names = |j: &Value| -> Vec<String> {
        j["server"]
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| k.starts_with("HTTP_"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut http: Vec<String> = http_names(&t);
    http.extend(http_names(&o));
    http.sort();
    http.dedup();
    let http: Vec<&'static str> = http
        .into_iter()
        .filter(|h| !IGNORED_HTTP.contains(&h.as_str()))
        .map(|h| &*Box::leak(h.into_boxed_str()))
        .collect();
    names.extend(http);
    for k in names {
        let (a, b) = (var(&t, k), var(&o, k));
        if a != b {
            found.push((Aspect::Var(k), format!("{a:?} vs {b:?}")));
        }
    }
    for k in [
        "get",
        "post",
        "cookie",
        "files",
        "input_len",
        "input_sha256",
    ] {
        if t[k] != o[k] {
            found.push((Aspect::Body, format!("{k}: {} vs {}", t[k], o[k])));
        }
    }
}

/// nginx + php-fpm running from a private folder; stopped (and waited for) on drop.
struct Reference {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    nginx: Option<Child>,
    fpm: Option<Child>,
}

impl Reference {
    fn start(fpm_bin: &Path, docroot: &Path) -> Reference {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let root = nix::unistd::Uid::effective().is_root();
        let sock = d.join("fpm.sock");

        // php-fpm: one static pool of 2 children on a unix socket, in the foreground.
        let user = if root {
            "user = root\ngroup = root\n"
        } else {
            ""
        };
        let fpm_conf = format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n\n\
             [www]\n{user}listen = {sock}\npm = static\npm.max_children = 2\n\
             clear_env = yes\ncatch_workers_output = yes\n",
            d = d.display(),
            sock = sock.display(),
        );
        std::fs::write(d.join("php-fpm.conf"), fpm_conf).unwrap();
        let mut cmd = Command::new(fpm_bin);
        cmd.arg("--nodaemonize")
            .arg("-y")
            .arg(d.join("php-fpm.conf"))
            .arg("-p")
            .arg(&d);
        if root {
            cmd.arg("-R");
        }
        let fpm = spawn(cmd, &d.join("fpm.out"));
        let mut me = Reference {
            addr: "127.0.0.1:1".parse().unwrap(),
            dir,
            nginx: None,
            fpm: Some(fpm),
        };
        me.wait_until(
            "php-fpm socket",
            || UnixReady::ready(&sock),
            &d.join("fpm.log"),
        );

        // nginx: Debian's snippet and fastcgi.conf, copied as shipped, next to our config
        // (relative includes resolve against the config's folder).
        std::fs::create_dir_all(d.join("snippets")).unwrap();
        for f in ["snippets/fastcgi-php.conf", "fastcgi.conf", "mime.types"] {
            std::fs::copy(Path::new("/etc/nginx").join(f), d.join(f))
                .unwrap_or_else(|e| panic!("/etc/nginx/{f}: {e}"));
        }
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"] {
            std::fs::create_dir_all(d.join(t)).unwrap();
        }
        // A free port: bind, read, release. Another process could take it in between; the
        // start is then retried.
        for attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = format!(
                "{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  include mime.types;\n  default_type application/octet-stream;\n\
                 access_log {d}/access.log;\n\
                 client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                 client_max_body_size 100m;\n\
                 server {{\n    listen 127.0.0.1:{port};\n    server_name localhost;\n\
                 root {root};\n    index index.php index.html;\n\
                 location / {{ try_files $uri $uri/ /index.php?$query_string; }}\n\
                 location ~ \\.php$ {{\n      include snippets/fastcgi-php.conf;\n\
                 fastcgi_pass unix:{sock};\n    }}\n  }}\n}}\n",
                user = if root { "user root;\n" } else { "" },
                d = d.display(),
                root = docroot.display(),
                sock = sock.display(),
            );
            std::fs::write(d.join("nginx.conf"), conf).unwrap();
            let mut cmd = Command::new(NGINX);
            cmd.arg("-p")
                .arg(format!("{}/", d.display()))
                .arg("-e")
                .arg(d.join("error.log"))
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .arg("-g")
                .arg("daemon off;");
            me.nginx = Some(spawn(cmd, &d.join("nginx.out")));
            me.addr = SocketAddr::from(([127, 0, 0, 1], port));
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if TcpStream::connect_timeout(&me.addr, Duration::from_millis(200)).is_ok() {
                    return me;
                }
                if let Ok(Some(_)) = me.nginx.as_mut().unwrap().try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            stop(me.nginx.take());
            eprintln!(
                "conformance: nginx did not start on port {port} (attempt {attempt}): {}",
                me.error_log()
            );
        }
        panic!(
            "nginx did not start:\n{}\n{}",
            me.error_log(),
            read(&d.join("nginx.out"))
        );
    }

    fn wait_until(&mut self, what: &str, ready: impl Fn() -> bool, log: &Path) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if ready() {
                return;
            }
            if let Some(Ok(Some(status))) = self.fpm.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "{what}: php-fpm exited with {status}:\n{}\n{}",
                    read(log),
                    read(&self.dir.path().join("fpm.out"))
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what} not ready within 10 s:\n{}", read(log));
    }

    fn error_log(&self) -> String {
        read(&self.dir.path().join("error.log")) + &read(&self.dir.path().join("fpm.log"))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        stop(self.nginx.take());
        stop(self.fpm.take());
    }
}

/// Readiness of php-fpm's unix socket: it accepts a connection.
struct UnixReady;
impl UnixReady {
    fn ready(p: &Path) -> bool {
        std::os::unix::net::UnixStream::connect(p).is_ok()
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Starts a reference server in its own process group (so its workers can be killed with
/// it), output to a file.
fn spawn(mut cmd: Command, out: &PathBuf) -> Child {
    let f = std::fs::File::create(out).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .process_group(0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    crate::harness::own(child.id());
    child
}

/// SIGTERM (nginx and php-fpm both stop at once on it, their workers with them), bounded
/// wait, then SIGKILL to the whole process group.
fn stop(child: Option<Child>) {
    let Some(mut c) = child else { return };
    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    if wait_timeout(&mut c, Duration::from_secs(10)).is_none() {
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = c.wait();
    }
    crate::harness::disown(c.id());
    // Workers left by a master that died first.
    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
}
