//! TLS for the HTTPS listener: loads certificate/key PEM files, picks a certificate per
//! connection by the name the client asks for (SNI), and offers HTTP/2 and HTTP/1.1 by ALPN.
//!
//! Owns: the rustls server configuration (ring provider, TLS 1.2 and 1.3), the certificate
//! set and its replacement on reload, the TLS handshake with its time limit.
//!
//! Never: reads configuration files or knows their keys (errors say which certificate and
//! which file; the caller names the key), serves HTTP, or logs a failed handshake above debug
//! (the internet is full of scanners).
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// One certificate: the chain PEM (leaf first, then intermediates) and its private key PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// Certificate chain file.
    pub cert: PathBuf,
    /// Private key file (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Which file of a [`CertFiles`] a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertField {
    /// [`CertFiles::cert`].
    Cert,
    /// [`CertFiles::key`].
    Key,
}

impl CertField {
    /// `"cert"` or `"key"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CertField::Cert => "cert",
            CertField::Key => "key",
        }
    }
}

/// A certificate that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", .path.display())]
pub struct TlsError {
    /// Position of the certificate in the list given (0-based); `None` for the list itself.
    pub index: Option<usize>,
    /// The file at fault.
    pub field: CertField,
    /// Its path.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The TLS side of the HTTPS listener. Cloning shares the certificate set, so
/// [`Tls::reload`] on any clone changes what every clone serves.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    certs: Arc<SniCerts>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Loads `certs` (at least one; the first is also served to clients that send no name
    /// or a name no certificate has) and builds the server configuration with ALPN `h2`
    /// and `http/1.1`.
    pub fn load(certs: &[CertFiles]) -> Result<Self, TlsError> {
        let set = CertSet::load(certs)?;
        let sni = Arc::new(SniCerts {
            current: RwLock::new(Arc::new(set)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                index: None,
                field: CertField::Cert,
                path: PathBuf::new(),
                reason: format!("TLS setup: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(sni.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            certs: sni,
        })
    }

    /// A server configuration for QUIC (HTTP/3) sharing this one's certificates, so a
    /// reload or [`Tls::install`] reaches both listeners: TLS 1.3 only (QUIC requires it),
    /// ALPN `h3`, and no early data (0-RTT is not offered; quinn accepts only 0 or
    /// `u32::MAX` for it).
    pub fn quic_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError {
                index: None,
                field: CertField::Cert,
                path: PathBuf::new(),
                reason: format!("QUIC TLS setup: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(self.certs.clone());
        config.alpn_protocols = vec![b"h3".to_vec()];
        config.max_early_data_size = 0;
        Ok(config)
    }

    /// Re-reads `certs` and serves them to new connections; on error the current set stays.
    pub fn reload(&self, certs: &[CertFiles]) -> Result<(), TlsError> {
        self.install(Certificates::load(certs)?);
        Ok(())
    }

    /// Serves `certs` to new connections from now on (open connections keep theirs).
    pub fn install(&self, certs: Certificates) {
        *self
            .certs
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(certs.0);
    }
}

/// A loaded, checked certificate set, ready for [`Tls::install`]: loading and installing
/// are apart so a reload can check everything before it changes anything.
#[derive(Debug)]
pub struct Certificates(CertSet);

impl Certificates {
    /// Loads and checks `certs` as [`Tls::load`] does.
    pub fn load(certs: &[CertFiles]) -> Result<Self, TlsError> {
        CertSet::load(certs).map(Certificates)
    }
}

impl Tls {
    /// The TLS handshake on an accepted connection, within `timeout`.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        tokio::time::timeout(timeout, acceptor.accept(stream))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })?
    }
}

/// The resolver rustls asks for a certificate per handshake.
#[derive(Debug)]
struct SniCerts {
    current: RwLock<Arc<CertSet>>,
}

impl ResolvesServerCert for SniCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Some(set.pick(hello.server_name()).clone())
    }
}

/// Certificates by the DNS names they hold.
#[derive(Debug)]
struct CertSet {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl CertSet {
    fn load(files: &[CertFiles]) -> Result<Self, TlsError> {
        let provider = provider();
        let mut default = None;
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            let err = |field, path: &Path, reason: String| TlsError {
                index: Some(i),
                field,
                path: path.to_path_buf(),
                reason,
            };
            let cert_pem = std::fs::read(&f.cert)
                .map_err(|e| err(CertField::Cert, &f.cert, format!("cannot read: {e}")))?;
            let chain = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(CertField::Cert, &f.cert, format!("bad PEM: {e}")))?;
            if chain.is_empty() {
                return Err(err(
                    CertField::Cert,
                    &f.cert,
                    "no certificate in it (expected PEM \"BEGIN CERTIFICATE\")".into(),
                ));
            }
            let key_pem = std::fs::read(&f.key)
                .map_err(|e| err(CertField::Key, &f.key, format!("cannot read: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                err(
                    CertField::Key,
                    &f.key,
                    match e {
                        rustls::pki_types::pem::Error::NoItemsFound => {
                            "no private key in it (expected PEM \"BEGIN PRIVATE KEY\")".into()
                        }
                        e => format!("bad PEM: {e}"),
                    },
                )
            })?;
            let signing = provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| err(CertField::Key, &f.key, format!("unusable key: {e}")))?;
            let ck = CertifiedKey::new(chain, signing);
            match ck.keys_match() {
                Ok(()) => {}
                Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                    return Err(err(
                        CertField::Key,
                        &f.key,
                        format!("does not match the certificate in {}", f.cert.display()),
                    ))
                }
                Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
                Err(e) => {
                    return Err(err(
                        CertField::Cert,
                        &f.cert,
                        format!("bad certificate: {e}"),
                    ))
                }
            }
            let names = dns_names(&ck.cert[0])
                .map_err(|e| err(CertField::Cert, &f.cert, format!("bad certificate: {e}")))?;
            if names.is_empty() && i > 0 {
                return Err(err(
                    CertField::Cert,
                    &f.cert,
                    "names no DNS host (subjectAltName), so no client could be given it; only the first certificate may".into(),
                ));
            }
            let ck = Arc::new(ck);
            for name in names {
                // The first certificate naming a host wins.
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()),
                    None => exact.entry(name),
                }
                .or_insert_with(|| ck.clone());
            }
            default.get_or_insert(ck);
        }
        let default = default.ok_or_else(|| TlsError {
            index: None,
            field: CertField::Cert,
            path: PathBuf::new(),
            reason: "no certificate configured".into(),
        })?;
        Ok(CertSet {
            default,
            exact,
            wildcard,
        })
    }

    fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = sni else {
            return &self.default;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(c) = self.exact.get(&name) {
            return c;
        }
        // A wildcard covers exactly one leftmost label (RFC 6125 6.4.3).
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(c) = self.wildcard.get(parent) {
                return c;
            }
        }
        &self.default
    }
}

/// The DNS names in a certificate's subjectAltName, lowercased.
fn dns_names(der: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let san = cert.subject_alternative_name().map_err(|e| e.to_string())?;
    Ok(san
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(n) => Some(n.trim_end_matches('.').to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A self-signed certificate for `names`, written as `<stem>.pem` and `<stem>.key`.
    fn cert(dir: &Path, stem: &str, names: &[&str]) -> CertFiles {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let c = rcgen::generate_simple_self_signed(names).unwrap();
        let files = CertFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, c.cert.pem()).unwrap();
        std::fs::write(&files.key, c.key_pair.serialize_pem()).unwrap();
        files
    }

    fn leaf(set: &CertSet, sni: Option<&str>) -> Vec<String> {
        dns_names(&set.pick(sni).cert[0]).unwrap()
    }

    #[test]
    fn picks_by_name_with_the_first_as_default() {
        let d = tempfile::tempdir().unwrap();
        let a = cert(d.path(), "a", &["a.test", "www.a.test"]);
        let b = cert(d.path(), "b", &["b.test", "*.b.test"]);
        let set = CertSet::load(&[a, b]).unwrap();
        assert_eq!(leaf(&set, Some("a.test"))[0], "a.test");
        assert_eq!(leaf(&set, Some("WWW.A.test."))[0], "a.test");
        assert_eq!(leaf(&set, Some("b.test"))[0], "b.test");
        assert_eq!(leaf(&set, Some("x.b.test"))[0], "b.test");
        assert_eq!(leaf(&set, Some("x.y.b.test"))[0], "a.test");
        assert_eq!(leaf(&set, Some("other.test"))[0], "a.test");
        assert_eq!(leaf(&set, None)[0], "a.test");
    }

    #[test]
    fn bad_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let a = cert(d.path(), "a", &["a.test"]);
        let b = cert(d.path(), "b", &["b.test"]);
        let swapped = CertFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let e = CertSet::load(&[a.clone(), swapped]).unwrap_err();
        assert_eq!((e.index, e.field), (Some(1), CertField::Key));
        assert!(e.to_string().contains("does not match"), "{e}");

        let junk = d.path().join("junk.pem");
        std::fs::write(&junk, "hello\n").unwrap();
        let e = CertSet::load(&[CertFiles {
            cert: junk.clone(),
            key: a.key.clone(),
        }])
        .unwrap_err();
        assert_eq!(e.field, CertField::Cert);
        assert!(e.to_string().contains("no certificate"), "{e}");
        let e = CertSet::load(&[CertFiles {
            cert: a.cert.clone(),
            key: junk,
        }])
        .unwrap_err();
        assert_eq!(e.field, CertField::Key);
        assert!(e.to_string().contains("no private key"), "{e}");
        let e = CertSet::load(&[CertFiles {
            cert: d.path().join("missing.pem"),
            key: a.key.clone(),
        }])
        .unwrap_err();
        assert!(e.to_string().contains("missing.pem: cannot read"), "{e}");
        assert!(CertSet::load(&[]).is_err());
    }

    #[test]
    fn reload_replaces_the_set() {
        let d = tempfile::tempdir().unwrap();
        let a = cert(d.path(), "a", &["a.test"]);
        let b = cert(d.path(), "b", &["b.test"]);
        let tls = Tls::load(std::slice::from_ref(&a)).unwrap();
        assert_eq!(tls.config.alpn_protocols[0], b"h2");
        tls.reload(&[b, a]).unwrap();
        let set = tls.certs.current.read().unwrap().clone();
        assert_eq!(leaf(&set, None)[0], "b.test");
        assert!(tls.reload(&[]).is_err());
    }

    #[test]
    fn the_quic_config_shares_the_certificates() {
        let d = tempfile::tempdir().unwrap();
        let a = cert(d.path(), "a", &["a.test"]);
        let b = cert(d.path(), "b", &["b.test"]);
        let tls = Tls::load(std::slice::from_ref(&a)).unwrap();
        let quic = tls.quic_config().unwrap();
        assert_eq!(quic.alpn_protocols, vec![b"h3".to_vec()]);
        assert_eq!(quic.max_early_data_size, 0);
        tls.reload(&[b]).unwrap();
        // The same resolver: what a reload installs is what QUIC handshakes get.
        let set = tls.certs.current.read().unwrap().clone();
        assert_eq!(leaf(&set, None)[0], "b.test");
        assert_eq!(
            Arc::as_ptr(&quic.cert_resolver) as *const (),
            Arc::as_ptr(&tls.certs) as *const ()
        );
    }
}
