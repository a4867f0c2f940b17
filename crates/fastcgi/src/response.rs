//! Demultiplexing of the records a worker sends back for one request.
use crate::record::ProtocolStatus;
use bytes::{Bytes, BytesMut};

/// What the worker said, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Content of a non-empty STDOUT record.
    Stdout(Bytes),
    /// Content of a non-empty STDERR record.
    Stderr(Bytes),
    /// END_REQUEST: the request is over.
    End {
        /// appStatus: the script's exit status.
        app_status: u32,
        /// protocolStatus.
        protocol_status: ProtocolStatus,
    },
}

/// Why a response stream cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A record header carried a version other than 1.
    #[error("unsupported fastcgi version {0}")]
    Version(u8),
}

/// Turns bytes read from a worker into [`Event`]s for one request id.
#[derive(Debug)]
pub struct ResponseDecoder {
    _request_id: u16,
}

impl ResponseDecoder {
    /// A decoder for the response to `request_id`.
    pub fn new(request_id: u16) -> Self {
        Self { _request_id: request_id }
    }

    /// Consumes whole records from the front of `buf` and returns the next event, or
    /// `Ok(None)` when `buf` holds no complete record yet.
    pub fn decode(&mut self, _buf: &mut BytesMut) -> Result<Option<Event>, DecodeError> {
        todo!()
    }
}
