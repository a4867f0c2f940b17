//! TLS for the HTTPS listener: loads certificate/key PEM files, picks a certificate per
//! connection by the name the client asks for (SNI), and offers HTTP/2 and HTTP/1.1 by ALPN.
//!
//! Owns: the rustls server configuration (ring provider, TLS 1.2 and 1.3), the certificate
//! set and its replacement on reload, the TLS handshake with its time limit, and the
//! answers to ACME challenges put in by the certificate manager: the certificate obtained
//! by ACME, HTTP-01 key authorizations (with a lookup the manager may add for tokens of
//! another node's order, asked only for paths under [`HTTP01_PREFIX`]), and TLS-ALPN-01
//! (RFC 8737) challenge certificates given to handshakes that offer only ALPN `acme-tls/1`.
//!
//! Never: reads configuration files or knows their keys (errors say which certificate and
//! which file; the caller names the key), talks to a CA, serves HTTP, or logs a failed
//! handshake above debug (the internet is full of scanners).
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

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The path prefix of HTTP-01 challenges (RFC 8555 8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

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
        Self::with_set(CertSet::load(certs)?)
    }

    /// A listener with no certificate files: it serves only what [`Tls::install_acme`]
    /// puts in, and until then handshakes fail (a client gets an alert, never a wrong
    /// certificate).
    pub fn without_files() -> Result<Self, TlsError> {
        Self::with_set(CertSet::default())
    }

    fn with_set(set: CertSet) -> Result<Self, TlsError> {
        let sni = Arc::new(SniCerts {
            current: RwLock::new(Arc::new(set)),
            acme: RwLock::new(None),
            challenges: RwLock::new(Challenges::default()),
            http01_lookup: RwLock::new(None),
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
        // rustls picks the first of these the client offers: a browser never gets
        // `acme-tls/1`, and a validator that offers only it gets it.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
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

impl Tls {
    /// Serves `cert` to new connections for the names in it (and to every name when no
    /// certificate file is configured); it replaces the previous ACME certificate.
    pub fn install_acme(&self, cert: AcmeCertificate) {
        *self.certs.acme.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(cert));
    }

    /// Answers `GET /.well-known/acme-challenge/<token>` with `key_authorization`.
    pub fn add_http01(&self, token: &str, key_authorization: &str) {
        self.challenges()
            .http01
            .insert(token.to_string(), key_authorization.to_string());
    }

    /// Gives handshakes for `name` offering ALPN `acme-tls/1` the challenge certificate
    /// `cert` (DER) with its key `key` (PKCS#8 DER).
    pub fn add_tls_alpn01(&self, name: &str, cert: Vec<u8>, key: Vec<u8>) -> Result<(), String> {
        let key = PrivateKeyDer::try_from(key).map_err(|e| e.to_string())?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| e.to_string())?;
        let ck = CertifiedKey::new(vec![CertificateDer::from(cert)], signing);
        self.challenges().alpn.insert(normalize(name), Arc::new(ck));
        Ok(())
    }

    /// Forgets every challenge answer (after an order, won or lost).
    pub fn clear_challenges(&self) {
        *self.challenges() = Challenges::default();
    }

    /// The key authorization for an HTTP-01 request to `path`, if one is pending.
    pub fn http01(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        self.certs
            .challenges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .http01
            .get(token)
            .cloned()
    }

    /// Asks `lookup` for HTTP-01 tokens this process has no answer for (another node
    /// sharing the store may be the one ordering).
    pub fn set_http01_lookup(&self, lookup: Http01Lookup) {
        *self
            .certs
            .http01_lookup
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(LookupFn(lookup));
    }

    /// The answer to an HTTP-01 request to `path`: `None` at once for any other path, so
    /// ordinary requests never wait on anything; else the local answer, or the lookup's.
    pub fn http01_answer(&self, path: &str) -> Option<Http01Answer> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        if let Some(k) = self.http01(path) {
            return Some(Box::pin(std::future::ready(Some(k))));
        }
        let lookup = self
            .certs
            .http01_lookup
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        Some((lookup.0)(token.to_string()))
    }

    fn challenges(&self) -> std::sync::RwLockWriteGuard<'_, Challenges> {
        self.certs
            .challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The pending answer to one HTTP-01 request: the key authorization, or `None`.
pub type Http01Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>;

/// Finds the key authorization for an HTTP-01 token elsewhere (see
/// [`Tls::set_http01_lookup`]).
pub type Http01Lookup = Arc<dyn Fn(String) -> Http01Answer + Send + Sync>;

/// A certificate obtained by ACME, checked and ready for [`Tls::install_acme`].
#[derive(Debug)]
pub struct AcmeCertificate {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

impl AcmeCertificate {
    /// Parses the chain PEM (leaf first) and the private key PEM, and checks that they
    /// match.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, String> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("bad certificate PEM: {e}"))?;
        if chain.is_empty() {
            return Err("no certificate in the chain".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("bad key PEM: {e}"))?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("unusable key: {e}"))?;
        let ck = CertifiedKey::new(chain, signing);
        if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
            ck.keys_match()
        {
            return Err("the key does not match the certificate".into());
        }
        let names = dns_names(&ck.cert[0])?;
        Ok(AcmeCertificate {
            names,
            key: Arc::new(ck),
        })
    }

    /// The DNS names in the leaf, lowercased.
    pub fn names(&self) -> &[String] {
        &self.names
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
        let stream = tokio::time::timeout(timeout, acceptor.accept(stream))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        // A TLS-ALPN-01 validation only looks at the certificate; RFC 8737 3 has the
        // connection closed after the handshake.
        if stream.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
            return Err(std::io::Error::other("acme-tls/1 challenge answered"));
        }
        Ok(stream)
    }
}

/// The resolver rustls asks for a certificate per handshake.
#[derive(Debug)]
struct SniCerts {
    current: RwLock<Arc<CertSet>>,
    acme: RwLock<Option<Arc<AcmeCertificate>>>,
    challenges: RwLock<Challenges>,
    http01_lookup: RwLock<Option<LookupFn>>,
}

/// An [`Http01Lookup`] that can sit in a `Debug` struct.
#[derive(Clone)]
struct LookupFn(Http01Lookup);

impl std::fmt::Debug for LookupFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http01Lookup")
    }
}

/// Pending ACME challenge answers.
#[derive(Debug, Default)]
struct Challenges {
    /// Token → key authorization.
    http01: HashMap<String, String>,
    /// Lowercased name → challenge certificate.
    alpn: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(normalize);
        if hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN))
        {
            // Only a challenge certificate, never a real one: the validator checks its
            // acmeIdentifier extension.
            let challenges = self.challenges.read().unwrap_or_else(|e| e.into_inner());
            return challenges.alpn.get(name.as_deref()?).cloned();
        }
        let acme = self.acme.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let (Some(a), Some(n)) = (&acme, &name) {
            if a.names.iter().any(|x| x == n) {
                return Some(a.key.clone());
            }
        }
        let set = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        set.pick(name.as_deref())
            .cloned()
            .or_else(|| acme.map(|a| a.key.clone()))
    }
}

/// A name as certificates are looked up by: lowercased, no trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Certificates by the DNS names they hold.
#[derive(Debug, Default)]
struct CertSet {
    /// `None` only for the empty set of [`Tls::without_files`].
    default: Option<Arc<CertifiedKey>>,
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
            default: Some(default),
            exact,
            wildcard,
        })
    }

    fn pick(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let Some(name) = sni else {
            return self.default.as_ref();
        };
        let name = normalize(name);
        if let Some(c) = self.exact.get(&name) {
            return Some(c);
        }
        // A wildcard covers exactly one leftmost label (RFC 6125 6.4.3).
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(c) = self.wildcard.get(parent) {
                return Some(c);
            }
        }
        self.default.as_ref()
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
        dns_names(&set.pick(sni).unwrap().cert[0]).unwrap()
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

    #[tokio::test]
    async fn http01_answers_locally_then_by_the_lookup_and_only_for_challenges() {
        let tls = Tls::without_files().unwrap();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = asked.clone();
        tls.set_http01_lookup(Arc::new(move |token| {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(std::future::ready(
                (token == "far").then(|| "far.k".to_string()),
            ))
        }));
        tls.add_http01("near", "near.k");
        assert!(tls.http01_answer("/index.php").is_none());
        let at = |t: &str| format!("{HTTP01_PREFIX}{t}");
        let near = tls.http01_answer(&at("near")).unwrap().await;
        assert_eq!(near.as_deref(), Some("near.k"));
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 0);
        let far = tls.http01_answer(&at("far")).unwrap().await;
        assert_eq!(far.as_deref(), Some("far.k"));
        assert_eq!(tls.http01_answer(&at("none")).unwrap().await, None);
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 2);
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
