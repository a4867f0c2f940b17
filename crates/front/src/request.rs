//! The script pipeline and the request context: what client requests (`handler.rs`) and
//! internal ones (`internal.rs`) share, so both enter the same path and end in the same
//! closing step.
//!
//! A request carries one [`RequestCtx`] through its phases (route → static | script →
//! exchange → translate → sendfile → compress): its id and traceparent, when it started,
//! who sent it, the facts the access log needs once the request itself is consumed, what
//! the worker side took ([`Upstream`]) and how it was answered ([`Outcome`]). The phases
//! fill it in; [`RequestCtx::close`] ends every request: it counts the outcome and writes
//! the access log line.
//!
//! Owns: the context and its closing step, the FastCGI request of a script ([`exec`]: CGI
//! environment, lease, exchange, reload fallback, the run that goes on when the client
//! leaves), CGI → HTTP translation, `Isola-Defer` parsing.
//!
//! Never: reads a client's connection or body (`handler.rs` spools it), builds an internal
//! request (`internal.rs`), or decides an outcome from a status code: the phase that knows
//! sets it.
use crate::access_log::{AccessLog, Entry};
use crate::body::ResponseBody;
use crate::cgi_env::{self, CgiRequest};
use crate::error_page;
use crate::exchange::{self, UpstreamError, REQUEST_ID};
use crate::site::{App, Shared, Site};
use crate::spool::Spooled;
use crate::stats::Stats;
use bytes::BytesMut;
use http::{header, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use isola_fastcgi::{encode_begin_request, encode_params, CgiHead, Role};
use isola_pool::{AcquireError, JobInfo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Connection facts the request cannot tell.
#[derive(Clone, Copy)]
pub(crate) struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
}

/// What the worker side of a request took, for the access log and the stats.
#[derive(Default)]
pub(crate) struct Upstream {
    /// The worker that ran it.
    pub pid: Option<u32>,
    /// Its wait for that worker.
    pub wait: Option<Duration>,
    /// From the lease to the response head.
    pub head: Option<Duration>,
}

/// How a request was answered, set by the phase that knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Outcome {
    /// By the front alone: a static file, a redirect, an error page for a request refused
    /// before any worker was asked.
    #[default]
    Front,
    /// By a worker running the script; `sendfile` when the body is a file it named
    /// (X-Sendfile, X-Accel-Redirect).
    Script { sendfile: bool },
    /// 503: no worker could take it, the pool's queue was full or the wait timed out.
    /// Counted apart from other 5xx.
    Shed,
    /// 503: no worker at all (the pool is stopping, or its workers fail to start).
    NoWorker,
    /// 504: the script ran past its time limit before its response head.
    UpstreamTimeout,
    /// 502: the worker's answer broke before its response head.
    UpstreamError,
}

impl Outcome {
    fn from_acquire(e: &AcquireError) -> Outcome {
        if matches!(e, AcquireError::QueueFull | AcquireError::Timeout) {
            Outcome::Shed
        } else {
            Outcome::NoWorker
        }
    }

    /// No worker took the request: the script never ran.
    pub(crate) fn unavailable(self) -> bool {
        matches!(self, Outcome::Shed | Outcome::NoWorker)
    }
}

/// Request facts only the access log reads, kept after the request itself is consumed.
pub(crate) struct LogFields {
    pub time: SystemTime,
    pub uri: http::Uri,
    pub protocol: &'static str,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
}

/// One request, from its arrival to its closing step.
pub(crate) struct RequestCtx {
    /// Its `X-Request-Id`.
    pub id: Arc<str>,
    /// The `traceparent` PHP sees.
    pub traceparent: Arc<str>,
    /// When its head arrived.
    pub started: Instant,
    /// The client (after trusted proxies) and the local address.
    pub peer: Peer,
    /// Its method, for compression and the access log.
    pub method: Method,
    /// Its Host header, for a deferred request and the access log.
    pub host: Option<HeaderValue>,
    /// `None` when there is no access log to write.
    pub log: Option<LogFields>,
    pub upstream: Upstream,
    pub outcome: Outcome,
}

impl RequestCtx {
    /// The closing step of every request, client or internal, once its body is done
    /// (`bytes` sent, `complete` unless it was cut short): the outcome counted in `stats`
    /// (`None` for internal requests, which the stats never count) and the access log line.
    pub(crate) fn close(
        self,
        status: u16,
        bytes: u64,
        complete: bool,
        stats: Option<&Stats>,
        log: Option<&AccessLog>,
    ) {
        let duration = self.started.elapsed();
        if let Some(stats) = stats {
            let shed = self.outcome == Outcome::Shed;
            stats.record(status, shed, duration, self.upstream.wait);
        }
        if let (Some(log), Some(f)) = (log, self.log) {
            log.write(&Entry {
                time: f.time,
                client: self.peer.remote.ip(),
                method: self.method,
                uri: f.uri,
                protocol: f.protocol,
                status,
                bytes,
                complete,
                duration,
                upstream: self.upstream.head,
                wait: self.upstream.wait,
                worker: self.upstream.pid,
                sendfile: self.outcome == Outcome::Script { sendfile: true },
                request_id: self.id,
                traceparent: Some(self.traceparent),
                host: self.host,
                referer: f.referer,
                user_agent: f.user_agent,
            });
        }
    }
}

/// What a worker is asked: the request (its head, its spooled body) and the script that
/// answers it, as the router (or a queue) chose it.
pub(crate) struct ScriptCall<'a> {
    pub head: &'a http::request::Parts,
    pub body: Option<Spooled>,
    pub content_length: Option<u64>,
    pub filename: PathBuf,
    pub name: &'a str,
    pub path_info: &'a str,
    /// CGI parameters Isola adds (jobs: `ISOLA_JOB_ID`...).
    pub env: &'a [(&'static str, String)],
    /// Replaces the site's `request_terminate_timeout` (a queue's `timeout`).
    pub timeout: Option<Duration>,
    /// A queued job: shown as background work to whoever weighs the pool's load.
    pub background: bool,
    /// The queue whose own pool runs it, if it has one.
    pub queue: Option<&'a str>,
}

/// Runs `call` in a worker of `site`: the FastCGI request, a lease from the site's pool,
/// the exchange, the translation and a file the script names. Client requests and internal
/// ones (deferred, scheduled, jobs) both end here; `ctx` gets the worker's facts and the
/// outcome.
pub(crate) async fn exec(
    shared: &Arc<Shared>,
    app: &App,
    site: &Site,
    call: ScriptCall<'_>,
    ctx: &mut RequestCtx,
) -> Result<Response<ResponseBody>, StatusCode> {
    let ScriptCall {
        head: parts,
        body,
        content_length,
        filename: script_filename,
        name: script_name,
        path_info,
        env: extra,
        timeout,
        background,
        queue,
    } = call;
    let raw_target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let env_req = CgiRequest {
        method: parts.method.as_str(),
        request_uri: raw_target,
        query: parts.uri.query().unwrap_or(""),
        protocol: version_str(parts.version),
        headers: &parts.headers,
        content_length,
        script_filename: &script_filename,
        script_name,
        path_info,
        docroot: &site.router.config().docroot,
        remote: ctx.peer.remote,
        local: ctx.peer.local,
        https: ctx.peer.https,
        request_id: &ctx.id,
        server_software: &app.server_software,
        extra,
    };
    let mut out = BytesMut::with_capacity(4096);
    encode_begin_request(&mut out, REQUEST_ID, Role::Responder, true);
    let env = cgi_env::build(&env_req);
    encode_params(&mut out, REQUEST_ID, env.iter().map(|(k, v)| (&**k, &**v)));
    drop(env);

    let job = JobInfo {
        request_id: ctx.id.to_string(),
        method: parts.method.to_string(),
        uri: raw_target.to_string(),
        script: script_filename.clone(),
        background,
        client: ctx.peer.remote.ip().to_string(),
    };
    let pool = site.pool_for_script(queue, &script_filename).clone();
    let queue = queue.map(str::to_string);
    let shared_now = shared.clone();
    let app_addr = app as *const App as usize;
    let host = parts.headers.get(header::HOST).cloned();
    let limit = timeout.or(site.limits.request_terminate_timeout);
    let task_rid = ctx.id.clone();
    let run = async move {
        let waiting = Instant::now();
        let mut acquired = pool.acquire(job.clone()).await;
        if matches!(acquired, Err(AcquireError::ShuttingDown)) {
            // A reload replaced the pool while this request was on its way: the new pool
            // serves it, so a reload under load fails no request.
            let now = shared_now.app();
            if Arc::as_ptr(&now) as usize != app_addr {
                if let Ok(new_site) = now.pick(host.as_ref()) {
                    acquired = new_site
                        .pool_for_script(queue.as_deref(), &job.script)
                        .acquire(job)
                        .await;
                }
            }
        }
        let lease = acquired?;
        let wait = waiting.elapsed();
        let pid = lease.pid();
        let running = Instant::now();
        let deadline = limit.map(|t| tokio::time::Instant::now() + t);
        let exchanged = exchange::start(lease, out, body, deadline, task_rid).await;
        Ok::<_, AcquireError>((wait, pid, running, exchanged))
    };
    let ran = if site.limits.run_abandoned {
        // Finished on its own task if the client goes away: the request runs even so,
        // as with php-fpm (whose listen queue keeps a request nginx gave up on). WordPress's
        // cron spawn relies on it: it sends `wp-cron.php` to the server itself and hangs up.
        crate::detach::Detach::new(run).await
    } else {
        // Dropped with the client's connection: a request nobody waits for never takes a
        // worker.
        run.await
    };
    let (wait, pid, running, exchanged) = match ran {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(request_id = &*ctx.id, "no worker: {e}");
            ctx.outcome = Outcome::from_acquire(&e);
            return Ok(error_page::unavailable(5));
        }
    };
    ctx.upstream = Upstream {
        pid: Some(pid),
        wait: Some(wait),
        head: Some(running.elapsed()),
    };
    match exchanged {
        Ok((head, body)) => {
            let resp = translate(head, body, parts.method == Method::HEAD);
            let (resp, sendfile) =
                crate::sendfile::answer(site, &parts.method, &parts.headers, resp, &ctx.id).await;
            ctx.outcome = Outcome::Script { sendfile };
            Ok(resp)
        }
        Err(e) => {
            let (outcome, status) = match e {
                UpstreamError::Timeout => (Outcome::UpstreamTimeout, StatusCode::GATEWAY_TIMEOUT),
                _ => (Outcome::UpstreamError, StatusCode::BAD_GATEWAY),
            };
            ctx.outcome = outcome;
            tracing::warn!(request_id = &*ctx.id, worker = pid, script = %script_filename.display(), "{e}");
            Err(status)
        }
    }
}

pub(crate) fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Hop-by-hop headers (RFC 9110 7.6.1) describe the worker's side of the exchange, not the
/// client's connection; Content-Length is recomputed when the body is whole.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
    )
}

/// A request a script asked Isola to run after its response (`Isola-Defer: /path?query`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Defer(pub String);

impl Defer {
    /// An origin-form target on the same site: `/` then no second `/`, no scheme, no
    /// control bytes, at most 4 KiB.
    fn parse(v: &[u8]) -> Option<Defer> {
        let t = std::str::from_utf8(v).ok()?.trim();
        let ok = t.starts_with('/')
            && !t.starts_with("//")
            && t.len() <= 4096
            && t.bytes().all(|b| b > 0x20 && b != 0x7f);
        ok.then(|| Defer(t.to_owned()))
    }
}

/// CGI head + body → HTTP response.
fn translate(head: CgiHead, body: ResponseBody, is_head: bool) -> Response<ResponseBody> {
    let status = match StatusCode::from_u16(head.status) {
        Ok(s) if s.as_u16() >= 200 => s,
        _ => return error_page::page(StatusCode::BAD_GATEWAY),
    };
    let whole = matches!(body, ResponseBody::Full(_) | ResponseBody::Empty);
    // Headers the script's own Connection header names are hop-by-hop too (RFC 9110 7.6.1).
    let connection_named: Vec<String> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let mut defer = None;
    let h = resp.headers_mut();
    h.reserve(head.headers.len());
    for (name, value) in head.headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        if is_hop_by_hop(&name) || connection_named.iter().any(|c| c == name.as_str()) {
            continue;
        }
        if name.as_str() == "isola-defer" {
            // For Isola, not for the client: a request to run once this response is sent.
            match Defer::parse(&value) {
                Some(d) => defer = Some(d),
                None => tracing::warn!(
                    "Isola-Defer ignored: {:?} is not a path on this site",
                    String::from_utf8_lossy(&value)
                ),
            }
            continue;
        }
        if name == header::CONTENT_LENGTH && whole && !is_head {
            // The body is all here: hyper frames it with its exact length.
            continue;
        }
        if let Ok(v) = HeaderValue::from_maybe_shared(value) {
            h.append(name, v);
        }
    }
    if let Some(d) = defer {
        resp.extensions_mut().insert(d);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(outcome: Outcome) -> RequestCtx {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        RequestCtx {
            id: "id".into(),
            traceparent: "tp".into(),
            started: Instant::now(),
            peer: Peer {
                remote: addr,
                local: addr,
                https: false,
            },
            method: Method::GET,
            host: None,
            log: None,
            upstream: Upstream::default(),
            outcome,
        }
    }

    #[test]
    fn the_outcome_not_the_status_tells_a_shed_and_internal_requests_are_not_counted() {
        let stats = Stats::default();
        ctx(Outcome::Shed).close(503, 0, true, Some(&stats), None);
        ctx(Outcome::NoWorker).close(503, 0, true, Some(&stats), None);
        ctx(Outcome::Script { sendfile: false }).close(503, 9, true, Some(&stats), None);
        // An internal request: no stats.
        ctx(Outcome::Shed).close(503, 0, true, None, None);
        let r = stats.snapshot();
        assert_eq!(r.shed, 1);
        assert_eq!(r.by_class, [0, 0, 0, 0, 2]);
    }

    #[test]
    fn queue_full_and_wait_timeouts_are_sheds_other_refusals_are_not() {
        for (e, o) in [
            (AcquireError::QueueFull, Outcome::Shed),
            (AcquireError::Timeout, Outcome::Shed),
            (AcquireError::ShuttingDown, Outcome::NoWorker),
            (AcquireError::NoWorker, Outcome::NoWorker),
        ] {
            assert_eq!(Outcome::from_acquire(&e), o, "{e}");
            assert!(o.unavailable());
        }
        assert!(!Outcome::Script { sendfile: true }.unavailable());
        assert!(!Outcome::UpstreamTimeout.unavailable());
    }

    fn head(headers: &[(&str, &str)]) -> CgiHead {
        CgiHead {
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), bytes::Bytes::copy_from_slice(v.as_bytes())))
                .collect(),
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let r = translate(
            head(&[
                ("Connection", "close, X-Internal"),
                ("X-Internal", "secret"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("X-Kept", "1"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
            ]),
            ResponseBody::full("x"),
            false,
        );
        let h = r.headers();
        for gone in [
            "connection",
            "x-internal",
            "keep-alive",
            "transfer-encoding",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h["x-kept"], "1");
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn content_length_is_recomputed_for_whole_bodies_but_kept_for_head() {
        let r = translate(
            head(&[("Content-Length", "100")]),
            ResponseBody::full("short"),
            false,
        );
        assert!(!r.headers().contains_key("content-length"));
        let r = translate(
            head(&[("Content-Length", "100")]),
            ResponseBody::Empty,
            true,
        );
        assert_eq!(r.headers()["content-length"], "100");
    }

    #[test]
    fn informational_status_from_a_script_is_a_bad_gateway() {
        let mut h = head(&[]);
        h.status = 101;
        assert_eq!(
            translate(h, ResponseBody::Empty, false).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
