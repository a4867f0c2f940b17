//! Response decoding: never panics, and the same bytes give the same events and error
//! whole, one byte at a time and split in two at points taken from the input.
//!
//! The input is the raw byte stream a worker sent, the format of the files in
//! crates/fastcgi/tests/corpus/response (the seeds; crashers go there too).
#![no_main]

use bytes::BytesMut;
use isola_fastcgi::{DecodeError, Event, ResponseDecoder};
use libfuzzer_sys::fuzz_target;

fn decode(chunks: &[&[u8]]) -> Result<Vec<Event>, DecodeError> {
    let mut dec = ResponseDecoder::new(1);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Some(e) = dec.decode(&mut buf)? {
            events.push(e);
        }
    }
    Ok(events)
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(&[data]);
    // Split points that depend on the content, so the fuzzer can steer them.
    let hash = data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    for at in [data.len() / 2, hash as usize % (data.len() + 1)] {
        assert_eq!(decode(&[&data[..at], &data[at..]]), whole);
    }
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(decode(&bytes), whole);
});
