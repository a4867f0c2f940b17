//! The CGI response head (RFC 3875, section 6) that a script writes at the start of STDOUT.
//!
//! Owns: finding the end of the head, splitting it into header lines, the `Status:` and
//! `Location:` rules, and refusing lines that could not be forwarded safely. Never: maps
//! headers to HTTP semantics (hop-by-hop, Content-Length, framing): that is the front's.
//!
//! php-cgi writes `Status: 404 Not Found\r\n` (only when the code is not 200), then its
//! headers (`X-Powered-By: PHP/8.2`, `Content-type: text/html; charset=UTF-8`, one line per
//! `Set-Cookie`), then `\r\n`. Lines ending in a bare `\n` are accepted too, as other CGI
//! programs write them.
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
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum CgiError {
    /// The head did not end within the size limit.
    #[error("response head larger than {0} bytes")]
    TooLarge(usize),
    /// A header line with no colon, a name that is not a token (this includes a folded
    /// continuation line, which starts with whitespace), or a CR or NUL in the value.
    /// Carries the line, cut to [`SHOWN`] bytes.
    #[error("malformed response header line {0:?}")]
    BadLine(String),
    /// A `Status:` value that does not start with a three-digit code from 100 to 999
    /// followed by the end of the value or whitespace. Carries the value, cut to [`SHOWN`].
    #[error("malformed status {0:?}")]
    BadStatus(String),
}

/// How much of a bad line an error carries: enough to recognise it in a log, not a whole
/// 64 KiB head per failed request.
pub const SHOWN: usize = 120;

/// The offset just past the blank line ending the head, if it is in `buf`. A line ends with
/// `\n` or `\r\n`; the blank line is the first empty one.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let end = start + nl;
        if end == start || (end == start + 1 && buf[start] == b'\r') {
            return Some(end + 1);
        }
        start = end + 1;
    }
    None
}

/// Parses the head at the start of `buf`. Returns the head and how many bytes it used
/// (including the blank line), or `Ok(None)` when the blank line has not arrived yet and
/// `buf` is still under `max_len`.
///
/// Only the first `max_len` bytes are looked at, so the answer for a prefix of a buffer
/// never contradicts the answer for the whole: `Ok(None)` for the prefix, or the same result.
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
    // Every line but the last (the blank one) ends in '\n'.
    for raw in buf[..end].split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        let (name, value) = split_line(line)?;
        if name.eq_ignore_ascii_case(b"status") {
            // Several Status lines: the last one counts, as for any repeated CGI field.
            status = Some(parse_status(value)?);
            continue;
        }
        has_location |= name.eq_ignore_ascii_case(b"location");
        // Token characters are ASCII: this is never lossy.
        let name = String::from_utf8_lossy(name).into_owned();
        headers.push((name, Bytes::copy_from_slice(value)));
    }
    let status = status.unwrap_or(if has_location { 302 } else { 200 });
    Ok(Some((CgiHead { status, headers }, end)))
}

/// `name: value` → (name, value without surrounding whitespace), checked.
fn split_line(line: &[u8]) -> Result<(&[u8], &[u8]), CgiError> {
    let bad = || CgiError::BadLine(shown(line));
    let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad());
    }
    // PHP's header() refuses these too; a CR passed on would split the HTTP header.
    if value.iter().any(|&b| b == b'\r' || b == b'\0') {
        return Err(bad());
    }
    Ok((name, value))
}

fn parse_status(v: &[u8]) -> Result<u16, CgiError> {
    let bad = || CgiError::BadStatus(shown(v));
    let digits = match v {
        [a, b, c] | [a, b, c, b' ' | b'\t', ..] => [*a, *b, *c],
        _ => return Err(bad()),
    };
    if !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return Err(bad());
    }
    Ok(digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

/// Removes optional whitespace (RFC 9110 OWS: spaces and tabs) around a value.
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

fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(SHOWN)]).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn status_forms() {
        assert_eq!(parse_status(b"404"), Ok(404));
        assert_eq!(parse_status(b"404 Not Found"), Ok(404));
        assert_eq!(parse_status(b"599\tx"), Ok(599));
        assert_eq!(parse_status(b"100"), Ok(100));
        assert_eq!(parse_status(b"999"), Ok(999));
        for bad in [
            &b""[..],
            b"20",
            b"099",
            b"2000",
            b"20x",
            b"404-",
            b"+404",
            b" 404",
            b"abc",
        ] {
            assert!(
                matches!(parse_status(bad), Err(CgiError::BadStatus(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn head_end_forms() {
        assert_eq!(find_head_end(b"\n"), Some(1));
        assert_eq!(find_head_end(b"\r\n"), Some(2));
        assert_eq!(find_head_end(b"A: b\n\r\nrest"), Some(7));
        assert_eq!(find_head_end(b"A: b\r\n\nrest"), Some(7));
        assert_eq!(find_head_end(b"A: b\r\n\r"), None);
        assert_eq!(find_head_end(b"\r\r\n"), None);
        assert_eq!(find_head_end(b""), None);
    }

    #[test]
    fn errors_carry_a_bounded_excerpt() {
        let mut line = vec![b'x'; 5000];
        line.extend_from_slice(b"\n\n");
        let Err(CgiError::BadLine(s)) = parse_head(&line, 10_000) else {
            panic!()
        };
        assert_eq!(s.len(), SHOWN);
    }
}
