//! Embedded Redis-compatible store.
//!
//! The crate owns the store end to end: the RESP2 codec ([`resp`]), and later the keyspace,
//! the command executor and the socket server. It never touches the HTTP side of Isola.

pub mod resp;
