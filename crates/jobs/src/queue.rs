//! `[[queue]]`: job queues kept in the store (embedded or a real Redis shared by several
//! nodes) and run by the pool, one internal request per job.
//!
//! Owns: consuming (a job moves to this node's processing list before it runs, so a crash
//! never loses it), acknowledging, retries with backoff, the dead list, recovering jobs left
//! in processing by this node (at start) or by a node that stopped beating (any time),
//! moving delayed retries back when due, the per-queue figures, and the admin actions
//! (enqueue, retry the dead, drop).
//!
//! Never: runs a job without it being in a processing list first, takes the last free
//! workers from web requests (`reserve`), or holds a job anywhere but in the store: a
//! killed node loses nothing that another node (or its own restart) cannot recover.
//!
//! Keys, for a queue `q` and a node `n`: `isola:queue:q` (pending, FIFO: producers RPUSH,
//! consumers take from the head), `isola:processing:q:n`, `isola:delayed:q` (a sorted set
//! by due time), `isola:dead:q`, `isola:nodes:q` (nodes that may hold processing lists),
//! `isola:node:n` (heartbeat with an expiry). They live in `[store] isola_db`, not in the
//! application's database, and a heartbeat that finds its key gone (an app's `FLUSHALL`, a
//! store restarted empty) registers the node again and says so.
//!
//! Producers push raw payloads. Isola wraps a job in an envelope (id, attempt, enqueue
//! time, last error) the first time it takes it, and keeps the envelope across retries; a
//! script always receives the raw payload as its body.
use crate::Dispatch;
use isola_config::{JobTarget, QueueConfig};
use isola_front::internal::{Internal, Kind, Outcome};
use isola_store_client::{ClientError, Conn, Endpoint, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Reply deadline for store commands (blocking waits add their own).
const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one blocking take waits, so a stop is noticed within it.
const TAKE_WAIT_SECS: u64 = 1;
/// Heartbeat period; a node silent for [`NODE_TTL`] is presumed dead and its jobs recovered.
const HEARTBEAT: Duration = Duration::from_secs(2);
const NODE_TTL: Duration = Duration::from_secs(10);
/// Longest backoff between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Most delayed jobs moved back per tick.
const MOVE_BATCH: usize = 100;

const MAGIC: &[u8] = b"\0isola-job\n";

/// What Isola knows of a job beyond its payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Envelope {
    id: String,
    /// Runs started so far (the one running, if any, included).
    attempt: u32,
    /// When it was enqueued (ms since the epoch), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queued_ms: Option<u64>,
    /// Why the last run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Envelope {
    fn wrap(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        // Serializing a plain struct of strings and numbers cannot fail.
        v.extend(serde_json::to_vec(self).unwrap_or_default());
        v.push(b'\n');
        v.extend_from_slice(payload);
        v
    }

    /// Splits a list element into envelope and payload; a raw payload gets a new id.
    fn unwrap(elem: &[u8]) -> (Envelope, &[u8]) {
        if let Some(rest) = elem.strip_prefix(MAGIC) {
            if let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                if let Ok(env) = serde_json::from_slice::<Envelope>(&rest[..nl]) {
                    return (env, &rest[nl + 1..]);
                }
            }
        }
        (
            Envelope {
                id: new_id(),
                attempt: 0,
                queued_ms: None,
                error: None,
            },
            elem,
        )
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A job id: time-ordered, unique across nodes with overwhelming probability.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:012x}{:08x}", now_ms(), h.finish() as u32)
}

fn key(kind: &str, queue: &str) -> String {
    format!("isola:{kind}:{queue}")
}

/// Counters of one queue on this node, and the store's figures as last sampled.
#[derive(Debug, Default)]
pub struct QueueCounters {
    running: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    dead: AtomicU64,
    sampled: Mutex<Sampled>,
}

#[derive(Debug, Default, Clone)]
struct Sampled {
    pending: u64,
    delayed: u64,
    dead: u64,
    processing: u64,
    oldest_age: Option<Duration>,
    head: Option<(bytes::Bytes, u64)>,
}

/// The queues' figures for the admin listener; kept across reloads.
#[derive(Debug, Default)]
pub struct Board {
    queues: Mutex<BTreeMap<String, Arc<QueueCounters>>>,
}

impl Board {
    fn counters(&self, name: &str) -> Arc<QueueCounters> {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Figures of every queue in force.
    pub fn figures(&self) -> Vec<isola_admin::QueueFigures> {
        let q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        q.iter()
            .map(|(name, c)| {
                let s = c.sampled.lock().unwrap_or_else(|e| e.into_inner()).clone();
                isola_admin::QueueFigures {
                    name: name.clone(),
                    pending: s.pending,
                    delayed: s.delayed,
                    processing: s.processing,
                    dead: s.dead,
                    oldest_age: s.oldest_age,
                    running: c.running.load(Ordering::Relaxed),
                    done: c.done.load(Ordering::Relaxed),
                    failed: c.failed.load(Ordering::Relaxed),
                    dead_lettered: c.dead.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    fn retain(&self, names: &[&str]) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n, _| names.contains(&n.as_str()));
    }
}

/// The queue consumers in force; [`Queues::stop`] lets running jobs finish.
pub struct Queues {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The configuration they run, to tell whether a reload changes anything.
    pub config: Vec<QueueConfig>,
}

/// Everything a consumer needs.
#[derive(Clone)]
struct Ctx<D> {
    front: D,
    ep: Arc<Endpoint>,
    node: Arc<str>,
    stop: watch::Receiver<bool>,
    /// Jobs of this node running (or about to) per site, all queues together.
    running: JobCounts,
    /// Turns true once this node's leftovers from its last run are back in their queues;
    /// consumers wait for it, or recovery would take jobs they had just started.
    recovered: watch::Receiver<bool>,
}

/// Jobs of this node holding (or about to hold) a web-pool worker, by site.
type JobCounts = Arc<Mutex<BTreeMap<Option<String>, usize>>>;

/// A job's hold on a worker of its site's web pool, counted until dropped (`None`: a
/// queue with its own pool, not counted).
struct Slot(Option<(JobCounts, Option<String>)>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((running, site)) = &self.0 {
            let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = r.get_mut(site) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl<D: Dispatch> Ctx<D> {
    /// Claims a worker for a job when, after it, more than `reserve` workers stay free for
    /// web requests and no web request waits. Counting this node's jobs under one lock
    /// keeps two consumers from both taking the last worker they may use.
    fn claim(&self, q: &QueueConfig) -> Option<Slot> {
        let mut r = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if !self.fits(q, &r)? {
            return None;
        }
        if q.own_pool {
            return Some(Slot(None));
        }
        *r.entry(q.site.clone()).or_default() += 1;
        Some(Slot(Some((self.running.clone(), q.site.clone()))))
    }

    /// Whether a job of `q` may start now (`None`: no site answers its name).
    fn fits(&self, q: &QueueConfig, r: &BTreeMap<Option<String>, usize>) -> Option<bool> {
        if q.own_pool {
            // Its pool has a worker per consumer and serves nothing else.
            self.front.headroom(q.site.as_deref(), Some(&q.name))?;
            return Some(true);
        }
        let h = self.front.headroom(q.site.as_deref(), None)?;
        let jobs = r.get(&q.site).copied().unwrap_or(0);
        // Jobs already claimed count whether or not they hold their worker yet.
        let web_busy = h.busy - h.background.min(h.busy);
        let free_after = h
            .max_children
            .saturating_sub(web_busy + jobs.max(h.background) + 1);
        Some(
            h.waiting == 0
                && h.max_children > web_busy + jobs.max(h.background)
                && free_after >= q.reserve,
        )
    }

    /// Whether a job could start now, without claiming anything.
    fn has_room(&self, q: &QueueConfig) -> bool {
        let r = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.fits(q, &r).unwrap_or(false)
    }
}

/// Starts consumers, recovery, delayed-job movers and samplers for `queues`.
pub fn start<D: Dispatch>(
    front: &D,
    ep: Endpoint,
    node: &str,
    queues: &[QueueConfig],
    board: &Arc<Board>,
) -> Queues {
    let (stop, rx) = watch::channel(false);
    let (recovered_tx, recovered) = watch::channel(false);
    let ctx = Ctx {
        front: front.clone(),
        ep: Arc::new(ep),
        node: node.into(),
        stop: rx,
        running: Arc::default(),
        recovered,
    };
    board.retain(&queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>());
    let mut tasks = Vec::new();
    if !queues.is_empty() {
        tasks.push(tokio::spawn(keeper(
            ctx.clone(),
            queues.to_vec(),
            board.clone(),
            recovered_tx,
        )));
    }
    for q in queues {
        let counters = board.counters(&q.name);
        for slot in 0..q.concurrency {
            tasks.push(tokio::spawn(consume(
                ctx.clone(),
                q.clone(),
                counters.clone(),
                slot,
            )));
        }
    }
    Queues {
        stop,
        tasks,
        config: queues.to_vec(),
    }
}

impl Queues {
    /// Stops taking jobs and waits up to `grace` for running ones; jobs cut short stay in
    /// the processing list and run again after recovery.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let waiting = futures_util::future::join_all(std::mem::take(&mut self.tasks));
        if tokio::time::timeout(grace, waiting).await.is_err() {
            tracing::warn!("queue consumers still running after the shutdown grace; their jobs will be recovered");
        }
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn connect<D>(ctx: &Ctx<D>, failures: &mut u32) -> Option<Conn> {
    match Conn::connect(&ctx.ep, STORE_TIMEOUT).await {
        Ok(c) => {
            if *failures > 0 {
                tracing::info!("queues: store reachable again");
            }
            *failures = 0;
            Some(c)
        }
        Err(e) => {
            if *failures == 0 {
                tracing::error!("queues: cannot reach the store: {e}; retrying");
            }
            *failures += 1;
            let wait = Duration::from_millis(200 * u64::from((*failures).min(25)));
            let mut stop = ctx.stop.clone();
            let _ = tokio::time::timeout(wait, stop.wait_for(|s| *s)).await;
            None
        }
    }
}

/// Heartbeat, recovery of dead nodes' jobs, delayed jobs due, and figures; one per node.
async fn keeper<D: Dispatch>(
    ctx: Ctx<D>,
    queues: Vec<QueueConfig>,
    board: Arc<Board>,
    recovered: watch::Sender<bool>,
) {
    let mut failures = 0;
    let mut conn: Option<Conn> = None;
    let mut started = false;
    let mut stop = ctx.stop.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = None::<tokio::time::Instant>;
    let mut registered = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&ctx, &mut failures).await {
                Some(c) => conn.insert(c),
                None => continue,
            },
        };
        let r: Result<(), ClientError> = async {
            if last_beat.is_none_or(|t: tokio::time::Instant| t.elapsed() >= HEARTBEAT) {
                beat(c, &ctx.node, &queues, &mut registered).await?;
                last_beat = Some(tokio::time::Instant::now());
            }
            if !started {
                // Jobs this node had taken when it last stopped: nobody else runs them while
                // its heartbeat lived, so they go back first.
                for q in &queues {
                    let n = recover(c, &q.name, &ctx.node).await?;
                    if n > 0 {
                        tracing::warn!(queue = %q.name, jobs = n, "recovered jobs this node left running when it stopped");
                    }
                }
                started = true;
                tracing::debug!("queues: recovery done, consumers start");
                let _ = recovered.send(true);
            }
            for q in &queues {
                move_due(c, &q.name).await?;
                reap(c, &q.name, &ctx.node).await?;
                sample(c, &q.name, &board.counters(&q.name)).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            tracing::warn!("queues: store error: {e}; reconnecting");
            conn = None;
        }
    }
}

/// Renews this node's heartbeat. Registering (the first beat, or one that finds the key
/// gone) also lists the node under every queue, so that others recover its jobs if it dies.
async fn beat(
    c: &mut Conn,
    node: &str,
    queues: &[QueueConfig],
    registered: &mut bool,
) -> Result<(), ClientError> {
    let ttl = NODE_TTL.as_millis().to_string();
    let pid = std::process::id().to_string();
    let heart = key("node", node);
    if *registered {
        let kept = c.ok(&["SET", &heart, &pid, "PX", &ttl, "XX"]).await?;
        if kept != Value::Nil {
            return Ok(());
        }
        tracing::warn!(
            key = %heart,
            "queues: this node's heartbeat was gone from the store (flushed, restarted empty, or this node stalled for {NODE_TTL:?}); registering it again"
        );
    }
    c.ok(&["SET", &heart, &pid, "PX", &ttl]).await?;
    for q in queues {
        c.ok(&["SADD", &key("nodes", &q.name), node]).await?;
    }
    *registered = true;
    Ok(())
}

/// Moves every job of `node`'s processing list back to the head of the queue, in order.
async fn recover(c: &mut Conn, queue: &str, node: &str) -> Result<u64, ClientError> {
    let proc = format!("{}:{node}", key("processing", queue));
    let pending = key("queue", queue);
    let mut n = 0;
    // One element at a time, each move atomic: two nodes recovering the same list at once
    // still move every job exactly once.
    while let Value::Bulk(_) = c.ok(&["LMOVE", &proc, &pending, "RIGHT", "LEFT"]).await? {
        n += 1;
    }
    Ok(n)
}

/// Recovers the processing lists of nodes whose heartbeat has expired.
async fn reap(c: &mut Conn, queue: &str, me: &str) -> Result<(), ClientError> {
    let nodes_key = key("nodes", queue);
    let Value::Array(nodes) = c.ok(&["SMEMBERS", &nodes_key]).await? else {
        return Ok(());
    };
    for n in nodes {
        let Some(node) = n
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
        else {
            continue;
        };
        if node == me {
            continue;
        }
        if c.ok(&["EXISTS", &key("node", &node)]).await?.as_int() == Some(0) {
            let moved = recover(c, queue, &node).await?;
            if moved > 0 {
                tracing::warn!(queue, node = %node, jobs = moved, "node stopped beating: its running jobs go back to the queue");
            }
            c.ok(&["SREM", &nodes_key, &node]).await?;
        }
    }
    Ok(())
}

/// Moves delayed retries whose time has come to the tail of the queue.
async fn move_due(c: &mut Conn, queue: &str) -> Result<(), ClientError> {
    let delayed = key("delayed", queue);
    let pending = key("queue", queue);
    c.ok(&["WATCH", &delayed]).await?;
    let now = now_ms().to_string();
    let batch = MOVE_BATCH.to_string();
    let due = match c
        .ok(&[
            "ZRANGEBYSCORE",
            &delayed,
            "-inf",
            &now,
            "LIMIT",
            "0",
            &batch,
        ])
        .await?
    {
        Value::Array(v) if !v.is_empty() => v,
        _ => {
            c.ok(&["UNWATCH"]).await?;
            return Ok(());
        }
    };
    let jobs: Vec<&[u8]> = due.iter().filter_map(Value::as_bytes).collect();
    let mut zrem: Vec<&[u8]> = vec![b"ZREM", delayed.as_bytes()];
    zrem.extend(&jobs);
    let mut rpush: Vec<&[u8]> = vec![b"RPUSH", pending.as_bytes()];
    rpush.extend(&jobs);
    // WATCH makes the move happen on one node only when several move at once.
    c.pipeline(&[&[&b"MULTI"[..]][..], &zrem, &rpush, &[b"EXEC"]])
        .await?;
    Ok(())
}

async fn sample(c: &mut Conn, queue: &str, counters: &QueueCounters) -> Result<(), ClientError> {
    let pending = key("queue", queue);
    let nodes_key = key("nodes", queue);
    let r = c
        .pipeline(&[
            &["LLEN", pending.as_str()][..],
            &["ZCARD", &key("delayed", queue)],
            &["LLEN", &key("dead", queue)],
            &["LINDEX", &pending, "0"],
            &["SMEMBERS", &nodes_key],
        ])
        .await?;
    let int = |i: usize| r.get(i).and_then(Value::as_int).unwrap_or(0).max(0) as u64;
    let mut processing = 0;
    if let Some(Value::Array(nodes)) = r.get(4) {
        for n in nodes.iter().filter_map(Value::as_bytes) {
            let k = format!(
                "{}:{}",
                key("processing", queue),
                String::from_utf8_lossy(n)
            );
            processing += c.ok(&["LLEN", &k]).await?.as_int().unwrap_or(0).max(0) as u64;
        }
    }
    let now = now_ms();
    let mut s = counters.sampled.lock().unwrap_or_else(|e| e.into_inner());
    s.pending = int(0);
    s.delayed = int(1);
    s.dead = int(2);
    s.processing = processing;
    // The head's age: from its envelope when it has one, else from when it was first seen
    // at the head (raw payloads carry no time).
    s.head = match r.get(3) {
        Some(Value::Bulk(b)) => {
            let (env, _) = Envelope::unwrap(b);
            let since = match (&s.head, env.queued_ms) {
                (_, Some(t)) => t,
                (Some((prev, t)), None) if prev == b => *t,
                _ => now,
            };
            Some((b.clone(), since))
        }
        _ => None,
    };
    s.oldest_age = s
        .head
        .as_ref()
        .map(|(_, t)| Duration::from_millis(now.saturating_sub(*t)));
    Ok(())
}

/// Waits until `ready` gives something (polled every 20 ms); `None` when stopping.
async fn wait_until<D: Dispatch, T>(
    ctx: &Ctx<D>,
    q: &QueueConfig,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    let mut stop = ctx.stop.clone();
    let mut polls = 0u32;
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        polls += 1;
        if polls % 500 == 1 && ctx.front.headroom(q.site.as_deref(), None).is_none() {
            tracing::error!(queue = %q.name, site = ?q.site, "no site answers the queue's site name");
        }
        if tokio::time::timeout(Duration::from_millis(20), stop.wait_for(|s| *s))
            .await
            .is_ok()
        {
            return None;
        }
    }
}

async fn consume<D: Dispatch>(ctx: Ctx<D>, q: QueueConfig, counters: Arc<QueueCounters>, n: usize) {
    let pending = key("queue", &q.name);
    let proc = format!("{}:{}", key("processing", &q.name), ctx.node);
    let mut failures = 0;
    let mut conn: Option<Conn> = None;
    let mut recovered = ctx.recovered.clone();
    let mut stop = ctx.stop.clone();
    tokio::select! {
        r = recovered.wait_for(|r| *r) => if r.is_err() { return },
        _ = stop.wait_for(|s| *s) => return,
    }
    loop {
        if *ctx.stop.borrow() {
            return;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&ctx, &mut failures).await {
                Some(c) => conn.insert(c),
                None => continue,
            },
        };
        // Jobs are taken only when one could start, but no worker is claimed while waiting
        // for one: an idle consumer must not hold back the others (or the web).
        if wait_until(&ctx, &q, || ctx.has_room(&q).then_some(()))
            .await
            .is_none()
        {
            return;
        }
        let wait = Duration::from_secs(TAKE_WAIT_SECS + 1);
        let taken = c
            .cmd_wait(
                &[
                    "BLMOVE",
                    &pending,
                    &proc,
                    "LEFT",
                    "RIGHT",
                    &TAKE_WAIT_SECS.to_string(),
                ],
                wait,
            )
            .await;
        let elem = match taken {
            Ok(Value::Bulk(b)) => b,
            Ok(Value::Nil) => continue,
            Ok(other) => {
                tracing::error!(queue = %q.name, "store answered {other:?} to BLMOVE; is it Redis 6.2 or later?");
                conn = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(queue = %q.name, "queue: store error: {e}; reconnecting");
                conn = None;
                continue;
            }
        };
        // Another consumer may have taken the last worker meanwhile: the job waits for its
        // turn in this node's processing list (or goes back to the queue on a stop).
        let Some(slot) = wait_until(&ctx, &q, || ctx.claim(&q)).await else {
            let back = c
                .pipeline(&[
                    &[&b"MULTI"[..]][..],
                    &[b"LREM", proc.as_bytes(), b"1", &elem],
                    &[b"LPUSH", pending.as_bytes(), &elem],
                    &[b"EXEC"],
                ])
                .await;
            if let Err(e) = back {
                tracing::warn!(queue = %q.name, "job left for recovery: {e}");
            }
            return;
        };
        counters.running.fetch_add(1, Ordering::Relaxed);
        let r = run_one(&ctx, &q, c, &proc, &elem, &counters, n).await;
        counters.running.fetch_sub(1, Ordering::Relaxed);
        drop(slot);
        if let Err(e) = r {
            // The job stays in the processing list: it runs again after recovery.
            tracing::warn!(queue = %q.name, "queue: store error around a job: {e}; reconnecting");
            conn = None;
        }
    }
}

async fn run_one<D: Dispatch>(
    ctx: &Ctx<D>,
    q: &QueueConfig,
    c: &mut Conn,
    proc: &str,
    elem: &[u8],
    counters: &QueueCounters,
    slot: usize,
) -> Result<(), ClientError> {
    let (mut env, payload) = Envelope::unwrap(elem);
    if env.attempt >= q.max_attempts {
        // It was running when its node died, on its last attempt.
        env.error
            .get_or_insert_with(|| "interrupted (node stopped) on its last attempt".into());
        return bury(c, q, proc, elem, &env, payload, counters).await;
    }
    env.attempt += 1;
    env.queued_ms.get_or_insert_with(now_ms);
    let running = env.wrap(payload);
    // The processing list now says which attempt runs, so recovery counts it.
    c.pipeline(&[
        &[&b"MULTI"[..]][..],
        &[b"LREM", proc.as_bytes(), b"1", elem],
        &[b"RPUSH", proc.as_bytes(), &running],
        &[b"EXEC"],
    ])
    .await?;
    let outcome = execute(ctx, q, &env, payload).await;
    let failure = match &outcome {
        Outcome::Answered(s) if (200..300).contains(s) => None,
        Outcome::Answered(s) => Some(format!("script answered {s}")),
        Outcome::Unavailable => None,
        Outcome::Failed(e) => Some(e.clone()),
    };
    if matches!(outcome, Outcome::Unavailable) {
        // No worker was free: not the job's fault, so not an attempt; back to the head.
        env.attempt -= 1;
        let back = env.wrap(payload);
        c.pipeline(&[
            &[&b"MULTI"[..]][..],
            &[b"LREM", proc.as_bytes(), b"1", &running],
            &[b"LPUSH", key("queue", &q.name).as_bytes(), &back],
            &[b"EXEC"],
        ])
        .await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        return Ok(());
    }
    let Some(error) = failure else {
        c.ok(&[&b"LREM"[..], proc.as_bytes(), b"1", &running])
            .await?;
        counters.done.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(queue = %q.name, job = %env.id, attempt = env.attempt, slot, "job done");
        return Ok(());
    };
    counters.failed.fetch_add(1, Ordering::Relaxed);
    env.error = Some(error.clone());
    if env.attempt >= q.max_attempts {
        tracing::warn!(queue = %q.name, job = %env.id, attempt = env.attempt, "job failed: {error}; no attempts left");
        return bury(c, q, proc, &running, &env, payload, counters).await;
    }
    let delay = q
        .backoff
        .saturating_mul(1 << (env.attempt - 1).min(20))
        .min(MAX_BACKOFF);
    tracing::warn!(queue = %q.name, job = %env.id, attempt = env.attempt, retry_in = ?delay, "job failed: {error}");
    let due = (now_ms() + delay.as_millis() as u64).to_string();
    let retry = env.wrap(payload);
    c.pipeline(&[
        &[&b"MULTI"[..]][..],
        &[b"LREM", proc.as_bytes(), b"1", &running],
        &[
            b"ZADD",
            key("delayed", &q.name).as_bytes(),
            due.as_bytes(),
            &retry,
        ],
        &[b"EXEC"],
    ])
    .await?;
    Ok(())
}

/// Moves a job out of processing to the dead list.
async fn bury(
    c: &mut Conn,
    q: &QueueConfig,
    proc: &str,
    elem: &[u8],
    env: &Envelope,
    payload: &[u8],
    counters: &QueueCounters,
) -> Result<(), ClientError> {
    let dead = env.wrap(payload);
    c.pipeline(&[
        &[&b"MULTI"[..]][..],
        &[b"LREM", proc.as_bytes(), b"1", elem],
        &[b"RPUSH", key("dead", &q.name).as_bytes(), &dead],
        &[b"EXEC"],
    ])
    .await?;
    counters.dead.fetch_add(1, Ordering::Relaxed);
    tracing::error!(queue = %q.name, job = %env.id, attempts = env.attempt, error = env.error.as_deref().unwrap_or(""), "job moved to {}", key("dead", &q.name));
    Ok(())
}

/// Runs one attempt as an internal request.
async fn execute<D: Dispatch>(
    ctx: &Ctx<D>,
    q: &QueueConfig,
    env: &Envelope,
    payload: &[u8],
) -> Outcome {
    let vars = [
        ("ISOLA_JOB_ID", env.id.clone()),
        ("ISOLA_JOB_ATTEMPT", env.attempt.to_string()),
        ("ISOLA_QUEUE", q.name.clone()),
        ("ISOLA_NODE", ctx.node.to_string()),
    ];
    match &q.target {
        JobTarget::Script(path) => {
            let name = path
                .file_name()
                .map(|n| format!("/{}", n.to_string_lossy()))
                .unwrap_or_else(|| "/job.php".into());
            let target = format!("{name}?queue={}", q.name);
            ctx.front
                .run(Internal {
                    kind: Kind::Job,
                    target: &target,
                    host: q.site.as_deref(),
                    script: Some(path),
                    body: Some(bytes::Bytes::copy_from_slice(payload)),
                    env: &vars,
                    timeout: q.timeout,
                    queue: q.own_pool.then_some(q.name.as_str()),
                })
                .await
        }
        JobTarget::Url => {
            // `/path?query`, or `host /path?query` for another site.
            let text = String::from_utf8_lossy(payload);
            let text = text.trim();
            let (host, target) = match text.split_once(' ') {
                Some((h, t)) => (Some(h), t.trim()),
                None => (q.site.as_deref(), text),
            };
            if !target.starts_with('/') || target.starts_with("//") {
                return Outcome::Failed(format!("{target:?} is not a path on the site"));
            }
            ctx.front
                .run(Internal {
                    kind: Kind::Job,
                    target,
                    host,
                    script: None,
                    body: None,
                    env: &vars,
                    timeout: q.timeout,
                    queue: q.own_pool.then_some(q.name.as_str()),
                })
                .await
        }
    }
}

/// The admin actions on queues, over a fresh store connection each time.
pub struct Control {
    /// The store.
    pub ep: Arc<Endpoint>,
    /// Queues in force (names).
    pub board: Arc<Board>,
}

impl Control {
    fn known(&self, name: &str) -> bool {
        self.board
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Runs `action` on queue `name`; the answer is a JSON document.
    pub async fn act(
        &self,
        name: &str,
        action: isola_admin::QueueAction,
    ) -> Result<serde_json::Value, isola_admin::QueueActionError> {
        use isola_admin::{QueueAction, QueueActionError};
        if !self.known(name) {
            return Err(QueueActionError::NoSuchQueue);
        }
        let fail = |e: ClientError| QueueActionError::Store(e.to_string());
        let mut c = Conn::connect(&self.ep, STORE_TIMEOUT).await.map_err(fail)?;
        match action {
            QueueAction::Enqueue(payload) => {
                let env = Envelope {
                    id: new_id(),
                    attempt: 0,
                    queued_ms: Some(now_ms()),
                    error: None,
                };
                let elem = env.wrap(&payload);
                let depth = c
                    .ok(&[&b"RPUSH"[..], key("queue", name).as_bytes(), &elem])
                    .await
                    .map_err(fail)?;
                Ok(serde_json::json!({"id": env.id, "pending": depth.as_int()}))
            }
            QueueAction::Retry => {
                // Dead jobs start over with fresh attempts, in the order they died. Only
                // those dead now: a job moved back can fail and die again before this loop
                // ends, and must not be moved (and run) once more by the same retry.
                let dead = key("dead", name);
                let pending = key("queue", name);
                let now_dead = c
                    .ok(&["LLEN", &dead])
                    .await
                    .map_err(fail)?
                    .as_int()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0);
                let mut moved = 0u64;
                while moved < now_dead {
                    let Value::Bulk(elem) = c.ok(&["LPOP", &dead]).await.map_err(fail)? else {
                        break;
                    };
                    let (mut env, payload) = Envelope::unwrap(&elem);
                    env.attempt = 0;
                    env.error = None;
                    c.ok(&[&b"RPUSH"[..], pending.as_bytes(), &env.wrap(payload)])
                        .await
                        .map_err(fail)?;
                    moved += 1;
                }
                Ok(serde_json::json!({"retried": moved}))
            }
            QueueAction::Drop { pending } => {
                let k = if pending {
                    key("queue", name)
                } else {
                    key("dead", name)
                };
                let n = c
                    .ok(&["LLEN", &k])
                    .await
                    .map_err(fail)?
                    .as_int()
                    .unwrap_or(0);
                c.ok(&["DEL", &k]).await.map_err(fail)?;
                Ok(serde_json::json!({"dropped": n}))
            }
            QueueAction::List { dead, limit } => {
                let k = if dead {
                    key("dead", name)
                } else {
                    key("queue", name)
                };
                let end = (limit.max(1) - 1).to_string();
                let Value::Array(items) = c.ok(&["LRANGE", &k, "0", &end]).await.map_err(fail)?
                else {
                    return Ok(serde_json::json!([]));
                };
                let jobs: Vec<serde_json::Value> = items
                    .iter()
                    .filter_map(Value::as_bytes)
                    .map(|e| {
                        let (env, payload) = Envelope::unwrap(e);
                        let known = e.starts_with(MAGIC);
                        serde_json::json!({
                            "id": known.then_some(env.id),
                            "attempts": env.attempt,
                            "error": env.error,
                            "payload": String::from_utf8_lossy(payload),
                        })
                    })
                    .collect();
                Ok(serde_json::Value::Array(jobs))
            }
        }
    }
}

impl isola_admin::QueueControl for Control {
    fn figures(&self) -> Vec<isola_admin::QueueFigures> {
        self.board.figures()
    }

    fn act<'a>(
        &'a self,
        name: &'a str,
        action: isola_admin::QueueAction,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<serde_json::Value, isola_admin::QueueActionError>,
                > + Send
                + 'a,
        >,
    > {
        Box::pin(Control::act(self, name, action))
    }
}

/// This node's name among several sharing a store: `[store] node_id`, else the host name
/// and the public port (stable across restarts, so a restarted node recovers its own jobs).
pub fn node_id(configured: Option<&str>, port: u16) -> String {
    if let Some(id) = configured {
        return id.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{port}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_raw_payloads_get_ids() {
        let env = Envelope {
            id: "abc".into(),
            attempt: 2,
            queued_ms: Some(5),
            error: Some("script answered 500\nline".into()),
        };
        let wrapped = env.wrap(b"{\"x\":1}\nmore");
        let (back, payload) = Envelope::unwrap(&wrapped);
        assert_eq!(back, env);
        assert_eq!(payload, b"{\"x\":1}\nmore");
        let (raw, payload) = Envelope::unwrap(b"plain");
        assert_eq!((raw.attempt, payload), (0, &b"plain"[..]));
        assert_eq!(raw.id.len(), 20);
        assert_ne!(raw.id, Envelope::unwrap(b"plain").0.id);
        // A broken envelope is treated as a raw payload, never lost.
        let (_, payload) = Envelope::unwrap(b"\0isola-job\n{bad\nx");
        assert_eq!(payload, b"\0isola-job\n{bad\nx");
    }
}
