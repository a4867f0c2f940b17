//! RESP2 reply decoding and command encoding, sans-I/O.
//!
//! Bounded: a reply may hold at most [`MAX_BULK`] bytes per string, [`MAX_ELEMENTS`]
//! elements per array and [`MAX_DEPTH`] levels of nesting, so a broken or hostile server
//! cannot make the client allocate without limit.

use bytes::{Buf, Bytes, BytesMut};

/// Largest bulk string accepted in a reply.
pub const MAX_BULK: usize = 512 * 1024 * 1024;
/// Most elements in one reply array.
pub const MAX_ELEMENTS: usize = 1024 * 1024;
/// Deepest nesting of arrays.
pub const MAX_DEPTH: usize = 16;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Nil bulk or nil array.
    Nil,
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$3\r\nabc`.
    Bulk(Bytes),
    /// `*2\r\n...`.
    Array(Vec<Value>),
}

impl Value {
    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The integer of an integer reply, or of a bulk string holding one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }
}

/// Encodes one command as a RESP multibulk.
pub fn encode<A: AsRef<[u8]>>(out: &mut BytesMut, args: &[A]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Decodes one reply from the front of `buf`: `Ok(None)` when more input is needed (nothing
/// consumed), `Err` when the input cannot be a reply.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Value>, String> {
    let mut pos = 0;
    match parse(buf, &mut pos, 0)? {
        Some(v) => {
            buf.advance(pos);
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, String> {
    let rest = &buf[*pos..];
    let Some(i) = rest.windows(2).position(|w| w == b"\r\n") else {
        if rest.len() > 64 * 1024 {
            return Err("reply line longer than 64 KiB".into());
        }
        return Ok(None);
    };
    *pos += i + 2;
    Ok(Some(&rest[..i]))
}

fn int(l: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an integer: {:?}", String::from_utf8_lossy(l)))
}

fn parse(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Value>, String> {
    if depth > MAX_DEPTH {
        return Err("reply nested too deeply".into());
    }
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let Some(l) = line(buf, pos)? else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(l).into_owned();
    Ok(Some(match kind {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => Value::Int(int(l)?),
        b'$' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some(Value::Nil));
            }
            let n = n as usize;
            if n > MAX_BULK {
                return Err(format!("bulk string of {n} bytes"));
            }
            if buf.len() < *pos + n + 2 {
                return Ok(None);
            }
            if &buf[*pos + n..*pos + n + 2] != b"\r\n" {
                return Err("bulk string not followed by CRLF".into());
            }
            let v = Bytes::copy_from_slice(&buf[*pos..*pos + n]);
            *pos += n + 2;
            Value::Bulk(v)
        }
        b'*' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some(Value::Nil));
            }
            let n = n as usize;
            if n > MAX_ELEMENTS {
                return Err(format!("array of {n} elements"));
            }
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                match parse(buf, pos, depth + 1)? {
                    Some(v) => items.push(v),
                    None => return Ok(None),
                }
            }
            Value::Array(items)
        }
        other => return Err(format!("unknown reply type byte {other:#04x}")),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_split_point() {
        let wire: &[u8] = b"*4\r\n$3\r\nabc\r\n:-7\r\n*2\r\n+OK\r\n$-1\r\n-ERR no\r\n";
        let want = Value::Array(vec![
            Value::Bulk(Bytes::from_static(b"abc")),
            Value::Int(-7),
            Value::Array(vec![Value::Simple("OK".into()), Value::Nil]),
            Value::Error("ERR no".into()),
        ]);
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(decode(&mut buf).unwrap(), None, "cut at {cut}");
            assert_eq!(buf.len(), cut);
            buf.extend_from_slice(&wire[cut..]);
            assert_eq!(decode(&mut buf).unwrap(), Some(want.clone()));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn bounds_and_garbage() {
        for bad in [
            &b"$999999999999\r\n"[..],
            b"*99999999\r\n",
            b"?x\r\n",
            b":x\r\n",
            b"$1\r\nabc\r\n",
        ] {
            assert!(decode(&mut BytesMut::from(bad)).is_err(), "{bad:?}");
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(decode(&mut BytesMut::from(deep.as_bytes())).is_err());
    }

    #[test]
    fn encodes_binary_arguments() {
        let mut out = BytesMut::new();
        encode(&mut out, &[&b"SET"[..], b"k", b"a\r\nb"]);
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n");
    }
}
