//! Automatic HTTPS against a real ACME CA: Debian's `pebble` on loopback, with a tiny DNS
//! responder that sends every name to 127.0.0.1. Certificates via HTTP-01 and TLS-ALPN-01,
//! the chain checked against Pebble's root by curl, restart from the stored certificate,
//! renewal of short-lived certificates, a CA that is down at start, and bad `[tls.acme]`
//! settings, a CA that answers garbage; several nodes sharing one account, order and certificate through a real
//! `redis-server`. Skipped (with a message) when `pebble` or `redis-server` is missing.
use crate::harness::{disown, fixture_site, own, wait_timeout};
use crate::redis::RealRedis;
use crate::tls::curl;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PEBBLE: &str = "/usr/bin/pebble";

fn have_pebble() -> bool {
    if Path::new(PEBBLE).exists() {
        return true;
    }
    eprintln!("skipped: pebble is not installed (scripts/setup --test installs it)");
    false
}

fn have_redis() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()));
    if !found {
        eprintln!("skipped: redis-server is not installed (scripts/setup --test installs it)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Answers every DNS query over UDP: A 127.0.0.1, no other records.
struct Dns {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Dns {
    fn start() -> Dns {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(answer) = dns_answer(&buf[..n]) {
                    let _ = sock.send_to(&answer, from);
                }
            }
        });
        Dns { addr, stop }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The response to one query: the question echoed, and for type A one answer 127.0.0.1.
fn dns_answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    // The question: labels up to the zero byte, then type and class.
    let mut i = 12;
    while *q.get(i)? != 0 {
        i += 1 + *q.get(i)? as usize;
    }
    let end = i + 5;
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let a = qtype == 1;
    let mut r = Vec::with_capacity(end + 16);
    r.extend_from_slice(&q[..2]);
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, a as u8, 0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..end)?);
    if a {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    Some(r)
}

/// A Pebble instance with its own HTTPS certificate (from a CA made here) and DNS.
struct Pebble {
    child: Option<Child>,
    dir: tempfile::TempDir,
    api: u16,
    mgmt: u16,
    log: Arc<Mutex<String>>,
    _dns: Dns,
}

struct PebbleOpts {
    /// The port Pebble validates HTTP-01 on (Isola's plain listener).
    http_port: u16,
    /// The port Pebble validates TLS-ALPN-01 on (Isola's TLS listener).
    tls_port: u16,
    /// Certificate lifetime in seconds (Pebble's default when `None`).
    validity: Option<u64>,
    /// Listen on this API port (a free one when `None`).
    api: Option<u16>,
    /// A folder from [`api_certs`] (a new one when `None`).
    dir: Option<tempfile::TempDir>,
}

impl PebbleOpts {
    /// Validating on `ports`, on a free API port with new API certificates.
    fn on(ports: &Ports, validity: Option<u64>) -> PebbleOpts {
        PebbleOpts {
            http_port: ports.plain,
            tls_port: ports.tls,
            validity,
            api: None,
            dir: None,
        }
    }
}

/// A folder with a CA (`api-ca.pem`) and the certificate Pebble's API serves with it.
fn api_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    std::fs::write(dir.path().join("api-ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("api.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.path().join("api.key"), leaf_key.serialize_pem()).unwrap();
    dir
}

impl Pebble {
    fn start(o: PebbleOpts) -> Pebble {
        let dir = o.dir.unwrap_or_else(api_certs);
        let api = o.api.unwrap_or_else(free_port);
        let mgmt = free_port();
        let mut cfg = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{api}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.path().join("api.pem"),
            "privateKey": dir.path().join("api.key"),
            "httpPort": o.http_port,
            "tlsPort": o.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(v) = o.validity {
            cfg["certificateValidityPeriod"] = v.into();
        }
        let cfg_path = dir.path().join("pebble.json");
        std::fs::write(&cfg_path, serde_json::json!({ "pebble": cfg }).to_string()).unwrap();
        let dns = Dns::start();
        let mut child = Command::new(PEBBLE)
            .arg("-config")
            .arg(&cfg_path)
            .arg("-dnsserver")
            .arg(dns.addr.to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_VA_ALWAYS_VALID", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pebble");
        own(child.id());
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            collect(pipe, log.clone());
        }
        let p = Pebble {
            child: Some(child),
            dir,
            api,
            mgmt,
            log,
            _dns: dns,
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", api)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "pebble did not listen; its log:\n{}",
                p.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.api)
    }

    fn api_ca(&self) -> PathBuf {
        self.dir.path().join("api-ca.pem")
    }

    /// Pebble's root (it makes a new one each start), as a PEM file.
    fn root(&self) -> PathBuf {
        let path = self.dir.path().join("root.pem");
        // The management listener has a certificate of Pebble's own making; it is on
        // loopback and only hands out the root the real check below then trusts.
        let (ok, out, err) = curl(&[
            "--insecure",
            &format!("https://127.0.0.1:{}/roots/0", self.mgmt),
        ]);
        assert!(ok, "pebble root: {err}");
        std::fs::write(&path, out).unwrap();
        path
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            disown(c.id());
        }
    }

    /// How many orders Pebble has taken, by its own log.
    fn orders(&self) -> usize {
        self.log.lock().unwrap().matches("Added order").count()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

fn collect(mut pipe: Box<dyn Read + Send>, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// `isola serve --config` on fixed ports (Pebble must know them before Isola starts).
struct Isola {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    _site: tempfile::TempDir,
    state: PathBuf,
    tls_port: u16,
}

struct Ports {
    plain: u16,
    tls: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            plain: free_port(),
            tls: free_port(),
        }
    }
}

const NAMES: &str = r#"["a.isola.test", "www.isola.test"]"#;

impl Isola {
    /// Serves the fixture site with `[tls.acme]` lines `acme`, its data in `state`. Plain
    /// HTTP redirects to HTTPS: HTTP-01 tokens must be answered before that.
    fn start(ports: &Ports, acme: &str, state: &Path) -> Isola {
        Isola::start_with(ports, acme, state, "backend = \"off\"")
    }

    /// As [`Isola::start`] with the `[store]` lines `store`.
    fn start_with(ports: &Ports, acme: &str, state: &Path, store: &str) -> Isola {
        let site = fixture_site();
        let cfg = site.path().join("isola.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\ntls_listen = \"127.0.0.1:{}\"\nredirect_http_to_https = true\ndocroot = \"{}\"\n[log]\nlevel = \"info\"\n[store]\n{store}\n[tls.acme]\ndomains = {NAMES}\n{acme}\n",
                ports.plain,
                ports.tls,
                site.path().display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
            .env("STATE_DIRECTORY", state)
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start isola");
        own(child.id());
        let log = Arc::new(Mutex::new(String::new()));
        collect(Box::new(child.stdout.take().unwrap()), log.clone());
        collect(Box::new(child.stderr.take().unwrap()), log.clone());
        Isola {
            child: Some(child),
            log,
            _site: site,
            state: state.to_path_buf(),
            tls_port: ports.tls,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for `needle` in the log; panics with the log after `secs`.
    fn wait_for(&self, needle: &str, secs: u64) {
        let t = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "no {needle:?} in {secs}s; isola's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET / over HTTPS as `host`, trusting only `root`; (ok, stdout+certificate info, stderr).
    fn get(&self, host: &str, root: &Path) -> (bool, String, String) {
        let resolve = format!("{host}:{}:127.0.0.1", self.tls_port);
        curl(&[
            "--cacert",
            root.to_str().unwrap(),
            "--resolve",
            &resolve,
            "-w",
            "\n%{certs}",
            &format!("https://{host}:{}/hello.php", self.tls_port),
        ])
    }

    fn acme_dir(&self, pebble_api: u16) -> PathBuf {
        self.state
            .join("acme")
            .join(format!("127.0.0.1_{pebble_api}"))
    }

    fn stop(mut self) {
        let mut c = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = wait_timeout(&mut c, Duration::from_secs(40)).expect("isola stops");
        disown(c.id());
        assert!(status.success(), "{status:?}\n{}", self.log());
    }
}

impl Drop for Isola {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            disown(c.id());
        }
    }
}

/// The serial number of the leaf curl was given (from `%{certs}`).
fn serial(curl_out: &str) -> String {
    curl_out
        .lines()
        .find_map(|l| l.strip_prefix("Serial Number:"))
        .unwrap_or_else(|| panic!("no serial in {curl_out}"))
        .trim()
        .to_string()
}

fn acme_lines(p: &Pebble) -> String {
    format!(
        "email = \"ops@isola.test\"\ndirectory = \"{}\"\nca_root = \"{}\"",
        p.directory(),
        p.api_ca().display()
    )
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn http01_certificate_is_served_stored_and_loaded_at_restart() {
    if !have_pebble() {
        return;
    }
    let ports = Ports::new();
    let mut pebble = Pebble::start(PebbleOpts::on(&ports, None));
    let state = tempfile::tempdir().unwrap();
    let admin = free_port();
    let acme = format!(
        "{}\nchallenges = [\"http-01\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"",
        acme_lines(&pebble)
    );
    let s = Isola::start(&ports, &acme, state.path());
    s.wait_for("new certificate obtained with http-01", 60);
    let root = pebble.root();
    let (ok, status, err) = curl(&[&format!("http://127.0.0.1:{admin}/status")]);
    assert!(ok, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&status).unwrap_or_else(|e| panic!("{e}: {status}"));
    let c = &v["certificates"][0];
    assert_eq!(c["names"][0], "a.isola.test", "{status}");
    assert!(c["issuer"].as_str().unwrap().contains("Pebble"), "{status}");
    assert!(c["not_after"].as_i64().unwrap() > 0, "{status}");
    assert!(c["last_error"].is_null(), "{status}");
    let (_, metrics, _) = curl(&[&format!("http://127.0.0.1:{admin}/metrics")]);
    assert!(
        metrics.contains(
            "isola_tls_certificate_renewal_failing{names=\"a.isola.test,www.isola.test\"} 0"
        ),
        "{metrics}"
    );
    for host in ["a.isola.test", "www.isola.test"] {
        let (ok, out, err) = s.get(host, &root);
        assert!(ok, "{host}: {err}\n{}", s.log());
        assert!(out.starts_with("hello"), "{out}");
    }
    let dir = s.acme_dir(pebble.api);
    for f in ["account.json", "cert.pem", "key.pem"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let (_, first, _) = s.get("a.isola.test", &root);
    s.stop();

    // The CA is gone: the stored certificate serves at once, with no order.
    pebble.stop();
    let s = Isola::start(&ports, &acme, state.path());
    s.wait_for("serving the stored certificate", 20);
    s.wait_for("renews in", 20);
    let (ok, again, err) = s.get("a.isola.test", &root);
    assert!(ok, "{err}\n{}", s.log());
    assert_eq!(serial(&first), serial(&again));
    assert!(!s.log().contains("ordering a certificate"), "{}", s.log());
    s.stop();
}

#[test]
fn tls_alpn01_is_used_when_http01_cannot_be_validated() {
    if !have_pebble() {
        return;
    }
    let ports = Ports::new();
    // Pebble checks HTTP-01 on a port nobody listens on: only TLS-ALPN-01 can succeed.
    let pebble = Pebble::start(PebbleOpts {
        http_port: free_port(),
        tls_port: ports.tls,
        validity: None,
        api: None,
        dir: None,
    });
    let state = tempfile::tempdir().unwrap();
    let s = Isola::start(&ports, &acme_lines(&pebble), state.path());
    s.wait_for("new certificate obtained with tls-alpn-01", 90);
    let log = s.log();
    assert!(
        log.contains("order with http-01 failed: http-01 challenge for"),
        "{log}"
    );
    let root = pebble.root();
    let (ok, out, err) = s.get("www.isola.test", &root);
    assert!(ok, "{err}\n{}", s.log());
    assert!(out.starts_with("hello"), "{out}");
    s.stop();
}

#[test]
fn short_lived_certificates_are_renewed_and_the_new_one_served() {
    if !have_pebble() {
        return;
    }
    let ports = Ports::new();
    let pebble = Pebble::start(PebbleOpts::on(&ports, Some(30)));
    let state = tempfile::tempdir().unwrap();
    let s = Isola::start(&ports, &acme_lines(&pebble), state.path());
    s.wait_for("new certificate obtained", 60);
    let root = pebble.root();
    let (ok, first, err) = s.get("a.isola.test", &root);
    assert!(ok, "{err}\n{}", s.log());
    // A third of 30 s is left after 20 s: a second, real order.
    let t = Instant::now();
    loop {
        let (ok, now, err) = s.get("a.isola.test", &root);
        assert!(ok, "{err}\n{}", s.log());
        if serial(&now) != serial(&first) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "not renewed; log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(s.log().matches("new certificate obtained").count() >= 2);
    s.stop();
}

#[test]
fn a_ca_down_at_start_is_retried_with_backoff() {
    if !have_pebble() {
        return;
    }
    let ports = Ports::new();
    let api = free_port();
    let state = tempfile::tempdir().unwrap();
    let certs = api_certs();
    let acme = format!(
        "directory = \"https://127.0.0.1:{api}/dir\"\nca_root = \"{}\"",
        certs.path().join("api-ca.pem").display()
    );
    let s = Isola::start(&ports, &acme, state.path());
    s.wait_for(
        "no certificate yet: TLS handshakes for these names fail; retrying in 2s",
        30,
    );
    s.wait_for("retrying in 4s", 30);
    // No certificate yet: the handshake fails, it does not hang.
    let (ok, _, _) = s.get("a.isola.test", &certs.path().join("api-ca.pem"));
    assert!(!ok);
    let pebble = Pebble::start(PebbleOpts {
        http_port: ports.plain,
        tls_port: ports.tls,
        validity: None,
        api: Some(api),
        dir: Some(certs),
    });
    s.wait_for("new certificate obtained", 120);
    let (ok, _, err) = s.get("a.isola.test", &pebble.root());
    assert!(ok, "{err}\n{}", s.log());
    s.stop();
}

/// `isola serve` with this config; its exit code and stderr.
fn refused(server: &str, acme: &str, sites: &str) -> (Option<i32>, String) {
    let site = fixture_site();
    let cfg = site.path().join("isola.toml");
    std::fs::write(
        &cfg,
        format!("[server]\n{server}\n[store]\nbackend = \"off\"\n[tls.acme]\n{acme}\n{sites}"),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_isola"))
        .env("STATE_DIRECTORY", state.path())
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_acme_settings_are_refused_naming_the_key() {
    let site = fixture_site();
    let docroot = format!("docroot = \"{}\"", site.path().display());
    let tls = format!("{docroot}\ntls_listen = \"127.0.0.1:0\"");
    let cases = [
        (
            docroot.as_str(),
            "domains = [\"a.isola.test\"]",
            "",
            "tls.acme: needs server.tls_listen",
        ),
        (tls.as_str(), "", "", "tls.acme.domains: no name to certify"),
        (
            tls.as_str(),
            "domains = [\"a.isola.test\"]\nemail = \"nobody\"",
            "",
            "tls.acme.email: \"nobody\" is not an email address",
        ),
        (
            tls.as_str(),
            "domains = [\"*.isola.test\"]",
            "",
            "tls.acme.domains: \"*.isola.test\" is a wildcard",
        ),
        (
            tls.as_str(),
            "domains = [\"a.isola.test\"]\nca_root = \"/nonexistent/root.pem\"",
            "",
            "tls.acme.ca_root: cannot read /nonexistent/root.pem",
        ),
        (
            tls.as_str(),
            "domains = [\"a.isola.test\"]\nchallenges = [\"dns-01\"]",
            "",
            "tls.acme.challenges: \"dns-01\"",
        ),
    ];
    for (server, acme, sites, want) in cases {
        let (code, err) = refused(server, acme, sites);
        assert_eq!(code, Some(2), "{acme}: {err}");
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
    // A wildcard site name joins the certificate, so it is refused too.
    let sites = format!("[[site]]\nserver_names = [\"*.isola.test\"]\n{docroot}\n");
    let (code, err) = refused(
        "tls_listen = \"127.0.0.1:0\"",
        "domains = [\"a.isola.test\"]",
        &sites,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("site[0].server_names: \"*.isola.test\" is a wildcard"),
        "{err}"
    );
}

/// `[store]` lines pointing at `redis` (Isola's own keys go to its database 15).
fn shared_store(redis: &RealRedis) -> String {
    format!("url = \"{}\"", redis.url())
}

/// The serial `s` serves for a.isola.test, once it serves one.
fn serial_of(s: &Isola, root: &Path) -> String {
    let (ok, out, err) = s.get("a.isola.test", root);
    assert!(ok, "{err}\n{}", s.log());
    serial(&out)
}

/// Waits until both nodes serve one serial other than `old`; returns it.
fn both_serve_new(a: &Isola, b: &Isola, root: &Path, old: &str, secs: u64) -> String {
    let t = Instant::now();
    loop {
        let (sa, sb) = (serial_of(a, root), serial_of(b, root));
        if sa == sb && sa != old {
            return sa;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "a serves {sa}, b {sb} (old {old});\na's log:\n{}\nb's log:\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn two_nodes_sharing_a_store_order_once_and_renew_once() {
    if !have_pebble() || !have_redis() {
        return;
    }
    let redis = RealRedis::start();
    let (pa, pb) = (Ports::new(), Ports::new());
    // Pebble validates on a's ports whichever node orders: an order by b is answered by a
    // from the store.
    let pebble = Pebble::start(PebbleOpts::on(&pa, Some(30)));
    let acme = format!("{}\nchallenges = [\"http-01\"]", acme_lines(&pebble));
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = shared_store(&redis);
    let a = Isola::start_with(&pa, &acme, da.path(), &store);
    let b = Isola::start_with(&pb, &acme, db.path(), &store);
    a.wait_for("renews in", 60);
    b.wait_for("renews in", 60);
    let root = pebble.root();
    let first = both_serve_new(&a, &b, &root, "", 10);
    assert_eq!(pebble.orders(), 1, "{}", pebble.log.lock().unwrap());
    let ordering = a.log().matches("ordering a certificate").count()
        + b.log().matches("ordering a certificate").count();
    assert_eq!(ordering, 1, "a:\n{}\nb:\n{}", a.log(), b.log());
    assert!(pebble
        .log
        .lock()
        .unwrap()
        .contains("There are now 1 accounts in memory"));
    // The node that did not order waited for the other's and installed it.
    let installed = |a: &Isola, b: &Isola| {
        a.log()
            .matches("installed the certificate from the store")
            .count()
            + b.log()
                .matches("installed the certificate from the store")
                .count()
    };
    assert_eq!(installed(&a, &b), 1, "a:\n{}\nb:\n{}", a.log(), b.log());
    let folder = format!("127.0.0.1_{}", pebble.api);
    let lock = format!("EXISTS isola:acme:{folder}:lock");
    assert!(
        redis.cmd_in(15, &lock).contains(":0"),
        "the lock is released"
    );
    for k in ["account", "cert", "key"] {
        let got = redis.cmd_in(15, &format!("EXISTS isola:acme:{folder}:{k}"));
        assert!(got.contains(":1"), "{k}: {got}");
    }
    // Both keep the certificate on disk too, for when the store is down.
    for s in [&a, &b] {
        assert!(s.acme_dir(pebble.api).join("cert.pem").exists());
    }

    // A third of 30 s is left after 20 s: one node renews, the other installs its
    // certificate from the store.
    let second = both_serve_new(&a, &b, &root, &first, 90);
    assert_ne!(second, first);
    assert_eq!(pebble.orders(), 2, "{}", pebble.log.lock().unwrap());
    assert_eq!(installed(&a, &b), 2, "a:\n{}\nb:\n{}", a.log(), b.log());
    a.stop();
    b.stop();
}

#[test]
fn http01_is_answered_by_a_node_that_did_not_order() {
    if !have_pebble() || !have_redis() {
        return;
    }
    let redis = RealRedis::start();
    let (pa, pb) = (Ports::new(), Ports::new());
    let api = free_port();
    let certs = api_certs();
    let directory = format!("https://127.0.0.1:{api}/dir");
    let acme = format!(
        "directory = \"{directory}\"\nca_root = \"{}\"\nchallenges = [\"http-01\"]",
        certs.path().join("api-ca.pem").display()
    );
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = shared_store(&redis);
    // b starts while the CA is down: its tries fail and it backs off (2 s, 4 s, 8 s),
    // leaving the lock free for a.
    let b = Isola::start_with(&pb, &acme, db.path(), &store);
    b.wait_for("retrying in 8s", 60);
    // Pebble validates HTTP-01 on b's port only.
    let pebble = Pebble::start(PebbleOpts {
        http_port: pb.plain,
        tls_port: pb.tls,
        validity: None,
        api: Some(api),
        dir: Some(certs),
    });
    let a = Isola::start_with(&pa, &acme, da.path(), &store);
    a.wait_for("new certificate obtained with http-01", 60);
    // Published right after it is installed: a moment later in the log.
    a.wait_for("published the new certificate", 30);
    b.wait_for("installed the certificate from the store", 30);
    assert!(!b.log().contains("ordering a certificate"), "{}", b.log());
    assert_eq!(pebble.orders(), 1);
    let root = pebble.root();
    assert_eq!(serial_of(&a, &root), serial_of(&b, &root));
    a.stop();
    b.stop();
}

#[test]
fn a_node_with_its_certificate_on_disk_serves_while_the_store_is_down() {
    if !have_pebble() || !have_redis() {
        return;
    }
    let mut redis = RealRedis::start();
    let ports = Ports::new();
    let mut pebble = Pebble::start(PebbleOpts::on(&ports, None));
    let state = tempfile::tempdir().unwrap();
    let store = shared_store(&redis);
    let s = Isola::start_with(&ports, &acme_lines(&pebble), state.path(), &store);
    s.wait_for("published the new certificate", 60);
    let root = pebble.root();
    let first = serial_of(&s, &root);
    s.stop();

    // Neither the store nor the CA answers: the disk copy serves at once.
    redis.stop();
    pebble.stop();
    let s = Isola::start_with(&ports, &acme_lines(&pebble), state.path(), &store);
    s.wait_for("serving the stored certificate", 20);
    s.wait_for("renews in", 20);
    assert_eq!(serial_of(&s, &root), first);
    s.stop();
}

/// An HTTPS server on loopback (with [`api_certs`]' certificate) that answers anything but
/// ACME: `not json` while `directory` is false, then a directory whose endpoints answer junk.
struct JunkCa {
    port: u16,
    directory: Arc<AtomicBool>,
}

impl JunkCa {
    fn start(certs: &Path) -> JunkCa {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(certs.join("api.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(certs.join("api.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let directory = Arc::new(AtomicBool::new(false));
        let dir = directory.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (cfg, dir) = (cfg.clone(), dir.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(cfg).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let _ = JunkCa::answer(&mut tls, port, dir.load(Ordering::SeqCst));
                });
            }
        });
        JunkCa { port, directory }
    }

    fn answer(s: &mut (impl Read + Write), port: u16, directory: bool) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b)? == 0 {
                return Ok(());
            }
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0usize);
        s.read_exact(&mut vec![0; len])?;
        let base = format!("https://127.0.0.1:{port}");
        let body = if directory && head.starts_with("get /dir ") {
            serde_json::json!({
                "newNonce": format!("{base}/nonce"),
                "newAccount": format!("{base}/account"),
                "newOrder": format!("{base}/order"),
            })
            .to_string()
        } else {
            "not json".to_string()
        };
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(reply.as_bytes())?;
        s.flush()
    }
}

#[test]
fn a_ca_that_answers_garbage_is_an_error_naming_the_step_retried_with_backoff() {
    let ports = Ports::new();
    let certs = api_certs();
    let ca = JunkCa::start(certs.path());
    let state = tempfile::tempdir().unwrap();
    let admin = free_port();
    let acme = format!(
        "directory = \"https://127.0.0.1:{}/dir\"\nca_root = \"{}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"",
        ca.port,
        certs.path().join("api-ca.pem").display()
    );
    let s = Isola::start(&ports, &acme, state.path());
    let not_dir = "fetching the directory: the CA's directory at https://127.0.0.1:";
    s.wait_for(
        &format!("{not_dir}{}/dir is not an ACME directory: ", ca.port),
        20,
    );
    s.wait_for(
        "no certificate yet: TLS handshakes for these names fail; retrying in 2s",
        5,
    );
    s.wait_for("retrying in 4s", 10);
    assert_eq!(s.log().matches(not_dir).count(), 2, "{}", s.log());

    // Plain HTTP still answers (with its redirect); TLS handshakes fail, they do not hang.
    let (ok, code, err) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{}/hello.php", ports.plain),
    ]);
    assert!(ok && code.starts_with('3'), "{code} {err}");
    let (ok, _, _) = s.get("a.isola.test", &certs.path().join("api-ca.pem"));
    assert!(!ok);
    let (ok, status, err) = curl(&[&format!("http://127.0.0.1:{admin}/status")]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let last = v["certificates"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(last.contains("is not an ACME directory"), "{status}");

    // A directory whose endpoints answer junk: the account step fails, named as such.
    ca.directory.store(true, Ordering::SeqCst);
    s.wait_for("creating the account: missing data: no nonce found", 10);
    s.wait_for("retrying in 8s", 5);
    let (_, status, _) = curl(&[&format!("http://127.0.0.1:{admin}/status")]);
    assert!(status.contains("creating the account"), "{status}");
    let folder = s.acme_dir(ca.port);
    for f in ["cert.pem", "key.pem"] {
        assert!(!folder.join(f).exists(), "{f} was written");
    }
    s.stop();
}
