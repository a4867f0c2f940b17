//! HTTP/3 (RFC 9114, experimental): the QUIC listener on the HTTPS listener's port (UDP),
//! feeding the same request pipeline as HTTP/1.1 and HTTP/2.
//!
//! Owns: the QUIC endpoint and its transport limits (streams per connection, idle time),
//! the QUIC handshake and its time limit, one task per connection (its request streams,
//! GOAWAY on stop, its share of `max_connections`), one task per request stream (its head
//! within `header_read_timeout`, the pipeline's response written as HEADERS, DATA and
//! trailers), and the `Alt-Svc` value that announces the listener.
//!
//! Never: answers a request itself (`handler.rs` does, exactly as for TCP), picks a
//! certificate (the HTTPS listener's resolver in `tls.rs`, shared so reloads reach both),
//! accepts 0-RTT data (replayable), or sends 1xx responses.
use crate::body::ResponseBody;
use crate::conn::{ConnState, RequestGuard, Timeouts};
use crate::handler::{self, Peer, Shared};
use crate::request_body::{H3Body, RequestBody};
use crate::server::{ConnLimits, Front, MAX_HEAD_BYTES};
use crate::tls::Tls;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most request streams a client may have open at once on one connection (as HTTP/2's
/// usual `SETTINGS_MAX_CONCURRENT_STREAMS`).
const MAX_STREAMS: u32 = 100;
/// Most unidirectional streams a client may open: HTTP/3 needs three (control, QPACK
/// encoder and decoder); the rest is room for extensions it may try.
const MAX_UNI_STREAMS: u32 = 16;
/// How long a connection waits, on stop, once its last request is answered, for the client
/// to read that answer and close (within `shutdown_timeout` all the same).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long the endpoint waits, on stop, for its last CONNECTION_CLOSE frames to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// QUIC's code for a connection closed without error, which HTTP/3 names H3_NO_ERROR.
const H3_NO_ERROR: u32 = 0x100;

/// Why the HTTP/3 listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The certificates' configuration does not suit QUIC.
    #[error("QUIC TLS setup: {0}")]
    Tls(String),
    /// The UDP socket cannot be used.
    #[error("UDP socket: {0}")]
    Socket(#[from] std::io::Error),
}

/// The HTTP/3 listener.
pub(crate) struct Quic {
    endpoint: quinn::Endpoint,
    port: u16,
}

impl Quic {
    /// An endpoint on `socket` with `tls`'s certificates, within `limits`.
    pub(crate) fn new(
        socket: std::net::UdpSocket,
        tls: &Tls,
        limits: &ConnLimits,
    ) -> Result<Self, QuicError> {
        let crypto = tls
            .quic_config()
            .map_err(|e| QuicError::Tls(e.to_string()))?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto)
            .map_err(|e| QuicError::Tls(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(transport(limits.keepalive_timeout)));
        socket.set_nonblocking(true)?;
        let port = socket.local_addr()?.port();
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        Ok(Quic { endpoint, port })
    }

    /// `Alt-Svc` for the HTTPS listener's responses: HTTP/3 on the same port, for a day.
    pub(crate) fn alt_svc(&self) -> HeaderValue {
        alt_svc(self.port)
    }

    /// Accepts connections until the endpoint stops accepting; each is served on its own
    /// task, which ends when `running` turns true and its requests are done (the sender
    /// learns all have ended when every clone of `running` is dropped).
    pub(crate) async fn accept_loop(&self, front: &Front, running: watch::Receiver<bool>) {
        let timeouts = Timeouts {
            header_read: front.limits.header_read_timeout,
            keepalive: front.limits.keepalive_timeout,
        };
        let local = self
            .endpoint
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], self.port)));
        loop {
            // As the TCP listeners do: at the connection limit, stop accepting; new QUIC
            // clients wait in quinn's queue of incoming connections (bounded by quinn),
            // as TCP clients wait in the kernel's backlog.
            let Ok(permit) = front.connections.clone().acquire_owned().await else {
                return;
            };
            let Some(incoming) = self.endpoint.accept().await else {
                return;
            };
            let shared = front.shared.clone();
            let running = running.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let remote = incoming.remote_address();
                if let Err(e) = connection(incoming, local, shared, timeouts, running).await {
                    tracing::debug!(client = %remote, "HTTP/3 connection: {e}");
                }
            });
        }
    }

    /// New connections are refused from now on; open ones go on.
    pub(crate) fn stop_accepting(&self) {
        self.endpoint.set_server_config(None);
    }

    /// Closes what is still open and lets the last frames leave.
    pub(crate) async fn close(self) {
        self.endpoint
            .close(quinn::VarInt::from_u32(H3_NO_ERROR), b"shutting down");
        let _ = tokio::time::timeout(CLOSE_GRACE, self.endpoint.wait_idle()).await;
    }
}

/// The QUIC transport limits of every connection.
fn transport(idle: Duration) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(MAX_STREAMS));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(MAX_UNI_STREAMS));
    // QUIC's idle timeout is 2^62 ms at most; anything above that is effectively forever.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    t
}

/// `h3=":PORT"; ma=86400`.
fn alt_svc(port: u16) -> HeaderValue {
    HeaderValue::try_from(format!("h3=\":{port}\"; ma=86400"))
        .unwrap_or_else(|_| HeaderValue::from_static("clear"))
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("handshake: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    #[error("handshake timed out")]
    HandshakeTimeout,
    #[error("{0}")]
    H3(#[from] h3::error::ConnectionError),
}

/// One QUIC connection: its handshake, then its request streams until it closes, goes
/// idle, or the server stops (then GOAWAY, and the open requests finish).
async fn connection(
    incoming: quinn::Incoming,
    listen: SocketAddr,
    shared: Arc<Shared>,
    timeouts: Timeouts,
    mut running: watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let remote = incoming.remote_address();
    let connecting = incoming.accept()?;
    let conn = tokio::time::timeout(timeouts.header_read, connecting)
        .await
        .map_err(|_| ConnError::HandshakeTimeout)??;
    let local = SocketAddr::new(conn.local_ip().unwrap_or(listen.ip()), listen.port());
    let peer = Peer {
        remote,
        local,
        https: true,
    };
    let mut h3: h3::server::Connection<h3_quinn::Connection, Bytes> = h3::server::builder()
        .max_field_section_size(MAX_HEAD_BYTES as u64)
        .build(h3_quinn::Connection::new(conn.clone()))
        .await?;
    // The same clock as a TCP connection's: head time for the first request, then
    // keep-alive time whenever no request is open (QUIC's own idle timeout only sees
    // packets, and a client's PINGs would keep it alive for ever).
    let state = ConnState::new(timeouts);
    let mut requests = tokio::task::JoinSet::new();
    let mut stopping = false;
    loop {
        if stopping && requests.is_empty() {
            break;
        }
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let guard = state.start(true);
                    let shared = shared.clone();
                    let head_timeout = timeouts.header_read;
                    requests.spawn(async move {
                        let done = request(resolver, shared, peer, guard, head_timeout).await;
                        if let Err(e) = done {
                            tracing::debug!(client = %remote, "HTTP/3 request: {e}");
                        }
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    if !e.is_h3_no_error() {
                        tracing::debug!(client = %remote, "HTTP/3 connection: {e}");
                    }
                    break;
                }
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
            changed = running.changed(), if !stopping => {
                // Stop (or the server side gone): no new request from here on.
                let _ = changed;
                stopping = true;
                let _ = h3.shutdown(0).await;
            }
            () = state.expired(), if !stopping => {
                tracing::debug!(client = %remote, "HTTP/3 connection closed: idle or head too slow");
                break;
            }
        }
    }
    // Requests still open when the client closed or broke the connection end with it.
    requests.abort_all();
    while requests.join_next().await.is_some() {}
    if stopping {
        // A finished stream may still have data in flight, and closing a QUIC connection
        // drops it: after GOAWAY, the client is given a little time to read its last
        // responses and close the connection itself.
        let _ = tokio::time::timeout(DRAIN_GRACE, conn.closed()).await;
    }
    conn.close(quinn::VarInt::from_u32(H3_NO_ERROR), b"");
    drop(running);
    Ok(())
}

/// Why a request stream ended early.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("{0}")]
    H3(#[from] h3::error::StreamError),
    #[error("request head timed out")]
    HeadTimeout,
    #[error("response body: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// One request stream: its head, the pipeline, the response written back.
async fn request(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    shared: Arc<Shared>,
    peer: Peer,
    guard: RequestGuard,
    head_timeout: Duration,
) -> Result<(), StreamError> {
    let (req, stream) = tokio::time::timeout(head_timeout, resolver.resolve_request())
        .await
        .map_err(|_| StreamError::HeadTimeout)??;
    let (mut send, recv) = stream.split();
    let mut req = req.map(|()| RequestBody::H3(H3Body::new(recv)));
    crate::server::host_from_authority(&mut req);
    let is_head = req.method() == Method::HEAD;
    let resp = handler::handle(shared, req, peer, guard).await;
    write_response(&mut send, resp, is_head).await
}

/// The pipeline's response as HTTP/3 frames. The body is dropped (its access log line
/// written) only once the stream is finished, or broken: a client that left is logged
/// as such.
async fn write_response(
    send: &mut h3::server::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>,
    resp: Response<ResponseBody>,
    is_head: bool,
) -> Result<(), StreamError> {
    let (mut parts, mut body) = resp.into_parts();
    let exact = http_body::Body::size_hint(&body).exact();
    h3_headers(&mut parts.headers, parts.status, exact, is_head);
    send.send_response(Response::from_parts(parts, ())).await?;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                // A response cut short must not look complete: reset, not finish.
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return Err(StreamError::Body(e));
            }
        };
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) => send.send_data(data).await?,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers).await?;
                    break;
                }
            }
        }
    }
    send.finish().await?;
    Ok(())
}

/// Response headers as HTTP/3 wants them: no connection-specific fields (RFC 9114 4.2
/// makes a message carrying them malformed), and Content-Length when the body's length
/// is known and the client would otherwise learn it only at the end (hyper does the same
/// on HTTP/1.1 and HTTP/2).
fn h3_headers(h: &mut HeaderMap, status: StatusCode, exact: Option<u64>, is_head: bool) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
    ] {
        h.remove(name);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if let Some(n) = exact {
        if !is_head && !bodiless && !h.contains_key(header::CONTENT_LENGTH) {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn alt_svc_names_the_port() {
        assert_eq!(alt_svc(8443), "h3=\":8443\"; ma=86400");
    }

    #[test]
    fn connection_headers_are_removed_and_lengths_added() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h3_headers(&mut h, StatusCode::OK, Some(12), false);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h[header::CONTENT_LENGTH], "12");

        // HEAD, 204 and 304 keep what they were given; a length already set stays.
        for (status, head) in [
            (StatusCode::OK, true),
            (StatusCode::NO_CONTENT, false),
            (StatusCode::NOT_MODIFIED, false),
        ] {
            let mut h = HeaderMap::new();
            h3_headers(&mut h, status, Some(0), head);
            assert!(h.is_empty(), "{status} {head}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        h3_headers(&mut h, StatusCode::OK, Some(3), true);
        assert_eq!(h[header::CONTENT_LENGTH], "99");
        let mut h = HeaderMap::new();
        h3_headers(&mut h, StatusCode::OK, None, false);
        assert!(h.is_empty());
    }

    #[test]
    fn transport_limits_and_a_quic_ready_tls_config() {
        let t = transport(Duration::from_secs(75));
        let dbg = format!("{t:?}");
        assert!(dbg.contains("max_concurrent_bidi_streams: 100"), "{dbg}");
        let d = tempfile::tempdir().unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
        let files = crate::tls::CertFiles {
            cert: d.path().join("a.pem"),
            key: d.path().join("a.key"),
        };
        std::fs::write(&files.cert, c.cert.pem()).unwrap();
        std::fs::write(&files.key, c.key_pair.serialize_pem()).unwrap();
        let tls = Tls::load(&[files]).unwrap();
        // quinn refuses a configuration without TLS 1.3 or with partial early data.
        quinn::crypto::rustls::QuicServerConfig::try_from(tls.quic_config().unwrap()).unwrap();
    }
}
