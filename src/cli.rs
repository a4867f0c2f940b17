//! Command-line interface. Flags override the config file.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Isola: a PHP application server. One binary is the web server and the process manager
/// for a pool of supervised php-cgi workers: each request runs in its own isolated process,
/// and a crash, a fatal error or a leak costs only that request.
#[derive(Debug, Parser)]
#[command(name = "isola", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a folder of PHP files over HTTP.
    Serve(ServeArgs),
    /// Ask a running server to reload its configuration (SIGHUP): new workers start with the
    /// new settings, old ones finish their requests first; no request is dropped.
    Reload(ReloadArgs),
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The running server's pid file (server.pid_file / serve --pid-file)
    #[arg(long, value_name = "FILE", default_value = "isola.pid")]
    pub pid_file: PathBuf,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Document root: the folder whose files are served and whose *.php files run
    /// [default: server.docroot from the config file, else the current folder]
    pub docroot: Option<PathBuf>,

    /// Address to listen on, IP:PORT (port 0 picks a free one) [default: 127.0.0.1:8080]
    #[arg(short, long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Number of PHP worker processes (pool.max_children) [default: 4]
    #[arg(short, long, value_name = "N")]
    pub workers: Option<i64>,

    /// Configuration file (isola.toml); flags given here override it
    #[arg(short, long, value_name = "FILE", env = "ISOLA_CONFIG")]
    pub config: Option<PathBuf>,

    /// php-cgi binary, a path or a name looked up in PATH (php.binary) [default: php-cgi]
    #[arg(long, value_name = "PATH")]
    pub php: Option<String>,

    /// Admin listener for /status, /metrics and /health, IP:PORT (admin.listen)
    /// [default: off]
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,

    /// Write the server's pid to this file, for `isola reload` (server.pid_file)
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Log format (log.format) [default: human]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,

    /// Log level or filter, e.g. "debug" or "info,isola::access=warn" (log.level)
    /// [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}
