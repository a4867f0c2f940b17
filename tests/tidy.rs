//! Keeps ARCHITECTURE.md true: the crate graph follows its code map, its boundary claims
//! hold in the sources, the files it names exist, and every module says what it is for.
//!
//! It reads files only (no build, no PHP), so it runs in a blink with the other tests; a
//! failure names the file and the rule, and the fix is either the code or the document.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One row of the code map: the crate's folder, its package name, and its two cells.
struct Row {
    dir: PathBuf,
    package: String,
    owns: String,
    never: String,
}

/// The code map table, top to bottom: dependencies may only point down it.
fn code_map() -> Vec<Row> {
    let doc = read(&root().join("ARCHITECTURE.md"));
    let table = section(&doc, "## Code map");
    let mut rows = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(
            cells.len(),
            3,
            "ARCHITECTURE.md code map: a row needs 3 cells (crate | owns | never does): {line}"
        );
        let name = cells[0]
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("code map row without a `crate`: {line}"));
        let dir = if name == "isola" {
            root()
        } else {
            root().join(name)
        };
        let manifest: toml::Table = read(&dir.join("Cargo.toml"))
            .parse()
            .unwrap_or_else(|e| panic!("{}/Cargo.toml: {e}", dir.display()));
        let package = manifest["package"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{}/Cargo.toml: no package.name", dir.display()))
            .to_string();
        rows.push(Row {
            dir,
            package,
            owns: cells[1].to_string(),
            never: cells[2].to_string(),
        });
    }
    assert!(
        rows.len() > 5,
        "ARCHITECTURE.md: the code map table was not found"
    );
    rows
}

/// The text of a `## ` section, heading excluded.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no {heading:?} section"))
        + heading.len()
        + 1;
    let rest = &doc[start..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// Normal dependencies (not dev) of a crate, by package name.
fn dependencies(dir: &Path) -> Vec<String> {
    let manifest: toml::Table = read(&dir.join("Cargo.toml")).parse().expect("parsed above");
    ["dependencies", "build-dependencies"]
        .iter()
        .filter_map(|k| manifest.get(*k).and_then(|t| t.as_table()))
        .flat_map(|t| t.keys().cloned())
        .collect()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = all_files(dir);
    out.retain(|p| p.extension().is_some_and(|x| x == "rs"));
    out
}

/// Every file under `dir`, recursively, build output left out.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target") {
                    stack.push(p);
                }
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A crate's own sources: `src/` (for the root package, not the other crates below it).
fn sources(row: &Row) -> Vec<PathBuf> {
    rust_files(&row.dir.join("src"))
}

/// The source with `#[cfg(test)]` modules cut off: rules are about what ships.
fn shipped(text: &str) -> &str {
    &text[..text.find("#[cfg(test)]").unwrap_or(text.len())]
}

fn crates_in_workspace() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_crate_has_a_row_in_the_code_map_saying_what_it_owns_and_never_does() {
    let rows = code_map();
    for dir in crates_in_workspace() {
        assert!(
            rows.iter().any(|r| r.dir == dir),
            "{} has no row in ARCHITECTURE.md's code map",
            dir.display()
        );
    }
    for r in &rows {
        assert!(
            r.owns.len() > 10 && r.never.len() > 5,
            "ARCHITECTURE.md: the row of {} must say what it owns and what it never does",
            r.package
        );
    }
}

#[test]
fn crate_dependencies_point_down_the_code_map() {
    let rows = code_map();
    let rank: BTreeMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.package.as_str(), i))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        for dep in dependencies(&r.dir) {
            if let Some(&j) = rank.get(dep.as_str()) {
                assert!(
                    j > i,
                    "{} depends on {dep}, which is above it in ARCHITECTURE.md's code map; \
                     dependencies point down the list",
                    r.package
                );
            }
        }
    }
}

/// The boundary paragraph of ARCHITECTURE.md, as rules on dependencies.
#[test]
fn the_boundary_claims_hold_for_dependencies() {
    let rows = code_map();
    let deps = |package: &str| {
        let r = rows
            .iter()
            .find(|r| r.package == package)
            .unwrap_or_else(|| panic!("{package} is not in the code map"));
        dependencies(&r.dir)
    };
    // "fastcgi is sans-I/O": byte buffers and error types, nothing that can do I/O.
    for d in deps("isola-fastcgi") {
        assert!(
            ["bytes", "thiserror"].contains(&d.as_str()),
            "isola-fastcgi is sans-I/O, yet depends on {d}"
        );
    }
    // "router ... never knows HTTP types" and does no async I/O.
    for d in deps("isola-router") {
        assert!(
            !["http", "hyper", "tokio"].contains(&d.as_str()),
            "isola-router must not know HTTP or run I/O, yet depends on {d}"
        );
    }
    // "only front and admin speak HTTP": hyper, in the workspace, is theirs alone.
    for r in &rows {
        let speaks_http = dependencies(&r.dir)
            .iter()
            .any(|d| d == "hyper" || d == "hyper-util");
        assert!(
            !speaks_http || ["isola-front", "isola-admin"].contains(&r.package.as_str()),
            "{} depends on hyper; only isola-front and isola-admin speak HTTP",
            r.package
        );
    }
}

#[test]
fn the_boundary_claims_hold_in_the_sources() {
    let rows = code_map();
    // "only the binary knows argv, env and signals"
    let binary_only = [
        "std::env::var",
        "env::var_os",
        "env::vars",
        "env::args",
        "tokio::signal",
    ];
    // "fastcgi ... on byte buffers only"
    let no_io = [
        "std::fs",
        "std::net",
        "std::io::Read",
        "tokio",
        "std::process",
    ];
    for r in rows.iter().filter(|r| r.package != "isola") {
        for f in sources(r) {
            let text = read(&f);
            let text = shipped(&text);
            for word in binary_only {
                assert!(
                    !text.contains(word),
                    "{}: uses {word}; only the binary reads argv, the environment and \
                     signals, and hands the crates what they need",
                    f.display()
                );
            }
            if r.package == "isola-fastcgi" {
                for word in no_io {
                    assert!(
                        !text.contains(word),
                        "{}: uses {word}, but the FastCGI codec is sans-I/O",
                        f.display()
                    );
                }
            }
        }
    }
}

#[test]
fn every_module_starts_with_its_doc() {
    let rows = code_map();
    for r in &rows {
        for f in sources(r) {
            let text = read(&f);
            assert!(
                text.trim_start().starts_with("//!"),
                "{}: a module starts with `//!` docs saying what it owns (and what it must \
                 never do)",
                f.display()
            );
        }
    }
}

#[test]
fn the_files_the_code_map_names_exist() {
    for r in code_map() {
        // The root package's own files are under src/; a crate's anywhere in its folder.
        let base = if r.package == "isola" {
            r.dir.join("src")
        } else {
            r.dir.clone()
        };
        let files = all_files(&base);
        for (k, name) in r.owns.split('`').enumerate() {
            // Odd pieces are inside backticks; file names are those with a source suffix.
            // A leading slash is a URL path (`/status.js`), not a file.
            let is_file = k % 2 == 1
                && !name.starts_with('/')
                && [".rs", ".c", ".js"].iter().any(|x| name.ends_with(x));
            if is_file {
                assert!(
                    files.iter().any(|f| f.ends_with(name)),
                    "ARCHITECTURE.md names {name} for {}, but there is no such file",
                    r.package
                );
            }
        }
    }
}

#[test]
fn the_entry_points_exist() {
    let doc = read(&root().join("ARCHITECTURE.md"));
    let entry = section(&doc, "## Entry points: start reading here");
    let mut named = 0;
    for (k, piece) in entry.split('`').enumerate() {
        if k % 2 == 1 && piece.contains('/') && !piece.contains(' ') {
            let path = piece.split("::").next().unwrap_or(piece);
            assert!(
                root().join(path).exists(),
                "ARCHITECTURE.md's entry points name {path}, which does not exist"
            );
            named += 1;
        }
    }
    assert!(named >= 5, "the entry points section names too few files");
}

#[test]
fn documents_the_sources_point_to_exist() {
    let mut files = rust_files(&root().join("src"));
    for dir in crates_in_workspace() {
        files.extend(rust_files(&dir.join("src")));
    }
    for f in files {
        let text = read(&f);
        for line in text.lines().filter(|l| l.trim_start().starts_with("//")) {
            for word in line.split(|c: char| c.is_whitespace() || "`()[],;:".contains(c)) {
                let word = word.trim_end_matches('.');
                if word.ends_with(".md") && !word.contains("://") {
                    let name = word.trim_start_matches("../");
                    assert!(
                        root().join(name).is_file() || root().join("docs").join(name).is_file(),
                        "{}: points to {word}, which is not in the repository",
                        f.display()
                    );
                }
            }
        }
    }
}
