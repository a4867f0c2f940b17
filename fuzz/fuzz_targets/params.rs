//! Params decoding: never panics, and what decodes encodes back to something that decodes
//! to the same pairs.
#![no_main]

use bytes::BytesMut;
use isola_fastcgi::decode_params;
use isola_fastcgi::params::put_pair;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = decode_params(data) {
        let mut out = BytesMut::new();
        for (n, v) in &pairs {
            put_pair(&mut out, n, v);
        }
        assert_eq!(decode_params(&out).as_ref(), Ok(&pairs));
    }
});
