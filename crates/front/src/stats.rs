//! Client request outcomes, counted in the request's closing step beside its access log
//! line (`RequestCtx::close` in `request.rs`): responses by status class, requests shed
//! with 503 because no worker could take them, the latency histogram and the time
//! requests waited for a worker.
//!
//! Owns: the counters ([`Stats`], lock-free, one per server: they survive reloads) and
//! their snapshot ([`RequestStats`]), which `/metrics` and the status history both read.
//!
//! Never: counts internal requests (deferred, scheduled, jobs: they have no client and
//! their own figures), or computes rates or quantiles (the readers do, from totals, so a
//! missed reading loses no count).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, milliseconds; one more bucket holds the rest.
/// Prometheus-style, from a static file's millisecond to a slow script's ten seconds.
pub const LATENCY_BOUNDS_MS: [u64; 14] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
];

/// The live counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Responses by status class: 1xx … 5xx (sheds not included).
    by_class: [AtomicU64; 5],
    /// 503s because the pool's queue was full or the wait timed out.
    shed: AtomicU64,
    /// Requests per latency bucket (not cumulative), the last one unbounded.
    latency: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    /// Sum of the latencies, microseconds.
    latency_us: AtomicU64,
    /// Requests that reached a worker, and the sum of their waits for one, microseconds.
    waited: AtomicU64,
    wait_us: AtomicU64,
}

/// The counters at one instant; every figure is a total since the server started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Responses by status class: index 0 is 1xx, 4 is 5xx. Sheds are not in 5xx.
    pub by_class: [u64; 5],
    /// Requests answered 503 because no worker could take them (queue full, wait timed
    /// out).
    pub shed: u64,
    /// Requests per latency bucket: `latency[i]` took at most `LATENCY_BOUNDS_MS[i]`
    /// (and more than the bound before); the last bucket is above every bound.
    pub latency: Vec<u64>,
    /// Sum of the latencies, microseconds.
    pub latency_us: u64,
    /// Requests that reached a worker.
    pub waited: u64,
    /// Sum of their waits for a worker, microseconds.
    pub wait_us: u64,
}

impl Stats {
    /// Counts one finished response: its status (or that it was shed), how long it took
    /// from its head's arrival to its body's end, and its wait for a worker if it had one.
    pub fn record(&self, status: u16, shed: bool, took: Duration, wait: Option<Duration>) {
        if shed {
            self.shed.fetch_add(1, Ordering::Relaxed);
        } else if let Some(c) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.by_class.get(usize::from(i)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let ms = took.as_millis();
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|&b| ms <= u128::from(b))
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        if let Some(b) = self.latency.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_us.fetch_add(micros(took), Ordering::Relaxed);
        if let Some(w) = wait {
            self.waited.fetch_add(1, Ordering::Relaxed);
            self.wait_us.fetch_add(micros(w), Ordering::Relaxed);
        }
    }

    /// The totals now.
    pub fn snapshot(&self) -> RequestStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestStats {
            by_class: std::array::from_fn(|i| load(&self.by_class[i])),
            shed: load(&self.shed),
            latency: self.latency.iter().map(load).collect(),
            latency_us: load(&self.latency_us),
            waited: load(&self.waited),
            wait_us: load(&self.wait_us),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_class_and_sheds_apart() {
        let s = Stats::default();
        s.record(
            200,
            false,
            Duration::from_millis(3),
            Some(Duration::from_millis(1)),
        );
        s.record(204, false, Duration::from_micros(500), None);
        s.record(404, false, Duration::from_millis(40), None);
        s.record(503, true, Duration::from_secs(60), None);
        s.record(
            502,
            false,
            Duration::from_millis(2),
            Some(Duration::from_millis(3)),
        );
        s.record(999, false, Duration::ZERO, None);
        let r = s.snapshot();
        assert_eq!(r.by_class, [0, 2, 0, 1, 1]);
        assert_eq!(r.shed, 1);
        assert_eq!(r.latency.len(), LATENCY_BOUNDS_MS.len() + 1);
        // 0.5 ms and 0 ms ≤ 1; 2 ms ≤ 2; 3 ms ≤ 5; 40 ms ≤ 50; 60 s above every bound.
        assert_eq!(&r.latency[..6], &[2, 1, 1, 0, 0, 1]);
        assert_eq!(r.latency[LATENCY_BOUNDS_MS.len()], 1);
        assert_eq!(r.latency.iter().sum::<u64>(), 6);
        assert_eq!((r.waited, r.wait_us), (2, 4000));
    }
}
