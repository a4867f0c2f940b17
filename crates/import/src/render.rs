//! The isola.toml being built: ordered tables of keys, each remembering the directive it
//! came from, written out as TOML text with a comment naming that directive.
//!
//! Owns: key order, TOML quoting of keys and values, the header comment.
//!
//! Never: decides what a directive means (that is `translate`).

use std::fmt::Write;

/// A key, its value and the `file:line` it was translated from.
#[derive(Debug, Clone)]
pub(crate) struct Kv {
    pub key: String,
    pub value: toml::Value,
    pub from: String,
}

/// One table (or one element of an array of tables).
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub kvs: Vec<Kv>,
}

impl Table {
    /// Sets `key`, replacing an earlier value (a later directive wins, as in nginx and
    /// php-fpm).
    pub fn set(&mut self, key: &str, value: impl Into<toml::Value>, from: &str) {
        let value = value.into();
        let kv = Kv {
            key: key.to_string(),
            value,
            from: from.to_string(),
        };
        match self.kvs.iter_mut().find(|k| k.key == key) {
            Some(k) => *k = kv,
            None => self.kvs.push(kv),
        }
    }

    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        self.kvs.iter().find(|k| k.key == key).map(|k| &k.value)
    }

    pub fn remove(&mut self, key: &str) {
        self.kvs.retain(|k| k.key != key);
    }

    pub fn is_empty(&self) -> bool {
        self.kvs.is_empty()
    }
}

/// The whole file, in the order it is written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Doc {
    pub server: Table,
    pub compression: Table,
    pub aliases: Vec<Table>,
    pub sendfile: Vec<Table>,
    pub cache_control: Vec<Table>,
    pub site: Option<Table>,
    pub certs: Vec<Table>,
    pub pool: Table,
    pub php: Table,
    pub ini: Table,
    pub env: Table,
    pub log: Table,
}

/// `[server]` keys in the order the README lists them.
const SERVER_ORDER: &[&str] = &[
    "listen",
    "tls_listen",
    "redirect_http_to_https",
    "docroot",
    "front_controller",
    "index",
    "no_exec",
    "deny",
    "allow",
    "max_body_size",
    "header_read_timeout",
    "keepalive_timeout",
    "trusted_proxies",
    "server_tokens",
];

/// A TOML key: bare when it can be, quoted otherwise (`"opcache.enable"`).
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

fn table(out: &mut String, header: &str, t: &Table) {
    let _ = writeln!(out, "\n{header}");
    let width = t.kvs.iter().map(|kv| key(&kv.key).len()).max().unwrap_or(0);
    for kv in &t.kvs {
        let line = format!("{:width$} = {}", key(&kv.key), kv.value);
        if kv.from.is_empty() {
            let _ = writeln!(out, "{line}");
        } else {
            let _ = writeln!(out, "{line:40} # {}", kv.from);
        }
    }
}

impl Doc {
    /// The TOML text, after `header` (comment lines, each starting with `#`).
    pub fn render(&self, header: &[String]) -> String {
        let mut out = String::new();
        for h in header {
            let _ = writeln!(out, "# {h}");
        }
        if !self.server.is_empty() {
            let mut server = self.server.clone();
            let rank = |k: &str| {
                SERVER_ORDER
                    .iter()
                    .position(|o| *o == k)
                    .unwrap_or(SERVER_ORDER.len())
            };
            server.kvs.sort_by_key(|kv| rank(&kv.key));
            table(&mut out, "[server]", &server);
        }
        if !self.compression.is_empty() {
            table(&mut out, "[server.compression]", &self.compression);
        }
        for a in &self.aliases {
            table(&mut out, "[[server.alias]]", a);
        }
        for a in &self.sendfile {
            table(&mut out, "[[server.sendfile]]", a);
        }
        for c in &self.cache_control {
            table(&mut out, "[[server.cache_control]]", c);
        }
        if let Some(s) = &self.site {
            table(&mut out, "[[site]]", s);
        }
        for c in &self.certs {
            table(&mut out, "[[tls.cert]]", c);
        }
        if !self.pool.is_empty() {
            table(&mut out, "[pool]", &self.pool);
        }
        if !self.php.is_empty() {
            table(&mut out, "[php]", &self.php);
        }
        if !self.ini.is_empty() {
            table(&mut out, "[php.ini]", &self.ini);
        }
        if !self.env.is_empty() {
            table(&mut out, "[php.env]", &self.env);
        }
        if !self.log.is_empty() {
            table(&mut out, "[log]", &self.log);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_when_needed_and_values_escaped() {
        let mut d = Doc::default();
        d.ini.set("opcache.enable", true, "a:1");
        d.ini.set("memory_limit", "128M", "a:2");
        d.env.set("Q", "say \"hi\"\n", "");
        d.server.set("deny", vec!["*.sql".to_string()], "a:3");
        d.server.set("deny", vec!["*.bak".to_string()], "a:4");
        let t = d.render(&["head".into()]);
        let v: toml::Table = t.parse().unwrap();
        assert_eq!(v["php"]["ini"]["opcache.enable"].as_bool(), Some(true));
        assert_eq!(v["php"]["env"]["Q"].as_str(), Some("say \"hi\"\n"));
        assert_eq!(v["server"]["deny"][0].as_str(), Some("*.bak"));
        assert!(t.starts_with("# head\n"));
        assert!(t.contains("# a:1"));
    }
}
