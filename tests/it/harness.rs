//! Starts the real `isola` binary on a free port against real php-cgi, and checks on stop
//! that it exited cleanly and left no process behind.
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    pub addr: SocketAddr,
    /// The line the server printed when ready (it holds the URL).
    pub ready_line: String,
    /// Further stdout lines (the admin URL when enabled).
    more_stdout: Arc<Mutex<Vec<String>>>,
    pub docroot: PathBuf,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    _site: Option<tempfile::TempDir>,
    /// The embedded store's default data directory (`STATE_DIRECTORY`): one per server, so
    /// servers running in parallel never share or lock each other out of one.
    _state: tempfile::TempDir,
}

/// Children of the test process that some test still owns and will reap (a server not yet
/// stopped or dropped, a reference nginx): a zombie among them is not a leak, as another
/// test's server may have died and wait there for its owner to reap it.
static OWNED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Records that a test owns child `pid` and will wait for it.
pub fn own(pid: u32) {
    OWNED.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

/// Records that child `pid` has been waited for.
pub fn disown(pid: u32) {
    OWNED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pid);
}

/// A private copy of tests/php with the hostile files git cannot hold (a `.git` folder).
pub fn fixture_site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/php"),
        dir.path(),
    );
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/config"), "[core] GIT-SECRET\n").unwrap();
    std::fs::write(dir.path().join(".env"), "SECRET=DOTENV-SECRET\n").unwrap();
    std::fs::create_dir_all(dir.path().join(".hidden")).unwrap();
    std::fs::write(dir.path().join(".hidden/x.txt"), "HIDDEN-SECRET\n").unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

impl Server {
    /// The fixture site with these extra flags.
    pub fn start(args: &[&str]) -> Server {
        let site = fixture_site();
        let docroot = site.path().to_path_buf();
        Self::start_in(&docroot, args, Some(site))
    }

    pub fn start_in(docroot: &Path, args: &[&str], site: Option<tempfile::TempDir>) -> Server {
        Self::launch(Some(docroot), docroot, args, site, &[])
    }

    /// The fixture site with these flags and environment variables (after the harness's own).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let site = fixture_site();
        let docroot = site.path().to_path_buf();
        Self::launch(Some(&docroot), &docroot, args, Some(site), env)
    }

    /// `isola serve ARGS` with no docroot argument (the config names the sites); `dir` is
    /// what [`Server::docroot`] reports.
    pub fn start_without_docroot(
        dir: &Path,
        args: &[&str],
        site: Option<tempfile::TempDir>,
    ) -> Server {
        Self::launch(None, dir, args, site, &[])
    }

    fn launch(
        docroot_arg: Option<&Path>,
        docroot: &Path,
        args: &[&str],
        site: Option<tempfile::TempDir>,
        env: &[(&str, &str)],
    ) -> Server {
        let state = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_isola"));
        cmd.env("STATE_DIRECTORY", state.path());
        cmd.envs(env.iter().copied());
        cmd.arg("serve");
        if let Some(d) = docroot_arg {
            cmd.arg(d);
        }
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start isola");
        own(child.id());
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let more_stdout = Arc::new(Mutex::new(Vec::new()));
        let more = more_stdout.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for l in lines.map_while(Result::ok) {
                more.lock().unwrap().push(l);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("isola did not start; stderr:\n{}", stderr.lock().unwrap());
            }
        };
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"));
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        Server {
            addr,
            ready_line: line.clone(),
            more_stdout,
            docroot: docroot.to_path_buf(),
            child: Some(child),
            stderr,
            _site: site,
            _state: state,
        }
    }

    /// The admin listener's address, from its stdout line.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            let lines = self.more_stdout.lock().unwrap().clone();
            if let Some(l) = lines.iter().find(|l| l.contains("admin")) {
                let url = l.split_whitespace().find(|w| w.starts_with("http://"))?;
                return url
                    .trim_start_matches("http://")
                    .split('/')
                    .next()?
                    .parse()
                    .ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The first stdout line after the ready line that contains `needle`, waiting up to 5 s
    /// for it.
    pub fn stdout_line_containing(&self, needle: &str) -> Option<String> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            let lines = self.more_stdout.lock().unwrap().clone();
            if let Some(l) = lines.into_iter().find(|l| l.contains(needle)) {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Stdout after the ready line: the admin and TLS lines, then the access log (unless
    /// it goes to a file).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.more_stdout.lock().unwrap().clone()
    }

    /// Waits until the log (stderr) or the access log (stdout) contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if self.stderr().contains(needle)
                || self.stdout_lines().iter().any(|l| l.contains(needle))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The access log line (stdout) holding `needle` (a request id), once written.
    pub fn access_line(&self, needle: &str) -> String {
        assert!(
            self.wait_for_log(needle, Duration::from_secs(5)),
            "no {needle} logged"
        );
        self.stdout_lines()
            .into_iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} is not in the access log"))
    }

    /// SIGTERM, wait for exit, and check that no process the server started outlived it
    /// (its whole process tree, recorded just before the signal, matched by pid and start
    /// time so a reused pid is not mistaken for a survivor), and that the test process holds
    /// no zombie child.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id();
        let tree = descendants_of(pid);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(40)).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("isola did not stop within 40 s; stderr:\n{}", self.stderr());
        });
        disown(pid);
        let t = Instant::now();
        let mut alive: Vec<(u32, u64)> = tree.clone();
        while !alive.is_empty() && t.elapsed() < Duration::from_secs(5) {
            alive.retain(|&(p, start)| start_time(p) == Some(start));
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            alive.is_empty(),
            "processes {alive:?} outlived isola (pid {pid}, tree {tree:?}); stderr:\n{}",
            self.stderr()
        );
        assert_no_lasting_zombies_of_this_process();
        status
    }
}

impl Server {
    /// `kill -9`: no chance to clean up. Its workers die with it (they are told to when
    /// their parent dies), which is checked.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id();
        let tree = descendants_of(pid);
        let _ = child.kill();
        let _ = child.wait();
        disown(pid);
        let t = Instant::now();
        let mut alive = tree.clone();
        while !alive.is_empty() && t.elapsed() < Duration::from_secs(5) {
            alive.retain(|&(p, start)| start_time(p) == Some(start));
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            alive.is_empty(),
            "workers {alive:?} outlived a killed isola"
        );
    }
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after the last `)`.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n - 3).map(str::to_string)
}

/// When `pid` started (clock ticks after boot), or None if it no longer exists.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// Every process below `pid` (children, their children, ...), with start times.
pub fn descendants_of(pid: u32) -> Vec<(u32, u64)> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let (Some(pp), Some(st)) = (
            stat_field(p, 4).and_then(|v| v.parse::<u32>().ok()),
            start_time(p),
        ) {
            parent_of.push((p, pp, st));
        }
    }
    let mut found: Vec<(u32, u64)> = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp, st) in &parent_of {
            if pp == parent && !found.iter().any(|&(f, _)| f == p) {
                found.push((p, st));
                frontier.push(p);
            }
        }
    }
    found
}

/// Zombie children of the test process that no test owns and that stay zombies: a child
/// reaped by a blocking wait (`Command::output`) is a zombie for microseconds, a leaked one
/// stays.
pub fn assert_no_lasting_zombies_of_this_process() {
    let me = std::process::id();
    let zombies = || -> Vec<(u32, u64)> {
        let owned = OWNED.lock().unwrap_or_else(|e| e.into_inner()).clone();
        zombies_of(me)
            .into_iter()
            .filter(|p| !owned.contains(p))
            .filter_map(|p| Some((p, start_time(p)?)))
            .collect()
    };
    let mut lasting = zombies();
    let t = Instant::now();
    while !lasting.is_empty() && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
        let now = zombies();
        lasting.retain(|z| now.contains(z));
    }
    assert!(
        lasting.is_empty(),
        "zombie children of the test process: {lasting:?}"
    );
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            if wait_timeout(&mut c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
            disown(c.id());
        }
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Worker processes of `pid` (its direct children but the native engine host), from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            // Fields after the command name, which is in parentheses and may hold spaces.
            if let Some((name, rest)) = stat.rsplit_once(')') {
                // The native backend's engine host is a child too, but not a worker (while it
                // starts, before it names itself, only its arguments tell).
                let engine_host = name.ends_with("(isola-zygote")
                    || (!name.ends_with("(isola-php")
                        && std::fs::read(format!("/proc/{p}/cmdline"))
                            .is_ok_and(|c| c.windows(12).any(|w| w == b"__php-zygote")));
                if engine_host {
                    continue;
                }
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.get(1).and_then(|pp| pp.parse::<u32>().ok()) == Some(pid) {
                    kids.push(p);
                }
            }
        }
    }
    kids
}

/// Children of `pid` in state Z (zombies).
pub fn zombies_of(pid: u32) -> Vec<u32> {
    children_of(pid)
        .into_iter()
        .filter(|k| {
            std::fs::read_to_string(format!("/proc/{k}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

impl Server {
    /// Like [`Server::with_config`], with the admin listener on a free port.
    pub fn with_admin(toml: &str) -> (Server, SocketAddr) {
        let site = fixture_site();
        let cfg = site.path().join("isola.toml");
        std::fs::write(&cfg, toml).unwrap();
        let docroot = site.path().to_path_buf();
        let s = Self::start_in(
            &docroot,
            &["--config", cfg.to_str().unwrap(), "--admin", "127.0.0.1:0"],
            Some(site),
        );
        let admin = s.admin_addr().expect("admin address printed");
        (s, admin)
    }

    /// The fixture site served with this isola.toml (written into the site).
    pub fn with_config(toml: &str) -> Server {
        Self::with_config_and(toml, &[])
    }

    /// Like [`Server::with_config`], with extra flags.
    pub fn with_config_and(toml: &str, args: &[&str]) -> Server {
        let site = fixture_site();
        let cfg = site.path().join("isola.toml");
        std::fs::write(&cfg, toml).unwrap();
        let docroot = site.path().to_path_buf();
        let mut all = vec!["--config", cfg.to_str().unwrap()];
        all.extend_from_slice(args);
        Self::start_in(&docroot, &all, Some(site))
    }
}

/// The slow-request backtrace lines `log` holds for request `id` (all of them, any request,
/// when `id` is empty), in order.
pub fn backtrace_of<'a>(log: &'a str, id: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains("slow request backtrace") && l.contains(&format!("request_id={id}")))
        .collect()
}

/// Asserts that the backtrace logged for request `id` is exactly `want`, frame by frame
/// (each `#N: function() file:line`).
pub fn assert_backtrace(log: &str, id: &str, want: &[String]) {
    let frames = backtrace_of(log, id);
    assert_eq!(frames.len(), want.len(), "{frames:#?}\n{log}");
    for (line, want) in frames.iter().zip(want) {
        assert!(
            line.contains(want.as_str()),
            "{line:?} should hold {want:?}"
        );
    }
}
