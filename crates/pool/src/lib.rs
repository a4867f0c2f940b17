//! The supervisor of PHP worker processes.
//!
//! Owns: starting workers through a [`Backend`] (php-cgi, or the native engine host of
//! the `isola-engine` crate), keeping one FastCGI connection
//! open to each, handing an idle worker to one request at a time ([`Pool::acquire`] →
//! [`Lease`]), the bounded FIFO queue of requests waiting for a worker, recycling, killing
//! and reaping every child, and replacing workers that die.
//!
//! Never: parses HTTP, reads configuration files, or speaks FastCGI beyond the start-up
//! probe. What goes over a leased connection is the caller's business; the caller reports
//! how it went with [`Lease::release`].

pub mod backend;
mod pool;
pub mod sizing;

pub use backend::{Backend, PhpCgi, Process, SpawnError, Spawned};
pub use pool::{
    AcquireError, Headroom, JobInfo, Lease, Outcome, Pool, PoolConfig, PoolError, PoolSettings,
    PoolStatus, ProcessManager, WorkerState, WorkerStatus,
};
pub use sizing::{AutoSettings, AutoSize, BudgetSource};

#[cfg(test)]
mod tests;
