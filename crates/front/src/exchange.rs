//! One FastCGI exchange over a leased worker connection.
//!
//! The request (BEGIN_REQUEST, PARAMS, STDIN) is written while the response is read, so a
//! script that prints before it reads its input cannot deadlock against us. The caller gets
//! the parsed CGI head as soon as it is complete; the body follows as a [`ResponseBody`],
//! whole when the worker already finished, else streamed chunk by chunk (so `flush()` in
//! PHP reaches the client at once).
//!
//! The worker is released only when its END_REQUEST has been read, or killed when the
//! connection broke, the response was malformed or the time limit passed. A request that
//! reached a worker is never re-sent anywhere else: it may not be idempotent.
use crate::body::{ResponseBody, StreamChunk};
use crate::detach::Detach;
use crate::spool::Spooled;
use bytes::{Bytes, BytesMut};
use isola_fastcgi::{encode_stdin, parse_head, CgiHead, Event, ResponseDecoder};
use isola_pool::{Lease, Outcome};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The FastCGI request id used on every connection: one request at a time per worker.
pub const REQUEST_ID: u16 = 1;
/// Largest CGI response head accepted (nginx's fastcgi_buffer_size is 4-8 KiB; apps with
/// many cookies need more).
const MAX_HEAD: usize = 64 * 1024;
/// Chunks buffered between the worker and a slow client before the worker is paused.
const STREAM_DEPTH: usize = 16;
/// Set in END_REQUEST's appStatus (exit statuses use the low byte) by a worker that ends
/// after this request: a worker script that stopped. It must not be handed another one.
const APP_STATUS_LAST: u32 = 1 << 31;

/// Why no response came from the worker.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("worker closed the connection before answering")]
    WorkerGone,
    #[error("worker i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed fastcgi response: {0}")]
    Protocol(#[from] isola_fastcgi::DecodeError),
    #[error("malformed cgi response head: {0}")]
    Head(#[from] isola_fastcgi::CgiError),
    #[error("request ran past request_terminate_timeout")]
    Timeout,
}

/// The response head and body.
pub type Answer = (CgiHead, ResponseBody);

/// Runs the exchange and returns once the head is known. The exchange runs on the
/// caller's task; what is left of it when the head is known (a streamed body), or when the
/// caller is dropped first, goes on on a task of its own, so the worker is always read to
/// its END_REQUEST. A small response read whole costs no task at all.
pub async fn start(
    lease: Lease,
    request: BytesMut,
    body: Option<Spooled>,
    deadline: Option<Instant>,
    rid: Arc<str>,
) -> Result<Answer, UpstreamError> {
    let (tx, mut rx) = oneshot::channel();
    let mut run = Detach::new(drive(lease, request, body, deadline, tx, rid));
    tokio::select! {
        biased;
        // Done: the head (or the reason there is none) was sent before it ended.
        () = &mut run => rx.try_recv().unwrap_or(Err(UpstreamError::WorkerGone)),
        // The head is known and the body still streams: `run` moves to its own task.
        head = &mut rx => head.unwrap_or(Err(UpstreamError::WorkerGone)),
    }
}

/// Where the response goes: first the head (with the body handle), then body chunks.
struct Sink {
    head: Option<oneshot::Sender<Result<Answer, UpstreamError>>>,
    body: Option<mpsc::Sender<StreamChunk>>,
    /// Fired once when the client is found gone, to tell the worker (ABORT_REQUEST).
    gone: Option<oneshot::Sender<()>>,
}

impl Sink {
    fn client_gone(&mut self) {
        if let Some(tx) = self.gone.take() {
            let _ = tx.send(());
        }
    }
}

enum Finish {
    /// END_REQUEST read and nothing left half-written: the worker can serve again.
    Clean,
    /// As `Clean`, but the worker said it ends now.
    Last,
    /// END_REQUEST read but our STDIN was not fully written: the connection holds
    /// unread request bytes, so the worker cannot be reused.
    Unsynced,
    /// The exchange failed.
    Failed(UpstreamError),
}

async fn drive(
    mut lease: Lease,
    request: BytesMut,
    body: Option<Spooled>,
    deadline: Option<Instant>,
    head: oneshot::Sender<Result<Answer, UpstreamError>>,
    rid: Arc<str>,
) {
    let (gone_tx, gone_rx) = oneshot::channel();
    let abortable = lease.honours_abort();
    let mut sink = Sink {
        head: Some(head),
        body: None,
        gone: abortable.then_some(gone_tx),
    };
    let fut = exchange(&mut lease, request, body, &mut sink, gone_rx, &rid);
    let finish = match deadline {
        Some(d) => tokio::time::timeout_at(d, fut)
            .await
            .unwrap_or(Finish::Failed(UpstreamError::Timeout)),
        None => fut.await,
    };
    let outcome = match finish {
        Finish::Clean => Outcome::Reusable,
        Finish::Last => Outcome::Ending,
        Finish::Unsynced => Outcome::Broken,
        Finish::Failed(err) => {
            let timed_out = matches!(err, UpstreamError::Timeout);
            if sink.head.is_none() {
                // The client already has the head: dropping the stream without its End
                // marker makes the body report an error, so hyper aborts the response
                // instead of ending it as if it were complete.
                tracing::warn!(
                    request_id = &*rid,
                    pid = lease.pid(),
                    "response aborted: {err}"
                );
            }
            if let Some(tx) = sink.head.take() {
                let _ = tx.send(Err(err));
            }
            if timed_out {
                Outcome::TimedOut
            } else {
                Outcome::Broken
            }
        }
    };
    drop(sink);
    lease.release(outcome);
}

async fn exchange(
    lease: &mut Lease,
    request: BytesMut,
    body: Option<Spooled>,
    sink: &mut Sink,
    mut gone: oneshot::Receiver<()>,
    rid: &str,
) -> Finish {
    // Only workers whose backend says so send Isola's interim record (103 Early Hints).
    let interim = lease.sends_interim();
    let stream = lease.stream();
    let (mut rd, mut wr) = stream.split();
    // The writer hands the write half back, for an ABORT_REQUEST after the body.
    let writer = async move {
        let r = write_stdin(&mut wr, request, body).await;
        (r, wr)
    };
    let reader = read_response(&mut rd, sink, rid, interim);
    tokio::pin!(writer, reader);
    let mut written = false;
    let mut wr_back: Option<tokio::net::unix::WriteHalf<'_>> = None;
    let mut abort_due = false;
    let mut gone_open = true;
    loop {
        if abort_due {
            if let Some(wr) = wr_back.as_mut() {
                // The client left: the worker's next output sees it (connection_aborted(),
                // ignore_user_abort), and the worker still ends with END_REQUEST.
                abort_due = false;
                let mut rec = BytesMut::new();
                isola_fastcgi::encode_abort_request(&mut rec, REQUEST_ID);
                if let Err(e) = wr.write_all(&rec).await {
                    tracing::debug!(request_id = rid, "abort_request not sent: {e}");
                }
            }
        }
        tokio::select! {
            biased;
            r = &mut reader => return match r {
                Ok(End::Last) if written => Finish::Last,
                Ok(_) if written => Finish::Clean,
                Ok(_) => Finish::Unsynced,
                Err(e) => Finish::Failed(e),
            },
            g = &mut gone, if gone_open => {
                gone_open = false;
                abort_due = g.is_ok();
            }
            (w, half) = &mut writer, if !written => {
                written = true;
                wr_back = Some(half);
                if let Err(e) = w {
                    // The worker stopped reading (it may have died, or finished without
                    // consuming its input): what it sent back decides the answer.
                    tracing::debug!(request_id = rid, "writing request to worker: {e}");
                    return match reader.await {
                        Ok(_) => Finish::Unsynced,
                        Err(e) => Finish::Failed(e),
                    };
                }
            }
        }
    }
}

/// Writes `out` (the request's BEGIN_REQUEST and PARAMS records) followed by the body as
/// STDIN records and the empty STDIN record that ends it. Small requests go out in one
/// write: a worker that reads the head and then waits for the rest would cost a wake-up
/// more per request.
async fn write_stdin<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    mut out: BytesMut,
    body: Option<Spooled>,
) -> std::io::Result<()> {
    const FLUSH_AT: usize = 64 * 1024;
    match body {
        None => {}
        Some(Spooled::Memory(b)) => {
            for chunk in b.chunks(isola_fastcgi::MAX_CONTENT_LEN) {
                encode_stdin(&mut out, REQUEST_ID, chunk);
                if out.len() >= FLUSH_AT {
                    wr.write_all(&out).await?;
                    out.clear();
                }
            }
        }
        Some(Spooled::File { mut file, len }) => {
            wr.write_all(&out).await?;
            out.clear();
            let mut buf = vec![0u8; 64 * 1024 - 8];
            let mut left = len;
            while left > 0 {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "spooled body shorter than recorded",
                    ));
                }
                let n = n.min(left as usize);
                left -= n as u64;
                encode_stdin(&mut out, REQUEST_ID, &buf[..n]);
                wr.write_all(&out).await?;
                out.clear();
            }
        }
    }
    encode_stdin(&mut out, REQUEST_ID, &[]);
    wr.write_all(&out).await?;
    wr.flush().await
}

/// Body bytes seen before the head was handed over, and the Content-Length PHP declared.
struct BodyState {
    pending: Vec<Bytes>,
    /// Bytes still allowed by the script's own Content-Length, if it sent one.
    remaining: Option<u64>,
    /// The client has its End marker (or is gone): further output is drained, not sent.
    closed: bool,
}

/// How a worker ended its response.
enum End {
    /// Ready for another request.
    Open,
    /// Ending after this one ([`APP_STATUS_LAST`]).
    Last,
}

async fn read_response<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    sink: &mut Sink,
    rid: &str,
    interim: bool,
) -> Result<End, UpstreamError> {
    let mut decoder = ResponseDecoder::new(REQUEST_ID);
    if interim {
        decoder = decoder.with_interim();
    }
    let mut buf = BytesMut::with_capacity(32 * 1024);
    let mut head_buf = BytesMut::new();
    let mut head: Option<CgiHead> = None;
    let mut state = BodyState {
        pending: Vec::new(),
        remaining: None,
        closed: false,
    };
    loop {
        while let Some(event) = decoder.decode(&mut buf)? {
            match event {
                Event::Stdout(data) => {
                    if head.is_none() && sink.head.is_some() {
                        head_buf.extend_from_slice(&data);
                        if let Some((h, used)) = parse_head(&head_buf, MAX_HEAD)? {
                            state.remaining = declared_length(&h);
                            let rest = head_buf.split_off(used).freeze();
                            head = Some(h);
                            head_buf = BytesMut::new();
                            push_body(&mut state, sink, rest).await;
                        }
                    } else {
                        push_body(&mut state, sink, data).await;
                    }
                }
                Event::Stderr(data) => log_stderr(rid, &data),
                // headers_send(103): for the client only while its final head is not known.
                Event::Interim(data) if head.is_none() && sink.head.is_some() => {
                    crate::early_hints::forward(rid, &data).await;
                }
                Event::Interim(_) => {}
                Event::End { app_status, .. } => {
                    if head.is_none() && sink.head.is_some() {
                        // No blank line: the output so far is the whole head (CGI allows a
                        // response with headers only).
                        head_buf.extend_from_slice(b"\r\n\r\n");
                        if let Some((h, _)) = parse_head(&head_buf, MAX_HEAD + 4)? {
                            head = Some(h);
                        }
                    }
                    tracing::trace!(request_id = rid, app_status, "end of request");
                    finish_body(head.take(), &mut state, sink).await;
                    return Ok(if app_status & APP_STATUS_LAST != 0 {
                        End::Last
                    } else {
                        End::Open
                    });
                }
            }
        }
        if decoder.stdout_closed() && !state.closed {
            // fastcgi_finish_request(): the response is complete and goes to the client
            // now; the script runs on, and the worker stays leased until END_REQUEST.
            if head.is_none() && sink.head.is_some() {
                head_buf.extend_from_slice(b"\r\n\r\n");
                if let Some((h, _)) = parse_head(&head_buf, MAX_HEAD + 4)? {
                    head = Some(h);
                }
            }
            finish_body(head.take(), &mut state, sink).await;
            state.closed = true;
        }
        if let Some(h) = head.take() {
            // The head is complete and the worker is still running: stream the rest.
            let (tx, rx) = mpsc::channel(STREAM_DEPTH);
            if let Some(head_tx) = sink.head.take() {
                let _ = head_tx.send(Ok((h, ResponseBody::Stream(Some(rx)))));
            }
            sink.body = Some(tx);
            for chunk in std::mem::take(&mut state.pending) {
                send(sink, chunk).await;
            }
            if state.remaining == Some(0) {
                close_stream(&mut state, sink).await;
            }
        }
        if rd.read_buf(&mut buf).await? == 0 {
            return Err(UpstreamError::WorkerGone);
        }
    }
}

fn declared_length(h: &CgiHead) -> Option<u64> {
    h.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
}

/// Queues or sends a body chunk, honouring the script's Content-Length.
async fn push_body(state: &mut BodyState, sink: &mut Sink, mut data: Bytes) {
    if state.closed || data.is_empty() {
        return;
    }
    if let Some(rem) = state.remaining.as_mut() {
        if data.len() as u64 >= *rem {
            data.truncate(*rem as usize);
            *rem = 0;
        } else {
            *rem -= data.len() as u64;
        }
    }
    if sink.head.is_some() {
        state.pending.push(data);
        return;
    }
    send(sink, data).await;
    if state.remaining == Some(0) {
        close_stream(state, sink).await;
    }
}

async fn send(sink: &mut Sink, data: Bytes) {
    if data.is_empty() {
        return;
    }
    if let Some(tx) = sink.body.as_ref() {
        if tx.send(StreamChunk::Data(data)).await.is_err() {
            // Client gone: keep reading the worker to its END_REQUEST so it can be reused.
            sink.body = None;
            sink.client_gone();
        }
    }
}

/// The response is complete as far as the client is concerned (Content-Length reached):
/// end the stream now, as the script may keep working after its output (the php-cgi stand-in
/// for fastcgi_finish_request).
async fn close_stream(state: &mut BodyState, sink: &mut Sink) {
    state.closed = true;
    if let Some(tx) = sink.body.take() {
        let _ = tx.send(StreamChunk::End).await;
    }
}

async fn finish_body(head: Option<CgiHead>, state: &mut BodyState, sink: &mut Sink) {
    if let Some(tx) = sink.head.take() {
        // Whole response already here: one buffer with an exact length.
        let body = match state.pending.len() {
            0 => ResponseBody::Empty,
            1 => ResponseBody::full(state.pending.pop().unwrap_or_default()),
            _ => {
                let mut all = BytesMut::new();
                for p in state.pending.drain(..) {
                    all.extend_from_slice(&p);
                }
                ResponseBody::full(all.freeze())
            }
        };
        let h = head.unwrap_or(CgiHead {
            status: 200,
            headers: Vec::new(),
        });
        let _ = tx.send(Ok((h, body)));
        return;
    }
    close_stream(state, sink).await;
}

fn log_stderr(rid: &str, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        tracing::warn!(target: "isola::php", request_id = rid, "{line}");
    }
}
