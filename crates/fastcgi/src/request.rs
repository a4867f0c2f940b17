//! Encoding of the records a client sends for one request.
//!
//! Owns: BEGIN_REQUEST, the PARAMS stream, STDIN records, ABORT_REQUEST and the GET_VALUES
//! management query, appended to a caller's buffer. Never: writes to a socket or decides
//! which variables a request carries.
//!
//! PARAMS records hold whole pairs. FastCGI allows a pair to straddle two records, but
//! php-src parses each PARAMS record on its own (`fcgi_get_params` in `main/fastcgi.c`) and
//! drops the connection on a pair cut in two, and nginx never cuts one (it sends all params
//! in one record). Only a pair that alone exceeds [`MAX_CONTENT_LEN`] is cut, since it
//! cannot be sent otherwise; php-cgi rejects such a request.
use crate::params::{cut, pair_prefix};
use crate::record::{
    header_bytes, padding_for, put_header, put_record, RecordType, Role, HEADER_LEN, KEEP_CONN,
    MAX_CONTENT_LEN,
};
use bytes::{BufMut, BytesMut};

/// Appends a BEGIN_REQUEST record.
pub fn encode_begin_request(out: &mut BytesMut, request_id: u16, role: Role, keep_conn: bool) {
    let [r1, r0] = u16::from(role).to_be_bytes();
    let flags = if keep_conn { KEEP_CONN } else { 0 };
    put_record(
        out,
        RecordType::BeginRequest,
        request_id,
        &[r1, r0, flags, 0, 0, 0, 0, 0],
    );
}

/// Appends the PARAMS stream: the name-value pairs in records of at most
/// [`crate::MAX_CONTENT_LEN`] content bytes, then the empty PARAMS record that ends the
/// stream.
///
/// Pairs are packed whole: one that does not fit in the current record starts the next.
/// Only a pair longer than a record on its own straddles records (see the module docs).
/// Names and values are written straight into `out`, with no intermediate buffer.
pub fn encode_params<'a, I>(out: &mut BytesMut, request_id: u16, params: I)
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut w = RecordWriter::open(out, RecordType::Params, request_id);
    for (name, value) in params {
        w.put_pair(name, value);
    }
    w.finish();
    put_record(out, RecordType::Params, request_id, &[]);
}

/// Appends `data` as STDIN records (split at [`crate::MAX_CONTENT_LEN`]). An empty `data`
/// appends the empty STDIN record that ends the stream.
pub fn encode_stdin(out: &mut BytesMut, request_id: u16, data: &[u8]) {
    if data.is_empty() {
        put_record(out, RecordType::Stdin, request_id, &[]);
        return;
    }
    let records = data.len().div_ceil(MAX_CONTENT_LEN);
    out.reserve(data.len() + records * (HEADER_LEN + 7));
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        put_record(out, RecordType::Stdin, request_id, chunk);
    }
}

/// Appends an ABORT_REQUEST record.
pub fn encode_abort_request(out: &mut BytesMut, request_id: u16) {
    put_record(out, RecordType::AbortRequest, request_id, &[]);
}

/// Appends a GET_VALUES management record (request id 0) asking for `names`, e.g.
/// `FCGI_MAX_CONNS`, `FCGI_MAX_REQS`, `FCGI_MPXS_CONNS`; each name goes as a pair with an
/// empty value. Names that do not fit in one record go in further GET_VALUES records, each
/// answered on its own. No names: nothing is appended.
pub fn encode_get_values<'a>(out: &mut BytesMut, names: impl IntoIterator<Item = &'a [u8]>) {
    let mut w = RecordWriter::open(out, RecordType::GetValues, 0);
    for name in names {
        w.put_pair(name, b"");
    }
    w.finish();
}

/// Writes records of one type into `out`, leaving room for the header of the record being
/// filled and completing it when it is full or finished.
struct RecordWriter<'a> {
    out: &'a mut BytesMut,
    t: RecordType,
    request_id: u16,
    /// Offset of the current record's header in `out`.
    start: usize,
}

impl<'a> RecordWriter<'a> {
    fn open(out: &'a mut BytesMut, t: RecordType, request_id: u16) -> Self {
        let start = out.len();
        put_header(out, t, request_id, 0, 0);
        Self {
            out,
            t,
            request_id,
            start,
        }
    }

    fn used(&self) -> usize {
        self.out.len() - self.start - HEADER_LEN
    }

    /// Completes the current record (header and padding) and opens the next one.
    fn next(&mut self) {
        self.close();
        self.start = self.out.len();
        put_header(self.out, self.t, self.request_id, 0, 0);
    }

    fn close(&mut self) {
        let len = self.used();
        let pad = padding_for(len);
        let header = header_bytes(self.t, self.request_id, len as u16, pad);
        self.out[self.start..self.start + HEADER_LEN].copy_from_slice(&header);
        self.out.put_bytes(0, pad as usize);
    }

    /// Appends `data`, continuing in new records as each fills up.
    fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = MAX_CONTENT_LEN - self.used();
            if room == 0 {
                self.next();
                continue;
            }
            let (now, rest) = data.split_at(room.min(data.len()));
            self.out.put_slice(now);
            data = rest;
        }
    }

    fn put_pair(&mut self, name: &[u8], value: &[u8]) {
        let (name, value) = (cut(name), cut(value));
        let (prefix, n) = pair_prefix(name.len(), value.len());
        let len = n + name.len() + value.len();
        if self.used() > 0 && self.used() + len > MAX_CONTENT_LEN {
            self.next();
        }
        self.out.reserve(len);
        self.write(&prefix[..n]);
        self.write(name);
        self.write(value);
    }

    /// Completes the last record, or removes it when it is still empty (an empty record
    /// would end the stream early).
    fn finish(mut self) {
        if self.used() == 0 {
            self.out.truncate(self.start);
        } else {
            self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::Header;

    /// (content length, padding length) of every record in `b`.
    fn shape(mut b: &[u8]) -> Vec<(usize, u8)> {
        let mut v = Vec::new();
        while let Some(h) = Header::parse(b) {
            v.push((h.content_len as usize, h.padding_len));
            b = &b[h.record_len()..];
        }
        assert!(b.is_empty());
        v
    }

    #[test]
    fn pairs_that_do_not_fit_start_a_new_record() {
        let big = vec![b'x'; 40_000];
        let mut out = BytesMut::new();
        encode_params(&mut out, 1, [(&b"A"[..], &big[..]), (b"B", &big[..])]);
        // 1 + 4 + 1 + 40000 = 40006 bytes per pair: two records, then the terminator.
        assert_eq!(shape(&out), vec![(40_006, 2), (40_006, 2), (0, 0)]);
    }

    #[test]
    fn a_pair_larger_than_a_record_straddles() {
        let big = vec![b'x'; 70_000];
        let mut out = BytesMut::new();
        encode_params(
            &mut out,
            1,
            [(&b"S"[..], &b"s"[..]), (b"A", &big[..]), (b"T", b"t")],
        );
        // The small pair keeps its own record; the big one fills 65535 bytes and spills
        // 4,471 into the next, where the last small pair joins it.
        assert_eq!(
            shape(&out),
            vec![(4, 4), (65_535, 0), (4_471 + 4, 5), (0, 0)]
        );
    }

    #[test]
    fn no_params_is_just_the_terminator() {
        let mut out = BytesMut::new();
        encode_params(&mut out, 3, std::iter::empty());
        assert_eq!(&out[..], &[1, 4, 0, 3, 0, 0, 0, 0]);
    }

    #[test]
    fn get_values_without_names_appends_nothing() {
        let mut out = BytesMut::from(&b"keep"[..]);
        encode_get_values(&mut out, std::iter::empty());
        assert_eq!(&out[..], b"keep");
    }
}
