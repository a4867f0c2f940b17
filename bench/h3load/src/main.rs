//! `h3load URL [-c CONNECTIONS] [-m STREAMS] [-d SECONDS] [--cacert PEM]`: GETs of URL over
//! HTTP/3 for a fixed time, from CONNECTIONS QUIC connections with STREAMS requests in flight
//! on each, then one line for bench/run:
//! `H3LOAD {"requests":…,"errors":…,"status_errors":…,"bytes":…,"duration_us":…,"p50_us":…,…}`.
//! The server's certificate is checked against the PEM root given (or the chain's own
//! certificate for a self-signed one), for the name in URL.
use bytes::Buf;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    url: http::Uri,
    conns: usize,
    streams: usize,
    secs: f64,
    cacert: Option<String>,
}

fn usage(why: &str) -> ! {
    eprintln!("h3load: {why}\nusage: h3load URL [-c CONNECTIONS] [-m STREAMS] [-d SECONDS] [--cacert PEM]");
    std::process::exit(2)
}

fn opts() -> Opts {
    let mut o = Opts {
        url: http::Uri::default(),
        conns: 1,
        streams: 1,
        secs: 5.0,
        cacert: None,
    };
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "-c" => o.conns = val().parse().unwrap_or_else(|_| usage("-c: a number")),
            "-m" => o.streams = val().parse().unwrap_or_else(|_| usage("-m: a number")),
            "-d" => o.secs = val().parse().unwrap_or_else(|_| usage("-d: seconds")),
            "--cacert" => o.cacert = Some(val()),
            _ if url.is_none() && !a.starts_with('-') => url = Some(a),
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    o.url = url
        .unwrap_or_else(|| usage("no URL"))
        .parse()
        .unwrap_or_else(|e| usage(&format!("URL: {e}")));
    if o.url.scheme_str() != Some("https") || o.conns == 0 || o.streams == 0 {
        usage("an https:// URL and at least one connection and stream");
    }
    o
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    status_errors: u64,
    bytes: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| e.to_string());
    }

    fn add(&mut self, o: Tally) {
        self.latencies_us.extend(o.latencies_us);
        self.errors += o.errors;
        self.status_errors += o.status_errors;
        self.bytes += o.bytes;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

type Send = h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>;

async fn connect(o: &Opts, client: &quinn::ClientConfig) -> Result<Send, String> {
    let host = o.url.host().unwrap_or("localhost").to_string();
    let port = o.url.port_u16().unwrap_or(443);
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let bind = if addr.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let mut endpoint = quinn::Endpoint::client(bind.parse().unwrap()).map_err(|e| e.to_string())?;
    endpoint.set_default_client_config(client.clone());
    let conn = endpoint
        .connect(addr, &host)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| format!("QUIC handshake: {e}"))?;
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = driver.wait_idle().await;
        drop(endpoint);
    });
    Ok(send)
}

/// One request stream after another until `deadline`; stops at the first error.
async fn worker(mut send: Send, url: http::Uri, deadline: Instant) -> Tally {
    let mut t = Tally::default();
    while Instant::now() < deadline {
        let start = Instant::now();
        let req = http::Request::get(url.clone()).body(()).unwrap();
        let result = async {
            let mut stream = send.send_request(req).await?;
            stream.finish().await?;
            let resp = stream.recv_response().await?;
            let mut n = 0;
            while let Some(chunk) = stream.recv_data().await? {
                n += chunk.remaining() as u64;
            }
            Ok::<_, h3::error::StreamError>((resp.status(), n))
        }
        .await;
        match result {
            Ok((status, n)) => {
                t.latencies_us.push(start.elapsed().as_micros() as u64);
                t.bytes += n;
                if !status.is_success() && !status.is_redirection() {
                    t.status_errors += 1;
                }
            }
            Err(e) => {
                t.error(e);
                break;
            }
        }
    }
    t
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let o = opts();
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = &o.cacert {
        for c in
            CertificateDer::pem_file_iter(path).unwrap_or_else(|e| usage(&format!("{path}: {e}")))
        {
            roots
                .add(c.unwrap_or_else(|e| usage(&format!("{path}: {e}"))))
                .unwrap_or_else(|e| usage(&format!("{path}: {e}")));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
    let client = quinn::ClientConfig::new(Arc::new(crypto));

    let mut total = Tally::default();
    let mut sends = Vec::new();
    for _ in 0..o.conns {
        match connect(&o, &client).await {
            Ok(s) => sends.push(s),
            Err(e) => total.error(e),
        }
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.secs);
    let mut tasks = Vec::new();
    for send in &sends {
        for _ in 0..o.streams {
            tasks.push(tokio::spawn(worker(send.clone(), o.url.clone(), deadline)));
        }
    }
    for t in tasks {
        match t.await {
            Ok(t) => total.add(t),
            Err(e) => total.error(e),
        }
    }
    let elapsed = start.elapsed();
    total.latencies_us.sort_unstable();
    let l = &total.latencies_us;
    let err = total
        .first_error
        .as_deref()
        .unwrap_or("")
        .replace(['"', '\\'], "'");
    println!(
        "H3LOAD {{\"requests\":{},\"errors\":{},\"status_errors\":{},\"bytes\":{},\"duration_us\":{},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{},\"first_error\":\"{err}\"}}",
        l.len(),
        total.errors,
        total.status_errors,
        total.bytes,
        elapsed.as_micros(),
        percentile(l, 0.5),
        percentile(l, 0.9),
        percentile(l, 0.99),
        l.last().copied().unwrap_or(0),
    );
}
