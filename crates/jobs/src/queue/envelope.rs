//! The job record as it sits in the store: Isola's envelope (id, attempt, enqueue time,
//! last error) in front of the producer's raw payload, and the key names.
//!
//! Owns: the wire format, which other nodes (and older or newer Isola versions) read, so
//! it only ever gains optional fields.
//!
//! Never: loses a payload it cannot read: an element that is not a valid envelope is a raw
//! payload, run as it is.
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const MAGIC: &[u8] = b"\0isola-job\n";

/// What Isola knows of a job beyond its payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) id: String,
    /// Runs started so far (the one running, if any, included).
    pub(crate) attempt: u32,
    /// When it was enqueued (ms since the epoch), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) queued_ms: Option<u64>,
    /// Why the last run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl Envelope {
    pub(crate) fn wrap(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        // Serializing a plain struct of strings and numbers cannot fail.
        v.extend(serde_json::to_vec(self).unwrap_or_default());
        v.push(b'\n');
        v.extend_from_slice(payload);
        v
    }

    /// Splits a list element into envelope and payload; a raw payload gets a new id.
    pub(crate) fn unwrap(elem: &[u8]) -> (Envelope, &[u8]) {
        if let Some(rest) = elem.strip_prefix(MAGIC) {
            if let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                if let Ok(env) = serde_json::from_slice::<Envelope>(&rest[..nl]) {
                    return (env, &rest[nl + 1..]);
                }
            }
        }
        (
            Envelope {
                id: new_id(),
                attempt: 0,
                queued_ms: None,
                error: None,
            },
            elem,
        )
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A job id: time-ordered, unique across nodes with overwhelming probability.
pub(crate) fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:012x}{:08x}", now_ms(), h.finish() as u32)
}

pub(crate) fn key(kind: &str, queue: &str) -> String {
    format!("isola:{kind}:{queue}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn envelopes_round_trip_and_raw_payloads_get_ids() {
        let env = Envelope {
            id: "abc".into(),
            attempt: 2,
            queued_ms: Some(5),
            error: Some("script answered 500\nline".into()),
        };
        let wrapped = env.wrap(b"{\"x\":1}\nmore");
        let (back, payload) = Envelope::unwrap(&wrapped);
        assert_eq!(back, env);
        assert_eq!(payload, b"{\"x\":1}\nmore");
        let (raw, payload) = Envelope::unwrap(b"plain");
        assert_eq!((raw.attempt, payload), (0, &b"plain"[..]));
        assert_eq!(raw.id.len(), 20);
        assert_ne!(raw.id, Envelope::unwrap(b"plain").0.id);
        // A broken envelope is treated as a raw payload, never lost.
        let (_, payload) = Envelope::unwrap(b"\0isola-job\n{bad\nx");
        assert_eq!(payload, b"\0isola-job\n{bad\nx");
    }
}
