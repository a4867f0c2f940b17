//! The codec checked whole, byte by byte, and split at every offset.
#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use isola_fastcgi::params::put_pair;
use isola_fastcgi::record::{put_header, RecordType};
use isola_fastcgi::*;
use proptest::prelude::*;

#[test]
fn begin_request_bytes() {
    let mut out = BytesMut::new();
    encode_begin_request(&mut out, 1, Role::Responder, true);
    assert_eq!(&out[..], &[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    out.clear();
    encode_begin_request(&mut out, 0x1234, Role::Filter, false);
    assert_eq!(
        &out[..],
        &[1, 1, 0x12, 0x34, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn abort_and_empty_stdin_bytes() {
    let mut out = BytesMut::new();
    encode_abort_request(&mut out, 7);
    encode_stdin(&mut out, 7, &[]);
    assert_eq!(&out[..], &[1, 2, 0, 7, 0, 0, 0, 0, 1, 5, 0, 7, 0, 0, 0, 0]);
}

#[test]
fn params_short_and_long_lengths() {
    let mut out = BytesMut::new();
    encode_params(&mut out, 1, [(&b"A"[..], &b"xyz"[..])]);
    // pair: 1, 3, "A", "xyz" = 6 bytes, padded to 8; then the empty terminator
    assert_eq!(
        &out[..],
        &[1, 4, 0, 1, 0, 6, 2, 0, 1, 3, b'A', b'x', b'y', b'z', 0, 0, 1, 4, 0, 1, 0, 0, 0, 0]
    );
    for len in [127usize, 128, 65_535, 70_000] {
        let value = vec![b'v'; len];
        let mut out = BytesMut::new();
        encode_params(&mut out, 1, [(&b"NAME"[..], &value[..])]);
        let stream = collect_stream(&out, 4);
        let pairs = decode_params(&stream).unwrap();
        assert_eq!(
            pairs,
            vec![(Bytes::from_static(b"NAME"), Bytes::from(value.clone()))]
        );
        let len_bytes = if len < 128 { 1 } else { 4 };
        assert_eq!(stream.len(), 1 + len_bytes + 4 + len);
    }
}

#[test]
fn stdin_is_split_at_the_record_limit() {
    let data = vec![7u8; 65_535 * 2 + 10];
    let mut out = BytesMut::new();
    encode_stdin(&mut out, 1, &data);
    let mut lens = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let h = record::Header::parse(rest).unwrap();
        assert_eq!(h.record_type, RecordType::Stdin);
        assert_eq!((h.content_len as usize + h.padding_len as usize) % 8, 0);
        lens.push(h.content_len as usize);
        rest = &rest[h.record_len()..];
    }
    assert_eq!(lens, vec![65_535, 65_535, 10]);
}

/// Content of all records of type `t` in `b`.
fn collect_stream(mut b: &[u8], t: u8) -> Vec<u8> {
    let mut v = Vec::new();
    while let Some(h) = record::Header::parse(b) {
        if u8::from(h.record_type) == t {
            v.extend_from_slice(&b[8..8 + h.content_len as usize]);
        }
        b = &b[h.record_len()..];
    }
    v
}

/// A response written the way a worker writes it, with chosen padding.
fn record(out: &mut BytesMut, t: RecordType, id: u16, content: &[u8], pad: u8) {
    put_header(out, t, id, content.len() as u16, pad);
    out.put_slice(content);
    out.put_bytes(0, pad as usize);
}

fn end_record(out: &mut BytesMut, id: u16, app_status: u32, pad: u8) {
    let mut c = app_status.to_be_bytes().to_vec();
    c.extend_from_slice(&[0, 0, 0, 0]);
    record(out, RecordType::EndRequest, id, &c, pad);
}

fn sample_response() -> (BytesMut, Vec<Event>) {
    let mut b = BytesMut::new();
    record(
        &mut b,
        RecordType::Stdout,
        1,
        b"Status: 404 Not Found\r\nX-A: 1\r\n\r\n",
        3,
    );
    record(&mut b, RecordType::Stderr, 1, b"PHP Warning: x", 0);
    record(&mut b, RecordType::Stdout, 2, b"other request", 0);
    record(
        &mut b,
        RecordType::GetValuesResult,
        0,
        b"\x0e\x01FCGI_MAX_CONNS1",
        0,
    );
    record(&mut b, RecordType::Stdout, 1, b"body", 255);
    record(&mut b, RecordType::Stdout, 1, b"", 0);
    record(&mut b, RecordType::Stderr, 1, b"", 0);
    end_record(&mut b, 1, 3, 0);
    let events = vec![
        Event::Stdout(Bytes::from_static(
            b"Status: 404 Not Found\r\nX-A: 1\r\n\r\n",
        )),
        Event::Stderr(Bytes::from_static(b"PHP Warning: x")),
        Event::Stdout(Bytes::from_static(b"body")),
        Event::End {
            app_status: 3,
            protocol_status: ProtocolStatus::RequestComplete,
        },
    ];
    (b, events)
}

/// Feeds `chunks` one after another, decoding as far as possible after each.
fn decode_chunks(chunks: &[&[u8]]) -> Result<Vec<Event>, DecodeError> {
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

#[test]
fn response_whole_and_split_at_every_offset() {
    let (bytes, expected) = sample_response();
    assert_eq!(decode_chunks(&[&bytes]).unwrap(), expected);
    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(decode_chunks(&one_by_one).unwrap(), expected);
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(decode_chunks(&[a, b]).unwrap(), expected, "split at {i}");
    }
}

#[test]
fn bad_version_and_short_end() {
    let mut b = BytesMut::from(&[2u8, 6, 0, 1, 0, 0, 0, 0][..]);
    assert_eq!(
        ResponseDecoder::new(1).decode(&mut b),
        Err(DecodeError::Version(2))
    );
    let mut b = BytesMut::new();
    record(&mut b, RecordType::EndRequest, 1, &[0, 0], 0);
    assert_eq!(
        ResponseDecoder::new(1).decode(&mut b),
        Err(DecodeError::ShortEndRequest(2))
    );
}

#[test]
fn record_after_end_is_an_error() {
    let mut b = BytesMut::new();
    end_record(&mut b, 1, 0, 0);
    record(&mut b, RecordType::Stdout, 1, b"late", 0);
    let mut dec = ResponseDecoder::new(1);
    assert!(matches!(dec.decode(&mut b), Ok(Some(Event::End { .. }))));
    assert!(dec.is_ended());
    assert_eq!(dec.decode(&mut b), Err(DecodeError::AfterEnd));
}

#[test]
fn cgi_head_php_style() {
    let raw = b"Status: 404 Not Found\r\nX-Powered-By: PHP/8.2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-type: text/html; charset=UTF-8\r\n\r\nbody";
    let (head, used) = parse_head(raw, 1024).unwrap().unwrap();
    assert_eq!(head.status, 404);
    assert_eq!(&raw[used..], b"body");
    let names: Vec<&str> = head.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["X-Powered-By", "Set-Cookie", "Set-Cookie", "Content-type"]
    );
    assert_eq!(
        head.headers[3].1,
        Bytes::from_static(b"text/html; charset=UTF-8")
    );
}

#[test]
fn cgi_head_variants() {
    let p = |s: &[u8]| parse_head(s, 1024);
    assert_eq!(p(b"Location: /x\n\n").unwrap().unwrap().0.status, 302);
    assert_eq!(
        p(b"Status: 301\nLocation: /x\n\n")
            .unwrap()
            .unwrap()
            .0
            .status,
        301
    );
    assert_eq!(
        p(b"X-A:   spaced  \n\n").unwrap().unwrap().0.headers[0].1,
        Bytes::from_static(b"spaced")
    );
    assert_eq!(
        p(b"\r\nbody").unwrap().unwrap(),
        (
            CgiHead {
                status: 200,
                headers: vec![]
            },
            2
        )
    );
    assert_eq!(p(b"X-A: 1\r\n").unwrap(), None);
    assert!(matches!(p(b"no colon here\n\n"), Err(CgiError::BadLine(_))));
    assert!(matches!(
        p(b"X-A: 1\n folded\n\n"),
        Err(CgiError::BadLine(_))
    ));
    assert!(matches!(p(b"Bad Name: 1\n\n"), Err(CgiError::BadLine(_))));
    assert!(matches!(p(b"Status: abc\n\n"), Err(CgiError::BadStatus(_))));
    assert!(matches!(p(b"Status: 20\n\n"), Err(CgiError::BadStatus(_))));
    assert!(matches!(
        p(b"Status: 2000\n\n"),
        Err(CgiError::BadStatus(_))
    ));
    assert_eq!(parse_head(&[b'a'; 100], 100), Err(CgiError::TooLarge(100)));
    assert_eq!(parse_head(&[b'a'; 99], 100), Ok(None));
}

/// Every file of the corpus folders replays without a panic (crashers found by fuzzing go
/// there with the name of the bug).
#[test]
fn corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(dir.join("response")).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = decode_chunks(&[&data]);
        n += 1;
    }
    for entry in std::fs::read_dir(dir.join("cgi_head")).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = parse_head(&data, 4096);
        n += 1;
    }
    assert!(n >= 2);
}

#[derive(Debug, Clone)]
enum Ev {
    Out(Vec<u8>),
    Err(Vec<u8>),
    Other(Vec<u8>),
}

fn ev() -> impl Strategy<Value = (Ev, u8)> {
    let data = proptest::collection::vec(any::<u8>(), 0..300);
    (
        prop_oneof![
            data.clone().prop_map(Ev::Out),
            data.clone().prop_map(Ev::Err),
            data.prop_map(Ev::Other)
        ],
        any::<u8>(),
    )
}

proptest! {
    /// Random responses with random padding decode to the same events however they are cut.
    #[test]
    fn random_responses_survive_any_split(evs in proptest::collection::vec(ev(), 0..20), status in any::<u32>(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let mut b = BytesMut::new();
        let mut expected = Vec::new();
        for (e, pad) in &evs {
            match e {
                Ev::Out(d) => { record(&mut b, RecordType::Stdout, 1, d, *pad); if !d.is_empty() { expected.push(Event::Stdout(Bytes::from(d.clone()))); } }
                Ev::Err(d) => { record(&mut b, RecordType::Stderr, 1, d, *pad); if !d.is_empty() { expected.push(Event::Stderr(Bytes::from(d.clone()))); } }
                Ev::Other(d) => record(&mut b, RecordType::Stdout, 9, d, *pad),
            }
        }
        end_record(&mut b, 1, status, 0);
        expected.push(Event::End { app_status: status, protocol_status: ProtocolStatus::RequestComplete });
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(b.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut last = 0;
        for p in points { chunks.push(&b[last..p]); last = p; }
        chunks.push(&b[last..]);
        prop_assert_eq!(decode_chunks(&chunks).unwrap(), expected);
    }

    /// Arbitrary bytes never panic the decoder, whole or split.
    #[test]
    fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000), cut in any::<prop::sample::Index>()) {
        let _ = decode_chunks(&[&data]);
        let c = cut.index(data.len() + 1);
        let _ = decode_chunks(&[&data[..c], &data[c..]]);
    }

    /// Params round-trip.
    #[test]
    fn params_roundtrip(pairs in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..200), proptest::collection::vec(any::<u8>(), 0..300)), 0..30)) {
        let mut out = BytesMut::new();
        encode_params(&mut out, 1, pairs.iter().map(|(n, v)| (&n[..], &v[..])));
        let decoded = decode_params(&collect_stream(&out, 4)).unwrap();
        let expected: Vec<(Bytes, Bytes)> = pairs.iter().map(|(n, v)| (Bytes::from(n.clone()), Bytes::from(v.clone()))).collect();
        prop_assert_eq!(decoded, expected);
    }

    /// The head parser never panics, and a prefix never disagrees with the whole.
    #[test]
    fn head_parser_is_prefix_consistent(data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), any::<u8>(), 97u8..123], 0..400), cut in any::<prop::sample::Index>()) {
        let whole = parse_head(&data, 4096);
        let c = cut.index(data.len() + 1);
        match parse_head(&data[..c], 4096) {
            Ok(Some(r)) => prop_assert_eq!(whole, Ok(Some(r))),
            Ok(None) => {}
            Err(e) => prop_assert_eq!(whole, Err(e)),
        }
    }
}

#[test]
fn pair_helper_matches_spec_example() {
    let mut out = BytesMut::new();
    put_pair(&mut out, b"SCRIPT_FILENAME", &[b'x'; 200]);
    assert_eq!(&out[..5], &[15, 0x80, 0, 0, 200]);
}
