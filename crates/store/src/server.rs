//! Socket server: listeners, connection tasks and the executor task.
//!
//! This module owns the I/O. Each connection task reads bytes, cuts requests with the
//! [`resp`](crate::resp) codec and sends each run of complete requests as one batch over a
//! bounded channel to the single executor task, which owns the [`Engine`]. A connection
//! waits for a batch's replies before sending the next, so pipelined requests keep their
//! order and one connection holds at most one slot of the channel; a batch whose command
//! blocks is parked whole and resumed when that command is served. It never interprets commands itself.
//!
//! Race windows, written down: a client blocked in BLPOP that disconnects is forgotten when
//! its task reports the disconnect; a push processed before that report may be handed to the
//! departed client and lost, as with any client that dies while a reply is in flight.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::aof::{AofConfig, Callback, DirLock, Rewrite, Writer};
use crate::db::{Clock, SystemClock};
use crate::engine::{
    ClientId, Engine, EngineConfig, LogHealth, MaxMemoryPolicy, Outcome, RewriteState,
};
use crate::resp::{parse_request, Limits, DEFAULT_MAX_BULK};
use crate::StoreError;

/// Slots in the executor's request channel; connections wait when it is full.
const CHANNEL_CAPACITY: usize = 1024;
/// How often active expiry runs (Redis's default `hz 10`).
const EXPIRE_TICK: Duration = Duration::from_millis(100);
/// Most requests sent to the executor in one message.
const MAX_BATCH: usize = 256;
/// Pending replies are written once they exceed this many bytes, even mid-pipeline.
const OUT_FLUSH: usize = 64 * 1024;
/// Time connections get to finish their current request after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Bytes of snapshot produced per step of a log compaction, between batches.
const SNAPSHOT_STEP: usize = 256 * 1024;

/// Store settings.
#[derive(Clone)]
pub struct StoreConfig {
    /// Unix socket path to listen on (a stale file there is replaced).
    pub unix_socket: Option<PathBuf>,
    /// TCP address to listen on.
    pub tcp: Option<SocketAddr>,
    /// Password clients must send with AUTH; `None` means no authentication.
    pub requirepass: Option<String>,
    /// Largest bulk string a client may send (`proto-max-bulk-len`).
    pub max_bulk_len: i64,
    /// Most bytes buffered for one client's unparsed input (`client-query-buffer-limit`).
    pub max_query_buffer: usize,
    /// Most simultaneous connections (`maxclients`).
    pub max_clients: usize,
    /// Time source (tests inject a manual clock).
    pub clock: Arc<dyn Clock>,
    /// Data directory and append-only log; `None` keeps everything in memory only.
    pub aof: Option<AofConfig>,
    /// Memory limit for keys and values in bytes (`maxmemory`); 0 means none.
    pub maxmemory: usize,
    /// What happens above `maxmemory`.
    pub maxmemory_policy: MaxMemoryPolicy,
    /// How long one script may run before it is stopped with an error (`lua-time-limit`).
    pub script_time_limit: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            unix_socket: None,
            tcp: None,
            requirepass: None,
            max_bulk_len: DEFAULT_MAX_BULK,
            max_query_buffer: 1024 * 1024 * 1024,
            max_clients: 10_000,
            clock: Arc::new(SystemClock),
            aof: None,
            maxmemory: 0,
            maxmemory_policy: MaxMemoryPolicy::NoEviction,
            script_time_limit: crate::script::DEFAULT_TIME_LIMIT,
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("unix_socket", &self.unix_socket)
            .field("tcp", &self.tcp)
            .field("requirepass", &self.requirepass.as_ref().map(|_| "<set>"))
            .field("max_bulk_len", &self.max_bulk_len)
            .field("max_query_buffer", &self.max_query_buffer)
            .field("max_clients", &self.max_clients)
            .field("aof", &self.aof)
            .field("maxmemory", &self.maxmemory)
            .field("maxmemory_policy", &self.maxmemory_policy)
            .field("script_time_limit", &self.script_time_limit)
            .finish()
    }
}

/// Figures for /status and /metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys per database (index = db number).
    pub keys: Vec<usize>,
    /// Keys with a time to live, per database.
    pub expires: Vec<usize>,
    /// Rough bytes held by keys and values.
    pub used_memory: usize,
    /// Commands run since start.
    pub commands_processed: u64,
    /// Keys removed by expiry since start.
    pub expired_keys: u64,
    /// Open connections.
    pub connected_clients: usize,
    /// Keys removed by eviction since start.
    pub evicted_keys: u64,
    /// The memory limit in bytes (0: none).
    pub maxmemory: usize,
    /// The append-only log is on.
    pub aof_enabled: bool,
    /// The last write or fsync of the log worked (true when the log is off).
    pub aof_last_write_ok: bool,
    /// A log compaction is running.
    pub aof_rewrite_in_progress: bool,
    /// Log compactions completed since start.
    pub aof_rewrites: u64,
    /// Bytes of the log files as compaction counts them: the base file plus what was
    /// appended after it (0 when the log is off).
    pub aof_size: u64,
}

/// Replies of a batch, and whether the client is now authenticated.
type BatchReply = (Vec<Outcome>, bool);

enum Msg {
    Batch {
        client: ClientId,
        cmds: Vec<Vec<Bytes>>,
        reply: oneshot::Sender<BatchReply>,
    },
    Disconnect(ClientId),
    Stats(oneshot::Sender<StoreStats>),
}

#[derive(Default)]
struct Counters {
    connected: AtomicUsize,
    next_id: AtomicU64,
}

/// A cheap handle for reading figures while the store runs.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle").finish_non_exhaustive()
    }
}

impl StoreHandle {
    /// Current figures (asks the executor; cheap enough to poll every second).
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Stats(tx))
            .await
            .map_err(|_| StoreError::Stopped)?;
        let mut s = rx.await.map_err(|_| StoreError::Stopped)?;
        s.connected_clients = self.counters.connected.load(Ordering::Relaxed);
        Ok(s)
    }
}

/// A bound store, ready to run.
pub struct Store {
    config: StoreConfig,
    unix: Option<UnixListener>,
    tcp: Option<TcpListener>,
    handle: StoreHandle,
    rx: mpsc::Receiver<Msg>,
    engine: Engine,
    persist: Option<Persist>,
}

/// The data directory while the store runs: its lock, and the log writer when the log is on.
struct Persist {
    _lock: DirLock,
    writer: Option<Writer>,
    rewrite: Option<Rewrite>,
    /// A finished snapshot being installed by the writer: whether it worked.
    installing: Option<oneshot::Receiver<bool>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Locks the data directory, replays the append-only log, then binds the configured
    /// sockets. Must be called inside a tokio runtime.
    pub async fn bind(config: StoreConfig) -> Result<Store, StoreError> {
        if config.unix_socket.is_none() && config.tcp.is_none() {
            return Err(StoreError::NoListener);
        }
        let mut engine = Engine::new(EngineConfig {
            requirepass: config.requirepass.clone(),
            clock: config.clock.clone(),
            max_bulk_len: usize::try_from(config.max_bulk_len).unwrap_or(usize::MAX),
            maxmemory: config.maxmemory,
            maxmemory_policy: config.maxmemory_policy,
            script_time_limit: config.script_time_limit,
        });
        let persist = match &config.aof {
            None => None,
            Some(a) => {
                let lock = DirLock::acquire(&a.dir)?;
                let writer = if a.enabled {
                    let cfg = a.clone();
                    let started = Instant::now();
                    let (back, loaded) = tokio::task::spawn_blocking(move || {
                        let r = crate::aof::load(&cfg, &mut engine);
                        (engine, r)
                    })
                    .await
                    .map_err(|_| StoreError::Stopped)?;
                    engine = back;
                    let loaded = loaded?;
                    let health = Arc::new(LogHealth::default());
                    engine.enable_log(health.clone());
                    engine.set_loading(false);
                    tracing::info!(
                        dir = %a.dir.display(),
                        commands = loaded.commands,
                        keys = engine.keyspace_stats().keys.iter().sum::<usize>(),
                        ms = started.elapsed().as_millis() as u64,
                        "store: append-only log loaded"
                    );
                    Some(Writer::start(a, &loaded, health)?)
                } else {
                    None
                };
                Some(Persist {
                    _lock: lock,
                    writer,
                    rewrite: None,
                    installing: None,
                })
            }
        };
        let unix = match &config.unix_socket {
            Some(p) => {
                // A socket file left by a previous run would make bind fail.
                if std::fs::symlink_metadata(p)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(p);
                }
                Some(UnixListener::bind(p).map_err(|source| StoreError::Bind {
                    addr: p.display().to_string(),
                    source,
                })?)
            }
            None => None,
        };
        let tcp = match config.tcp {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|source| StoreError::Bind {
                        addr: a.to_string(),
                        source,
                    })?,
            ),
            None => None,
        };
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        Ok(Store {
            config,
            unix,
            tcp,
            handle: StoreHandle {
                tx,
                counters: Arc::new(Counters::default()),
            },
            rx,
            engine,
            persist,
        })
    }

    /// The TCP address actually bound (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle for figures.
    pub fn handle(&self) -> StoreHandle {
        self.handle.clone()
    }

    /// Serves until `shutdown` completes, then closes connections and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        let Store {
            config,
            unix,
            tcp,
            handle,
            rx,
            engine,
            persist,
        } = self;
        let (exec_stop, exec_stopped) = oneshot::channel();
        let executor = tokio::spawn(executor(engine, rx, exec_stopped, persist));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let limits = Limits {
            max_bulk_len: config.max_bulk_len,
            unauthenticated: config.requirepass.is_some(),
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                r = accept_unix(unix.as_ref()) => match r {
                    Ok(s) => spawn_conn(&mut conns, s, &handle, &config, limits, stop_rx.clone()),
                    Err(e) => accept_error(e).await,
                },
                r = accept_tcp(tcp.as_ref()) => match r {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        spawn_conn(&mut conns, s, &handle, &config, limits, stop_rx.clone());
                    }
                    Err(e) => accept_error(e).await,
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        conns.abort_all();
        // Handles given out for figures keep the channel open, so the executor is told apart.
        let _ = exec_stop.send(());
        drop(handle);
        let _ = executor.await;
        if let Some(p) = &config.unix_socket {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }
}

/// Binds and serves until `shutdown` completes.
pub async fn serve(
    config: StoreConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StoreError> {
    Store::bind(config).await?.run(shutdown).await
}

async fn accept_unix(l: Option<&UnixListener>) -> std::io::Result<tokio::net::UnixStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn accept_tcp(l: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Out of descriptors and similar: wait a little instead of spinning.
async fn accept_error(e: std::io::Error) {
    tracing::warn!(error = %e, "store: accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn spawn_conn<S>(
    conns: &mut JoinSet<()>,
    stream: S,
    handle: &StoreHandle,
    config: &StoreConfig,
    limits: Limits,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let counters = handle.counters.clone();
    let id = counters.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let n = counters.connected.fetch_add(1, Ordering::Relaxed) + 1;
    let tx = handle.tx.clone();
    let max_query = config.max_query_buffer;
    let over = n > config.max_clients;
    conns.spawn(async move {
        let mut stream = stream;
        if over {
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
        } else {
            connection(&mut stream, id, &tx, limits, max_query, stop).await;
            let _ = tx.send(Msg::Disconnect(id)).await;
        }
        counters.connected.fetch_sub(1, Ordering::Relaxed);
    });
}

async fn connection<S>(
    stream: &mut S,
    id: ClientId,
    tx: &mpsc::Sender<Msg>,
    limits: Limits,
    max_query: usize,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut limits = limits;
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    loop {
        // Every complete request in the buffer goes to the executor as one batch: one channel
        // round trip per pipeline instead of one per command.
        let mut batch = Vec::new();
        let mut proto_err = None;
        while batch.len() < MAX_BATCH {
            match parse_request(&mut input, &limits) {
                Ok(Some(args)) if args.is_empty() => {}
                Ok(Some(args)) => batch.push(args),
                Ok(None) => break,
                Err(e) => {
                    proto_err = Some(e);
                    break;
                }
            }
        }
        let full = batch.len() == MAX_BATCH;
        // Bytes read while the batch ran may already hold complete requests: parse again
        // before waiting for the socket.
        let ran = !batch.is_empty();
        if ran {
            let (rtx, mut rrx) = oneshot::channel();
            let msg = Msg::Batch {
                client: id,
                cmds: batch,
                reply: rtx,
            };
            if tx.send(msg).await.is_err() {
                return;
            }
            let outcomes = loop {
                tokio::select! {
                    r = &mut rrx => break r,
                    // A blocked client must still notice that its peer went away.
                    n = stream.read_buf(&mut input), if input.len() < max_query => {
                        if !matches!(n, Ok(n) if n > 0) {
                            return;
                        }
                    }
                    _ = stop.changed() => return,
                }
            };
            let Ok((outcomes, authed)) = outcomes else {
                return;
            };
            limits.unauthenticated = !authed;
            for o in outcomes {
                match o {
                    Outcome::Reply(r) => r.encode(&mut out),
                    Outcome::Close(r) => {
                        r.encode(&mut out);
                        let _ = stream.write_all(&out).await;
                        return;
                    }
                    Outcome::Nothing | Outcome::Blocked => {}
                }
            }
        }
        if let Some(e) = proto_err {
            e.reply().encode(&mut out);
            let _ = stream.write_all(&out).await;
            return;
        }
        if full && out.len() < OUT_FLUSH {
            continue;
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if ran {
            continue;
        }
        if input.len() >= max_query {
            tracing::warn!(client = id, "store: query buffer limit reached, closing");
            return;
        }
        tokio::select! {
            n = stream.read_buf(&mut input) => {
                if !matches!(n, Ok(n) if n > 0) {
                    return;
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// A batch being executed; parked while one of its commands is blocked.
struct Pending {
    reply: oneshot::Sender<BatchReply>,
    done: Vec<Outcome>,
    rest: VecDeque<Vec<Bytes>>,
}

/// Runs the rest of a batch; parks it in `waiting` if a command blocks. A finished batch's
/// replies go to `finished`, sent once the log has what they depend on.
fn run_batch(
    engine: &mut Engine,
    client: ClientId,
    mut p: Pending,
    waiting: &mut HashMap<ClientId, Pending>,
    finished: &mut Vec<Callback>,
) {
    while let Some(args) = p.rest.pop_front() {
        match engine.execute(client, args) {
            Outcome::Blocked => {
                waiting.insert(client, p);
                return;
            }
            Outcome::Close(r) => {
                p.done.push(Outcome::Close(r));
                break;
            }
            o => p.done.push(o),
        }
    }
    let authed = engine.is_authed(client);
    let (reply, done) = (p.reply, p.done);
    finished.push(Box::new(move || {
        let _ = reply.send((done, authed));
    }));
}

/// What a running compaction needs next.
enum RewriteEvent {
    /// The snapshot thread has room for another chunk.
    Room(mpsc::OwnedPermit<Vec<u8>>),
    /// The snapshot file is complete (its size) or failed.
    Done(std::io::Result<u64>),
    /// The writer installed the snapshot as the new base (or could not).
    Installed(bool),
}

async fn rewrite_event(persist: &mut Option<Persist>) -> RewriteEvent {
    let Some(p) = persist.as_mut() else {
        return std::future::pending().await;
    };
    if let Some(rx) = p.installing.as_mut() {
        let ok = rx.await.unwrap_or(false);
        p.installing = None;
        return RewriteEvent::Installed(ok);
    }
    let Some(rw) = p.rewrite.as_mut() else {
        return std::future::pending().await;
    };
    match rw.tx.clone() {
        Some(tx) => match tx.reserve_owned().await {
            Ok(p) => RewriteEvent::Room(p),
            Err(_) => RewriteEvent::Done(Err(std::io::Error::other("snapshot writer stopped"))),
        },
        None => RewriteEvent::Done(
            (&mut rw.done)
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("snapshot writer stopped"))),
        ),
    }
}

/// Hands the log records of this round to the writer and releases finished replies.
async fn deliver(engine: &mut Engine, persist: &mut Option<Persist>, finished: Vec<Callback>) {
    match persist.as_mut().and_then(|p| p.writer.as_mut()) {
        Some(w) => w.submit(engine.take_log(), finished).await,
        None => {
            for f in finished {
                f();
            }
        }
    }
}

/// Starts a compaction when asked (BGREWRITEAOF) or when the log has grown enough.
async fn maybe_rewrite(engine: &mut Engine, persist: &mut Option<Persist>) {
    let Some(p) = persist.as_mut() else { return };
    let Some(w) = p.writer.as_mut() else { return };
    let start = match engine.rewrite {
        RewriteState::Requested => true,
        RewriteState::Idle => w.wants_rewrite(),
        RewriteState::Running => false,
    };
    if !start || p.rewrite.is_some() || p.installing.is_some() {
        return;
    }
    // Records so far belong to the old increment file; the snapshot is of this instant.
    w.submit(engine.take_log(), Vec::new()).await;
    match w.begin_rewrite().await {
        Ok(rw) => {
            engine.snapshot_begin();
            if let Some(log) = engine.log.as_mut() {
                log.new_file();
            }
            tracing::info!("store: append-only log compaction started");
            p.rewrite = Some(rw);
        }
        Err(e) => {
            tracing::error!("store: cannot start log compaction: {e}");
            engine.snapshot_end(false);
        }
    }
}

async fn executor(
    mut engine: Engine,
    mut rx: mpsc::Receiver<Msg>,
    mut stop: oneshot::Receiver<()>,
    mut persist: Option<Persist>,
) {
    let mut waiting: HashMap<ClientId, Pending> = HashMap::new();
    let mut tick = tokio::time::interval(EXPIRE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut finished = Vec::new();
        let block_wait = engine
            .next_block_deadline()
            .map(|d| Duration::from_millis(d.saturating_sub(engine.now())));
        let backlog = persist
            .as_ref()
            .and_then(|p| p.writer.as_ref())
            .is_some_and(Writer::has_backlog);
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(Msg::Batch { client, cmds, reply }) => {
                    let p = Pending {
                        reply,
                        done: Vec::with_capacity(cmds.len()),
                        rest: cmds.into(),
                    };
                    run_batch(&mut engine, client, p, &mut waiting, &mut finished);
                }
                Some(Msg::Disconnect(client)) => {
                    engine.disconnect(client);
                    waiting.remove(&client);
                }
                Some(Msg::Stats(reply)) => {
                    let k = engine.keyspace_stats();
                    let _ = reply.send(StoreStats {
                        keys: k.keys,
                        expires: k.expires,
                        used_memory: k.used_memory,
                        commands_processed: engine.commands_processed,
                        expired_keys: k.expired_keys,
                        connected_clients: 0,
                        evicted_keys: engine.evicted_keys,
                        maxmemory: engine.config.maxmemory,
                        aof_enabled: engine.log.is_some(),
                        aof_last_write_ok: engine
                            .log_health
                            .as_ref()
                            .is_none_or(|h| h.error().is_none()),
                        aof_rewrite_in_progress: engine.rewrite == RewriteState::Running,
                        aof_rewrites: engine.rewrites,
                        aof_size: persist
                            .as_ref()
                            .and_then(|p| p.writer.as_ref())
                            .map_or(0, |w| w.size),
                    });
                }
            },
            _ = &mut stop => break,
            _ = tick.tick() => engine.active_expire(),
            _ = sleep_opt(block_wait) => {
                let now = engine.now();
                engine.expire_blocked(now);
            }
            ev = rewrite_event(&mut persist) => match ev {
                RewriteEvent::Room(permit) => match engine.snapshot_step(SNAPSHOT_STEP) {
                    Some(chunk) => {
                        permit.send(chunk);
                    }
                    None => {
                        // Dropping the sender lets the snapshot thread finish the file.
                        if let Some(rw) = persist.as_mut().and_then(|p| p.rewrite.as_mut()) {
                            rw.tx = None;
                        }
                    }
                },
                RewriteEvent::Done(r) => {
                    let Some(p) = persist.as_mut() else { continue };
                    let Some(rw) = p.rewrite.take() else { continue };
                    match (r, p.writer.as_mut()) {
                        (Ok(size), Some(w)) => {
                            w.submit(engine.take_log(), Vec::new()).await;
                            p.installing = Some(w.finish_rewrite(&rw, size).await);
                        }
                        (r, _) => {
                            if let Err(e) = r {
                                tracing::error!("store: log compaction failed: {e}");
                            }
                            rw.discard();
                            engine.snapshot_end(false);
                        }
                    }
                }
                RewriteEvent::Installed(ok) => engine.snapshot_end(ok),
            },
            _ = tokio::time::sleep(Duration::from_millis(5)), if backlog => {}
        }
        // Resuming a batch can serve or block more clients, so drain until quiet.
        loop {
            let out = engine.take_outbox();
            if out.is_empty() {
                break;
            }
            for (client, r) in out {
                if let Some(mut p) = waiting.remove(&client) {
                    p.done.push(Outcome::Reply(r));
                    run_batch(&mut engine, client, p, &mut waiting, &mut finished);
                }
            }
        }
        deliver(&mut engine, &mut persist, finished).await;
        maybe_rewrite(&mut engine, &mut persist).await;
    }
    deliver(&mut engine, &mut persist, Vec::new()).await;
    if let Some(mut p) = persist {
        if let Some(rw) = p.rewrite.take() {
            rw.discard();
            engine.snapshot_end(false);
        }
        if let Some(w) = p.writer.take() {
            w.stop().await;
        }
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
