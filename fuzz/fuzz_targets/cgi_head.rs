//! CGI head parsing: never panics, and a prefix never contradicts the whole buffer.
//!
//! The input is the start of a script's STDOUT, the format of the files in
//! crates/fastcgi/tests/corpus/cgi_head (the seeds; crashers go there too).
#![no_main]

use isola_fastcgi::parse_head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let hash = data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    for max_len in [64 * 1024, data.len() / 2 + 1, hash as usize % 512] {
        let whole = parse_head(data, max_len);
        for cut in [data.len() / 2, hash as usize % (data.len() + 1)] {
            match parse_head(&data[..cut], max_len) {
                Ok(None) => {}
                prefix => assert_eq!(prefix, whole),
            }
        }
        if let Ok(Some((_, used))) = &whole {
            assert_eq!(parse_head(&data[..*used], max_len), whole);
        }
    }
});
