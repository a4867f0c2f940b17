//! The access log: one line per request, in the combined format or as JSON, to stdout or a
//! file that logrotate can move away (reopened on request, i.e. on SIGUSR1).
//!
//! Owns: the line formats, and a writer thread that drains one bounded buffer.
//!
//! Never: blocks a request or wakes a thread per line. A request formats its line and
//! appends it to the shared buffer under a short lock; the writer thread takes the whole
//! buffer every [`TICK`] (or as soon as [`FLUSH_AT`] bytes wait) and writes it in one go, as
//! nginx's `access_log ... buffer=` does. When the disk cannot keep up and [`MAX_BUFFER`] is
//! reached, lines are dropped and counted (the count is logged) instead of slowing every
//! request down. Dropping the last handle writes what is buffered before returning, so a
//! shutdown loses no line.
use serde_json::json;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a line waits in the buffer.
const TICK: Duration = Duration::from_millis(100);
/// Buffered bytes that wake the writer before its tick.
const FLUSH_AT: usize = 64 * 1024;
/// Buffered bytes at most; lines beyond are dropped and counted.
const MAX_BUFFER: usize = 8 * 1024 * 1024;

/// The line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    /// `combined` (nginx, Apache), then `key=value` fields: `rt` (request time, s), `ut`
    /// (time until the worker's response head, s), `wt` (wait for a worker, s), `pid`, `id`,
    /// `tp` (the W3C `traceparent` PHP saw), then `sendfile` when the body is a file the
    /// script named and `incomplete` when the client left first.
    Combined,
    /// One JSON object per line.
    Json,
}

/// A handle on the access log; clones share the writer thread, which writes what is left
/// and stops when the last handle is dropped.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    format: AccessFormat,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    reopen: AtomicBool,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.pending().closed = true;
        self.shared.wake.notify_one();
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = writer {
            let _ = t.join();
        }
    }
}

/// One finished request.
pub(crate) struct Entry {
    pub time: SystemTime,
    pub client: IpAddr,
    /// Request parts are kept as hyper parsed them (cheap reference-counted clones); they are
    /// turned into text only when the line is formatted.
    pub method: http::Method,
    pub uri: http::Uri,
    pub protocol: &'static str,
    pub status: u16,
    pub bytes: u64,
    pub complete: bool,
    pub duration: Duration,
    pub upstream: Option<Duration>,
    pub wait: Option<Duration>,
    pub worker: Option<u32>,
    /// The body is a file the script named (X-Sendfile, X-Accel-Redirect).
    pub sendfile: bool,
    pub request_id: Arc<str>,
    /// The `traceparent` passed to PHP (the client's, or a new one; internal requests get
    /// a new one).
    pub traceparent: Option<Arc<str>>,
    pub host: Option<http::HeaderValue>,
    pub referer: Option<http::HeaderValue>,
    pub user_agent: Option<http::HeaderValue>,
}

/// The request target as the client sent it: path and query, or the whole URI for an
/// absolute-form or authority-form target without one.
fn target(uri: &http::Uri) -> std::borrow::Cow<'_, str> {
    match uri.path_and_query() {
        Some(pq) => pq.as_str().into(),
        None => uri.to_string().into(),
    }
}

fn text(v: &Option<http::HeaderValue>) -> Option<String> {
    v.as_ref()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

enum Sink {
    Stdout,
    File(PathBuf, File),
}

impl Sink {
    fn open(path: Option<&Path>) -> io::Result<Sink> {
        Ok(match path {
            None => Sink::Stdout,
            Some(p) => Sink::File(p.to_path_buf(), open_append(p)?),
        })
    }

    /// One write for the whole batch (O_APPEND keeps lines of several writers whole).
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Sink::File(_, f) => f.write_all(bytes),
        }
    }
}

fn open_append(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(p)
}

/// The writer thread: takes the buffer when woken or every tick, writes it, reopens the
/// file when asked, and ends once closed and drained.
fn drain(shared: &Shared, mut sink: Sink) {
    let mut spare = Vec::new();
    loop {
        let closed = {
            let mut p = shared.pending();
            if !p.closed && p.bytes.len() < FLUSH_AT {
                p = shared
                    .wake
                    .wait_timeout(p, TICK)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            std::mem::swap(&mut p.bytes, &mut spare);
            p.closed
        };
        if !spare.is_empty() {
            if let Err(e) = sink.write(&spare) {
                tracing::error!("access log: {e}");
            }
            spare.clear();
            // A burst must not pin megabytes for the rest of the process's life.
            spare.shrink_to(FLUSH_AT * 2);
        }
        let n = shared.dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            tracing::warn!("access log: {n} lines dropped, the writer could not keep up");
        }
        if shared.reopen.swap(false, Ordering::Relaxed) {
            if let Sink::File(p, f) = &mut sink {
                match open_append(p) {
                    Ok(new) => {
                        *f = new;
                        tracing::info!(file = %p.display(), "access log reopened");
                    }
                    Err(e) => tracing::error!(
                        file = %p.display(),
                        "access log: cannot reopen, still writing to the old file: {e}"
                    ),
                }
            }
        }
        if closed && shared.pending().bytes.is_empty() {
            return;
        }
    }
}

thread_local! {
    /// Each runtime thread formats into its own reused buffer, outside the lock.
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl AccessLog {
    /// Opens the log: `path`, or stdout when `None`. The file is opened now, so a path that
    /// cannot be written is an error at start-up, not a silent loss later.
    pub fn open(path: Option<&Path>, format: AccessFormat) -> io::Result<Self> {
        let sink = Sink::open(path)?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            reopen: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        let for_writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("isola-access-log".into())
            .spawn(move || drain(&for_writer, sink))?;
        Ok(AccessLog {
            inner: Arc::new(Inner {
                shared,
                format,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// Reopens the file (after logrotate moved it away) before the next batch is written.
    pub fn reopen(&self) {
        self.inner.shared.reopen.store(true, Ordering::Relaxed);
        self.inner.shared.wake.notify_one();
    }

    pub(crate) fn write(&self, e: &Entry) {
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            match self.inner.format {
                AccessFormat::Combined => combined_into(e, &mut line),
                AccessFormat::Json => line.push_str(&json_line(e)),
            }
            let shared = &self.inner.shared;
            let mut p = shared.pending();
            if p.bytes.len() + line.len() > MAX_BUFFER {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let before = p.bytes.len();
            p.bytes.extend_from_slice(line.as_bytes());
            let crossed = before < FLUSH_AT && p.bytes.len() >= FLUSH_AT;
            drop(p);
            if crossed {
                shared.wake.notify_one();
            }
        });
    }
}

/// `client - - [time] "request" status bytes "referer" "user-agent"` and Isola's fields.
/// Quotes, backslashes and control bytes in request-supplied fields are escaped as
/// `\xHH`, as nginx does, so a client cannot forge a line.
#[cfg(test)]
fn combined(e: &Entry) -> String {
    let mut s = String::new();
    combined_into(e, &mut s);
    s
}

/// ` rt=1.234`: seconds with millisecond resolution, truncated like nginx's
/// `$request_time`, without float formatting; `-` when unknown.
fn seconds(s: &mut String, key: &str, d: Option<Duration>) {
    s.push_str(key);
    match d {
        Some(d) => {
            let _ = write!(s, "{}.{:03}", d.as_secs(), d.subsec_millis());
        }
        None => s.push('-'),
    }
}

fn combined_into(e: &Entry, s: &mut String) {
    let _ = write!(s, "{} - - [", e.client);
    clf_time_into(e.time, s);
    s.push_str("] \"");
    escape_into(e.method.as_str().as_bytes(), s);
    s.push(' ');
    escape_into(target(&e.uri).as_bytes(), s);
    let _ = write!(s, " {}\" {} {} \"", e.protocol, e.status, e.bytes);
    escape_into(e.referer.as_ref().map_or(b"-", |v| v.as_bytes()), s);
    s.push_str("\" \"");
    escape_into(e.user_agent.as_ref().map_or(b"-", |v| v.as_bytes()), s);
    s.push('"');
    seconds(s, " rt=", Some(e.duration));
    seconds(s, " ut=", e.upstream);
    seconds(s, " wt=", e.wait);
    match e.worker {
        Some(p) => {
            let _ = write!(s, " pid={p}");
        }
        None => s.push_str(" pid=-"),
    }
    let _ = write!(s, " id={}", e.request_id);
    if let Some(tp) = &e.traceparent {
        let _ = write!(s, " tp={tp}");
    }
    if e.sendfile {
        s.push_str(" sendfile");
    }
    if !e.complete {
        s.push_str(" incomplete");
    }
    s.push('\n');
}

fn json_line(e: &Entry) -> String {
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let mut v = json!({
        "time": rfc3339(e.time),
        "client": e.client.to_string(),
        "method": e.method.as_str(),
        "uri": target(&e.uri),
        "protocol": e.protocol,
        "status": e.status,
        "bytes": e.bytes,
        "complete": e.complete,
        "duration_ms": ms(e.duration),
        "upstream_ms": e.upstream.map(ms),
        "wait_ms": e.wait.map(ms),
        "worker": e.worker,
        "sendfile": e.sendfile.then_some(true),
        "request_id": &*e.request_id,
        "traceparent": e.traceparent.as_deref(),
        "host": text(&e.host),
        "referer": text(&e.referer),
        "user_agent": text(&e.user_agent),
    });
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let mut line = v.to_string();
    line.push('\n');
    line
}

/// Quotes, backslashes, control and non-ASCII bytes as `\xHH`, as nginx does; the rest
/// as it is, copied in runs rather than byte by byte.
fn escape_into(v: &[u8], out: &mut String) {
    let mut start = 0;
    for (i, &b) in v.iter().enumerate() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            // Everything before `i` since `start` is printable ASCII, so valid UTF-8.
            out.push_str(std::str::from_utf8(&v[start..i]).unwrap_or_default());
            let _ = write!(out, "\\x{b:02X}");
            start = i + 1;
        }
    }
    out.push_str(std::str::from_utf8(&v[start..]).unwrap_or_default());
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn split(t: SystemTime) -> ((i64, u32, u32), u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    (
        civil((secs / 86_400) as i64),
        secs % 86_400,
        d.subsec_millis(),
    )
}

/// `23/Nov/2026:06:50:01 +0000` (UTC: the common log format's time), formatted once per
/// second per thread.
fn clf_time_into(t: SystemTime, out: &mut String) {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            let ((y, m, d), s, _) = split(t);
            last.1.clear();
            let _ = write!(
                last.1,
                "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
                MONTHS[(m - 1) as usize],
                s / 3600,
                s / 60 % 60,
                s % 60
            );
            last.0 = secs;
        }
        out.push_str(&last.1);
    });
}

#[cfg(test)]
fn clf_time(t: SystemTime) -> String {
    let mut s = String::new();
    clf_time_into(t, &mut s);
    s
}

/// `2026-11-23T06:50:01.123Z`
fn rfc3339(t: SystemTime) -> String {
    let ((y, m, d), s, ms) = split(t);
    format!(
        "{y}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_795_417_801_123),
            client: "192.0.2.7".parse().unwrap(),
            method: http::Method::GET,
            uri: http::Uri::from_static("/a?q=%22x%22"),
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 1234,
            complete: true,
            duration: Duration::from_micros(12_345),
            upstream: Some(Duration::from_micros(10_000)),
            wait: Some(Duration::ZERO),
            worker: Some(4242),
            sendfile: false,
            request_id: "abc123".into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            host: Some(http::HeaderValue::from_static("example.com")),
            referer: None,
            user_agent: Some(http::HeaderValue::from_bytes(b"curl/8.0 \"x\"\t\xff").unwrap()),
        }
    }

    #[test]
    fn dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(-1), (1969, 12, 31));
        let t = UNIX_EPOCH + Duration::from_millis(1_795_417_801_123);
        assert_eq!(clf_time(t), "23/Nov/2026:07:10:01 +0000");
        assert_eq!(rfc3339(t), "2026-11-23T07:10:01.123Z");
    }

    #[test]
    fn combined_line_escapes_what_the_client_sent() {
        assert_eq!(
            combined(&entry()),
            "192.0.2.7 - - [23/Nov/2026:07:10:01 +0000] \"GET /a?q=%22x%22 HTTP/1.1\" 200 1234 \"-\" \"curl/8.0 \\x22x\\x22\\x09\\xFF\" rt=0.012 ut=0.010 wt=0.000 pid=4242 id=abc123 tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n"
        );
    }

    #[test]
    fn json_line_has_every_field_and_no_nulls() {
        let mut e = entry();
        e.upstream = None;
        let v: serde_json::Value = serde_json::from_str(&json_line(&e)).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 1234);
        assert_eq!(v["uri"], "/a?q=%22x%22");
        assert_eq!(v["duration_ms"], 12.345);
        assert_eq!(v["worker"], 4242);
        assert_eq!(v["request_id"], "abc123");
        assert_eq!(
            v["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(v["client"], "192.0.2.7");
        assert!(v.get("upstream_ms").is_none());
        assert!(v.get("referer").is_none());
        assert!(v.get("sendfile").is_none(), "only when true");
        e.sendfile = true;
        let v: serde_json::Value = serde_json::from_str(&json_line(&e)).unwrap();
        assert_eq!(v["sendfile"], true);
        assert!(combined(&e).ends_with(" sendfile\n"));
    }

    #[test]
    fn dropping_the_last_handle_writes_every_buffered_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(Some(&path), AccessFormat::Combined).unwrap();
        let other = log.clone();
        for _ in 0..5000 {
            log.write(&entry());
        }
        drop(log);
        other.write(&entry());
        drop(other);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 5001);
        assert!(
            text.lines().all(|l| l.ends_with("-00f067aa0ba902b7-01")),
            "whole lines"
        );
    }

    #[test]
    fn file_is_reopened_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(Some(&path), AccessFormat::Combined).unwrap();
        log.write(&entry());
        let wait_for = |p: &Path, n: usize| {
            for _ in 0..100 {
                if std::fs::read_to_string(p).is_ok_and(|t| t.lines().count() >= n) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        };
        assert!(wait_for(&path, 1));
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        std::thread::sleep(TICK * 3);
        log.write(&entry());
        assert!(wait_for(&path, 1), "new file after reopen");
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap().lines().count(),
            1
        );
    }
}
