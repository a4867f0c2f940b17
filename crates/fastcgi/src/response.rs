//! Demultiplexing of the records a worker sends back for one request.
//!
//! Memory is bounded by construction: a record's content is at most 65,535 bytes plus 255 of
//! padding, and the decoder never asks for more than one record beyond what it was given.
use crate::record::{Header, ProtocolStatus, RecordType, HEADER_LEN, VERSION_1};
use bytes::{Buf, Bytes, BytesMut};

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
    /// END_REQUEST with less than the 8 bytes its body needs.
    #[error("end_request record with {0} content bytes, expected 8")]
    ShortEndRequest(u16),
    /// A record arrived after END_REQUEST.
    #[error("record after end_request")]
    AfterEnd,
}

/// Turns bytes read from a worker into [`Event`]s for one request id.
#[derive(Debug)]
pub struct ResponseDecoder {
    request_id: u16,
    ended: bool,
}

impl ResponseDecoder {
    /// A decoder for the response to `request_id`.
    pub fn new(request_id: u16) -> Self {
        Self {
            request_id,
            ended: false,
        }
    }

    /// Whether END_REQUEST has been decoded.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Consumes whole records from the front of `buf` and returns the next event, or
    /// `Ok(None)` when `buf` holds no complete record yet. Empty STDOUT/STDERR records
    /// (stream terminators), management records and records for other request ids are
    /// consumed silently. After END_REQUEST, any further complete record is an error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, DecodeError> {
        loop {
            let Some(h) = Header::parse(buf) else {
                return Ok(None);
            };
            if h.version != VERSION_1 {
                return Err(DecodeError::Version(h.version));
            }
            if buf.len() < h.record_len() {
                // Tell the allocator how much is coming, so reads need not regrow it.
                buf.reserve(h.record_len() - buf.len());
                return Ok(None);
            }
            if self.ended {
                return Err(DecodeError::AfterEnd);
            }
            buf.advance(HEADER_LEN);
            let content = buf.split_to(h.content_len as usize).freeze();
            buf.advance(h.padding_len as usize);
            if h.request_id != self.request_id {
                continue;
            }
            match h.record_type {
                RecordType::Stdout if !content.is_empty() => {
                    return Ok(Some(Event::Stdout(content)))
                }
                RecordType::Stderr if !content.is_empty() => {
                    return Ok(Some(Event::Stderr(content)))
                }
                RecordType::EndRequest => {
                    let b = content
                        .get(..8)
                        .ok_or(DecodeError::ShortEndRequest(h.content_len))?;
                    self.ended = true;
                    return Ok(Some(Event::End {
                        app_status: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                        protocol_status: ProtocolStatus::from(b[4]),
                    }));
                }
                _ => continue,
            }
        }
    }
}
