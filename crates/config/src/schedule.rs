//! `[[schedule]]`: requests Isola runs on a clock (cron patterns or fixed intervals).
use crate::raw::{NumOrStr, RawSchedule};
use crate::units::parse_duration;
use std::time::Duration;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// Every this long, the first time one interval after start.
    Every(Duration),
    /// At the times of a cron pattern (checked: it parses), in a time zone (IANA name;
    /// `None` is UTC).
    Cron {
        /// The pattern as written.
        pattern: String,
        /// The time zone.
        timezone: Option<String>,
    },
}

/// One `[[schedule]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Name for logs.
    pub name: String,
    /// Path and query to request (with `script`: `/FILE_NAME`, for logs).
    pub url: String,
    /// A PHP file to run instead of routing `url`.
    pub script: Option<std::path::PathBuf>,
    /// Host of the site (default site when `None`).
    pub site: Option<String>,
    /// When.
    pub when: When,
    /// Runs may overlap.
    pub overlap: bool,
    /// Random delay bound.
    pub jitter: Duration,
}

/// A duration key that may be zero (e.g. `jitter`), problems pushed to `errs`.
pub(crate) fn dur(errs: &mut Vec<String>, key: &str, v: Option<NumOrStr>) -> Option<Duration> {
    duration_key(errs, key, v, false)
}

/// A duration written as seconds or with a unit; `positive` refuses zero.
pub(crate) fn duration_key(
    errs: &mut Vec<String>,
    key: &str,
    v: Option<NumOrStr>,
    positive: bool,
) -> Option<Duration> {
    match v? {
        NumOrStr::Num(n) if n > 0 || (n == 0 && !positive) => Some(Duration::from_secs(n as u64)),
        NumOrStr::Num(n) => {
            let rule = if positive {
                "must be positive"
            } else {
                "must not be negative"
            };
            errs.push(format!("{key}: {n} {rule}"));
            None
        }
        NumOrStr::Str(s) => parse_duration(&s)
            .map_err(|e| errs.push(format!("{key}: {e}")))
            .ok(),
    }
}

/// Validates every `[[schedule]]`, pushing problems (named `schedule[N].key`) to `errs`.
pub(crate) fn validate(
    raw: Vec<RawSchedule>,
    base_dir: &std::path::Path,
    errs: &mut Vec<String>,
) -> Vec<ScheduleConfig> {
    let mut out = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("schedule[{i}]");
        let n = errs.len();
        let script = match (&s.script, &s.url) {
            (Some(_), Some(_)) => {
                errs.push(format!("{key}: set url or script, not both"));
                None
            }
            (Some(p), None) => {
                crate::queue::php_script(base_dir, p, &format!("{key}.script"), errs)
            }
            (None, _) => None,
        };
        let url = match &script {
            Some(p) => format!(
                "/{}",
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            None => s.url.clone().unwrap_or_default(),
        };
        if s.script.is_none() && !url.starts_with('/')
            || url.starts_with("//")
            || url.bytes().any(|b| b <= 0x20 || b == 0x7f)
        {
            errs.push(format!(
                "{key}.url: {url:?} must be a path on the site, e.g. \"/wp-cron.php\""
            ));
        }
        let every = dur(errs, &format!("{key}.every"), s.every);
        let when = match (s.cron, every) {
            (Some(_), Some(_)) => {
                errs.push(format!("{key}: set cron or every, not both"));
                None
            }
            (None, None) => {
                errs.push(format!(
                    "{key}: missing cron (e.g. \"*/5 * * * *\") or every (e.g. \"30s\")"
                ));
                None
            }
            (None, Some(d)) if d < Duration::from_secs(1) => {
                errs.push(format!("{key}.every: must be at least 1s"));
                None
            }
            (None, Some(d)) => Some(When::Every(d)),
            (Some(pattern), None) => {
                if let Err(e) = croner::parser::CronParser::new().parse(&pattern) {
                    errs.push(format!("{key}.cron: {pattern:?}: {e}"));
                }
                if let Some(tz) = &s.timezone {
                    if tz.parse::<chrono_tz::Tz>().is_err() {
                        errs.push(format!(
                            "{key}.timezone: {tz:?} is not a time zone name (e.g. \"Europe/Paris\")"
                        ));
                    }
                }
                Some(When::Cron {
                    pattern,
                    timezone: s.timezone.clone(),
                })
            }
        };
        if s.timezone.is_some() && !matches!(when, Some(When::Cron { .. }) | None) {
            errs.push(format!("{key}.timezone: only applies with cron"));
        }
        let jitter = dur(errs, &format!("{key}.jitter"), s.jitter).unwrap_or_default();
        if errs.len() > n {
            continue;
        }
        if let Some(when) = when {
            out.push(ScheduleConfig {
                name: s.name.unwrap_or_else(|| url.clone()),
                url,
                script,
                site: s.site.map(|h| h.to_ascii_lowercase()),
                when,
                overlap: s.overlap.unwrap_or(false),
                jitter,
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RawSchedule {
        RawSchedule {
            url: Some(url.into()),
            ..RawSchedule::default()
        }
    }

    #[test]
    fn cron_and_every() {
        let mut errs = Vec::new();
        let mut a = raw("/wp-cron.php");
        a.cron = Some("*/5 * * * MON-FRI".into());
        a.timezone = Some("Europe/Paris".into());
        let mut b = raw("/tick.php?x=1");
        b.every = Some(NumOrStr::Str("30s".into()));
        b.name = Some("tick".into());
        b.overlap = Some(true);
        let out = validate(vec![a, b], std::path::Path::new("/"), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out[0].name, "/wp-cron.php");
        assert!(
            matches!(&out[0].when, When::Cron { timezone: Some(t), .. } if t == "Europe/Paris")
        );
        assert_eq!(out[1].when, When::Every(Duration::from_secs(30)));
        assert!(out[1].overlap && !out[0].overlap);
    }

    #[test]
    fn errors_are_named() {
        let mut errs = Vec::new();
        let mut a = raw("wp-cron.php");
        a.cron = Some("61 * * * *".into());
        let mut b = raw("/x.php");
        b.cron = Some("* * * * *".into());
        b.every = Some(NumOrStr::Num(5));
        let c = raw("/y.php");
        let mut d = raw("/z.php");
        d.cron = Some("0 3 * * *".into());
        d.timezone = Some("Mars/Olympus".into());
        let out = validate(vec![a, b, c, d], std::path::Path::new("/"), &mut errs);
        assert!(out.is_empty());
        let all = errs.join("\n");
        for want in [
            "schedule[0].url",
            "schedule[0].cron",
            "schedule[1]: set cron or every",
            "schedule[2]: missing cron",
            "schedule[3].timezone",
        ] {
            assert!(all.contains(want), "{want} missing from {all}");
        }
    }
}
