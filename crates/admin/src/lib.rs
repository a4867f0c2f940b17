//! The admin listener: what operators and monitoring read, on an address separate from the
//! public one (loopback by default).
//!
//! Owns: `/status` (JSON, or HTML for browsers and `?html`; the page updates itself with
//! `/status.js`, served same-origin so a strict Content-Security-Policy holds),
//! `/status/history` (the last 15 minutes, one sample a second, from one sampler task:
//! [`history`]), `/metrics` (Prometheus text format), `/health`, and `/queues` (figures, and the actions operators take on job
//! queues: enqueue, list, retry the dead, drop).
//!
//! The figures come from sources the binary hands in: pool snapshots, the front's request
//! counters (outcomes, latency histogram, waits), the store's and the queues' figures; the
//! history's sampler and `/metrics` read the same ones.
//!
//! Never: serves the application, changes the pool, or exposes request contents beyond
//! method, URI, script and client address of the requests running now (job payloads are
//! shown on `/queues/NAME` only, which operators ask for by name).

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use isola_pool::{PoolStatus, WorkerState};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

pub mod history;
use history::{History, Sample};

/// The live status page's script: polls `/status` and `/status/history` and draws.
const STATUS_JS: &str = include_str!("status.js");

/// The HTML page's policy: nothing but same-origin script and fetches, inline styles.
const STATUS_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Facts about the server shown next to the pool's.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// Isola's version.
    pub version: String,
    /// When the server started.
    pub started: SystemTime,
    /// The public address.
    pub listen: String,
    /// Where workers reach the store (as `ISOLA_STORE`, any password hidden); `None` when
    /// off.
    pub store_url: Option<String>,
    /// The secret every admin request must carry (`[admin] token`); `None`: no check.
    pub token: Option<String>,
    /// The certificates obtained by ACME, when `[tls.acme]` is on.
    pub certificates: Option<CertSource>,
}

/// One certificate obtained by ACME, as the admin shows it.
#[derive(Debug, Clone, Default)]
pub struct CertFigures {
    /// The names it is for.
    pub names: Vec<String>,
    /// The issuer of the certificate served, if there is one yet.
    pub issuer: Option<String>,
    /// Its notAfter, seconds since the epoch.
    pub not_after: Option<i64>,
    /// When it was last obtained by this process, seconds since the epoch.
    pub last_renewal: Option<u64>,
    /// The last order's error, if it failed.
    pub last_error: Option<String>,
}

/// Where the certificate figures come from (read at each request).
#[derive(Clone)]
pub struct CertSource(pub Arc<dyn Fn() -> Vec<CertFigures> + Send + Sync>);

impl std::fmt::Debug for CertSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertSource")
    }
}

/// One site's pool, as the admin shows it.
#[derive(Debug, Clone)]
pub struct SiteStatus {
    /// The site's label: its first host name, else its document root.
    pub name: String,
    /// Its pool.
    pub pool: PoolStatus,
}

/// Where the figures come from: the pools in force now, one per site (they change on
/// reload).
pub type StatusSource = Box<dyn Fn() -> Vec<SiteStatus> + Send + Sync>;

/// The embedded store's figures, as last sampled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// Keys in all databases.
    pub keys: u64,
    /// Keys with a time to live.
    pub expires: u64,
    /// Rough bytes held by keys and values.
    pub used_memory: u64,
    /// Commands run since start.
    pub commands_processed: u64,
    /// Keys removed by expiry since start.
    pub expired_keys: u64,
    /// Open connections.
    pub connected_clients: u64,
    /// Keys removed by eviction since start.
    pub evicted_keys: u64,
    /// The memory limit in bytes (0: none).
    pub maxmemory: u64,
    /// The append-only log is on.
    pub aof_enabled: bool,
    /// The last write or fsync of the log worked (true when the log is off).
    pub aof_last_write_ok: bool,
    /// A log compaction is running.
    pub aof_rewrite_in_progress: bool,
    /// Log compactions completed since start.
    pub aof_rewrites: u64,
    /// Bytes of the log files: the base file plus what was appended after it.
    pub aof_size: u64,
}

/// Client request outcomes and latencies since start, as the front counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFigures {
    /// Responses by status class: index 0 is 1xx, 4 is 5xx (sheds not included).
    pub by_class: [u64; 5],
    /// Requests answered 503 because no worker could take them.
    pub shed: u64,
    /// Upper bounds of the latency buckets, milliseconds.
    pub latency_bounds_ms: &'static [u64],
    /// Requests per bucket (not cumulative); one more than the bounds, the last unbounded.
    pub latency: Vec<u64>,
    /// Sum of the latencies, microseconds.
    pub latency_us: u64,
    /// Requests that reached a worker.
    pub waited: u64,
    /// Sum of their waits for a worker, microseconds.
    pub wait_us: u64,
}

/// Where the request figures come from.
pub type RequestSource = Box<dyn Fn() -> RequestFigures + Send + Sync>;

/// Where the store's figures come from (`None` inside: not sampled yet).
pub type StoreSource = Box<dyn Fn() -> Option<StoreFigures> + Send + Sync>;

/// One job queue's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFigures {
    /// The queue's name.
    pub name: String,
    /// Jobs waiting.
    pub pending: u64,
    /// Failed jobs waiting for their retry time.
    pub delayed: u64,
    /// Jobs taken by any node and not yet acknowledged.
    pub processing: u64,
    /// Jobs in the dead list.
    pub dead: u64,
    /// Age of the job at the head of the queue.
    pub oldest_age: Option<Duration>,
    /// Jobs running on this node now.
    pub running: u64,
    /// Jobs this node ran successfully since start.
    pub done: u64,
    /// Failed runs on this node since start (retried or not).
    pub failed: u64,
    /// Jobs this node moved to the dead list since start.
    pub dead_lettered: u64,
}

/// What an operator asks of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueAction {
    /// Add a job with this payload.
    Enqueue(Bytes),
    /// Show the first `limit` jobs, of the dead list or of the pending ones.
    List {
        /// The dead list rather than the pending jobs.
        dead: bool,
        /// How many.
        limit: usize,
    },
    /// Move every dead job back to the queue with fresh attempts.
    Retry,
    /// Delete the dead list, or the pending jobs.
    Drop {
        /// The pending jobs rather than the dead list.
        pending: bool,
    },
}

/// Why a queue action failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueActionError {
    /// No such queue is configured.
    #[error("no such queue")]
    NoSuchQueue,
    /// The store could not be reached or refused.
    #[error("store: {0}")]
    Store(String),
}

/// The job queues, as the admin listener reads and acts on them.
pub trait QueueControl: Send + Sync {
    /// Figures of every queue in force.
    fn figures(&self) -> Vec<QueueFigures>;
    /// Runs `action` on the queue `name`; the answer is shown as JSON.
    fn act<'a>(
        &'a self,
        name: &'a str,
        action: QueueAction,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<serde_json::Value, QueueActionError>> + Send + 'a>,
    >;
}

/// Largest payload accepted by `POST /queues/NAME`.
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

struct Admin {
    status: StatusSource,
    requests: Option<RequestSource>,
    store: Option<StoreSource>,
    queues: Option<Arc<dyn QueueControl>>,
    info: ServerInfo,
    history: History,
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    status: StatusSource,
    requests: Option<RequestSource>,
    store: Option<StoreSource>,
    queues: Option<Arc<dyn QueueControl>>,
    info: ServerInfo,
    shutdown: impl Future<Output = ()>,
) {
    let admin = Arc::new(Admin {
        status,
        requests,
        store,
        queues,
        info,
        history: History::default(),
    });
    // One sampler for the history, whatever the number of readers; it ends with `serve`.
    let sampler = {
        let admin = admin.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            // The latency buckets at the previous sample: each sample's quantiles are of
            // the requests finished since.
            let mut prev_latency = Vec::new();
            loop {
                tick.tick().await;
                admin.history.push(admin.sample(&mut prev_latency));
            }
        })
    };
    let _sampler = AbortOnDrop(sampler);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("admin accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admin = admin.clone();
        let svc = service_fn(move |req| {
            let admin = admin.clone();
            async move {
                if !admin.authorized(&req) {
                    let mut r = reply(
                        StatusCode::UNAUTHORIZED,
                        "text/plain; charset=utf-8",
                        "unauthorized: send Authorization: Bearer TOKEN or ?token=TOKEN\n".into(),
                    );
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"isola admin\""),
                    );
                    return Ok::<_, std::convert::Infallible>(r);
                }
                let resp = if req.uri().path().starts_with("/queues") {
                    admin.queues_route(req).await
                } else {
                    admin.route(&req)
                };
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

/// Aborts the task when dropped (when `serve` returns).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Admin {
    /// Whether `req` carries the token (always, without one configured). Compared in time
    /// independent of where the first difference is.
    fn authorized<B>(&self, req: &Request<B>) -> bool {
        // The page's script and the (empty) icon hold no figures, so a page opened with
        // `?token` can load them: the browser asks for them without the token.
        let Some(want) = self
            .info
            .token
            .as_ref()
            .filter(|_| !matches!(req.uri().path(), "/status.js" | "/favicon.ico"))
        else {
            return true;
        };
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = req
            .uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|p| p.strip_prefix("token="));
        [bearer, query].into_iter().flatten().any(|got| {
            got.len() == want.len()
                && got
                    .bytes()
                    .zip(want.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }

    /// The figures now, summed over the sites, as one history sample. `prev_latency` holds
    /// the latency buckets of the previous sample and is updated to this one's.
    fn sample(&self, prev_latency: &mut Vec<u64>) -> Sample {
        let t_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut s = Sample {
            t_ms,
            ..Sample::default()
        };
        for site in (self.status)() {
            let p = &site.pool;
            s.accepted += p.accepted;
            s.queue_full += p.queue_full;
            s.queue_timeouts += p.queue_timeouts;
            s.queue_len += p.queue_len as u64;
            s.spawned += p.spawned;
            s.crashed += p.crashed;
            s.retired += p.retired;
            for (reason, n) in &p.retired_by {
                match *reason {
                    "requests" => s.retired_requests += n,
                    "lifetime" => s.retired_lifetime += n,
                    "memory" => s.retired_memory += n,
                    _ => s.retired_other += n,
                }
            }
            for (how, n) in &p.crashes_by_signal {
                if how == "exit" {
                    s.crashed_exit += n;
                } else {
                    s.crashed_signal += n;
                }
            }
            for w in &p.workers {
                match w.state {
                    WorkerState::Busy => s.busy += 1,
                    WorkerState::Idle => s.idle += 1,
                    WorkerState::Starting | WorkerState::Retiring => {}
                }
                let rss = w.rss.unwrap_or(0);
                s.worker_pss += w.pss.unwrap_or(0);
                s.worker_rss += rss;
                s.worker_rss_max = s.worker_rss_max.max(rss);
            }
        }
        if let Some(f) = self.store_figures() {
            s.store_commands = f.commands_processed;
            s.store_memory = f.used_memory;
        }
        for q in self.queue_figures() {
            s.jobs_done += q.done;
            s.jobs_failed += q.failed;
        }
        if let Some(r) = self.requests.as_ref().map(|f| f()) {
            s.responses_2xx = r.by_class[1];
            s.responses_3xx = r.by_class[2];
            s.responses_4xx = r.by_class[3];
            s.responses_5xx = r.by_class[4];
            s.shed = r.shed;
            s.waited = r.waited;
            s.wait_us = r.wait_us;
            // Counters only grow; a shape change (none is expected) restarts from zero.
            let delta: Vec<u64> = if prev_latency.len() == r.latency.len() {
                r.latency
                    .iter()
                    .zip(prev_latency.iter())
                    .map(|(now, before)| now.saturating_sub(*before))
                    .collect()
            } else {
                r.latency.clone()
            };
            s.latency_p50_us = history::quantile_us(r.latency_bounds_ms, &delta, 0.5);
            s.latency_p99_us = history::quantile_us(r.latency_bounds_ms, &delta, 0.99);
            *prev_latency = r.latency;
        }
        s
    }

    fn route(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let wants_html = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "html"))
            || req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
        match req.uri().path() {
            "/health" => {
                let sites = (self.status)();
                let live = !sites.is_empty()
                    && sites.iter().all(|s| {
                        s.pool
                            .workers
                            .iter()
                            .any(|w| matches!(w.state, WorkerState::Idle | WorkerState::Busy))
                    });
                if live {
                    reply(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
                } else {
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain; charset=utf-8",
                        "no live worker\n".into(),
                    )
                }
            }
            "/status" if wants_html => {
                let mut r = reply(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    self.html(&(self.status)()),
                );
                r.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(STATUS_CSP),
                );
                r
            }
            "/status/history" => reply(
                StatusCode::OK,
                "application/json",
                self.history.json().to_string(),
            ),
            "/status.js" => reply(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                STATUS_JS.to_string(),
            ),
            // Browsers ask for it with every page; a 404 would show as a console error.
            "/favicon.ico" => reply(StatusCode::NO_CONTENT, "image/x-icon", String::new()),
            "/status" => reply(
                StatusCode::OK,
                "application/json",
                self.json(&(self.status)()).to_string(),
            ),
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics(&(self.status)()),
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found: try /status, /status/history, /metrics, /health\n".into(),
            ),
        }
    }

    fn json(&self, sites: &[SiteStatus]) -> serde_json::Value {
        let started = self
            .info
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let uptime = self.info.started.elapsed().map_or(0, |d| d.as_secs());
        let all: Vec<serde_json::Value> = sites.iter().map(site_json).collect();
        // The first site's figures also sit at the top level, where single-site tools read
        // them.
        let first = all.first().cloned().unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "version": self.info.version,
            "start_time": started,
            "uptime_seconds": uptime,
            "listen": self.info.listen,
            // The front's runtime threads (`server.threads`); the admin runs on it.
            "threads": tokio::runtime::Handle::try_current()
                .ok()
                .map(|h| h.metrics().num_workers()),
            "docroot": first["docroot"],
            "pool": first["pool"],
            "workers": first["workers"],
            "sites": all,
            "store": self.store_json(),
            "certificates": self.certificates().iter().map(|c| serde_json::json!({
                "names": c.names,
                "issuer": c.issuer,
                "not_after": c.not_after,
                "last_renewal": c.last_renewal,
                "last_error": c.last_error,
            })).collect::<Vec<_>>(),
            "queues": self.queue_figures().iter().map(queue_json).collect::<Vec<_>>(),
        })
    }

    fn html(&self, sites: &[SiteStatus]) -> String {
        let top = self.json(sites);
        let mut h = String::from("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Isola status</title><style>body{font:14px system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .6rem;text-align:left}#plots{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}figcaption{font-weight:600}svg{background:#fafafa;border:1px solid #ddd}.stale{color:#b00}</style></head><body>");
        let _ = write!(
            h,
            "<h1>Isola {}</h1><p>listen {} · uptime <span id=\"uptime\">{}</span> · <span id=\"fresh\">static page: live figures need JavaScript</span></p><div id=\"plots\"></div><div id=\"sites\">",
            esc(&self.info.version),
            esc(top["listen"].as_str().unwrap_or("")),
            duration_ms(u128::from(top["uptime_seconds"].as_u64().unwrap_or(0)) * 1000)
        );
        for (site, j) in sites
            .iter()
            .zip(top["sites"].as_array().into_iter().flatten())
        {
            self.html_site(&mut h, site, j);
        }
        h.push_str("</div><div id=\"queues\">");
        html_queues(&mut h, &top["queues"]);
        h.push_str("</div><div id=\"store\">");
        html_store(&mut h, &top["store"]);
        h.push_str("</div><script src=\"/status.js\"></script></body></html>\n");
        h
    }

    fn html_site(&self, h: &mut String, site: &SiteStatus, j: &serde_json::Value) {
        let st = &site.pool;
        let p = &j["pool"];
        let _ = write!(h, "<h2>{}</h2><table>", esc(&site.name));
        for (k, v) in [
            ("docroot", j["docroot"].to_string()),
            (
                "PHP backend",
                match p["backend_note"].as_str() {
                    Some(note) => format!("{}: {note}", p["backend"].as_str().unwrap_or("")),
                    None => p["backend"].as_str().unwrap_or("").to_string(),
                },
            ),
            ("mode", p["mode"].as_str().unwrap_or("").to_string()),
            ("accepted requests", p["accepted"].to_string()),
            (
                "workers idle / busy / total",
                format!("{} / {} / {}", p["idle"], p["busy"], p["total"]),
            ),
            ("max children", p["max_children"].to_string()),
            (
                "queue now / max seen / size",
                format!(
                    "{} / {} / {}",
                    p["queue_len"], p["max_queue_len"], p["queue_size"]
                ),
            ),
            (
                "queue full / timeouts",
                format!("{} / {}", p["queue_full"], p["queue_timeouts"]),
            ),
            (
                "workers spawned / crashed",
                format!("{} / {}", p["spawned"], p["crashed"]),
            ),
        ] {
            let _ = write!(
                h,
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(k),
                esc(v.trim_matches('"'))
            );
        }
        h.push_str("</table><h3>Workers</h3><table><tr><th>pid</th><th>state</th><th>requests</th><th>RSS</th><th>PSS</th><th>elapsed</th><th>request</th><th>client</th><th>id</th></tr>");
        for w in st.workers.iter() {
            let (cur, client, id) = w.current.as_ref().map_or((String::new(), "", ""), |j| {
                (
                    format!("{} {} ({})", j.method, j.uri, j.script.display()),
                    j.client.as_str(),
                    j.request_id.as_str(),
                )
            });
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                w.pid,
                state_name(w.state),
                w.requests,
                w.rss.map_or("-".to_string(), size),
                w.pss.map_or("-".to_string(), size),
                duration_ms(w.elapsed.as_millis()),
                esc(&cur),
                esc(client),
                esc(id)
            );
        }
        h.push_str("</table>");
    }

    fn metrics(&self, sites: &[SiteStatus]) -> String {
        type Figure = fn(&PoolStatus) -> u64;
        let figures: &[(&str, &str, &str, Figure)] = &[
            (
                "isola_requests_accepted_total",
                "counter",
                "Requests handed to PHP workers.",
                |st| st.accepted,
            ),
            (
                "isola_queue_length",
                "gauge",
                "Requests waiting for a worker.",
                |st| st.queue_len as u64,
            ),
            (
                "isola_queue_length_max",
                "gauge",
                "Most requests ever waiting at once.",
                |st| st.max_queue_len as u64,
            ),
            (
                "isola_queue_full_total",
                "counter",
                "Requests refused with 503 because the queue was full.",
                |st| st.queue_full,
            ),
            (
                "isola_queue_timeouts_total",
                "counter",
                "Requests answered 503 after queue_timeout.",
                |st| st.queue_timeouts,
            ),
            (
                "isola_workers_max",
                "gauge",
                "Configured max_children.",
                |st| st.max_children as u64,
            ),
            (
                "isola_workers_spawned_total",
                "counter",
                "Worker processes started.",
                |st| st.spawned,
            ),
            (
                "isola_workers_crashed_total",
                "counter",
                "Workers that died without being asked to.",
                |st| st.crashed,
            ),
            (
                "isola_max_children_reached_total",
                "counter",
                "Times a request found every worker busy at max_children.",
                |st| st.max_children_reached,
            ),
            (
                "isola_slow_requests_total",
                "counter",
                "Requests that ran longer than slowlog_timeout.",
                |st| st.slow_requests,
            ),
        ];
        let mut m = String::new();
        for (name, kind, help, value) in figures {
            let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for s in sites {
                let _ = writeln!(
                    m,
                    "{name}{{site=\"{}\"}} {}",
                    label(&s.name),
                    value(&s.pool)
                );
            }
        }
        let _ = writeln!(
            m,
            "# HELP isola_pool_info A pool's PHP backend and mode (classic, or worker: a worker script's loop).\n# TYPE isola_pool_info gauge"
        );
        for site in sites {
            let _ = writeln!(
                m,
                "isola_pool_info{{site=\"{}\",backend=\"{}\",mode=\"{}\"}} 1",
                label(&site.name),
                site.pool.backend,
                site.pool.mode,
            );
        }
        let _ = writeln!(
            m,
            "# HELP isola_workers Worker processes by state.\n# TYPE isola_workers gauge"
        );
        for site in sites {
            for s in [
                WorkerState::Starting,
                WorkerState::Idle,
                WorkerState::Busy,
                WorkerState::Retiring,
            ] {
                let n = site.pool.workers.iter().filter(|w| w.state == s).count();
                let _ = writeln!(
                    m,
                    "isola_workers{{site=\"{}\",state=\"{}\"}} {n}",
                    label(&site.name),
                    state_name(s),
                );
            }
        }
        if let Some(f) = self.store_figures() {
            for (name, kind, help, v) in [
                (
                    "isola_store_keys",
                    "gauge",
                    "Keys in the embedded store.",
                    f.keys,
                ),
                (
                    "isola_store_keys_with_ttl",
                    "gauge",
                    "Keys with a time to live.",
                    f.expires,
                ),
                (
                    "isola_store_used_memory_bytes",
                    "gauge",
                    "Rough bytes held by keys and values.",
                    f.used_memory,
                ),
                (
                    "isola_store_commands_total",
                    "counter",
                    "Commands run by the embedded store.",
                    f.commands_processed,
                ),
                (
                    "isola_store_expired_keys_total",
                    "counter",
                    "Keys removed by expiry.",
                    f.expired_keys,
                ),
                (
                    "isola_store_connected_clients",
                    "gauge",
                    "Open store connections.",
                    f.connected_clients,
                ),
                (
                    "isola_store_evicted_keys_total",
                    "counter",
                    "Keys removed by eviction.",
                    f.evicted_keys,
                ),
                (
                    "isola_store_maxmemory_bytes",
                    "gauge",
                    "The store's memory limit (0: none).",
                    f.maxmemory,
                ),
                (
                    "isola_store_aof_enabled",
                    "gauge",
                    "1 when the append-only log is on.",
                    u64::from(f.aof_enabled),
                ),
                (
                    "isola_store_aof_last_write_ok",
                    "gauge",
                    "1 when the last write or fsync of the log worked.",
                    u64::from(f.aof_last_write_ok),
                ),
                (
                    "isola_store_aof_rewrite_in_progress",
                    "gauge",
                    "1 while the log is being compacted.",
                    u64::from(f.aof_rewrite_in_progress),
                ),
                (
                    "isola_store_aof_rewrites_total",
                    "counter",
                    "Log compactions completed.",
                    f.aof_rewrites,
                ),
                (
                    "isola_store_aof_size_bytes",
                    "gauge",
                    "Bytes of the append-only log files.",
                    f.aof_size,
                ),
            ] {
                let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
            }
        }
        let queues = self.queue_figures();
        if !queues.is_empty() {
            type QFigure = fn(&QueueFigures) -> u64;
            let qf: &[(&str, &str, &str, QFigure)] = &[
                (
                    "isola_queue_jobs_pending",
                    "gauge",
                    "Jobs waiting in the queue.",
                    |q| q.pending,
                ),
                (
                    "isola_queue_jobs_delayed",
                    "gauge",
                    "Failed jobs waiting for their retry.",
                    |q| q.delayed,
                ),
                (
                    "isola_queue_jobs_processing",
                    "gauge",
                    "Jobs taken by any node, not yet acknowledged.",
                    |q| q.processing,
                ),
                (
                    "isola_queue_jobs_dead",
                    "gauge",
                    "Jobs in the dead list.",
                    |q| q.dead,
                ),
                (
                    "isola_queue_jobs_running",
                    "gauge",
                    "Jobs running on this node.",
                    |q| q.running,
                ),
                (
                    "isola_queue_jobs_done_total",
                    "counter",
                    "Jobs this node ran successfully.",
                    |q| q.done,
                ),
                (
                    "isola_queue_jobs_failed_total",
                    "counter",
                    "Failed job runs on this node.",
                    |q| q.failed,
                ),
                (
                    "isola_queue_jobs_dead_lettered_total",
                    "counter",
                    "Jobs this node moved to the dead list.",
                    |q| q.dead_lettered,
                ),
            ];
            for (name, kind, help, f) in qf {
                let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for q in &queues {
                    let _ = writeln!(m, "{name}{{queue=\"{}\"}} {}", label(&q.name), f(q));
                }
            }
            let _ = writeln!(m, "# HELP isola_queue_oldest_job_age_seconds Age of the job at the head of the queue.\n# TYPE isola_queue_oldest_job_age_seconds gauge");
            for q in &queues {
                let age = q.oldest_age.map_or(0.0, |d| d.as_secs_f64());
                let _ = writeln!(
                    m,
                    "isola_queue_oldest_job_age_seconds{{queue=\"{}\"}} {age:.3}",
                    label(&q.name)
                );
            }
        }
        let _ = writeln!(m, "# HELP isola_workers_retired_total Workers retired, by reason (requests, lifetime, memory, code, spare, idle, script_ended, stopping).\n# TYPE isola_workers_retired_total counter");
        for site in sites {
            for (reason, n) in &site.pool.retired_by {
                let _ = writeln!(
                    m,
                    "isola_workers_retired_total{{site=\"{}\",reason=\"{reason}\"}} {n}",
                    label(&site.name)
                );
            }
        }
        let _ = writeln!(m, "# HELP isola_workers_pss_bytes Proportional set size of the site's workers together.\n# TYPE isola_workers_pss_bytes gauge");
        for site in sites {
            let pss: u64 = site.pool.workers.iter().filter_map(|w| w.pss).sum();
            let _ = writeln!(
                m,
                "isola_workers_pss_bytes{{site=\"{}\"}} {pss}",
                label(&site.name)
            );
        }
        if let Some(r) = self.requests.as_ref().map(|f| f()) {
            request_metrics(&mut m, &r);
        }
        let _ = writeln!(m, "# HELP isola_worker_crashes_total Worker deaths by signal.\n# TYPE isola_worker_crashes_total counter");
        for site in sites {
            for (sig, n) in &site.pool.crashes_by_signal {
                let _ = writeln!(
                    m,
                    "isola_worker_crashes_total{{site=\"{}\",signal=\"{sig}\"}} {n}",
                    label(&site.name)
                );
            }
        }
        let certs = self.certificates();
        if !certs.is_empty() {
            let _ = writeln!(m, "# HELP isola_tls_certificate_not_after_seconds When the ACME certificate expires (0: none yet).\n# TYPE isola_tls_certificate_not_after_seconds gauge\n# HELP isola_tls_certificate_renewal_failing 1 when the last order for the certificate failed.\n# TYPE isola_tls_certificate_renewal_failing gauge");
            for c in &certs {
                let names = label(&c.names.join(","));
                let _ = writeln!(
                    m,
                    "isola_tls_certificate_not_after_seconds{{names=\"{names}\"}} {}\nisola_tls_certificate_renewal_failing{{names=\"{names}\"}} {}",
                    c.not_after.unwrap_or(0),
                    u8::from(c.last_error.is_some())
                );
            }
        }
        m
    }

    fn certificates(&self) -> Vec<CertFigures> {
        self.info
            .certificates
            .as_ref()
            .map(|c| (c.0)())
            .unwrap_or_default()
    }
}

/// The client request figures: responses by class, sheds, the latency histogram (cumulative
/// buckets, as Prometheus wants them), the wait for a worker as a sum and a count.
fn request_metrics(m: &mut String, r: &RequestFigures) {
    let _ = writeln!(m, "# HELP isola_responses_total Client responses by status class (sheds not included).\n# TYPE isola_responses_total counter");
    for (i, n) in r.by_class.iter().enumerate() {
        let _ = writeln!(m, "isola_responses_total{{class=\"{}xx\"}} {n}", i + 1);
    }
    let _ = writeln!(m, "# HELP isola_requests_shed_total Client requests answered 503 because no worker could take them (queue full or queue_timeout).\n# TYPE isola_requests_shed_total counter\nisola_requests_shed_total {}", r.shed);
    let _ = writeln!(m, "# HELP isola_request_duration_seconds Client request latency, head received to body sent.\n# TYPE isola_request_duration_seconds histogram");
    let mut cumulative = 0u64;
    for (i, n) in r.latency.iter().enumerate() {
        cumulative += n;
        let le = r
            .latency_bounds_ms
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| format!("{}", *b as f64 / 1000.0));
        let _ = writeln!(
            m,
            "isola_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        m,
        "isola_request_duration_seconds_sum {:.6}\nisola_request_duration_seconds_count {cumulative}",
        r.latency_us as f64 / 1e6
    );
    let _ = writeln!(
        m,
        "# HELP isola_queue_wait_seconds Time client requests waited for a worker.\n# TYPE isola_queue_wait_seconds summary\nisola_queue_wait_seconds_sum {:.6}\nisola_queue_wait_seconds_count {}",
        r.wait_us as f64 / 1e6,
        r.waited
    );
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Admin {
    fn store_figures(&self) -> Option<StoreFigures> {
        self.store.as_ref().and_then(|f| f())
    }

    fn store_json(&self) -> serde_json::Value {
        let mut j = match self.store_figures() {
            Some(f) => serde_json::json!({
                "keys": f.keys,
                "expires": f.expires,
                "used_memory_bytes": f.used_memory,
                "commands_processed": f.commands_processed,
                "expired_keys": f.expired_keys,
                "connected_clients": f.connected_clients,
                "evicted_keys": f.evicted_keys,
                "maxmemory_bytes": f.maxmemory,
                "aof": {
                    "enabled": f.aof_enabled,
                    "last_write_ok": f.aof_last_write_ok,
                    "rewrite_in_progress": f.aof_rewrite_in_progress,
                    "rewrites": f.aof_rewrites,
                    "size_bytes": f.aof_size,
                },
            }),
            None if self.info.store_url.is_some() => serde_json::json!({}),
            None => return serde_json::Value::Null,
        };
        if let Some(u) = &self.info.store_url {
            j["url"] = serde_json::Value::String(u.clone());
        }
        j
    }

    fn queue_figures(&self) -> Vec<QueueFigures> {
        self.queues.as_ref().map_or_else(Vec::new, |q| q.figures())
    }

    /// `GET /queues`, `GET /queues/NAME[?dead][&limit=N]`, `POST /queues/NAME` (body =
    /// payload), `POST /queues/NAME/retry`, `POST /queues/NAME/drop[?pending]`.
    async fn queues_route(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let json =
            |status, v: serde_json::Value| reply(status, "application/json", format!("{v}\n"));
        let Some(control) = self.queues.clone() else {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "no queues: the store is off"}),
            );
        };
        let path = req.uri().path().to_string();
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        let has = |k: &str| query.iter().any(|(q, _)| q == k);
        let parts: Vec<&str> = path
            .trim_start_matches("/queues")
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let method = req.method().clone();
        let action = match (method.as_str(), parts.as_slice()) {
            ("GET", []) => {
                let all: Vec<serde_json::Value> =
                    control.figures().iter().map(queue_json).collect();
                return json(StatusCode::OK, serde_json::Value::Array(all));
            }
            ("GET", [_]) => QueueAction::List {
                dead: has("dead"),
                limit: query
                    .iter()
                    .find(|(k, _)| k == "limit")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(100usize)
                    .min(10_000),
            },
            ("POST", [_]) => {
                let body = http_body_util::Limited::new(req.into_body(), MAX_PAYLOAD);
                match http_body_util::BodyExt::collect(body).await {
                    Ok(b) => QueueAction::Enqueue(b.to_bytes()),
                    Err(e) => {
                        return json(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            serde_json::json!({"error": format!("payload: {e} (at most {MAX_PAYLOAD} bytes)")}),
                        )
                    }
                }
            }
            ("POST", [_, "retry"]) => QueueAction::Retry,
            ("POST", [_, "drop"]) => QueueAction::Drop {
                pending: has("pending"),
            },
            (_, [] | [_] | [_, "retry" | "drop"]) => {
                return json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    serde_json::json!({"error": "use GET to read, POST to act"}),
                )
            }
            _ => {
                return json(
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"error": "try /queues, /queues/NAME, /queues/NAME/retry, /queues/NAME/drop"}),
                )
            }
        };
        let name = parts.first().copied().unwrap_or_default();
        let enqueue = matches!(action, QueueAction::Enqueue(_));
        match control.act(name, action).await {
            Ok(v) if enqueue => json(StatusCode::ACCEPTED, v),
            Ok(v) => json(StatusCode::OK, v),
            Err(e @ QueueActionError::NoSuchQueue) => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": format!("{name:?}: {e}")}),
            ),
            Err(e) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": e.to_string()}),
            ),
        }
    }
}

/// The queues as a table, one row each.
fn html_queues(h: &mut String, queues: &serde_json::Value) {
    let Some(qs) = queues.as_array().filter(|q| !q.is_empty()) else {
        return;
    };
    let cols = [
        "pending",
        "delayed",
        "processing",
        "dead",
        "running",
        "done",
        "failed",
        "dead_lettered",
    ];
    h.push_str("<h2>Queues</h2><table><tr><th>queue</th>");
    for c in cols {
        let _ = write!(h, "<th>{}</th>", esc(&c.replace('_', " ")));
    }
    h.push_str("<th>oldest job</th></tr>");
    for q in qs {
        let _ = write!(h, "<tr><td>{}</td>", esc(q["name"].as_str().unwrap_or("")));
        for c in cols {
            let _ = write!(h, "<td>{}</td>", q[c]);
        }
        let age = q["oldest_age_seconds"]
            .as_f64()
            .map_or("–".to_string(), |a| format!("{a:.1} s"));
        let _ = write!(h, "<td>{}</td></tr>", esc(&age));
    }
    h.push_str("</table>");
}

/// The store's figures as a two-column table; the log's figures are rows of their own,
/// sizes in KiB/MiB.
fn html_store(h: &mut String, store: &serde_json::Value) {
    let Some(fields) = store.as_object() else {
        return;
    };
    h.push_str("<h2>Store</h2><table>");
    let mut row = |k: &str, v: &serde_json::Value| {
        let shown = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) if k.ends_with("_bytes") => {
                n.as_u64().map_or_else(|| n.to_string(), size)
            }
            other => other.to_string(),
        };
        let name = k.trim_end_matches("_bytes").replace('_', " ");
        let _ = write!(
            h,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(&name),
            esc(&shown)
        );
    };
    for (k, v) in fields {
        match v.as_object() {
            Some(inner) => {
                for (ik, iv) in inner {
                    row(&format!("{k} {ik}"), iv);
                }
            }
            None => row(k, v),
        }
    }
    h.push_str("</table>");
}

fn queue_json(q: &QueueFigures) -> serde_json::Value {
    serde_json::json!({
        "name": q.name,
        "pending": q.pending,
        "delayed": q.delayed,
        "processing": q.processing,
        "dead": q.dead,
        "oldest_age_seconds": q.oldest_age.map(|d| d.as_secs_f64()),
        "running": q.running,
        "done": q.done,
        "failed": q.failed,
        "dead_lettered": q.dead_lettered,
    })
}

fn site_json(site: &SiteStatus) -> serde_json::Value {
    let st = &site.pool;
    let count = |s: WorkerState| st.workers.iter().filter(|w| w.state == s).count();
    serde_json::json!({
        "name": site.name,
        "docroot": st.docroot.display().to_string(),
        "pool": {
            "backend": st.backend,
            "backend_note": st.backend_note,
            "mode": st.mode,
            "max_children": st.max_children,
            "accepted": st.accepted,
            "queue_len": st.queue_len,
            "max_queue_len": st.max_queue_len,
            "queue_size": st.queue_size,
            "queue_full": st.queue_full,
            "queue_timeouts": st.queue_timeouts,
            "idle": count(WorkerState::Idle),
            "busy": count(WorkerState::Busy),
            "starting": count(WorkerState::Starting),
            "retiring": count(WorkerState::Retiring),
            "total": st.workers.len(),
            "spawned": st.spawned,
            "crashed": st.crashed,
            "retired": st.retired,
            "retired_by": st.retired_by,
            "max_children_reached": st.max_children_reached,
            "slow_requests": st.slow_requests,
            "crash_loop_backoff": st.crash_loop_backoff,
            "crashes_by_signal": st.crashes_by_signal,
        },
        "workers": st.workers.iter().map(|w| serde_json::json!({
            "pid": w.pid,
            "state": state_name(w.state),
            "mode": st.mode,
            "requests": w.requests,
            "rss_bytes": w.rss,
            "pss_bytes": w.pss,
            "age_seconds": w.age.as_secs(),
            "elapsed_ms": w.elapsed.as_millis() as u64,
            "request": w.current.as_ref().map(|j| serde_json::json!({
                "id": j.request_id, "method": j.method, "uri": j.uri, "script": j.script.display().to_string(), "client": j.client,
            })),
        })).collect::<Vec<_>>(),
    })
}

fn state_name(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Starting => "starting",
        WorkerState::Idle => "idle",
        WorkerState::Busy => "busy",
        WorkerState::Retiring => "retiring",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn reply(status: StatusCode, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Bytes for people: `512 B`, `3.0 KiB`, `41.2 MiB`, `1.50 GiB`.
fn size(b: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = b as f64;
    if f < KIB {
        format!("{b} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else if f < KIB * KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else {
        format!("{:.2} GiB", f / (KIB * KIB * KIB))
    }
}

/// A duration for people: `830 ms`, `12.4 s`, `3 min 20 s`.
fn duration_ms(ms: u128) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isola_pool::{JobInfo, WorkerStatus};

    /// Server facts for an admin built in a test.
    fn test_info() -> ServerInfo {
        ServerInfo {
            version: "0".into(),
            started: SystemTime::now(),
            listen: "127.0.0.1:1".into(),
            store_url: None,
            token: None,
            certificates: None,
        }
    }

    #[test]
    fn hostile_request_and_site_names_are_escaped_in_the_page() {
        let hostile = "/</svg><script>alert(1)</script>\"'<img src=x onerror=alert(2)>";
        let pool = PoolStatus {
            workers: vec![WorkerStatus {
                pid: 7,
                state: WorkerState::Busy,
                requests: 1,
                current: Some(JobInfo {
                    request_id: "<b>id</b>".into(),
                    method: "GET".into(),
                    uri: hostile.into(),
                    script: "/srv/<i>.php".into(),
                    background: false,
                    client: "<u>203.0.113.9</u>".into(),
                }),
                elapsed: Duration::from_millis(1500),
                rss: Some(3 << 20),
                pss: Some(5 << 19),
                age: Duration::from_secs(2),
            }],
            ..PoolStatus::default()
        };
        let site = SiteStatus {
            name: "<h1>site</h1>".into(),
            pool,
        };
        let admin = Admin {
            status: Box::new(Vec::new),
            requests: None,
            store: None,
            queues: None,
            info: test_info(),
            history: History::default(),
        };
        let page = admin.html(&[site]);
        assert!(page.contains(
            "GET /&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&lt;img src=x onerror=alert(2)&gt;"
        ));
        for bad in [
            "<script>alert",
            "</svg>",
            "<img",
            "<h1>site",
            "<b>id",
            "<i>",
            "<u>",
        ] {
            assert!(!page.contains(bad), "{bad} in {page}");
        }
        assert!(
            page.contains("3.0 MiB") && page.contains("2.5 MiB") && page.contains("1.5 s"),
            "{page}"
        );
        assert!(
            page.contains("<td>&lt;u&gt;203.0.113.9&lt;/u&gt;</td>"),
            "{page}"
        );
    }

    #[test]
    fn each_sample_has_the_quantiles_of_its_own_interval() {
        // The source's totals: first 100 fast requests (≤ 1 ms), then 10 slow ones added
        // (in (1, 10] ms); the second sample must see only the slow ones.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let admin = Admin {
            status: Box::new(Vec::new),
            requests: Some(Box::new(|| {
                let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                RequestFigures {
                    by_class: [0, 100 + 10 * n as u64, 0, 0, 0],
                    latency_bounds_ms: &[1, 10],
                    latency: vec![100, 10 * n as u64, 0],
                    ..RequestFigures::default()
                }
            })),
            store: None,
            queues: None,
            info: test_info(),
            history: History::default(),
        };
        let mut prev = Vec::new();
        let first = admin.sample(&mut prev);
        assert_eq!(first.responses_2xx, 100);
        assert_eq!((first.latency_p50_us, first.latency_p99_us), (500, 990));
        let second = admin.sample(&mut prev);
        assert_eq!(second.responses_2xx, 110);
        // 10 requests in (1, 10] ms: the median halfway, 5.5 ms.
        assert_eq!(second.latency_p50_us, 5500);
        assert_eq!(second.latency_p99_us, 9910);
        let third = admin.sample(&mut prev);
        assert_eq!(third.latency_p99_us, 9910, "10 more slow ones");
    }

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3 * 1024), "3.0 KiB");
        assert_eq!(size(41 << 20), "41.0 MiB");
        assert_eq!(size(3 << 29), "1.50 GiB");
        assert_eq!(duration_ms(830), "830 ms");
        assert_eq!(duration_ms(12_400), "12.4 s");
        assert_eq!(duration_ms(200_000), "3 min 20 s");
    }
}
