//! Name-value pair encoding (FastCGI 1.0, section 3.4): lengths below 128 take one byte,
//! longer ones four bytes with the high bit set.
use bytes::{BufMut, Bytes};

/// Largest length a name or value can have.
pub const MAX_PAIR_PART: usize = 0x7fff_ffff;

/// Why a params stream cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamsError {
    /// The stream ended inside a pair.
    #[error("name-value pair truncated at byte {0}")]
    Truncated(usize),
}

/// Appends one length.
pub fn put_len(out: &mut impl BufMut, len: usize) {
    if len < 128 {
        out.put_u8(len as u8);
    } else {
        out.put_u32((len.min(MAX_PAIR_PART) as u32) | 0x8000_0000);
    }
}

/// Bytes one pair takes once encoded.
pub fn encoded_len(name: &[u8], value: &[u8]) -> usize {
    let l = |n: usize| if n < 128 { 1 } else { 4 };
    l(name.len()) + l(value.len()) + name.len() + value.len()
}

/// Appends one pair. Names or values over [`MAX_PAIR_PART`] bytes are cut to it.
pub fn put_pair(out: &mut impl BufMut, name: &[u8], value: &[u8]) {
    let name = &name[..name.len().min(MAX_PAIR_PART)];
    let value = &value[..value.len().min(MAX_PAIR_PART)];
    put_len(out, name.len());
    put_len(out, value.len());
    out.put_slice(name);
    out.put_slice(value);
}

/// Decodes a whole params stream (the concatenated content of its records).
pub fn decode_params(mut b: &[u8]) -> Result<Vec<(Bytes, Bytes)>, ParamsError> {
    let total = b.len();
    let mut pairs = Vec::new();
    let read_len = |b: &mut &[u8]| -> Option<usize> {
        let first = *b.first()?;
        if first < 128 {
            *b = &b[1..];
            Some(first as usize)
        } else {
            let v = b.get(..4)?;
            let n = u32::from_be_bytes([v[0] & 0x7f, v[1], v[2], v[3]]) as usize;
            *b = &b[4..];
            Some(n)
        }
    };
    while !b.is_empty() {
        let at = total - b.len();
        let nl = read_len(&mut b).ok_or(ParamsError::Truncated(at))?;
        let vl = read_len(&mut b).ok_or(ParamsError::Truncated(at))?;
        if b.len() < nl.saturating_add(vl) {
            return Err(ParamsError::Truncated(at));
        }
        let name = Bytes::copy_from_slice(&b[..nl]);
        let value = Bytes::copy_from_slice(&b[nl..nl + vl]);
        b = &b[nl + vl..];
        pairs.push((name, value));
    }
    Ok(pairs)
}
