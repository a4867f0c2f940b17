//! Mapping a request path to what serves it: a static file, a PHP script, a redirect, or a
//! denial.
//!
//! Owns: percent-decoding and normalising the path, refusing traversal, NUL, dotfiles and
//! PHP source, the PATH_INFO split, index files, the front controller, directories where PHP
//! never executes, and symlinks that leave the document root.
//!
//! Never: reads file contents, opens sockets, or knows HTTP types; its only I/O is
//! `stat`/`canonicalize` on paths under the document root and the open of a chosen static
//! file (`open`), whose descriptor goes with the route so the file served is the file checked.
//!
//! Layout: `normalize` is the pure byte work (decoding, `.`/`..`,
//! hidden segments, PHP names, the redirect Location); `resolve` makes the filesystem
//! decisions. The rules are listed on [`Router::resolve`].

mod normalize;
mod open;
mod pattern;
mod resolve;

pub use pattern::{PathPatterns, PatternError};

/// A request path (still percent-encoded, starting with `/`) decoded and normalised by the
/// rules [`Router::resolve`] applies first (rules 1 and 2): the bytes it routes on, empty for
/// the root, else `/seg(/seg)*` without a trailing slash. For checks made before routing, so
/// they see the same path the router does.
pub fn normalize_path(raw_path: &str) -> Result<Vec<u8>, Deny> {
    normalize::normalize(raw_path).map(|n| n.bytes)
}

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

/// Router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Absolute, canonical document root.
    pub docroot: PathBuf,
    /// Index files tried in a directory, in order.
    pub index: Vec<String>,
    /// Script (relative to the docroot) that gets every request nothing else matches.
    pub front_controller: Option<String>,
    /// Path prefixes (relative to the docroot, e.g. `uploads/`) below which PHP never runs.
    pub no_exec: Vec<String>,
    /// Follow symlinks that lead outside the document root.
    pub follow_symlinks_outside: bool,
    /// Paths answered 404 whatever they name.
    pub deny: PathPatterns,
    /// Paths exempt from `deny` and from the dotfile rule (below a dot segment, static
    /// files only).
    pub allow: PathPatterns,
    /// URL prefixes served from another folder (nginx `alias`, Apache `Alias`), as
    /// (`/wp-content`, `/var/lib/wordpress/wp-content`). Every rule applies below them as in
    /// the document root; symlinks may lead into them.
    pub aliases: Vec<(String, PathBuf)>,
}

impl RouterConfig {
    /// Settings for `docroot` with the usual defaults: index files `index.php` then
    /// `index.html`, front controller `index.php`, no no-exec paths, symlinks confined to the
    /// document root.
    pub fn new(docroot: impl Into<PathBuf>) -> Self {
        Self {
            docroot: docroot.into(),
            index: vec!["index.php".to_owned(), "index.html".to_owned()],
            front_controller: Some("index.php".to_owned()),
            no_exec: Vec::new(),
            follow_symlinks_outside: false,
            deny: PathPatterns::default(),
            allow: PathPatterns::default(),
            aliases: Vec::new(),
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// 400: malformed or hostile path (NUL, traversal above the root, not origin-form).
    BadRequest,
    /// 403: a directory without an index, or PHP below a no-exec path.
    Forbidden,
    /// 404: nothing there, or something that must stay hidden (dotfiles, PHP source).
    NotFound,
}

/// The descriptor and metadata of a [`Route::Static`] file when the router opened it
/// while deciding (the open that proved it lies under its base): reading it serves exactly
/// the file that was checked, with no second open or `fstat`. Empty when the decision took
/// the portable path; the caller then opens the path. Routes compare equal whatever it
/// holds: it is not part of the decision.
#[derive(Debug, Clone, Default)]
pub struct OpenFile(Option<Arc<(std::fs::File, std::fs::Metadata)>>);

impl OpenFile {
    pub(crate) fn new(file: std::fs::File, meta: std::fs::Metadata) -> Self {
        Self(Some(Arc::new((file, meta))))
    }

    /// No descriptor: the caller opens the path.
    pub fn none() -> Self {
        Self(None)
    }

    /// The opened file and its metadata, if the router opened it and the route was not
    /// cloned since (a clone shares the descriptor; the caller then opens the path).
    pub fn take(self) -> Option<(std::fs::File, std::fs::Metadata)> {
        self.0.and_then(|a| Arc::try_unwrap(a).ok())
    }
}

impl PartialEq for OpenFile {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for OpenFile {}

/// What serves a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Send this file as it is.
    Static {
        /// Absolute path of the file.
        path: PathBuf,
        /// The file, when already opened.
        file: OpenFile,
    },
    /// Run this script.
    Script {
        /// Absolute path of the script (SCRIPT_FILENAME).
        script_filename: PathBuf,
        /// Decoded URL path of the script (SCRIPT_NAME), e.g. `/blog/index.php`.
        script_name: String,
        /// Decoded rest of the path after the script (PATH_INFO), `""` when none.
        path_info: String,
    },
    /// Answer 301 with this Location (percent-encoded path with `/` added, query kept).
    Redirect {
        /// The Location header value.
        location: String,
    },
    /// Refuse.
    Deny(Deny),
}

/// A router over one document root.
#[derive(Debug, Clone)]
pub struct Router {
    config: RouterConfig,
    /// `docroot` as bytes without a trailing slash; request paths are appended to it.
    base: OsString,
    /// The document root's descriptor, for opens beneath it.
    base_dir: Arc<open::BaseDir>,
    /// The canonical document root, for containment checks (the configured one when it
    /// cannot be canonicalised, e.g. it does not exist yet).
    real_root: PathBuf,
    /// Usable index file names (a single segment, not hidden), in order.
    index: Vec<String>,
    /// The front controller's normalised URL path, e.g. `/index.php`.
    front: Option<Vec<u8>>,
    /// No-exec prefixes as normalised URL paths (`/uploads`; empty for the whole root).
    no_exec: Vec<Vec<u8>>,
    /// No-exec prefixes as real paths: under the canonical root, and the canonical target
    /// when the directory exists (it may be a symlink to elsewhere).
    no_exec_real: Vec<PathBuf>,
    /// Aliases, longest prefix first.
    aliases: Vec<Alias>,
}

impl Alias {
    /// Whether the normalised URL `url` is this prefix or lies below it.
    fn covers(&self, url: &[u8]) -> bool {
        url.starts_with(&self.prefix) && matches!(url.get(self.prefix.len()), None | Some(b'/'))
    }
}

/// A URL prefix served from another folder.
#[derive(Debug, Clone)]
struct Alias {
    /// Normalised URL prefix, e.g. `/wp-content`.
    prefix: Vec<u8>,
    /// The folder's bytes without a trailing slash.
    base: OsString,
    /// The folder's descriptor, for opens beneath it.
    dir: Arc<open::BaseDir>,
    /// The canonical folder, for containment checks.
    real: PathBuf,
}

impl Router {
    /// A router with these settings.
    ///
    /// Canonicalises the document root and the no-exec directories once, now. Settings
    /// that could never be safe are dropped rather than trusted: index names with `/`, NUL
    /// or a leading `.`, and a front controller or no-exec path that climbs above the root.
    pub fn new(config: RouterConfig) -> Self {
        use std::os::unix::ffi::OsStrExt;

        let mut base = config.docroot.as_os_str().as_bytes();
        while let [rest @ .., b'/'] = base {
            base = rest;
        }
        let base = std::ffi::OsStr::from_bytes(base).to_owned();
        let mut aliases: Vec<Alias> = config
            .aliases
            .iter()
            .filter_map(|(prefix, dir)| {
                let prefix = normalize::normalize_relative(prefix).filter(|p| !p.is_empty())?;
                let mut b = dir.as_os_str().as_bytes();
                while let [rest @ .., b'/'] = b {
                    b = rest;
                }
                let base = std::ffi::OsStr::from_bytes(b).to_owned();
                Some(Alias {
                    prefix,
                    dir: Arc::new(open::BaseDir::new(base.clone())),
                    base,
                    real: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()),
                })
            })
            .collect();
        aliases.sort_by_key(|a| std::cmp::Reverse(a.prefix.len()));
        let real_root =
            std::fs::canonicalize(&config.docroot).unwrap_or_else(|_| config.docroot.clone());
        let index = config
            .index
            .iter()
            .filter(|name| {
                !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\0'])
            })
            .cloned()
            .collect();
        let front = config
            .front_controller
            .as_deref()
            .and_then(normalize::normalize_relative)
            .filter(|url| !url.is_empty());
        let no_exec: Vec<Vec<u8>> = config
            .no_exec
            .iter()
            .filter_map(|p| normalize::normalize_relative(p))
            .collect();
        let mut no_exec_real = Vec::with_capacity(no_exec.len() * 2);
        for url in &no_exec {
            let (real_base, fs_base, rest) = match aliases.iter().find(|a| a.covers(url)) {
                Some(a) => (
                    &a.real,
                    std::path::Path::new(&a.base),
                    &url[a.prefix.len()..],
                ),
                None => (&real_root, config.docroot.as_path(), &url[..]),
            };
            let rel = std::ffi::OsStr::from_bytes(rest.strip_prefix(b"/").unwrap_or(rest));
            no_exec_real.push(real_base.join(rel));
            if let Ok(real) = std::fs::canonicalize(fs_base.join(rel)) {
                if !no_exec_real.contains(&real) {
                    no_exec_real.push(real);
                }
            }
        }
        Self {
            config,
            base_dir: Arc::new(open::BaseDir::new(base.clone())),
            base,
            real_root,
            index,
            front,
            no_exec,
            no_exec_real,
            aliases,
        }
    }

    /// The URL path (decoded, normalised) a file returned in [`Route::Static`] was reached
    /// by: its place under the document root or an alias.
    pub fn url_of(&self, fs_path: &std::path::Path) -> Option<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let p = fs_path.as_os_str().as_bytes();
        for a in &self.aliases {
            if let Some(rest) = p.strip_prefix(a.base.as_bytes()) {
                if rest.is_empty() || rest.starts_with(b"/") {
                    return Some([a.prefix.as_slice(), rest].concat());
                }
            }
        }
        let rest = p.strip_prefix(self.base.as_bytes())?;
        (rest.is_empty() || rest.starts_with(b"/")).then(|| rest.to_vec())
    }

    /// The settings.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Resolves the path part of a request target (still percent-encoded, starting with
    /// `/`) and its raw query (without `?`).
    ///
    /// Behaves like nginx with Debian's `snippets/fastcgi-php.conf` and
    /// `try_files $uri $uri/ /index.php?$query_string`, but stricter:
    ///
    /// 1. The path must start with `/`; every `%XX` is decoded (`%2F` and `%2E` too); a bad
    ///    escape or a NUL byte is [`Deny::BadRequest`].
    /// 2. `//` and `.` collapse, `..` resolves; climbing above the root is
    ///    [`Deny::BadRequest`]. Backslash is an ordinary file-name byte.
    /// 3. A path matching `deny` (and not `allow`) is [`Deny::NotFound`]. A segment
    ///    starting with `.` is [`Deny::NotFound`], except a first segment `.well-known` and
    ///    paths matching `allow`, below which only static files are served.
    /// 4. `/a.php/rest` (the first segment ending in `.php`, case-sensitive, followed by
    ///    more): `/a.php` must be a regular file, which runs with PATH_INFO `/rest`; else
    ///    [`Deny::NotFound`].
    /// 5. A path ending in `.php` runs if it is a regular file and is 404 otherwise. Another
    ///    regular file with a PHP-source extension (`.phtml`, `.inc`, `.PHP`, ...) is 404, and
    ///    so is an editor or backup copy of a script (`index.php~`, `index.php.bak`, ...; the
    ///    exact rule is on `normalize::is_php_copy`) unless `allow` matches it; anything
    ///    else is [`Route::Static`].
    /// 6. A directory without a trailing slash gets [`Route::Redirect`] (query kept, never
    ///    `//host`, CR/LF encoded); with one, its first existing index file; none is
    ///    [`Deny::Forbidden`].
    /// 7. Nothing there: the front controller if it exists (a non-PHP one is sent as a
    ///    static file), else [`Deny::NotFound`].
    /// 8. A script below a `no_exec` prefix (by URL or by real path) is [`Deny::Forbidden`].
    /// 9. Whatever is chosen must canonicalise to a path under the canonical root or an
    ///    alias folder (unless `follow_symlinks_outside`), else [`Deny::NotFound`]; returned
    ///    paths are the configured root (or the alias folder, for a path below an alias
    ///    prefix) plus the URL path, not the canonical ones.
    /// 10. `stat` permission errors are [`Deny::Forbidden`]; any other failure (ENOENT,
    ///     ENOTDIR, ENAMETOOLONG, ELOOP, ...) means "not there".
    ///
    /// Decoded paths need not be UTF-8 (Linux names are bytes): such static files are
    /// served, but a script whose SCRIPT_NAME or PATH_INFO would not be UTF-8 is 404.
    pub fn resolve(&self, raw_path: &str, raw_query: Option<&str>) -> Route {
        self.resolve_inner(raw_path, raw_query)
    }
}
