//! Test-side helpers: a worker-side encoder that picks its own padding (as the spec allows a
//! peer to), a decoder driver that feeds bytes in pieces, and a record walker.
#![allow(clippy::unwrap_used, dead_code)]

use bytes::{BufMut, BytesMut};
use isola_fastcgi::record::{put_header, Header, RecordType};
use isola_fastcgi::{DecodeError, Event, ResponseDecoder};

/// Appends one record with `content` and `pad` bytes of (non-zero, to catch readers that
/// look at it) padding.
pub fn record(out: &mut BytesMut, t: RecordType, id: u16, content: &[u8], pad: u8) {
    put_header(out, t, id, content.len() as u16, pad);
    out.put_slice(content);
    out.put_bytes(0xee, pad as usize);
}

/// Appends an END_REQUEST record.
pub fn end_record(out: &mut BytesMut, id: u16, app_status: u32, protocol_status: u8, pad: u8) {
    let mut c = app_status.to_be_bytes().to_vec();
    c.extend_from_slice(&[protocol_status, 0, 0, 0]);
    record(out, RecordType::EndRequest, id, &c, pad);
}

/// Feeds `chunks` one after another to a decoder for request 1, decoding as far as possible
/// after each; stops at the first error.
pub fn decode_chunks(chunks: &[&[u8]]) -> Result<Vec<Event>, DecodeError> {
    let mut dec = ResponseDecoder::new(1);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Some(e) = dec.decode(&mut buf)? {
            events.push(e);
        }
    }
    Ok(events)
}

/// The decoding of `bytes`, checked to be the same whole, one byte at a time and cut in two
/// at every offset.
pub fn decode_every_way(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let whole = decode_chunks(&[bytes]);
    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(decode_chunks(&one_by_one), whole, "one byte at a time");
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(decode_chunks(&[a, b]), whole, "split at {i}");
    }
    whole
}

/// Every record in `b`: (header, content). Panics on a trailing partial record.
pub fn records(mut b: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let h = Header::parse(b).unwrap();
        v.push((h, b[8..8 + h.content_len as usize].to_vec()));
        b = &b[h.record_len()..];
    }
    v
}

/// The content of all records of type `t`, concatenated.
pub fn stream(b: &[u8], t: RecordType) -> Vec<u8> {
    records(b)
        .into_iter()
        .filter(|(h, _)| h.record_type == t)
        .flat_map(|(_, c)| c)
        .collect()
}
