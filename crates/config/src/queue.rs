//! `[[queue]]`: job queues kept in the store and run by the pool, one job per request.
use crate::raw::{NumOrStr, RawQueue};
use crate::units::parse_duration;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The queue Isola always consumes when it has a store: each job is a request target
/// (`/path?query`) run after the response that enqueued it.
pub const DEFER_QUEUE: &str = "defer";

/// What runs a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobTarget {
    /// This PHP file, the payload as its POST body.
    Script(PathBuf),
    /// The payload names a request target of the site (the `defer` queue).
    Url,
}

/// One queue, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Name (`isola:queue:NAME`).
    pub name: String,
    /// What runs each job.
    pub target: JobTarget,
    /// Host of the site (default site when `None`).
    pub site: Option<String>,
    /// Jobs at once on this node.
    pub concurrency: usize,
    /// Longest run (`None`: the site's `request_terminate_timeout`).
    pub timeout: Option<Duration>,
    /// Runs before dead-lettering.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, capped at one hour.
    pub backoff: Duration,
    /// Workers kept free for web requests.
    pub reserve: usize,
}

impl QueueConfig {
    /// The built-in `defer` queue with its defaults.
    pub fn defer() -> QueueConfig {
        QueueConfig {
            name: DEFER_QUEUE.to_string(),
            target: JobTarget::Url,
            site: None,
            concurrency: 1,
            timeout: None,
            max_attempts: DEFAULT_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            reserve: 1,
        }
    }
}

const DEFAULT_ATTEMPTS: u32 = 3;
const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
const MAX_CONCURRENCY: i64 = 256;

fn dur(errs: &mut Vec<String>, key: &str, v: Option<NumOrStr>) -> Option<Duration> {
    match v? {
        NumOrStr::Num(n) if n > 0 => Some(Duration::from_secs(n as u64)),
        NumOrStr::Num(n) => {
            errs.push(format!("{key}: {n} must be positive"));
            None
        }
        NumOrStr::Str(s) => parse_duration(&s)
            .map_err(|e| errs.push(format!("{key}: {e}")))
            .ok(),
    }
}

fn count(errs: &mut Vec<String>, key: &str, v: Option<i64>, min: i64, max: i64) -> Option<i64> {
    let n = v?;
    if n < min || n > max {
        errs.push(format!("{key}: {n} must be between {min} and {max}"));
        return None;
    }
    Some(n)
}

/// Validates every `[[queue]]`; `defer` is added when not configured. Problems are named
/// `queue[N].key`.
pub(crate) fn validate(
    raw: Vec<RawQueue>,
    base_dir: &Path,
    errs: &mut Vec<String>,
) -> Vec<QueueConfig> {
    let mut out: Vec<QueueConfig> = Vec::new();
    for (i, q) in raw.into_iter().enumerate() {
        let key = format!("queue[{i}]");
        let n = errs.len();
        let name = q.name.unwrap_or_default();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            errs.push(format!(
                "{key}.name: {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        } else if out.iter().any(|o| o.name == name) {
            errs.push(format!("{key}.name: {name:?} is already a queue"));
        }
        let target = match (q.script, name == DEFER_QUEUE) {
            (Some(_), true) => {
                errs.push(format!(
                    "{key}.script: the defer queue runs the URL in each job; it takes no script"
                ));
                JobTarget::Url
            }
            (None, true) => JobTarget::Url,
            (None, false) => {
                errs.push(format!(
                    "{key}.script: missing; the PHP file that runs each job, e.g. \"jobs/mail.php\""
                ));
                JobTarget::Url
            }
            (Some(p), false) => {
                let full = base_dir.join(&p);
                if full.extension().and_then(|e| e.to_str()) != Some("php") {
                    errs.push(format!(
                        "{key}.script: {} is not a .php file; only PHP scripts run jobs",
                        p.display()
                    ));
                }
                match full.canonicalize() {
                    Ok(c) if c.is_file() => JobTarget::Script(c),
                    _ => {
                        errs.push(format!(
                            "{key}.script: {} is not a readable file",
                            full.display()
                        ));
                        JobTarget::Url
                    }
                }
            }
        };
        let concurrency = count(
            errs,
            &format!("{key}.concurrency"),
            q.concurrency,
            1,
            MAX_CONCURRENCY,
        );
        let max_attempts = count(
            errs,
            &format!("{key}.max_attempts"),
            q.max_attempts,
            1,
            1000,
        );
        let reserve = count(errs, &format!("{key}.reserve"), q.reserve, 0, 10_000);
        let timeout = dur(errs, &format!("{key}.timeout"), q.timeout);
        let backoff = dur(errs, &format!("{key}.backoff"), q.backoff);
        if errs.len() > n {
            continue;
        }
        out.push(QueueConfig {
            name,
            target,
            site: q.site.map(|h| h.to_ascii_lowercase()),
            concurrency: concurrency.unwrap_or(1) as usize,
            timeout,
            max_attempts: max_attempts.map_or(DEFAULT_ATTEMPTS, |n| n as u32),
            backoff: backoff.unwrap_or(DEFAULT_BACKOFF),
            reserve: reserve.map_or(1, |n| n as usize),
        });
    }
    if !out.iter().any(|q| q.name == DEFER_QUEUE) {
        out.push(QueueConfig::defer());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_scripts_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("job.php"), "<?php").unwrap();
        std::fs::write(dir.path().join("job.txt"), "x").unwrap();
        let q = |name: &str, script: Option<&str>| RawQueue {
            name: Some(name.into()),
            script: script.map(PathBuf::from),
            ..RawQueue::default()
        };
        let mut errs = Vec::new();
        let mut ok = q("mail", Some("job.php"));
        ok.concurrency = Some(4);
        ok.backoff = Some(NumOrStr::Str("2s".into()));
        let out = validate(vec![ok], dir.path(), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out.len(), 2, "defer added");
        assert_eq!(out[0].concurrency, 4);
        assert_eq!(out[0].backoff, Duration::from_secs(2));
        assert_eq!(out[0].max_attempts, 3);
        assert_eq!(out[1], QueueConfig::defer());

        let mut bad_n = q("x", Some("job.php"));
        bad_n.concurrency = Some(0);
        let out = validate(
            vec![
                q("bad name", Some("job.php")),
                q("txt", Some("job.txt")),
                q("missing", Some("nope.php")),
                q("noscript", None),
                q("defer", Some("job.php")),
                bad_n,
                q("dup", Some("job.php")),
                q("dup", Some("job.php")),
            ],
            dir.path(),
            &mut errs,
        );
        let all = errs.join("\n");
        for want in [
            "queue[0].name",
            "queue[1].script: job.txt is not a .php file",
            "queue[2].script:",
            "queue[3].script: missing",
            "queue[4].script: the defer queue",
            "queue[5].concurrency: 0 must be between 1 and 256",
            "queue[7].name: \"dup\" is already a queue",
        ] {
            assert!(all.contains(want), "{want} not in {all}");
        }
        assert_eq!(out.iter().filter(|q| q.name == "dup").count(), 1);
    }
}
