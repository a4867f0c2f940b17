//! The copy in the store shared by several nodes behind one name: the account credentials,
//! the certificate chain with its key, the ordering lock, and HTTP-01 answers.
//!
//! Keys (in `[store] isola_db`), for a CA folder `ca` (see [`crate::store::ca_folder`]):
//! `isola:acme:<ca>:account` (credentials JSON), `isola:acme:<ca>:cert` and
//! `isola:acme:<ca>:key` (PEM, written together by one MSET), `isola:acme:<ca>:lock` (the
//! ordering node's token, with an expiry), and `isola:acme:http01:<token>` (a key
//! authorization, with an expiry; not per CA, since a validation request names no CA).
//!
//! Owns: one short-lived connection per call, the lock's token, and compare-and-delete of
//! the lock (a Lua script, which the embedded store and Redis both run).
//!
//! Never: retries (the caller falls back to the disk copy and its own orders), waits on
//! the store longer than [`TIMEOUT`] per command, or keeps a connection between calls (the
//! calls are minutes apart and the store may move).
use isola_store_client::{ClientError, Conn, Endpoint, Value};
use std::time::Duration;

/// Connect and reply deadline of every store call.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);
/// How long an ordering lock lives unless refreshed.
pub(crate) const LOCK_TTL: Duration = Duration::from_secs(300);
/// How long an HTTP-01 answer stays in the store: longer than any validation.
const HTTP01_TTL_MS: &str = "600000";
/// Longest HTTP-01 token looked up (tokens are 43 base64url characters).
const MAX_TOKEN: usize = 128;

/// Deletes the lock only while it still holds this node's token.
const UNLOCK: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
/// Extends the lock only while it still holds this node's token.
const REFRESH: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/// What went wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The store could not be reached or refused the command.
    #[error("store: {0}")]
    Store(#[from] ClientError),
    /// A reply of a kind the command never gives.
    #[error("store: unexpected reply to {0}")]
    Reply(&'static str),
}

/// The store's copy for one CA, and this node's lock token.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    ep: Endpoint,
    prefix: String,
    token: String,
}

/// The prefix every key of this module starts with.
const PREFIX: &str = "isola:acme";

fn http01_key(token: &str) -> String {
    format!("{PREFIX}:http01:{token}")
}

impl Shared {
    pub(crate) fn new(ep: Endpoint, ca_folder: &str) -> Shared {
        Shared {
            ep,
            prefix: format!("{PREFIX}:{ca_folder}"),
            token: node_token(),
        }
    }

    fn key(&self, what: &str) -> String {
        format!("{}:{what}", self.prefix)
    }

    async fn conn(&self) -> Result<Conn, SharedError> {
        Ok(Conn::connect(&self.ep, TIMEOUT).await?)
    }

    /// The stored chain and key PEM, if both are there.
    pub(crate) async fn cert(&self) -> Result<Option<crate::store::Pems>, SharedError> {
        let mut c = self.conn().await?;
        match c.ok(&["MGET", &self.key("cert"), &self.key("key")]).await? {
            Value::Array(v) => match (
                v.first().and_then(Value::as_bytes),
                v.get(1).and_then(Value::as_bytes),
            ) {
                (Some(chain), Some(key)) => Ok(Some((chain.to_vec(), key.to_vec()))),
                _ => Ok(None),
            },
            _ => Err(SharedError::Reply("MGET")),
        }
    }

    /// Publishes a chain and its key, both at once.
    pub(crate) async fn put_cert(&self, chain: &[u8], key: &[u8]) -> Result<(), SharedError> {
        let (ck, kk) = (self.key("cert"), self.key("key"));
        let args: [&[u8]; 5] = [b"MSET", ck.as_bytes(), chain, kk.as_bytes(), key];
        self.conn().await?.ok(&args).await?;
        Ok(())
    }

    /// The stored account credentials JSON.
    pub(crate) async fn account(&self) -> Result<Option<Vec<u8>>, SharedError> {
        let v = self
            .conn()
            .await?
            .ok(&["GET", &self.key("account")])
            .await?;
        Ok(v.as_bytes().map(<[u8]>::to_vec))
    }

    /// Publishes account credentials unless some are there already (the first account
    /// stays the one every node uses).
    pub(crate) async fn put_account(&self, json: &[u8]) -> Result<(), SharedError> {
        let k = self.key("account");
        let args: [&[u8]; 4] = [b"SET", k.as_bytes(), json, b"NX"];
        self.conn().await?.ok(&args).await?;
        Ok(())
    }

    /// Takes the ordering lock; `false` when another node holds it.
    pub(crate) async fn lock(&self) -> Result<bool, SharedError> {
        let ms = LOCK_TTL.as_millis().to_string();
        let v = self
            .conn()
            .await?
            .ok(&["SET", &self.key("lock"), &self.token, "NX", "PX", &ms])
            .await?;
        Ok(v != Value::Nil)
    }

    /// Whether any node holds the ordering lock.
    pub(crate) async fn locked(&self) -> Result<bool, SharedError> {
        let v = self
            .conn()
            .await?
            .ok(&["EXISTS", &self.key("lock")])
            .await?;
        Ok(v.as_int().unwrap_or(0) > 0)
    }

    /// Extends this node's lock to a full [`LOCK_TTL`]; `false` when it is no longer ours.
    pub(crate) async fn refresh(&self) -> Result<bool, SharedError> {
        let ms = LOCK_TTL.as_millis().to_string();
        let v = self
            .conn()
            .await?
            .ok(&["EVAL", REFRESH, "1", &self.key("lock"), &self.token, &ms])
            .await?;
        Ok(v.as_int().unwrap_or(0) > 0)
    }

    /// Releases this node's lock (never another node's).
    pub(crate) async fn unlock(&self) -> Result<(), SharedError> {
        self.conn()
            .await?
            .ok(&["EVAL", UNLOCK, "1", &self.key("lock"), &self.token])
            .await?;
        Ok(())
    }

    /// Lets every node answer an HTTP-01 request for `token`.
    pub(crate) async fn put_http01(&self, token: &str, key_auth: &str) -> Result<(), SharedError> {
        self.conn()
            .await?
            .ok(&["SET", &http01_key(token), key_auth, "PX", HTTP01_TTL_MS])
            .await?;
        Ok(())
    }

    /// Forgets HTTP-01 answers once the order is over.
    pub(crate) async fn del_http01(&self, tokens: &[String]) -> Result<(), SharedError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut args = vec!["DEL".to_string()];
        args.extend(tokens.iter().map(|t| http01_key(t)));
        self.conn().await?.ok(&args).await?;
        Ok(())
    }
}

/// Store lookups for HTTP-01 tokens running at once, at most: anyone can send challenge
/// requests, and beyond this they get no answer rather than a store connection each.
pub(crate) const MAX_LOOKUPS: usize = 8;

/// The HTTP-01 answer another node put in the store for `token`; `None` when there is
/// none, the token cannot be one, or the store does not answer.
pub(crate) async fn http01(ep: &Endpoint, token: &str) -> Option<String> {
    let plausible = !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plausible {
        return None;
    }
    let mut c = Conn::connect(ep, TIMEOUT).await.ok()?;
    let v = c.ok(&["GET", &http01_key(token)]).await.ok()?;
    String::from_utf8(v.as_bytes()?.to_vec()).ok()
}

/// A token unique to this process and start: the pid and the clock, mixed.
fn node_token() -> String {
    format!(
        "{}-{:016x}{:016x}",
        std::process::id(),
        crate::jitter(u64::MAX),
        crate::jitter(u64::MAX)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Two nodes' views of one embedded store on a unix socket.
    async fn two_nodes() -> (tempfile::TempDir, Shared, Shared, Endpoint) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let store = isola_store::Store::bind(isola_store::StoreConfig {
            unix_socket: Some(sock.clone()),
            ..isola_store::StoreConfig::default()
        })
        .await
        .unwrap();
        tokio::spawn(store.run(std::future::pending()));
        let ep = Endpoint::parse(&format!("unix://{}?db=15", sock.display())).unwrap();
        let a = Shared::new(ep.clone(), "ca.test");
        let b = Shared::new(ep.clone(), "ca.test");
        (dir, a, b, ep)
    }

    #[tokio::test]
    async fn one_lock_holder_and_only_it_refreshes_or_releases() {
        let (_d, a, b, _) = two_nodes().await;
        assert_ne!(a.token, b.token);
        assert!(a.lock().await.unwrap());
        assert!(!b.lock().await.unwrap());
        assert!(b.locked().await.unwrap());
        assert!(a.refresh().await.unwrap());
        assert!(!b.refresh().await.unwrap());
        // b's release leaves a's lock alone.
        b.unlock().await.unwrap();
        assert!(a.locked().await.unwrap());
        a.unlock().await.unwrap();
        assert!(!a.locked().await.unwrap());
        assert!(b.lock().await.unwrap());
    }

    #[tokio::test]
    async fn certificate_account_and_http01_answers_are_shared() {
        let (_d, a, b, ep) = two_nodes().await;
        assert_eq!(b.cert().await.unwrap(), None);
        a.put_cert(b"chain", b"key").await.unwrap();
        assert_eq!(
            b.cert().await.unwrap(),
            Some((b"chain".to_vec(), b"key".to_vec()))
        );
        // The first account stays.
        a.put_account(b"{1}").await.unwrap();
        b.put_account(b"{2}").await.unwrap();
        assert_eq!(b.account().await.unwrap().as_deref(), Some(&b"{1}"[..]));
        a.put_http01("tok-en_1", "tok-en_1.thumb").await.unwrap();
        assert_eq!(
            http01(&ep, "tok-en_1").await.as_deref(),
            Some("tok-en_1.thumb")
        );
        assert_eq!(http01(&ep, "../x").await, None);
        a.del_http01(&["tok-en_1".to_string()]).await.unwrap();
        assert_eq!(http01(&ep, "tok-en_1").await, None);
    }

    #[tokio::test]
    async fn a_store_that_is_down_is_an_error_not_a_wait() {
        let ep = Endpoint::parse("unix:///nonexistent/isola-acme.sock").unwrap();
        let s = Shared::new(ep.clone(), "ca.test");
        assert!(matches!(s.lock().await, Err(SharedError::Store(_))));
        assert!(s.cert().await.is_err());
        assert_eq!(http01(&ep, "token").await, None);
    }
}
