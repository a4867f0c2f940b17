//! php-fpm configuration syntax: the ini dialect of `php-fpm.conf` and `pool.d/*.conf`.
//!
//! Owns: `[section]` headers, `key = value` lines (bare, `"double"` or `'single'` quoted
//! values), `;` comments (whole-line and after a value), bracketed keys such as
//! `php_admin_value[memory_limit]` and `env[PATH]`, and the `$pool` variable, replaced by
//! the section's name as php-fpm does.
//!
//! Never: reads files, follows `include`, or knows what a key means.

use crate::ImportError;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// 1-based line.
    pub line: usize,
    /// The key as written, e.g. `pm.max_children` or `php_admin_value[memory_limit]`.
    pub key: String,
    /// The value, unquoted, `$pool` replaced.
    pub value: String,
}

impl Entry {
    /// For `name[sub]` keys: (`name`, `sub`).
    pub fn bracket(&self) -> Option<(&str, &str)> {
        let (name, rest) = self.key.split_once('[')?;
        let sub = rest.strip_suffix(']')?;
        Some((name.trim_end(), sub.trim()))
    }
}

/// One `[name]` section with its entries; entries before any header are in a section
/// named `global`, as php-fpm reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The name between the brackets.
    pub name: String,
    /// 1-based line of the header (0 for the implicit leading section).
    pub line: usize,
    /// Its entries, in order.
    pub entries: Vec<Entry>,
}

impl Section {
    /// The last value of `key` (later lines win, as in php-fpm).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }
}

/// Parses php-fpm ini text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<Section>, ImportError> {
    let err = |line: usize, message: String| ImportError::Syntax {
        file: file.to_string(),
        line,
        message,
    };
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with(';') || l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix('[') {
            let Some((name, tail)) = rest.split_once(']') else {
                return Err(err(line, format!("section header {l:?} has no \"]\"")));
            };
            let tail = tail.trim();
            if !(tail.is_empty() || tail.starts_with(';')) {
                return Err(err(
                    line,
                    format!("unexpected {tail:?} after the section header"),
                ));
            }
            let name = name.trim();
            if name.is_empty() {
                return Err(err(line, "empty section name".into()));
            }
            sections.push(Section {
                name: name.to_string(),
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let Some((key, value)) = l.split_once('=') else {
            return Err(err(line, format!("expected \"key = value\", found {l:?}")));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(err(line, "a value without a key".into()));
        }
        if key.contains('[') && !key.ends_with(']') {
            return Err(err(line, format!("key {key:?} has no closing \"]\"")));
        }
        let value = unquote(value.trim()).map_err(|m| err(line, m))?;
        if sections.is_empty() {
            sections.push(Section {
                name: "global".into(),
                line: 0,
                entries: Vec::new(),
            });
        }
        let Some(section) = sections.last_mut() else {
            continue;
        };
        let value = value.replace("$pool", &section.name);
        section.entries.push(Entry {
            line,
            key: key.to_string(),
            value,
        });
    }
    Ok(sections)
}

/// A value as PHP's ini scanner reads it: quoted strings taken as they are (`\"` and `\\`
/// unescaped in double quotes), a trailing `; comment` dropped from bare values.
fn unquote(v: &str) -> Result<String, String> {
    let mut chars = v.chars();
    match chars.next() {
        Some(q @ ('"' | '\'')) => {
            let mut out = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == q {
                    closed = true;
                    break;
                }
                if c == '\\' && q == '"' {
                    match chars.next() {
                        Some(n @ ('"' | '\\')) => out.push(n),
                        Some(n) => {
                            out.push('\\');
                            out.push(n);
                        }
                        None => out.push('\\'),
                    }
                    continue;
                }
                out.push(c);
            }
            if !closed {
                return Err(format!("unterminated {q}string{q}"));
            }
            let rest = chars.as_str().trim();
            if !(rest.is_empty() || rest.starts_with(';')) {
                return Err(format!("unexpected {rest:?} after a quoted value"));
            }
            Ok(out)
        }
        _ => Ok(match v.split_once(';') {
            Some((before, _)) => before.trim_end().to_string(),
            None => v.to_string(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_and_comments() {
        let s = parse(
            "www.conf",
            "; comment\n[www]\nuser = www-data\n;pm = static\npm = dynamic ; trailing\n\n[api] ; second\npm=ondemand\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].name.as_str(), s[0].line), ("www", 2));
        assert_eq!(s[0].get("user").unwrap().value, "www-data");
        assert_eq!(s[0].get("pm").unwrap().value, "dynamic");
        assert_eq!(s[0].get("pm").unwrap().line, 5);
        assert_eq!(s[1].get("pm").unwrap().value, "ondemand");
    }

    #[test]
    fn bracket_keys_quotes_and_pool_variable() {
        let s = parse(
            "p.conf",
            "[shop]\nphp_admin_value[error_log] = /var/log/fpm-$pool.log\nenv[PATH] = \"/usr/bin:/bin\"\nphp_value[include_path] = '.;/usr/share/php'\nphp_flag[display_errors] = off\nenv[Q] = \"say \\\"hi\\\"\" ; c\n",
        )
        .unwrap();
        let e = &s[0].entries;
        assert_eq!(e[0].bracket(), Some(("php_admin_value", "error_log")));
        assert_eq!(e[0].value, "/var/log/fpm-shop.log");
        assert_eq!(e[1].bracket(), Some(("env", "PATH")));
        assert_eq!(e[1].value, "/usr/bin:/bin");
        assert_eq!(e[2].value, ".;/usr/share/php", "a ; inside quotes is kept");
        assert_eq!(e[3].value, "off");
        assert_eq!(e[4].value, "say \"hi\"");
        assert_eq!(s[0].get("user"), None);
    }

    #[test]
    fn entries_before_a_header_are_global() {
        let s = parse("php-fpm.conf", "pid = /run/php.pid\n[www]\n").unwrap();
        assert_eq!(s[0].name, "global");
        assert_eq!(s[1].name, "www");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = |t: &str| parse("w.conf", t).unwrap_err().to_string();
        assert_eq!(
            e("[www]\nuser www-data\n"),
            "w.conf:2: expected \"key = value\", found \"user www-data\""
        );
        assert_eq!(
            e("[www\n"),
            "w.conf:1: section header \"[www\" has no \"]\""
        );
        assert_eq!(
            e("[www]\na = \"open\n"),
            "w.conf:2: unterminated \"string\""
        );
        assert_eq!(
            e("[www]\nenv[X = 1\n"),
            "w.conf:2: key \"env[X\" has no closing \"]\""
        );
        assert_eq!(e("[]\n"), "w.conf:1: empty section name");
        assert_eq!(e("[www]\n = 1\n"), "w.conf:2: a value without a key");
    }
}
