//! One client request, from validation to response: the request path of ARCHITECTURE.md.
//!
//! Owns: the client side of the request path. On arrival: the headers a client may not
//! set removed, the request id and traceparent, the client behind trusted proxies, the
//! request's [`RequestCtx`]. Then the phases: request checks, the site by Host, the route,
//! a static file or the request body spooled for a script (run by [`request::exec`], as
//! internal requests are), compression, `X-Request-Id` and `Server`. Last, the body wrapped
//! so that, when it is done, the connection's in-flight count drops, a deferred request
//! starts, and the context is closed ([`RequestCtx::close`]: stats and access log).
//!
//! Never: builds a FastCGI request or an access log line itself (`request.rs` does, for
//! client and internal requests alike), or decides what a worker did from a status code.
use crate::body::ResponseBody;
use crate::compress;
use crate::conn::RequestGuard;
use crate::error_page;
use crate::proxy;
use crate::request::{self, Defer, LogFields, RequestCtx, ScriptCall};
use crate::request_body::RequestBody;
use crate::request_id;
use crate::spool::{self, SpoolError, SpoolLimits, Spooled};
use crate::static_file;
use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version,
};
use isola_router::{Deny, Route};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Request bodies up to this size are buffered in memory, larger ones in a temporary file.
const BODY_MEMORY_THRESHOLD: usize = 1 << 20;
/// Longest pause while a client sends its body.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

// What the connection side (`server.rs`) takes from here with `handle`.
pub(crate) use crate::request::Peer;
pub(crate) use crate::site::{App, Settings, Shared, Site};

pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<RequestBody>,
    peer: Peer,
    guard: RequestGuard,
) -> Response<ResponseBody> {
    // A script's headers_send(103) reaches this client through its connection.
    let hints = crate::early_hints::Hints::new(guard.conn(), req.version());
    crate::early_hints::scope(hints, handle_request(shared, req, peer, guard)).await
}

async fn handle_request(
    shared: Arc<Shared>,
    mut req: Request<RequestBody>,
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
    let id: Arc<str> = req
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
    let log = app.options.access_log.as_ref().map(|_| LogFields {
        time: SystemTime::now(),
        uri: req.uri().clone(),
        protocol: request::version_str(req.version()),
        referer: req.headers().get(header::REFERER).cloned(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
    });
    let mut ctx = RequestCtx {
        id,
        traceparent,
        started,
        peer: Peer {
            remote: client.addr,
            https: client.https,
            ..peer
        },
        method: req.method().clone(),
        host: req.headers().get(header::HOST).cloned(),
        log,
        upstream: request::Upstream::default(),
        outcome: request::Outcome::default(),
    };
    let mut accept_encoding = HeaderMap::new();
    if app.options.compression.is_some() {
        for v in req.headers().get_all(header::ACCEPT_ENCODING) {
            accept_encoding.append(header::ACCEPT_ENCODING, v.clone());
        }
    }
    let mut resp = match respond(&shared, &app, req, &mut ctx).await {
        Ok(r) => r,
        Err(status) => error_page::page(status),
    };
    if let Some(policy) = &app.options.compression {
        resp = compress::compress(policy, &accept_encoding, &ctx.method, resp);
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    h.insert(header::SERVER, app.server_header.clone());
    let status = resp.status().as_u16();
    let log = app.options.access_log.clone();
    let defer = resp.extensions_mut().remove::<Defer>();
    resp.map(|body| {
        body.tracked(Box::new(move |bytes, complete| {
            drop(guard);
            if let Some(Defer(target)) = defer {
                // The script asked for this to run once its response is out, whether or
                // not the client stayed to read it all.
                let shared = shared.clone();
                let host = ctx.host.clone();
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
            ctx.close(status, bytes, complete, Some(&shared.stats), log.as_ref());
        }))
    })
}

/// Route → static file | script | redirect | refusal.
async fn respond(
    shared: &Arc<Shared>,
    app: &App,
    req: Request<RequestBody>,
    ctx: &mut RequestCtx,
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
            let received = receive(site, req, &ctx.id).await?;
            let call = ScriptCall {
                head: &received.head,
                body: received.body,
                content_length: received.content_length,
                filename: script_filename,
                name: &script_name,
                path_info: &path_info,
                env: site.sendfile.env(),
                timeout: None,
                background: false,
                queue: None,
            };
            return request::exec(shared, app, site, call, ctx).await;
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
        Route::Static { path, file } => serve_static(site, &req, &path, file, &ctx.id).await,
    };
    // No PHP read the body: it is thrown away so the client gets this answer.
    spool::discard(req);
    answer
}

async fn serve_static(
    site: &Site,
    req: &Request<RequestBody>,
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
fn check_request(req: &Request<RequestBody>) -> Result<(), StatusCode> {
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

/// A script's request as received: its head and its body, spooled.
struct Received {
    head: http::request::Parts,
    body: Option<Spooled>,
    /// CONTENT_LENGTH for the script: the spooled length, 0 when the client declared
    /// none, unknown otherwise.
    content_length: Option<u64>,
}

/// Reads the body of a request a script will answer, within the site's limits (413 above
/// `max_body_size`, 408 when the client stalls, 400 on broken framing).
async fn receive(
    site: &Site,
    req: Request<RequestBody>,
    rid: &str,
) -> Result<Received, StatusCode> {
    let (parts, incoming) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > site.limits.max_body_size) {
        spool::discard(Request::from_parts(parts, incoming));
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    // HTTP/3 has no Transfer-Encoding: a body of unannounced length is just DATA frames.
    let unannounced = parts.version == Version::HTTP_3 && declared.is_none();
    let has_body = declared.is_some_and(|n| n > 0)
        || parts.headers.contains_key(header::TRANSFER_ENCODING)
        || unannounced;
    let body = if has_body {
        let limits = SpoolLimits {
            max_size: site.limits.max_body_size,
            memory_threshold: BODY_MEMORY_THRESHOLD,
            idle_timeout: BODY_IDLE_TIMEOUT,
            tmp_dir: &site.tmp_dir,
        };
        match spool::spool(incoming, &limits).await {
            // An HTTP/3 request that announced nothing and sent nothing has no body.
            Ok(b) if unannounced && b.len() == 0 => None,
            Ok(b) => Some(b),
            Err(SpoolError::TooLarge(_)) => return Err(StatusCode::PAYLOAD_TOO_LARGE),
            Err(SpoolError::Stalled(_)) => return Err(StatusCode::REQUEST_TIMEOUT),
            Err(SpoolError::Client(e)) => {
                tracing::info!(request_id = rid, "request body: {e}");
                return Err(StatusCode::BAD_REQUEST);
            }
            Err(e @ SpoolError::Io(_)) => {
                tracing::error!(request_id = rid, "{e}");
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
    Ok(Received {
        head: parts,
        body,
        content_length,
    })
}
