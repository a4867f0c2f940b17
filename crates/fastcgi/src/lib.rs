//! FastCGI 1.0, client side, as a pure codec.
//!
//! Owns: record framing (header, content, padding), name-value params encoding (short and
//! long lengths), the request records a web server sends (BEGIN_REQUEST, PARAMS, STDIN,
//! ABORT_REQUEST), demultiplexing of the records a worker sends back (STDOUT, STDERR,
//! END_REQUEST, and Isola's interim record from the native backend), and parsing of the CGI
//! response head carried in STDOUT.
//!
//! Never: performs I/O, spawns or picks workers, or knows about HTTP beyond the CGI
//! response head. Everything here works on byte buffers so it can be tested split at every
//! offset and fuzzed without sockets.

pub mod cgi;
pub mod params;
pub mod record;
pub mod request;
pub mod response;

pub use cgi::{find_head_end, parse_head, CgiError, CgiHead};
pub use params::{decode_params, ParamsError};
pub use record::{ProtocolStatus, RecordType, Role, ISOLA_INTERIM, MAX_CONTENT_LEN};
pub use request::{
    encode_abort_request, encode_begin_request, encode_get_values, encode_params, encode_stdin,
};
pub use response::{next_record, DecodeError, Event, ResponseDecoder};
