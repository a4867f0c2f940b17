//! Sorted set commands.

use std::ops::Bound;

use bytes::Bytes;

use super::{
    count_arg, double_reply, err, float_arg, get_zset, get_zset_mut, int_arg, is, CmdResult, SYNTAX,
};
use crate::db::{Entry, Score, Value, ZSet};
use crate::engine::{Ctx, Engine};
use crate::resp::Reply;

const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`
pub fn zadd(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 1;
    while i < a.len() {
        let f = &a[i];
        if is(f, "nx") {
            nx = true;
        } else if is(f, "xx") {
            xx = true;
        } else if is(f, "gt") {
            gt = true;
        } else if is(f, "lt") {
            lt = true;
        } else if is(f, "ch") {
            ch = true;
        } else if is(f, "incr") {
            incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || rest.len() % 2 == 1 {
        return Err(err(SYNTAX));
    }
    if nx && xx {
        return Err(err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && rest.len() > 2 {
        return Err(err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks(2) {
        pairs.push((float_arg(&p[0])?, p[1].clone()));
    }
    let key = &a[0];
    let db = &mut e.dbs[ctx.db];
    if get_zset(db, key, ctx.now)?.is_none() {
        if xx {
            return Ok(if incr { Reply::Nil } else { Reply::Int(0) });
        }
        db.insert(key.clone(), Value::ZSet(ZSet::default()), None);
    }
    let Some(z) = get_zset_mut(db, key, ctx.now)? else {
        return Ok(Reply::Int(0));
    };
    let (mut added, mut changed) = (0, 0);
    let mut incr_result = None;
    for (score, member) in pairs {
        match z.scores.get(&member).copied() {
            Some(cur) => {
                if nx {
                    continue;
                }
                let new = if incr { cur + score } else { score };
                if new.is_nan() {
                    db.remove_if_empty(key);
                    return Err(err(NAN_SCORE));
                }
                if (lt && new >= cur) || (gt && new <= cur) {
                    continue;
                }
                incr_result = Some(new);
                if new != cur {
                    z.insert(member, new);
                    changed += 1;
                }
            }
            None => {
                if xx {
                    continue;
                }
                z.insert(member, score);
                incr_result = Some(score);
                added += 1;
            }
        }
    }
    db.remove_if_empty(key);
    if added + changed > 0 {
        e.touch(ctx.db, key);
    }
    Ok(if incr {
        incr_result.map_or(Reply::Nil, double_reply)
    } else {
        Reply::Int(if ch { added + changed } else { added })
    })
}

/// `ZINCRBY key increment member`
pub fn zincrby(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let args = [
        a[0].clone(),
        Bytes::from_static(b"INCR"),
        a[1].clone(),
        a[2].clone(),
    ];
    zadd(e, ctx, &args)
}

/// `ZREM key member [member ...]`
pub fn zrem(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let db = &mut e.dbs[ctx.db];
    let Some(z) = get_zset_mut(db, &a[0], ctx.now)? else {
        return Ok(Reply::Int(0));
    };
    let n = a[1..].iter().filter(|m| z.remove(m)).count();
    db.remove_if_empty(&a[0]);
    if n > 0 {
        e.touch(ctx.db, &a[0]);
    }
    Ok(Reply::Int(n as i64))
}

/// `ZSCORE key member`
pub fn zscore(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let z = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(z.and_then(|z| z.scores.get(&a[1]).copied())
        .map_or(Reply::Nil, double_reply))
}

/// `ZCARD key`
pub fn zcard(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let z = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Int(z.map_or(0, |z| z.len() as i64)))
}

/// A score interval.
#[derive(Debug, Clone, Copy)]
struct ScoreRange {
    min: f64,
    max: f64,
    minex: bool,
    maxex: bool,
}

impl ScoreRange {
    fn contains(&self, s: f64) -> bool {
        (if self.minex {
            s > self.min
        } else {
            s >= self.min
        }) && (if self.maxex {
            s < self.max
        } else {
            s <= self.max
        })
    }
}

fn parse_score_bound(b: &[u8]) -> Option<(f64, bool)> {
    let (ex, body) = match b.first() {
        Some(b'(') => (true, &b[1..]),
        _ => (false, b),
    };
    // Redis reads range bounds with a bare strtod: leading blanks are skipped and an empty
    // text reads as 0.
    let body = body.trim_ascii_start();
    if body.is_empty() {
        return Some((0.0, ex));
    }
    let s = std::str::from_utf8(body).ok()?;
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some((v, ex))
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
    let bad = || err("ERR min or max is not a float");
    let (min, minex) = parse_score_bound(min).ok_or_else(bad)?;
    let (max, maxex) = parse_score_bound(max).ok_or_else(bad)?;
    Ok(ScoreRange {
        min,
        max,
        minex,
        maxex,
    })
}

/// A lexicographic bound: `-`, `+`, `[x` or `(x`.
#[derive(Debug, Clone)]
enum Lex {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

fn parse_lex(b: &Bytes) -> Result<Lex, Reply> {
    match b.first() {
        Some(b'-') if b.len() == 1 => Ok(Lex::Min),
        Some(b'+') if b.len() == 1 => Ok(Lex::Max),
        Some(b'[') => Ok(Lex::Incl(b.slice(1..))),
        Some(b'(') => Ok(Lex::Excl(b.slice(1..))),
        _ => Err(err("ERR min or max not valid string range item")),
    }
}

fn lex_gte_min(m: &[u8], min: &Lex) -> bool {
    match min {
        Lex::Min => true,
        Lex::Max => false,
        Lex::Incl(x) => m >= x.as_ref(),
        Lex::Excl(x) => m > x.as_ref(),
    }
}

fn lex_lte_max(m: &[u8], max: &Lex) -> bool {
    match max {
        Lex::Min => false,
        Lex::Max => true,
        Lex::Incl(x) => m <= x.as_ref(),
        Lex::Excl(x) => m < x.as_ref(),
    }
}

/// Members in a lex range, walked the way Redis walks its skip list: the range must overlap
/// the first and last members, the walk starts at the first member inside the near bound and
/// stops at the first member outside the far one. With equal scores (the documented use)
/// this is plain lex filtering; with mixed scores it gives Redis's answers, not a filter.
fn lex_range<'a>(
    z: &'a ZSet,
    min: &'a Lex,
    max: &'a Lex,
    rev: bool,
) -> Box<dyn Iterator<Item = &'a (Score, Bytes)> + 'a> {
    let empty_range = match (min, max) {
        (Lex::Max, _) | (_, Lex::Min) => true,
        (Lex::Incl(a) | Lex::Excl(a), Lex::Incl(b) | Lex::Excl(b)) => {
            a > b || (a == b && (matches!(min, Lex::Excl(_)) || matches!(max, Lex::Excl(_))))
        }
        _ => false,
    };
    let overlaps = match (z.order.first(), z.order.last()) {
        (Some((_, first)), Some((_, last))) => lex_gte_min(last, min) && lex_lte_max(first, max),
        _ => false,
    };
    if empty_range || !overlaps {
        return Box::new(std::iter::empty());
    }
    if rev {
        Box::new(
            z.order
                .iter()
                .rev()
                .skip_while(move |(_, m)| !lex_lte_max(m, max))
                .take_while(move |(_, m)| lex_gte_min(m, min)),
        )
    } else {
        Box::new(
            z.order
                .iter()
                .skip_while(move |(_, m)| !lex_gte_min(m, min))
                .take_while(move |(_, m)| lex_lte_max(m, max)),
        )
    }
}

/// `ZCOUNT key min max`
pub fn zcount(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let r = parse_score_range(&a[1], &a[2])?;
    let z = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)?;
    Ok(Reply::Int(z.map_or(0, |z| {
        in_score_range(z, &r, false).count() as i64
    })))
}

fn in_score_range<'a>(
    z: &'a ZSet,
    r: &ScoreRange,
    rev: bool,
) -> Box<dyn Iterator<Item = &'a (Score, Bytes)> + 'a> {
    let r = *r;
    if r.min > r.max || (r.min == r.max && (r.minex || r.maxex)) {
        return Box::new(std::iter::empty());
    }
    let lo = Bound::Included((Score(r.min), Bytes::new()));
    let it = z.order.range((lo, Bound::Unbounded));
    if rev {
        Box::new(
            it.rev()
                .skip_while(move |(s, _)| !r.contains(s.0))
                .take_while(move |(s, _)| r.contains(s.0)),
        )
    } else {
        Box::new(
            it.skip_while(move |(s, _)| !r.contains(s.0))
                .take_while(move |(s, _)| r.contains(s.0)),
        )
    }
}

#[derive(PartialEq, Clone, Copy)]
enum RangeType {
    Rank,
    Score,
    Lex,
}

fn reply_items<'a>(
    items: impl Iterator<Item = &'a (Score, Bytes)>,
    withscores: bool,
    offset: i64,
    limit: i64,
) -> Reply {
    if offset < 0 {
        return Reply::Array(vec![]);
    }
    let limit = if limit < 0 {
        usize::MAX
    } else {
        limit as usize
    };
    let mut out = Vec::new();
    for (s, m) in items.skip(offset as usize).take(limit) {
        out.push(Reply::Bulk(m.clone()));
        if withscores {
            out.push(double_reply(s.0));
        }
    }
    Reply::Array(out)
}

fn zrange_generic(
    e: &mut Engine,
    ctx: &mut Ctx,
    a: &[Bytes],
    mut rtype: Option<RangeType>,
    mut rev: Option<bool>,
) -> CmdResult {
    let (mut withscores, mut offset, mut limit, mut has_limit) = (false, 0i64, -1i64, false);
    let mut j = 3;
    while j < a.len() {
        let left = a.len() - j - 1;
        if is(&a[j], "withscores") {
            withscores = true;
        } else if is(&a[j], "limit") && left >= 2 {
            offset = int_arg(&a[j + 1])?;
            limit = int_arg(&a[j + 2])?;
            has_limit = true;
            j += 2;
        } else if rev.is_none() && is(&a[j], "rev") {
            rev = Some(true);
        } else if rtype.is_none() && is(&a[j], "bylex") {
            rtype = Some(RangeType::Lex);
        } else if rtype.is_none() && is(&a[j], "byscore") {
            rtype = Some(RangeType::Score);
        } else {
            return Err(err(SYNTAX));
        }
        j += 1;
    }
    let rtype = rtype.unwrap_or(RangeType::Rank);
    let rev = rev.unwrap_or(false);
    if has_limit && rtype == RangeType::Rank {
        return Err(err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && rtype == RangeType::Lex {
        return Err(err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut lo, mut hi) = (&a[1], &a[2]);
    if rev && rtype != RangeType::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    match rtype {
        RangeType::Rank => {
            let start = int_arg(lo)?;
            let stop = int_arg(hi)?;
            let Some(z) = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
                return Ok(Reply::Array(vec![]));
            };
            let Some((s, t)) = super::clamp_range(start, stop, z.len()) else {
                return Ok(Reply::Array(vec![]));
            };
            let n = t - s + 1;
            Ok(if rev {
                reply_items(z.order.iter().rev().skip(s).take(n), withscores, 0, -1)
            } else {
                reply_items(z.order.iter().skip(s).take(n), withscores, 0, -1)
            })
        }
        RangeType::Score => {
            let r = parse_score_range(lo, hi)?;
            let Some(z) = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
                return Ok(Reply::Array(vec![]));
            };
            Ok(reply_items(
                in_score_range(z, &r, rev),
                withscores,
                offset,
                limit,
            ))
        }
        RangeType::Lex => {
            let min = parse_lex(lo)?;
            let max = parse_lex(hi)?;
            let Some(z) = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
                return Ok(Reply::Array(vec![]));
            };
            Ok(reply_items(
                lex_range(z, &min, &max, rev),
                false,
                offset,
                limit,
            ))
        }
    }
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`
pub fn zrange(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    zrange_generic(e, ctx, a, None, None)
}

/// `ZREVRANGE key start stop [WITHSCORES]`
pub fn zrevrange(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    zrange_generic(e, ctx, a, Some(RangeType::Rank), Some(true))
}

/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`
pub fn zrangebyscore(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    zrange_generic(e, ctx, a, Some(RangeType::Score), Some(false))
}

/// `ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]`
pub fn zrevrangebyscore(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    zrange_generic(e, ctx, a, Some(RangeType::Score), Some(true))
}

fn rank_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], rev: bool) -> CmdResult {
    let Some(z) = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::Nil);
    };
    Ok(z.rank(&a[1]).map_or(Reply::Nil, |r| {
        Reply::Int(if rev { z.len() - 1 - r } else { r } as i64)
    }))
}

/// `ZRANK key member`
pub fn zrank(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    rank_generic(e, ctx, a, false)
}

/// `ZREVRANK key member`
pub fn zrevrank(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    rank_generic(e, ctx, a, true)
}

fn remove_members(e: &mut Engine, ctx: &mut Ctx, key: &Bytes, victims: Vec<Bytes>) -> CmdResult {
    let n = victims.len();
    let db = &mut e.dbs[ctx.db];
    if let Some(z) = get_zset_mut(db, key, ctx.now)? {
        for m in &victims {
            z.remove(m);
        }
    }
    db.remove_if_empty(key);
    if n > 0 {
        e.touch(ctx.db, key);
    }
    Ok(Reply::Int(n as i64))
}

/// `ZREMRANGEBYSCORE key min max`
pub fn zremrangebyscore(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let r = parse_score_range(&a[1], &a[2])?;
    let Some(z) = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::Int(0));
    };
    let victims = in_score_range(z, &r, false)
        .map(|(_, m)| m.clone())
        .collect();
    remove_members(e, ctx, &a[0], victims)
}

/// `ZREMRANGEBYRANK key start stop`
pub fn zremrangebyrank(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let start = int_arg(&a[1])?;
    let stop = int_arg(&a[2])?;
    let Some(z) = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::Int(0));
    };
    let Some((s, t)) = super::clamp_range(start, stop, z.len()) else {
        return Ok(Reply::Int(0));
    };
    let victims = z
        .order
        .iter()
        .skip(s)
        .take(t - s + 1)
        .map(|(_, m)| m.clone())
        .collect();
    remove_members(e, ctx, &a[0], victims)
}

fn pop_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], max: bool) -> CmdResult {
    let count = match a.len() {
        1 => 1,
        2 => count_arg(&a[1])?,
        _ => return Err(err(SYNTAX)),
    };
    let db = &mut e.dbs[ctx.db];
    let Some(z) = get_zset_mut(db, &a[0], ctx.now)? else {
        return Ok(Reply::Array(vec![]));
    };
    let mut out = Vec::new();
    for _ in 0..count.min(z.len()) {
        let item = if max {
            z.order.last().cloned()
        } else {
            z.order.first().cloned()
        };
        let Some((s, m)) = item else { break };
        z.remove(&m);
        out.push(Reply::Bulk(m));
        out.push(double_reply(s.0));
    }
    db.remove_if_empty(&a[0]);
    if !out.is_empty() {
        e.touch(ctx.db, &a[0]);
    }
    Ok(Reply::Array(out))
}

/// `ZPOPMIN key [count]`
pub fn zpopmin(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    pop_generic(e, ctx, a, false)
}

/// `ZPOPMAX key [count]`
pub fn zpopmax(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    pop_generic(e, ctx, a, true)
}

#[derive(Clone, Copy, PartialEq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// Redis's `zunionInterAggregate`: a sum that is not a number becomes 0.
fn aggregate(target: &mut f64, val: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// One input of ZUNION/ZINTER: a sorted set, or a plain set whose members score 1.
enum Source<'a> {
    Z(&'a ZSet),
    S(&'a std::collections::HashSet<Bytes>),
    Empty,
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::Z(z) => z.len(),
            Source::S(s) => s.len(),
            Source::Empty => 0,
        }
    }

    fn score(&self, m: &Bytes) -> Option<f64> {
        match self {
            Source::Z(z) => z.scores.get(m).copied(),
            Source::S(s) => s.contains(m).then_some(1.0),
            Source::Empty => None,
        }
    }

    fn items(&self) -> Box<dyn Iterator<Item = (&Bytes, f64)> + '_> {
        match self {
            Source::Z(z) => Box::new(z.order.iter().map(|(s, m)| (m, s.0))),
            Source::S(s) => Box::new(s.iter().map(|m| (m, 1.0))),
            Source::Empty => Box::new(std::iter::empty()),
        }
    }
}

/// ZUNION/ZINTER and their STORE forms; `a` starts at `numkeys`. Redis's order of checks:
/// the key count, the key types, then the options.
fn union_inter(
    e: &mut Engine,
    ctx: &mut Ctx,
    a: &[Bytes],
    name: &str,
    inter: bool,
    store: bool,
) -> Result<(ZSet, bool), Reply> {
    let n = int_arg(&a[0])?;
    if n < 1 {
        return Err(Reply::Error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if n as u64 > (a.len() - 1) as u64 {
        return Err(err(SYNTAX));
    }
    let n = n as usize;
    let db = &mut e.dbs[ctx.db];
    // The first pass removes inputs past their deadline, so the second may borrow them all.
    for k in &a[1..=n] {
        if let Some(Entry { value, .. }) = db.get(k, ctx.now) {
            if !matches!(value, Value::ZSet(_) | Value::Set(_)) {
                return Err(err(super::WRONGTYPE));
            }
        }
    }
    let db = &e.dbs[ctx.db];
    let srcs: Vec<Source> = a[1..=n]
        .iter()
        .map(|k| match db.peek(k).map(|x| &x.value) {
            Some(Value::ZSet(z)) => Source::Z(z),
            Some(Value::Set(s)) => Source::S(s),
            _ => Source::Empty,
        })
        .collect();
    let mut weights = vec![1.0; n];
    let mut how = Aggregate::Sum;
    let mut withscores = false;
    let mut j = n + 1;
    while j < a.len() {
        let remaining = a.len() - j;
        if remaining > n && is(&a[j], "weights") {
            for (i, w) in weights.iter_mut().enumerate() {
                *w = super::parse_f64(&a[j + 1 + i])
                    .ok_or_else(|| err("ERR weight value is not a float"))?;
            }
            j += n + 1;
        } else if remaining >= 2 && is(&a[j], "aggregate") {
            how = if is(&a[j + 1], "sum") {
                Aggregate::Sum
            } else if is(&a[j + 1], "min") {
                Aggregate::Min
            } else if is(&a[j + 1], "max") {
                Aggregate::Max
            } else {
                return Err(err(SYNTAX));
            };
            j += 2;
        } else if !store && is(&a[j], "withscores") {
            withscores = true;
            j += 1;
        } else {
            return Err(err(SYNTAX));
        }
    }
    // Smallest input first, as Redis orders them (it decides the order of float sums).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| srcs[i].len());
    let mut out = ZSet::default();
    // A stored result drops the sign of zero as ZADD does; a replied one keeps it.
    let put = if store {
        ZSet::insert
    } else {
        ZSet::insert_exact
    };
    let weighted = |w: f64, s: f64| {
        let v = w * s;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    if inter {
        let first = order[0];
        'members: for (m, s) in srcs[first].items() {
            let mut score = weighted(weights[first], s);
            for &i in &order[1..] {
                let Some(v) = srcs[i].score(m) else {
                    continue 'members;
                };
                aggregate(&mut score, v * weights[i], how);
            }
            put(&mut out, m.clone(), score);
        }
    } else {
        let mut acc: std::collections::HashMap<Bytes, f64> = std::collections::HashMap::new();
        for &i in &order {
            for (m, s) in srcs[i].items() {
                let v = weighted(weights[i], s);
                match acc.entry(m.clone()) {
                    std::collections::hash_map::Entry::Occupied(mut o) => {
                        aggregate(o.get_mut(), v, how)
                    }
                    std::collections::hash_map::Entry::Vacant(x) => {
                        x.insert(v);
                    }
                }
            }
        }
        for (m, s) in acc {
            put(&mut out, m, s);
        }
    }
    Ok((out, withscores))
}

fn store_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], name: &str, inter: bool) -> CmdResult {
    let (z, _) = union_inter(e, ctx, &a[1..], name, inter, true)?;
    let n = z.len();
    let db = &mut e.dbs[ctx.db];
    let changed = if n == 0 {
        db.remove(&a[0]).is_some()
    } else {
        db.insert(a[0].clone(), Value::ZSet(z), None);
        true
    };
    if changed {
        e.touch(ctx.db, &a[0]);
    }
    Ok(Reply::Int(n as i64))
}

fn read_generic(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], name: &str, inter: bool) -> CmdResult {
    let (z, withscores) = union_inter(e, ctx, a, name, inter, false)?;
    Ok(reply_items(z.order.iter(), withscores, 0, -1))
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT n]`: members with their scores.
pub fn zscan(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    // Redis's order: cursor, then the key, then the options (ignored for a missing key).
    super::parse_cursor(&a[1])?;
    let Some(z) = get_zset(&mut e.dbs[ctx.db], &a[0], ctx.now)? else {
        return Ok(Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])]));
    };
    let (cursor, o) = super::parse_scan(&a[1..], false)?;
    // Small sets come whole in score order, as Redis sends its compact encoding.
    let (next, page) = super::scan_page(z.order.iter(), cursor, o.count, |(_, m)| m.as_ref(), 128);
    let mut out = Vec::new();
    for (s, m) in page {
        if o.pattern
            .as_ref()
            .is_some_and(|p| !crate::db::glob_match(p, m))
        {
            continue;
        }
        out.push(Reply::Bulk(m.clone()));
        out.push(double_reply(s.0));
    }
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(out),
    ]))
}

/// `ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]`
pub fn zunionstore(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    store_generic(e, ctx, a, "zunionstore", false)
}

/// `ZINTERSTORE destination numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]`
pub fn zinterstore(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    store_generic(e, ctx, a, "zinterstore", true)
}

/// `ZUNION numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`
pub fn zunion(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    read_generic(e, ctx, a, "zunion", false)
}

/// `ZINTER numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`
pub fn zinter(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    read_generic(e, ctx, a, "zinter", true)
}
