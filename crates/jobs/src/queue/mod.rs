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
//!
//! Modules: `envelope` (the record and key names), `store` (the moves every node makes),
//! `consumer` (this node's loops), `board` (figures and operator actions).
mod board;
mod consumer;
mod envelope;
mod store;

use crate::Dispatch;
pub use board::{Board, Control, QueueCounters};
use consumer::{consume, keeper, Ctx};
use isola_config::QueueConfig;
use isola_store_client::Endpoint;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[cfg(test)]
pub(crate) mod tests;

/// Reply deadline for store commands (blocking waits add their own).
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// The queue consumers in force; [`Queues::stop`] lets running jobs finish.
pub struct Queues {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The configuration they run, to tell whether a reload changes anything.
    pub config: Vec<QueueConfig>,
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
