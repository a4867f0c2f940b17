//! Opening a chosen static file so that the open itself proves containment:
//! `openat2(base, rest, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from a descriptor of the
//! document root (or alias folder) walks the path once, follows symlinks only while they
//! stay below the base, and hands back the descriptor the response is read from — one
//! system call where `stat` + an `lstat` per component + `open` walked the path three times,
//! and no window between the check and the open.
//!
//! Owns: the cached descriptor of each base folder, revalidated on every use (one `stat` of
//! the configured path: a deploy that swaps a `current` symlink is seen by the next
//! request), and the decision of when the fast path does not apply.
//!
//! Never: decides routing (the caller does, on what this returns), reads file contents, or
//! treats an escape as an error: a path that leaves its base through a symlink comes back as
//! [`Opened::Escapes`] and the caller applies the full rule (aliases, canonical paths).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Cleared for good when the kernel (or a seccomp filter) refuses `openat2`: every later
/// open takes the portable path.
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// A folder paths are resolved beneath, with its descriptor once opened.
#[derive(Debug)]
pub(crate) struct BaseDir {
    path: OsString,
    cached: RwLock<Option<Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    dev: u64,
    ino: u64,
    fd: Arc<OwnedFd>,
}

/// What an open beneath a base found.
#[derive(Debug)]
pub(crate) enum Opened {
    /// Opened beneath the base, with its metadata.
    Found(File, std::fs::Metadata),
    /// ENOENT, ENOTDIR, ELOOP or ENAMETOOLONG.
    Missing,
    /// EACCES.
    Denied,
    /// The path leaves the base (an absolute symlink, or one climbing out): not decided here.
    Escapes,
    /// `openat2` is not available, the base cannot be opened, or the open failed in a way
    /// `stat` explains better (a socket): not decided here.
    Unsupported,
}

impl BaseDir {
    pub(crate) fn new(mut path: OsString) -> Self {
        if path.is_empty() {
            // The root folder, whose trailing slash was trimmed with the others.
            path.push("/");
        }
        Self {
            path,
            cached: RwLock::new(None),
        }
    }

    /// A descriptor of the folder the configured path names now.
    fn fd(&self) -> Option<Arc<OwnedFd>> {
        let now = rustix::fs::stat(Path::new(&self.path)).ok()?;
        let (dev, ino) = (now.st_dev, now.st_ino);
        if let Some(c) = self
            .cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|c| c.dev == dev && c.ino == ino)
        {
            return Some(c.fd.clone());
        }
        let fd = rustix::fs::open(
            Path::new(&self.path),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        let c = Cached {
            dev: st.st_dev,
            ino: st.st_ino,
            fd: Arc::new(fd),
        };
        let fd = c.fd.clone();
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(c);
        Some(fd)
    }

    /// Opens `rest` (relative, no leading `/`; empty for the base itself) for reading,
    /// never leaving the base. Non-blocking, so a FIFO planted in the tree cannot hang the
    /// caller (nginx opens the same way).
    pub(crate) fn open(&self, rest: &OsStr) -> Opened {
        if !OPENAT2.load(Ordering::Relaxed) {
            return Opened::Unsupported;
        }
        let Some(base) = self.fd() else {
            return Opened::Unsupported;
        };
        let rest: &OsStr = if rest.is_empty() {
            OsStr::new(".")
        } else {
            rest
        };
        match rustix::fs::openat2(
            &*base,
            rest,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => {
                let file = File::from(fd);
                match file.metadata() {
                    Ok(meta) => Opened::Found(file, meta),
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Opened::Denied,
                    Err(_) => Opened::Missing,
                }
            }
            Err(Errno::XDEV) => Opened::Escapes,
            Err(Errno::ACCESS) => Opened::Denied,
            Err(Errno::NOSYS | Errno::INVAL | Errno::TOOBIG) => {
                // Kernels before 5.6, or a sandbox without the call: stop trying.
                OPENAT2.store(false, Ordering::Relaxed);
                Opened::Unsupported
            }
            // Interrupted, out of descriptors, or EPERM (which a seccomp filter may return
            // for the call itself): the portable path decides and reports.
            Err(
                Errno::INTR
                | Errno::AGAIN
                | Errno::MFILE
                | Errno::NFILE
                | Errno::NOMEM
                | Errno::PERM,
            ) => Opened::Unsupported,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG) => Opened::Missing,
            // ENXIO (a socket), ENODEV and the like: something that is not a file, which
            // `stat` names for the caller.
            Err(_) => Opened::Unsupported,
        }
    }
}
