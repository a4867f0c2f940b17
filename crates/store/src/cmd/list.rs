//! List commands, including the blocking pops and moves.
//!
//! Blocking handlers first try to answer at once; when every key is empty and the client may
//! block, they describe the wait in [`Ctx::block`] and the engine parks the client. Serving a
//! parked client later goes through [`serve_blocked`], which must use the same pop and push
//! code as the direct path so both give identical results.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{
    clamp_range, count_arg, err, get_list, get_list_mut, int_arg, is, CmdResult, SYNTAX, WRONGTYPE,
};
use crate::db::Value;
use crate::engine::{BlockKind, BlockSpec, Ctx, Engine};
use crate::resp::Reply;

fn push_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], left: bool, xx: bool) -> CmdResult {
    let key = &a[0];
    let db = &mut e.dbs[ctx.db];
    let len = match get_list_mut(db, key, ctx.now)? {
        Some(l) => {
            push_all(l, &a[1..], left);
            l.len()
        }
        None if xx => return Ok(Reply::Int(0)),
        None => {
            let mut l = VecDeque::with_capacity(a.len() - 1);
            push_all(&mut l, &a[1..], left);
            let n = l.len();
            db.insert(key.clone(), Value::List(l), None);
            n
        }
    };
    e.touch(ctx.db, key);
    Ok(Reply::Int(len as i64))
}

fn push_all(l: &mut VecDeque<Bytes>, vals: &[Bytes], left: bool) {
    for v in vals {
        if left {
            l.push_front(v.clone());
        } else {
            l.push_back(v.clone());
        }
    }
}

/// `LPUSH key element [element ...]`
pub fn lpush(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    push_generic(e, ctx, a, true, false)
}

/// `RPUSH key element [element ...]`
pub fn rpush(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    push_generic(e, ctx, a, false, false)
}

/// `LPUSHX key element [element ...]`
pub fn lpushx(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    push_generic(e, ctx, a, true, true)
}

/// `RPUSHX key element [element ...]`
pub fn rpushx(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    push_generic(e, ctx, a, false, true)
}

fn pop_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], left: bool) -> CmdResult {
    let key = &a[0];
    let count = match a.len() {
        1 => None,
        2 => Some(count_arg(&a[1])?),
        _ => {
            return Err(Reply::Error(format!(
                "ERR wrong number of arguments for '{}' command",
                if left { "lpop" } else { "rpop" }
            )))
        }
    };
    let db = &mut e.dbs[ctx.db];
    let Some(l) = get_list_mut(db, key, ctx.now)? else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    let reply = match count {
        None => pop_one(l, left).map_or(Reply::Nil, Reply::Bulk),
        Some(n) => {
            let n = n.min(l.len());
            Reply::Array(
                (0..n)
                    .filter_map(|_| pop_one(l, left))
                    .map(Reply::Bulk)
                    .collect(),
            )
        }
    };
    db.remove_if_empty(key);
    if !matches!(&reply, Reply::Array(v) if v.is_empty()) {
        e.touch(ctx.db, key);
    }
    Ok(reply)
}

fn pop_one(l: &mut VecDeque<Bytes>, left: bool) -> Option<Bytes> {
    if left {
        l.pop_front()
    } else {
        l.pop_back()
    }
}

/// `LPOP key [count]`
pub fn lpop(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    pop_generic(e, ctx, a, true)
}

/// `RPOP key [count]`
pub fn rpop(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    pop_generic(e, ctx, a, false)
}

/// `LLEN key`
pub fn llen(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        get_list(&mut e.dbs[ctx.db], &a[0], ctx.now)?.map_or(0, |l| l.len() as i64),
    ))
}

/// `LRANGE key start stop`
pub fn lrange(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let start = int_arg(&a[1])?;
    let stop = int_arg(&a[2])?;
    let Some(l) = get_list(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::Array(vec![]));
    };
    Ok(match clamp_range(start, stop, l.len()) {
        Some((s, t)) => super::bulk_array(l.range(s..=t).cloned()),
        None => Reply::Array(vec![]),
    })
}

fn index_of(idx: i64, len: usize) -> Option<usize> {
    let i = if idx < 0 { len as i64 + idx } else { idx };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// `LINDEX key index`
pub fn lindex(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let Some(l) = get_list(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::Nil);
    };
    let idx = int_arg(&a[1])?;
    Ok(index_of(idx, l.len())
        .and_then(|i| l.get(i).cloned())
        .map_or(Reply::Nil, Reply::Bulk))
}

/// `LSET key index element`
pub fn lset(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let Some(l) = get_list_mut(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Err(err("ERR no such key"));
    };
    let idx = int_arg(&a[1])?;
    let Some(i) = index_of(idx, l.len()) else {
        return Err(err("ERR index out of range"));
    };
    l[i] = a[2].clone();
    e.touch(ctx.db, &a[0]);
    Ok(Reply::OK)
}

/// `LREM key count element`
pub fn lrem(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let count = int_arg(&a[1])?;
    let db = &mut e.dbs[ctx.db];
    let Some(l) = get_list_mut(db, &a[0], ctx.now)? else {
        return Ok(Reply::Int(0));
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut removed = 0;
    if count >= 0 {
        let mut i = 0;
        while i < l.len() && removed < limit {
            if l[i] == a[2] {
                l.remove(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
    } else {
        let mut i = l.len();
        while i > 0 && removed < limit {
            i -= 1;
            if l[i] == a[2] {
                l.remove(i);
                removed += 1;
            }
        }
    }
    db.remove_if_empty(&a[0]);
    if removed > 0 {
        e.touch(ctx.db, &a[0]);
    }
    Ok(Reply::Int(removed as i64))
}

/// `LTRIM key start stop`
pub fn ltrim(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let start = int_arg(&a[1])?;
    let stop = int_arg(&a[2])?;
    let db = &mut e.dbs[ctx.db];
    let Some(l) = get_list_mut(db, &a[0], ctx.now)? else {
        return Ok(Reply::OK);
    };
    match clamp_range(start, stop, l.len()) {
        Some((s, t)) => {
            l.truncate(t + 1);
            l.drain(..s);
        }
        None => l.clear(),
    }
    db.remove_if_empty(&a[0]);
    e.touch(ctx.db, &a[0]);
    Ok(Reply::OK)
}

/// `LINSERT key BEFORE|AFTER pivot element`
pub fn linsert(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let after = if is(&a[1], "after") {
        true
    } else if is(&a[1], "before") {
        false
    } else {
        return Err(err(SYNTAX));
    };
    let Some(l) = get_list_mut(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::Int(0));
    };
    let Some(pos) = l.iter().position(|x| *x == a[2]) else {
        return Ok(Reply::Int(-1));
    };
    l.insert(if after { pos + 1 } else { pos }, a[3].clone());
    let n = l.len();
    e.touch(ctx.db, &a[0]);
    Ok(Reply::Int(n as i64))
}

/// `LPOS key element [RANK r] [COUNT n] [MAXLEN m]`
pub fn lpos(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut i = 2;
    while i < a.len() {
        let has_next = i + 1 < a.len();
        if is(&a[i], "rank") && has_next {
            rank = int_arg(&a[i + 1])?;
            if rank == 0 || rank == i64::MIN {
                return Err(err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
            }
        } else if is(&a[i], "count") && has_next {
            // Redis gives the range message for any bad COUNT, not only negative ones.
            let n = int_arg(&a[i + 1]).map_err(|_| err("ERR COUNT can't be negative"))?;
            if n < 0 {
                return Err(err("ERR COUNT can't be negative"));
            }
            count = Some(n);
        } else if is(&a[i], "maxlen") && has_next {
            maxlen = int_arg(&a[i + 1]).map_err(|_| err("ERR MAXLEN can't be negative"))?;
            if maxlen < 0 {
                return Err(err("ERR MAXLEN can't be negative"));
            }
        } else {
            return Err(err(SYNTAX));
        }
        i += 2;
    }
    let Some(l) = get_list(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Nil
        });
    };
    let want = match count {
        Some(0) => usize::MAX,
        Some(n) => n as usize,
        None => 1,
    };
    let maxlen = if maxlen == 0 {
        usize::MAX
    } else {
        maxlen as usize
    };
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let len = l.len();
    let idxs: Box<dyn Iterator<Item = usize>> = if rank > 0 {
        Box::new(0..len)
    } else {
        Box::new((0..len).rev())
    };
    for (checked, i) in idxs.enumerate() {
        if checked >= maxlen || found.len() >= want {
            break;
        }
        if l[i] == a[1] {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(Reply::Int(i as i64));
            }
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(found),
        None => found.pop().unwrap_or(Reply::Nil),
    })
}

fn parse_side(b: &[u8]) -> Result<bool, Reply> {
    if is(b, "left") {
        Ok(true)
    } else if is(b, "right") {
        Ok(false)
    } else {
        Err(err(SYNTAX))
    }
}

/// Pops from `src` and pushes to `dst`; `Ok(None)` when `src` is empty.
fn move_one(
    e: &mut Engine,
    db: usize,
    src: &Bytes,
    dst: &Bytes,
    from_left: bool,
    to_left: bool,
    now: u64,
) -> Result<Option<Bytes>, Reply> {
    let d = &mut e.dbs[db];
    if get_list(d, src, now)?.is_none_or_empty() {
        return Ok(None);
    }
    // Check the destination type before popping so a WRONGTYPE loses nothing.
    get_list(d, dst, now)?;
    let Some(v) = get_list_mut(d, src, now)?.and_then(|l| pop_one(l, from_left)) else {
        return Ok(None);
    };
    d.remove_if_empty(src);
    match get_list_mut(d, dst, now)? {
        Some(l) => push_all(l, std::slice::from_ref(&v), to_left),
        None => d.insert(dst.clone(), Value::List(VecDeque::from([v.clone()])), None),
    }
    e.touch(db, src);
    e.touch(db, dst);
    Ok(Some(v))
}

trait NoneOrEmpty {
    fn is_none_or_empty(&self) -> bool;
}

impl NoneOrEmpty for Option<&VecDeque<Bytes>> {
    fn is_none_or_empty(&self) -> bool {
        self.is_none_or(VecDeque::is_empty)
    }
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`
pub fn lmove(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let from_left = parse_side(&a[2])?;
    let to_left = parse_side(&a[3])?;
    Ok(
        move_one(e, ctx.db, &a[0], &a[1], from_left, to_left, ctx.now)?
            .map_or(Reply::Nil, Reply::Bulk),
    )
}

/// `RPOPLPUSH source destination`
pub fn rpoplpush(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(move_one(e, ctx.db, &a[0], &a[1], false, true, ctx.now)?.map_or(Reply::Nil, Reply::Bulk))
}

/// Parses a blocking timeout in seconds (float) into an absolute deadline.
fn parse_timeout(b: &[u8], now: u64) -> Result<Option<u64>, Reply> {
    let bad = || err("ERR timeout is not a float or out of range");
    let secs = super::parse_f64(b).ok_or_else(bad)?;
    if !secs.is_finite() {
        return Err(bad());
    }
    if secs < 0.0 {
        return Err(err("ERR timeout is negative"));
    }
    let ms = (secs * 1000.0).ceil();
    if ms > (i64::MAX / 2) as f64 {
        return Err(bad());
    }
    Ok((ms > 0.0).then(|| now + ms as u64))
}

fn bpop_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], left: bool) -> CmdResult {
    let (keys, timeout) = a.split_at(a.len() - 1);
    let deadline = parse_timeout(&timeout[0], ctx.now)?;
    for k in keys {
        if let Some(l) = get_list_mut(&mut e.dbs[ctx.db], k, ctx.now)? {
            if let Some(v) = pop_one(l, left) {
                e.dbs[ctx.db].remove_if_empty(k);
                e.touch(ctx.db, k);
                return Ok(Reply::Array(vec![Reply::Bulk(k.clone()), Reply::Bulk(v)]));
            }
        }
    }
    if ctx.no_block {
        return Ok(Reply::NilArray);
    }
    ctx.block = Some(BlockSpec {
        keys: keys.to_vec(),
        deadline,
        kind: BlockKind::Pop { left },
    });
    Ok(Reply::NilArray)
}

/// `BLPOP key [key ...] timeout`
pub fn blpop(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    bpop_generic(e, ctx, a, true)
}

/// `BRPOP key [key ...] timeout`
pub fn brpop(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    bpop_generic(e, ctx, a, false)
}

fn bmove_generic(
    e: &mut Engine,
    ctx: &mut Ctx,
    src: &Bytes,
    dst: &Bytes,
    from_left: bool,
    to_left: bool,
    timeout: &[u8],
) -> CmdResult {
    let deadline = parse_timeout(timeout, ctx.now)?;
    if let Some(v) = move_one(e, ctx.db, src, dst, from_left, to_left, ctx.now)? {
        return Ok(Reply::Bulk(v));
    }
    if ctx.no_block {
        return Ok(Reply::Nil);
    }
    ctx.block = Some(BlockSpec {
        keys: vec![src.clone()],
        deadline,
        kind: BlockKind::Move {
            dst: dst.clone(),
            from_left,
            to_left,
        },
    });
    Ok(Reply::Nil)
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`
pub fn blmove(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let from_left = parse_side(&a[2])?;
    let to_left = parse_side(&a[3])?;
    bmove_generic(e, ctx, &a[0], &a[1], from_left, to_left, &a[4])
}

/// `BRPOPLPUSH source destination timeout`
pub fn brpoplpush(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    bmove_generic(e, ctx, &a[0], &a[1], false, true, &a[2])
}

/// Completes a parked BLPOP/BRPOP/BLMOVE on `key`, which the engine saw non-empty.
pub fn serve_blocked(e: &mut Engine, db: usize, key: &Bytes, kind: &BlockKind, now: u64) -> Reply {
    match kind {
        BlockKind::Pop { left } => {
            let v = get_list_mut(&mut e.dbs[db], key, now)
                .ok()
                .flatten()
                .and_then(|l| pop_one(l, *left));
            e.dbs[db].remove_if_empty(key);
            e.touch(db, key);
            match v {
                Some(v) => Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(v)]),
                None => Reply::NilArray,
            }
        }
        BlockKind::Move {
            dst,
            from_left,
            to_left,
        } => match move_one(e, db, key, dst, *from_left, *to_left, now) {
            Ok(Some(v)) => Reply::Bulk(v),
            Ok(None) => Reply::NilArray,
            Err(_) => err(WRONGTYPE),
        },
    }
}
