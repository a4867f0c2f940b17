//! X-Sendfile and X-Accel-Redirect: a script answers with a header naming a file, and the
//! front sends that file as it sends static files, while the worker is already free.
//!
//! Owns: the configured folders (`[[server.sendfile]]`) and their internal URL prefixes,
//! the refusal of client requests below those prefixes (nginx's `internal`), the CGI
//! parameters that tell frameworks to use it, the mapping of a header value to a file, and
//! the merge of the script's headers into the file's response.
//!
//! Never: opens a file by a path the script wrote. The value picks a folder and a path
//! below it, and that folder's own [`Router`] (no index files, no front controller, no
//! symlinks out) resolves and opens it beneath the folder, with every rule of the document
//! root: no `..` above it, no dotfiles, no PHP source or backup copies, no directories.
//! Serving, ranges, validators and precompressed siblings are `static_file`'s; compression
//! is applied to the result as to any response.
use crate::body::ResponseBody;
use crate::error_page;
use crate::static_file;
use http::{header, HeaderMap, HeaderName, Method, Response, StatusCode};
use isola_router::{OpenFile, Route, Router, RouterConfig};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Response headers that name a file, in the order they are looked at.
const HEADERS: &[&str] = &["x-accel-redirect", "x-sendfile", "x-lighttpd-send-file"];

/// Request headers a framework decides by (Symfony's `BinaryFileResponse`, Laravel's
/// downloads, Rack): never believed from a client, set by Isola where sendfile is on.
pub(crate) const REQUEST_HEADERS: &[&str] = &["x-sendfile-type", "x-accel-mapping"];

/// One folder files may be sent from.
#[derive(Debug)]
struct Location {
    /// The folder as configured, no trailing slash.
    dir: PathBuf,
    /// Internal URL prefix for X-Accel-Redirect (`/protected`), if any.
    prefix: Option<Vec<u8>>,
    /// Resolves and opens paths beneath `dir` by the document root's rules.
    router: Router,
}

/// A site's sendfile folders; empty: headers naming files are dropped, never acted on.
#[derive(Debug, Default)]
pub struct Sendfile {
    locations: Vec<Location>,
    /// CGI parameters that turn it on in frameworks.
    env: Vec<(&'static str, String)>,
}

/// Where a header value led.
#[derive(Debug)]
enum Target {
    /// The file's path (configured folder + path below it), the file when the router
    /// opened it beneath the folder (so the file sent is the file checked), and the URL it
    /// has for Cache-Control rules (the internal prefix + the path, when there is one).
    File(PathBuf, OpenFile, Option<Vec<u8>>),
    /// Refused, and why (for the log).
    Refused(&'static str),
}

impl Sendfile {
    /// Folders as (folder, internal URL prefix): absolute folders, prefixes normalised
    /// (`/protected`), as the configuration validates them.
    pub fn new(dirs: &[(PathBuf, Option<String>)]) -> Self {
        let locations = dirs
            .iter()
            .map(|(dir, prefix)| {
                let mut config = RouterConfig::new(dir.clone());
                config.index.clear();
                config.front_controller = None;
                Location {
                    dir: dir.clone(),
                    prefix: prefix.as_deref().map(|p| p.as_bytes().to_vec()),
                    router: Router::new(config),
                }
            })
            .collect::<Vec<_>>();
        // Frameworks send `X-Sendfile: <real path>`: no mapping to keep in step with the
        // folders, and a deploy that swaps a symlink above a folder needs no restart.
        let env = if locations.is_empty() {
            Vec::new()
        } else {
            vec![("HTTP_X_SENDFILE_TYPE", "X-Sendfile".to_string())]
        };
        Sendfile { locations, env }
    }

    /// CGI parameters for every script of the site (after the request headers, which never
    /// carry them: [`REQUEST_HEADERS`] are removed on arrival).
    pub(crate) fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }

    /// Whether the request path lies below an internal prefix: such URLs exist only for
    /// X-Accel-Redirect, and a client asking for one gets 404 (nginx's `internal`).
    pub(crate) fn is_internal(&self, raw_path: &str) -> bool {
        if self.locations.iter().all(|l| l.prefix.is_none()) {
            return false;
        }
        // A path the router refuses is refused anyway; only what it would route matters.
        isola_router::normalize_path(raw_path).is_ok_and(|url| {
            self.locations
                .iter()
                .any(|l| l.below_prefix(&url).is_some())
        })
    }

    /// The file a header value names: X-Accel-Redirect's is an internal URL
    /// (percent-decoded, normalised, query ignored, as nginx does); X-Sendfile's an absolute
    /// path below a folder, as configured or as its real path.
    fn target(&self, header: &str, value: &[u8]) -> Target {
        if header == "x-accel-redirect" {
            let Ok(v) = std::str::from_utf8(value) else {
                return Target::Refused("not a URL path");
            };
            let path = v.trim().split('?').next().unwrap_or("");
            let Ok(url) = isola_router::normalize_path(path) else {
                return Target::Refused("not a URL path below an internal prefix");
            };
            for l in &self.locations {
                if let Some(rest) = l.below_prefix(&url) {
                    return l.resolve(rest, Some(&url));
                }
            }
            return Target::Refused("below no [[server.sendfile]] path");
        }
        let value = value.trim_ascii();
        if !value.starts_with(b"/") {
            return Target::Refused("not an absolute path");
        }
        for l in &self.locations {
            if let Some(rest) = l.below_dir(value) {
                let url = l.prefix.as_ref().map(|p| [p.as_slice(), rest].concat());
                return l.resolve(rest, url.as_deref());
            }
        }
        Target::Refused("below no [[server.sendfile]] dir")
    }
}

impl Location {
    /// The rest of a normalised URL below this location's prefix (empty or from `/`).
    fn below_prefix<'u>(&self, url: &'u [u8]) -> Option<&'u [u8]> {
        let rest = url.strip_prefix(self.prefix.as_deref()?)?;
        matches!(rest.first(), None | Some(b'/')).then_some(rest)
    }

    /// The rest of an absolute path below this folder, by its configured path or its real
    /// path (what PHP's `realpath()` gives when the configured one holds a symlink).
    fn below_dir<'p>(&self, path: &'p [u8]) -> Option<&'p [u8]> {
        let under = |base: &[u8]| {
            let rest = path.strip_prefix(base)?;
            matches!(rest.first(), Some(b'/')).then_some(rest)
        };
        under(self.dir.as_os_str().as_bytes()).or_else(|| {
            let real = std::fs::canonicalize(&self.dir).ok()?;
            under(real.as_os_str().as_bytes())
        })
    }

    /// Resolves `rest` (decoded bytes, empty or from `/`) beneath the folder.
    fn resolve(&self, rest: &[u8], url: Option<&[u8]>) -> Target {
        // The router takes a percent-encoded path: encode what decoding would change, so a
        // file named `100%.pdf` is that file.
        let encoded = encode(rest);
        match self.router.resolve(&encoded, None) {
            Route::Static { path, file } if path.starts_with(&self.dir) => {
                Target::File(path, file, url.map(<[u8]>::to_vec))
            }
            Route::Static { .. } => Target::Refused("outside its folder"),
            Route::Script { .. } => Target::Refused("PHP source is never sent"),
            Route::Redirect { .. } => Target::Refused("a folder"),
            Route::Deny(_) => Target::Refused("not a file the folder may send"),
        }
    }
}

/// `/` kept, unreserved bytes kept, everything else `%XX`.
fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 1);
    if bytes.first() != Some(&b'/') {
        s.push('/');
    }
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// PHP's `default_mimetype` with or without the default charset: what every script's
/// response carries unless it sets a type, so it says nothing about the file.
fn is_php_default_type(v: &[u8]) -> bool {
    v.eq_ignore_ascii_case(b"text/html; charset=UTF-8") || v.eq_ignore_ascii_case(b"text/html")
}

/// Headers of the script's response that describe its own body, not the file: the file's
/// response has its own.
fn describes_body(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "content-range"
            | "content-encoding"
            | "transfer-encoding"
            | "accept-ranges"
            | "etag"
            | "last-modified"
    )
}

/// The script's response `resp` to the request (`method`, `req_headers`) if it names no
/// file; else the file's response with the script's other headers, and `true` when that
/// response is the file (not a refusal), for the access log. The script's body, if
/// any, is dropped unread: a streamed one tells the exchange the client is gone, so the
/// worker is read to its end and released without waiting for the file to be sent.
pub(crate) async fn answer(
    site: &crate::site::Site,
    method: &Method,
    req_headers: &HeaderMap,
    mut resp: Response<ResponseBody>,
    rid: &str,
) -> (Response<ResponseBody>, bool) {
    let mut named = None;
    for h in HEADERS {
        if let Some(v) = resp.headers_mut().remove(*h) {
            named.get_or_insert((*h, v));
        }
    }
    let Some((which, value)) = named else {
        return (resp, false);
    };
    let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
    if site.sendfile.locations.is_empty() {
        tracing::warn!(
            request_id = rid,
            "{which}: {shown:?} ignored: no [[server.sendfile]] folder is configured"
        );
        return (resp, false);
    }
    let (path, opened, url) = match site.sendfile.target(which, value.as_bytes()) {
        Target::File(path, opened, url) => (path, opened, url),
        Target::Refused(why) => {
            tracing::warn!(request_id = rid, "{which}: {shown:?} refused: {why}");
            return (error_page::page(StatusCode::NOT_FOUND), false);
        }
    };
    // A download after a POST is sent as the answer to a GET would be (nginx does the same).
    let file_method = if method == Method::HEAD {
        Method::HEAD
    } else {
        Method::GET
    };
    let mut file = match static_file::serve(&path, opened.take(), &file_method, req_headers).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(request_id = rid, path = %path.display(), "{which}: {e}");
            return (error_page::page(static_file::error_status(&e)), false);
        }
    };
    let status = file.status();
    let has_body = status.is_success();
    let script = std::mem::take(resp.headers_mut());
    drop(resp);
    let out = file.headers_mut();
    let mut cache_control = false;
    let mut last: Option<HeaderName> = None;
    for (name, value) in script {
        // HeaderMap's owned iterator names only the first of repeated headers.
        let Some(name) = name.or_else(|| last.clone()) else {
            continue;
        };
        last = Some(name.clone());
        if describes_body(&name) {
            continue;
        }
        if name == header::CONTENT_TYPE {
            // The script's type (it knows what it sends), unless it is the one PHP sends
            // when a script sets none; none on a 304 or on the 416 page.
            if has_body && !is_php_default_type(value.as_bytes()) {
                out.insert(name, value);
            }
            continue;
        }
        if name == header::CACHE_CONTROL {
            cache_control = true;
        }
        out.append(name, value);
    }
    if let (false, Some(url)) = (cache_control, url) {
        site.cache_control.apply(&url, &mut file);
    }
    (file, true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Sendfile) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("private");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.pdf"), "pdf").unwrap();
        std::fs::write(root.join("100%.txt"), "pct").unwrap();
        std::fs::write(root.join("sub/b.txt"), "b").unwrap();
        std::fs::write(root.join("x.php"), "<?php").unwrap();
        std::fs::write(root.join("x.php.bak"), "<?php").unwrap();
        std::fs::write(root.join(".env"), "SECRET").unwrap();
        std::fs::write(t.path().join("outside.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(t.path().join("outside.txt"), root.join("out.txt")).unwrap();
        let s = Sendfile::new(&[(root, Some("/protected".into()))]);
        (t, s)
    }

    fn file(s: &Sendfile, h: &str, v: &str) -> Option<String> {
        match s.target(h, v.as_bytes()) {
            Target::File(p, _, _) => Some(std::fs::read_to_string(p).unwrap()),
            Target::Refused(_) => None,
        }
    }

    #[test]
    fn accel_redirect_urls_below_a_prefix() {
        let (_t, s) = setup();
        let a = "x-accel-redirect";
        assert_eq!(file(&s, a, "/protected/a.pdf").as_deref(), Some("pdf"));
        assert_eq!(
            file(&s, a, "/protected//sub/./b.txt?x=1").as_deref(),
            Some("b")
        );
        assert_eq!(file(&s, a, "/protected/sub%2Fb.txt").as_deref(), Some("b"));
        assert_eq!(file(&s, a, "/protected/100%25.txt").as_deref(), Some("pct"));
        for refused in [
            "/protected/../outside.txt",
            "/protected/sub/../../outside.txt",
            "/protected/%2e%2e/outside.txt",
            "/protected/out.txt",
            "/protected/x.php",
            "/protected/x.php.bak",
            "/protected/.env",
            "/protected/sub",
            "/protected/sub/",
            "/protected",
            "/protectedx/a.pdf",
            "/elsewhere/a.pdf",
            "protected/a.pdf",
            "/protected/missing",
        ] {
            assert_eq!(file(&s, a, refused), None, "{refused}");
        }
    }

    #[test]
    fn sendfile_paths_below_a_folder() {
        let (t, s) = setup();
        let root = t.path().join("private");
        let p = |rest: &str| format!("{}{rest}", root.display());
        let x = "x-sendfile";
        assert_eq!(file(&s, x, &p("/a.pdf")).as_deref(), Some("pdf"));
        assert_eq!(file(&s, x, &p("/100%.txt")).as_deref(), Some("pct"));
        let real = std::fs::canonicalize(&root).unwrap();
        let via_real = format!("{}/sub/b.txt", real.display());
        assert_eq!(file(&s, x, &via_real).as_deref(), Some("b"));
        for refused in [
            p("/../outside.txt"),
            p("/out.txt"),
            p("/x.php"),
            p("/.env"),
            p("/sub"),
            p(""),
            p("x/a.pdf"),
            format!("{}/outside.txt", t.path().display()),
            "/etc/passwd".into(),
            "a.pdf".into(),
        ] {
            assert_eq!(file(&s, x, &refused), None, "{refused}");
        }
        match s.target(x, p("/a.pdf").as_bytes()) {
            Target::File(_, _, url) => assert_eq!(url.as_deref(), Some(&b"/protected/a.pdf"[..])),
            Target::Refused(why) => panic!("{why}"),
        }
    }

    #[test]
    fn internal_prefixes_are_not_for_clients() {
        let (_t, s) = setup();
        assert!(s.is_internal("/protected/a.pdf"));
        assert!(s.is_internal("/protected"));
        assert!(s.is_internal("//protected/./a.pdf"));
        assert!(s.is_internal("/%70rotected/a.pdf"));
        assert!(s.is_internal("/x/../protected/a.pdf"));
        assert!(!s.is_internal("/protectedx"));
        assert!(!s.is_internal("/"));
        assert!(!Sendfile::default().is_internal("/protected/a.pdf"));
    }

    #[test]
    fn frameworks_are_told_to_send_real_paths_only_where_it_is_on() {
        let (_t, s) = setup();
        assert_eq!(
            s.env(),
            &[("HTTP_X_SENDFILE_TYPE", "X-Sendfile".to_string())]
        );
        assert!(Sendfile::default().env().is_empty());
    }
}
