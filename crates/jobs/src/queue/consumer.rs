//! The consumer loop: the node's keeper task (heartbeat, recovery, delayed jobs, figures)
//! and `concurrency` consumers per queue, each taking one job at a time into this node's
//! processing list, running it through [`Dispatch`] and acknowledging, retrying or burying
//! it.
//!
//! Owns: admission (a job starts only when its pool has room beyond `reserve`, counted
//! under one lock for all of this node's consumers), the attempt count, backoff, and the
//! variables a job script receives.
//!
//! Never: starts before this node's leftovers are recovered, holds a worker while waiting
//! for a job, or counts a job that found no free worker as an attempt.
use super::board::QueueCounters;
use super::envelope::{key, now_ms, Envelope};
use super::store::{beat, bury, move_due, reap, recover};
use super::{board::sample, Board, STORE_TIMEOUT};
use crate::Dispatch;
use isola_config::{JobTarget, QueueConfig};
use isola_front::internal::{Internal, Kind, Outcome};
use isola_store_client::{ClientError, Conn, Endpoint, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long one blocking take waits, so a stop is noticed within it.
pub(crate) const TAKE_WAIT_SECS: u64 = 1;

/// Heartbeat period; a node silent for [`NODE_TTL`] is presumed dead and its jobs recovered.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);

/// Longest backoff between retries.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Everything a consumer needs.
#[derive(Clone)]
pub(crate) struct Ctx<D> {
    pub(crate) front: D,
    pub(crate) ep: Arc<Endpoint>,
    pub(crate) node: Arc<str>,
    pub(crate) stop: watch::Receiver<bool>,
    /// Jobs of this node running (or about to) per site, all queues together.
    pub(crate) running: JobCounts,
    /// Turns true once this node's leftovers from its last run are back in their queues;
    /// consumers wait for it, or recovery would take jobs they had just started.
    pub(crate) recovered: watch::Receiver<bool>,
}

/// Jobs of this node holding (or about to hold) a web-pool worker, by site.
pub(crate) type JobCounts = Arc<Mutex<BTreeMap<Option<String>, usize>>>;

/// A job's hold on a worker of its site's web pool, counted until dropped (`None`: a
/// queue with its own pool, not counted).
pub(crate) struct Slot(Option<(JobCounts, Option<String>)>);

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
    pub(crate) fn claim(&self, q: &QueueConfig) -> Option<Slot> {
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
    pub(crate) fn fits(
        &self,
        q: &QueueConfig,
        r: &BTreeMap<Option<String>, usize>,
    ) -> Option<bool> {
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
    pub(crate) fn has_room(&self, q: &QueueConfig) -> bool {
        let r = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.fits(q, &r).unwrap_or(false)
    }
}

pub(crate) async fn connect<D>(ctx: &Ctx<D>, failures: &mut u32) -> Option<Conn> {
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
pub(crate) async fn keeper<D: Dispatch>(
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

/// Waits until `ready` gives something (polled every 20 ms); `None` when stopping.
pub(crate) async fn wait_until<D: Dispatch, T>(
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

pub(crate) async fn consume<D: Dispatch>(
    ctx: Ctx<D>,
    q: QueueConfig,
    counters: Arc<QueueCounters>,
    n: usize,
) {
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

pub(crate) async fn run_one<D: Dispatch>(
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

/// Runs one attempt as an internal request.
pub(crate) async fn execute<D: Dispatch>(
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
