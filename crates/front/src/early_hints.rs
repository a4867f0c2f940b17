//! 103 Early Hints (RFC 8297): a script's `headers_send(103)` on the native backend, sent to
//! an HTTP/1.1 client ahead of the final response.
//!
//! Owns: the hint context of a client request (a task-local the handler sets around it),
//! turning a worker's interim head into the bytes of one `HTTP/1.1 103 Early Hints` response
//! built from parsed and validated fields, the connection's [`Outbox`] those bytes wait in
//! until the socket wrapper (`conn::Watched`) writes them, and every reason a hint is
//! dropped: HTTP/1.0 (RFC 9110 15.2: no 1xx to a 1.0 client), HTTP/2 (hyper's server
//! offers no way to send an informational HEADERS frame), a status other than 103, a block
//! over [`MAX_BLOCK`], more than [`MAX_BLOCKS`] per request, a request not served on the
//! client's own task (deferred and scheduled requests), and hyper still holding bytes of an
//! earlier response.
//!
//! Never: writes to a socket, waits for the client, or sends anything once the final head
//! was handed to hyper (the exchange forwards hints only before that). Dropping a hint is
//! always allowed (RFC 8297 section 2): the final response is the same either way.
//!
//! Ordering: hyper's HTTP/1 dispatcher calls the socket's `poll_flush` only once its own
//! write buffer is empty, and writes only through `poll_write`/`poll_write_vectored`. The
//! outbox takes a block only while nothing was written yet or the last call it saw was a
//! flush ("drained"), and the wrapper writes queued blocks before anything else. So a block
//! never lands inside an earlier pipelined response, and always precedes the final head it
//! belongs to.
use crate::conn::ConnState;
use bytes::{Buf, BytesMut};
use http::{HeaderName, HeaderValue, Version};
use isola_fastcgi::{parse_head, MAX_CONTENT_LEN};
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

/// Largest 103 response sent (status line, fields, blank line): hints are a few `Link`
/// fields, and whatever waits in the outbox is memory per connection.
pub(crate) const MAX_BLOCK: usize = 8 * 1024;
/// Most 103 responses per request; later ones are dropped.
pub(crate) const MAX_BLOCKS: u8 = 4;

tokio::task_local! {
    static HINTS: Hints;
}

/// Where the hints of one client request go.
pub(crate) struct Hints {
    route: Route,
    /// Blocks queued for this request so far.
    sent: Cell<u8>,
}

enum Route {
    /// HTTP/1.1: into the connection's outbox.
    Http1(Arc<ConnState>),
    /// Dropped, for this reason (shown in the debug log).
    Unsupported(&'static str),
}

impl Hints {
    /// The context of a request that arrived on `conn` with `version`.
    pub(crate) fn new(conn: &Arc<ConnState>, version: Version) -> Hints {
        let route = match version {
            Version::HTTP_11 => Route::Http1(conn.clone()),
            Version::HTTP_2 => {
                Route::Unsupported("hyper's HTTP/2 server cannot send informational responses")
            }
            Version::HTTP_3 => Route::Unsupported("the HTTP/3 listener sends no 1xx response"),
            _ => Route::Unsupported("HTTP/1.0 clients get no 1xx response"),
        };
        Hints {
            route,
            sent: Cell::new(0),
        }
    }

    /// Queues the 103 for `content` (an interim CGI head); whether something was queued.
    fn offer(&self, rid: &str, content: &[u8]) -> bool {
        let conn = match &self.route {
            Route::Http1(conn) => conn,
            Route::Unsupported(why) => {
                tracing::debug!(request_id = rid, "early hints dropped: {why}");
                return false;
            }
        };
        if self.sent.get() >= MAX_BLOCKS {
            tracing::debug!(
                request_id = rid,
                "early hints dropped: more than {MAX_BLOCKS}"
            );
            return false;
        }
        let block = match block(content) {
            Ok(b) => b,
            Err(why) => {
                tracing::debug!(request_id = rid, "early hints dropped: {why}");
                return false;
            }
        };
        if !conn.outbox().offer(&block) {
            tracing::debug!(
                request_id = rid,
                "early hints dropped: connection busy writing"
            );
            return false;
        }
        self.sent.set(self.sent.get() + 1);
        true
    }
}

/// Runs `f` (a client request) with `hints` as its hint context.
pub(crate) async fn scope<F: Future>(hints: Hints, f: F) -> F::Output {
    HINTS.scope(hints, f).await
}

/// An interim head the worker sent before the final one. Queued for the client when the
/// request has a hint context on this task; then the task is woken, so the connection
/// reaches the socket (and writes the block) even if nothing else is ready.
pub(crate) async fn forward(rid: &str, content: &[u8]) {
    if HINTS.try_with(|h| h.offer(rid, content)) != Ok(true) {
        return;
    }
    std::future::poll_fn(|cx| {
        cx.waker().wake_by_ref();
        Poll::Ready(())
    })
    .await;
}

/// Why an interim head is not sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum Refused {
    #[error("status {0}: only 103 is forwarded")]
    Status(u16),
    #[error("malformed interim head: {0}")]
    Malformed(String),
    #[error("no field to send")]
    Empty,
    #[error("larger than {MAX_BLOCK} bytes")]
    TooLarge,
}

/// Fields a 1xx response must not carry: framing (RFC 9110 8.6, RFC 9112 6.1) and the
/// connection's own.
fn forbidden(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
    )
}

/// The bytes of the 103 response for an interim CGI head. Every field is re-checked as an
/// HTTP name and value and written from the parsed pair, never copied as a line: nothing
/// from the worker can add a line or end the block early.
fn block(content: &[u8]) -> Result<Vec<u8>, Refused> {
    let head = match parse_head(content, MAX_CONTENT_LEN + 1) {
        Ok(Some((head, _))) => head,
        Ok(None) => return Err(Refused::Malformed("no blank line".into())),
        Err(e) => return Err(Refused::Malformed(e.to_string())),
    };
    if head.status != 103 {
        return Err(Refused::Status(head.status));
    }
    let mut out = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
    let mut fields = 0;
    for (name, value) in head.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_maybe_shared(value),
        ) else {
            continue;
        };
        if forbidden(&name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
        fields += 1;
        if out.len() + 2 > MAX_BLOCK {
            return Err(Refused::TooLarge);
        }
    }
    if fields == 0 {
        return Err(Refused::Empty);
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// A connection's 103 responses waiting for its socket.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Something is queued: lets every write skip the lock while nothing is.
    pending: AtomicBool,
    /// hyper holds no unwritten bytes: nothing was written yet, or the last call on the
    /// socket was its flush.
    drained: AtomicBool,
    queue: Mutex<BytesMut>,
}

impl Default for Outbox {
    /// A new connection's: drained, as nothing was written on it. A worker can answer
    /// within the very first poll of the first request, before hyper first flushes.
    fn default() -> Self {
        Outbox {
            pending: AtomicBool::new(false),
            drained: AtomicBool::new(true),
            queue: Mutex::new(BytesMut::new()),
        }
    }
}

impl Outbox {
    fn queue(&self) -> std::sync::MutexGuard<'_, BytesMut> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `block` unless hyper may hold bytes of an earlier response (they must leave
    /// first, and the outbox cannot put anything behind them).
    fn offer(&self, block: &[u8]) -> bool {
        if !self.drained.load(Ordering::Acquire) {
            return false;
        }
        self.queue().extend_from_slice(block);
        self.pending.store(true, Ordering::Release);
        true
    }

    /// hyper flushes: its buffer is empty.
    pub(crate) fn flushing(&self) {
        self.drained.store(true, Ordering::Release);
    }

    /// hyper writes: what it writes may not all go, so hints wait for the next flush.
    pub(crate) fn writing(&self) {
        self.drained.store(false, Ordering::Release);
    }

    /// Writes what is queued to `io`; `Ready(Ok)` once nothing is.
    pub(crate) fn poll_send<S: AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pending.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        let mut q = self.queue();
        while !q.is_empty() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &q))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            q.advance(n);
        }
        self.pending.store(false, Ordering::Release);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn text(r: Result<Vec<u8>, Refused>) -> String {
        String::from_utf8(r.unwrap()).unwrap()
    }

    #[test]
    fn a_103_carries_the_fields_set_so_far() {
        let b = block(b"Status: 103\r\nLink: </style.css>; rel=preload\r\nX-Powered-By: PHP\r\nLink: </app.js>; rel=preload; as=script\r\n\r\n");
        assert_eq!(
            text(b),
            "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\nx-powered-by: PHP\r\nlink: </app.js>; rel=preload; as=script\r\n\r\n"
        );
    }

    #[test]
    fn framing_and_connection_fields_stay_out() {
        let b = block(
            b"Status: 103\r\nContent-Length: 5\r\nConnection: close\r\nLink: </a>; rel=preload\r\n\r\n",
        );
        assert_eq!(
            text(b),
            "HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n"
        );
    }

    #[test]
    fn other_statuses_empty_heads_and_garbage_are_refused() {
        assert_eq!(
            block(b"Status: 100\r\nLink: </a>\r\n\r\n"),
            Err(Refused::Status(100))
        );
        assert_eq!(block(b"Link: </a>\r\n\r\n"), Err(Refused::Status(200)));
        assert_eq!(block(b"Status: 103\r\n\r\n"), Err(Refused::Empty));
        assert!(matches!(
            block(b"Status: 103\r\nLink: </a>\r\n"),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(
            block(b"Status: 103\r\nbad line\r\n\r\n"),
            Err(Refused::Malformed(_))
        ));
    }

    #[test]
    fn a_crlf_in_a_value_cannot_make_a_line() {
        // A bare CR is refused by the CGI parser, a bare LF ends the line there: what follows
        // is a line of its own that must itself be a valid field, and the block is rebuilt
        // from the parsed fields either way.
        assert!(matches!(
            block(b"Status: 103\r\nLink: </a>\rHTTP/1.1 200 OK\r\n\r\n"),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(
            block(b"Status: 103\r\nLink: </a>\nHTTP/1.1 200 OK\r\n\r\n"),
            Err(Refused::Malformed(_))
        ));
        let b = text(block(
            b"Status: 103\r\nLink: </a>\x01\r\nLink: </b>\r\n\r\n",
        ));
        assert_eq!(b, "HTTP/1.1 103 Early Hints\r\nlink: </b>\r\n\r\n");
    }

    #[test]
    fn blocks_over_the_limit_are_refused() {
        let mut head = b"Status: 103\r\n".to_vec();
        for i in 0..200 {
            head.extend_from_slice(
                format!("Link: </asset/{i:040}.css>; rel=preload\r\n").as_bytes(),
            );
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(block(&head), Err(Refused::TooLarge));
    }

    #[test]
    fn the_outbox_takes_blocks_only_while_hyper_is_drained() {
        let o = Outbox::default();
        assert!(o.offer(b"a"), "nothing written yet");
        o.writing();
        assert!(!o.offer(b"x"), "hyper's bytes may still be in its buffer");
        o.flushing();
        assert!(o.offer(b"b"));
        o.writing();
        assert!(!o.offer(b"cd"));
        let mut sink = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(matches!(
            o.poll_send(&mut sink, &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(sink, b"ab");
        assert!(matches!(
            o.poll_send(&mut sink, &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(sink, b"ab");
    }
}
