//! String commands: GET, SET and its variants, counters, APPEND, ranges.

use bytes::{Bytes, BytesMut};

use super::{
    add_float_text, err, get_str, int_arg, is, parse_f64, parse_i64_strict, CmdResult, NOT_FLOAT,
    NOT_INT, SYNTAX,
};
use crate::db::{Entry, Value};
use crate::engine::{Ctx, Engine};
use crate::resp::Reply;

/// `GET key`
pub fn get(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(get_str(&mut e.dbs[ctx.db], &a[0], ctx.now)?
        .cloned()
        .map_or(Reply::Nil, Reply::Bulk))
}

#[derive(Default, Clone, Copy, PartialEq)]
enum Ttl {
    #[default]
    None,
    Keep,
    Persist,
    At(i64),
}

#[derive(Default)]
struct SetOpts {
    nx: bool,
    xx: bool,
    get: bool,
    ttl: Ttl,
}

/// Parses SET/GETEX options with Redis's compatibility rules and its error order:
/// syntax first, then the expire value.
fn parse_set_opts(a: &[Bytes], getex: bool, ctx: &Ctx) -> Result<SetOpts, Reply> {
    let mut o = SetOpts::default();
    // Unit: 0 none, 1 EX, 2 PX, 3 EXAT, 4 PXAT.
    let mut unit = 0u8;
    let mut val: Option<&Bytes> = None;
    let mut keep = false;
    let mut persist = false;
    let mut i = 0;
    while i < a.len() {
        let opt = &a[i];
        let next = a.get(i + 1);
        if !getex && is(opt, "nx") && !o.xx {
            o.nx = true;
        } else if !getex && is(opt, "xx") && !o.nx {
            o.xx = true;
        } else if !getex && is(opt, "get") {
            o.get = true;
        } else if !getex && is(opt, "keepttl") && unit == 0 {
            keep = true;
        } else if getex && is(opt, "persist") && unit == 0 {
            persist = true;
        } else if let (Some(u), Some(n)) = (
            ["ex", "px", "exat", "pxat"].iter().position(|k| is(opt, k)),
            next,
        ) {
            let u = u as u8 + 1;
            if keep || persist || (unit != 0 && unit != u) {
                return Err(err(SYNTAX));
            }
            unit = u;
            val = Some(n);
            i += 1;
        } else {
            return Err(err(SYNTAX));
        }
        i += 1;
    }
    if keep {
        o.ttl = Ttl::Keep;
    }
    if persist {
        o.ttl = Ttl::Persist;
    }
    if let Some(v) = val {
        let name = if getex { "getex" } else { "set" };
        let n = parse_i64_strict(v).ok_or_else(|| err(NOT_INT))?;
        o.ttl = Ttl::At(deadline(n, unit, ctx.now, name)?);
    }
    Ok(o)
}

/// Converts an expire argument to an absolute ms deadline with Redis's overflow checks.
fn deadline(n: i64, unit: u8, now: u64, name: &str) -> Result<i64, Reply> {
    let invalid = || Reply::Error(format!("ERR invalid expire time in '{name}' command"));
    if n <= 0 || ((unit == 1 || unit == 3) && n > i64::MAX / 1000) {
        return Err(invalid());
    }
    let ms = if unit == 1 || unit == 3 { n * 1000 } else { n };
    if unit <= 2 {
        ms.checked_add(now as i64).ok_or_else(invalid)
    } else {
        Ok(ms)
    }
}

fn set_with(
    e: &mut Engine,
    ctx: &mut Ctx,
    key: &Bytes,
    val: &Bytes,
    o: &SetOpts,
) -> Result<Option<Reply>, Reply> {
    let db = &mut e.dbs[ctx.db];
    let old = db.get(key, ctx.now);
    let old_val = match old {
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => Some(s.clone()),
        Some(_) if o.get => return Err(err(super::WRONGTYPE)),
        _ => None,
    };
    let exists = old.is_some();
    let old_ttl = old.and_then(|e| e.expire_at);
    if (o.nx && exists) || (o.xx && !exists) {
        return Ok(Some(if o.get {
            old_val.map_or(Reply::Nil, Reply::Bulk)
        } else {
            Reply::Nil
        }));
    }
    let expire = match o.ttl {
        Ttl::Keep => old_ttl,
        Ttl::At(t) => Some(t.max(0) as u64),
        _ => None,
    };
    db.insert(key.clone(), Value::Str(val.clone()), expire);
    if expire.is_some_and(|t| t <= ctx.now) {
        db.remove(key);
    }
    e.touch(ctx.db, key);
    Ok(Some(if o.get {
        old_val.map_or(Reply::Nil, Reply::Bulk)
    } else {
        Reply::OK
    }))
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]`
pub fn set(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let o = parse_set_opts(&a[2..], false, ctx)?;
    Ok(set_with(e, ctx, &a[0], &a[1], &o)?.unwrap_or(Reply::Nil))
}

fn setex_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], unit: u8, name: &str) -> CmdResult {
    let n = int_arg(&a[1])?;
    let t = deadline(n, unit, ctx.now, name)?;
    let o = SetOpts {
        ttl: Ttl::At(t),
        ..SetOpts::default()
    };
    set_with(e, ctx, &a[0], &a[2], &o)?;
    Ok(Reply::OK)
}

/// `SETEX key seconds value`
pub fn setex(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    setex_generic(e, ctx, a, 1, "setex")
}

/// `PSETEX key ms value`
pub fn psetex(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    setex_generic(e, ctx, a, 2, "psetex")
}

/// `SETNX key value`
pub fn setnx(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let o = SetOpts {
        nx: true,
        ..SetOpts::default()
    };
    Ok(match set_with(e, ctx, &a[0], &a[1], &o)? {
        Some(Reply::Simple(_)) => Reply::Int(1),
        _ => Reply::Int(0),
    })
}

/// `GETSET key value`: SET with GET, and like SET it drops the key's time to live.
pub fn getset(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let o = SetOpts {
        get: true,
        ..SetOpts::default()
    };
    Ok(set_with(e, ctx, &a[0], &a[1], &o)?.unwrap_or(Reply::Nil))
}

/// `GETDEL key`
pub fn getdel(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let v = get_str(&mut e.dbs[ctx.db], &a[0], ctx.now)?.cloned();
    if v.is_some() {
        e.dbs[ctx.db].remove(&a[0]);
        e.touch(ctx.db, &a[0]);
    }
    Ok(v.map_or(Reply::Nil, Reply::Bulk))
}

/// `GETEX key [EX|PX|EXAT|PXAT n | PERSIST]`
pub fn getex(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let o = parse_set_opts(&a[1..], true, ctx)?;
    let key = &a[0];
    let Some(v) = get_str(&mut e.dbs[ctx.db], key, ctx.now)?.cloned() else {
        return Ok(Reply::Nil);
    };
    let db = &mut e.dbs[ctx.db];
    match o.ttl {
        Ttl::At(t) if t <= ctx.now as i64 => {
            db.remove(key);
            e.touch(ctx.db, key);
        }
        Ttl::At(t) => {
            db.set_expire(key, Some(t as u64));
            e.touch(ctx.db, key);
        }
        Ttl::Persist if db.get(key, ctx.now).is_some_and(|x| x.expire_at.is_some()) => {
            db.set_expire(key, None);
            e.touch(ctx.db, key);
        }
        _ => {}
    }
    Ok(Reply::Bulk(v))
}

/// `MGET key [key ...]`
pub fn mget(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let db = &mut e.dbs[ctx.db];
    Ok(Reply::Array(
        a.iter()
            .map(|k| match db.get(k, ctx.now) {
                Some(Entry {
                    value: Value::Str(s),
                    ..
                }) => Reply::Bulk(s.clone()),
                _ => Reply::Nil,
            })
            .collect(),
    ))
}

fn mset_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], nx: bool, name: &str) -> CmdResult {
    if a.len() % 2 == 1 {
        return Err(Reply::Error(format!(
            "ERR wrong number of arguments for '{name}' command"
        )));
    }
    if nx {
        let db = &mut e.dbs[ctx.db];
        if a.chunks(2).any(|kv| db.get(&kv[0], ctx.now).is_some()) {
            return Ok(Reply::Int(0));
        }
    }
    for kv in a.chunks(2) {
        e.dbs[ctx.db].insert(kv[0].clone(), Value::Str(kv[1].clone()), None);
        e.touch(ctx.db, &kv[0]);
    }
    Ok(if nx { Reply::Int(1) } else { Reply::OK })
}

/// `MSET key value [key value ...]`
pub fn mset(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    mset_generic(e, ctx, a, false, "mset")
}

/// `MSETNX key value [key value ...]`
pub fn msetnx(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    mset_generic(e, ctx, a, true, "msetnx")
}

fn incr_generic(e: &mut Engine, ctx: &mut Ctx, key: &Bytes, by: i64) -> CmdResult {
    let db = &mut e.dbs[ctx.db];
    let cur = match get_str(db, key, ctx.now)? {
        Some(s) => parse_i64_strict(s).ok_or_else(|| err(NOT_INT))?,
        None => 0,
    };
    let n = cur
        .checked_add(by)
        .ok_or_else(|| err("ERR increment or decrement would overflow"))?;
    let text = Bytes::from(n.to_string());
    match db.get_mut(key, ctx.now) {
        Some(entry) => entry.value = Value::Str(text),
        None => db.insert(key.clone(), Value::Str(text), None),
    }
    e.touch(ctx.db, key);
    Ok(Reply::Int(n))
}

/// `INCR key`
pub fn incr(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    incr_generic(e, ctx, &a[0], 1)
}

/// `DECR key`
pub fn decr(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    incr_generic(e, ctx, &a[0], -1)
}

/// `INCRBY key n`
pub fn incrby(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let by = int_arg(&a[1])?;
    incr_generic(e, ctx, &a[0], by)
}

/// `DECRBY key n`
pub fn decrby(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let by = int_arg(&a[1])?;
    if by == i64::MIN {
        return Err(err("ERR decrement would overflow"));
    }
    incr_generic(e, ctx, &a[0], -by)
}

/// `INCRBYFLOAT key increment`
pub fn incrbyfloat(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let key = &a[0];
    let db = &mut e.dbs[ctx.db];
    let cur = match get_str(db, key, ctx.now)? {
        Some(s) => {
            parse_f64(s).ok_or_else(|| err(NOT_FLOAT))?;
            s.clone()
        }
        None => Bytes::from_static(b"0"),
    };
    parse_f64(&a[1]).ok_or_else(|| err(NOT_FLOAT))?;
    let text = add_float_text(&cur, &a[1]).ok_or_else(|| err(NOT_FLOAT))?;
    if text.is_empty() {
        return Err(err("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(text);
    match db.get_mut(key, ctx.now) {
        Some(entry) => entry.value = Value::Str(text.clone()),
        None => db.insert(key.clone(), Value::Str(text.clone()), None),
    }
    e.touch(ctx.db, key);
    Ok(Reply::Bulk(text))
}

/// `APPEND key value`
pub fn append(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let key = &a[0];
    let max = e.config.max_bulk_len;
    let db = &mut e.dbs[ctx.db];
    let cur = get_str(db, key, ctx.now)?.cloned();
    let len = match cur {
        Some(s) => {
            if s.len() + a[1].len() > max {
                return Err(err(
                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                ));
            }
            let mut b = BytesMut::with_capacity(s.len() + a[1].len());
            b.extend_from_slice(&s);
            b.extend_from_slice(&a[1]);
            let len = b.len();
            if let Some(entry) = db.get_mut(key, ctx.now) {
                entry.value = Value::Str(b.freeze());
            }
            len
        }
        None => {
            db.insert(key.clone(), Value::Str(a[1].clone()), None);
            a[1].len()
        }
    };
    e.touch(ctx.db, key);
    Ok(Reply::Int(len as i64))
}

/// `STRLEN key`
pub fn strlen(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        get_str(&mut e.dbs[ctx.db], &a[0], ctx.now)?.map_or(0, |s| s.len() as i64),
    ))
}

/// `GETRANGE key start end`
pub fn getrange(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let mut start = int_arg(&a[1])?;
    let mut end = int_arg(&a[2])?;
    let Some(s) = get_str(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::bulk(""));
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::bulk(""));
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(Reply::bulk(""));
    }
    Ok(Reply::Bulk(s.slice(start as usize..=end as usize)))
}

/// `SETRANGE key offset value`
pub fn setrange(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let key = &a[0];
    let off = int_arg(&a[1])?;
    if off < 0 {
        return Err(err("ERR offset is out of range"));
    }
    let max = e.config.max_bulk_len;
    let db = &mut e.dbs[ctx.db];
    let cur = get_str(db, key, ctx.now)?.cloned();
    let v = &a[2];
    let off = off as usize;
    if v.is_empty() {
        return Ok(Reply::Int(cur.map_or(0, |c| c.len() as i64)));
    }
    if off.saturating_add(v.len()) > max {
        return Err(err(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let mut b = BytesMut::from(cur.as_deref().unwrap_or(b""));
    if b.len() < off + v.len() {
        b.resize(off + v.len(), 0);
    }
    b[off..off + v.len()].copy_from_slice(v);
    let len = b.len();
    match db.get_mut(key, ctx.now) {
        Some(entry) => entry.value = Value::Str(b.freeze()),
        None => db.insert(key.clone(), Value::Str(b.freeze()), None),
    }
    e.touch(ctx.db, key);
    Ok(Reply::Int(len as i64))
}
