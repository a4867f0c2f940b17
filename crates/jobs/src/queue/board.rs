//! What the operator sees and may do: per-queue figures (this node's counters and the
//! store's lengths as last sampled) and the admin actions (enqueue, list, retry the dead,
//! drop).
//!
//! Owns: the figures kept across reloads, and actions over a fresh connection each, so an
//! operator's command never waits behind a consumer's blocking take.
//!
//! Never: touches processing lists (only recovery moves a job that may be running), or
//! runs a job itself.
use super::envelope::{key, new_id, now_ms, Envelope, MAGIC};
use super::STORE_TIMEOUT;
use isola_store_client::{ClientError, Conn, Endpoint, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters of one queue on this node, and the store's figures as last sampled.
#[derive(Debug, Default)]
pub struct QueueCounters {
    pub(crate) running: AtomicU64,
    pub(crate) done: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dead: AtomicU64,
    pub(crate) sampled: Mutex<Sampled>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Sampled {
    pub(crate) pending: u64,
    pub(crate) delayed: u64,
    pub(crate) dead: u64,
    pub(crate) processing: u64,
    pub(crate) oldest_age: Option<Duration>,
    pub(crate) head: Option<(bytes::Bytes, u64)>,
}

/// The queues' figures for the admin listener; kept across reloads.
#[derive(Debug, Default)]
pub struct Board {
    pub(crate) queues: Mutex<BTreeMap<String, Arc<QueueCounters>>>,
}

impl Board {
    pub(crate) fn counters(&self, name: &str) -> Arc<QueueCounters> {
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

    pub(crate) fn retain(&self, names: &[&str]) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n, _| names.contains(&n.as_str()));
    }
}

pub(crate) async fn sample(
    c: &mut Conn,
    queue: &str,
    counters: &QueueCounters,
) -> Result<(), ClientError> {
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

/// The admin actions on queues, over a fresh store connection each time.
pub struct Control {
    /// The store.
    pub ep: Arc<Endpoint>,
    /// Queues in force (names).
    pub board: Arc<Board>,
}

impl Control {
    pub(crate) fn known(&self, name: &str) -> bool {
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
