//! The `cjson` library of Redis scripts, with lua-cjson 2.1's rules and error texts.
//!
//! Decoding builds tables in document order (keys set one by one into a fresh table, as
//! lua-cjson does), so re-encoding a decoded object yields the same key order as Redis. JSON
//! `null` becomes `cjson.null`, a NULL light userdata. Encoding numbers uses `%.14g`, refuses
//! NaN and infinities, and refuses excessively sparse arrays. Nesting is bounded (1000 levels
//! each way) so neither direction can exhaust the stack.

use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value};

use super::{lua_error, type_name};
use crate::cmd::fmt_g;

const MAX_DEPTH: usize = 1000;
const SPARSE_RATIO: usize = 2;
const SPARSE_SAFE: usize = 10;

/// `cjson.null`.
pub(crate) fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// Builds the `cjson` table; `next` is the base library's, used to walk objects.
pub(crate) fn module(lua: &Lua, next: Function) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "encode",
        lua.create_function(move |lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(lua_error(
                    lua,
                    "bad argument #1 to 'encode' (expected 1 argument)",
                ));
            }
            let mut out = Vec::new();
            encode(lua, &next, &a[0], &mut out)?;
            Ok(Value::String(lua.create_string(&out)?))
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(lua_error(
                    lua,
                    "bad argument #1 to 'decode' (expected 1 argument)",
                ));
            }
            let data = match &a[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Number(n) => fmt_g(*n, 14).into_bytes(),
                Value::Integer(n) => n.to_string().into_bytes(),
                v => {
                    return Err(lua_error(
                        lua,
                        &format!(
                            "bad argument #1 to 'decode' (string expected, got {})",
                            type_name(v)
                        ),
                    ))
                }
            };
            decode(lua, &data)
        })?,
    )?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

fn encode_error(lua: &Lua, v: &Value, reason: &str) -> mlua::Error {
    lua_error(lua, &format!("Cannot serialise {}: {reason}", type_name(v)))
}

fn encode_number(lua: &Lua, v: &Value, n: f64, out: &mut Vec<u8>) -> mlua::Result<()> {
    if !n.is_finite() {
        return Err(encode_error(lua, v, "must not be NaN or Inf"));
    }
    out.extend_from_slice(fmt_g(n, 14).as_bytes());
    Ok(())
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

/// lua-cjson's array test: every key a positive integer; returns the largest, or `None` for
/// an object.
fn array_length(lua: &Lua, t: &Table, v: &Value) -> mlua::Result<Option<usize>> {
    let mut max = 0usize;
    let mut items = 0usize;
    let mut array = true;
    t.for_each(|k: Value, _: Value| {
        let k = match k {
            Value::Number(n) => n,
            Value::Integer(n) => n as f64,
            _ => f64::NAN,
        };
        if array && k.floor() == k && k >= 1.0 {
            max = max.max(k as usize);
            items += 1;
        } else {
            array = false;
        }
        Ok(())
    })?;
    if !array {
        return Ok(None);
    }
    if max > items * SPARSE_RATIO && max > SPARSE_SAFE {
        return Err(encode_error(lua, v, "excessively sparse array"));
    }
    Ok(Some(max))
}

/// A table being written. Only the table and the position are held: every value held from
/// Rust takes a slot of a bounded stack, so a table of any size must never be collected.
enum Frame {
    /// Elements `1..=len`; `i` is the next one.
    Array(Table, usize, usize),
    /// Entries in `next` order after `key`; `first` until one was written.
    Object(Table, Value, bool),
}

/// Encodes with an explicit stack: nesting is bounded by [`MAX_DEPTH`], not by the thread's
/// stack.
fn encode(lua: &Lua, next: &Function, root: &Value, out: &mut Vec<u8>) -> mlua::Result<()> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut pending = Some(root.clone());
    loop {
        if let Some(v) = pending.take() {
            match &v {
                Value::Table(t) => {
                    let depth = stack.len() + 1;
                    if depth > MAX_DEPTH {
                        return Err(lua_error(
                            lua,
                            &format!("Cannot serialise, excessive nesting ({depth})"),
                        ));
                    }
                    match array_length(lua, t, &v)? {
                        Some(len) if len > 0 => {
                            out.push(b'[');
                            stack.push(Frame::Array(t.clone(), 1, len));
                        }
                        _ => {
                            out.push(b'{');
                            stack.push(Frame::Object(t.clone(), Value::Nil, true));
                        }
                    }
                }
                v => encode_scalar(lua, v, out)?,
            }
        }
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        match top {
            Frame::Array(t, i, len) => {
                if *i > *len {
                    out.push(b']');
                    stack.pop();
                    continue;
                }
                if *i > 1 {
                    out.push(b',');
                }
                pending = Some(t.raw_get::<Value>(*i)?);
                *i += 1;
            }
            Frame::Object(t, key, first) => {
                let (k, v): (Value, Value) = next.call((t.clone(), key.clone()))?;
                if k.is_nil() {
                    out.push(b'}');
                    stack.pop();
                    continue;
                }
                if !*first {
                    out.push(b',');
                }
                *first = false;
                match &k {
                    Value::Number(n) => {
                        out.push(b'"');
                        encode_number(lua, &k, *n, out)?;
                        out.extend_from_slice(b"\":");
                    }
                    Value::Integer(n) => {
                        out.push(b'"');
                        encode_number(lua, &k, *n as f64, out)?;
                        out.extend_from_slice(b"\":");
                    }
                    Value::String(s) => {
                        encode_string(&s.as_bytes(), out);
                        out.push(b':');
                    }
                    _ => {
                        return Err(encode_error(
                            lua,
                            &k,
                            "table key must be a number or string",
                        ))
                    }
                }
                *key = k;
                pending = Some(v);
            }
        }
    }
}

fn encode_scalar(lua: &Lua, v: &Value, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Number(n) => encode_number(lua, v, *n, out)?,
        Value::Integer(n) => encode_number(lua, v, *n as f64, out)?,
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        _ => return Err(encode_error(lua, v, "type not supported")),
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
    /// The text of the last string token.
    tmp: Vec<u8>,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    /// Returns the token and its start offset (lua-cjson reports errors at the start).
    fn next(&mut self) -> (Tok, usize) {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let c = self.at(self.pos);
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, start);
        }
        if c == 0 {
            // lua-cjson stops at the first NUL byte, as C strings do.
            return (Tok::End, start);
        }
        let rest = &self.data[self.pos..];
        match c {
            b'"' => {
                let t = self.string();
                // String errors point at the offending byte, like lua-cjson's.
                let at = if matches!(t, Tok::Error(_)) {
                    self.pos
                } else {
                    start
                };
                return (t, at);
            }
            b'-' | b'0'..=b'9' | b'+' | b'i' | b'I' | b'n' | b'N' => {}
            b't' | b'f' => {}
            _ => return (Tok::Error("invalid token"), start),
        }
        if c == b'-' || c.is_ascii_digit() {
            return (self.number(), start);
        }
        if rest.starts_with(b"true") {
            self.pos += 4;
            return (Tok::Bool(true), start);
        }
        if rest.starts_with(b"false") {
            self.pos += 5;
            return (Tok::Bool(false), start);
        }
        if rest.starts_with(b"null") {
            self.pos += 4;
            return (Tok::Null, start);
        }
        let lower: Vec<u8> = rest.iter().take(4).map(u8::to_ascii_lowercase).collect();
        let invalid_number = c == b'+'
            || lower.starts_with(b"inf")
            || lower.starts_with(b"nan")
            || lower.starts_with(b"-inf")
            || lower.starts_with(b"-nan");
        if invalid_number {
            return (self.number(), start);
        }
        (Tok::Error("invalid token"), start)
    }

    /// `strtod` on the text at the cursor: the longest prefix that is a number.
    fn number(&mut self) -> Tok {
        let rest = &self.data[self.pos..];
        let mut i = 0;
        if matches!(rest.first(), Some(b'+' | b'-')) {
            i += 1;
        }
        let word =
            |w: &[u8]| rest.len() >= i + w.len() && rest[i..i + w.len()].eq_ignore_ascii_case(w);
        let neg = rest.first() == Some(&b'-');
        if word(b"infinity") || word(b"inf") {
            self.pos += i + if word(b"infinity") { 8 } else { 3 };
            return Tok::Num(if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        if word(b"nan") {
            self.pos += i + 3;
            return Tok::Num(f64::NAN);
        }
        if word(b"0x") {
            let digits = rest[i + 2..]
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            if digits > 0 {
                let text = String::from_utf8_lossy(&rest[i + 2..i + 2 + digits]);
                let v = u128::from_str_radix(&text, 16).map_or(f64::INFINITY, |v| v as f64);
                self.pos += i + 2 + digits;
                return Tok::Num(if neg { -v } else { v });
            }
        }
        let int = rest[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        let mut j = i + int;
        let mut frac = 0;
        if rest.get(j) == Some(&b'.') {
            frac = rest[j + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if int + frac > 0 {
                j += 1 + frac;
            }
        }
        if int + frac == 0 {
            return Tok::Error("invalid number");
        }
        if matches!(rest.get(j), Some(b'e' | b'E')) {
            let mut k = j + 1;
            if matches!(rest.get(k), Some(b'+' | b'-')) {
                k += 1;
            }
            let exp = rest[k..].iter().take_while(|c| c.is_ascii_digit()).count();
            if exp > 0 {
                j = k + exp;
            }
        }
        let text = String::from_utf8_lossy(&rest[..j]);
        let text = text.strip_prefix('+').unwrap_or(&text);
        let v: f64 = text.parse().unwrap_or(0.0);
        self.pos += j;
        Tok::Num(v)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0u32;
        for i in 0..4 {
            let d = (self.at(at + i) as char).to_digit(16)?;
            v = (v << 4) | d;
        }
        Some(v)
    }

    fn string(&mut self) -> Tok {
        self.pos += 1;
        self.tmp.clear();
        loop {
            let c = self.at(self.pos);
            if c == b'"' {
                break;
            }
            if c == 0 {
                return Tok::Error("unexpected end of string");
            }
            if c == b'\\' {
                let e = self.at(self.pos + 1);
                let ch = match e {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 12,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape().is_none() {
                            return Tok::Error("invalid unicode escape code");
                        }
                        continue;
                    }
                    _ => return Tok::Error("invalid escape code"),
                };
                self.tmp.push(ch);
                self.pos += 2;
                continue;
            }
            self.tmp.push(c);
            self.pos += 1;
        }
        self.pos += 1;
        Tok::Str
    }

    fn unicode_escape(&mut self) -> Option<()> {
        let mut cp = self.hex4(self.pos + 2)?;
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return None;
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return None;
            }
            let low = self.hex4(self.pos + 8)?;
            if low & 0xFC00 != 0xDC00 {
                return None;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        // lua-cjson encodes surrogate halves and all code points as plain UTF-8 bytes.
        let mut buf = [0u8; 4];
        let n = if cp <= 0x7F {
            buf[0] = cp as u8;
            1
        } else if cp <= 0x7FF {
            buf[0] = ((cp >> 6) | 0xC0) as u8;
            buf[1] = ((cp & 0x3F) | 0x80) as u8;
            2
        } else if cp <= 0xFFFF {
            buf[0] = ((cp >> 12) | 0xE0) as u8;
            buf[1] = (((cp >> 6) & 0x3F) | 0x80) as u8;
            buf[2] = ((cp & 0x3F) | 0x80) as u8;
            3
        } else {
            buf[0] = ((cp >> 18) | 0xF0) as u8;
            buf[1] = (((cp >> 12) & 0x3F) | 0x80) as u8;
            buf[2] = (((cp >> 6) & 0x3F) | 0x80) as u8;
            buf[3] = ((cp & 0x3F) | 0x80) as u8;
            4
        };
        self.tmp.extend_from_slice(&buf[..n]);
        self.pos += len;
        Some(())
    }
}

fn parse_error(lua: &Lua, expected: &str, tok: Tok, at: usize) -> mlua::Error {
    lua_error(
        lua,
        &format!(
            "Expected {expected} but found {} at character {}",
            tok.name(),
            at + 1
        ),
    )
}

fn descend(lua: &Lua, p: &mut Parser<'_>) -> mlua::Result<()> {
    p.depth += 1;
    if p.depth > MAX_DEPTH {
        return Err(lua_error(
            lua,
            &format!(
                "Found too many nested data structures ({}) at character {}",
                p.depth, p.pos
            ),
        ));
    }
    Ok(())
}

/// An object or array being filled.
enum Open {
    /// The object and the key whose value comes next.
    Object(Table, mlua::String),
    /// The array and the index of the next element.
    Array(Table, usize),
}

/// Reads `"key" :` after an object's opening brace or a comma.
fn object_key(lua: &Lua, p: &mut Parser<'_>, tok: Tok, at: usize) -> mlua::Result<mlua::String> {
    if tok != Tok::Str {
        return Err(parse_error(lua, "object key string", tok, at));
    }
    let key = lua.create_string(&p.tmp)?;
    let (colon, cat) = p.next();
    if colon != Tok::Colon {
        return Err(parse_error(lua, "colon", colon, cat));
    }
    Ok(key)
}

/// Decodes with an explicit stack: nesting is bounded by [`MAX_DEPTH`], not by the thread's
/// stack. Tables are filled in document order, as lua-cjson fills them.
fn decode(lua: &Lua, data: &[u8]) -> mlua::Result<Value> {
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(lua_error(
            lua,
            "JSON parser does not support UTF-16 or UTF-32",
        ));
    }
    let mut p = Parser {
        data,
        pos: 0,
        depth: 0,
        tmp: Vec::new(),
    };
    let mut stack: Vec<Open> = Vec::new();
    let (mut tok, mut at) = p.next();
    loop {
        let mut v = match tok {
            Tok::Str => Value::String(lua.create_string(&p.tmp)?),
            Tok::Num(n) => Value::Number(n),
            Tok::Bool(b) => Value::Boolean(b),
            Tok::Null => null(),
            Tok::ObjBegin => {
                descend(lua, &mut p)?;
                let t = lua.create_table()?;
                let (kt, kat) = p.next();
                if kt == Tok::ObjEnd {
                    p.depth -= 1;
                    Value::Table(t)
                } else {
                    let key = object_key(lua, &mut p, kt, kat)?;
                    stack.push(Open::Object(t, key));
                    (tok, at) = p.next();
                    continue;
                }
            }
            Tok::ArrBegin => {
                descend(lua, &mut p)?;
                let t = lua.create_table()?;
                let (nt, nat) = p.next();
                if nt == Tok::ArrEnd {
                    p.depth -= 1;
                    Value::Table(t)
                } else {
                    stack.push(Open::Array(t, 1));
                    (tok, at) = (nt, nat);
                    continue;
                }
            }
            _ => return Err(parse_error(lua, "value", tok, at)),
        };
        // Hand the finished value to its container; closing a container finishes it in turn.
        loop {
            let Some(open) = stack.last_mut() else {
                let (end, eat) = p.next();
                if end != Tok::End {
                    return Err(parse_error(lua, "the end", end, eat));
                }
                return Ok(v);
            };
            let (sep, sat) = match open {
                Open::Object(t, key) => {
                    t.raw_set(key.clone(), v)?;
                    let (sep, sat) = p.next();
                    if sep != Tok::ObjEnd && sep != Tok::Comma {
                        return Err(parse_error(lua, "comma or object end", sep, sat));
                    }
                    (sep, sat)
                }
                Open::Array(t, i) => {
                    t.raw_set(*i, v)?;
                    *i += 1;
                    let (sep, sat) = p.next();
                    if sep != Tok::ArrEnd && sep != Tok::Comma {
                        return Err(parse_error(lua, "comma or array end", sep, sat));
                    }
                    (sep, sat)
                }
            };
            if sep == Tok::Comma {
                let (nt, nat) = p.next();
                if let Some(Open::Object(_, key)) = stack.last_mut() {
                    *key = object_key(lua, &mut p, nt, nat)?;
                    (tok, at) = p.next();
                } else {
                    (tok, at) = (nt, nat);
                }
                break;
            }
            let _ = sat;
            p.depth -= 1;
            v = match stack.pop() {
                Some(Open::Object(t, _) | Open::Array(t, _)) => Value::Table(t),
                None => Value::Nil,
            };
        }
    }
}
