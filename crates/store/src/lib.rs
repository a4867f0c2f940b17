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
//! - [`server`]: unix/TCP listeners and connection tasks that talk to the executor through a
//!   bounded channel.
//!
//! The crate never reads argv, environment or files other than its sockets; the binary hands
//! it a [`StoreConfig`].

pub mod cmd;
pub mod db;
pub mod engine;
pub mod resp;
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
