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
    /// A header line with no colon, a bad name, a folded line or a control character.
    #[error("malformed response header line {0:?}")]
    BadLine(String),
    /// A `Status:` that is not a three-digit code.
    #[error("malformed status {0:?}")]
    BadStatus(String),
}

/// The offset just past the blank line ending the head, if it is in `buf`.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Some(start + nl + 1);
        }
        start += nl + 1;
    }
    None
}

/// Parses the head at the start of `buf`. Returns the head and how many bytes it used
/// (including the blank line), or `Ok(None)` when the blank line has not arrived yet and
/// `buf` is still under `max_len`.
pub fn parse_head(buf: &[u8], max_len: usize) -> Result<Option<(CgiHead, usize)>, CgiError> {
    let Some(end) = find_head_end(&buf[..buf.len().min(max_len)]) else {
        return if buf.len() >= max_len {
            Err(CgiError::TooLarge(max_len))
        } else {
            Ok(None)
        };
    };
    let mut status = None;
    let mut has_location = false;
    let mut headers = Vec::new();
    for raw in buf[..end].split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let bad = || CgiError::BadLine(String::from_utf8_lossy(line).into_owned());
        let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad());
        }
        let value = trim(&line[colon + 1..]);
        if value.iter().any(|&b| b == b'\r' || b == b'\0') {
            return Err(bad());
        }
        // Name bytes are tchars, hence ASCII.
        let name = String::from_utf8_lossy(name).into_owned();
        if name.eq_ignore_ascii_case("status") {
            status = Some(parse_status(value)?);
            continue;
        }
        if name.eq_ignore_ascii_case("location") {
            has_location = true;
        }
        headers.push((name, Bytes::copy_from_slice(value)));
    }
    let status = status.unwrap_or(if has_location { 302 } else { 200 });
    Ok(Some((CgiHead { status, headers }, end)))
}

fn parse_status(v: &[u8]) -> Result<u16, CgiError> {
    let bad = || CgiError::BadStatus(String::from_utf8_lossy(v).into_owned());
    let code = v.get(..3).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit) || v.get(3).is_some_and(|&b| b != b' ' && b != b'\t') {
        return Err(bad());
    }
    let n = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if n < 100 {
        return Err(bad());
    }
    Ok(n)
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// RFC 9110 5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
