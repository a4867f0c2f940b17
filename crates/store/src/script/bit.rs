//! The `bit` library of Redis scripts (LuaBitOp 1.0 semantics): 32-bit operations on Lua
//! numbers, results as signed 32-bit numbers.
//!
//! Owns only the conversion rules; it never touches the keyspace.

use mlua::{Lua, MultiValue, Table, Value};

use super::{lua_error, type_name};

/// LuaBitOp's number-to-bits conversion: adding 2^52 + 2^51 makes the FPU round the number
/// to an integer held in the low mantissa bits, which is the value modulo 2^32.
fn tobits(x: f64) -> u32 {
    (x + 6_755_399_441_055_744.0).to_bits() as u32
}

fn arg(lua: &Lua, args: &MultiValue, i: usize, fname: &str) -> mlua::Result<u32> {
    let n = match args.get(i) {
        Some(Value::Number(n)) => Some(*n),
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::String(s)) => super::str_to_number(&s.as_bytes()),
        _ => None,
    };
    match n {
        Some(n) => Ok(tobits(n)),
        None => Err(lua_error(
            lua,
            &format!(
                "bad argument #{} to '{fname}' (number expected, got {})",
                i + 1,
                args.get(i).map_or("no value", type_name)
            ),
        )),
    }
}

fn num(b: u32) -> Value {
    Value::Number(f64::from(b as i32))
}

fn fold(
    lua: &Lua,
    args: &MultiValue,
    fname: &str,
    f: impl Fn(u32, u32) -> u32,
) -> mlua::Result<Value> {
    let mut b = arg(lua, args, 0, fname)?;
    // LuaBitOp folds from the last argument down to the second.
    for i in (1..args.len()).rev() {
        b = f(b, arg(lua, args, i, fname)?);
    }
    Ok(num(b))
}

fn shift(
    lua: &Lua,
    args: &MultiValue,
    fname: &str,
    f: impl Fn(u32, u32) -> u32,
) -> mlua::Result<Value> {
    let b = arg(lua, args, 0, fname)?;
    let n = arg(lua, args, 1, fname)? & 31;
    Ok(num(f(b, n)))
}

/// Builds the `bit` table.
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "tobit",
        lua.create_function(|lua, a: MultiValue| Ok(num(arg(lua, &a, 0, "tobit")?)))?,
    )?;
    t.raw_set(
        "bnot",
        lua.create_function(|lua, a: MultiValue| Ok(num(!arg(lua, &a, 0, "bnot")?)))?,
    )?;
    t.raw_set(
        "band",
        lua.create_function(|lua, a: MultiValue| fold(lua, &a, "band", |x, y| x & y))?,
    )?;
    t.raw_set(
        "bor",
        lua.create_function(|lua, a: MultiValue| fold(lua, &a, "bor", |x, y| x | y))?,
    )?;
    t.raw_set(
        "bxor",
        lua.create_function(|lua, a: MultiValue| fold(lua, &a, "bxor", |x, y| x ^ y))?,
    )?;
    t.raw_set(
        "lshift",
        lua.create_function(|lua, a: MultiValue| shift(lua, &a, "lshift", |b, n| b << n))?,
    )?;
    t.raw_set(
        "rshift",
        lua.create_function(|lua, a: MultiValue| shift(lua, &a, "rshift", |b, n| b >> n))?,
    )?;
    t.raw_set(
        "arshift",
        lua.create_function(|lua, a: MultiValue| {
            shift(lua, &a, "arshift", |b, n| ((b as i32) >> n) as u32)
        })?,
    )?;
    t.raw_set(
        "rol",
        lua.create_function(|lua, a: MultiValue| shift(lua, &a, "rol", u32::rotate_left))?,
    )?;
    t.raw_set(
        "ror",
        lua.create_function(|lua, a: MultiValue| shift(lua, &a, "ror", u32::rotate_right))?,
    )?;
    t.raw_set(
        "bswap",
        lua.create_function(|lua, a: MultiValue| Ok(num(arg(lua, &a, 0, "bswap")?.swap_bytes())))?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|lua, a: MultiValue| {
            let mut b = arg(lua, &a, 0, "tohex")?;
            let mut n = match a.get(1) {
                None => 8,
                Some(_) => arg(lua, &a, 1, "tohex")? as i32,
            };
            let digits: &[u8; 16] = if n < 0 {
                n = n.saturating_neg();
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            let n = n.min(8) as usize;
            let mut buf = [0u8; 8];
            for i in (0..n).rev() {
                buf[i] = digits[(b & 15) as usize];
                b >>= 4;
            }
            Ok(Value::String(lua.create_string(&buf[..n])?))
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::tobits;

    #[test]
    fn conversion_wraps_and_rounds() {
        assert_eq!(tobits(1.0), 1);
        assert_eq!(tobits(-1.0) as i32, -1);
        assert_eq!(tobits(4294967296.0), 0);
        assert_eq!(tobits(4294967297.0), 1);
        assert_eq!(tobits(2.5), 2);
        assert_eq!(tobits(3.5), 4);
    }
}
