//! Command implementations and the command table.
//!
//! Each submodule implements one family of commands as plain functions over the
//! [`Engine`]. Handlers parse their arguments strictly (Redis's rules,
//! Redis's error texts), change the keyspace, tell the engine which keys they modified, and
//! return a reply. They never block, sleep or do I/O: a blocking command that must wait
//! describes what it waits for in [`Ctx::block`] and the engine parks the client.

use bytes::Bytes;

use crate::db::{Db, Entry, Value, ZSet};
use crate::engine::{Ctx, Engine};
use crate::resp::Reply;

pub mod hash;
pub mod keys;
pub mod list;
pub mod longdouble;
pub mod script;
pub mod server;
pub mod set;
pub mod string;
pub mod zset;

/// What a handler returns: the reply, or an error reply (`?` friendly).
pub type CmdResult = Result<Reply, Reply>;

/// A command implementation.
pub type Handler = fn(&mut Engine, &mut Ctx, &[Bytes]) -> CmdResult;

/// The command changes data (MULTI bookkeeping, COMMAND flags).
pub const WRITE: u8 = 1;
/// The command only reads data.
pub const READONLY: u8 = 2;
/// The command may block the client.
pub const BLOCKING: u8 = 4;
/// Connection or server command allowed before AUTH.
pub const NOAUTH_OK: u8 = 8;
/// The command may grow memory: refused above `maxmemory` when nothing can be evicted.
pub const DENYOOM: u8 = 16;
/// Refused inside scripts (Redis's `noscript`).
pub const NOSCRIPT: u8 = 32;

/// One row of the command table.
#[derive(Debug)]
pub struct Spec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis arity: exact count when positive, minimum count when negative (name included).
    pub arity: i32,
    /// Flag bits.
    pub flags: u8,
    /// First key position (0 when the command has no keys).
    pub first: i32,
    /// Last key position (-1 for the last argument).
    pub last: i32,
    /// Step between keys.
    pub step: i32,
    /// Implementation.
    pub handler: Handler,
}

macro_rules! table {
    ($( $name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $h:path; )*) => {
        /// Every command the store knows.
        pub static COMMANDS: &[Spec] = &[
            $( Spec { name: $name, arity: $arity, flags: $flags, first: $first, last: $last, step: $step, handler: $h }, )*
        ];
    };
}

table! {
    "ping", -1, 0, 0, 0, 0, server::ping;
    "echo", 2, 0, 0, 0, 0, server::echo;
    "auth", -2, NOAUTH_OK | NOSCRIPT, 0, 0, 0, server::auth;
    "select", 2, 0, 0, 0, 0, server::select;
    "quit", -1, NOAUTH_OK | NOSCRIPT, 0, 0, 0, server::quit;
    "client", -2, NOSCRIPT, 0, 0, 0, server::client;
    "info", -1, 0, 0, 0, 0, server::info;
    "command", -1, 0, 0, 0, 0, server::command;
    "hello", -1, NOAUTH_OK | NOSCRIPT, 0, 0, 0, server::hello;
    "dbsize", 1, READONLY, 0, 0, 0, server::dbsize;
    "flushdb", -1, WRITE, 0, 0, 0, server::flushdb;
    "flushall", -1, WRITE, 0, 0, 0, server::flushall;
    "time", 1, 0, 0, 0, 0, server::time;
    "bgrewriteaof", 1, NOSCRIPT, 0, 0, 0, server::bgrewriteaof;
    "multi", 1, NOSCRIPT, 0, 0, 0, server::multi;
    "exec", 1, NOSCRIPT, 0, 0, 0, server::exec;
    "discard", 1, NOSCRIPT, 0, 0, 0, server::discard;
    "watch", -2, NOSCRIPT, 1, -1, 1, server::watch;
    "unwatch", 1, NOSCRIPT, 0, 0, 0, server::unwatch;
    "eval", -3, NOSCRIPT, 0, 0, 0, script::eval;
    "evalsha", -3, NOSCRIPT, 0, 0, 0, script::evalsha;
    "eval_ro", -3, NOSCRIPT | READONLY, 0, 0, 0, script::eval_ro;
    "evalsha_ro", -3, NOSCRIPT | READONLY, 0, 0, 0, script::evalsha_ro;
    "script", -2, NOSCRIPT, 0, 0, 0, script::script;
    "get", 2, READONLY, 1, 1, 1, string::get;
    "set", -3, WRITE | DENYOOM, 1, 1, 1, string::set;
    "setex", 4, WRITE | DENYOOM, 1, 1, 1, string::setex;
    "psetex", 4, WRITE | DENYOOM, 1, 1, 1, string::psetex;
    "setnx", 3, WRITE | DENYOOM, 1, 1, 1, string::setnx;
    "getset", 3, WRITE | DENYOOM, 1, 1, 1, string::getset;
    "getdel", 2, WRITE, 1, 1, 1, string::getdel;
    "getex", -2, WRITE, 1, 1, 1, string::getex;
    "mget", -2, READONLY, 1, -1, 1, string::mget;
    "mset", -3, WRITE | DENYOOM, 1, -1, 2, string::mset;
    "msetnx", -3, WRITE | DENYOOM, 1, -1, 2, string::msetnx;
    "incr", 2, WRITE | DENYOOM, 1, 1, 1, string::incr;
    "decr", 2, WRITE | DENYOOM, 1, 1, 1, string::decr;
    "incrby", 3, WRITE | DENYOOM, 1, 1, 1, string::incrby;
    "decrby", 3, WRITE | DENYOOM, 1, 1, 1, string::decrby;
    "incrbyfloat", 3, WRITE | DENYOOM, 1, 1, 1, string::incrbyfloat;
    "append", 3, WRITE | DENYOOM, 1, 1, 1, string::append;
    "strlen", 2, READONLY, 1, 1, 1, string::strlen;
    "getrange", 4, READONLY, 1, 1, 1, string::getrange;
    "setrange", 4, WRITE | DENYOOM, 1, 1, 1, string::setrange;
    "del", -2, WRITE, 1, -1, 1, keys::del;
    "unlink", -2, WRITE, 1, -1, 1, keys::del;
    "exists", -2, READONLY, 1, -1, 1, keys::exists;
    "expire", -3, WRITE, 1, 1, 1, keys::expire;
    "pexpire", -3, WRITE, 1, 1, 1, keys::pexpire;
    "expireat", -3, WRITE, 1, 1, 1, keys::expireat;
    "pexpireat", -3, WRITE, 1, 1, 1, keys::pexpireat;
    "ttl", 2, READONLY, 1, 1, 1, keys::ttl;
    "pttl", 2, READONLY, 1, 1, 1, keys::pttl;
    "persist", 2, WRITE, 1, 1, 1, keys::persist;
    "type", 2, READONLY, 1, 1, 1, keys::type_;
    "keys", 2, READONLY, 0, 0, 0, keys::keys;
    "scan", -2, READONLY, 0, 0, 0, keys::scan;
    "rename", 3, WRITE, 1, 2, 1, keys::rename;
    "renamenx", 3, WRITE, 1, 2, 1, keys::renamenx;
    "randomkey", 1, READONLY, 0, 0, 0, keys::randomkey;
    "hset", -4, WRITE | DENYOOM, 1, 1, 1, hash::hset;
    "hmset", -4, WRITE | DENYOOM, 1, 1, 1, hash::hmset;
    "hsetnx", 4, WRITE | DENYOOM, 1, 1, 1, hash::hsetnx;
    "hget", 3, READONLY, 1, 1, 1, hash::hget;
    "hmget", -3, READONLY, 1, 1, 1, hash::hmget;
    "hgetall", 2, READONLY, 1, 1, 1, hash::hgetall;
    "hdel", -3, WRITE, 1, 1, 1, hash::hdel;
    "hexists", 3, READONLY, 1, 1, 1, hash::hexists;
    "hlen", 2, READONLY, 1, 1, 1, hash::hlen;
    "hkeys", 2, READONLY, 1, 1, 1, hash::hkeys;
    "hvals", 2, READONLY, 1, 1, 1, hash::hvals;
    "hincrby", 4, WRITE | DENYOOM, 1, 1, 1, hash::hincrby;
    "hincrbyfloat", 4, WRITE | DENYOOM, 1, 1, 1, hash::hincrbyfloat;
    "hstrlen", 3, READONLY, 1, 1, 1, hash::hstrlen;
    "hscan", -3, READONLY, 1, 1, 1, hash::hscan;
    "lpush", -3, WRITE | DENYOOM, 1, 1, 1, list::lpush;
    "rpush", -3, WRITE | DENYOOM, 1, 1, 1, list::rpush;
    "lpushx", -3, WRITE | DENYOOM, 1, 1, 1, list::lpushx;
    "rpushx", -3, WRITE | DENYOOM, 1, 1, 1, list::rpushx;
    "lpop", -2, WRITE, 1, 1, 1, list::lpop;
    "rpop", -2, WRITE, 1, 1, 1, list::rpop;
    "llen", 2, READONLY, 1, 1, 1, list::llen;
    "lrange", 4, READONLY, 1, 1, 1, list::lrange;
    "lindex", 3, READONLY, 1, 1, 1, list::lindex;
    "lset", 4, WRITE | DENYOOM, 1, 1, 1, list::lset;
    "lrem", 4, WRITE, 1, 1, 1, list::lrem;
    "ltrim", 4, WRITE, 1, 1, 1, list::ltrim;
    "linsert", 5, WRITE | DENYOOM, 1, 1, 1, list::linsert;
    "lpos", -3, READONLY, 1, 1, 1, list::lpos;
    "lmove", 5, WRITE | DENYOOM, 1, 2, 1, list::lmove;
    "rpoplpush", 3, WRITE | DENYOOM, 1, 2, 1, list::rpoplpush;
    "blpop", -3, WRITE | BLOCKING | NOSCRIPT, 1, -2, 1, list::blpop;
    "brpop", -3, WRITE | BLOCKING | NOSCRIPT, 1, -2, 1, list::brpop;
    "blmove", 6, WRITE | BLOCKING | NOSCRIPT | DENYOOM, 1, 2, 1, list::blmove;
    "brpoplpush", 4, WRITE | BLOCKING | NOSCRIPT | DENYOOM, 1, 2, 1, list::brpoplpush;
    "sadd", -3, WRITE | DENYOOM, 1, 1, 1, set::sadd;
    "srem", -3, WRITE, 1, 1, 1, set::srem;
    "smembers", 2, READONLY, 1, 1, 1, set::smembers;
    "sismember", 3, READONLY, 1, 1, 1, set::sismember;
    "smismember", -3, READONLY, 1, 1, 1, set::smismember;
    "scard", 2, READONLY, 1, 1, 1, set::scard;
    "spop", -2, WRITE, 1, 1, 1, set::spop;
    "srandmember", -2, READONLY, 1, 1, 1, set::srandmember;
    "smove", 4, WRITE, 1, 2, 1, set::smove;
    "sinter", -2, READONLY, 1, -1, 1, set::sinter;
    "sinterstore", -3, WRITE | DENYOOM, 1, -1, 1, set::sinterstore;
    "sunion", -2, READONLY, 1, -1, 1, set::sunion;
    "sunionstore", -3, WRITE | DENYOOM, 1, -1, 1, set::sunionstore;
    "sdiff", -2, READONLY, 1, -1, 1, set::sdiff;
    "sdiffstore", -3, WRITE | DENYOOM, 1, -1, 1, set::sdiffstore;
    "sscan", -3, READONLY, 1, 1, 1, set::sscan;
    "zadd", -4, WRITE | DENYOOM, 1, 1, 1, zset::zadd;
    "zrem", -3, WRITE, 1, 1, 1, zset::zrem;
    "zscore", 3, READONLY, 1, 1, 1, zset::zscore;
    "zincrby", 4, WRITE | DENYOOM, 1, 1, 1, zset::zincrby;
    "zcard", 2, READONLY, 1, 1, 1, zset::zcard;
    "zcount", 4, READONLY, 1, 1, 1, zset::zcount;
    "zrange", -4, READONLY, 1, 1, 1, zset::zrange;
    "zrevrange", -4, READONLY, 1, 1, 1, zset::zrevrange;
    "zrangebyscore", -4, READONLY, 1, 1, 1, zset::zrangebyscore;
    "zrevrangebyscore", -4, READONLY, 1, 1, 1, zset::zrevrangebyscore;
    "zrank", 3, READONLY, 1, 1, 1, zset::zrank;
    "zrevrank", 3, READONLY, 1, 1, 1, zset::zrevrank;
    "zremrangebyscore", 4, WRITE, 1, 1, 1, zset::zremrangebyscore;
    "zremrangebyrank", 4, WRITE, 1, 1, 1, zset::zremrangebyrank;
    "zpopmin", -2, WRITE, 1, 1, 1, zset::zpopmin;
    "zpopmax", -2, WRITE, 1, 1, 1, zset::zpopmax;
    "zscan", -3, READONLY, 1, 1, 1, zset::zscan;
    "zunionstore", -4, WRITE | DENYOOM, 1, 1, 1, zset::zunionstore;
    "zinterstore", -4, WRITE | DENYOOM, 1, 1, 1, zset::zinterstore;
    "zunion", -3, READONLY, 0, 0, 0, zset::zunion;
    "zinter", -3, READONLY, 0, 0, 0, zset::zinter;
}

// Redis's shared error replies, word for word.
/// Wrong type of value at the key.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Generic syntax error.
pub const SYNTAX: &str = "ERR syntax error";
/// Not a strict 64-bit integer.
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
/// Not a float.
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
/// Negative count where a positive one is required.
pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

/// A pop's count argument (LPOP, SPOP, ZPOPMIN...): an integer of at least 0, else Redis's
/// "must be positive" error.
pub fn count_arg(b: &[u8]) -> Result<usize, Reply> {
    match int_arg(b) {
        Ok(n) if n >= 0 => Ok(n as usize),
        _ => Err(err(NOT_POSITIVE)),
    }
}

/// Error reply helper.
pub fn err(msg: &str) -> Reply {
    Reply::Error(msg.to_owned())
}

/// Redis's `string2ll`: optional '-', no '+', no leading zeros, no `-0`, fits in i64.
pub fn parse_i64_strict(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = if b[0] == b'-' {
        (true, &b[1..])
    } else {
        (false, b)
    };
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for d in digits {
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

/// Parses a strict integer argument or returns Redis's error reply.
pub fn int_arg(b: &[u8]) -> Result<i64, Reply> {
    parse_i64_strict(b).ok_or_else(|| err(NOT_INT))
}

/// Parses a float the way `strtod` does for Redis (no spaces, no trailing bytes, no NaN).
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    // Rust accepts "infinity" and "nan" spellings strtod also accepts; NaN is refused below.
    if !(body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || body == "inf"
        || body == "infinity")
    {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    if v.is_nan() {
        return None;
    }
    // strtod reports overflow and underflow as ERANGE, which Redis refuses.
    let mantissa = body.split('e').next().unwrap_or("");
    if (v.is_infinite() && !body.starts_with("inf"))
        || (v == 0.0 && mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c)))
    {
        return None;
    }
    Some(v)
}

/// Parses a float argument or returns `ERR value is not a valid float`.
pub fn float_arg(b: &[u8]) -> Result<f64, Reply> {
    parse_f64(b).ok_or_else(|| err(NOT_FLOAT))
}

/// Formats a double like C's `%.17g` (Redis 7.0's score replies), with `inf`/`-inf`.
pub fn fmt_double(d: f64) -> String {
    fmt_g(d, 17)
}

/// Formats a double like C's `%.<precision>g` (glibc spellings `inf`, `-inf`, `nan`, `-nan`).
pub fn fmt_g(d: f64, precision: usize) -> String {
    let precision = precision.clamp(1, 40);
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let s = format!("{:.*e}", precision - 1, d);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if neg { "-" } else { "" };
    if exp < -4 || exp >= precision as i32 {
        let frac = digits[1..].trim_end_matches('0');
        let m = if frac.is_empty() {
            digits[..1].to_owned()
        } else {
            format!("{}.{}", &digits[..1], frac)
        };
        let es = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{es}{:02}", exp.abs())
    } else if exp >= 0 {
        let p = (exp + 1) as usize;
        let int = &digits[..p];
        let frac = digits[p..].trim_end_matches('0');
        if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("{sign}0.{zeros}{}", digits.trim_end_matches('0'))
    }
}

/// Reply for a double (bulk string, `%.17g`).
pub fn double_reply(d: f64) -> Reply {
    Reply::Bulk(Bytes::from(fmt_double(d)))
}

/// Adds two float texts the way INCRBYFLOAT does and returns the stored text; an empty
/// text means the sum is not finite.
///
/// Redis sums in x87 `long double` and prints with `%.17Lf`, trimmed; [`longdouble`]
/// reproduces that for decimal texts. Other spellings (`inf`, huge exponents) use `f64`.
pub fn add_float_text(cur: &[u8], incr: &[u8]) -> Option<String> {
    let a = parse_f64(cur)?;
    let b = parse_f64(incr)?;
    let sum = a + b;
    if !sum.is_finite() {
        return Some(String::new());
    }
    if let Some(s) = longdouble::add_texts(cur, incr) {
        return Some(s);
    }
    Some(format!("{sum}"))
}

/// Case-insensitive ASCII comparison of an argument with a keyword.
pub fn is(arg: &[u8], kw: &str) -> bool {
    arg.eq_ignore_ascii_case(kw.as_bytes())
}

/// Typed access helpers: `Ok(None)` for a missing key, WRONGTYPE for another type.
macro_rules! typed {
    ($get:ident, $get_mut:ident, $variant:ident, $t:ty) => {
        /// Reads the value at `key` if it has this type.
        pub fn $get<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Result<Option<&'a $t>, Reply> {
            match db.get(key, now) {
                None => Ok(None),
                Some(Entry {
                    value: Value::$variant(v),
                    ..
                }) => Ok(Some(v)),
                Some(_) => Err(err(WRONGTYPE)),
            }
        }

        /// Mutable access to the value at `key` if it has this type.
        pub fn $get_mut<'a>(
            db: &'a mut Db,
            key: &[u8],
            now: u64,
        ) -> Result<Option<&'a mut $t>, Reply> {
            match db.get_mut(key, now) {
                None => Ok(None),
                Some(Entry {
                    value: Value::$variant(v),
                    ..
                }) => Ok(Some(v)),
                Some(_) => Err(err(WRONGTYPE)),
            }
        }
    };
}

typed!(get_str, get_str_mut, Str, Bytes);
typed!(
    get_list,
    get_list_mut,
    List,
    std::collections::VecDeque<Bytes>
);
typed!(
    get_hash,
    get_hash_mut,
    Hash,
    std::collections::HashMap<Bytes, Bytes>
);
typed!(get_set, get_set_mut, Set, std::collections::HashSet<Bytes>);
typed!(get_zset, get_zset_mut, ZSet, ZSet);

/// Bulk array reply from byte strings.
pub fn bulk_array<I: IntoIterator<Item = Bytes>>(items: I) -> Reply {
    Reply::Array(items.into_iter().map(Reply::Bulk).collect())
}

/// Parses `SCAN`-style options after the cursor: MATCH, COUNT and (for SCAN) TYPE.
pub struct ScanOpts {
    /// Glob pattern.
    pub pattern: Option<Bytes>,
    /// Work hint.
    pub count: usize,
    /// Type filter (SCAN only).
    pub type_: Option<Bytes>,
}

/// Parses a SCAN cursor (unsigned decimal).
pub fn parse_cursor(b: &[u8]) -> Result<u64, Reply> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|_| !b.starts_with(b"+"))
        .ok_or_else(|| err("ERR invalid cursor"))
}

/// Parses the cursor and options of SCAN, HSCAN, SSCAN.
pub fn parse_scan(args: &[Bytes], allow_type: bool) -> Result<(u64, ScanOpts), Reply> {
    let cursor = parse_cursor(&args[0])?;
    let mut o = ScanOpts {
        pattern: None,
        count: 10,
        type_: None,
    };
    let mut i = 1;
    while i < args.len() {
        let has_next = i + 1 < args.len();
        if is(&args[i], "count") && has_next {
            let n = int_arg(&args[i + 1])?;
            if n < 1 {
                return Err(err(SYNTAX));
            }
            o.count = n as usize;
        } else if is(&args[i], "match") && has_next {
            o.pattern = Some(args[i + 1].clone());
        } else if allow_type && is(&args[i], "type") && has_next {
            o.type_ = Some(args[i + 1].clone());
        } else {
            return Err(err(SYNTAX));
        }
        i += 2;
    }
    Ok((cursor, o))
}

/// One page of a hash-ordered scan over `items`: returns the next cursor and the page.
///
/// Elements are visited in order of a fixed hash, and the cursor is the next hash to visit,
/// so an element present for the whole iteration is returned exactly once whatever happens
/// to the container in between. A page costs one pass over the container. Small containers
/// are returned whole with cursor 0, as Redis does for its compact encodings.
pub fn scan_page<T>(
    items: impl Iterator<Item = T>,
    cursor: u64,
    count: usize,
    key_of: impl Fn(&T) -> &[u8],
    whole_below: usize,
) -> (u64, Vec<T>) {
    let mut hashed: Vec<(u64, T)> = items
        .map(|t| (crate::db::scan_hash(key_of(&t)), t))
        .collect();
    if hashed.len() <= whole_below && cursor == 0 {
        return (0, hashed.into_iter().map(|(_, t)| t).collect());
    }
    hashed.retain(|(h, _)| *h >= cursor);
    hashed.sort_unstable_by_key(|(h, _)| *h);
    if hashed.len() <= count {
        return (0, hashed.into_iter().map(|(_, t)| t).collect());
    }
    let last = hashed[count - 1].0;
    let mut end = count;
    while end < hashed.len() && hashed[end].0 == last {
        end += 1;
    }
    let next = if end == hashed.len() {
        0
    } else {
        hashed[end].0
    };
    (next, hashed.into_iter().take(end).map(|(_, t)| t).collect())
}

/// Normalizes a Redis range (negative indexes from the end) to `start..=end` within `len`.
pub fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64_strict(b"0"), Some(0));
        assert_eq!(parse_i64_strict(b"-12"), Some(-12));
        assert_eq!(parse_i64_strict(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"007"[..],
            b"+5",
            b"-0",
            b"",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"-",
        ] {
            assert_eq!(parse_i64_strict(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn double_formatting() {
        assert_eq!(fmt_double(1.0), "1");
        assert_eq!(fmt_double(1.1), "1.1000000000000001");
        assert_eq!(fmt_double(-2.5), "-2.5");
        assert_eq!(fmt_double(1e20), "1e+20");
        assert_eq!(fmt_double(0.0001), "0.0001");
        assert_eq!(fmt_double(0.00001), "1.0000000000000001e-05");
        assert_eq!(fmt_double(f64::INFINITY), "inf");
        assert_eq!(fmt_double(123456789.0), "123456789");
        assert_eq!(fmt_g(0.1, 14), "0.1");
        assert_eq!(fmt_g(1e15, 14), "1e+15");
        assert_eq!(fmt_g(123456789012345.0, 14), "1.2345678901234e+14");
        assert_eq!(fmt_g(3.0, 14), "3");
        assert_eq!(fmt_g(-f64::NAN, 17), "-nan");
    }

    #[test]
    fn incrbyfloat_text() {
        assert_eq!(add_float_text(b"3", b"1.1").unwrap(), "4.1");
        assert_eq!(add_float_text(b"0.1", b"0.2").unwrap(), "0.3");
        assert_eq!(add_float_text(b"1.5", b"-1.5").unwrap(), "0");
        assert_eq!(add_float_text(b"10.5", b"0.5").unwrap(), "11");
        assert_eq!(add_float_text(b"1e3", b"1").unwrap(), "1001");
        assert_eq!(add_float_text(b"-0.25", b"0.1").unwrap(), "-0.15");
    }

    #[test]
    fn ranges() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(5, 10, 3), None);
    }
}
