//! Pure byte work on request paths: strict percent-decoding, normalisation (`//`, `.`, `..`),
//! and the questions the resolver asks about a normalised path (hidden segments, PHP-source
//! extensions, where PATH_INFO starts) plus the percent-encoded Location of a directory
//! redirect.
//!
//! Never: touches the filesystem, and never turns decoded bytes into a path that could leave
//! the document root — a `..` above the root is refused here, before any `stat`.

use crate::Deny;

/// A decoded, normalised request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Normalized {
    /// Empty for the root, else `/seg(/seg)*`: no empty, `.` or `..` segment, no trailing
    /// slash, no NUL. Bytes, not `str`: Linux file names need not be UTF-8.
    pub(crate) bytes: Vec<u8>,
    /// The request named a directory: it ended in `/`, `/.` or `/..`, or is the root.
    pub(crate) trailing_slash: bool,
}

/// Decodes `%XX` escapes (all of them, `%2F` and `%2E` included, as nginx does) and
/// normalises the result.
///
/// Refuses with [`Deny::BadRequest`]: a path not starting with `/`, a `%` not followed by two
/// hex digits, a NUL byte (encoded or not), and a `..` that would climb above the root.
/// Backslash is an ordinary byte here, exactly as it is in a Linux file name.
pub(crate) fn normalize(raw: &str) -> Result<Normalized, Deny> {
    let mut buf = decode(raw)?;
    let trailing_slash = normalize_in_place(&mut buf)?;
    Ok(Normalized {
        bytes: buf,
        trailing_slash,
    })
}

/// Strict percent-decoding into one new buffer.
fn decode(raw: &str) -> Result<Vec<u8>, Deny> {
    let raw = raw.as_bytes();
    if raw.first() != Some(&b'/') {
        return Err(Deny::BadRequest);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let byte = if b == b'%' {
            // nginx answers 400 to a bad escape in the path; so do we.
            let hi = raw
                .get(i + 1)
                .copied()
                .and_then(hex)
                .ok_or(Deny::BadRequest)?;
            let lo = raw
                .get(i + 2)
                .copied()
                .and_then(hex)
                .ok_or(Deny::BadRequest)?;
            i += 3;
            (hi << 4) | lo
        } else {
            i += 1;
            b
        };
        if byte == 0 {
            return Err(Deny::BadRequest);
        }
        out.push(byte);
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Collapses `//`, drops `.`, resolves `..` in place; returns whether the path names a
/// directory (trailing slash, trailing `.`/`..`, or the root).
///
/// Works in the decoded buffer itself: every output segment is written at or before the
/// slash that preceded it in the input, so writes never overtake reads.
fn normalize_in_place(buf: &mut Vec<u8>) -> Result<bool, Deny> {
    let len = buf.len();
    let mut w = 0; // buf[..w] is the normalised output so far
    let mut r = 0;
    let mut trailing = false;
    while r < len {
        if buf[r] == b'/' {
            r += 1;
            trailing = true;
            continue;
        }
        let start = r;
        let end = buf[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(len, |p| start + p);
        r = end;
        match &buf[start..end] {
            b"." => trailing = true,
            b".." => {
                if w == 0 {
                    // Above the root: nginx answers 400.
                    return Err(Deny::BadRequest);
                }
                w = buf[..w].iter().rposition(|&b| b == b'/').unwrap_or(0);
                trailing = true;
            }
            _ => {
                // Invariant: w < start (the input had a '/' at start - 1 that we consumed).
                buf[w] = b'/';
                buf.copy_within(start..end, w + 1);
                w += 1 + (end - start);
                trailing = false;
            }
        }
    }
    buf.truncate(w);
    Ok(trailing || w == 0)
}

/// Normalises a path from the configuration (not percent-encoded, relative to the root,
/// leading `/` optional) to the `/seg(/seg)*` form; `None` if it contains NUL or climbs
/// above the root.
pub(crate) fn normalize_relative(path: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(path.len() + 1);
    for seg in path.as_bytes().split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                let cut = out.iter().rposition(|&b| b == b'/')?;
                out.truncate(cut);
            }
            _ if seg.contains(&0) => return None,
            _ => {
                out.push(b'/');
                out.extend_from_slice(seg);
            }
        }
    }
    Some(out)
}

/// The segments of a normalised path (none for the root).
pub(crate) fn segments(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').skip(1)
}

/// The last segment of a normalised path (empty for the root).
pub(crate) fn last_segment(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(p) => &path[p + 1..],
        None => path,
    }
}

/// Whether a normalised path may be served, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// No segment starts with `.`.
    Public,
    /// The first segment is `.well-known` and no other starts with `.`: static files only.
    WellKnown,
    /// Some segment starts with `.` (`.env`, `.git/config`, `a/.hidden/b`): must stay hidden.
    Hidden,
}

/// Classifies a normalised path by its dot segments.
pub(crate) fn visibility(path: &[u8]) -> Visibility {
    let mut vis = Visibility::Public;
    for (i, seg) in segments(path).enumerate() {
        if seg.first() == Some(&b'.') {
            if i == 0 && seg == b".well-known" {
                vis = Visibility::WellKnown;
            } else {
                return Visibility::Hidden;
            }
        }
    }
    vis
}

/// Whether a file name is an executable PHP script: ends in `.php`, case-sensitively, as
/// nginx's `\.php$` does.
pub(crate) fn is_php_script(name: &[u8]) -> bool {
    name.ends_with(b".php")
}

/// Extensions whose files hold PHP source: never sent as they are, never executed unless the
/// name ends in exactly `.php`.
const PHP_SOURCE_EXTENSIONS: [&[u8]; 10] = [
    b"php", b"phtml", b"php3", b"php4", b"php5", b"php7", b"php8", b"phps", b"phar", b"inc",
];

/// Whether a file name has a PHP-source extension, case-insensitively (`.PHP`, `.Phtml`).
pub(crate) fn is_php_source(name: &[u8]) -> bool {
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    let ext = &name[dot + 1..];
    PHP_SOURCE_EXTENSIONS
        .iter()
        .any(|e| e.eq_ignore_ascii_case(ext))
}

/// Final extensions that keep a `*.php.*` name servable: types a site really serves under
/// a double extension (`chart.php.png` written by a script, `app.php.js` from a bundler)
/// and that nothing which copies a file ever picks. Text types (`.txt`, `.bak`, `.orig`,
/// ...) and compressed ones (`.gz`, `.zip`: a compressed copy of the source is still the
/// source) are left out on purpose, so they fall under [`is_php_copy`].
const COPY_SAFE_EXTENSIONS: [&[u8]; 26] = [
    b"png", b"jpg", b"jpeg", b"gif", b"webp", b"avif", b"ico", b"bmp", b"svg", b"woff", b"woff2",
    b"ttf", b"otf", b"eot", b"css", b"js", b"mjs", b"map", b"html", b"htm", b"json", b"pdf",
    b"mp4", b"webm", b"mp3", b"ogg",
];

/// Whether `ext` is a PHP-source extension, or one with a JetBrains "safe write" tail
/// (`php___jb_tmp___`, `php___jb_old___`).
fn is_php_ext_token(ext: &[u8]) -> bool {
    PHP_SOURCE_EXTENSIONS.iter().any(|e| {
        ext.len() >= e.len()
            && ext[..e.len()].eq_ignore_ascii_case(e)
            && (ext.len() == e.len() || ext[e.len()..].starts_with(b"___jb_"))
    })
}

/// Whether a file name looks like a copy of a PHP script that editors, deploy tools or
/// package managers leave behind, which would send the script's source if served as it is.
///
/// The rule is by name only (the file's contents are never read), case-insensitive on the
/// extension, and errs on refusing:
/// - a trailing `~` (vim, emacs, nano, gedit backups: `index.php~`, `index.php~~`);
/// - emacs autosave `#index.php#` and lock `.#index.php`;
/// - a PHP extension followed by any other extension (`index.php.bak`, `.old`, `.orig`,
///   `.rej`, `.save`, `.swp`/`.swo`/`.swn`, `.tmp`, `.dist`, `.dpkg-old`/`-dist`/`-new`,
///   `.ucf-old`, `.rpmsave`/`.rpmnew`, `.1`, `.txt`, rsync's `.index.php.Ab12Cd`, ...),
///   unless that last extension is in [`COPY_SAFE_EXTENSIONS`]: listing what copies look
///   like could never be complete, listing what a site serves can;
/// - JetBrains safe-write files `index.php___jb_tmp___` and `index.php___jb_old___`.
///
/// A segment before the first dot is the name, not an extension: `php.ini.bak` is not
/// refused by this rule (it may be by `deny`).
pub(crate) fn is_php_copy(name: &[u8]) -> bool {
    let mut base = name;
    while let [rest @ .., b'~'] = base {
        base = rest;
    }
    if let Some(inner) = base.strip_prefix(b".#") {
        base = inner;
    } else if let [b'#', inner @ .., b'#'] = base {
        base = inner;
    }
    // A `~`, `#…#` or `.#` around the name: an editor's copy whatever the extensions.
    let wrapped = base.len() != name.len();
    let mut exts = base.split(|&b| b == b'.');
    // The first piece is the name (empty for a dotfile, whose name is the next piece).
    let first = exts.next().unwrap_or_default();
    if first.is_empty() {
        exts.next();
    }
    let exts: Vec<&[u8]> = exts.collect();
    let Some(pos) = exts.iter().position(|e| is_php_ext_token(e)) else {
        return false;
    };
    let last = exts[exts.len() - 1];
    if pos + 1 == exts.len() {
        // The PHP extension is the last one: a copy only if something was stripped from
        // around it (`~`, `#`, `.#`) or it carries a JetBrains tail.
        return wrapped
            || !PHP_SOURCE_EXTENSIONS
                .iter()
                .any(|e| e.eq_ignore_ascii_case(last));
    }
    wrapped
        || !COPY_SAFE_EXTENSIONS
            .iter()
            .any(|e| e.eq_ignore_ascii_case(last))
}

/// Where nginx's `fastcgi_split_path_info ^(.+?\.php)(/.*)$` would cut a normalised path:
/// the end of the first segment ending in `.php` that something follows (a segment, or the
/// trailing slash). `None` when there is no such segment.
pub(crate) fn split_path_info(path: &[u8], trailing_slash: bool) -> Option<usize> {
    let mut end = 0;
    for seg in segments(path) {
        end += 1 + seg.len();
        if is_php_script(seg) && (end < path.len() || trailing_slash) {
            return Some(end);
        }
    }
    None
}

/// The Location of the redirect that adds a slash to a directory URL, built from the raw
/// (still percent-encoded) path and query.
///
/// Runs of `/` collapse to one, so the value never starts with `//` (a protocol-relative
/// redirect to another host). Bytes that could end the header or be reinterpreted by a
/// browser (controls, space, `\`, which browsers treat as `/`, quotes, `#`, non-ASCII) are
/// percent-encoded; existing `%XX` escapes are kept as they are.
pub(crate) fn redirect_location(raw_path: &str, raw_query: Option<&str>) -> String {
    let query = raw_query.filter(|q| !q.is_empty());
    let mut out = String::with_capacity(raw_path.len() + 2 + query.map_or(0, |q| q.len() + 1));
    let mut prev_slash = false;
    for &b in raw_path.as_bytes() {
        if b == b'/' {
            if prev_slash {
                continue;
            }
            prev_slash = true;
        } else {
            prev_slash = false;
        }
        push_escaped(&mut out, b, b"?");
    }
    if !prev_slash {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        for &b in q.as_bytes() {
            push_escaped(&mut out, b, b"");
        }
    }
    out
}

/// Pushes `b`, percent-encoded if it is unsafe in a Location header or listed in `extra`.
fn push_escaped(out: &mut String, b: u8, extra: &[u8]) {
    let unsafe_byte = b <= b' '
        || b >= 0x7f
        || matches!(
            b,
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' | b'#'
        )
        || extra.contains(&b);
    if unsafe_byte {
        out.push_str(percent_encoding::percent_encode_byte(b));
    } else {
        out.push(char::from(b));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<(String, bool), Deny> {
        normalize(raw).map(|n| (String::from_utf8(n.bytes).unwrap(), n.trailing_slash))
    }

    fn ok(raw: &str, path: &str, trailing: bool) {
        assert_eq!(norm(raw), Ok((path.to_owned(), trailing)), "raw {raw:?}");
    }

    #[test]
    fn plain_paths_pass_through() {
        ok("/", "", true);
        ok("/a", "/a", false);
        ok("/a/b.txt", "/a/b.txt", false);
        ok("/a/", "/a", true);
    }

    #[test]
    fn slashes_and_dots_collapse() {
        ok("//a///b//", "/a/b", true);
        ok("/./a/./b", "/a/b", false);
        ok("/a/.", "/a", true);
        ok("/a/b/..", "/a", true);
        ok("/a/b/../c", "/a/c", false);
        ok("/a/..", "", true);
        ok("/a/../", "", true);
        ok("/a..b/..c/c..", "/a..b/..c/c..", false);
        ok("/...", "/...", false);
    }

    #[test]
    fn traversal_above_the_root_is_bad_request() {
        for raw in [
            "/..",
            "/../",
            "/../etc/passwd",
            "/a/../..",
            "/a/../../b",
            "/%2e%2e/",
            "/%2E%2E/etc/passwd",
            "/.%2e/x",
            "/..%2f..%2fetc/passwd",
            "/a/%2e%2e/%2e%2e/b",
            "/a%2F..%2F..%2Fb",
        ] {
            assert_eq!(norm(raw), Err(Deny::BadRequest), "raw {raw:?}");
        }
    }

    #[test]
    fn encoded_separators_and_dots_decode_before_normalising() {
        ok("/a%2Fb", "/a/b", false);
        ok("/a%2fb%2f", "/a/b", true);
        ok("/a/%2e/b", "/a/b", false);
        ok("/a/b/%2e%2e", "/a", true);
        ok("/%41%62", "/Ab", false);
    }

    #[test]
    fn double_encoding_stays_literal() {
        ok("/%252e%252e/x", "/%2e%2e/x", false);
        ok("/%25", "/%", false);
    }

    #[test]
    fn bad_escapes_and_nul_are_bad_request() {
        for raw in [
            "/%",
            "/%2",
            "/%zz",
            "/%g0",
            "/a%",
            "/%00",
            "/a%00.php",
            "/a\0b",
            "/x%0",
        ] {
            assert_eq!(norm(raw), Err(Deny::BadRequest), "raw {raw:?}");
        }
        assert_eq!(norm("/uploads/evil.jpg%00.php"), Err(Deny::BadRequest));
    }

    #[test]
    fn not_origin_form_is_bad_request() {
        for raw in ["", "a", "*", "http://x/", "%2F"] {
            assert_eq!(norm(raw), Err(Deny::BadRequest), "raw {raw:?}");
        }
    }

    #[test]
    fn backslash_is_an_ordinary_byte() {
        ok("/..\\..\\etc\\passwd", "/..\\..\\etc\\passwd", false);
        ok("/a\\..\\..\\b", "/a\\..\\..\\b", false);
        ok("/a/%5c..%5c..%5cb", "/a/\\..\\..\\b", false);
    }

    #[test]
    fn non_utf8_bytes_survive() {
        let n = normalize("/caf%E9/%ff").unwrap();
        assert_eq!(n.bytes, b"/caf\xe9/\xff");
    }

    #[test]
    fn plus_and_space() {
        ok("/a+b%20c", "/a+b c", false);
    }

    #[test]
    fn visibility_rules() {
        assert_eq!(visibility(b""), Visibility::Public);
        assert_eq!(visibility(b"/a/b.txt"), Visibility::Public);
        assert_eq!(visibility(b"/.env"), Visibility::Hidden);
        assert_eq!(visibility(b"/.git/config"), Visibility::Hidden);
        assert_eq!(visibility(b"/a/.hidden/b.txt"), Visibility::Hidden);
        assert_eq!(visibility(b"/..\\x"), Visibility::Hidden);
        assert_eq!(
            visibility(b"/.well-known/acme-challenge/x"),
            Visibility::WellKnown
        );
        assert_eq!(visibility(b"/.well-known"), Visibility::WellKnown);
        assert_eq!(visibility(b"/.well-known/.x"), Visibility::Hidden);
        assert_eq!(visibility(b"/a/.well-known/x"), Visibility::Hidden);
        assert_eq!(visibility(b"/.Well-Known/x"), Visibility::Hidden);
    }

    #[test]
    fn php_names() {
        assert!(is_php_script(b"a.php"));
        assert!(!is_php_script(b"a.PHP"));
        assert!(!is_php_script(b"a.php5"));
        for name in [
            &b"a.php"[..],
            b"a.PHP",
            b"a.Php",
            b"a.phtml",
            b"a.php3",
            b"a.php4",
            b"a.php5",
            b"a.php7",
            b"a.php8",
            b"a.phps",
            b"a.PHAR",
            b"config.inc",
            b"x.y.inc",
        ] {
            assert!(is_php_source(name), "{}", String::from_utf8_lossy(name));
        }
        for name in [&b"a.txt"[..], b"php", b"a.php.txt", b"a.jpg", b"a.", b"inc"] {
            assert!(!is_php_source(name), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn path_info_split_point() {
        assert_eq!(split_path_info(b"/hello.php", false), None);
        assert_eq!(split_path_info(b"/hello.php", true), Some(10));
        assert_eq!(split_path_info(b"/hello.php/a/b", false), Some(10));
        assert_eq!(split_path_info(b"/a/b.php/c.php/d", false), Some(8));
        assert_eq!(split_path_info(b"/uploads/evil.jpg/x.php", false), None);
        assert_eq!(split_path_info(b"/x.PHP/y", false), None);
        assert_eq!(split_path_info(b"/x.phpx/y", false), None);
        assert_eq!(split_path_info(b"", true), None);
    }

    #[test]
    fn relative_config_paths() {
        let n = |s| normalize_relative(s).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(n("uploads/"), Some("/uploads".to_owned()));
        assert_eq!(n("/uploads"), Some("/uploads".to_owned()));
        assert_eq!(n("./a//b/../c"), Some("/a/c".to_owned()));
        assert_eq!(n(""), Some(String::new()));
        assert_eq!(n("/"), Some(String::new()));
        assert_eq!(n("../x"), None);
        assert_eq!(n("a/../../x"), None);
        assert_eq!(n("a\0b"), None);
    }

    #[test]
    fn last_segment_of_paths() {
        assert_eq!(last_segment(b""), b"");
        assert_eq!(last_segment(b"/a"), b"a");
        assert_eq!(last_segment(b"/a/b.php"), b"b.php");
    }

    #[test]
    fn redirect_locations() {
        assert_eq!(redirect_location("/dir", None), "/dir/");
        assert_eq!(redirect_location("/dir", Some("")), "/dir/");
        assert_eq!(redirect_location("/dir", Some("a=1&b=2")), "/dir/?a=1&b=2");
        assert_eq!(
            redirect_location("/d%20ir", Some("q=%zz")),
            "/d%20ir/?q=%zz"
        );
        assert_eq!(redirect_location("//evil.com", None), "/evil.com/");
        assert_eq!(redirect_location("///evil.com//x", None), "/evil.com/x/");
        assert_eq!(redirect_location("/\\evil.com", None), "/%5Cevil.com/");
        assert_eq!(redirect_location("/\t/evil.com", None), "/%09/evil.com/");
        assert_eq!(
            redirect_location("/a\r\nSet-Cookie: x", Some("b\r\nc#d")),
            "/a%0D%0ASet-Cookie:%20x/?b%0D%0Ac%23d"
        );
        assert_eq!(redirect_location("/ü", None), "/%C3%BC/");
        assert_eq!(redirect_location("/a?b", Some("c?d")), "/a%3Fb/?c?d");
    }
}
