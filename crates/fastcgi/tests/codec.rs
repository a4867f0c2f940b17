//! The codec checked byte by byte against hand-written records, and the decoder and head
//! parser fed whole, one byte at a time and split at every offset.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{decode_chunks, decode_every_way, end_record, record, records, stream};
use isola_fastcgi::record::{padding_for, Header, RecordType};
use isola_fastcgi::*;

// ---------------------------------------------------------------- record-level constants

#[test]
fn record_type_bytes_round_trip() {
    use RecordType::*;
    let known = [
        (BeginRequest, 1),
        (AbortRequest, 2),
        (EndRequest, 3),
        (Params, 4),
        (Stdin, 5),
        (Stdout, 6),
        (Stderr, 7),
        (Data, 8),
        (GetValues, 9),
        (GetValuesResult, 10),
        (UnknownType, 11),
    ];
    for (t, b) in known {
        assert_eq!(u8::from(t), b);
        assert_eq!(RecordType::from(b), t);
    }
    for b in 0..=255u8 {
        assert_eq!(u8::from(RecordType::from(b)), b);
        if !(1..=11).contains(&b) {
            assert_eq!(RecordType::from(b), Other(b));
        }
    }
}

#[test]
fn roles_and_protocol_statuses() {
    assert_eq!(u16::from(Role::Responder), 1);
    assert_eq!(u16::from(Role::Authorizer), 2);
    assert_eq!(u16::from(Role::Filter), 3);
    assert_eq!(ProtocolStatus::from(0), ProtocolStatus::RequestComplete);
    assert_eq!(ProtocolStatus::from(1), ProtocolStatus::CantMpxConn);
    assert_eq!(ProtocolStatus::from(2), ProtocolStatus::Overloaded);
    assert_eq!(ProtocolStatus::from(3), ProtocolStatus::UnknownRole);
    assert_eq!(ProtocolStatus::from(200), ProtocolStatus::Other(200));
}

#[test]
fn header_parse_and_padding() {
    let h = Header::parse(&[1, 6, 0x12, 0x34, 0xab, 0xcd, 7, 9, 0xff]).unwrap();
    assert_eq!(h.version, 1);
    assert_eq!(h.record_type, RecordType::Stdout);
    assert_eq!(h.request_id, 0x1234);
    assert_eq!(h.content_len, 0xabcd);
    assert_eq!(h.padding_len, 7);
    assert_eq!(h.record_len(), 8 + 0xabcd + 7);
    assert_eq!(Header::parse(&[1, 6, 0, 1, 0, 0, 0]), None);

    let pads: Vec<u8> = (0..=9).map(padding_for).collect();
    assert_eq!(pads, [0, 7, 6, 5, 4, 3, 2, 1, 0, 7]);
    assert_eq!(padding_for(65_528), 0);
    // php-cgi refuses content + padding over 65535: the last few lengths go unpadded.
    for len in 65_529..=65_535 {
        assert_eq!(padding_for(len), 0, "{len}");
    }
    assert_eq!(padding_for(65_527), 1);
}

// ---------------------------------------------------------------- request records, exact

#[test]
fn begin_request_bytes() {
    let mut out = BytesMut::new();
    encode_begin_request(&mut out, 1, Role::Responder, true);
    assert_eq!(
        &out[..],
        &[1, 1, 0, 1, 0, 8, 0, 0, /**/ 0, 1, 1, 0, 0, 0, 0, 0]
    );
    out.clear();
    encode_begin_request(&mut out, 0x1234, Role::Filter, false);
    assert_eq!(
        &out[..],
        &[1, 1, 0x12, 0x34, 0, 8, 0, 0, /**/ 0, 3, 0, 0, 0, 0, 0, 0]
    );
    out.clear();
    encode_begin_request(&mut out, 0xfffe, Role::Authorizer, true);
    assert_eq!(
        &out[..],
        &[1, 1, 0xff, 0xfe, 0, 8, 0, 0, /**/ 0, 2, 1, 0, 0, 0, 0, 0]
    );
}

#[test]
fn abort_request_bytes() {
    let mut out = BytesMut::new();
    encode_abort_request(&mut out, 7);
    assert_eq!(&out[..], &[1, 2, 0, 7, 0, 0, 0, 0]);
}

#[test]
fn stdin_bytes_with_padding() {
    let mut out = BytesMut::new();
    encode_stdin(&mut out, 7, b"abc");
    encode_stdin(&mut out, 7, b"12345678");
    encode_stdin(&mut out, 7, &[]);
    assert_eq!(
        &out[..],
        &[
            1, 5, 0, 7, 0, 3, 5, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0, //
            1, 5, 0, 7, 0, 8, 0, 0, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', //
            1, 5, 0, 7, 0, 0, 0, 0,
        ][..]
    );
}

#[test]
fn stdin_is_split_at_the_record_limit() {
    let data: Vec<u8> = (0..65_535 * 2 + 10).map(|i| i as u8).collect();
    let mut out = BytesMut::new();
    encode_stdin(&mut out, 1, &data);
    let recs = records(&out);
    let shape: Vec<(usize, u8)> = recs
        .iter()
        .map(|(h, _)| (h.content_len as usize, h.padding_len))
        .collect();
    assert_eq!(shape, vec![(65_535, 0), (65_535, 0), (10, 6)]);
    assert!(recs
        .iter()
        .all(|(h, _)| h.record_type == RecordType::Stdin && h.request_id == 1));
    assert_eq!(stream(&out, RecordType::Stdin), data);
}

#[test]
fn params_bytes() {
    let mut out = BytesMut::new();
    encode_params(&mut out, 1, [(&b"A"[..], &b"xyz"[..]), (b"", b"")]);
    // pairs: 1, 3, "A", "xyz" and 0, 0 = 8 bytes, no padding; then the empty terminator.
    assert_eq!(
        &out[..],
        &[
            1, 4, 0, 1, 0, 8, 0, 0, 1, 3, b'A', b'x', b'y', b'z', 0, 0, //
            1, 4, 0, 1, 0, 0, 0, 0,
        ][..]
    );
    out.clear();
    encode_params(&mut out, 2, [(&b"QUERY_STRING"[..], &b""[..])]);
    let mut expected = vec![1, 4, 0, 2, 0, 14, 2, 0, 12, 0];
    expected.extend_from_slice(b"QUERY_STRING");
    expected.extend_from_slice(&[0, 0, /**/ 1, 4, 0, 2, 0, 0, 0, 0]);
    assert_eq!(&out[..], &expected[..]);
}

/// (content length, padding) of every record and the start of the first record's content.
fn params_layout(value_len: usize) -> (Vec<(usize, u8)>, Vec<u8>) {
    let value = vec![b'v'; value_len];
    let mut out = BytesMut::new();
    encode_params(&mut out, 1, [(&b"NAME"[..], &value[..])]);
    let recs = records(&out);
    assert!(recs
        .iter()
        .all(|(h, _)| h.record_type == RecordType::Params));
    let pairs = decode_params(&stream(&out, RecordType::Params)).unwrap();
    assert_eq!(
        pairs,
        vec![(Bytes::from_static(b"NAME"), Bytes::from(value))]
    );
    let shape = recs
        .iter()
        .map(|(h, _)| (h.content_len as usize, h.padding_len))
        .collect();
    (shape, recs[0].1[..9].to_vec())
}

#[test]
fn params_short_and_long_lengths() {
    // 127: one-byte lengths. 1 + 1 + 4 + 127 = 133 bytes, padded by 3.
    let (shape, start) = params_layout(127);
    assert_eq!(shape, vec![(133, 3), (0, 0)]);
    assert_eq!(start, [4, 127, b'N', b'A', b'M', b'E', b'v', b'v', b'v']);
    // 128: the value length takes four bytes, high bit set. 1 + 4 + 4 + 128 = 137.
    let (shape, start) = params_layout(128);
    assert_eq!(shape, vec![(137, 7), (0, 0)]);
    assert_eq!(start, [4, 0x80, 0, 0, 0x80, b'N', b'A', b'M', b'E']);
    // 65535: the pair is 65544 bytes, more than a record: it straddles two.
    let (shape, start) = params_layout(65_535);
    assert_eq!(shape, vec![(65_535, 0), (9, 7), (0, 0)]);
    assert_eq!(start, [4, 0x80, 0, 0xff, 0xff, b'N', b'A', b'M', b'E']);
    // 70000 = 0x011170.
    let (shape, start) = params_layout(70_000);
    assert_eq!(shape, vec![(65_535, 0), (4_474, 6), (0, 0)]);
    assert_eq!(start, [4, 0x80, 0x01, 0x11, 0x70, b'N', b'A', b'M', b'E']);
}

#[test]
fn params_pack_whole_pairs_across_records() {
    // 100 pairs of 1 + 4 + 8 + 1000 = 1013 bytes: 64 fit in a record (64,832 bytes).
    let names: Vec<String> = (0..100).map(|i| format!("HTTP_{i:03}")).collect();
    let value = vec![b'z'; 1000];
    let mut out = BytesMut::new();
    encode_params(
        &mut out,
        1,
        names.iter().map(|n| (n.as_bytes(), &value[..])),
    );
    let recs = records(&out);
    let lens: Vec<usize> = recs.iter().map(|(h, _)| h.content_len as usize).collect();
    assert_eq!(lens, vec![64 * 1013, 36 * 1013, 0]);
    // Each record decodes on its own, as php-cgi reads them.
    let mut all = Vec::new();
    for (_, content) in &recs {
        all.extend(decode_params(content).unwrap());
    }
    assert_eq!(all.len(), 100);
    assert!(all
        .iter()
        .zip(&names)
        .all(|((n, v), name)| n == name.as_bytes() && v == &value));
    for (h, _) in &recs {
        assert!(h.content_len as usize + h.padding_len as usize <= MAX_CONTENT_LEN);
    }
}

#[test]
fn get_values_bytes() {
    let mut out = BytesMut::new();
    encode_get_values(&mut out, [&b"FCGI_MAX_CONNS"[..], b"FCGI_MPXS_CONNS"]);
    let mut expected = vec![1, 9, 0, 0, 0, 33, 7, 0, 14, 0];
    expected.extend_from_slice(b"FCGI_MAX_CONNS");
    expected.extend_from_slice(&[15, 0]);
    expected.extend_from_slice(b"FCGI_MPXS_CONNS");
    expected.extend_from_slice(&[0; 7]);
    assert_eq!(&out[..], &expected[..]);
    let pairs = decode_params(&stream(&out, RecordType::GetValues)).unwrap();
    assert_eq!(
        pairs[1],
        (Bytes::from_static(b"FCGI_MPXS_CONNS"), Bytes::new())
    );
}

#[test]
fn encoders_append_to_what_is_there() {
    let mut out = BytesMut::from(&b"xy"[..]);
    encode_params(&mut out, 1, [(&b"A"[..], &b"b"[..])]);
    assert_eq!(&out[..2], b"xy");
    assert_eq!(records(&out[2..]).len(), 2);
}

// ---------------------------------------------------------------- response decoding

/// A response as php-cgi writes it, plus what a worker may add: records of another request,
/// a management record, padding from 0 to 255, empty stream terminators.
fn sample_response() -> (BytesMut, Vec<Event>) {
    let head = b"Status: 404 Not Found\r\nX-Powered-By: PHP/8.2\r\n\r\n";
    let mut b = BytesMut::new();
    record(&mut b, RecordType::Stdout, 1, head, 3);
    record(&mut b, RecordType::Stderr, 1, b"PHP Warning: x", 0);
    record(&mut b, RecordType::Stdout, 2, b"other request", 0);
    end_record(&mut b, 2, 9, 0, 0);
    record(
        &mut b,
        RecordType::GetValuesResult,
        0,
        b"\x0e\x01FCGI_MAX_CONNS1",
        0,
    );
    record(
        &mut b,
        RecordType::UnknownType,
        0,
        &[77, 0, 0, 0, 0, 0, 0, 0],
        0,
    );
    record(&mut b, RecordType::Stdout, 1, b"body", 255);
    record(&mut b, RecordType::Params, 1, b"ignored", 1);
    record(&mut b, RecordType::Stdout, 1, b"", 0);
    record(&mut b, RecordType::Stderr, 1, b"", 8);
    end_record(&mut b, 1, 3, 2, 0);
    let events = vec![
        Event::Stdout(Bytes::from_static(head)),
        Event::Stderr(Bytes::from_static(b"PHP Warning: x")),
        Event::Stdout(Bytes::from_static(b"body")),
        Event::End {
            app_status: 3,
            protocol_status: ProtocolStatus::Overloaded,
        },
    ];
    (b, events)
}

#[test]
fn response_whole_and_split_at_every_offset() {
    let (bytes, expected) = sample_response();
    assert_eq!(decode_every_way(&bytes).unwrap(), expected);
}

#[test]
fn every_three_way_split() {
    let (bytes, expected) = sample_response();
    let n = bytes.len();
    for i in (0..=n).step_by(3) {
        for j in (i..=n).step_by(5) {
            let got = decode_chunks(&[&bytes[..i], &bytes[i..j], &bytes[j..]]).unwrap();
            assert_eq!(got, expected, "{i} {j}");
        }
    }
}

#[test]
fn largest_record_with_largest_padding() {
    let content: Vec<u8> = (0..65_535u32).map(|i| (i * 7) as u8).collect();
    let mut b = BytesMut::new();
    record(&mut b, RecordType::Stdout, 1, &content, 255);
    end_record(&mut b, 1, 0, 0, 0);
    let got = decode_chunks(&[&b[..]]).unwrap();
    assert_eq!(got[0], Event::Stdout(Bytes::from(content)));
    // Short by one byte of padding: nothing yet.
    let cut = 8 + 65_535 + 254;
    assert_eq!(decode_chunks(&[&b[..cut]]).unwrap(), vec![]);
}

#[test]
fn content_is_not_copied() {
    let mut buf = BytesMut::new();
    record(&mut buf, RecordType::Stdout, 1, b"zero-copy", 7);
    let base = buf.as_ptr() as usize;
    let Some(Event::Stdout(data)) = ResponseDecoder::new(1).decode(&mut buf).unwrap() else {
        panic!("no stdout")
    };
    assert_eq!(data.as_ptr() as usize, base + 8);
    assert!(buf.is_empty());
}

#[test]
fn only_other_requests_and_terminators_yield_nothing() {
    let mut b = BytesMut::new();
    record(&mut b, RecordType::Stdout, 2, b"not ours", 0);
    end_record(&mut b, 0, 1, 0, 0);
    record(&mut b, RecordType::Stdout, 1, b"", 0);
    let mut buf = b.clone();
    assert_eq!(ResponseDecoder::new(1).decode(&mut buf), Ok(None));
    assert!(buf.is_empty(), "skipped records are consumed");
    assert_eq!(decode_every_way(&b).unwrap(), vec![]);
}

#[test]
fn bad_version() {
    let mut b = BytesMut::new();
    record(&mut b, RecordType::Stdout, 1, b"fine", 0);
    b.extend_from_slice(&[2, 6, 0, 1, 0xff, 0xff, 0, 0]);
    let mut dec = ResponseDecoder::new(1);
    assert!(matches!(dec.decode(&mut b), Ok(Some(Event::Stdout(_)))));
    // Reported as soon as the header is in, without waiting for its content.
    assert_eq!(dec.decode(&mut b), Err(DecodeError::Version(2)));
    assert_eq!(dec.decode(&mut b), Err(DecodeError::Version(2)));
    assert_eq!(
        decode_every_way(&[0, 6, 0, 1, 0, 0, 0, 0]),
        Err(DecodeError::Version(0))
    );
}

#[test]
fn short_end_request() {
    let mut b = BytesMut::new();
    record(&mut b, RecordType::EndRequest, 1, &[0, 0, 0, 0, 0, 0, 0], 9);
    assert_eq!(decode_every_way(&b), Err(DecodeError::ShortEndRequest(7)));
    // Another request's broken END_REQUEST is not ours to judge.
    let mut b = BytesMut::new();
    record(&mut b, RecordType::EndRequest, 2, &[], 0);
    assert_eq!(decode_every_way(&b), Ok(vec![]));
}

#[test]
fn longer_end_request_body_is_accepted() {
    let mut b = BytesMut::new();
    record(
        &mut b,
        RecordType::EndRequest,
        1,
        &[0, 0, 1, 0, 0, 0, 0, 0, 42, 42],
        6,
    );
    assert_eq!(
        decode_every_way(&b).unwrap(),
        vec![Event::End {
            app_status: 256,
            protocol_status: ProtocolStatus::RequestComplete
        }]
    );
}

#[test]
fn bytes_after_end_are_an_error() {
    let mut b = BytesMut::new();
    end_record(&mut b, 1, 0, 0, 0);
    let mut dec = ResponseDecoder::new(1);
    assert!(matches!(dec.decode(&mut b), Ok(Some(Event::End { .. }))));
    assert!(dec.is_ended());
    assert_eq!(dec.decode(&mut b), Ok(None));
    b.extend_from_slice(&[1]);
    assert_eq!(dec.decode(&mut b), Err(DecodeError::AfterEnd));
    assert_eq!(b.len(), 1, "nothing consumed");
}

// ---------------------------------------------------------------- cgi head

fn head(raw: &[u8]) -> (CgiHead, usize) {
    // Complete heads parse the same whatever follows them, and every strict prefix of the
    // head is "need more".
    let got = parse_head(raw, 64 * 1024).unwrap().unwrap();
    for i in 0..got.1 {
        assert_eq!(parse_head(&raw[..i], 64 * 1024), Ok(None), "prefix {i}");
    }
    got
}

fn names(h: &CgiHead) -> Vec<&str> {
    h.headers.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn php_404_head() {
    let raw = b"Status: 404 Not Found\r\nX-Powered-By: PHP/8.2.7\r\nSet-Cookie: a=1; path=/\r\nSet-Cookie: b=2\r\nContent-type: text/html; charset=UTF-8\r\n\r\n<h1>gone</h1>";
    let (h, used) = head(raw);
    assert_eq!(h.status, 404);
    assert_eq!(&raw[used..], b"<h1>gone</h1>");
    assert_eq!(
        names(&h),
        ["X-Powered-By", "Set-Cookie", "Set-Cookie", "Content-type"]
    );
    assert_eq!(h.headers[1].1, Bytes::from_static(b"a=1; path=/"));
    assert_eq!(h.headers[2].1, Bytes::from_static(b"b=2"));
    assert_eq!(
        h.headers[3].1,
        Bytes::from_static(b"text/html; charset=UTF-8")
    );
}

#[test]
fn php_200_head_without_status() {
    let raw = b"X-Powered-By: PHP/8.2.7\r\nContent-type: text/html; charset=UTF-8\r\n\r\n";
    let (h, used) = head(raw);
    assert_eq!((h.status, used), (200, raw.len()));
}

#[test]
fn lf_only_and_mixed_line_ends() {
    let (h, used) = head(b"Content-Type: text/plain\nX-A: 1\r\n\nbody");
    assert_eq!(
        (h.status, used, names(&h)),
        (200, 34, vec!["Content-Type", "X-A"])
    );
    let (h, used) = head(b"X-A: 1\n\r\nbody");
    assert_eq!((h.headers.len(), used), (1, 9));
}

#[test]
fn status_variants() {
    assert_eq!(head(b"Status: 404\r\n\r\n").0.status, 404);
    assert_eq!(head(b"status:503 Busy\n\n").0.status, 503);
    assert_eq!(head(b"STATUS:\t201\t\n\n").0.status, 201);
    let (h, _) = head(b"Status: 304 Not Modified\r\nETag: \"x\"\r\n\r\n");
    assert_eq!((h.status, names(&h)), (304, vec!["ETag"]));
    assert_eq!(head(b"Status: 200\nStatus: 500\n\n").0.status, 500);
    for bad in [
        &b"Status: abc\n\n"[..],
        b"Status: 20\n\n",
        b"Status: 2000\n\n",
        b"Status: 099\n\n",
        b"Status:\n\n",
        b"Status: 20 0\n\n",
    ] {
        assert!(
            matches!(parse_head(bad, 1024), Err(CgiError::BadStatus(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn location_means_302_unless_status_says_otherwise() {
    let (h, _) = head(b"Location: /x\r\n\r\n");
    assert_eq!((h.status, names(&h)), (302, vec!["Location"]));
    assert_eq!(head(b"location: http://a/\n\n").0.status, 302);
    assert_eq!(
        head(b"Status: 301 Moved Permanently\nLocation: /x\n\n")
            .0
            .status,
        301
    );
    assert_eq!(head(b"Location: /x\nStatus: 201\n\n").0.status, 201);
}

#[test]
fn values_are_trimmed_names_kept_as_sent() {
    let (h, _) = head(b"x-lower:   spaced  \t\r\nX-Empty:\r\nX-Colon: a:b: c\r\n\r\n");
    assert_eq!(
        h.headers,
        vec![
            ("x-lower".to_string(), Bytes::from_static(b"spaced")),
            ("X-Empty".to_string(), Bytes::new()),
            ("X-Colon".to_string(), Bytes::from_static(b"a:b: c")),
        ]
    );
    // Non-ASCII bytes in a value pass through untouched.
    let (h, _) = head(b"X-Name: caf\xc3\xa9 \xff\n\n");
    assert_eq!(h.headers[0].1, Bytes::from_static(b"caf\xc3\xa9 \xff"));
}

#[test]
fn empty_head() {
    assert_eq!(
        parse_head(b"\r\nbody", 1024),
        Ok(Some((
            CgiHead {
                status: 200,
                headers: vec![]
            },
            2
        )))
    );
    assert_eq!(parse_head(b"\nbody", 1024).unwrap().unwrap().1, 1);
}

#[test]
fn partial_heads_need_more() {
    for raw in [
        &b""[..],
        b"X-A: 1",
        b"X-A: 1\r\n",
        b"X-A: 1\r\n\r",
        b"Status: 404 Not Fo",
    ] {
        assert_eq!(parse_head(raw, 1024), Ok(None), "{raw:?}");
    }
    // Nothing is judged before the head is complete, not even a bad first line.
    assert_eq!(parse_head(b"no colon\r\n", 1024), Ok(None));
}

#[test]
fn too_large() {
    assert_eq!(parse_head(&[b'a'; 100], 100), Err(CgiError::TooLarge(100)));
    assert_eq!(parse_head(&[b'a'; 99], 100), Ok(None));
    // The blank line must end within the limit: here it would end at byte 10.
    assert_eq!(
        parse_head(b"X-A: 12\r\n\r\n", 10),
        Err(CgiError::TooLarge(10))
    );
    assert_eq!(parse_head(b"X-A: 12\r\n\r\n", 11).unwrap().unwrap().1, 11);
    // A body after a head that fits does not count.
    let mut raw = b"X-A: 1\n\n".to_vec();
    raw.extend_from_slice(&[b'b'; 1000]);
    assert_eq!(parse_head(&raw, 16).unwrap().unwrap().1, 8);
}

#[test]
fn bad_lines() {
    let bad = [
        &b"no colon here\n\n"[..],
        b"X-A: 1\n folded\n\n",
        b"X-A: 1\n\tfolded: too\n\n",
        b" X-A: 1\n\n",
        b"Bad Name: 1\n\n",
        b": empty name\n\n",
        b"X-A : space before colon\n\n",
        b"X(A): 1\n\n",
        b"X-A: a\rb\n\n",
        b"X-A: a\0b\n\n",
        b"X-\xc3\xa9: 1\n\n",
        b"\r\r\n\r\n",
    ];
    for raw in bad {
        assert!(
            matches!(parse_head(raw, 1024), Err(CgiError::BadLine(_))),
            "{raw:?}"
        );
    }
    assert_eq!(
        parse_head(b"X-A: 1\nno colon\n\n", 1024),
        Err(CgiError::BadLine("no colon".into()))
    );
    assert_eq!(
        CgiError::BadLine("no colon".into()).to_string(),
        "malformed response header line \"no colon\""
    );
}

/// fastcgi_finish_request(): the empty STDOUT record arrives long before END_REQUEST, and
/// the decoder says so as soon as it has consumed it, not only at the end.
#[test]
fn stdout_closed_is_reported_when_the_empty_record_is_consumed() {
    let mut b = BytesMut::new();
    record(&mut b, RecordType::Stdout, 1, b"Status: 200\r\n\r\nok", 0);
    record(&mut b, RecordType::Stdout, 2, b"", 0);
    let mut dec = ResponseDecoder::new(1);
    assert!(matches!(dec.decode(&mut b), Ok(Some(Event::Stdout(_)))));
    assert!(matches!(dec.decode(&mut b), Ok(None)));
    assert!(
        !dec.stdout_closed(),
        "another request's empty STDOUT is not ours"
    );
    record(&mut b, RecordType::Stdout, 1, b"", 0);
    record(&mut b, RecordType::Stderr, 1, b"after finish", 0);
    assert!(matches!(dec.decode(&mut b), Ok(Some(Event::Stderr(_)))));
    assert!(dec.stdout_closed());
    assert!(!dec.is_ended());
    end_record(&mut b, 1, 0, 0, 0);
    assert!(matches!(dec.decode(&mut b), Ok(Some(Event::End { .. }))));
}
