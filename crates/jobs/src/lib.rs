//! Background work the server runs on its own pools: `[[queue]]` jobs kept in the store
//! (`queue`) and `[[schedule]]` requests on a clock (`schedule`).
//!
//! Owns: when a job or a tick runs, on which node, how often it is tried, and what the
//! operator sees and may do about it.
//!
//! Never: runs PHP or picks a worker itself. Every run goes through [`Dispatch`], which the
//! front implements (an internal request through the same router, pool, limits and access
//! log as client requests); the tests implement it with a fake, so the whole job logic runs
//! against a real store without a front.
use isola_front::internal::{Internal, Outcome};
use isola_front::FrontHandle;
use std::future::Future;

pub mod queue;
pub mod schedule;

pub use isola_pool::Headroom;

/// What jobs and schedules need of the front: room in a pool, and a run.
pub trait Dispatch: Clone + Send + Sync + 'static {
    /// Load of the pool that runs `queue`'s jobs (the site's web pool when `None`) on the
    /// site serving `host` (the default site when `None`); `None` when no site answers.
    fn headroom(&self, host: Option<&str>, queue: Option<&str>) -> Option<Headroom>;

    /// Runs one internal request to its end.
    fn run(&self, req: Internal<'_>) -> impl Future<Output = Outcome> + Send;
}

impl Dispatch for FrontHandle {
    fn headroom(&self, host: Option<&str>, queue: Option<&str>) -> Option<Headroom> {
        FrontHandle::headroom(self, host, queue)
    }

    fn run(&self, req: Internal<'_>) -> impl Future<Output = Outcome> + Send {
        self.internal_request(req)
    }
}
