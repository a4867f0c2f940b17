//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT.
//!
//! Argument checks in Redis's order with Redis's texts; running and caching scripts is the
//! [`crate::script`] module's.

use bytes::Bytes;

use super::{err, int_arg, is, CmdResult};
use crate::engine::{Ctx, Engine};
use crate::resp::Reply;
use crate::script::{self, NOSCRIPT_ERR};

fn run(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes], by_sha: bool, ro: bool) -> CmdResult {
    // A digest of the wrong length cannot match: Redis answers before looking at numkeys.
    if by_sha && a[0].len() != 40 {
        return Err(err(NOSCRIPT_ERR));
    }
    let numkeys = int_arg(&a[1])?;
    if numkeys > (a.len() - 2) as i64 {
        return Err(err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(err("ERR Number of keys can't be negative"));
    }
    let (keys, args) = a[2..].split_at(numkeys as usize);
    Ok(script::eval(e, ctx, &a[0], by_sha, ro, keys, args))
}

/// `EVAL script numkeys [key ...] [arg ...]`
pub fn eval(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    run(e, ctx, a, false, false)
}

/// `EVALSHA sha1 numkeys [key ...] [arg ...]`
pub fn evalsha(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    run(e, ctx, a, true, false)
}

/// `EVAL_RO script numkeys [key ...] [arg ...]`
pub fn eval_ro(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    run(e, ctx, a, false, true)
}

/// `EVALSHA_RO sha1 numkeys [key ...] [arg ...]`
pub fn evalsha_ro(e: &mut Engine, ctx: &mut Ctx, a: &[Bytes]) -> CmdResult {
    run(e, ctx, a, true, true)
}

const HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

/// `SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP`
pub fn script(e: &mut Engine, _: &mut Ctx, a: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
    // Subcommand arities, as Redis checks them before running anything.
    let arity: i32 = match sub.as_str() {
        "load" | "debug" => 3,
        "exists" => -3,
        "flush" => -2,
        "kill" | "help" => 2,
        _ => {
            return Err(Reply::Error(format!(
                "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
                String::from_utf8_lossy(&a[0])
                    .chars()
                    .take(128)
                    .collect::<String>()
            )))
        }
    };
    let n = a.len() as i32 + 1;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        return Err(Reply::Error(format!(
            "ERR wrong number of arguments for 'script|{sub}' command"
        )));
    }
    match sub.as_str() {
        "load" => Ok(Reply::Bulk(Bytes::from(e.scripting.load(&a[1])?))),
        "exists" => Ok(Reply::Array(
            a[1..]
                .iter()
                .map(|sha| Reply::Int(i64::from(e.scripting.exists(sha))))
                .collect(),
        )),
        "flush" => {
            if a.len() == 2 && !(is(&a[1], "sync") || is(&a[1], "async")) || a.len() > 2 {
                return Err(err("ERR SCRIPT FLUSH only support SYNC|ASYNC option"));
            }
            e.scripting.flush();
            Ok(Reply::OK)
        }
        // Scripts run to completion (or to their time limit) before anything else runs, so
        // there is never a script to kill when this command is executed.
        "kill" => Err(err("NOTBUSY No scripts in execution right now.")),
        "debug" => Err(err("ERR SCRIPT DEBUG is not supported")),
        _ => Ok(Reply::Array(
            HELP.iter()
                .map(|l| Reply::Status((*l).to_owned()))
                .collect(),
        )),
    }
}
