//! `isola import`: an nginx server block and a php-fpm pool, translated into an isola.toml.
//!
//! Owns: reading nginx configuration syntax ([`nginx`]) and php-fpm's ini dialect
//! ([`fpm`]) from strings, the mapping of the common shapes to isola.toml keys
//! (`translate`), and a [`Note`] for every directive that is not translated, or is
//! translated with a caveat, naming its file and line.
//!
//! Never: opens files on its own (an `include` is read only through the reader the caller
//! passes), writes anything, or validates the result against the machine (the binary runs
//! the config crate's loader on it; the tests do too).

pub mod fpm;
pub mod nginx;
mod render;
mod translate;

pub use translate::IncludeReader;

/// A configuration file given to [`import`]: its name (for notes and errors) and text.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The file's name as the user gave it.
    pub name: &'a str,
    /// Its contents.
    pub text: &'a str,
}

/// What to translate.
#[derive(Clone, Copy, Default)]
pub struct Options<'a> {
    /// The server block to translate: one of its `server_name`s, or its number (1-based);
    /// the first one that is not a plain redirect to HTTPS when unset.
    pub server: Option<&'a str>,
    /// Reads nginx `include`s; they are reported as not translated without one.
    pub include: Option<IncludeReader<'a>>,
}

/// Whether a note is a loss or a remark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// The directive is not translated: its effect is lost or differs.
    Untranslated,
    /// Translated, implied or not needed, with something worth knowing.
    Info,
}

/// One directive and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Not translated, or a remark.
    pub kind: NoteKind,
    /// The file it is in.
    pub file: String,
    /// Its 1-based line (0 when it names something missing rather than a line).
    pub line: usize,
    /// The directive, shortened.
    pub directive: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.kind {
            NoteKind::Untranslated => "",
            NoteKind::Info => "note: ",
        };
        match (self.file.is_empty(), self.line) {
            (true, _) => write!(f, "{} — {tag}{}", self.directive, self.reason),
            (false, 0) => write!(
                f,
                "{}: {} — {tag}{}",
                self.file, self.directive, self.reason
            ),
            (false, l) => write!(
                f,
                "{}:{l}: {} — {tag}{}",
                self.file, self.directive, self.reason
            ),
        }
    }
}

/// The result: isola.toml text and the notes, in file and line order.
#[derive(Debug, Clone)]
pub struct Import {
    /// isola.toml, starting with a comment naming the sources.
    pub toml: String,
    /// Every directive not translated (and the remarks), one each.
    pub notes: Vec<Note>,
}

impl Import {
    /// The directives that were not translated.
    pub fn untranslated(&self) -> impl Iterator<Item = &Note> {
        self.notes
            .iter()
            .filter(|n| n.kind == NoteKind::Untranslated)
    }
}

/// Input that cannot be translated at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Not valid nginx or php-fpm syntax.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The nginx file has no `server { }` block.
    #[error("{file}: no server block (give a site's file, e.g. /etc/nginx/sites-enabled/default, or nginx.conf)")]
    NoServer {
        /// The file.
        file: String,
    },
    /// `--server` names no block.
    #[error("{file}: no server block named {name:?}; it has {have}")]
    NoSuchServer {
        /// The file.
        file: String,
        /// What was asked for.
        name: String,
        /// The blocks there are.
        have: String,
    },
    /// The php-fpm file has no pool section.
    #[error("{file}: no pool section such as [www]")]
    NoPool {
        /// The file.
        file: String,
    },
    /// Neither file was given.
    #[error("nothing to import: give an nginx file, a php-fpm pool file, or both")]
    Nothing,
}

/// Translates `nginx` (a site's file or a whole nginx.conf) and `fpm` (a pool file), either
/// or both, into isola.toml text and notes.
pub fn import(
    nginx: Option<Source<'_>>,
    fpm: Option<Source<'_>>,
    opts: &Options<'_>,
) -> Result<Import, ImportError> {
    if nginx.is_none() && fpm.is_none() {
        return Err(ImportError::Nothing);
    }
    let nginx = match nginx {
        Some(s) => {
            let list = nginx::parse(s.name, s.text)?;
            Some((s.name, translate::expand(list, opts.include, 0)?))
        }
        None => None,
    };
    let fpm = match fpm {
        Some(s) => Some((s.name, fpm::parse(s.name, s.text)?)),
        None => None,
    };
    let t = translate::translate(nginx, fpm, opts.server)?;
    Ok(Import {
        toml: t.doc.render(&t.header),
        notes: t.notes,
    })
}
