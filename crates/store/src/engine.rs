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

use crate::cmd::{self, Spec, NOAUTH_OK};
use crate::db::{Clock, Db, Rng, DB_COUNT};
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
    /// How long one script may run before it is stopped.
    pub script_time_limit: std::time::Duration,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("requirepass", &self.requirepass.as_ref().map(|_| "<set>"))
            .field("max_bulk_len", &self.max_bulk_len)
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
}

impl Engine {
    /// A fresh engine with empty databases.
    pub fn new(config: EngineConfig) -> Self {
        let now = config.clock.now_ms();
        Engine {
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
        }
    }

    /// Current time from the engine's clock.
    pub fn now(&self) -> u64 {
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
    pub(crate) fn call(&mut self, spec: &'static Spec, ctx: &mut Ctx, args: &[Bytes]) -> Reply {
        (spec.handler)(self, ctx, &args[1..]).unwrap_or_else(|e| e)
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

    /// Records that `key` in `db` changed: invalidates WATCHes and wakes blocked readers.
    pub fn touch(&mut self, db: usize, key: &Bytes) {
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
                    let reply = cmd::list::serve_blocked(self, db, &key, &b.spec.kind, now);
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
        for db in &mut self.dbs {
            db.expire_due(now, ACTIVE_EXPIRE_BUDGET);
        }
        self.after_command();
    }

    /// Counts per database and a rough memory figure.
    ///
    /// Status pages poll this every second, so it must not walk the keyspace: memory is
    /// extrapolated from the first entries of each database in hash order, which is an
    /// arbitrary (effectively random) sample.
    pub fn keyspace_stats(&self) -> KeyspaceStats {
        const SAMPLE: usize = 256;
        let used_memory = self
            .dbs
            .iter()
            .map(|d| {
                let (n, bytes) = d
                    .entries()
                    .take(SAMPLE)
                    .fold((0usize, 0usize), |(n, b), (k, e)| {
                        (n + 1, b + k.len() + e.value.estimate_size())
                    });
                bytes.checked_div(n).unwrap_or(0) * d.len()
            })
            .sum();
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
