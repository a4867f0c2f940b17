//! The command executor: one owner of the keyspace and of every client's session state.
//!
//! All commands from all connections run here, one at a time, which gives Redis's
//! atomicity (every command, and every EXEC, sees no interleaving) without locks. The engine
//! is sans-I/O: it takes a client id and arguments and returns an [`Outcome`]; replies for
//! clients it parked on a blocking command come out later through [`Engine::take_outbox`].
//! It never awaits, sleeps or touches a socket, and it reads time only from its [`Clock`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::cmd::{self, Spec, DENYOOM, NOAUTH_OK, WRITE};
use crate::db::{Clock, Db, Rng, DB_COUNT};
use crate::propagate::{self, Log};
use crate::resp::Reply;
use crate::script::Scripting;

/// Identifies one connection.
pub type ClientId = u64;

/// Most commands one MULTI may queue; beyond it the transaction is refused at EXEC.
const MULTI_MAX_COMMANDS: usize = 100_000;
/// Most argument bytes one MULTI may queue.
const MULTI_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Most keys active expiry removes per database per tick, so a tick stays short.
const ACTIVE_EXPIRE_BUDGET: usize = 200;

/// Keys sampled per eviction (Redis's `maxmemory-samples` default).
const EVICTION_SAMPLES: usize = 5;
/// Most keys evicted before one command; a command that still finds memory over the limit
/// is refused (denyoom) or runs anyway, and the next one evicts more.
const EVICTION_BUDGET: usize = 1024;

/// Redis's reply when memory is full and nothing may be evicted.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// What happens when used memory exceeds `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxMemoryPolicy {
    /// Refuse commands that may grow memory (Redis's `denyoom` flag) with `-OOM`.
    #[default]
    NoEviction,
    /// Evict approximately least recently used keys.
    AllKeysLru,
    /// Evict approximately least recently used keys among those with a time to live.
    VolatileLru,
    /// Evict random keys.
    AllKeysRandom,
}

impl MaxMemoryPolicy {
    /// The name INFO and the configuration use.
    pub fn name(self) -> &'static str {
        match self {
            MaxMemoryPolicy::NoEviction => "noeviction",
            MaxMemoryPolicy::AllKeysLru => "allkeys-lru",
            MaxMemoryPolicy::VolatileLru => "volatile-lru",
            MaxMemoryPolicy::AllKeysRandom => "allkeys-random",
        }
    }

    /// Parses a policy name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            MaxMemoryPolicy::NoEviction,
            MaxMemoryPolicy::AllKeysLru,
            MaxMemoryPolicy::VolatileLru,
            MaxMemoryPolicy::AllKeysRandom,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }
}

/// Where log compaction stands, as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RewriteState {
    /// Nothing running.
    #[default]
    Idle,
    /// BGREWRITEAOF asked for one; the server starts it after the current batch.
    Requested,
    /// A snapshot is being written.
    Running,
}

/// Why the log cannot be written, shared between the writer thread and the engine.
#[derive(Debug, Default)]
pub struct LogHealth {
    failed: std::sync::atomic::AtomicBool,
    error: std::sync::Mutex<String>,
}

impl LogHealth {
    /// Records a write or fsync failure (write commands are refused until it clears).
    pub fn fail(&self, e: &std::io::Error) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
        self.failed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Records that writing works again.
    pub fn ok(&self) {
        self.failed
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// The last failure, while writing fails.
    pub fn error(&self) -> Option<String> {
        self.failed
            .load(std::sync::atomic::Ordering::Acquire)
            .then(|| self.error.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// What a command produced.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Send this reply.
    Reply(Reply),
    /// Send this reply, then close the connection (QUIT).
    Close(Reply),
    /// The client waits; its reply will come out of [`Engine::take_outbox`].
    Blocked,
    /// Nothing to send (empty request).
    Nothing,
}

/// How a blocked list command finishes once a key has data.
#[derive(Debug, Clone)]
pub enum BlockKind {
    /// BLPOP (`left`) / BRPOP: reply `[key, value]`.
    Pop {
        /// Pop from the head.
        left: bool,
    },
    /// BLMOVE / BRPOPLPUSH: pop from the key, push to `dst`, reply the value.
    Move {
        /// Destination list.
        dst: Bytes,
        /// Pop from the head of the source.
        from_left: bool,
        /// Push to the head of the destination.
        to_left: bool,
    },
}

/// A request to park the client, set by a blocking handler.
#[derive(Debug, Clone)]
pub struct BlockSpec {
    /// Keys waited on, in argument order.
    pub keys: Vec<Bytes>,
    /// Absolute deadline in ms, `None` to wait forever.
    pub deadline: Option<u64>,
    /// What to do when served.
    pub kind: BlockKind,
}

/// Per-command context handed to handlers.
#[derive(Debug)]
pub struct Ctx {
    /// The client running the command.
    pub client: ClientId,
    /// Selected database.
    pub db: usize,
    /// Current time in ms, fixed for the whole command.
    pub now: u64,
    /// True inside EXEC: blocking commands must answer at once.
    pub no_block: bool,
    /// Set by a blocking handler to park the client.
    pub block: Option<BlockSpec>,
    /// Set by QUIT.
    pub close: bool,
}

/// Session state of one connection.
#[derive(Debug, Default)]
pub struct Client {
    /// Selected database.
    pub db: usize,
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// Passed AUTH (or no password configured).
    pub authed: bool,
    /// Queued commands while in MULTI.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A queued command failed to queue: EXEC must abort.
    pub multi_dirty: bool,
    /// Argument bytes queued by the current MULTI.
    pub multi_bytes: usize,
    /// WATCHed keys: (db, key, live when watched).
    pub watched: Vec<(usize, Bytes, bool)>,
    /// A watched key was modified.
    pub watch_dirty: bool,
}

#[derive(Debug)]
struct Blocked {
    db: usize,
    spec: BlockSpec,
}

/// Figures for status pages and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyspaceStats {
    /// Keys per database (index = db number).
    pub keys: Vec<usize>,
    /// Keys with a deadline per database.
    pub expires: Vec<usize>,
    /// Rough bytes held by keys and values.
    pub used_memory: usize,
    /// Keys removed by expiry since start.
    pub expired_keys: u64,
}

/// Settings the engine needs.
#[derive(Clone)]
pub struct EngineConfig {
    /// Password for AUTH; `None` disables authentication.
    pub requirepass: Option<String>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Largest string value (SETRANGE, APPEND).
    pub max_bulk_len: usize,
    /// Memory limit in bytes for keys and values; 0 means none.
    pub maxmemory: usize,
    /// What to do above `maxmemory`.
    pub maxmemory_policy: MaxMemoryPolicy,
    /// How long one script may run before it is stopped.
    pub script_time_limit: std::time::Duration,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("requirepass", &self.requirepass.as_ref().map(|_| "<set>"))
            .field("max_bulk_len", &self.max_bulk_len)
            .field("maxmemory", &self.maxmemory)
            .field("maxmemory_policy", &self.maxmemory_policy)
            .field("script_time_limit", &self.script_time_limit)
            .finish()
    }
}

/// The executor state.
pub struct Engine {
    pub(crate) dbs: Vec<Db>,
    pub(crate) config: EngineConfig,
    pub(crate) clients: HashMap<ClientId, Client>,
    pub(crate) rng: Rng,
    pub(crate) scripting: Scripting,
    commands: HashMap<&'static str, &'static Spec>,
    watchers: HashMap<(usize, Bytes), HashSet<ClientId>>,
    waiting: HashMap<(usize, Bytes), VecDeque<ClientId>>,
    blocked: HashMap<ClientId, Blocked>,
    ready: Vec<(usize, Bytes)>,
    outbox: Vec<(ClientId, Reply)>,
    pub(crate) commands_processed: u64,
    pub(crate) expired_keys: u64,
    pub(crate) start_ms: u64,
    /// Changes made to the keyspace since start (every `touch` counts one).
    pub(crate) dirty: u64,
    /// Records for the append-only log, when it is on.
    pub(crate) log: Option<Log>,
    /// Health of the log writer, when the log is on.
    pub(crate) log_health: Option<Arc<LogHealth>>,
    /// Log compaction status (BGREWRITEAOF, INFO).
    pub(crate) rewrite: RewriteState,
    /// Completed log compactions since start.
    pub(crate) rewrites: u64,
    /// Replaying the log: time stands still at 0, so nothing expires and every recorded
    /// deadline is kept as recorded.
    loading: bool,
    /// Nesting of [`Engine::call`] (EXEC and scripts call commands from a command).
    depth: u32,
    /// Calls made from inside another call, to tell containers (EXEC) from plain commands.
    nested: u64,
    /// Position of the running snapshot: database and whether its SELECT was written.
    snapshot: Option<(usize, bool)>,
    /// Keys removed by eviction since start.
    pub(crate) evicted_keys: u64,
}

impl Engine {
    /// A fresh engine with empty databases.
    pub fn new(config: EngineConfig) -> Self {
        let now = config.clock.now_ms();
        let mut e = Engine {
            dbs: (0..DB_COUNT).map(|_| Db::default()).collect(),
            commands: cmd::COMMANDS.iter().map(|s| (s.name, s)).collect(),
            rng: Rng::new(now ^ 0x9e37_79b9_7f4a_7c15),
            scripting: Scripting::new(config.script_time_limit),
            config,
            clients: HashMap::new(),
            watchers: HashMap::new(),
            waiting: HashMap::new(),
            blocked: HashMap::new(),
            ready: Vec::new(),
            outbox: Vec::new(),
            commands_processed: 0,
            expired_keys: 0,
            start_ms: now,
            dirty: 0,
            log: None,
            log_health: None,
            rewrite: RewriteState::Idle,
            rewrites: 0,
            loading: false,
            depth: 0,
            nested: 0,
            snapshot: None,
            evicted_keys: 0,
        };
        if e.config.maxmemory > 0 && e.config.maxmemory_policy != MaxMemoryPolicy::NoEviction {
            for db in &mut e.dbs {
                db.enable_sampling();
            }
        }
        e
    }

    /// Current time from the engine's clock (0 while replaying the log).
    pub fn now(&self) -> u64 {
        if self.loading {
            return 0;
        }
        self.config.clock.now_ms()
    }

    fn client_mut(&mut self, id: ClientId) -> &mut Client {
        let authed = self.config.requirepass.is_none();
        self.clients.entry(id).or_insert_with(|| Client {
            authed,
            ..Client::default()
        })
    }

    /// Forgets a connection: its session, watches and any block it was parked on.
    pub fn disconnect(&mut self, id: ClientId) {
        self.unwatch_all(id);
        self.unblock(id);
        self.clients.remove(&id);
    }

    /// True when `id` may run commands (passed AUTH, or no password is configured).
    pub fn is_authed(&self, id: ClientId) -> bool {
        self.clients
            .get(&id)
            .map_or(self.config.requirepass.is_none(), |c| c.authed)
    }

    /// Number of known sessions.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Runs one request from `client`.
    pub fn execute(&mut self, client: ClientId, args: Vec<Bytes>) -> Outcome {
        if args.is_empty() {
            return Outcome::Nothing;
        }
        self.commands_processed += 1;
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let spec = self.commands.get(name.as_str()).copied();
        let in_multi = self.client_mut(client).multi.is_some();
        let Some(spec) = spec else {
            return self.reject_in_multi(client, in_multi, unknown_command(&args));
        };
        if !arity_ok(spec, args.len()) {
            return self.reject_in_multi(
                client,
                in_multi,
                Reply::Error(format!(
                    "ERR wrong number of arguments for '{}' command",
                    spec.name
                )),
            );
        }
        if !self.client_mut(client).authed && spec.flags & NOAUTH_OK == 0 {
            return self.reject_in_multi(
                client,
                in_multi,
                cmd::err("NOAUTH Authentication required."),
            );
        }
        if in_multi && !matches!(spec.name, "exec" | "discard" | "multi" | "watch" | "quit") {
            let c = self.client_mut(client);
            let size: usize = args.iter().map(|a| a.len() + 16).sum();
            let queued = c.multi.as_ref().map_or(0, Vec::len);
            if queued >= MULTI_MAX_COMMANDS || c.multi_bytes + size > MULTI_MAX_BYTES {
                c.multi_dirty = true;
                return Outcome::Reply(cmd::err("ERR MULTI queue is full"));
            }
            c.multi_bytes += size;
            if let Some(q) = c.multi.as_mut() {
                q.push(args);
            }
            return Outcome::Reply(Reply::Simple("QUEUED"));
        }
        let mut ctx = self.ctx(client, false);
        let reply = self.call(spec, &mut ctx, &args);
        self.client_mut(client).db = ctx.db;
        self.after_command();
        if let Some(block) = ctx.block.take() {
            self.park(client, ctx.db, block);
            return Outcome::Blocked;
        }
        if ctx.close {
            return Outcome::Close(reply);
        }
        Outcome::Reply(reply)
    }

    /// Runs one command whose name, arity and permission were checked: the one place every
    /// command passes through (direct, inside EXEC, and from scripts), so whatever must see
    /// every executed command (the append-only log, memory limits) hooks in here.
    /// `args` includes the command name.
    ///
    /// Order: eviction (or the OOM refusal), the handler, size accounting, then the log
    /// records (keys the command found expired first, as DEL, then the command's own
    /// records). A call that made calls of its own (EXEC, a script) is logged as the records
    /// of those calls, wrapped in MULTI/EXEC.
    pub(crate) fn call(&mut self, spec: &'static Spec, ctx: &mut Ctx, args: &[Bytes]) -> Reply {
        let top = self.depth == 0;
        if !self.loading {
            if self.config.maxmemory > 0 && !self.free_memory() && spec.flags & DENYOOM != 0 {
                self.finish_unit(top, false);
                return cmd::err(OOM);
            }
            if spec.flags & WRITE != 0 {
                if let Some(e) = self.log_health.as_ref().and_then(|h| h.error()) {
                    self.finish_unit(top, false);
                    return Reply::Error(format!("MISCONF Errors writing to the AOF file: {e}"));
                }
            }
        }
        if self.log.is_none() {
            let reply = (spec.handler)(self, ctx, &args[1..]).unwrap_or_else(|e| e);
            self.settle();
            return reply;
        }
        let db = ctx.db;
        let dirty = self.dirty;
        let expired_before = self.dbs[db].expired.len();
        if !top {
            self.nested += 1;
        }
        let mark = self.nested;
        self.depth += 1;
        let reply = (spec.handler)(self, ctx, &args[1..]).unwrap_or_else(|e| e);
        self.depth -= 1;
        self.settle();
        let container = self.nested != mark;
        if !container {
            let expired: Vec<Bytes> = self.dbs[db]
                .expired
                .get(expired_before..)
                .map(<[Bytes]>::to_vec)
                .unwrap_or_default();
            let records = if self.dirty != dirty {
                propagate::rewrite(&self.dbs[db], db, spec.name, args, &reply)
            } else {
                Vec::new()
            };
            if let Some(log) = self.log.as_mut() {
                for k in expired {
                    log.push(db, vec![Bytes::from_static(b"DEL"), k]);
                }
                for (d, r) in records {
                    log.push(d, r);
                }
            }
        }
        self.finish_unit(top, container);
        reply
    }

    fn finish_unit(&mut self, top: bool, wrap: bool) {
        if top {
            if let Some(log) = self.log.as_mut() {
                log.finish_unit(wrap);
            }
        }
    }

    /// Brings the used-memory figure up to date with entries changed in place.
    fn settle(&mut self) {
        for db in &mut self.dbs {
            db.settle();
        }
    }

    /// Bytes held by keys and values, all databases.
    pub fn used_memory(&self) -> usize {
        self.dbs.iter().map(Db::used_memory).sum()
    }

    /// Evicts keys until used memory is within `maxmemory`; false when it cannot.
    fn free_memory(&mut self) -> bool {
        let limit = self.config.maxmemory;
        let policy = self.config.maxmemory_policy;
        if self.used_memory() <= limit {
            return true;
        }
        if policy == MaxMemoryPolicy::NoEviction {
            return false;
        }
        for _ in 0..EVICTION_BUDGET {
            let filled: Vec<usize> = (0..self.dbs.len())
                .filter(|&d| !self.dbs[d].is_empty())
                .collect();
            if filled.is_empty() {
                return false;
            }
            let mut best: Option<(usize, Bytes, u64)> = None;
            for _ in 0..EVICTION_SAMPLES {
                let d = filled[self.rng.below(filled.len())];
                let Some((k, lru, volatile)) = self.dbs[d].sample_key(&mut self.rng) else {
                    continue;
                };
                if policy == MaxMemoryPolicy::VolatileLru && !volatile {
                    continue;
                }
                if best.as_ref().is_none_or(|(_, _, b)| lru < *b) {
                    best = Some((d, k, lru));
                }
                if policy == MaxMemoryPolicy::AllKeysRandom {
                    break;
                }
            }
            let Some((d, key, _)) = best else {
                // volatile-lru found no key with a time to live in its samples.
                return false;
            };
            self.dbs[d].remove(&key);
            self.evicted_keys += 1;
            self.touch(d, &key);
            if let Some(log) = self.log.as_mut() {
                log.push(d, vec![Bytes::from_static(b"DEL"), key]);
            }
            if self.used_memory() <= limit {
                return true;
            }
        }
        self.used_memory() <= limit
    }

    fn reject_in_multi(&mut self, client: ClientId, in_multi: bool, reply: Reply) -> Outcome {
        if in_multi {
            self.client_mut(client).multi_dirty = true;
        }
        Outcome::Reply(reply)
    }

    fn ctx(&mut self, client: ClientId, no_block: bool) -> Ctx {
        let now = self.now();
        Ctx {
            client,
            db: self.client_mut(client).db,
            now,
            no_block,
            block: None,
            close: false,
        }
    }

    /// Runs the commands queued by MULTI (EXEC's body). The caller checked WATCH and errors.
    pub(crate) fn run_queued(&mut self, client: ClientId, queued: Vec<Vec<Bytes>>) -> Reply {
        let mut replies = Vec::with_capacity(queued.len());
        let mut ctx = self.ctx(client, true);
        for args in queued {
            let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
            let Some(spec) = self.commands.get(name.as_str()).copied() else {
                replies.push(unknown_command(&args));
                continue;
            };
            ctx.now = self.now();
            let r = self.call(spec, &mut ctx, &args);
            replies.push(r);
        }
        self.client_mut(client).db = ctx.db;
        Reply::Array(replies)
    }

    /// Records that `key` in `db` changed: counts the change, invalidates WATCHes and wakes
    /// blocked readers.
    pub fn touch(&mut self, db: usize, key: &Bytes) {
        self.dirty += 1;
        if self.watchers.is_empty() && self.waiting.is_empty() {
            return;
        }
        let k = (db, key.clone());
        if let Some(ws) = self.watchers.get(&k) {
            let ws: Vec<ClientId> = ws.iter().copied().collect();
            for w in ws {
                if let Some(c) = self.clients.get_mut(&w) {
                    c.watch_dirty = true;
                }
            }
        }
        if self.waiting.contains_key(&k) {
            self.ready.push(k);
        }
    }

    /// Invalidates WATCHes on every key of `db` (FLUSHDB, FLUSHALL).
    pub fn touch_all(&mut self, db: Option<usize>) {
        self.dirty += 1;
        let dirty: Vec<ClientId> = self
            .watchers
            .iter()
            .filter(|((d, _), _)| db.is_none_or(|x| x == *d))
            .flat_map(|(_, ws)| ws.iter().copied())
            .collect();
        for w in dirty {
            if let Some(c) = self.clients.get_mut(&w) {
                c.watch_dirty = true;
            }
        }
    }

    /// Adds a WATCH on `key` for `client`.
    pub fn watch(&mut self, client: ClientId, db: usize, key: Bytes, now: u64) {
        // Watching a key twice is one watch, so repeated WATCH cannot grow the list.
        if self
            .clients
            .get(&client)
            .is_some_and(|c| c.watched.iter().any(|(d, k, _)| *d == db && *k == key))
        {
            return;
        }
        let live = self.dbs[db].is_live(&key, now);
        self.watchers
            .entry((db, key.clone()))
            .or_default()
            .insert(client);
        self.client_mut(client).watched.push((db, key, live));
    }

    /// Drops every WATCH of `client`.
    pub fn unwatch_all(&mut self, client: ClientId) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        let watched = std::mem::take(&mut c.watched);
        c.watch_dirty = false;
        for (db, key, _) in watched {
            let k = (db, key);
            if let Some(ws) = self.watchers.get_mut(&k) {
                ws.remove(&client);
                if ws.is_empty() {
                    self.watchers.remove(&k);
                }
            }
        }
    }

    /// True when EXEC must fail for `client` because a watched key changed or expired.
    pub fn watch_broken(&mut self, client: ClientId, now: u64) -> bool {
        let Some(c) = self.clients.get(&client) else {
            return false;
        };
        c.watch_dirty
            || c.watched
                .iter()
                .any(|(db, k, live)| *live && !self.dbs[*db].is_live(k, now))
    }

    /// Drains keys removed by expiry (watchers hear of them) and serves blocked clients.
    fn after_command(&mut self) {
        for db in 0..self.dbs.len() {
            if self.dbs[db].expired.is_empty() {
                continue;
            }
            let expired = std::mem::take(&mut self.dbs[db].expired);
            self.expired_keys += expired.len() as u64;
            for k in expired {
                self.touch(db, &k);
            }
        }
        self.serve_ready();
    }

    fn park(&mut self, client: ClientId, db: usize, spec: BlockSpec) {
        for k in &spec.keys {
            let q = self.waiting.entry((db, k.clone())).or_default();
            if !q.contains(&client) {
                q.push_back(client);
            }
        }
        self.blocked.insert(client, Blocked { db, spec });
    }

    fn unblock(&mut self, client: ClientId) -> Option<Blocked> {
        let b = self.blocked.remove(&client)?;
        for k in &b.spec.keys {
            let key = (b.db, k.clone());
            if let Some(q) = self.waiting.get_mut(&key) {
                q.retain(|c| *c != client);
                if q.is_empty() {
                    self.waiting.remove(&key);
                }
            }
        }
        Some(b)
    }

    /// Serves clients blocked on keys that received data, oldest waiter first.
    fn serve_ready(&mut self) {
        while !self.ready.is_empty() {
            let ready = std::mem::take(&mut self.ready);
            for (db, key) in ready {
                loop {
                    let Some(&client) =
                        self.waiting.get(&(db, key.clone())).and_then(|q| q.front())
                    else {
                        break;
                    };
                    let now = self.now();
                    let has_data = matches!(
                        cmd::get_list(&mut self.dbs[db], &key, now),
                        Ok(Some(l)) if !l.is_empty()
                    );
                    if !has_data {
                        break;
                    }
                    let Some(b) = self.unblock(client) else {
                        break;
                    };
                    let dirty = self.dirty;
                    let reply = cmd::list::serve_blocked(self, db, &key, &b.spec.kind, now);
                    self.settle();
                    if self.dirty != dirty {
                        if let Some(log) = self.log.as_mut() {
                            log.push(db, propagate::served(&key, &b.spec.kind));
                            log.finish_unit(false);
                        }
                    }
                    self.outbox.push((client, reply));
                }
            }
            // Serving a BLMOVE pushes to its destination, which may wake more clients.
            for db in 0..self.dbs.len() {
                let expired = std::mem::take(&mut self.dbs[db].expired);
                for k in expired {
                    self.touch(db, &k);
                }
            }
        }
    }

    /// Times out blocked clients whose deadline has passed (their reply is a nil array).
    pub fn expire_blocked(&mut self, now: u64) {
        let due: Vec<ClientId> = self
            .blocked
            .iter()
            .filter(|(_, b)| b.spec.deadline.is_some_and(|d| d <= now))
            .map(|(c, _)| *c)
            .collect();
        for c in due {
            self.unblock(c);
            self.outbox.push((c, Reply::NilArray));
        }
    }

    /// Number of clients parked on a blocking command.
    pub fn blocked_count(&self) -> usize {
        self.blocked.len()
    }

    /// Earliest deadline among blocked clients.
    pub fn next_block_deadline(&self) -> Option<u64> {
        self.blocked.values().filter_map(|b| b.spec.deadline).min()
    }

    /// Replies for clients that were blocked and are now served or timed out.
    pub fn take_outbox(&mut self) -> Vec<(ClientId, Reply)> {
        std::mem::take(&mut self.outbox)
    }

    /// Active expiry: removes keys whose deadline passed, a bounded amount per database.
    pub fn active_expire(&mut self) {
        let now = self.now();
        for (i, db) in self.dbs.iter_mut().enumerate() {
            let before = db.expired.len();
            db.expire_due(now, ACTIVE_EXPIRE_BUDGET);
            if let Some(log) = self.log.as_mut() {
                for k in &db.expired[before..] {
                    log.push(i, vec![Bytes::from_static(b"DEL"), k.clone()]);
                }
                log.finish_unit(false);
            }
        }
        self.after_command();
    }

    /// Starts recording changes for the append-only log.
    pub fn enable_log(&mut self, health: Arc<LogHealth>) {
        self.log = Some(Log::default());
        self.log_health = Some(health);
    }

    /// Records waiting for the log writer.
    pub fn take_log(&mut self) -> Vec<u8> {
        self.log.as_mut().map(Log::take).unwrap_or_default()
    }

    /// Bytes appended to the log since start.
    pub fn log_appended(&self) -> u64 {
        self.log.as_ref().map_or(0, |l| l.appended)
    }

    /// Enters or leaves replay mode (see [`Engine::replay`]). Leaving removes every key
    /// whose deadline passed (as DEL records when the log is on), as Redis does after
    /// loading.
    pub fn set_loading(&mut self, loading: bool) {
        self.loading = loading;
        if !loading {
            let now = self.now();
            for (i, db) in self.dbs.iter_mut().enumerate() {
                db.expire_due(now, usize::MAX);
                let expired = std::mem::take(&mut db.expired);
                self.expired_keys += expired.len() as u64;
                if let Some(log) = self.log.as_mut() {
                    for k in expired {
                        log.push(i, vec![Bytes::from_static(b"DEL"), k]);
                    }
                    log.finish_unit(false);
                }
            }
        }
    }

    /// Applies one command read back from the log, in database `*db` (SELECT changes it).
    /// Returns the command's error reply, if it failed.
    pub fn replay(&mut self, db: &mut usize, args: &[Bytes]) -> Result<(), String> {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let Some(spec) = self.spec(&name) else {
            return Err(format!("unknown command '{name}'"));
        };
        if !arity_ok(spec, args.len()) {
            return Err(format!("wrong number of arguments for '{name}'"));
        }
        let mut ctx = Ctx {
            client: 0,
            db: *db,
            now: 0,
            no_block: true,
            block: None,
            close: false,
        };
        let reply = self.call(spec, &mut ctx, args);
        *db = ctx.db;
        for d in &mut self.dbs {
            d.expired.clear();
        }
        match reply {
            Reply::Error(e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Starts a keyspace snapshot for log compaction: from here on, changes keep the values
    /// the snapshot still needs (see [`Db::snapshot_begin`]).
    pub fn snapshot_begin(&mut self) {
        for db in &mut self.dbs {
            db.snapshot_begin();
        }
        self.snapshot = Some((0, false));
        self.rewrite = RewriteState::Running;
    }

    /// The next part of the snapshot as log records, about `budget` bytes; `None` once the
    /// snapshot is complete.
    pub fn snapshot_step(&mut self, budget: usize) -> Option<Vec<u8>> {
        let (mut d, mut selected) = self.snapshot?;
        let mut out = Vec::new();
        while out.len() < budget {
            if d >= self.dbs.len() {
                self.snapshot = None;
                return if out.is_empty() { None } else { Some(out) };
            }
            let entries = self.dbs[d].snapshot_step(16);
            if entries.is_empty() {
                d += 1;
                selected = false;
                continue;
            }
            if !selected {
                propagate::encode_select(&mut out, d);
                selected = true;
            }
            for e in &entries {
                propagate::encode_entry(&mut out, e);
            }
        }
        self.snapshot = Some((d, selected));
        Some(out)
    }

    /// Ends log compaction (`ok`: it completed), freeing anything a snapshot kept.
    pub fn snapshot_end(&mut self, ok: bool) {
        for db in &mut self.dbs {
            db.snapshot_abort();
        }
        self.snapshot = None;
        self.rewrite = RewriteState::Idle;
        if ok {
            self.rewrites += 1;
        }
    }

    /// Counts per database and the memory figure.
    ///
    /// Status pages poll this every second, so it must not walk the keyspace: every figure
    /// is a counter kept up to date by the databases.
    pub fn keyspace_stats(&self) -> KeyspaceStats {
        let used_memory = self.used_memory();
        KeyspaceStats {
            keys: self.dbs.iter().map(Db::len).collect(),
            expires: self.dbs.iter().map(Db::volatile_len).collect(),
            used_memory,
            expired_keys: self.expired_keys,
        }
    }

    /// Looks a command up by lowercase name.
    pub(crate) fn spec(&self, name: &str) -> Option<&'static Spec> {
        self.commands.get(name).copied()
    }
}

/// True when `n` arguments (name included) fit the command's arity.
pub(crate) fn arity_ok(spec: &Spec, n: usize) -> bool {
    let n = n as i32;
    if spec.arity >= 0 {
        n == spec.arity
    } else {
        n >= -spec.arity
    }
}

/// Redis 7's unknown-command error, arguments quoted and cut like Redis cuts them.
fn unknown_command(args: &[Bytes]) -> Reply {
    let name = String::from_utf8_lossy(&args[0]);
    let name: String = name.chars().take(128).collect();
    let mut rest = String::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let a = String::from_utf8_lossy(a);
        let room = 128 - rest.len();
        let cut: String = a.chars().take(room).collect();
        rest.push_str(&format!("'{cut}' "));
    }
    Reply::Error(format!(
        "ERR unknown command '{name}', with args beginning with: {rest}"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::db::ManualClock;

    pub(crate) fn engine(clock: Arc<ManualClock>) -> Engine {
        Engine::new(EngineConfig {
            requirepass: None,
            clock,
            max_bulk_len: 512 * 1024 * 1024,
            maxmemory: 0,
            maxmemory_policy: MaxMemoryPolicy::NoEviction,
            script_time_limit: crate::script::DEFAULT_TIME_LIMIT,
        })
    }

    pub(crate) fn run(e: &mut Engine, c: ClientId, line: &str) -> Outcome {
        let args = crate::resp::split_args(line.as_bytes()).unwrap();
        e.execute(c, args)
    }

    pub(crate) fn reply(e: &mut Engine, c: ClientId, line: &str) -> String {
        match run(e, c, line) {
            Outcome::Reply(r) | Outcome::Close(r) => {
                String::from_utf8_lossy(&r.to_bytes()).into_owned()
            }
            o => format!("{o:?}"),
        }
    }

    /// One SCAN-family call: (next cursor, returned elements; for HSCAN/ZSCAN only the
    /// fields/members).
    fn scan_call(e: &mut Engine, line: &str, pairs: bool) -> (u64, Vec<Vec<u8>>) {
        let Outcome::Reply(Reply::Array(parts)) = run(e, 1, line) else {
            panic!("{line}: not an array");
        };
        let [Reply::Bulk(cursor), Reply::Array(items)] = &parts[..] else {
            panic!("{line}: {parts:?}");
        };
        let cursor: u64 = std::str::from_utf8(cursor).unwrap().parse().unwrap();
        let items = items
            .iter()
            .step_by(if pairs { 2 } else { 1 })
            .map(|r| match r {
                Reply::Bulk(b) => b.to_vec(),
                r => panic!("{line}: {r:?}"),
            })
            .collect();
        (cursor, items)
    }

    /// Iterates a whole SCAN-family command with COUNT `count`, adding and removing other
    /// elements between calls; returns every element seen.
    fn iterate_while_churning(
        e: &mut Engine,
        cmd: &str,
        count: usize,
        pairs: bool,
        churn: &dyn Fn(&mut Engine, usize),
    ) -> std::collections::HashSet<Vec<u8>> {
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0u64;
        for round in 0.. {
            let (next, items) = scan_call(e, &format!("{cmd} {cursor} COUNT {count}"), pairs);
            assert!(next < 1 << 63, "{cmd}: cursor {next} does not fit an i64");
            assert!(
                next < 1 << crate::db::SCAN_HASH_BITS,
                "{cmd}: cursor {next}"
            );
            seen.extend(items);
            if next == 0 {
                break;
            }
            assert!(round < 10_000, "{cmd}: never ends");
            churn(e, round);
            cursor = next;
        }
        seen
    }

    #[test]
    fn scans_return_everything_present_throughout_with_small_cursors() {
        for count in 1..=10 {
            let mut e = engine(ManualClock::new(0));
            for i in 0..300 {
                reply(&mut e, 1, &format!("SET stay{i} v"));
                reply(&mut e, 1, &format!("SET gone{i} v"));
                reply(&mut e, 1, &format!("HSET h stay{i} v gone{i} v"));
                reply(&mut e, 1, &format!("SADD s stay{i} gone{i}"));
                reply(&mut e, 1, &format!("ZADD z {i} stay{i} {i} gone{i}"));
            }
            let churn = |e: &mut Engine, round: usize| {
                // Grow and shrink every container between calls, so tables rehash; stop
                // after a while, or COUNT 1 would never catch up with the growth.
                if round >= 30 {
                    return;
                }
                for j in 0..20 {
                    let n = round * 20 + j;
                    reply(e, 1, &format!("SET new{n} v"));
                    reply(e, 1, &format!("HSET h new{n} v"));
                    reply(e, 1, &format!("SADD s new{n}"));
                    reply(e, 1, &format!("ZADD z {n} new{n}"));
                }
                for j in 0..3 {
                    let n = (round * 3 + j) % 300;
                    reply(e, 1, &format!("DEL gone{n}"));
                    reply(e, 1, &format!("HDEL h gone{n}"));
                    reply(e, 1, &format!("SREM s gone{n}"));
                    reply(e, 1, &format!("ZREM z gone{n}"));
                }
            };
            for (cmd, pairs) in [
                ("SCAN", false),
                ("HSCAN h", true),
                ("SSCAN s", false),
                ("ZSCAN z", true),
            ] {
                let seen = iterate_while_churning(&mut e, cmd, count, pairs, &churn);
                for i in 0..300 {
                    let k = format!("stay{i}").into_bytes();
                    assert!(seen.contains(&k), "{cmd} COUNT {count}: stay{i} missing");
                }
            }
        }
    }

    #[test]
    fn command_info_flags_in_redis_order() {
        let mut e = engine(ManualClock::new(0));
        let r = reply(&mut e, 1, "COMMAND INFO getset blmove");
        assert!(
            r.starts_with("*2\r\n*10\r\n$6\r\ngetset\r\n:3\r\n*2\r\n+write\r\n+denyoom\r\n"),
            "{r}"
        );
        assert!(
            r.contains(
                "$6\r\nblmove\r\n:6\r\n*4\r\n+write\r\n+denyoom\r\n+noscript\r\n+blocking\r\n"
            ),
            "{r}"
        );
    }

    #[test]
    fn ttl_moves_with_the_clock() {
        let clock = ManualClock::new(1_000_000);
        let mut e = engine(clock.clone());
        assert_eq!(reply(&mut e, 1, "SET k v PX 1500"), "+OK\r\n");
        assert_eq!(reply(&mut e, 1, "PTTL k"), ":1500\r\n");
        clock.advance(1000);
        assert_eq!(reply(&mut e, 1, "TTL k"), ":1\r\n");
        clock.advance(500);
        assert_eq!(reply(&mut e, 1, "GET k"), "$-1\r\n");
        assert_eq!(reply(&mut e, 1, "DBSIZE"), ":0\r\n");
    }

    #[test]
    fn active_expiry_removes_untouched_keys() {
        let clock = ManualClock::new(1_000_000);
        let mut e = engine(clock.clone());
        for i in 0..50 {
            reply(&mut e, 1, &format!("SET k{i} v PX 10"));
        }
        reply(&mut e, 1, "SET keep v");
        clock.advance(10);
        e.active_expire();
        assert_eq!(reply(&mut e, 1, "DBSIZE"), ":1\r\n");
        assert_eq!(e.keyspace_stats().expired_keys, 50);
    }

    #[test]
    fn watch_is_broken_by_expiry() {
        let clock = ManualClock::new(1_000_000);
        let mut e = engine(clock.clone());
        reply(&mut e, 1, "SET k v PX 10");
        reply(&mut e, 1, "WATCH k");
        reply(&mut e, 1, "MULTI");
        reply(&mut e, 1, "SET x 1");
        clock.advance(20);
        assert_eq!(reply(&mut e, 1, "EXEC"), "*-1\r\n");
    }

    #[test]
    fn watch_twice_is_one_watch_and_multi_queue_is_bounded() {
        let clock = ManualClock::new(1_000_000);
        let mut e = engine(clock);
        for _ in 0..1000 {
            reply(&mut e, 1, "WATCH k");
        }
        assert_eq!(e.clients[&1].watched.len(), 1);
        reply(&mut e, 1, "MULTI");
        for _ in 0..MULTI_MAX_COMMANDS {
            assert_eq!(reply(&mut e, 1, "PING"), "+QUEUED\r\n");
        }
        assert_eq!(reply(&mut e, 1, "PING"), "-ERR MULTI queue is full\r\n");
        assert_eq!(
            reply(&mut e, 1, "EXEC"),
            "-EXECABORT Transaction discarded because of previous errors.\r\n"
        );
        assert!(e.clients[&1].multi.is_none());
    }

    #[test]
    fn disconnect_while_blocked_leaves_no_waiter() {
        let clock = ManualClock::new(1_000_000);
        let mut e = engine(clock);
        assert_eq!(run(&mut e, 1, "BLPOP q 0"), Outcome::Blocked);
        assert_eq!(run(&mut e, 2, "BLPOP q 0"), Outcome::Blocked);
        e.disconnect(1);
        reply(&mut e, 3, "RPUSH q v");
        assert_eq!(e.take_outbox().len(), 1);
        assert_eq!(e.blocked_count(), 0);
        assert_eq!(reply(&mut e, 3, "LLEN q"), ":0\r\n");
    }

    #[test]
    fn blocked_clients_served_in_arrival_order() {
        let clock = ManualClock::new(1_000_000);
        let mut e = engine(clock.clone());
        assert_eq!(run(&mut e, 1, "BLPOP q 0"), Outcome::Blocked);
        assert_eq!(run(&mut e, 2, "BLPOP q 0"), Outcome::Blocked);
        assert_eq!(run(&mut e, 3, "BLPOP q 5"), Outcome::Blocked);
        assert_eq!(reply(&mut e, 9, "RPUSH q a b"), ":2\r\n");
        let out = e.take_outbox();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, 1);
        assert_eq!(out[1].0, 2);
        assert_eq!(e.next_block_deadline(), Some(1_005_000));
        clock.advance(5000);
        e.expire_blocked(clock.now_ms());
        assert_eq!(e.take_outbox(), vec![(3, Reply::NilArray)]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod log_tests {
    use super::tests::{engine, reply, run};
    use super::*;
    use crate::db::ManualClock;
    use crate::propagate::{parse, Parsed};

    fn logged(e: &mut Engine) -> Vec<String> {
        let buf = e.take_log();
        let mut out = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            let Parsed::Command(args, used) = parse(&buf[at..]) else {
                panic!("bad record at {at}");
            };
            at += used;
            out.push(
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        out
    }

    fn logging(clock: Arc<ManualClock>) -> Engine {
        let mut e = engine(clock);
        e.enable_log(Arc::new(LogHealth::default()));
        e
    }

    #[test]
    fn records_are_deterministic_forms() {
        let clock = ManualClock::new(1_000_000);
        let mut e = logging(clock.clone());
        for l in [
            "SET a 1 EX 10",
            "GET a",
            "DEL missing",
            "EXPIRE a 20",
            "SETEX b 5 v",
            "INCRBYFLOAT f 1.5",
            "HINCRBYFLOAT h x 0.5",
            "SADD s m",
            "SPOP s",
            "SET c v NX",
            "SET c w NX",
            "SELECT 2",
            "RPUSH q x",
            "BLPOP q 0",
            "GETEX c PERSIST",
        ] {
            reply(&mut e, 1, l);
        }
        assert_eq!(
            logged(&mut e),
            [
                "SELECT 0",
                "SET a 1 PXAT 1010000",
                "PEXPIREAT a 1020000",
                "SET b v PXAT 1005000",
                "SET f 1.5 KEEPTTL",
                "HSET h x 0.5",
                "SADD s m",
                "SREM s m",
                "SET c v",
                "SELECT 2",
                "RPUSH q x",
                "LPOP q",
            ]
        );
    }

    #[test]
    fn transactions_are_wrapped_and_expiry_is_a_del() {
        let clock = ManualClock::new(1_000_000);
        let mut e = logging(clock.clone());
        reply(&mut e, 1, "SET t v PX 10");
        reply(&mut e, 1, "MULTI");
        reply(&mut e, 1, "INCR n");
        reply(&mut e, 1, "GET n");
        reply(&mut e, 1, "SELECT 1");
        reply(&mut e, 1, "INCR n");
        reply(&mut e, 1, "EXEC");
        // A transaction that changes nothing leaves no record.
        reply(&mut e, 1, "MULTI");
        reply(&mut e, 1, "GET n");
        reply(&mut e, 1, "EXEC");
        clock.advance(20);
        reply(&mut e, 1, "SELECT 0");
        reply(&mut e, 1, "SET t w NX");
        assert_eq!(
            logged(&mut e),
            [
                "SELECT 0",
                "SET t v PXAT 1000010",
                "MULTI",
                "INCR n",
                "SELECT 1",
                "INCR n",
                "EXEC",
                "SELECT 0",
                "DEL t",
                "SET t w",
            ]
        );
        assert_eq!(run(&mut e, 2, "BLPOP q 0"), Outcome::Blocked);
        reply(&mut e, 1, "LPUSH q a b");
        assert_eq!(logged(&mut e), ["LPUSH q a b", "LPOP q"]);
    }

    /// Live keys with value and deadline, sorted: what a replay must reproduce.
    fn live(e: &mut Engine) -> Vec<String> {
        let now = e.now();
        let mut out = Vec::new();
        for (i, db) in e.dbs.iter().enumerate() {
            for (k, en) in db.entries() {
                if en.expire_at.is_some_and(|t| t <= now) {
                    continue;
                }
                let v = match &en.value {
                    crate::db::Value::Str(s) => format!("{s:?}"),
                    crate::db::Value::List(l) => format!("{l:?}"),
                    crate::db::Value::Hash(h) => {
                        let mut v: Vec<_> = h.iter().collect();
                        v.sort();
                        format!("{v:?}")
                    }
                    crate::db::Value::Set(s) => {
                        let mut v: Vec<_> = s.iter().collect();
                        v.sort();
                        format!("{v:?}")
                    }
                    crate::db::Value::ZSet(z) => format!("{:?}", z.order),
                };
                out.push(format!("{i} {k:?} {v} {:?}", en.expire_at));
            }
        }
        out.sort();
        out
    }

    fn limited(max: usize, policy: MaxMemoryPolicy) -> Engine {
        Engine::new(EngineConfig {
            requirepass: None,
            clock: ManualClock::new(1_000_000),
            max_bulk_len: 512 * 1024 * 1024,
            maxmemory: max,
            maxmemory_policy: policy,
            script_time_limit: crate::script::DEFAULT_TIME_LIMIT,
        })
    }

    #[test]
    fn volatile_lru_evicts_only_keys_with_a_ttl_and_random_evicts_any() {
        let mut e = limited(20_000, MaxMemoryPolicy::VolatileLru);
        e.enable_log(Arc::new(LogHealth::default()));
        let v = "x".repeat(200);
        for i in 0..40 {
            assert_eq!(reply(&mut e, 1, &format!("SET keep{i} {v}")), "+OK\r\n");
        }
        for i in 0..200 {
            reply(&mut e, 1, &format!("SET tmp{i} {v} EX 100"));
        }
        assert!(e.used_memory() <= 20_000 + 400);
        for i in 0..40 {
            assert_eq!(reply(&mut e, 1, &format!("EXISTS keep{i}")), ":1\r\n");
        }
        assert!(e.evicted_keys > 100);
        // Evictions are logged as deletions, so a replay evicts the same keys.
        assert!(logged(&mut e).iter().any(|l| l.starts_with("DEL tmp")));
        // Only keys without a TTL left: nothing may be evicted, writes are refused.
        for i in 0..60 {
            reply(&mut e, 1, &format!("SET more{i} {v}"));
        }
        assert_eq!(reply(&mut e, 1, "SET x y"), format!("-{OOM}\r\n"));
        assert_eq!(reply(&mut e, 1, "DEL keep0"), ":1\r\n");

        let mut r = limited(20_000, MaxMemoryPolicy::AllKeysRandom);
        for i in 0..300 {
            assert_eq!(reply(&mut r, 1, &format!("SET k{i} {v}")), "+OK\r\n");
        }
        assert!(r.used_memory() <= 20_000 + 400);
        assert!(r.evicted_keys > 200);
    }

    fn replay_all(r: &mut Engine, log: &[u8]) {
        let mut db = 0;
        let mut at = 0;
        while at < log.len() {
            let Parsed::Command(args, used) = parse(&log[at..]) else {
                panic!("bad log at {at}")
            };
            at += used;
            r.replay(&mut db, &args).unwrap();
        }
    }

    #[test]
    fn a_snapshot_is_the_keyspace_of_its_start_despite_changes() {
        let clock = ManualClock::new(1_000_000);
        let mut e = logging(clock.clone());
        reply(&mut e, 2, "SELECT 1");
        for i in 0..300 {
            reply(&mut e, 1, &format!("SET k{i} v{i}"));
            reply(&mut e, 1, &format!("RPUSH l{i} a b"));
            reply(&mut e, 1, &format!("HSET h{} f{i} {i}", i % 10));
            reply(&mut e, 1, &format!("ZADD z {i} m{i}"));
            reply(&mut e, 2, &format!("SADD s{} m{i}", i % 7));
            if i % 3 == 0 {
                reply(&mut e, 1, &format!("PEXPIRE k{i} 100000"));
            }
        }
        let expected = live(&mut e);
        e.take_log();
        e.snapshot_begin();
        let mut snap = Vec::new();
        let mut i = 0;
        while let Some(chunk) = e.snapshot_step(300) {
            snap.extend(chunk);
            reply(&mut e, 1, &format!("SET k{i} changed"));
            reply(&mut e, 1, &format!("DEL l{}", 299 - i));
            reply(&mut e, 1, &format!("RPUSH l{i} more"));
            reply(&mut e, 1, &format!("HSET h{} extra 1", i % 10));
            reply(&mut e, 1, &format!("ZREM z m{i}"));
            reply(&mut e, 1, &format!("SET new{i} x"));
            reply(&mut e, 1, &format!("PERSIST k{}", 3 * (i % 100)));
            if i == 20 {
                reply(&mut e, 2, "FLUSHDB");
            }
            i += 1;
        }
        assert!(i > 30, "snapshot took only {i} steps");
        e.snapshot_end(true);
        let mut r = engine(clock.clone());
        r.set_loading(true);
        replay_all(&mut r, &snap);
        r.set_loading(false);
        assert_eq!(live(&mut r), expected);
        // Nothing stays preserved once the snapshot is over.
        assert!(e.dbs.iter_mut().all(|d| d.snapshot_step(1).is_empty()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn replaying_the_log_rebuilds_the_keyspace(
            ops in proptest::collection::vec((0usize..40, 0usize..4, 0u64..30), 1..120)
        ) {
            const T: [&str; 40] = [
                "SET {k} v{n}", "SET {k} v PX {n}0", "SETEX {k} 1 x", "INCR c{k}",
                "INCRBYFLOAT f{k} 0.{n}", "APPEND {k} z", "DEL {k}", "EXPIRE {k} {n}",
                "PEXPIRE l{k} {n}0", "PERSIST {k}", "GETEX {k} PX {n}", "GETDEL {k}",
                "RPUSH l{k} a{n} b", "LPUSH l{k} c", "LPOP l{k}", "RPOP l{k} 2",
                "LMOVE l{k} l0 LEFT RIGHT", "LTRIM l{k} 1 -1", "HSET h{k} f{n} v",
                "HINCRBY h{k} n 2", "HINCRBYFLOAT h{k} x 1.{n}", "HDEL h{k} f1",
                "SADD s{k} a b c{n}", "SPOP s{k}", "SPOP s{k} 2", "SREM s{k} a",
                "SMOVE s{k} s0 b", "SINTERSTORE d{k} s1 s2", "ZADD z{k} {n} m{n}",
                "ZINCRBY z{k} 1.5 m1", "ZPOPMIN z{k}", "ZREMRANGEBYSCORE z{k} 0 5",
                "RENAME l{k} l{n}", "SELECT {k}", "FLUSHDB", "SET {k} v EXAT 1",
                "MULTI", "EXEC", "BLPOP l{k} 0", "INCRBY c{k} -{n}",
            ];
            let clock = ManualClock::new(1_000_000);
            let mut e = logging(clock.clone());
            let mut log = Vec::new();
            for (t, k, n) in ops {
                let line = T[t].replace("{k}", &k.to_string()).replace("{n}", &n.to_string());
                // Each op runs for a client of its own so BLPOP never parks a later op.
                let client = if line.starts_with("BLPOP") { 100 + n } else { 1 };
                run(&mut e, client, &line);
                e.take_outbox();
                clock.advance(n * 3);
                if n % 7 == 0 {
                    e.active_expire();
                }
                log.extend(e.take_log());
            }
            run(&mut e, 1, "EXEC");
            log.extend(e.take_log());
            for db in &e.dbs {
                proptest::prop_assert_eq!(db.used_memory(), db.recount());
            }
            let mut r = engine(clock.clone());
            r.set_loading(true);
            let mut db = 0;
            let mut at = 0;
            let mut tx: Option<Vec<Vec<Bytes>>> = None;
            while at < log.len() {
                let Parsed::Command(args, used) = parse(&log[at..]) else { panic!("bad log") };
                at += used;
                let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
                match (name.as_str(), tx.as_mut()) {
                    ("multi", None) => tx = Some(Vec::new()),
                    ("exec", Some(_)) => {
                        for c in tx.take().unwrap() {
                            let _ = r.replay(&mut db, &c);
                        }
                    }
                    (_, Some(q)) => q.push(args),
                    (_, None) => { let _ = r.replay(&mut db, &args); }
                }
            }
            r.set_loading(false);
            proptest::prop_assert_eq!(live(&mut e), live(&mut r));
        }
    }
}
