//! `[tls.acme]`: automatic certificates from an ACME CA, validated.
//!
//! Owns: the keys of `[tls.acme]`, their defaults (Let's Encrypt, the data folder), and the
//! checks that need the whole configuration (a TLS listener, names to certify, no wildcard).
//!
//! Never: talks to the CA or reads the files it names beyond checking they are readable.
use crate::raw::RawAcme;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A challenge type Isola answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// HTTP-01: a token on the plain listener at `/.well-known/acme-challenge/`.
    Http01,
    /// TLS-ALPN-01 (RFC 8737): a challenge certificate on the TLS listener.
    TlsAlpn01,
}

impl AcmeChallenge {
    /// The name the CA and the configuration use: `http-01`, `tls-alpn-01`.
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::Http01 => "http-01",
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// `[tls.acme]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// Contact address, if given.
    pub email: Option<String>,
    /// Names on the certificate (lowercase, no wildcard): `domains`, then every site name.
    pub domains: Vec<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// Extra root to trust for the CA's HTTPS endpoint.
    pub ca_root: Option<PathBuf>,
    /// Challenge types in order of preference.
    pub challenges: Vec<AcmeChallenge>,
    /// Renew this long before expiry; `None`: when a third of the lifetime is left.
    pub renew_before: Option<Duration>,
    /// Folder of the account and certificates of every CA (`<dir>/<ca host>/`).
    pub dir: PathBuf,
}

/// Validates `raw` for a server listening on `listen` (plain) and `tls_listen`.
pub(crate) fn validate(
    raw: RawAcme,
    listen: std::net::SocketAddr,
    tls_listen: Option<std::net::SocketAddr>,
    base_dir: &Path,
    state_dir: Option<&Path>,
    errs: &mut Vec<String>,
) -> AcmeConfig {
    if tls_listen.is_none() {
        errs.push(
            "tls.acme: needs server.tls_listen, the listener the certificate is for".to_string(),
        );
    }
    let email = raw.email.filter(|e| {
        let ok = match e.split_once('@') {
            Some((user, host)) => {
                !user.is_empty()
                    && host.contains('.')
                    && crate::sites::valid_name(host)
                    && !host.starts_with("*.")
                    && !e
                        .bytes()
                        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b',')
            }
            None => false,
        };
        if !ok {
            errs.push(format!(
                "tls.acme.email: {e:?} is not an email address, e.g. \"ops@example.org\""
            ));
        }
        ok
    });
    let mut domains = Vec::new();
    for d in raw.domains.unwrap_or_default() {
        let l = d.trim_end_matches('.').to_ascii_lowercase();
        check_name("tls.acme.domains", &d, &l, errs);
        if !domains.contains(&l) {
            domains.push(l);
        }
    }
    let directory = raw.directory.unwrap_or_else(|| LETS_ENCRYPT.to_string());
    if !directory.starts_with("https://") || directory.contains(char::is_whitespace) {
        errs.push(format!(
            "tls.acme.directory: {directory:?} is not an https:// URL of an ACME directory"
        ));
    }
    let ca_root = raw.ca_root.map(|p| base_dir.join(p));
    if let Some(p) = &ca_root {
        if let Err(e) = std::fs::File::open(p) {
            errs.push(format!(
                "tls.acme.ca_root: cannot read {}: {e}",
                p.display()
            ));
        }
    }
    let challenges = match raw.challenges {
        // The CA connects to port 80 for HTTP-01 and 443 for TLS-ALPN-01: first the one a
        // listener is on, so no order is spent on a challenge bound to fail.
        None if listen.port() != 80 && tls_listen.is_some_and(|t| t.port() == 443) => {
            vec![AcmeChallenge::TlsAlpn01, AcmeChallenge::Http01]
        }
        None => vec![AcmeChallenge::Http01, AcmeChallenge::TlsAlpn01],
        Some(list) => {
            let mut out = Vec::new();
            for c in list {
                match c.as_str() {
                    "http-01" => out.push(AcmeChallenge::Http01),
                    "tls-alpn-01" => out.push(AcmeChallenge::TlsAlpn01),
                    other => errs.push(format!(
                        "tls.acme.challenges: {other:?} is not a challenge Isola answers; use \"http-01\" or \"tls-alpn-01\""
                    )),
                }
            }
            if out.is_empty() {
                errs.push(
                    "tls.acme.challenges: empty; name \"http-01\", \"tls-alpn-01\" or both"
                        .to_string(),
                );
            }
            out.dedup();
            out
        }
    };
    let renew_before = raw
        .renew_before
        .map(|v| crate::validate::duration(errs, "tls.acme.renew_before", Some(v), 0));
    let dir = match raw.dir.as_deref() {
        Some(d) if d.starts_with('/') && !d.contains('\0') => PathBuf::from(d),
        Some(d) => {
            errs.push(format!("tls.acme.dir: {d:?} must be an absolute path"));
            PathBuf::new()
        }
        None => match state_dir {
            Some(d) => d.join("acme"),
            None => {
                errs.push("tls.acme.dir: no default (none of STATE_DIRECTORY, XDG_STATE_HOME, HOME is set); set dir".to_string());
                PathBuf::new()
            }
        },
    };
    AcmeConfig {
        email,
        domains,
        directory,
        ca_root,
        challenges,
        renew_before,
        dir,
    }
}

/// Adds the sites' names (checked by [`check_name`] as they were read) to the certificate,
/// and checks that there is a name at all.
pub(crate) fn add_site_names(
    acme: &mut AcmeConfig,
    names: impl IntoIterator<Item = String>,
    errs: &mut Vec<String>,
) {
    for n in names {
        if !acme.domains.contains(&n) {
            acme.domains.push(n);
        }
    }
    if acme.domains.is_empty() {
        errs.push(
            "tls.acme.domains: no name to certify; list the host names, e.g. [\"example.org\", \"www.example.org\"], or name them in [[site]] server_names"
                .to_string(),
        );
    }
}

/// Checks that `lower` (`given` as written, at `key`) can be on an ACME certificate.
pub(crate) fn check_name(key: &str, given: &str, lower: &str, errs: &mut Vec<String>) {
    if lower.starts_with("*.") {
        errs.push(format!(
            "{key}: {given:?} is a wildcard, which HTTP-01 and TLS-ALPN-01 cannot validate; name the hosts, or serve a wildcard certificate from [[tls.cert]] files"
        ));
    } else if !crate::sites::valid_name(lower) || !lower.contains('.') {
        errs.push(format!(
            "{key}: {given:?} is not a public host name for a certificate"
        ));
    }
}
