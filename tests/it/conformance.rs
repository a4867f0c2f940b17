//! Differential conformance: the same requests sent to Isola and to nginx + php-fpm
//! (Debian's packages, configured like Debian's `snippets/fastcgi-php.conf` with
//! `try_files $uri $uri/ /index.php?$query_string`), over the same document root. The
//! status, the headers that matter and the body the client gets must agree, and so must the
//! CGI environment PHP sees — except for the differences listed in `DELIBERATE`, each with
//! its reason.
use crate::harness::{fixture_site, Server};
use crate::http::{self, Response};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Isola answers differently on purpose.
const DELIBERATE: &[(&str, &str)] = &[
    ("/.env", "nginx serves dotfiles unless told not to; Isola denies them (404)"),
    ("/.git/config", "same: a leaked .git is a classic breach; Isola denies it"),
    ("/lib.inc", "nginx serves PHP include files as plain text (source leak); Isola refuses PHP source (404)"),
    ("/x.phtml", "same for .phtml: Isola never serves PHP source"),
];

/// PATH_INFO URLs: with Debian's `location ~ \.php$`, nginx never matches
/// `/script.php/extra` as PHP, so try_files hands it to the front controller; Isola runs
/// `script.php` with PATH_INFO, as the PATH_INFO split in fastcgi-php.conf intends (checked in
/// routing.rs).
const PATH_INFO_CASES: &[&str] = &["/env.php/path/in%20fo?x=1", "/hello.php/uploads/evil.jpg"];

/// Header differences that are not behaviour: Isola states the charset of text types
/// (nginx's `charset` is off by default), and makes a directory redirect's Location relative
/// (nginx makes it absolute with its own port).
fn comparable_content_type(v: Option<&str>) -> Option<String> {
    v.map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

fn location_path(v: Option<&str>) -> Option<String> {
    v.map(|l| {
        let l = l
            .strip_prefix("http://")
            .map_or(l, |rest| &rest[rest.find('/').unwrap_or(rest.len())..]);
        l.to_string()
    })
}

/// CGI variables compared for the env dump (values relative to the docroot where they hold
/// paths). Left out, because they differ legitimately: ports, REMOTE_PORT, SERVER_SOFTWARE,
/// request ids, PHP_SAPI (cgi-fcgi vs fpm-fcgi), ORIG_*, FCGI_ROLE, HOME/USER/PATH.
const CGI_VARS: &[&str] = &[
    "REQUEST_URI",
    "QUERY_STRING",
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PHP_SELF",
    "DOCUMENT_ROOT",
    "DOCUMENT_URI",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_PROTOCOL",
    "GATEWAY_INTERFACE",
    "REDIRECT_STATUS",
    "REQUEST_SCHEME",
    "REMOTE_ADDR",
    "SERVER_ADDR",
    "HTTPS",
    "HTTP_HOST",
    "HTTP_X_CUSTOM",
    "HTTP_COOKIE",
    "HTTP_ACCEPT",
];

/// Repeated request headers: nginx 1.22 passes each one as a separate FastCGI param of the
/// same name and PHP keeps only the last, silently dropping cookies; Isola joins them into one
/// value (Cookie with "; ", others with ", "), as nginx 1.23 and later do. Compared on their
/// own in the test.
const JOINED_HEADER_VARS: &[&str] = &["HTTP_COOKIE", "HTTP_ACCEPT"];

struct Reference {
    addr: SocketAddr,
    nginx: Child,
    fpm: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Reference {
    fn drop(&mut self) {
        for c in [&mut self.nginx, &mut self.fpm] {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGQUIT,
            );
        }
        for c in [&mut self.nginx, &mut self.fpm] {
            if crate::harness::wait_timeout(c, Duration::from_secs(5)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn fpm_binary() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/sbin")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("php-fpm"))
        })
        .collect();
    found.sort();
    found.pop()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_reference(docroot: &Path) -> Option<Reference> {
    let nginx = Path::new("/usr/sbin/nginx");
    let fpm = fpm_binary();
    if !nginx.exists()
        || fpm.is_none()
        || !Path::new("/etc/nginx/snippets/fastcgi-php.conf").exists()
    {
        eprintln!("conformance: nginx or php-fpm not installed (scripts/setup --test installs them); skipped");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let root = nix::unistd::Uid::effective().is_root();
    std::fs::write(
        t.join("fpm.conf"),
        format!(
            "[global]\npid = {0}/fpm.pid\nerror_log = {0}/fpm.log\ndaemonize = no\n[www]\nlisten = {0}/fpm.sock\npm = static\npm.max_children = 2\n",
            t.display(),
        ),
    )
    .unwrap();
    for f in ["fastcgi.conf", "mime.types", "snippets"] {
        std::os::unix::fs::symlink(Path::new("/etc/nginx").join(f), t.join(f)).unwrap();
    }
    let port = free_port();
    std::fs::write(
        t.join("nginx.conf"),
        format!(
            r#"{user}
daemon off;
worker_processes 1;
pid {t}/nginx.pid;
error_log {t}/error.log;
events {{ worker_connections 256; }}
http {{
    include mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {t}/body;
    fastcgi_temp_path {t}/fastcgi;
    proxy_temp_path {t}/proxy;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        index index.php index.html;
        location / {{ try_files $uri $uri/ /index.php?$query_string; }}
        location ~ \.php$ {{
            include snippets/fastcgi-php.conf;
            fastcgi_pass unix:{t}/fpm.sock;
        }}
    }}
}}
"#,
            user = if root { "user root;" } else { "" },
            t = t.display(),
            docroot = docroot.display(),
        ),
    )
    .unwrap();
    let mut fpm_cmd = Command::new(fpm.unwrap());
    fpm_cmd
        .args(["--nodaemonize", "-y"])
        .arg(t.join("fpm.conf"))
        .arg("-p")
        .arg(t);
    if root {
        fpm_cmd.arg("-R");
    }
    let fpm = fpm_cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nginx = Command::new(nginx)
        .arg("-p")
        .arg(t)
        .arg("-c")
        .arg(t.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = Reference {
        addr,
        nginx,
        fpm,
        _dir: dir,
    };
    let t0 = Instant::now();
    loop {
        if std::net::TcpStream::connect(addr).is_ok() && http::get(addr, "/hello.php").status == 200
        {
            return Some(r);
        }
        if t0.elapsed() > Duration::from_secs(15) {
            let log = std::fs::read_to_string(r._dir.path().join("error.log")).unwrap_or_default();
            let flog = std::fs::read_to_string(r._dir.path().join("fpm.log")).unwrap_or_default();
            panic!("nginx + php-fpm did not come up:\n{log}\n{flog}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Case {
    method: &'static str,
    target: &'static str,
    headers: &'static [&'static str],
    body: &'static [u8],
}

const fn get(target: &'static str) -> Case {
    Case {
        method: "GET",
        target,
        headers: &[],
        body: b"",
    }
}

fn cases() -> Vec<Case> {
    vec![
        get("/hello.php"),
        get("/env.php?a=1&b[]=2&b[]=3&sp=%20x&plus=a+b"),
        get("/env.php/path/in%20fo?x=1"),
        get("/env.php?"),
        get("/blog/some%20post?x=%20y"),
        get("/deep/er/path/"),
        get("/style.css"),
        get("/a%20b+c.txt"),
        get("/dir"),
        get("/dir?q=1"),
        get("/dir/"),
        get("/dir2/"),
        get("/dir3/"),
        get("/missing.php"),
        get("/uploads/evil.jpg/x.php"),
        get("/hello.php/uploads/evil.jpg"),
        get("/status.php?code=404"),
        get("/status.php?code=418"),
        get("/redirect.php"),
        get("/redirect.php?permanent=1"),
        get("/cookies.php"),
        get("/empty.php"),
        get("/fatal.php"),
        get("/exit.php"),
        get("/.env"),
        get("/.git/config"),
        get("/lib.inc"),
        get("/x.phtml"),
        Case {
            method: "HEAD",
            target: "/hello.php",
            headers: &[],
            body: b"",
        },
        Case {
            method: "GET",
            target: "/env.php",
            headers: &[
                "X-Custom: yes",
                "Cookie: a=1",
                "Cookie: b=2",
                "Accept: text/html",
                "Accept: */*",
            ],
            body: b"",
        },
        Case {
            method: "POST",
            target: "/env.php?q=1",
            headers: &["Content-Type: application/x-www-form-urlencoded"],
            body: b"name=Ada+L&x=%26y",
        },
        Case {
            method: "PUT",
            target: "/env.php",
            headers: &["Content-Type: application/json"],
            body: br#"{"k":1}"#,
        },
        Case {
            method: "DELETE",
            target: "/env.php",
            headers: &[],
            body: b"",
        },
    ]
}

fn send(addr: SocketAddr, c: &Case) -> Response {
    http::request(addr, c.method, c.target, c.headers, c.body)
}

#[test]
fn isola_matches_nginx_php_fpm() {
    let site = fixture_site();
    let docroot = site.path().canonicalize().unwrap();
    let Some(reference) = start_reference(&docroot) else {
        return;
    };
    let isola = Server::start_in(&docroot, &["--workers", "2"], None);
    let mut failures = Vec::new();
    for c in cases() {
        let ours = send(isola.addr, &c);
        let theirs = send(reference.addr, &c);
        let label = format!("{} {}", c.method, c.target);
        if let Some((_, why)) = DELIBERATE.iter().find(|(t, _)| *t == c.target) {
            assert_eq!(ours.status, 404, "{label}: Isola must deny ({why})");
            assert_eq!(
                theirs.status, 200,
                "{label}: the reference still serves it; update DELIBERATE"
            );
            continue;
        }
        if PATH_INFO_CASES.contains(&c.target) {
            assert!(
                theirs.text().starts_with("FRONT-CONTROLLER"),
                "{label}: reference changed; update PATH_INFO_CASES"
            );
            assert!(
                !ours.text().starts_with("FRONT-CONTROLLER"),
                "{label}: Isola must run the script with PATH_INFO"
            );
            continue;
        }
        if ours.status != theirs.status {
            failures.push(format!(
                "{label}: status {} vs nginx {}",
                ours.status, theirs.status
            ));
            continue;
        }
        if comparable_content_type(ours.header("content-type"))
            != comparable_content_type(theirs.header("content-type"))
        {
            failures.push(format!(
                "{label}: content-type {:?} vs nginx {:?}",
                ours.header("content-type"),
                theirs.header("content-type")
            ));
        }
        if location_path(ours.header("location")) != location_path(theirs.header("location")) {
            failures.push(format!(
                "{label}: location {:?} vs nginx {:?}",
                ours.header("location"),
                theirs.header("location")
            ));
        }
        if ours.headers_named("set-cookie") != theirs.headers_named("set-cookie") {
            failures.push(format!(
                "{label}: set-cookie {:?} vs {:?}",
                ours.headers_named("set-cookie"),
                theirs.headers_named("set-cookie")
            ));
        }
        let php_body = ours.status < 300 || c.target.contains(".php");
        let dumps = (
            serde_json::from_slice::<serde_json::Value>(&ours.body),
            serde_json::from_slice::<serde_json::Value>(&theirs.body),
        );
        if let (Ok(a), Ok(b)) = dumps {
            let repeated = c
                .headers
                .iter()
                .filter(|h| h.starts_with("Cookie:"))
                .count()
                > 1;
            if repeated {
                assert_eq!(a["server"]["HTTP_COOKIE"], "a=1; b=2", "{label}");
                assert_eq!(a["server"]["HTTP_ACCEPT"], "text/html, */*", "{label}");
                assert_eq!(
                    a["cookie"],
                    serde_json::json!({"a": "1", "b": "2"}),
                    "{label}"
                );
            }
            for var in CGI_VARS {
                if repeated && JOINED_HEADER_VARS.contains(var) {
                    continue;
                }
                let (x, y) = (&a["server"][var], &b["server"][var]);
                if x != y {
                    failures.push(format!("{label}: $_SERVER[{var}] {x} vs nginx {y}"));
                }
            }
            for part in ["get", "post", "cookie", "input_len", "input_sha256"] {
                if a[part] != b[part] && !(repeated && part == "cookie") {
                    failures.push(format!("{label}: {part} {} vs nginx {}", a[part], b[part]));
                }
            }
        } else if php_body && !theirs.text().contains("<center>nginx") && ours.body != theirs.body {
            // Pages nginx writes itself (its 404 page) are not compared; PHP's output is.
            failures.push(format!(
                "{label}: body {:?} vs nginx {:?}",
                ours.text(),
                theirs.text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "differences from nginx + php-fpm:\n{}",
        failures.join("\n")
    );
    drop(site);
}
