//! The filesystem decisions: which candidate exists and what it is (one `stat` each), the
//! PATH_INFO split, index files, the front controller, no-exec directories and the
//! containment check on the real path of whatever is chosen.
//!
//! Never: reads or opens files, and never returns a path that was not built from the
//! document root plus a normalised path (so `Path::join` with an absolute path, which would
//! replace the root, cannot happen). A `stat` failure is never an error to the caller:
//! permission denied is 403, anything else (ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP, ...) counts
//! as "not there".

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::normalize::{
    self, is_php_copy, is_php_script, is_php_source, last_segment, split_path_info, Visibility,
};
use crate::open::Opened;
use crate::{Deny, OpenFile, Route, Router};

/// What one `stat` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    File,
    Dir,
    /// A socket, FIFO or device: never served.
    Other,
    /// ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP or any other failure but EACCES/EPERM.
    Missing,
    /// EACCES or EPERM.
    Denied,
}

fn probe(path: &Path) -> Probe {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Probe::File,
        Ok(m) if m.is_dir() => Probe::Dir,
        Ok(_) => Probe::Other,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Probe::Denied,
        // ELOOP has no stable ErrorKind; every failure but permission means "not there".
        Err(_) => Probe::Missing,
    }
}

/// Script parameters borrowed from the request, turned into owned strings only on success.
struct ScriptUrl<'a> {
    /// SCRIPT_NAME, decoded bytes.
    name: &'a [u8],
    /// PATH_INFO, decoded bytes (empty, or starting with `/`).
    path_info: &'a [u8],
    /// Append `/` to PATH_INFO (the request ended with a slash that normalisation removed).
    path_info_slash: bool,
}

impl Router {
    /// Resolves one request; see [`Router::resolve`] for the rules.
    pub(crate) fn resolve_inner(&self, raw_path: &str, raw_query: Option<&str>) -> Route {
        let norm = match normalize::normalize(raw_path) {
            Ok(n) => n,
            Err(deny) => return Route::Deny(deny),
        };
        let url = norm.bytes.as_slice();
        let trailing = norm.trailing_slash;
        let allowed = self.config.allow.matches(url);
        if !allowed && self.config.deny.matches(url) {
            return Route::Deny(Deny::NotFound);
        }
        let static_only = match normalize::visibility(url) {
            Visibility::Hidden if allowed => true,
            Visibility::Hidden => return Route::Deny(Deny::NotFound),
            Visibility::WellKnown => true,
            Visibility::Public => false,
        };

        // `/x.php/rest`: the script is the prefix and must be a regular file (nginx:
        // `try_files $fastcgi_script_name =404`), whatever the rest names.
        if let Some(end) = split_path_info(url, trailing) {
            let fs_path = self.fs_path(&url[..end], None);
            return match probe(&fs_path) {
                Probe::File => self.script(
                    fs_path,
                    ScriptUrl {
                        name: &url[..end],
                        path_info: &url[end..],
                        path_info_slash: trailing,
                    },
                    static_only,
                ),
                Probe::Denied => Route::Deny(Deny::Forbidden),
                _ => Route::Deny(Deny::NotFound),
            };
        }

        let fs_path = self.fs_path(url, None);
        // Anything ending in `.php` is PHP's: a regular file runs, anything else (missing,
        // a directory named `x.php`) is 404 and never reaches the front controller.
        if is_php_script(last_segment(url)) {
            return match probe(&fs_path) {
                Probe::File => self.script(
                    fs_path,
                    ScriptUrl {
                        name: url,
                        path_info: b"",
                        path_info_slash: false,
                    },
                    static_only,
                ),
                Probe::Denied => Route::Deny(Deny::Forbidden),
                _ => Route::Deny(Deny::NotFound),
            };
        }

        // The common case, a file reached by its own URL: one open beneath the root both
        // finds it and proves containment. Anything else takes the `stat` path below.
        let opened = if trailing {
            None
        } else {
            match self.open_beneath(&fs_path) {
                Some(Opened::Found(file, meta)) if meta.is_file() => {
                    return self.opened_file(fs_path, allowed, OpenFile::new(file, meta));
                }
                Some(Opened::Found(_, meta)) if meta.is_dir() => Some(Probe::Dir),
                Some(Opened::Missing) => Some(Probe::Missing),
                Some(Opened::Denied) => Some(Probe::Denied),
                _ => None,
            }
        };
        match opened.unwrap_or_else(|| probe(&fs_path)) {
            // `file/` is ENOTDIR to the kernel: not there.
            Probe::File if trailing => self.fallback(static_only),
            Probe::File => self.static_file(fs_path, allowed),
            Probe::Dir => self.directory(fs_path, url, trailing, raw_path, raw_query, static_only),
            Probe::Missing => self.fallback(static_only),
            Probe::Other => Route::Deny(Deny::NotFound),
            Probe::Denied => Route::Deny(Deny::Forbidden),
        }
    }

    /// The filesystem path of a normalised URL path (plus an optional `/name`): the
    /// configured root's bytes followed by the URL's, never `Path::join`.
    fn fs_path(&self, url: &[u8], name: Option<&str>) -> PathBuf {
        let (base, url) = match self.aliases.iter().find(|a| a.covers(url)) {
            Some(a) => (&a.base, &url[a.prefix.len()..]),
            None => (&self.base, url),
        };
        let extra = name.map_or(0, |n| n.len() + 1);
        let mut s = OsString::with_capacity(base.len() + url.len() + extra + 1);
        s.push(base);
        s.push(OsStr::from_bytes(url));
        if let Some(n) = name {
            s.push("/");
            s.push(n);
        }
        if s.is_empty() {
            s.push("/");
        }
        PathBuf::from(s)
    }

    /// A regular file reached by its own URL: PHP source stays hidden, and so do editor and
    /// backup copies of scripts ([`is_php_copy`]) unless `allow` names them, as it can a
    /// dotfile; the rest is static.
    fn static_file(&self, fs_path: PathBuf, allowed: bool) -> Route {
        if Self::hidden_file(&fs_path, allowed) {
            return Route::Deny(Deny::NotFound);
        }
        match self.real_path(&fs_path) {
            Ok(_) => Route::Static {
                path: fs_path,
                file: OpenFile::none(),
            },
            Err(deny) => Route::Deny(deny),
        }
    }

    /// As [`Router::static_file`], for a file opened beneath its base: containment is
    /// already proven by the open.
    fn opened_file(&self, fs_path: PathBuf, allowed: bool, file: OpenFile) -> Route {
        if Self::hidden_file(&fs_path, allowed) {
            return Route::Deny(Deny::NotFound);
        }
        Route::Static {
            path: fs_path,
            file,
        }
    }

    /// PHP source, or an editor or backup copy of a script not named by `allow`.
    fn hidden_file(fs_path: &Path, allowed: bool) -> bool {
        let name = fs_path.file_name().map_or(&b""[..], OsStrExt::as_bytes);
        is_php_source(name) || (!allowed && is_php_copy(name))
    }

    /// Opens `fs_path` beneath the document root or the alias folder it was built from.
    /// `None` when it was built from neither (it always is: defensive).
    fn open_beneath(&self, fs_path: &Path) -> Option<Opened> {
        let (base, _, rest) = self.split_base(fs_path)?;
        let rest = rest.strip_prefix(b"/").unwrap_or(rest);
        Some(base.open(OsStr::from_bytes(rest)))
    }

    /// The base `fs_path` was built from (an alias folder, else the document root): its
    /// descriptor, its real path and the rest of `fs_path` after it (empty or from `/`).
    fn split_base<'p>(
        &self,
        fs_path: &'p Path,
    ) -> Option<(&crate::open::BaseDir, &PathBuf, &'p [u8])> {
        let p = fs_path.as_os_str().as_bytes();
        let under = |base: &OsStr| {
            let rest = p.strip_prefix(base.as_bytes())?;
            matches!(rest.first(), None | Some(b'/')).then_some(rest)
        };
        self.aliases
            .iter()
            .find_map(|a| Some((&*a.dir, &a.real, under(&a.base)?)))
            .or_else(|| Some((&*self.base_dir, &self.real_root, under(&self.base)?)))
    }

    /// A regular file whose name ends in `.php`, about to run.
    fn script(&self, fs_path: PathBuf, url: ScriptUrl<'_>, static_only: bool) -> Route {
        if static_only {
            return Route::Deny(Deny::NotFound);
        }
        // SCRIPT_NAME and PATH_INFO are strings: a script reached through a non-UTF-8 URL
        // is not served (static files with such names still are).
        let (Ok(name), Ok(info)) = (
            std::str::from_utf8(url.name),
            std::str::from_utf8(url.path_info),
        ) else {
            return Route::Deny(Deny::NotFound);
        };
        let real = match self.real_path(&fs_path) {
            Ok(real) => real,
            Err(deny) => return Route::Deny(deny),
        };
        if self.is_no_exec(url.name, real.as_deref()) {
            return Route::Deny(Deny::Forbidden);
        }
        let mut path_info = String::with_capacity(info.len() + 1);
        path_info.push_str(info);
        if url.path_info_slash {
            path_info.push('/');
        }
        Route::Script {
            script_filename: fs_path,
            script_name: name.to_owned(),
            path_info,
        }
    }

    /// An existing directory: redirect to add the slash, else its first index file, else 403.
    fn directory(
        &self,
        fs_path: PathBuf,
        url: &[u8],
        trailing: bool,
        raw_path: &str,
        raw_query: Option<&str>,
        static_only: bool,
    ) -> Route {
        // Do not even reveal that a directory outside the root exists.
        if let Err(deny) = self.real_path(&fs_path) {
            return Route::Deny(deny);
        }
        if !trailing {
            return Route::Redirect {
                location: normalize::redirect_location(raw_path, raw_query),
            };
        }
        for index in &self.index {
            let candidate = self.fs_path(url, Some(index));
            match probe(&candidate) {
                Probe::File if is_php_script(index.as_bytes()) => {
                    let mut name = Vec::with_capacity(url.len() + 1 + index.len());
                    name.extend_from_slice(url);
                    name.push(b'/');
                    name.extend_from_slice(index.as_bytes());
                    return self.script(
                        candidate,
                        ScriptUrl {
                            name: &name,
                            path_info: b"",
                            path_info_slash: false,
                        },
                        static_only,
                    );
                }
                Probe::File => return self.static_file(candidate, false),
                Probe::Denied => return Route::Deny(Deny::Forbidden),
                Probe::Dir | Probe::Other | Probe::Missing => {}
            }
        }
        Route::Deny(Deny::Forbidden)
    }

    /// Nothing matched: the front controller, when there is one and it exists.
    fn fallback(&self, static_only: bool) -> Route {
        let Some(front) = self.front.as_deref() else {
            return Route::Deny(Deny::NotFound);
        };
        if static_only {
            return Route::Deny(Deny::NotFound);
        }
        let fs_path = self.fs_path(front, None);
        match probe(&fs_path) {
            Probe::File if is_php_script(front) => self.script(
                fs_path,
                ScriptUrl {
                    name: front,
                    path_info: b"",
                    path_info_slash: false,
                },
                false,
            ),
            // A non-PHP front controller (an SPA's index.html) is sent as it is; PHP source
            // under another extension is neither sent nor run.
            Probe::File => self.static_file(fs_path, false),
            Probe::Denied => Route::Deny(Deny::Forbidden),
            Probe::Dir | Probe::Other | Probe::Missing => Route::Deny(Deny::NotFound),
        }
    }

    /// The canonical path of a chosen file or directory, checked to lie under the canonical
    /// root unless symlinks may lead outside. `Ok(None)` when no check needs it.
    fn real_path(&self, fs_path: &Path) -> Result<Option<PathBuf>, Deny> {
        if self.config.follow_symlinks_outside && self.no_exec_real.is_empty() {
            return Ok(None);
        }
        let real = match self.real_without_links(fs_path) {
            Some(real) => real,
            None => match fs::canonicalize(fs_path) {
                Ok(real) => real,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(Deny::Forbidden)
                }
                Err(_) => return Err(Deny::NotFound),
            },
        };
        if !self.config.follow_symlinks_outside
            && !real.starts_with(&self.real_root)
            && !self.aliases.iter().any(|a| real.starts_with(&a.real))
        {
            return Err(Deny::NotFound);
        }
        Ok(Some(real))
    }

    /// The real path of `fs_path` when no component below its base (the document root or
    /// an alias folder, whose real paths are known) is a symbolic link: that base's real
    /// path plus the rest, found with one `lstat` per component below the base where
    /// `realpath` reads every component from `/`. `None` sends the caller to the full
    /// resolution: a link on the way, a component that is not there, or a path not built
    /// from a base.
    fn real_without_links(&self, fs_path: &Path) -> Option<PathBuf> {
        let (_, real, rest) = self.split_base(fs_path)?;
        let base = &fs_path.as_os_str().as_bytes()[..fs_path.as_os_str().len() - rest.len()];
        let rest = rest.strip_prefix(b"/").unwrap_or(rest);
        if rest.is_empty() {
            return Some(real.clone());
        }
        let mut cur = PathBuf::from(OsStr::from_bytes(base));
        for comp in rest.split(|&b| b == b'/') {
            if comp.is_empty() || comp == b"." || comp == b".." {
                return None;
            }
            cur.push(OsStr::from_bytes(comp));
            if fs::symlink_metadata(&cur).ok()?.file_type().is_symlink() {
                return None;
            }
        }
        Some(real.join(OsStr::from_bytes(rest)))
    }

    /// Whether a script lies below a no-exec prefix, by its URL path or by its real path
    /// (a symlink inside the root must not launder `uploads/shell.php`).
    fn is_no_exec(&self, url: &[u8], real: Option<&Path>) -> bool {
        let by_url = self.no_exec.iter().any(|prefix| {
            url.starts_with(prefix) && matches!(url.get(prefix.len()), None | Some(b'/'))
        });
        by_url || real.is_some_and(|real| self.no_exec_real.iter().any(|p| real.starts_with(p)))
    }
}
