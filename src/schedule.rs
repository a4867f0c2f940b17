//! `[[schedule]]`: runs requests on a clock, as internal requests through the front (same
//! router, pool, limits and access log as client requests).
//!
//! Owns: the timing (cron patterns in a time zone, fixed intervals, jitter) and the overlap
//! rule (by default a run still going makes the next tick skip, with a log line).
//!
//! Never: runs a schedule twice at once unless `overlap = true`, or catches up on ticks
//! missed while a run was going or the server was down.
use chrono::Utc;
use isola_config::{ScheduleConfig, When};
use isola_front::internal::{Internal, Kind, Outcome};
use isola_front::FrontHandle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The running schedules; dropping this stops their clocks (runs in progress finish).
pub struct Schedules(Vec<JoinHandle<()>>);

impl Drop for Schedules {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Starts one clock per schedule.
pub fn start(front: &FrontHandle, schedules: &[ScheduleConfig]) -> Schedules {
    Schedules(
        schedules
            .iter()
            .filter_map(|s| match Clock::new(s) {
                Ok(clock) => Some(tokio::spawn(run(front.clone(), s.clone(), clock))),
                Err(e) => {
                    tracing::error!(schedule = %s.name, "schedule not started: {e}");
                    None
                }
            })
            .collect(),
    )
}

enum Clock {
    Every { period: Duration, next: Instant },
    Cron(Box<croner::Cron>, chrono_tz::Tz),
}

impl Clock {
    fn new(s: &ScheduleConfig) -> Result<Self, String> {
        Ok(match &s.when {
            When::Every(period) => Clock::Every {
                period: *period,
                next: Instant::now() + *period,
            },
            When::Cron { pattern, timezone } => {
                let cron = croner::parser::CronParser::new()
                    .parse(pattern)
                    .map_err(|e| e.to_string())?;
                let tz = match timezone {
                    Some(t) => t.parse().map_err(|_| format!("unknown time zone {t:?}"))?,
                    None => chrono_tz::UTC,
                };
                Clock::Cron(Box::new(cron), tz)
            }
        })
    }

    /// The next tick after now; for a fixed interval, the ticks stay on the grid started at
    /// start-up and skip those already past.
    fn next(&mut self) -> Option<Instant> {
        match self {
            Clock::Every { period, next } => {
                let now = Instant::now();
                while *next <= now {
                    *next += *period;
                }
                Some(*next)
            }
            Clock::Cron(cron, tz) => {
                let now = Utc::now().with_timezone(tz);
                let at = cron.find_next_occurrence(&now, false).ok()?;
                let wait = (at.with_timezone(&Utc) - Utc::now())
                    .to_std()
                    .unwrap_or_default();
                Some(Instant::now() + wait)
            }
        }
    }
}

async fn run(front: FrontHandle, s: ScheduleConfig, mut clock: Clock) {
    let running = Arc::new(AtomicBool::new(false));
    loop {
        let Some(at) = clock.next() else {
            tracing::warn!(schedule = %s.name, "no future time matches the cron pattern; schedule stopped");
            return;
        };
        tokio::time::sleep_until(at + jitter(s.jitter)).await;
        if !s.overlap && running.load(Ordering::Acquire) {
            tracing::warn!(schedule = %s.name, url = %s.url, "previous run still going: this tick is skipped");
            continue;
        }
        running.store(true, Ordering::Release);
        let (front, name, url, site, flag) = (
            front.clone(),
            s.name.clone(),
            s.url.clone(),
            s.site.clone(),
            running.clone(),
        );
        tokio::spawn(async move {
            let req = Internal {
                kind: Kind::Schedule,
                target: &url,
                host: site.as_deref(),
                script: None,
                body: None,
                env: &[],
                timeout: None,
            };
            match front.internal_request(req).await {
                Outcome::Answered(status) if status < 400 => {
                    tracing::debug!(schedule = %name, url = %url, status, "scheduled run done")
                }
                Outcome::Answered(status) => {
                    tracing::warn!(schedule = %name, url = %url, status, "scheduled run failed")
                }
                Outcome::Unavailable => {
                    tracing::warn!(schedule = %name, url = %url, "scheduled run failed: no free worker")
                }
                Outcome::Failed(e) => {
                    tracing::warn!(schedule = %name, url = %url, "scheduled run failed: {e}")
                }
            }
            flag.store(false, Ordering::Release);
        });
    }
}

/// A random delay up to `bound` (spreads ticks of several servers or schedules).
fn jitter(bound: Duration) -> Duration {
    if bound.is_zero() {
        return Duration::ZERO;
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    bound.mul_f64((h.finish() % 10_000) as f64 / 10_000.0)
}
