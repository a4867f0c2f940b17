#![allow(clippy::unwrap_used)]
//! Differential tests: the same command sequences go to a real `redis-server` and to the
//! embedded store over unix sockets, and the raw replies must be identical.
//!
//! Replies whose order Redis leaves unspecified (set members, hash fields, KEYS) are compared
//! after sorting; replies that depend on time or randomness are compared by type only.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use isola_store::resp::split_args;
use isola_store::StoreConfig;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestRunner};

/// A real Redis on a private unix socket, killed on drop.
struct RealRedis {
    child: Child,
    sock: PathBuf,
}

impl RealRedis {
    fn start(dir: &Path) -> RealRedis {
        let sock = dir.join("redis.sock");
        let bin = which("redis-server").unwrap_or_else(|| {
            panic!(
                "redis-server is not installed; the differential test needs it: run `scripts/setup --test`"
            )
        });
        let child = Command::new(bin)
            .args(["--port", "0", "--unixsocket"])
            .arg(&sock)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = RealRedis { child, sock };
        wait_for(&r.sock);
        r
    }
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn wait_for(sock: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(mut s) = UnixStream::connect(sock) {
            if s.write_all(b"PING\r\n").is_ok() {
                // Any reply will do: a server with a password answers -NOAUTH.
                let mut buf = [0u8; 1];
                if s.read_exact(&mut buf).is_ok() && (buf[0] == b'+' || buf[0] == b'-') {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server on {} did not come up", sock.display());
}

/// The embedded store on its own runtime thread, stopped on drop.
struct Embedded {
    sock: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Embedded {
    fn start(dir: &Path, requirepass: Option<&str>) -> Embedded {
        let sock = dir.join(format!("isola-{}.sock", requirepass.is_some()));
        let config = StoreConfig {
            unix_socket: Some(sock.clone()),
            requirepass: requirepass.map(str::to_owned),
            ..StoreConfig::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(isola_store::serve(config, async {
                let _ = rx.await;
            }))
            .unwrap();
        });
        wait_for(&sock);
        Embedded {
            sock,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A blocking RESP client that returns raw reply bytes.
struct Conn {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Conn {
    fn open(sock: &Path) -> Conn {
        let s = UnixStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    fn send(&mut self, args: &[Vec<u8>]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out).unwrap();
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    fn read(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        read_reply(&mut self.r, &mut out);
        out
    }

    fn cmd(&mut self, args: &[Vec<u8>]) -> Vec<u8> {
        self.send(args);
        self.read()
    }

    fn line(&mut self, line: &str) -> Vec<u8> {
        let args: Vec<Vec<u8>> = split_args(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|b| b.to_vec())
            .collect();
        self.cmd(&args)
    }
}

fn read_reply(r: &mut impl BufRead, out: &mut Vec<u8>) {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).unwrap();
    assert!(!line.is_empty(), "connection closed");
    out.extend_from_slice(&line);
    let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    match line[0] {
        b'$' if n >= 0 => {
            let mut body = vec![0; n as usize + 2];
            r.read_exact(&mut body).unwrap();
            out.extend_from_slice(&body);
        }
        b'*' if n >= 0 => {
            for _ in 0..n {
                read_reply(r, out);
            }
        }
        _ => {}
    }
}

/// Splits an array reply into its raw elements (`None` if not an array).
fn elements(raw: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    if raw.first() != Some(&b'*') {
        return None;
    }
    let mut r = BufReader::new(raw);
    let mut head = Vec::new();
    r.read_until(b'\n', &mut head).unwrap();
    let n: i64 = std::str::from_utf8(&head[1..head.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    let mut items = Vec::new();
    for _ in 0..n.max(0) {
        let mut e = Vec::new();
        read_reply(&mut r, &mut e);
        items.push(e);
    }
    Some((head, items))
}

/// Sorts an array reply's elements, in groups of `group` (2 for field/value pairs).
fn sorted(raw: &[u8], group: usize) -> Vec<u8> {
    let Some((head, items)) = elements(raw) else {
        return raw.to_vec();
    };
    let mut groups: Vec<Vec<u8>> = items.chunks(group).map(|c| c.concat()).collect();
    groups.sort();
    let mut out = head;
    for g in groups {
        out.extend_from_slice(&g);
    }
    out
}

/// How to compare one reply.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Exact,
    Sorted(usize),
    /// `[cursor, [items]]`: cursor exact, items sorted in groups.
    Scan(usize),
    /// Only the reply type byte.
    Kind,
}

fn normalize(raw: &[u8], mode: Mode) -> Vec<u8> {
    match mode {
        Mode::Exact => raw.to_vec(),
        Mode::Sorted(g) => sorted(raw, g),
        Mode::Scan(g) => match elements(raw) {
            Some((head, items)) if items.len() == 2 => {
                let mut out = head;
                out.extend_from_slice(&items[0]);
                out.extend_from_slice(&sorted(&items[1], g));
                out
            }
            _ => raw.to_vec(),
        },
        Mode::Kind => raw[..1].to_vec(),
    }
}

fn mode_for(args: &[Vec<u8>]) -> Mode {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    match name.as_str() {
        "keys" | "smembers" | "hkeys" | "hvals" | "sinter" | "sunion" | "sdiff" => Mode::Sorted(1),
        "hgetall" => Mode::Sorted(2),
        "sscan" => Mode::Scan(1),
        "hscan" | "zscan" => Mode::Scan(2),
        "time" | "pttl" | "hello" | "randomkey" | "info" | "spop" | "srandmember" => Mode::Kind,
        "client" if args.get(1).is_some_and(|a| a.eq_ignore_ascii_case(b"id")) => Mode::Kind,
        _ => Mode::Exact,
    }
}

/// Normalizes an EXEC reply: each element the way its queued command's reply would be.
/// Anything but an array of exactly one element per queued command stays exact.
fn normalize_exec(raw: &[u8], modes: &[Mode]) -> Vec<u8> {
    match elements(raw) {
        Some((head, items)) if items.len() == modes.len() => {
            let mut out = head;
            for (item, mode) in items.iter().zip(modes) {
                out.extend_from_slice(&normalize(item, *mode));
            }
            out
        }
        _ => raw.to_vec(),
    }
}

struct Pair {
    redis: Conn,
    ours: Conn,
    /// Inside MULTI: the comparison mode of each command Redis queued, in order.
    queued: Option<Vec<Mode>>,
}

impl Pair {
    fn open(r: &RealRedis, o: &Embedded) -> Pair {
        Pair {
            redis: Conn::open(&r.sock),
            ours: Conn::open(&o.sock),
            queued: None,
        }
    }

    /// Runs one command on both; returns a mismatch description if the replies differ.
    fn check(&mut self, args: &[Vec<u8>]) -> Option<String> {
        let a = self.redis.cmd(args);
        let b = self.ours.cmd(args);
        let (na, nb) = match self.track_multi(args, &a) {
            Some(modes) => (normalize_exec(&a, &modes), normalize_exec(&b, &modes)),
            None => {
                let mode = mode_for(args);
                (normalize(&a, mode), normalize(&b, mode))
            }
        };
        (na != nb).then(|| {
            format!(
                "{}\n   redis: {:?}\n   isola: {:?}",
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            )
        })
    }

    /// Follows the transaction state from Redis's replies; returns the queued commands'
    /// modes when `args` is the EXEC that ran them.
    fn track_multi(&mut self, args: &[Vec<u8>], redis_reply: &[u8]) -> Option<Vec<Mode>> {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        match name.as_str() {
            "exec" => self.queued.take(),
            "discard" => {
                self.queued = None;
                None
            }
            "multi" if self.queued.is_none() && redis_reply == b"+OK\r\n" => {
                self.queued = Some(Vec::new());
                None
            }
            _ => {
                if let Some(q) = self.queued.as_mut() {
                    if redis_reply == b"+QUEUED\r\n" {
                        q.push(mode_for(args));
                    }
                }
                None
            }
        }
    }

    fn check_line(&mut self, line: &str) -> Option<String> {
        let args: Vec<Vec<u8>> = split_args(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|b| b.to_vec())
            .collect();
        self.check(&args)
    }
}

/// Hand-written cases, one command per line; blank lines and `#` comments are skipped.
const CASES: &str = include_str!("differential_cases.txt");

struct Servers {
    _dir: tempfile::TempDir,
    redis: RealRedis,
    ours: Embedded,
}

fn servers() -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let redis = RealRedis::start(dir.path());
    let ours = Embedded::start(dir.path(), None);
    Servers {
        redis,
        ours,
        _dir: dir,
    }
}

#[test]
fn hand_written_cases_match_redis() {
    let s = servers();
    let mut p = Pair::open(&s.redis, &s.ours);
    let mut failures = Vec::new();
    for (n, line) in CASES.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(m) = p.check_line(line) {
            failures.push(format!("line {}: {m}", n + 1));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn protocol_errors_match_redis() {
    let s = servers();
    let inputs: &[&[u8]] = &[
        b"*1\r\n$-3\r\n",
        b"*1\r\n$600000000\r\n",
        b"*1\r\n+PING\r\n",
        b"*x\r\n",
        b"SET a \"b\r\n",
    ];
    for input in inputs {
        let mut a = Conn::open(&s.redis.sock);
        let mut b = Conn::open(&s.ours.sock);
        a.send_raw(input);
        b.send_raw(input);
        let (ra, rb) = (a.read(), b.read());
        assert_eq!(
            String::from_utf8_lossy(&ra),
            String::from_utf8_lossy(&rb),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        // Both close the connection afterwards.
        let mut buf = [0u8; 1];
        assert_eq!(b.r.read(&mut buf).unwrap_or(0), 0);
    }
}

#[test]
fn pipelined_and_inline_requests() {
    let s = servers();
    let mut batch = Vec::new();
    for i in 0..200 {
        batch.extend_from_slice(format!("RPUSH pl {i}\r\n").as_bytes());
    }
    batch.extend_from_slice(b"*3\r\n$6\r\nLRANGE\r\n$2\r\npl\r\n$2\r\n-3\r\nGET nothing\r\n");
    let mut replies = Vec::new();
    for sock in [&s.redis.sock, &s.ours.sock] {
        let mut c = Conn::open(sock);
        c.send_raw(&batch);
        let mut all = Vec::new();
        for _ in 0..202 {
            all.extend(c.read());
        }
        replies.push(all);
    }
    assert_eq!(replies[0], replies[1]);
}

#[test]
fn transactions_and_watch_across_connections() {
    let s = servers();
    let mut a = Pair::open(&s.redis, &s.ours);
    let mut b = Pair::open(&s.redis, &s.ours);
    let mut fails = Vec::new();
    let mut step = |p: &mut Pair, l: &str| {
        if let Some(m) = p.check_line(l) {
            fails.push(m);
        }
    };
    step(&mut a, "FLUSHALL");
    step(&mut a, "SET w 1");
    step(&mut a, "WATCH w");
    step(&mut b, "SET w 2");
    step(&mut a, "MULTI");
    step(&mut a, "INCR w");
    step(&mut a, "EXEC");
    step(&mut a, "WATCH w");
    step(&mut a, "MULTI");
    step(&mut a, "INCR w");
    step(&mut a, "EXEC");
    step(&mut a, "WATCH nokey");
    step(&mut b, "SET nokey x");
    step(&mut b, "DEL nokey");
    step(&mut a, "MULTI");
    step(&mut a, "PING");
    step(&mut a, "EXEC");
    step(&mut a, "WATCH w");
    step(&mut b, "SET w 2 NX");
    step(&mut a, "MULTI");
    step(&mut a, "GET w");
    step(&mut a, "EXEC");
    step(&mut a, "WATCH w");
    step(&mut b, "FLUSHDB");
    step(&mut a, "MULTI");
    step(&mut a, "GET w");
    step(&mut a, "EXEC");
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// Runs a multi-client blocking scenario on one server and returns the replies per step.
fn blocking_scenario(sock: &Path) -> Vec<String> {
    let mut log = Vec::new();
    let mut ctl = Conn::open(sock);
    ctl.line("FLUSHALL");
    // Three clients block on the same key in a known order.
    let mut waiters: Vec<Conn> = (0..3).map(|_| Conn::open(sock)).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        w.line(&format!("CLIENT SETNAME w{i}"));
        w.send(&[
            b"BLPOP".to_vec(),
            b"q".to_vec(),
            b"other".to_vec(),
            b"5".to_vec(),
        ]);
        // Let the server register the block before the next client arrives.
        std::thread::sleep(Duration::from_millis(50));
    }
    log.push(String::from_utf8_lossy(&ctl.line("RPUSH q a b")).into_owned());
    for w in waiters.iter_mut().take(2) {
        log.push(String::from_utf8_lossy(&w.read()).into_owned());
    }
    log.push(String::from_utf8_lossy(&ctl.line("LPUSH other z")).into_owned());
    log.push(String::from_utf8_lossy(&waiters[2].read()).into_owned());
    // Timeouts: a nil array after the timeout, not before.
    let mut t = Conn::open(sock);
    let start = Instant::now();
    log.push(String::from_utf8_lossy(&t.line("BRPOP none 0.2")).into_owned());
    let took = start.elapsed();
    log.push(format!(
        "timed out in window: {}",
        took >= Duration::from_millis(150) && took < Duration::from_secs(2)
    ));
    log.push(String::from_utf8_lossy(&t.line("BLMOVE none dst LEFT RIGHT 0.05")).into_owned());
    // Pushes inside MULTI/EXEC wake blocked clients after EXEC.
    let mut m = Conn::open(sock);
    m.send(&[
        b"BRPOPLPUSH".to_vec(),
        b"src".to_vec(),
        b"dst".to_vec(),
        b"0".to_vec(),
    ]);
    std::thread::sleep(Duration::from_millis(50));
    ctl.line("MULTI");
    ctl.line("RPUSH src one two");
    log.push(String::from_utf8_lossy(&ctl.line("EXEC")).into_owned());
    log.push(String::from_utf8_lossy(&m.read()).into_owned());
    log.push(String::from_utf8_lossy(&ctl.line("LRANGE dst 0 -1")).into_owned());
    log.push(String::from_utf8_lossy(&ctl.line("LRANGE src 0 -1")).into_owned());
    // Blocking commands inside MULTI do not block.
    ctl.line("MULTI");
    ctl.line("BLPOP empty 0");
    ctl.line("BLMOVE empty x LEFT LEFT 0");
    log.push(String::from_utf8_lossy(&ctl.line("EXEC")).into_owned());
    // A client that disconnects while blocked does not swallow a later push.
    let mut gone = Conn::open(sock);
    gone.send(&[b"BLPOP".to_vec(), b"g".to_vec(), b"0".to_vec()]);
    std::thread::sleep(Duration::from_millis(50));
    drop(gone);
    std::thread::sleep(Duration::from_millis(50));
    let mut late = Conn::open(sock);
    late.send(&[b"BLPOP".to_vec(), b"g".to_vec(), b"0".to_vec()]);
    std::thread::sleep(Duration::from_millis(50));
    ctl.line("RPUSH g v");
    log.push(String::from_utf8_lossy(&late.read()).into_owned());
    log
}

#[test]
fn blocking_lists_match_redis() {
    let s = servers();
    let theirs = blocking_scenario(&s.redis.sock);
    let ours = blocking_scenario(&s.ours.sock);
    assert_eq!(theirs, ours);
    assert!(ours.iter().any(|l| l == "timed out in window: true"));
}

#[test]
fn auth_matches_redis() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("redis.sock");
    let child = Command::new(which("redis-server").expect("run `scripts/setup --test`"))
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            "s3cret",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let redis = RealRedis { child, sock };
    wait_for(&redis.sock);
    let ours = Embedded::start(dir.path(), Some("s3cret"));
    let mut p = Pair::open(&redis, &ours);
    let mut fails = Vec::new();
    for l in [
        "GET k",
        "SET k v",
        "NOSUCH x",
        "GET",
        "PING",
        "ECHO x",
        "AUTH wrong",
        "AUTH default wrong",
        "AUTH a b c",
        "HELLO 2",
        "AUTH s3cret",
        "SET k v",
        "GET k",
        "AUTH default s3cret",
    ] {
        if let Some(m) = p.check_line(l) {
            fails.push(m);
        }
    }
    // Before AUTH, large requests are refused outright.
    for input in [&b"*11\r\n"[..], b"*2\r\n$4\r\nAUTH\r\n$20000\r\n"] {
        let mut a = Conn::open(&redis.sock);
        let mut b = Conn::open(&ours.sock);
        a.send_raw(input);
        b.send_raw(input);
        assert_eq!(
            String::from_utf8_lossy(&a.read()),
            String::from_utf8_lossy(&b.read())
        );
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// A random command over a tiny key space, with deterministic replies.
fn arb_command() -> impl Strategy<Value = Vec<String>> {
    let key = prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(str::to_owned);
    let val = prop_oneof![
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("-5".to_owned()),
        Just("x".to_owned()),
        Just("007".to_owned()),
        Just("2.5".to_owned()),
        Just("".to_owned()),
        Just("m1".to_owned()),
        Just("m2".to_owned()),
    ];
    let idx = prop_oneof![
        Just("0"),
        Just("1"),
        Just("-1"),
        Just("2"),
        Just("-3"),
        Just("x")
    ]
    .prop_map(str::to_owned);
    (
        0usize..118,
        key.clone(),
        key,
        val.clone(),
        val,
        idx.clone(),
        idx,
    )
        .prop_map(|(op, k, k2, v, v2, i, j)| {
            let c: Vec<&str> = match op {
                0 => vec!["SET", &k, &v],
                1 => vec!["GET", &k],
                2 => vec!["INCR", &k],
                3 => vec!["INCRBY", &k, &v],
                4 => vec!["APPEND", &k, &v],
                5 => vec!["DEL", &k, &k2],
                6 => vec!["EXISTS", &k, &k2],
                7 => vec!["TYPE", &k],
                8 => vec!["LPUSH", &k, &v, &v2],
                9 => vec!["RPUSH", &k, &v],
                10 => vec!["LPOP", &k],
                11 => vec!["RPOP", &k, &i],
                12 => vec!["LRANGE", &k, &i, &j],
                13 => vec!["LINDEX", &k, &i],
                14 => vec!["LSET", &k, &i, &v],
                15 => vec!["LREM", &k, &i, &v],
                16 => vec!["LTRIM", &k, &i, &j],
                17 => vec!["LLEN", &k],
                18 => vec!["HSET", &k, &v, &v2],
                19 => vec!["HGET", &k, &v],
                20 => vec!["HDEL", &k, &v],
                21 => vec!["HGETALL", &k],
                22 => vec!["HINCRBY", &k, &v, &v2],
                23 => vec!["HLEN", &k],
                24 => vec!["SADD", &k, &v, &v2],
                25 => vec!["SREM", &k, &v],
                26 => vec!["SMEMBERS", &k],
                27 => vec!["SISMEMBER", &k, &v],
                28 => vec!["SINTER", &k, &k2],
                29 => vec!["SUNIONSTORE", &k, &k2, &k],
                30 => vec!["SDIFF", &k, &k2],
                31 => vec!["ZADD", &k, &v, &v2],
                32 => vec!["ZINCRBY", &k, &v, &v2],
                33 => vec!["ZRANGE", &k, &i, &j, "WITHSCORES"],
                34 => vec!["ZRANGEBYSCORE", &k, "-inf", &v],
                35 => vec!["ZREM", &k, &v],
                36 => vec!["ZRANK", &k, &v],
                37 => vec!["ZPOPMIN", &k],
                38 => vec!["ZCARD", &k],
                39 => vec!["RENAME", &k, &k2],
                40 => vec!["LMOVE", &k, &k2, "LEFT", "RIGHT"],
                41 => vec!["SMOVE", &k, &k2, &v],
                42 => vec!["GETRANGE", &k, &i, &j],
                43 => vec!["SETRANGE", &k, "1", &v],
                44 => vec!["STRLEN", &k],
                45 => vec!["MSETNX", &k, &v, &k2, &v2],
                46 => vec!["GETDEL", &k],
                47 => vec!["LPOS", &k, &v],
                48 => vec!["SET", &k, &v, "EX", "1000", "NX"],
                49 => vec!["SET", &k, &v, "XX", "GET"],
                50 => vec!["EXPIRE", &k, "100", "GT"],
                51 => vec!["EXPIRE", &k, "200", "LT"],
                52 => vec!["EXPIRE", &k, "300", "NX"],
                53 => vec!["PERSIST", &k],
                54 => vec!["TTL", &k],
                55 => vec!["ZADD", &k, "GT", "CH", &v, &v2],
                56 => vec!["ZADD", &k, "NX", "INCR", &v, &v2],
                57 => vec!["ZCOUNT", &k, &v, &v2],
                58 => vec![
                    "ZREVRANGEBYSCORE",
                    &k,
                    "+inf",
                    &v,
                    "WITHSCORES",
                    "LIMIT",
                    &i,
                    &j,
                ],
                59 => vec!["ZREMRANGEBYSCORE", &k, &v, &v2],
                60 => vec!["HSETNX", &k, &v, &v2],
                61 => vec!["LINSERT", &k, "BEFORE", &v, &v2],
                62 => vec!["INCRBYFLOAT", &k, &v],
                63 => vec!["SINTERSTORE", &k, &k2, &k],
                64 => vec!["SDIFFSTORE", &k2, &k, &k2],
                65 => vec!["RPOPLPUSH", &k, &k2],
                66 => vec!["LPUSHX", &k, &v],
                67 => vec!["HINCRBYFLOAT", &k, &v, &v2],
                68 => vec!["ZRANGE", &k, "-", "+", "BYLEX"],
                69 => vec!["MULTI"],
                70 => vec!["EXEC"],
                71 => vec!["DISCARD"],
                72 => vec!["WATCH", &k],
                73 => vec!["RENAMENX", &k, &k2],
                74 => vec!["ZREMRANGEBYRANK", &k, &i, &j],
                75 => vec!["ZREVRANK", &k, &v],
                76 => vec!["SMISMEMBER", &k, &v, &v2],
                77 => vec!["HMGET", &k, &v, &v2],
                78 => vec!["DECRBY", &k, &v],
                79 => vec!["GETEX", &k, "PERSIST"],
                80 => vec!["SETEX", &k, "1000", &v],
                81 => vec!["MSET", &k, &v, &k2, &v2],
                82 => vec!["MGET", &k, &k2, "c"],
                83 => vec!["HKEYS", &k],
                84 => vec!["HVALS", &k],
                85 => vec!["HEXISTS", &k, &v],
                86 => vec!["HSTRLEN", &k, &v],
                87 => vec!["RPUSHX", &k, &v, &v2],
                88 => vec!["LINSERT", &k, "AFTER", &v, &v2],
                89 => vec!["ZADD", &k, "XX", "LT", "CH", &v, &v2],
                90 => vec!["ZRANGE", &k, &v, &v2, "BYSCORE", "REV", "LIMIT", &i, &j],
                91 => vec!["ZPOPMAX", &k, &i],
                92 => vec!["ZSCORE", &k, &v],
                93 => vec!["KEYS", "*"],
                94 => vec!["SELECT", &i],
                95 => vec!["SETNX", &k, &v],
                96 => vec!["SCARD", &k],
                97 => vec!["SUNION", &k, &k2],
                98 => vec!["HINCRBY", &k, &v, &i],
                99 => vec!["LPOS", &k, &v, "RANK", &i, "COUNT", &j],
                100 => vec!["ZRANGE", &k, &i, &j, "REV", "WITHSCORES"],
                101 => vec!["INCRBYFLOAT", &k, &v2],
                102 => vec!["GETRANGE", &k, &j, &i],
                103 => vec!["DBSIZE"],
                104 => vec!["RENAME", &k2, &k],
                105 => vec!["EVAL", "return redis.call('get', KEYS[1])", "1", &k],
                106 => vec![
                    "EVAL",
                    "return redis.call('incrby', KEYS[1], ARGV[1])",
                    "1",
                    &k,
                    &v,
                ],
                107 => vec![
                    "EVAL",
                    "return redis.pcall('lpush', KEYS[1], ARGV[1], ARGV[2])",
                    "1",
                    &k,
                    &v,
                    &v2,
                ],
                108 => vec![
                    "EVAL",
                    "return {redis.call('type', KEYS[1]).ok, redis.call('exists', KEYS[1], KEYS[2])}",
                    "2",
                    &k,
                    &k2,
                ],
                109 => vec![
                    "EVAL",
                    "local r = redis.call('zadd', KEYS[1], ARGV[1], ARGV[2]) return {r, redis.call('zrange', KEYS[1], 0, -1, 'withscores')}",
                    "1",
                    &k,
                    &v,
                    &v2,
                ],
                110 => vec![
                    "EVAL",
                    "return cjson.encode({k = ARGV[1], n = tonumber(ARGV[2]), l = redis.call('lrange', KEYS[1], 0, -1)})",
                    "1",
                    &k,
                    &v,
                    &v2,
                ],
                111 => vec!["EVAL", "return redis.call('lrange', KEYS[1], ARGV[1], ARGV[2])", "1", &k, &i, &j],
                113 => vec!["GETSET", &k, &v],
                114 => vec!["ZUNIONSTORE", &k, "2", &k, &k2, "WEIGHTS", &v, &v2, "AGGREGATE", "MAX"],
                115 => vec!["ZINTERSTORE", &k2, "2", &k, &k2, "WEIGHTS", &i, &j],
                116 => vec!["ZUNION", "2", &k, &k2, "WITHSCORES"],
                117 => vec!["ZSCAN", &k, "0", "MATCH", "m*"],
                _ => vec!["SET", &k, &v, "KEEPTTL", "GET"],
            };
            c.into_iter().map(str::to_owned).collect()
        })
}

#[test]
fn random_sequences_match_redis() {
    let s = servers();
    let p = std::cell::RefCell::new(Pair::open(&s.redis, &s.ours));
    let mut runner = TestRunner::new(PtConfig {
        // PROPTEST_CASES raises the count for deeper local runs.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(150),
        failure_persistence: None,
        ..PtConfig::default()
    });
    let result = runner.run(&proptest::collection::vec(arb_command(), 1..25), |seq| {
        let mut p = p.borrow_mut();
        p.check_line("DISCARD");
        p.check_line("UNWATCH");
        p.check_line("FLUSHALL");
        p.check_line("SELECT 0");
        for c in &seq {
            let args: Vec<Vec<u8>> = c.iter().map(|s| s.as_bytes().to_vec()).collect();
            if let Some(m) = p.check(&args) {
                return Err(TestCaseError::fail(m));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Collects a whole SCAN-style iteration (`cmd key? cursor opts...`) and returns the sorted items.
fn scan_all(c: &mut Conn, prefix: &[&str], opts: &[&str]) -> Vec<Vec<u8>> {
    let mut cursor = b"0".to_vec();
    let mut items = Vec::new();
    for _ in 0..10_000 {
        let mut args: Vec<Vec<u8>> = prefix.iter().map(|s| s.as_bytes().to_vec()).collect();
        args.push(cursor.clone());
        args.extend(opts.iter().map(|s| s.as_bytes().to_vec()));
        let raw = c.cmd(&args);
        let (_, parts) = elements(&raw).unwrap();
        let cur = &parts[0];
        // "$<n>\r\n<digits>\r\n"
        let start = cur.iter().position(|&b| b == b'\n').unwrap() + 1;
        cursor = cur[start..cur.len() - 2].to_vec();
        items.extend(elements(&parts[1]).unwrap().1);
        if cursor == b"0" {
            items.sort();
            items.dedup();
            return items;
        }
    }
    panic!("scan did not finish");
}

#[test]
fn scan_iterations_cover_the_same_keys() {
    let s = servers();
    let mut results = Vec::new();
    for sock in [&s.redis.sock, &s.ours.sock] {
        let mut c = Conn::open(sock);
        c.line("FLUSHALL");
        for i in 0..300 {
            c.line(&format!("SET key:{i} v"));
            c.line(&format!("RPUSH list:{i} v"));
        }
        for i in 0..200 {
            c.line(&format!("HSET bighash f{i} v{i}"));
            c.line(&format!("SADD bigset m{i}"));
            c.line(&format!("ZADD bigzset {}.5 z{i}", i * 3));
        }
        results.push(vec![
            scan_all(&mut c, &["SCAN"], &[]),
            scan_all(&mut c, &["SCAN"], &["COUNT", "7", "MATCH", "key:1*"]),
            scan_all(&mut c, &["SCAN"], &["TYPE", "list", "COUNT", "50"]),
            scan_all(&mut c, &["HSCAN", "bighash"], &["COUNT", "13"]),
            scan_all(&mut c, &["SSCAN", "bigset"], &["MATCH", "m1?"]),
            scan_all(&mut c, &["ZSCAN", "bigzset"], &["COUNT", "11"]),
        ]);
    }
    for (i, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        assert_eq!(a.len(), b.len(), "scan {i}: item counts differ");
        assert_eq!(a, b, "scan {i}");
    }
}
