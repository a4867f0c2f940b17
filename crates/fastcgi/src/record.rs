//! Record header layout and the constants of the FastCGI 1.0 specification.
//!
//! Owns: the 8-byte header (version, type, request id, content length, padding length,
//! reserved), the numeric values of types, roles and protocol statuses, and the padding
//! rule, and the number of Isola's one private record type ([`ISOLA_INTERIM`]). Never:
//! interprets record content (that is `request`, `response` and `params`).
use bytes::{BufMut, BytesMut};

/// Largest content a single record can carry.
pub const MAX_CONTENT_LEN: usize = 65_535;
/// Size of a record header.
pub const HEADER_LEN: usize = 8;
/// The only protocol version.
pub const VERSION_1: u8 = 1;
/// FCGI_KEEP_CONN flag of BEGIN_REQUEST.
pub const KEEP_CONN: u8 = 1;
/// Isola's own record type, not FastCGI 1.0's: an interim (1xx) response head, sent by the
/// native backend's worker for `headers_send(103)` without ending its response. Its content
/// is a CGI head (`Status: 103`, header lines, blank line). The number is free in the
/// specification (types stop at 11) and recalls the status it mostly carries. Only a
/// [`crate::ResponseDecoder`] made [`with_interim`](crate::ResponseDecoder::with_interim)
/// accepts it; php-cgi never sends it.
pub const ISOLA_INTERIM: u8 = 103;

/// Record types of FastCGI 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// FCGI_BEGIN_REQUEST (1)
    BeginRequest,
    /// FCGI_ABORT_REQUEST (2)
    AbortRequest,
    /// FCGI_END_REQUEST (3)
    EndRequest,
    /// FCGI_PARAMS (4)
    Params,
    /// FCGI_STDIN (5)
    Stdin,
    /// FCGI_STDOUT (6)
    Stdout,
    /// FCGI_STDERR (7)
    Stderr,
    /// FCGI_DATA (8)
    Data,
    /// FCGI_GET_VALUES (9)
    GetValues,
    /// FCGI_GET_VALUES_RESULT (10)
    GetValuesResult,
    /// FCGI_UNKNOWN_TYPE (11)
    UnknownType,
    /// Any other type byte.
    Other(u8),
}

impl From<u8> for RecordType {
    fn from(b: u8) -> Self {
        match b {
            1 => Self::BeginRequest,
            2 => Self::AbortRequest,
            3 => Self::EndRequest,
            4 => Self::Params,
            5 => Self::Stdin,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Data,
            9 => Self::GetValues,
            10 => Self::GetValuesResult,
            11 => Self::UnknownType,
            other => Self::Other(other),
        }
    }
}

impl From<RecordType> for u8 {
    fn from(t: RecordType) -> u8 {
        match t {
            RecordType::BeginRequest => 1,
            RecordType::AbortRequest => 2,
            RecordType::EndRequest => 3,
            RecordType::Params => 4,
            RecordType::Stdin => 5,
            RecordType::Stdout => 6,
            RecordType::Stderr => 7,
            RecordType::Data => 8,
            RecordType::GetValues => 9,
            RecordType::GetValuesResult => 10,
            RecordType::UnknownType => 11,
            RecordType::Other(b) => b,
        }
    }
}

/// FastCGI roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// FCGI_RESPONDER (1): the only role web servers use.
    Responder,
    /// FCGI_AUTHORIZER (2)
    Authorizer,
    /// FCGI_FILTER (3)
    Filter,
}

impl From<Role> for u16 {
    fn from(r: Role) -> u16 {
        match r {
            Role::Responder => 1,
            Role::Authorizer => 2,
            Role::Filter => 3,
        }
    }
}

/// protocolStatus of END_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// FCGI_REQUEST_COMPLETE (0)
    RequestComplete,
    /// FCGI_CANT_MPX_CONN (1)
    CantMpxConn,
    /// FCGI_OVERLOADED (2)
    Overloaded,
    /// FCGI_UNKNOWN_ROLE (3)
    UnknownRole,
    /// Any other value.
    Other(u8),
}

impl From<u8> for ProtocolStatus {
    fn from(b: u8) -> Self {
        match b {
            0 => Self::RequestComplete,
            1 => Self::CantMpxConn,
            2 => Self::Overloaded,
            3 => Self::UnknownRole,
            other => Self::Other(other),
        }
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Protocol version (1).
    pub version: u8,
    /// Record type.
    pub record_type: RecordType,
    /// Request id (0 for management records).
    pub request_id: u16,
    /// Content bytes that follow.
    pub content_len: u16,
    /// Padding bytes after the content.
    pub padding_len: u8,
}

impl Header {
    /// Reads a header from the first [`HEADER_LEN`] bytes of `b`, if there are that many.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            version: h[0],
            record_type: RecordType::from(h[1]),
            request_id: u16::from_be_bytes([h[2], h[3]]),
            content_len: u16::from_be_bytes([h[4], h[5]]),
            padding_len: h[6],
        })
    }

    /// Whole record length: header, content and padding.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + self.content_len as usize + self.padding_len as usize
    }
}

/// Padding after `content_len` content bytes: up to the next multiple of 8, as the spec
/// recommends, except when that would make content plus padding exceed 65,535 bytes.
///
/// php-src (`main/fastcgi.c`, `fcgi_read_request`) drops the connection when a
/// BEGIN_REQUEST or PARAMS record has `contentLength + paddingLength > 65535`, so a record
/// of 65,529 to 65,535 content bytes goes unpadded.
pub fn padding_for(content_len: usize) -> u8 {
    let pad = content_len.wrapping_neg() & 7;
    if content_len + pad > MAX_CONTENT_LEN {
        0
    } else {
        pad as u8
    }
}

/// The 8 bytes of a record header.
pub fn header_bytes(t: RecordType, request_id: u16, content_len: u16, pad: u8) -> [u8; HEADER_LEN] {
    let [id1, id0] = request_id.to_be_bytes();
    let [len1, len0] = content_len.to_be_bytes();
    [VERSION_1, t.into(), id1, id0, len1, len0, pad, 0]
}

/// Appends a record header.
pub fn put_header(out: &mut BytesMut, t: RecordType, request_id: u16, content_len: u16, pad: u8) {
    out.put_slice(&header_bytes(t, request_id, content_len, pad));
}

/// Appends one record with `content` and its padding. Callers keep `content` within
/// [`MAX_CONTENT_LEN`] (every caller passes a fixed body or a chunk of at most that size).
pub(crate) fn put_record(out: &mut BytesMut, t: RecordType, request_id: u16, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT_LEN);
    let pad = padding_for(content.len());
    out.reserve(HEADER_LEN + content.len() + pad as usize);
    put_header(out, t, request_id, content.len() as u16, pad);
    out.put_slice(content);
    out.put_bytes(0, pad as usize);
}
