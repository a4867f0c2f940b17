//! `isola import` on real and hand-written configurations (tests/fixtures/import): the key
//! values translated, the notes given, and the output accepted by the config crate's own
//! loader and validator.
#![allow(clippy::unwrap_used)]

use isola_config::{Config, RawConfig};
use isola_import::{import, Import, NoteKind, Options, Source};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/import")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap()
}

/// nginx `include`s as the binary reads them, from the fixtures folder.
fn reader(path: &str) -> Vec<(String, String)> {
    if path == "/etc/nginx/sites-enabled/*" {
        return vec![(
            "nginx-debian-default".to_string(),
            fixture("nginx-debian-default"),
        )];
    }
    let base = path.rsplit('/').next().unwrap_or(path);
    let name = format!("nginx-snippets-{base}");
    match std::fs::read_to_string(dir().join(&name)) {
        Ok(text) => vec![(name, text)],
        Err(_) => Vec::new(),
    }
}

fn run(nginx: Option<&str>, fpm: Option<&str>, server: Option<&str>) -> (Import, toml::Table) {
    let (nt, ft) = (nginx.map(fixture), fpm.map(fixture));
    let opts = Options {
        server,
        include: Some(&reader),
    };
    let out = import(
        nginx
            .zip(nt.as_deref())
            .map(|(name, text)| Source { name, text }),
        fpm.zip(ft.as_deref())
            .map(|(name, text)| Source { name, text }),
        &opts,
    )
    .unwrap();
    let table: toml::Table = out.toml.parse().unwrap();
    eprintln!("{}", out.toml);
    for n in &out.notes {
        eprintln!("{n}");
    }
    (out, table)
}

/// Loads `text` through the config crate exactly as `isola serve` does, after making the
/// files it names exist below a temporary folder (absolute paths are moved there).
fn load(text: &str) -> Config {
    let mut raw = RawConfig::from_toml(text, Path::new("imported.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let moved = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let mkdir = |p: &Option<PathBuf>| -> Option<PathBuf> {
        p.as_ref().map(|p| {
            let d = moved(p);
            std::fs::create_dir_all(&d).unwrap();
            d
        })
    };
    raw.server.docroot = mkdir(&raw.server.docroot);
    for s in raw.site.iter_mut().flatten() {
        s.docroot = mkdir(&s.docroot);
    }
    for a in raw.server.alias.iter_mut().flatten() {
        a.dir = mkdir(&a.dir);
    }
    for a in raw.server.sendfile.iter_mut().flatten() {
        a.dir = mkdir(&a.dir);
    }
    for c in raw.tls.cert.iter_mut().flatten() {
        for f in [&mut c.cert, &mut c.key] {
            if let Some(p) = f {
                let m = moved(p);
                std::fs::create_dir_all(m.parent().unwrap()).unwrap();
                std::fs::write(&m, "pem").unwrap();
                *f = Some(m);
            }
        }
    }
    if let Some(f) = &raw.log.access_file {
        let m = moved(f);
        std::fs::create_dir_all(m.parent().unwrap()).unwrap();
        raw.log.access_file = Some(m);
    }
    // php.user needs root and the user; the test machine may have neither.
    let root_user = nix_is_root();
    if !root_user {
        raw.php.user = None;
        raw.php.group = None;
    }
    let env = isola_config::Env {
        search_path: Vec::new(),
        state_dir: Some("/var/lib/isola".into()),
    };
    match raw.validate(&root, &env) {
        Ok(c) => c,
        Err(e) => panic!("the config loader refused the import:\n{e}\n---\n{text}"),
    }
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn has_note(out: &Import, kind: NoteKind, file_line: &str, text: &str) -> bool {
    out.notes.iter().any(|n| {
        n.kind == kind
            && format!("{}:{}", n.file, n.line) == file_line
            && n.to_string().contains(text)
    })
}

/// Every (`file:line`, text) pair is listed as not translated.
fn assert_untranslated(out: &Import, expected: &[(&str, &str)]) {
    for (at, text) in expected {
        assert!(
            has_note(out, NoteKind::Untranslated, at, text),
            "{at} {text}: {:?}",
            out.notes
        );
    }
}

#[test]
fn debian_default_site() {
    let (out, t) = run(Some("nginx-debian-default"), None, None);
    let s = &t["server"];
    assert_eq!(s["listen"].as_str(), Some("0.0.0.0:80"));
    assert_eq!(s["docroot"].as_str(), Some("/var/www/html"));
    assert_eq!(
        s["front_controller"].as_str(),
        Some(""),
        "try_files ... =404: no front controller"
    );
    assert_eq!(
        s["index"].as_array().unwrap().len(),
        3,
        "index.html index.htm index.nginx-debian.html"
    );
    assert!(t.get("site").is_none(), "server_name _ names no host");
    assert!(
        has_note(&out, NoteKind::Info, "nginx-debian-default:23", "[::]:80"),
        "{:?}",
        out.notes
    );
    assert_eq!(out.untranslated().count(), 0, "{:?}", out.notes);
    let c = load(&out.toml);
    assert_eq!(c.startup.listen.to_string(), "0.0.0.0:80");
    assert_eq!(c.server.routing.front_controller, None);
}

fn strs(v: &toml::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[test]
fn debian_default_site_with_php_and_the_shipped_www_pool() {
    let (out, t) = run(
        Some("nginx-debian-default-php"),
        Some("fpm-debian-www.conf"),
        None,
    );
    assert_eq!(strs(&t["server"]["index"])[0], "index.php");
    let pool = &t["pool"];
    assert_eq!(pool["pm"].as_str(), Some("dynamic"));
    assert_eq!(pool["max_children"].as_integer(), Some(5));
    assert_eq!(pool["start_children"].as_integer(), Some(2));
    assert_eq!(pool["min_spare"].as_integer(), Some(1));
    assert_eq!(pool["max_spare"].as_integer(), Some(3));
    assert_eq!(t["php"]["user"].as_str(), Some("www-data"));
    assert_eq!(t["php"]["group"].as_str(), Some("www-data"));
    assert!(has_note(
        &out,
        NoteKind::Info,
        "nginx-debian-default-php:56",
        "Isola runs *.php"
    ));
    assert!(has_note(
        &out,
        NoteKind::Info,
        "nginx-debian-default-php:68",
        "denies dotfiles by default"
    ));
    assert!(has_note(
        &out,
        NoteKind::Info,
        "fpm-debian-www.conf:41",
        "not needed"
    ));
    assert_eq!(out.untranslated().count(), 0, "{:?}", out.notes);
    assert!(out.toml.starts_with(
        "# isola.toml written by `isola import` from:\n#   nginx:   nginx-debian-default-php"
    ));
    assert!(out
        .toml
        .contains("#   php-fpm: fpm-debian-www.conf, pool [www]"));
    let c = load(&out.toml);
    assert_eq!(c.pool.max_children, 5);
    assert!(matches!(
        c.pool.pm,
        isola_pool::ProcessManager::Dynamic {
            start: 2,
            min_spare: 1,
            max_spare: 3
        }
    ));
}

#[test]
fn debian_wordpress_package_config() {
    let (out, t) = run(Some("nginx-debian-wordpress.conf"), None, None);
    assert_eq!(strs(&t["site"][0]["server_names"]), ["wordpress.local"]);
    assert_eq!(
        t["site"][0]["docroot"].as_str(),
        Some("/usr/share/wordpress")
    );
    let s = &t["server"];
    assert_eq!(
        s["front_controller"].as_str(),
        Some("index.php"),
        "try_files $uri $uri/ /index.php?$args"
    );
    assert_eq!(
        s["listen"].as_str(),
        Some("0.0.0.0:80"),
        "nginx's default listen"
    );
    let alias = &s["alias"][0];
    assert_eq!(alias["path"].as_str(), Some("/wp-content"));
    assert_eq!(alias["dir"].as_str(), Some("/var/lib/wordpress/wp-content"));
    let cc = &s["cache_control"][0];
    assert_eq!(cc["path"].as_str(), Some("*.{js,css,png,jpg,jpeg,gif,ico}"));
    assert_eq!(cc["value"].as_str(), Some("public, max-age=315360000"));
    assert!(has_note(
        &out,
        NoteKind::Untranslated,
        "nginx-debian-wordpress.conf:32",
        "fastcgi_intercept_errors"
    ));
    assert!(has_note(
        &out,
        NoteKind::Untranslated,
        "nginx-debian-wordpress.conf:7",
        "location = /favicon.ico"
    ));
    let c = load(&out.toml);
    assert_eq!(c.sites.len(), 1);
    assert_eq!(c.sites[0].names, ["wordpress.local"]);
    assert_eq!(
        c.sites[0].routing.front_controller.as_deref(),
        Some("index.php")
    );
    assert_eq!(c.sites[0].routing.aliases.len(), 1);
}

#[test]
fn laravel_front_controller_with_a_tuned_pool() {
    let (out, t) = run(Some("nginx-laravel.conf"), Some("fpm-tuned.conf"), None);
    let s = &t["server"];
    assert_eq!(s["front_controller"].as_str(), Some("index.php"));
    assert_eq!(s["listen"].as_str(), Some("0.0.0.0:80"));
    assert_eq!(
        t["site"][0]["docroot"].as_str(),
        Some("/srv/example.com/public")
    );
    let pool = &t["pool"];
    assert_eq!(pool["pm"].as_str(), Some("ondemand"));
    assert_eq!(pool["max_children"].as_integer(), Some(16));
    assert_eq!(pool["idle_timeout"].as_str(), Some("20s"));
    assert_eq!(pool["max_requests"].as_integer(), Some(500));
    assert_eq!(pool["request_terminate_timeout"].as_str(), Some("120s"));
    assert_eq!(pool["slowlog_timeout"].as_str(), Some("5s"));
    assert_eq!(pool["slowlog_trace_depth"].as_integer(), Some(40));
    assert!(
        pool.get("start_children").is_none(),
        "pm.start_servers is ignored with ondemand"
    );
    let ini = &t["php"]["ini"];
    assert_eq!(ini["memory_limit"].as_str(), Some("256M"));
    assert_eq!(
        ini["error_log"].as_str(),
        Some("/var/log/php-fpm/app.error.log"),
        "$pool replaced"
    );
    assert_eq!(ini["log_errors"].as_bool(), Some(true));
    assert_eq!(ini["display_errors"].as_bool(), Some(false));
    assert_eq!(
        ini["session.save_path"].as_str(),
        Some("/var/lib/php/sessions")
    );
    assert!(ini.get("cgi.fix_pathinfo").is_none());
    let env = &t["php"]["env"];
    assert_eq!(env["APP_ENV"].as_str(), Some("production"));
    assert!(env.get("HOSTNAME").is_none());
    assert_eq!(t["php"]["rlimit_files"].as_integer(), Some(4096));
    assert_untranslated(
        &out,
        &[
            ("fpm-tuned.conf:29", "cgi.fix_pathinfo"),
            ("fpm-tuned.conf:32", "$HOSTNAME"),
            ("fpm-tuned.conf:21", "clean environment"),
            ("fpm-tuned.conf:18", "slowlog"),
            ("fpm-tuned.conf:38", "another pool"),
            ("nginx-laravel.conf:8", "add_header"),
            ("nginx-laravel.conf:22", "error_page"),
        ],
    );
    assert!(has_note(
        &out,
        NoteKind::Info,
        "fpm-tuned.conf:24",
        "ini_set()"
    ));
    assert!(has_note(
        &out,
        NoteKind::Info,
        "nginx-laravel.conf:31",
        "dotfiles"
    ));
    let c = load(&out.toml);
    assert_eq!(c.pool.max_requests, 500);
    assert_eq!(
        c.php.ini.get("memory_limit").map(String::as_str),
        Some("256M")
    );
}

#[test]
fn symfony_over_tls_with_the_certbot_redirect_block() {
    let (out, t) = run(Some("nginx-symfony-tls.conf"), None, None);
    let s = &t["server"];
    assert_eq!(
        s["listen"].as_str(),
        Some("0.0.0.0:80"),
        "from the redirect block"
    );
    assert_eq!(s["tls_listen"].as_str(), Some("0.0.0.0:443"));
    assert_eq!(s["redirect_http_to_https"].as_bool(), Some(true));
    assert_eq!(s["front_controller"].as_str(), Some("index.php"));
    assert_eq!(s["max_body_size"].as_str(), Some("32M"));
    assert_eq!(s["keepalive_timeout"].as_str(), Some("30s"));
    assert_eq!(s["server_tokens"].as_bool(), Some(false));
    assert_eq!(strs(&s["deny"]), ["/var/**"]);
    assert_eq!(
        strs(&t["site"][0]["server_names"]),
        ["shop.example.org", "www.shop.example.org"]
    );
    let cert = &t["tls"]["cert"][0];
    assert_eq!(
        cert["cert"].as_str(),
        Some("/etc/letsencrypt/live/shop.example.org/fullchain.pem")
    );
    assert_eq!(
        cert["key"].as_str(),
        Some("/etc/letsencrypt/live/shop.example.org/privkey.pem")
    );
    assert_eq!(
        t["php"]["env"]["APP_ENV"].as_str(),
        Some("prod"),
        "constant fastcgi_param"
    );
    assert_eq!(
        t["php"]["ini"]["upload_max_filesize"].as_str(),
        Some("32M"),
        "PHP_VALUE"
    );
    assert_eq!(
        t["pool"]["request_terminate_timeout"].as_str(),
        Some("120s"),
        "fastcgi_read_timeout"
    );
    assert_eq!(
        t["log"]["access_file"].as_str(),
        Some("/var/log/nginx/project_access.log")
    );
    assert_eq!(
        t["server"]["cache_control"][0]["value"].as_str(),
        Some("max-age=604800")
    );
    assert_untranslated(
        &out,
        &[
            ("nginx-symfony-tls.conf:21", "ssl_protocols"),
            ("nginx-symfony-tls.conf:45", "cannot limit PHP"),
            ("nginx-symfony-tls.conf:42", "internal"),
            ("nginx-symfony-tls.conf:58", "error_log"),
        ],
    );
    assert!(has_note(
        &out,
        NoteKind::Info,
        "nginx-symfony-tls.conf:3",
        "redirect_http_to_https"
    ));
    let c = load(&out.toml);
    assert!(c.startup.redirect_http_to_https);
    assert_eq!(c.tls_certs.len(), 1);
    assert_eq!(c.limits.max_body_size, 32 << 20);
}

#[test]
fn two_server_blocks_first_by_default_other_by_name() {
    let (out, t) = run(Some("nginx-two-sites.conf"), None, None);
    assert_eq!(
        strs(&t["site"][0]["server_names"]),
        ["blog.example.com", "blog.example.net", "*.blog.example.net"]
    );
    let s = &t["server"];
    assert_eq!(s["listen"].as_str(), Some("0.0.0.0:8080"));
    assert_eq!(strs(&s["no_exec"]), ["wp-content/uploads/"]);
    assert_eq!(strs(&s["deny"]), ["*.{sql,bak}"]);
    assert!(has_note(
        &out,
        NoteKind::Untranslated,
        "nginx-two-sites.conf:26",
        "--server shop.example.com"
    ));
    load(&out.toml);

    let (out, t) = run(Some("nginx-two-sites.conf"), None, Some("shop.example.com"));
    assert_eq!(t["site"][0]["docroot"].as_str(), Some("/srv/shop/web"));
    assert_eq!(t["server"]["front_controller"].as_str(), Some("app.php"));
    assert!(has_note(
        &out,
        NoteKind::Untranslated,
        "nginx-two-sites.conf:2",
        "--server blog.example.com"
    ));
    load(&out.toml);
    let (_, t) = run(Some("nginx-two-sites.conf"), None, Some("2"));
    assert_eq!(t["site"][0]["docroot"].as_str(), Some("/srv/shop/web"));

    let text = fixture("nginx-two-sites.conf");
    let e = import(
        Some(Source {
            name: "two.conf",
            text: &text,
        }),
        None,
        &Options {
            server: Some("nope.example"),
            include: None,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no server block named \"nope.example\"")
            && e.contains("server #2 (shop.example.com)"),
        "{e}"
    );
}

#[test]
fn dokuwiki_hand_written() {
    let (out, t) = run(Some("nginx-dokuwiki.conf"), None, None);
    let s = &t["server"];
    assert_eq!(
        s["front_controller"].as_str(),
        Some(""),
        "routes through rewrites to doku.php"
    );
    assert_eq!(strs(&s["index"]), ["doku.php"]);
    assert_eq!(s["max_body_size"].as_str(), Some("4M"));
    assert_untranslated(
        &out,
        &[
            ("nginx-dokuwiki.conf:14", "write server.deny by hand"),
            ("nginx-dokuwiki.conf:26", "rewrite"),
            ("nginx-dokuwiki.conf:22", "@dokuwiki"),
        ],
    );
    load(&out.toml);
}

#[test]
fn phpmyadmin_alias_hand_written() {
    let (out, t) = run(Some("nginx-phpmyadmin.conf"), None, None);
    let s = &t["server"];
    assert_eq!(s["listen"].as_str(), Some("127.0.0.1:8081"));
    assert_eq!(s["docroot"].as_str(), Some("/var/www/html"));
    assert_eq!(s["alias"][0]["path"].as_str(), Some("/phpmyadmin"));
    assert_eq!(s["alias"][0]["dir"].as_str(), Some("/usr/share/phpmyadmin"));
    assert_eq!(
        strs(&s["deny"]),
        ["/phpmyadmin/{libraries,templates,setup/lib}/**"]
    );
    assert_eq!(s["max_body_size"].as_str(), Some("64M"));
    assert!(has_note(
        &out,
        NoteKind::Info,
        "nginx-phpmyadmin.conf:13",
        "below an alias"
    ));
    let c = load(&out.toml);
    assert_eq!(c.server.routing.aliases.len(), 1);
    assert_eq!(c.server.routing.deny.len(), 1);
}

#[test]
fn includes_are_followed_when_readable_and_listed_when_not() {
    let text = "server {\n listen 443 ssl;\n include snippets/snakeoil.conf;\n include /etc/nginx/missing.conf;\n root /srv/www;\n}\n";
    let out = import(
        Some(Source {
            name: "tls.conf",
            text,
        }),
        None,
        &Options {
            server: None,
            include: Some(&reader),
        },
    )
    .unwrap();
    let t: toml::Table = out.toml.parse().unwrap();
    assert_eq!(t["server"]["tls_listen"].as_str(), Some("0.0.0.0:443"));
    assert_eq!(
        t["tls"]["cert"][0]["cert"].as_str(),
        Some("/etc/ssl/certs/ssl-cert-snakeoil.pem"),
        "from Debian's snakeoil snippet"
    );
    assert_eq!(
        t["tls"]["cert"][0]["key"].as_str(),
        Some("/etc/ssl/private/ssl-cert-snakeoil.key")
    );
    assert!(
        has_note(&out, NoteKind::Untranslated, "tls.conf:4", "not followed"),
        "{:?}",
        out.notes
    );
    assert!(
        out.toml.contains("# nginx-snippets-snakeoil.conf:"),
        "{}",
        out.toml
    );
    load(&out.toml);
}

#[test]
fn worker_processes_becomes_the_fronts_threads_and_auto_is_the_default() {
    let conf = |n: &str| {
        format!(
            "worker_processes {n};\nhttp {{\n server {{\n  listen 80;\n  root /srv/app;\n }}\n}}\n"
        )
    };
    let imported = |text: &str| {
        import(
            Some(Source {
                name: "nginx.conf",
                text,
            }),
            None,
            &Options::default(),
        )
        .unwrap()
    };
    let out = imported(&conf("2"));
    let t: toml::Table = out.toml.parse().unwrap();
    assert_eq!(t["server"]["threads"].as_integer(), Some(2), "{}", out.toml);
    assert_eq!(load(&out.toml).startup.threads, Some(2));

    let out = imported(&conf("auto"));
    let t: toml::Table = out.toml.parse().unwrap();
    assert!(t["server"].get("threads").is_none(), "{}", out.toml);
    assert!(
        has_note(&out, NoteKind::Info, "nginx.conf:1", "one per core"),
        "{:?}",
        out.notes
    );

    let out = imported(&conf("lots"));
    assert!(
        has_note(&out, NoteKind::Untranslated, "nginx.conf:1", "1 to 1024"),
        "{:?}",
        out.notes
    );
}

#[test]
fn internal_locations_become_sendfile_folders() {
    let text = "server {\n listen 80;\n root /srv/app/public;\n \
                location /protected/ {\n  internal;\n  alias /srv/private/;\n }\n \
                location ^~ /exports {\n  internal;\n  add_header X-Frame-Options DENY;\n }\n \
                location ~ ^/x/(.*)$ {\n  internal;\n  alias /srv/x/$1;\n }\n \
                location ~ \\.php$ {\n  fastcgi_pass unix:/run/php/php-fpm.sock;\n  \
                fastcgi_param HTTP_X_SENDFILE_TYPE X-Accel-Redirect;\n  \
                fastcgi_param HTTP_X_ACCEL_MAPPING /srv/private/=/protected/;\n }\n}\n";
    let out = import(
        Some(Source {
            name: "app.conf",
            text,
        }),
        None,
        &Options::default(),
    )
    .unwrap();
    let t: toml::Table = out.toml.parse().unwrap();
    let sf = &t["server"]["sendfile"];
    assert_eq!(sf[0]["path"].as_str(), Some("/protected"));
    assert_eq!(sf[0]["dir"].as_str(), Some("/srv/private"));
    assert_eq!(sf[1]["path"].as_str(), Some("/exports"));
    assert_eq!(sf[1]["dir"].as_str(), Some("/srv/app/public/exports"));
    assert_eq!(sf.as_array().unwrap().len(), 2);
    assert!(has_note(
        &out,
        NoteKind::Info,
        "app.conf:4",
        "X-Accel-Redirect"
    ));
    assert!(has_note(
        &out,
        NoteKind::Untranslated,
        "app.conf:10",
        "internal location"
    ));
    assert!(has_note(
        &out,
        NoteKind::Untranslated,
        "app.conf:12",
        "other than a URL prefix"
    ));
    assert!(has_note(
        &out,
        NoteKind::Info,
        "app.conf:18",
        "HTTP_X_SENDFILE_TYPE itself"
    ));
    assert!(has_note(
        &out,
        NoteKind::Info,
        "app.conf:19",
        "HTTP_X_SENDFILE_TYPE itself"
    ));
    assert!(t.get("php").is_none(), "{}", out.toml);
    let c = load(&out.toml);
    assert_eq!(c.server.sendfile.len(), 2);
    assert_eq!(c.server.sendfile[0].path.as_deref(), Some("/protected"));
}

#[test]
fn unparseable_input_names_file_and_line() {
    let e = |nginx: Option<&str>, fpm: Option<&str>| {
        import(
            nginx.map(|text| Source { name: "site", text }),
            fpm.map(|text| Source {
                name: "pool.conf",
                text,
            }),
            &Options::default(),
        )
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        e(Some("server {\n  root /srv\n}\n"), None),
        "site:2: directive \"root\" is not terminated by \";\""
    );
    assert_eq!(e(Some("events {}\n"), None).split(':').next(), Some("site"));
    assert!(e(Some("events {}\n"), None).contains("no server block"));
    assert_eq!(
        e(None, Some("[www]\npm static\n")),
        "pool.conf:2: expected \"key = value\", found \"pm static\""
    );
    assert!(e(None, Some("pid = /run/fpm.pid\n")).contains("no pool section"));
    assert!(e(None, None).contains("nothing to import"));
}

#[test]
fn fpm_alone_and_pm_static() {
    let text = "[www]\npm = static\npm.max_children = 12\npm.min_spare_servers = 2\nrequest_terminate_timeout = 0\nphp_admin_value[disable_functions] = exec,system\n";
    let out = import(
        None,
        Some(Source {
            name: "www.conf",
            text,
        }),
        &Options::default(),
    )
    .unwrap();
    let t: toml::Table = out.toml.parse().unwrap();
    assert!(t.get("server").is_none());
    assert_eq!(t["pool"]["pm"].as_str(), Some("static"));
    assert_eq!(t["pool"]["max_children"].as_integer(), Some(12));
    assert_eq!(t["pool"]["request_terminate_timeout"].as_integer(), Some(0));
    assert!(t["pool"].get("min_spare").is_none());
    assert_eq!(
        t["php"]["ini"]["disable_functions"].as_str(),
        Some("exec,system")
    );
    assert!(has_note(
        &out,
        NoteKind::Info,
        "www.conf:4",
        "unless pm = dynamic"
    ));
    let mut text = out.toml.clone();
    text.push_str("\n[server]\ndocroot = \"/srv/x\"\n");
    let c = load(&text);
    assert_eq!(c.pool.max_children, 12);
    assert_eq!(c.limits.request_terminate_timeout, None);
}

#[test]
fn debian_nginx_conf_with_its_sites_enabled_wildcard() {
    let (out, t) = run(Some("nginx-debian-nginx.conf"), None, None);
    assert_eq!(t["server"]["docroot"].as_str(), Some("/var/www/html"));
    assert_eq!(t["server"]["listen"].as_str(), Some("0.0.0.0:80"));
    assert_eq!(
        t["log"]["access_file"].as_str(),
        Some("/var/log/nginx/access.log")
    );
    assert!(out
        .toml
        .contains("#   nginx:   nginx-debian-nginx.conf, server #1"));
    assert!(out
        .notes
        .iter()
        .any(|n| n.file == "nginx-debian-default" && n.line == 23));
    assert!(
        has_note(
            &out,
            NoteKind::Untranslated,
            "nginx-debian-nginx.conf:33",
            "ssl_protocols"
        ),
        "{:?}",
        out.notes
    );
    load(&out.toml);
}

/// The example in docs/operations.md is what the import prints.
#[test]
fn docs_example_is_current() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
    )
    .unwrap();
    let section = &doc[doc.find("## Migrating from nginx + php-fpm").unwrap()..];
    let block = |fence: &str| {
        let start = section.find(fence).unwrap() + fence.len();
        section[start..start + section[start..].find("```").unwrap()].to_string()
    };
    let (site, pool) = (block("```nginx\n"), block("```ini\n"));
    let out = import(
        Some(Source {
            name: "site.conf",
            text: &site,
        }),
        Some(Source {
            name: "app.conf",
            text: &pool,
        }),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(block("```toml\n"), out.toml);
    let notes: String = out.notes.iter().map(|n| format!("{n}\n")).collect();
    let err = block("and on standard error:\n\n```\n");
    assert!(err.starts_with(&notes), "docs:\n{err}\nnow:\n{notes}");
    load(&out.toml);
}

#[test]
fn https_redirect_without_tls_is_listed_not_written() {
    let text = "server {\n listen 80;\n root /srv/www;\n location / { return 301 https://$host$request_uri; }\n}\n";
    let out = import(
        Some(Source {
            name: "r.conf",
            text,
        }),
        None,
        &Options::default(),
    )
    .unwrap();
    let t: toml::Table = out.toml.parse().unwrap();
    assert!(
        t["server"].get("redirect_http_to_https").is_none(),
        "{}",
        out.toml
    );
    assert!(
        has_note(
            &out,
            NoteKind::Untranslated,
            "r.conf:4",
            "needs a TLS listener"
        ),
        "{:?}",
        out.notes
    );
    assert!(
        out.toml
            .contains("# no try_files fallback: nginx answers 404"),
        "{}",
        out.toml
    );
    load(&out.toml);
}

/// Every prefix of every fixture (cut mid-string, mid-block, mid-line) is translated or
/// refused with an error, never a panic; what translates still parses as TOML.
#[test]
fn truncated_inputs_never_panic() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let text = fixture(&name);
        let fpm = name.starts_with("fpm-");
        for cut in (0..text.len())
            .step_by(3)
            .filter(|&i| text.is_char_boundary(i))
        {
            let src = Some(Source {
                name: &name,
                text: &text[..cut],
            });
            let (n, f) = if fpm { (None, src) } else { (src, None) };
            if let Ok(out) = import(n, f, &Options::default()) {
                assert!(
                    out.toml.parse::<toml::Table>().is_ok(),
                    "{name} cut at {cut}"
                );
            }
        }
    }
}

#[test]
fn a_server_without_root_is_listed() {
    let text = "server {\n listen 8080;\n server_name a.example;\n}\n";
    let out = import(
        Some(Source {
            name: "n.conf",
            text,
        }),
        None,
        &Options::default(),
    )
    .unwrap();
    let t: toml::Table = out.toml.parse().unwrap();
    assert!(t.get("site").is_none());
    assert!(
        has_note(&out, NoteKind::Untranslated, "n.conf:1", "has no root"),
        "{:?}",
        out.notes
    );
    assert!(
        has_note(&out, NoteKind::Untranslated, "n.conf:1", "needs a docroot"),
        "{:?}",
        out.notes
    );
    RawConfig::from_toml(&out.toml, Path::new("x.toml")).unwrap();
}
