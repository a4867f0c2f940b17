//! How a php-cgi worker is started: command line, environment, private socket, start-up
//! probe.
//!
//! The worker's listening socket is handed to php-cgi as its fd 0, the FastCGI convention
//! (`FCGI_LISTENSOCK_FILENO`) that php-cgi detects by itself: no port, no race waiting for a
//! socket file to appear, and the socket lives in a directory only Isola's user can enter.
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// PATH given to workers; their environment is otherwise cleared (php-fpm's `clear_env`).
const WORKER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
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
}

/// A started worker whose start-up probe succeeded.
pub(crate) struct Spawned {
    pub child: Child,
    pub pid: u32,
    pub stream: UnixStream,
    pub socket: PathBuf,
}

/// Why a worker did not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("cannot start {binary}: {source}")]
    Exec { binary: String, source: io::Error },
    #[error("cannot create worker socket {path}: {source}")]
    Socket { path: String, source: io::Error },
    #[error("php-cgi (pid {pid}) did not become ready: {reason}{stderr}")]
    NotReady {
        pid: u32,
        reason: String,
        stderr: String,
    },
}

impl PhpCgi {
    /// Starts worker `n` and waits (up to `timeout`) for it to answer FCGI_GET_VALUES.
    pub(crate) async fn spawn(&self, n: u64, timeout: Duration) -> Result<Spawned, SpawnError> {
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
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, pid, tail.clone()));
        }
        match tokio::time::timeout(timeout, probe(&socket)).await {
            Ok(Ok(stream)) => {
                tracing::debug!(
                    pid,
                    ms = started.elapsed().as_millis() as u64,
                    "worker ready"
                );
                Ok(Spawned {
                    child,
                    pid,
                    stream,
                    socket,
                })
            }
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {timeout:?}"),
                };
                let _ = child.start_kill();
                let status = child.wait().await;
                let _ = std::fs::remove_file(&socket);
                // Give the stderr reader a moment to collect the last lines.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let lines: Vec<String> = tail
                    .lock()
                    .map(|t| t.iter().cloned().collect())
                    .unwrap_or_default();
                let mut stderr = match status {
                    Ok(s) => format!(" (exit: {s})"),
                    Err(_) => String::new(),
                };
                if !lines.is_empty() {
                    stderr.push_str("; stderr: ");
                    stderr.push_str(&lines.join(" | "));
                }
                Err(SpawnError::NotReady {
                    pid,
                    reason,
                    stderr,
                })
            }
        }
    }
}

/// php-cgi answers FCGI_GET_VALUES and then closes that connection; the answer proves the
/// interpreter started (ini parsed, extensions loaded). The kept connection is opened after.
async fn probe(socket: &Path) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(socket).await?;
    // GET_VALUES, request id 0, one pair: FCGI_MPXS_CONNS with an empty value (15+2 bytes,
    // padded to 24).
    let mut rec = vec![1u8, 9, 0, 0, 0, 17, 7, 0, 15, 0];
    rec.extend_from_slice(b"FCGI_MPXS_CONNS");
    rec.extend_from_slice(&[0; 7]);
    s.write_all(&rec).await?;
    let mut head = [0u8; 8];
    s.read_exact(&mut head).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "worker closed the connection (exited?)",
            )
        } else {
            e
        }
    })?;
    if head[0] != 1 || head[1] != 10 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer to get_values: type {}", head[1]),
        ));
    }
    drop(s);
    UnixStream::connect(socket).await
}

async fn log_stderr(
    stderr: tokio::process::ChildStderr,
    pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
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
fn set_child_limits(cmd: &mut Command, files: Option<u64>, core: Option<u64>) {
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
