//! The request body the pipeline reads, whichever protocol carried it.
//!
//! Owns: [`RequestBody`], one type for hyper's body (HTTP/1.1, HTTP/2) and an HTTP/3
//! request stream's receiving half, so `handler.rs` and `spool.rs` have one path for all
//! three; and telling an HTTP/3 client to stop sending a body nobody will read.
//!
//! Never: buffers, counts or limits bytes (`spool.rs` does), or boxes: hyper's variant is
//! hyper's own value, moved in, so HTTP/1.1 and HTTP/2 pay nothing per request for it.
use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The receiving half of an HTTP/3 request stream.
pub(crate) type H3Recv = h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;

/// A client's request body.
pub(crate) enum RequestBody {
    /// HTTP/1.1 or HTTP/2, from hyper.
    Hyper(Incoming),
    /// HTTP/3.
    H3(H3Body),
}

/// Why a request body could not be read: the client's framing or stream broke.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// HTTP/1.1 or HTTP/2.
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// HTTP/3.
    #[error(transparent)]
    H3(#[from] h3::error::StreamError),
}

/// An HTTP/3 request body: the DATA frames of its stream.
pub(crate) struct H3Body {
    stream: H3Recv,
    /// The client finished its stream: nothing more to read, nothing to stop.
    done: bool,
}

impl H3Body {
    pub(crate) fn new(stream: H3Recv) -> Self {
        H3Body {
            stream,
            done: false,
        }
    }
}

impl Drop for H3Body {
    /// An early answer (404, 413...) leaves the body unread: RFC 9114 4.1 lets the server
    /// ask the client to stop sending with H3_NO_ERROR, and the response still stands.
    fn drop(&mut self) {
        if !self.done {
            self.stream.stop_sending(h3::error::Code::H3_NO_ERROR);
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            RequestBody::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BodyError::Hyper))),
            RequestBody::H3(b) => {
                if b.done {
                    return Poll::Ready(None);
                }
                match ready!(b.stream.poll_recv_data(cx)) {
                    Ok(Some(mut data)) => {
                        let n = data.remaining();
                        Poll::Ready(Some(Ok(Frame::data(data.copy_to_bytes(n)))))
                    }
                    // Request trailers, if any, are not read: CGI has no place for them.
                    Ok(None) => {
                        b.done = true;
                        Poll::Ready(None)
                    }
                    Err(e) => {
                        b.done = true;
                        Poll::Ready(Some(Err(BodyError::H3(e))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(b) => b.is_end_stream(),
            RequestBody::H3(b) => b.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Hyper(b) => b.size_hint(),
            RequestBody::H3(_) => SizeHint::default(),
        }
    }
}
