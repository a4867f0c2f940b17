//! `[store]`: the embedded Redis-compatible store, reached by real PHP (phpredis) in the
//! workers, and PHP sessions kept in it.
use crate::harness::{fixture_site, Server};
use crate::http::{get, request};

const COUNTER: &str = r#"<?php
$url = getenv('ISOLA_STORE');
$r = new Redis();
$r->connect(substr($url, strlen('unix://')));
echo $r->incr('hits'), ' ', getmypid();
"#;

const SESSION: &str = r#"<?php
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
$r = new Redis();
$r->connect(substr(getenv('ISOLA_STORE'), strlen('unix://')));
echo $_SESSION['n'], ' ', ini_get('session.save_handler'), ' ', count($r->keys('PHPREDIS_SESSION:*'));
"#;

fn serve(toml: &str) -> Server {
    let site = fixture_site();
    std::fs::write(site.path().join("counter.php"), COUNTER).unwrap();
    std::fs::write(site.path().join("session.php"), SESSION).unwrap();
    std::fs::write(
        site.path().join("where.php"),
        "<?php echo getenv('ISOLA_STORE') ?: 'none';",
    )
    .unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, toml).unwrap();
    let docroot = site.path().to_path_buf();
    Server::start_in(&docroot, &["--config", cfg.to_str().unwrap()], Some(site))
}

#[test]
fn workers_share_the_embedded_store() {
    let s = serve("[pool]\nmax_children = 3\n");
    let addr = s.addr;
    let threads: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| get(addr, "/counter.php").text())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut counts = Vec::new();
    let mut pids = std::collections::HashSet::new();
    for t in threads {
        for line in t.join().unwrap() {
            let (n, pid) = line.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            counts.push(n.parse::<u64>().unwrap());
            pids.insert(pid.to_string());
        }
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=60).collect::<Vec<_>>(),
        "every INCR counted once"
    );
    assert!(pids.len() > 1, "one worker served everything: {pids:?}");
    assert!(s.stop().success());
}

/// `sudo -u www-data isola serve DIR` keeps root's HOME: a default data directory this user
/// cannot create must leave a working store in memory with a warning, not a server that
/// refuses to start.
#[test]
fn an_unusable_default_data_directory_keeps_the_store_in_memory() {
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let state = blocker.path().join("state");
    let s = Server::start_with_env(&[], &[("STATE_DIRECTORY", state.to_str().unwrap())]);
    std::fs::write(s.docroot.join("counter.php"), COUNTER).unwrap();
    let first = get(s.addr, "/counter.php").text();
    let second = get(s.addr, "/counter.php").text();
    assert!(first.starts_with("1 "), "{first}");
    assert!(second.starts_with("2 "), "{second}");
    assert!(
        s.wait_for_log(
            "keeping data in memory only",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        s.stderr()
    );
    assert!(s.stop().success());
}

/// A data directory written in the config is a promise of persistence: failing it stops the
/// start with the reason.
#[test]
fn an_unusable_configured_data_directory_refuses_to_start() {
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let dir = blocker.path().join("state");
    let site = fixture_site();
    let cfg = site.path().join("isola.toml");
    std::fs::write(
        &cfg,
        format!("[store]\ndir = {:?}\n", dir.to_str().unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg(site.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store"), "{err}");
}

#[test]
fn sessions_live_in_the_store() {
    let s = serve("[pool]\nmax_children = 2\n");
    let r = get(s.addr, "/session.php");
    let cookie = r.cookie();
    // The session is written when the first script ends: the store holds it afterwards.
    assert!(r.text().starts_with("1 redis 0"), "{}", r.text());
    for n in 2..=5 {
        let r = request(
            s.addr,
            "GET",
            "/session.php",
            &[&format!("Cookie: {cookie}")],
            b"",
        );
        assert!(
            r.text().starts_with(&format!("{n} redis 1")),
            "{}",
            r.text()
        );
    }
    assert!(s.stop().success());
}

#[test]
fn the_store_can_be_off() {
    let s = serve("[store]\nbackend = \"off\"\n[pool]\nmax_children = 1\n");
    assert_eq!(get(s.addr, "/where.php").text(), "none");
    assert!(s.stop().success());
}

#[test]
fn store_figures_in_status_and_metrics() {
    let (s, admin) = Server::with_admin("[pool]\nmax_children = 1\n");
    std::fs::write(s.docroot.join("counter.php"), COUNTER).unwrap();
    for _ in 0..3 {
        assert_eq!(get(s.addr, "/counter.php").status, 200);
    }
    let t = std::time::Instant::now();
    loop {
        let j = get(admin, "/status").json();
        // Isola's own keys (its heartbeat, its queues' registry) sit next to the counter.
        if j["store"]["keys"].as_u64() >= Some(1)
            && j["store"]["commands_processed"].as_u64() >= Some(3)
        {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "store figures: {}",
            j["store"]
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Durability and memory figures: no limit is set, nothing was evicted, the log (on by
    // default) holds the counter's writes and has never failed.
    let j = get(admin, "/status").json();
    let st = &j["store"];
    assert_eq!(st["maxmemory_bytes"], 0, "{st}");
    assert_eq!(st["evicted_keys"], 0, "{st}");
    assert_eq!(st["aof"]["enabled"], true, "{st}");
    assert_eq!(st["aof"]["last_write_ok"], true, "{st}");
    assert!(st["aof"]["rewrite_in_progress"].is_boolean(), "{st}");
    assert!(st["aof"]["rewrites"].is_u64(), "{st}");
    assert!(st["aof"]["size_bytes"].as_u64() > Some(0), "{st}");
    let m = get(admin, "/metrics").text();
    let metric = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert!(metric("isola_store_keys") >= Some(1), "{m}");
    assert!(
        m.contains("# TYPE isola_store_commands_total counter"),
        "{m}"
    );
    assert_eq!(metric("isola_store_evicted_keys_total"), Some(0), "{m}");
    assert_eq!(metric("isola_store_maxmemory_bytes"), Some(0), "{m}");
    assert_eq!(metric("isola_store_aof_enabled"), Some(1), "{m}");
    assert_eq!(metric("isola_store_aof_last_write_ok"), Some(1), "{m}");
    assert!(
        metric("isola_store_aof_rewrite_in_progress") <= Some(1),
        "{m}"
    );
    assert!(metric("isola_store_aof_rewrites_total").is_some(), "{m}");
    assert!(metric("isola_store_aof_size_bytes") > Some(0), "{m}");
    assert!(s.stop().success());
}

/// A minimal RESP client over TCP: one command, one reply line (or bulk), for the
/// durability tests below.
struct Resp(std::io::BufReader<std::net::TcpStream>);

impl Resp {
    fn connect(addr: std::net::SocketAddr) -> std::io::Result<Resp> {
        let s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        Ok(Resp(std::io::BufReader::new(s)))
    }

    /// Sends `args`; the reply as text (`(nil)` for a nil bulk), or an I/O error.
    fn cmd(&mut self, args: &[&str]) -> std::io::Result<String> {
        use std::io::{BufRead, Read, Write};
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        if self.0.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end().to_string();
        if let Some(n) = line.strip_prefix('$') {
            let n: i64 = n.parse().unwrap();
            if n < 0 {
                return Ok("(nil)".into());
            }
            let mut b = vec![0u8; n as usize + 2];
            self.0.read_exact(&mut b)?;
            b.truncate(n as usize);
            return Ok(String::from_utf8_lossy(&b).into_owned());
        }
        Ok(line)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An Isola whose store listens on TCP and keeps its log in `dir`.
fn durable(dir: &std::path::Path, port: u16, extra: &str) -> Server {
    serve(&format!(
        "[pool]\nmax_children = 1\n[store]\nlisten = \"127.0.0.1:{port}\"\ndir = \"{}\"\n{extra}",
        dir.display()
    ))
}

fn store_addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// Writes SET/INCR in a loop until the connection dies; returns every acknowledged write
/// with the time of its acknowledgement.
fn write_until_killed(port: u16) -> std::thread::JoinHandle<Vec<(u64, std::time::Instant)>> {
    std::thread::spawn(move || {
        let mut c = Resp::connect(store_addr(port)).unwrap();
        let mut acked = Vec::new();
        for i in 0u64.. {
            let key = format!("k{i}");
            match c.cmd(&["SET", &key, &format!("v{i}")]) {
                Ok(r) if r == "+OK" => {}
                _ => break,
            }
            match c.cmd(&["INCR", "counter"]) {
                Ok(r) if r.starts_with(':') => {
                    assert_eq!(r, format!(":{}", i + 1));
                    acked.push((i, std::time::Instant::now()));
                }
                _ => break,
            }
        }
        acked
    })
}

fn check_acknowledged(
    port: u16,
    acked: &[(u64, std::time::Instant)],
    must: impl Fn(&std::time::Instant) -> bool,
) {
    let mut c = Resp::connect(store_addr(port)).unwrap();
    let counter: u64 = c.cmd(&["GET", "counter"]).unwrap().parse().unwrap_or(0);
    let mut checked = 0;
    for (i, at) in acked {
        if !must(at) {
            continue;
        }
        checked += 1;
        assert_eq!(
            c.cmd(&["GET", &format!("k{i}")]).unwrap(),
            format!("v{i}"),
            "acknowledged write k{i} lost"
        );
        assert!(
            counter > *i,
            "acknowledged INCR {} lost: counter {counter}",
            i + 1
        );
    }
    assert!(checked > 100, "too few writes checked: {checked}");
}

#[test]
fn acknowledged_writes_survive_kill_9_with_appendfsync_always() {
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = durable(state.path(), port, "appendfsync = \"always\"\n");
    let writer = write_until_killed(port);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    s.kill9();
    let acked = writer.join().unwrap();
    let s = durable(state.path(), port, "appendfsync = \"always\"\n");
    check_acknowledged(port, &acked, |_| true);
    assert!(s.stop().success());
}

#[test]
fn everysec_loses_at_most_about_a_second_after_kill_9() {
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = durable(state.path(), port, "");
    let writer = write_until_killed(port);
    std::thread::sleep(std::time::Duration::from_millis(3000));
    let killed = std::time::Instant::now();
    s.kill9();
    let acked = writer.join().unwrap();
    let s = durable(state.path(), port, "");
    check_acknowledged(port, &acked, |at| {
        killed.duration_since(*at) > std::time::Duration::from_millis(1500)
    });
    assert!(s.stop().success());
}

#[test]
fn torn_log_tail_is_repaired_with_a_warning() {
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = durable(state.path(), port, "appendfsync = \"always\"\n");
    let mut c = Resp::connect(store_addr(port)).unwrap();
    assert_eq!(c.cmd(&["SET", "kept", "yes"]).unwrap(), "+OK");
    s.kill9();
    let manifest = std::fs::read_to_string(state.path().join("appendonly.manifest")).unwrap();
    let incr = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("incr "))
        .next_back()
        .unwrap();
    let file = state.path().join(incr);
    let before = std::fs::read(&file).unwrap();
    let good = before.len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    let torn = b"*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$3\r\nye";
    std::io::Write::write_all(&mut f, torn).unwrap();
    drop(f);
    let s = durable(state.path(), port, "");
    let mut c = Resp::connect(store_addr(port)).unwrap();
    assert_eq!(c.cmd(&["GET", "kept"]).unwrap(), "yes");
    assert_eq!(c.cmd(&["GET", "lost"]).unwrap(), "(nil)");
    let err = s.stderr();
    assert!(
        err.contains("truncated to the last complete record")
            && err.contains(&format!("offset={good}"))
            && err.contains(&format!("dropped={}", torn.len())),
        "{err}"
    );
    // Cut back to the last complete record; the restarted store appends after it (Isola's
    // own bookkeeping writes to the store too).
    let after = std::fs::read(&file).unwrap();
    assert_eq!(&after[..good], &before[..]);
    assert!(!after.windows(4).any(|w| w == b"lost"));
    assert!(s.stop().success());
}

#[test]
fn a_second_isola_on_the_same_store_dir_refuses_to_start() {
    let state = tempfile::tempdir().unwrap();
    let s = durable(state.path(), free_port(), "");
    let site = fixture_site();
    let cfg = site.path().join("isola.toml");
    std::fs::write(
        &cfg,
        format!("[store]\ndir = \"{}\"\n", state.path().display()),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
        .arg("serve")
        .arg(site.path())
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::harness::own(child.id());
    let status = crate::harness::wait_timeout(&mut child, std::time::Duration::from_secs(20));
    crate::harness::disown(child.id());
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("second isola kept running");
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("in use by another process")
            && err.contains(&state.path().display().to_string()),
        "{err}"
    );
    assert!(s.stop().success());
}
