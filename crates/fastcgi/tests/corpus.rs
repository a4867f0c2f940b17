//! Replays every file under `tests/corpus/{response,cgi_head,params}/`: the fuzzing seeds,
//! and every crasher a fuzzer or property test ever found, named after the bug. Decoding
//! and head parsing must not panic and must not depend on how the input is cut; the seeds
//! listed here must also give their known result.
//!
//! The same folders are the seed corpora of the cargo-fuzz targets in `/fuzz`.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::decode_every_way;
use isola_fastcgi::*;
use std::path::PathBuf;

fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn out(s: &'static [u8]) -> Event {
    Event::Stdout(Bytes::from_static(s))
}

fn end(app_status: u32, protocol_status: ProtocolStatus) -> Event {
    Event::End {
        app_status,
        protocol_status,
    }
}

/// The known result of a response seed, `None` for files only checked for consistency.
fn expected_response(name: &str) -> Option<Result<Vec<Event>, DecodeError>> {
    use ProtocolStatus::*;
    Some(match name {
        "stdout-then-end" => Ok(vec![out(b"hello"), end(0, RequestComplete)]),
        "max-length-header-only" => Ok(vec![]),
        "php-404" => Ok(vec![
            out(b"Status: 404 Not Found\r\nX-Powered-By: PHP/8.2.7\r\nContent-type: text/html; charset=UTF-8\r\n\r\n<h1>Not Found</h1>"),
            end(0, RequestComplete),
        ]),
        "stderr-and-terminators" => Ok(vec![
            out(b"out"),
            Event::Stderr(Bytes::from_static(b"PHP Notice:  x")),
            end(255, RequestComplete),
        ]),
        "foreign-and-management" => Ok(vec![out(b"ours"), end(0, UnknownRole)]),
        "bad-version" => Err(DecodeError::Version(2)),
        "short-end-request" => Err(DecodeError::ShortEndRequest(4)),
        "bytes-after-end" => Err(DecodeError::AfterEnd),
        "truncated-in-padding" => Ok(vec![out(b"first")]),
        _ => return None,
    })
}

/// The known result of a head seed: status, header names and bytes used, or the error.
type HeadSummary = Result<Option<(u16, Vec<String>, usize)>, CgiError>;

fn expected_head(name: &str) -> Option<HeadSummary> {
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Some(match name {
        "php-basic" => Ok(Some((200, names(&["Content-type"]), 43))),
        "php-404-cookies" => Ok(Some((
            404,
            names(&["X-Powered-By", "Set-Cookie", "Set-Cookie", "Content-type"]),
            142,
        ))),
        "lf-only" => Ok(Some((200, names(&["Content-Type", "X-A"]), 35))),
        "location-redirect" => Ok(Some((
            302,
            names(&["X-Powered-By", "Location", "Content-type"]),
            94,
        ))),
        "empty-head" => Ok(Some((200, vec![], 2))),
        "partial" => Ok(None),
        "folded" => Err(CgiError::BadLine(" folded".into())),
        "no-colon" => Err(CgiError::BadLine("Content-Type text/html".into())),
        "bad-status" => Err(CgiError::BadStatus("20 OK".into())),
        "cr-in-value" => Err(CgiError::BadLine("X-A: a\rb".into())),
        _ => return None,
    })
}

#[test]
fn response_corpus_replays() {
    let files = corpus("response");
    assert!(files.len() >= 9, "corpus went missing");
    let mut known = 0;
    for (name, data) in &files {
        let got = decode_every_way(data);
        if let Some(want) = expected_response(name) {
            assert_eq!(got, want, "{name}");
            known += 1;
        }
    }
    assert_eq!(known, 9, "a listed seed is missing");
}

#[test]
fn cgi_head_corpus_replays() {
    let files = corpus("cgi_head");
    assert!(files.len() >= 10, "corpus went missing");
    let mut known = 0;
    for (name, data) in &files {
        let whole = parse_head(data, 64 * 1024);
        for i in 0..data.len() {
            match parse_head(&data[..i], 64 * 1024) {
                Ok(None) => {}
                prefix => assert_eq!(prefix, whole, "{name} prefix {i}"),
            }
        }
        let _ = parse_head(data, data.len() / 2);
        if let Some(want) = expected_head(name) {
            let summary = whole.map(|o| {
                o.map(|(h, used)| {
                    (
                        h.status,
                        h.headers.into_iter().map(|(n, _)| n).collect(),
                        used,
                    )
                })
            });
            assert_eq!(summary, want, "{name}");
            known += 1;
        }
    }
    assert_eq!(known, 10, "a listed seed is missing");
}

#[test]
fn params_corpus_replays() {
    let files = corpus("params");
    assert!(files.len() >= 3, "corpus went missing");
    for (name, data) in &files {
        let got = decode_params(data);
        match name.as_str() {
            "short-pairs" => assert_eq!(
                got.unwrap(),
                vec![
                    (
                        Bytes::from_static(b"SERVER_NAME"),
                        Bytes::from_static(b"localhost")
                    ),
                    (Bytes::from_static(b"QUERY_STRING"), Bytes::new()),
                ]
            ),
            "long-value" => assert_eq!(got.unwrap()[0].1.len(), 128),
            "truncated" => assert_eq!(got, Err(ParamsError::Truncated(0))),
            _ => {}
        }
    }
}
