//! Listeners and connections: accept, serve HTTP with hyper, stop gracefully.
use crate::conn::{ConnState, Timeouts, Watched};
use crate::handler::{self, App, Peer, Settings, Shared};
use crate::request_body::RequestBody;
use crate::tls::Tls;
use crate::ResponseBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use isola_pool::Pool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest request head (request line + headers) accepted; hyper's default is far larger.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in one request.
const MAX_HEADERS: usize = 100;

/// Connection limits, fixed for the server's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Time allowed for a request head: from accept for the first request, from its first
    /// byte for the next ones.
    pub header_read_timeout: Duration,
    /// Longest idle time between two requests on one connection.
    pub keepalive_timeout: Duration,
    /// Longest wait for open requests on stop.
    pub shutdown_timeout: Duration,
    /// Most connections open at once (both listeners together); beyond it, new clients
    /// wait in the kernel's listen backlog.
    pub max_connections: usize,
}

/// The front's settings and shared state.
pub struct Front {
    pub(crate) shared: Arc<Shared>,
    pub(crate) limits: ConnLimits,
    /// Permits for open connections, TCP and QUIC alike.
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
}

/// Swaps what the front serves with (configuration reload) while it runs.
#[derive(Clone)]
pub struct FrontHandle {
    shared: Arc<Shared>,
}

impl FrontHandle {
    /// The pools serving new requests now, one per site, with the site's label (its first
    /// name, else its document root).
    pub fn pools(&self) -> Vec<(String, Pool)> {
        self.shared
            .app()
            .sites
            .iter()
            .flat_map(|s| {
                let label = s
                    .names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| s.router.config().docroot.display().to_string());
                s.all_pools(&label)
            })
            .collect()
    }

    /// Client request outcomes and latencies since start (reloads keep counting).
    pub fn request_stats(&self) -> crate::stats::RequestStats {
        self.shared.stats.snapshot()
    }

    /// Runs an internal request (a schedule's, a job's); resolves when it is done.
    pub async fn internal_request(
        &self,
        req: crate::internal::Internal<'_>,
    ) -> crate::internal::Outcome {
        crate::internal::run(&self.shared, req).await
    }

    /// Load of the pool that runs `queue`'s jobs (the site's web pool, unless the queue
    /// has its own) on the site serving `host` (the default site when `None`); `None` when
    /// no site answers `host`.
    pub fn headroom(
        &self,
        host: Option<&str>,
        queue: Option<&str>,
    ) -> Option<isola_pool::Headroom> {
        let host = host.and_then(|h| http::HeaderValue::from_str(h).ok());
        let app = self.shared.app();
        let site = app.pick(host.as_ref()).ok()?;
        Some(site.pool_for(queue).headroom())
    }

    /// Replaces the worker-mode workers of the sites served from `docroot` (their code
    /// changed); returns how many pools that reached.
    pub fn recycle_workers(&self, docroot: &std::path::Path, why: &str) -> usize {
        let app = self.shared.app();
        let mut n = 0;
        for site in app.sites.iter() {
            if let Some((_, pool)) = &site.worker {
                if site.router.config().docroot == docroot {
                    pool.recycle_all(why);
                    n += 1;
                }
            }
        }
        n
    }

    /// The access log in force, to reopen it (SIGUSR1).
    pub fn access_log(&self) -> Option<crate::AccessLog> {
        self.shared.app().options.access_log.clone()
    }

    /// Serves new requests with `settings`; requests already running keep what they
    /// started with. Returns the pools that were replaced, for the caller to drain.
    pub fn swap(&self, settings: Settings) -> Vec<Pool> {
        let app = App::new(settings);
        let mut cur = self
            .shared
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut *cur, Arc::new(app));
        old.sites
            .iter()
            .flat_map(|s| s.all_pools(""))
            .map(|(_, p)| p)
            .collect()
    }
}

impl Front {
    /// A front serving `settings` within `limits`.
    pub fn new(settings: Settings, limits: ConnLimits) -> Self {
        let app = App::new(settings);
        Self {
            shared: Arc::new(Shared {
                current: std::sync::RwLock::new(Arc::new(app)),
                stats: crate::stats::Stats::default(),
            }),
            connections: Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1))),
            limits,
        }
    }

    /// A handle to swap the configuration while serving.
    pub fn handle(&self) -> FrontHandle {
        FrontHandle {
            shared: self.shared.clone(),
        }
    }
}

/// What the front listens on.
pub struct Listeners {
    /// The plain-HTTP listener (HTTP/1.1 and h2c).
    pub plain: TcpListener,
    /// The HTTPS listener and its certificates (HTTP/2 or HTTP/1.1 by ALPN), if enabled.
    pub tls: Option<(TcpListener, Tls)>,
    /// Answer every plain-HTTP request with a redirect to the same URL on the HTTPS
    /// listener (only with [`Listeners::tls`]).
    pub redirect_http_to_https: bool,
    /// HTTP/3 (experimental): a UDP socket bound to the HTTPS listener's address, served
    /// with the same certificates and announced by `Alt-Svc` on the HTTPS listener's
    /// responses (only with [`Listeners::tls`]).
    pub quic: Option<std::net::UdpSocket>,
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and waits up to the
/// shutdown timeout for open requests to finish.
pub async fn serve(listener: TcpListener, front: Front, shutdown: impl Future<Output = ()>) {
    let listeners = Listeners {
        plain: listener,
        tls: None,
        redirect_http_to_https: false,
        quic: None,
    };
    serve_listeners(listeners, front, shutdown).await;
}

/// Like [`serve`], on every listener in `listeners`.
pub async fn serve_listeners(
    listeners: Listeners,
    front: Front,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Head and idle timeouts are the connection watchdog's (conn.rs): hyper's own header
    // timer also runs between requests and would cut keep-alive short.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES.max(8192))
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    // Where plain-HTTP requests are sent instead, when redirecting.
    let redirect_port = match &listeners.tls {
        Some((l, _)) if listeners.redirect_http_to_https => l.local_addr().ok().map(|a| a.port()),
        _ => None,
    };
    // ACME HTTP-01 answers live with the certificates; both listeners give them.
    let acme = listeners.tls.as_ref().map(|(_, t)| t);
    // HTTP/3 beside the HTTPS listener, on its port; refused (logged) when QUIC cannot
    // start, so HTTPS goes on without it.
    let quic = match (&listeners.tls, listeners.quic) {
        (Some((_, tls)), Some(socket)) => match crate::h3::Quic::new(socket, tls, &front.limits) {
            Ok(q) => Some(q),
            Err(e) => {
                tracing::error!("HTTP/3 disabled: {e}");
                None
            }
        },
        _ => None,
    };
    if let Some(q) = &quic {
        tracing::info!(alt_svc = ?q.alt_svc(), "HTTP/3 (experimental) on the HTTPS port, UDP");
    }
    let alt_svc = quic.as_ref().map(crate::h3::Quic::alt_svc);
    let (quic_stop, quic_running) = tokio::sync::watch::channel(false);
    let plain = accept_loop(
        &listeners.plain,
        Role {
            tls: None,
            acme,
            redirect_port,
            alt_svc: None,
        },
        &front,
        &builder,
        &graceful,
    );
    let tls = async {
        match &listeners.tls {
            Some((l, tls)) => {
                let role = Role {
                    tls: Some(tls),
                    acme,
                    redirect_port: None,
                    alt_svc,
                };
                accept_loop(l, role, &front, &builder, &graceful).await
            }
            None => std::future::pending().await,
        }
    };
    let h3 = async {
        match &quic {
            Some(q) => q.accept_loop(&front, quic_running).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = shutdown => {}
        () = plain => {}
        () = tls => {}
        () = h3 => {}
    }
    drop(listeners.plain);
    drop(listeners.tls);
    if let Some(q) = &quic {
        q.stop_accepting();
    }
    // Each QUIC connection sends GOAWAY and ends once its open requests are done.
    let _ = quic_stop.send(true);
    tracing::info!("stopped accepting; waiting for open requests");
    let open = async {
        tokio::join!(graceful.shutdown(), quic_stop.closed());
    };
    if tokio::time::timeout(front.limits.shutdown_timeout, open)
        .await
        .is_err()
    {
        tracing::warn!(
            "open requests still running after {:?}; closing their connections",
            front.limits.shutdown_timeout
        );
    }
    if let Some(q) = quic {
        q.close().await;
    }
}

/// What a listener does besides serving the sites.
struct Role<'a> {
    /// Its TLS side: connections are served after the handshake.
    tls: Option<&'a Tls>,
    /// Where ACME HTTP-01 answers come from, answered before anything else.
    acme: Option<&'a Tls>,
    /// Every request is answered with a redirect to HTTPS on this port instead.
    redirect_port: Option<u16>,
    /// Added to every response (HTTP/3 on the HTTPS port).
    alt_svc: Option<http::HeaderValue>,
}

/// Accepts connections on `listener` for ever; each is served in its own task, as `role`
/// says.
async fn accept_loop(
    listener: &TcpListener,
    role: Role<'_>,
    front: &Front,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    graceful: &GracefulShutdown,
) {
    let Role {
        tls,
        acme,
        redirect_port,
        alt_svc,
    } = role;
    let timeouts = Timeouts {
        header_read: front.limits.header_read_timeout,
        keepalive: front.limits.keepalive_timeout,
    };
    loop {
        // At the connection limit, stop accepting: clients wait in the backlog instead of
        // costing memory and file descriptors here.
        let Ok(permit) = front.connections.clone().acquire_owned().await else {
            return;
        };
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(remote);
        let peer = Peer {
            remote,
            local,
            https: tls.is_some(),
        };
        let state = ConnState::new(timeouts);
        let shared = front.shared.clone();
        let conn_state = state.clone();
        let acme = acme.cloned();
        let alt_svc = alt_svc.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let shared = shared.clone();
            let guard = conn_state.start(req.version() == http::Version::HTTP_2);
            let mut req = req.map(RequestBody::Hyper);
            host_from_authority(&mut req);
            // Before redirects, routing and PHP: the CA must get the token as it is.
            let http01 = acme
                .as_ref()
                .and_then(|t| t.http01_answer(req.uri().path()));
            let alt_svc = alt_svc.clone();
            async move {
                if let Some(answer) = http01 {
                    if let Some(key_authorization) = answer.await {
                        drop(guard);
                        return Ok(Response::new(ResponseBody::full(key_authorization)));
                    }
                }
                let redirect = redirect_port.filter(|_| !forwarded_https(&shared, &req, remote));
                let mut resp = match redirect {
                    Some(port) => {
                        drop(guard);
                        redirect_to_https(&req, local, port)
                    }
                    None => handler::handle(shared, req, peer, guard).await,
                };
                if let Some(v) = alt_svc {
                    resp.headers_mut().entry(http::header::ALT_SVC).or_insert(v);
                }
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let builder = builder.clone();
        // Counted by the graceful shutdown from now on, handshake included.
        let watcher = graceful.watcher();
        let tls = tls.cloned();
        let handshake_timeout = front.limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let serve = async {
                match tls {
                    None => {
                        let io = TokioIo::new(Watched::new(stream, state.clone()));
                        let conn = builder.serve_connection(io, service).into_owned();
                        watcher.watch(conn).await
                    }
                    Some(tls) => {
                        let stream = match tls.accept(stream, handshake_timeout).await {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!(client = %remote, "TLS handshake: {e}");
                                return Ok(());
                            }
                        };
                        let io = TokioIo::new(Watched::new(stream, state.clone()));
                        let conn = builder.serve_connection(io, service).into_owned();
                        watcher.watch(conn).await
                    }
                }
            };
            tokio::select! {
                r = serve => {
                    if let Err(e) = r {
                        tracing::debug!(client = %remote, "connection: {e}");
                    }
                }
                () = state.expired() => {
                    tracing::debug!(client = %remote, "connection closed: idle or head too slow");
                }
            }
        });
    }
}

/// A trusted proxy says the client used HTTPS: redirecting it to HTTPS would loop.
fn forwarded_https(shared: &Shared, req: &Request<RequestBody>, remote: SocketAddr) -> bool {
    let app = shared.app();
    crate::proxy::client(remote, false, req.headers(), &app.options.trusted_proxies).https
}

/// HTTP/2 and HTTP/3 carry the host in the `:authority` pseudo-header, not in `Host`; PHP (HTTP_HOST,
/// SERVER_NAME) and the redirect expect `Host`, so it is filled in from the authority.
pub(crate) fn host_from_authority<B>(req: &mut Request<B>) {
    if req.headers().contains_key(http::header::HOST) {
        return;
    }
    let Some(a) = req.uri().authority() else {
        return;
    };
    // Never userinfo (forbidden in :authority anyway): only host and port.
    let host = match a.port() {
        Some(p) => format!("{}:{}", a.host(), p.as_str()),
        None => a.host().to_string(),
    };
    if let Ok(v) = http::HeaderValue::try_from(host) {
        req.headers_mut().insert(http::header::HOST, v);
    }
}

/// 301 (GET and HEAD) or 308 (other methods, which must keep their method and body) to
/// the same path and query on the HTTPS listener's `port`, at the host the client asked
/// for (else the address it reached).
fn redirect_to_https(
    req: &Request<RequestBody>,
    local: SocketAddr,
    port: u16,
) -> Response<ResponseBody> {
    let asked = req
        .uri()
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| {
            let h = req.headers().get(http::header::HOST)?.to_str().ok()?;
            let a: http::uri::Authority = h.parse().ok()?;
            Some(a.host().to_string())
        })
        .filter(|h| !h.is_empty());
    let host = asked.unwrap_or_else(|| match local.ip().to_canonical() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    });
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    let status = if matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        http::StatusCode::MOVED_PERMANENTLY
    } else {
        http::StatusCode::PERMANENT_REDIRECT
    };
    let mut res = Response::new(ResponseBody::Empty);
    *res.status_mut() = status;
    match http::HeaderValue::try_from(location) {
        Ok(v) => {
            res.headers_mut().insert(http::header::LOCATION, v);
        }
        Err(_) => *res.status_mut() = http::StatusCode::BAD_REQUEST,
    }
    res.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from_static("0"),
    );
    res
}
