//! The HTTP front: everything between a client's socket and a PHP worker's FastCGI
//! connection.
//!
//! Owns: accepting connections and serving HTTP/1.1, h2c and HTTPS with hyper, HTTP/3 over
//! QUIC (`h3.rs`, experimental), one request body type for all of them
//! (`request_body.rs`), connection limits and timeouts, the sites (`site.rs`), one context per request carried through
//! its phases and closed by one step (`request.rs`), request limits and validation,
//! trusted proxies, request ids, W3C `traceparent` (`trace.rs`), routing through
//! [`isola_router`], static file responses, files a script names (X-Sendfile,
//! X-Accel-Redirect: `sendfile.rs`), the CGI/1.1 environment, the FastCGI exchange over a
//! leased worker connection (request body streamed in, response streamed out), 103 Early
//! Hints from the native backend (`early_hints.rs`), CGI response translation, compression, error pages, the access log, the counts of request
//! outcomes and latencies (`stats.rs`).
//!
//! Never: starts, stops or picks worker processes (that is [`isola_pool`]), or reads
//! configuration files.

mod access_log;
mod body;
mod cgi_env;
mod compress;
mod conn;
mod detach;
mod early_hints;
mod error_page;
mod exchange;
mod h3;
mod handler;
pub mod internal;
mod proxy;
mod request;
mod request_body;
mod request_id;
mod sendfile;
mod server;
mod site;
mod spool;
mod static_file;
mod stats;
pub mod tls;
mod trace;

pub use access_log::{AccessFormat, AccessLog};
pub use body::ResponseBody;
pub use body::StreamChunk;
pub use compress::Policy as CompressionPolicy;
pub use request_body::BodyError;
pub use sendfile::Sendfile;
pub use server::{serve, ConnLimits, Front, FrontHandle};
pub use server::{serve_listeners, Listeners};
pub use site::{CacheControl, HostMap, Limits, Options, Settings, Site, UnknownHost};
pub use stats::{RequestStats, LATENCY_BOUNDS_MS};
