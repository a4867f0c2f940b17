//! Internal requests: a script run in the pool with no client — a request deferred by a
//! response's `Isola-Defer` header, a scheduled one, or a job from a queue. They enter the
//! same script pipeline as client requests (`request.rs`: [`request::exec`], then the
//! context's closing step), so they share the router, the pool's queue, the limits and the
//! access log; their response body is read and dropped.
//!
//! Owns: building the request (Host of the site, `X-Isola-Internal: <kind>`, loopback
//! addresses) and its context, reading the response, and the [`Outcome`] its caller (a
//! schedule, a queue consumer) acts on.
//!
//! Never: serves static files (only scripts run), leaves the site it was asked for, counts
//! in the client request stats, or holds a response anywhere but in the bounded exchange
//! channel.
use crate::request::{self, LogFields, Peer, RequestCtx, ScriptCall, Upstream};
use crate::request_id;
use crate::site::Shared;
use http::{header, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use isola_router::Route;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Why an internal request is run (its `X-Isola-Internal` header and log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// After a response, by `Isola-Defer`.
    Defer,
    /// By a `[[schedule]]`.
    Schedule,
    /// A job of a `[[queue]]`.
    Job,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Defer => "defer",
            Kind::Schedule => "schedule",
            Kind::Job => "job",
        }
    }
}

/// How an internal request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The script answered with this status (its body was read whole).
    Answered(u16),
    /// No worker was free (the pool's queue was full or timed out); the script never ran.
    Unavailable,
    /// It could not run or its answer broke: the reason.
    Failed(String),
}

/// One internal request.
#[derive(Debug)]
pub struct Internal<'a> {
    /// Why it runs.
    pub kind: Kind,
    /// `/path?query` on the site: resolved by the router unless `script` is set; always what
    /// the access log shows.
    pub target: &'a str,
    /// The site's host name (the default site when `None`).
    pub host: Option<&'a str>,
    /// Run this PHP file (absolute, canonical; a queue's script, possibly outside the
    /// document root) instead of routing `target`.
    pub script: Option<&'a std::path::Path>,
    /// A POST body (a job's payload); `None` makes a GET.
    pub body: Option<bytes::Bytes>,
    /// CGI parameters to add (`ISOLA_JOB_ID`...).
    pub env: &'a [(&'static str, String)],
    /// Replaces the site's `request_terminate_timeout`.
    pub timeout: Option<std::time::Duration>,
    /// A queue with its own pool runs there (jobs only).
    pub queue: Option<&'a str>,
}

/// Runs `req` on its site and waits for the whole response.
pub(crate) async fn run(shared: &Arc<Shared>, req: Internal<'_>) -> Outcome {
    let Internal {
        kind,
        target,
        host,
        script,
        body,
        env,
        timeout,
        queue,
    } = req;
    let method = if body.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let host = host.and_then(|h| HeaderValue::from_str(h).ok());
    let started = Instant::now();
    let time = SystemTime::now();
    let app = shared.app();
    let rid: Arc<str> = request_id::generate().into();
    let Ok(site) = app.pick(host.as_ref()) else {
        return Outcome::Failed(format!("no site answers host {host:?}"));
    };
    let host = host.unwrap_or_else(|| {
        site.names
            .iter()
            .find(|n| !n.starts_with('*'))
            .and_then(|n| HeaderValue::from_str(n).ok())
            .unwrap_or(HeaderValue::from_static("localhost"))
    });
    // A trace of its own, so a script finds HTTP_TRACEPARENT whoever started it.
    let traceparent: Arc<str> = crate::trace::generate().into();
    let mut builder = Request::builder();
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/octet-stream");
    }
    let built = builder
        .method(method.clone())
        .uri(target)
        .header(header::HOST, host.clone())
        .header(
            header::USER_AGENT,
            format!("Isola/{} ({})", env!("CARGO_PKG_VERSION"), kind.as_str()),
        )
        .header("x-isola-internal", kind.as_str())
        .header("x-request-id", &*rid)
        .header(crate::trace::HEADER, &*traceparent)
        .body(());
    let parts = match built {
        Ok(r) => r.into_parts().0,
        Err(e) => return Outcome::Failed(format!("{target:?} is not a request target: {e}")),
    };
    let (path, query) = match parts.uri.path_and_query() {
        Some(pq) => (pq.path(), pq.query()),
        None => return Outcome::Failed(format!("{target:?} has no path")),
    };
    let (script_filename, script_name, path_info) = match script {
        Some(file) => (file.to_path_buf(), path.to_string(), String::new()),
        None => match site.router.resolve(path, query) {
            Route::Script {
                script_filename,
                script_name,
                path_info,
            } => (script_filename, script_name, path_info),
            _ => {
                return Outcome::Failed(format!(
                    "{target:?} does not name a PHP script on this site"
                ))
            }
        },
    };
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut ctx = RequestCtx {
        id: rid,
        traceparent,
        started,
        peer: Peer {
            remote: loopback,
            local: loopback,
            https: false,
        },
        method,
        host: Some(host),
        log: app.options.access_log.as_ref().map(|_| LogFields {
            time,
            uri: parts.uri.clone(),
            protocol: "HTTP/1.1",
            referer: None,
            user_agent: HeaderValue::from_str(&format!("Isola ({})", kind.as_str())).ok(),
        }),
        upstream: Upstream::default(),
        outcome: request::Outcome::default(),
    };
    let length = body.as_ref().map_or(0, |b| b.len() as u64);
    let call = ScriptCall {
        head: &parts,
        body: body.map(crate::spool::Spooled::Memory),
        content_length: Some(length),
        filename: script_filename,
        name: &script_name,
        path_info: &path_info,
        env,
        timeout,
        background: kind == Kind::Job,
        queue,
    };
    let answered = request::exec(shared, &app, site, call, &mut ctx).await;
    let (status, bytes, outcome) = match answered {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.into_body().collect().await {
                Ok(body) => {
                    let n = body.to_bytes().len() as u64;
                    (status, n, Outcome::Answered(status))
                }
                Err(e) => (
                    status,
                    0,
                    Outcome::Failed(format!("response cut short: {e}")),
                ),
            }
        }
        Err(s) => (
            s.as_u16(),
            0,
            Outcome::Failed(format!("answered {s} by Isola")),
        ),
    };
    let outcome = match outcome {
        Outcome::Answered(_) if ctx.outcome.unavailable() => Outcome::Unavailable,
        o => o,
    };
    if outcome == Outcome::Unavailable {
        tracing::warn!(
            request_id = &*ctx.id,
            kind = kind.as_str(),
            target,
            "internal request refused: no free worker (503)"
        );
    } else {
        tracing::info!(
            request_id = &*ctx.id,
            kind = kind.as_str(),
            target,
            status,
            ms = ctx.started.elapsed().as_millis() as u64,
            worker = ctx.upstream.pid,
            "internal request done"
        );
    }
    // Not counted in the stats: they have no client (`stats.rs`).
    let complete = !matches!(outcome, Outcome::Failed(_));
    ctx.close(
        status,
        bytes,
        complete,
        None,
        app.options.access_log.as_ref(),
    );
    outcome
}
