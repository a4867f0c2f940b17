//! Dispatch, queue and worker bookkeeping.
use crate::backend::PhpCgi;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::UnixStream;

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Number of workers (static pool).
    pub max_children: usize,
    /// Retire a worker after this many requests (0: never).
    pub max_requests: u64,
    /// Most requests that may wait for a worker at once.
    pub queue_size: usize,
    /// Longest a request may wait for a worker.
    pub queue_timeout: Duration,
    /// Time between SIGTERM and SIGKILL when a worker is stopped.
    pub kill_grace: Duration,
}

/// What a request tells the pool about itself, for status pages and crash reports.
#[derive(Debug, Clone, Default)]
pub struct JobInfo {
    /// The request id.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Request URI as received.
    pub uri: String,
    /// The script that will run.
    pub script: PathBuf,
}

/// Why no worker was handed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The wait queue is full.
    #[error("queue full")]
    QueueFull,
    /// Waited longer than `queue_timeout`.
    #[error("timed out waiting for a worker")]
    Timeout,
    /// The pool is stopping.
    #[error("pool is shutting down")]
    ShuttingDown,
}

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The first worker did not start.
    #[error("php worker failed to start: {0}")]
    Spawn(String),
}

/// How the use of a leased worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request ended cleanly (END_REQUEST seen); the worker can serve again.
    Reusable,
    /// The connection is in an unknown or broken state: stop the worker and replace it.
    Broken,
    /// The request ran past its time limit: kill the worker and replace it.
    TimedOut,
}

/// Worker states as shown in status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Spawned, not yet ready.
    Starting,
    /// Ready for a request.
    Idle,
    /// Serving a request.
    Busy,
    /// Being stopped.
    Retiring,
}

/// One worker, as shown in status.
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    /// Process id.
    pub pid: u32,
    /// State.
    pub state: WorkerState,
    /// Requests served so far.
    pub requests: u64,
    /// The current request, when busy.
    pub current: Option<JobInfo>,
    /// Time in the current state.
    pub elapsed: Duration,
}

/// A snapshot of the pool.
#[derive(Debug, Clone, Default)]
pub struct PoolStatus {
    /// Per worker.
    pub workers: Vec<WorkerStatus>,
    /// Requests waiting now.
    pub queue_len: usize,
    /// Requests handed to workers since start.
    pub accepted: u64,
}

/// A handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct Pool {}

impl Pool {
    /// Starts `config.max_children` workers; fails when the first one cannot start.
    pub async fn start(_config: PoolConfig, _backend: PhpCgi) -> Result<Pool, PoolError> {
        todo!()
    }

    /// Waits for an idle worker (FIFO among waiters) and leases it.
    pub async fn acquire(&self, _job: JobInfo) -> Result<Lease, AcquireError> {
        todo!()
    }

    /// A snapshot for status pages.
    pub fn status(&self) -> PoolStatus {
        todo!()
    }

    /// Stops accepting, waits up to `grace` for busy workers, then stops every worker and
    /// reaps it.
    pub async fn shutdown(&self, _grace: Duration) {
        todo!()
    }
}

/// Exclusive use of one worker for one request. Dropping it without [`Lease::release`]
/// counts as [`Outcome::Broken`].
pub struct Lease {}

impl Lease {
    /// The open FastCGI connection to the worker.
    pub fn stream(&mut self) -> &mut UnixStream {
        todo!()
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        todo!()
    }

    /// Ends the lease.
    pub fn release(self, _outcome: Outcome) {
        todo!()
    }
}
