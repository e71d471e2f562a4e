//! Session settings PostgreSQL 15 does not report but the encryption layer depends on:
//! `search_path` (to resolve table names), `extra_float_digits` and `bytea_output` (to format
//! values as the server would). Read from the startup packet (`search_path=...` or
//! `options=-c name=value`) and from `SET`/`RESET` statements the session sends.

/// PostgreSQL's default `search_path`.
pub(crate) const DEFAULT_SEARCH_PATH: &str = "\"$user\", public";

/// A setting change found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SettingChange {
    /// `SET name = value` (value as written, unquoted list items joined by `, `).
    Set { name: String, value: String },
    /// `RESET name` or `SET name TO DEFAULT`.
    Reset { name: String },
    /// `RESET ALL`.
    ResetAll,
}

/// The setting a `SET`/`RESET` statement changes, for the settings this layer tracks. `None`
/// for anything else (including `SET LOCAL`, which a transaction end undoes, and settings
/// this layer does not track).
pub(crate) fn parse_setting(statement: &str) -> Option<SettingChange> {
    let tokens = tokenize(statement)?;
    let mut words = tokens.iter().map(String::as_str);
    let first = words.next()?.to_ascii_lowercase();
    match first.as_str() {
        "reset" => {
            let name = words.next()?.to_ascii_lowercase();
            if words.next().is_some() {
                return None;
            }
            if name == "all" {
                return Some(SettingChange::ResetAll);
            }
            tracked(&name).then_some(SettingChange::Reset { name })
        }
        "set" => {
            let mut name = words.next()?.to_ascii_lowercase();
            if name == "session" {
                name = words.next()?.to_ascii_lowercase();
            } else if name == "local" {
                return None;
            }
            if !tracked(&name) {
                return None;
            }
            let sep = words.next()?;
            if sep != "=" && !sep.eq_ignore_ascii_case("to") {
                return None;
            }
            let rest: Vec<&str> = words.collect();
            if rest.is_empty() {
                return None;
            }
            if rest.len() == 1 && rest[0].eq_ignore_ascii_case("default") {
                return Some(SettingChange::Reset { name });
            }
            let value = rest
                .iter()
                .filter(|t| **t != ",")
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            Some(SettingChange::Set { name, value })
        }
        _ => None,
    }
}

fn tracked(name: &str) -> bool {
    matches!(name, "search_path" | "extra_float_digits" | "bytea_output")
}

/// Splits a `SET` statement into words, quoted strings and identifiers (quotes removed from
/// strings; double quotes kept on identifiers so `search_path` can tell `"$user"` apart),
/// `=` and `,`. `None` if it contains anything unexpected.
fn tokenize(sql: &str) -> Option<Vec<String>> {
    let mut tokens = Vec::new();
    let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '=' || c == ',' {
            tokens.push(c.to_string());
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next()? {
                    '\'' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    '\'' => break,
                    other => s.push(other),
                }
            }
            tokens.push(s);
        } else if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        s.push('"');
                    }
                    '"' => break,
                    other => s.push(other),
                }
            }
            s.push('"');
            tokens.push(s);
        } else if c.is_alphanumeric() || matches!(c, '_' | '$' | '-' | '+' | '.') {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || matches!(c, '_' | '$' | '-' | '+' | '.') {
                    s.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(s);
        } else {
            return None;
        }
    }
    Some(tokens)
}

/// The schemas of a `search_path` value in order, `$user` replaced by `user`. Unquoted names
/// fold to lower case as PostgreSQL folds them.
pub(crate) fn parse_search_path(value: &str, user: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let name = match item.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => item.to_lowercase(),
            };
            if name == "$user" {
                user.to_owned()
            } else {
                name
            }
        })
        .collect()
}

/// `-c name=value` and `--name=value` pairs of a startup `options` parameter.
pub(crate) fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut words = split_options(options).into_iter();
    while let Some(word) = words.next() {
        let pair = if word == "-c" {
            words.next()
        } else if let Some(rest) = word.strip_prefix("--") {
            Some(rest.to_owned())
        } else {
            word.strip_prefix("-c").map(str::to_owned)
        };
        if let Some((name, value)) = pair.as_deref().and_then(|p| p.split_once('=')) {
            out.push((
                name.replace('-', "_").to_ascii_lowercase(),
                value.to_owned(),
            ));
        }
    }
    out
}

/// Splits `options` on unescaped white space (`\` escapes the next character).
fn split_options(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                current.push(next);
            }
        } else if c.is_whitespace() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_statements_are_understood() {
        assert_eq!(
            parse_setting("SET extra_float_digits = 3"),
            Some(SettingChange::Set {
                name: "extra_float_digits".into(),
                value: "3".into()
            })
        );
        assert_eq!(
            parse_setting("set session search_path to app, \"My Schema\", public;"),
            Some(SettingChange::Set {
                name: "search_path".into(),
                value: "app, \"My Schema\", public".into()
            })
        );
        assert_eq!(
            parse_setting("SET bytea_output TO 'escape'"),
            Some(SettingChange::Set {
                name: "bytea_output".into(),
                value: "escape".into()
            })
        );
        assert_eq!(
            parse_setting("SET search_path TO DEFAULT"),
            Some(SettingChange::Reset {
                name: "search_path".into()
            })
        );
        assert_eq!(parse_setting("RESET ALL"), Some(SettingChange::ResetAll));
        assert_eq!(parse_setting("SET LOCAL search_path = x"), None);
        assert_eq!(parse_setting("SET work_mem = '64MB'"), None);
        assert_eq!(parse_setting("SELECT 1"), None);
    }

    #[test]
    fn search_path_folds_and_substitutes_user() {
        assert_eq!(
            parse_search_path("\"$user\", Public, \"Mixed\"", "ann"),
            vec!["ann", "public", "Mixed"]
        );
    }

    #[test]
    fn startup_options_are_split() {
        assert_eq!(
            parse_options("-c search_path=app,public --extra-float-digits=3 -cbytea_output=hex"),
            vec![
                ("search_path".to_owned(), "app,public".to_owned()),
                ("extra_float_digits".to_owned(), "3".to_owned()),
                ("bytea_output".to_owned(), "hex".to_owned()),
            ]
        );
    }
}
