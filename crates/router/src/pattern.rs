//! URL path patterns of the configuration (`deny`, `allow`, Cache-Control rules).
//!
//! Owns: the pattern syntax and matching. A pattern with a `/` matches the whole decoded,
//! normalised URL path and must start with `/` (`/vendor/**`, `/assets/*.css`); a pattern
//! without one matches the last segment in any folder (`*.sql`, `composer.json`). `*` and
//! `?` never cross a `/`, `**` does, `{a,b}` and `[...]` work as in shells; matching is
//! case-sensitive, like Linux file names. `/dir/**` also matches `/dir` itself.
//!
//! Never: touches the filesystem.
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A pattern that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// Why.
    pub reason: String,
}

/// An ordered list of path patterns, compiled.
#[derive(Debug, Clone, Default)]
pub struct PathPatterns {
    /// Patterns over the whole path, with their index in the list.
    full: GlobSet,
    full_index: Vec<usize>,
    /// Patterns over the last segment, with their index in the list.
    name: GlobSet,
    name_index: Vec<usize>,
    len: usize,
}

fn glob(pattern: &str) -> Result<Glob, PatternError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| PatternError {
            pattern: pattern.to_owned(),
            reason: e.kind().to_string(),
        })
}

impl PathPatterns {
    /// Compiles `patterns`, in order.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut full = GlobSetBuilder::new();
        let mut name = GlobSetBuilder::new();
        let (mut full_index, mut name_index) = (Vec::new(), Vec::new());
        for (i, p) in patterns.iter().enumerate() {
            let p = p.as_ref();
            let bad = |reason: &str| PatternError {
                pattern: p.to_owned(),
                reason: reason.to_owned(),
            };
            if p.is_empty() {
                return Err(bad("empty pattern"));
            }
            if p.contains('\0') {
                return Err(bad("contains NUL"));
            }
            if p.contains('/') {
                if !p.starts_with('/') {
                    return Err(bad(
                        "a pattern with a `/` matches the whole path and must start with `/`",
                    ));
                }
                full.add(glob(p)?);
                full_index.push(i);
                if let Some(dir) = p.strip_suffix("/**") {
                    if !dir.is_empty() {
                        full.add(glob(dir)?);
                        full_index.push(i);
                    }
                }
            } else {
                name.add(glob(p)?);
                name_index.push(i);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| PatternError {
                pattern: patterns
                    .iter()
                    .map(|p| p.as_ref())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: e.to_string(),
            })
        };
        Ok(Self {
            full: build(full)?,
            full_index,
            name: build(name)?,
            name_index,
            len: patterns.len(),
        })
    }

    /// How many patterns.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No patterns.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any pattern matches the normalised URL path `url` (decoded bytes, starting
    /// with `/`).
    pub fn matches(&self, url: &[u8]) -> bool {
        self.first_match(url).is_some()
    }

    /// The index of the first pattern (in configuration order) that matches `url`.
    pub fn first_match(&self, url: &[u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let path = Path::new(OsStr::from_bytes(url));
        let last = url.rsplit(|&b| b == b'/').next().unwrap_or(url);
        let full = self
            .full
            .matches(path)
            .into_iter()
            .map(|k| self.full_index[k]);
        let name = self
            .name
            .matches(Path::new(OsStr::from_bytes(last)))
            .into_iter()
            .map(|k| self.name_index[k]);
        full.chain(name).min()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(list: &[&str]) -> PathPatterns {
        PathPatterns::new(list).unwrap()
    }

    #[test]
    fn name_patterns_match_in_any_folder() {
        let ps = p(&["*.sql", "composer.json"]);
        assert!(ps.matches(b"/dump.sql"));
        assert!(ps.matches(b"/a/b/dump.sql"));
        assert!(ps.matches(b"/app/composer.json"));
        assert!(!ps.matches(b"/dump.sql.txt"));
        assert!(!ps.matches(b"/composer.json.bak"));
    }

    #[test]
    fn path_patterns_are_anchored_and_star_stays_in_a_segment() {
        let ps = p(&["/assets/*.css"]);
        assert!(ps.matches(b"/assets/site.css"));
        assert!(!ps.matches(b"/assets/deep/site.css"));
        assert!(!ps.matches(b"/x/assets/site.css"));
        let ps = p(&["/vendor/**"]);
        assert!(ps.matches(b"/vendor"));
        assert!(ps.matches(b"/vendor/a/b.php"));
        assert!(!ps.matches(b"/vendors"));
        assert!(!ps.matches(b"/a/vendor/x"));
    }

    #[test]
    fn first_match_follows_configuration_order() {
        let ps = p(&["/assets/**", "*.css"]);
        assert_eq!(ps.first_match(b"/assets/a.css"), Some(0));
        assert_eq!(ps.first_match(b"/b.css"), Some(1));
        assert_eq!(ps.first_match(b"/b.js"), None);
        let ps = p(&["*.css", "/assets/**"]);
        assert_eq!(ps.first_match(b"/assets/a.css"), Some(0));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for bad in ["", "assets/*.css", "/a/[b", "x\0y"] {
            let e = PathPatterns::new(&[bad]).unwrap_err();
            assert_eq!(e.pattern, bad);
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn non_utf8_paths_are_matched_bytewise() {
        let ps = p(&["*.bin"]);
        assert!(ps.matches(b"/caf\xe9.bin"));
    }
}
