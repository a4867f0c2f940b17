//! The seam between the pool and the ways a PHP worker comes to exist ([`Backend`],
//! [`Process`]), and the php-cgi backend: command line, environment, private socket,
//! start-up probe.
//!
//! A backend only starts workers and hands back a connected FastCGI stream plus a
//! [`Process`] handle; the pool alone decides when to signal and reap through that handle,
//! and a handle never signals a process it has reaped (so never a recycled pid).
//!
//! The worker's listening socket is handed to php-cgi as its fd 0, the FastCGI convention
//! (`FCGI_LISTENSOCK_FILENO`) that php-cgi detects by itself: no port, no race waiting for a
//! socket file to appear, and the socket lives in a directory only Isola's user can enter.
use nix::sys::signal::Signal;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// PATH given to workers; their environment is otherwise cleared (php-fpm's `clear_env`).
pub const WORKER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Lines of a worker's stderr kept for a start-up failure report.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line logged; longer ones are cut.
const MAX_STDERR_LINE: usize = 8 * 1024;

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
    /// Run workers as this uid and gid (Isola started as root). The socket is inherited as
    /// fd 0, so workers never need access to the runtime directory.
    pub credentials: Option<(u32, u32)>,
    /// RLIMIT_NOFILE of workers.
    pub rlimit_files: Option<u64>,
    /// RLIMIT_CORE of workers (0 disables core dumps).
    pub rlimit_core: Option<u64>,
    /// Shown in status (e.g. why the native backend is not used).
    pub note: Option<String>,
}

/// A boxed future, so the seam's traits stay object-safe without a macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A way to start PHP workers. The pool calls [`Backend::spawn`] whenever it wants one
/// more worker and does everything else itself.
pub trait Backend: Send + Sync + 'static {
    /// Starts worker number `n` and returns once it answered FCGI_GET_VALUES (within
    /// `timeout`), or why it did not.
    fn spawn(&self, n: u64, timeout: Duration) -> BoxFuture<'_, Result<Spawned, SpawnError>>;
    /// Shown in status: `php-cgi`, `native`.
    fn name(&self) -> &'static str;
    /// Free text for status (engine version, why a fallback happened...).
    fn status_note(&self) -> Option<String> {
        None
    }
    /// Whether workers act on FCGI_ABORT_REQUEST while a script runs (client gone →
    /// `connection_aborted()`, `ignore_user_abort`). php-cgi drops the connection instead,
    /// so it must not be sent one.
    fn honours_abort(&self) -> bool {
        false
    }
    /// Whether workers may send Isola's interim record (103 Early Hints) before their
    /// response; php-cgi never does, and its output must not be read as one.
    fn sends_interim(&self) -> bool {
        false
    }
    /// Processes the backend keeps besides its workers (the native engine host), whose
    /// memory `max_children = "auto"` takes out of the budget once.
    fn host_pids(&self) -> Vec<u32> {
        Vec::new()
    }
    /// Whether workers run a worker script (worker mode): a worker that ends by itself
    /// with status 0 between requests is then a script whose loop returned (its own
    /// MAX_REQUESTS, `exit()` in a handler), replaced without counting as a crash.
    fn worker_mode(&self) -> bool {
        false
    }
}

/// A worker process as the pool sees it.
pub trait Process: Send + 'static {
    /// Waits for the process to exit and reaps it. Cancel-safe: may be dropped and called
    /// again; once it returned `Ok`, it returns the same status at once.
    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>>;
    /// Sends a signal; a no-op once the process has been reaped.
    fn signal(&mut self, sig: Signal) -> io::Result<()>;
    /// The PHP stack (at most `depth` frames) of the request the worker runs, taken without
    /// stopping or interrupting it; `None` when this kind of worker cannot tell (php-cgi).
    fn backtrace(&mut self, depth: u32) -> Option<BoxFuture<'_, io::Result<Backtrace>>> {
        let _ = depth;
        None
    }
}

/// Most bytes of a [`Backtrace`] reply, as the engine host bounds it.
pub const MAX_BACKTRACE_BYTES: usize = 64 * 1024;

/// One PHP stack frame: the function and where it was called from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `name`, `Class->method` or `Class::method`, `include`/`require_once`..., `{main}`.
    pub function: String,
    /// The file of the call (empty when unknown).
    pub file: String,
    /// Its line (0 when unknown).
    pub line: u32,
}

impl std::fmt::Display for Frame {
    /// php-fpm's slowlog frame: `inner() /srv/www/slow.php:7`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = if self.file.is_empty() {
            "unknown"
        } else {
            &self.file
        };
        write!(f, "{}() {}:{}", self.function, file, self.line)
    }
}

/// A request's PHP stack, innermost frame first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backtrace {
    /// The frames taken.
    pub frames: Vec<Frame>,
    /// Frames were left out (past the depth, or the walk could not go on).
    pub truncated: bool,
}

impl Backtrace {
    /// Reads the engine host's reply: `F\tfunction\tfile\tline\n` per frame, `M\n` when
    /// frames were left out, `E\n` at the end. A reply without its end was cut short and
    /// counts as truncated; malformed lines are skipped.
    pub fn parse(reply: &[u8]) -> Backtrace {
        let text = String::from_utf8_lossy(reply);
        let mut frames = Vec::new();
        let (mut more, mut ended) = (false, false);
        for line in text.split('\n') {
            let mut parts = line.split('\t');
            match parts.next() {
                Some("F") => {
                    if let (Some(function), Some(file), Some(line), None) =
                        (parts.next(), parts.next(), parts.next(), parts.next())
                    {
                        frames.push(Frame {
                            function: function.to_string(),
                            file: file.to_string(),
                            line: line.parse().unwrap_or(0),
                        });
                    }
                }
                Some("M") => more = true,
                Some("E") => {
                    ended = true;
                    break;
                }
                _ => {}
            }
        }
        Backtrace {
            frames,
            truncated: more || !ended,
        }
    }
}

/// A started worker whose start-up probe succeeded.
pub struct Spawned {
    /// Process id (for status, logs and memory figures).
    pub pid: u32,
    /// The connected FastCGI stream the pool leases out.
    pub stream: UnixStream,
    /// The handle the pool signals and reaps the worker through.
    pub process: Box<dyn Process>,
}

/// Why a worker did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The backend cannot run here at all.
    #[error("{0}")]
    Unavailable(String),
    /// The program could not be executed.
    #[error("cannot start {binary}: {source}")]
    Exec {
        /// What was executed.
        binary: String,
        /// Why not.
        source: io::Error,
    },
    /// A socket or pipe for the worker could not be made.
    #[error("cannot create worker socket {path}: {source}")]
    Socket {
        /// Which.
        path: String,
        /// Why not.
        source: io::Error,
    },
    /// The process started but did not answer its probe.
    #[error("PHP worker (pid {pid}) did not become ready: {reason}{stderr}")]
    NotReady {
        /// Its pid (0 when none was created).
        pid: u32,
        /// What went wrong.
        reason: String,
        /// Exit status and the last lines of its stderr, formatted for the log.
        stderr: String,
    },
}

/// A php-cgi worker: a tokio child with its private socket file.
struct PhpCgiProcess {
    child: Child,
    socket: PathBuf,
    reaped: bool,
}

impl Process for PhpCgiProcess {
    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>> {
        Box::pin(async move {
            let status = self.child.wait().await;
            if status.is_ok() {
                self.reaped = true;
            }
            status
        })
    }

    fn signal(&mut self, sig: Signal) -> io::Result<()> {
        if self.reaped {
            return Ok(());
        }
        if sig == Signal::SIGKILL {
            // tokio's own kill knows whether the child was reaped already.
            return self.child.start_kill();
        }
        match self.child.id() {
            Some(pid) => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
                .map_err(io::Error::from),
            None => Ok(()),
        }
    }
}

impl Drop for PhpCgiProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Backend for PhpCgi {
    fn spawn(&self, n: u64, timeout: Duration) -> BoxFuture<'_, Result<Spawned, SpawnError>> {
        Box::pin(self.spawn_worker(n, timeout))
    }

    fn name(&self) -> &'static str {
        "php-cgi"
    }

    fn status_note(&self) -> Option<String> {
        self.note.clone()
    }
}

/// The last lines a starting worker wrote to stderr, for its failure report.
pub type StderrTail = Arc<Mutex<VecDeque<String>>>;

/// The `stderr` part of [`SpawnError::NotReady`]: how the process ended and what it said.
pub async fn failure_report(status: Option<ExitStatus>, tail: &StderrTail) -> String {
    // Give the stderr reader a moment to collect the last lines.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let lines: Vec<String> = tail
        .lock()
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default();
    let mut out = match status {
        Some(s) => format!(" (exit: {s})"),
        None => String::new(),
    };
    if !lines.is_empty() {
        out.push_str("; stderr: ");
        out.push_str(&lines.join(" | "));
    }
    out
}

impl PhpCgi {
    /// Starts worker `n` and waits (up to `timeout`) for it to answer FCGI_GET_VALUES.
    async fn spawn_worker(&self, n: u64, timeout: Duration) -> Result<Spawned, SpawnError> {
        let started = Instant::now();
        let socket = self.runtime_dir.join(format!("worker-{n}.sock"));
        let _ = std::fs::remove_file(&socket);
        let sock_err = |source| SpawnError::Socket {
            path: socket.display().to_string(),
            source,
        };
        let listener = std::os::unix::net::UnixListener::bind(&socket).map_err(sock_err)?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", WORKER_PATH)
            // php-cgi otherwise forks its own children and exits after 500 requests.
            .env("PHP_FCGI_CHILDREN", "0")
            .env("PHP_FCGI_MAX_REQUESTS", "0")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        if let Some((uid, gid)) = self.credentials {
            // std drops supplementary groups, then sets gid and uid, before pre_exec hooks.
            cmd.uid(uid).gid(gid);
        }
        set_child_limits(&mut cmd, self.rlimit_files, self.rlimit_core);
        let spawned = cmd.spawn();
        // Dropping the command closes our copy of the listening socket: only php-cgi has it.
        drop(cmd);
        let mut child = spawned.map_err(|source| {
            let _ = std::fs::remove_file(&socket);
            SpawnError::Exec {
                binary: self.binary.display().to_string(),
                source,
            }
        })?;
        let pid = child.id().unwrap_or(0);
        let tail = StderrTail::default();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, pid, tail.clone()));
        }
        let process = Box::new(PhpCgiProcess {
            child,
            socket: socket.clone(),
            reaped: false,
        });
        await_ready(pid, process, started, timeout, probe(&socket), &tail).await
    }
}

/// The end of every spawn: waits (until `timeout` after `started`) for `probe` to hand
/// over the worker's connection; when it fails, kills and reaps the worker and reports
/// why, with its exit status and last stderr lines.
pub async fn await_ready(
    pid: u32,
    mut process: Box<dyn Process>,
    started: Instant,
    timeout: Duration,
    probe: impl Future<Output = io::Result<UnixStream>>,
    tail: &StderrTail,
) -> Result<Spawned, SpawnError> {
    let left = timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, probe).await {
        Ok(Ok(stream)) => {
            tracing::debug!(
                pid,
                us = started.elapsed().as_micros() as u64,
                "worker ready"
            );
            Ok(Spawned {
                pid,
                stream,
                process,
            })
        }
        failed => {
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {timeout:?}"),
            };
            let _ = process.signal(Signal::SIGKILL);
            let status = process.wait().await;
            let stderr = failure_report(status.ok(), tail).await;
            Err(SpawnError::NotReady {
                pid,
                reason,
                stderr,
            })
        }
    }
}

/// php-cgi answers FCGI_GET_VALUES and then closes that connection; the answer proves the
/// interpreter started (ini parsed, extensions loaded). The kept connection is opened after.
async fn probe(socket: &Path) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(socket).await?;
    probe_get_values(&mut s).await?;
    drop(s);
    UnixStream::connect(socket).await
}

/// Asks FCGI_MPXS_CONNS with FCGI_GET_VALUES on `stream` and reads the record header of
/// the answer: a worker that answers has started its engine.
pub async fn probe_get_values(stream: &mut UnixStream) -> io::Result<()> {
    use isola_fastcgi::record::{Header, HEADER_LEN};
    use isola_fastcgi::RecordType;
    let mut rec = bytes::BytesMut::new();
    isola_fastcgi::encode_get_values(&mut rec, [b"FCGI_MPXS_CONNS".as_slice()]);
    stream.write_all(&rec).await?;
    let mut head = [0u8; HEADER_LEN];
    stream.read_exact(&mut head).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "worker closed the connection (exited?)",
            )
        } else {
            e
        }
    })?;
    let header = Header::parse(&head).filter(|h| h.record_type == RecordType::GetValuesResult);
    let Some(header) = header else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer to get_values: type {}", head[1]),
        ));
    };
    // Read the answer whole, so a kept connection starts at a record boundary.
    let mut rest = vec![0u8; header.record_len() - HEADER_LEN];
    stream.read_exact(&mut rest).await?;
    Ok(())
}

/// Logs a worker's stderr line by line (target `isola::php`, with its pid), keeping the
/// last lines in `tail` for a start-up failure report.
pub async fn log_stderr<R: AsyncRead + Unpin>(stderr: R, pid: u32, tail: StderrTail) {
    let mut lines = BufReader::new(stderr).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        let mut text =
            String::from_utf8_lossy(&line[..line.len().min(MAX_STDERR_LINE)]).into_owned();
        text.truncate(text.trim_end().len());
        if text.is_empty() {
            continue;
        }
        tracing::warn!(target: "isola::php", pid, "{text}");
        if let Ok(mut t) = tail.lock() {
            if t.len() == STDERR_TAIL_LINES {
                t.pop_front();
            }
            t.push_back(text);
        }
    }
}

/// In the child before exec: resource limits, and the parent-death signal — if Isola dies
/// without stopping its workers (SIGKILL, abort), the kernel kills them. Linux delivers it
/// when the *thread* that spawned the child exits; workers are spawned from the runtime's
/// worker threads, which live as long as the server. It is set after the uid change (a
/// credential change clears it).
#[allow(unsafe_code)]
pub fn set_child_limits(cmd: &mut Command, files: Option<u64>, core: Option<u64>) {
    use nix::sys::resource::{setrlimit, Resource};
    // SAFETY: the closure runs in the child between fork and exec and only calls setrlimit(2)
    // and prctl(2), which are async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(n) = files {
                setrlimit(Resource::RLIMIT_NOFILE, n, n).map_err(io::Error::from)?;
            }
            if let Some(n) = core {
                setrlimit(Resource::RLIMIT_CORE, n, n).map_err(io::Error::from)?;
            }
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{Backtrace, Frame};

    fn frame(function: &str, file: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line,
        }
    }

    #[test]
    fn a_frame_reads_like_php_fpms_slowlog() {
        assert_eq!(
            frame("Waiter->nap", "/srv/www/slow.php", 7).to_string(),
            "Waiter->nap() /srv/www/slow.php:7"
        );
        assert_eq!(frame("???", "", 0).to_string(), "???() unknown:0");
    }

    #[test]
    fn a_reply_parses_into_frames_innermost_first() {
        let bt = Backtrace::parse(
            b"F\tsleep\t/srv/a.php\t12\nF\tWaiter::run\t/srv/a.php\t23\nF\trequire_once\t/srv/index.php\t5\nE\n",
        );
        assert_eq!(
            bt,
            Backtrace {
                frames: vec![
                    frame("sleep", "/srv/a.php", 12),
                    frame("Waiter::run", "/srv/a.php", 23),
                    frame("require_once", "/srv/index.php", 5),
                ],
                truncated: false,
            }
        );
        assert_eq!(Backtrace::parse(b"E\n"), Backtrace::default());
    }

    #[test]
    fn left_out_frames_and_cut_replies_count_as_truncated() {
        let more = Backtrace::parse(b"F\tf\t/a.php\t1\nM\nE\n");
        assert_eq!(more.frames.len(), 1);
        assert!(more.truncated);
        let cut = Backtrace::parse(b"F\tf\t/a.php\t1\nF\tg\t/a.p");
        assert_eq!(cut.frames, vec![frame("f", "/a.php", 1)]);
        assert!(cut.truncated);
    }

    #[test]
    fn malformed_lines_are_skipped_and_bad_bytes_kept_readable() {
        let bt = Backtrace::parse(
            b"F\tonly-two\t/a.php\nX\tjunk\nF\t\xff\t/b.php\tnotanumber\nE\nF\tafter\t/c.php\t9\n",
        );
        assert_eq!(bt.frames, vec![frame("\u{fffd}", "/b.php", 0)]);
        assert!(!bt.truncated);
    }
}
