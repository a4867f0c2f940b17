//! The supervisor's state machine, driven through a fake backend: workers are socket pairs
//! and processes are handles the test kills, so every transition can be provoked and
//! observed without PHP (the integration suite runs the same paths with real workers).
#![allow(clippy::unwrap_used)]
use crate::backend::{Backend, Backtrace, BoxFuture, Process, SpawnError, Spawned};
use crate::pool::{AcquireError, JobInfo, Outcome, Pool, PoolConfig, PoolSettings, ProcessManager};
use nix::sys::signal::Signal;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use tokio::sync::watch;

/// The test's side of one fake worker.
#[derive(Clone)]
struct Handle {
    pid: u32,
    exit: watch::Sender<Option<ExitStatus>>,
    signals: Arc<Mutex<Vec<Signal>>>,
    ignore_term: Arc<AtomicBool>,
    /// The worker's end of its connection: dropped when it dies, as a real one's would be.
    peer: Arc<Mutex<Option<UnixStream>>>,
    /// The depth of every backtrace asked of it.
    traces: Arc<Mutex<Vec<u32>>>,
}

impl Handle {
    fn die(&self, status: ExitStatus) {
        self.peer.lock().unwrap().take();
        self.exit.send_replace(Some(status));
    }
    fn signals(&self) -> Vec<Signal> {
        self.signals.lock().unwrap().clone()
    }
    fn reaped(&self) -> bool {
        self.exit.borrow().is_some()
    }
}

struct FakeProcess {
    handle: Handle,
    exit: watch::Receiver<Option<ExitStatus>>,
}

impl Process for FakeProcess {
    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>> {
        Box::pin(async move {
            let status = self
                .exit
                .wait_for(Option::is_some)
                .await
                .map_err(|_| io::Error::other("fake process gone"))?;
            Ok(status.unwrap_or(ExitStatus::from_raw(0)))
        })
    }

    fn signal(&mut self, sig: Signal) -> io::Result<()> {
        self.handle.signals.lock().unwrap().push(sig);
        let dies = sig == Signal::SIGKILL
            || (sig == Signal::SIGTERM && !self.handle.ignore_term.load(Ordering::Relaxed));
        if dies && !self.handle.reaped() {
            self.handle.die(ExitStatus::from_raw(sig as i32));
        }
        Ok(())
    }

    fn backtrace(&mut self, depth: u32) -> Option<BoxFuture<'_, io::Result<Backtrace>>> {
        self.handle.traces.lock().unwrap().push(depth);
        Some(Box::pin(async move {
            Ok(Backtrace::parse(b"F\tsleep\t/srv/a.php\t3\nE\n"))
        }))
    }
}

#[derive(Default)]
struct Fake {
    next_pid: AtomicU32,
    fail_next: AtomicU32,
    ignore_term: AtomicBool,
    workers: Mutex<Vec<Handle>>,
}

impl Fake {
    fn workers(&self) -> Vec<Handle> {
        self.workers.lock().unwrap().clone()
    }
    fn by_pid(&self, pid: u32) -> Handle {
        self.workers().into_iter().find(|h| h.pid == pid).unwrap()
    }
}

struct FakeBackend(Arc<Fake>);

impl Backend for FakeBackend {
    fn spawn(&self, _n: u64, _timeout: Duration) -> BoxFuture<'_, Result<Spawned, SpawnError>> {
        Box::pin(async move {
            let fake = &self.0;
            if fake
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(SpawnError::NotReady {
                    pid: 0,
                    reason: "told to fail".into(),
                    stderr: String::new(),
                });
            }
            let pid = 1000 + fake.next_pid.fetch_add(1, Ordering::SeqCst);
            let (ours, theirs) = UnixStream::pair().unwrap();
            let (tx, rx) = watch::channel(None);
            let handle = Handle {
                pid,
                exit: tx,
                signals: Arc::default(),
                ignore_term: Arc::new(AtomicBool::new(fake.ignore_term.load(Ordering::SeqCst))),
                peer: Arc::new(Mutex::new(Some(theirs))),
                traces: Arc::default(),
            };
            fake.workers.lock().unwrap().push(handle.clone());
            Ok(Spawned {
                pid,
                stream: ours,
                process: Box::new(FakeProcess { handle, exit: rx }),
            })
        })
    }

    fn name(&self) -> &'static str {
        "fake"
    }
}

fn config(max_children: usize) -> PoolConfig {
    PoolConfig {
        settings: PoolSettings {
            max_children,
            max_requests: 0,
            queue_size: 8,
            queue_timeout: Duration::from_secs(5),
            pm: ProcessManager::Static,
            max_worker_memory: None,
            max_lifetime: None,
            crash_loop: None,
            slowlog_timeout: None,
            slowlog_trace_depth: 20,
            auto: None,
        },
        kill_grace: Duration::from_millis(100),
        label: "/fake".into(),
        auto_size: None,
    }
}

async fn start(cfg: PoolConfig) -> (Pool, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let pool = Pool::start(cfg, Arc::new(FakeBackend(fake.clone())))
        .await
        .unwrap();
    (pool, fake)
}

/// Polls `cond` for up to 5 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(5), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn job() -> JobInfo {
    JobInfo {
        request_id: "r".into(),
        method: "GET".into(),
        uri: "/".into(),
        ..JobInfo::default()
    }
}

fn live_pids(pool: &Pool) -> Vec<u32> {
    pool.status().workers.iter().map(|w| w.pid).collect()
}

#[tokio::test]
async fn a_static_pool_starts_max_children_and_names_its_backend() {
    let (pool, fake) = start(config(3)).await;
    let st = pool.status();
    assert_eq!(st.workers.len(), 3);
    assert_eq!(st.spawned, 3);
    assert_eq!(st.backend, "fake");
    assert_eq!(fake.workers().len(), 3);
}

#[tokio::test]
async fn the_warmest_worker_serves_next() {
    let (pool, _) = start(config(2)).await;
    let mut a = pool.acquire(job()).await.unwrap();
    let pid = a.pid();
    a.stream();
    a.release(Outcome::Reusable);
    let b = pool.acquire(job()).await.unwrap();
    assert_eq!(b.pid(), pid, "LIFO: the worker just used");
    assert_eq!(pool.status().accepted, 2);
}

#[tokio::test]
async fn max_requests_retires_the_worker_and_a_replacement_starts() {
    let mut cfg = config(1);
    cfg.settings.max_requests = 2;
    let (pool, fake) = start(cfg).await;
    let first = live_pids(&pool)[0];
    for _ in 0..2 {
        let mut l = pool.acquire(job()).await.unwrap();
        assert_eq!(l.pid(), first);
        l.stream();
        l.release(Outcome::Reusable);
    }
    eventually("replaced", || {
        let p = live_pids(&pool);
        p.len() == 1 && p[0] != first
    })
    .await;
    let old = fake.by_pid(first);
    assert_eq!(old.signals(), vec![Signal::SIGTERM]);
    assert!(old.reaped());
    let st = pool.status();
    assert_eq!(st.retired, 1);
    assert_eq!(st.crashed, 0, "a retirement is not a crash");
}

#[tokio::test]
async fn a_worker_dying_on_its_own_is_a_crash_and_is_replaced() {
    let (pool, fake) = start(config(1)).await;
    let first = live_pids(&pool)[0];
    fake.by_pid(first)
        .die(ExitStatus::from_raw(Signal::SIGSEGV as i32));
    eventually("replaced", || {
        let p = live_pids(&pool);
        p.len() == 1 && p[0] != first
    })
    .await;
    let st = pool.status();
    assert_eq!(st.crashed, 1);
    assert_eq!(st.crashes_by_signal.get("SIGSEGV"), Some(&1));
    // The replacement serves.
    assert_ne!(pool.acquire(job()).await.unwrap().pid(), first);
}

#[tokio::test]
async fn a_broken_lease_stops_the_worker() {
    let (pool, fake) = start(config(1)).await;
    let mut l = pool.acquire(job()).await.unwrap();
    let pid = l.pid();
    l.stream();
    l.release(Outcome::Broken);
    eventually("replaced", || {
        live_pids(&pool).first().is_some_and(|&p| p != pid)
    })
    .await;
    assert_eq!(fake.by_pid(pid).signals(), vec![Signal::SIGTERM]);
    assert_eq!(pool.status().crashed, 0);
}

#[tokio::test]
async fn a_timed_out_worker_that_ignores_sigterm_gets_sigkill_after_the_grace() {
    let (pool, fake) = start(config(1)).await;
    fake.ignore_term.store(true, Ordering::SeqCst);
    let mut l = pool.acquire(job()).await.unwrap();
    let pid = l.pid();
    fake.by_pid(pid).ignore_term.store(true, Ordering::SeqCst);
    l.stream();
    let t = Instant::now();
    l.release(Outcome::TimedOut);
    eventually("killed", || fake.by_pid(pid).reaped()).await;
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "SIGKILL waited for the grace"
    );
    assert_eq!(
        fake.by_pid(pid).signals(),
        vec![Signal::SIGTERM, Signal::SIGKILL]
    );
}

#[tokio::test]
async fn the_queue_is_bounded_fifo_and_timed() {
    let mut cfg = config(1);
    cfg.settings.queue_size = 2;
    cfg.settings.queue_timeout = Duration::from_millis(300);
    let (pool, _) = start(cfg).await;
    let mut held = pool.acquire(job()).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..2 {
        let (pool, order) = (pool.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let mut l = pool.acquire(job()).await.unwrap();
            order.lock().unwrap().push(i);
            l.stream();
            l.release(Outcome::Reusable);
        }));
        // Arrival order must be the waiters' order.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        pool.acquire(job()).await,
        Err(AcquireError::QueueFull)
    ));
    held.stream();
    held.release(Outcome::Reusable);
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(
        *order.lock().unwrap(),
        vec![0, 1],
        "served in arrival order"
    );
    assert_eq!(pool.status().queue_full, 1);
    // Nobody releases: a waiter gives up after queue_timeout.
    let _held = pool.acquire(job()).await.unwrap();
    let t = Instant::now();
    assert!(matches!(
        pool.acquire(job()).await,
        Err(AcquireError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(pool.status().queue_timeouts, 1);
}

#[tokio::test]
async fn failing_spawns_back_off_and_recover() {
    let (pool, fake) = start(config(1)).await;
    let first = live_pids(&pool)[0];
    fake.fail_next.store(2, Ordering::SeqCst);
    fake.by_pid(first).die(ExitStatus::from_raw(1 << 8));
    eventually("failures counted", || {
        pool.status().spawn_failures_in_a_row >= 1
    })
    .await;
    let t = Instant::now();
    eventually("recovered", || live_pids(&pool).len() == 1).await;
    assert_eq!(pool.status().spawn_failures_in_a_row, 0);
    // Two failures: 100 ms then 200 ms of back-off before the third attempt.
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(fake.workers().len(), 2);
}

#[tokio::test]
async fn a_pool_whose_first_worker_cannot_start_does_not_start() {
    let fake = Arc::new(Fake::default());
    fake.fail_next.store(1, Ordering::SeqCst);
    let r = Pool::start(config(2), Arc::new(FakeBackend(fake.clone()))).await;
    assert!(r.is_err());
    // The worker that did start was killed and reaped, not left behind.
    for h in fake.workers() {
        assert!(h.reaped(), "pid {} left running", h.pid);
    }
}

#[tokio::test]
async fn shutdown_stops_and_reaps_every_worker() {
    let (pool, fake) = start(config(3)).await;
    pool.shutdown(Duration::from_millis(100)).await;
    for h in fake.workers() {
        assert!(h.reaped(), "pid {} not reaped", h.pid);
        assert_eq!(h.signals(), vec![Signal::SIGTERM]);
    }
    assert!(pool.status().workers.is_empty());
    assert!(matches!(
        pool.acquire(job()).await,
        Err(AcquireError::ShuttingDown)
    ));
}

#[tokio::test]
async fn ondemand_retires_an_idle_worker_and_starts_one_for_a_request() {
    let mut cfg = config(2);
    cfg.settings.pm = ProcessManager::OnDemand {
        idle_timeout: Duration::from_millis(100),
    };
    let (pool, _) = start(cfg).await;
    assert_eq!(live_pids(&pool).len(), 1);
    // The maintenance pass runs once a second.
    eventually("idle worker retired", || live_pids(&pool).is_empty()).await;
    let l = pool.acquire(job()).await.unwrap();
    assert!(l.pid() > 0);
    assert_eq!(pool.status().retired, 1);
}

#[tokio::test]
async fn dynamic_keeps_spares_between_min_and_max() {
    let mut cfg = config(4);
    cfg.settings.pm = ProcessManager::Dynamic {
        start: 1,
        min_spare: 1,
        max_spare: 2,
    };
    let (pool, _) = start(cfg).await;
    assert_eq!(live_pids(&pool).len(), 1);
    // Busy workers do not count as spares: taking the only one makes the pool start another.
    let l = pool.acquire(job()).await.unwrap();
    eventually("a spare started", || live_pids(&pool).len() == 2).await;
    drop(l);
    let l1 = pool.acquire(job()).await.unwrap();
    let l2 = pool.acquire(job()).await.unwrap();
    eventually("a spare for the two busy", || live_pids(&pool).len() == 3).await;
    drop((l1, l2));
    // Three idle now, max_spare = 2: one is retired at the next pass.
    eventually("trimmed to max_spare", || live_pids(&pool).len() == 2).await;
}

#[tokio::test]
async fn a_tolerant_pool_starts_without_workers_answers_no_worker_at_once_then_recovers() {
    let fake = Arc::new(Fake::default());
    // The first start and its first retry fail.
    fake.fail_next.store(2, Ordering::SeqCst);
    let pool = Pool::start_tolerant(config(1), Arc::new(FakeBackend(fake.clone())))
        .await
        .unwrap();
    assert!(live_pids(&pool).is_empty());
    // Waiting for the retry that fails is answered when it fails, not at queue_timeout.
    let t = Instant::now();
    assert!(matches!(
        pool.acquire(job()).await,
        Err(AcquireError::NoWorker)
    ));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The next retry succeeds: a worker serves.
    eventually("a worker started", || live_pids(&pool).len() == 1).await;
    assert!(pool.acquire(job()).await.is_ok());
}

#[tokio::test]
async fn recycle_all_replaces_idle_workers_now_and_busy_ones_after_their_request() {
    let (pool, _) = start(config(2)).await;
    let before = live_pids(&pool);
    let busy = pool.acquire(job()).await.unwrap();
    let busy_pid = busy.pid();
    pool.recycle_all("code changed");
    eventually("the idle worker replaced", || {
        let now = live_pids(&pool);
        now.len() == 2 && now.iter().filter(|p| before.contains(p)).count() == 1
    })
    .await;
    assert!(
        live_pids(&pool).contains(&busy_pid),
        "a busy worker finishes its request"
    );
    busy.release(Outcome::Reusable);
    eventually("the busy one replaced after its request", || {
        let now = live_pids(&pool);
        now.len() == 2 && !now.iter().any(|p| before.contains(p))
    })
    .await;
}

/// A pool with one worker, slow after 100 ms, and a lease of it.
async fn slow_lease(depth: u32) -> (Pool, Handle, crate::pool::Lease) {
    let mut cfg = config(1);
    cfg.settings.slowlog_timeout = Some(Duration::from_millis(100));
    cfg.settings.slowlog_trace_depth = depth;
    let (pool, fake) = start(cfg).await;
    let lease = pool.acquire(job()).await.unwrap();
    let w = fake.by_pid(lease.pid());
    (pool, w, lease)
}

#[tokio::test]
async fn a_slow_request_has_its_backtrace_asked_for_once() {
    let (pool, w, lease) = slow_lease(7).await;
    eventually("the backtrace is asked for", || {
        !w.traces.lock().unwrap().is_empty()
    })
    .await;
    // Two more maintenance passes: still the same slow request, asked about once.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(*w.traces.lock().unwrap(), vec![7]);
    assert_eq!(pool.status().slow_requests, 1);
    lease.release(Outcome::Reusable);
    assert!(w.signals().is_empty(), "the worker is not signalled");
}

#[tokio::test]
async fn a_trace_depth_of_zero_asks_for_no_backtrace() {
    let (pool, w, lease) = slow_lease(0).await;
    eventually("the request is counted slow", || {
        pool.status().slow_requests == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(w.traces.lock().unwrap().is_empty());
    lease.release(Outcome::Reusable);
}
