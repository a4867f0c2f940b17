//! `isola import`: the real binary on Debian's shipped nginx site and php-fpm pool (from
//! tests/fixtures/import), then `isola check` on what it printed; notes and exit statuses.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

fn isola(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_isola"))
        .env("STATE_DIRECTORY", dir.join("state"))
        .env_remove("ISOLA_BACKEND")
        .env_remove("ISOLA_CONFIG")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn import_debian_default_site_and_pool_then_check_accepts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.php"), "<?php echo 1;").unwrap();
    // The shipped site, with its docroot and port moved to this test's.
    let port = free_port();
    let site = fixture("nginx-debian-default-php")
        .replace("/var/www/html", s(&www))
        .replace(
            "listen 80 default_server;",
            &format!("listen 127.0.0.1:{port} default_server;"),
        );
    let mut pool = fixture("fpm-debian-www.conf");
    if !nix::unistd::Uid::effective().is_root() {
        // php.user needs Isola to start as root.
        pool = pool
            .replace("user = www-data", ";user")
            .replace("group = www-data", ";group");
    }
    let (site_file, pool_file): (PathBuf, PathBuf) = (dir.join("default"), dir.join("www.conf"));
    std::fs::write(&site_file, site).unwrap();
    std::fs::write(&pool_file, pool).unwrap();

    let (code, out, err) = isola(
        &["import", "--nginx", s(&site_file), "--fpm", s(&pool_file)],
        dir,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("# isola.toml written by `isola import` from:"),
        "{out}"
    );
    assert!(
        out.contains(&format!("docroot          = {:?}", s(&www))),
        "{out}"
    );
    assert!(
        out.contains(&format!("listen           = \"127.0.0.1:{port}\"")),
        "{out}"
    );
    assert!(out.contains("front_controller = \"\""), "{out}");
    assert!(out.contains("pm             = \"dynamic\""), "{out}");
    assert!(out.contains("max_children   = 5"), "{out}");
    // Every line on stderr is a note naming file and line, then the summary.
    let lines: Vec<&str> = err.lines().collect();
    let (summary, notes) = lines.split_last().unwrap();
    assert_eq!(
        *summary, "isola: import: 1 directive not translated, 7 notes",
        "{err}"
    );
    for l in notes {
        let (at, _) = l.split_once(" — ").unwrap_or_else(|| panic!("{l}"));
        let f = at.split(':').next().unwrap();
        assert!(f == s(&site_file) || f == s(&pool_file), "{l}");
    }
    assert!(
        // The test moved the IPv4 listener to another port, so [::]:80 is a second address.
        err.contains(&format!(
            "{}:23: listen [::]:80 — Isola has one address per listener",
            s(&site_file)
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:68: location ~ /\\.ht {{ ... }} — note: not needed: Isola denies dotfiles by default", s(&site_file))),
        "{err}"
    );

    let config = dir.join("isola.toml");
    std::fs::write(&config, &out).unwrap();
    let (code, cout, cerr) = isola(
        &["check", "--backend", "php-cgi", "--config", s(&config)],
        dir,
    );
    assert_eq!(code, Some(0), "{cerr}\n{out}");
    assert!(cout.contains("configuration ok"), "{cout}");
}

#[test]
fn import_lists_untranslated_directives_and_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let site = dir.join("laravel.conf");
    std::fs::write(&site, fixture("nginx-laravel.conf")).unwrap();
    let (code, out, err) = isola(&["import", "--nginx", s(&site)], dir);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("front_controller = \"index.php\""), "{out}");
    assert!(out.contains("server_names = [\"example.com\"]"), "{out}");
    assert!(
        err.contains(&format!(
            "{}:8: add_header X-Frame-Options SAMEORIGIN — no Isola equivalent",
            s(&site)
        )),
        "{err}"
    );

    let bad = dir.join("bad.conf");
    std::fs::write(&bad, "server {\n    listen 80;\n    root /srv\n}\n").unwrap();
    let (code, out, err) = isola(&["import", "--nginx", s(&bad)], dir);
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err.trim_end(),
        format!(
            "isola: import: {}:3: directive \"root\" is not terminated by \";\"",
            s(&bad)
        )
    );

    let pool = dir.join("pool.conf");
    std::fs::write(&pool, "[www]\npm = dynamic\npm.max_children\n").unwrap();
    let (code, _, err) = isola(&["import", "--fpm", s(&pool)], dir);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!("{}:3: expected \"key = value\"", s(&pool))),
        "{err}"
    );

    let (code, _, err) = isola(&["import", "--nginx", s(&dir.join("missing"))], dir);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot read") && err.contains("missing"),
        "{err}"
    );

    let (code, _, err) = isola(&["import", "--nginx", s(&site), "--server", "nope"], dir);
    assert_eq!(code, Some(2));
    assert!(err.contains("no server block named \"nope\""), "{err}");
}
