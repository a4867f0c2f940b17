//! Listeners and connections: accept, serve HTTP with hyper, stop gracefully.
use crate::handler::{self, App, Limits, Peer, Shared, Site};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use isola_pool::Pool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest request head (request line + headers) accepted; hyper's default is far larger.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in one request.
const MAX_HEADERS: usize = 100;

/// The front's settings and shared state.
pub struct Front {
    shared: Arc<Shared>,
    header_read_timeout: Duration,
    shutdown_timeout: Duration,
}

/// Swaps what the front serves with (configuration reload) while it runs.
#[derive(Clone)]
pub struct FrontHandle {
    shared: Arc<Shared>,
}

impl FrontHandle {
    /// The pool serving new requests now.
    pub fn pool(&self) -> Pool {
        self.shared.app().pool.clone()
    }

    /// Serves new requests with `site`, `pool` and `limits`; requests already running keep
    /// what they started with. Returns the pool that was replaced, for the caller to drain.
    pub fn swap(&self, site: Site, pool: Pool, limits: Limits, access_log: bool) -> Pool {
        let app = App::new(site, pool, limits, access_log);
        let mut cur = self
            .shared
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut *cur, Arc::new(app));
        old.pool.clone()
    }
}

impl Front {
    /// A front serving `site` with workers from `pool`.
    pub fn new(
        site: Site,
        pool: Pool,
        limits: Limits,
        header_read_timeout: Duration,
        shutdown_timeout: Duration,
        access_log: bool,
    ) -> Self {
        let app = App::new(site, pool, limits, access_log);
        Self {
            shared: Arc::new(Shared {
                current: std::sync::RwLock::new(Arc::new(app)),
            }),
            header_read_timeout,
            shutdown_timeout,
        }
    }

    /// A handle to swap the configuration while serving.
    pub fn handle(&self) -> FrontHandle {
        FrontHandle {
            shared: self.shared.clone(),
        }
    }
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and waits up to the
/// shutdown timeout for open requests to finish.
pub async fn serve(listener: TcpListener, front: Front, shutdown: impl Future<Output = ()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(front.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES.max(8192))
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(remote);
        let peer = Peer {
            remote,
            local,
            https: false,
        };
        let shared = front.shared.clone();
        let service = service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(handler::handle(shared, req, peer).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(client = %remote, "connection: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; waiting for open requests");
    if tokio::time::timeout(front.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "open requests still running after {:?}; closing their connections",
            front.shutdown_timeout
        );
    }
}
