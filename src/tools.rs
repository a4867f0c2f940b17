//! Operator commands that talk to a running server or its store: `isola queue` (through
//! the admin listener) and `isola store-cli` (straight to the store).
//!
//! Never: changes anything the operator did not ask for, or prints a store password.
use crate::cli::{QueueArgs, QueueCommand, ServerRef, StoreCliArgs};
use anyhow::{bail, Context};
use isola_config::RawConfig;
use isola_store_client::{Conn, Endpoint, Value};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

fn config(server: &ServerRef) -> anyhow::Result<Option<RawConfig>> {
    match &server.config {
        Some(p) => Ok(Some(RawConfig::from_file(p)?)),
        None if std::path::Path::new("isola.toml").is_file() => {
            Ok(Some(RawConfig::from_file("isola.toml".as_ref())?))
        }
        None => Ok(None),
    }
}

fn admin_addr(server: &ServerRef, cfg: Option<&RawConfig>) -> anyhow::Result<String> {
    server
        .admin
        .clone()
        .or_else(|| cfg.and_then(|c| c.admin.listen.clone()))
        .context("no admin listener: pass --admin IP:PORT, or --config with admin.listen set")
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(TIMEOUT).build()
}

/// Calls the admin listener; an error status is shown with the server's explanation.
fn call(method: &str, url: &str, body: Option<&[u8]>) -> anyhow::Result<serde_json::Value> {
    let req = agent().request(method, url);
    let resp = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            let why = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{url}: {code}: {}", why.trim());
        }
        Err(e) => bail!("{url}: {e}"),
    };
    let text = resp.into_string().context("reading the answer")?;
    serde_json::from_str(&text).with_context(|| format!("{url}: not JSON: {text}"))
}

/// `isola queue ...`
pub fn queue(args: QueueArgs) -> anyhow::Result<()> {
    let cfg = config(&args.server)?;
    let base = format!("http://{}/queues", admin_addr(&args.server, cfg.as_ref())?);
    let enc = |n: &str| -> String {
        n.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    match args.action {
        QueueCommand::Ls => {
            let all = call("GET", &base, None)?;
            println!(
                "{:<20} {:>9} {:>8} {:>10} {:>6} {:>10} {:>8} {:>9} {:>7}",
                "QUEUE",
                "PENDING",
                "DELAYED",
                "PROCESSING",
                "DEAD",
                "OLDEST",
                "RUNNING",
                "DONE",
                "FAILED"
            );
            for q in all.as_array().into_iter().flatten() {
                let age = q["oldest_age_seconds"]
                    .as_f64()
                    .map_or("-".to_string(), |s| format!("{s:.1}s"));
                println!(
                    "{:<20} {:>9} {:>8} {:>10} {:>6} {:>10} {:>8} {:>9} {:>7}",
                    q["name"].as_str().unwrap_or("?"),
                    q["pending"],
                    q["delayed"],
                    q["processing"],
                    q["dead"],
                    age,
                    q["running"],
                    q["done"],
                    q["failed"]
                );
            }
        }
        QueueCommand::Show { name, dead, limit } => {
            let url = format!(
                "{base}/{}?limit={limit}{}",
                enc(&name),
                if dead { "&dead" } else { "" }
            );
            let jobs = call("GET", &url, None)?;
            for j in jobs.as_array().into_iter().flatten() {
                println!(
                    "{}  attempts={}{}  {}",
                    j["id"].as_str().unwrap_or("(not taken yet)"),
                    j["attempts"],
                    j["error"]
                        .as_str()
                        .map_or(String::new(), |e| format!("  error={e:?}")),
                    j["payload"].as_str().unwrap_or("")
                );
            }
        }
        QueueCommand::Push { name, payload } => {
            let body = if payload == "-" {
                let mut b = Vec::new();
                std::io::stdin().read_to_end(&mut b)?;
                b
            } else {
                payload.into_bytes()
            };
            let r = call("POST", &format!("{base}/{}", enc(&name)), Some(&body))?;
            println!("{}", r["id"].as_str().unwrap_or(""));
        }
        QueueCommand::Retry { name } => {
            let r = call("POST", &format!("{base}/{}/retry", enc(&name)), Some(b""))?;
            println!("{} job(s) back in {name}", r["retried"]);
        }
        QueueCommand::Drop { name, pending } => {
            let q = if pending { "?pending" } else { "" };
            let r = call("POST", &format!("{base}/{}/drop{q}", enc(&name)), Some(b""))?;
            println!(
                "{} {} job(s) dropped from {name}",
                r["dropped"],
                if pending { "pending" } else { "dead" }
            );
        }
    }
    Ok(())
}

/// Where the store is: `--url`; else the config's `store.url`, or the embedded store's TCP
/// listener; else the embedded store's socket, as the running server reports it.
fn store_url(args: &StoreCliArgs) -> anyhow::Result<String> {
    if let Some(u) = &args.url {
        return Ok(u.clone());
    }
    let cfg = config(&args.server)?;
    let store = cfg.as_ref().map(|c| &c.store);
    if let Some(u) = store.and_then(|s| s.url.clone()) {
        return Ok(u);
    }
    if store.and_then(|s| s.backend.as_deref()) == Some("off") {
        bail!("the store is off in this configuration (store.backend = \"off\")");
    }
    let pass = store.and_then(|s| s.requirepass.clone());
    if let Some(l) = store.and_then(|s| s.listen.clone()) {
        return Ok(match pass {
            Some(p) => format!("redis://:{p}@{l}"),
            None => format!("redis://{l}"),
        });
    }
    let admin = admin_addr(&args.server, cfg.as_ref()).context(
        "cannot find the embedded store: pass --url, or let Isola's admin listener tell",
    )?;
    let status = call("GET", &format!("http://{admin}/status"), None)?;
    let url = status["store"]["url"]
        .as_str()
        .context("the server reports no store")?
        .to_string();
    Ok(match pass {
        Some(p) if url.starts_with("unix://") => format!("{url}?password={p}"),
        _ => url,
    })
}

/// `isola store-cli [COMMAND ARGS...]`
pub fn store_cli(args: StoreCliArgs) -> anyhow::Result<()> {
    let url = store_url(&args)?;
    let mut ep = Endpoint::parse(&url)?;
    if let Some(db) = args.db {
        ep.db = db;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut conn = Conn::connect(&ep, TIMEOUT)
            .await
            .context("cannot reach the store")?;
        if !args.command.is_empty() {
            let v = conn.cmd(&args.command).await?;
            print_reply(&v);
            if matches!(v, Value::Error(_)) {
                std::process::exit(1);
            }
            return Ok(());
        }
        let stdin = std::io::stdin();
        let tty = stdin.is_terminal();
        let mut line = String::new();
        loop {
            if tty {
                print!("isola> ");
                std::io::stdout().flush()?;
            }
            line.clear();
            if stdin.lock().read_line(&mut line)? == 0 {
                return Ok(());
            }
            let Some(words) = isola_store::resp::split_args(line.trim_end().as_bytes()) else {
                eprintln!("(error) unbalanced quotes");
                continue;
            };
            if words.is_empty() {
                continue;
            }
            // Blocking commands wait as long as they ask.
            let v = conn.cmd_wait(&words, Duration::from_secs(3600)).await?;
            print_reply(&v);
        }
    })
}

fn print_reply(v: &Value) {
    let mut out = String::new();
    format_reply(v, 0, &mut out);
    print!("{out}");
}

/// redis-cli's human format.
fn format_reply(v: &Value, indent: usize, out: &mut String) {
    use std::fmt::Write as _;
    match v {
        Value::Nil => out.push_str("(nil)\n"),
        Value::Simple(s) => {
            let _ = writeln!(out, "{s}");
        }
        Value::Error(e) => {
            let _ = writeln!(out, "(error) {e}");
        }
        Value::Int(n) => {
            let _ = writeln!(out, "(integer) {n}");
        }
        Value::Bulk(b) => {
            let _ = writeln!(out, "{}", quote(b));
        }
        Value::Array(items) if items.is_empty() => out.push_str("(empty array)\n"),
        Value::Array(items) => {
            let width = items.len().to_string().len();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                let prefix = format!("{:>width$}) ", i + 1);
                out.push_str(&prefix);
                format_reply(item, indent + prefix.len(), out);
            }
        }
    }
}

fn quote(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_like_redis_cli() {
        let v = Value::Array(vec![
            Value::Bulk("a\"b\n".into()),
            Value::Int(3),
            Value::Array(vec![Value::Nil, Value::Simple("OK".into())]),
            Value::Array(vec![]),
        ]);
        let mut out = String::new();
        format_reply(&v, 0, &mut out);
        assert_eq!(
            out,
            "1) \"a\\\"b\\n\"\n2) (integer) 3\n3) 1) (nil)\n   2) OK\n4) (empty array)\n"
        );
    }
}
