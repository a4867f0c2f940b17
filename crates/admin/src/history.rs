//! The status page's history: one sample of the server's figures per second, the last
//! [`HISTORY_LEN`] of them, in a ring of fixed size.
//!
//! Owns: the [`Sample`] shape, the ring ([`History`]), its JSON form (`/status/history`).
//!
//! Never: reads the figures itself (the admin listener's sampler task hands each sample in,
//! from the same sources `/status` and `/metrics` read, so the numbers agree), grows past
//! [`HISTORY_LEN`] samples, or computes rates (counters are kept as totals; the page
//! derives per-second rates from consecutive samples, so a missed tick loses no count).
//! The one exception is latency: a quantile of totals since start says nothing about the
//! last second, so the sampler computes p50/p99 of each interval from the difference of
//! the latency histogram's buckets between two samples ([`quantile_us`]).

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
    /// Proportional set size of every worker whose figure could be read, bytes: what the
    /// workers cost together (RSS counts shared pages once per worker).
    pub worker_pss: u64,
    /// Store commands run since start (counter; 0 without the embedded store).
    pub store_commands: u64,
    /// Bytes held by the store's keys and values.
    pub store_memory: u64,
    /// Client responses 2xx (counter; 1xx final statuses do not occur).
    pub responses_2xx: u64,
    /// Client responses 3xx (counter).
    pub responses_3xx: u64,
    /// Client responses 4xx (counter).
    pub responses_4xx: u64,
    /// Client responses 5xx other than sheds (counter).
    pub responses_5xx: u64,
    /// Client requests answered 503 because no worker could take them (counter).
    pub shed: u64,
    /// Median latency of the client requests finished since the previous sample,
    /// microseconds, interpolated within a histogram bucket (0 when none finished).
    pub latency_p50_us: u64,
    /// 99th percentile latency, as `latency_p50_us`.
    pub latency_p99_us: u64,
    /// Client requests that reached a worker (counter).
    pub waited: u64,
    /// Sum of their waits for a worker, microseconds (counter: the mean wait over an
    /// interval is the difference of this over the difference of `waited`).
    pub wait_us: u64,
    /// Workers retired by `max_requests` (counter).
    pub retired_requests: u64,
    /// Workers retired by `max_lifetime` (counter).
    pub retired_lifetime: u64,
    /// Workers retired by `max_worker_memory` (counter).
    pub retired_memory: u64,
    /// Workers retired for another reason: spare, idle, code change, stop (counter).
    pub retired_other: u64,
    /// Workers killed by a signal Isola did not send (counter).
    pub crashed_signal: u64,
    /// Workers that exited without being asked to (counter).
    pub crashed_exit: u64,
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

/// The number of values in a sample.
const N: usize = 32;

/// The names of a sample's values in its JSON row, in order.
pub const FIELDS: [&str; N] = [
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
    "responses_2xx",
    "responses_3xx",
    "responses_4xx",
    "responses_5xx",
    "shed",
    "latency_p50_us",
    "latency_p99_us",
    "waited",
    "wait_us",
    "retired_requests",
    "retired_lifetime",
    "retired_memory",
    "retired_other",
    "crashed_signal",
    "crashed_exit",
    "worker_pss",
];

fn row(s: &Sample) -> [u64; N] {
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
        s.responses_2xx,
        s.responses_3xx,
        s.responses_4xx,
        s.responses_5xx,
        s.shed,
        s.latency_p50_us,
        s.latency_p99_us,
        s.waited,
        s.wait_us,
        s.retired_requests,
        s.retired_lifetime,
        s.retired_memory,
        s.retired_other,
        s.crashed_signal,
        s.crashed_exit,
        s.worker_pss,
    ]
}

/// The `q` quantile (0..=1) of the requests counted in `counts`, microseconds: `counts[i]`
/// requests took at most `bounds_ms[i]` and more than the bound before it; the last count,
/// past every bound, is reported as the last bound (the histogram cannot tell more).
/// Within a bucket the requests are assumed spread evenly, as Prometheus's
/// `histogram_quantile` does. 0 when `counts` holds no request.
pub fn quantile_us(bounds_ms: &[u64], counts: &[u64], q: f64) -> u64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    let mut lower_us = 0.0;
    for (i, &n) in counts.iter().enumerate() {
        let Some(&bound) = bounds_ms.get(i) else {
            return lower_us as u64;
        };
        let upper_us = bound as f64 * 1000.0;
        if n > 0 && (below + n) as f64 >= rank {
            let within = (rank - below as f64) / n as f64;
            return (lower_us + within * (upper_us - lower_us)).round() as u64;
        }
        below += n;
        lower_us = upper_us;
    }
    lower_us as u64
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
        assert_eq!(j["samples"][0].as_array().map(Vec::len), Some(FIELDS.len()));
    }

    #[test]
    fn every_field_is_in_its_named_column() {
        // Each field gets a distinct value; its column must hold it.
        let mut s = Sample::default();
        let r = row(&s);
        assert!(r.iter().all(|&v| v == 0));
        s.shed = 7;
        s.latency_p99_us = 9;
        s.crashed_exit = 11;
        s.jobs_failed = 13;
        let r = row(&s);
        let col = |n: &str| FIELDS.iter().position(|f| *f == n).map(|i| r[i]);
        assert_eq!(col("shed"), Some(7));
        assert_eq!(col("latency_p99_us"), Some(9));
        assert_eq!(col("crashed_exit"), Some(11));
        assert_eq!(col("jobs_failed"), Some(13));
        let mut names = FIELDS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_that_holds_the_rank() {
        let bounds = [1, 10, 100];
        // Nothing counted: no figure.
        assert_eq!(quantile_us(&bounds, &[0, 0, 0, 0], 0.5), 0);
        // 100 requests between 1 and 10 ms: the median is halfway, 5.5 ms.
        assert_eq!(quantile_us(&bounds, &[0, 100, 0, 0], 0.5), 5500);
        // 98 fast ones (≤ 1 ms), 2 between 10 and 100 ms: p50 in the first bucket, p99
        // halfway through the third.
        let c = [98, 0, 2, 0];
        assert_eq!(quantile_us(&bounds, &c, 0.5), 510);
        assert_eq!(quantile_us(&bounds, &c, 0.99), 55_000);
        // Past every bound: the last bound is all the histogram can say.
        assert_eq!(quantile_us(&bounds, &[0, 0, 0, 5], 0.99), 100_000);
    }
}
