//! What a request is answered by: the sites (host names, router, pools, limits), the
//! response options, and the configuration in force ([`Shared`]), replaced whole on reload.
//!
//! Owns: choosing the site for a Host value ([`HostMap`], [`App::pick`]), the pool a script
//! runs in, Cache-Control rules of static files.
//!
//! Never: reads a request body, talks to a worker, or writes a log line: the request path
//! (`handler.rs`, `request.rs`, `internal.rs`) reads these, nothing here acts on a request.
use crate::access_log::AccessLog;
use crate::body::ResponseBody;
use crate::compress::Policy;
use http::{header, HeaderValue, Response, StatusCode};
use ipnet::IpNet;
use isola_pool::Pool;
use isola_router::{PathPatterns, Router};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// Where its large request bodies are spooled.
    pub tmp_dir: PathBuf,
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

/// What a request for a host no site names gets (`server.unknown_host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownHost {
    /// The site at this index.
    Site(usize),
    /// 404 Not Found.
    NotFound,
    /// 421 Misdirected Request.
    Misdirected,
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

    /// The Cache-Control value of the first rule matching `url`, if any.
    pub fn lookup(&self, url: &[u8]) -> Option<&HeaderValue> {
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

/// A site's request limits, as configured (`server.max_body_size`,
/// `pool.request_terminate_timeout`, `pool.run_abandoned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (413 above).
    pub max_body_size: u64,
    /// Longest run of one request in a worker; `None` = unlimited.
    pub request_terminate_timeout: Option<Duration>,
    /// A complete request runs even if its client hangs up while it waits for a worker.
    pub run_abandoned: bool,
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
    pub server_header: HeaderValue,
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
            (None, UnknownHost::NotFound) => return Err(StatusCode::NOT_FOUND),
            (None, UnknownHost::Misdirected) => return Err(StatusCode::MISDIRECTED_REQUEST),
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
