#![allow(clippy::unwrap_used)]
//! Durability and memory limits: the append-only log across restarts, its repair and
//! compaction, the directory lock, and maxmemory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use isola_store::aof::{AofConfig, Fsync};
use isola_store::db::{Clock, ManualClock};
use isola_store::engine::MaxMemoryPolicy;
use isola_store::{Store, StoreConfig, StoreError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, Clone, PartialEq)]
enum R {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Arr(Option<Vec<R>>),
}

impl R {
    fn text(&self) -> String {
        match self {
            R::Simple(s) | R::Err(s) => s.clone(),
            R::Int(i) => i.to_string(),
            R::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            R::Bulk(None) | R::Arr(None) => "(nil)".into(),
            R::Arr(Some(a)) => a.iter().map(R::text).collect::<Vec<_>>().join(","),
        }
    }
    fn list(&self) -> Vec<String> {
        match self {
            R::Arr(Some(a)) => a.iter().map(R::text).collect(),
            _ => Vec::new(),
        }
    }
}

struct Client(BufReader<UnixStream>);

impl Client {
    async fn connect(sock: &Path) -> Client {
        Client(BufReader::new(UnixStream::connect(sock).await.unwrap()))
    }

    async fn cmd(&mut self, args: &[&str]) -> R {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.get_mut().write_all(req.as_bytes()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.read())
            .await
            .unwrap()
    }

    async fn line(&mut self) -> String {
        let mut l = String::new();
        self.0.read_line(&mut l).await.unwrap();
        l.trim_end().to_string()
    }

    fn read(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = R> + Send + '_>> {
        Box::pin(async move {
            let l = self.line().await;
            let (t, rest) = l.split_at(1);
            match t {
                "+" => R::Simple(rest.into()),
                "-" => R::Err(rest.into()),
                ":" => R::Int(rest.parse().unwrap()),
                "$" => {
                    let n: i64 = rest.parse().unwrap();
                    if n < 0 {
                        return R::Bulk(None);
                    }
                    let mut b = vec![0u8; n as usize + 2];
                    self.0.read_exact(&mut b).await.unwrap();
                    b.truncate(n as usize);
                    R::Bulk(Some(b))
                }
                "*" => {
                    let n: i64 = rest.parse().unwrap();
                    if n < 0 {
                        return R::Arr(None);
                    }
                    let mut v = Vec::new();
                    for _ in 0..n {
                        v.push(self.read().await);
                    }
                    R::Arr(Some(v))
                }
                _ => panic!("bad reply line {l:?}"),
            }
        })
    }

    async fn s(&mut self, line: &str) -> String {
        let args: Vec<&str> = line.split(' ').collect();
        self.cmd(&args).await.text()
    }
}

struct Running {
    sock: std::path::PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), StoreError>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

fn config(dir: &Path, aof: AofConfig, clock: Arc<dyn Clock>) -> StoreConfig {
    StoreConfig {
        unix_socket: Some(dir.join(format!("s{}.sock", rand_suffix()))),
        aof: Some(aof),
        clock,
        ..StoreConfig::default()
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn start(config: StoreConfig) -> Result<Running, StoreError> {
    let sock = config.unix_socket.clone().unwrap();
    let store = Store::bind(config).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(store.run(async {
        let _ = stopped.await;
    }));
    Ok(Running { sock, stop, task })
}

/// A store on `dir` with `appendfsync always` and the wall clock.
async fn start_always(dir: &Path) -> Running {
    start(config(dir, aof(dir, Fsync::Always), wall()))
        .await
        .unwrap()
}

fn aof(dir: &Path, fsync: Fsync) -> AofConfig {
    AofConfig {
        fsync,
        ..AofConfig::new(dir.join("data"))
    }
}

fn wall() -> Arc<dyn Clock> {
    Arc::new(isola_store::db::SystemClock)
}

/// Every key of every database with its type, content and deadline, in a stable order.
async fn dump(c: &mut Client) -> Vec<String> {
    let mut out = Vec::new();
    for db in 0..16 {
        c.s(&format!("SELECT {db}")).await;
        let mut keys = c.cmd(&["KEYS", "*"]).await.list();
        keys.sort();
        for k in keys {
            let t = c.cmd(&["TYPE", &k]).await.text();
            let mut v = match t.as_str() {
                "string" => vec![c.cmd(&["GET", &k]).await.text()],
                "list" => c.cmd(&["LRANGE", &k, "0", "-1"]).await.list(),
                "hash" => c.cmd(&["HGETALL", &k]).await.list(),
                "set" => c.cmd(&["SMEMBERS", &k]).await.list(),
                "zset" => c.cmd(&["ZRANGE", &k, "0", "-1", "WITHSCORES"]).await.list(),
                _ => vec![],
            };
            if t == "hash" {
                let mut pairs: Vec<String> = v.chunks(2).map(|p| p.join("=")).collect();
                pairs.sort();
                v = pairs;
            }
            if t == "set" {
                v.sort();
            }
            let ttl = c.cmd(&["PTTL", &k]).await.text();
            let ttl = if ttl == "-1" { "none" } else { "some" };
            out.push(format!("{db} {k} {t} {ttl} {}", v.join(",")));
        }
    }
    c.s("SELECT 0").await;
    out
}

#[tokio::test]
async fn replay_restores_every_type_and_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_always(dir.path()).await;
    let mut c = Client::connect(&run.sock).await;
    for line in [
        "SET s hello",
        "SET t v EX 1000",
        "SETEX u 1000 v",
        "INCR n",
        "INCRBYFLOAT f 1.5",
        "INCRBYFLOAT f 0.25",
        "RPUSH l a b c d",
        "LPOP l",
        "HSET h a 1 b 2",
        "HINCRBYFLOAT h c 0.5",
        "SADD set a b c d e",
        "SPOP set",
        "SPOP set 2",
        "ZADD z 1 a 2.5 b -3 c",
        "ZINCRBY z 1 a",
        "EXPIRE l 5000",
        "SELECT 3",
        "SET other db3",
        "SELECT 0",
        "MULTI",
        "SET m1 1",
        "SELECT 4",
        "SET m2 2",
        "EXEC",
        "SELECT 0",
        "GETEX s PX 900000",
        "RPUSH q x y",
        "BLMOVE q q2 LEFT RIGHT 0",
        "SET gs old EX 1000",
        "GETSET gs new",
        "SADD zs a x",
        "ZUNIONSTORE zu 2 z zs WEIGHTS 2 1 AGGREGATE MAX",
        "ZINTERSTORE zi 2 z zs",
        "DEL nothing",
    ] {
        c.s(line).await;
    }
    let before = dump(&mut c).await;
    let ttl_before: i64 = c.s("PTTL t").await.parse().unwrap();
    drop(c);
    run.stop().await;

    let run = start_always(dir.path()).await;
    let mut c = Client::connect(&run.sock).await;
    assert_eq!(dump(&mut c).await, before);
    assert_eq!(c.s("GET f").await, "1.75");
    assert_eq!(c.s("SCARD set").await, "2");
    let ttl_after: i64 = c.s("PTTL t").await.parse().unwrap();
    assert!(ttl_after <= ttl_before && ttl_after > ttl_before - 5000);
    let pttl_s = c.s("PTTL s").await;
    assert!(pttl_s.parse::<i64>().unwrap() > 800_000, "{pttl_s}");
    assert_eq!(c.s("LRANGE q2 0 -1").await, "x");
    assert_eq!(c.s("GET gs").await, "new");
    assert_eq!(c.s("PTTL gs").await, "-1");
    assert_eq!(c.s("ZSCORE zu a").await, "4");
    assert_eq!(c.s("ZSCORE zi a").await, "3");
    drop(c);
    run.stop().await;
}

#[tokio::test]
async fn blocked_pop_served_later_is_logged_as_a_pop() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_always(dir.path()).await;
    let mut waiter = Client::connect(&run.sock).await;
    let mut c = Client::connect(&run.sock).await;
    let w = tokio::spawn(async move {
        let r = waiter.s("BLPOP q 0").await;
        (waiter, r)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.s("RPUSH q a b").await;
    let (_waiter, r) = w.await.unwrap();
    assert_eq!(r, "q,a");
    drop(c);
    run.stop().await;
    let run = start_always(dir.path()).await;
    let mut c = Client::connect(&run.sock).await;
    assert_eq!(c.s("LRANGE q 0 -1").await, "b");
    drop(c);
    run.stop().await;
}

#[tokio::test]
async fn expired_keys_stay_expired_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000_000);
    let run = start(config(
        dir.path(),
        aof(dir.path(), Fsync::Always),
        clock.clone(),
    ))
    .await
    .unwrap();
    let mut c = Client::connect(&run.sock).await;
    c.s("SET gone v PX 100").await;
    c.s("SET counter 5 PX 1000").await;
    c.s("INCR counter").await;
    c.s("SET later v PX 5000").await;
    c.s("SET keep v").await;
    clock.advance(200);
    // Found expired by a command: the log records its removal before the command.
    assert_eq!(c.s("SET gone new NX").await, "OK");
    c.s("SET gone2 v PX 10").await;
    drop(c);
    run.stop().await;

    clock.advance(10_000);
    let run = start(config(
        dir.path(),
        aof(dir.path(), Fsync::Always),
        clock.clone(),
    ))
    .await
    .unwrap();
    let mut c = Client::connect(&run.sock).await;
    assert_eq!(c.s("GET gone").await, "new");
    // A counter incremented before its deadline must not come back as a fresh 1.
    assert_eq!(c.s("GET counter").await, "(nil)");
    assert_eq!(c.s("GET later").await, "(nil)");
    assert_eq!(c.s("GET gone2").await, "(nil)");
    assert_eq!(c.s("DBSIZE").await, "2");
    drop(c);
    run.stop().await;
}

fn incr_file(dir: &Path) -> std::path::PathBuf {
    let m = std::fs::read_to_string(dir.join("appendonly.manifest")).unwrap();
    let name = m
        .lines()
        .filter_map(|l| l.strip_prefix("incr "))
        .next_back()
        .unwrap()
        .to_string();
    dir.join(name)
}

#[tokio::test]
async fn torn_tail_is_truncated_and_earlier_records_load() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_always(dir.path()).await;
    let mut c = Client::connect(&run.sock).await;
    c.s("SET a 1").await;
    c.s("RPUSH l x y").await;
    drop(c);
    run.stop().await;
    let file = incr_file(&dir.path().join("data"));
    let good = std::fs::metadata(&file).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    std::io::Write::write_all(&mut f, b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$5\r\nhal").unwrap();
    drop(f);

    let run = start_always(dir.path()).await;
    let mut c = Client::connect(&run.sock).await;
    assert_eq!(c.s("GET a").await, "1");
    assert_eq!(c.s("GET b").await, "(nil)");
    assert_eq!(c.s("LRANGE l 0 -1").await, "x,y");
    drop(c);
    run.stop().await;
    assert_eq!(std::fs::metadata(&file).unwrap().len(), good);
}

#[tokio::test]
async fn damage_in_the_middle_refuses_to_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_always(dir.path()).await;
    let mut c = Client::connect(&run.sock).await;
    c.s("SET a 1").await;
    c.s("SET b 2").await;
    drop(c);
    run.stop().await;
    let file = incr_file(&dir.path().join("data"));
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(3).position(|w| w == b"*3\r").unwrap();
    let second = at
        + 1
        + bytes[at + 1..]
            .windows(3)
            .position(|w| w == b"*3\r")
            .unwrap();
    bytes[second] = b'!';
    std::fs::write(&file, &bytes).unwrap();

    let err = start(config(dir.path(), aof(dir.path(), Fsync::Always), wall()))
        .await
        .err()
        .unwrap();
    match &err {
        StoreError::Corrupt {
            file: f, offset, ..
        } => {
            assert_eq!(f, &file);
            assert_eq!(*offset, second as u64);
        }
        e => panic!("unexpected {e}"),
    }
    assert!(err.to_string().contains("appendonly."), "{err}");

    let run = start(config(
        dir.path(),
        AofConfig {
            truncate_corrupt: true,
            ..aof(dir.path(), Fsync::Always)
        },
        wall(),
    ))
    .await
    .unwrap();
    let mut c = Client::connect(&run.sock).await;
    assert_eq!(c.s("GET a").await, "1");
    assert_eq!(c.s("GET b").await, "(nil)");
    drop(c);
    run.stop().await;
}

#[tokio::test]
async fn a_second_store_on_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(config(dir.path(), aof(dir.path(), Fsync::EverySec), wall()))
        .await
        .unwrap();
    let err = start(config(dir.path(), aof(dir.path(), Fsync::EverySec), wall()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    run.stop().await;
    // Released on shutdown.
    let run = start(config(dir.path(), aof(dir.path(), Fsync::EverySec), wall()))
        .await
        .unwrap();
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_content_while_clients_write() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(config(dir.path(), aof(dir.path(), Fsync::EverySec), wall()))
        .await
        .unwrap();
    let mut c = Client::connect(&run.sock).await;
    for i in 0..2000 {
        c.s(&format!("SET s{i} v{i}")).await;
        if i % 10 == 0 {
            c.s(&format!("RPUSH l{} a b c {i}", i % 7)).await;
            c.s(&format!("HSET h{} f{i} {i}", i % 5)).await;
            c.s(&format!("SADD set{} m{i}", i % 3)).await;
            c.s(&format!("ZADD z {i}.5 m{i}")).await;
            c.s(&format!("PEXPIRE s{i} 9000000")).await;
        }
    }
    c.s("SELECT 2").await;
    c.s("SET two 2").await;
    c.s("SELECT 0").await;
    // Writers keep changing keys the snapshot is visiting.
    let sock = run.sock.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = tokio::spawn(async move {
        let mut w = Client::connect(&sock).await;
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            w.s(&format!("SET s{} changed{n}", n % 2000)).await;
            w.s("INCR counter").await;
            w.s(&format!("RPUSH l{} more", n % 7)).await;
            w.s(&format!("DEL s{}", (n * 7) % 2000)).await;
            n += 1;
        }
        n
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        c.s("BGREWRITEAOF").await,
        "Background append only file rewriting started"
    );
    for _ in 0..200 {
        let info = c.s("INFO persistence").await;
        if info.contains("aof_rewrites:1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = writer.await.unwrap();
    assert!(n > 0);
    assert!(c.s("INFO persistence").await.contains("aof_rewrites:1"));
    let before = dump(&mut c).await;
    drop(c);
    run.stop().await;
    let data = dir.path().join("data");
    let manifest = std::fs::read_to_string(data.join("appendonly.manifest")).unwrap();
    assert!(manifest.contains("base appendonly."), "{manifest}");
    assert_eq!(
        manifest.lines().filter(|l| l.starts_with("incr")).count(),
        1
    );
    let files = std::fs::read_dir(&data).unwrap().count();
    assert_eq!(files, 4, "lock, manifest, base and one increment file");

    let run = start(config(dir.path(), aof(dir.path(), Fsync::EverySec), wall()))
        .await
        .unwrap();
    let mut c = Client::connect(&run.sock).await;
    assert_eq!(dump(&mut c).await, before);
    drop(c);
    run.stop().await;
}

#[tokio::test]
async fn auto_compaction_by_growth() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AofConfig {
        rewrite_min_size: 64 * 1024,
        ..aof(dir.path(), Fsync::No)
    };
    let run = start(config(dir.path(), cfg.clone(), wall()))
        .await
        .unwrap();
    let mut c = Client::connect(&run.sock).await;
    for i in 0..3000 {
        c.s(&format!("SET k{} {i}", i % 10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = c.s("INFO persistence").await;
    assert!(!info.contains("aof_rewrites:0"), "{info}");
    let before = dump(&mut c).await;
    drop(c);
    run.stop().await;
    let size: u64 = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".aof"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(size < 64 * 1024, "log not compacted: {size} bytes");
    let run = start(config(dir.path(), cfg, wall())).await.unwrap();
    let mut c = Client::connect(&run.sock).await;
    assert_eq!(dump(&mut c).await, before);
    drop(c);
    run.stop().await;
}

fn mem_config(dir: &Path, max: usize, policy: MaxMemoryPolicy) -> StoreConfig {
    StoreConfig {
        unix_socket: Some(dir.join("m.sock")),
        maxmemory: max,
        maxmemory_policy: policy,
        ..StoreConfig::default()
    }
}

fn used(info: &str) -> usize {
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn noeviction_answers_oom_and_del_frees() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(mem_config(
        dir.path(),
        64 * 1024,
        MaxMemoryPolicy::NoEviction,
    ))
    .await
    .unwrap();
    let mut c = Client::connect(&run.sock).await;
    let big = "x".repeat(1000);
    let mut stored = 0;
    let mut oom = String::new();
    for i in 0..200 {
        let r = c.cmd(&["SET", &format!("k{i}"), &big]).await;
        match r {
            R::Simple(_) => stored += 1,
            R::Err(e) => {
                oom = e;
                break;
            }
            _ => panic!(),
        }
    }
    assert_eq!(
        oom,
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert!((50..70).contains(&stored), "{stored}");
    // Reads and deletions still work; deleting makes room again.
    assert_eq!(c.s("GET k0").await.len(), 1000);
    assert_eq!(c.s("RPUSH l a").await, oom);
    assert_eq!(c.s("DEL k0 k1 k2").await, "3");
    assert_eq!(c.s("SET again v").await, "OK");
    let info = c.s("INFO memory").await;
    assert!(info.contains("maxmemory:65536"), "{info}");
    assert!(info.contains("maxmemory_policy:noeviction"), "{info}");
    drop(c);
    run.stop().await;
}

#[tokio::test]
async fn allkeys_lru_keeps_memory_near_the_limit_and_recent_keys() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 256 * 1024;
    let run = start(mem_config(dir.path(), limit, MaxMemoryPolicy::AllKeysLru))
        .await
        .unwrap();
    let mut c = Client::connect(&run.sock).await;
    let val = "v".repeat(200);
    for i in 0..100 {
        c.s(&format!("SET hot{i} {val}")).await;
    }
    for i in 0..5000 {
        assert_eq!(c.s(&format!("SET cold{i} {val}")).await, "OK");
        if i % 50 == 0 {
            for h in 0..100 {
                c.s(&format!("GET hot{h}")).await;
            }
        }
    }
    let info = c.s("INFO").await;
    let u = used(&info);
    assert!(u <= limit + 1024, "used {u} over limit {limit}");
    assert!(u > limit * 8 / 10, "used {u} far under limit {limit}");
    let evicted: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(evicted > 3000, "{evicted}");
    let mut hot = 0;
    for h in 0..100 {
        if c.s(&format!("EXISTS hot{h}")).await == "1" {
            hot += 1;
        }
    }
    assert!(hot >= 95, "only {hot} of 100 recently read keys survived");
    drop(c);
    run.stop().await;
}

#[tokio::test]
async fn script_effects_are_logged_as_commands_and_replay_without_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_always(dir.path()).await;
    let mut c = Client::connect(&run.sock).await;
    let r = c
        .cmd(&[
            "EVAL",
            "redis.call('set', KEYS[1], ARGV[1]) redis.call('rpush', KEYS[2], 'a', 'b') \
             redis.call('select', 3) redis.call('incrby', 'n', math.random(1000)) return 1",
            "2",
            "k",
            "l",
            "v",
        ])
        .await;
    assert_eq!(r, R::Int(1));
    // Writes made before a script fails stay, as in Redis.
    let r = c
        .cmd(&["EVAL", "redis.call('set', 'half', '1') error('stop')", "0"])
        .await;
    assert!(matches!(r, R::Err(_)), "{r:?}");
    assert_eq!(c.cmd(&["EVAL", "return 0", "0"]).await, R::Int(0));
    let before = dump(&mut c).await;
    assert!(
        before.iter().any(|l| l.starts_with("3 n string")),
        "{before:?}"
    );
    let log = std::fs::read(incr_file(&dir.path().join("data"))).unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("MULTI") && !log.contains("EVAL"), "{log}");
    drop(c);
    run.stop().await;
    let run = start_always(dir.path()).await;
    let mut c = Client::connect(&run.sock).await;
    assert_eq!(dump(&mut c).await, before);
    drop(c);
    run.stop().await;
}
