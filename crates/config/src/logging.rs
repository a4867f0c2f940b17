//! `[log]`: the server log's format and level, the access log's format and file.
use crate::raw::RawLog;
use isola_front::AccessFormat;
use std::path::{Path, PathBuf};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// `log.format` and `log.level`: the server log, set up once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Format.
    pub format: LogFormat,
    /// Filter directive.
    pub level: String,
}

/// `log.access*`: the access log, which a reload applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Access log on.
    pub access: bool,
    /// Access log format.
    pub access_format: AccessFormat,
    /// Access log file; stdout when `None`.
    pub access_file: Option<PathBuf>,
}

/// Validates `[log]`; a relative access file is anchored at `base_dir`.
pub(crate) fn validate(
    l: RawLog,
    base_dir: &Path,
    errs: &mut Vec<String>,
) -> (LogConfig, AccessLogConfig) {
    let format = match l.format.as_deref() {
        None | Some("human") => LogFormat::Human,
        Some("json") => LogFormat::Json,
        Some(other) => {
            errs.push(format!(
                "log.format: {other:?} is not a format; use \"human\" or \"json\""
            ));
            LogFormat::Human
        }
    };
    let level = l.level.unwrap_or_else(|| "info".to_string());
    let access_format = match l.access_format.as_deref() {
        None if format == LogFormat::Json => AccessFormat::Json,
        None | Some("combined") => AccessFormat::Combined,
        Some("json") => AccessFormat::Json,
        Some(other) => {
            errs.push(format!(
                "log.access_format: {other:?} is not a format; use \"combined\" or \"json\""
            ));
            AccessFormat::Combined
        }
    };
    let access_file = l.access_file.map(|f| base_dir.join(f));
    if let Some(f) = &access_file {
        match f.parent() {
            Some(dir) if dir.is_dir() => {}
            _ => errs.push(format!(
                "log.access_file: the folder of {} does not exist",
                f.display()
            )),
        }
    }

    (
        LogConfig { format, level },
        AccessLogConfig {
            access: l.access.unwrap_or(true),
            access_format,
            access_file,
        },
    )
}
