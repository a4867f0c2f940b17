//! Set commands.

use std::collections::HashSet;

use bytes::Bytes;

use super::{
    bulk_array, count_arg, err, get_set, get_set_mut, int_arg, parse_scan, scan_page, CmdResult,
};
use crate::db::{glob_match, Value};
use crate::engine::{Ctx, Engine};
use crate::resp::Reply;

/// `SADD key member [member ...]`
pub fn sadd(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let db = &mut e.dbs[ctx.db];
    let n = match get_set_mut(db, &a[0], ctx.now)? {
        Some(s) => a[1..].iter().filter(|m| s.insert((*m).clone())).count(),
        None => {
            let s: HashSet<Bytes> = a[1..].iter().cloned().collect();
            let n = s.len();
            db.insert(a[0].clone(), Value::Set(s), None);
            n
        }
    };
    if n > 0 {
        e.touch(ctx.db, &a[0]);
    }
    Ok(Reply::Int(n as i64))
}

/// `SREM key member [member ...]`
pub fn srem(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let db = &mut e.dbs[ctx.db];
    let Some(s) = get_set_mut(db, &a[0], ctx.now)? else {
        return Ok(Reply::Int(0));
    };
    let n = a[1..].iter().filter(|m| s.remove(*m)).count();
    db.remove_if_empty(&a[0]);
    if n > 0 {
        e.touch(ctx.db, &a[0]);
    }
    Ok(Reply::Int(n as i64))
}

/// `SMEMBERS key`
pub fn smembers(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let s = get_set(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(bulk_array(s.into_iter().flatten().cloned()))
}

/// `SISMEMBER key member`
pub fn sismember(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let s = get_set(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Int(i64::from(s.is_some_and(|s| s.contains(&a[1])))))
}

/// `SMISMEMBER key member [member ...]`
pub fn smismember(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let s = get_set(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Array(
        a[1..]
            .iter()
            .map(|m| Reply::Int(i64::from(s.is_some_and(|s| s.contains(m)))))
            .collect(),
    ))
}

/// `SCARD key`
pub fn scard(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let s = get_set(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Int(s.map_or(0, |s| s.len() as i64)))
}

fn pick(s: &HashSet<Bytes>, rng: &mut crate::db::Rng) -> Option<Bytes> {
    if s.is_empty() {
        return None;
    }
    s.iter().nth(rng.below(s.len())).cloned()
}

/// `SPOP key [count]`
pub fn spop(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let count = match a.len() {
        1 => None,
        2 => Some(count_arg(&a[1])?),
        _ => return Err(err(super::SYNTAX)),
    };
    let db = &mut e.dbs[ctx.db];
    let Some(s) = get_set_mut(db, &a[0], ctx.now)? else {
        return Ok(if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Nil
        });
    };
    let reply = match count {
        None => {
            let m = pick(s, &mut e.rng);
            if let Some(m) = &m {
                s.remove(m);
            }
            m.map_or(Reply::Nil, Reply::Bulk)
        }
        Some(n) => {
            let mut out = Vec::new();
            for _ in 0..n.min(s.len()) {
                if let Some(m) = pick(s, &mut e.rng) {
                    s.remove(&m);
                    out.push(Reply::Bulk(m));
                }
            }
            Reply::Array(out)
        }
    };
    db.remove_if_empty(&a[0]);
    e.touch(ctx.db, &a[0]);
    Ok(reply)
}

/// `SRANDMEMBER key [count]`
pub fn srandmember(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let count = match a.len() {
        1 => None,
        2 => Some(int_arg(&a[1])?),
        _ => return Err(err(super::SYNTAX)),
    };
    if count.is_some_and(|c| c == i64::MIN || c.unsigned_abs() > (i64::MAX as u64) / 2) {
        return Err(Reply::Error(format!(
            "ERR value is out of range, must be between {} and {}",
            -(i64::MAX / 2),
            i64::MAX / 2
        )));
    }
    let db = &mut e.dbs[ctx.db];
    let Some(s) = get_set(db, &a[0], ctx.now)? else {
        return Ok(if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Nil
        });
    };
    let rng = &mut e.rng;
    Ok(match count {
        None => pick(s, rng).map_or(Reply::Nil, Reply::Bulk),
        Some(c) if c >= 0 => {
            let members: Vec<&Bytes> = s.iter().collect();
            let want = (c as usize).min(members.len());
            let mut idx: Vec<usize> = (0..members.len()).collect();
            for i in 0..want {
                let j = i + rng.below(members.len() - i);
                idx.swap(i, j);
            }
            Reply::Array(
                idx[..want]
                    .iter()
                    .map(|&i| Reply::Bulk(members[i].clone()))
                    .collect(),
            )
        }
        Some(c) => {
            let members: Vec<&Bytes> = s.iter().collect();
            Reply::Array(
                (0..c.unsigned_abs())
                    .map(|_| Reply::Bulk(members[rng.below(members.len())].clone()))
                    .collect(),
            )
        }
    })
}

/// `SMOVE source destination member`
pub fn smove(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let db = &mut e.dbs[ctx.db];
    // Redis's order: a missing source answers 0 before any type check.
    if db.get(&a[0], ctx.now).is_none() {
        return Ok(Reply::Int(0));
    }
    let src_has = get_set(db, &a[0], ctx.now)?.is_some_and(|s| s.contains(&a[2]));
    get_set(db, &a[1], ctx.now)?;
    if !src_has {
        return Ok(Reply::Int(0));
    }
    if a[0] == a[1] {
        return Ok(Reply::Int(1));
    }
    if let Some(s) = get_set_mut(db, &a[0], ctx.now)? {
        s.remove(&a[2]);
    }
    db.remove_if_empty(&a[0]);
    match get_set_mut(db, &a[1], ctx.now)? {
        Some(d) => {
            d.insert(a[2].clone());
        }
        None => db.insert(
            a[1].clone(),
            Value::Set(HashSet::from([a[2].clone()])),
            None,
        ),
    }
    e.touch(ctx.db, &a[0]);
    e.touch(ctx.db, &a[1]);
    Ok(Reply::Int(1))
}

#[derive(Clone, Copy)]
enum Op {
    Inter,
    Union,
    Diff,
}

fn combine(e: &mut Engine, ctx: &Ctx, keys: &[Bytes], op: Op) -> Result<HashSet<Bytes>, Reply> {
    let db = &mut e.dbs[ctx.db];
    let mut sets: Vec<Option<HashSet<Bytes>>> = Vec::with_capacity(keys.len());
    for k in keys {
        sets.push(get_set(db, k, ctx.now)?.cloned());
    }
    let mut it = sets.into_iter();
    let first = it.next().flatten().unwrap_or_default();
    Ok(match op {
        Op::Inter => {
            let mut acc = first;
            for s in it {
                let s = s.unwrap_or_default();
                acc.retain(|m| s.contains(m));
            }
            acc
        }
        Op::Union => {
            let mut acc = first;
            for s in it.flatten() {
                acc.extend(s);
            }
            acc
        }
        Op::Diff => {
            let mut acc = first;
            for s in it.flatten() {
                acc.retain(|m| !s.contains(m));
            }
            acc
        }
    })
}

fn store(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], op: Op) -> CmdResult {
    let result = combine(e, ctx, &a[1..], op)?;
    let n = result.len();
    let db = &mut e.dbs[ctx.db];
    if n == 0 {
        db.remove(&a[0]);
    } else {
        db.insert(a[0].clone(), Value::Set(result), None);
    }
    e.touch(ctx.db, &a[0]);
    Ok(Reply::Int(n as i64))
}

/// `SINTER key [key ...]`
pub fn sinter(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(bulk_array(combine(e, ctx, a, Op::Inter)?))
}

/// `SUNION key [key ...]`
pub fn sunion(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(bulk_array(combine(e, ctx, a, Op::Union)?))
}

/// `SDIFF key [key ...]`
pub fn sdiff(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(bulk_array(combine(e, ctx, a, Op::Diff)?))
}

/// `SINTERSTORE destination key [key ...]`
pub fn sinterstore(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    store(e, ctx, a, Op::Inter)
}

/// `SUNIONSTORE destination key [key ...]`
pub fn sunionstore(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    store(e, ctx, a, Op::Union)
}

/// `SDIFFSTORE destination key [key ...]`
pub fn sdiffstore(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    store(e, ctx, a, Op::Diff)
}

/// `SSCAN key cursor [MATCH pattern] [COUNT n]`
pub fn sscan(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    // Redis's order: cursor, then the key, then the options (ignored for a missing key).
    super::parse_cursor(&a[1])?;
    let Some(s) = get_set(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])]));
    };
    let (cursor, o) = parse_scan(&a[1..], false)?;
    let (next, page) = scan_page(s.iter(), cursor, o.count, |m| m.as_ref(), 128);
    let out = page
        .into_iter()
        .filter(|m| o.pattern.as_ref().is_none_or(|p| glob_match(p, m)))
        .map(|m| Reply::Bulk(m.clone()))
        .collect();
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(out),
    ]))
}
