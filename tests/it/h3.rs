//! HTTP/3: the QUIC listener on the HTTPS port (`server.http3`), with a real QUIC client
//! (quinn + h3) trusting the test certificates: static files large and small, PHP, request
//! bodies and their limit, streamed responses, the access log, `Alt-Svc` on the TCP
//! listeners, and a stop that lets an open request finish. (Debian's curl is built without
//! HTTP/3, so curl checks only the `Alt-Svc` side.)
use crate::harness::Server;
use crate::tls::{curl_tls, start, start_with, write_cert};
use ::h3::client::SendRequest;
use bytes::{Buf, Bytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What came back for one HTTP/3 request.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
    /// When each DATA chunk arrived.
    chunks: Vec<Instant>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP/3 client connected to `host` at `tls` (UDP), trusting `<docroot>/certs/<ca>`.
struct Client {
    rt: tokio::runtime::Runtime,
    send: SendRequest<h3_quinn::OpenStreams, Bytes>,
    host: String,
    port: u16,
    endpoint: quinn::Endpoint,
}

impl Client {
    fn connect(s: &Server, tls: SocketAddr, host: &str, ca: &str) -> Client {
        Self::try_connect(s, tls, host, ca, Duration::from_secs(10)).expect("QUIC handshake")
    }

    /// `None` when the handshake does not complete within `within`.
    fn try_connect(
        s: &Server,
        tls: SocketAddr,
        host: &str,
        ca: &str,
        within: Duration,
    ) -> Option<Client> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ca = CertificateDer::from_pem_file(s.docroot.join("certs").join(ca)).unwrap();
        let (endpoint, send) = rt.block_on(async {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            crypto.alpn_protocols = vec![b"h3".to_vec()];
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
            let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
            let conn = tokio::time::timeout(within, endpoint.connect(tls, host).unwrap())
                .await
                .ok()?
                .ok()?;
            let (mut driver, send) = ::h3::client::new(h3_quinn::Connection::new(conn))
                .await
                .unwrap();
            tokio::spawn(async move { driver.wait_idle().await });
            Some((endpoint, send))
        })?;
        Some(Client {
            rt,
            send,
            host: host.to_string(),
            port: tls.port(),
            endpoint,
        })
    }

    fn get(&mut self, path: &str) -> Answer {
        self.request("GET", path, None)
    }

    /// One request; a body is sent with its Content-Length.
    fn request(&mut self, method: &str, path: &str, body: Option<Vec<u8>>) -> Answer {
        let length = body
            .as_ref()
            .map(|b| ("content-length", b.len().to_string()));
        let headers: Vec<_> = length.into_iter().collect();
        self.try_request(method, path, &headers, body).unwrap()
    }

    /// One request with extra `headers`; `Err` when the stream fails before the response
    /// head (a stream cut after it only shortens the body, which tests compare).
    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, String> {
        let uri = format!("https://{}:{}{path}", self.host, self.port);
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req.body(()).unwrap();
        let send = &mut self.send;
        self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), async {
                let mut stream = send.send_request(req).await.map_err(|e| e.to_string())?;
                if let Some(b) = body {
                    // The server may answer (413) and stop the upload early: not an error.
                    let _ = stream.send_data(Bytes::from(b)).await;
                }
                let _ = stream.finish().await;
                let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
                let mut body = Vec::new();
                let mut chunks = Vec::new();
                while let Ok(Some(mut c)) = stream.recv_data().await {
                    chunks.push(Instant::now());
                    let n = c.remaining();
                    body.extend_from_slice(&c.copy_to_bytes(n));
                }
                Ok(Answer {
                    status: resp.status().as_u16(),
                    headers: resp.headers().clone(),
                    body,
                    chunks,
                })
            })
            .await
            .expect("HTTP/3 answer in time")
        })
    }
}

impl Drop for Client {
    /// Closes the connection as a client leaving does (CONNECTION_CLOSE), not by vanishing.
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"done");
        let endpoint = self.endpoint.clone();
        self.rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        });
    }
}

#[test]
fn static_php_bodies_and_errors_over_http3() {
    let (s, tls) = start("http3 = true\nmax_body_size = \"1M\"");
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    std::fs::write(s.docroot.join("big.bin"), &big).unwrap();
    let mut c = Client::connect(&s, tls, "a.test", "a.pem");

    let r = c.get("/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        std::fs::read(s.docroot.join("style.css")).unwrap(),
        "static file content"
    );
    assert!(r.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(r.header("x-request-id").is_some());
    assert!(
        r.header("alt-svc").is_none(),
        "HTTP/3 need not announce itself"
    );

    let r = c.get("/hello.php");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello from /hello.php path_info=")
    );

    let r = c.get("/env.php?q=1");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let server = &v["server"];
    assert_eq!(server["SERVER_PROTOCOL"], "HTTP/3.0", "{server}");
    assert_eq!(server["HTTPS"], "on");
    assert_eq!(server["HTTP_HOST"], format!("a.test:{}", tls.port()));
    assert_eq!(server["SERVER_PORT"], tls.port().to_string());
    assert_eq!(v["get"]["q"], "1");

    // A request body reaches PHP whole; above max_body_size it is refused.
    let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let r = c.request("POST", "/upload_hash.php", Some(upload.clone()));
    assert_eq!(r.status, 200, "{}", r.text());
    use sha2::Digest;
    let want = format!("{} {:x}", upload.len(), sha2::Sha256::digest(&upload));
    assert_eq!(r.text(), want);
    // HTTP/3 needs no Content-Length: PHP still gets the body and its length.
    let r = c
        .try_request("POST", "/upload_hash.php", &[], Some(upload.clone()))
        .unwrap();
    assert_eq!(r.text(), want, "a body of unannounced length");
    let r = c.request("POST", "/upload_hash.php", Some(vec![b'x'; 2 << 20]));
    assert_eq!(r.status, 413);
    // The connection is still good after a refused upload.
    let r = c.get("/missing.php");
    assert_eq!(r.status, 404);

    // A head above the limit (64 KiB, announced in SETTINGS) is refused: by the client,
    // which knows the limit, or with 431.
    let huge = "v".repeat(70 * 1024);
    match c.try_request("GET", "/hello.php", &[("x-huge", huge)], None) {
        Ok(r) => assert_eq!(r.status, 431),
        Err(e) => assert!(e.contains("Header too big"), "{e}"),
    }
    assert_eq!(
        c.get("/hello.php").status,
        200,
        "the connection survives it"
    );

    // A large file arrives byte for byte.
    let r = c.get("/big.bin");
    assert_eq!(r.status, 200);
    assert!(r.body == big, "8 MiB differ ({} bytes came)", r.body.len());

    // The access log names the protocol.
    let r = c.get("/hello.php?logged=1");
    let line = s.access_line(r.header("x-request-id").unwrap());
    assert!(
        line.contains("\"GET /hello.php?logged=1 HTTP/3.0\" 200 "),
        "{line}"
    );
    drop(c);
    assert!(s.stop().success());
}

#[test]
fn a_streamed_php_response_arrives_as_it_is_flushed() {
    let (s, tls) = start("http3 = true");
    let mut c = Client::connect(&s, tls, "b.test", "b.pem");
    let r = c.get("/stream.php");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.starts_with("chunk 0") && text.contains("chunk 2"),
        "{text}"
    );
    // Three flushes 400 ms apart: the first came well before the last.
    let spread = *r.chunks.last().unwrap() - r.chunks[0];
    assert!(spread >= Duration::from_millis(500), "{:?}", r.chunks);
    drop(c);
    assert!(s.stop().success());
}

#[test]
fn alt_svc_announces_http3_on_https_only_when_on() {
    let (s, tls) = start("http3 = true");
    let want = format!("alt-svc: h3=\":{}\"; ma=86400", tls.port());
    for proto in ["--http1.1", "--http2"] {
        let (ok, out, err) = curl_tls(&s, tls, "a.test", "a.pem", &[proto, "-i"], "/hello.php");
        assert!(ok, "{err}");
        assert!(out.to_lowercase().contains(&want), "{proto}: {out}");
    }
    // The plain listener is another origin (http://), which no client upgrades to h3.
    let r = crate::http::get(s.addr, "/hello.php");
    assert!(r.header("alt-svc").is_none());
    assert!(s.stop().success());

    let (s, tls) = start("");
    let (ok, out, err) = curl_tls(&s, tls, "a.test", "a.pem", &["-i"], "/hello.php");
    assert!(ok, "{err}");
    assert!(!out.to_lowercase().contains("alt-svc"), "{out}");
    assert!(s.stop().success());
}

#[test]
fn a_stop_lets_an_open_http3_request_finish() {
    let (s, tls) = start("http3 = true");
    let mut c = Client::connect(&s, tls, "a.test", "a.pem");
    // Connected and served once: the slow request below is on a live connection.
    assert_eq!(c.get("/hello.php").status, 200);
    // Under load the request may take a while to reach the server: one not yet taken when
    // the stop sends GOAWAY is refused (rightly), so the stop comes well after it is sent.
    let slow = std::thread::spawn(move || c.try_request("GET", "/sleep.php?ms=2500", &[], None));
    std::thread::sleep(Duration::from_millis(1000));
    let t = Instant::now();
    assert!(s.stop().success());
    let r = slow.join().unwrap().expect("the open request was answered");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("slept "), "{}", r.text());
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "the stop waited"
    );
}

#[test]
fn quic_connections_count_against_max_connections() {
    // Each idle listener (plain, HTTPS, QUIC) keeps one permit in hand for its next client.
    let (s, tls) = start("http3 = true\nmax_connections = 3\nheader_read_timeout = \"2s\"");
    let mut a = Client::connect(&s, tls, "a.test", "a.pem");
    assert_eq!(a.get("/hello.php").status, 200);
    // At the limit, a new QUIC client waits: its handshake does not complete.
    let waiting = Client::try_connect(&s, tls, "a.test", "a.pem", Duration::from_millis(1500));
    assert!(waiting.is_none(), "a fourth connection was accepted");
    // Once the first goes away, its place is free (after the waiting one, whose client
    // left mid-handshake, runs out of handshake time).
    drop(a);
    let mut c = Client::connect(&s, tls, "b.test", "b.pem");
    assert_eq!(c.get("/hello.php").status, 200);
    drop(c);
    assert!(s.stop().success());
}

#[test]
fn worker_mode_over_http3() {
    if std::env::var("ISOLA_BACKEND").is_ok_and(|b| b == "php-cgi") {
        return; // worker mode needs the native backend
    }
    const WORKER: &str = r#"<?php
$booted = getmypid();
$count = 0;
while (frankenphp_handle_request(static function () use (&$count, $booted) {
    $count++;
    echo "$booted $count ", $_SERVER['SERVER_PROTOCOL'], ' ', file_get_contents('php://input');
})) {}
"#;
    let (s, tls) = start_with(
        "http3 = true\n[php]\nworker = \"worker.php\"\n[pool]\nmax_children = 1",
        &[("worker.php", WORKER)],
    );
    let mut c = Client::connect(&s, tls, "a.test", "a.pem");
    let a = c.request("POST", "/worker.php", Some(b"one".to_vec()));
    let b = c.request("POST", "/worker.php", Some(b"two".to_vec()));
    assert_eq!(a.status, 200, "{}", a.text());
    let (a, b) = (a.text(), b.text());
    let pid = a.split(' ').next().unwrap();
    assert_eq!(a, format!("{pid} 1 HTTP/3.0 one"));
    assert_eq!(b, format!("{pid} 2 HTTP/3.0 two"), "the same booted worker");
    drop(c);
    assert!(s.stop().success());
}

#[test]
fn a_reload_renews_the_certificates_quic_serves() {
    let (s, tls) = start("http3 = true");
    let certs = s.docroot.join("certs");
    drop(Client::connect(&s, tls, "a.test", "a.pem"));
    std::fs::copy(certs.join("a.pem"), certs.join("old-a.pem")).unwrap();
    write_cert(&certs, "a", "a.test");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        s.wait_for_log("certificates re-read", Duration::from_secs(20)),
        "{}",
        s.stderr()
    );
    let mut c = Client::connect(&s, tls, "a.test", "a.pem");
    assert_eq!(c.get("/hello.php").status, 200);
    drop(c);
    let old = Client::try_connect(&s, tls, "a.test", "old-a.pem", Duration::from_secs(5));
    assert!(old.is_none(), "QUIC still serves the old certificate");
    assert!(s.stop().success());
}
