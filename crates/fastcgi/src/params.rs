//! Name-value pair encoding (FastCGI 1.0, section 3.4): lengths below 128 take one byte,
//! longer ones four bytes with the high bit set.
//!
//! Owns: the byte layout of one pair and of a stream of pairs. Never: decides how pairs are
//! cut into records (that is `request`), nor which variables a request carries.
use bytes::{BufMut, Bytes};

/// Largest length a name or value can have (31 bits).
pub const MAX_PAIR_PART: usize = 0x7fff_ffff;

/// Why a params stream cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum ParamsError {
    /// The stream ended inside the pair starting at this byte offset.
    #[error("name-value pair truncated at byte {0}")]
    Truncated(usize),
}

/// Appends one length. Lengths over [`MAX_PAIR_PART`] are written as that maximum: callers
/// cut the data to match (see [`put_pair`]).
pub fn put_len(out: &mut impl BufMut, len: usize) {
    if len < 128 {
        out.put_u8(len as u8);
    } else {
        out.put_u32((len.min(MAX_PAIR_PART) as u32) | 0x8000_0000);
    }
}

/// The two length fields of a pair, encoded: the array and how many of its bytes are used.
pub fn pair_prefix(name_len: usize, value_len: usize) -> ([u8; 8], usize) {
    let mut buf = [0u8; 8];
    let mut w = &mut buf[..];
    put_len(&mut w, name_len);
    put_len(&mut w, value_len);
    let used = 8 - w.len();
    (buf, used)
}

/// Bytes one pair takes once encoded (after cutting to [`MAX_PAIR_PART`]).
pub fn encoded_len(name: &[u8], value: &[u8]) -> usize {
    let part = |n: usize| {
        let n = n.min(MAX_PAIR_PART);
        n + if n < 128 { 1 } else { 4 }
    };
    part(name.len()) + part(value.len())
}

/// Names or values over [`MAX_PAIR_PART`] bytes cut to it: a longer length cannot be encoded.
/// (2 GiB of one variable never comes from a request the front accepts.)
pub(crate) fn cut(b: &[u8]) -> &[u8] {
    &b[..b.len().min(MAX_PAIR_PART)]
}

/// Appends one pair. Names or values over [`MAX_PAIR_PART`] bytes are cut to it.
pub fn put_pair(out: &mut impl BufMut, name: &[u8], value: &[u8]) {
    let (name, value) = (cut(name), cut(value));
    let (prefix, n) = pair_prefix(name.len(), value.len());
    out.put_slice(&prefix[..n]);
    out.put_slice(name);
    out.put_slice(value);
}

/// Decodes a whole params stream (the concatenated content of its records), e.g. the
/// content of a GET_VALUES_RESULT record. Names and values are copied out of `b`.
pub fn decode_params(mut b: &[u8]) -> Result<Vec<(Bytes, Bytes)>, ParamsError> {
    fn read_len(b: &mut &[u8]) -> Option<usize> {
        let first = *b.first()?;
        if first < 128 {
            *b = &b[1..];
            Some(first as usize)
        } else {
            let v: [u8; 4] = b.get(..4)?.try_into().ok()?;
            *b = &b[4..];
            Some((u32::from_be_bytes(v) & 0x7fff_ffff) as usize)
        }
    }
    let total = b.len();
    let mut pairs = Vec::new();
    while !b.is_empty() {
        let at = total - b.len();
        let truncated = ParamsError::Truncated(at);
        let nl = read_len(&mut b).ok_or(truncated)?;
        let vl = read_len(&mut b).ok_or(truncated)?;
        if b.len() < nl.saturating_add(vl) {
            return Err(truncated);
        }
        let (name, rest) = b.split_at(nl);
        let (value, rest) = rest.split_at(vl);
        pairs.push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)));
        b = rest;
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_one_or_four_bytes() {
        assert_eq!(pair_prefix(0, 127), ([0, 127, 0, 0, 0, 0, 0, 0], 2));
        assert_eq!(pair_prefix(128, 1), ([0x80, 0, 0, 128, 1, 0, 0, 0], 5));
        assert_eq!(
            pair_prefix(70_000, MAX_PAIR_PART + 5),
            ([0x80, 0x01, 0x11, 0x70, 0xff, 0xff, 0xff, 0xff], 8)
        );
        assert_eq!(encoded_len(&[0; 127], &[0; 128]), 1 + 127 + 4 + 128);
    }

    #[test]
    fn truncated_streams_name_the_pair_offset() {
        assert_eq!(
            decode_params(&[1, 1, b'a', b'b', 1]),
            Err(ParamsError::Truncated(4))
        );
        assert_eq!(decode_params(&[0x80, 0, 0]), Err(ParamsError::Truncated(0)));
        assert_eq!(
            decode_params(&[0, 0x80, 0, 0, 1]),
            Err(ParamsError::Truncated(0))
        );
        // A 31-bit length that overruns the stream is an error, not an allocation.
        assert_eq!(
            decode_params(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(ParamsError::Truncated(0))
        );
        assert_eq!(decode_params(&[]), Ok(vec![]));
    }
}
