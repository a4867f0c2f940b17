//! Demultiplexing of the records a worker sends back for one request.
//!
//! Owns: cutting whole records off the front of a read buffer and turning those of one
//! request into [`Event`]s. Never: reads from a socket, parses the CGI head carried in
//! STDOUT (that is `cgi`), or copies content: STDOUT and STDERR payloads are slices of the
//! caller's buffer (`split_to` + `freeze`).
//!
//! No size limit is needed: a record's content length is a 16-bit field and its padding
//! an 8-bit one, so a record is at most 8 + 65,535 + 255 bytes, and the decoder never waits
//! for more than one record. A peer cannot make it buffer or allocate without bound.
use crate::record::{Header, ProtocolStatus, RecordType, HEADER_LEN, ISOLA_INTERIM, VERSION_1};
use bytes::{Buf, Bytes, BytesMut};

/// What the worker said, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Content of a non-empty STDOUT record.
    Stdout(Bytes),
    /// Content of a non-empty STDERR record.
    Stderr(Bytes),
    /// Content of an Isola interim record ([`ISOLA_INTERIM`]): a CGI head for a 1xx
    /// response sent ahead of the final one. Only from a decoder made
    /// [`with_interim`](ResponseDecoder::with_interim).
    Interim(Bytes),
    /// END_REQUEST: the request is over.
    End {
        /// appStatus: the script's exit status.
        app_status: u32,
        /// protocolStatus.
        protocol_status: ProtocolStatus,
    },
}

/// Why a response stream cannot be decoded. The offending bytes stay in the buffer, so
/// decoding again gives the same error: the connection is no longer usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum DecodeError {
    /// A record header carried a version other than 1.
    #[error("unsupported fastcgi version {0}")]
    Version(u8),
    /// END_REQUEST with less than the 8 bytes its body needs.
    #[error("end_request record with {0} content bytes, expected 8")]
    ShortEndRequest(u16),
    /// Bytes arrived after END_REQUEST (the worker has nothing more to say for this
    /// request, and cannot have started another one we did not send). Carries no count:
    /// how many bytes are there depends on how reads were cut, and errors do not.
    #[error("bytes after end_request")]
    AfterEnd,
}

/// Takes the next whole record, padding included, off the front of `buf`: its header and
/// content (a zero-copy slice of `buf`). `Ok(None)` while the record is incomplete; then
/// `buf` has been given the capacity for the whole record, so reads need not regrow it.
///
/// This is the building block of [`ResponseDecoder`]; use it directly for management
/// records, e.g. a GET_VALUES_RESULT whose content goes to [`crate::decode_params`].
pub fn next_record(buf: &mut BytesMut) -> Result<Option<(Header, Bytes)>, DecodeError> {
    let Some(h) = complete_header(buf)? else {
        return Ok(None);
    };
    buf.advance(HEADER_LEN);
    let content = buf.split_to(h.content_len as usize).freeze();
    buf.advance(h.padding_len as usize);
    Ok(Some((h, content)))
}

/// The header at the front of `buf` once its whole record is there.
fn complete_header(buf: &mut BytesMut) -> Result<Option<Header>, DecodeError> {
    let Some(h) = Header::parse(buf) else {
        return Ok(None);
    };
    // Checked before waiting for the content: a stream out of sync fails at once instead
    // of waiting for up to 64 KiB of garbage.
    if h.version != VERSION_1 {
        return Err(DecodeError::Version(h.version));
    }
    if buf.len() < h.record_len() {
        buf.reserve(h.record_len() - buf.len());
        return Ok(None);
    }
    Ok(Some(h))
}

/// Turns bytes read from a worker into [`Event`]s for one request id.
///
/// Feeding the same bytes in any number of pieces gives the same events: nothing is decided
/// before a whole record (padding included) is in the buffer.
#[derive(Debug)]
pub struct ResponseDecoder {
    request_id: u16,
    ended: bool,
    stdout_closed: bool,
    interim: bool,
}

impl ResponseDecoder {
    /// A decoder for the response to `request_id`.
    pub fn new(request_id: u16) -> Self {
        Self {
            request_id,
            ended: false,
            stdout_closed: false,
            interim: false,
        }
    }

    /// Also turns Isola's interim records into [`Event::Interim`]; without this they are
    /// consumed silently like any record type a worker does not send. For the native
    /// backend's workers only: the extension is ours, and another FastCGI server using type
    /// [`ISOLA_INTERIM`] for something else must not have it read as a response head.
    pub fn with_interim(mut self) -> Self {
        self.interim = true;
        self
    }

    /// Whether END_REQUEST has been decoded.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Whether the empty STDOUT record that ends the output stream has been consumed. A
    /// worker that sends it before END_REQUEST (php-fpm's `fastcgi_finish_request()`)
    /// means: the response is complete, the script runs on.
    pub fn stdout_closed(&self) -> bool {
        self.stdout_closed
    }

    /// Consumes whole records from the front of `buf` and returns the next event, or
    /// `Ok(None)` when `buf` holds no complete record yet.
    ///
    /// Consumed silently: empty STDOUT/STDERR records (stream terminators), management
    /// records (request id 0: GET_VALUES_RESULT, UNKNOWN_TYPE), records for other request
    /// ids, record types a worker does not send, and interim records unless
    /// [`with_interim`](Self::with_interim) (empty ones always).
    ///
    /// Once [`Event::End`] has been returned, `Ok(None)` while `buf` is empty and
    /// [`DecodeError::AfterEnd`] as soon as it is not (nothing is consumed then).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, DecodeError> {
        if self.ended {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(DecodeError::AfterEnd)
            };
        }
        loop {
            let Some(h) = complete_header(buf)? else {
                return Ok(None);
            };
            let len = h.content_len as usize;
            let ours = h.request_id == self.request_id;
            let event = match h.record_type {
                RecordType::Stdout | RecordType::Stderr if ours && len > 0 => {
                    buf.advance(HEADER_LEN);
                    let content = buf.split_to(len).freeze();
                    buf.advance(h.padding_len as usize);
                    if h.record_type == RecordType::Stdout {
                        Event::Stdout(content)
                    } else {
                        Event::Stderr(content)
                    }
                }
                RecordType::Other(ISOLA_INTERIM) if ours && self.interim && len > 0 => {
                    buf.advance(HEADER_LEN);
                    let content = buf.split_to(len).freeze();
                    buf.advance(h.padding_len as usize);
                    Event::Interim(content)
                }
                RecordType::Stdout if ours => {
                    self.stdout_closed = true;
                    buf.advance(h.record_len());
                    continue;
                }
                RecordType::EndRequest if ours => {
                    if len < 8 {
                        return Err(DecodeError::ShortEndRequest(h.content_len));
                    }
                    let body = &buf[HEADER_LEN..HEADER_LEN + 8];
                    let event = Event::End {
                        app_status: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                        protocol_status: ProtocolStatus::from(body[4]),
                    };
                    buf.advance(h.record_len());
                    self.ended = true;
                    event
                }
                _ => {
                    buf.advance(h.record_len());
                    continue;
                }
            };
            return Ok(Some(event));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn end_request_body_must_be_in_the_content_not_the_padding() {
        // 4 content bytes and 4 of padding: 8 bytes follow the header, but the body is short.
        let mut b = BytesMut::from(&[1, 3, 0, 1, 0, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        let mut dec = ResponseDecoder::new(1);
        assert_eq!(dec.decode(&mut b), Err(DecodeError::ShortEndRequest(4)));
        // Sticky: the record is still there.
        assert_eq!(b.len(), 16);
        assert_eq!(dec.decode(&mut b), Err(DecodeError::ShortEndRequest(4)));
    }

    #[test]
    fn incomplete_record_reserves_its_size() {
        let mut b = BytesMut::from(&[1, 6, 0, 1, 0xff, 0xff, 0xff, 0][..]);
        assert_eq!(ResponseDecoder::new(1).decode(&mut b), Ok(None));
        assert!(b.capacity() >= 8 + 65_535 + 255);
        assert_eq!(b.len(), 8);
    }

    /// A record as the native worker writes it: header, content, padding to 8.
    fn record(t: u8, id: u16, content: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        crate::record::put_record(&mut b, RecordType::from(t), id, content);
        b
    }

    #[test]
    fn interim_records_are_events_only_when_asked_for() {
        let head = b"Status: 103\r\nLink: </a.css>; rel=preload\r\n\r\n";
        let mut b = record(ISOLA_INTERIM, 1, head);
        b.extend_from_slice(&record(6, 1, b"x"));
        let mut plain = b.clone();
        let mut dec = ResponseDecoder::new(1).with_interim();
        assert_eq!(
            dec.decode(&mut b),
            Ok(Some(Event::Interim(Bytes::from_static(head))))
        );
        assert_eq!(dec.decode(&mut b), Ok(Some(Event::Stdout("x".into()))));
        // Without the extension the record is skipped like any unknown type.
        let mut dec = ResponseDecoder::new(1);
        assert_eq!(dec.decode(&mut plain), Ok(Some(Event::Stdout("x".into()))));
    }

    #[test]
    fn interim_records_of_other_requests_or_empty_are_skipped() {
        let mut b = record(ISOLA_INTERIM, 2, b"Status: 103\r\n\r\n");
        b.extend_from_slice(&record(ISOLA_INTERIM, 1, b""));
        b.extend_from_slice(&record(6, 1, b"x"));
        let mut dec = ResponseDecoder::new(1).with_interim();
        assert_eq!(dec.decode(&mut b), Ok(Some(Event::Stdout("x".into()))));
        assert!(b.is_empty());
    }

    #[test]
    fn interim_record_split_anywhere_gives_the_same_event() {
        let head = b"Status: 103\r\nLink: </b.js>; rel=preload\r\n\r\n";
        let whole = record(ISOLA_INTERIM, 1, head);
        for cut in 0..whole.len() {
            let mut dec = ResponseDecoder::new(1).with_interim();
            let mut b = BytesMut::from(&whole[..cut]);
            assert_eq!(dec.decode(&mut b), Ok(None), "cut at {cut}");
            b.extend_from_slice(&whole[cut..]);
            assert_eq!(
                dec.decode(&mut b),
                Ok(Some(Event::Interim(Bytes::from_static(head))))
            );
        }
    }

    #[test]
    fn next_record_drops_padding() {
        let mut b = BytesMut::from(&[1, 10, 0, 0, 0, 2, 3, 0, b'a', b'b', 0, 0, 0, 1][..]);
        let (h, content) = next_record(&mut b).unwrap().unwrap();
        assert_eq!(h.record_type, RecordType::GetValuesResult);
        assert_eq!(&content[..], b"ab");
        assert_eq!(&b[..], &[1]);
        assert_eq!(next_record(&mut b), Ok(None));
    }
}
