//! The response body type: a whole buffer, a stream from a PHP worker, or a file.
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Error type carried by a streamed body that broke midway (worker died, timed out).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a producer task sends for a streamed body. The stream is complete only when `End`
/// arrives: a producer that goes away without it (worker crash, time limit) makes the body
/// fail, so a truncated response is never framed as a complete one.
#[derive(Debug)]
pub enum StreamChunk {
    /// Body bytes.
    Data(Bytes),
    /// The body is complete.
    End,
}

/// A response body.
pub enum ResponseBody {
    /// Nothing.
    Empty,
    /// A complete buffer: its length is known, so Content-Length is exact.
    Full(Option<Bytes>),
    /// Chunks arriving from a producer task.
    Stream(Option<mpsc::Receiver<StreamChunk>>),
    /// Chunks of a file read by a producer task.
    File(
        Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>,
        u64,
    ),
    /// Another body compressed as it streams (brotli, zstd or gzip; see `compress.rs`).
    Encoded(Box<crate::compress::Encoded>),
    /// Another body, counted, with a hook run once when it is done.
    Tracked(Box<Tracked>),
}

/// What [`Tracked`] runs when its body is done: the bytes sent, and whether the body was
/// sent whole (false when the client went away or the source broke).
pub type OnFinish = Box<dyn FnOnce(u64, bool) + Send>;

/// A body that counts what it yields and reports once, when it ends or is dropped: the
/// access log's byte count and duration, and the connection's "request finished".
pub struct Tracked {
    inner: ResponseBody,
    bytes: u64,
    ended: bool,
    on_finish: Option<OnFinish>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(f) = self.on_finish.take() {
            let whole = self.ended || self.inner.is_end_stream();
            f(self.bytes, whole);
        }
    }
}

impl ResponseBody {
    /// This body, with `on_finish` run when it is done (see [`Tracked`]).
    pub(crate) fn tracked(self, on_finish: OnFinish) -> Self {
        ResponseBody::Tracked(Box::new(Tracked {
            inner: self,
            bytes: 0,
            ended: false,
            on_finish: Some(on_finish),
        }))
    }

    /// A body holding `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let b: Bytes = bytes.into();
        if b.is_empty() {
            ResponseBody::Empty
        } else {
            ResponseBody::Full(Some(b))
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(slot) => match slot.as_mut().map(|rx| rx.poll_recv(cx)) {
                None => Poll::Ready(None),
                Some(Poll::Ready(Some(StreamChunk::Data(b)))) => {
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                Some(Poll::Ready(Some(StreamChunk::End))) => {
                    *slot = None;
                    Poll::Ready(None)
                }
                Some(Poll::Ready(None)) => {
                    *slot = None;
                    Poll::Ready(Some(Err("response from the worker was cut short".into())))
                }
                Some(Poll::Pending) => Poll::Pending,
            },
            ResponseBody::File(s, remaining) => match s.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    *remaining = remaining.saturating_sub(b.len() as u64);
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            ResponseBody::Encoded(e) => Pin::new(&mut **e).poll_frame(cx),
            ResponseBody::Tracked(t) => {
                let polled = Pin::new(&mut t.inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(f))) => {
                        if let Some(d) = f.data_ref() {
                            t.bytes += d.len() as u64;
                        }
                    }
                    Poll::Ready(None) => t.ended = true,
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Full(b) => b.is_none(),
            ResponseBody::Stream(slot) => slot.is_none(),
            ResponseBody::File(_, remaining) => *remaining == 0,
            ResponseBody::Encoded(e) => e.is_end_stream(),
            ResponseBody::Tracked(t) => t.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty => SizeHint::with_exact(0),
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Stream(_) => SizeHint::default(),
            ResponseBody::File(_, remaining) => SizeHint::with_exact(*remaining),
            ResponseBody::Encoded(e) => e.size_hint(),
            ResponseBody::Tracked(t) => t.inner.size_hint(),
        }
    }
}
