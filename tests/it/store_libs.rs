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
    Redis,
}

/// Isola serving the fixture site on one backend.
pub struct Env {
    pub server: Server,
    pub backend: Backend,
    redis: Option<RealRedis>,
    _config_dir: tempfile::TempDir,
}

impl Env {
    /// The fixture site; `pool` is the `[pool]` table's body, `extra` more TOML after it.
    pub fn start(backend: Backend, pool: &str, extra: &str) -> Env {
        let site = fixture_site();
        let docroot = site.path().to_path_buf();
        Self::serve(
            backend,
            &docroot,
            &format!("[pool]\n{pool}\n{extra}\n"),
            Some(site),
        )
    }

    /// `docroot` served with the isola.toml `toml`, plus `[store] url` for a real Redis.
    pub fn serve(
        backend: Backend,
        docroot: &Path,
        toml: &str,
        site: Option<tempfile::TempDir>,
    ) -> Env {
        let redis = matches!(backend, Backend::Redis).then(RealRedis::start);
        let store = match &redis {
            Some(r) => format!("[store]\nurl = \"{}\"\n", r.url()),
            None => String::new(),
        };
        let config_dir = tempfile::tempdir().unwrap();
        let cfg = config_dir.path().join("isola.toml");
        std::fs::write(&cfg, format!("{toml}\n{store}")).unwrap();
        let server = Server::start_in(docroot, &["--config", cfg.to_str().unwrap()], site);
        Env {
            server,
            backend,
            redis,
            _config_dir: config_dir,
        }
    }

    pub fn stop(self) {
        let Env { server, redis, .. } = self;
        assert!(server.stop().success());
        drop(redis);
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
const SESSION_INI: &str = "[php]\nini = { \"redis.session.locking_enabled\" = 1, \"redis.session.lock_retries\" = 4000, \"redis.session.lock_wait_time\" = 5000 }\n";

const POOL: &str = "max_children = 3\nqueue_size = 512\nqueue_timeout = \"60s\"";

/// One test per backend for a scenario; `embedded: #[ignore = "..."]` marks a known
/// difference of the embedded store.
macro_rules! on_both {
    ($name:ident, $check:path $(, embedded: #[$attr:meta])?) => {
        mod $name {
            use super::*;
            #[test]
            $(#[$attr])?
            fn embedded() {
                $check(Backend::Embedded);
            }
            #[test]
            fn redis() {
                $check(Backend::Redis);
            }
        }
    };
}

fn cookie_of(env: &Env, target: &str) -> (String, Value) {
    let r = request(env.server.addr, "GET", target, &[], b"");
    env.expect_ok(target, &r);
    let cookie = r
        .header("set-cookie")
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    (format!("Cookie: {cookie}"), r.json())
}

fn sessions(backend: Backend) {
    let env = Env::start(backend, POOL, SESSION_INI);
    let (cookie, first) = cookie_of(&env, "/store-libs/session_count.php");
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
    env.stop();
}

fn predis(backend: Backend) {
    let env = Env::start(backend, POOL, "");
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
    env.stop();
}

fn predis_legacy(backend: Backend) {
    let env = Env::start(backend, POOL, "");
    let got = env.json("/store-libs/predis.php?part=legacy", &[]);
    assert_eq!(got, json!({"getset": ["old", "new"]}), "{backend:?}");
    env.stop();
}

fn symfony_cache(backend: Backend) {
    let env = Env::start(backend, POOL, "");
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
    env.stop();
}

fn symfony_cache_tags(backend: Backend) {
    let env = Env::start(backend, POOL, "");
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
    env.stop();
}

fn symfony_lock(backend: Backend) {
    let env = Env::start(backend, POOL, "");
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
    assert_exact_count(&env, "/store-libs/symfony_lock.php?part=count", 20);
    env.stop();
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

fn laravel_cache(backend: Backend) {
    let env = Env::start(backend, POOL, "");
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
    env.stop();
}

fn laravel_lock(backend: Backend) {
    let env = Env::start(backend, POOL, "");
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
    assert_exact_count(&env, "/store-libs/laravel.php?part=count", 20);
    env.stop();
}

fn laravel_queue(backend: Backend) {
    let env = Env::start(backend, POOL, "");
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
    env.stop();
}

on_both!(sessions_with_locking, sessions);
on_both!(predis_commands, predis);
on_both!(predis_legacy_commands, predis_legacy, embedded: #[ignore = "the embedded store has no GETSET (ERR unknown command 'GETSET')"]);
on_both!(symfony_cache_adapter, symfony_cache);
on_both!(symfony_cache_tags_adapter, symfony_cache_tags);
on_both!(symfony_lock_store, symfony_lock, embedded: #[ignore = "the embedded store has no ZREVRANGE, which RedisStore's Lua scripts call (ERR Unknown Redis command called from script)"]);
on_both!(laravel_cache_store, laravel_cache);
on_both!(laravel_cache_lock, laravel_lock);
on_both!(laravel_redis_queue, laravel_queue);
