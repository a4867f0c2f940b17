//! Lua scripting: the interpreter, script cache and environment behind EVAL, EVALSHA and
//! SCRIPT.
//!
//! This module owns one Lua 5.1 state per engine (created on first use, dropped by SCRIPT
//! FLUSH), the compiled scripts keyed by the SHA1 of their body, and the bounds that keep a
//! script from taking the store down: an instruction-count hook stops a script that runs past
//! its time limit, the Lua allocator refuses to grow past [`MEMORY_LIMIT`], and the cache holds
//! at most [`MAX_SCRIPTS`] scripts. It builds the environment Redis 7.0 gives scripts
//! (`redis`, `cjson`, `bit`, protected globals, deterministic `math.random`) and converts
//! values both ways with Redis's rules.
//!
//! A script reaches the keyspace only through `redis.call`/`redis.pcall`, which run each
//! command through `Engine::call` like any other; this module never reads or writes keys
//! itself, and never lets a script block, start a transaction or run another script.

pub(crate) mod bit;
pub(crate) mod cjson;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{
    ChunkMode, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState,
};

use crate::cmd::{fmt_double, fmt_g, NOSCRIPT, WRITE};
use crate::engine::{arity_ok, Ctx, Engine};
use crate::resp::Reply;

/// Default for how long one script may run before it is stopped (Redis's `lua-time-limit`).
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(5);
/// Most bytes the Lua state may hold (compiled scripts included).
pub const MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// Most scripts kept compiled; adding one more empties the cache first.
pub const MAX_SCRIPTS: usize = 10_000;
/// Instructions between two checks of the time limit.
const HOOK_EVERY: u32 = 100_000;
/// Deepest table nesting converted to a reply.
const MAX_REPLY_DEPTH: usize = 1000;

/// Redis's reply to EVALSHA with an unknown digest.
pub const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// An error raised by a Rust function called from a script.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ScriptError {
    /// An error table `{err = text}`: `redis.call` failures and other Redis API errors.
    #[error("{0}")]
    Reply(String),
    /// A plain Lua error message, position included, as `luaL_error` raises.
    #[error("{0}")]
    Lua(String),
    /// The script ran past its time limit.
    #[error("script timed out")]
    Timeout,
}

/// Raises a Lua error the way a C library function does: prefixed with the caller's position.
pub(crate) fn lua_error(lua: &Lua, msg: &str) -> mlua::Error {
    mlua::Error::external(ScriptError::Lua(format!("{}{msg}", position(lua, 1))))
}

fn reply_error(text: String) -> mlua::Error {
    mlua::Error::external(ScriptError::Reply(text))
}

/// `luaL_where`: `"chunk:line: "` for a Lua function at `level`, empty otherwise.
fn position(lua: &Lua, level: usize) -> String {
    lua.inspect_stack(level, |d| {
        let line = d.current_line().unwrap_or(0);
        let src = d.source().short_src.map(|s| s.into_owned());
        match (line, src) {
            (l, Some(s)) if l > 0 => format!("{s}:{l}: "),
            _ => String::new(),
        }
    })
    .unwrap_or_default()
}

/// Lua 5.1's name for a value's type.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// Lua 5.1's string-to-number coercion (`luaO_str2d`): decimal or hexadecimal, surrounding
/// spaces allowed.
pub(crate) fn str_to_number(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b)
        .ok()?
        .trim_matches(|c: char| c.is_ascii_whitespace());
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    if s.is_empty() || s.starts_with('+') && s[1..].starts_with(['+', '-']) {
        return None;
    }
    s.parse().ok()
}

/// Lua's `tostring` for error messages.
fn lua_tostring(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Number(n) => fmt_g(*n, 14).into_bytes(),
        Value::Integer(n) => n.to_string().into_bytes(),
        Value::Boolean(b) => b.to_string().into_bytes(),
        Value::Nil => b"nil".to_vec(),
        v => format!("{}: {:p}", type_name(v), v.to_pointer()).into_bytes(),
    }
}

/// Text of a Lua string or number, as `lua_tostring` gives it.
fn text_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Integer(_) => Some(lua_tostring(v)),
        _ => None,
    }
}

/// Redis's error texts carry no newline: `\r` and `\n` become spaces after trailing ones go.
fn one_line(b: &[u8]) -> String {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    String::from_utf8_lossy(&b[..end]).replace(['\r', '\n'], " ")
}

/// `luaPushErrorBuff`: `-CODE msg` keeps its code, anything else gets `ERR`.
fn error_text(buf: &str) -> String {
    let (code, msg) = match buf.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => (code, msg),
            None => ("ERR", rest),
        },
        None => ("ERR", buf),
    };
    format!("{code} {}", msg.trim_matches(['\r', '\n']))
}

fn find_error(e: &mlua::Error) -> Option<&ScriptError> {
    match e {
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            find_error(cause)
        }
        mlua::Error::ExternalError(x) => x.downcast_ref::<ScriptError>(),
        _ => None,
    }
}

/// The message of the innermost cause, without tracebacks.
fn plain_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            plain_message(cause)
        }
        mlua::Error::RuntimeError(s) | mlua::Error::MemoryError(s) => s.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        e => e.to_string(),
    }
}

/// Stops runaway scripts: the hook compares the clock with the deadline every
/// [`HOOK_EVERY`] instructions.
#[derive(Default)]
struct Watchdog {
    deadline: Mutex<Option<Instant>>,
    killed: AtomicBool,
}

impl Watchdog {
    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, d: Option<Instant>) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }
}

fn install_hook(lua: &Lua, dog: Arc<Watchdog>, every: u32) -> mlua::Result<()> {
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(every),
        move |lua, _| {
            if dog.killed.load(Ordering::Relaxed) {
                return Err(mlua::Error::external(ScriptError::Timeout));
            }
            if dog.deadline().is_some_and(|d| Instant::now() >= d) {
                dog.killed.store(true, Ordering::Relaxed);
                // From now on every instruction fails, so a script that catches the error
                // with pcall cannot go on: it is stopped again at its next instruction.
                install_hook(lua, dog.clone(), 1)?;
                return Err(mlua::Error::external(ScriptError::Timeout));
            }
            Ok(VmState::Continue)
        },
    )
}

/// Redis's `lrand48` clone behind `math.random`: the same sequence as Redis for the same
/// history, never reseeded between scripts (Redis 7.0 does not reseed either).
#[derive(Debug)]
struct Rand(AtomicU64);

impl Rand {
    const INIT: u64 = 0x1234_ABCD_330E;

    fn next(&self) -> i32 {
        let x = self.0.load(Ordering::Relaxed);
        let x = (x.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & ((1 << 48) - 1);
        self.0.store(x, Ordering::Relaxed);
        (x >> 17) as i32
    }

    fn seed(&self, s: i32) {
        let s = s as u32;
        let v = 0x330E | (u64::from(s & 0xFFFF) << 16) | (u64::from(s >> 16) << 32);
        self.0.store(v, Ordering::Relaxed);
    }
}

/// Flags of a compiled script; the function itself lives in the Lua state (`f_<sha>` in
/// [`State::funcs`]), because every handle held from Rust takes a slot of a bounded stack.
#[derive(Clone, Copy)]
struct Script {
    /// No shebang: Redis's compatibility mode (writes allowed, flags unchecked).
    compat: bool,
    /// `#!lua flags=no-writes`.
    no_writes: bool,
}

/// The Lua state and what lives in it.
struct State {
    lua: Lua,
    xpcall: Function,
    handler: Function,
    /// The base library's `next`, to walk tables without collecting their values.
    next: Function,
    /// The real `redis` table (scripts see it through a read-only proxy).
    redis: Table,
    /// The real globals (scripts see them through a read-only proxy).
    globals: Table,
    /// Compiled scripts by `f_<sha>`, like Redis's registry entries.
    funcs: Table,
    scripts: HashMap<String, Script>,
}

/// Scripting state of one engine.
pub struct Scripting {
    state: Option<State>,
    time_limit: Duration,
    dog: Arc<Watchdog>,
    rand: Arc<Rand>,
}

impl std::fmt::Debug for Scripting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripting")
            .field("scripts", &self.cached())
            .field("time_limit", &self.time_limit)
            .finish()
    }
}

impl Scripting {
    /// No Lua state yet; it is created by the first script.
    pub fn new(time_limit: Duration) -> Self {
        Scripting {
            state: None,
            time_limit,
            dog: Arc::default(),
            rand: Arc::new(Rand(AtomicU64::new(Rand::INIT))),
        }
    }

    /// Number of cached scripts.
    pub fn cached(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.scripts.len())
    }

    /// Bytes held by the Lua state.
    pub fn used_memory(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.lua.used_memory())
    }

    /// SCRIPT FLUSH: drops every script and the Lua state with them.
    pub fn flush(&mut self) {
        self.state = None;
    }

    /// True when a script with this SHA1 (any case) is cached.
    pub fn exists(&self, sha: &[u8]) -> bool {
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        self.state
            .as_ref()
            .is_some_and(|s| s.scripts.contains_key(&sha))
    }

    fn state(&mut self) -> Result<&mut State, Reply> {
        if self.state.is_none() {
            let s = build(self.dog.clone(), self.rand.clone()).map_err(|e| {
                tracing::error!(error = %e, "store: cannot create the Lua state");
                Reply::Error(format!(
                    "ERR cannot create the Lua state: {}",
                    one_line(plain_message(&e).as_bytes())
                ))
            })?;
            self.state = Some(s);
        }
        self.state
            .as_mut()
            .ok_or_else(|| Reply::err("ERR cannot create the Lua state"))
    }

    /// SCRIPT LOAD and the first EVAL of a body: compiles and caches it, returns its SHA1.
    pub fn load(&mut self, body: &[u8]) -> Result<String, Reply> {
        let sha = sha1hex(body);
        self.compile(&sha, body)?;
        Ok(sha)
    }

    fn compile(&mut self, sha: &str, body: &[u8]) -> Result<Script, Reply> {
        let state = self.state()?;
        if let Some(s) = state.scripts.get(sha) {
            return Ok(*s);
        }
        let (skip, compat, no_writes) = shebang(body)?;
        if state.scripts.len() >= MAX_SCRIPTS || state.lua.used_memory() > MEMORY_LIMIT / 2 {
            tracing::warn!(
                scripts = state.scripts.len(),
                "store: script cache full, dropping every cached script"
            );
            state.scripts.clear();
            state.funcs = state.lua.create_table().map_err(|e| {
                Reply::Error(format!("ERR {}", one_line(plain_message(&e).as_bytes())))
            })?;
            let _ = state.lua.gc_collect();
        }
        // The shebang line is cut but its newline kept, so line numbers stay right.
        let func = state
            .lua
            .load(&body[skip..])
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|e| {
                Reply::Error(format!(
                    "ERR Error compiling script (new function): {}",
                    one_line(plain_message(&e).as_bytes())
                ))
            })?;
        state
            .funcs
            .raw_set(format!("f_{sha}"), func)
            .map_err(|e| Reply::Error(format!("ERR {}", one_line(plain_message(&e).as_bytes()))))?;
        let script = Script { compat, no_writes };
        state.scripts.insert(sha.to_owned(), script);
        Ok(script)
    }
}

/// SHA1 of a script body in lowercase hex, as Redis names scripts.
pub fn sha1hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// Parses a `#!lua flags=...` first line: bytes to skip, compatibility mode, no-writes.
fn shebang(body: &[u8]) -> Result<(usize, bool, bool), Reply> {
    if !body.starts_with(b"#!") {
        return Ok((0, true, false));
    }
    let Some(end) = body.iter().position(|&c| c == b'\n') else {
        return Err(Reply::err("ERR Invalid script shebang"));
    };
    let parts = crate::resp::split_args(&body[..end])
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Reply::err("ERR Invalid engine in script shebang"))?;
    if parts[0].as_ref() != b"#!lua" {
        return Err(Reply::Error(format!(
            "ERR Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        )));
    }
    let mut no_writes = false;
    for p in &parts[1..] {
        let Some(flags) = p.strip_prefix(b"flags=") else {
            return Err(Reply::Error(format!(
                "ERR Unknown lua shebang option: {}",
                String::from_utf8_lossy(p)
            )));
        };
        for f in flags.split(|&c| c == b',') {
            match f {
                b"no-writes" => no_writes = true,
                b"allow-oom" | b"allow-stale" | b"no-cluster" | b"allow-cross-slot-keys" => {}
                _ => {
                    return Err(Reply::Error(format!(
                        "ERR Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(f)
                    )))
                }
            }
        }
    }
    Ok((end, false, no_writes))
}

const PCALL_WRAPPER: &str = r#"
local rawpcall, conv = ...
local function fix(ok, ...)
  if ok then return true, ... end
  return false, conv((...))
end
return function(...) return fix(rawpcall(...)) end
"#;

/// Builds a Lua state with Redis's script environment.
fn build(dog: Arc<Watchdog>, rand: Arc<Rand>) -> mlua::Result<State> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::new(),
    )?;
    lua.set_memory_limit(MEMORY_LIMIT)?;
    let g = lua.globals();
    // Redis removes file access, printing and environment tampering from the base library.
    for name in [
        "dofile", "loadfile", "print", "getfenv", "setfenv", "newproxy",
    ] {
        g.raw_set(name, Value::Nil)?;
    }
    g.raw_set("loadstring", lua.create_function(loadstring)?)?;
    let collect: Function = g.raw_get("collectgarbage")?;
    g.raw_set(
        "collectgarbage",
        lua.create_function(move |lua, a: MultiValue| {
            // A stopped collector would outlive the script and starve every later one.
            if matches!(a.front(), Some(Value::String(s)) if s.as_bytes().as_ref() == b"stop") {
                return Ok(MultiValue::from_iter([Value::Number(0.0)]));
            }
            let opt = match a.front() {
                None | Some(Value::Nil) => b"collect".to_vec(),
                Some(v @ (Value::String(_) | Value::Number(_) | Value::Integer(_))) => {
                    lua_tostring(v)
                }
                Some(v) => {
                    return Err(lua_error(
                        lua,
                        &format!(
                            "bad argument #1 to 'collectgarbage' (string expected, got {})",
                            type_name(v)
                        ),
                    ))
                }
            };
            const OPTIONS: [&[u8]; 7] = [
                b"stop",
                b"restart",
                b"collect",
                b"count",
                b"step",
                b"setpause",
                b"setstepmul",
            ];
            if !OPTIONS.contains(&opt.as_slice()) {
                return Err(lua_error(
                    lua,
                    &format!(
                        "bad argument #1 to 'collectgarbage' (invalid option '{}')",
                        String::from_utf8_lossy(&opt)
                    ),
                ));
            }
            collect.call::<MultiValue>(a).map_err(|e| {
                let msg = plain_message(&e);
                let first = msg.lines().next().unwrap_or_default();
                lua_error(lua, &first.replace("to '?'", "to 'collectgarbage'"))
            })
        })?,
    )?;
    g.raw_set("load", lua.create_function(load)?)?;
    g.raw_set("cjson", cjson::module(&lua, g.raw_get("next")?)?)?;
    g.raw_set("bit", bit::module(&lua)?)?;
    let redis = redis_table(&lua)?;
    g.raw_set("redis", redis.clone())?;
    let math: Table = g.raw_get("math")?;
    let r = rand.clone();
    math.raw_set(
        "random",
        lua.create_function(move |lua, a: MultiValue| math_random(lua, &r, &a))?,
    )?;
    math.raw_set(
        "randomseed",
        lua.create_function(move |lua, a: MultiValue| {
            let s = check_int(lua, &a, 0, "randomseed")?;
            rand.seed(s);
            Ok(())
        })?,
    )?;
    let rawpcall: Function = g.raw_get("pcall")?;
    let conv = lua.create_function(pcall_error)?;
    let pcall: Function = lua
        .load(PCALL_WRAPPER)
        .set_name("=pcall")
        .call((rawpcall, conv))?;
    g.raw_set("pcall", pcall)?;
    let xpcall: Function = g.raw_get("xpcall")?;
    let next: Function = g.raw_get("next")?;
    let handler = lua.create_function(message_handler)?;
    g.raw_set("__redis__err__handler", handler.clone())?;

    // Read-only globals and libraries, as Redis 7.0's patched Lua has: scripts see proxies
    // whose writes fail, and reading an unknown global fails.
    let readonly = lua.create_function(|lua, _: MultiValue| -> mlua::Result<()> {
        Err(lua_error(lua, "Attempt to modify a readonly table"))
    })?;
    for name in [
        "string",
        "table",
        "math",
        "coroutine",
        "cjson",
        "bit",
        "redis",
    ] {
        if let Value::Table(t) = g.raw_get::<Value>(name)? {
            g.raw_set(name, proxy(&lua, t, &readonly)?)?;
        }
    }
    // Strings find their methods through their metatable: point it at the proxy, and hand
    // scripts a read-only view of the metatable itself.
    let string_meta: Table = lua.load("return getmetatable('')").eval()?;
    string_meta.raw_set("__index", g.raw_get::<Value>("string")?)?;
    let meta_view = proxy(&lua, string_meta.clone(), &readonly)?;
    string_meta.raw_set("__metatable", meta_view)?;
    let missing = lua.create_function(|lua, (_, k): (Value, Value)| -> mlua::Result<()> {
        Err(lua_error(
            lua,
            &format!(
                "Script attempted to access nonexistent global variable '{}'",
                String::from_utf8_lossy(&lua_tostring(&k))
            ),
        ))
    })?;
    let meta = lua.create_table()?;
    meta.raw_set("__index", missing)?;
    g.set_metatable(Some(meta))?;
    let visible = proxy(&lua, g.clone(), &readonly)?;
    g.raw_set("_G", visible.clone())?;
    lua.set_globals(visible)?;
    install_hook(&lua, dog, HOOK_EVERY)?;
    let funcs = lua.create_table()?;
    Ok(State {
        lua,
        xpcall,
        handler,
        next,
        redis,
        globals: g,
        funcs,
        scripts: HashMap::new(),
    })
}

fn proxy(lua: &Lua, target: Table, readonly: &Function) -> mlua::Result<Table> {
    let meta = lua.create_table()?;
    meta.raw_set("__index", target)?;
    meta.raw_set("__newindex", readonly.clone())?;
    meta.raw_set("__metatable", false)?;
    let p = lua.create_table()?;
    p.set_metatable(Some(meta))?;
    Ok(p)
}

/// `loadstring` without binary chunks (Redis's Lua parses text only).
fn loadstring(lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let src = match a.front() {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(v @ (Value::Number(_) | Value::Integer(_))) => lua_tostring(v),
        v => {
            return Err(lua_error(
                lua,
                &format!(
                    "bad argument #1 to 'loadstring' (string expected, got {})",
                    v.map_or("no value", type_name)
                ),
            ))
        }
    };
    let name = match a.get(1) {
        Some(v @ (Value::String(_) | Value::Number(_))) => lua_tostring(v),
        _ => src.clone(),
    };
    compile_chunk(lua, &src, &name)
}

/// `load` with a reader function, text chunks only.
fn load(lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let Some(Value::Function(reader)) = a.front() else {
        return Err(lua_error(
            lua,
            &format!(
                "bad argument #1 to 'load' (function expected, got {})",
                a.front().map_or("no value", type_name)
            ),
        ));
    };
    let mut src = Vec::new();
    loop {
        match reader.call::<Value>(())? {
            Value::String(s) if !s.as_bytes().is_empty() => src.extend_from_slice(&s.as_bytes()),
            Value::Nil | Value::String(_) => break,
            _ => {
                return Ok(MultiValue::from_iter([
                    Value::Nil,
                    Value::String(lua.create_string("reader function must return a string")?),
                ]))
            }
        }
    }
    let name = match a.get(1) {
        Some(v @ (Value::String(_) | Value::Number(_))) => lua_tostring(v),
        _ => b"=(load)".to_vec(),
    };
    compile_chunk(lua, &src, &name)
}

fn compile_chunk(lua: &Lua, src: &[u8], name: &[u8]) -> mlua::Result<MultiValue> {
    let name = String::from_utf8_lossy(name).replace('\0', "?");
    match lua
        .load(src)
        .set_name(name)
        .set_mode(ChunkMode::Text)
        .into_function()
    {
        Ok(f) => Ok(MultiValue::from_iter([Value::Function(f)])),
        Err(e) => Ok(MultiValue::from_iter([
            Value::Nil,
            Value::String(lua.create_string(plain_message(&e))?),
        ])),
    }
}

/// `luaL_checkint`.
fn check_int(lua: &Lua, a: &MultiValue, i: usize, fname: &str) -> mlua::Result<i32> {
    let n = match a.get(i) {
        Some(Value::Number(n)) => Some(*n),
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::String(s)) => str_to_number(&s.as_bytes()),
        _ => None,
    };
    n.map(|n| n as i32).ok_or_else(|| {
        lua_error(
            lua,
            &format!(
                "bad argument #{} to '{fname}' (number expected, got {})",
                i + 1,
                a.get(i).map_or("no value", type_name)
            ),
        )
    })
}

fn math_random(lua: &Lua, rand: &Rand, a: &MultiValue) -> mlua::Result<f64> {
    const MAX: i32 = i32::MAX;
    let r = f64::from(rand.next() % MAX) / f64::from(MAX);
    match a.len() {
        0 => Ok(r),
        1 => {
            let u = check_int(lua, a, 0, "random")?;
            if u < 1 {
                return Err(lua_error(
                    lua,
                    "bad argument #1 to 'random' (interval is empty)",
                ));
            }
            Ok((r * f64::from(u)).floor() + 1.0)
        }
        2 => {
            let l = check_int(lua, a, 0, "random")?;
            let u = check_int(lua, a, 1, "random")?;
            if l > u {
                return Err(lua_error(
                    lua,
                    "bad argument #2 to 'random' (interval is empty)",
                ));
            }
            Ok((r * (f64::from(u) - f64::from(l) + 1.0)).floor() + f64::from(l))
        }
        _ => Err(lua_error(lua, "wrong number of arguments")),
    }
}

/// What the script-level `pcall` returns as the error value: Redis returns the text of error
/// tables, and this store's Rust errors become the text Redis would have produced.
fn pcall_error(lua: &Lua, e: Value) -> mlua::Result<Value> {
    let text = match &e {
        Value::Error(err) => match find_error(err) {
            Some(ScriptError::Reply(m) | ScriptError::Lua(m)) => m.clone(),
            Some(ScriptError::Timeout) => timeout_text(),
            None => plain_message(err),
        },
        Value::Table(t) => match t.raw_get::<Value>("err")? {
            v @ (Value::String(_) | Value::Number(_)) => return Ok(v),
            _ => return Ok(e),
        },
        _ => return Ok(e),
    };
    Ok(Value::String(lua.create_string(text)?))
}

fn timeout_text() -> String {
    "ERR Script killed: it ran longer than the script time limit".to_owned()
}

fn err_table(lua: &Lua, text: impl AsRef<[u8]>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(text)?)?;
    Ok(t)
}

/// The message handler of a script run (Redis's `__redis__err__handler`): turns any error
/// into an `{err=...}` table and records where the script was when it failed.
fn message_handler(lua: &Lua, err: Value) -> mlua::Result<Value> {
    let t = match err {
        Value::Table(t) => t,
        Value::Error(e) => err_table(
            lua,
            match find_error(&e) {
                Some(ScriptError::Reply(m)) => m.clone(),
                Some(ScriptError::Lua(m)) => format!("ERR {m}"),
                Some(ScriptError::Timeout) => timeout_text(),
                None => format!("ERR {}", plain_message(&e)),
            },
        )?,
        v => {
            let mut text = b"ERR ".to_vec();
            text.extend(lua_tostring(&v));
            err_table(lua, text)?
        }
    };
    // Level 1 is the function that raised; a C function there (error, redis.call) means the
    // position of interest is its caller's.
    let frame = |level| {
        lua.inspect_stack(level, |d| {
            let src = d.source();
            (
                src.what,
                src.source.map(|s| s.into_owned()),
                d.current_line(),
            )
        })
    };
    let mut info = frame(1);
    if info.as_ref().is_some_and(|(what, _, _)| *what == "C") {
        info = frame(2);
    }
    if let Some((_, source, line)) = info {
        t.raw_set("source", source.unwrap_or_default())?;
        t.raw_set("line", line.map_or(-1.0, |l| l as f64))?;
    }
    Ok(Value::Table(t))
}

fn redis_table(lua: &Lua) -> mlua::Result<Table> {
    let r = lua.create_table()?;
    let outside = lua.create_function(|_, _: MultiValue| -> mlua::Result<()> {
        Err(reply_error(
            "ERR redis.call/pcall can only be called inside a script invocation".to_owned(),
        ))
    })?;
    r.raw_set("call", outside.clone())?;
    r.raw_set("pcall", outside)?;
    r.raw_set(
        "sha1hex",
        lua.create_function(|lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(reply_error("ERR wrong number of arguments".to_owned()));
            }
            let body = text_of(&a[0]).unwrap_or_default();
            lua.create_string(sha1hex(&body))
        })?,
    )?;
    r.raw_set(
        "error_reply",
        lua.create_function(|lua, a: MultiValue| match a.front() {
            Some(Value::String(s)) if a.len() == 1 => {
                let s = String::from_utf8_lossy(&s.as_bytes()).into_owned();
                let buf = if s.starts_with('-') {
                    s
                } else {
                    format!("-{s}")
                };
                err_table(lua, error_text(&buf))
            }
            _ => err_table(lua, "ERR wrong number or type of arguments"),
        })?,
    )?;
    r.raw_set(
        "status_reply",
        lua.create_function(|lua, a: MultiValue| match a.front() {
            Some(v @ Value::String(_)) if a.len() == 1 => {
                let t = lua.create_table()?;
                t.raw_set("ok", v.clone())?;
                Ok(t)
            }
            _ => err_table(lua, "ERR wrong number or type of arguments"),
        })?,
    )?;
    r.raw_set(
        "log",
        lua.create_function(|_, a: MultiValue| {
            if a.len() < 2 {
                return Err(reply_error(
                    "ERR redis.log() requires two arguments or more.".to_owned(),
                ));
            }
            let level = match &a[0] {
                Value::Number(n) => *n as i64,
                Value::Integer(n) => *n,
                Value::String(s) => match str_to_number(&s.as_bytes()) {
                    Some(n) => n as i64,
                    None => {
                        return Err(reply_error(
                            "ERR First argument must be a number (log level).".to_owned(),
                        ))
                    }
                },
                _ => {
                    return Err(reply_error(
                        "ERR First argument must be a number (log level).".to_owned(),
                    ))
                }
            };
            if !(0..=3).contains(&level) {
                return Err(reply_error("ERR Invalid debug level.".to_owned()));
            }
            let msg: Vec<String> = a
                .iter()
                .skip(1)
                .filter_map(text_of)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect();
            let msg = msg.join(" ");
            match level {
                0 => tracing::debug!(target: "isola_store::script", "{msg}"),
                1 | 2 => tracing::info!(target: "isola_store::script", "{msg}"),
                _ => tracing::warn!(target: "isola_store::script", "{msg}"),
            }
            Ok(())
        })?,
    )?;
    r.raw_set("LOG_DEBUG", 0)?;
    r.raw_set("LOG_VERBOSE", 1)?;
    r.raw_set("LOG_NOTICE", 2)?;
    r.raw_set("LOG_WARNING", 3)?;
    r.raw_set(
        "setresp",
        lua.create_function(|_, a: MultiValue| {
            if a.len() != 1 {
                return Err(reply_error(
                    "ERR redis.setresp() requires one argument.".to_owned(),
                ));
            }
            let v = match &a[0] {
                Value::Number(n) => *n as i64,
                Value::Integer(n) => *n,
                Value::String(s) => str_to_number(&s.as_bytes()).map_or(0, |n| n as i64),
                _ => 0,
            };
            match v {
                2 => Ok(()),
                3 => Err(reply_error(
                    "ERR RESP3 is not supported by this server".to_owned(),
                )),
                _ => Err(reply_error("ERR RESP version must be 2 or 3.".to_owned())),
            }
        })?,
    )?;
    r.raw_set(
        "set_repl",
        lua.create_function(|_, a: MultiValue| {
            if a.len() != 1 {
                return Err(reply_error(
                    "ERR redis.set_repl() requires two arguments.".to_owned(),
                ));
            }
            let v = match &a[0] {
                Value::Number(n) => *n as i64,
                Value::Integer(n) => *n,
                _ => 0,
            };
            if v & !3 != 0 {
                return Err(reply_error(
                    "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."
                        .to_owned(),
                ));
            }
            Ok(())
        })?,
    )?;
    r.raw_set(
        "acl_check_cmd",
        lua.create_function(|_, a: MultiValue| {
            let argv = to_argv(&a).map_err(|m| reply_error(error_text(m)))?;
            let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
            if crate::cmd::COMMANDS.iter().any(|s| s.name == name) {
                Ok(true)
            } else {
                Err(reply_error(
                    "ERR Invalid command passed to redis.acl_check_cmd()".to_owned(),
                ))
            }
        })?,
    )?;
    r.raw_set(
        "replicate_commands",
        lua.create_function(|_, _: MultiValue| Ok(true))?,
    )?;
    r.raw_set(
        "breakpoint",
        lua.create_function(|_, _: MultiValue| Ok(false))?,
    )?;
    r.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    r.raw_set("REPL_NONE", 0)?;
    r.raw_set("REPL_AOF", 1)?;
    r.raw_set("REPL_SLAVE", 2)?;
    r.raw_set("REPL_REPLICA", 2)?;
    r.raw_set("REPL_ALL", 3)?;
    r.raw_set("REDIS_VERSION", crate::cmd::server::REDIS_VERSION)?;
    r.raw_set("REDIS_VERSION_NUM", 0x0007_000f)?;
    Ok(r)
}

/// One script run: the engine it may call into and the script's own context (its own
/// selected database, blocking disabled).
struct Run<'a> {
    engine: &'a mut Engine,
    ctx: Ctx,
    read_only: bool,
}

impl Run<'_> {
    /// Redis's `scriptCall` checks, in its order, then the command itself.
    fn dispatch(&mut self, argv: Vec<Bytes>) -> Result<Reply, &'static str> {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        let spec = self
            .engine
            .spec(&name)
            .ok_or("Unknown Redis command called from script")?;
        if !arity_ok(spec, argv.len()) {
            return Err("Wrong number of args calling Redis command from script");
        }
        if spec.flags & NOSCRIPT != 0 {
            return Err("This Redis command is not allowed from script");
        }
        if self.read_only && spec.flags & WRITE != 0 {
            return Err("Write commands are not allowed from read-only scripts.");
        }
        self.engine.commands_processed += 1;
        self.ctx.no_block = true;
        Ok(self.engine.call(spec, &mut self.ctx, &argv))
    }
}

/// `luaArgsToRedisArgv`: strings as they are, numbers as `%.17g`.
fn to_argv(args: &MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err("Please specify at least one argument for this redis lib call");
    }
    args.iter()
        .map(|v| match v {
            Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Number(n) => Ok(Bytes::from(fmt_double(*n))),
            Value::Integer(n) => Ok(Bytes::from(n.to_string())),
            _ => Err("Lua redis lib command arguments must be strings or integers"),
        })
        .collect()
}

/// `redis.call` (`raise`) and `redis.pcall`.
fn command(
    lua: &Lua,
    run: &RefCell<Run<'_>>,
    args: MultiValue,
    raise: bool,
) -> mlua::Result<Value> {
    let fail = |text: String| -> mlua::Result<Value> {
        if raise {
            Err(reply_error(text))
        } else {
            Ok(Value::Table(err_table(lua, text)?))
        }
    };
    let argv = match to_argv(&args) {
        Ok(a) => a,
        Err(m) => return fail(error_text(m)),
    };
    let reply = match run.try_borrow_mut() {
        Ok(mut r) => r.dispatch(argv),
        Err(_) => Err("redis.call recursive call detected"),
    };
    match reply {
        Err(m) => fail(error_text(m)),
        Ok(Reply::Error(s)) => fail(error_text(&format!("-{s}"))),
        Ok(r) => to_lua(lua, r),
    }
}

/// Redis reply to Lua value, as Redis documents it.
fn to_lua(lua: &Lua, r: Reply) -> mlua::Result<Value> {
    Ok(match r {
        Reply::Int(i) => Value::Number(i as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(&b)?),
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            Value::Table(t)
        }
        Reply::Status(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            Value::Table(t)
        }
        Reply::Error(s) => Value::Table(err_table(lua, error_text(&format!("-{s}")))?),
        Reply::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

/// C's `(long long)` cast on x86-64: truncation, and the "integer indefinite" value for
/// NaN and out-of-range numbers.
fn c_int(n: f64) -> i64 {
    // 2^63 is exact as a double; every double below it in magnitude fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// What one Lua value becomes: a finished reply, or an array of the replies of its parts.
enum Shape {
    Leaf(Reply),
    Node(Parts),
}

/// The parts of an array reply still to convert. Only the table and the current position are
/// held: every value held from Rust takes a slot of a bounded stack, so a reply of any size
/// must never be collected into a list of Lua values.
enum Parts {
    /// Elements `t[i]`, `t[i+1]`, ... up to the first nil.
    Array(Table, usize),
    /// Key, value, key, value... in `next` order; the value of the current key is pending.
    Map(Table, Value, Option<Value>),
    /// Keys in `next` order.
    Set(Table, Value),
}

impl Parts {
    fn next(&mut self, next: &Function) -> mlua::Result<Option<Value>> {
        match self {
            Parts::Array(t, i) => {
                let v: Value = t.raw_get(*i)?;
                *i += 1;
                Ok((!v.is_nil()).then_some(v))
            }
            Parts::Map(t, key, pending) => {
                if let Some(v) = pending.take() {
                    return Ok(Some(v));
                }
                let (k, v): (Value, Value) = next.call((t.clone(), key.clone()))?;
                if k.is_nil() {
                    return Ok(None);
                }
                *key = k.clone();
                *pending = Some(v);
                Ok(Some(k))
            }
            Parts::Set(t, key) => {
                let (k, _): (Value, Value) = next.call((t.clone(), key.clone()))?;
                if k.is_nil() {
                    return Ok(None);
                }
                *key = k.clone();
                Ok(Some(k))
            }
        }
    }
}

fn shape(v: &Value, depth: usize) -> Shape {
    match v {
        Value::String(s) => Shape::Leaf(Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes()))),
        Value::Boolean(true) => Shape::Leaf(Reply::Int(1)),
        Value::Boolean(false) => Shape::Leaf(Reply::Nil),
        Value::Number(n) => Shape::Leaf(Reply::Int(c_int(*n))),
        Value::Integer(n) => Shape::Leaf(Reply::Int(*n)),
        Value::Table(t) => {
            if depth >= MAX_REPLY_DEPTH {
                return Shape::Leaf(Reply::err("ERR reached lua stack limit"));
            }
            table_shape(t).unwrap_or_else(|e| Shape::Leaf(lua_failure(&e)))
        }
        _ => Shape::Leaf(Reply::Nil),
    }
}

fn lua_failure(e: &mlua::Error) -> Reply {
    Reply::Error(format!("ERR {}", one_line(plain_message(e).as_bytes())))
}

/// Lua value to Redis reply, as Redis documents it (RESP2). Nested tables are walked with an
/// explicit stack, so a deep or self-referencing table cannot exhaust the thread's stack.
fn to_reply(root: &Value, next: &Function) -> Reply {
    let mut stack: Vec<(Vec<Reply>, Parts)> = Vec::new();
    let mut pending = Some(root.clone());
    loop {
        if let Some(v) = pending.take() {
            match shape(&v, stack.len()) {
                Shape::Leaf(r) => match stack.last_mut() {
                    None => return r,
                    Some((done, _)) => done.push(r),
                },
                Shape::Node(parts) => stack.push((Vec::new(), parts)),
            }
        }
        let Some((done, parts)) = stack.last_mut() else {
            return Reply::Nil;
        };
        match parts.next(next) {
            Ok(Some(v)) => {
                pending = Some(v);
                continue;
            }
            Ok(None) => {}
            Err(e) => done.push(lua_failure(&e)),
        }
        let Some((done, _)) = stack.pop() else {
            return Reply::Nil;
        };
        let r = Reply::Array(done);
        match stack.last_mut() {
            None => return r,
            Some((parent, _)) => parent.push(r),
        }
    }
}

fn table_shape(t: &Table) -> mlua::Result<Shape> {
    if let Value::String(e) = t.raw_get::<Value>("err")? {
        return Ok(Shape::Leaf(Reply::Error(one_line(&e.as_bytes()))));
    }
    if let Value::String(s) = t.raw_get::<Value>("ok")? {
        return Ok(Shape::Leaf(Reply::Status(
            String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " "),
        )));
    }
    if let Value::Number(n) = t.raw_get::<Value>("double")? {
        return Ok(Shape::Leaf(Reply::Bulk(Bytes::from(fmt_double(n)))));
    }
    if let Value::String(s) = t.raw_get::<Value>("big_number")? {
        let s = String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " ");
        return Ok(Shape::Leaf(Reply::Bulk(Bytes::from(s))));
    }
    if let Value::Table(v) = t.raw_get::<Value>("verbatim_string")? {
        if let (Value::String(_), Value::String(s)) =
            (v.raw_get::<Value>("format")?, v.raw_get::<Value>("string")?)
        {
            return Ok(Shape::Leaf(Reply::Bulk(Bytes::copy_from_slice(
                &s.as_bytes(),
            ))));
        }
    }
    if let Value::Table(m) = t.raw_get::<Value>("map")? {
        return Ok(Shape::Node(Parts::Map(m, Value::Nil, None)));
    }
    if let Value::Table(s) = t.raw_get::<Value>("set")? {
        return Ok(Shape::Node(Parts::Set(s, Value::Nil)));
    }
    Ok(Shape::Node(Parts::Array(t.clone(), 1)))
}

/// The reply for a script that raised an error (the handler's table, or a bare message for
/// errors the handler never saw, such as running out of memory).
fn failure_reply(v: &Value, sha: &str) -> Reply {
    match v {
        Value::Table(t) => {
            let get = |k: &str| t.raw_get::<Value>(k).ok().as_ref().and_then(text_of);
            let mut msg = get("err").unwrap_or_else(|| b"ERR unknown error".to_vec());
            if let (Some(source), Some(line)) = (get("source"), get("line")) {
                msg.extend_from_slice(format!(" script: {sha}, on ").as_bytes());
                msg.extend_from_slice(&source);
                msg.push(b':');
                msg.extend_from_slice(&line);
                msg.push(b'.');
            }
            Reply::Error(one_line(&msg))
        }
        v => {
            let text = text_of(v).unwrap_or_else(|| b"execution failure".to_vec());
            let text: Vec<u8> = text.into_iter().take(100).collect();
            Reply::Error(format!(
                "ERR Error running script {sha}, {}",
                one_line(&text)
            ))
        }
    }
}

fn string_array(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (i, b) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(b)?)?;
    }
    Ok(t)
}

/// EVAL, EVALSHA and their `_RO` forms after argument checks: finds or compiles the script
/// and runs it. `script` is the body, or the digest when `by_sha`.
pub(crate) fn eval(
    e: &mut Engine,
    ctx: &Ctx,
    script: &Bytes,
    by_sha: bool,
    ro: bool,
    keys: &[Bytes],
    args: &[Bytes],
) -> Reply {
    let sha = if by_sha {
        String::from_utf8_lossy(script).to_ascii_lowercase()
    } else {
        sha1hex(script)
    };
    let cached = match e.scripting.state() {
        Ok(s) => s.scripts.get(&sha).copied(),
        Err(r) => return r,
    };
    let compiled = match cached {
        Some(s) => s,
        None if by_sha => return Reply::err(NOSCRIPT_ERR),
        None => match e.scripting.compile(&sha, script) {
            Ok(s) => s,
            Err(r) => return r,
        },
    };
    if ro && !compiled.compat && !compiled.no_writes {
        return Reply::err("ERR Can not execute a script with write flag using *_ro command.");
    }
    let read_only = ro || (!compiled.compat && compiled.no_writes);
    // mlua turns some misuse into panics (for one, a call with more values than its
    // reference stack holds); a script must not take the executor down with it.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_script(e, ctx, &sha, read_only, keys, args)
    }));
    outcome.unwrap_or_else(|_| {
        tracing::error!(script = %sha, "store: the Lua interpreter failed; script cache reset");
        e.scripting.flush();
        Reply::Error(format!(
            "ERR Error running script {sha}, the interpreter failed and the script cache was reset"
        ))
    })
}

fn run_script(
    e: &mut Engine,
    ctx: &Ctx,
    sha: &str,
    read_only: bool,
    keys: &[Bytes],
    args: &[Bytes],
) -> Reply {
    let limit = e.scripting.time_limit;
    let dog = e.scripting.dog.clone();
    let Some(st) = e.scripting.state.as_mut() else {
        return Reply::err("ERR the Lua state is gone");
    };
    let next = st.next.clone();
    let (lua, xpcall, handler, redis, globals) = (
        st.lua.clone(),
        st.xpcall.clone(),
        st.handler.clone(),
        st.redis.clone(),
        st.globals.clone(),
    );
    let func = match st.funcs.raw_get::<Function>(format!("f_{sha}")) {
        Ok(f) => f,
        Err(err) => {
            return Reply::Error(format!(
                "ERR Error running script {sha}, {}",
                one_line(plain_message(&err).as_bytes())
            ))
        }
    };
    let run = RefCell::new(Run {
        engine: e,
        ctx: Ctx {
            client: ctx.client,
            db: ctx.db,
            now: ctx.now,
            no_block: true,
            block: None,
            close: false,
        },
        read_only,
    });
    let result = (|| -> mlua::Result<MultiValue> {
        globals.raw_set("KEYS", string_array(&lua, keys)?)?;
        globals.raw_set("ARGV", string_array(&lua, args)?)?;
        dog.set(Some(Instant::now() + limit));
        let out = lua.scope(|scope| {
            let call = scope.create_function(|lua, a: MultiValue| command(lua, &run, a, true))?;
            let pcall = scope.create_function(|lua, a: MultiValue| command(lua, &run, a, false))?;
            redis.raw_set("call", call)?;
            redis.raw_set("pcall", pcall)?;
            xpcall.call::<MultiValue>((func, handler.clone()))
        });
        dog.set(None);
        if dog.killed.swap(false, Ordering::Relaxed) {
            install_hook(&lua, dog.clone(), HOOK_EVERY)?;
            tracing::warn!(script = %sha, limit_ms = limit.as_millis() as u64, "store: script stopped after its time limit");
        }
        out
    })();
    let used = lua.used_memory();
    if used > MEMORY_LIMIT / 2 {
        let _ = lua.gc_collect();
    }
    // Lua starts a cycle when the heap doubles; with the small heap scripts usually leave,
    // that is a full mark of the libraries every few dozen runs. Let small heaps grow to a
    // fixed budget (well under the cap) before the next cycle instead.
    let pause = (MEMORY_LIMIT / 8 * 100 / used.max(1)).clamp(200, 1000);
    lua.gc_set_pause(pause as std::ffi::c_int);
    match result {
        Ok(values) => {
            let mut it = values.into_iter();
            let ok = matches!(it.next(), Some(Value::Boolean(true)));
            let v = it.next().unwrap_or(Value::Nil);
            if ok {
                to_reply(&v, &next)
            } else {
                failure_reply(&v, sha)
            }
        }
        Err(err) => Reply::Error(format!(
            "ERR Error running script {sha}, {}",
            one_line(plain_message(&err).as_bytes())
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::db::ManualClock;
    use crate::engine::tests::reply;
    use crate::engine::{Engine, EngineConfig};

    fn engine(limit: Duration) -> Engine {
        Engine::new(EngineConfig {
            requirepass: None,
            clock: ManualClock::new(1_000_000) as Arc<_>,
            max_bulk_len: 512 * 1024 * 1024,
            script_time_limit: limit,
        })
    }

    fn assert_killed(r: &str) {
        assert!(
            r.starts_with("-ERR Script killed: it ran longer than the script time limit"),
            "{r}"
        );
    }

    #[test]
    fn runaway_script_is_stopped_and_the_store_goes_on() {
        let mut e = engine(Duration::from_millis(200));
        let start = Instant::now();
        assert_killed(&reply(&mut e, 1, "EVAL \"while true do end\" 0"));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(reply(&mut e, 2, "SET k v"), "+OK\r\n");
        assert_eq!(
            reply(&mut e, 1, "EVAL \"return redis.call('get', 'k')\" 0"),
            "$1\r\nv\r\n"
        );
        // Catching the error does not let a script go on.
        assert_killed(&reply(
            &mut e,
            1,
            "EVAL \"while true do pcall(function() while true do end end) end\" 0",
        ));
        assert_killed(&reply(
            &mut e,
            1,
            "EVAL \"local f = function() while true do end end while true do xpcall(f, function(e) return e end) end\" 0",
        ));
        // Coroutines inherit the hook.
        assert_killed(&reply(
            &mut e,
            1,
            "EVAL \"local co = coroutine.create(function() while true do end end) while true do coroutine.resume(co) end\" 0",
        ));
        assert_eq!(reply(&mut e, 1, "EVAL \"return 1\" 0"), ":1\r\n");
        assert_eq!(
            reply(&mut e, 1, "SCRIPT KILL"),
            "-NOTBUSY No scripts in execution right now.\r\n"
        );
    }

    #[test]
    fn script_memory_is_bounded() {
        let mut e = engine(Duration::from_secs(30));
        let r = reply(
            &mut e,
            1,
            "EVAL \"local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 4096) .. i end\" 0",
        );
        assert!(r.contains("not enough memory"), "{r}");
        assert_eq!(
            reply(&mut e, 1, "EVAL \"return 'still here'\" 0"),
            "$10\r\nstill here\r\n"
        );
        assert!(e.scripting.used_memory() < super::MEMORY_LIMIT);
    }

    #[test]
    fn self_referencing_values_do_not_overflow() {
        let mut e = engine(Duration::from_secs(5));
        let r = reply(&mut e, 1, "EVAL \"local t = {} t[1] = t return t\" 0");
        assert!(
            r.ends_with("-ERR reached lua stack limit\r\n"),
            "{}",
            &r[r.len() - 60..]
        );
        let r = reply(
            &mut e,
            1,
            "EVAL \"local t = {} t.a = t return cjson.encode(t)\" 0",
        );
        assert!(
            r.contains("Cannot serialise, excessive nesting (1001)"),
            "{r}"
        );
    }

    #[test]
    fn large_values_cross_without_exhausting_references() {
        let mut e = engine(Duration::from_secs(30));
        let r = reply(
            &mut e,
            1,
            "EVAL \"for i = 1, 20000 do redis.call('rpush', 'big', i) end return #redis.call('lrange', 'big', 0, -1)\" 0",
        );
        assert_eq!(r, ":20000\r\n");
        let r = reply(
            &mut e,
            1,
            "EVAL \"return redis.call('lrange', 'big', 0, -1)\" 0",
        );
        assert!(r.starts_with("*20000\r\n"), "{}", &r[..20]);
        let r = reply(
            &mut e,
            1,
            "EVAL \"local t, o = {}, {} for i = 1, 20000 do t[i] = i o['k' .. i] = i end return {#cjson.encode(t), #cjson.encode(o), #cjson.decode(cjson.encode(t))}\" 0",
        );
        assert_eq!(r, "*3\r\n:108895\r\n:277789\r\n:20000\r\n");
        let r = reply(
            &mut e,
            1,
            "EVAL \"local m = {} for i = 1, 20000 do m['k' .. i] = i end return {map = m}\" 0",
        );
        assert!(r.starts_with("*40000\r\n"), "{}", &r[..20]);
        // Close to Lua's own limit on the number of values a call can take.
        let r = reply(
            &mut e,
            1,
            "EVAL \"local t = {} for i = 1, 7990 do t[i] = 'k' .. i end return redis.call('del', unpack(t))\" 0",
        );
        assert!(r.starts_with(':') || r.starts_with('-'), "{r}");
        assert_eq!(
            reply(&mut e, 1, "EVAL \"return 'alive'\" 0"),
            "$5\r\nalive\r\n"
        );
    }

    #[test]
    fn script_cache_is_bounded() {
        let mut e = engine(Duration::from_secs(5));
        for i in 0..=super::MAX_SCRIPTS {
            let r = reply(&mut e, 1, &format!("SCRIPT LOAD \"return {i}\""));
            assert!(r.starts_with("$40\r\n"), "{r}");
        }
        assert!(e.scripting.cached() <= super::MAX_SCRIPTS);
        let last = super::sha1hex(format!("return {}", super::MAX_SCRIPTS).as_bytes());
        assert_eq!(
            reply(&mut e, 1, &format!("SCRIPT EXISTS {last}")),
            "*1\r\n:1\r\n"
        );
        assert_eq!(reply(&mut e, 1, "SCRIPT FLUSH"), "+OK\r\n");
        assert_eq!(e.scripting.cached(), 0);
        assert_eq!(e.scripting.used_memory(), 0);
    }

    #[test]
    fn scripts_see_the_command_time_and_their_own_database() {
        let mut e = engine(Duration::from_secs(5));
        reply(&mut e, 1, "SELECT 2");
        assert_eq!(
            reply(
                &mut e,
                1,
                "EVAL \"redis.call('select', 3) return redis.call('set', 'x', 1)\" 0"
            ),
            "+OK\r\n"
        );
        assert_eq!(reply(&mut e, 1, "EXISTS x"), ":0\r\n");
        reply(&mut e, 1, "SELECT 3");
        assert_eq!(reply(&mut e, 1, "EXISTS x"), ":1\r\n");
    }
}
