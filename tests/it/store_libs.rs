//! Real PHP libraries, unmodified from their Debian packages, on the store: phpredis
//! sessions with locking, Predis, Symfony Cache and Lock, Laravel's cache, locks and Redis
//! queue. The scripts are in tests/php/store-libs and find the store through
//! `ISOLA_STORE` only.
//!
//! Every scenario runs twice, once on the embedded store and once with `[store] url`
//! pointing at a real `redis-server` on a private socket, and both runs are held to the same
//! expected results: a library that works on Redis must work the same on the embedded store.
use std::collections::HashSet;
use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{fixture_site, Server};
use crate::http::{request, Response};
use crate::redis::RealRedis;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Embedded,
    /// redis-server on a unix socket: `[store] url = "unix:///..."`.
    Redis,
    /// redis-server on TCP, database 2: `[store] url = "redis://127.0.0.1:PORT/2"`.
    RedisUrl,
}

/// A real Redis on a loopback port, without persistence, killed on drop.
pub struct TcpRedis {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl TcpRedis {
    fn start() -> TcpRedis {
        let dir = tempfile::tempdir().unwrap();
        // A port the system just handed out and took back: free unless someone else is
        // racing for ports, which a failed start below would show.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run `scripts/setup --test`");
        let r = TcpRedis {
            child,
            port,
            _dir: dir,
        };
        let t = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        r
    }

    /// DBSIZE of database `db`.
    fn dbsize(&self, db: u8) -> u64 {
        use std::io::{BufRead, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(format!("SELECT {db}\r\nDBSIZE\r\n").as_bytes())
            .unwrap();
        let mut r = std::io::BufReader::new(s);
        let (mut ok, mut size) = (String::new(), String::new());
        r.read_line(&mut ok).unwrap();
        r.read_line(&mut size).unwrap();
        assert_eq!(ok, "+OK\r\n");
        size.trim().trim_start_matches(':').parse().unwrap()
    }
}

impl Drop for TcpRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Isola serving the fixture site on one backend.
pub struct Env {
    pub server: Server,
    pub backend: Backend,
    redis: Option<RealRedis>,
    pub tcp_redis: Option<TcpRedis>,
    _config_dir: tempfile::TempDir,
}

impl Env {
    /// The fixture site, three workers, sessions locked.
    pub fn start(backend: Backend) -> Env {
        let site = fixture_site();
        let docroot = site.path().to_path_buf();
        Self::serve(backend, &docroot, CONFIG, Some(site))
    }

    /// `docroot` served with the isola.toml `toml`, plus `[store] url` for a real Redis.
    pub fn serve(
        backend: Backend,
        docroot: &Path,
        toml: &str,
        site: Option<tempfile::TempDir>,
    ) -> Env {
        let (redis, tcp_redis, store) = match backend {
            Backend::Embedded => (None, None, String::new()),
            Backend::Redis => {
                let r = RealRedis::start();
                let store = format!("[store]\nurl = \"{}\"\n", r.url());
                (Some(r), None, store)
            }
            Backend::RedisUrl => {
                let r = TcpRedis::start();
                let store = format!("[store]\nurl = \"redis://127.0.0.1:{}/2\"\n", r.port);
                (None, Some(r), store)
            }
        };
        let config_dir = tempfile::tempdir().unwrap();
        let cfg = config_dir.path().join("isola.toml");
        std::fs::write(&cfg, format!("{toml}\n{store}")).unwrap();
        let server = Server::start_in(docroot, &["--config", cfg.to_str().unwrap()], site);
        Env {
            server,
            backend,
            redis,
            tcp_redis,
            _config_dir: config_dir,
        }
    }

    pub fn stop(self) {
        let Env {
            server,
            redis,
            tcp_redis,
            ..
        } = self;
        assert!(server.stop().success());
        drop((redis, tcp_redis));
    }

    /// GET `target`; the reply must be 200 with a JSON body.
    pub fn json(&self, target: &str, headers: &[&str]) -> Value {
        let r = request(self.server.addr, "GET", target, headers, b"");
        self.expect_ok(target, &r);
        r.json()
    }

    fn expect_ok(&self, target: &str, r: &Response) {
        assert_eq!(
            r.status,
            200,
            "{target} on {:?}: {}\nisola stderr:\n{}",
            self.backend,
            r.text(),
            self.server.stderr()
        );
    }

    /// `n` requests to `target` at once, one connection each; every reply must be 200
    /// with a JSON body.
    pub fn concurrently(&self, n: usize, target: &str, headers: &[&str]) -> Vec<Value> {
        let addr = self.server.addr;
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        let start = std::sync::Arc::new(std::sync::Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (target, headers, start) = (target.to_string(), headers.clone(), start.clone());
                std::thread::spawn(move || {
                    let h: Vec<&str> = headers.iter().map(String::as_str).collect();
                    start.wait();
                    request(addr, "GET", &target, &h, b"")
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                let r = t.join().unwrap();
                self.expect_ok(target, &r);
                r.json()
            })
            .collect()
    }
}

/// Sessions locked by phpredis, so concurrent requests of one session queue behind each
/// other instead of overwriting each other's writes. Lock waits are sized for a slow machine.
const CONFIG: &str = "[pool]\nmax_children = 3\nqueue_size = 512\nqueue_timeout = \"60s\"\n\n[php]\nini = { \"redis.session.locking_enabled\" = 1, \"redis.session.lock_retries\" = 4000, \"redis.session.lock_wait_time\" = 5000 }\n";

/// One test per backend for a scenario; `embedded: #[ignore = "..."]` marks a known
/// difference of the embedded store.
macro_rules! on_both {
    ($name:ident, $check:path $(, embedded: #[$attr:meta])?) => {
        mod $name {
            use super::*;
            #[test]
            $(#[$attr])?
            fn embedded() {
                run(Backend::Embedded, $check);
            }
            #[test]
            fn redis() {
                run(Backend::Redis, $check);
            }
        }
    };
}

fn run(backend: Backend, check: fn(&Env)) {
    let env = Env::start(backend);
    check(&env);
    env.stop();
}

fn cookie_of(env: &Env, target: &str) -> (String, Value) {
    let r = request(env.server.addr, "GET", target, &[], b"");
    env.expect_ok(target, &r);
    let cookie = r.cookie();
    (format!("Cookie: {cookie}"), r.json())
}

fn sessions(env: &Env) {
    let backend = env.backend;
    let (cookie, first) = cookie_of(env, "/store-libs/session_count.php");
    assert_eq!(first["n"], 1);

    // Each request reads n, waits, writes n + 1: only the session lock keeps them from
    // reading the same n.
    let n = 12;
    let replies = env.concurrently(n, "/store-libs/session_count.php?ms=30", &[&cookie]);
    let mut seen: Vec<u64> = replies.iter().map(|j| j["n"].as_u64().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (2..=n as u64 + 1).collect::<Vec<_>>(), "{backend:?}");
    let pids: HashSet<u64> = replies.iter().map(|j| j["pid"].as_u64().unwrap()).collect();
    assert!(pids.len() > 1, "one worker served everything: {pids:?}");

    // Written by one worker, read by others: three readers at once occupy three workers.
    let w = env.json("/store-libs/session_write.php?note=hello", &[&cookie]);
    let readers = env.concurrently(3, "/store-libs/session_read.php?ms=300", &[&cookie]);
    let reader_pids: HashSet<u64> = readers.iter().map(|j| j["pid"].as_u64().unwrap()).collect();
    assert_eq!(reader_pids.len(), 3, "{readers:?}");
    assert!(reader_pids.iter().any(|&p| json!(p) != w["pid"]));
    for r in &readers {
        assert_eq!(r["note"], "hello", "{backend:?}: {r}");
        assert_eq!(r["n"], n as u64 + 1, "{backend:?}: {r}");
    }
}

fn predis(env: &Env) {
    let backend = env.backend;
    let got = env.json("/store-libs/predis.php", &[]);
    let expected = json!({
        "strings": ["OK", 11, "hello world", 11, 0, 5, 6, 5, "OK", ["a", "b", null], null],
        "hashes": [1, "OK", 42, "isola", 1, 1, 2, {"name": "isola", "stars": "42"}, ["isola", null]],
        "lists": [2, 3, 4, ["a", "b", "c", "d"], 4, "d", "a", "d", 3, 1, ["b", "c"]],
        "pipeline": ["OK", 2, "2", 1, 0],
        "transaction": ["OK", 15, "15"],
        "watch": "aborted",
        "watch_value": "100",
        "watch_retry": ["OK"],
        "watch_final": "101",
        "ttl": [true, true, 1, 1, -1, -2, 1, 0, null],
        "types": ["string", "hash", "list"],
    });
    assert_eq!(got, expected, "{backend:?}");
}

/// Whole SCAN-family iterations with phpredis and Predis while the data changes between
/// calls: every element present throughout comes back, phpredis's cursor fits its signed
/// long and ends on 0 (issue 15: cursors above 2^63 saturated and the loop lost keys).
fn scan_iterations(env: &Env) {
    let backend = env.backend;
    let got = env.json("/store-libs/scan.php", &[]);
    for cmd in ["scan", "hscan", "sscan", "zscan"] {
        let all = if cmd == "scan" { 40 } else { 200 };
        let p = &got[format!("phpredis_{cmd}")];
        assert_eq!(p["found"], all, "{backend:?} phpredis {cmd}: {got}");
        assert_eq!(p["end"], 0, "{backend:?} phpredis {cmd}: {got}");
        assert_eq!(p["cursor_fits"], true, "{backend:?} phpredis {cmd}: {got}");
        let p = &got[format!("predis_{cmd}")];
        assert_eq!(p["found"], all, "{backend:?} Predis {cmd}: {got}");
    }
}

fn predis_legacy(env: &Env) {
    let backend = env.backend;
    let got = env.json("/store-libs/predis.php?part=legacy", &[]);
    assert_eq!(got, json!({"getset": ["old", "new"]}), "{backend:?}");
}

fn symfony_cache(env: &Env) {
    let backend = env.backend;
    let got = env.json("/store-libs/symfony_cache.php?part=cache", &[]);
    let expected = json!({
        "first": {"answer": 42, "computed": 1},
        "second": {"answer": 42, "computed": 1},
        "hit": true,
        "calls_after_hit": 1,
        "delete": true,
        "hit_after_delete": false,
        "recomputed": {"answer": 42, "computed": 2},
        "commit": true,
        "many": {"many.a": "A", "many.b": "B", "many.c": null},
        "has": [true, false],
        "short_hit": true,
        "short_hit_later": false,
        "clear": true,
        "after_clear": [false, true],
    });
    assert_eq!(got, expected, "{backend:?}");
}

fn symfony_cache_tags(env: &Env) {
    let backend = env.backend;
    let got = env.json("/store-libs/symfony_cache.php?part=tags", &[]);
    let expected = json!({
        "a": {"answer": 42, "computed": 1},
        "b": {"answer": 42, "computed": 2},
        "a_again": {"answer": 42, "computed": 1},
        "invalidate": true,
        "a_hit": false,
        "b_hit": true,
        "a_recomputed": {"answer": 42, "computed": 3},
        "calls": 3,
        "clear": true,
    });
    assert_eq!(got, expected, "{backend:?}");
}

fn symfony_lock(env: &Env) {
    let backend = env.backend;
    let got = env.json("/store-libs/symfony_lock.php?part=basic", &[]);
    let expected = json!({
        "first_acquire": true,
        "second_acquire": false,
        "first_acquired": true,
        "second_acquired": false,
        "first_after_release": false,
        "second_after_release": true,
        "short_acquire": true,
        "short_ttl_ok": true,
        "refreshed_ttl_ok": true,
        "refreshed_still_held": true,
        "expired": true,
        "expired_held": false,
        "other_after_expiry": true,
    });
    assert_eq!(got, expected, "{backend:?}");
    assert_exact_count(env, "/store-libs/symfony_lock.php?part=count", 20);
}

/// `n` concurrent read-modify-write steps under a lock: each step must have seen the
/// previous one's write.
fn assert_exact_count(env: &Env, target: &str, n: usize) {
    let mut seen: Vec<u64> = env
        .concurrently(n, target, &[])
        .iter()
        .map(|j| j["n"].as_u64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=n as u64).collect::<Vec<_>>(),
        "{:?}: lost updates",
        env.backend
    );
}

fn laravel_cache(env: &Env) {
    let backend = env.backend;
    let got = env.json("/store-libs/laravel.php?part=cache", &[]);
    let expected = json!({
        "flush": true,
        "other_db_kept": 1,
        "put": true,
        "get": {"name": "Ada"},
        "missing": "default",
        // Laravel stores numbers unserialized: the cached 1 comes back as "1".
        "remember": [1, "1", 1],
        "add": [true, false, "1"],
        "increment": [1, 6, 5],
        "many": [true, {"m1": "a", "m2": "b", "m3": null}],
        "forever": [true, -1],
        "pull": ["x", false],
        "forget": [true, false],
        "tags": ["J", "A"],
        "tags_flushed": [null, null],
        "short": "v",
        "short_later": null,
    });
    assert_eq!(got, expected, "{backend:?}");
}

fn laravel_lock(env: &Env) {
    let backend = env.backend;
    let got = env.json("/store-libs/laravel.php?part=lock", &[]);
    let expected = json!({
        "a_get": true,
        "b_get": false,
        "b_release": false,
        "a_release": true,
        "b_block": true,
        "restored_release": true,
        "callback": "ran",
        "free_after_callback": true,
        "short_get": true,
        "after_expiry": true,
    });
    assert_eq!(got, expected, "{backend:?}");
    assert_exact_count(env, "/store-libs/laravel.php?part=count", 20);
}

fn laravel_queue(env: &Env) {
    let backend = env.backend;
    let got = env.json("/store-libs/laravel.php?part=queue", &[]);
    let expected = json!({
        "pushed": 5,
        "size": 5,
        "popped": [1, 2, 3, 4, 5],
        "size_after": 0,
        "attempts": 1,
        "size_released": 1,
        "pop_while_delayed": true,
        "after_delay": [[6, 2], [7, 1]],
        "size_end": 0,
    });
    assert_eq!(got, expected, "{backend:?}");
}

on_both!(sessions_with_locking, sessions);
on_both!(predis_commands, predis);
on_both!(predis_legacy_commands, predis_legacy);
on_both!(scan_iteration, scan_iterations);
on_both!(symfony_cache_adapter, symfony_cache);
on_both!(symfony_cache_tags_adapter, symfony_cache_tags);
on_both!(symfony_lock_store, symfony_lock);
on_both!(laravel_cache_store, laravel_cache);
on_both!(laravel_cache_lock, laravel_lock);
on_both!(laravel_redis_queue, laravel_queue);

/// `[store] url = "redis://host:port/db"`: the scripts, Isola's session settings and its
/// own keys all use database 2 of a Redis on TCP, and leave database 0 alone.
#[test]
fn redis_url_with_a_database() {
    let env = Env::start(Backend::RedisUrl);
    for check in [sessions, predis, symfony_cache, laravel_cache] {
        check(&env);
    }
    let redis = env.tcp_redis.as_ref().unwrap();
    assert!(redis.dbsize(2) > 0);
    assert_eq!(redis.dbsize(0), 0, "keys written outside database 2");
    env.stop();
}

/// With a password on the embedded store, PHP's sessions still reach it: the session
/// handler gets the password in its save path (`unix:///...?auth=...`).
#[test]
fn sessions_with_a_store_password() {
    let site = fixture_site();
    let docroot = site.path().to_path_buf();
    let env = Env::serve(
        Backend::Embedded,
        &docroot,
        &format!("{CONFIG}\n[store]\nrequirepass = \"s3cret\"\n"),
        Some(site),
    );
    let (cookie, first) = cookie_of(&env, "/store-libs/session_count.php");
    assert_eq!(first["n"], 1);
    assert_eq!(
        env.json("/store-libs/session_count.php", &[&cookie])["n"],
        2
    );
    env.stop();
}
