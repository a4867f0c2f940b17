//! Pool size from memory: how much memory there is for workers, what one worker costs, and
//! how many fit.
//!
//! Owns: reading the budget (cgroup limit, else MemAvailable) and a worker's proportional set
//! size from `/proc`, and the arithmetic. Never: starts or stops workers (the pool does).

/// Where the budget came from, for the log line that explains a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetSource {
    /// `memory_budget` in the configuration.
    Configured,
    /// The cgroup's memory limit.
    Cgroup,
    /// MemAvailable at start.
    MemAvailable,
}

impl std::fmt::Display for BudgetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BudgetSource::Configured => "memory_budget",
            BudgetSource::Cgroup => "cgroup limit",
            BudgetSource::MemAvailable => "MemAvailable",
        })
    }
}

/// `max_children = "auto"` as configured: the budget and the reserve may be left to the
/// machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoSettings {
    /// Budget in bytes; `None`: detect (cgroup limit, else MemAvailable).
    pub budget: Option<u64>,
    /// Reserve in bytes; `None`: a tenth of the budget, at least 64 MiB.
    pub reserve: Option<u64>,
    /// Per-worker estimate before measurements, bytes.
    pub estimate: u64,
    /// Most workers.
    pub ceiling: usize,
}

impl AutoSettings {
    /// The sizing in force: the configured budget, else what [`detect_budget`] finds;
    /// `None` when there is no budget to be found.
    pub fn resolve(&self) -> Option<AutoSize> {
        let (budget, source) = match self.budget {
            Some(b) => (b, BudgetSource::Configured),
            None => detect_budget()?,
        };
        Some(AutoSize {
            budget,
            source,
            reserve: self.reserve.unwrap_or((budget / 10).max(64 << 20)),
            estimate: self.estimate,
            ceiling: self.ceiling,
        })
    }
}

/// Settings of `max_children = "auto"`.
#[derive(Debug, Clone)]
pub struct AutoSize {
    /// Memory for the whole pool, bytes.
    pub budget: u64,
    /// Where `budget` came from.
    pub source: BudgetSource,
    /// Kept out of the budget for the server itself and the system, bytes.
    pub reserve: u64,
    /// Cost of one worker before any was measured, bytes.
    pub estimate: u64,
    /// Most workers whatever the memory says.
    pub ceiling: usize,
}

impl AutoSize {
    /// How many workers of `per_worker` bytes fit beside a backend's own processes of
    /// `host` bytes (the native engine host: counted once, not per worker), clamped to
    /// [1, ceiling].
    pub fn limit(&self, per_worker: u64, host: u64) -> usize {
        let n = self.usable(host) / per_worker.max(1);
        (n.min(usize::MAX as u64) as usize).clamp(1, self.ceiling.max(1))
    }

    fn usable(&self, host: u64) -> u64 {
        self.budget
            .saturating_sub(self.reserve)
            .saturating_sub(host)
    }

    /// "budget 300 MiB (memory_budget) - reserve 0 MiB = 300 MiB / worker 50 MiB → 6".
    pub fn explain(&self, per_worker: u64, host: u64, measured: bool) -> String {
        let usable = self.usable(host);
        let raw = usable / per_worker.max(1);
        let n = self.limit(per_worker, host);
        let clamp = if raw as usize != n {
            format!(" (clamped to [1, {}])", self.ceiling)
        } else {
            String::new()
        };
        let host = if host > 0 {
            format!(" - engine host {} MiB", host.div_ceil(1 << 20))
        } else {
            String::new()
        };
        format!(
            "budget {} MiB ({}) - reserve {} MiB{} = {} MiB / worker {} MiB ({}) → {}{}",
            self.budget >> 20,
            self.source,
            self.reserve >> 20,
            host,
            usable >> 20,
            per_worker.div_ceil(1 << 20),
            if measured {
                "measured PSS, p90"
            } else {
                "estimate"
            },
            n,
            clamp
        )
    }
}

/// The memory available to this process tree: the cgroup limit when there is one, else
/// MemAvailable.
pub fn detect_budget() -> Option<(u64, BudgetSource)> {
    if let Some(limit) = cgroup_limit() {
        return Some((limit, BudgetSource::Cgroup));
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&meminfo, "MemAvailable:").map(|k| (k * 1024, BudgetSource::MemAvailable))
}

fn cgroup_limit() -> Option<u64> {
    // cgroup v2, then v1; "max" or an absurdly large v1 value means no limit.
    for path in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(v) = text.trim().parse::<u64>() {
                if v < (1u64 << 60) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// Proportional set size of a process (shared pages split among their users), bytes.
pub fn pss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_field(&text, "Pss:").map(|k| k * 1024)
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The 90th percentile of `costs` (the largest for fewer than ten samples): a high
/// percentile, so one heavy worker is planned for, but one outlier does not shrink the pool.
pub fn p90(costs: &mut [u64]) -> Option<u64> {
    if costs.is_empty() {
        return None;
    }
    costs.sort_unstable();
    let idx = ((costs.len() as f64 * 0.9).ceil() as usize).clamp(1, costs.len()) - 1;
    Some(costs[idx])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(budget_mib: u64, reserve_mib: u64, ceiling: usize) -> AutoSize {
        AutoSize {
            budget: budget_mib << 20,
            source: BudgetSource::Configured,
            reserve: reserve_mib << 20,
            estimate: 64 << 20,
            ceiling,
        }
    }

    #[test]
    fn limits() {
        assert_eq!(auto(300, 0, 100).limit(50 << 20, 0), 6);
        assert_eq!(auto(300, 100, 100).limit(50 << 20, 0), 4);
        assert_eq!(
            auto(300, 0, 100).limit(50 << 20, 60 << 20),
            4,
            "engine host"
        );
        assert_eq!(auto(300, 0, 4).limit(50 << 20, 0), 4, "ceiling");
        assert_eq!(
            auto(10, 0, 100).limit(50 << 20, 0),
            1,
            "at least one worker"
        );
        assert_eq!(
            auto(10, 20, 100).limit(50 << 20, 0),
            1,
            "reserve above budget"
        );
        assert_eq!(auto(300, 0, 100).limit(0, 0), 100, "no division by zero");
    }

    #[test]
    fn explanation_shows_the_arithmetic() {
        let e = auto(300, 0, 100).explain(50 << 20, 0, true);
        assert_eq!(e, "budget 300 MiB (memory_budget) - reserve 0 MiB = 300 MiB / worker 50 MiB (measured PSS, p90) → 6");
        let e = auto(300, 0, 100).explain(20 << 20, 40 << 20, true);
        assert_eq!(e, "budget 300 MiB (memory_budget) - reserve 0 MiB - engine host 40 MiB = 260 MiB / worker 20 MiB (measured PSS, p90) → 13");
        assert!(auto(300, 0, 4)
            .explain(50 << 20, 0, false)
            .ends_with("→ 4 (clamped to [1, 4])"));
    }

    #[test]
    fn percentile() {
        assert_eq!(p90(&mut []), None);
        assert_eq!(p90(&mut [5, 1, 3]), Some(5));
        let mut v: Vec<u64> = (1..=20).collect();
        assert_eq!(p90(&mut v), Some(18));
    }

    #[test]
    fn this_machine_has_a_budget_and_processes_have_a_pss() {
        assert!(detect_budget().is_some_and(|(b, _)| b > 0));
        assert!(pss_bytes(std::process::id()).is_some_and(|p| p > 0));
    }
}
