//! Keyspace commands: DEL, EXISTS, the EXPIRE family, TTL, TYPE, KEYS, SCAN, RENAME.

use bytes::Bytes;

use super::{err, int_arg, is, parse_scan, scan_page, CmdResult};
use crate::db::glob_match;
use crate::engine::{Ctx, Engine};
use crate::resp::Reply;

/// `DEL / UNLINK key [key ...]`
pub fn del(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for k in a {
        if e.dbs[ctx.db].get(k, ctx.now).is_some() {
            e.dbs[ctx.db].remove(k);
            e.touch(ctx.db, k);
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

/// `EXISTS key [key ...] (a key named twice counts twice)`
pub fn exists(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let db = &mut e.dbs[ctx.db];
    Ok(Reply::Int(
        a.iter().filter(|k| db.get(k, ctx.now).is_some()).count() as i64,
    ))
}

const NX: u8 = 1;
const XX: u8 = 2;
const GT: u8 = 4;
const LT: u8 = 8;

fn expire_generic(
    e: &mut Engine,
    ctx: &mut Ctx,
    a: &[Bytes],
    seconds: bool,
    absolute: bool,
    name: &str,
) -> CmdResult {
    let mut flags = 0u8;
    for opt in &a[2..] {
        flags |= if is(opt, "nx") {
            NX
        } else if is(opt, "xx") {
            XX
        } else if is(opt, "gt") {
            GT
        } else if is(opt, "lt") {
            LT
        } else {
            return Err(Reply::Error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        };
    }
    if flags & NX != 0 && flags & (XX | GT | LT) != 0 {
        return Err(err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if flags & GT != 0 && flags & LT != 0 {
        return Err(err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let mut when = int_arg(&a[1])?;
    let invalid = || Reply::Error(format!("ERR invalid expire time in '{name}' command"));
    if seconds {
        when = when.checked_mul(1000).ok_or_else(invalid)?;
    }
    if !absolute {
        when = when.checked_add(ctx.now as i64).ok_or_else(invalid)?;
    }
    let key = &a[0];
    let db = &mut e.dbs[ctx.db];
    let Some(entry) = db.get(key, ctx.now) else {
        return Ok(Reply::Int(0));
    };
    let cur = entry.expire_at.map(|t| t as i64);
    let refused = (flags & NX != 0 && cur.is_some())
        || (flags & XX != 0 && cur.is_none())
        || (flags & GT != 0 && cur.is_none_or(|c| when <= c))
        || (flags & LT != 0 && cur.is_some_and(|c| when >= c));
    if refused {
        return Ok(Reply::Int(0));
    }
    if when <= ctx.now as i64 {
        db.remove(key);
    } else {
        db.set_expire(key, Some(when as u64));
    }
    e.touch(ctx.db, key);
    Ok(Reply::Int(1))
}

/// `EXPIRE key seconds [NX|XX|GT|LT]`
pub fn expire(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    expire_generic(e, ctx, a, true, false, "expire")
}

/// `PEXPIRE key ms [NX|XX|GT|LT]`
pub fn pexpire(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    expire_generic(e, ctx, a, false, false, "pexpire")
}

/// `EXPIREAT key unix-seconds [NX|XX|GT|LT]`
pub fn expireat(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    expire_generic(e, ctx, a, true, true, "expireat")
}

/// `PEXPIREAT key unix-ms [NX|XX|GT|LT]`
pub fn pexpireat(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    expire_generic(e, ctx, a, false, true, "pexpireat")
}

fn ttl_generic(e: &mut Engine, ctx: &mut Ctx, key: &[u8], ms: bool) -> CmdResult {
    let Some(entry) = e.dbs[ctx.db].get(key, ctx.now) else {
        return Ok(Reply::Int(-2));
    };
    let Some(t) = entry.expire_at else {
        return Ok(Reply::Int(-1));
    };
    let left = t.saturating_sub(ctx.now) as i64;
    Ok(Reply::Int(if ms { left } else { (left + 500) / 1000 }))
}

/// `TTL key`
pub fn ttl(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    ttl_generic(e, ctx, &a[0], false)
}

/// `PTTL key`
pub fn pttl(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    ttl_generic(e, ctx, &a[0], true)
}

/// `PERSIST key`
pub fn persist(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let db = &mut e.dbs[ctx.db];
    if db
        .get(&a[0], ctx.now)
        .is_some_and(|x| x.expire_at.is_some())
    {
        db.set_expire(&a[0], None);
        e.touch(ctx.db, &a[0]);
        return Ok(Reply::Int(1));
    }
    Ok(Reply::Int(0))
}

/// `TYPE key`
pub fn type_(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Simple(
        e.dbs[ctx.db]
            .get(&a[0], ctx.now)
            .map_or("none", |x| x.value.type_name()),
    ))
}

/// `KEYS pattern`
pub fn keys(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let db = &e.dbs[ctx.db];
    let all = a[0].as_ref() == b"*";
    Ok(super::bulk_array(
        db.keys()
            .filter(|k| db.is_live(k, ctx.now) && (all || glob_match(&a[0], k)))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`
pub fn scan(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let (cursor, o) = parse_scan(a, true)?;
    let db = &mut e.dbs[ctx.db];
    let (next, page) = scan_page(db.keys(), cursor, o.count, |k| k.as_ref(), 0);
    let page: Vec<Bytes> = page.into_iter().cloned().collect();
    let mut out = Vec::new();
    for k in page {
        if o.pattern.as_ref().is_some_and(|p| !glob_match(p, &k)) {
            continue;
        }
        let Some(entry) = db.get(&k, ctx.now) else {
            continue;
        };
        if o.type_
            .as_ref()
            .is_some_and(|t| !is(t, entry.value.type_name()))
        {
            continue;
        }
        out.push(Reply::Bulk(k));
    }
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(out),
    ]))
}

fn rename_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&a[0], &a[1]);
    let db = &mut e.dbs[ctx.db];
    if db.get(src, ctx.now).is_none() {
        return Err(err("ERR no such key"));
    }
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::OK });
    }
    if nx && db.get(dst, ctx.now).is_some() {
        return Ok(Reply::Int(0));
    }
    let Some(entry) = db.remove(src) else {
        return Err(err("ERR no such key"));
    };
    db.insert(dst.clone(), entry.value, entry.expire_at);
    e.touch(ctx.db, src);
    e.touch(ctx.db, dst);
    Ok(if nx { Reply::Int(1) } else { Reply::OK })
}

/// `RENAME key newkey`
pub fn rename(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    rename_generic(e, ctx, a, false)
}

/// `RENAMENX key newkey`
pub fn renamenx(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    rename_generic(e, ctx, a, true)
}

/// `RANDOMKEY`
pub fn randomkey(e: &mut Engine, ctx: &mut Ctx, _: &[Bytes]) -> CmdResult {
    // A few tries so a database full of expired keys still answers quickly.
    for _ in 0..100 {
        let Some(k) = e.dbs[ctx.db].random_key(&mut e.rng) else {
            return Ok(Reply::Nil);
        };
        if e.dbs[ctx.db].get(&k, ctx.now).is_some() {
            return Ok(Reply::Bulk(k));
        }
    }
    Ok(Reply::Nil)
}
