//! `[[schedule]]`: runs requests on a clock, as internal requests through the front (same
//! router, pool, limits and access log as client requests).
//!
//! Owns: the timing (cron patterns in a time zone, fixed intervals, jitter) and the overlap
//! rule (by default a run still going makes the next tick skip, with a log line).
//!
//! Several nodes sharing one store run each tick once: before running, a node takes a lock
//! named after the schedule and the tick (`SET ... NX PX`); the others skip it. Ticks are
//! the same instants on every node: cron times, and for `every` the multiples of the
//! period since the Unix epoch. When the store cannot be reached the node runs the tick
//! anyway (logged): a duplicate run is better than a missed one for the jobs schedules
//! drive (WordPress cron, cleanups), and a single node needs no lock.
//!
//! Never: runs a schedule twice at once on one node unless `overlap = true`, or catches up
//! on ticks missed while a run was going or the server was down.
use crate::Dispatch;
use chrono::Utc;
use isola_config::{ScheduleConfig, When};
use isola_front::internal::{Internal, Kind, Outcome};
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

/// Where ticks are locked among nodes: the store, and this node's name.
#[derive(Clone)]
pub struct TickLock {
    /// The store.
    pub ep: isola_store_client::Endpoint,
    /// This node.
    pub node: String,
}

/// Starts one clock per schedule.
pub fn start<D: Dispatch>(
    front: &D,
    schedules: &[ScheduleConfig],
    lock: Option<&TickLock>,
) -> Schedules {
    Schedules(
        schedules
            .iter()
            .filter_map(|s| match Clock::new(s) {
                Ok(clock) => Some(tokio::spawn(run(
                    front.clone(),
                    s.clone(),
                    clock,
                    lock.cloned(),
                ))),
                Err(e) => {
                    tracing::error!(schedule = %s.name, "schedule not started: {e}");
                    None
                }
            })
            .collect(),
    )
}

enum Clock {
    Every(Duration),
    Cron(Box<croner::Cron>, chrono_tz::Tz),
}

impl Clock {
    fn new(s: &ScheduleConfig) -> Result<Self, String> {
        Ok(match &s.when {
            When::Every(period) => Clock::Every(*period),
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

    /// The next tick after now: when to fire, and the tick's wall-clock time in ms since
    /// the epoch (its name, the same on every node).
    fn next(&mut self) -> Option<(Instant, i64)> {
        let at = self.after(Utc::now())?;
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        Some((Instant::now() + wait, at.timestamp_millis()))
    }

    /// The first tick strictly after `now`.
    fn after(&self, now: chrono::DateTime<Utc>) -> Option<chrono::DateTime<Utc>> {
        match self {
            Clock::Every(period) => {
                let p = period.as_millis().max(1) as i64;
                let ms = now.timestamp_millis();
                chrono::DateTime::from_timestamp_millis((ms / p + 1) * p)
            }
            Clock::Cron(cron, tz) => cron
                .find_next_occurrence(&now.with_timezone(tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// How long a tick's lock lives: long enough to cover clock differences between nodes.
const TICK_LOCK_MS: &str = "60000";

/// True when this node should run tick `tick` of `s`: it won the tick's lock, or there is
/// no store to share it through.
async fn won(
    lock: &Option<TickLock>,
    conn: &mut Option<isola_store_client::Conn>,
    s: &ScheduleConfig,
    tick: i64,
) -> bool {
    let Some(l) = lock else {
        return true;
    };
    let key = format!(
        "isola:schedule:{}:{}:{tick}",
        s.site.as_deref().unwrap_or(""),
        s.name
    );
    let timeout = Duration::from_secs(2);
    if conn.is_none() {
        *conn = isola_store_client::Conn::connect(&l.ep, timeout).await.ok();
    }
    let answer = match conn.as_mut() {
        Some(c) => {
            c.ok(&["SET", &key, &l.node, "NX", "PX", TICK_LOCK_MS])
                .await
        }
        None => Err(isola_store_client::ClientError::Closed),
    };
    match answer {
        Ok(isola_store_client::Value::Nil) => {
            tracing::debug!(schedule = %s.name, tick, "tick taken by another node");
            false
        }
        Ok(_) => true,
        Err(e) => {
            *conn = None;
            tracing::warn!(schedule = %s.name, "cannot lock the tick in the store ({e}); running it here");
            true
        }
    }
}

async fn run<D: Dispatch>(front: D, s: ScheduleConfig, mut clock: Clock, lock: Option<TickLock>) {
    let running = Arc::new(AtomicBool::new(false));
    let mut conn = None;
    loop {
        let Some((at, tick)) = clock.next() else {
            tracing::warn!(schedule = %s.name, "no future time matches the cron pattern; schedule stopped");
            return;
        };
        tokio::time::sleep_until(at + jitter(s.jitter)).await;
        if !s.overlap && running.load(Ordering::Acquire) {
            tracing::warn!(schedule = %s.name, url = %s.url, "previous run still going: this tick is skipped");
            continue;
        }
        if !won(&lock, &mut conn, &s, tick).await {
            continue;
        }
        running.store(true, Ordering::Release);
        let (front, name, url, site, flag, script) = (
            front.clone(),
            s.name.clone(),
            s.url.clone(),
            s.site.clone(),
            running.clone(),
            s.script.clone(),
        );
        tokio::spawn(async move {
            let req = Internal {
                kind: Kind::Schedule,
                target: &url,
                host: site.as_deref(),
                script: script.as_deref(),
                body: None,
                env: &[],
                timeout: None,
                queue: None,
            };
            match front.run(req).await {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(when: When) -> ScheduleConfig {
        ScheduleConfig {
            name: "s".into(),
            url: "/cron.php".into(),
            script: None,
            site: None,
            when,
            overlap: false,
            jitter: Duration::ZERO,
        }
    }

    #[test]
    fn intervals_tick_on_multiples_of_the_period_and_cron_in_its_time_zone() {
        let at = |h, m, s| Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap();
        let every = Clock::new(&schedule(When::Every(Duration::from_secs(300)))).unwrap();
        assert_eq!(every.after(at(10, 1, 0)), Some(at(10, 5, 0)));
        // A tick is never the instant itself: no run twice for one tick.
        assert_eq!(every.after(at(10, 5, 0)), Some(at(10, 10, 0)));
        let cron = |tz: Option<&str>| {
            Clock::new(&schedule(When::Cron {
                pattern: "30 2 * * *".into(),
                timezone: tz.map(str::to_string),
            }))
            .unwrap()
        };
        assert_eq!(
            cron(None).after(at(10, 0, 0)),
            Some(at(2, 30, 0) + chrono::Duration::days(1))
        );
        // 02:30 in Paris (UTC+1 on 1 March) is 01:30 UTC.
        assert_eq!(
            cron(Some("Europe/Paris")).after(at(0, 0, 0)),
            Some(at(1, 30, 0))
        );
        assert!(Clock::new(&schedule(When::Cron {
            pattern: "30 2 * * *".into(),
            timezone: Some("Mars/Olympus".into()),
        }))
        .is_err());
    }

    #[tokio::test]
    async fn one_node_wins_a_tick_and_an_unreachable_store_runs_it_anyway() {
        let (dir, store) = crate::queue::tests::store().await;
        let lock = |node: &str, ep: &isola_store_client::Endpoint| {
            Some(TickLock {
                ep: ep.clone(),
                node: node.into(),
            })
        };
        let s = schedule(When::Every(Duration::from_secs(60)));
        let (a, b) = (lock("a", &store), lock("b", &store));
        assert!(won(&a, &mut None, &s, 60_000).await);
        assert!(!won(&b, &mut None, &s, 60_000).await);
        assert!(won(&b, &mut None, &s, 120_000).await);
        assert!(won(&None, &mut None, &s, 60_000).await);
        let none = format!("unix://{}", dir.path().join("none.sock").display());
        let gone = lock("c", &isola_store_client::Endpoint::parse(&none).unwrap());
        assert!(won(&gone, &mut None, &s, 60_000).await);
    }
}
