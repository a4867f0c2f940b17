//! `isola.toml` and command-line settings as one validated, typed [`Config`].
//!
//! Owns: the file format (every key, its type and default), parsing of durations and sizes,
//! and validation that reports every problem at once, each naming its key. Validation
//! builds the libraries' own settings types, once: the pool's [`isola_pool::PoolSettings`]
//! and [`isola_pool::ProcessManager`], the router's compiled `deny`/`allow`
//! [`isola_router::PathPatterns`], the front's [`isola_front::CacheControl`],
//! [`isola_front::Limits`], [`isola_front::ConnLimits`], [`isola_front::AccessFormat`],
//! [`isola_front::UnknownHost`] and certificate [`isola_front::tls::CertFiles`]; the binary
//! hands them over as they are. What a reload does not apply is grouped in [`Startup`].
//!
//! Never: starts anything, writes files, or reads the environment. The only I/O is reading
//! the config file and checking that the paths it names exist. It keeps no mirror of a
//! library's type: a setting is written in the raw format (`raw.rs`), one validator, and
//! the code that uses it.

mod acme;
mod logging;
mod php;
mod pool;
mod queue;
mod raw;
mod schedule;
mod server;
mod sites;
mod store;
mod units;
mod validate;

pub use acme::{AcmeChallenge, AcmeConfig, LETS_ENCRYPT};
pub use logging::{AccessLogConfig, LogConfig, LogFormat};
pub use php::{PhpBackend, PhpConfig};
pub use queue::{JobTarget, QueueConfig, DEFER_QUEUE};
pub use raw::RawAcme;
pub use raw::{
    NumOrStr, RawAdmin, RawAlias, RawCacheControl, RawCompression, RawConfig, RawLog, RawPhp,
    RawPool, RawQueue, RawSchedule, RawSendfile, RawServer, RawSite, RawStore, RawTls, RawTlsCert,
};
pub use schedule::{ScheduleConfig, When};
pub use server::{Compression, SendfileDir, ServerConfig};
pub use sites::SiteConfig;
pub use store::{
    default_state_dir, parse_url as parse_store_url, AppendFsync, EmbeddedStore, StoreBackend,
    StoreSettings, MAXMEMORY_POLICIES,
};
pub use units::{parse_duration, parse_size};
pub use validate::{tls_cert_key, Config, Startup};

use std::path::{Path, PathBuf};

/// Default public listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A configuration that cannot be used; every problem found, each naming its key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key and line.
        message: String,
    },
    /// Values that parse but cannot be used.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl RawConfig {
    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses config text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let message = one_line(e.inner(), text);
            ConfigError::Parse {
                path: origin.to_owned(),
                message: if key.is_empty() || key == "." {
                    message
                } else {
                    format!("{key}: {message}")
                },
            }
        })
    }
}

/// toml's messages span several lines with a source excerpt; keep the line number, key and
/// reason on one line.
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(0, |t| t.matches('\n').count())
                + 1;
            format!("line {line}: {msg}")
        }
        None => msg,
    }
}

/// What the binary read from the process environment for the config: this crate reads none
/// itself, so a config validates the same way in tests and under any service manager.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `PATH`, split: where a `php.binary` given by name is looked for.
    pub search_path: Vec<PathBuf>,
    /// Where `store.dir` and `tls.acme.dir` default to ([`default_state_dir`]); `None` makes
    /// those defaults an error that says to set them.
    pub state_dir: Option<PathBuf>,
}

impl Env {
    /// `dir` as the search path, and the system state directory.
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &Path) -> Self {
        Env {
            search_path: vec![dir.to_path_buf()],
            state_dir: Some(PathBuf::from("/var/lib/isola")),
        }
    }
}
