//! `isola import`: reads the nginx and php-fpm files named on the command line (and the
//! nginx `include`s it can find), has `isola-import` translate them, checks the result
//! parses as isola.toml, and prints it on stdout with the notes on stderr.
//!
//! Never writes a file: the user redirects stdout where they want it.

use crate::cli::ImportArgs;
use std::path::{Path, PathBuf};

/// Runs the import; the exit status: 0 translated (even with notes), 2 when an input
/// cannot be read or parsed, 1 if the translation itself is not valid isola.toml (a bug).
pub fn run(args: &ImportArgs) -> u8 {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            eprintln!("isola: import: cannot read {}: {e}", p.display());
        })
    };
    let Ok(nginx_text) = args.nginx.as_deref().map(read).transpose() else {
        return 2;
    };
    let Ok(fpm_text) = args.fpm.as_deref().map(read).transpose() else {
        return 2;
    };
    let nginx_name = args.nginx.as_ref().map(|p| p.display().to_string());
    let fpm_name = args.fpm.as_ref().map(|p| p.display().to_string());
    let dirs: Vec<PathBuf> = args
        .nginx
        .as_deref()
        .and_then(Path::parent)
        .map(|d| {
            let mut v = vec![d.to_path_buf()];
            v.extend(d.parent().map(Path::to_path_buf));
            v
        })
        .unwrap_or_default();
    let include = |path: &str| -> Vec<(String, String)> {
        let p = Path::new(path);
        let candidates: Vec<PathBuf> = if p.is_absolute() {
            vec![p.to_path_buf()]
        } else {
            dirs.iter().map(|d| d.join(p)).collect()
        };
        candidates
            .iter()
            .map(|c| matching(c))
            .find(|found| !found.is_empty())
            .unwrap_or_default()
    };
    fn source<'a>(
        name: &'a Option<String>,
        text: &'a Option<String>,
    ) -> Option<isola_import::Source<'a>> {
        name.as_deref()
            .zip(text.as_deref())
            .map(|(name, text)| isola_import::Source { name, text })
    }
    let opts = isola_import::Options {
        server: args.server.as_deref(),
        include: Some(&include),
    };
    let out = match isola_import::import(
        source(&nginx_name, &nginx_text),
        source(&fpm_name, &fpm_text),
        &opts,
    ) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("isola: import: {e}");
            return 2;
        }
    };
    if let Err(e) = isola_config::RawConfig::from_toml(&out.toml, Path::new("<import>")) {
        eprintln!(
            "isola: import: the translation is not valid isola.toml (a bug in isola import): {e}"
        );
        return 1;
    }
    print!("{}", out.toml);
    for n in &out.notes {
        eprintln!("{n}");
    }
    let lost = out.untranslated().count();
    eprintln!(
        "isola: import: {lost} directive{} not translated, {} note{}",
        if lost == 1 { "" } else { "s" },
        out.notes.len() - lost,
        if out.notes.len() - lost == 1 { "" } else { "s" },
    );
    0
}

/// The readable files `path` names: itself, or with `*` / `?` in its last component, the
/// matching files of its folder in name order (as nginx's glob).
fn matching(path: &Path) -> Vec<(String, String)> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .map(|t| (p.display().to_string(), t))
    };
    let Some(pattern) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !pattern.contains(['*', '?']) {
        return read(path).into_iter().collect();
    }
    let Some(dir) = path.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && wildcard(pattern.as_bytes(), n.as_bytes()))
        .collect();
    names.sort();
    names.iter().filter_map(|n| read(&dir.join(n))).collect()
}

/// `*` and `?` matching of one file name.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| wildcard(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && wildcard(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && wildcard(rest, &s[1..]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_file_name() {
        assert!(wildcard(b"*", b"default"));
        assert!(wildcard(b"*.conf", b"a.conf"));
        assert!(!wildcard(b"*.conf", b"a.conf.bak"));
        assert!(wildcard(b"site-?", b"site-1"));
        assert!(!wildcard(b"site-?", b"site-"));
    }

    #[test]
    fn includes_expand_in_name_order_without_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.conf", "a.conf", ".hidden.conf", "c.txt"] {
            std::fs::write(dir.path().join(n), n).unwrap();
        }
        let found = matching(&dir.path().join("*.conf"));
        let names: Vec<&str> = found.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(names, ["a.conf", "b.conf"]);
        assert_eq!(matching(&dir.path().join("c.txt")).len(), 1);
        assert!(matching(&dir.path().join("missing")).is_empty());
    }
}
