//! nginx configuration syntax: a tokenizer and a parser into a tree of [`Directive`]s.
//!
//! Owns: nginx's lexical rules (words, `"..."` and `'...'` strings with backslash escapes,
//! `#` comments, `;`, `{`, `}`, `${var}` inside words) and the directive/block structure,
//! with the line of every directive.
//!
//! Never: reads files or knows what a directive means; `include` is kept as a directive
//! like any other (the translator decides what to do with it).

use crate::ImportError;

/// One directive: `name arg...;` or `name arg... { children }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    /// The file it was read from (as given to [`parse`]).
    pub file: String,
    /// 1-based line of its name.
    pub line: usize,
    /// The directive's name.
    pub name: String,
    /// Its arguments, unquoted and unescaped.
    pub args: Vec<String>,
    /// The block's directives, for `name ... { }`.
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// The directive as written, shortened: `name arg arg` (and ` { ... }` for a block).
    pub fn summary(&self) -> String {
        let mut s = self.name.clone();
        for a in &self.args {
            s.push(' ');
            if a.is_empty() || a.contains([' ', '\t', ';', '{', '}', '#']) {
                s.push('"');
                s.push_str(a);
                s.push('"');
            } else {
                s.push_str(a);
            }
        }
        if self.block.is_some() {
            s.push_str(" { ... }");
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A word or string, and whether it was quoted.
    Word(String, bool),
    Semi,
    Open,
    Close,
}

/// What a backslash followed by `c` stands for: nginx drops the backslash before a quote or
/// a backslash, turns `\n`, `\r`, `\t` into their characters, and keeps it otherwise (so
/// regexes such as `\.php$` arrive intact).
fn unescape(c: char, s: &mut String) {
    match c {
        '"' | '\'' | '\\' => s.push(c),
        'n' => s.push('\n'),
        'r' => s.push('\r'),
        't' => s.push('\t'),
        other => {
            s.push('\\');
            s.push(other);
        }
    }
}

/// Splits nginx configuration text into tokens, each with its line.
fn tokenize(file: &str, text: &str) -> Result<Vec<(Tok, usize)>, ImportError> {
    let err = |line: usize, message: String| ImportError::Syntax {
        file: file.to_string(),
        line,
        message,
    };
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            ';' => {
                chars.next();
                out.push((Tok::Semi, line));
            }
            '{' => {
                chars.next();
                out.push((Tok::Open, line));
            }
            '}' => {
                chars.next();
                out.push((Tok::Close, line));
            }
            '"' | '\'' => {
                let start = line;
                chars.next();
                let mut s = String::new();
                let mut closed = false;
                while let Some(ch) = chars.next() {
                    match ch {
                        '\\' => match chars.next() {
                            Some(q) => {
                                if q == '\n' {
                                    line += 1;
                                }
                                unescape(q, &mut s);
                            }
                            None => break,
                        },
                        q if q == c => {
                            closed = true;
                            break;
                        }
                        '\n' => {
                            line += 1;
                            s.push('\n');
                        }
                        other => s.push(other),
                    }
                }
                if !closed {
                    return Err(err(start, format!("unterminated {c}string{c}")));
                }
                // A quoted string must be followed by a separator.
                if let Some(&n) = chars.peek() {
                    if !(n.is_whitespace() || n == ';' || n == '{' || n == '}') {
                        return Err(err(line, format!("unexpected {n:?} after a quoted string")));
                    }
                }
                out.push((Tok::Word(s, true), start));
            }
            _ => {
                let start = line;
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    match c {
                        c if c.is_whitespace() => break,
                        ';' | '}' => break,
                        '{' if !s.ends_with('$') => break,
                        '{' => {
                            // `${name}`: a variable, not a block.
                            for c in chars.by_ref() {
                                s.push(c);
                                if c == '}' {
                                    break;
                                }
                                if c == '\n' || c == ';' {
                                    return Err(err(line, "unterminated ${variable}".into()));
                                }
                            }
                        }
                        '\\' => {
                            chars.next();
                            match chars.next() {
                                Some(q) => {
                                    if q == '\n' {
                                        line += 1;
                                    }
                                    unescape(q, &mut s);
                                }
                                None => s.push('\\'),
                            }
                        }
                        _ => {
                            s.push(c);
                            chars.next();
                        }
                    }
                }
                out.push((Tok::Word(s, false), start));
            }
        }
    }
    Ok(out)
}

/// Parses nginx configuration text. `file` names it in errors and in every directive.
pub fn parse(file: &str, text: &str) -> Result<Vec<Directive>, ImportError> {
    let toks = tokenize(file, text)?;
    let mut pos = 0;
    let (list, end) = parse_block(file, &toks, &mut pos, 0)?;
    if let Some(line) = end {
        return Err(ImportError::Syntax {
            file: file.to_string(),
            line,
            message: "unexpected \"}\"".into(),
        });
    }
    Ok(list)
}

/// Parses directives until a `}` (returning its line) or the end of input.
fn parse_block(
    file: &str,
    toks: &[(Tok, usize)],
    pos: &mut usize,
    depth: usize,
) -> Result<(Vec<Directive>, Option<usize>), ImportError> {
    let err = |line: usize, message: &str| ImportError::Syntax {
        file: file.to_string(),
        line,
        message: message.to_string(),
    };
    if depth > 64 {
        let line = toks.get(*pos).map_or(0, |t| t.1);
        return Err(err(line, "blocks nested too deeply"));
    }
    let mut list = Vec::new();
    while let Some((tok, line)) = toks.get(*pos) {
        *pos += 1;
        match tok {
            Tok::Close => return Ok((list, Some(*line))),
            Tok::Semi => return Err(err(*line, "unexpected \";\"")),
            Tok::Open => return Err(err(*line, "unexpected \"{\"")),
            Tok::Word(name, _) => {
                let mut d = Directive {
                    file: file.to_string(),
                    line: *line,
                    name: name.clone(),
                    args: Vec::new(),
                    block: None,
                };
                loop {
                    match toks.get(*pos) {
                        None => {
                            return Err(err(
                                *line,
                                &format!("directive \"{name}\" is not terminated by \";\""),
                            ))
                        }
                        Some((Tok::Word(a, _), _)) => {
                            d.args.push(a.clone());
                            *pos += 1;
                        }
                        Some((Tok::Semi, _)) => {
                            *pos += 1;
                            break;
                        }
                        Some((Tok::Open, _)) => {
                            *pos += 1;
                            let (children, end) = parse_block(file, toks, pos, depth + 1)?;
                            if end.is_none() {
                                return Err(err(
                                    *line,
                                    &format!("block \"{name}\" is not closed by \"}}\""),
                                ));
                            }
                            d.block = Some(children);
                            break;
                        }
                        Some((Tok::Close, _)) => {
                            return Err(err(
                                *line,
                                &format!("directive \"{name}\" is not terminated by \";\""),
                            ));
                        }
                    }
                }
                list.push(d);
            }
        }
    }
    Ok((list, None))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(text: &str) -> Vec<Directive> {
        parse("t.conf", text).unwrap()
    }

    fn e(text: &str) -> String {
        parse("t.conf", text).unwrap_err().to_string()
    }

    #[test]
    fn directives_blocks_and_lines() {
        let d = p("user www-data;\nhttp {\n  server {\n    listen 80;\n  }\n}\n");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "user");
        assert_eq!(d[0].args, ["www-data"]);
        let http = d[1].block.as_ref().unwrap();
        let server = &http[0];
        assert_eq!(server.line, 3);
        let listen = &server.block.as_ref().unwrap()[0];
        assert_eq!((listen.name.as_str(), listen.line), ("listen", 4));
        assert_eq!(listen.args, ["80"]);
    }

    #[test]
    fn quotes_and_escapes() {
        let d = p(r#"add_header X "a b;c" 'it\'s' "q\"q" "back\\slash" "\d";"#);
        assert_eq!(
            d[0].args,
            ["X", "a b;c", "it's", "q\"q", "back\\slash", "\\d"]
        );
        let d = p("rewrite ^/a\\ b$ /c;");
        assert_eq!(d[0].args, ["^/a\\ b$", "/c"]);
        let d = p("a \"multi\nline\";\nb;");
        assert_eq!(d[0].args, ["multi\nline"]);
        assert_eq!(d[1].line, 3);
    }

    #[test]
    fn comments_anywhere() {
        let d = p("# head\nroot /srv; # tail ; {\n# location / {\nindex a#b;\n");
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].args, ["a#b"], "a # inside a word is not a comment");
        assert_eq!(d[1].line, 4);
        let d = p("add_header X \"#not a comment\";");
        assert_eq!(d[0].args[1], "#not a comment");
    }

    #[test]
    fn variables_with_braces_and_regex_quantifiers() {
        let d = p("set $a ${host}x;\nlocation ~ \"^/a{2}$\" { }\n");
        assert_eq!(d[0].args, ["$a", "${host}x"]);
        assert_eq!(d[1].args, ["~", "^/a{2}$"]);
        assert_eq!(d[1].block.as_deref(), Some(&[][..]));
    }

    #[test]
    fn nested_blocks() {
        let d = p("server { location / { location ~ \\.php$ { fastcgi_pass x; } } }");
        let s = d[0].block.as_ref().unwrap();
        let l = s[0].block.as_ref().unwrap();
        assert_eq!(l[0].args, ["~", "\\.php$"]);
        assert_eq!(l[0].block.as_ref().unwrap()[0].name, "fastcgi_pass");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert_eq!(
            e("server {\n listen 80;\n"),
            "t.conf:1: block \"server\" is not closed by \"}\""
        );
        assert_eq!(e("a;\n}\n"), "t.conf:2: unexpected \"}\"");
        assert_eq!(
            e("listen 80\n"),
            "t.conf:1: directive \"listen\" is not terminated by \";\""
        );
        assert_eq!(e("\n\nroot \"/srv;\n"), "t.conf:3: unterminated \"string\"");
        assert_eq!(e("a;\n;"), "t.conf:2: unexpected \";\"");
        assert!(e("a \"b\"c;").contains("after a quoted string"));
        assert_eq!(e("x { a; } }"), "t.conf:1: unexpected \"}\"");
    }

    #[test]
    fn empty_and_comment_only_input() {
        assert!(p("").is_empty());
        assert!(p("# nothing\n\n   # here\n").is_empty());
    }
}
