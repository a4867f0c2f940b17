//! The mapping from nginx directives and php-fpm pool keys to isola.toml keys.
//!
//! Owns: which server block and pool are translated, what each directive becomes, and the
//! reason given for every directive that is not translated (or is translated with a
//! caveat).
//!
//! Never: reads files (includes come through the caller's reader), or claims a
//! translation it cannot make: whatever is not mapped is reported, one note per directive.

use crate::fpm::{Entry, Section};
use crate::nginx::Directive;
use crate::render::{Doc, Table};
use crate::{ImportError, Note, NoteKind};

/// Reads an `include`: given the argument as written (a path, or a wildcard such as
/// `sites-enabled/*`), the name and text of every file it names, in order; none when
/// nothing readable matches.
pub type IncludeReader<'a> = &'a dyn Fn(&str) -> Vec<(String, String)>;

/// Include files whose content Isola does itself: they are noted, not followed.
const CGI_SNIPPETS: &[&str] = &["fastcgi_params", "fastcgi.conf", "fastcgi-php.conf"];

/// CGI parameters Isola sets itself for every script.
const CGI_PARAMS: &[&str] = &[
    "SCRIPT_FILENAME",
    "SCRIPT_NAME",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "QUERY_STRING",
    "REQUEST_METHOD",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "REQUEST_URI",
    "DOCUMENT_URI",
    "DOCUMENT_ROOT",
    "SERVER_PROTOCOL",
    "REQUEST_SCHEME",
    "HTTPS",
    "GATEWAY_INTERFACE",
    "SERVER_SOFTWARE",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_ADDR",
    "SERVER_PORT",
    "SERVER_NAME",
    "REDIRECT_STATUS",
    "HTTP_HOST",
    "HTTP_PROXY",
];

/// What one import produced.
pub(crate) struct Translation {
    pub doc: Doc,
    pub notes: Vec<Note>,
    pub header: Vec<String>,
}

#[derive(Default)]
struct Ctx {
    doc: Doc,
    notes: Vec<Note>,
    /// (address, from)
    plain: Vec<(String, String)>,
    tls: Vec<(String, String)>,
    names: Vec<String>,
    names_from: String,
    certs: Vec<(String, String)>,
    keys: Vec<(String, String)>,
    front: Option<(Option<String>, String)>,
    /// fastcgi_read_timeout, for request_terminate_timeout when the pool sets none.
    read_timeout: Option<(toml::Value, String)>,
    /// The 403-vs-404 note was given.
    denied_404: bool,
    ssl_on: bool,
    /// File and line of the translated server block.
    server_loc: (String, usize),
}

fn at(d: &Directive) -> String {
    format!("{}:{}", d.file, d.line)
}

impl Ctx {
    fn note(&mut self, kind: NoteKind, file: &str, line: usize, what: String, reason: &str) {
        self.notes.push(Note {
            kind,
            file: file.to_string(),
            line,
            directive: what,
            reason: reason.to_string(),
        });
    }
    fn skip(&mut self, d: &Directive, reason: &str) {
        self.note(NoteKind::Untranslated, &d.file, d.line, d.summary(), reason);
    }
    fn info(&mut self, d: &Directive, reason: &str) {
        self.note(NoteKind::Info, &d.file, d.line, d.summary(), reason);
    }
    fn skip_e(&mut self, file: &str, e: &Entry, reason: &str) {
        let what = format!("{} = {}", e.key, e.value);
        self.note(NoteKind::Untranslated, file, e.line, what, reason);
    }
    fn info_e(&mut self, file: &str, e: &Entry, reason: &str) {
        let what = format!("{} = {}", e.key, e.value);
        self.note(NoteKind::Info, file, e.line, what, reason);
    }
}

/// Expands `include`s the reader can read (not the CGI snippets), up to 8 levels deep.
pub(crate) fn expand(
    list: Vec<Directive>,
    read: Option<IncludeReader<'_>>,
    depth: usize,
) -> Result<Vec<Directive>, ImportError> {
    let mut out = Vec::new();
    for mut d in list {
        if let Some(children) = d.block.take() {
            d.block = Some(expand(children, read, depth)?);
            out.push(d);
            continue;
        }
        let target = match (d.name.as_str(), d.args.as_slice(), read) {
            ("include", [path], Some(read))
                if depth < 8 && !is_cgi_snippet(path) && !path.ends_with("mime.types") =>
            {
                read(path)
            }
            _ => Vec::new(),
        };
        if target.is_empty() {
            out.push(d);
        }
        for (name, text) in target {
            let inner = crate::nginx::parse(&name, &text)?;
            out.extend(expand(inner, read, depth + 1)?);
        }
    }
    Ok(out)
}

fn is_cgi_snippet(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    CGI_SNIPPETS.contains(&base)
}

/// A server block that only sends clients to HTTPS (`return 301 https://...`, maybe inside
/// `if ($host = ...)` as certbot writes it).
fn is_https_redirect(server: &[Directive]) -> bool {
    let redirects = |list: &[Directive]| {
        list.iter().any(|d| {
            d.name == "return"
                && d.args.len() == 2
                && matches!(d.args[0].as_str(), "301" | "302" | "307" | "308")
                && d.args[1].starts_with("https://")
        })
    };
    let has_content = server
        .iter()
        .any(|d| matches!(d.name.as_str(), "root" | "location" | "alias"));
    !has_content
        && (redirects(server)
            || server
                .iter()
                .any(|d| d.name == "if" && d.block.as_deref().is_some_and(redirects)))
}

fn server_names(server: &[Directive]) -> Vec<String> {
    server
        .iter()
        .filter(|d| d.name == "server_name")
        .flat_map(|d| d.args.iter().cloned())
        .collect()
}

fn describe(i: usize, s: &Directive) -> String {
    let names = server_names(s.block.as_deref().unwrap_or_default());
    if names.is_empty() || names == ["_"] {
        format!("server #{} (line {})", i + 1, s.line)
    } else {
        format!("server #{} ({})", i + 1, names.join(" "))
    }
}

pub(crate) fn translate(
    nginx: Option<(&str, Vec<Directive>)>,
    fpm: Option<(&str, Vec<Section>)>,
    server: Option<&str>,
) -> Result<Translation, ImportError> {
    let mut cx = Ctx::default();
    let mut header = vec!["isola.toml written by `isola import` from:".to_string()];
    if let Some((file, top)) = nginx {
        let (http_level, servers) = split_top(&mut cx, top);
        if servers.is_empty() {
            return Err(ImportError::NoServer {
                file: file.to_string(),
            });
        }
        let idx = match server {
            Some(want) => pick(&servers, want).ok_or_else(|| ImportError::NoSuchServer {
                file: file.to_string(),
                name: want.to_string(),
                have: servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| describe(i, s))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
            None => servers
                .iter()
                .position(|s| !is_https_redirect(s.block.as_deref().unwrap_or_default()))
                .unwrap_or(0),
        };
        header.push(format!(
            "  nginx:   {file}, {}{}",
            describe(idx, &servers[idx]),
            if servers.len() > 1 {
                format!(" of {} server blocks", servers.len())
            } else {
                String::new()
            }
        ));
        for d in &http_level {
            cx.server_directive(d);
        }
        cx.server_loc = (servers[idx].file.clone(), servers[idx].line);
        let chosen = servers[idx].block.clone().unwrap_or_default();
        for d in &chosen {
            cx.server_directive(d);
        }
        let chosen_has_tls = !cx.tls.is_empty() || cx.ssl_on;
        for (i, s) in servers.iter().enumerate() {
            if i == idx {
                continue;
            }
            let body = s.block.as_deref().unwrap_or_default();
            if is_https_redirect(body) && chosen_has_tls {
                cx.merge_redirect(s, body);
            } else {
                let msg = format!(
                    "another server block, not translated: one import makes one site; choose it with --server {}",
                    server_names(body)
                        .into_iter()
                        .find(|n| n != "_")
                        .unwrap_or_else(|| (i + 1).to_string())
                );
                cx.note(
                    NoteKind::Untranslated,
                    &s.file,
                    s.line,
                    describe(i, s),
                    &msg,
                );
            }
        }
        cx.finish_server();
    }
    if let Some((file, sections)) = fpm {
        let pools: Vec<&Section> = sections.iter().filter(|s| s.name != "global").collect();
        let Some(pool) = pools.first() else {
            return Err(ImportError::NoPool {
                file: file.to_string(),
            });
        };
        header.push(format!("  php-fpm: {file}, pool [{}]", pool.name));
        for s in sections.iter().filter(|s| s.name == "global") {
            for e in &s.entries {
                cx.fpm_global(file, e);
            }
        }
        cx.fpm_pool(file, pool);
        for other in pools.iter().skip(1) {
            cx.note(
                NoteKind::Untranslated,
                file,
                other.line,
                format!("[{}]", other.name),
                "another pool, not translated: one import makes one pool",
            );
        }
    }
    // fastcgi_read_timeout stands for request_terminate_timeout when the pool has none.
    if let Some((v, from)) = cx.read_timeout.take() {
        if cx.doc.pool.get("request_terminate_timeout").is_none() {
            cx.doc.pool.set("request_terminate_timeout", v, &from);
        }
    }
    header.push("Directives not translated are listed on standard error, one per line.".into());
    cx.notes
        .sort_by(|a, b| (a.file.as_str(), a.line).cmp(&(b.file.as_str(), b.line)));
    Ok(Translation {
        doc: cx.doc,
        notes: cx.notes,
        header,
    })
}

/// `server` blocks (top level, or in `http`), and the `http`-level directives they
/// inherit; everything else at the top is noted.
fn split_top(cx: &mut Ctx, top: Vec<Directive>) -> (Vec<Directive>, Vec<Directive>) {
    let mut http_level = Vec::new();
    let mut servers = Vec::new();
    for d in top {
        match (d.name.as_str(), &d.block) {
            ("server", Some(_)) => servers.push(d),
            ("http", Some(children)) => {
                for c in children.clone() {
                    if c.name == "server" && c.block.is_some() {
                        servers.push(c);
                    } else {
                        http_level.push(c);
                    }
                }
            }
            ("include" | "error_log", _) => cx.server_directive(&d),
            ("events", Some(_)) => cx.info(&d, "nginx process setting; not needed"),
            ("worker_processes", _) => match d.args.first().map(String::as_str) {
                None | Some("auto") => cx.info(
                    &d,
                    "one per core; Isola's server.threads defaults to one per core too",
                ),
                Some(n) => match n.parse::<i64>() {
                    Ok(v) if (1..=1024).contains(&v) => cx.doc.server.set("threads", v, &at(&d)),
                    _ => cx.skip(&d, "not a number of processes from 1 to 1024"),
                },
            },
            ("user" | "pid" | "worker_rlimit_nofile" | "load_module", _) => {
                cx.info(&d, "nginx process setting; not needed")
            }
            _ => cx.skip(&d, "outside any server block; no Isola equivalent"),
        }
    }
    (http_level, servers)
}

/// `--server NAME`: a server_name of the block, or its 1-based number.
fn pick(servers: &[Directive], want: &str) -> Option<usize> {
    if let Ok(n) = want.parse::<usize>() {
        if (1..=servers.len()).contains(&n) {
            return Some(n - 1);
        }
    }
    servers.iter().position(|s| {
        server_names(s.block.as_deref().unwrap_or_default())
            .iter()
            .any(|n| n.eq_ignore_ascii_case(want))
    })
}

/// nginx's size: `64m`, `1G`, `1024`.
fn nginx_size(v: &str) -> Option<toml::Value> {
    let (num, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], Some(c.to_ascii_uppercase())),
        _ => (v, None),
    };
    let n: i64 = num.parse().ok()?;
    match unit {
        None => Some(toml::Value::Integer(n)),
        Some(u @ ('K' | 'M' | 'G')) => Some(toml::Value::String(format!("{n}{u}"))),
        Some(_) => None,
    }
}

/// nginx's (and php-fpm's) time: `30`, `30s`, `500ms`, `1h30m`, `2d`: as an Isola
/// duration.
fn time(v: &str) -> Option<toml::Value> {
    let v = v.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Some(toml::Value::Integer(n));
    }
    let mut ms: u64 = 0;
    let mut rest = v;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor: u64 = match unit {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return None,
        };
        ms = ms.checked_add(n.checked_mul(factor)?)?;
    }
    Some(toml::Value::String(if ms / 1000 * 1000 == ms {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }))
}

/// `listen` address → `IP:PORT`.
fn listen_addr(a: &str, ssl: bool) -> Option<String> {
    let default_port = if ssl { 443 } else { 80 };
    if a.starts_with("unix:") {
        return None;
    }
    if let Ok(p) = a.parse::<u16>() {
        return Some(format!("0.0.0.0:{p}"));
    }
    if let Some(rest) = a.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']')?;
        ip.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse::<u16>().ok()?,
            None if tail.is_empty() => default_port,
            None => return None,
        };
        return Some(format!("[{ip}]:{port}"));
    }
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()?),
        None => (a, default_port),
    };
    let ip = match host {
        "*" => "0.0.0.0".to_string(),
        "localhost" => "127.0.0.1".to_string(),
        h => h.parse::<std::net::Ipv4Addr>().ok()?.to_string(),
    };
    Some(format!("{ip}:{port}"))
}

/// The location's modifier and pattern: `~ \.php$`, `~\.php$`, `= /x`, `/x`.
fn location_args(args: &[String]) -> Option<(&str, &str)> {
    match args {
        [m, p] => Some((m.as_str(), p.as_str())),
        [one] => {
            for m in ["~*", "^~", "~", "="] {
                if let Some(p) = one.strip_prefix(m) {
                    if !p.is_empty() {
                        return Some((m, p));
                    }
                }
            }
            Some(("", one.as_str()))
        }
        _ => None,
    }
}

/// A `path` + `dir` table (`[[server.alias]]`, `[[server.sendfile]]`), the folder without
/// its trailing slashes (`/` stays `/`); each key with the source line it came from.
fn folder_table(path: &str, dir: &str, path_at: &str, dir_at: &str) -> Table {
    let dir = match dir.trim_end_matches('/') {
        "" => "/",
        d => d,
    };
    let mut t = Table::default();
    t.set("path", path, path_at);
    t.set("dir", dir, dir_at);
    t
}

/// A regex that names dotfiles: `/\.`, `/\.ht`, `(^|/)\.`, `/\.(?!well-known)`.
fn is_dotfile_regex(re: &str) -> bool {
    let r = re.trim_start_matches('^');
    ["/\\.", "\\/\\.", "(^|/)\\.", "(?:^|/)\\."]
        .iter()
        .any(|p| r.starts_with(p))
}

/// A simple regex as an Isola path pattern (`^/(bin|inc)/` → `/{bin,inc}/**`,
/// `\.(sql|bak)$` → `*.{sql,bak}`); `None` for anything beyond literals, `\.`,
/// alternatives of literals and `.*` as a whole path segment or before a file suffix.
fn regex_to_pattern(re: &str) -> Option<String> {
    let (start, body) = match re.strip_prefix('^') {
        Some(b) => (true, b),
        None => (false, re),
    };
    let (end, body) = match body.strip_suffix('$') {
        Some(b) if !b.ends_with('\\') => (true, b),
        _ => (false, body),
    };
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let n = *chars.get(i + 1)?;
                if !matches!(n, '.' | '/' | '-' | '_' | '~') {
                    return None;
                }
                out.push(n);
                i += 2;
            }
            '.' if matches!(chars.get(i + 1), Some('*') | Some('+')) => {
                let rest: String = chars[i + 2..].iter().collect();
                let after_slash = out.is_empty() || out.ends_with('/');
                if after_slash && rest.is_empty() {
                    out.push_str(if out.is_empty() { "*" } else { "**" });
                } else if after_slash && !rest.contains('/') && !out.is_empty() {
                    out.push_str("**/*");
                } else if out.is_empty() && !rest.contains('/') {
                    out.push('*');
                } else {
                    return None;
                }
                i += 2;
            }
            '(' => {
                let close = chars[i..].iter().position(|&c| c == ')')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.strip_prefix("?:").unwrap_or(&inner);
                let mut alts = Vec::new();
                for a in inner.split('|') {
                    let lit = a.replace("\\.", ".");
                    if lit.is_empty()
                        || !lit
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-/~".contains(c))
                    {
                        return None;
                    }
                    alts.push(lit);
                }
                out.push('{');
                out.push_str(&alts.join(","));
                out.push('}');
                i = close + 1;
            }
            c if c.is_ascii_alphanumeric() || "/_-~".contains(c) => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    if out.is_empty() {
        return None;
    }
    if !end {
        if out.ends_with('/') {
            out.push_str("**");
        } else if !out.ends_with("**") {
            return None;
        }
    }
    if !start {
        if out.starts_with('/') {
            out = format!("/**{out}");
        } else if out.contains('/') {
            return None;
        } else if !out.starts_with('*') {
            out = format!("*{out}");
        }
    }
    Some(out)
}

/// `expires` → a Cache-Control value.
fn expires(v: &str) -> Option<String> {
    match v {
        "max" => Some("public, max-age=315360000".into()),
        "epoch" => Some("no-cache".into()),
        "off" => None,
        v => {
            let secs = match time(v)? {
                toml::Value::Integer(n) => n,
                toml::Value::String(s) => s.strip_suffix('s')?.parse().ok()?,
                _ => return None,
            };
            Some(format!("max-age={secs}"))
        }
    }
}

impl Ctx {
    fn deny(&mut self, d: &Directive, pattern: String) {
        let mut list: Vec<toml::Value> = match self.doc.server.get("deny") {
            Some(toml::Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let p = toml::Value::String(pattern);
        if !list.contains(&p) {
            list.push(p);
        }
        self.doc.server.set("deny", list, &at(d));
        if !self.denied_404 {
            self.denied_404 = true;
            self.info(
                d,
                "translated to server.deny; note that Isola answers denied paths with 404 where nginx's deny answers 403",
            );
        }
    }

    fn server_directive(&mut self, d: &Directive) {
        let a = d.args.as_slice();
        let from = at(d);
        match (d.name.as_str(), a) {
            ("listen", [addr, flags @ ..]) => {
                let ssl = flags.iter().any(|f| f == "ssl");
                match listen_addr(addr, ssl) {
                    Some(x) if ssl => self.tls.push((x, from)),
                    Some(x) => self.plain.push((x, from)),
                    None => self.skip(d, "Isola listens on IP:PORT addresses only"),
                }
                for f in flags {
                    match f.as_str() {
                        "ssl" | "default_server" | "default" => {}
                        "http2" => self.info(d, "Isola speaks HTTP/2 over TLS (ALPN) and h2c without being told"),
                        f if f.starts_with("ipv6only")
                            || f.starts_with("backlog")
                            || f == "reuseport"
                            || f == "deferred"
                            || f.starts_with("so_keepalive")
                            || f.starts_with("fastopen") => {}
                        _ => self.skip(d, &format!("listen option {f:?} has no Isola equivalent")),
                    }
                }
            }
            ("server_name", names) => {
                for n in names {
                    if n == "_" || n.is_empty() || n == "localhost" {
                        continue;
                    }
                    if n.starts_with('~') || n.contains('$') {
                        self.skip(d, &format!("{n}: regular-expression names have no Isola equivalent"));
                    } else if let Some(base) = n.strip_prefix('.') {
                        self.names.push(base.to_ascii_lowercase());
                        self.names.push(format!("*.{}", base.to_ascii_lowercase()));
                    } else if n.ends_with(".*") || (n.contains('*') && !n.starts_with("*.")) {
                        self.skip(d, &format!("{n}: Isola's wildcards are \"*.\" prefixes only"));
                    } else {
                        self.names.push(n.to_ascii_lowercase());
                    }
                }
                self.names_from = from;
            }
            ("root", [dir]) if !dir.contains('$') => {
                if !dir.starts_with('/') {
                    self.info(d, "a relative root: nginx reads it from its prefix, Isola from the folder of isola.toml; check the path");
                }
                self.doc.server.set("docroot", dir.as_str(), &from);
            }
            ("root", _) => self.skip(d, "a root with variables has no Isola equivalent"),
            ("index", names) => {
                let ok: Vec<String> = names
                    .iter()
                    .filter(|n| !n.contains(['/', '$']) && !n.starts_with('.'))
                    .cloned()
                    .collect();
                if ok.len() != names.len() {
                    self.skip(d, "index names with a path or variables are left out");
                }
                if !ok.is_empty() {
                    self.doc.server.set("index", ok, &from);
                }
            }
            ("try_files", _) => self.try_files(d),
            ("location", _) => self.location(d),
            ("client_max_body_size", [v]) if v == "0" => self.skip(
                d,
                "0 (no limit) has no Isola equivalent; server.max_body_size keeps its default, 100M",
            ),
            ("client_max_body_size", [v]) => match nginx_size(v) {
                Some(x) => self.doc.server.set("max_body_size", x, &from),
                None => self.skip(d, "not a size"),
            },
            ("client_header_timeout", [v]) => match time(v) {
                Some(x) => self.doc.server.set("header_read_timeout", x, &from),
                None => self.skip(d, "not a time"),
            },
            ("keepalive_timeout", [v, ..]) => match time(v) {
                Some(x) => self.doc.server.set("keepalive_timeout", x, &from),
                None => self.skip(d, "not a time"),
            },
            ("server_tokens", [v]) => self.doc.server.set("server_tokens", v == "on", &from),
            ("ssl_certificate", [f]) if !f.contains('$') => self.certs.push((f.clone(), from)),
            ("ssl_certificate_key", [f]) if !f.contains('$') => self.keys.push((f.clone(), from)),
            ("ssl_certificate" | "ssl_certificate_key", _) => {
                self.skip(d, "certificate paths with variables have no Isola equivalent")
            }
            ("ssl", [v]) => self.ssl_on = v == "on",
            ("http2", _) => self.info(d, "Isola speaks HTTP/2 over TLS (ALPN) and h2c without being told"),
            (n, _) if n.starts_with("ssl_") => self.skip(
                d,
                "Isola's TLS (rustls) is TLS 1.2 and 1.3 with its own safe cipher suites and session handling; not configurable",
            ),
            ("access_log", [v]) if v == "off" => self.doc.log.set("access", false, &from),
            ("access_log", [path, rest @ ..]) if !path.contains(':') && !path.contains('$') => {
                self.doc.log.set("access_file", path.as_str(), &from);
                match rest.first().map(String::as_str) {
                    None | Some("combined") => {}
                    Some(f) => self.skip(
                        d,
                        &format!("log format {f:?}: Isola writes \"combined\" with its own fields, or \"json\" (log.access_format)"),
                    ),
                }
            }
            ("access_log", _) => self.skip(d, "Isola writes its access log to a file or stdout"),
            ("error_log", _) => self.skip(d, "Isola logs errors to standard error (log.level, log.format)"),
            ("log_not_found", _) => self.skip(d, "no Isola equivalent: 404s are in the access log"),
            ("gzip", [v]) if v == "off" => self.doc.compression.set("enabled", false, &from),
            ("gzip", _) => self.info(d, "Isola compresses text-like responses with br, zstd or gzip by default"),
            ("gzip_min_length", [v]) => match nginx_size(v) {
                Some(x) => self.doc.compression.set("min_size", x, &from),
                None => self.skip(d, "not a size"),
            },
            ("gzip_static", _) => self.info(d, "Isola sends precompressed .gz/.br siblings by itself"),
            (n, _) if n.starts_with("gzip_") => self.info(d, "Isola picks the types and levels itself"),
            ("set_real_ip_from", [net]) => {
                let mut list: Vec<toml::Value> = match self.doc.server.get("trusted_proxies") {
                    Some(toml::Value::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                list.push(toml::Value::String(net.clone()));
                self.doc.server.set("trusted_proxies", list, &from);
            }
            ("real_ip_header", [h]) if h.eq_ignore_ascii_case("X-Forwarded-For") => self.info(
                d,
                "Isola reads Forwarded or X-Forwarded-For from server.trusted_proxies",
            ),
            ("real_ip_recursive", _) => self.info(d, "Isola always walks the chain past every trusted proxy"),
            ("sendfile" | "tcp_nopush" | "tcp_nodelay" | "types_hash_max_size"
            | "server_names_hash_bucket_size" | "default_type" | "etag" | "if_modified_since", _) => {
                self.info(d, "not needed: Isola does this itself")
            }
            ("include", [path]) if is_cgi_snippet(path) => self.info(d, "not needed: Isola sets the CGI parameters itself"),
            ("include", [path]) if path.ends_with("mime.types") => self.info(d, "not needed: Isola has a complete MIME table"),
            ("include", [path]) if path.contains(['*', '?']) => self.info(d, "matches no readable file"),
            ("include", _) => self.skip(d, "not followed: the file could not be read; translate it by hand"),
            ("return", [code, url]) if url.starts_with("https://") && code.starts_with('3') => {
                self.doc.server.set("redirect_http_to_https", true, &from);
            }
            ("fastcgi_param", _) => self.fastcgi_param(d),
            (n, _) if n.starts_with("fastcgi_") => self.fastcgi(d),
            ("autoindex", _) => self.skip(d, "Isola never lists folders"),
            ("charset", _) => self.skip(d, "no Isola equivalent: Isola sends utf-8 for text types; set other charsets from PHP"),
            ("add_header", _) => self.skip(d, "no Isola equivalent for added response headers: send them from PHP"),
            ("expires", _) => self.skip(d, "translated only in a location for file types; see server.cache_control"),
            ("error_page", _) => self.skip(d, "Isola has its own error pages; PHP's are passed through"),
            ("rewrite", _) => self.skip(d, "rewrites have no Isola equivalent: route in PHP (the front controller sees REQUEST_URI intact)"),
            ("if" | "set" | "map", _) => self.skip(d, "no Isola equivalent"),
            (n, _) if n.starts_with("proxy_") => self.skip(d, "Isola does not proxy to other servers"),
            (n, _) if n.starts_with("auth_basic") => self.skip(d, "no HTTP authentication in Isola: do it in PHP"),
            (n, _) if n.starts_with("limit_") => self.skip(d, "no rate limits in Isola; see pool.queue_size and server.max_connections"),
            ("client_body_timeout", _) => self.skip(d, "Isola allows 60 s without a byte of the body; not configurable"),
            ("large_client_header_buffers" | "client_header_buffer_size", _) => {
                self.skip(d, "Isola accepts request heads up to 64 KiB; not configurable")
            }
            ("allow" | "deny", _) => self.skip(d, "no address-based access rules in Isola"),
            _ => self.skip(d, "no Isola equivalent"),
        }
    }

    fn try_files(&mut self, d: &Directive) {
        let a = &d.args;
        let from = at(d);
        let Some(last) = a.last() else {
            return self.skip(d, "no files given");
        };
        let heads_ok = a[..a.len() - 1]
            .iter()
            .all(|x| x == "$uri" || x == "$uri/" || x == "$uri.html" || x == "$uri/index.html");
        if !heads_ok {
            return self.skip(
                d,
                "only try_files $uri $uri/ ... with a final script or =404 translates",
            );
        }
        if last.starts_with('=') {
            self.front = Some((None, from));
            return;
        }
        let script = last
            .split(['?', '$'])
            .next()
            .unwrap_or_default()
            .trim_start_matches('/');
        if script.ends_with(".php") && !script.contains("..") {
            self.front = Some((Some(script.to_string()), from));
            if a.iter().any(|x| x == "$uri.html") {
                self.skip(d, "$uri.html: Isola does not try an .html extension");
            }
        } else {
            self.skip(
                d,
                "only a .php fallback (a front controller) or =404 translates",
            );
        }
    }

    fn fastcgi_param(&mut self, d: &Directive) {
        let from = at(d);
        match d.args.as_slice() {
            [name, ..] if CGI_PARAMS.contains(&name.as_str()) => {
                self.info(d, "not needed: Isola sets this CGI parameter itself")
            }
            [name, ..] if name == "HTTP_X_SENDFILE_TYPE" || name == "HTTP_X_ACCEL_MAPPING" => self
                .info(
                    d,
                    "not needed: with [[server.sendfile]] Isola sets HTTP_X_SENDFILE_TYPE itself (X-Sendfile, no mapping)",
                ),
            [name, value] if name == "PHP_VALUE" || name == "PHP_ADMIN_VALUE" => {
                for line in value.split('\n') {
                    let Some((k, v)) = line.split_once('=') else {
                        continue;
                    };
                    let (k, v) = (k.trim(), v.trim());
                    if !k.is_empty() {
                        self.doc.ini.set(k, v, &from);
                    }
                }
            }
            [name, value] if !value.contains('$') => self.doc.env.set(name, value.as_str(), &from),
            [_, _] => self.skip(
                d,
                "the value uses nginx variables; a constant could go to php.env",
            ),
            _ => self.skip(d, "expected a name and a value"),
        }
    }

    fn fastcgi(&mut self, d: &Directive) {
        match (d.name.as_str(), d.args.as_slice()) {
            ("fastcgi_pass", _) => {
                self.info(d, "not needed: Isola runs *.php in its own worker pool")
            }
            ("fastcgi_index", _) => self.info(d, "not needed: see server.index"),
            ("fastcgi_split_path_info", _) => self.info(
                d,
                "not needed: Isola splits PATH_INFO after the .php itself",
            ),
            ("fastcgi_read_timeout", [v]) => match time(v) {
                Some(x) => self.read_timeout = Some((x, at(d))),
                None => self.skip(d, "not a time"),
            },
            ("fastcgi_intercept_errors", _) => {
                self.skip(d, "Isola passes PHP's error responses through")
            }
            _ => self.skip(d, "FastCGI tuning has no Isola equivalent"),
        }
    }

    fn location(&mut self, d: &Directive) {
        let children = d.block.clone().unwrap_or_default();
        let Some((m, p)) = location_args(&d.args) else {
            return self.skip(d, "a location without a pattern");
        };
        let regex = m == "~" || m == "~*";
        let names = |n: &str| children.iter().any(|c| c.name == n);
        let is_deny = !children.is_empty()
            && children.iter().all(|c| {
                (c.name == "deny" && c.args == ["all"])
                    || (c.name == "return"
                        && matches!(c.args.first().map(String::as_str), Some("403" | "404")))
                    || c.name == "access_log"
                    || c.name == "log_not_found"
            })
            && children
                .iter()
                .any(|c| c.name == "deny" || c.name == "return");
        // PHP: the handler is implied.
        if regex && p.contains("php") && (names("fastcgi_pass") || names("include")) {
            self.info(
                d,
                "not needed: Isola runs *.php files (PATH_INFO split, missing scripts 404) itself",
            );
            for c in &children {
                match c.name.as_str() {
                    "try_files" => self.info(
                        c,
                        "not needed: Isola answers 404 for a script that does not exist",
                    ),
                    "fastcgi_param" => self.fastcgi_param(c),
                    "include" => self.server_directive(c),
                    n if n.starts_with("fastcgi_") => self.fastcgi(c),
                    _ => self.skip(c, "inside the PHP location: no Isola equivalent"),
                }
            }
            return;
        }
        if is_deny {
            for c in children
                .iter()
                .filter(|c| c.name == "access_log" || c.name == "log_not_found")
            {
                self.skip(c, "no per-location logging in Isola");
            }
            if regex && is_dotfile_regex(p) || !regex && p.starts_with("/.") {
                return self.info(
                    d,
                    "not needed: Isola denies dotfiles by default (404), except /.well-known/; allow exceptions with server.allow",
                );
            }
            if regex {
                return match regex_to_pattern(p) {
                    // `location ~ \.php$ { return 404; }` after an index.php location
                    // limits PHP to that script; Isola has no such order.
                    Some(g) if g.starts_with('*') && g.contains("php") => self.skip(
                        d,
                        "Isola cannot limit PHP to some scripts by location order: every .php file in the docroot runs; name the ones to hide in server.deny",
                    ),
                    Some(g) => match no_exec_dir(&g) {
                        Some(dir) => {
                            let mut list: Vec<toml::Value> = match self.doc.server.get("no_exec") {
                                Some(toml::Value::Array(a)) => a.clone(),
                                _ => Vec::new(),
                            };
                            list.push(toml::Value::String(dir));
                            self.doc.server.set("no_exec", list, &at(d));
                        }
                        None => self.deny(d, g),
                    },
                    None => self.skip(d, "this regular expression has no Isola path pattern; write server.deny by hand"),
                };
            }
            let pat = match (m, p.ends_with('/')) {
                ("=", _) => p.to_string(),
                (_, true) => format!("{p}**"),
                (_, false) => {
                    self.deny(d, p.to_string());
                    format!("{p}/**")
                }
            };
            return self.deny(d, pat);
        }
        // location /protected/ { internal; alias /srv/private/; }: X-Accel-Redirect's target.
        if names("internal") {
            return self.internal(d, m, p, &children);
        }
        // alias
        if let Some(alias) = children.iter().find(|c| c.name == "alias") {
            return self.alias(d, m, p, alias, &children);
        }
        // location / { ... }: the server's own routing.
        if m.is_empty() && p == "/" {
            for c in &children {
                self.server_directive(c);
            }
            return;
        }
        // Static files by type: cache headers.
        if m == "~*" || m == "~" {
            if let Some(glob) = regex_to_pattern(p).filter(|g| !g.contains('/')) {
                let value =
                    children
                        .iter()
                        .find_map(|c| match (c.name.as_str(), c.args.as_slice()) {
                            ("expires", [v]) => expires(v),
                            ("add_header", [h, v, ..])
                                if h.eq_ignore_ascii_case("Cache-Control") =>
                            {
                                Some(v.clone())
                            }
                            _ => None,
                        });
                if let Some(value) = value {
                    let mut t = Table::default();
                    t.set("path", glob.as_str(), &at(d));
                    t.set("value", value.as_str(), &at(d));
                    self.doc.cache_control.push(t);
                    for c in &children {
                        match c.name.as_str() {
                            "expires" | "add_header"
                                if c.args.first().is_some_and(|h| {
                                    c.name == "expires" || h.eq_ignore_ascii_case("Cache-Control")
                                }) => {}
                            "access_log" | "log_not_found" => {
                                self.skip(c, "no per-location logging in Isola")
                            }
                            "try_files" => {}
                            _ => self.skip(c, "inside a static-file location: no Isola equivalent"),
                        }
                    }
                    return;
                }
            }
        }
        self.skip(d, "no Isola equivalent for this location: Isola routes every path itself (static file, script, front controller); the directives inside are listed below");
        for c in &children {
            match c.name.as_str() {
                "access_log" | "log_not_found" => self.skip(c, "no per-location logging in Isola"),
                _ => self.skip(c, "inside an untranslated location"),
            }
        }
    }

    /// An `internal` prefix location: a `[[server.sendfile]]` folder with that prefix, the
    /// folder from its `alias`, its `root` or the server's root.
    fn internal(&mut self, d: &Directive, m: &str, p: &str, children: &[Directive]) {
        let plain = !p.contains(['\\', '(', '[', '*', '+', '?', '|', '$', '^']);
        if !matches!(m, "" | "^~") || !plain || p.trim_matches('/').is_empty() {
            return self.skip(d, "an internal location other than a URL prefix");
        }
        let arg = |name: &str| {
            children
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.args.first().cloned())
        };
        let path = format!("/{}", p.trim_matches('/'));
        let root = arg("root").or_else(|| match self.doc.server.get("docroot") {
            Some(toml::Value::String(r)) => Some(r.clone()),
            _ => None,
        });
        let dir = match (arg("alias"), root) {
            (Some(a), _) => a,
            (None, Some(r)) => format!("{}{path}", r.trim_end_matches('/')),
            (None, None) => return self.skip(d, "an internal location without alias or root"),
        };
        if dir.contains('$') || !dir.starts_with('/') {
            return self.skip(
                d,
                "an internal location whose folder is not an absolute path",
            );
        }
        let t = folder_table(&path, &dir, &at(d), &at(d));
        self.doc.sendfile.push(t);
        self.info(
            d,
            "X-Accel-Redirect (and X-Sendfile) below this prefix are sent from the folder; clients get 404",
        );
        for c in children {
            match c.name.as_str() {
                "internal" | "alias" | "root" => {}
                _ => self.skip(c, "inside an internal location: no Isola equivalent"),
            }
        }
    }

    fn alias(
        &mut self,
        d: &Directive,
        m: &str,
        p: &str,
        alias: &Directive,
        children: &[Directive],
    ) {
        let Some(dir) = alias.args.first() else {
            return self.skip(alias, "alias without a folder");
        };
        // location /p/ { alias /d/; } or location ~ ^/p/(.*)$ { alias /d/$1; }
        let (path, dir) = match m {
            "" | "^~" if !dir.contains('$') => (p.to_string(), dir.clone()),
            "~" | "~*" => {
                let prefix = p
                    .strip_prefix('^')
                    .and_then(|r| r.strip_suffix("(.*)$").or_else(|| r.strip_suffix("(.*)")));
                match (prefix, dir.strip_suffix("$1")) {
                    (Some(pre), Some(d))
                        if !pre.contains(['\\', '(', '[', '.', '*', '+', '?', '|'])
                            && !d.contains('$') =>
                    {
                        (pre.to_string(), d.to_string())
                    }
                    _ => {
                        return self.skip(
                            d,
                            "a regular-expression alias other than ^/path/(.*)$ → /dir/$1",
                        )
                    }
                }
            }
            _ => return self.skip(d, "no Isola equivalent for this alias"),
        };
        let path = format!("/{}", path.trim_matches('/'));
        let t = folder_table(&path, &dir, &at(d), &at(alias));
        self.doc.aliases.push(t);
        for c in children {
            match c.name.as_str() {
                "alias" => {}
                "location" => {
                    let inner = c.block.as_deref().unwrap_or_default();
                    if inner.iter().any(|x| x.name == "fastcgi_pass") {
                        self.info(c, "not needed: Isola runs *.php below an alias too");
                        for x in inner {
                            match x.name.as_str() {
                                "fastcgi_param" => self.fastcgi_param(x),
                                "include" => self.server_directive(x),
                                n if n.starts_with("fastcgi_") => self.fastcgi(x),
                                "try_files" => {}
                                _ => self.skip(x, "inside the PHP location: no Isola equivalent"),
                            }
                        }
                    } else {
                        self.location(c);
                    }
                }
                "index" => self.server_directive(c),
                "try_files" => self.info(
                    c,
                    "Isola serves files below an alias, and its scripts, like the docroot's",
                ),
                _ => self.skip(c, "inside an alias location: no Isola equivalent"),
            }
        }
    }

    fn merge_redirect(&mut self, s: &Directive, body: &[Directive]) {
        for d in body {
            match d.name.as_str() {
                "listen" => {
                    let before = self.plain.len();
                    let mut scratch = Ctx::default();
                    scratch.server_directive(d);
                    if self.plain.len() == before {
                        self.plain.extend(scratch.plain);
                    }
                }
                "server_name" => {}
                _ => {}
            }
        }
        self.doc.server.set("redirect_http_to_https", true, &at(s));
        self.note(
            NoteKind::Info,
            &s.file,
            s.line,
            "server { return 301 https://... }".into(),
            "translated: its listen became server.listen, with server.redirect_http_to_https",
        );
    }

    /// Listeners, names, certificates and the front controller, once every directive is in.
    fn finish_server(&mut self) {
        if self.ssl_on {
            let plain = std::mem::take(&mut self.plain);
            self.tls.extend(plain);
        }
        let pick = |list: &[(String, String)]| -> Option<usize> {
            if list.is_empty() {
                None
            } else {
                Some(
                    list.iter()
                        .position(|(a, _)| !a.starts_with('['))
                        .unwrap_or(0),
                )
            }
        };
        let plain = self.plain.clone();
        match pick(&plain) {
            Some(i) => {
                let (a, f) = &plain[i];
                self.doc.server.set("listen", a.as_str(), f);
                self.other_listens(&plain, i, "server.listen");
            }
            None if self.tls.is_empty() => {
                self.doc
                    .server
                    .set("listen", "0.0.0.0:80", "nginx's default listen");
                self.notes.push(Note {
                    kind: NoteKind::Info,
                    file: self.server_loc.0.clone(),
                    line: self.server_loc.1,
                    directive: "listen".into(),
                    reason: "no listen directive: nginx's default, port 80 on every address, is written out".into(),
                });
            }
            None => {}
        }
        let tls = self.tls.clone();
        if let Some(i) = pick(&tls) {
            let (a, f) = &tls[i];
            if self.certs.is_empty() {
                self.note(NoteKind::Untranslated, f.split(':').next().unwrap_or_default(), 0, format!("listen {a} ssl"), "no ssl_certificate found (an include that could not be read?); the TLS listener is left out");
            } else {
                self.doc.server.set("tls_listen", a.as_str(), f);
                self.other_listens(&tls, i, "server.tls_listen");
                if plain.is_empty() {
                    self.notes.push(Note {
                        kind: NoteKind::Info,
                        file: String::new(),
                        line: 0,
                        directive: format!("listen {a} ssl"),
                        reason: "Isola also has a plain HTTP listener (server.listen, default 127.0.0.1:8080)".into(),
                    });
                }
            }
        }
        let (certs, keys) = (
            std::mem::take(&mut self.certs),
            std::mem::take(&mut self.keys),
        );
        if self.doc.server.get("tls_listen").is_some() {
            for (i, (c, cf)) in certs.iter().enumerate() {
                let Some((k, kf)) = keys.get(i) else {
                    self.notes.push(Note {
                        kind: NoteKind::Untranslated,
                        file: cf.clone(),
                        line: 0,
                        directive: format!("ssl_certificate {c}"),
                        reason: "no ssl_certificate_key for it".into(),
                    });
                    continue;
                };
                let mut t = Table::default();
                t.set("cert", c.as_str(), cf);
                t.set("key", k.as_str(), kf);
                self.doc.certs.push(t);
            }
        } else if let Some(kv) = self
            .doc
            .server
            .kvs
            .iter()
            .find(|k| k.key == "redirect_http_to_https")
            .cloned()
        {
            self.doc.server.remove("redirect_http_to_https");
            let (file, line) = kv.from.rsplit_once(':').unwrap_or((kv.from.as_str(), "0"));
            self.note(
                NoteKind::Untranslated,
                file,
                line.parse().unwrap_or(0),
                "return 301 https://...".into(),
                "server.redirect_http_to_https needs a TLS listener, and this server block has none",
            );
        }
        match self.front.take() {
            Some((Some(script), from)) => {
                self.doc
                    .server
                    .set("front_controller", script.as_str(), &from)
            }
            Some((None, from)) => self.doc.server.set("front_controller", "", &from),
            // nginx without a fallback answers 404; Isola's default is a front controller.
            None => self.doc.server.set(
                "front_controller",
                "",
                "no try_files fallback: nginx answers 404",
            ),
        }
        if self.doc.server.get("docroot").is_none() {
            let (file, line) = self.server_loc.clone();
            self.note(
                NoteKind::Untranslated,
                &file,
                line,
                "root".into(),
                "the server block has no root: nginx's default is its html folder (/usr/share/nginx/html on Debian), Isola's the folder of isola.toml; set server.docroot",
            );
            if !self.names.is_empty() {
                self.names.clear();
                self.note(
                    NoteKind::Untranslated,
                    &file,
                    line,
                    "server_name".into(),
                    "not written: a [[site]] needs a docroot",
                );
            }
        }
        if !self.names.is_empty() {
            let mut site = Table::default();
            let mut names = std::mem::take(&mut self.names);
            names.dedup();
            site.set("server_names", names, &self.names_from);
            if let Some(kv) = self
                .doc
                .server
                .kvs
                .iter()
                .find(|k| k.key == "docroot")
                .cloned()
            {
                site.set("docroot", kv.value, &kv.from);
                self.doc.server.remove("docroot");
            }
            self.doc.site = Some(site);
        }
    }

    fn other_listens(&mut self, list: &[(String, String)], chosen: usize, key: &str) {
        let (chosen_addr, _) = &list[chosen];
        let port = chosen_addr
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string();
        for (j, (a, f)) in list.iter().enumerate() {
            if j == chosen || a == chosen_addr {
                continue;
            }
            let (file, line) = f.rsplit_once(':').unwrap_or((f.as_str(), "0"));
            let same_port = a.rsplit(':').next() == Some(port.as_str()) && a.starts_with("[::]");
            let reason = if same_port {
                format!("{key} is one address ({chosen_addr}); use \"[::]:{port}\" instead for IPv6, which on Linux accepts IPv4 too")
            } else {
                format!("Isola has one address per listener; {key} = {chosen_addr:?}")
            };
            self.note(
                if same_port {
                    NoteKind::Info
                } else {
                    NoteKind::Untranslated
                },
                file,
                line.parse().unwrap_or(0),
                format!("listen {a}"),
                &reason,
            );
        }
    }

    fn fpm_global(&mut self, file: &str, e: &Entry) {
        match e.key.as_str() {
            "emergency_restart_threshold" => match e.value.parse::<i64>() {
                Ok(n) => self.doc.pool.set(
                    "emergency_restart_threshold",
                    n,
                    &format!("{file}:{}", e.line),
                ),
                Err(_) => self.skip_e(file, e, "not a number"),
            },
            "emergency_restart_interval" => match time(&e.value) {
                Some(v) => self.doc.pool.set(
                    "emergency_restart_interval",
                    v,
                    &format!("{file}:{}", e.line),
                ),
                None => self.skip_e(file, e, "not a time"),
            },
            "include" => self.skip_e(
                file,
                e,
                "not followed: import the pool file itself with --fpm",
            ),
            "pid" | "error_log" | "daemonize" | "syslog.facility" | "syslog.ident"
            | "log_level" => self.info_e(file, e, "php-fpm daemon setting; not needed"),
            _ => self.skip_e(file, e, "php-fpm daemon setting with no Isola equivalent"),
        }
    }

    fn fpm_pool(&mut self, file: &str, pool: &Section) {
        let pm = pool.get("pm").map(|e| e.value.clone());
        let mut admin_noted = false;
        for e in &pool.entries {
            let from = format!("{file}:{}", e.line);
            let int = |cx: &mut Ctx, key: &str| match e.value.parse::<i64>() {
                Ok(n) => cx.doc.pool.set(key, n, &from),
                Err(_) => cx.skip_e(file, e, "not a number"),
            };
            if let Some((kind, name)) = e.bracket() {
                match kind {
                    "php_value" | "php_admin_value" | "php_flag" | "php_admin_flag" => {
                        if matches!(name, "cgi.fix_pathinfo" | "cgi.discard_path" | "cgi.force_redirect") {
                            self.skip_e(file, e, "Isola sets it itself to keep routing safe");
                            continue;
                        }
                        let v: toml::Value = if kind.ends_with("_flag") {
                            toml::Value::Boolean(matches!(e.value.to_ascii_lowercase().as_str(), "on" | "1" | "yes" | "true"))
                        } else {
                            toml::Value::String(e.value.clone())
                        };
                        self.doc.ini.set(name, v, &from);
                        if kind.starts_with("php_admin") && !admin_noted {
                            admin_noted = true;
                            self.info_e(file, e, "translated to php.ini, which Isola passes as -d: unlike php_admin_value, it does not stop a script from changing the setting with ini_set() (php_value and php_admin_value both become php.ini)");
                        }
                    }
                    "env" if !e.value.contains('$') => self.doc.env.set(name, e.value.as_str(), &from),
                    "env" => self.skip_e(file, e, "takes its value from php-fpm's environment; Isola starts workers with a clean one: write the value in php.env"),
                    _ => self.skip_e(file, e, "no Isola equivalent"),
                }
                continue;
            }
            let pm_only = |cx: &mut Ctx, mode: &str, key: &str| {
                if pm.as_deref() == Some(mode) {
                    int(cx, key)
                } else {
                    cx.info_e(file, e, &format!("ignored by php-fpm unless pm = {mode}"))
                }
            };
            match e.key.as_str() {
                "user" => self.doc.php.set("user", e.value.as_str(), &from),
                "group" => self.doc.php.set("group", e.value.as_str(), &from),
                "listen" => self.info_e(file, e, "not needed: Isola starts the workers and connects to them itself (nginx's fastcgi_pass goes away)"),
                k if k.starts_with("listen.") => self.info_e(file, e, "not needed: Isola's worker sockets are private to it"),
                "pm" => match e.value.as_str() {
                    "static" | "dynamic" | "ondemand" => self.doc.pool.set("pm", e.value.as_str(), &from),
                    _ => self.skip_e(file, e, "not a process manager mode"),
                },
                "pm.max_children" => int(self, "max_children"),
                "pm.start_servers" => pm_only(self, "dynamic", "start_children"),
                "pm.min_spare_servers" => pm_only(self, "dynamic", "min_spare"),
                "pm.max_spare_servers" => pm_only(self, "dynamic", "max_spare"),
                "pm.process_idle_timeout" => {
                    if pm.as_deref() == Some("ondemand") {
                        match time(&e.value) {
                            Some(v) => self.doc.pool.set("idle_timeout", v, &from),
                            None => self.skip_e(file, e, "not a time"),
                        }
                    } else {
                        self.info_e(file, e, "ignored by php-fpm unless pm = ondemand");
                    }
                }
                "pm.max_requests" => int(self, "max_requests"),
                "pm.status_path" | "pm.status_listen" => self.info_e(file, e, "Isola's admin listener ([admin] listen) serves /status and /metrics"),
                "ping.path" | "ping.response" => self.info_e(file, e, "Isola's admin listener serves /health"),
                "request_terminate_timeout" => match time(&e.value) {
                    Some(v) => self.doc.pool.set("request_terminate_timeout", v, &from),
                    None => self.skip_e(file, e, "not a time"),
                },
                "request_slowlog_timeout" => match time(&e.value) {
                    Some(v) => self.doc.pool.set("slowlog_timeout", v, &from),
                    None => self.skip_e(file, e, "not a time"),
                },
                "request_slowlog_trace_depth" => int(self, "slowlog_trace_depth"),
                "slowlog" => self.skip_e(file, e, "Isola logs slow requests in its own log, not a separate file"),
                "rlimit_files" => match e.value.parse::<i64>() {
                    Ok(n) => self.doc.php.set("rlimit_files", n, &from),
                    Err(_) => self.skip_e(file, e, "not a number"),
                },
                "rlimit_core" => match e.value.parse::<i64>() {
                    Ok(n) => self.doc.php.set("rlimit_core", n, &from),
                    Err(_) if e.value == "unlimited" => self.doc.php.set("rlimit_core", "unlimited", &from),
                    Err(_) => self.skip_e(file, e, "not a number"),
                },
                "clear_env" if matches!(e.value.to_ascii_lowercase().as_str(), "no" | "off" | "0" | "false") => {
                    self.skip_e(file, e, "Isola always starts workers with a clean environment: list what they need in php.env")
                }
                "clear_env" => {}
                "catch_workers_output" | "decorate_workers_output" => self.info_e(file, e, "not needed: Isola logs what workers write to stderr"),
                "security.limit_extensions" => self.info_e(file, e, "not needed: Isola only ever runs .php files"),
                "access.log" | "access.format" => self.skip_e(file, e, "Isola keeps one access log for the site (log.access_file)"),
                _ => self.skip_e(file, e, "no Isola equivalent"),
            }
        }
    }
}

/// `/dir/**/*.php` (from `^/dir/.*\.php$`) → `dir/`, for `no_exec`.
fn no_exec_dir(glob: &str) -> Option<String> {
    let dir = glob
        .strip_suffix("/**/*.php")
        .or_else(|| glob.strip_suffix("/*.php"))?
        .strip_prefix('/')?;
    (!dir.is_empty()
        && dir
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c))
        && !dir.contains(".."))
    .then(|| format!("{dir}/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn regexes_to_patterns() {
        let t = |r: &str| regex_to_pattern(r);
        assert_eq!(
            t("^/(bin|inc|conf)/").as_deref(),
            Some("/{bin,inc,conf}/**")
        );
        assert_eq!(t("\\.(sql|bak)$").as_deref(), Some("*.{sql,bak}"));
        assert_eq!(
            t("^/wp-content/uploads/.*\\.php$").as_deref(),
            Some("/wp-content/uploads/**/*.php")
        );
        assert_eq!(
            t("/(?:uploads|files)/.*\\.php$").as_deref(),
            Some("/**/{uploads,files}/**/*.php")
        );
        assert_eq!(t("^/install\\.php$").as_deref(), Some("/install.php"));
        assert_eq!(t("\\.(js|css|png)$").as_deref(), Some("*.{js,css,png}"));
        assert_eq!(t("^/a[0-9]+"), None);
        assert_eq!(t("^/foo.*bar/"), None);
        assert_eq!(
            no_exec_dir("/wp-content/uploads/**/*.php").as_deref(),
            Some("wp-content/uploads/")
        );
        assert_eq!(no_exec_dir("/**/{uploads,files}/**/*.php"), None);
    }

    #[test]
    fn units() {
        assert_eq!(nginx_size("64m"), Some(toml::Value::String("64M".into())));
        assert_eq!(nginx_size("1024"), Some(toml::Value::Integer(1024)));
        assert_eq!(nginx_size("1x"), None);
        assert_eq!(time("1h30m"), Some(toml::Value::String("5400s".into())));
        assert_eq!(time("500ms"), Some(toml::Value::String("500ms".into())));
        assert_eq!(time("2d"), Some(toml::Value::String("172800s".into())));
        assert_eq!(time("30"), Some(toml::Value::Integer(30)));
        assert_eq!(time("5y"), None);
        assert_eq!(expires("30d").as_deref(), Some("max-age=2592000"));
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_addr("80", false).as_deref(), Some("0.0.0.0:80"));
        assert_eq!(listen_addr("[::]:443", true).as_deref(), Some("[::]:443"));
        assert_eq!(
            listen_addr("127.0.0.1", true).as_deref(),
            Some("127.0.0.1:443")
        );
        assert_eq!(
            listen_addr("*:8080", false).as_deref(),
            Some("0.0.0.0:8080")
        );
        assert_eq!(
            listen_addr("localhost:81", false).as_deref(),
            Some("127.0.0.1:81")
        );
        assert_eq!(listen_addr("unix:/run/n.sock", false), None);
        assert_eq!(listen_addr("example.com:80", false), None);
    }
}
