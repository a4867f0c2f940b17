//! Connection, server and transaction commands: PING, AUTH, SELECT, CLIENT, INFO, COMMAND,
//! HELLO, DBSIZE, FLUSHDB, FLUSHALL, TIME, MULTI, EXEC, DISCARD, WATCH, UNWATCH.

use bytes::Bytes;

use super::{
    err, int_arg, is, CmdResult, Spec, BLOCKING, DENYOOM, NOSCRIPT, READONLY, SYNTAX, WRITE,
};
use crate::engine::{Ctx, Engine, RewriteState};
use crate::resp::Reply;

/// Version reported by INFO and HELLO (clients gate features on it).
pub const REDIS_VERSION: &str = "7.0.15";

/// `PING [message]`
pub fn ping(_: &mut Engine, _: &mut Ctx, a: &[Bytes]) -> CmdResult {
    match a.len() {
        0 => Ok(Reply::Simple("PONG")),
        1 => Ok(Reply::Bulk(a[0].clone())),
        _ => Err(err("ERR wrong number of arguments for 'ping' command")),
    }
}

/// `ECHO message`
pub fn echo(_: &mut Engine, _: &mut Ctx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(a[0].clone()))
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

fn check_auth(e: &mut Engine, ctx: &Ctx, user: Option<&[u8]>, pass: &[u8]) -> CmdResult {
    if user.is_some_and(|u| u != b"default") {
        return Err(err(WRONGPASS));
    }
    let ok = match &e.config.requirepass {
        None => true,
        Some(p) => p.as_bytes() == pass,
    };
    if !ok {
        return Err(err(WRONGPASS));
    }
    if let Some(c) = e.clients.get_mut(&ctx.client) {
        c.authed = true;
    }
    Ok(Reply::OK)
}

/// `AUTH [username] password`
pub fn auth(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    match a.len() {
        1 => {
            if e.config.requirepass.is_none() {
                return Err(err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
            }
            check_auth(e, ctx, None, &a[0])
        }
        2 => check_auth(e, ctx, Some(&a[0]), &a[1]),
        _ => Err(err(SYNTAX)),
    }
}

/// `SELECT index`
pub fn select(_: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let n = int_arg(&a[0])?;
    if !(0..crate::db::DB_COUNT as i64).contains(&n) {
        return Err(err("ERR DB index is out of range"));
    }
    ctx.db = n as usize;
    Ok(Reply::OK)
}

/// `QUIT`
pub fn quit(_: &mut Engine, ctx: &mut Ctx, _: &[Bytes]) -> CmdResult {
    ctx.close = true;
    Ok(Reply::OK)
}

fn valid_client_name(n: &[u8]) -> bool {
    n.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

/// `CLIENT SETNAME | GETNAME | ID | SETINFO`
pub fn client(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
    let wrong = |s: &str| {
        Err(Reply::Error(format!(
            "ERR wrong number of arguments for 'client|{s}' command"
        )))
    };
    match sub.as_str() {
        "setname" => {
            if a.len() != 2 {
                return wrong("setname");
            }
            if !valid_client_name(&a[1]) {
                return Err(err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            if let Some(c) = e.clients.get_mut(&ctx.client) {
                c.name = (!a[1].is_empty()).then(|| a[1].clone());
            }
            Ok(Reply::OK)
        }
        "getname" => {
            if a.len() != 1 {
                return wrong("getname");
            }
            Ok(e.clients
                .get(&ctx.client)
                .and_then(|c| c.name.clone())
                .map_or(Reply::Nil, Reply::Bulk))
        }
        "id" => {
            if a.len() != 1 {
                return wrong("id");
            }
            Ok(Reply::Int(ctx.client as i64))
        }
        // Newer clients announce their library; accepted and ignored.
        "setinfo" => {
            if a.len() != 3 {
                return wrong("setinfo");
            }
            Ok(Reply::OK)
        }
        _ => Err(Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&a[0])
                .chars()
                .take(128)
                .collect::<String>()
        ))),
    }
}

/// `BGREWRITEAOF`: compacts the append-only log in the background.
pub fn bgrewriteaof(e: &mut Engine, _: &mut Ctx, _: &[Bytes]) -> CmdResult {
    if e.log.is_none() {
        return Err(err(
            "ERR Background append only file rewriting is not possible: appendonly is off",
        ));
    }
    match e.rewrite {
        RewriteState::Idle => {
            e.rewrite = RewriteState::Requested;
            Ok(Reply::Simple(
                "Background append only file rewriting started",
            ))
        }
        _ => Err(err(
            "ERR Background append only file rewriting already in progress",
        )),
    }
}

/// `INFO [section ...]`
pub fn info(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let want = |s: &str| {
        a.is_empty()
            || a.iter()
                .any(|x| is(x, s) || is(x, "all") || is(x, "everything") || is(x, "default"))
    };
    let mut out = String::new();
    let uptime = ctx.now.saturating_sub(e.start_ms) / 1000;
    if want("server") {
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:0\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nexecutable:isola\r\n\r\n",
            std::env::consts::OS,
            std::process::id(),
            uptime / 86400
        ));
    }
    let stats = e.keyspace_stats();
    if want("clients") {
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:{}\r\n\r\n",
            e.client_count(),
            e.blocked_count()
        ));
    }
    if want("memory") {
        out.push_str(&format!(
            "# Memory\r\nused_memory:{}\r\nused_memory_lua:{}\r\nnumber_of_cached_scripts:{}\r\nmaxmemory:{}\r\nmaxmemory_policy:{}\r\n\r\n",
            stats.used_memory,
            e.scripting.used_memory(),
            e.scripting.cached(),
            e.config.maxmemory,
            e.config.maxmemory_policy.name()
        ));
    }
    if want("persistence") {
        let status = match e.log_health.as_ref().and_then(|h| h.error()) {
            Some(_) => "err",
            None => "ok",
        };
        out.push_str(&format!(
            "# Persistence\r\nloading:0\r\naof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_rewrites:{}\r\naof_last_write_status:{status}\r\n\r\n",
            u8::from(e.log.is_some()),
            u8::from(e.rewrite == RewriteState::Running),
            u8::from(e.rewrite == RewriteState::Requested),
            e.rewrites,
        ));
    }
    if want("stats") {
        out.push_str(&format!(
            "# Stats\r\ntotal_commands_processed:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\n\r\n",
            e.commands_processed, stats.expired_keys, e.evicted_keys
        ));
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        for (i, (k, x)) in stats.keys.iter().zip(&stats.expires).enumerate() {
            if *k > 0 {
                out.push_str(&format!("db{i}:keys={k},expires={x},avg_ttl=0\r\n"));
            }
        }
        out.push_str("\r\n");
    }
    // Redis trims the blank line after the last section.
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    Ok(Reply::Bulk(Bytes::from(out)))
}

fn command_info(s: &Spec) -> Reply {
    let mut flags = Vec::new();
    if s.flags & WRITE != 0 {
        flags.push(Reply::Simple("write"));
    }
    // Redis's order of the flags it shares with the store.
    if s.flags & READONLY != 0 {
        flags.push(Reply::Simple("readonly"));
    }
    if s.flags & DENYOOM != 0 {
        flags.push(Reply::Simple("denyoom"));
    }
    if s.flags & NOSCRIPT != 0 {
        flags.push(Reply::Simple("noscript"));
    }
    if s.flags & BLOCKING != 0 {
        flags.push(Reply::Simple("blocking"));
    }
    Reply::Array(vec![
        Reply::bulk(s.name),
        Reply::Int(i64::from(s.arity)),
        Reply::Array(flags),
        Reply::Int(i64::from(s.first)),
        Reply::Int(i64::from(s.last)),
        Reply::Int(i64::from(s.step)),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// `COMMAND [COUNT | INFO name... | DOCS ...]`
pub fn command(e: &mut Engine, _: &mut Ctx, a: &[Bytes]) -> CmdResult {
    if a.is_empty() {
        return Ok(Reply::Array(
            super::COMMANDS.iter().map(command_info).collect(),
        ));
    }
    if is(&a[0], "count") {
        return Ok(Reply::Int(super::COMMANDS.len() as i64));
    }
    if is(&a[0], "info") {
        return Ok(Reply::Array(
            a[1..]
                .iter()
                .map(|n| {
                    e.spec(&String::from_utf8_lossy(n).to_ascii_lowercase())
                        .map_or(Reply::Nil, command_info)
                })
                .collect(),
        ));
    }
    // Documentation is not shipped; an empty map keeps clients that ask for it working.
    if is(&a[0], "docs") {
        return Ok(Reply::Array(vec![]));
    }
    Err(Reply::Error(format!(
        "ERR unknown subcommand '{}'. Try COMMAND HELP.",
        String::from_utf8_lossy(&a[0])
    )))
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 only.
pub fn hello(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    if let Some(v) = a.first() {
        let v = super::parse_i64_strict(v)
            .ok_or_else(|| err("ERR Protocol version is not an integer or out of range"))?;
        if v != 2 {
            return Err(err("NOPROTO unsupported protocol version"));
        }
    }
    let mut i = 1;
    let mut name = None;
    while i < a.len() {
        if is(&a[i], "auth") && i + 2 < a.len() {
            check_auth(e, ctx, Some(&a[i + 1]), &a[i + 2])?;
            i += 3;
        } else if is(&a[i], "setname") && i + 1 < a.len() {
            if !valid_client_name(&a[i + 1]) {
                return Err(err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            name = Some(a[i + 1].clone());
            i += 2;
        } else {
            return Err(Reply::Error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&a[i])
            )));
        }
    }
    if !e.clients.get(&ctx.client).is_some_and(|c| c.authed) {
        return Err(err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let (Some(n), Some(c)) = (name, e.clients.get_mut(&ctx.client)) {
        c.name = (!n.is_empty()).then_some(n);
    }
    Ok(Reply::Array(vec![
        Reply::bulk("server"),
        Reply::bulk("redis"),
        Reply::bulk("version"),
        Reply::bulk(REDIS_VERSION),
        Reply::bulk("proto"),
        Reply::Int(2),
        Reply::bulk("id"),
        Reply::Int(ctx.client as i64),
        Reply::bulk("mode"),
        Reply::bulk("standalone"),
        Reply::bulk("role"),
        Reply::bulk("master"),
        Reply::bulk("modules"),
        Reply::Array(vec![]),
    ]))
}

/// `DBSIZE`
pub fn dbsize(e: &mut Engine, ctx: &mut Ctx, _: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(e.dbs[ctx.db].len() as i64))
}

fn flush_mode(a: &[Bytes]) -> Result<(), Reply> {
    match a {
        [] => Ok(()),
        [m] if is(m, "async") || is(m, "sync") => Ok(()),
        _ => Err(err(SYNTAX)),
    }
}

/// `FLUSHDB [ASYNC|SYNC]`
pub fn flushdb(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    flush_mode(a)?;
    e.touch_all(Some(ctx.db));
    e.dbs[ctx.db].clear();
    Ok(Reply::OK)
}

/// `FLUSHALL [ASYNC|SYNC]`
pub fn flushall(e: &mut Engine, _: &mut Ctx, a: &[Bytes]) -> CmdResult {
    flush_mode(a)?;
    e.touch_all(None);
    for db in &mut e.dbs {
        db.clear();
    }
    Ok(Reply::OK)
}

/// `TIME`
pub fn time(_: &mut Engine, ctx: &mut Ctx, _: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(vec![
        Reply::bulk((ctx.now / 1000).to_string()),
        Reply::bulk(((ctx.now % 1000) * 1000).to_string()),
    ]))
}

/// `MULTI`
pub fn multi(e: &mut Engine, ctx: &mut Ctx, _: &[Bytes]) -> CmdResult {
    let Some(c) = e.clients.get_mut(&ctx.client) else {
        return Err(err("ERR no client"));
    };
    if c.multi.is_some() {
        return Err(err("ERR MULTI calls can not be nested"));
    }
    c.multi = Some(Vec::new());
    c.multi_dirty = false;
    c.multi_bytes = 0;
    Ok(Reply::OK)
}

/// `EXEC`
pub fn exec(e: &mut Engine, ctx: &mut Ctx, _: &[Bytes]) -> CmdResult {
    let Some(c) = e.clients.get_mut(&ctx.client) else {
        return Err(err("ERR EXEC without MULTI"));
    };
    let Some(queued) = c.multi.take() else {
        return Err(err("ERR EXEC without MULTI"));
    };
    let dirty = std::mem::take(&mut c.multi_dirty);
    if dirty {
        e.unwatch_all(ctx.client);
        return Err(err(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    let broken = e.watch_broken(ctx.client, ctx.now);
    e.unwatch_all(ctx.client);
    if broken {
        return Ok(Reply::NilArray);
    }
    let r = e.run_queued(ctx.client, queued);
    if let Some(c) = e.clients.get(&ctx.client) {
        ctx.db = c.db;
    }
    Ok(r)
}

/// `DISCARD`
pub fn discard(e: &mut Engine, ctx: &mut Ctx, _: &[Bytes]) -> CmdResult {
    let Some(c) = e.clients.get_mut(&ctx.client) else {
        return Err(err("ERR DISCARD without MULTI"));
    };
    if c.multi.take().is_none() {
        return Err(err("ERR DISCARD without MULTI"));
    }
    c.multi_dirty = false;
    e.unwatch_all(ctx.client);
    Ok(Reply::OK)
}

/// `WATCH key [key ...]`
pub fn watch(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    if e.clients
        .get(&ctx.client)
        .is_some_and(|c| c.multi.is_some())
    {
        return Err(err("ERR WATCH inside MULTI is not allowed"));
    }
    for k in a {
        e.watch(ctx.client, ctx.db, k.clone(), ctx.now);
    }
    Ok(Reply::OK)
}

/// `UNWATCH`
pub fn unwatch(e: &mut Engine, ctx: &mut Ctx, _: &[Bytes]) -> CmdResult {
    e.unwatch_all(ctx.client);
    Ok(Reply::OK)
}
