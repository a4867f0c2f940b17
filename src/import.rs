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
    let include = |path: &str| -> Option<(String, String)> {
        let p = Path::new(path);
        let candidates: Vec<PathBuf> = if p.is_absolute() {
            vec![p.to_path_buf()]
        } else {
            dirs.iter().map(|d| d.join(p)).collect()
        };
        candidates.into_iter().find_map(|c| {
            let text = std::fs::read_to_string(&c).ok()?;
            Some((c.display().to_string(), text))
        })
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
