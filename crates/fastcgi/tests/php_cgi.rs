//! The codec against the peer it is written for: a real `php-cgi` in FastCGI mode (its
//! listening socket as fd 0, as the pool starts it), over a blocking Unix socket. Skipped,
//! with a note, where php-cgi is not installed. Every read has a timeout.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use isola_fastcgi::record::{put_header, RecordType};
use isola_fastcgi::*;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PHP_CGI: &str = "/usr/bin/php-cgi";

const SCRIPT: &str = r#"<?php
http_response_code(201);
header('X-Test: yes');
setcookie('a', '1');
setcookie('b', '2');
$in = file_get_contents('php://input');
foreach (['BIG_A', 'BIG_B', 'BIG_C', 'SMALL'] as $k) {
    $v = $_SERVER[$k] ?? '';
    echo $k, ' ', strlen($v), ' ', crc32($v), "\n";
}
echo 'INPUT ', strlen($in), ' ', crc32($in), "\n";
"#;

/// One php-cgi worker serving `SCRIPT`; killed (by its pid) and cleaned up on drop.
struct Php {
    child: Child,
    dir: PathBuf,
}

impl Php {
    fn start(tag: &str) -> Option<Php> {
        if !Path::new(PHP_CGI).exists() {
            eprintln!("{PHP_CGI} not installed: skipping");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("isola-fastcgi-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.php"), SCRIPT).unwrap();
        let listener = UnixListener::bind(dir.join("sock")).unwrap();
        let child = Command::new(PHP_CGI)
            .args(["-d", "display_errors=0"])
            .env_clear()
            .env("PHP_FCGI_CHILDREN", "0")
            .env("PHP_FCGI_MAX_REQUESTS", "0")
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Php { child, dir })
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(self.dir.join("sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    fn script(&self) -> String {
        self.dir.join("t.php").to_string_lossy().into_owned()
    }
}

impl Drop for Php {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `request` from another thread (so a large request cannot block against unread
/// output) and decodes the answer to request 1. `Err` carries what arrived if the worker
/// closed the connection before END_REQUEST.
fn exchange(conn: &mut UnixStream, request: BytesMut) -> Result<(Bytes, Vec<Bytes>), Vec<Event>> {
    let mut wr = conn.try_clone().unwrap();
    let writer = std::thread::spawn(move || wr.write_all(&request));
    let mut dec = ResponseDecoder::new(1);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        while let Some(e) = dec.decode(&mut buf).unwrap() {
            events.push(e);
        }
        if dec.is_ended() {
            break;
        }
        let n = match conn.read(&mut chunk) {
            // php-cgi closing with our request unread resets the connection.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            r => r.unwrap(),
        };
        if n == 0 {
            let _ = writer.join();
            return Err(events);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _ = writer.join();
    let mut stdout = BytesMut::new();
    let mut stderr = Vec::new();
    for e in events {
        match e {
            Event::Stdout(b) => stdout.extend_from_slice(&b),
            Event::Stderr(b) => stderr.push(b),
            // Never: this decoder was not made `with_interim`.
            Event::Interim(_) => unreachable!("interim record from php-cgi"),
            Event::End {
                app_status,
                protocol_status,
            } => {
                assert_eq!(
                    (app_status, protocol_status),
                    (0, ProtocolStatus::RequestComplete)
                );
            }
        }
    }
    assert!(buf.is_empty());
    Ok((stdout.freeze(), stderr))
}

/// What the script prints for a variable: its length and CRC-32 (php's `crc32()`).
fn line(name: &str, v: &[u8]) -> String {
    let mut crc = !0u32;
    for &b in v {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    format!("{name} {} {}", v.len(), !crc)
}

fn request(php: &Php, params: &[(&[u8], &[u8])], body: &[u8]) -> BytesMut {
    let script = php.script();
    let len = body.len().to_string();
    let mut all: Vec<(&[u8], &[u8])> = vec![
        (b"SCRIPT_FILENAME", script.as_bytes()),
        (b"REQUEST_METHOD", b"POST"),
        (b"CONTENT_LENGTH", len.as_bytes()),
        (b"CONTENT_TYPE", b"application/octet-stream"),
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REDIRECT_STATUS", b"200"),
    ];
    all.extend_from_slice(params);
    let mut out = BytesMut::new();
    encode_begin_request(&mut out, 1, Role::Responder, true);
    encode_params(&mut out, 1, all);
    encode_stdin(&mut out, 1, body);
    encode_stdin(&mut out, 1, &[]);
    out
}

#[test]
fn php_cgi_gets_large_params_and_body_and_answers() {
    let Some(php) = Php::start("large") else {
        return;
    };
    let big_a = vec![b'a'; 40_000];
    let big_b = vec![b'b'; 40_000];
    // A pair of exactly 65,535 bytes: 1 + 4 + 5 + 65,525. Padded to 8 it would be refused.
    let big_c = vec![b'c'; 65_525];
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let params: [(&[u8], &[u8]); 4] = [
        (b"BIG_A", &big_a),
        (b"BIG_B", &big_b),
        (b"BIG_C", &big_c),
        (b"SMALL", b"s"),
    ];
    let mut conn = php.connect();
    // Twice on one connection: the first exchange must leave nothing behind.
    for round in 0..2 {
        let (stdout, _stderr) = exchange(&mut conn, request(&php, &params, &body))
            .unwrap_or_else(|e| panic!("round {round}: worker closed after {e:?}"));
        let (head, used) = parse_head(&stdout, 64 * 1024).unwrap().unwrap();
        assert_eq!(head.status, 201);
        let cookies: Vec<&Bytes> = head
            .headers
            .iter()
            .filter(|(n, _)| n == "Set-Cookie")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            cookies,
            [&Bytes::from_static(b"a=1"), &Bytes::from_static(b"b=2")]
        );
        assert!(head
            .headers
            .iter()
            .any(|(n, v)| n == "X-Test" && v == "yes"));
        let text = String::from_utf8(stdout[used..].to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let want = [
            line("BIG_A", &big_a),
            line("BIG_B", &big_b),
            line("BIG_C", &big_c),
            line("SMALL", b"s"),
            line("INPUT", &body),
        ];
        assert_eq!(lines, want, "round {round}");
    }
}

#[test]
fn php_cgi_drops_a_pair_cut_across_records() {
    // Why encode_params never cuts a pair that fits in a record: the spec allows it, php-cgi
    // does not (each PARAMS record is parsed on its own). If this starts passing, php
    // changed and the packing rule could be relaxed; nothing breaks either way.
    let Some(php) = Php::start("straddle") else {
        return;
    };
    let mut whole = BytesMut::new();
    encode_params(&mut whole, 1, [(&b"X_PAIR"[..], &b"value"[..])]);
    // Re-cut the single pair record (13 bytes of content) into 6 + 7.
    let content = whole[8..8 + 13].to_vec();
    let mut out = BytesMut::new();
    encode_begin_request(&mut out, 1, Role::Responder, false);
    encode_params(
        &mut out,
        1,
        [
            (&b"SCRIPT_FILENAME"[..], php.script().as_bytes()),
            (b"REDIRECT_STATUS", b"200"),
        ],
    );
    out.truncate(out.len() - 8); // drop the terminator, append the cut pair, then end
    for part in [&content[..6], &content[6..]] {
        put_header(&mut out, RecordType::Params, 1, part.len() as u16, 0);
        out.extend_from_slice(part);
    }
    encode_params(&mut out, 1, std::iter::empty());
    encode_stdin(&mut out, 1, &[]);
    let mut conn = php.connect();
    assert!(
        exchange(&mut conn, out).is_err(),
        "php-cgi accepted a pair cut in two"
    );
}
