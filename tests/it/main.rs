//! Integration tests: the real `isola` binary, real php-cgi workers, real sockets.
#![allow(clippy::unwrap_used)]

mod acme;
mod check;
mod conformance;
mod contract;
mod early_hints;
mod edges;
mod front;
mod h3;
mod harness;
mod http;
mod import;
mod lifecycle;
mod limits;
mod native;
mod nodes;
mod notify;
mod pageviews;
mod pool;
mod queue;
mod redis;
mod reload;
mod routing;
mod sendfile;
mod serving;
mod status;
mod store;
mod store_libs;
mod supervision;
mod tls;
mod worker;
