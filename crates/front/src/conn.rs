//! One client connection's clock: how long it may sit idle between requests
//! (`keepalive_timeout`) and how long a request head may take to arrive
//! (`header_read_timeout`), which hyper alone cannot tell apart.
//!
//! Owns: [`ConnState`] (requests in flight, when the connection went idle, when the next
//! head started), [`Watched`] (the socket wrapper that reports incoming bytes) and
//! [`RequestGuard`] (a request in flight until dropped). [`Watched`] also writes the
//! connection's 103 Early Hints, queued in its [`Outbox`](crate::early_hints::Outbox),
//! ahead of anything hyper writes (what may be queued, and when, is `early_hints`'s).
//!
//! Never: reads or alters the bytes it watches, or closes a connection with a request in
//! flight (request limits belong to the handler and the pool).
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The two limits a connection lives by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// From the first byte of a request head (or from accept, for the first request) to
    /// the whole head.
    pub header_read: Duration,
    /// From the end of a response to the first byte of the next request.
    pub keepalive: Duration,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    idle_since: Instant,
    /// A request head is on its way (or the connection is new): the header deadline runs.
    head_started: Option<Instant>,
    /// HTTP/2: bytes between requests are pings and settings, not heads.
    multiplexed: bool,
    /// What the watchdog is waiting for; it is woken only when a deadline comes earlier
    /// than that, so a busy keep-alive connection costs no wake-up per request.
    watching: Watch,
}

#[derive(Debug, Clone, Copy)]
enum Watch {
    /// Running, or about to look at the state again.
    Awake,
    /// Asleep until this instant.
    Until(Instant),
    /// Asleep until woken (a request was in flight).
    Forever,
}

impl State {
    fn deadline(&self, t: &Timeouts) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match self.head_started {
            Some(at) => at + t.header_read,
            None => self.idle_since + t.keepalive,
        })
    }
}

/// Shared between a connection's socket wrapper, its requests and its watchdog.
#[derive(Debug)]
pub(crate) struct ConnState {
    state: Mutex<State>,
    changed: Notify,
    timeouts: Timeouts,
    outbox: crate::early_hints::Outbox,
}

impl ConnState {
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(ConnState {
            state: Mutex::new(State {
                in_flight: 0,
                idle_since: now,
                head_started: Some(now),
                multiplexed: false,
                watching: Watch::Awake,
            }),
            changed: Notify::new(),
            timeouts,
            outbox: Default::default(),
        })
    }

    /// The 103 responses waiting to be written on this connection.
    pub fn outbox(&self) -> &crate::early_hints::Outbox {
        &self.outbox
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the watchdog if the deadline is now earlier than what it sleeps until.
    fn wake_if_sooner(&self, mut s: std::sync::MutexGuard<'_, State>) {
        let sooner = match (s.deadline(&self.timeouts), s.watching) {
            (Some(d), Watch::Until(t)) => d < t,
            (Some(_), Watch::Forever) => true,
            _ => false,
        };
        if sooner {
            s.watching = Watch::Awake;
            drop(s);
            self.changed.notify_one();
        }
    }

    fn on_read(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.head_started.is_none() && !s.multiplexed {
            s.head_started = Some(Instant::now());
            self.wake_if_sooner(s);
        }
    }

    /// A request arrived (its head is complete); it is in flight until the guard drops.
    pub fn start(self: &Arc<Self>, multiplexed: bool) -> RequestGuard {
        let mut s = self.lock();
        s.in_flight += 1;
        s.head_started = None;
        s.multiplexed |= multiplexed;
        // No deadline while a request runs: a sleeping watchdog wakes, finds a request in
        // flight and waits to be woken.
        drop(s);
        RequestGuard(self.clone())
    }

    #[cfg(test)]
    fn deadline(&self) -> Option<Instant> {
        self.lock().deadline(&self.timeouts)
    }

    /// Resolves when the connection has been idle, or has been sending a head, for too long.
    pub async fn expired(&self) {
        loop {
            let changed = self.changed.notified();
            let deadline = {
                let mut s = self.lock();
                let d = s.deadline(&self.timeouts);
                s.watching = d.map_or(Watch::Forever, Watch::Until);
                d
            };
            match deadline {
                None => changed.await,
                Some(d) if d <= Instant::now() => return,
                Some(d) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(d) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// A request in flight on its connection until dropped.
pub(crate) struct RequestGuard(Arc<ConnState>);

impl RequestGuard {
    /// The connection the request arrived on.
    pub fn conn(&self) -> &Arc<ConnState> {
        &self.0
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
            s.head_started = None;
        }
        self.0.wake_if_sooner(s);
    }
}

/// A socket that tells its [`ConnState`] when bytes arrive, and writes the hints it queued.
pub(crate) struct Watched<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, state: Arc<ConnState>) -> Self {
        Watched { inner, state }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.state.outbox.poll_send(&mut this.inner, cx))?;
        this.state.outbox.writing();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.state.outbox.poll_send(&mut this.inner, cx))?;
        this.state.outbox.writing();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// hyper flushes only with its own buffer empty: the moment hints can go out.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.state.outbox.flushing();
        ready!(this.state.outbox.poll_send(&mut this.inner, cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        keepalive: Duration::from_secs(75),
    };

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_must_send_its_head_in_time() {
        let c = ConnState::new(T);
        let t0 = Instant::now();
        c.expired().await;
        assert_eq!(Instant::now() - t0, T.header_read);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_between_requests_gets_the_keepalive_time_then_the_head_time() {
        let c = ConnState::new(T);
        let g = c.start(false);
        tokio::time::sleep(Duration::from_secs(500)).await;
        // No deadline while a request runs.
        assert_eq!(c.deadline(), None);
        drop(g);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(70)).await;
        // The next head starts arriving: it has header_read from now.
        c.on_read();
        c.expired().await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(80));
        let c2 = ConnState::new(T);
        drop(c2.start(false));
        let t1 = Instant::now();
        c2.expired().await;
        assert_eq!(Instant::now() - t1, T.keepalive);
    }

    #[tokio::test(start_paused = true)]
    async fn multiplexed_connections_ignore_bytes_between_requests() {
        let c = ConnState::new(T);
        drop(c.start(true));
        let t0 = Instant::now();
        c.on_read();
        c.expired().await;
        assert_eq!(Instant::now() - t0, T.keepalive);
    }
}
