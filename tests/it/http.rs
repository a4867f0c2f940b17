//! A small HTTP/1.1 client over a raw TcpStream: tests need exact bytes on the wire (hostile
//! targets, chunked bodies, HTTP/1.0) and exact bytes back (headers as sent, framing).
use std::io::{BufRead, BufReader, Read, Write};

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Response {
    pub status: u16,
    /// Header names lowercased, in order, repeated names kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Framed with Transfer-Encoding: chunked.
    #[allow(dead_code)]
    pub chunked: bool,
    /// The connection ended before the framing said the body was complete (only from
    /// [`raw_lenient`]; the other readers panic instead).
    #[allow(dead_code)]
    pub truncated: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The first `Set-Cookie`'s `name=value`, ready for a `Cookie:` header.
    #[allow(dead_code)]
    pub fn cookie(&self) -> String {
        self.header("set-cookie")
            .expect("a Set-Cookie header")
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends `raw` (a whole request) and reads one response.
pub fn raw(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let head_only = raw.starts_with(b"HEAD ");
    read_response(&mut BufReader::new(s), head_only)
}

/// A request with the usual headers. `extra` lines are "Name: value".
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    extra: &[&str],
    body: &[u8],
) -> Response {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes)
}

pub fn get(addr: SocketAddr, target: &str) -> Response {
    request(addr, "GET", target, &[], b"")
}

/// Like [`raw`], but a body cut short (by the server or by what it relays) is returned with
/// `truncated` set instead of failing the test.
#[allow(dead_code)]
pub fn raw_lenient(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let head_only = raw.starts_with(b"HEAD ");
    read(&mut BufReader::new(s), head_only, true)
}

pub fn read_response<R: BufRead>(r: &mut R, head_only: bool) -> Response {
    read(r, head_only, false)
}

fn read<R: BufRead>(r: &mut R, head_only: bool, lenient: bool) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("header line");
        let l = l.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect("header colon");
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v): &(String, String)| v.clone())
    };
    let chunked = find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let mut body = Vec::new();
    let mut truncated = false;
    // A short read: fail the test, or (lenient) note it and stop.
    let mut cut = |what: &str, e: std::io::Error| {
        assert!(lenient, "{what}: {e}");
        truncated = true;
    };
    // An informational response (103 Early Hints) has no body: the final one follows.
    if head_only || status == 304 || status == 204 || (100..200).contains(&status) {
    } else if chunked {
        loop {
            let mut size = String::new();
            if let Err(e) = r.read_line(&mut size) {
                cut("chunk size line", e);
                break;
            }
            if size.is_empty() {
                cut("chunk size line", std::io::ErrorKind::UnexpectedEof.into());
                break;
            }
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16)
                .expect("chunk size");
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end).unwrap();
                break;
            }
            let mut chunk = vec![0; n];
            if let Err(e) = r.read_exact(&mut chunk) {
                cut("chunk", e);
                break;
            }
            body.extend_from_slice(&chunk);
            let mut crlf = [0; 2];
            if let Err(e) = r.read_exact(&mut crlf) {
                cut("chunk end", e);
                break;
            }
        }
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().unwrap();
        if let Err(e) = (&mut *r).take(len as u64).read_to_end(&mut body) {
            cut("body", e);
        }
        if body.len() < len {
            cut("body", std::io::ErrorKind::UnexpectedEof.into());
        }
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    Response {
        status,
        headers,
        body,
        chunked,
        truncated,
    }
}

/// A multipart/form-data body: (field, filename, content).
pub fn multipart(boundary: &str, fields: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, file, content) in fields {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => b.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => b.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        b.extend_from_slice(content);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}
