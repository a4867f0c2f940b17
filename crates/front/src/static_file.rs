//! Static file responses: the file as it is, with its type and validators (ETag,
//! Last-Modified → 304), single byte ranges (206/416), streamed without buffering whole.
//!
//! File I/O here is plain blocking calls (open, fstat, pread) on the connection's task, as
//! nginx does without `aio threads`: for files in the page cache they take microseconds,
//! while a hop to tokio's blocking pool per call (tokio::fs) costs two context switches each
//! and made small files several times slower. A read never exceeds [`CHUNK`], so one
//! request holds a runtime thread for one chunk's copy at most between yields.
use crate::body::ResponseBody;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Files up to this size are read in one go; larger ones are streamed in chunks of it.
const CHUNK: usize = 256 * 1024;

/// Answers `path` for `method` (GET or HEAD) given the request headers; `opened` is the
/// file already opened by the router, with its metadata, when it was.
pub async fn serve(
    path: &Path,
    opened: Option<(std::fs::File, std::fs::Metadata)>,
    method: &Method,
    req_headers: &HeaderMap,
) -> std::io::Result<Response<ResponseBody>> {
    let ctype = content_type(path);
    // Siblings are only looked for where they can exist: types worth compressing, and
    // wasm (shipped as .wasm.br by many toolchains). Images and archives cost no stat.
    let may_have_siblings = ctype.to_str().is_ok_and(crate::compress::compressible_type)
        || path.extension().is_some_and(|e| e == "wasm");
    let siblings = if may_have_siblings {
        precompressed(path, opened.as_ref().map(|(_, m)| m), req_headers)
    } else {
        Siblings::default()
    };
    let (variant, encoding) = match siblings.chosen {
        Some((p, enc)) => (Some(p), Some(enc)),
        None => (None, None),
    };
    let has_variants = siblings.any;
    let (file, meta) = match (variant, opened) {
        (None, Some(opened)) => opened,
        (variant, _) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut open = std::fs::OpenOptions::new();
            open.read(true);
            if variant.is_some() {
                // Checked as no symlink above; replaced by one since, it is not followed.
                open.custom_flags(libc::O_NOFOLLOW);
            }
            let file = open.open(variant.as_deref().unwrap_or(path))?;
            let meta = file.metadata()?;
            (file, meta)
        }
    };
    let len = meta.len();
    let modified = meta.modified().ok();
    let mut etag = etag(len, modified);
    if let Some(enc) = encoding {
        // Each representation has its own validator (RFC 9110 8.8.3).
        etag.insert_str(etag.len() - 1, &format!("-{enc}"));
    }
    let last_modified = modified.map(httpdate::fmt_http_date);

    let mut resp = Response::new(ResponseBody::Empty);
    let h = resp.headers_mut();
    if let Some(enc) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    if has_variants {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = last_modified
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        h.insert(header::LAST_MODIFIED, v);
    }
    if not_modified(req_headers, &etag, modified) {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(resp);
    }
    h.insert(header::CONTENT_TYPE, ctype);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    let (start, count) = match range(req_headers, len, &etag, last_modified.as_deref()) {
        RangeAnswer::Whole => (0, len),
        RangeAnswer::Part(start, end) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            (start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            let mut r = crate::error_page::page(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    if method == Method::HEAD {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
        return Ok(resp);
    }
    *resp.body_mut() = if count as usize <= CHUNK {
        ResponseBody::full(read_at(&file, start, count as usize)?)
    } else {
        let chunks = futures_util::stream::try_unfold(
            (file, start, count),
            |(file, offset, left)| async move {
                if left == 0 {
                    return Ok(None);
                }
                let n = left.min(CHUNK as u64) as usize;
                let b = read_at(&file, offset, n)?;
                Ok(Some((b, (file, offset + n as u64, left - n as u64))))
            },
        );
        ResponseBody::File(Box::pin(chunks), count)
    };
    Ok(resp)
}

/// The status for a file that could not be served: gone (404), not readable (403), else
/// a server fault (500).
pub(crate) fn error_status(e: &std::io::Error) -> StatusCode {
    match e.kind() {
        std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND,
        std::io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Exactly `n` bytes of `file` from `offset`; a file that shrank meanwhile is an error (the
/// length was promised in Content-Length).
fn read_at(file: &std::fs::File, offset: u64, n: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(n);
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf.freeze())
}

/// Precompressed siblings, best first: `file.css.br`, then `file.css.gz`.
const SIBLINGS: &[(&str, &str)] = &[("br", ".br"), ("gzip", ".gz")];

/// What [`precompressed`] found next to a file.
#[derive(Default)]
struct Siblings {
    /// Some sibling exists: the response varies by Accept-Encoding.
    any: bool,
    /// The sibling to send instead, and its coding.
    chosen: Option<(std::path::PathBuf, &'static str)>,
}

/// How long "no sibling next to this file" is believed without looking again, while the
/// file itself is unchanged (same inode, size and mtime). Until a sibling added later is
/// seen, the file is compressed on the fly: the same content, never a stale one.
const NO_SIBLINGS_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// Files remembered per thread; beyond it the memory starts over.
const NO_SIBLINGS_MAX: usize = 4096;

/// A file as it was when looked at: inode, size, mtime.
type Identity = (u64, u64, Option<SystemTime>);

thread_local! {
    /// Files found without siblings: their identity then, and when. Most files have none,
    /// and looking costs a failed path lookup per sibling per request.
    static NO_SIBLINGS: std::cell::RefCell<std::collections::HashMap<std::path::PathBuf, (Identity, std::time::Instant)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The precompressed siblings of `path` (`known`: its metadata, when already read): whether
/// any exists, and the one to send, when the client accepts its coding and it is a regular
/// file (not a symlink) at least as new as the original (a stale sibling would serve old
/// content).
fn precompressed(path: &Path, known: Option<&std::fs::Metadata>, req: &HeaderMap) -> Siblings {
    use std::os::unix::fs::MetadataExt;
    let mut found = Siblings::default();
    let orig = match known {
        Some(m) => m.clone(),
        None => match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => return found,
        },
    };
    let identity = (orig.ino(), orig.len(), orig.modified().ok());
    let now = std::time::Instant::now();
    let remembered = NO_SIBLINGS.with_borrow(|m| {
        m.get(path)
            .is_some_and(|(id, at)| *id == identity && now.duration_since(*at) < NO_SIBLINGS_FOR)
    });
    if remembered {
        return found;
    }
    let accept = req
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    for (enc, ext) in SIBLINGS {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        let p = std::path::PathBuf::from(p);
        // The sibling's own entry, never what a symlink there points at: the router
        // opened the original beneath the document root, and a link planted next to it
        // could lead anywhere.
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !m.is_file() {
            continue;
        }
        found.any = true;
        let fresh = match (m.modified(), orig.modified()) {
            (Ok(a), Ok(b)) => a >= b,
            _ => true,
        };
        if found.chosen.is_none() && fresh && accept.is_some_and(|a| accepts(a, enc)) {
            found.chosen = Some((p, enc));
        }
    }
    if !found.any {
        NO_SIBLINGS.with_borrow_mut(|m| {
            if m.len() >= NO_SIBLINGS_MAX {
                m.clear();
            }
            m.insert(path.to_path_buf(), (identity, now));
        });
    }
    found
}

/// Whether an Accept-Encoding value accepts `coding` (RFC 9110 12.5.3): listed (or `*`) with
/// a non-zero q.
fn accepts(accept: &str, coding: &str) -> bool {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q > 0.0;
        }
        if name == "*" {
            star = Some(q > 0.0);
        }
    }
    star.unwrap_or(false)
}

/// A weak-free, cheap validator from size and modification time (nginx's scheme), so it
/// costs no read of the file.
fn etag(len: u64, modified: Option<SystemTime>) -> String {
    let secs = modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    format!("\"{secs:x}-{len:x}\"")
}

/// RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since.
fn not_modified(h: &HeaderMap, etag: &str, modified: Option<SystemTime>) -> bool {
    if let Some(inm) = h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return inm.trim() == "*"
            || inm
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag);
    }
    match (
        h.get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| httpdate::parse_http_date(s).ok()),
        modified,
    ) {
        (Some(since), Some(m)) => {
            let m_secs = m.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let s_secs = since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            m_secs <= s_secs
        }
        _ => false,
    }
}

enum RangeAnswer {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110 14.2). Several ranges, or a syntax we do not understand, get
/// the whole file (allowed: a server may ignore Range). If-Range that does not match the
/// current validators also gets the whole file.
fn range(h: &HeaderMap, len: u64, etag: &str, last_modified: Option<&str>) -> RangeAnswer {
    let Some(spec) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeAnswer::Whole;
    };
    if let Some(cond) = h.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        if cond != etag && Some(cond) != last_modified {
            return RangeAnswer::Whole;
        }
    }
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if set.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = set.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let parse = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match parse(suffix) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(n) if len > 0 => RangeAnswer::Part(len.saturating_sub(n), len - 1),
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Whole,
        },
        (first, "") => match parse(first) {
            Some(f) if f < len => RangeAnswer::Part(f, len - 1),
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Whole,
        },
        (first, last) => match (parse(first), parse(last)) {
            (Some(f), Some(l)) if f <= l && f < len => RangeAnswer::Part(f, l.min(len - 1)),
            (Some(f), Some(l)) if f <= l => RangeAnswer::Unsatisfiable,
            _ => RangeAnswer::Whole,
        },
    }
}

/// The type from the extension; text types say they are UTF-8, as nginx's `charset utf-8`
/// users expect.
fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml")
        || mime.suffix().is_some_and(|s| s == "xml" || s == "json");
    let value = if text && mime.get_param("charset").is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(content_type(Path::new("a.css")), "text/css; charset=utf-8");
        assert_eq!(
            content_type(Path::new("a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.png")), "image/png");
        assert_eq!(
            content_type(Path::new("a.svg")),
            "image/svg+xml; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }

    fn ranged(spec: &str, len: u64) -> Option<(u64, u64)> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, spec.parse().unwrap());
        match range(&h, len, "\"e\"", None) {
            RangeAnswer::Part(a, b) => Some((a, b)),
            RangeAnswer::Whole => None,
            RangeAnswer::Unsatisfiable => Some((u64::MAX, u64::MAX)),
        }
    }

    #[test]
    fn accept_encoding() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("br;q=0.5", "br"));
        assert!(!accepts("br;q=0", "br"));
        assert!(!accepts("gzip", "br"));
        assert!(accepts("*", "br"));
        assert!(!accepts("*;q=0", "br"));
        assert!(!accepts("br;q=0, *", "br"));
    }

    #[test]
    fn precompressed_siblings() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.css");
        std::fs::write(&f, "body{}").unwrap();
        std::fs::write(dir.path().join("app.css.gz"), "gz").unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, "gzip, br".parse().unwrap());
        let enc = |h: &HeaderMap| precompressed(&f, None, h).chosen.map(|(_, e)| e);
        let (p, e) = precompressed(&f, None, &h).chosen.unwrap();
        assert_eq!(e, "gzip", "no .br sibling: gzip");
        assert!(p.ends_with("app.css.gz"));
        std::fs::write(dir.path().join("app.css.br"), "br").unwrap();
        assert_eq!(enc(&h), Some("br"));
        h.insert(header::ACCEPT_ENCODING, "identity".parse().unwrap());
        let s = precompressed(&f, None, &h);
        assert!(
            s.chosen.is_none() && s.any,
            "not accepted, but the response varies"
        );
        // A sibling older than the original is stale: not used.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let sib = std::fs::File::options()
            .write(true)
            .open(dir.path().join("app.css.br"))
            .unwrap();
        sib.set_modified(old).unwrap();
        h.insert(header::ACCEPT_ENCODING, "br".parse().unwrap());
        assert_eq!(enc(&h), None);
    }

    #[test]
    fn a_file_without_siblings_is_looked_at_again_once_it_changes_or_a_second_passed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.js");
        std::fs::write(&f, "x").unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, "gzip".parse().unwrap());
        assert!(!precompressed(&f, None, &h).any);
        // Added next to an unchanged file: believed absent for a moment (the file is then
        // compressed on the fly), seen after NO_SIBLINGS_FOR.
        std::fs::write(dir.path().join("app.js.gz"), "gz").unwrap();
        assert!(precompressed(&f, None, &h).chosen.is_none());
        std::thread::sleep(NO_SIBLINGS_FOR + std::time::Duration::from_millis(50));
        assert_eq!(
            precompressed(&f, None, &h).chosen.map(|(_, e)| e),
            Some("gzip")
        );
        // A changed file is looked at again at once.
        let g = dir.path().join("lib.js");
        std::fs::write(&g, "x").unwrap();
        assert!(!precompressed(&g, None, &h).any);
        std::fs::write(dir.path().join("lib.js.gz"), "gz").unwrap();
        std::fs::write(&g, "longer").unwrap();
        assert!(precompressed(&g, None, &h).any);
    }

    #[test]
    fn ranges() {
        assert_eq!(ranged("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(ranged("bytes=90-", 100), Some((90, 99)));
        assert_eq!(ranged("bytes=-10", 100), Some((90, 99)));
        assert_eq!(ranged("bytes=-1000", 100), Some((0, 99)));
        assert_eq!(ranged("bytes=50-5000", 100), Some((50, 99)));
        assert_eq!(ranged("bytes=100-", 100), Some((u64::MAX, u64::MAX)));
        assert_eq!(ranged("bytes=0-1,5-6", 100), None);
        assert_eq!(ranged("items=0-1", 100), None);
        assert_eq!(ranged("bytes=5-1", 100), None);
        assert_eq!(ranged("bytes=x-1", 100), None);
    }

    #[test]
    fn validators() {
        let m = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let tag = etag(5, Some(m));
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag.parse().unwrap());
        assert!(not_modified(&h, &tag, Some(m)));
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, "\"other\"".parse().unwrap());
        h.insert(
            header::IF_MODIFIED_SINCE,
            httpdate::fmt_http_date(m).parse().unwrap(),
        );
        assert!(
            !not_modified(&h, &tag, Some(m)),
            "If-None-Match takes precedence"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_MODIFIED_SINCE,
            httpdate::fmt_http_date(m).parse().unwrap(),
        );
        assert!(not_modified(&h, &tag, Some(m)));
    }
}
