//! Automatic HTTPS: one certificate for every configured name, obtained from an ACME CA
//! (RFC 8555) with HTTP-01 or TLS-ALPN-01 (RFC 8737), kept in the data folder, renewed
//! ahead of expiry and swapped into the TLS listener.
//!
//! Owns: the ACME account (created once, its key stored), orders and their challenges (the
//! answers are handed to [`Tls`], which serves them), the stored certificate and key, the
//! renewal clock with its backoff, and the [`CertStatus`] shown by the admin listener.
//!
//! With a store shared by several nodes (see [`shared`]) the account and certificate live
//! there too, one node at a time orders (under a lock in the store) and the others install
//! what it publishes; the disk copy stays each node's fallback when the store is down.
//!
//! Never: blocks a handshake on the CA (the listener only ever reads what was installed),
//! writes a secret with a mode other than 0600, stops the server when the CA fails (the
//! current certificate keeps serving and the order is tried again later), or retries
//! without waiting, or waits on the store to start serving (the store is read in the
//! background, each call bounded by [`shared::TIMEOUT`]).
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use isola_config::{AcmeChallenge, AcmeConfig};
use isola_front::tls::{AcmeCertificate, Tls};
use isola_store_client::Endpoint;
use shared::Shared;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod shared;
mod store;

pub use shared::SharedError;

/// First wait after a failed order; it doubles with each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// Longest wait between two failed orders.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Least time between two successful orders, whatever the certificate's lifetime says.
const MIN_RENEWAL_INTERVAL: i64 = 10;
/// How long the CA may take to validate and to issue.
const POLL_TIMEOUT: Duration = Duration::from_secs(90);
/// How often a node waiting for another node's order looks at the store.
const LOCK_POLL: Duration = Duration::from_secs(2);

/// Why an order did not give a certificate.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA answered with an error, or could not be reached.
    #[error("{step}: {source}")]
    Ca {
        /// What was being done.
        step: &'static str,
        /// The client's error (a problem document's detail for CA errors).
        source: instant_acme::Error,
    },
    /// The CA refused a challenge.
    #[error("{challenge} challenge for {name} failed: {detail}")]
    Challenge {
        /// `http-01` or `tls-alpn-01`.
        challenge: &'static str,
        /// The name being validated.
        name: String,
        /// The CA's problem document, as it says it.
        detail: String,
    },
    /// Something else about the order (no challenge of the kind offered, a bad certificate).
    #[error("{0}")]
    Order(String),
    /// Reading or writing the account or certificate files.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn ca(step: &'static str) -> impl FnOnce(instant_acme::Error) -> AcmeError {
    move |source| AcmeError::Ca { step, source }
}

/// What the admin listener shows about the certificate.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CertStatus {
    /// The names the certificate is for (as configured).
    pub names: Vec<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// The issuer of the certificate being served, if there is one.
    pub issuer: Option<String>,
    /// Its notAfter, seconds since the epoch.
    pub not_after: Option<i64>,
    /// When the last certificate was obtained by this process, seconds since the epoch.
    pub last_renewal: Option<u64>,
    /// The last order's error, cleared by a successful one.
    pub last_error: Option<String>,
    /// When the next order is due, seconds since the epoch.
    pub next_attempt: Option<u64>,
}

/// The running certificate manager; dropping it stops renewals.
#[derive(Debug)]
pub struct Manager {
    status: Arc<Mutex<CertStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Manager {
    /// Serves a valid stored certificate at once, if there is one, then keeps the
    /// certificate current in a task of the running Tokio runtime. With `store` (Isola's
    /// own database in the store) the account, certificate and orders are shared with the
    /// other nodes using it, and HTTP-01 requests are answered for their orders too.
    pub fn start(cfg: AcmeConfig, tls: Tls, store: Option<Endpoint>) -> Manager {
        let folder = store::ca_folder(&cfg.directory);
        let dir = cfg.dir.join(&folder);
        let shared = store.map(|ep| {
            let lookup_ep = ep.clone();
            let running = Arc::new(tokio::sync::Semaphore::new(shared::MAX_LOOKUPS));
            // Only paths under the challenge prefix get here: ordinary requests never
            // touch the store.
            tls.set_http01_lookup(Arc::new(move |token| {
                let ep = lookup_ep.clone();
                let permit = running.clone().try_acquire_owned();
                Box::pin(async move {
                    let _permit = permit.ok()?;
                    shared::http01(&ep, &token).await
                })
            }));
            Shared::new(ep, &folder)
        });
        let status = Arc::new(Mutex::new(CertStatus {
            names: cfg.domains.clone(),
            directory: cfg.directory.clone(),
            ..CertStatus::default()
        }));
        let current = match store::load_cert(&dir) {
            Ok(Some((chain, key))) => match Issued::parse(chain, key) {
                Ok(c) if c.not_after > now_secs() => {
                    tracing::info!(
                        names = %c.cert.names().join(","),
                        not_after = c.not_after,
                        "acme: serving the stored certificate"
                    );
                    c.show(&status);
                    let stored = c.stored();
                    tls.install_acme(c.cert);
                    Some(stored)
                }
                Ok(_) => {
                    tracing::info!("acme: the stored certificate has expired; ordering a new one");
                    None
                }
                Err(e) => {
                    tracing::warn!(
                        "acme: the stored certificate in {} is unusable ({e}); ordering a new one",
                        dir.display()
                    );
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("acme: {e}; ordering a new certificate");
                None
            }
        };
        let task = tokio::spawn(run(
            Renewer {
                cfg,
                tls,
                dir,
                status: status.clone(),
                account: None,
                shared,
            },
            current,
        ));
        Manager { status, task }
    }

    /// A snapshot of the certificate's state.
    pub fn status(&self) -> CertStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A function returning [`Manager::status`], for the admin listener.
    pub fn status_source(&self) -> impl Fn() -> CertStatus + Send + Sync + 'static {
        let s = self.status.clone();
        move || s.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What the renewal clock needs of the certificate being served.
struct Stored {
    not_before: i64,
    not_after: i64,
    names: Vec<String>,
}

struct Renewer {
    cfg: AcmeConfig,
    tls: Tls,
    dir: PathBuf,
    status: Arc<Mutex<CertStatus>>,
    account: Option<Account>,
    shared: Option<Shared>,
}

/// A certificate with its key as PEM, parsed.
struct Issued {
    chain: Vec<u8>,
    key: Vec<u8>,
    cert: AcmeCertificate,
    names: Vec<String>,
    issuer: String,
    not_before: i64,
    not_after: i64,
}

impl Issued {
    fn parse(chain: Vec<u8>, key: Vec<u8>) -> Result<Issued, String> {
        let cert = AcmeCertificate::from_pem(&chain, &key)?;
        let (issuer, not_before, not_after) = validity(&chain)?;
        Ok(Issued {
            names: cert.names().to_vec(),
            chain,
            key,
            cert,
            issuer,
            not_before,
            not_after,
        })
    }

    fn stored(&self) -> Stored {
        Stored {
            not_before: self.not_before,
            not_after: self.not_after,
            names: self.names.clone(),
        }
    }

    fn show(&self, status: &Mutex<CertStatus>) {
        let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
        s.issuer = Some(self.issuer.clone());
        s.not_after = Some(self.not_after);
    }
}

/// The leaf's issuer, notBefore and notAfter (seconds since the epoch).
fn validity(chain_pem: &[u8]) -> Result<(String, i64, i64), String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem).map_err(|e| e.to_string())?;
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    let v = cert.validity();
    Ok((
        cert.issuer().to_string(),
        v.not_before.timestamp(),
        v.not_after.timestamp(),
    ))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A number in `0..n` that differs between processes and calls: enough to spread renewals
/// of many servers, no cryptography.
fn jitter(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    if n == 0 {
        return 0;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() % n
}

/// When `cert` is due for renewal (seconds since the epoch): `renew_before` its end (but
/// not before half its lifetime, so a short-lived certificate is not renewed at once),
/// else when a third of its lifetime is left; less a jitter of up to 1/30 of the lifetime.
fn renew_at(cert: &Stored, renew_before: Option<Duration>) -> i64 {
    let lifetime = (cert.not_after - cert.not_before).max(0);
    let at = match renew_before {
        Some(b) => (cert.not_after - b.as_secs() as i64).max(cert.not_before + lifetime / 2),
        None => cert.not_after - lifetime / 3,
    };
    at - jitter(lifetime as u64 / 30) as i64
}

/// The wait after `failures` failed orders in a row.
fn backoff(failures: u32) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(20));
    exp.min(MAX_BACKOFF)
}

/// How often a node sharing a store looks there for a certificate another node renewed:
/// a tenth of the lifetime, between 2 s and a minute.
fn sync_interval(current: &Option<Stored>) -> Duration {
    let lifetime = current
        .as_ref()
        .map_or(0, |c| (c.not_after - c.not_before).max(0) as u64);
    Duration::from_secs((lifetime / 10).clamp(2, 60))
}

async fn run(mut r: Renewer, mut current: Option<Stored>) {
    let mut failures = 0u32;
    // No order before this (seconds since the epoch): set after each success.
    let mut not_sooner = 0;
    // After a failed order: the next one is due once the backoff is over.
    let mut retry = false;
    r.sync(&mut current).await;
    'next: loop {
        let due = match &current {
            Some(c) if !retry && r.cfg.domains.iter().all(|d| c.names.contains(d)) => {
                renew_at(c, r.cfg.renew_before)
            }
            // A name was added since, or the last order failed: order now.
            _ => now_secs(),
        }
        .max(not_sooner);
        let mut told = false;
        loop {
            let wait = Duration::from_secs((due - now_secs()).max(0) as u64);
            r.set_next(wait);
            if wait.is_zero() {
                break;
            }
            if !told {
                tracing::info!(
                    "acme: certificate for {} renews in {}s",
                    r.cfg.domains.join(","),
                    wait.as_secs()
                );
                told = true;
            }
            if r.shared.is_none() {
                tokio::time::sleep(wait).await;
                break;
            }
            // Another node may renew first: its certificate moves this node's clock.
            tokio::time::sleep(wait.min(sync_interval(&current))).await;
            if r.sync(&mut current).await {
                retry = false;
                continue 'next;
            }
        }
        match r.renew(&mut current).await {
            Ok(()) => {
                failures = 0;
                retry = false;
                not_sooner = now_secs() + MIN_RENEWAL_INTERVAL;
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures);
                let serving = if current.is_some() {
                    "the current certificate keeps serving"
                } else {
                    "no certificate yet: TLS handshakes for these names fail"
                };
                tracing::error!(
                    "acme: no certificate from {}: {e}; {serving}; retrying in {}s",
                    r.cfg.directory,
                    wait.as_secs()
                );
                r.status().last_error = Some(e.to_string());
                r.set_next(wait);
                tokio::time::sleep(wait).await;
                retry = true;
            }
        }
    }
}

impl Renewer {
    fn status(&self) -> std::sync::MutexGuard<'_, CertStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_next(&self, wait: Duration) {
        self.status().next_attempt = Some(now_secs() as u64 + wait.as_secs());
    }

    /// Whether `current` is missing, lacks a configured name, or is due.
    fn due(&self, current: &Option<Stored>) -> bool {
        match current {
            Some(c) if self.cfg.domains.iter().all(|d| c.names.contains(d)) => {
                renew_at(c, self.cfg.renew_before) <= now_secs()
            }
            _ => true,
        }
    }

    /// Installs the store's certificate when it is newer (later notAfter) than `current`
    /// and has every configured name, writing it to disk too; publishes the local one when
    /// the store's is older or missing. True when one was installed. A store that does not
    /// answer changes nothing: the local certificate goes on serving.
    async fn sync(&mut self, current: &mut Option<Stored>) -> bool {
        let Some(sh) = &self.shared else {
            return false;
        };
        let theirs = match sh.cert().await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!("acme: {e}; going on with the local certificate");
                return false;
            }
        };
        let theirs = theirs.and_then(|(chain, key)| match Issued::parse(chain, key) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!("acme: the certificate in the store is unusable ({e})");
                None
            }
        });
        let ours = current.as_ref().map(|c| c.not_after);
        match theirs {
            Some(t)
                if Some(t.not_after) > ours
                    && t.not_after > now_secs()
                    && self.cfg.domains.iter().all(|d| t.names.contains(d)) =>
            {
                if let Err(e) = store::save_cert(&self.dir, &t.chain, &t.key) {
                    tracing::warn!("acme: {e}; serving the store's certificate anyway");
                }
                tracing::info!(
                    names = %t.names.join(","),
                    not_after = t.not_after,
                    "acme: installed the certificate from the store"
                );
                t.show(&self.status);
                // This node's failed orders no longer matter: a good certificate serves.
                self.status().last_error = None;
                *current = Some(t.stored());
                self.tls.install_acme(t.cert);
                true
            }
            Some(t) if Some(t.not_after) >= ours => false,
            _ => {
                if current.is_some() {
                    if let Ok(Some((chain, key))) = store::load_cert(&self.dir) {
                        match sh.put_cert(&chain, &key).await {
                            Ok(()) => tracing::info!("acme: published the local certificate"),
                            Err(e) => tracing::debug!("acme: {e}; not published"),
                        }
                    }
                }
                false
            }
        }
    }

    /// Renews `current`: alone without a store; with one, under the store's lock, or by
    /// installing what the node holding the lock publishes.
    async fn renew(&mut self, current: &mut Option<Stored>) -> Result<(), AcmeError> {
        let Some(sh) = self.shared.clone() else {
            *current = Some(self.obtain().await?.stored());
            return Ok(());
        };
        // The holder refreshes its lock, so a wait past this means it is stuck.
        let give_up = Instant::now() + shared::LOCK_TTL + LOCK_POLL;
        loop {
            match sh.lock().await {
                Ok(true) => return self.renew_locked(&sh, current).await,
                Ok(false) => {
                    tracing::info!(
                        "acme: another node is ordering the certificate; waiting for it in the store"
                    );
                }
                Err(e) => {
                    tracing::warn!("acme: {e}; ordering on this node alone");
                    *current = Some(self.obtain().await?.stored());
                    return Ok(());
                }
            }
            loop {
                tokio::time::sleep(LOCK_POLL).await;
                if self.sync(current).await {
                    return Ok(());
                }
                match sh.locked().await {
                    // Released or expired with no newer certificate: try for the lock.
                    Ok(false) => break,
                    Ok(true) if Instant::now() < give_up => {}
                    Ok(true) => {
                        return Err(AcmeError::Order(
                            "another node held the ordering lock too long".into(),
                        ))
                    }
                    Err(e) => {
                        tracing::warn!("acme: {e}; ordering on this node alone");
                        *current = Some(self.obtain().await?.stored());
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The order of the node holding the lock: unless another node has just published a
    /// certificate that is not due, order, publish, and release the lock.
    async fn renew_locked(
        &mut self,
        sh: &Shared,
        current: &mut Option<Stored>,
    ) -> Result<(), AcmeError> {
        if self.sync(current).await && !self.due(current) {
            if let Err(e) = sh.unlock().await {
                tracing::warn!("acme: releasing the ordering lock: {e}");
            }
            return Ok(());
        }
        let keeper = sh.clone();
        let refresh = tokio::spawn(async move {
            loop {
                tokio::time::sleep(shared::LOCK_TTL / 3).await;
                match keeper.refresh().await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            "acme: the ordering lock was lost; another node may order too"
                        );
                        return;
                    }
                    Err(e) => tracing::warn!("acme: refreshing the ordering lock: {e}"),
                }
            }
        });
        let result = self.obtain().await;
        refresh.abort();
        if let Ok(issued) = &result {
            match sh.put_cert(&issued.chain, &issued.key).await {
                Ok(()) => tracing::info!("acme: published the new certificate to the store"),
                Err(e) => tracing::warn!("acme: {e}; the other nodes order their own"),
            }
        }
        if let Err(e) = sh.unlock().await {
            tracing::warn!("acme: releasing the ordering lock: {e}");
        }
        *current = Some(result?.stored());
        Ok(())
    }

    /// One attempt: each configured challenge type in turn until one gives a certificate,
    /// which is then stored and served.
    async fn obtain(&mut self) -> Result<Issued, AcmeError> {
        let account = self.account().await?;
        let mut last = None;
        for &kind in &self.cfg.challenges {
            tracing::info!(
                "acme: ordering a certificate for {} from {} with {}",
                self.cfg.domains.join(","),
                self.cfg.directory,
                kind.as_str()
            );
            let mut tokens = Vec::new();
            let result = self.order(&account, kind, &mut tokens).await;
            self.tls.clear_challenges();
            if let Some(sh) = &self.shared {
                if let Err(e) = sh.del_http01(&tokens).await {
                    tracing::debug!("acme: {e}; the HTTP-01 answers expire on their own");
                }
            }
            match result {
                Ok(issued) => {
                    store::save_cert(&self.dir, &issued.chain, &issued.key)?;
                    tracing::info!(
                        names = %issued.names.join(","),
                        issuer = %issued.issuer,
                        not_after = issued.not_after,
                        "acme: new certificate obtained with {}; serving it",
                        kind.as_str()
                    );
                    {
                        let mut s = self.status();
                        s.last_error = None;
                        s.last_renewal = Some(now_secs() as u64);
                    }
                    issued.show(&self.status);
                    let cert = AcmeCertificate::from_pem(&issued.chain, &issued.key)
                        .map_err(AcmeError::Order)?;
                    self.tls.install_acme(cert);
                    return Ok(issued);
                }
                Err(e) => {
                    tracing::warn!("acme: order with {} failed: {e}", kind.as_str());
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| AcmeError::Order("no challenge type configured".into())))
    }

    /// The account, loaded from its file or created (and then stored).
    async fn account(&mut self) -> Result<Account, AcmeError> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let builder = || match &self.cfg.ca_root {
            Some(root) => Account::builder_with_root(root).map_err(ca("trusting tls.acme.ca_root")),
            None => Account::builder().map_err(ca("HTTPS client")),
        };
        let path = self.dir.join("account.json");
        // One account for every node: the store's, else the file's (then published).
        let theirs = match &self.shared {
            Some(sh) => sh.account().await.unwrap_or_else(|e| {
                tracing::warn!("acme: {e}; using the local account");
                None
            }),
            None => None,
        };
        let local = store::read(&path)?;
        let json = match (theirs, local) {
            (Some(t), local) => {
                if local.as_deref() != Some(t.as_slice()) {
                    store::write(&path, &t)?;
                }
                Some(t)
            }
            (None, Some(l)) => {
                self.publish_account(&l).await;
                Some(l)
            }
            (None, None) => None,
        };
        let account = match json {
            Some(bytes) => {
                let creds: AccountCredentials = serde_json::from_slice(&bytes).map_err(|e| {
                    AcmeError::Order(format!("{}: not an account file: {e}", path.display()))
                })?;
                // Loading only reads the directory: a JSON error is the directory's.
                match builder()?.from_credentials(creds).await {
                    Ok(a) => a,
                    Err(instant_acme::Error::Json(e)) => return Err(self.not_a_directory(e)),
                    Err(e) => return Err(ca("loading the account")(e)),
                }
            }
            None => {
                let contact = self.cfg.email.as_ref().map(|e| format!("mailto:{e}"));
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let created = builder()?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.cfg.directory.clone(),
                        None,
                    )
                    .await;
                let (account, creds) = match created {
                    Ok(c) => c,
                    // The directory or the account reply: reading the directory alone tells.
                    Err(e @ instant_acme::Error::Json(_)) => {
                        return Err(match self.probe_directory(builder()?).await {
                            Err(instant_acme::Error::Json(j)) => self.not_a_directory(j),
                            _ => ca("creating the account: the CA's reply is not ACME JSON")(e),
                        })
                    }
                    Err(e) => return Err(ca("creating the account")(e)),
                };
                let json = serde_json::to_vec_pretty(&creds)
                    .map_err(|e| AcmeError::Order(format!("account credentials: {e}")))?;
                store::write(&path, &json)?;
                self.publish_account(&json).await;
                tracing::info!("acme: account created at {}", self.cfg.directory);
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }

    /// Reads the directory and nothing more (restoring a throwaway account does only that).
    async fn probe_directory(
        &self,
        builder: instant_acme::AccountBuilder,
    ) -> Result<Account, instant_acme::Error> {
        let (_, der) = instant_acme::Key::generate_pkcs8()?;
        let creds = serde_json::json!({
            "id": "",
            "key_pkcs8": base64url(der.secret_pkcs8_der()),
            "directory": self.cfg.directory,
        });
        builder
            .from_credentials(serde_json::from_value(creds)?)
            .await
    }

    fn not_a_directory(&self, e: serde_json::Error) -> AcmeError {
        AcmeError::Order(format!(
            "fetching the directory: the CA's directory at {} is not an ACME directory: {e}",
            self.cfg.directory
        ))
    }

    /// Shares the account with the other nodes (the first one stored stays).
    async fn publish_account(&self, json: &[u8]) {
        if let Some(sh) = &self.shared {
            if let Err(e) = sh.put_account(json).await {
                tracing::warn!("acme: {e}; the account is not shared yet");
            }
        }
    }

    /// One order with challenges of `kind`; the HTTP-01 tokens published to the store are
    /// added to `tokens`, for the caller to remove.
    async fn order(
        &self,
        account: &Account,
        kind: AcmeChallenge,
        tokens: &mut Vec<String>,
    ) -> Result<Issued, AcmeError> {
        let identifiers: Vec<Identifier> = self
            .cfg
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(ca("new order"))?;
        let challenge_type = match kind {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(ca("authorization"))?;
            if authz.status == AuthorizationStatus::Valid {
                continue;
            }
            let name = authz.identifier().to_string();
            let mut challenge = authz.challenge(challenge_type.clone()).ok_or_else(|| {
                AcmeError::Order(format!(
                    "the CA offers no {} challenge for {name}",
                    kind.as_str()
                ))
            })?;
            let key_auth = challenge.key_authorization();
            match kind {
                AcmeChallenge::Http01 => {
                    self.tls.add_http01(&challenge.token, key_auth.as_str());
                    // The CA may ask any node behind the name.
                    if let Some(sh) = &self.shared {
                        match sh.put_http01(&challenge.token, key_auth.as_str()).await {
                            Ok(()) => tokens.push(challenge.token.clone()),
                            Err(e) => tracing::warn!(
                                "acme: {e}; only this node answers the HTTP-01 challenge"
                            ),
                        }
                    }
                }
                AcmeChallenge::TlsAlpn01 => {
                    let (cert, key) = alpn_certificate(&name, key_auth.digest().as_ref())?;
                    self.tls
                        .add_tls_alpn01(&name, cert, key)
                        .map_err(AcmeError::Order)?;
                }
            }
            challenge.set_ready().await.map_err(|e| match e {
                instant_acme::Error::Api(p) => AcmeError::Challenge {
                    challenge: kind.as_str(),
                    name: name.clone(),
                    detail: p.to_string(),
                },
                e => AcmeError::Ca {
                    step: "challenge",
                    source: e,
                },
            })?;
        }
        let retry = RetryPolicy::new().timeout(POLL_TIMEOUT);
        let status = match order.poll_ready(&retry).await {
            Ok(s) => s,
            // The order's own error: the failed challenge's problem says more.
            Err(instant_acme::Error::Api(p)) => {
                return Err(
                    challenge_error(&mut order, kind, &self.cfg.domains.join(","), Some(p)).await,
                )
            }
            Err(e) => return Err(ca("waiting for validation")(e)),
        };
        if status != OrderStatus::Ready {
            return Err(challenge_error(&mut order, kind, &self.cfg.domains.join(","), None).await);
        }
        let key = order.finalize().await.map_err(ca("finalizing the order"))?;
        let chain = order
            .poll_certificate(&retry)
            .await
            .map_err(ca("downloading the certificate"))?;
        Issued::parse(chain.into_bytes(), key.into_bytes())
            .map_err(|e| AcmeError::Order(format!("the CA's certificate: {e}")))
    }
}

/// The CA's reason for an invalid order: the first failed challenge's problem document,
/// else the order's (`problem`).
async fn challenge_error(
    order: &mut instant_acme::Order,
    kind: AcmeChallenge,
    names: &str,
    problem: Option<instant_acme::Problem>,
) -> AcmeError {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        let name = state.identifier().to_string();
        if let Some(p) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
            return AcmeError::Challenge {
                challenge: kind.as_str(),
                name,
                detail: p.to_string(),
            };
        }
    }
    match problem {
        Some(p) => AcmeError::Challenge {
            challenge: kind.as_str(),
            name: names.to_string(),
            detail: p.to_string(),
        },
        None => AcmeError::Order(format!(
            "the CA marked the order invalid ({} challenge)",
            kind.as_str()
        )),
    }
}

/// A TLS-ALPN-01 challenge certificate for `name` (RFC 8737 3): self-signed, the name as
/// its only subjectAltName, the key authorization's SHA-256 in a critical acmeIdentifier
/// extension. Returns the certificate and its PKCS#8 key, both DER.
/// Base64url without padding (RFC 4648 §5), as ACME account credentials hold keys.
fn base64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn alpn_certificate(name: &str, digest: &[u8]) -> Result<(Vec<u8>, Vec<u8>), AcmeError> {
    let err = |e: rcgen::Error| AcmeError::Order(format!("TLS-ALPN-01 certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(err)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renews_when_a_third_is_left_and_backs_off_to_an_hour() {
        let c = Stored {
            not_before: 0,
            not_after: 90 * 86400,
            names: vec![],
        };
        let at = renew_at(&c, None);
        assert!(at <= 60 * 86400 && at > 57 * 86400, "{at}");
        let at = renew_at(&c, Some(Duration::from_secs(86400)));
        assert!(
            at <= 89 * 86400 && at > 86 * 86400,
            "1 day before, less jitter: {at}"
        );
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn base64url_has_no_padding() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn alpn_certificate_names_the_host() {
        let (cert, key) = alpn_certificate("a.example.org", &[7; 32]).unwrap();
        assert!(!key.is_empty());
        let (_, c) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let ext = c
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert!(ext.critical);
    }
}
