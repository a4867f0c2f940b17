//! One request, from validation to response: the request path of DESIGN.md.
use crate::access_log::{AccessLog, Entry};
use crate::body::ResponseBody;
use crate::cgi_env::{self, CgiRequest};
use crate::compress::{self, Policy};
use crate::conn::RequestGuard;
use crate::error_page;
use crate::exchange::{self, UpstreamError, REQUEST_ID};
use crate::proxy;
use crate::request_id;
use crate::spool::{self, SpoolError, SpoolLimits};
use crate::static_file;
use bytes::BytesMut;
use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version,
};
use hyper::body::Incoming;
use ipnet::IpNet;
use isola_fastcgi::{encode_begin_request, encode_params, CgiHead, Role};
use isola_pool::{AcquireError, JobInfo, Pool};
use isola_router::{Deny, PathPatterns, Route, Router};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// One site: the host names it answers, its document root and router, its workers.
pub struct Site {
    /// Host names, lowercase (`example.com`, `*.example.com`); empty: only reached as the
    /// default site.
    pub names: Vec<String>,
    /// The router over the site's document root.
    pub router: Router,
    /// Cache-Control of static files by path.
    pub cache_control: CacheControl,
    /// Its workers.
    pub pool: Pool,
    /// Pools of queues that have their own (`[[queue]] pool = "own"`), by queue name.
    pub job_pools: Vec<(String, Pool)>,
    /// Worker mode: the worker script and the pool of processes that run it in a loop.
    pub worker: Option<(PathBuf, Pool)>,
    /// Its request limits.
    pub limits: Limits,
    /// Folders its scripts may hand files from (X-Sendfile, X-Accel-Redirect).
    pub sendfile: crate::sendfile::Sendfile,
}

impl Site {
    /// The pool a request runs in: the queue's own pool when it has one, else the site's.
    pub fn pool_for(&self, queue: Option<&str>) -> &Pool {
        queue
            .and_then(|q| self.job_pools.iter().find(|(n, _)| n == q))
            .map_or(&self.pool, |(_, p)| p)
    }

    /// The pool that runs `script`: the worker pool for the worker script (unless a queue
    /// has its own pool), else as [`Site::pool_for`].
    pub fn pool_for_script(&self, queue: Option<&str>, script: &std::path::Path) -> &Pool {
        match &self.worker {
            Some((w, pool)) if queue.is_none() && w == script => pool,
            _ => self.pool_for(queue),
        }
    }

    /// Every pool of the site, labelled: the web pool as `label`, queue pools as
    /// `label queue:NAME`, the worker pool as `label worker`.
    pub fn all_pools(&self, label: &str) -> Vec<(String, Pool)> {
        let mut v = vec![(label.to_string(), self.pool.clone())];
        if let Some((_, p)) = &self.worker {
            v.push((
                format!("{label} worker").trim_start().to_string(),
                p.clone(),
            ));
        }
        for (q, p) in &self.job_pools {
            v.push((format!("{label} queue:{q}"), p.clone()));
        }
        v
    }
}

/// What a request for a host no site names gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownHost {
    /// The site at this index.
    Site(usize),
    /// This status (404, 421).
    Status(StatusCode),
}

/// Cache-Control values of static files, by path pattern; the first match wins.
#[derive(Debug, Clone, Default)]
pub struct CacheControl {
    patterns: PathPatterns,
    values: Vec<HeaderValue>,
}

impl CacheControl {
    /// Rules as (path pattern, Cache-Control value), in order.
    pub fn new(rules: &[(String, String)]) -> Result<Self, String> {
        let paths: Vec<&str> = rules.iter().map(|(p, _)| p.as_str()).collect();
        let patterns = PathPatterns::new(&paths).map_err(|e| e.to_string())?;
        let values = rules
            .iter()
            .map(|(_, v)| {
                HeaderValue::from_str(v).map_err(|_| format!("{v:?} is not a header value"))
            })
            .collect::<Result<_, _>>()?;
        Ok(CacheControl { patterns, values })
    }

    fn lookup(&self, url: &[u8]) -> Option<&HeaderValue> {
        self.values.get(self.patterns.first_match(url)?)
    }

    /// Sets the rule's Cache-Control for a file reached by `url` on a response that may be
    /// cached (2xx, 304): a 404 or 416 page is not the file.
    pub(crate) fn apply(&self, url: &[u8], resp: &mut Response<ResponseBody>) {
        let cacheable = resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED;
        if let (true, Some(v)) = (cacheable, self.lookup(url)) {
            resp.headers_mut().insert(header::CACHE_CONTROL, v.clone());
        }
    }
}

/// Request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (413 above).
    pub max_body_size: u64,
    /// Bodies up to this size are buffered in memory, larger ones in a temporary file.
    pub body_memory_threshold: usize,
    /// Longest pause while a client sends its body.
    pub body_idle_timeout: Duration,
    /// Longest run of one request in a worker; `None` = unlimited.
    pub request_terminate_timeout: Option<Duration>,
    /// A complete request runs even if its client hangs up while it waits for a worker.
    pub run_abandoned: bool,
    /// Where large request bodies are spooled.
    pub tmp_dir: PathBuf,
}

/// How responses are shaped and who is believed: the reloadable options beside the site,
/// the pool and the limits.
#[derive(Clone, Default)]
pub struct Options {
    /// On-the-fly compression; off when `None`.
    pub compression: Option<Policy>,
    /// Peers whose Forwarded / X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Version in the `Server` header.
    pub server_tokens: bool,
    /// Where access log lines go; none when `None`.
    pub access_log: Option<AccessLog>,
}

/// Everything a configuration reload replaces.
pub struct Settings {
    /// The sites, chosen by Host.
    pub sites: Vec<Site>,
    /// What other hosts get.
    pub unknown_host: UnknownHost,
    /// Response options.
    pub options: Options,
}

/// Host name → site index: the one rule for requests, queues and schedules. An exact name
/// wins (the first site naming it), then the longest matching `*.suffix`.
#[derive(Debug, Clone, Default)]
pub struct HostMap {
    /// Exact names → site.
    by_name: std::collections::HashMap<String, usize>,
    /// `*.example.com` as (`.example.com`, site), longest suffix first.
    wildcards: Vec<(String, usize)>,
}

impl HostMap {
    /// The names of each site, in site order (lowercase, `*.suffix` for wildcards).
    pub fn new<'a>(sites: impl IntoIterator<Item = &'a [String]>) -> HostMap {
        let mut map = HostMap::default();
        for (i, names) in sites.into_iter().enumerate() {
            for n in names {
                match n.strip_prefix('*') {
                    Some(suffix) => map.wildcards.push((suffix.to_owned(), i)),
                    None => {
                        map.by_name.entry(n.clone()).or_insert(i);
                    }
                }
            }
        }
        // Stable: among equal suffixes the first site keeps precedence.
        map.wildcards
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        map
    }

    /// The site named `host` (lowercase, without port or trailing dot), if any.
    pub fn find(&self, host: &str) -> Option<usize> {
        self.by_name.get(host).copied().or_else(|| {
            self.wildcards
                .iter()
                .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
                .map(|(_, i)| *i)
        })
    }
}

/// Everything a request needs, shared by all connections.
pub(crate) struct App {
    pub sites: Vec<Site>,
    hosts: HostMap,
    unknown_host: UnknownHost,
    pub options: Options,
    pub server_software: String,
    server_header: HeaderValue,
}

impl App {
    pub fn new(s: Settings) -> Self {
        let server_software = format!("isola/{}", env!("CARGO_PKG_VERSION"));
        let server_header = if s.options.server_tokens {
            HeaderValue::from_str(&server_software).unwrap_or(HeaderValue::from_static("isola"))
        } else {
            HeaderValue::from_static("isola")
        };
        let hosts = HostMap::new(s.sites.iter().map(|site| site.names.as_slice()));
        App {
            sites: s.sites,
            hosts,
            unknown_host: s.unknown_host,
            options: s.options,
            server_software,
            server_header,
        }
    }

    /// The site for a request's Host header value (port and a trailing dot ignored, any
    /// case), or the status that answers it.
    pub fn pick(&self, host: Option<&HeaderValue>) -> Result<&Site, StatusCode> {
        let name = host
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .map(|a| a.host().trim_end_matches('.').to_ascii_lowercase());
        let found = name.as_deref().and_then(|n| self.hosts.find(n));
        let index = match (found, self.unknown_host) {
            (Some(i), _) | (None, UnknownHost::Site(i)) => i,
            (None, UnknownHost::Status(s)) => return Err(s),
        };
        self.sites.get(index).ok_or(StatusCode::MISDIRECTED_REQUEST)
    }
}

/// The configuration in force; replaced whole on reload.
pub(crate) struct Shared {
    pub current: std::sync::RwLock<Arc<App>>,
    /// Client request outcomes; here rather than in `App` so a reload keeps the counts.
    pub stats: crate::stats::Stats,
}

impl Shared {
    pub fn app(&self) -> Arc<App> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Connection facts the request cannot tell.
#[derive(Clone, Copy)]
pub(crate) struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
}

/// What the worker side of a request took, for the access log.
#[derive(Default)]
pub(crate) struct Upstream {
    pub pid: Option<u32>,
    pub wait: Option<Duration>,
    pub head: Option<Duration>,
    /// Answered 503 because no worker could take the request (queue full, wait timed
    /// out): counted apart from other 5xx.
    pub shed: bool,
    /// The body is a file the script named (X-Sendfile, X-Accel-Redirect).
    pub sendfile: bool,
}

/// Request facts the access log needs after the request itself is consumed.
struct LogFields {
    time: SystemTime,
    method: http::Method,
    uri: http::Uri,
    protocol: &'static str,
    host: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: Peer,
    guard: RequestGuard,
) -> Response<ResponseBody> {
    // A script's headers_send(103) reaches this client through its connection.
    let hints = crate::early_hints::Hints::new(guard.conn(), req.version());
    crate::early_hints::scope(hints, handle_request(shared, req, peer, guard)).await
}

async fn handle_request(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    peer: Peer,
    guard: RequestGuard,
) -> Response<ResponseBody> {
    // Only Isola's own internal requests carry this: a script may trust it.
    req.headers_mut().remove("x-isola-internal");
    // Frameworks believe these to decide how to send a file; Isola sets them itself.
    for h in crate::sendfile::REQUEST_HEADERS {
        req.headers_mut().remove(*h);
    }
    let started = Instant::now();
    let app = shared.app();
    let rid: Arc<str> = req
        .headers()
        .get("x-request-id")
        .and_then(|v| request_id::accept(v.as_bytes()))
        .unwrap_or_else(request_id::generate)
        .into();
    // PHP always sees one (HTTP_TRACEPARENT): the client's when valid, else a new trace.
    let traceparent: Arc<str> = crate::trace::accept(req.headers())
        .unwrap_or_else(crate::trace::generate)
        .into();
    if let Ok(v) = HeaderValue::from_str(&traceparent) {
        req.headers_mut()
            .insert(HeaderName::from_static(crate::trace::HEADER), v);
    }
    let client = proxy::client(
        peer.remote,
        peer.https,
        req.headers(),
        &app.options.trusted_proxies,
    );
    let peer = Peer {
        remote: client.addr,
        https: client.https,
        ..peer
    };
    let method = req.method().clone();
    let fields = app.options.access_log.as_ref().map(|_| LogFields {
        time: SystemTime::now(),
        method: method.clone(),
        uri: req.uri().clone(),
        protocol: version_str(req.version()),
        host: req.headers().get(header::HOST).cloned(),
        referer: req.headers().get(header::REFERER).cloned(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
    });
    let mut accept_encoding = HeaderMap::new();
    if app.options.compression.is_some() {
        for v in req.headers().get_all(header::ACCEPT_ENCODING) {
            accept_encoding.append(header::ACCEPT_ENCODING, v.clone());
        }
    }
    let host = req.headers().get(header::HOST).cloned();
    let mut up = Upstream::default();
    let mut resp = match respond(&shared, &app, req, peer, &rid, &mut up).await {
        Ok(r) => r,
        Err(status) => error_page::page(status),
    };
    if let Some(policy) = &app.options.compression {
        resp = compress::compress(policy, &accept_encoding, &method, resp);
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&rid) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    h.insert(header::SERVER, app.server_header.clone());
    let status = resp.status().as_u16();
    let log = app.options.access_log.clone();
    let client = peer.remote.ip();
    let defer = resp.extensions_mut().remove::<Defer>();
    resp.map(|body| {
        body.tracked(Box::new(move |bytes, complete| {
            drop(guard);
            if let Some(Defer(target)) = defer {
                // The script asked for this to run once its response is out, whether or
                // not the client stayed to read it all.
                let shared = shared.clone();
                tokio::spawn(async move {
                    let host = host.as_ref().and_then(|h| h.to_str().ok());
                    let req = crate::internal::Internal {
                        kind: crate::internal::Kind::Defer,
                        target: &target,
                        host,
                        script: None,
                        body: None,
                        env: &[],
                        timeout: None,
                        queue: None,
                    };
                    crate::internal::run(&shared, req).await;
                });
            }
            let duration = started.elapsed();
            shared.stats.record(status, up.shed, duration, up.wait);
            if let (Some(log), Some(f)) = (log, fields) {
                log.write(&Entry {
                    time: f.time,
                    client,
                    method: f.method,
                    uri: f.uri,
                    protocol: f.protocol,
                    status,
                    bytes,
                    complete,
                    duration,
                    upstream: up.head,
                    wait: up.wait,
                    worker: up.pid,
                    sendfile: up.sendfile,
                    request_id: rid,
                    traceparent: Some(traceparent),
                    host: f.host,
                    referer: f.referer,
                    user_agent: f.user_agent,
                });
            }
        }))
    })
}

async fn respond(
    shared: &Arc<Shared>,
    app: &App,
    req: Request<Incoming>,
    peer: Peer,
    rid: &Arc<str>,
    up: &mut Upstream,
) -> Result<Response<ResponseBody>, StatusCode> {
    let routed = check_request(&req).and_then(|()| {
        let site = app.pick(req.headers().get(header::HOST))?;
        let (path, query) = match req.uri().path_and_query() {
            Some(pq) => (pq.path(), pq.query()),
            None => return Err(StatusCode::BAD_REQUEST),
        };
        if site.sendfile.is_internal(path) {
            // Reached only through X-Accel-Redirect (nginx's `internal`).
            return Err(StatusCode::NOT_FOUND);
        }
        Ok((site, site.router.resolve(path, query)))
    });
    let (site, route) = match routed {
        Ok(r) => r,
        Err(status) => {
            spool::discard(req);
            return Err(status);
        }
    };
    let answer = match route {
        Route::Script {
            script_filename,
            script_name,
            path_info,
        } => {
            return run_script(
                shared,
                app,
                site,
                req,
                peer,
                rid,
                up,
                script_filename,
                &script_name,
                &path_info,
            )
            .await
        }
        Route::Deny(d) => Err(match d {
            Deny::BadRequest => StatusCode::BAD_REQUEST,
            Deny::Forbidden => StatusCode::FORBIDDEN,
            Deny::NotFound => StatusCode::NOT_FOUND,
        }),
        Route::Redirect { location } => {
            let mut resp = error_page::page(StatusCode::MOVED_PERMANENTLY);
            match HeaderValue::from_str(&location) {
                Ok(loc) => {
                    resp.headers_mut().insert(header::LOCATION, loc);
                    Ok(resp)
                }
                Err(_) => Err(StatusCode::BAD_REQUEST),
            }
        }
        Route::Static { path, file } => serve_static(site, &req, &path, file, rid).await,
    };
    // No PHP read the body: it is thrown away so the client gets this answer.
    spool::discard(req);
    answer
}

async fn serve_static(
    site: &Site,
    req: &Request<Incoming>,
    path: &std::path::Path,
    file: isola_router::OpenFile,
    rid: &str,
) -> Result<Response<ResponseBody>, StatusCode> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = error_page::page(StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(resp);
    }
    let mut resp = static_file::serve(path, file.take(), req.method(), req.headers())
        .await
        .map_err(|e| {
            tracing::warn!(request_id = rid, path = %path.display(), "static file: {e}");
            static_file::error_status(&e)
        })?;
    if let Some(url) = site.router.url_of(path) {
        site.cache_control.apply(&url, &mut resp);
    }
    Ok(resp)
}

/// What hyper accepts but HTTP forbids (RFC 9112 3.2, 9110 7.2): a missing Host on
/// HTTP/1.1, several Host headers, a Host that is not a host, a target that is not a path.
fn check_request(req: &Request<Incoming>) -> Result<(), StatusCode> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(StatusCode::BAD_REQUEST);
    }
    match host {
        None if req.version() == Version::HTTP_11 => return Err(StatusCode::BAD_REQUEST),
        Some(h) if !valid_host(h.as_bytes()) => return Err(StatusCode::BAD_REQUEST),
        _ => {}
    }
    if !req.uri().path().starts_with('/') {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(())
}

fn valid_host(h: &[u8]) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.iter().all(|&c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
}

#[allow(clippy::too_many_arguments)]
async fn run_script(
    shared: &Arc<Shared>,
    app: &App,
    site: &Site,
    req: Request<Incoming>,
    peer: Peer,
    rid: &Arc<str>,
    up: &mut Upstream,
    script_filename: PathBuf,
    script_name: &str,
    path_info: &str,
) -> Result<Response<ResponseBody>, StatusCode> {
    let (parts, incoming) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > site.limits.max_body_size) {
        spool::discard(Request::from_parts(parts, incoming));
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let has_body =
        declared.is_some_and(|n| n > 0) || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let body = if has_body {
        let limits = SpoolLimits {
            max_size: site.limits.max_body_size,
            memory_threshold: site.limits.body_memory_threshold,
            idle_timeout: site.limits.body_idle_timeout,
            tmp_dir: &site.limits.tmp_dir,
        };
        match spool::spool(incoming, &limits).await {
            Ok(b) => Some(b),
            Err(SpoolError::TooLarge(_)) => return Err(StatusCode::PAYLOAD_TOO_LARGE),
            Err(SpoolError::Stalled(_)) => return Err(StatusCode::REQUEST_TIMEOUT),
            Err(SpoolError::Client(e)) => {
                tracing::info!(request_id = &**rid, "request body: {e}");
                return Err(StatusCode::BAD_REQUEST);
            }
            Err(e @ SpoolError::Io(_)) => {
                tracing::error!(request_id = &**rid, "{e}");
                return Err(StatusCode::INTERNAL_SERVER_ERROR);
            }
        }
    } else {
        drop(incoming);
        None
    };
    let content_length = match (&body, declared) {
        (Some(b), _) => Some(b.len()),
        (None, Some(0)) => Some(0),
        (None, _) => None,
    };
    let script = ScriptTarget {
        filename: script_filename,
        name: script_name,
        path_info,
        env: site.sendfile.env(),
        timeout: None,
        background: false,
        queue: None,
    };
    exec_script(
        shared,
        app,
        site,
        &parts,
        body,
        content_length,
        peer,
        rid,
        up,
        script,
    )
    .await
}

/// The script a request runs, as the router chose it.
pub(crate) struct ScriptTarget<'a> {
    pub filename: PathBuf,
    pub name: &'a str,
    pub path_info: &'a str,
    /// CGI parameters Isola adds (jobs: `ISOLA_JOB_ID`...).
    pub env: &'a [(&'static str, String)],
    /// Replaces the site's `request_terminate_timeout` (a queue's `timeout`).
    pub timeout: Option<std::time::Duration>,
    /// A queued job: shown as background work to whoever weighs the pool's load.
    pub background: bool,
    /// The queue whose own pool runs it, if it has one.
    pub queue: Option<&'a str>,
}

/// Runs `script` in a worker for a request whose head is `parts` and whose body, if any, is
/// spooled: the FastCGI request, a lease from the site's pool, the exchange. Client requests
/// and internal ones (deferred, scheduled) both end here.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn exec_script(
    shared: &Arc<Shared>,
    app: &App,
    site: &Site,
    parts: &http::request::Parts,
    body: Option<crate::spool::Spooled>,
    content_length: Option<u64>,
    peer: Peer,
    rid: &Arc<str>,
    up: &mut Upstream,
    script: ScriptTarget<'_>,
) -> Result<Response<ResponseBody>, StatusCode> {
    let ScriptTarget {
        filename: script_filename,
        name: script_name,
        path_info,
        env: extra,
        timeout,
        background,
        queue,
    } = script;
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
        remote: peer.remote,
        local: peer.local,
        https: peer.https,
        request_id: rid,
        server_software: &app.server_software,
        extra,
    };
    let mut out = BytesMut::with_capacity(4096);
    encode_begin_request(&mut out, REQUEST_ID, Role::Responder, true);
    let env = cgi_env::build(&env_req);
    encode_params(&mut out, REQUEST_ID, env.iter().map(|(k, v)| (&**k, &**v)));
    drop(env);

    let job = JobInfo {
        request_id: rid.to_string(),
        method: parts.method.to_string(),
        uri: raw_target.to_string(),
        script: script_filename.clone(),
        background,
        client: peer.remote.ip().to_string(),
    };
    let pool = site.pool_for_script(queue, &script_filename).clone();
    let queue = queue.map(str::to_string);
    let shared_now = shared.clone();
    let app_addr = app as *const App as usize;
    let host = parts.headers.get(header::HOST).cloned();
    let limit = timeout.or(site.limits.request_terminate_timeout);
    let task_rid = rid.clone();
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
            tracing::debug!(request_id = &**rid, "no worker: {e}");
            up.shed = matches!(e, AcquireError::QueueFull | AcquireError::Timeout);
            return Ok(error_page::unavailable(5));
        }
    };
    up.wait = Some(wait);
    up.pid = Some(pid);
    up.head = Some(running.elapsed());
    match exchanged {
        Ok((head, body)) => {
            let resp = translate(head, body, parts.method == Method::HEAD);
            let (resp, sent_file) =
                crate::sendfile::answer(site, &parts.method, &parts.headers, resp, rid).await;
            up.sendfile = sent_file;
            Ok(resp)
        }
        Err(e) => {
            let status = match e {
                UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            tracing::warn!(request_id = &**rid, worker = up.pid, script = %script_filename.display(), "{e}");
            Err(status)
        }
    }
}

fn version_str(v: Version) -> &'static str {
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

#[cfg(test)]
mod host_map_tests {
    use super::HostMap;

    #[test]
    fn exact_names_win_then_the_longest_wildcard_whatever_the_order() {
        let sites: Vec<Vec<String>> = vec![
            vec!["*.example.com".into()],
            vec!["*.shop.example.com".into()],
            vec!["www.shop.example.com".into(), "a.test".into()],
            vec!["a.test".into()],
        ];
        let m = HostMap::new(sites.iter().map(Vec::as_slice));
        assert_eq!(m.find("www.shop.example.com"), Some(2));
        assert_eq!(
            m.find("cart.shop.example.com"),
            Some(1),
            "longest suffix, not file order"
        );
        assert_eq!(m.find("blog.example.com"), Some(0));
        assert_eq!(m.find("example.com"), None);
        assert_eq!(m.find("a.test"), Some(2), "the first site naming it");
        assert_eq!(m.find("other.test"), None);
    }
}
