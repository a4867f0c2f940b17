//! Encoding of the records a client sends for one request.
use crate::params::put_pair;
use crate::record::{
    put_header, put_record, RecordType, Role, HEADER_LEN, KEEP_CONN, MAX_CONTENT_LEN,
};
use bytes::{BufMut, BytesMut};

/// Appends a BEGIN_REQUEST record.
pub fn encode_begin_request(out: &mut BytesMut, request_id: u16, role: Role, keep_conn: bool) {
    let role: u16 = role.into();
    let r = role.to_be_bytes();
    let flags = if keep_conn { KEEP_CONN } else { 0 };
    put_record(
        out,
        RecordType::BeginRequest,
        request_id,
        &[r[0], r[1], flags, 0, 0, 0, 0, 0],
    );
}

/// Appends the PARAMS stream: the name-value pairs, split across records of at most
/// [`crate::MAX_CONTENT_LEN`] bytes, then the empty PARAMS record that ends the stream.
///
/// The pairs are encoded as one stream, then cut into records; a pair may straddle two
/// records, as the spec allows.
pub fn encode_params<'a, I>(out: &mut BytesMut, request_id: u16, params: I)
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut stream = BytesMut::new();
    for (name, value) in params {
        put_pair(&mut stream, name, value);
    }
    put_stream(out, RecordType::Params, request_id, &stream);
    put_record(out, RecordType::Params, request_id, &[]);
}

/// Appends `data` as STDIN records (split at [`crate::MAX_CONTENT_LEN`]). An empty `data`
/// appends the empty STDIN record that ends the stream.
pub fn encode_stdin(out: &mut BytesMut, request_id: u16, data: &[u8]) {
    if data.is_empty() {
        put_record(out, RecordType::Stdin, request_id, &[]);
    } else {
        put_stream(out, RecordType::Stdin, request_id, data);
    }
}

/// Appends an ABORT_REQUEST record.
pub fn encode_abort_request(out: &mut BytesMut, request_id: u16) {
    put_record(out, RecordType::AbortRequest, request_id, &[]);
}

/// Appends a GET_VALUES management record asking for `names`.
pub fn encode_get_values<'a>(out: &mut BytesMut, names: impl IntoIterator<Item = &'a [u8]>) {
    let mut content = BytesMut::new();
    for n in names {
        put_pair(&mut content, n, b"");
    }
    put_stream(out, RecordType::GetValues, 0, &content);
}

/// `data` as consecutive records of one type (no terminator).
fn put_stream(out: &mut BytesMut, t: RecordType, request_id: u16, data: &[u8]) {
    out.reserve(data.len() + (data.len() / MAX_CONTENT_LEN + 1) * (HEADER_LEN + 7));
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        let pad = crate::record::padding_for(chunk.len());
        put_header(out, t, request_id, chunk.len() as u16, pad);
        out.put_slice(chunk);
        out.put_bytes(0, pad as usize);
    }
}
