//! Isola's side of the native backend: the zygote's life, spawning workers through it, and
//! watching each worker through a pidfd.
//!
//! Each worker also gets a trace socket, on which its tracer thread answers with the PHP
//! stack of the request it runs ([`Process::backtrace`]).
//!
//! Workers are Isola's children (the engine host forks them with CLONE_PARENT), but not
//! tokio's: the runtime only reaps what it spawned, so a worker's exit stays a zombie until
//! its [`PidfdProcess`] collects it, and a pidfd cannot name a recycled pid. The pool is the
//! only caller of [`PidfdProcess::signal`] and [`PidfdProcess::wait`].
//!
//! The zygote is started lazily, by the first spawn, and again by the first spawn after it
//! died; the pool's spawn back-off paces those restarts, and workers already forked keep
//! serving meanwhile.
//!
//! Never: decides when workers start or stop, or touches a worker's connection after the
//! start-up probe.
use isola_pool::backend::{self as seam, Backend, BoxFuture, Process, SpawnError, Spawned};
use nix::sys::signal::Signal;
use nix::sys::socket::{
    recv, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// How long the engine host may take to answer a fork command.
const FORK_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What the engine host is started with.
#[derive(Debug, Clone)]
pub struct NativeRecipe {
    /// The isola binary (resolved path), exec'd as `isola __php-zygote`.
    pub exe: PathBuf,
    /// ini settings, `name=value` each, applied like php-cgi's `-d`.
    pub ini: Vec<String>,
    /// php.ini to read instead of the engine library's own (php-cgi's `-c`).
    pub ini_file: Option<PathBuf>,
    /// Environment of the zygote and so of every worker (on top of a cleared one with PATH).
    pub env: Vec<(OsString, OsString)>,
    /// Run the zygote and its workers as this uid and gid; the zygote drops privileges
    /// before the engine starts, so opcache's memory and every worker belong to that user.
    pub credentials: Option<(u32, u32)>,
    /// RLIMIT_NOFILE of workers.
    pub rlimit_files: Option<u64>,
    /// RLIMIT_CORE of workers.
    pub rlimit_core: Option<u64>,
}

/// The native backend: workers forked from a warm zygote.
pub struct Native {
    recipe: NativeRecipe,
    zygote: tokio::sync::Mutex<Option<Zygote>>,
    note: Mutex<Option<String>>,
    /// The last engine host started, readable without the spawn lock (0: none yet).
    host_pid: std::sync::atomic::AtomicU32,
}

struct Zygote {
    pid: u32,
    child: Child,
    ctl: AsyncFd<OwnedFd>,
}

impl Native {
    /// A backend that starts its zygote on first use.
    pub fn new(recipe: NativeRecipe) -> Native {
        Native {
            recipe,
            zygote: tokio::sync::Mutex::new(None),
            note: Mutex::new(None),
            host_pid: Default::default(),
        }
    }

    /// Starts the zygote now (if it is not running) and describes it: whether the native
    /// backend can serve here at all, before a pool depends on it.
    pub async fn check(&self, timeout: Duration) -> Result<String, SpawnError> {
        let mut guard = self.zygote.lock().await;
        self.ensure(&mut guard, timeout).await?;
        Ok(self.status_note().unwrap_or_default())
    }

    async fn ensure<'a>(
        &self,
        slot: &'a mut Option<Zygote>,
        timeout: Duration,
    ) -> Result<&'a mut Zygote, SpawnError> {
        let dead = slot.as_mut().and_then(|z| match z.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some((z.pid, status.to_string())),
            Err(e) => Some((z.pid, e.to_string())),
        });
        if let Some((pid, why)) = dead {
            tracing::warn!(pid, "PHP engine host exited ({why}); starting a new one");
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(self.start_zygote(timeout).await?);
        }
        slot.as_mut()
            .ok_or_else(|| SpawnError::Unavailable("no engine host".into()))
    }

    async fn start_zygote(&self, timeout: Duration) -> Result<Zygote, SpawnError> {
        let started = Instant::now();
        let r = &self.recipe;
        let (ours, theirs) = seqpacket_pair("engine host control socket")?;
        let mut cmd = Command::new(&r.exe);
        cmd.arg("__php-zygote");
        let cgi = php_cgi_ini_layout();
        if let Some(f) = r.ini_file.as_ref().or(cgi.ini.as_ref()) {
            cmd.arg("--ini-file").arg(f);
        }
        if let Some((uid, gid)) = r.credentials {
            // Dropped inside the zygote, after exec: the isola binary need not be
            // executable by the pool's user.
            cmd.arg("--uid")
                .arg(uid.to_string())
                .arg("--gid")
                .arg(gid.to_string());
        }
        cmd.env_clear()
            .env("PATH", seam::WORKER_PATH)
            .envs(r.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &cgi.scan_dir {
            if !r.env.iter().any(|(k, _)| k == "PHP_INI_SCAN_DIR") {
                // Read by PHP at module start-up only; the engine host removes both again so
                // that workers' environment is the configured one.
                cmd.env("PHP_INI_SCAN_DIR", dir)
                    .env("ISOLA_UNSET_INI_SCAN_DIR", "1");
            }
        }
        seam::set_child_limits(&mut cmd, r.rlimit_files, r.rlimit_core);
        let spawned = cmd.spawn();
        drop(cmd);
        let mut child = spawned.map_err(|source| SpawnError::Exec {
            binary: r.exe.display().to_string(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let tail = seam::StderrTail::default();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(seam::log_stderr(stderr, pid, tail.clone()));
        }
        let ctl = register(ours, Interest::READABLE | Interest::WRITABLE).map_err(|e| {
            SpawnError::Socket {
                path: "engine host control socket".into(),
                source: e,
            }
        })?;
        let ini: String = std::iter::once("I".to_string())
            .chain(r.ini.iter().map(|e| format!("{e}\n")))
            .collect();
        let sent = send_packet(&ctl, ini.as_bytes()).await;
        let answer = match sent {
            Err(e) => format!("E sending the ini entries: {e}"),
            Ok(_) => match tokio::time::timeout(timeout, recv_msg(&ctl)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => format!("E {e}"),
                Err(_) => format!("E no answer within {timeout:?}"),
            },
        };
        match answer.strip_prefix("R ") {
            Some(ready) => {
                let note = describe_ready(ready, pid);
                tracing::info!(
                    pid,
                    ms = started.elapsed().as_millis() as u64,
                    "PHP engine host ready: {note}"
                );
                if ready.contains("opcache=0") {
                    tracing::warn!(
                        pid,
                        "opcache is off in the engine host: every worker compiles every script (load the opcache extension and set opcache.enable=1)"
                    );
                }
                if let Ok(mut n) = self.note.lock() {
                    *n = Some(note);
                }
                self.host_pid
                    .store(pid, std::sync::atomic::Ordering::Relaxed);
                Ok(Zygote { pid, child, ctl })
            }
            None => {
                let reason = answer.strip_prefix("E ").unwrap_or(&answer).to_string();
                let _ = child.start_kill();
                let status = child.wait().await;
                let stderr = seam::failure_report(status.ok(), &tail).await;
                Err(SpawnError::NotReady {
                    pid,
                    reason: format!("PHP engine host: {reason}"),
                    stderr,
                })
            }
        }
    }
}

fn describe_ready(ready: &str, pid: u32) -> String {
    let mut parts = ready.split_whitespace();
    let version = parts.next().unwrap_or("?");
    let opcache = if ready.contains("opcache=1") {
        "on"
    } else {
        "off"
    };
    let ini = match ready.split_once(" ini=") {
        Some((_, path)) if !path.is_empty() => path,
        _ => "none",
    };
    format!("PHP {version} (embed SAPI), opcache {opcache}, php.ini {ini}, engine host pid {pid}")
}

/// php-cgi's configuration files where this PHP build keeps one per SAPI (Debian's
/// `/etc/php/8.2/cgi/php.ini` and `conf.d/` beside `cli/`), so that a site moving between the
/// php-cgi and the native backend keeps its php.ini. `None` parts fall back to the engine
/// library's own (`/etc/php/8.2/embed/`).
struct IniLayout {
    ini: Option<PathBuf>,
    scan_dir: Option<PathBuf>,
}

fn php_cgi_ini_layout() -> IniLayout {
    let sibling = |path: Option<&str>, tail: &str| -> Option<PathBuf> {
        let base = path?.strip_suffix(tail)?;
        Some(PathBuf::from(format!("{base}/cgi")))
    };
    let ini =
        sibling(option_env!("ISOLA_PHP_INI_PATH"), "/cli").filter(|d| d.join("php.ini").is_file());
    let scan_dir = sibling(option_env!("ISOLA_PHP_INI_DIR"), "/cli/conf.d")
        .map(|d| d.join("conf.d"))
        .filter(|d| d.is_dir());
    IniLayout { ini, scan_dir }
}

/// Registers a descriptor we own with the reactor.
#[allow(unsafe_code)]
fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes the OwnedFd, so the descriptor stays open and names the
    // same file for as long as it is registered.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(io::Error::from)
}

/// A `SOCK_SEQPACKET` pair: our end non-blocking (for the reactor), theirs blocking (the
/// engine host's side waits on it); `what` names it in the error.
fn seqpacket_pair(what: &str) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .map_err(|e| SpawnError::Socket {
        path: what.into(),
        source: e.into(),
    })?;
    set_blocking(&theirs);
    Ok((ours, theirs))
}

fn set_blocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
        let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags));
    }
}

async fn recv_msg(ctl: &AsyncFd<OwnedFd>) -> io::Result<String> {
    let mut buf = [0u8; 1024];
    let n = recv_packet(ctl, &mut buf, "the engine host exited").await?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// Sends one message on a `SOCK_SEQPACKET` socket.
async fn send_packet(sock: &AsyncFd<OwnedFd>, msg: &[u8]) -> io::Result<usize> {
    sock.async_io(Interest::WRITABLE, |fd| {
        nix::sys::socket::send(fd.as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)
    })
    .await
}

/// Receives one message into `buf`; the peer's end closing is an error saying `gone`.
async fn recv_packet(
    sock: &AsyncFd<OwnedFd>,
    buf: &mut [u8],
    gone: &'static str,
) -> io::Result<usize> {
    let n = sock
        .async_io(Interest::READABLE, |fd| {
            recv(fd.as_raw_fd(), buf, MsgFlags::empty()).map_err(io::Error::from)
        })
        .await?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, gone));
    }
    Ok(n)
}

impl Native {
    /// Forks a worker with `command`: `S` (classic), or `W` and a worker script's boot params.
    fn fork_worker<'a>(
        &'a self,
        timeout: Duration,
        command: &'a [u8],
    ) -> BoxFuture<'a, Result<Spawned, SpawnError>> {
        Box::pin(async move {
            let started = Instant::now();
            // One spawn at a time per zygote: its answers come back in order.
            let mut guard = self.zygote.lock().await;
            let zygote = self.ensure(&mut guard, timeout).await?;
            let (ours, theirs) =
                std::os::unix::net::UnixStream::pair().map_err(|source| SpawnError::Socket {
                    path: "worker socket pair".into(),
                    source,
                })?;
            let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| {
                SpawnError::Socket {
                    path: "worker stderr pipe".into(),
                    source: e.into(),
                }
            })?;
            // The worker's tracer thread answers on this one (slow-request backtraces).
            let (trace_ours, trace_theirs) = seqpacket_pair("worker trace socket")?;
            let fds = [
                theirs.as_raw_fd(),
                err_w.as_raw_fd(),
                trace_theirs.as_raw_fd(),
            ];
            let sent = zygote
                .ctl
                .async_io(Interest::WRITABLE, |fd| {
                    let iov = [io::IoSlice::new(command)];
                    sendmsg::<()>(
                        fd.as_raw_fd(),
                        &iov,
                        &[ControlMessage::ScmRights(&fds)],
                        MsgFlags::MSG_NOSIGNAL,
                        None,
                    )
                    .map_err(io::Error::from)
                })
                .await;
            drop(theirs);
            drop(err_w);
            drop(trace_theirs);
            // A fork answers in about a millisecond; a zygote silent for longer is stopped or
            // wedged, and every spawn queued behind this lock would wait for it too.
            let fork_timeout = timeout.min(FORK_ANSWER_TIMEOUT);
            let answer = match sent {
                Ok(_) => match tokio::time::timeout(fork_timeout, recv_msg(&zygote.ctl)).await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {fork_timeout:?}"),
                    )),
                },
                Err(e) => Err(e),
            };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    // The zygote is gone or stuck: dropping it kills it, and the next spawn
                    // starts a new one.
                    let zpid = zygote.pid;
                    tracing::warn!(
                        pid = zpid,
                        "PHP engine host did not fork a worker ({e}); replacing it"
                    );
                    *guard = None;
                    return Err(SpawnError::NotReady {
                        pid: zpid,
                        reason: format!("PHP engine host did not fork a worker: {e}"),
                        stderr: String::new(),
                    });
                }
            };
            drop(guard);
            let pid: u32 = match answer.strip_prefix("P ").map(str::parse) {
                Some(Ok(pid)) => pid,
                _ => {
                    return Err(SpawnError::NotReady {
                        pid: 0,
                        reason: format!(
                            "PHP engine host refused to fork: {}",
                            answer.strip_prefix("E ").unwrap_or(&answer)
                        ),
                        stderr: String::new(),
                    })
                }
            };
            let mut process = PidfdProcess::open(pid).map_err(|e| SpawnError::NotReady {
                pid,
                reason: format!("pidfd_open: {e}"),
                stderr: String::new(),
            })?;
            match register(trace_ours, Interest::READABLE | Interest::WRITABLE) {
                Ok(fd) => process.trace = Some(fd),
                Err(e) => tracing::warn!(pid, "worker backtraces unavailable: {e}"),
            }
            let tail = seam::StderrTail::default();
            match tokio::net::unix::pipe::Receiver::from_owned_fd(err_r) {
                Ok(rx) => {
                    tokio::spawn(seam::log_stderr(rx, pid, tail.clone()));
                }
                Err(e) => tracing::warn!(pid, "worker stderr not read: {e}"),
            }
            let probed = async {
                ours.set_nonblocking(true)?;
                let mut stream = UnixStream::from_std(ours)?;
                seam::probe_get_values(&mut stream).await?;
                Ok::<_, io::Error>(stream)
            };
            seam::await_ready(pid, Box::new(process), started, timeout, probed, &tail).await
        })
    }
}

impl Backend for Native {
    fn spawn(&self, _n: u64, timeout: Duration) -> BoxFuture<'_, Result<Spawned, SpawnError>> {
        self.fork_worker(timeout, b"S")
    }

    fn name(&self) -> &'static str {
        "native"
    }

    fn status_note(&self) -> Option<String> {
        self.note.lock().ok().and_then(|n| n.clone())
    }

    fn host_pids(&self) -> Vec<u32> {
        match self.host_pid.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Vec::new(),
            pid => vec![pid],
        }
    }

    fn honours_abort(&self) -> bool {
        true
    }

    fn sends_interim(&self) -> bool {
        true
    }
}

/// A worker known by a pidfd: waits and signals can never reach a recycled pid.
pub struct PidfdProcess {
    fd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
    /// The worker's trace socket (its tracer thread answers `T <depth>`).
    trace: Option<AsyncFd<OwnedFd>>,
}

impl PidfdProcess {
    /// Opens a pidfd for `pid`, which must be a child of this process not yet reaped.
    #[allow(unsafe_code)]
    pub fn open(pid: u32) -> io::Result<PidfdProcess> {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just returned to us and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        Ok(PidfdProcess {
            fd: register(fd, Interest::READABLE)?,
            status: None,
            trace: None,
        })
    }

    fn try_reap(fd: &OwnedFd) -> io::Result<Option<ExitStatus>> {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        let st = waitid(
            Id::PIDFd(fd.as_fd()),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
        )
        .map_err(io::Error::from)?;
        let raw = match st {
            WaitStatus::Exited(_, code) => (code & 0xff) << 8,
            WaitStatus::Signaled(_, sig, core) => sig as i32 | if core { 0x80 } else { 0 },
            _ => return Ok(None),
        };
        Ok(Some(ExitStatus::from_raw(raw)))
    }
}

impl Process for PidfdProcess {
    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>> {
        Box::pin(async move {
            loop {
                if let Some(s) = self.status {
                    return Ok(s);
                }
                let mut ready = self.fd.readable().await?;
                if let Some(s) = Self::try_reap(ready.get_inner())? {
                    drop(ready);
                    self.status = Some(s);
                    return Ok(s);
                }
                ready.clear_ready();
            }
        })
    }

    #[allow(unsafe_code)]
    fn signal(&mut self, sig: Signal) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // SAFETY: pidfd_send_signal(2) on our pidfd, no siginfo, no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.get_ref().as_raw_fd(),
                sig as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // ESRCH: it exited already; wait() will collect it.
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }

    fn backtrace(&mut self, depth: u32) -> Option<BoxFuture<'_, io::Result<seam::Backtrace>>> {
        if self.status.is_some() {
            return None;
        }
        let trace = self.trace.as_ref()?;
        Some(Box::pin(async move {
            let mut buf = vec![0u8; seam::MAX_BACKTRACE_BYTES + 1];
            // A reply that arrived after an earlier ask gave up waiting is stale: drop it.
            while recv(trace.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).is_ok_and(|n| n > 0) {}
            send_packet(trace, format!("T {depth}").as_bytes()).await?;
            let n = recv_packet(trace, &mut buf, "the worker has no tracer").await?;
            Ok(seam::Backtrace::parse(&buf[..n]))
        }))
    }
}

/// Workers of the same engine host that run a worker script: it boots once per process and
/// serves requests in a loop (`frankenphp_handle_request`). They share the host, and so its
/// opcache, with the site's classic workers.
pub struct NativeWorker {
    native: std::sync::Arc<Native>,
    command: Vec<u8>,
}

impl NativeWorker {
    /// Workers of `native` that boot with these CGI params (SCRIPT_FILENAME, DOCUMENT_ROOT,
    /// MAX_REQUESTS...) as the worker script's own request.
    pub fn new(native: std::sync::Arc<Native>, boot: &[(&str, &str)]) -> NativeWorker {
        let mut command = b"W".to_vec();
        for (k, v) in boot {
            isola_fastcgi::params::put_pair(&mut command, k.as_bytes(), v.as_bytes());
        }
        NativeWorker { native, command }
    }
}

impl Backend for NativeWorker {
    fn spawn(&self, _n: u64, timeout: Duration) -> BoxFuture<'_, Result<Spawned, SpawnError>> {
        self.native.fork_worker(timeout, &self.command)
    }

    fn name(&self) -> &'static str {
        "native"
    }

    fn status_note(&self) -> Option<String> {
        self.native.status_note()
    }

    fn host_pids(&self) -> Vec<u32> {
        // Counted once, by the site's classic pool.
        Vec::new()
    }

    fn honours_abort(&self) -> bool {
        true
    }

    fn sends_interim(&self) -> bool {
        true
    }

    fn worker_mode(&self) -> bool {
        true
    }
}
