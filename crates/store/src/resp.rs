//! RESP2 wire codec: request parsing and reply encoding, buffers in and buffers out.
//!
//! This module owns the byte format only. It never performs I/O, never looks at what a command
//! means, and never allocates in proportion to a length the client announced before the bytes
//! have arrived: counts and lengths are checked against [`Limits`] first, and a parse that
//! needs more bytes leaves the buffer untouched so the caller can read more and call again.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline command or length line Redis accepts before the terminating CRLF.
pub const INLINE_MAX: usize = 64 * 1024;
/// Largest multibulk argument count Redis accepts from a client that has not authenticated
/// or in general (`*N` with N above this is a protocol error).
pub const MULTIBULK_MAX: i64 = 1024 * 1024;
/// Default `proto-max-bulk-len`: 512 MiB.
pub const DEFAULT_MAX_BULK: i64 = 512 * 1024 * 1024;

/// Bounds the parser enforces before it trusts a client-announced size.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted bulk string length in bytes.
    pub max_bulk_len: i64,
    /// The client has not authenticated yet: Redis then refuses more than 10 arguments and
    /// bulk strings above 16 KiB, so a stranger cannot make the server buffer much.
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: DEFAULT_MAX_BULK,
            unauthenticated: false,
        }
    }
}

/// A request that cannot be parsed; the connection answers with the message and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(msg: impl Into<String>) -> Self {
        ProtocolError(msg.into())
    }

    /// The reply Redis sends before closing the connection.
    pub fn reply(&self) -> Reply {
        Reply::Error(format!("ERR {self}"))
    }
}

/// Outcome of one parse attempt.
pub type ParseResult = Result<Option<Vec<Bytes>>, ProtocolError>;

/// Parses one request from the front of `buf`.
///
/// Returns `Ok(Some(args))` and consumes the request, `Ok(None)` when more bytes are needed
/// (nothing consumed), or an error. Empty requests (`*0`, `*-1`, a blank inline line) are
/// consumed and yield `Some(vec![])`, which callers skip without replying, as Redis does.
pub fn parse_request(buf: &mut BytesMut, limits: &Limits) -> ParseResult {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits)
    } else {
        parse_inline(buf)
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

/// Redis's `string2ll` subset used for protocol lengths: optional '-', digits, no '+'.
fn parse_len(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for d in digits {
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if neg { -v } else { v })
}

fn parse_multibulk(buf: &mut BytesMut, limits: &Limits) -> ParseResult {
    let Some(end) = find_crlf(buf, 1) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::new("too big mbulk count string"));
        }
        return Ok(None);
    };
    let count = match parse_len(&buf[1..end]) {
        Some(n) if n <= MULTIBULK_MAX => n,
        _ => return Err(ProtocolError::new("invalid multibulk length")),
    };
    if count > 10 && limits.unauthenticated {
        return Err(ProtocolError::new("unauthenticated multibulk length"));
    }
    let mut pos = end + 2;
    if count <= 0 {
        buf.advance(pos);
        return Ok(Some(Vec::new()));
    }
    // First pass: validate framing and find the total length without allocating per argument.
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity((count as usize).min(1024));
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError::new(format!(
                "expected '$', got '{}'",
                char::from(buf[pos])
            )));
        }
        let Some(lend) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > INLINE_MAX {
                return Err(ProtocolError::new("too big bulk count string"));
            }
            return Ok(None);
        };
        let len = match parse_len(&buf[pos + 1..lend]) {
            Some(n) if (0..=limits.max_bulk_len).contains(&n) => n as usize,
            _ => return Err(ProtocolError::new("invalid bulk length")),
        };
        if len > 16384 && limits.unauthenticated {
            return Err(ProtocolError::new("unauthenticated bulk length"));
        }
        let start = lend + 2;
        let Some(stop) = start.checked_add(len) else {
            return Err(ProtocolError::new("invalid bulk length"));
        };
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        // Redis does not check the two bytes after the payload; it skips them.
        spans.push((start, len));
        pos = stop + 2;
    }
    let frame = buf.split_to(pos).freeze();
    Ok(Some(
        spans
            .into_iter()
            .map(|(s, l)| frame.slice(s..s + l))
            .collect(),
    ))
}

fn parse_inline(buf: &mut BytesMut) -> ParseResult {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(None);
    };
    if nl > INLINE_MAX {
        return Err(ProtocolError::new("too big inline request"));
    }
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    split_args(line)
        .map(Some)
        .ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline command line the way Redis's `sdssplitargs` does (quotes and escapes).
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= line.len() {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < line.len()
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    cur.push(hex_val(line[i + 2])? * 16 + hex_val(line[i + 3])?);
                    i += 3;
                } else if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= line.len() {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= line.len() {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(Bytes::from(cur));
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Simple(&'static str),
    /// `+...` with an owned text (status replies built at run time).
    Status(String),
    /// `-ERR ...`: the text includes the error word.
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n\r\n...`
    Bulk(Bytes),
    /// `$-1`
    Nil,
    /// `*n` followed by the elements.
    Array(Vec<Reply>),
    /// `*-1`
    NilArray,
}

impl Reply {
    /// `+OK`.
    pub const OK: Reply = Reply::Simple("OK");

    /// An error reply from a static text.
    pub fn err(msg: &str) -> Reply {
        Reply::Error(msg.to_owned())
    }

    /// A bulk reply copied from a byte slice.
    pub fn bulk(b: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b.as_ref()))
    }

    /// True for error replies (used by MULTI to flag a transaction and by counters).
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the wire form of this reply to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for i in items {
                    i.encode(out);
                }
            }
        }
    }

    /// The wire form as a fresh buffer (tests and diagnostics).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

fn line(out: &mut BytesMut, prefix: u8, body: &[u8]) {
    out.extend_from_slice(&[prefix]);
    // Status and error lines cannot carry CR or LF; Redis replaces them with spaces.
    out.extend(
        body.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], limits: &Limits) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = parse_request(&mut buf, limits)? {
            out.push(req);
        }
        Ok(out)
    }

    /// Feeds `input` split at every offset and checks the same requests come out.
    fn check_splits(input: &[u8]) -> Vec<Vec<Bytes>> {
        let limits = Limits::default();
        let whole = parse_all(input, &limits).unwrap();
        for cut in 0..=input.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in [&input[..cut], &input[cut..]] {
                buf.extend_from_slice(chunk);
                while let Some(req) = parse_request(&mut buf, &limits).unwrap() {
                    got.push(req);
                }
            }
            assert_eq!(got, whole, "split at {cut}");
            assert!(buf.is_empty());
        }
        // Byte by byte.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in input {
            buf.extend_from_slice(&[*b]);
            while let Some(req) = parse_request(&mut buf, &limits).unwrap() {
                got.push(req);
            }
        }
        assert_eq!(got, whole);
        whole
    }

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn multibulk_split_everywhere() {
        let reqs = check_splits(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(reqs, vec![args(&["SET", "k", ""]), args(&["PING"])]);
    }

    #[test]
    fn inline_split_everywhere() {
        let reqs = check_splits(b"PING\r\nset k \"a b\\x41\\n\" 'it\\'s'\nECHO x\r\n");
        assert_eq!(
            reqs,
            vec![
                args(&["PING"]),
                args(&["set", "k", "a bA\n", "it's"]),
                args(&["ECHO", "x"])
            ]
        );
    }

    #[test]
    fn empty_requests_are_consumed() {
        let reqs = check_splits(b"*0\r\n\r\n*-1\r\n");
        assert_eq!(reqs, vec![Vec::<Bytes>::new(); 3]);
    }

    #[test]
    fn bulk_above_limit_is_an_error_not_an_allocation() {
        let limits = Limits {
            max_bulk_len: 10,
            unauthenticated: false,
        };
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        let e = parse_request(&mut buf, &limits).unwrap_err();
        assert_eq!(
            e.reply().to_bytes(),
            &b"-ERR Protocol error: invalid bulk length\r\n"[..]
        );
        let mut buf = BytesMut::from(&b"*1\r\n$9999999999999999\r\n"[..]);
        assert!(parse_request(&mut buf, &Limits::default()).is_err());
        let mut buf = BytesMut::from(&b"*1\r\n$-5\r\n"[..]);
        assert!(parse_request(&mut buf, &Limits::default()).is_err());
    }

    #[test]
    fn unauthenticated_clients_get_small_limits() {
        let limits = Limits {
            unauthenticated: true,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &limits).unwrap_err().0,
            "unauthenticated multibulk length"
        );
        let mut buf = BytesMut::from(&b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &limits).unwrap_err().0,
            "unauthenticated bulk length"
        );
    }

    #[test]
    fn multibulk_count_bounded() {
        let mut buf = BytesMut::from(&b"*1048577\r\n"[..]);
        let e = parse_request(&mut buf, &Limits::default()).unwrap_err();
        assert_eq!(e.0, "invalid multibulk length");
        let mut buf = BytesMut::from(&b"*1048576\r\n$1\r\n"[..]);
        assert_eq!(parse_request(&mut buf, &Limits::default()).unwrap(), None);
        let mut buf = BytesMut::from(&b"*x\r\n"[..]);
        assert!(parse_request(&mut buf, &Limits::default()).is_err());
    }

    #[test]
    fn framing_errors() {
        let mut buf = BytesMut::from(&b"*1\r\n+x\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &Limits::default()).unwrap_err().0,
            "expected '$', got '+'"
        );
        let mut buf = BytesMut::from(&b"set \"a\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &Limits::default()).unwrap_err().0,
            "unbalanced quotes in request"
        );
        let mut buf = BytesMut::from(vec![b'a'; INLINE_MAX + 1].as_slice());
        assert_eq!(
            parse_request(&mut buf, &Limits::default()).unwrap_err().0,
            "too big inline request"
        );
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic, and a split anywhere gives the same requests.
        #[test]
        fn arbitrary_input_is_safe(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), cut in 0usize..200) {
            let limits = Limits { max_bulk_len: 64, unauthenticated: false };
            let whole = parse_all(&input, &limits);
            let cut = cut.min(input.len());
            let mut buf = BytesMut::from(&input[..cut]);
            let mut got = Vec::new();
            let mut res = Ok(());
            loop {
                match parse_request(&mut buf, &limits) {
                    Ok(Some(r)) => got.push(r),
                    Ok(None) => break,
                    Err(e) => { res = Err(e); break; }
                }
            }
            if res.is_ok() {
                buf.extend_from_slice(&input[cut..]);
                loop {
                    match parse_request(&mut buf, &limits) {
                        Ok(Some(r)) => got.push(r),
                        Ok(None) => break,
                        Err(e) => { res = Err(e); break; }
                    }
                }
            }
            match (whole, res) {
                (Ok(w), Ok(())) => proptest::prop_assert_eq!(w, got),
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b),
                (w, r) => proptest::prop_assert!(false, "whole {:?} vs split {:?}", w, r),
            }
        }

        /// Well-formed multibulk requests survive any split.
        #[test]
        fn multibulk_roundtrip(args in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20), 1..6), cut in 0usize..300) {
            let mut wire = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
            let cut = cut.min(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            let first = parse_request(&mut buf, &Limits::default()).unwrap();
            let req = match first {
                Some(r) => r,
                None => {
                    buf.extend_from_slice(&wire[cut..]);
                    parse_request(&mut buf, &Limits::default()).unwrap().unwrap()
                }
            };
            let want: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            proptest::prop_assert_eq!(req, want);
        }
    }

    #[test]
    fn encode_replies() {
        let r = Reply::Array(vec![
            Reply::OK,
            Reply::err("ERR x\ny"),
            Reply::Int(-3),
            Reply::bulk("ab"),
            Reply::Nil,
            Reply::NilArray,
            Reply::Array(vec![]),
        ]);
        assert_eq!(
            r.to_bytes(),
            &b"*7\r\n+OK\r\n-ERR x y\r\n:-3\r\n$2\r\nab\r\n$-1\r\n*-1\r\n*0\r\n"[..]
        );
    }
}
