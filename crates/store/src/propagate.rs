//! Log records: what the append-only log says about a command that changed data.
//!
//! This module owns the translation of executed commands into records that replay to the
//! same keyspace whenever they are replayed: relative times become absolute deadlines,
//! random or time-dependent effects become their outcome (SPOP → SREM of what was popped,
//! INCRBYFLOAT → SET of the result, a served BLPOP → LPOP), keys removed by expiry become
//! DEL, the records of one transaction (or script) are wrapped in MULTI/EXEC, and SELECT
//! is emitted whenever the database changes. It also encodes keyspace snapshots for log
//! compaction and parses records back for replay.
//!
//! It is sans-I/O and never fails: records accumulate in a buffer that the server hands to
//! the log writer after each batch. It never decides whether a command changed data; the
//! engine does (its dirty counter) before asking for a record.

use bytes::Bytes;

use crate::cmd::fmt_double;
use crate::db::{Db, SnapEntry, Value};
use crate::resp::Reply;

/// Elements per command when a snapshot writes an aggregate (Redis writes 64 too).
const ITEMS_PER_CMD: usize = 64;

/// Records of executed commands, not yet handed to the writer.
#[derive(Debug, Default)]
pub struct Log {
    buf: Vec<u8>,
    /// Database the log's last SELECT chose (`None` at the start of a file).
    db: Option<usize>,
    /// Records of the running top-level command.
    unit: Vec<(usize, Vec<Bytes>)>,
    /// Bytes appended since start, for the growth-based compaction trigger.
    pub(crate) appended: u64,
}

impl Log {
    /// Adds a record to the running unit.
    pub(crate) fn push(&mut self, db: usize, args: Vec<Bytes>) {
        self.unit.push((db, args));
    }

    /// Writes the running unit out; `wrap` puts it inside MULTI/EXEC (a transaction's or a
    /// script's effects, which must replay all or nothing).
    pub(crate) fn finish_unit(&mut self, wrap: bool) {
        if self.unit.is_empty() {
            return;
        }
        let unit = std::mem::take(&mut self.unit);
        let start = self.buf.len();
        if wrap {
            encode(&mut self.buf, &[Bytes::from_static(b"MULTI")]);
        }
        for (db, args) in unit {
            if self.db != Some(db) {
                encode(
                    &mut self.buf,
                    &[Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())],
                );
                self.db = Some(db);
            }
            encode(&mut self.buf, &args);
        }
        if wrap {
            encode(&mut self.buf, &[Bytes::from_static(b"EXEC")]);
        }
        self.appended += (self.buf.len() - start) as u64;
    }

    /// Takes the encoded records.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// True when records wait to be taken.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Forgets the selected database: the next record goes to a new file, which replays from
    /// database 0.
    pub fn new_file(&mut self) {
        self.db = None;
    }
}

/// Appends `args` as a RESP multibulk.
pub fn encode(out: &mut Vec<u8>, args: &[Bytes]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn num(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

/// The records for a command that changed data in `db`, given the keyspace after it ran.
/// `args` includes the command name, `name` is its lowercase spelling.
pub(crate) fn rewrite(
    db: &Db,
    dbi: usize,
    name: &str,
    args: &[Bytes],
    reply: &Reply,
) -> Vec<(usize, Vec<Bytes>)> {
    let one = |a: Vec<Bytes>| vec![(dbi, a)];
    // The key's deadline (or absence) after the command, as absolute records.
    let deadline_of = |key: &Bytes| -> Vec<Bytes> {
        match db.peek(key) {
            Some(e) => match e.expire_at {
                Some(t) => vec![b("PEXPIREAT"), key.clone(), num(t)],
                None => vec![b("PERSIST"), key.clone()],
            },
            None => vec![b("DEL"), key.clone()],
        }
    };
    match name {
        // GETSET is a SET that clears the time to live; logged as the SET it amounts to.
        "set" | "setex" | "psetex" | "getset" => {
            let key = &args[1];
            match db.peek(key) {
                Some(e) => {
                    let Value::Str(v) = &e.value else {
                        return one(args.to_vec());
                    };
                    let mut r = vec![b("SET"), key.clone(), v.clone()];
                    if let Some(t) = e.expire_at {
                        r.push(b("PXAT"));
                        r.push(num(t));
                    }
                    one(r)
                }
                None => one(vec![b("DEL"), key.clone()]),
            }
        }
        "getex" | "expire" | "pexpire" | "expireat" | "pexpireat" => one(deadline_of(&args[1])),
        "incrbyfloat" => match db.peek(&args[1]) {
            Some(e) => match &e.value {
                Value::Str(v) => one(vec![b("SET"), args[1].clone(), v.clone(), b("KEEPTTL")]),
                _ => one(args.to_vec()),
            },
            None => one(args.to_vec()),
        },
        "hincrbyfloat" => match reply {
            Reply::Bulk(v) => one(vec![b("HSET"), args[1].clone(), args[2].clone(), v.clone()]),
            _ => one(args.to_vec()),
        },
        "spop" => {
            let members: Vec<Bytes> = match reply {
                Reply::Bulk(m) => vec![m.clone()],
                Reply::Array(items) => items
                    .iter()
                    .filter_map(|r| match r {
                        Reply::Bulk(m) => Some(m.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            members
                .chunks(ITEMS_PER_CMD * 16)
                .map(|c| {
                    let mut r = vec![b("SREM"), args[1].clone()];
                    r.extend_from_slice(c);
                    (dbi, r)
                })
                .collect()
        }
        "blpop" | "brpop" => match reply {
            Reply::Array(kv) => match kv.first() {
                Some(Reply::Bulk(k)) => {
                    let pop = if name == "blpop" { "LPOP" } else { "RPOP" };
                    one(vec![b(pop), k.clone()])
                }
                _ => Vec::new(),
            },
            _ => Vec::new(),
        },
        "blmove" => one(vec![
            b("LMOVE"),
            args[1].clone(),
            args[2].clone(),
            args[3].clone(),
            args[4].clone(),
        ]),
        "brpoplpush" => one(vec![b("RPOPLPUSH"), args[1].clone(), args[2].clone()]),
        _ => one(args.to_vec()),
    }
}

/// The record for a blocked list command served later: the plain pop or move it amounts to.
pub(crate) fn served(key: &Bytes, kind: &crate::engine::BlockKind) -> Vec<Bytes> {
    use crate::engine::BlockKind;
    let side = |left: bool| if left { b("LEFT") } else { b("RIGHT") };
    match kind {
        BlockKind::Pop { left: true } => vec![b("LPOP"), key.clone()],
        BlockKind::Pop { left: false } => vec![b("RPOP"), key.clone()],
        BlockKind::Move {
            dst,
            from_left,
            to_left,
        } => vec![
            b("LMOVE"),
            key.clone(),
            dst.clone(),
            side(*from_left),
            side(*to_left),
        ],
    }
}

/// Appends the commands that recreate one snapshot entry.
pub fn encode_entry(out: &mut Vec<u8>, e: &SnapEntry) {
    let key = &e.key;
    let chunks = |out: &mut Vec<u8>, cmd: &'static str, items: Vec<Bytes>, per: usize| {
        for c in items.chunks(per * ITEMS_PER_CMD) {
            let mut r = Vec::with_capacity(c.len() + 2);
            r.push(b(cmd));
            r.push(key.clone());
            r.extend_from_slice(c);
            encode(out, &r);
        }
    };
    match &e.entry.value {
        Value::Str(v) => {
            let mut r = vec![b("SET"), key.clone(), v.clone()];
            if let Some(t) = e.entry.expire_at {
                r.push(b("PXAT"));
                r.push(num(t));
            }
            encode(out, &r);
            return;
        }
        Value::List(l) => chunks(out, "RPUSH", l.iter().cloned().collect(), 1),
        Value::Set(s) => chunks(out, "SADD", s.iter().cloned().collect(), 1),
        Value::Hash(h) => chunks(
            out,
            "HSET",
            h.iter().flat_map(|(f, v)| [f.clone(), v.clone()]).collect(),
            2,
        ),
        Value::ZSet(z) => chunks(
            out,
            "ZADD",
            z.order
                .iter()
                .flat_map(|(s, m)| [Bytes::from(fmt_double(s.0)), m.clone()])
                .collect(),
            2,
        ),
    }
    if let Some(t) = e.entry.expire_at {
        encode(out, &[b("PEXPIREAT"), key.clone(), num(t)]);
    }
}

/// Appends `SELECT db`.
pub fn encode_select(out: &mut Vec<u8>, db: usize) {
    encode(out, &[b("SELECT"), Bytes::from(db.to_string())]);
}

/// One record read back from a log file.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A complete command and the bytes it took.
    Command(Vec<Bytes>, usize),
    /// The data ends inside a record (a write cut short by a crash).
    Incomplete,
    /// Bytes that are no record at all.
    Invalid(&'static str),
}

/// Reads one RESP multibulk record from the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rest = buf.get(at..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..end], at + end + 2))
    }
    fn number(b: &[u8]) -> Option<usize> {
        if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(b).ok()?.parse().ok()
    }
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    if buf[0] != b'*' {
        return Parsed::Invalid("expected '*'");
    }
    let Some((head, mut at)) = line(buf, 1) else {
        return if buf.len() > 32 {
            Parsed::Invalid("bad multibulk length")
        } else {
            Parsed::Incomplete
        };
    };
    let Some(n) = number(head).filter(|n| *n > 0) else {
        return Parsed::Invalid("bad multibulk length");
    };
    let mut args = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        match buf.get(at) {
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(_) => return Parsed::Invalid("expected '$'"),
        }
        let Some((len, next)) = line(buf, at + 1) else {
            return if buf.len() - at > 32 {
                Parsed::Invalid("bad bulk length")
            } else {
                Parsed::Incomplete
            };
        };
        let Some(len) = number(len) else {
            return Parsed::Invalid("bad bulk length");
        };
        let end = next + len;
        if buf.len() < end + 2 {
            return Parsed::Incomplete;
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Parsed::Invalid("bulk string not followed by CRLF");
        }
        args.push(Bytes::copy_from_slice(&buf[next..end]));
        at = end + 2;
    }
    Parsed::Command(args, at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_complete_torn_and_invalid() {
        let mut out = Vec::new();
        encode(&mut out, &[b("SET"), b("k"), b("v")]);
        assert_eq!(
            parse(&out),
            Parsed::Command(vec![b("SET"), b("k"), b("v")], out.len())
        );
        for cut in 1..out.len() {
            assert_eq!(parse(&out[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        assert!(matches!(parse(b"+OK\r\n"), Parsed::Invalid(_)));
        assert!(matches!(parse(b"*1\r\n$2\r\nabc\r\n"), Parsed::Invalid(_)));
    }
}
