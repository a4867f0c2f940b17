//! How a php-cgi worker is started: command line, environment, private socket.
use std::ffi::OsString;
use std::path::PathBuf;

/// A php-cgi worker recipe.
#[derive(Debug, Clone)]
pub struct PhpCgi {
    /// Path to the php-cgi binary.
    pub binary: PathBuf,
    /// Extra arguments, typically `-d name=value` pairs.
    pub args: Vec<OsString>,
    /// Environment of the worker (on top of a cleared environment with PATH).
    pub env: Vec<(OsString, OsString)>,
    /// Private directory (mode 0700) where worker sockets are created.
    pub runtime_dir: PathBuf,
}
