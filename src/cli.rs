//! Command-line interface. Flags override the config file.
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
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
    /// Check the configuration and what it points at (docroot, PHP, ini settings,
    /// certificates, listen addresses, store folder) without serving: one line per problem,
    /// exit status 0 when all is well, 2 otherwise.
    Check(ServeArgs),
    /// Ask a running server to reload its configuration (SIGHUP): new workers start with the
    /// new settings, old ones finish their requests first; no request is dropped.
    Reload(ReloadArgs),
    /// Inspect and act on the job queues of a running server (through its admin listener).
    Queue(QueueArgs),
    /// Send commands to the store (embedded or Redis), like redis-cli; with no command,
    /// read commands from standard input, one per line.
    StoreCli(StoreCliArgs),
    /// Translate an nginx site and a php-fpm pool into an isola.toml: the TOML on standard
    /// output, then one line per directive not translated (`file:line: directive — reason`)
    /// on standard error; exit status 0, or 2 when a file cannot be read or parsed.
    Import(ImportArgs),
    /// The PHP engine host of the native backend, started by the server itself.
    #[command(name = "__php-zygote", hide = true)]
    PhpZygote(ZygoteArgs),
}

/// Arguments of the engine host; the server builds them, users never type them.
#[derive(Debug, Args)]
pub struct ZygoteArgs {
    /// php.ini to read instead of the engine's own
    #[arg(long)]
    pub ini_file: Option<String>,
    /// Become this user before the engine starts
    #[arg(long, requires = "gid")]
    pub uid: Option<u32>,
    /// Become this group before the engine starts
    #[arg(long, requires = "uid")]
    pub gid: Option<u32>,
}

/// `isola import`: the files to translate (either or both).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).multiple(true).args(["nginx", "fpm"])))]
pub struct ImportArgs {
    /// nginx site file (e.g. /etc/nginx/sites-enabled/default) or a whole nginx.conf;
    /// includes are read relative to its folder and the folder above
    #[arg(long, value_name = "FILE")]
    pub nginx: Option<PathBuf>,
    /// php-fpm pool file (e.g. /etc/php/8.2/fpm/pool.d/www.conf); the first pool is used
    #[arg(long, value_name = "FILE")]
    pub fpm: Option<PathBuf>,
    /// The server block to translate: one of its server_name values, or its number
    /// (1-based) [default: the first one that is not only a redirect to HTTPS]
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
}

/// Where a running server is: its admin listener, given or read from its config.
#[derive(Debug, Args)]
pub struct ServerRef {
    /// The server's admin listener, IP:PORT [default: admin.listen of the config file]
    #[arg(long, value_name = "ADDR", global = true)]
    pub admin: Option<String>,
    /// The server's configuration file
    #[arg(short, long, value_name = "FILE", env = "ISOLA_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    pub server: ServerRef,
    #[command(subcommand)]
    pub action: QueueCommand,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Every queue: pending, delayed, processing and dead jobs, oldest age, and this node's
    /// counters
    Ls,
    /// The first jobs of a queue (or of its dead list)
    Show {
        /// Queue name
        name: String,
        /// Show the dead list
        #[arg(long)]
        dead: bool,
        /// How many
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Add a job; the payload is the argument, or standard input with `-`
    Push {
        /// Queue name
        name: String,
        /// Payload
        payload: String,
    },
    /// Move every dead job back to its queue, with fresh attempts
    Retry {
        /// Queue name
        name: String,
    },
    /// Delete the dead list (or, with --pending, the jobs waiting)
    Drop {
        /// Queue name
        name: String,
        /// Drop the pending jobs instead of the dead list
        #[arg(long)]
        pending: bool,
    },
}

#[derive(Debug, Args)]
pub struct StoreCliArgs {
    #[command(flatten)]
    pub server: ServerRef,
    /// The store's URL (redis://..., unix:///...) [default: from the config file, or the
    /// embedded store of the running server]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Database to select, as redis-cli's -n [default: the URL's, else 0]; Isola's own keys
    /// (queues, locks) are in `[store] isola_db`, 15 unless configured
    #[arg(short = 'n', long, value_name = "DB")]
    pub db: Option<u16>,
    /// A command and its arguments, e.g. `-n 15 LLEN isola:queue:mail`
    pub command: Vec<String>,
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

    /// How PHP runs (php.backend): auto (native where libphp is installed, else php-cgi),
    /// native or php-cgi [default: auto]
    #[arg(long, value_name = "BACKEND", env = "ISOLA_BACKEND")]
    pub backend: Option<String>,

    /// php-cgi binary, a path or a name looked up in PATH (php.binary) [default: php-cgi]
    #[arg(long, value_name = "PATH")]
    pub php: Option<String>,

    /// Worker mode (php.worker): this script, relative to the docroot, boots once per
    /// worker and serves requests in a loop with frankenphp_handle_request()
    #[arg(long, value_name = "FILE")]
    pub worker: Option<String>,

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

    /// Check the configuration and exit (as `isola check`)
    #[arg(long)]
    pub check: bool,

    /// Log level or filter, e.g. "debug" or "info,isola::access=warn" (log.level)
    /// [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}
