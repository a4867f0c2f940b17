//! Property tests: the stand-in for fuzzing on a stable toolchain. The number of cases comes
//! from `PROPTEST_CASES` (proptest's default configuration reads it), so CI can run a larger
//! bounded number than a developer's `cargo test`.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{decode_chunks, end_record, record, records, stream};
use isola_fastcgi::record::RecordType;
use isola_fastcgi::*;
use proptest::prelude::*;
use proptest::sample::Index;

/// Record content: mostly short, sometimes empty, rarely near the 65,535 limit.
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..200),
        2 => Just(vec![]),
        1 => (any::<u8>(), 60_000..=65_535usize).prop_map(|(b, n)| vec![b; n]),
    ]
}

/// One record a worker might send before END_REQUEST.
#[derive(Debug, Clone)]
enum Rec {
    /// STDOUT or STDERR of our request (empty = stream terminator).
    Out(bool, Vec<u8>),
    /// Any type, for another request id or a management record (id 0).
    Foreign(u8, u16, Vec<u8>),
    /// A type a worker does not send (not END_REQUEST, STDOUT, STDERR) for our id.
    Ignored(u8, Vec<u8>),
}

fn rec() -> impl Strategy<Value = (Rec, u8)> {
    let r = prop_oneof![
        6 => (any::<bool>(), content()).prop_map(|(o, c)| Rec::Out(o, c)),
        2 => (any::<u8>(), prop_oneof![Just(0u16), Just(2), 3..=u16::MAX], content())
            .prop_map(|(t, id, c)| Rec::Foreign(t, id, c)),
        1 => (any::<u8>().prop_filter("not 3, 6, 7", |t| ![3, 6, 7].contains(t)), content())
            .prop_map(|(t, c)| Rec::Ignored(t, c)),
    ];
    (r, any::<u8>())
}

/// `v` without leading and trailing spaces and tabs.
fn ows_trim(v: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !ows(b)).map_or(start, |e| e + 1);
    &v[start..end]
}

/// Cuts `b` at the given points (any order, repeats allowed).
fn cut<'a>(b: &'a [u8], points: &[Index]) -> Vec<&'a [u8]> {
    let mut p: Vec<usize> = points.iter().map(|i| i.index(b.len() + 1)).collect();
    p.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for x in p {
        chunks.push(&b[last..x]);
        last = x;
    }
    chunks.push(&b[last..]);
    chunks
}

/// Records with random header fields over random content: version mostly 1, types and ids
/// near the interesting ones, lengths that may or may not match what follows.
fn raw_records() -> impl Strategy<Value = Vec<u8>> {
    let one = (
        prop_oneof![9 => Just(1u8), 1 => any::<u8>()],
        0u8..14,
        prop_oneof![Just(0u16), Just(1), Just(2)],
        prop_oneof![4 => 0u16..40, 1 => any::<u16>()],
        prop_oneof![3 => Just(0u8), 1 => any::<u8>()],
        proptest::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(|(v, t, id, len, pad, tail)| {
            let mut b = vec![
                v,
                t,
                (id >> 8) as u8,
                id as u8,
                (len >> 8) as u8,
                len as u8,
                pad,
                0,
            ];
            b.extend(tail);
            b
        });
    proptest::collection::vec(one, 0..12).prop_map(|v| v.concat())
}

/// A header line a script could send: a token name and a value with optional whitespace.
fn header_line() -> impl Strategy<Value = (String, Vec<u8>, String, String)> {
    (
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}",
        proptest::collection::vec(
            prop_oneof![0x21u8..=0x7e, 0x80u8..=0xff, Just(b' '), Just(b'\t')],
            0..40,
        ),
        "[ \t]{0,2}",
        prop_oneof![Just("\r\n".to_string()), Just("\n".to_string())],
    )
}

proptest! {
    /// Random responses with random padding decode to the same events however they are cut.
    #[test]
    fn random_responses_survive_any_split(
        recs in proptest::collection::vec(rec(), 0..16),
        app_status in any::<u32>(),
        protocol_status in any::<u8>(),
        end_pad in any::<u8>(),
        cuts in proptest::collection::vec(any::<Index>(), 0..8),
    ) {
        let mut b = BytesMut::new();
        let mut expected = Vec::new();
        for (r, pad) in &recs {
            match r {
                Rec::Out(true, d) => {
                    record(&mut b, RecordType::Stdout, 1, d, *pad);
                    if !d.is_empty() { expected.push(Event::Stdout(Bytes::from(d.clone()))); }
                }
                Rec::Out(false, d) => {
                    record(&mut b, RecordType::Stderr, 1, d, *pad);
                    if !d.is_empty() { expected.push(Event::Stderr(Bytes::from(d.clone()))); }
                }
                Rec::Foreign(t, id, d) => record(&mut b, RecordType::from(*t), *id, d, *pad),
                Rec::Ignored(t, d) => record(&mut b, RecordType::from(*t), 1, d, *pad),
            }
        }
        end_record(&mut b, 1, app_status, protocol_status, end_pad);
        expected.push(Event::End { app_status, protocol_status: ProtocolStatus::from(protocol_status) });
        prop_assert_eq!(decode_chunks(&cut(&b, &cuts)).unwrap(), expected);
    }

    /// Arbitrary bytes never panic the decoder, and the outcome (events and error) does not
    /// depend on how the bytes were cut.
    #[test]
    fn decoder_on_arbitrary_bytes(
        data in prop_oneof![proptest::collection::vec(any::<u8>(), 0..600), raw_records()],
        cuts in proptest::collection::vec(any::<Index>(), 0..8),
    ) {
        let whole = decode_chunks(&[&data]);
        prop_assert_eq!(decode_chunks(&cut(&data, &cuts)), whole.clone());
        let one_by_one: Vec<&[u8]> = data.chunks(1).collect();
        prop_assert_eq!(decode_chunks(&one_by_one), whole);
    }

    /// Params round-trip; records stay within php-cgi's limits and hold whole pairs unless a
    /// pair is larger than a record.
    #[test]
    fn params_roundtrip(
        pairs in proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..200),
                prop_oneof![
                    9 => proptest::collection::vec(any::<u8>(), 0..300),
                    1 => (any::<u8>(), 10_000..70_000usize).prop_map(|(b, n)| vec![b; n]),
                ],
            ),
            0..30,
        ),
        id in any::<u16>(),
    ) {
        let mut out = BytesMut::new();
        encode_params(&mut out, id, pairs.iter().map(|(n, v)| (&n[..], &v[..])));
        let recs = records(&out);
        let (last, body) = recs.split_last().unwrap();
        prop_assert_eq!(last.0.content_len, 0);
        for (h, c) in body {
            prop_assert_eq!(h.record_type, RecordType::Params);
            prop_assert_eq!(h.request_id, id);
            prop_assert!(!c.is_empty());
            prop_assert!(c.len() + h.padding_len as usize <= MAX_CONTENT_LEN);
        }
        let expected: Vec<(Bytes, Bytes)> =
            pairs.iter().map(|(n, v)| (Bytes::from(n.clone()), Bytes::from(v.clone()))).collect();
        prop_assert_eq!(decode_params(&stream(&out, RecordType::Params)).unwrap(), expected);
        let fits = pairs.iter().all(|(n, v)| params::encoded_len(n, v) <= MAX_CONTENT_LEN);
        if fits {
            for (_, c) in body {
                prop_assert!(decode_params(c).is_ok(), "a pair straddles records");
            }
        }
    }

    /// STDIN records carry the data unchanged, none larger than the limit.
    #[test]
    fn stdin_roundtrip(len in 0..200_000usize, byte in any::<u8>()) {
        let data: Vec<u8> = (0..len).map(|i| byte ^ (i as u8)).collect();
        let mut out = BytesMut::new();
        encode_stdin(&mut out, 1, &data);
        let recs = records(&out);
        prop_assert_eq!(recs.len(), len.div_ceil(MAX_CONTENT_LEN).max(1));
        prop_assert_eq!(stream(&out, RecordType::Stdin), data);
    }

    /// The head parser never panics, and a prefix never disagrees with the whole.
    #[test]
    fn head_parser_is_prefix_consistent(
        data in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), any::<u8>(), 97u8..123],
            0..400,
        ),
        max_len in prop_oneof![Just(4096usize), 0..400usize],
        c in any::<Index>(),
    ) {
        let whole = parse_head(&data, max_len);
        let c = c.index(data.len() + 1);
        match parse_head(&data[..c], max_len) {
            Ok(None) => {}
            prefix => prop_assert_eq!(prefix, whole.clone()),
        }
        if let Ok(Some((_, used))) = &whole {
            prop_assert_eq!(parse_head(&data[..*used], max_len), whole.clone());
            prop_assert_eq!(find_head_end(&data), Some(*used));
        }
    }

    /// Well-formed heads come back exactly: names as sent, values trimmed, status rules.
    #[test]
    fn generated_heads_parse_back(
        lines in proptest::collection::vec(header_line(), 0..12),
        status in proptest::option::of((100u16..1000, "( [A-Za-z ]{0,12})?")),
        status_at in any::<Index>(),
        body in proptest::collection::vec(any::<u8>(), 0..50),
    ) {
        let lines: Vec<_> = lines
            .into_iter()
            .filter(|(n, ..)| !n.eq_ignore_ascii_case("status"))
            .collect();
        let mut raw = Vec::new();
        let mut expected = Vec::new();
        let at = status_at.index(lines.len() + 1);
        for (i, (name, value, ows, eol)) in lines.iter().enumerate() {
            if i == at {
                if let Some((code, reason)) = &status {
                    raw.extend_from_slice(format!("Status: {code}{reason}\r\n").as_bytes());
                }
            }
            raw.extend_from_slice(name.as_bytes());
            raw.push(b':');
            raw.extend_from_slice(ows.as_bytes());
            raw.extend_from_slice(value);
            raw.extend_from_slice(eol.as_bytes());
            expected.push((name.clone(), Bytes::copy_from_slice(ows_trim(value))));
        }
        if at == lines.len() {
            if let Some((code, reason)) = &status {
                raw.extend_from_slice(format!("Status: {code}{reason}\n").as_bytes());
            }
        }
        raw.extend_from_slice(b"\r\n");
        let used_expected = raw.len();
        raw.extend_from_slice(&body);
        let (head, used) = parse_head(&raw, 64 * 1024).unwrap().unwrap();
        prop_assert_eq!(used, used_expected);
        let has_location = lines.iter().any(|(n, ..)| n.eq_ignore_ascii_case("location"));
        let want_status = match status {
            Some((code, _)) => code,
            None if has_location => 302,
            None => 200,
        };
        prop_assert_eq!(head.status, want_status);
        prop_assert_eq!(head.headers, expected);
    }
}
