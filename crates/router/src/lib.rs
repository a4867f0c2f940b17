//! Mapping a request path to what serves it: a static file, a PHP script, a redirect, or a
//! denial.
//!
//! Owns: percent-decoding and normalising the path, refusing traversal, NUL, dotfiles and
//! PHP source, the PATH_INFO split, index files, the front controller, directories where PHP
//! never executes, and symlinks that leave the document root.
//!
//! Never: reads file contents, opens sockets, or knows HTTP types; its only I/O is
//! `stat`/`canonicalize` on paths under the document root.

use std::path::PathBuf;

/// Router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Absolute, canonical document root.
    pub docroot: PathBuf,
    /// Index files tried in a directory, in order.
    pub index: Vec<String>,
    /// Script (relative to the docroot) that gets every request nothing else matches.
    pub front_controller: Option<String>,
    /// Path prefixes (relative to the docroot, e.g. `uploads/`) below which PHP never runs.
    pub no_exec: Vec<String>,
    /// Follow symlinks that lead outside the document root.
    pub follow_symlinks_outside: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// 400: malformed or hostile path (NUL, traversal above the root, not origin-form).
    BadRequest,
    /// 403: a directory without an index, or PHP below a no-exec path.
    Forbidden,
    /// 404: nothing there, or something that must stay hidden (dotfiles, PHP source).
    NotFound,
}

/// What serves a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Send this file as it is.
    Static {
        /// Absolute path of the file.
        path: PathBuf,
    },
    /// Run this script.
    Script {
        /// Absolute path of the script (SCRIPT_FILENAME).
        script_filename: PathBuf,
        /// Decoded URL path of the script (SCRIPT_NAME), e.g. `/blog/index.php`.
        script_name: String,
        /// Decoded rest of the path after the script (PATH_INFO), `""` when none.
        path_info: String,
    },
    /// Answer 301 with this Location (percent-encoded path with `/` added, query kept).
    Redirect {
        /// The Location header value.
        location: String,
    },
    /// Refuse.
    Deny(Deny),
}

/// A router over one document root.
#[derive(Debug, Clone)]
pub struct Router {
    config: RouterConfig,
}

impl Router {
    /// A router with these settings.
    pub fn new(config: RouterConfig) -> Self {
        Self { config }
    }

    /// The settings.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Resolves the path part of a request target (still percent-encoded, starting with
    /// `/`) and its raw query (without `?`).
    pub fn resolve(&self, _raw_path: &str, _raw_query: Option<&str>) -> Route {
        todo!()
    }
}
