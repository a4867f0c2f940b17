//! `[pool]`: how many workers, how they are recycled, queued for and timed out
//! (php-fpm's pool directives).
use crate::raw::{NumOrStr, RawPool};
use crate::validate::{count, duration, size};
use isola_pool::{AutoSettings, PoolSettings, ProcessManager};
use std::time::Duration;

/// `[pool]`, validated: the pool's own settings, and the two limits of `[pool]` the front
/// enforces.
pub(crate) struct PoolSection {
    /// Workers, recycling, queueing.
    pub settings: PoolSettings,
    /// Longest run of one request; `None` = unlimited.
    pub request_terminate_timeout: Option<Duration>,
    /// Run a complete request even when its client hung up while it waited.
    pub run_abandoned: bool,
}

/// Validates `[pool]`.
pub(crate) fn validate(p: RawPool, errs: &mut Vec<String>) -> PoolSection {
    let ceiling = count(
        errs,
        "pool.max_children_ceiling",
        p.max_children_ceiling,
        std::thread::available_parallelism().map_or(4, |n| (n.get() * 4).max(4)) as i64,
        1,
        4096,
    );
    let (max_children, auto_children) = match &p.max_children {
        Some(NumOrStr::Str(a)) if a == "auto" => (
            ceiling,
            Some(AutoSettings {
                budget: match &p.memory_budget {
                    None => None,
                    Some(NumOrStr::Str(a)) if a == "auto" => None,
                    v => Some(size(errs, "pool.memory_budget", v.clone(), 0)),
                },
                reserve: p
                    .memory_reserve
                    .clone()
                    .map(|v| size(errs, "pool.memory_reserve", Some(v), 0)),
                estimate: size(
                    errs,
                    "pool.worker_memory_estimate",
                    p.worker_memory_estimate.clone(),
                    64 << 20,
                )
                .max(1 << 20),
                ceiling,
            }),
        ),
        Some(NumOrStr::Str(other)) => {
            errs.push(format!(
                "pool.max_children: {other:?} is not a number or \"auto\""
            ));
            (4, None)
        }
        Some(NumOrStr::Num(n)) => (count(errs, "pool.max_children", Some(*n), 4, 1, 4096), None),
        None => (4, None),
    };
    if auto_children.is_none() {
        for (key, set) in [
            ("memory_budget", p.memory_budget.is_some()),
            ("memory_reserve", p.memory_reserve.is_some()),
            ("worker_memory_estimate", p.worker_memory_estimate.is_some()),
            ("max_children_ceiling", p.max_children_ceiling.is_some()),
        ] {
            if set {
                errs.push(format!(
                    "pool.{key}: only applies with max_children = \"auto\""
                ));
            }
        }
    }
    let max_requests = count(errs, "pool.max_requests", p.max_requests, 1000, 0, i64::MAX) as u64;
    let queue_size = count(errs, "pool.queue_size", p.queue_size, 512, 0, 1 << 20);
    let queue_timeout = duration(errs, "pool.queue_timeout", p.queue_timeout, 5);
    let rtt = duration(
        errs,
        "pool.request_terminate_timeout",
        p.request_terminate_timeout,
        60,
    );
    let request_terminate_timeout = (!rtt.is_zero()).then_some(rtt);
    let pm = match p.pm.as_deref().unwrap_or("static") {
        "static" => ProcessManager::Static,
        "dynamic" => {
            let min_spare = count(errs, "pool.min_spare", p.min_spare, 1, 0, 4096);
            let max_spare = count(
                errs,
                "pool.max_spare",
                p.max_spare,
                (max_children as i64).min(3),
                1,
                4096,
            );
            let start_default =
                (min_spare + (max_spare.saturating_sub(min_spare)) / 2).max(1) as i64;
            let start = count(
                errs,
                "pool.start_children",
                p.start_children,
                start_default,
                1,
                4096,
            );
            if min_spare > max_spare {
                errs.push(format!(
                    "pool.min_spare: {min_spare} is above pool.max_spare ({max_spare})"
                ));
            }
            if max_spare > max_children {
                errs.push(format!(
                    "pool.max_spare: {max_spare} is above pool.max_children ({max_children})"
                ));
            }
            if start > max_children {
                errs.push(format!(
                    "pool.start_children: {start} is above pool.max_children ({max_children})"
                ));
            }
            ProcessManager::Dynamic {
                start,
                min_spare,
                max_spare,
            }
        }
        "ondemand" => ProcessManager::OnDemand {
            idle_timeout: duration(errs, "pool.idle_timeout", p.idle_timeout.clone(), 10),
        },
        other => {
            errs.push(format!(
                "pool.pm: {other:?} is not a mode; use \"static\", \"dynamic\" or \"ondemand\""
            ));
            ProcessManager::Static
        }
    };
    if !matches!(pm, ProcessManager::Dynamic { .. }) {
        for (key, set) in [
            ("start_children", p.start_children.is_some()),
            ("min_spare", p.min_spare.is_some()),
            ("max_spare", p.max_spare.is_some()),
        ] {
            if set {
                errs.push(format!("pool.{key}: only applies with pm = \"dynamic\""));
            }
        }
    }
    if p.idle_timeout.is_some() && !matches!(pm, ProcessManager::OnDemand { .. }) {
        errs.push("pool.idle_timeout: only applies with pm = \"ondemand\"".to_string());
    }
    let max_worker_memory = p
        .max_worker_memory
        .map(|v| size(errs, "pool.max_worker_memory", Some(v), 0))
        .filter(|&b| b > 0);
    let threshold = count(
        errs,
        "pool.emergency_restart_threshold",
        p.emergency_restart_threshold,
        10,
        0,
        100_000,
    );
    let interval = duration(
        errs,
        "pool.emergency_restart_interval",
        p.emergency_restart_interval,
        60,
    );
    let crash_loop = (threshold > 0 && !interval.is_zero()).then_some((threshold as u32, interval));
    let slowlog_timeout = p
        .slowlog_timeout
        .map(|v| duration(errs, "pool.slowlog_timeout", Some(v), 0))
        .filter(|d| !d.is_zero());
    let slowlog_trace_depth = count(
        errs,
        "pool.slowlog_trace_depth",
        p.slowlog_trace_depth,
        20,
        0,
        1000,
    ) as u32;
    let max_lifetime = p
        .max_lifetime
        .map(|v| duration(errs, "pool.max_lifetime", Some(v), 0))
        .filter(|d| !d.is_zero());

    PoolSection {
        settings: PoolSettings {
            auto: auto_children,
            crash_loop,
            slowlog_timeout,
            slowlog_trace_depth,
            pm,
            max_worker_memory,
            max_lifetime,
            max_children,
            max_requests,
            queue_size,
            queue_timeout,
        },
        request_terminate_timeout,
        run_abandoned: p.run_abandoned.unwrap_or(true),
    }
}
