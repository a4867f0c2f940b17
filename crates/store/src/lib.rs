//! Embedded Redis-compatible store.
//!
//! PHP applications keep sessions, caches, counters, locks and queues in Redis. This crate
//! serves the same protocol and command semantics from inside Isola so that code runs with no
//! extra service, and the same code still runs unchanged against a real Redis.
//!
//! Layers, each testable on its own:
//! - [`resp`]: the RESP2 codec, sans-I/O and bounded;
//! - [`db`]: databases, values, deadlines, the injectable clock;
//! - [`cmd`]: the command table and one module per command family;
//! - [`engine`]: the single executor that owns the keyspace and every session (SELECT,
//!   MULTI, WATCH, blocked clients), so every command is atomic without locks;
//! - [`script`]: the Lua 5.1 state behind EVAL/EVALSHA/SCRIPT, its script cache, Redis's
//!   script environment and its bounds; scripts reach the keyspace only through the engine;
//! - [`server`]: unix/TCP listeners and connection tasks that talk to the executor through a
//!   bounded channel.
//!
//! The crate never reads argv, environment or files other than its sockets; the binary hands
//! it a [`StoreConfig`].
//!
//! # Why one executor
//! Redis runs commands on one thread; PHP libraries rely on that (a MULTI, a SET NX lock,
//! an INCR are atomic). One task owning the keyspace gives the same guarantee without locks,
//! keeps blocking commands simple (the executor parks and wakes clients in FIFO order), runs
//! a Lua script as one step, and leaves room for an append-only log later: both need a single
//! total order of commands, which the executor already is. Connections do the parsing and encoding in
//! parallel and hand over whole pipelines in one message.
//!
//! # Checked against Redis
//! `tests/differential.rs` runs the same commands on a real `redis-server` 7.0 and on this
//! store and requires byte-identical replies. Known, deliberate differences:
//! - RESP2 only: `HELLO 3` answers `-NOPROTO`; `CLIENT SETINFO` (Redis 7.2) is accepted;
//! - a multibulk count above 1024×1024 is refused from any client (Redis: only before AUTH),
//!   and a MULTI queue is bounded (100 000 commands, 256 MiB) with `ERR MULTI queue is full`;
//! - SCAN cursors are positions in a fixed hash order: the same guarantees as Redis (every key
//!   present for the whole iteration is returned), other cursor values, and a page costs one
//!   pass over the database; HSCAN/SSCAN return collections of up to 128 elements whole;
//! - sorted-set ranks cost O(rank) (no skip-list spans); RANDOMKEY and SPOP cost O(n);
//! - active expiry removes due keys from a deadline index (up to 200 per database per 100 ms
//!   tick) instead of sampling at random: the same visible behaviour, bounded work;
//! - float parsing follows `strtod` except hexadecimal floats; INCRBYFLOAT beyond the `double`
//!   range (`1e400`) is refused;
//! - COMMAND reports name, arity, flags and key positions only; COMMAND DOCS is empty; INFO
//!   carries the fields clients read (`redis_version`, clients, memory, stats, keyspace);
//! - a script that runs longer than `script_time_limit` (5 s, Redis's `lua-time-limit`) is
//!   stopped with `ERR Script killed: ...` (writes it made stay), where Redis would start
//!   answering BUSY to everyone and wait for SCRIPT KILL; SCRIPT KILL therefore always answers
//!   NOTBUSY. The Lua heap is capped at 64 MiB (`not enough memory` errors) and the script
//!   cache at 10 000 scripts: one more (or a heap past half the cap) empties the cache, and
//!   EVALSHA answers NOSCRIPT until the client sends EVAL again, as clients do;
//! - read-only globals and library tables are proxies: `pairs(_G)` or `pairs(string)` yield
//!   nothing and `rawset` on them is not refused; a script error table without `err` answers
//!   `ERR unknown error` (Redis crashes); binary chunks are refused by `loadstring`/`load`;
//!   `collectgarbage("stop")` does nothing (a stopped collector would outlive the script);
//! - no `struct` or `cmsgpack` libraries, no `cjson` settings functions (`cjson.new`,
//!   `cjson.encode_max_depth`, ...), `redis.setresp(3)` is refused (RESP2 only), SCRIPT DEBUG
//!   is refused and `redis.breakpoint`/`redis.debug` do nothing; `redis.log` writes to
//!   `tracing` (target `isola_store::script`).

pub mod cmd;
pub mod db;
pub mod engine;
pub mod resp;
pub mod script;
pub mod server;

pub use server::{serve, Store, StoreConfig, StoreHandle, StoreStats};

/// Why the store could not start or answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Neither a unix socket nor a TCP address was configured.
    #[error("store has no listener configured")]
    NoListener,
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The path or address.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The executor has stopped (shutdown in progress).
    #[error("store is stopped")]
    Stopped,
}
