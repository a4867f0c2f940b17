//! Encoding of the records a client sends for one request.
use crate::record::Role;
use bytes::BytesMut;

/// Appends a BEGIN_REQUEST record.
pub fn encode_begin_request(_out: &mut BytesMut, _request_id: u16, _role: Role, _keep_conn: bool) {
    todo!()
}

/// Appends the PARAMS stream: the name-value pairs, split across records of at most
/// [`crate::MAX_CONTENT_LEN`] bytes, then the empty PARAMS record that ends the stream.
pub fn encode_params<'a, I>(_out: &mut BytesMut, _request_id: u16, _params: I)
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    todo!()
}

/// Appends `data` as STDIN records (split at [`crate::MAX_CONTENT_LEN`]). An empty `data`
/// appends the empty STDIN record that ends the stream.
pub fn encode_stdin(_out: &mut BytesMut, _request_id: u16, _data: &[u8]) {
    todo!()
}

/// Appends an ABORT_REQUEST record.
pub fn encode_abort_request(_out: &mut BytesMut, _request_id: u16) {
    todo!()
}
