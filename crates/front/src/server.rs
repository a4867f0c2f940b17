//! Listeners and connections: accept, serve HTTP with hyper, stop gracefully.
use crate::handler::{self, App, Limits, Peer, Site};
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
    app: Arc<App>,
    header_read_timeout: Duration,
    shutdown_timeout: Duration,
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
        let app = App {
            site,
            pool,
            limits,
            server_software: format!("isola/{}", env!("CARGO_PKG_VERSION")),
            access_log,
        };
        Self {
            app: Arc::new(app),
            header_read_timeout,
            shutdown_timeout,
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
        let app = front.app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(handler::handle(app, req, peer).await) }
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
