//! HTTPS: the TLS listener with certificates picked by SNI, HTTP/2 negotiated by ALPN, PHP
//! told it runs over HTTPS, h2c on the plain listener, the redirect from HTTP to HTTPS, and
//! certificate errors that name their key. The client is the `curl` binary.
use crate::harness::{fixture_site, wait_timeout, Server};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Writes a self-signed certificate for `name` as `<dir>/<stem>.pem` and `<stem>.key`.
pub(crate) fn write_cert(dir: &Path, stem: &str, name: &str) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    std::fs::write(dir.join(format!("{stem}.pem")), c.cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), c.key_pair.serialize_pem()).unwrap();
}

const CERTS: &str = r#"
[[tls.cert]]
cert = "certs/a.pem"
key = "certs/a.key"

[[tls.cert]]
cert = "certs/b.pem"
key = "certs/b.key"
"#;

/// The fixture site with certificates for a.test and b.test in `certs/`, served with
/// `server_toml` (lines of `[server]`) and `[[tls.cert]]` for both; the TLS address too.
pub(crate) fn start(server_toml: &str) -> (Server, SocketAddr) {
    start_with(server_toml, &[])
}

/// Like [`start`], with `files` (name, content) written into the site first.
pub(crate) fn start_with(server_toml: &str, files: &[(&str, &str)]) -> (Server, SocketAddr) {
    let site = fixture_site();
    for (name, body) in files {
        std::fs::write(site.path().join(name), body).unwrap();
    }
    let certs = site.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    write_cert(&certs, "a", "a.test");
    write_cert(&certs, "b", "b.test");
    let cfg = site.path().join("isola.toml");
    std::fs::write(
        &cfg,
        format!("[server]\ntls_listen = \"127.0.0.1:0\"\n{server_toml}\n{CERTS}"),
    )
    .unwrap();
    let docroot = site.path().to_path_buf();
    let s = Server::start_in(&docroot, &["--config", cfg.to_str().unwrap()], Some(site));
    let line = s
        .stdout_line_containing("https://")
        .unwrap_or_else(|| panic!("no TLS line; stderr:\n{}", s.stderr()));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap();
    let tls: SocketAddr = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    (s, tls)
}

/// Runs curl with `args` (bounded in time); (success, stdout, stderr).
pub(crate) fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed (scripts/setup --test)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// curl over TLS to `host` (a.test or b.test) at the TLS port, trusting `ca`.
pub(crate) fn curl_tls(
    s: &Server,
    tls: SocketAddr,
    host: &str,
    ca: &str,
    extra: &[&str],
    path: &str,
) -> (bool, String, String) {
    let ca = s.docroot.join("certs").join(ca);
    let resolve = format!("{host}:{}:127.0.0.1", tls.port());
    let url = format!("https://{host}:{}{path}", tls.port());
    let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

#[test]
fn http2_over_tls_and_php_sees_https() {
    let (s, tls) = start("");
    let (ok, out, err) = curl_tls(
        &s,
        tls,
        "a.test",
        "a.pem",
        &["--http2", "-w", "\n%{http_version}"],
        "/env.php?q=1",
    );
    assert!(ok, "{err}\n{}", s.stderr());
    let (json, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(version, "2", "{out}");
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let server = &v["server"];
    assert_eq!(server["HTTPS"], "on", "{json}");
    assert_eq!(server["REQUEST_SCHEME"], "https");
    assert_eq!(server["SERVER_PORT"], tls.port().to_string());
    assert_eq!(server["HTTP_HOST"], format!("a.test:{}", tls.port()));
    assert_eq!(server["SERVER_PROTOCOL"], "HTTP/2.0");
    assert_eq!(v["get"]["q"], "1");

    let (ok, out, err) = curl_tls(
        &s,
        tls,
        "a.test",
        "a.pem",
        &["--http1.1", "-w", "\n%{http_version}"],
        "/hello.php",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "hello from /hello.php path_info=\n1.1");

    // The plain listener still speaks plain HTTP, to PHP too.
    let (ok, out, err) = curl(&[&format!("http://{}/env.php", s.addr)]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["server"]["REQUEST_SCHEME"], "http");
    assert!(v["server"].get("HTTPS").is_none(), "{out}");
    s.stop();
}

#[test]
fn sni_picks_the_certificate_for_the_name() {
    let (s, tls) = start("");
    for (host, right, wrong) in [("a.test", "a.pem", "b.pem"), ("b.test", "b.pem", "a.pem")] {
        let (ok, out, err) = curl_tls(&s, tls, host, right, &[], "/hello.php");
        assert!(ok, "{host} with {right}: {err}");
        assert!(out.starts_with("hello from"), "{out}");
        let (ok, _, err) = curl_tls(&s, tls, host, wrong, &[], "/hello.php");
        assert!(!ok, "{host} trusted with {wrong}");
        assert!(err.to_lowercase().contains("certificate"), "{err}");
    }
    // An unknown name gets the first certificate.
    let (ok, _, err) = curl_tls(&s, tls, "c.test", "a.pem", &[], "/hello.php");
    assert!(!ok);
    assert!(err.contains("c.test"), "{err}");
    assert!(s.stop().success());
}

#[test]
fn h2c_prior_knowledge_on_the_plain_listener() {
    let s = Server::start(&[]);
    let (ok, out, err) = curl(&[
        "--http2-prior-knowledge",
        "-w",
        "\n%{http_version}",
        &format!("http://{}/hello.php", s.addr),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "hello from /hello.php path_info=\n2");
    s.stop();
}

#[test]
fn plain_http_is_redirected_to_https() {
    let (s, tls) = start("redirect_http_to_https = true");
    let port = tls.port();
    let r = crate::http::raw(
        s.addr,
        b"GET /dir/env.php?x=1&y=%20 HTTP/1.1\r\nHost: a.test:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("https://a.test:{port}/dir/env.php?x=1&y=%20").as_str())
    );
    let r = crate::http::raw(
        s.addr,
        b"POST /form HTTP/1.1\r\nHost: [::1]\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://[::1]:{port}/form").as_str())
    );
    // HTTPS itself serves normally.
    let (ok, out, err) = curl_tls(&s, tls, "b.test", "b.pem", &[], "/hello.php");
    assert!(ok, "{err}");
    assert!(out.starts_with("hello from"), "{out}");
    s.stop();
}

/// Runs `isola serve` on a site whose config is `toml`; (exit status, stderr). The
/// server must refuse to start.
fn refused(toml: &str, setup: impl Fn(&Path)) -> (Option<i32>, String) {
    let site = fixture_site();
    let certs = site.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    write_cert(&certs, "a", "a.test");
    write_cert(&certs, "b", "b.test");
    setup(&certs);
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
        .env("STATE_DIRECTORY", site.path().join("state"))
        .arg("serve")
        .arg(site.path())
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::harness::own(child.id());
    let status = wait_timeout(&mut child, Duration::from_secs(20)).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("isola started with a bad certificate configuration")
    });
    crate::harness::disown(child.id());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[test]
fn bad_certificates_exit_2_naming_the_key() {
    let base = "[server]\ntls_listen = \"127.0.0.1:0\"\n";
    // A key that belongs to another certificate.
    let (code, err) = refused(
        &format!("{base}[[tls.cert]]\ncert = \"certs/a.pem\"\nkey = \"certs/a.key\"\n[[tls.cert]]\ncert = \"certs/b.pem\"\nkey = \"certs/a.key\"\n"),
        |_| {},
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls.cert[1].key"), "{err}");
    assert!(err.contains("does not match"), "{err}");
    // Not PEM.
    let (code, err) = refused(
        &format!("{base}[[tls.cert]]\ncert = \"certs/a.pem\"\nkey = \"certs/a.key\"\n"),
        |d| std::fs::write(d.join("a.pem"), "not a certificate\n").unwrap(),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls.cert[0].cert"), "{err}");
    // A missing file, and a listener without certificates.
    let (code, err) = refused(
        &format!("{base}[[tls.cert]]\ncert = \"certs/none.pem\"\nkey = \"certs/a.key\"\n"),
        |_| {},
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.cert[0].cert") && err.contains("none.pem"),
        "{err}"
    );
    let (code, err) = refused(base, |_| {});
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls.cert"), "{err}");
}

#[test]
fn reload_serves_renewed_certificates() {
    let (s, tls) = start("");
    let certs = s.docroot.join("certs");
    let (ok, _, err) = curl_tls(&s, tls, "a.test", "a.pem", &[], "/hello.php");
    assert!(ok, "{err}");
    // Renewal: a new key and certificate for a.test in the same files.
    std::fs::copy(certs.join("a.pem"), certs.join("old-a.pem")).unwrap();
    write_cert(&certs, "a", "a.test");
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    hup();
    assert!(
        s.wait_for_log("certificates re-read", Duration::from_secs(20)),
        "{}",
        s.stderr()
    );
    let (ok, out, err) = curl_tls(&s, tls, "a.test", "a.pem", &[], "/hello.php");
    assert!(ok, "{err}");
    assert!(out.starts_with("hello from"), "{out}");
    let (ok, _, _) = curl_tls(&s, tls, "a.test", "old-a.pem", &[], "/hello.php");
    assert!(!ok, "the old certificate is still served");

    // A broken key refuses the reload; the renewed certificate stays.
    std::fs::write(certs.join("b.key"), "garbage\n").unwrap();
    hup();
    assert!(
        s.wait_for_log("tls.cert[1].key", Duration::from_secs(20)),
        "{}",
        s.stderr()
    );
    let (ok, _, err) = curl_tls(&s, tls, "b.test", "b.pem", &[], "/hello.php");
    assert!(ok, "{err}");
    let (ok, _, err) = curl_tls(&s, tls, "a.test", "a.pem", &[], "/hello.php");
    assert!(ok, "{err}");
    assert!(s.stop().success());
}

#[test]
fn a_silent_tls_client_is_cut_by_header_read_timeout() {
    let (s, tls) = start("header_read_timeout = \"1s\"");
    let mut c = crate::http::connect(tls);
    let t = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut c, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server sent something to a silent client");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // The listener keeps serving.
    let (ok, _, err) = curl_tls(&s, tls, "a.test", "a.pem", &[], "/hello.php");
    assert!(ok, "{err}");
    assert!(s.stop().success());
}

/// headers_send(103) (native backend, the default of the first pass) over HTTPS: the 103
/// goes through the TLS stream on HTTP/1.1, and is left out on HTTP/2.
#[test]
fn early_hints_over_https() {
    if std::env::var("ISOLA_BACKEND").is_ok_and(|b| b == "php-cgi") {
        return;
    }
    let (s, tls) = start("");
    let hinted = |version: &str| {
        let (ok, out, err) = curl_tls(
            &s,
            tls,
            "a.test",
            "a.pem",
            &[version, "-v"],
            "/early_hints.php",
        );
        assert!(ok, "{err}");
        assert_eq!(out, "hinted=1 late=3\n");
        err
    };
    let err = hinted("--http1.1");
    assert!(err.contains("< HTTP/1.1 103 Early Hints"), "{err}");
    let err = hinted("--http2");
    assert!(err.contains("< HTTP/2 200"), "{err}");
    assert!(!err.contains("HTTP/2 103"), "{err}");
    s.stop();
}
