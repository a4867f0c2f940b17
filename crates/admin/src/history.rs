//! The status page's history: one sample of the server's figures per second, the last
//! [`HISTORY_LEN`] of them, in a ring of fixed size.
//!
//! Owns: the [`Sample`] shape, the ring ([`History`]), its JSON form (`/status/history`).
//!
//! Never: reads the figures itself (the admin listener's sampler task hands each sample in,
//! from the same sources `/status` and `/metrics` read, so the numbers agree), grows past
//! [`HISTORY_LEN`] samples, or computes rates (counters are kept as totals; the page
//! derives per-second rates from consecutive samples, so a missed tick loses no count).

use std::collections::VecDeque;
use std::sync::Mutex;

/// Samples kept: 15 minutes at one per second.
pub const HISTORY_LEN: usize = 900;

/// The figures at one instant, summed over every site (per-site detail is on `/status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Unix time of the sample, milliseconds.
    pub t_ms: u64,
    /// Requests handed to workers since start (counter).
    pub accepted: u64,
    /// Requests refused because the queue was full (counter).
    pub queue_full: u64,
    /// Requests answered 503 after `queue_timeout` (counter).
    pub queue_timeouts: u64,
    /// Requests waiting for a worker now.
    pub queue_len: u64,
    /// Workers serving a request now.
    pub busy: u64,
    /// Workers waiting for a request now.
    pub idle: u64,
    /// Workers started since start (counter).
    pub spawned: u64,
    /// Workers that died without being asked to (counter).
    pub crashed: u64,
    /// Workers retired by max_requests, max_worker_memory, max_lifetime or as spare
    /// (counter).
    pub retired: u64,
    /// Resident memory of every worker whose figure could be read, bytes.
    pub worker_rss: u64,
    /// The largest single worker's resident memory, bytes.
    pub worker_rss_max: u64,
    /// Store commands run since start (counter; 0 without the embedded store).
    pub store_commands: u64,
    /// Bytes held by the store's keys and values.
    pub store_memory: u64,
    /// Jobs this node ran successfully (counter, every queue).
    pub jobs_done: u64,
    /// Failed job runs on this node (counter, every queue).
    pub jobs_failed: u64,
}

/// The last [`HISTORY_LEN`] samples, oldest first. Memory is fixed: the ring is allocated
/// once and the oldest sample is dropped when a new one arrives.
#[derive(Debug)]
pub struct History {
    ring: Mutex<VecDeque<Sample>>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            ring: Mutex::new(VecDeque::with_capacity(HISTORY_LEN)),
        }
    }
}

impl History {
    /// Adds `s` as the newest sample, dropping the oldest when the ring is full.
    pub fn push(&self, s: Sample) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == HISTORY_LEN {
            ring.pop_front();
        }
        ring.push_back(s);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().copied().collect()
    }

    /// The ring as JSON: `{"interval_ms", "capacity", "fields", "samples": [[...], ...]}`,
    /// each sample an array in the order of `fields` (compact: 900 objects would repeat
    /// every name 900 times).
    pub fn json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .samples()
            .iter()
            .map(|s| serde_json::json!(row(s)))
            .collect();
        serde_json::json!({
            "interval_ms": 1000,
            "capacity": HISTORY_LEN,
            "fields": FIELDS,
            "samples": rows,
        })
    }
}

/// The names of a sample's values in its JSON row, in order.
pub const FIELDS: [&str; 16] = [
    "t_ms",
    "accepted",
    "queue_full",
    "queue_timeouts",
    "queue_len",
    "busy",
    "idle",
    "spawned",
    "crashed",
    "retired",
    "worker_rss",
    "worker_rss_max",
    "store_commands",
    "store_memory",
    "jobs_done",
    "jobs_failed",
];

fn row(s: &Sample) -> [u64; 16] {
    [
        s.t_ms,
        s.accepted,
        s.queue_full,
        s.queue_timeouts,
        s.queue_len,
        s.busy,
        s.idle,
        s.spawned,
        s.crashed,
        s.retired,
        s.worker_rss,
        s.worker_rss_max,
        s.store_commands,
        s.store_memory,
        s.jobs_done,
        s.jobs_failed,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_samples_and_never_grows() {
        let h = History::default();
        for i in 0..(HISTORY_LEN as u64 + 50) {
            h.push(Sample {
                t_ms: i,
                ..Sample::default()
            });
        }
        let s = h.samples();
        assert_eq!(s.len(), HISTORY_LEN);
        assert_eq!(s[0].t_ms, 50);
        assert_eq!(s[HISTORY_LEN - 1].t_ms, HISTORY_LEN as u64 + 49);
        let j = h.json();
        assert_eq!(j["samples"].as_array().map(Vec::len), Some(HISTORY_LEN));
        assert_eq!(j["samples"][0][0], 50);
        assert_eq!(j["fields"].as_array().map(Vec::len), Some(FIELDS.len()));
    }
}
