//! The queue against the real embedded store on a unix socket, with a fake dispatcher in
//! place of the front. Every wait is on an event (a job run, a list length), bounded only
//! so that a broken build fails instead of hanging.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::Headroom;
use isola_config::JobTarget;
use isola_front::internal::{Internal, Outcome};
use isola_store_client::{Conn, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{mpsc, Semaphore};

const BOUND: Duration = Duration::from_secs(20);

/// Answers every job with `status`, each run waiting for a permit of `gate`.
#[derive(Clone)]
struct Fake {
    status: u16,
    gate: Arc<Semaphore>,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    runs: mpsc::UnboundedSender<Vec<u8>>,
}

impl crate::Dispatch for Fake {
    fn headroom(&self, _: Option<&str>, _: Option<&str>) -> Option<Headroom> {
        Some(Headroom {
            max_children: 100,
            busy: 0,
            background: 0,
            waiting: 0,
        })
    }

    fn run(&self, req: Internal<'_>) -> impl std::future::Future<Output = Outcome> + Send {
        let body = req.body.map(|b| b.to_vec()).unwrap_or_default();
        let me = self.clone();
        async move {
            let now = me.running.fetch_add(1, Ordering::SeqCst) + 1;
            me.most.fetch_max(now, Ordering::SeqCst);
            let _ = me.runs.send(body);
            let permit = me.gate.acquire().await.unwrap();
            permit.forget();
            me.running.fetch_sub(1, Ordering::SeqCst);
            Outcome::Answered(me.status)
        }
    }
}

fn fake(status: u16, permits: usize) -> (Fake, mpsc::UnboundedReceiver<Vec<u8>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let f = Fake {
        status,
        gate: Arc::new(Semaphore::new(permits)),
        running: Arc::default(),
        most: Arc::default(),
        runs: tx,
    };
    (f, rx)
}

fn queue(name: &str, concurrency: usize, max_attempts: u32) -> QueueConfig {
    QueueConfig {
        name: name.into(),
        target: JobTarget::Script("/app/job.php".into()),
        site: None,
        concurrency,
        timeout: None,
        max_attempts,
        backoff: Duration::ZERO,
        reserve: 0,
        own_pool: false,
    }
}

/// An embedded store on a unix socket in a fresh folder, and its endpoint (db 15).
pub(crate) async fn store() -> (tempfile::TempDir, Endpoint) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let store = isola_store::Store::bind(isola_store::StoreConfig {
        unix_socket: Some(sock.clone()),
        ..isola_store::StoreConfig::default()
    })
    .await
    .unwrap();
    tokio::spawn(store.run(std::future::pending()));
    let ep = Endpoint::parse(&format!("unix://{}?db=15", sock.display())).unwrap();
    (dir, ep)
}

async fn conn(ep: &Endpoint) -> Conn {
    Conn::connect(ep, STORE_TIMEOUT).await.unwrap()
}

async fn len(c: &mut Conn, k: &str) -> i64 {
    c.ok(&["LLEN", k]).await.unwrap().as_int().unwrap()
}

/// Waits until list `k` holds `n` elements.
async fn until_len(c: &mut Conn, k: &str, n: i64) {
    tokio::time::timeout(BOUND, async {
        while len(c, k).await != n {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{k} never held {n}"));
}

async fn next_run(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>) -> Vec<u8> {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap()
}

fn control(ep: &Endpoint, board: &Arc<Board>) -> Control {
    Control {
        ep: Arc::new(ep.clone()),
        board: board.clone(),
    }
}

#[tokio::test]
async fn a_job_runs_once_and_is_acknowledged() {
    let (_d, ep) = store().await;
    let (f, mut rx) = fake(200, 100);
    let board = Arc::new(Board::default());
    let q = start(&f, ep.clone(), "n1", &[queue("mail", 1, 3)], &board);
    let mut c = conn(&ep).await;
    c.ok(&["RPUSH", "isola:queue:mail", "hello"]).await.unwrap();
    assert_eq!(next_run(&mut rx).await, b"hello");
    until_len(&mut c, "isola:processing:mail:n1", 0).await;
    assert_eq!(len(&mut c, "isola:queue:mail").await, 0);
    assert_eq!(len(&mut c, "isola:dead:mail").await, 0);
    q.stop(BOUND).await;
    assert!(rx.try_recv().is_err(), "the job ran twice");
    let fig = board.figures();
    assert_eq!((fig[0].done, fig[0].failed), (1, 0));
}

#[tokio::test]
async fn a_failing_job_is_retried_then_buried_and_retry_revives_only_the_dead() {
    let (_d, ep) = store().await;
    let (f, mut rx) = fake(500, 100);
    let board = Arc::new(Board::default());
    let q = start(&f, ep.clone(), "n1", &[queue("mail", 1, 3)], &board);
    let mut c = conn(&ep).await;
    c.ok(&["RPUSH", "isola:queue:mail", "boom"]).await.unwrap();
    for _ in 0..3 {
        assert_eq!(next_run(&mut rx).await, b"boom");
    }
    until_len(&mut c, "isola:dead:mail", 1).await;
    assert!(rx.try_recv().is_err(), "ran beyond max_attempts");
    let Value::Bulk(dead) = c.ok(&["LINDEX", "isola:dead:mail", "0"]).await.unwrap() else {
        panic!("no dead job")
    };
    let (env, payload) = envelope::Envelope::unwrap(&dead);
    assert_eq!((env.attempt, payload), (3, &b"boom"[..]));
    assert_eq!(env.error.as_deref(), Some("script answered 500"));
    assert_eq!(board.figures()[0].failed, 3);

    // Retry runs it again from attempt one; when it dies again it is not revived twice.
    let ctl = control(&ep, &board);
    let r = ctl
        .act("mail", isola_admin::QueueAction::Retry)
        .await
        .unwrap();
    assert_eq!(r["retried"], 1);
    for _ in 0..3 {
        assert_eq!(next_run(&mut rx).await, b"boom");
    }
    until_len(&mut c, "isola:dead:mail", 1).await;
    q.stop(BOUND).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn retry_moves_only_jobs_dead_when_it_starts() {
    let (_d, ep) = store().await;
    let board = Arc::new(Board::default());
    board.counters("mail");
    let mut c = conn(&ep).await;
    for p in ["a", "b"] {
        c.ok(&["RPUSH", "isola:dead:mail", p]).await.unwrap();
    }
    let r = control(&ep, &board)
        .act("mail", isola_admin::QueueAction::Retry)
        .await
        .unwrap();
    assert_eq!(r["retried"], 2);
    assert_eq!(len(&mut c, "isola:dead:mail").await, 0);
    assert_eq!(len(&mut c, "isola:queue:mail").await, 2);
    let unknown = control(&ep, &board)
        .act("nope", isola_admin::QueueAction::Retry)
        .await;
    assert!(matches!(
        unknown,
        Err(isola_admin::QueueActionError::NoSuchQueue)
    ));
}

#[tokio::test]
async fn never_more_jobs_at_once_than_consumers_and_stop_lets_them_finish() {
    let (_d, ep) = store().await;
    let (f, mut rx) = fake(200, 0);
    let board = Arc::new(Board::default());
    let q = start(&f, ep.clone(), "n1", &[queue("mail", 2, 3)], &board);
    let mut c = conn(&ep).await;
    for i in 0..6 {
        c.ok(&["RPUSH", "isola:queue:mail", &i.to_string()])
            .await
            .unwrap();
    }
    // Two start and hold their runs; a third only when one of them ends.
    next_run(&mut rx).await;
    next_run(&mut rx).await;
    for _ in 0..3 {
        f.gate.add_permits(1);
        next_run(&mut rx).await;
    }
    // Stopping with two jobs running waits for them.
    let stopping = tokio::spawn(q.stop(BOUND));
    until_len(&mut c, "isola:processing:mail:n1", 2).await;
    assert!(!stopping.is_finished());
    f.gate.add_permits(2);
    tokio::time::timeout(BOUND, stopping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(len(&mut c, "isola:processing:mail:n1").await, 0);
    assert_eq!(f.most.load(Ordering::SeqCst), 2);
    let fig = board.figures();
    assert_eq!(fig[0].done, 5);
    // The sixth was never taken, or went back to the queue.
    assert_eq!(len(&mut c, "isola:queue:mail").await, 1);
}

/// A front whose pool load the test sets; `None` means no site answers.
#[derive(Clone, Default)]
struct Load(Arc<std::sync::Mutex<Option<Headroom>>>);

impl Load {
    fn set(&self, max_children: usize, busy: usize, background: usize, waiting: usize) {
        *self.0.lock().unwrap() = Some(Headroom {
            max_children,
            busy,
            background,
            waiting,
        });
    }
}

impl crate::Dispatch for Load {
    fn headroom(&self, _: Option<&str>, _: Option<&str>) -> Option<Headroom> {
        *self.0.lock().unwrap()
    }

    fn run(&self, _: Internal<'_>) -> impl std::future::Future<Output = Outcome> + Send {
        std::future::ready(Outcome::Answered(200))
    }
}

fn admission(front: Load) -> consumer::Ctx<Load> {
    let (_, stop) = watch::channel(false);
    let (_, recovered) = watch::channel(true);
    consumer::Ctx {
        front,
        ep: Arc::new(Endpoint::parse("unix:///nonexistent.sock").unwrap()),
        node: "n".into(),
        stop,
        running: Arc::default(),
        recovered,
    }
}

#[test]
fn a_job_takes_a_web_worker_only_beyond_the_reserve_and_when_no_request_waits() {
    let load = Load::default();
    let ctx = admission(load.clone());
    let mut q = queue("mail", 8, 1);
    q.reserve = 1;

    // No site answers the queue's name: nothing is claimed, nothing fits.
    assert!(ctx.claim(&q).is_none());
    assert!(!ctx.has_room(&q));

    // 4 workers, 1 kept for web requests: 3 jobs at once, claimed under one count.
    load.set(4, 0, 0, 0);
    let slots: Vec<_> = (0..3).map(|_| ctx.claim(&q).expect("room")).collect();
    assert!(ctx.claim(&q).is_none(), "the reserve is kept");
    // The claimed jobs now hold their workers: they are not counted twice.
    load.set(4, 3, 3, 0);
    assert!(ctx.claim(&q).is_none());
    drop(slots);
    load.set(4, 0, 0, 0);
    assert!(ctx.has_room(&q), "a dropped slot gives its worker back");

    // Web requests busy and waiting come first.
    load.set(4, 2, 0, 0);
    let one = ctx.claim(&q).expect("4 - 2 web - 1 reserve");
    assert!(ctx.claim(&q).is_none());
    drop(one);
    load.set(4, 0, 0, 1);
    assert!(!ctx.has_room(&q), "a waiting web request blocks every job");
    // Background work this node did not claim (deferred runs, another node's jobs)
    // holds its workers too.
    load.set(3, 2, 2, 0);
    assert!(!ctx.has_room(&q));

    // A queue with its own pool is not counted against the site's web workers.
    let mut own = queue("reports", 2, 1);
    own.own_pool = true;
    load.set(1, 1, 0, 5);
    let _held = ctx
        .claim(&own)
        .expect("its own pool has a worker per consumer");
    assert_eq!(ctx.running.lock().unwrap().get(&None).copied(), Some(0));
}
