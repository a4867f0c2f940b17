//! The store protocol shared by all nodes: heartbeats and node registration, recovery of
//! processing lists, delayed retries coming due, and burial in the dead list.
//!
//! Owns: making every move of a job one atomic step (`LMOVE`, `MULTI`/`EXEC`, `WATCH`), so
//! nodes doing the same thing at once still move each job exactly once.
//!
//! Never: retries a command on its own (a retried write may run twice): an error goes up
//! to the loop that owns the connection, which reconnects.
use super::board::QueueCounters;
use super::envelope::{key, now_ms, Envelope};
use isola_config::QueueConfig;
use isola_store_client::{ClientError, Conn, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A node silent this long is presumed dead and its jobs recovered.
pub(crate) const NODE_TTL: Duration = Duration::from_secs(10);

/// Most delayed jobs moved back per tick.
pub(crate) const MOVE_BATCH: usize = 100;

/// Renews this node's heartbeat. Registering (the first beat, or one that finds the key
/// gone) also lists the node under every queue, so that others recover its jobs if it dies.
pub(crate) async fn beat(
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
pub(crate) async fn recover(c: &mut Conn, queue: &str, node: &str) -> Result<u64, ClientError> {
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
pub(crate) async fn reap(c: &mut Conn, queue: &str, me: &str) -> Result<(), ClientError> {
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
pub(crate) async fn move_due(c: &mut Conn, queue: &str) -> Result<(), ClientError> {
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

/// Moves a job out of processing to the dead list.
pub(crate) async fn bury(
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
