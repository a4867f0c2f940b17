//! Router behaviour against real document roots built in temporary directories: every rule
//! of `Router::resolve`, hostile paths, symlinks in and out of the root, and a property test
//! that no path resolves to anything outside the root.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use isola_router::{Deny, OpenFile, Route, Router, RouterConfig};
use tempfile::TempDir;

/// A document root plus a directory outside it that symlinks point into.
struct Site {
    _tmp: TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn write(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, body).unwrap();
}

impl Site {
    fn new() -> Self {
        let tmp = TempDir::new().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        let root = base.join("public");
        let outside = base.join("outside");
        fs::create_dir_all(&root).unwrap();
        write(&outside.join("secret.txt"), "secret");
        write(&outside.join("x.php"), "<?php echo 'outside';");
        write(&outside.join("index.html"), "outside index");

        for f in [
            "index.php",
            "hello.php",
            "info.txt",
            "style.css",
            ".env",
            ".htaccess",
            ".git/config",
            "a/b.txt",
            "a/.hidden/b.txt",
            "uploads/evil.jpg",
            "uploads/shell.php",
            "uploads/sub/deep.php",
            "uploads2/ok.php",
            "blog/index.php",
            "blog/post.php",
            "docs/index.html",
            "both/index.php",
            "both/index.html",
            "src.phps",
            "lib.inc",
            "old.php5",
            "Upper.PHP",
            "mixed.Php",
            "app.phar",
            "page.phtml",
            "page.php.txt",
            "dir.php/style.css",
            "dir.php/index.php",
            ".well-known/acme-challenge/token",
            ".well-known/x.php",
            ".well-known/index.html",
            ".well-known/.secret",
            "with space.txt",
            "ünï.txt",
            "a+b.txt",
            "%2e%2e",
            "back\\slash.txt",
            "q?.txt",
        ] {
            write(&root.join(f), f);
        }
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::create_dir_all(root.join("evil.com")).unwrap();
        write(&root.join("evil.com/index.html"), "x");
        // Non-UTF-8 names: a static file, and a directory holding a script.
        fs::write(root.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")), "x").unwrap();
        let odd = root.join(std::ffi::OsStr::from_bytes(b"d\xff"));
        write(&odd.join("run.php"), "x");

        symlink("info.txt", root.join("link_in")).unwrap();
        symlink("uploads", root.join("alias_up")).unwrap();
        symlink(&outside, root.join("link_out_dir")).unwrap();
        symlink(outside.join("secret.txt"), root.join("link_out_file")).unwrap();
        symlink(outside.join("x.php"), root.join("link_out.php")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("nowhere", root.join("dangling")).unwrap();
        // A socket: neither file nor directory.
        let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();

        Site {
            _tmp: tmp,
            root,
            outside,
        }
    }

    fn config(&self) -> RouterConfig {
        let mut c = RouterConfig::new(&self.root);
        c.no_exec = vec!["uploads/".to_owned()];
        c
    }

    fn router(&self) -> Router {
        Router::new(self.config())
    }

    fn file(&self, rel: &str) -> Route {
        Route::Static {
            path: self.root.join(rel),
            file: OpenFile::none(),
        }
    }

    fn script(&self, rel: &str, path_info: &str) -> Route {
        Route::Script {
            script_filename: self.root.join(rel),
            script_name: format!("/{rel}"),
            path_info: path_info.to_owned(),
        }
    }

    fn front(&self) -> Route {
        self.script("index.php", "")
    }
}

const NOT_FOUND: Route = Route::Deny(Deny::NotFound);
const FORBIDDEN: Route = Route::Deny(Deny::Forbidden);
const BAD_REQUEST: Route = Route::Deny(Deny::BadRequest);

fn redirect(location: &str) -> Route {
    Route::Redirect {
        location: location.to_owned(),
    }
}

#[track_caller]
fn check(router: &Router, raw: &str, want: Route) {
    assert_eq!(router.resolve(raw, None), want, "path {raw:?}");
}

#[test]
fn config_defaults() {
    let c = RouterConfig::new("/srv/www");
    assert_eq!(c.docroot, PathBuf::from("/srv/www"));
    assert_eq!(c.index, ["index.php", "index.html"]);
    assert_eq!(c.front_controller.as_deref(), Some("index.php"));
    assert!(c.no_exec.is_empty());
    assert!(!c.follow_symlinks_outside);
}

#[test]
fn rule1_origin_form_bad_escapes_and_nul() {
    let s = Site::new();
    let r = s.router();
    for raw in [
        "",
        "index.php",
        "*",
        "http://example.com/",
        "/%zz",
        "/%",
        "/a%2",
        "/%00",
        "/info.txt%00",
        "/uploads/evil.jpg%00.php",
        "/hello.php%00/x",
        "/a\0b",
    ] {
        check(&r, raw, BAD_REQUEST.clone());
    }
}

#[test]
fn rule1_decoding() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/with%20space.txt", s.file("with space.txt"));
    check(&r, "/%C3%BCn%C3%AF.txt", s.file("ünï.txt"));
    check(&r, "/ünï.txt", s.file("ünï.txt"));
    // `+` is a plus in a path, not a space.
    check(&r, "/a+b.txt", s.file("a+b.txt"));
    check(&r, "/a%2Bb.txt", s.file("a+b.txt"));
    check(&r, "/info%2Etxt", s.file("info.txt"));
    check(&r, "/a%2Fb.txt", s.file("a/b.txt"));
    check(&r, "/q%3F.txt", s.file("q?.txt"));
    // Double encoding: `%252e%252e` is the literal name `%2e%2e`, never `..`.
    check(&r, "/%252e%252e", s.file("%2e%2e"));
    check(&r, "/%252e%252e/etc/passwd", s.front());
}

#[test]
fn rule1_non_utf8_names() {
    let s = Site::new();
    let r = s.router();
    assert_eq!(
        r.resolve("/caf%E9.txt", None),
        Route::Static {
            path: s.root.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")),
            file: OpenFile::none(),
        }
    );
    // A script's SCRIPT_NAME must be a string.
    check(&r, "/d%FF/run.php", NOT_FOUND);
    check(&r, "/hello.php/%FF", NOT_FOUND);
    // Missing non-UTF-8 paths still reach the front controller, like any other.
    check(&r, "/nothing%FF", s.front());
}

#[test]
fn rule2_normalisation() {
    let s = Site::new();
    let r = s.router();
    check(&r, "//info.txt", s.file("info.txt"));
    check(&r, "/./a//./b.txt", s.file("a/b.txt"));
    check(&r, "/a/../info.txt", s.file("info.txt"));
    check(&r, "/a/%2e%2e/info.txt", s.file("info.txt"));
    check(&r, "/blog/../hello.php", s.script("hello.php", ""));
}

#[test]
fn rule2_traversal_above_root_is_bad_request() {
    let s = Site::new();
    let r = s.router();
    for raw in [
        "/..",
        "/../",
        "/../outside/secret.txt",
        "/%2e%2e/",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E%2Foutside%2Fsecret.txt",
        "/..%2f..%2fetc/passwd",
        "/a/%2e%2e/%2e%2e/b",
        "/a/../../outside/secret.txt",
        "/.%2e/x",
        "/hello.php/../../x",
    ] {
        check(&r, raw, BAD_REQUEST.clone());
    }
}

#[test]
fn rule2_backslash_never_separates() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/back\\slash.txt", s.file("back\\slash.txt"));
    check(&r, "/back%5Cslash.txt", s.file("back\\slash.txt"));
    // A first segment starting with `.` is hidden whatever follows.
    check(&r, "/..\\..\\outside\\secret.txt", NOT_FOUND);
    check(&r, "/..%5C..%5Coutside%5Csecret.txt", NOT_FOUND);
    // Otherwise it is just a name that does not exist.
    check(&r, "/a\\..\\..\\outside\\secret.txt", s.front());
    check(&r, "/a/\\..\\..\\info.txt", s.front());
    check(&r, "/x\\..\\hello.php", NOT_FOUND);
}

#[test]
fn rule3_dotfiles_stay_hidden() {
    let s = Site::new();
    let r = s.router();
    for raw in [
        "/.env",
        "/.htaccess",
        "/.git/config",
        "/.git/",
        "/.git",
        "/%2Eenv",
        "/%2egit%2fconfig",
        "/a/.hidden/b.txt",
        "/a/.hidden/",
        "/a/.nothing",
        "/hello.php/.env",
        "/.well-known/.secret",
        "/a/.well-known/x",
    ] {
        check(&r, raw, NOT_FOUND);
    }
}

/// Every name editors, deploy tools and package managers leave beside a script.
const PHP_COPIES: [&str; 33] = [
    "index.php~",
    "index.php~~",
    "index.PHP~",
    "page.phtml~",
    "#index.php#",
    ".#index.php",
    ".index.php.swp",
    ".index.php.swo",
    ".index.php.swn",
    "index.php.swp",
    "index.php.bak",
    "index.php.old",
    "index.php.orig",
    "index.php.rej",
    "index.php.save",
    "index.php.tmp",
    "index.php.dist",
    "index.php.dpkg-old",
    "index.php.dpkg-dist",
    "index.php.dpkg-new",
    "index.php.ucf-old",
    "index.php.rpmsave",
    "index.php.rpmnew",
    "index.php.1",
    "index.php.txt",
    "index.php.gz",
    "index.php___jb_tmp___",
    "index.php___jb_old___",
    ".index.php.Ab12Cd",
    "lib.inc.bak",
    "old.php5.orig",
    "a.b.php.BAK",
    "index.php.png~",
];

#[test]
fn rule3_php_copies_stay_hidden() {
    let s = Site::new();
    for f in PHP_COPIES {
        write(&s.root.join(f), "<?php echo 'source';");
        write(&s.root.join("sub").join(f), "<?php echo 'source';");
    }
    let r = s.router();
    for f in PHP_COPIES {
        let enc = f.replace('#', "%23").replace('~', "%7e");
        for raw in [
            format!("/{enc}"),
            format!("/sub/{enc}"),
            format!("/static/../{enc}"),
            format!("/hello.php/../{enc}"),
            format!("/sub/./%2e%2e/sub/{enc}"),
        ] {
            check(&r, &raw, NOT_FOUND);
        }
    }
    // The exact requests.
    for raw in [
        "/index.php~",
        "/index.php.bak",
        "/index.php%7e",
        "/index.php%7E",
        "/static/../index.php.bak",
        "/hello.php/../index.php~",
    ] {
        check(&r, raw, NOT_FOUND);
    }
    // Neither a copy nor PHP: still served; the script itself still runs.
    for f in [
        "foo~",
        "readme.txt",
        "app.js",
        "chart.php.png",
        "app.php.js",
        "php.ini.bak",
    ] {
        write(&s.root.join(f), "x");
    }
    let r = s.router();
    for f in [
        "foo~",
        "readme.txt",
        "app.js",
        "style.css",
        "chart.php.png",
        "app.php.js",
        "php.ini.bak",
    ] {
        check(&r, &format!("/{f}"), s.file(f));
    }
    check(&r, "/index.php", s.front());
    check(&r, "/hello.php", s.script("hello.php", ""));
    // A copy that is not there is not a copy: the front controller answers as usual.
    check(&r, "/missing.php.bak", s.front());
}

#[test]
fn rule3_allow_opens_php_copies() {
    let s = Site::new();
    for f in [
        "index.php.bak",
        "index.php~",
        ".index.php.swp",
        "keep.php.dist",
    ] {
        write(&s.root.join(f), "<?php echo 'source';");
    }
    let mut c = s.config();
    c.allow =
        isola_router::PathPatterns::new(&["/index.php.bak", "/.index.php.swp", "*.dist"]).unwrap();
    let r = Router::new(c);
    check(&r, "/index.php.bak", s.file("index.php.bak"));
    check(&r, "/.index.php.swp", s.file(".index.php.swp"));
    check(&r, "/keep.php.dist", s.file("keep.php.dist"));
    // Only what allow names.
    check(&r, "/index.php~", NOT_FOUND);
}

#[test]
fn rule3_well_known_is_static_only() {
    let s = Site::new();
    let r = s.router();
    check(
        &r,
        "/.well-known/acme-challenge/token",
        s.file(".well-known/acme-challenge/token"),
    );
    check(&r, "/.well-known/", s.file(".well-known/index.html"));
    check(&r, "/.well-known", redirect("/.well-known/"));
    check(&r, "/.well-known/x.php", NOT_FOUND);
    check(&r, "/.well-known/x.php/y", NOT_FOUND);
    // No front controller below it.
    check(&r, "/.well-known/acme-challenge/missing", NOT_FOUND);
}

#[test]
fn rule4_path_info_split() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/hello.php/a/b", s.script("hello.php", "/a/b"));
    check(&r, "/hello.php/", s.script("hello.php", "/"));
    check(&r, "/hello.php/a/", s.script("hello.php", "/a/"));
    check(&r, "/hello.php//a//b", s.script("hello.php", "/a/b"));
    check(&r, "/hello.php/a/../b", s.script("hello.php", "/b"));
    check(&r, "/hello.php/a%20b%2Fc", s.script("hello.php", "/a b/c"));
    check(
        &r,
        "/blog/post.php/2024/x",
        s.script("blog/post.php", "/2024/x"),
    );
    // PATH_INFO naming an upload does not make the upload run.
    check(
        &r,
        "/hello.php/uploads/evil.jpg",
        s.script("hello.php", "/uploads/evil.jpg"),
    );
    // The script must be a regular file.
    check(&r, "/missing.php/x", NOT_FOUND);
    check(&r, "/dir.php/style.css", NOT_FOUND);
    check(&r, "/dir.php/", NOT_FOUND);
    check(&r, "/info.txt/x.php", NOT_FOUND);
    // The first `.php` segment wins.
    check(&r, "/missing.php/hello.php", NOT_FOUND);
    // Case-sensitive like nginx's regex: `.PHP/` is no split, and `/x` is missing.
    check(&r, "/Upper.PHP/x", s.front());
}

#[test]
fn rule4_uploads_never_execute() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/uploads/evil.jpg", s.file("uploads/evil.jpg"));
    check(&r, "/uploads/evil.jpg/x.php", NOT_FOUND);
    check(&r, "/uploads/evil.jpg/", s.front());
    check(&r, "/uploads/evil.jpg/x", s.front());
    check(&r, "/uploads/evil.jpg%2Fx.php", NOT_FOUND);
}

#[test]
fn rule5_regular_files() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/info.txt", s.file("info.txt"));
    check(&r, "/style.css", s.file("style.css"));
    // A PHP name plus a text extension is a copy of the source: see rule3_php_copies.
    check(&r, "/page.php.txt", NOT_FOUND);
    check(&r, "/hello.php", s.script("hello.php", ""));
    check(&r, "/index.php", s.front());
    for raw in [
        "/src.phps",
        "/lib.inc",
        "/old.php5",
        "/Upper.PHP",
        "/mixed.Php",
        "/app.phar",
        "/page.phtml",
    ] {
        check(&r, raw, NOT_FOUND);
    }
    // `file/` is not the file (ENOTDIR): the front controller gets it, like nginx.
    check(&r, "/info.txt/", s.front());
    check(&r, "/lib.inc/", s.front());
    // Neither file nor directory.
    check(&r, "/sock", NOT_FOUND);
}

#[test]
fn rule6_directories() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/", s.front());
    check(&r, "/blog", redirect("/blog/"));
    check(&r, "/blog/", s.script("blog/index.php", ""));
    check(&r, "/blog/.", s.script("blog/index.php", ""));
    check(&r, "/docs/", s.file("docs/index.html"));
    check(&r, "/both/", s.script("both/index.php", ""));
    check(&r, "/empty/", FORBIDDEN);
    check(&r, "/empty", redirect("/empty/"));
    check(&r, "/a/", FORBIDDEN);
    // A directory named like a script is PHP's, not a directory (nginx: 404).
    check(&r, "/dir.php", NOT_FOUND);
    assert_eq!(
        r.resolve("/blog", Some("a=1&b=%20")),
        redirect("/blog/?a=1&b=%20")
    );
    assert_eq!(r.resolve("/blog", Some("")), redirect("/blog/"));
    // The Location keeps the request's own encoding.
    check(&r, "/%62log", redirect("/%62log/"));
}

#[test]
fn rule6_index_order_is_configurable() {
    let s = Site::new();
    let mut c = s.config();
    c.index = vec!["index.html".to_owned(), "index.php".to_owned()];
    let r = Router::new(c);
    check(&r, "/both/", s.file("both/index.html"));
    check(&r, "/blog/", s.script("blog/index.php", ""));
    // Unsafe index names are ignored.
    let mut c = s.config();
    c.index = vec!["../outside/index.html".to_owned(), ".env".to_owned()];
    let r = Router::new(c);
    check(&r, "/docs/", FORBIDDEN);
    check(&r, "/", FORBIDDEN);
}

#[test]
fn rule6_redirects_are_safe() {
    let s = Site::new();
    let r = s.router();
    // `evil.com` is a directory in the root: the Location must stay on this host.
    check(&r, "//evil.com", redirect("/evil.com/"));
    check(&r, "///evil.com", redirect("/evil.com/"));
    check(&r, "/.//evil.com", redirect("/./evil.com/"));
    check(&r, "/a/..//evil.com", redirect("/a/../evil.com/"));
    assert_eq!(
        r.resolve("//evil.com", Some("x=1")),
        redirect("/evil.com/?x=1")
    );
    // Header injection through the query or the path cannot happen.
    let Route::Redirect { location } = r.resolve("/blog", Some("a\r\nSet-Cookie: x=1")) else {
        panic!("want a redirect");
    };
    assert!(!location.contains(['\r', '\n']), "{location:?}");
    assert_eq!(location, "/blog/?a%0D%0ASet-Cookie:%20x=1");
    let crlf = s.root.join("x\r\ny");
    fs::create_dir(&crlf).unwrap();
    check(&r, "/x%0D%0Ay", redirect("/x%0D%0Ay/"));
    check(&r, "/x\r\ny", redirect("/x%0D%0Ay/"));
}

#[test]
fn rule7_front_controller() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/some/route", s.front());
    check(&r, "/some/route/", s.front());
    check(&r, "/page.phtml.bak", s.front());
    // A missing script is 404, never the front controller.
    check(&r, "/missing.php", NOT_FOUND);
    check(&r, "/blog/missing.php", NOT_FOUND);
    // The query stays with the request; the route does not carry it.
    assert_eq!(r.resolve("/some/route", Some("q=1")), s.front());

    let mut c = s.config();
    c.front_controller = None;
    let r = Router::new(c);
    check(&r, "/some/route", NOT_FOUND);
    check(&r, "/", s.script("index.php", ""));

    let mut c = s.config();
    c.front_controller = Some("nope.php".to_owned());
    check(&Router::new(c), "/some/route", NOT_FOUND);

    let mut c = s.config();
    c.front_controller = Some("/blog/index.php".to_owned());
    check(
        &Router::new(c),
        "/some/route",
        s.script("blog/index.php", ""),
    );

    // A non-PHP front controller (single-page app) is sent, not run.
    let mut c = s.config();
    c.front_controller = Some("docs/index.html".to_owned());
    check(&Router::new(c), "/some/route", s.file("docs/index.html"));

    // PHP source under another name is neither sent nor run.
    let mut c = s.config();
    c.front_controller = Some("page.phtml".to_owned());
    check(&Router::new(c), "/some/route", NOT_FOUND);

    // A front controller that climbs out of the root is ignored.
    let mut c = s.config();
    c.front_controller = Some("../outside/x.php".to_owned());
    check(&Router::new(c), "/some/route", NOT_FOUND);
}

#[test]
fn rule8_no_exec() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/uploads/shell.php", FORBIDDEN);
    check(&r, "/uploads/shell.php/x", FORBIDDEN);
    check(&r, "/uploads/sub/deep.php", FORBIDDEN);
    check(&r, "/uploads//shell.php", FORBIDDEN);
    check(&r, "/a/../uploads/shell.php", FORBIDDEN);
    check(&r, "/%75ploads/shell.php", FORBIDDEN);
    // Segment-wise: `uploads2` is another directory.
    check(&r, "/uploads2/ok.php", s.script("uploads2/ok.php", ""));
    // Static files below no-exec paths are served.
    check(&r, "/uploads/evil.jpg", s.file("uploads/evil.jpg"));
    // A symlink inside the root does not launder an upload.
    check(&r, "/alias_up/shell.php", FORBIDDEN);
    check(&r, "/alias_up/evil.jpg", s.file("alias_up/evil.jpg"));

    // The rule applies to the front controller too.
    let mut c = s.config();
    c.no_exec = vec!["/".to_owned()];
    let r = Router::new(c);
    check(&r, "/some/route", FORBIDDEN);
    check(&r, "/hello.php", FORBIDDEN);
    check(&r, "/info.txt", s.file("info.txt"));

    let mut c = s.config();
    c.no_exec = vec!["blog".to_owned()];
    let r = Router::new(c);
    check(&r, "/blog/", FORBIDDEN);
    check(&r, "/blog/post.php", FORBIDDEN);
    check(&r, "/hello.php", s.script("hello.php", ""));
}

#[test]
fn rule8_no_exec_dir_that_is_a_symlink_elsewhere() {
    let s = Site::new();
    // `files` is a symlink to a directory outside; with symlinks allowed out, its scripts
    // are still no-exec, reached by either name.
    symlink(&s.outside, s.root.join("files")).unwrap();
    symlink(&s.outside, s.root.join("files2")).unwrap();
    let mut c = s.config();
    c.no_exec = vec!["files".to_owned()];
    c.follow_symlinks_outside = true;
    let r = Router::new(c);
    check(&r, "/files/x.php", FORBIDDEN);
    check(&r, "/files2/x.php", FORBIDDEN);
    check(&r, "/files/secret.txt", s.file("files/secret.txt"));
}

#[test]
fn rule9_symlinks() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/link_in", s.file("link_in"));
    check(&r, "/link_out_file", NOT_FOUND);
    check(&r, "/link_out_dir/secret.txt", NOT_FOUND);
    check(&r, "/link_out_dir/x.php", NOT_FOUND);
    check(&r, "/link_out_dir/x.php/info", NOT_FOUND);
    check(&r, "/link_out.php", NOT_FOUND);
    check(&r, "/link_out_dir", NOT_FOUND);
    check(&r, "/link_out_dir/", NOT_FOUND);
    // A missing file below an outside directory: nothing to leak, front controller.
    check(&r, "/link_out_dir/nothing", s.front());
    // Loops and dangling links are "not there".
    check(&r, "/loop1", s.front());
    check(&r, "/loop1/x.php", NOT_FOUND);
    check(&r, "/dangling", s.front());

    let mut c = s.config();
    c.follow_symlinks_outside = true;
    let r = Router::new(c);
    check(&r, "/link_out_file", s.file("link_out_file"));
    check(
        &r,
        "/link_out_dir/secret.txt",
        s.file("link_out_dir/secret.txt"),
    );
    check(&r, "/link_out.php", s.script("link_out.php", ""));
    check(&r, "/link_out_dir/", s.file("link_out_dir/index.html"));
}

/// Nothing about links is remembered between requests: a file or a directory replaced by a
/// link leading out is refused on the very next request, and a link removed again serves.
#[test]
fn rule9_links_are_checked_again_on_every_request() {
    let s = Site::new();
    let r = s.router();
    check(&r, "/info.txt", s.file("info.txt"));
    std::fs::rename(s.root.join("info.txt"), s.root.join("info.keep")).unwrap();
    symlink(s.outside.join("secret.txt"), s.root.join("info.txt")).unwrap();
    check(&r, "/info.txt", NOT_FOUND);
    std::fs::remove_file(s.root.join("info.txt")).unwrap();
    std::fs::rename(s.root.join("info.keep"), s.root.join("info.txt")).unwrap();
    check(&r, "/info.txt", s.file("info.txt"));
    // A directory on the way swapped for a link leading out.
    std::fs::create_dir(s.root.join("sub")).unwrap();
    std::fs::write(s.root.join("sub/secret.txt"), "in").unwrap();
    check(&r, "/sub/secret.txt", s.file("sub/secret.txt"));
    std::fs::rename(s.root.join("sub"), s.root.join("sub.keep")).unwrap();
    symlink(&s.outside, s.root.join("sub")).unwrap();
    check(&r, "/sub/secret.txt", NOT_FOUND);
}

/// The file a static route carries is the one that was checked, opened once: its content is
/// what is on disk now (a file replaced by rename is the new one on the next request), and
/// links inside the root, absolute links back into it and links out are decided as before.
#[test]
fn rule9_static_routes_carry_the_file_they_checked() {
    use std::io::Read;
    let s = Site::new();
    let r = s.router();
    let content = |raw: &str| -> Option<String> {
        match r.resolve(raw, None) {
            Route::Static { file, .. } => {
                let (mut f, meta) = file.take()?;
                assert!(meta.is_file());
                let mut out = String::new();
                f.read_to_string(&mut out).unwrap();
                Some(out)
            }
            other => panic!("{raw}: {other:?}"),
        }
    };
    assert_eq!(content("/info.txt").as_deref(), Some("info.txt"));
    // A relative link inside the root is opened through the link.
    assert_eq!(content("/link_in").as_deref(), Some("info.txt"));
    // Replaced on disk by rename (how deploys and editors write): the new file, at once.
    write(&s.root.join("info.new"), "new content");
    fs::rename(s.root.join("info.new"), s.root.join("info.txt")).unwrap();
    assert_eq!(content("/info.txt").as_deref(), Some("new content"));
    // An absolute link that stays inside the root is served (decided by its real path).
    symlink(s.root.join("style.css"), s.root.join("abs_in")).unwrap();
    check(&r, "/abs_in", s.file("abs_in"));
    // Climbing out with `..` inside a link is refused like any link out.
    symlink("../outside/secret.txt", s.root.join("climb_out")).unwrap();
    check(&r, "/climb_out", NOT_FOUND);
    // A socket or FIFO is neither opened nor served.
    mkfifo(&s.root.join("fifo"));
    check(&r, "/fifo", NOT_FOUND);
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A deploy that swaps the symlink the document root is configured through (`current` →
/// a new release) is served from the new release on the next request, although the
/// router keeps a descriptor of the root.
#[test]
fn rule9_a_swapped_docroot_symlink_is_followed_at_once() {
    let tmp = TempDir::new().unwrap();
    let base = fs::canonicalize(tmp.path()).unwrap();
    write(&base.join("r1/page.txt"), "release 1");
    write(&base.join("r2/page.txt"), "release 2");
    write(&base.join("r2/only2.txt"), "new file");
    symlink("r1", base.join("current")).unwrap();
    let r = Router::new(RouterConfig::new(base.join("current")));
    let read = |raw: &str| -> Option<String> {
        match r.resolve(raw, None) {
            Route::Static { path, file } => Some(match file.take() {
                Some((f, _)) => std::io::read_to_string(f).unwrap(),
                None => fs::read_to_string(path).unwrap(),
            }),
            _ => None,
        }
    };
    assert_eq!(read("/page.txt").as_deref(), Some("release 1"));
    assert_eq!(read("/only2.txt"), None);
    symlink("r2", base.join("next")).unwrap();
    fs::rename(base.join("next"), base.join("current")).unwrap();
    assert_eq!(read("/page.txt").as_deref(), Some("release 2"));
    assert_eq!(read("/only2.txt").as_deref(), Some("new file"));
}

#[test]
fn rule9_docroot_given_through_a_symlink() {
    let s = Site::new();
    let alias = s.outside.join("alias");
    symlink(&s.root, &alias).unwrap();
    // A trailing slash on the configured root changes nothing.
    let mut c = RouterConfig::new(format!("{}/", alias.display()));
    c.no_exec = vec!["uploads".to_owned()];
    let r = Router::new(c);
    // Paths returned stay under the configured root; the check uses the real one.
    assert_eq!(
        r.resolve("/hello.php/x", None),
        Route::Script {
            script_filename: alias.join("hello.php"),
            script_name: "/hello.php".to_owned(),
            path_info: "/x".to_owned(),
        }
    );
    assert_eq!(
        r.resolve("/info.txt", None),
        Route::Static {
            path: alias.join("info.txt"),
            file: OpenFile::none(),
        }
    );
    check(&r, "/link_out_file", NOT_FOUND);
    check(&r, "/uploads/shell.php", FORBIDDEN);
}

#[test]
fn rule9_root_of_filesystem_as_docroot() {
    // `/` as the root must not produce `//etc` style paths or escape anywhere.
    let r = Router::new(RouterConfig::new("/"));
    match r.resolve("/etc/hostname", None) {
        Route::Static { path, .. } => assert_eq!(path, Path::new("/etc/hostname")),
        other => assert!(matches!(other, Route::Deny(_)), "{other:?}"),
    }
    check(&r, "/../etc", BAD_REQUEST);
}

#[test]
fn rule10_long_names_are_not_errors() {
    let s = Site::new();
    let r = s.router();
    let long = format!("/{}", "a".repeat(5000));
    check(&r, &long, s.front());
    check(&r, &format!("{long}.php"), NOT_FOUND);
    check(&r, &format!("{long}.php/x"), NOT_FOUND);
    let many = "/abc".repeat(2000);
    check(&r, &many, s.front());
    let one_long_segment = format!("/{}/x", "b".repeat(300));
    check(&r, &one_long_segment, s.front());
    let encoded = "%61".repeat(3000);
    check(&r, &format!("/{encoded}"), s.front());
}

#[test]
fn rule10_permission_denied_is_forbidden() {
    use std::os::unix::fs::PermissionsExt;
    let s = Site::new();
    let locked = s.root.join("locked");
    write(&locked.join("f.txt"), "x");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    // Root ignores permissions; only check where the kernel would refuse us.
    let refused = fs::metadata(locked.join("f.txt"))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
    if refused {
        let r = s.router();
        check(&r, "/locked/f.txt", FORBIDDEN);
        check(&r, "/locked/x.php", FORBIDDEN);
    }
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn rule3_deny_and_allow_patterns() {
    let s = Site::new();
    let mut c = s.config();
    c.deny = isola_router::PathPatterns::new(&["/blog/**", "*.txt", "/uploads2/ok.php"]).unwrap();
    c.allow = isola_router::PathPatterns::new(&["/a/.hidden/**", "/info.txt", "/.env"]).unwrap();
    let r = Router::new(c);
    // Denied whatever they name: scripts, directories with an index, static files,
    // PATH_INFO behind a denied script, and missing paths (never the front controller).
    check(&r, "/blog/post.php", NOT_FOUND);
    check(&r, "/blog/", NOT_FOUND);
    check(&r, "/blog", NOT_FOUND);
    check(&r, "/blog/index.php/x/y", NOT_FOUND);
    check(&r, "/blog/missing", NOT_FOUND);
    check(&r, "/a/b.txt", NOT_FOUND);
    check(&r, "/uploads2/ok.php", NOT_FOUND);
    check(&r, "/%75ploads2/ok.php", NOT_FOUND);
    check(&r, "/x/../uploads2/./ok.php", NOT_FOUND);
    // Allow beats deny, and opens a dot path to static files only.
    check(&r, "/info.txt", s.file("info.txt"));
    check(&r, "/a/.hidden/b.txt", s.file("a/.hidden/b.txt"));
    check(&r, "/.env", s.file(".env"));
    check(&r, "/.htaccess", NOT_FOUND);
    // Untouched paths behave as before.
    check(&r, "/style.css", s.file("style.css"));
    check(&r, "/blog2", s.front());
}

#[test]
fn aliases_serve_another_folder_by_the_same_rules() {
    let s = Site::new();
    write(&s.outside.join(".env"), "x");
    write(&s.outside.join("up/shell.php"), "x");
    let mut c = s.config();
    c.aliases = vec![("/ext".to_owned(), s.outside.clone())];
    c.no_exec = vec!["uploads/".to_owned(), "ext/up".to_owned()];
    let r = Router::new(c);
    check(
        &r,
        "/ext/secret.txt",
        Route::Static {
            path: s.outside.join("secret.txt"),
            file: OpenFile::none(),
        },
    );
    check(
        &r,
        "/ext/x.php/more",
        Route::Script {
            script_filename: s.outside.join("x.php"),
            script_name: "/ext/x.php".to_owned(),
            path_info: "/more".to_owned(),
        },
    );
    check(&r, "/ext", redirect("/ext/"));
    check(
        &r,
        "/ext/",
        Route::Static {
            path: s.outside.join("index.html"),
            file: OpenFile::none(),
        },
    );
    check(&r, "/ext/.env", NOT_FOUND);
    check(&r, "/ext/up/shell.php", FORBIDDEN);
    check(&r, "/ext/../info.txt", s.file("info.txt"));
    check(&r, "/extra", s.front());
    // Missing below an alias: the front controller, as anywhere else.
    check(&r, "/ext/missing", s.front());
    assert_eq!(
        r.url_of(&s.outside.join("secret.txt")).as_deref(),
        Some(&b"/ext/secret.txt"[..])
    );
    assert_eq!(
        r.url_of(&s.root.join("a/b.txt")).as_deref(),
        Some(&b"/a/b.txt"[..])
    );
    // Without the alias the same folder stays out of reach.
    check(&s.router(), "/ext/secret.txt", s.front());
}

#[test]
fn no_docroot_at_all() {
    let tmp = TempDir::new().unwrap();
    let r = Router::new(RouterConfig::new(tmp.path().join("missing")));
    check(&r, "/", NOT_FOUND);
    check(&r, "/x", NOT_FOUND);
    check(&r, "/x.php", NOT_FOUND);
}

mod property {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// Pieces that hostile and ordinary paths are made of, against the fixture's names.
    fn token() -> impl Strategy<Value = String> {
        let fixed = prop::sample::select(vec![
            "/",
            "//",
            ".",
            "..",
            "%2e",
            "%2E%2e",
            "%2f",
            "%2F",
            "\\",
            "%5c",
            "%00",
            "%zz",
            "%",
            "%25",
            "%252e",
            "%ff",
            "%c3",
            "ü",
            "\r\n",
            " ",
            "+",
            "?",
            "#",
            "index.php",
            "hello.php",
            ".php",
            ".PHP",
            ".phtml",
            "uploads",
            "alias_up",
            "evil.jpg",
            "shell.php",
            "link_out_dir",
            "link_out_file",
            "link_out.php",
            "link_in",
            "loop1",
            "secret.txt",
            "outside",
            "public",
            ".git",
            "config",
            ".env",
            ".well-known",
            "blog",
            "dir.php",
            "evil.com",
            "sock",
            "a",
            "b.txt",
        ])
        .prop_map(str::to_owned);
        prop_oneof![
            4 => fixed,
            1 => "[a-z./%\\\\]{1,6}",
            1 => any::<u8>().prop_map(|b| format!("%{b:02X}")),
        ]
    }

    /// Real paths of the fixture, some percent-encoded at random, with hostile prefixes.
    fn near_miss() -> impl Strategy<Value = String> {
        let known = prop::sample::select(vec![
            "/info.txt",
            "/a/b.txt",
            "/link_in",
            "/uploads/evil.jpg",
            "/alias_up/evil.jpg",
            "/link_out_file",
            "/link_out_dir/secret.txt",
            "/link_out_dir/index.html",
            "/.well-known/acme-challenge/token",
            "/docs/",
            "/docs",
            "/style.css",
            "/with space.txt",
            "/back\\slash.txt",
            "/src.phps",
            "/Upper.PHP",
        ]);
        let prefix = prop::sample::select(vec![
            "",
            "",
            "",
            "/",
            "/.",
            "/a/..",
            "/%2e",
            "/a/%2e%2e",
            "/..",
            "/link_out_dir/..",
            "/blog/../a/..",
        ]);
        (prefix, known, prop::collection::vec(any::<bool>(), 48)).prop_map(
            |(prefix, known, flip)| {
                let mut s = String::from(prefix);
                for (c, enc) in known
                    .chars()
                    .zip(flip.iter().chain(std::iter::repeat(&false)))
                {
                    if *enc && c.is_ascii() {
                        s.push_str(&format!("%{:02X}", c as u32));
                    } else {
                        s.push(c);
                    }
                }
                s
            },
        )
    }

    fn raw_path() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => near_miss(),
            4 => prop::collection::vec(token(), 0..10).prop_map(|t| format!("/{}", t.join(""))),
            2 => prop::collection::vec(token(), 0..10).prop_map(|t| format!("/{}", t.join("/"))),
            // Arbitrary bytes, percent-encoded where they are not printable ASCII.
            1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|bytes| {
                let mut s = String::from("/");
                for b in bytes {
                    if b.is_ascii_graphic() {
                        s.push(char::from(b));
                    } else {
                        s.push_str(&format!("%{b:02X}"));
                    }
                }
                s
            }),
            // Arbitrary strings, not even starting with `/`.
            1 => any::<String>(),
        ]
    }

    #[track_caller]
    fn inside(root: &Path, path: &Path) {
        let real = fs::canonicalize(path).unwrap();
        assert!(real.starts_with(root), "{path:?} resolves to {real:?}");
    }

    #[test]
    fn nothing_resolves_outside_the_root() {
        let s = Site::new();
        let real_root = fs::canonicalize(&s.root).unwrap();
        let routers = [s.router(), Router::new(RouterConfig::new(&s.root))];
        let mut runner = TestRunner::new(Config {
            cases: 3000,
            failure_persistence: None,
            ..Config::default()
        });
        // How often each kind of route came out, to show the search reaches them all.
        let seen = std::cell::Cell::new([0u32; 4]);
        let count = |k: usize| {
            let mut c = seen.get();
            c[k] += 1;
            seen.set(c);
        };
        runner
            .run(&(raw_path(), any::<Option<String>>()), |(raw, query)| {
                for (i, r) in routers.iter().enumerate() {
                    match r.resolve(&raw, query.as_deref()) {
                        Route::Static { path, .. } => {
                            count(0);
                            inside(&real_root, &path);
                            let name = path.file_name().unwrap().as_bytes().to_ascii_lowercase();
                            prop_assert!(!name.ends_with(b".php"), "source {path:?}");
                            prop_assert!(!name.starts_with(b"."), "dotfile {path:?}");
                        }
                        Route::Script {
                            script_filename,
                            script_name,
                            path_info,
                        } => {
                            count(1);
                            inside(&real_root, &script_filename);
                            prop_assert!(script_filename.as_os_str().as_bytes().ends_with(b".php"));
                            prop_assert!(script_filename.starts_with(&s.root));
                            if i == 0 {
                                // The first router has `uploads/` as no-exec.
                                let real = fs::canonicalize(&script_filename).unwrap();
                                prop_assert!(!real.starts_with(real_root.join("uploads")));
                            }
                            prop_assert!(script_name.starts_with('/'));
                            prop_assert!(path_info.is_empty() || path_info.starts_with('/'));
                        }
                        Route::Redirect { location } => {
                            count(2);
                            prop_assert!(location.starts_with('/'));
                            prop_assert!(!location.starts_with("//"), "{location:?}");
                            prop_assert!(
                                location.bytes().all(|b| b.is_ascii_graphic()),
                                "{location:?}"
                            );
                        }
                        Route::Deny(_) => count(3),
                    }
                }
                Ok(())
            })
            .unwrap();
        let seen = seen.get();
        eprintln!("static, script, redirect, deny: {seen:?}");
        assert!(seen.iter().all(|&n| n >= 20), "{seen:?}");
    }
}

#[test]
fn normalize_path_is_what_resolve_routes_on() {
    use isola_router::normalize_path;
    assert_eq!(normalize_path("/a//b/./c/").unwrap(), b"/a/b/c");
    assert_eq!(
        normalize_path("/%70rotected/x%2Fy").unwrap(),
        b"/protected/x/y"
    );
    assert_eq!(normalize_path("/a/../b").unwrap(), b"/b");
    assert_eq!(normalize_path("/").unwrap(), b"");
    assert_eq!(normalize_path("/../x"), Err(Deny::BadRequest));
    assert_eq!(normalize_path("/a%00b"), Err(Deny::BadRequest));
    assert_eq!(normalize_path("/a%zz"), Err(Deny::BadRequest));
}
