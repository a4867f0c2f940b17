//! `isola check` and `isola serve --check`: the real binary against a config in a temporary
//! folder; a good one exits 0 with a summary, each class of problem exits 2 with its line.
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A folder with `www/index.php` and `isola.toml` made of `toml` (paths relative to it).
fn setup(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.php"), "<?php echo 1;").unwrap();
    std::fs::write(dir.path().join("isola.toml"), toml).unwrap();
    dir
}

/// Runs `isola <args> --config DIR/isola.toml`: exit status, stdout, stderr.
fn check_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_isola"))
        .env("STATE_DIRECTORY", dir.join("state"))
        .env_remove("ISOLA_BACKEND")
        .args(args)
        .arg("--config")
        .arg(dir.join("isola.toml"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: &str =
    "[server]\ndocroot = \"www\"\nlisten = \"127.0.0.1:0\"\n[php]\nbackend = \"php-cgi\"\n";

/// Asserts that checking `toml` fails with status 2 and a problem line containing `line`.
fn fails_with(toml: &str, line: &str) {
    let dir = setup(toml);
    let (code, _, err) = check_in(dir.path(), &["check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("isola: check: ") && l.contains(line)),
        "no line with {line:?}: {err}"
    );
}

#[test]
fn check_good_config_exits_0_with_php_version() {
    let dir = setup(&format!("{BASE}[php.ini]\nmemory_limit = \"64M\"\n"));
    for args in [&["check"][..], &["serve", "--check"]] {
        let (code, out, err) = check_in(dir.path(), args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(out.contains("configuration ok"), "{out}");
        assert!(out.contains("PHP 8."), "{out}");
        assert!(err.is_empty(), "{err}");
    }
}

#[test]
fn check_invalid_key_and_missing_file_exit_2() {
    fails_with(&format!("{BASE}[pool]\nmax_childern = 3\n"), "max_childern");
    fails_with("[server]\ndocroot = \"/no/such/dir\"\n", "server.docroot");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check_in(dir.path(), &["check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn check_docroot_the_php_user_cannot_read_exits_2() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: php.user needs root");
        return;
    }
    let dir = setup(&format!("{BASE}user = \"nobody\"\n"));
    std::fs::set_permissions(
        dir.path().join("www"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let (code, _, err) = check_in(dir.path(), &["check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("isola: check: server.docroot: ")
            && err.contains("the PHP user nobody cannot read"),
        "{err}"
    );
    // Readable by others: the same config passes.
    std::fs::set_permissions(
        dir.path().join("www"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (code, _, err) = check_in(dir.path(), &["check"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn check_ini_settings_php_rejects_exit_2() {
    fails_with(
        &format!("{BASE}[php.ini]\n\"no_such.setting\" = 1\n"),
        "php.ini.no_such.setting: PHP knows no such setting",
    );
    fails_with(
        &format!("{BASE}[php.ini]\nmemory_limit = \"12zz\"\n"),
        "php.ini.memory_limit: PHP: Invalid \"memory_limit\" setting",
    );
    fails_with(
        &format!("{BASE}[php.ini]\n\"date.timezone\" = \"Mars/Olympus\"\n"),
        "php.ini.date.timezone: PHP: PHP Startup: Invalid date.timezone value",
    );
}

#[test]
fn check_php_binary_missing_exits_2() {
    fails_with(&format!("{BASE}binary = \"/no/php-cgi\"\n"), "php.binary");
}

#[test]
fn check_key_that_does_not_match_the_certificate_exits_2() {
    let toml = BASE.replace(
        "[php]",
        "tls_listen = \"127.0.0.1:0\"\n[[tls.cert]]\ncert = \"a.pem\"\nkey = \"b.key\"\n[php]",
    );
    let dir = setup(&toml);
    for stem in ["a", "b"] {
        let c = rcgen::generate_simple_self_signed(vec![format!("{stem}.test")]).unwrap();
        std::fs::write(dir.path().join(format!("{stem}.pem")), c.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join(format!("{stem}.key")),
            c.key_pair.serialize_pem(),
        )
        .unwrap();
    }
    let (code, _, err) = check_in(dir.path(), &["check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("isola: check: tls.cert[0].key: ") && err.contains("does not match"),
        "{err}"
    );
    // The right key: fine.
    let fixed = toml.replace("b.key", "a.key");
    std::fs::write(dir.path().join("isola.toml"), fixed).unwrap();
    let (code, _, err) = check_in(dir.path(), &["check"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn check_listen_address_in_use_exits_2() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let toml = BASE.replace("127.0.0.1:0", &addr.to_string());
    fails_with(&toml, &format!("server.listen: cannot listen on {addr}: "));
}

#[test]
fn check_store_dir_that_cannot_be_written_exits_2() {
    // A file where the folder should be: neither writable nor creatable.
    let dir = setup("");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "").unwrap();
    let toml = format!("{BASE}[store]\ndir = \"{}\"\n", file.join("aof").display());
    fails_with(&toml, "store.dir: ");
}
