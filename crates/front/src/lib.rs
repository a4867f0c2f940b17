//! The HTTP front: everything between a client's socket and a PHP worker's FastCGI
//! connection.
//!
//! Owns: accepting connections and serving HTTP/1.1 (and h2c) with hyper, request limits and
//! validation, request ids, routing through [`isola_router`], static file responses, the
//! CGI/1.1 environment, the FastCGI exchange over a leased worker connection (request body
//! streamed in, response streamed out), CGI response translation, error pages, the access
//! log.
//!
//! Never: starts, stops or picks worker processes (that is [`isola_pool`]), or reads
//! configuration files.

mod body;
mod cgi_env;
mod compress;
mod error_page;
mod exchange;
mod handler;
mod request_id;
mod server;
mod spool;
mod static_file;
pub mod tls;

pub use body::ResponseBody;
pub use body::StreamChunk;
pub use handler::{Limits, Site};
pub use server::{serve, Front, FrontHandle};
pub use server::{serve_listeners, Listeners};
