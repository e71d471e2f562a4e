//! The case files of the differential suite (`tests/sql/`): the schema template, the
//! `-- expect:` header and the split of a script into statements.

use std::fmt;
use std::path::{Path, PathBuf};

/// Each pgseal domain the schema template may name (docs/format.md 2.1), with the plain
/// PostgreSQL type that stands in for it in the plain database.
const DOMAINS: [(&str, &str); 30] = [
    ("bool", "boolean"),
    ("bool_eq", "boolean"),
    ("int2", "smallint"),
    ("int2_eq", "smallint"),
    ("int4", "integer"),
    ("int4_eq", "integer"),
    ("int8", "bigint"),
    ("int8_eq", "bigint"),
    ("float4", "real"),
    ("float8", "double precision"),
    ("numeric", "numeric"),
    ("numeric_eq", "numeric"),
    ("text", "text"),
    ("text_eq", "text"),
    ("email", "text"),
    ("phone", "text"),
    ("varchar", "varchar"),
    ("varchar_eq", "varchar"),
    ("bytea", "bytea"),
    ("bytea_eq", "bytea"),
    ("date", "date"),
    ("date_eq", "date"),
    ("time", "time"),
    ("time_eq", "time"),
    ("timestamp", "timestamp"),
    ("timestamp_eq", "timestamp"),
    ("timestamptz", "timestamptz"),
    ("timestamptz_eq", "timestamptz"),
    ("uuid", "uuid"),
    ("jsonb", "jsonb"),
];

/// Which of the two databases a template is instantiated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Plain PostgreSQL types, queried directly.
    Plain,
    /// `pgseal.*` domains, queried through the proxy.
    Sealed,
}

/// Replaces every `{domain}` of `template` with the type of `flavour`; `--` comment lines are
/// left as they are, so they may mention placeholders.
///
/// An unknown placeholder or an unclosed brace is an error, so a typo in the template cannot
/// silently leave a column plaintext in the sealed database.
pub fn instantiate(template: &str, flavour: Flavour) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 256);
    for line in template.split_inclusive('\n') {
        if line.trim_start().starts_with("--") {
            out.push_str(line);
        } else {
            instantiate_line(line, flavour, &mut out)?;
        }
    }
    Ok(out)
}

fn instantiate_line(line: &str, flavour: Flavour, out: &mut String) -> Result<(), String> {
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| {
            format!(
                "unclosed `{{` in the schema template near {:?}",
                snippet(after)
            )
        })?;
        let name = &after[..close];
        let (domain, plain) = DOMAINS
            .iter()
            .find(|(domain, _)| *domain == name)
            .ok_or_else(|| format!("unknown placeholder {{{name}}} in the schema template"))?;
        match flavour {
            Flavour::Plain => out.push_str(plain),
            Flavour::Sealed => {
                out.push_str("pgseal.");
                out.push_str(domain);
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(())
}

fn snippet(s: &str) -> &str {
    let end = s.char_indices().nth(30).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

/// What a case expects of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The same column names, types and rows as the plain database, in text and binary.
    Same,
    /// Refused by the proxy with this SQLSTATE, the sealed database unchanged.
    Error(String),
    /// A proxy bug this case demonstrates: the outputs must still differ, so that a fix is
    /// noticed and the header updated to `same`.
    KnownBug(String),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Same => f.write_str("same"),
            Expect::Error(code) => write!(f, "error {code}"),
            Expect::KnownBug(what) => write!(f, "known-bug {what}"),
        }
    }
}

/// Reads the `-- expect:` line among the leading comment lines of a case.
pub fn parse_expect(sql: &str) -> Result<Expect, String> {
    for line in sql.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        let Some(expect) = comment.trim().strip_prefix("expect:") else {
            continue;
        };
        let expect = expect.trim();
        if expect == "same" {
            return Ok(Expect::Same);
        }
        if let Some(code) = expect.strip_prefix("error ") {
            let code = code.trim();
            if code.len() == 5 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Ok(Expect::Error(code.to_ascii_uppercase()));
            }
            return Err(format!(
                "`-- expect: error {code}`: a SQLSTATE has 5 characters"
            ));
        }
        if let Some(what) = expect.strip_prefix("known-bug") {
            let what = what.trim();
            if what.is_empty() {
                return Err("`-- expect: known-bug` needs a one-line description".to_owned());
            }
            return Ok(Expect::KnownBug(what.to_owned()));
        }
        return Err(format!(
            "`-- expect: {expect}`: expected `same`, `error SQLSTATE` or `known-bug DESCRIPTION`"
        ));
    }
    Err("no `-- expect:` line in the leading comments".to_owned())
}

/// One case: `NNN_slug.sql` with its optional `NNN_slug.setup.sql` and `.teardown.sql`.
#[derive(Debug, Clone)]
pub struct Case {
    /// `NNN_slug`.
    pub name: String,
    /// What the proxy must do.
    pub expect: Expect,
    /// The statements of the case, in order.
    pub statements: Vec<String>,
    /// The whole case text, sent as one simple query.
    pub script: String,
    /// Run on both sides before each run of the case.
    pub setup: Option<String>,
    /// Run on both sides after each run of the case, even when it failed.
    pub teardown: Option<String>,
}

/// Loads every case of `dir`, sorted by name.
pub fn load_cases(dir: &Path) -> Result<Vec<Case>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        if file.ends_with(".sql")
            && !file.ends_with(".setup.sql")
            && !file.ends_with(".teardown.sql")
        {
            paths.push(path);
        } else if !file.ends_with(".sql") {
            return Err(format!("{}: not a .sql file; remove it", path.display()));
        }
    }
    paths.sort();
    let mut cases = Vec::with_capacity(paths.len());
    for path in paths {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| format!("{}: the file name is not UTF-8", path.display()))?
            .to_owned();
        let script = read(&path)?;
        let expect = parse_expect(&script).map_err(|e| format!("{}: {e}", path.display()))?;
        let statements = split_statements(&script);
        if statements.is_empty() {
            return Err(format!("{}: no statement", path.display()));
        }
        let optional = |suffix: &str| -> Result<Option<String>, String> {
            let side = dir.join(format!("{name}.{suffix}.sql"));
            if side.exists() {
                read(&side).map(Some)
            } else {
                Ok(None)
            }
        };
        cases.push(Case {
            expect,
            statements,
            script,
            setup: optional("setup")?,
            teardown: optional("teardown")?,
            name,
        });
    }
    // A setup or teardown whose case was renamed would silently stop running.
    for side in ["setup", "teardown"] {
        let suffix = format!(".{side}.sql");
        for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or_default();
            if let Some(stem) = file.strip_suffix(&suffix) {
                if !cases.iter().any(|c| c.name == stem) {
                    return Err(format!("{}: no case {stem}.sql", path.display()));
                }
            }
        }
    }
    Ok(cases)
}

/// Reads a file of the suite.
pub fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Splits a script into statements at top-level semicolons, skipping comments and blank
/// statements. It knows the lexical forms the cases use: `'...'` (with `''`), `E'...'` (with
/// backslash escapes), `"..."`, `$tag$...$tag$`, `-- ...` and `/* ... */`.
pub fn split_statements(script: &str) -> Vec<String> {
    let bytes = script.as_bytes();
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    let mut start = 0;
    // Everything between `start` and `i` is copied when a token ends; comments are dropped.
    let flush = |current: &mut String, from: usize, to: usize| current.push_str(&script[from..to]);
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                flush(&mut current, start, i);
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                start = i;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                flush(&mut current, start, i);
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
                start = i;
            }
            b'\'' => {
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !(bytes[i - 2].is_ascii_alphanumeric() || bytes[i - 2] == b'_'));
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' if escapes => i += 2,
                        b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                        b'\'' => break,
                        _ => i += 1,
                    }
                }
                i = (i + 1).min(bytes.len());
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
            }
            b'$' => {
                let tag_end = script[i + 1..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .map(|n| i + 1 + n);
                match tag_end {
                    Some(end)
                        if bytes[end] == b'$'
                            && !bytes[i + 1..end].first().is_some_and(u8::is_ascii_digit) =>
                    {
                        let tag = &script[i..=end];
                        match script[end + 1..].find(tag) {
                            Some(n) => i = end + 1 + n + tag.len(),
                            None => i = bytes.len(),
                        }
                    }
                    _ => i += 1,
                }
            }
            b';' => {
                flush(&mut current, start, i);
                push_statement(&mut statements, &mut current);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    flush(&mut current, start, bytes.len().max(start));
    push_statement(&mut statements, &mut current);
    statements
}

fn push_statement(statements: &mut Vec<String>, current: &mut String) {
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_owned());
    }
    current.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let script = "-- expect: same\n-- a; comment\nSELECT 'a;b', \"c;d\", E'it\\'s;' ;\n\
                      /* x; y */ SELECT $$;$$, $t$ ; $t$, $1 ;  ;\nSELECT 1";
        assert_eq!(
            split_statements(script),
            vec![
                "SELECT 'a;b', \"c;d\", E'it\\'s;'",
                "SELECT $$;$$, $t$ ; $t$, $1",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn doubled_quotes_stay_inside_the_literal() {
        assert_eq!(
            split_statements("SELECT 'it''s; fine'; SELECT 2;"),
            vec!["SELECT 'it''s; fine'", "SELECT 2"]
        );
    }

    #[test]
    fn reads_each_expectation() {
        assert_eq!(parse_expect("-- expect: same\nSELECT 1"), Ok(Expect::Same));
        assert_eq!(
            parse_expect("-- why\n-- expect: error 0a000\nSELECT 1"),
            Ok(Expect::Error("0A000".to_owned()))
        );
        assert_eq!(
            parse_expect("-- expect: known-bug time 24:00 loses a day\nSELECT 1"),
            Ok(Expect::KnownBug("time 24:00 loses a day".to_owned()))
        );
        assert!(parse_expect("-- expect: error 0A\nSELECT 1").is_err());
        assert!(parse_expect("-- expect: known-bug\nSELECT 1").is_err());
        assert!(parse_expect("-- expect: maybe\nSELECT 1").is_err());
        // The header must come before the SQL.
        assert!(parse_expect("SELECT 1\n-- expect: same").is_err());
    }

    #[test]
    fn instantiates_both_flavours() {
        let template = "CREATE TABLE t (a {text_eq}, b {date}, c int)";
        assert_eq!(
            instantiate(template, Flavour::Plain).as_deref(),
            Ok("CREATE TABLE t (a text, b date, c int)")
        );
        assert_eq!(
            instantiate(template, Flavour::Sealed).as_deref(),
            Ok("CREATE TABLE t (a pgseal.text_eq, b pgseal.date, c int)")
        );
        assert!(instantiate("a {texte}", Flavour::Plain).is_err());
        assert!(instantiate("a {text", Flavour::Sealed).is_err());
        assert_eq!(
            instantiate("-- {anything}\nb {bool}", Flavour::Sealed).as_deref(),
            Ok("-- {anything}\nb pgseal.bool")
        );
    }
}
