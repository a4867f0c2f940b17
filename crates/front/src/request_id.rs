//! Request ids: kept from a sane incoming `X-Request-Id`, otherwise generated.
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SEED: OnceLock<RandomState> = OnceLock::new();

/// A new id: 32 lowercase hex digits, unique within the process and unpredictable across
/// processes (the hasher is randomly keyed per process).
pub fn generate() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = SEED.get_or_init(RandomState::new);
    let mut a = seed.build_hasher();
    a.write_u64(n);
    let mut b = seed.build_hasher();
    b.write_u64(!n);
    format!("{:016x}{:016x}", a.finish(), b.finish())
}

/// An incoming id is kept when it is short and made of safe characters, so it can travel
/// into logs and PHP without escaping.
pub fn accept(incoming: &[u8]) -> Option<String> {
    let ok = !incoming.is_empty()
        && incoming.len() <= 128
        && incoming
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| String::from_utf8_lossy(incoming).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn incoming_ids_are_filtered() {
        assert_eq!(accept(b"abc-123"), Some("abc-123".into()));
        assert_eq!(accept(b"a b"), None);
        assert_eq!(accept(b"x\r\ny"), None);
        assert_eq!(accept(&[b'a'; 200]), None);
        assert_eq!(accept(b""), None);
    }
}
