//! Dispatch, queue and worker bookkeeping.
use crate::backend::{Backend, Process, Spawned};
use nix::sys::signal::Signal;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, Notify};

/// A pool's settings as configured (`[pool]`): what the configuration fills in, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Number of workers (static pool); with `auto`, only the ceiling until sized.
    pub max_children: usize,
    /// Retire a worker after this many requests (0: never).
    pub max_requests: u64,
    /// Most requests that may wait for a worker at once.
    pub queue_size: usize,
    /// Longest a request may wait for a worker.
    pub queue_timeout: Duration,
    /// How the number of workers follows the load.
    pub pm: ProcessManager,
    /// Retire a worker after a request that left its resident memory above this (bytes).
    pub max_worker_memory: Option<u64>,
    /// Retire a worker once it has lived this long (after its current request).
    pub max_lifetime: Option<Duration>,
    /// Crash-loop protection: more than `threshold` crashes within `interval` delays
    /// replacements (php-fpm's emergency_restart_threshold/interval, without the restart).
    pub crash_loop: Option<(u32, Duration)>,
    /// Log requests running longer than this, once each (php-fpm's request_slowlog_timeout).
    pub slowlog_timeout: Option<Duration>,
    /// Most PHP frames logged for a slow request, where the backend can take its stack
    /// (php-fpm's request_slowlog_trace_depth); 0 logs none.
    pub slowlog_trace_depth: u32,
    /// `max_children = "auto"` as configured; resolved into [`PoolConfig::auto_size`] by
    /// [`crate::AutoSettings::resolve`] when the pool is started.
    pub auto: Option<crate::sizing::AutoSettings>,
}

/// Everything a pool starts with: its configured [`PoolSettings`] and the facts of the
/// running server.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The settings of `[pool]`.
    pub settings: PoolSettings,
    /// Time between SIGTERM and SIGKILL when a worker is stopped.
    pub kill_grace: Duration,
    /// What this pool serves (shown in status), e.g. the document root.
    pub label: PathBuf,
    /// `max_children = "auto"`, resolved: derive `max_children` from memory (then
    /// `max_children` is only the starting point, replaced at start by the estimate).
    pub auto_size: Option<crate::sizing::AutoSize>,
}

/// php-fpm's `pm` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessManager {
    /// Always `max_children` workers.
    Static,
    /// Between `min_spare` and `max_spare` idle workers, `start` at first, never more than
    /// `max_children` in all.
    Dynamic {
        /// Workers started at start-up.
        start: usize,
        /// Fewest idle workers kept ready.
        min_spare: usize,
        /// Most idle workers kept; more are retired.
        max_spare: usize,
    },
    /// Workers started when requests wait, retired after `idle_timeout` without work.
    OnDemand {
        /// How long a worker may stay idle.
        idle_timeout: Duration,
    },
}

/// What a request tells the pool about itself, for status pages and crash reports.
#[derive(Debug, Clone, Default)]
pub struct JobInfo {
    /// The request id.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Request URI as received.
    pub uri: String,
    /// The script that will run.
    pub script: PathBuf,
    /// Background work (a queued job) rather than a client's request.
    pub background: bool,
    /// The client's address (after trusted-proxy headers), as text; loopback for internal
    /// requests.
    pub client: String,
}

/// A pool's load, see [`Pool::headroom`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Headroom {
    /// Most workers.
    pub max_children: usize,
    /// Workers serving a request.
    pub busy: usize,
    /// Of those, serving background work.
    pub background: usize,
    /// Requests waiting for a worker.
    pub waiting: usize,
}

/// Why no worker was handed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The wait queue is full.
    #[error("queue full")]
    QueueFull,
    /// Waited longer than `queue_timeout`.
    #[error("timed out waiting for a worker")]
    Timeout,
    /// The pool is stopping.
    #[error("pool is shutting down")]
    ShuttingDown,
    /// No worker runs and starting one keeps failing (it is retried with back-off).
    #[error("no worker: they fail to start")]
    NoWorker,
}

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The first worker did not start.
    #[error("php worker failed to start: {0}")]
    Spawn(String),
}

/// How the use of a leased worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request ended cleanly (END_REQUEST seen); the worker can serve again.
    Reusable,
    /// The request ended cleanly and the worker ends after it (its worker script
    /// stopped): never handed out again, replaced.
    Ending,
    /// The connection is in an unknown or broken state: stop the worker and replace it.
    Broken,
    /// The request ran past its time limit: kill the worker and replace it.
    TimedOut,
}

/// Time allowed for a new worker to answer its start-up probe.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);
/// First delay before retrying a failed spawn; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between spawn attempts while spawns keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest wait for a worker's answer with a slow request's backtrace.
const BACKTRACE_TIMEOUT: Duration = Duration::from_secs(1);
/// Saturation (queue full, waits) is logged at most this often, never per request.
const SATURATION_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// 100 ms, 200 ms, 400 ms … up to [`MAX_BACKOFF`], for the n-th consecutive failure.
fn backoff(n: u32) -> Duration {
    MIN_BACKOFF
        .saturating_mul(1u32 << n.clamp(1, 16).saturating_sub(1))
        .min(MAX_BACKOFF)
}

/// Worker states as shown in status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Spawned, not yet ready.
    Starting,
    /// Ready for a request.
    Idle,
    /// Serving a request.
    Busy,
    /// Being stopped.
    Retiring,
}

/// One worker, as shown in status.
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    /// Process id.
    pub pid: u32,
    /// State.
    pub state: WorkerState,
    /// Requests served so far.
    pub requests: u64,
    /// The current request, when busy.
    pub current: Option<JobInfo>,
    /// Time in the current state.
    pub elapsed: Duration,
    /// Resident memory, bytes, when it could be read.
    pub rss: Option<u64>,
    /// Proportional set size (shared pages split among the processes that map them, so
    /// the workers' figures add up to what they really cost), bytes, when it could be read.
    pub pss: Option<u64>,
    /// Time since the worker started.
    pub age: Duration,
}

/// A snapshot of the pool.
#[derive(Debug, Clone, Default)]
pub struct PoolStatus {
    /// Configured most workers.
    pub max_children: usize,
    /// Configured most waiting requests.
    pub queue_size: usize,
    /// The document root this pool serves, as the caller labelled it.
    pub docroot: PathBuf,
    /// Per worker.
    pub workers: Vec<WorkerStatus>,
    /// Requests waiting now.
    pub queue_len: usize,
    /// Most requests ever waiting at once.
    pub max_queue_len: usize,
    /// Requests handed to workers since start.
    pub accepted: u64,
    /// Workers started since start (initial ones included).
    pub spawned: u64,
    /// Workers that exited without being asked to.
    pub crashed: u64,
    /// Times a request found every worker busy and the pool at max_children.
    pub max_children_reached: u64,
    /// Requests that ran longer than slowlog_timeout.
    pub slow_requests: u64,
    /// Replacements are being delayed because workers keep crashing.
    pub crash_loop_backoff: bool,
    /// Which backend starts the workers (`php-cgi`, `native`).
    pub backend: &'static str,
    /// `classic` (a fresh request per script run) or `worker` (a worker script's loop).
    pub mode: &'static str,
    /// What the backend says about itself (engine version, fallback reason...).
    pub backend_note: Option<String>,
    /// Failed spawns since the last successful one (0 when healthy).
    pub spawn_failures_in_a_row: u32,
    /// Workers retired by max_requests, max_worker_memory, max_lifetime or as spare.
    pub retired: u64,
    /// Retirements by reason: `requests`, `lifetime`, `memory` (the recycling limits),
    /// `code` (a code change or recycle), `spare` (trimmed idle workers), `idle`
    /// (ondemand's idle_timeout), `script_ended` (a worker script's loop ended),
    /// `stopping` (the pool stopping); they add up to `retired`.
    pub retired_by: std::collections::BTreeMap<&'static str, u64>,
    /// Crashes by signal name (`SIGSEGV`...), or `exit` for an unexpected exit.
    pub crashes_by_signal: std::collections::BTreeMap<String, u64>,
    /// Requests refused because the queue was full.
    pub queue_full: u64,
    /// Requests that waited longer than `queue_timeout`.
    pub queue_timeouts: u64,
}

/// A handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    config: PoolConfig,
    /// The limit in force: `config.settings.max_children`, or what auto-sizing computed last.
    max_children: std::sync::atomic::AtomicUsize,
    backend: Arc<dyn Backend>,
    state: Mutex<State>,
    /// Signalled whenever a worker changes state or exits (shutdown waits on it).
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Idle workers, most recently used last (LIFO: the warmest worker serves next).
    idle: Vec<(u64, UnixStream)>,
    /// Requests waiting for a worker, oldest first.
    waiters: VecDeque<oneshot::Sender<Lease>>,
    workers: HashMap<u64, Worker>,
    /// Spawns under way (count towards max_children).
    starting: usize,
    /// Workers started before this are replaced after their current request (and at once
    /// when idle): [`Pool::recycle_all`].
    recycle_before: Option<(Instant, String)>,
    next_id: u64,
    failures_in_a_row: u32,
    retry_scheduled: bool,
    /// No spawns before this instant (failing spawns or a crash loop).
    backoff_until: Option<Instant>,
    /// Recent crash times, for crash-loop detection.
    recent_crashes: VecDeque<Instant>,
    /// Consecutive crash-loop backoffs, for the exponential delay.
    crash_backoffs: u32,
    /// Saturation counters as last logged, so saturation is logged once per interval.
    last_logged: (u64, u64, u64),
    last_log_at: Option<Instant>,
    shutting_down: bool,
    stats: PoolStatus,
}

struct Worker {
    pid: u32,
    state: WorkerState,
    requests: u64,
    current: Option<JobInfo>,
    since: Instant,
    born: Instant,
    /// The current request was reported as slow already.
    slow_logged: bool,
    control: mpsc::UnboundedSender<Control>,
}

enum Control {
    /// SIGTERM, then SIGKILL after the grace period.
    Stop(Duration),
    /// Log the PHP stack of the slow request the worker runs.
    Backtrace(SlowRequest),
}

/// A request found slow, whose backtrace is asked for.
struct SlowRequest {
    request_id: String,
    /// When the worker took the request: the backtrace belongs to it only if the worker
    /// still serves the request that started then once the answer is in.
    since: Instant,
    depth: u32,
}

impl Inner {
    fn max_children(&self) -> usize {
        self.max_children.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain bookkeeping behind; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pool {
    /// Replaces every worker with a fresh one: idle workers now, busy ones once their
    /// request is done, so no request fails (worker mode after a code change: the new
    /// processes boot the new code).
    pub fn recycle_all(&self, why: &str) {
        let idle: Vec<u64> = {
            let mut st = self.inner.lock();
            if st.shutting_down {
                return;
            }
            st.recycle_before = Some((Instant::now(), why.to_string()));
            std::mem::take(&mut st.idle)
                .into_iter()
                .map(|(id, _stream)| id)
                .collect()
        };
        for id in idle {
            self.inner.retire(id, "code", why);
        }
        self.inner.fill();
    }

    /// Starts `config.settings.max_children` workers; fails when any of them cannot start.
    pub async fn start(config: PoolConfig, backend: Arc<dyn Backend>) -> Result<Pool, PoolError> {
        Self::start_with(config, backend, false).await
    }

    /// Like [`Pool::start`], but workers that cannot start are retried with back-off
    /// instead of failing the start: for a worker script, whose boot may fail for reasons
    /// that pass (a service it needs is down) or get fixed by an edit, while the site's
    /// other scripts serve. Requests meanwhile get 503 at once.
    pub async fn start_tolerant(
        config: PoolConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<Pool, PoolError> {
        Self::start_with(config, backend, true).await
    }

    async fn start_with(
        config: PoolConfig,
        backend: Arc<dyn Backend>,
        tolerant: bool,
    ) -> Result<Pool, PoolError> {
        let max_children = match &config.auto_size {
            Some(a) => {
                let n = a.limit(a.estimate, 0);
                tracing::info!("max_children auto: {}", a.explain(a.estimate, 0, false));
                n
            }
            None => config.settings.max_children,
        };
        let n = match config.settings.pm {
            ProcessManager::Static => max_children,
            ProcessManager::Dynamic { start, .. } => start,
            // One worker proves PHP starts; it is retired once idle for idle_timeout.
            ProcessManager::OnDemand { .. } => 1,
        }
        .clamp(1, max_children.max(1));
        let inner = Arc::new(Inner {
            max_children: std::sync::atomic::AtomicUsize::new(max_children),
            config,
            backend,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        });
        let ids: Vec<u64> = {
            let mut st = inner.lock();
            (0..n)
                .map(|_| {
                    st.next_id += 1;
                    st.next_id
                })
                .collect()
        };
        let spawns = ids.iter().map(|&id| inner.backend.spawn(id, SPAWN_TIMEOUT));
        let results = futures_join_all(spawns).await;
        let mut first_error = None;
        let mut ok = Vec::new();
        for (id, r) in ids.into_iter().zip(results) {
            match r {
                Ok(s) => ok.push((id, s)),
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        match first_error {
            Some(e) if !tolerant => {
                for (_, mut s) in ok {
                    let _ = s.process.signal(Signal::SIGKILL);
                    let _ = s.process.wait().await;
                }
                return Err(PoolError::Spawn(e));
            }
            Some(e) => {
                let delay = {
                    let mut st = inner.lock();
                    st.failures_in_a_row = 1;
                    let delay = backoff(1);
                    st.backoff_until = Some(Instant::now() + delay);
                    delay
                };
                tracing::error!("worker failed to start: {e}; retrying in {delay:?}");
            }
            None => {}
        }
        for (id, s) in ok {
            inner.register(id, s);
        }
        inner.fill();
        tokio::spawn(maintain(Arc::downgrade(&inner)));
        Ok(Pool { inner })
    }

    /// Waits for an idle worker (FIFO among waiters) and leases it.
    pub async fn acquire(&self, job: JobInfo) -> Result<Lease, AcquireError> {
        let inner = &self.inner;
        let rx = loop {
            let mut st = inner.lock();
            if st.shutting_down {
                return Err(AcquireError::ShuttingDown);
            }
            if let Some((id, stream)) = st.idle.pop() {
                drop(st);
                if healthy(&stream) {
                    return Ok(inner.clone().lease(id, stream, job));
                }
                inner.stop(id, "its connection closed while idle");
                continue;
            }
            let retry_after_deadline = st
                .backoff_until
                .is_some_and(|t| t > Instant::now() + inner.config.settings.queue_timeout);
            if st.workers.is_empty()
                && st.starting == 0
                && st.failures_in_a_row > 0
                && retry_after_deadline
            {
                // Starts keep failing and the next try comes after this request's time is
                // up: waiting cannot help.
                return Err(AcquireError::NoWorker);
            }
            if st.waiters.len() >= inner.config.settings.queue_size {
                st.waiters.retain(|w| !w.is_closed());
                if st.waiters.len() >= inner.config.settings.queue_size {
                    st.stats.queue_full += 1;
                    return Err(AcquireError::QueueFull);
                }
            }
            if st.workers.len() + st.starting >= inner.max_children() {
                st.stats.max_children_reached += 1;
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            st.stats.max_queue_len = st.stats.max_queue_len.max(st.waiters.len());
            drop(st);
            // dynamic/ondemand: a waiting request is a reason to start a worker.
            inner.fill();
            break rx;
        };
        match tokio::time::timeout(inner.config.settings.queue_timeout, rx).await {
            Ok(Ok(mut lease)) => {
                lease.fresh = false;
                inner.mark_busy(lease.id, job);
                Ok(lease)
            }
            Ok(Err(_)) if inner.lock().shutting_down => Err(AcquireError::ShuttingDown),
            Ok(Err(_)) => Err(AcquireError::NoWorker),
            Err(_) => {
                inner.lock().stats.queue_timeouts += 1;
                Err(AcquireError::Timeout)
            }
        }
    }

    /// Load, cheaply, for background work to leave room for web requests.
    pub fn headroom(&self) -> Headroom {
        let st = self.inner.lock();
        let mut h = Headroom {
            max_children: self.inner.max_children(),
            waiting: st.waiters.iter().filter(|w| !w.is_closed()).count(),
            ..Headroom::default()
        };
        for w in st.workers.values().filter(|w| w.state == WorkerState::Busy) {
            h.busy += 1;
            if w.current.as_ref().is_some_and(|j| j.background) {
                h.background += 1;
            }
        }
        h
    }

    /// A snapshot for status pages.
    pub fn status(&self) -> PoolStatus {
        let st = self.inner.lock();
        let mut s = st.stats.clone();
        s.spawn_failures_in_a_row = st.failures_in_a_row;
        s.crash_loop_backoff =
            st.crash_backoffs > 0 && st.backoff_until.is_some_and(|t| t > Instant::now());
        s.max_children = self.inner.max_children();
        s.queue_size = self.inner.config.settings.queue_size;
        s.docroot = self.inner.config.label.clone();
        s.backend = self.inner.backend.name();
        s.mode = if self.inner.backend.worker_mode() {
            "worker"
        } else {
            "classic"
        };
        s.backend_note = self.inner.backend.status_note();
        s.queue_len = st.waiters.iter().filter(|w| !w.is_closed()).count();
        s.workers = st
            .workers
            .values()
            .map(|w| WorkerStatus {
                pid: w.pid,
                state: w.state,
                requests: w.requests,
                current: w.current.clone(),
                elapsed: w.since.elapsed(),
                rss: None,
                pss: None,
                age: w.born.elapsed(),
            })
            .collect();
        drop(st);
        // Read outside the lock: /proc reads (smaps_rollup walks the process's mappings)
        // must not hold up acquires and releases.
        for w in &mut s.workers {
            w.rss = rss_bytes(w.pid);
            w.pss = crate::sizing::pss_bytes(w.pid);
        }
        s.workers.sort_by_key(|w| w.pid);
        s
    }

    /// Stops accepting, waits up to `grace` for busy workers, then stops every worker and
    /// reaps it.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        {
            let mut st = inner.lock();
            st.shutting_down = true;
            // Dropping the senders tells every waiter the pool is going away.
            st.waiters.clear();
        }
        let deadline = tokio::time::Instant::now() + grace;
        inner
            .wait_until(deadline, |st| {
                st.workers.values().all(|w| w.state != WorkerState::Busy)
            })
            .await;
        {
            let mut st = inner.lock();
            st.idle.clear();
            for w in st.workers.values_mut() {
                w.state = WorkerState::Retiring;
                let _ = w.control.send(Control::Stop(inner.config.kill_grace));
            }
        }
        let deadline =
            tokio::time::Instant::now() + inner.config.kill_grace + Duration::from_secs(2);
        inner
            .wait_until(deadline, |st| st.workers.is_empty() && st.starting == 0)
            .await;
    }
}

impl Inner {
    /// Adds a started worker and offers it to waiters.
    fn register(self: &Arc<Self>, id: u64, s: Spawned) {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut st = self.lock();
            st.stats.spawned += 1;
            st.workers.insert(
                id,
                Worker {
                    pid: s.pid,
                    state: WorkerState::Idle,
                    requests: 0,
                    current: None,
                    since: Instant::now(),
                    born: Instant::now(),
                    slow_logged: false,
                    control: tx,
                },
            );
        }
        tokio::spawn(supervise(self.clone(), id, s.pid, s.process, rx));
        self.dispatch(id, s.stream);
    }

    fn lease(self: Arc<Self>, id: u64, stream: UnixStream, job: JobInfo) -> Lease {
        self.mark_busy(id, job);
        let pid = self.lock().workers.get(&id).map_or(0, |w| w.pid);
        Lease {
            inner: self,
            id,
            pid,
            stream: Some(stream),
            fresh: false,
            touched: false,
        }
    }

    fn mark_busy(&self, id: u64, job: JobInfo) {
        let mut st = self.lock();
        st.stats.accepted += 1;
        if let Some(w) = st.workers.get_mut(&id) {
            w.state = WorkerState::Busy;
            w.current = Some(job);
            w.since = Instant::now();
            w.slow_logged = false;
        }
    }

    /// Hands an idle worker to the oldest live waiter, or parks it.
    fn dispatch(self: &Arc<Self>, id: u64, stream: UnixStream) {
        let pid = {
            let mut st = self.lock();
            match st.workers.get_mut(&id) {
                Some(w) => {
                    w.state = WorkerState::Idle;
                    w.current = None;
                    w.since = Instant::now();
                    w.pid
                }
                None => return,
            }
        };
        let mut lease = Lease {
            inner: self.clone(),
            id,
            pid,
            stream: Some(stream),
            fresh: true,
            touched: false,
        };
        loop {
            let waiter = {
                let mut st = self.lock();
                match st.waiters.pop_front() {
                    Some(w) => w,
                    None => {
                        if let Some(stream) = lease.stream.take() {
                            if st.shutting_down {
                                drop(st);
                                self.stop(id, "pool stopping");
                            } else {
                                st.idle.push((id, stream));
                                drop(st);
                                self.changed.notify_waiters();
                            }
                        }
                        return;
                    }
                }
            };
            match waiter.send(lease) {
                Ok(()) => return,
                // That waiter gave up (timeout, client gone): try the next one.
                Err(back) => lease = back,
            }
        }
    }

    /// The end of a lease.
    fn release(
        self: &Arc<Self>,
        id: u64,
        pid: u32,
        stream: UnixStream,
        outcome: Outcome,
        fresh: bool,
    ) {
        match outcome {
            Outcome::Reusable => {
                // Measured before the lock: a /proc read per request must not serialise
                // every other acquire and release behind it.
                let rss = self
                    .config
                    .settings
                    .max_worker_memory
                    .and_then(|_| rss_bytes(pid));
                let retire = {
                    let mut st = self.lock();
                    let shutting_down = st.shutting_down;
                    let recycle_before = st.recycle_before.clone();
                    match st.workers.get_mut(&id) {
                        Some(w) => {
                            if !fresh {
                                w.requests += 1;
                            }
                            if shutting_down {
                                Some(("stopping", "pool stopping".to_string()))
                            } else {
                                self.recycle_reason(w, recycle_before.as_ref(), rss)
                            }
                        }
                        None => return,
                    }
                };
                if let Some((reason, why)) = retire {
                    drop(stream);
                    self.retire(id, reason, &why);
                } else {
                    self.dispatch(id, stream);
                }
            }
            Outcome::Ending => {
                drop(stream);
                if let Some(w) = self.lock().workers.get_mut(&id) {
                    w.requests += 1;
                }
                self.retire(id, "script_ended", "its worker script ended");
            }
            Outcome::Broken => {
                drop(stream);
                self.stop(id, "its connection broke during a request");
            }
            Outcome::TimedOut => {
                drop(stream);
                let job = self
                    .lock()
                    .workers
                    .get(&id)
                    .and_then(|w| w.current.clone().map(|j| (j, w.pid, w.since.elapsed())));
                if let Some((job, pid, elapsed)) = job {
                    tracing::warn!(
                        pid,
                        request_id = %job.request_id,
                        method = %job.method,
                        uri = %job.uri,
                        script = %job.script.display(),
                        elapsed_ms = elapsed.as_millis() as u64,
                        "request_terminate_timeout: killing worker"
                    );
                }
                // SIGTERM first (PHP may clean up), SIGKILL after the grace period.
                self.stop(id, "request_terminate_timeout");
            }
        }
    }

    /// Why a worker that just finished a request should not serve another, if it should not.
    fn recycle_reason(
        &self,
        w: &Worker,
        recycle_before: Option<&(Instant, String)>,
        rss: Option<u64>,
    ) -> Option<(&'static str, String)> {
        let c = &self.config;
        if let Some((_, why)) = recycle_before.filter(|(t, _)| w.born < *t) {
            return Some(("code", why.clone()));
        }
        if c.settings.max_requests > 0 && w.requests >= c.settings.max_requests {
            return Some(("requests", format!("max_requests reached ({})", w.requests)));
        }
        if let Some(max) = c.settings.max_lifetime {
            if w.born.elapsed() >= max {
                return Some(("lifetime", format!("max_lifetime reached ({max:?})")));
            }
        }
        if let Some(limit) = c.settings.max_worker_memory {
            if let Some(rss) = rss.filter(|&r| r > limit) {
                return Some((
                    "memory",
                    format!(
                        "max_worker_memory exceeded (RSS {} MiB > {} MiB)",
                        rss >> 20,
                        limit >> 20
                    ),
                ));
            }
        }
        None
    }

    /// Planned retirement (recycling, spare trimming): logged at info and counted, in total
    /// and under `reason` (a short key for `/metrics`; `why` is the sentence for the log).
    fn retire(&self, id: u64, reason: &'static str, why: &str) {
        let mut st = self.lock();
        st.stats.retired += 1;
        *st.stats.retired_by.entry(reason).or_insert(0) += 1;
        if let Some(w) = st.workers.get_mut(&id) {
            tracing::info!(pid = w.pid, requests = w.requests, "retiring worker: {why}");
            w.state = WorkerState::Retiring;
            let _ = w.control.send(Control::Stop(self.config.kill_grace));
        }
    }

    /// Stops a worker: SIGTERM, SIGKILL after the grace period. Used for workers whose
    /// connection is unusable (stuck, dead, timed out) and when the pool stops.
    fn stop(&self, id: u64, why: &str) {
        let mut st = self.lock();
        if let Some(w) = st.workers.get_mut(&id) {
            tracing::debug!(pid = w.pid, "retiring worker: {why}");
            w.state = WorkerState::Retiring;
            let _ = w.control.send(Control::Stop(self.config.kill_grace));
        }
    }

    /// A worker process was reaped.
    /// `sent` is the signal Isola sent it, if any: dying of anything else is a crash.
    fn on_exit(
        self: &Arc<Self>,
        id: u64,
        status: std::io::Result<ExitStatus>,
        sent: Option<nix::sys::signal::Signal>,
    ) {
        let (worker, shutting_down) = {
            let mut st = self.lock();
            st.idle.retain(|(i, _)| *i != id);
            let w = st.workers.remove(&id);
            (w, st.shutting_down)
        };
        self.changed.notify_waiters();
        let Some(w) = worker else { return };
        let how = describe(&status);
        let signal = status
            .as_ref()
            .ok()
            .and_then(std::os::unix::process::ExitStatusExt::signal)
            .and_then(|s| nix::sys::signal::Signal::try_from(s).ok());
        let crashed = match (signal, sent) {
            // Killed by what we sent (SIGKILL also follows an ignored SIGTERM).
            (Some(got), Some(s)) => got != s && got != nix::sys::signal::Signal::SIGKILL,
            (Some(_), None) => true,
            // Exited by itself: fine when asked to stop, or a worker script that ended
            // between requests; a crash otherwise.
            (None, _) => {
                // The script ends a request it serves before it ends itself.
                let script_ended = self.backend.worker_mode()
                    && status.as_ref().is_ok_and(|s| s.code() == Some(0));
                if script_ended && sent.is_none() {
                    tracing::info!(
                        pid = w.pid,
                        requests = w.requests,
                        "worker script ended; starting a fresh one"
                    );
                }
                sent.is_none() && w.state != WorkerState::Retiring && !script_ended
            }
        };
        if !crashed {
            tracing::debug!(pid = w.pid, requests = w.requests, "worker exited ({how})");
        } else {
            {
                let mut st = self.lock();
                st.stats.crashed += 1;
                self.note_crash(&mut st);
                let key = signal.map_or_else(|| "exit".to_string(), |s| s.as_str().to_string());
                *st.stats.crashes_by_signal.entry(key).or_insert(0) += 1;
            }
            match &w.current {
                Some(job) => tracing::error!(
                    pid = w.pid,
                    request_id = %job.request_id,
                    method = %job.method,
                    uri = %job.uri,
                    script = %job.script.display(),
                    elapsed_ms = w.since.elapsed().as_millis() as u64,
                    requests = w.requests,
                    "worker died during a request ({how})"
                ),
                _ => tracing::warn!(
                    pid = w.pid,
                    requests = w.requests,
                    "idle worker died ({how})"
                ),
            }
        }
        if !shutting_down {
            self.fill();
        }
    }

    /// Starts workers until the pool is back to `max_children`, with backoff while spawns
    /// fail, and down to half of it in a crash loop.
    fn fill(self: &Arc<Self>) {
        let ids: Vec<u64> = {
            let mut st = self.lock();
            if st.shutting_down {
                return;
            }
            let have = st.workers.len() + st.starting;
            let mut limit = self.max_children();
            if let Some(until) = st.backoff_until.filter(|&t| t > Instant::now()) {
                if !st.retry_scheduled {
                    st.retry_scheduled = true;
                    let inner = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(until.into()).await;
                        inner.lock().retry_scheduled = false;
                        inner.fill();
                    });
                }
                // Spawns that fail are all delayed: the next one would fail too. Crashes
                // are caused by requests, and delaying every replacement would turn one bad
                // script into 503s for everyone else: a crash loop keeps half the pool.
                let floor = limit.div_ceil(2);
                if st.failures_in_a_row > 0 || have >= floor {
                    return;
                }
                limit = floor;
            }
            let room = limit.saturating_sub(have);
            let waiting = st.waiters.iter().filter(|w| !w.is_closed()).count();
            let idle = st.idle.len();
            let want = match self.config.settings.pm {
                ProcessManager::Static => room,
                ProcessManager::Dynamic { min_spare, .. } => min_spare
                    .saturating_sub(idle + st.starting)
                    .max(waiting.saturating_sub(st.starting)),
                ProcessManager::OnDemand { .. } => waiting.saturating_sub(st.starting),
            }
            .min(room);
            st.starting += want;
            (0..want)
                .map(|_| {
                    st.next_id += 1;
                    st.next_id
                })
                .collect()
        };
        for id in ids {
            let inner = self.clone();
            tokio::spawn(async move {
                let result = inner.backend.spawn(id, SPAWN_TIMEOUT).await;
                let shutting_down = {
                    let mut st = inner.lock();
                    st.starting -= 1;
                    st.shutting_down
                };
                match result {
                    Ok(s) if !shutting_down => {
                        {
                            let mut st = inner.lock();
                            if st.failures_in_a_row > 0 {
                                st.failures_in_a_row = 0;
                                st.backoff_until = None;
                            }
                        }
                        inner.register(id, s);
                    }
                    Ok(mut s) => {
                        let _ = s.process.signal(Signal::SIGKILL);
                        let _ = s.process.wait().await;
                        inner.changed.notify_waiters();
                    }
                    Err(e) => {
                        let delay = {
                            let mut st = inner.lock();
                            st.failures_in_a_row = st.failures_in_a_row.saturating_add(1);
                            let delay = backoff(st.failures_in_a_row);
                            st.backoff_until = Some(Instant::now() + delay);
                            if st.workers.is_empty() && st.starting == 0 {
                                // Nothing can serve the waiting requests: they get their
                                // 503 now rather than at queue_timeout.
                                st.waiters.clear();
                            }
                            delay
                        };
                        inner.changed.notify_waiters();
                        tracing::error!("worker failed to start: {e}; retrying in {delay:?}");
                        inner.fill();
                    }
                }
            });
        }
    }

    /// `max_children = "auto"`: measure live workers (PSS) and recompute the limit; every
    /// change is logged with its arithmetic.
    fn resize(&self) {
        let Some(auto) = &self.config.auto_size else {
            return;
        };
        let pids: Vec<u32> = {
            let st = self.lock();
            st.workers
                .values()
                .filter(|w| matches!(w.state, WorkerState::Idle | WorkerState::Busy))
                .map(|w| w.pid)
                .collect()
        };
        let mut costs: Vec<u64> = pids
            .into_iter()
            .filter_map(crate::sizing::pss_bytes)
            .collect();
        let Some(cost) = crate::sizing::p90(&mut costs) else {
            return;
        };
        let host: u64 = self
            .backend
            .host_pids()
            .into_iter()
            .filter_map(crate::sizing::pss_bytes)
            .sum();
        let new = auto.limit(cost, host);
        let old = self
            .max_children
            .swap(new, std::sync::atomic::Ordering::Relaxed);
        if new != old {
            tracing::info!(
                "max_children auto: {} (was {old})",
                auto.explain(cost, host, true)
            );
        }
    }

    /// Records a crash; past the threshold, delays replacements exponentially (the live
    /// workers keep serving) until a quiet interval resets it.
    fn note_crash(&self, st: &mut State) {
        let Some((threshold, interval)) = self.config.settings.crash_loop else {
            return;
        };
        let now = Instant::now();
        st.recent_crashes.push_back(now);
        while st
            .recent_crashes
            .front()
            .is_some_and(|&t| now.duration_since(t) > interval)
        {
            st.recent_crashes.pop_front();
        }
        if st.recent_crashes.len() as u32 > threshold {
            st.crash_backoffs = st.crash_backoffs.saturating_add(1);
            let delay = backoff(st.crash_backoffs + 3);
            st.backoff_until = Some(now + delay);
            st.recent_crashes.clear();
            tracing::error!(
                "crash loop: more than {threshold} workers died within {interval:?}; delaying replacements by {delay:?} (live workers keep serving)"
            );
        }
    }

    /// Once per maintenance pass: slow requests, saturation summary, crash-loop recovery.
    fn report(&self) {
        let mut st = self.lock();
        let now = Instant::now();
        if let Some(limit) = self.config.settings.slowlog_timeout {
            let mut slow = 0;
            for w in st.workers.values_mut() {
                if w.state == WorkerState::Busy
                    && !w.slow_logged
                    && now.duration_since(w.since) >= limit
                {
                    w.slow_logged = true;
                    slow += 1;
                    if let Some(job) = &w.current {
                        tracing::warn!(
                            pid = w.pid,
                            request_id = %job.request_id,
                            method = %job.method,
                            uri = %job.uri,
                            script = %job.script.display(),
                            elapsed_ms = now.duration_since(w.since).as_millis() as u64,
                            "slow request (over slowlog_timeout {limit:?})"
                        );
                        if self.config.settings.slowlog_trace_depth > 0 {
                            let _ = w.control.send(Control::Backtrace(SlowRequest {
                                request_id: job.request_id.clone(),
                                since: w.since,
                                depth: self.config.settings.slowlog_trace_depth,
                            }));
                        }
                    }
                }
            }
            st.stats.slow_requests += slow;
        }
        let counters = (
            st.stats.queue_full,
            st.stats.queue_timeouts,
            st.stats.max_children_reached,
        );
        let due = st
            .last_log_at
            .is_none_or(|t| now.duration_since(t) >= SATURATION_LOG_INTERVAL);
        if counters != st.last_logged && due {
            let (full, timeouts, reached) = counters;
            let (f0, t0, r0) = st.last_logged;
            tracing::warn!(
                queue_full = full - f0,
                queue_timeouts = timeouts - t0,
                max_children_reached = reached - r0,
                max_children = self.max_children(),
                queue_size = self.config.settings.queue_size,
                "pool saturated since the last report: requests waited for a worker or were refused with 503"
            );
            st.last_logged = counters;
            st.last_log_at = Some(now);
        }
        if st.crash_backoffs > 0
            && st.backoff_until.is_some_and(|t| now > t)
            && st.recent_crashes.is_empty()
        {
            if let Some((_, interval)) = self.config.settings.crash_loop {
                if st
                    .backoff_until
                    .is_some_and(|t| now.duration_since(t) > interval)
                {
                    st.crash_backoffs = 0;
                    tracing::info!("crash loop over: replacements back to normal");
                }
            }
        }
    }

    async fn wait_until(&self, deadline: tokio::time::Instant, done: impl Fn(&State) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.lock()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

/// Once a second: trim spare workers (dynamic), retire idle ones (ondemand), recycle idle
/// workers past max_lifetime, and start workers the mode calls for. Ends with the pool.
async fn maintain(pool: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        let retire: Vec<(u64, (&'static str, String))> = {
            let mut st = inner.lock();
            if st.shutting_down {
                return;
            }
            let mut out = Vec::new();
            let now = Instant::now();
            // idle[0] is the least recently used: trim from there.
            let mut keep = Vec::with_capacity(st.idle.len());
            let idle = std::mem::take(&mut st.idle);
            let over_limit = st.workers.len().saturating_sub(inner.max_children());
            let mut surplus = match inner.config.settings.pm {
                ProcessManager::Dynamic { max_spare, .. } => idle.len().saturating_sub(max_spare),
                _ => 0,
            }
            .max(over_limit);
            for (id, stream) in idle {
                let w = st.workers.get(&id);
                let idle_for = w.map_or(Duration::ZERO, |w| now.duration_since(w.since));
                let age = w.map_or(Duration::ZERO, |w| now.duration_since(w.born));
                let why = if surplus > 0 {
                    surplus -= 1;
                    Some((
                        "spare",
                        if over_limit > 0 {
                            "more workers than max_children".to_string()
                        } else {
                            "more idle workers than max_spare".to_string()
                        },
                    ))
                } else if matches!(inner.config.settings.pm, ProcessManager::OnDemand { idle_timeout } if idle_for >= idle_timeout)
                {
                    Some(("idle", format!("idle for {:?}", idle_for)))
                } else if inner.config.settings.max_lifetime.is_some_and(|m| age >= m) {
                    Some(("lifetime", "max_lifetime reached".to_string()))
                } else {
                    None
                };
                match why {
                    Some(why) => {
                        drop(stream);
                        out.push((id, why));
                    }
                    None => keep.push((id, stream)),
                }
            }
            st.idle = keep;
            out
        };
        for (id, (reason, why)) in retire {
            inner.retire(id, reason, &why);
        }
        inner.resize();
        inner.report();
        inner.fill();
    }
}

/// Resident set size of a process, from `/proc/PID/statm` (the same figure as `VmRSS` in
/// `status`, without the kernel formatting forty other lines: it is read after every
/// request when `max_worker_memory` is set).
fn rss_bytes(pid: u32) -> Option<u64> {
    let mut buf = [0u8; 128];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(format!("/proc/{pid}/statm")).ok()?;
        f.read(&mut buf).ok()?
    };
    let pages: u64 = std::str::from_utf8(&buf[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| u64::try_from(p).ok())
            .unwrap_or(4096)
    })
}

/// An idle FastCGI connection has nothing to read; EOF or stray bytes mean the worker
/// exited or misbehaved on its own, so the request must go elsewhere.
fn healthy(stream: &UnixStream) -> bool {
    let mut b = [0u8; 1];
    matches!(stream.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
                Ok(name) => format!("killed by {name}"),
                Err(_) => format!("killed by signal {sig}"),
            },
            _ => s.to_string(),
        },
        Err(e) => format!("wait failed: {e}"),
    }
}

/// One task per worker owns its process: it is the only place that signals or reaps it, so
/// a signal can never reach a recycled pid.
async fn supervise(
    inner: Arc<Inner>,
    id: u64,
    pid: u32,
    mut process: Box<dyn Process>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut open = true;
    let mut sent: Option<Signal> = None;
    let status = loop {
        tokio::select! {
            s = process.wait() => break s,
            msg = control.recv(), if open => match msg {
                None => open = false,
                Some(Control::Stop(grace)) => {
                    sent = Some(Signal::SIGTERM);
                    let _ = process.signal(Signal::SIGTERM);
                    match tokio::time::timeout(grace, process.wait()).await {
                        Ok(s) => break s,
                        Err(_) => {
                            tracing::warn!(pid, "worker ignored SIGTERM for {grace:?}; killing it");
                            sent = Some(Signal::SIGKILL);
                            let _ = process.signal(Signal::SIGKILL);
                            break process.wait().await;
                        }
                    }
                }
                Some(Control::Backtrace(slow)) => {
                    // Meanwhile neither an exit nor a stop is seen: the answer takes
                    // microseconds, and BACKTRACE_TIMEOUT bounds a worker that gives none.
                    log_backtrace(&inner, id, pid, process.as_mut(), &slow).await;
                }
            },
        }
    };
    // Dropping the handle releases what the backend kept for the worker (its socket file).
    drop(process);
    inner.on_exit(id, status, sent);
}

/// Takes the PHP stack of a slow request from its worker and logs it, one line per frame,
/// innermost first (php-fpm's slowlog trace). Backends that cannot take one log nothing
/// more than the slow-request line.
async fn log_backtrace(
    inner: &Inner,
    id: u64,
    pid: u32,
    process: &mut dyn Process,
    slow: &SlowRequest,
) {
    let Some(taking) = process.backtrace(slow.depth) else {
        return;
    };
    let request_id = slow.request_id.as_str();
    let bt = match tokio::time::timeout(BACKTRACE_TIMEOUT, taking).await {
        Ok(Ok(bt)) => bt,
        Ok(Err(e)) => {
            tracing::debug!(pid, request_id = %request_id, "no backtrace of the slow request: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!(
                pid,
                request_id = %request_id,
                "no backtrace of the slow request: the worker did not answer within {BACKTRACE_TIMEOUT:?}"
            );
            return;
        }
    };
    let same_request =
        inner.lock().workers.get(&id).is_some_and(|w| {
            w.state == WorkerState::Busy && w.since == slow.since && w.slow_logged
        });
    if !same_request {
        tracing::debug!(
            pid,
            request_id = %request_id,
            "the slow request ended before its backtrace was taken"
        );
        return;
    }
    if bt.frames.is_empty() && !bt.truncated {
        tracing::warn!(
            pid,
            request_id = %request_id,
            "slow request backtrace: no PHP code running (the request is starting, reading its body or ending)"
        );
    }
    for (i, frame) in bt.frames.iter().enumerate() {
        tracing::warn!(pid, request_id = %request_id, "slow request backtrace #{i}: {frame}");
    }
    if bt.truncated {
        tracing::warn!(
            pid,
            request_id = %request_id,
            "slow request backtrace: more frames not shown (slowlog_trace_depth = {})",
            slow.depth
        );
    }
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    // Spawns are I/O-bound waits on child processes; polling them in sequence would add
    // their start-up times, so drive them together.
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

/// Exclusive use of one worker for one request. Dropping it without [`Lease::release`]
/// counts as [`Outcome::Broken`] once its connection has been used; an unused lease goes
/// back to the pool untouched.
pub struct Lease {
    inner: Arc<Inner>,
    id: u64,
    pid: u32,
    stream: Option<UnixStream>,
    /// Handed to a waiter but not yet received.
    fresh: bool,
    /// The connection has been handed out with [`Lease::stream`].
    touched: bool,
}

impl Lease {
    /// The open FastCGI connection to the worker.
    pub fn stream(&mut self) -> &mut UnixStream {
        self.touched = true;
        match self.stream.as_mut() {
            Some(s) => s,
            // The stream is only taken by release/drop, which consume the lease.
            None => unreachable!("lease used after release"),
        }
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the worker acts on FCGI_ABORT_REQUEST (see [`Backend::honours_abort`]).
    pub fn honours_abort(&self) -> bool {
        self.inner.backend.honours_abort()
    }

    /// Whether the worker may send an interim record (see [`Backend::sends_interim`]).
    pub fn sends_interim(&self) -> bool {
        self.inner.backend.sends_interim()
    }

    /// Ends the lease.
    pub fn release(mut self, outcome: Outcome) {
        if let Some(stream) = self.stream.take() {
            self.inner
                .release(self.id, self.pid, stream, outcome, self.fresh);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            let outcome = if self.touched {
                Outcome::Broken
            } else {
                Outcome::Reusable
            };
            let fresh = self.fresh || !self.touched;
            self.inner
                .release(self.id, self.pid, stream, outcome, fresh);
        }
    }
}
