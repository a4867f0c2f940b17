//! The `__php-zygote` process: loads the embedded engine host and hands it the control
//! socket (fd 0). Runs in a freshly exec'd, single-threaded process, before any runtime
//! exists, because the engine host forks workers and a fork copies only the calling thread.
//!
//! Never: starts threads, or returns to the caller's normal flow on success (the engine
//! host ends the process itself).
#[cfg(isola_native)]
use std::ffi::CString;
#[cfg(isola_native)]
use std::io::Write;
#[cfg(isola_native)]
use std::os::fd::AsRawFd;

/// Runs the zygote with an optional php.ini path; returns an exit code only when the
/// engine could not be loaded. The ini entries (`name=value` lines applied like `-d`) are
/// the first message on the control socket, not arguments: they may hold secrets (a store
/// password in `session.save_path`) and every user can read a process's arguments.
pub fn run(ini_file: Option<&str>, credentials: Option<(u32, u32)>) -> i32 {
    let loaded = match credentials {
        Some((uid, gid)) => drop_privileges(uid, gid),
        None => Ok(()),
    }
    .and_then(|()| read_ini_entries())
    .and_then(|ini| load_and_run(&ini, ini_file));
    match loaded {
        Ok(code) => code,
        Err(reason) => {
            // The pool reads this as the zygote's answer and reports it.
            let msg = format!("E {reason}");
            send_ctl(msg.as_bytes());
            eprintln!("isola engine host: {reason}");
            1
        }
    }
}

/// Becomes the pool's user before the engine starts, so that opcache's shared memory, its
/// lock file and every forked worker belong to that user. A credential change clears the
/// parent-death signal, so it is set again.
fn drop_privileges(uid: u32, gid: u32) -> Result<(), String> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    let g = Gid::from_raw(gid);
    setgroups(&[g]).map_err(|e| format!("setgroups({gid}): {e}"))?;
    setgid(g).map_err(|e| format!("setgid({gid}): {e}"))?;
    setuid(Uid::from_raw(uid)).map_err(|e| format!("setuid({uid}): {e}"))?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("prctl(PR_SET_PDEATHSIG): {e}"))?;
    if nix::unistd::getppid().as_raw() == 1 {
        return Err("isola exited while the engine host was starting".into());
    }
    Ok(())
}

/// Largest ini message accepted (the server sends kilobytes).
const MAX_INI_MESSAGE: usize = 1 << 20;

#[allow(unsafe_code)]
fn read_ini_entries() -> Result<String, String> {
    let mut buf = vec![0u8; MAX_INI_MESSAGE];
    // SAFETY: recv(2) on the control socket (fd 0) into a buffer of the given length.
    let n = unsafe { libc::recv(0, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n <= 0 {
        return Err("no configuration on the control socket".into());
    }
    buf.truncate(n as usize);
    let text = String::from_utf8(buf).map_err(|_| "ini entries are not UTF-8".to_string())?;
    text.strip_prefix('I')
        .map(str::to_string)
        .ok_or_else(|| "the first control message is not the ini entries".to_string())
}

#[allow(unsafe_code)]
fn send_ctl(msg: &[u8]) {
    // SAFETY: fd 0 is the control socket this process was started with; send(2) reads
    // `msg` only within its length.
    unsafe {
        libc::send(0, msg.as_ptr().cast(), msg.len(), libc::MSG_NOSIGNAL);
    }
}

#[cfg(not(isola_native))]
fn load_and_run(_ini: &str, _file: Option<&str>) -> Result<i32, String> {
    Err(crate::built_in()
        .err()
        .unwrap_or("native backend unavailable")
        .to_string())
}

#[cfg(isola_native)]
static SHIM: &[u8] = include_bytes!(env!("ISOLA_SHIM_SO"));

#[cfg(isola_native)]
#[allow(unsafe_code)]
fn load_and_run(ini: &str, file: Option<&str>) -> Result<i32, String> {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    type ZygoteMain =
        unsafe extern "C" fn(libc::c_int, *const libc::c_char, *const libc::c_char) -> libc::c_int;
    // A memfd, not a file: nothing to clean up, nothing another user could swap.
    let name = CString::new("isola-php-engine").map_err(|e| e.to_string())?;
    let fd = memfd_create(&name, MemFdCreateFlag::MFD_CLOEXEC)
        .map_err(|e| format!("memfd_create: {e}"))?;
    let mut file_obj = std::fs::File::from(fd);
    file_obj
        .write_all(SHIM)
        .map_err(|e| format!("writing the engine host: {e}"))?;
    let path = CString::new(format!("/proc/self/fd/{}", file_obj.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    let ini_c = CString::new(ini).map_err(|_| "ini entries contain a NUL byte".to_string())?;
    let file_c = file
        .map(CString::new)
        .transpose()
        .map_err(|_| "php.ini path contains a NUL byte".to_string())?;
    // SAFETY: dlopen/dlsym/dlerror are called from the only thread of this process with
    // NUL-terminated strings that outlive the calls. RTLD_GLOBAL because PHP's shared
    // extensions resolve libphp's symbols from the global scope.
    unsafe {
        // Debian's libphp8.2.so names itself libphp.so (its SONAME, hence the engine host's
        // NEEDED entry), a file no package installs. Loaded first by the path it was built
        // against, it satisfies that entry; if it fails, the next dlopen says why.
        if let Ok(libphp) = CString::new(env!("ISOLA_LIBPHP_PATH")) {
            libc::dlopen(libphp.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        }
        let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if handle.is_null() {
            let err = libc::dlerror();
            let msg = if err.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned()
            };
            return Err(format!(
                "cannot load the PHP engine: {msg} (install libphp8.2-embed, or set backend = \"php-cgi\")"
            ));
        }
        let sym = libc::dlsym(handle, c"isola_zygote_main".as_ptr());
        if sym.is_null() {
            return Err("the engine host has no isola_zygote_main".into());
        }
        let main: ZygoteMain = std::mem::transmute::<*mut libc::c_void, ZygoteMain>(sym);
        let code = main(
            0,
            ini_c.as_ptr(),
            file_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        );
        Ok(code)
    }
}
