//! Keyspace: databases, values, expiry deadlines and the clock.
//!
//! This module owns the data and its time-to-live bookkeeping. Every change to a key's
//! deadline goes through [`Db`] so the deadline index never drifts from the entries. It never
//! knows about clients, replies or commands, and it never reads the wall clock directly: time
//! comes from a [`Clock`] so tests can move it.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtOrd};
use std::sync::Arc;

use bytes::Bytes;

/// Number of logical databases (`SELECT 0` .. `SELECT 15`).
pub const DB_COUNT: usize = 16;

/// Source of the current time in Unix milliseconds.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn new(ms: u64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicU64::new(ms)))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, AtOrd::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(AtOrd::SeqCst)
    }
}

/// A score with the total order sorted sets need: numeric order, `-0 == 0`, never NaN.
#[derive(Debug, Clone, Copy)]
pub struct Score(pub f64);

impl PartialEq for Score {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Score {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.partial_cmp(&o.0).unwrap_or(Ordering::Equal)
    }
}

/// A sorted set: member to score, plus the (score, member) order.
///
/// Rank queries walk the ordered set (O(rank)); a skip list with spans would make them
/// O(log n) and can replace this without changing the commands.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    /// Member to score.
    pub scores: HashMap<Bytes, f64>,
    /// Members ordered by score, then bytewise.
    pub order: BTreeSet<(Score, Bytes)>,
}

impl ZSet {
    /// Sets `member`'s score as a stored set keeps it; returns true when the member is new.
    ///
    /// A stored `-0` reads back as `0`: Redis keeps small sorted sets in its listpack
    /// encoding, which does not keep the sign of zero (`ZADD a -0 x`, `ZSCORE a x` → `0`).
    /// Sets of more than 128 members keep it in Redis; here every stored set drops it.
    pub fn insert(&mut self, member: Bytes, score: f64) -> bool {
        // IEEE 754: -0 + 0 is +0, every other value is unchanged.
        self.insert_exact(member, score + 0.0)
    }

    /// Sets `member`'s score bit for bit, for a set that is only replied (ZUNION, ZINTER):
    /// Redis's reply keeps the sign of a computed `-0`.
    pub fn insert_exact(&mut self, member: Bytes, score: f64) -> bool {
        match self.scores.insert(member.clone(), score) {
            Some(old) => {
                self.order.remove(&(Score(old), member.clone()));
                self.order.insert((Score(score), member));
                false
            }
            None => {
                self.order.insert((Score(score), member));
                true
            }
        }
    }

    /// Removes `member`; returns true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove_entry(member) {
            Some((m, s)) => {
                self.order.remove(&(Score(s), m));
                true
            }
            None => false,
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Zero-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = *self.scores.get(member)?;
        Some(
            self.order
                .range(..(Score(s), Bytes::copy_from_slice(member)))
                .count(),
        )
    }
}

/// A stored value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string (also integers and floats, as text).
    Str(Bytes),
    /// A list.
    List(VecDeque<Bytes>),
    /// A hash.
    Hash(HashMap<Bytes, Bytes>),
    /// A set.
    Set(HashSet<Bytes>),
    /// A sorted set.
    ZSet(ZSet),
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// True for an aggregate with no elements (such keys are deleted).
    pub fn is_empty_aggregate(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }

    /// Rough heap footprint in bytes, for the used-memory figure. Large aggregates are
    /// extrapolated from their first elements so the figure stays cheap to compute.
    pub fn estimate_size(&self) -> usize {
        const OVERHEAD: usize = 48;
        fn extrapolate<I: ExactSizeIterator>(it: I, each: impl Fn(I::Item) -> usize) -> usize {
            const SAMPLE: usize = 32;
            let len = it.len();
            let (n, bytes) = it
                .take(SAMPLE)
                .fold((0usize, 0usize), |(n, b), x| (n + 1, b + each(x)));
            (bytes * len).checked_div(n).unwrap_or(0)
        }
        OVERHEAD
            + match self {
                Value::Str(b) => b.len(),
                Value::List(l) => extrapolate(l.iter(), |b| b.len() + 16),
                Value::Hash(h) => extrapolate(h.iter(), |(k, v)| k.len() + v.len() + 64),
                Value::Set(s) => extrapolate(s.iter(), |m| m.len() + 40),
                Value::ZSet(z) => extrapolate(z.scores.keys(), |m| 2 * m.len() + 96),
            }
    }
}

/// A key's value and deadline.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute deadline in Unix milliseconds, if any.
    pub expire_at: Option<u64>,
    /// Bytes this entry counts for in [`Db::used_memory`], as of its last accounting.
    size: usize,
    /// Access tick of the last read or write (approximate LRU eviction).
    lru: u64,
    /// Snapshot generation of the last write (copy-on-write for log compaction).
    gen: u64,
    /// Position in the sampling index, when the database keeps one.
    slot: usize,
}

/// Fixed bytes counted per key on top of key and value: the table slot, the entry, the
/// allocation headers.
const ENTRY_OVERHEAD: usize = 64;

/// Global access clock for LRU: a counter, so order is exact even within a millisecond.
static LRU_TICK: AtomicU64 = AtomicU64::new(1);

fn lru_tick() -> u64 {
    LRU_TICK.fetch_add(1, AtOrd::Relaxed)
}

/// One logical database.
#[derive(Debug, Default)]
pub struct Db {
    map: HashMap<Bytes, Entry>,
    /// Deadlines in order, so active expiry finds due keys without sampling.
    deadlines: BTreeSet<(u64, Bytes)>,
    /// Keys removed by expiry since the last drain (watchers must hear of them).
    pub expired: Vec<Bytes>,
    /// Sum of the entries' `size`.
    used: usize,
    /// Keys handed out mutably since the last [`Db::settle`]: their size is re-estimated then.
    resized: Vec<Bytes>,
    /// Every key, for uniform random sampling in O(1) (kept only when eviction needs it).
    sample: Option<Vec<Bytes>>,
    /// Copy-on-write state while a snapshot of this database is being taken.
    snap: Option<Box<SnapState>>,
    /// Current snapshot generation: entries with a smaller `gen` still hold the value the
    /// running snapshot must see.
    gen: u64,
}

/// Values a running snapshot still needs, preserved before their first change.
#[derive(Debug, Default)]
struct SnapState {
    /// Entries as they were when the snapshot began, for keys changed or removed since.
    preserved: HashMap<Bytes, Entry>,
    /// Keys still to visit (collected when the dump of this database starts).
    todo: Option<Vec<Bytes>>,
}

/// One key as a snapshot sees it.
#[derive(Debug)]
pub struct SnapEntry {
    /// The key.
    pub key: Bytes,
    /// Its value and deadline when the snapshot began.
    pub entry: Entry,
}

fn entry_size(key: &[u8], value: &Value) -> usize {
    ENTRY_OVERHEAD + key.len() + value.estimate_size()
}

impl Db {
    /// Number of keys, expired-but-not-yet-removed ones included (as Redis's DBSIZE).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the database holds no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of keys with a deadline.
    pub fn volatile_len(&self) -> usize {
        self.deadlines.len()
    }

    /// Bytes held by keys and values (an estimate maintained on every change).
    pub fn used_memory(&self) -> usize {
        self.used
    }

    fn expire_if_due(&mut self, key: &[u8], now: u64) -> bool {
        let due = matches!(self.map.get(key), Some(Entry { expire_at: Some(t), .. }) if *t <= now);
        if due {
            self.remove(key);
            self.expired.push(Bytes::copy_from_slice(key));
        }
        due
    }

    /// Keeps the value a running snapshot needs before `key`'s entry changes.
    fn preserve(&mut self, key: &[u8]) {
        let Some(snap) = self.snap.as_mut() else {
            return;
        };
        if let Some((k, e)) = self.map.get_key_value(key) {
            if e.gen < self.gen {
                snap.preserved.insert(k.clone(), e.clone());
            }
        }
        if let Some(e) = self.map.get_mut(key) {
            e.gen = self.gen;
        }
    }

    /// The live entry for `key`, removing it first if its deadline has passed.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        self.expire_if_due(key, now);
        let e = self.map.get_mut(key)?;
        e.lru = lru_tick();
        Some(e)
    }

    /// Mutable access to the live entry for `key`. Callers must not change `expire_at`
    /// through it; use [`Db::set_expire`]. The entry's size is re-estimated at the next
    /// [`Db::settle`].
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        self.expire_if_due(key, now);
        let (k, _) = self.map.get_key_value(key)?;
        self.resized.push(k.clone());
        self.preserve(key);
        let e = self.map.get_mut(key)?;
        e.lru = lru_tick();
        Some(e)
    }

    /// Memory recomputed from every entry (tests compare it with the running figure).
    #[cfg(test)]
    pub(crate) fn recount(&self) -> usize {
        self.map.iter().map(|(k, e)| entry_size(k, &e.value)).sum()
    }

    /// The entry for `key` as stored, without expiring it or counting an access.
    pub fn peek(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// Re-estimates the size of entries handed out by [`Db::get_mut`] since the last call.
    pub fn settle(&mut self) {
        for k in std::mem::take(&mut self.resized) {
            if let Some(e) = self.map.get_mut(&k) {
                let size = entry_size(&k, &e.value);
                self.used = self.used.saturating_sub(e.size) + size;
                e.size = size;
            }
        }
    }

    /// True when `key` exists and has not expired, without removing anything (WATCH checks).
    pub fn is_live(&self, key: &[u8], now: u64) -> bool {
        match self.map.get(key) {
            Some(e) => e.expire_at.is_none_or(|t| t > now),
            None => false,
        }
    }

    /// Stores `value` under `key` with `expire_at`, replacing any previous entry.
    pub fn insert(&mut self, key: Bytes, value: Value, expire_at: Option<u64>) {
        self.preserve(&key);
        let mut slot = usize::MAX;
        if let Some(old) = self.map.get(&key) {
            if let Some(t) = old.expire_at {
                self.deadlines.remove(&(t, key.clone()));
            }
            self.used = self.used.saturating_sub(old.size);
            slot = old.slot;
        } else if let Some(sample) = self.sample.as_mut() {
            slot = sample.len();
            sample.push(key.clone());
        }
        if let Some(t) = expire_at {
            self.deadlines.insert((t, key.clone()));
        }
        let size = entry_size(&key, &value);
        self.used += size;
        let entry = Entry {
            value,
            expire_at,
            size,
            lru: lru_tick(),
            gen: self.gen,
            slot,
        };
        self.map.insert(key, entry);
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.preserve(key);
        let (k, e) = self.map.remove_entry(key)?;
        if let Some(t) = e.expire_at {
            self.deadlines.remove(&(t, k));
        }
        self.used = self.used.saturating_sub(e.size);
        if let Some(sample) = self.sample.as_mut() {
            if e.slot < sample.len() {
                sample.swap_remove(e.slot);
                if let Some(moved) = sample.get(e.slot) {
                    if let Some(m) = self.map.get_mut(moved) {
                        m.slot = e.slot;
                    }
                }
            }
        }
        Some(e)
    }

    /// Changes the deadline of an existing key; returns false when the key is absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: Option<u64>) -> bool {
        self.preserve(key);
        let Some((k, e)) = self.map.get_key_value(key) else {
            return false;
        };
        let k = k.clone();
        let old = e.expire_at;
        if let Some(t) = old {
            self.deadlines.remove(&(t, k.clone()));
        }
        if let Some(t) = expire_at {
            self.deadlines.insert((t, k.clone()));
        }
        if let Some(e) = self.map.get_mut(&k) {
            e.expire_at = expire_at;
        }
        true
    }

    /// Removes an aggregate left empty by a command (Redis never keeps empty aggregates).
    pub fn remove_if_empty(&mut self, key: &[u8]) {
        if self
            .map
            .get(key)
            .is_some_and(|e| e.value.is_empty_aggregate())
        {
            self.remove(key);
        }
    }

    /// Removes up to `budget` keys whose deadline is at or before `now`; returns how many.
    pub fn expire_due(&mut self, now: u64, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            let Some((t, k)) = self.deadlines.first().cloned() else {
                break;
            };
            if t > now {
                break;
            }
            self.remove(&k);
            self.expired.push(k);
            n += 1;
        }
        n
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        if let Some(snap) = self.snap.as_mut() {
            let gen = self.gen;
            snap.preserved
                .extend(self.map.drain().filter(|(_, e)| e.gen < gen));
        }
        self.map.clear();
        self.deadlines.clear();
        self.used = 0;
        self.resized.clear();
        if let Some(s) = self.sample.as_mut() {
            s.clear();
        }
    }

    /// Keeps an index of keys so [`Db::sample_key`] costs O(1) (needed by eviction).
    pub fn enable_sampling(&mut self) {
        if self.sample.is_some() {
            return;
        }
        let mut keys = Vec::with_capacity(self.map.len());
        for (i, (k, e)) in self.map.iter_mut().enumerate() {
            e.slot = i;
            keys.push(k.clone());
        }
        self.sample = Some(keys);
    }

    /// A key picked uniformly at random with its last access tick, when sampling is on.
    pub fn sample_key(&self, rng: &mut Rng) -> Option<(Bytes, u64, bool)> {
        let keys = self.sample.as_ref()?;
        if keys.is_empty() {
            return None;
        }
        let k = &keys[rng.below(keys.len())];
        let e = self.map.get(k)?;
        Some((k.clone(), e.lru, e.expire_at.is_some()))
    }

    /// Starts a snapshot: from now on the first change to any existing entry keeps a copy
    /// of it until [`Db::snapshot_step`] has visited it.
    pub fn snapshot_begin(&mut self) {
        self.gen += 1;
        self.snap = Some(Box::default());
    }

    /// Up to `budget` entries of the snapshot (values as they were at
    /// [`Db::snapshot_begin`]); an empty result means this database is done. The first call
    /// collects the keys to visit, O(keys) reference-count increments.
    pub fn snapshot_step(&mut self, budget: usize) -> Vec<SnapEntry> {
        let gen = self.gen;
        let Some(snap) = self.snap.as_mut() else {
            return Vec::new();
        };
        if snap.todo.is_none() {
            let keys = self
                .map
                .iter()
                .filter(|(_, e)| e.gen < gen)
                .map(|(k, _)| k.clone())
                .collect();
            snap.todo = Some(keys);
        }
        let mut out = Vec::new();
        let todo = snap.todo.get_or_insert_with(Vec::new);
        while out.len() < budget {
            let Some(key) = todo.pop() else { break };
            if let Some(entry) = snap.preserved.remove(&key) {
                out.push(SnapEntry { key, entry });
            } else if let Some(e) = self.map.get_mut(&key) {
                if e.gen < gen {
                    e.gen = gen;
                    out.push(SnapEntry {
                        entry: e.clone(),
                        key,
                    });
                }
            }
        }
        if out.len() < budget {
            // Keys removed or changed before the visit reached them: their old values.
            let rest: Vec<Bytes> = snap
                .preserved
                .keys()
                .take(budget - out.len())
                .cloned()
                .collect();
            for key in rest {
                if let Some(entry) = snap.preserved.remove(&key) {
                    out.push(SnapEntry { key, entry });
                }
            }
        }
        if out.is_empty() {
            self.snap = None;
        }
        out
    }

    /// Abandons a running snapshot and frees what it preserved.
    pub fn snapshot_abort(&mut self) {
        self.snap = None;
    }

    /// Iterates over all keys (expired ones included; callers filter with `is_live`).
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.map.keys()
    }

    /// Iterates over all entries.
    pub fn entries(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.map.iter()
    }

    /// A key picked uniformly at random, if any (RANDOMKEY).
    pub fn random_key(&self, rng: &mut Rng) -> Option<Bytes> {
        if self.map.is_empty() {
            return None;
        }
        let i = rng.below(self.map.len());
        self.map.keys().nth(i).cloned()
    }
}

/// Bits of [`scan_hash`]: cursors stay below 2^53.
pub const SCAN_HASH_BITS: u32 = 53;

/// Stable hash that orders SCAN, HSCAN, SSCAN and ZSCAN, and whose values are the cursors
/// (the same across runs, rehashes and restarts).
///
/// Why a hash order rather than Redis's reverse-binary walk of its table: our containers
/// are `HashMap`s whose bucket layout is not ours to index, and a fixed hash gives the same
/// guarantee with no extra index: the cursor is "the next hash to visit", so an element
/// present from the first call to the last is returned (once, whatever is added or removed
/// in between), and equal hashes are never split across pages.
///
/// Why 53 bits: clients keep the cursor in a signed 64-bit integer (phpredis saturates a
/// cursor at or above 2^63 to `i64::MAX` and then ends the iteration early), and some keep
/// it in a double (JavaScript, Lua scripts); below 2^53 it survives both. Collisions at this
/// width cost nothing but a slightly larger page.
pub fn scan_hash(b: &[u8]) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(0x1501a, 0x5703e);
    b.hash(&mut h);
    h.finish() >> (64 - SCAN_HASH_BITS)
}

/// Small xorshift generator: random picks need speed, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (zero is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Glob match with Redis's `stringmatchlen` rules: `*`, `?`, `[...]` with `^` and ranges, `\`.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    glob_inner(pattern, s, 0)
}

fn glob_inner(mut p: &[u8], mut s: &[u8], depth: usize) -> bool {
    // Redis bounds recursion the same way to stay safe on hostile patterns.
    if depth > 1000 {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if glob_inner(&p[1..], s, depth + 1) {
                        return true;
                    }
                    s = &s[1..];
                }
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if p[0] == s[0] {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut a, mut b) = (p[0], p[2]);
                        if a > b {
                            std::mem::swap(&mut a, &mut b);
                        }
                        if s[0] >= a && s[0] <= b {
                            matched = true;
                        }
                        p = &p[2..];
                    } else if p[0] == s[0] {
                        matched = true;
                    }
                    p = &p[1..];
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if p[0] != s[0] {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if c != s[0] {
                    return false;
                }
                s = &s[1..];
            }
        }
        if p.is_empty() {
            break;
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match(b"*", b"abc"));
        assert!(glob_match(b"a*c", b"abbbc"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"h[ae]llo", b"hello"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-b]llo", b"hbllo"));
        assert!(glob_match(b"h\\*", b"h*"));
        assert!(!glob_match(b"h\\*", b"hx"));
        assert!(glob_match(b"user:*", b"user:"));
        assert!(!glob_match(b"a", b""));
    }

    #[test]
    fn lazy_and_active_expiry() {
        let mut db = Db::default();
        db.insert(Bytes::from("a"), Value::Str(Bytes::from("1")), Some(100));
        db.insert(Bytes::from("b"), Value::Str(Bytes::from("1")), Some(200));
        db.insert(Bytes::from("c"), Value::Str(Bytes::from("1")), None);
        assert!(db.get(b"a", 99).is_some());
        assert!(db.get(b"a", 100).is_none());
        assert_eq!(db.expired, vec![Bytes::from("a")]);
        assert_eq!(db.expire_due(300, 10), 1);
        assert_eq!(db.len(), 1);
        assert_eq!(db.volatile_len(), 0);
    }

    #[test]
    fn zset_order_and_rank() {
        let mut z = ZSet::default();
        z.insert(Bytes::from("b"), 1.0);
        z.insert(Bytes::from("a"), 1.0);
        z.insert(Bytes::from("c"), -0.0);
        assert_eq!(z.rank(b"c"), Some(0));
        assert_eq!(z.rank(b"a"), Some(1));
        z.insert(Bytes::from("c"), 5.0);
        assert_eq!(z.rank(b"c"), Some(2));
        assert!(z.remove(b"a"));
        assert_eq!(z.len(), 2);
    }

    #[test]
    fn a_stored_score_drops_the_sign_of_zero_and_a_replied_one_keeps_it() {
        let mut z = ZSet::default();
        z.insert(Bytes::from("s"), -0.0);
        assert!(z.scores[&Bytes::from("s")].is_sign_positive());
        z.insert_exact(Bytes::from("r"), -0.0);
        assert!(z.scores[&Bytes::from("r")].is_sign_negative());
        z.insert(Bytes::from("n"), -1.5);
        assert_eq!(z.scores[&Bytes::from("n")], -1.5);
    }
}
