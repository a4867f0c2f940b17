//! Hash commands.

use std::collections::HashMap;

use bytes::Bytes;

use super::{
    add_float_text, err, get_hash, get_hash_mut, int_arg, parse_f64, parse_i64_strict, parse_scan,
    scan_page, CmdResult,
};
use crate::db::{glob_match, Value};
use crate::engine::{Ctx, Engine};
use crate::resp::Reply;

fn hash_for_write<'a>(
    e: &'a mut Engine,
    ctx: &Ctx,
    key: &Bytes,
) -> Result<&'a mut HashMap<Bytes, Bytes>, Reply> {
    let db = &mut e.dbs[ctx.db];
    if get_hash_mut(db, key, ctx.now)?.is_none() {
        db.insert(key.clone(), Value::Hash(HashMap::new()), None);
    }
    get_hash_mut(db, key, ctx.now)?.ok_or_else(|| err("ERR no such key"))
}

fn hset_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], name: &str) -> Result<i64, Reply> {
    if a.len() % 2 != 1 {
        return Err(Reply::Error(format!(
            "ERR wrong number of arguments for '{name}' command"
        )));
    }
    let h = hash_for_write(e, ctx, &a[0])?;
    let mut added = 0;
    for kv in a[1..].chunks(2) {
        if h.insert(kv[0].clone(), kv[1].clone()).is_none() {
            added += 1;
        }
    }
    e.touch(ctx.db, &a[0]);
    Ok(added)
}

/// `HSET key field value [field value ...]`
pub fn hset(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    hset_generic(e, ctx, a, "hset").map(Reply::Int)
}

/// `HMSET key field value [field value ...]`
pub fn hmset(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    hset_generic(e, ctx, a, "hmset").map(|_| Reply::OK)
}

/// `HSETNX key field value`
pub fn hsetnx(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let h = hash_for_write(e, ctx, &a[0])?;
    if h.contains_key(&a[1]) {
        return Ok(Reply::Int(0));
    }
    h.insert(a[1].clone(), a[2].clone());
    e.touch(ctx.db, &a[0]);
    Ok(Reply::Int(1))
}

/// `HGET key field`
pub fn hget(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(get_hash(&mut e.dbs[ctx.db], &a[0], ctx.now)?
        .and_then(|h| h.get(&a[1]).cloned())
        .map_or(Reply::Nil, Reply::Bulk))
}

/// `HMGET key field [field ...]`
pub fn hmget(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let h = get_hash(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Array(
        a[1..]
            .iter()
            .map(|f| {
                h.and_then(|h| h.get(f).cloned())
                    .map_or(Reply::Nil, Reply::Bulk)
            })
            .collect(),
    ))
}

/// `HGETALL key`
pub fn hgetall(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let h = get_hash(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Array(
        h.into_iter()
            .flatten()
            .flat_map(|(k, v)| [Reply::Bulk(k.clone()), Reply::Bulk(v.clone())])
            .collect(),
    ))
}

/// `HDEL key field [field ...]`
pub fn hdel(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let db = &mut e.dbs[ctx.db];
    let Some(h) = get_hash_mut(db, &a[0], ctx.now)? else {
        return Ok(Reply::Int(0));
    };
    let n = a[1..].iter().filter(|f| h.remove(*f).is_some()).count();
    db.remove_if_empty(&a[0]);
    if n > 0 {
        e.touch(ctx.db, &a[0]);
    }
    Ok(Reply::Int(n as i64))
}

/// `HEXISTS key field`
pub fn hexists(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let h = get_hash(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Int(i64::from(
        h.is_some_and(|h| h.contains_key(&a[1])),
    )))
}

/// `HLEN key`
pub fn hlen(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let h = get_hash(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Int(h.map_or(0, |h| h.len() as i64)))
}

/// `HKEYS key`
pub fn hkeys(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let h = get_hash(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(super::bulk_array(
        h.into_iter().flatten().map(|(k, _)| k.clone()),
    ))
}

/// `HVALS key`
pub fn hvals(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let h = get_hash(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(super::bulk_array(
        h.into_iter().flatten().map(|(_, v)| v.clone()),
    ))
}

/// `HINCRBY key field increment`
pub fn hincrby(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let by = int_arg(&a[2])?;
    let h = hash_for_write(e, ctx, &a[0])?;
    let cur = match h.get(&a[1]) {
        Some(v) => parse_i64_strict(v).ok_or_else(|| err("ERR hash value is not an integer"))?,
        None => 0,
    };
    let n = cur
        .checked_add(by)
        .ok_or_else(|| err("ERR increment or decrement would overflow"))?;
    h.insert(a[1].clone(), Bytes::from(n.to_string()));
    e.touch(ctx.db, &a[0]);
    Ok(Reply::Int(n))
}

/// `HINCRBYFLOAT key field increment`
pub fn hincrbyfloat(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    parse_f64(&a[2]).ok_or_else(|| err(super::NOT_FLOAT))?;
    let db = &mut e.dbs[ctx.db];
    let cur = get_hash(db, &a[0], ctx.now)?
        .and_then(|h| h.get(&a[1]).cloned())
        .unwrap_or_else(|| Bytes::from_static(b"0"));
    parse_f64(&cur).ok_or_else(|| err("ERR hash value is not a float"))?;
    let text = add_float_text(&cur, &a[2]).ok_or_else(|| err(super::NOT_FLOAT))?;
    if text.is_empty() {
        return Err(err("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(text);
    let h = hash_for_write(e, ctx, &a[0])?;
    h.insert(a[1].clone(), text.clone());
    e.touch(ctx.db, &a[0]);
    Ok(Reply::Bulk(text))
}

/// `HSTRLEN key field`
pub fn hstrlen(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let h = get_hash(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Int(
        h.and_then(|h| h.get(&a[1])).map_or(0, |v| v.len() as i64),
    ))
}

/// `HSCAN key cursor [MATCH pattern] [COUNT n]`
pub fn hscan(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    // Redis's order: cursor, then the key, then the options (ignored for a missing key).
    super::parse_cursor(&a[1])?;
    let Some(h) = get_hash(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])]));
    };
    let (cursor, o) = parse_scan(&a[1..], false)?;
    let (next, page) = scan_page(h.iter(), cursor, o.count, |(k, _)| k.as_ref(), 128);
    let mut out = Vec::new();
    for (k, v) in page {
        if o.pattern.as_ref().is_some_and(|p| !glob_match(p, k)) {
            continue;
        }
        out.push(Reply::Bulk(k.clone()));
        out.push(Reply::Bulk(v.clone()));
    }
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(out),
    ]))
}
