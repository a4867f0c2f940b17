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
//!   MULTI, WATCH, blocked clients), so every command is atomic without locks; its one
//!   dispatch point also applies `maxmemory` and produces the log records;
//! - [`propagate`]: log records: executed commands in a form that replays identically;
//! - [`aof`]: the append-only log on disk: directory lock, manifest, replay, the writer
//!   thread, compaction files;
//! - [`script`]: the Lua 5.1 state behind EVAL/EVALSHA/SCRIPT, its script cache, Redis's
//!   script environment and its bounds; scripts reach the keyspace only through the engine;
//! - [`server`]: unix/TCP listeners and connection tasks that talk to the executor through a
//!   bounded channel, and the executor task that ties the engine to the log writer.
//!
//! The crate never reads argv or environment, and touches no files but its sockets and its
//! data directory; the binary hands it a [`StoreConfig`].
//!
//! # Why one executor
//! Redis runs commands on one thread; PHP libraries rely on that (a MULTI, a SET NX lock,
//! an INCR are atomic). One task owning the keyspace gives the same guarantee without locks,
//! keeps blocking commands simple (the executor parks and wakes clients in FIFO order), and
//! gives the append-only log and Lua scripts the single total order of commands they need.
//! Connections do the parsing and encoding in parallel and hand over whole pipelines in one
//! message.
//!
//! # Durability invariants
//! - Every change to the keyspace is counted (`Engine::touch`); a command that changed
//!   nothing leaves no record, and one that did leaves records that rebuild exactly its
//!   effect when replayed in order, whatever the time of the replay: deadlines are absolute,
//!   random and float results are recorded as values, expired keys are recorded as DEL at
//!   the point of the order where they were removed.
//! - Replay runs with time stopped at 0, so nothing expires while loading and every
//!   recorded deadline is kept; keys past their deadline are removed when loading ends.
//! - A reply leaves after the records of everything it observed are handed to the writer
//!   thread (or, while the writer is behind, queued for it), and with `appendfsync always`
//!   only after they are fsynced.
//! - Base file + the increment files after it replay to the live keyspace at all times,
//!   during compaction too (see [`aof`]).
//! - `used_memory` is the sum of per-entry estimates recorded on every insert, removal and
//!   in-place change, so it never drifts and costs nothing to read.
//!
//! # Checked against Redis
//! `tests/differential.rs` runs the same commands on a real `redis-server` 7.0 and on this
//! store and requires byte-identical replies. Known, deliberate differences:
//! - RESP2 only: `HELLO 3` answers `-NOPROTO`; `CLIENT SETINFO` (Redis 7.2) is accepted;
//! - a multibulk count above 1024×1024 is refused from any client (Redis: only before AUTH),
//!   and a MULTI queue is bounded (100 000 commands, 256 MiB) with `ERR MULTI queue is full`;
//! - SCAN cursors are positions in a fixed hash order: the same guarantees as Redis (every key
//!   present for the whole iteration is returned), other cursor values, and a page costs one
//!   pass over the database; HSCAN/SSCAN/ZSCAN return collections of up to 128 elements whole;
//! - sorted-set ranks cost O(rank) (no skip-list spans); RANDOMKEY and SPOP cost O(n);
//! - active expiry removes due keys from a deadline index (up to 200 per database per 100 ms
//!   tick) instead of sampling at random: the same visible behaviour, bounded work;
//! - float parsing follows `strtod` except hexadecimal floats; INCRBYFLOAT beyond the `double`
//!   range (`1e400`) is refused;
//! - commands Redis 7.0 has that PHP clients may send and the store answers with
//!   `ERR unknown command`: DUMP/RESTORE, OBJECT, SORT, COPY, MOVE, SWAPDB, TOUCH,
//!   EXPIRETIME/PEXPIRETIME, HRANDFIELD, LMPOP/BLMPOP, SINTERCARD, ZRANDMEMBER, ZMSCORE,
//!   ZRANGESTORE, ZDIFF/ZDIFFSTORE, ZINTERCARD, ZLEXCOUNT, ZRANGEBYLEX and its siblings,
//!   BZPOPMIN/BZPOPMAX, LCS, bitmaps (SETBIT, GETBIT, BITCOUNT, ...), HyperLogLog (PFADD, ...),
//!   geo commands, streams, publish/subscribe, CONFIG, WAIT, SAVE/BGSAVE/LASTSAVE, FUNCTION;
//! - COMMAND reports name, arity, key positions and the flags the store keeps (write,
//!   readonly, denyoom, noscript, blocking; not `fast`, `movablekeys` and the others) only; COMMAND DOCS is empty; INFO
//!   carries the fields clients read (`redis_version`, clients, memory, persistence, stats,
//!   keyspace);
//! - the log is Redis 7's multi-part layout in spirit (manifest, base, increments) but with
//!   its own manifest format, and a base is always RESP (no RDB preamble); `aof-load-truncated`
//!   is always on, and damage elsewhere may be truncated on request (`truncate_corrupt`);
//! - compaction runs on the executor in bounded steps with copy-on-write of values changed
//!   meanwhile, instead of a forked child; collecting a database's keys when its turn comes
//!   costs one pass of reference-count increments, and a value changed during compaction is
//!   copied once;
//! - a write error refuses write commands with `-MISCONF` and is retried every second (with
//!   `always`, replies wait for the retry) instead of exiting; when the writer is over 2 s or
//!   64 MiB behind, every command waits, not only writes;
//! - `used_memory` counts keys and values (sampled estimates for large aggregates), not the
//!   allocator's total; eviction samples 5 random keys per eviction without Redis's pool, and
//!   an LRU clock that counts accesses instead of seconds; `maxmemory` is checked before every
//!   command including those inside EXEC (Redis refuses the whole EXEC up front);
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

pub mod aof;
pub mod cmd;
pub mod db;
pub mod engine;
pub mod propagate;
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
    /// Another process holds the data directory.
    #[error("store directory {} is in use by another process (locked: {}/store.lock); give each instance its own [store] dir", dir.display(), dir.display())]
    Locked {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// A file of the data directory could not be read or written.
    #[error("store: {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The append-only log is damaged before its end.
    #[error("store: {} is damaged at offset {offset}: {reason}; repair or remove it, or allow truncation at the damage (store aof_load_corrupt = \"truncate\")", file.display())]
    Corrupt {
        /// The damaged file.
        file: std::path::PathBuf,
        /// Byte offset of the first bad record.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
}
