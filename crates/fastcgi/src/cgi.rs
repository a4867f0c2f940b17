//! The CGI response head (RFC 3875, section 6) that a script writes at the start of STDOUT.
use bytes::Bytes;

/// The parsed head: status and headers in the order the script sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiHead {
    /// From `Status:`, else 302 when `Location:` is present, else 200.
    pub status: u16,
    /// Headers other than `Status:`, names as sent, in order, repeated names kept separate.
    pub headers: Vec<(String, Bytes)>,
}

/// Why a response head is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CgiError {
    /// The head did not end within the size limit.
    #[error("response head larger than {0} bytes")]
    TooLarge(usize),
}

/// Parses the head at the start of `buf`. Returns the head and how many bytes it used
/// (including the blank line), or `Ok(None)` when the blank line has not arrived yet and
/// `buf` is still under `max_len`.
pub fn parse_head(_buf: &[u8], _max_len: usize) -> Result<Option<(CgiHead, usize)>, CgiError> {
    todo!()
}
