//! Builds the engine host (c/isola_php.c) as a shared object linked to libphp, when the
//! PHP development files are present, and embeds it in the binary.
//!
//! The shim is loaded at run time with dlopen, only in the `__php-zygote` process, so an
//! `isola` built here still starts on a machine without libphp: there the native backend
//! reports itself unavailable and php-cgi serves. Without php-config at build time the
//! native backend is compiled out and says which package to install.
//!
//! Inputs: `ISOLA_PHP_CONFIG` (path of php-config; default: `php-config8.2`, then
//! `php-config`), `ISOLA_LIBPHP` (path of libphp*.so; default: `<prefix>/lib/libphp<ver>.so`
//! or `<prefix>/lib/libphp.so`).
use std::path::{Path, PathBuf};
use std::process::Command;

fn php_config(tool: &str, arg: &str) -> Option<String> {
    let out = Command::new(tool).arg(arg).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(isola_native)");
    println!("cargo:rerun-if-changed=c/isola_php.c");
    println!("cargo:rerun-if-env-changed=ISOLA_PHP_CONFIG");
    println!("cargo:rerun-if-env-changed=ISOLA_LIBPHP");
    let candidates: Vec<String> = match std::env::var("ISOLA_PHP_CONFIG") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => vec!["php-config8.2".into(), "php-config".into()],
    };
    let Some((tool, version)) = candidates
        .iter()
        .find_map(|t| php_config(t, "--version").map(|v| (t.clone(), v)))
    else {
        println!(
            "cargo:warning=php-config not found: the native PHP backend is not built (install php8.2-dev and libphp8.2-embed)"
        );
        return;
    };
    let includes = php_config(&tool, "--includes").unwrap_or_default();
    let prefix = php_config(&tool, "--prefix").unwrap_or_else(|| "/usr".into());
    let short: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let libphp = match std::env::var("ISOLA_LIBPHP") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => [
            format!("{prefix}/lib/libphp{short}.so"),
            format!("{prefix}/lib/libphp.so"),
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists()),
    };
    let Some(libphp) = libphp else {
        println!(
            "cargo:warning=libphp (embed SAPI) not found under {prefix}/lib: the native PHP backend is not built (install libphp{short}-embed)"
        );
        return;
    };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let so = out_dir.join("libisola_php.so");
    let compiler = cc::Build::new().get_compiler();
    let lib_dir = libphp.parent().unwrap_or(Path::new("/usr/lib"));
    let mut cmd = compiler.to_command();
    cmd.args(["-O2", "-g", "-shared", "-fPIC", "-Wall", "-Wextra"])
        .args(["-Wno-unused-parameter", "-Wno-missing-field-initializers"])
        .args(includes.split_whitespace())
        .arg("c/isola_php.c")
        .arg("-o")
        .arg(&so)
        .arg(&libphp)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()));
    let status = cmd.status();
    match status {
        Ok(s) if s.success() => {
            println!("cargo:rustc-cfg=isola_native");
            println!("cargo:rustc-env=ISOLA_SHIM_SO={}", so.display());
            println!("cargo:rustc-env=ISOLA_PHP_BUILD_VERSION={version}");
            println!("cargo:rustc-env=ISOLA_LIBPHP_PATH={}", libphp.display());
            // Where this PHP build looks for php.ini: the native backend reads php-cgi's
            // files beside it (Debian: /etc/php/8.2/cgi next to .../cli).
            if let Some(p) = php_config(&tool, "--ini-path") {
                println!("cargo:rustc-env=ISOLA_PHP_INI_PATH={p}");
            }
            if let Some(d) = php_config(&tool, "--ini-dir") {
                println!("cargo:rustc-env=ISOLA_PHP_INI_DIR={d}");
            }
        }
        // Without a working C compiler the binary is still built: the native backend then
        // reports itself unavailable and php-cgi serves.
        other => println!(
            "cargo:warning=compiling the engine host c/isola_php.c failed ({other:?}): the native PHP backend is not built"
        ),
    }
}
