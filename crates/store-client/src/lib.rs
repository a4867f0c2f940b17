//! A small RESP2 client for the store Isola itself talks to — its embedded store or a real
//! Redis — for job queues, schedule locks, the ACME certificate shared by nodes, and the
//! command-line tools.
//!
//! Owns: parsing store URLs ([`Endpoint`]), the reply codec ([`codec`], sans-I/O and
//! bounded), and one connection ([`Conn`]) that sends commands and reads their replies with
//! a deadline.
//!
//! Never: retries or reconnects on its own (callers decide, since a retried write may run
//! twice), pools connections, or holds more than one reply's worth of unread input.

pub mod codec;
mod conn;
mod endpoint;

pub use codec::Value;
pub use conn::Conn;
pub use endpoint::Endpoint;

/// Why a store command could not be completed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not one the client understands.
    #[error("{0:?} is not redis://[:password@]host[:port][/db] or unix:///path[?db=N&password=P]")]
    BadUrl(String),
    /// Connecting, reading or writing failed.
    #[error("store connection: {0}")]
    Io(#[from] std::io::Error),
    /// The store did not answer in time.
    #[error("store did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The store closed the connection.
    #[error("store closed the connection")]
    Closed,
    /// The reply broke the protocol or exceeded the client's bounds.
    #[error("bad reply from the store: {0}")]
    Protocol(String),
    /// The store answered with an error.
    #[error("store error: {0}")]
    Server(String),
}
