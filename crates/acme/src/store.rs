//! The account and certificate files: `<tls.acme.dir>/<CA host>/{account.json, cert.pem,
//! key.pem}`, the folder mode 0700, every file 0600, each written whole to a temporary file
//! first and renamed, so a crash never leaves half a key.
use crate::AcmeError;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The folder name for a CA: its directory URL's host and port (`acme-v02.api.letsencrypt.org`,
/// `127.0.0.1_14000`), so accounts and certificates of different CAs never mix.
pub(crate) fn ca_folder(directory: &str) -> String {
    let rest = directory.split_once("://").map_or(directory, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or("");
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AcmeError + '_ {
    move |source| AcmeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The file's bytes, `None` when it does not exist.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>, AcmeError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes `bytes` to `path` (mode 0600), creating the folder (mode 0700).
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A certificate chain PEM and its key PEM.
pub(crate) type Pems = (Vec<u8>, Vec<u8>);

/// The stored chain and key PEM, if both are there.
pub(crate) fn load_cert(dir: &Path) -> Result<Option<Pems>, AcmeError> {
    let chain = read(&dir.join("cert.pem"))?;
    let key = read(&dir.join("key.pem"))?;
    Ok(chain.zip(key))
}

/// Stores a new chain and key; the key first, so a stored chain never has an older key.
pub(crate) fn save_cert(dir: &Path, chain: &[u8], key: &[u8]) -> Result<(), AcmeError> {
    write(&dir.join("key.pem.new"), key)?;
    write(&dir.join("cert.pem.new"), chain)?;
    let rename =
        |from: &str, to: &str| std::fs::rename(dir.join(from), dir.join(to)).map_err(io(dir));
    rename("key.pem.new", "key.pem")?;
    rename("cert.pem.new", "cert.pem")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn folders_by_ca_and_files_0600() {
        assert_eq!(
            ca_folder("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org"
        );
        assert_eq!(ca_folder("https://127.0.0.1:14000/dir"), "127.0.0.1_14000");
        let d = tempfile::tempdir().unwrap();
        let ca = d.path().join("ca");
        save_cert(&ca, b"chain", b"key").unwrap();
        let (c, k) = load_cert(&ca).unwrap().unwrap();
        assert_eq!((&c[..], &k[..]), (&b"chain"[..], &b"key"[..]));
        for f in ["cert.pem", "key.pem"] {
            let mode = std::fs::metadata(ca.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let mode = std::fs::metadata(&ca).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
