//! How the statements that change tracked settings or end transactions are read: `SET`,
//! `RESET`, `SET ROLE`, `DISCARD ALL`, `COMMIT`, `ROLLBACK`, savepoints. What they do to the
//! settings is `settings.rs`'s. A statement that names a tracked setting but cannot be read is
//! recognised too, so that the proxy refuses it rather than lose track ([`may_set_tracked`]).

use pgseal_sql::{set_config_calls, Analysis, SetConfigCall, StatementKind};
use pgseal_wire::backend::ErrorFields;

use super::settings::{tracked, NO_ROLE, TRACKED};

/// A setting change found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SettingChange {
    /// `SET [LOCAL] name = value` (value as written, unquoted list items joined by `, `).
    Set {
        name: String,
        value: String,
        local: bool,
    },
    /// `RESET name` or `SET [LOCAL] name TO DEFAULT`.
    Reset { name: String, local: bool },
    /// `RESET ALL`: every tracked setting but the role to its starting value.
    ResetAll,
    /// `DISCARD ALL`: `RESET ALL`, and `SET SESSION AUTHORIZATION DEFAULT`, which makes the
    /// authenticated user the current one again.
    DiscardAll,
}

/// A statement that changes a tracked setting or ends (part of) a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    Setting(SettingChange),
    /// `COMMIT`, `END`, `PREPARE TRANSACTION` (the latter keeps settings like a commit).
    Commit,
    /// `ROLLBACK`, `ABORT`.
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo(String),
}

/// What the statements of `sql` do to tracked settings and the transaction, in order and
/// each with the index of its statement; refuses a `set_config` on a tracked setting
/// whose effect cannot be known.
pub(crate) fn controls_of(
    sql: &str,
    analysis: &Analysis,
) -> Result<Vec<(usize, Control)>, ErrorFields> {
    let mut controls = Vec::new();
    for (at, plan) in analysis.statements.iter().enumerate() {
        let Some(text) = sql.get(plan.span.clone()) else {
            continue;
        };
        if matches!(plan.kind, StatementKind::Utility) {
            match parse_control(text) {
                Some(control) => controls.push((at, control)),
                None if may_set_tracked(text) => {
                    return Err(ErrorFields::error(
                        "0A000",
                        "the pgseal proxy cannot follow this SET or RESET of search_path, \
                         extra_float_digits, bytea_output, the role or the session \
                         authorization",
                    )
                    .hint(
                        "write it plainly: SET [LOCAL] name = value [, ...], \
                         SET [LOCAL] ROLE name or RESET name, names and values unescaped; \
                         to act as another user, connect as that user",
                    ))
                }
                None => {}
            }
        }
        for call in set_config_calls(text) {
            match call {
                SetConfigCall::Constant { name, value, local } if tracked(&name) => {
                    let set = SettingChange::Set { name, value, local };
                    controls.push((at, Control::Setting(set)));
                }
                SetConfigCall::Constant { .. } => {}
                SetConfigCall::Opaque { name: Some(name) } if !tracked(&name) => {}
                _ => {
                    return Err(ErrorFields::error(
                        "0A000",
                        "the pgseal proxy cannot follow this set_config() call: \
                         search_path, extra_float_digits and bytea_output may only be \
                         changed by set_config() with constant arguments, alone in \
                         their statement",
                    )
                    .hint(
                        "use SET [LOCAL] name = value, or \
                         SELECT set_config('name', 'value', false|true) on its own",
                    ))
                }
            }
        }
    }
    Ok(controls)
}

/// Whether the first word of `statement`, after white space and comments, is one of `words`
/// (lower case).
fn first_word_is(statement: &str, words: &[&str]) -> bool {
    let mut chars = statement.chars().peekable();
    loop {
        match chars.peek() {
            Some(c) if c.is_whitespace() => {
                chars.next();
            }
            Some(_) => match skip_comment(&mut chars) {
                Some(true) => {}
                Some(false) => break,
                None => return false,
            },
            None => return false,
        }
    }
    let first: String = chars.take_while(char::is_ascii_alphabetic).collect();
    words.iter().any(|w| first.eq_ignore_ascii_case(w))
}

/// Whether `statement` is a `SET` or `RESET` whose text names a tracked setting (or spells a
/// name with Unicode escapes). One that [`parse_control`] cannot follow is refused rather than
/// let the proxy lose track of the setting (fail closed).
pub(crate) fn may_set_tracked(statement: &str) -> bool {
    if !first_word_is(statement, &["set", "reset"]) {
        return false;
    }
    let lower = statement.to_ascii_lowercase();
    // `SET SESSION AUTHORIZATION` changes the user `"$user"` stands for, and is not followed.
    TRACKED
        .iter()
        .chain(&["authorization"])
        .any(|name| lower.contains(name))
        || lower.contains("u&")
}

/// Skips the comment that starts at `chars`, if one does: `Some(true)` if it did,
/// `Some(false)` if none starts there, `None` if it never ends. Block comments nest, as in
/// PostgreSQL.
fn skip_comment(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<bool> {
    let mut ahead = chars.clone();
    match (ahead.next(), ahead.next()) {
        (Some('-'), Some('-')) => {
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            Some(true)
        }
        (Some('/'), Some('*')) => {
            chars.next();
            chars.next();
            let mut depth = 1usize;
            while depth > 0 {
                match chars.next()? {
                    '/' if chars.peek() == Some(&'*') => {
                        chars.next();
                        depth += 1;
                    }
                    '*' if chars.peek() == Some(&'/') => {
                        chars.next();
                        depth -= 1;
                    }
                    _ => {}
                }
            }
            Some(true)
        }
        _ => Some(false),
    }
}

/// What a statement does to tracked settings or the transaction. `None` for anything else.
pub(crate) fn parse_control(statement: &str) -> Option<Control> {
    // Most utility statements (BEGIN, VACUUM, CREATE ...) are none of these: their first word
    // says so without tokenizing the whole text.
    if !first_word_is(statement, &CONTROL_WORDS) {
        return None;
    }
    let tokens = tokenize(statement)?;
    let lower: Vec<String> = tokens.iter().map(|t| t.to_ascii_lowercase()).collect();
    let words: Vec<&str> = lower.iter().map(String::as_str).collect();
    let noise = |w: &&str| !matches!(*w, "work" | "transaction");
    match words.first().copied()? {
        "commit" | "end" => {
            let rest: Vec<&str> = words[1..].iter().copied().filter(noise).collect();
            // `COMMIT PREPARED 'x'` ends another, prepared, transaction.
            matches!(
                rest.as_slice(),
                [] | ["and", "chain"] | ["and", "no", "chain"]
            )
            .then_some(Control::Commit)
        }
        "prepare" if words.get(1) == Some(&"transaction") => Some(Control::Commit),
        "abort" => Some(Control::Rollback),
        "rollback" => {
            let rest: Vec<&str> = words[1..].iter().copied().filter(noise).collect();
            match rest.as_slice() {
                [] | ["and", "chain"] | ["and", "no", "chain"] => Some(Control::Rollback),
                ["to", "savepoint", _] | ["to", _] => {
                    Some(Control::RollbackTo(identifier(tokens.last()?)))
                }
                _ => None,
            }
        }
        "savepoint" if tokens.len() == 2 => Some(Control::Savepoint(identifier(&tokens[1]))),
        "release" => match words.len() {
            2 => Some(Control::Release(identifier(&tokens[1]))),
            3 if words[1] == "savepoint" => Some(Control::Release(identifier(&tokens[2]))),
            _ => None,
        },
        "discard" if words.len() == 2 && words[1] == "all" => {
            Some(Control::Setting(SettingChange::DiscardAll))
        }
        _ => parse_role(statement)
            .or_else(|| parse_setting(statement))
            .map(Control::Setting),
    }
}

/// A piece of a `SET`-like statement, quoting kept apart: a role name, for one, is folded to
/// lower case when bare and taken as written when quoted or a string.
#[derive(Debug, PartialEq, Eq)]
enum Lexeme {
    Word(String),
    Quoted(String),
    Literal(String),
    Symbol(char),
}

/// Characters of a bare word: identifiers, keywords, and values such as `-1.5`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '$' | '-' | '+' | '.')
}

fn lex(statement: &str) -> Option<Vec<Lexeme>> {
    let mut out = Vec::new();
    let mut chars = statement.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == ';' {
            chars.next();
        } else if skip_comment(&mut chars)? {
            // Skipped like white space.
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next()? {
                    q if q == c && chars.peek() == Some(&c) => {
                        chars.next();
                        text.push(c);
                    }
                    q if q == c => break,
                    other => text.push(other),
                }
            }
            out.push(if c == '"' {
                Lexeme::Quoted(text)
            } else {
                Lexeme::Literal(text)
            });
        } else if is_word_char(c) {
            let mut word = String::new();
            while let Some(&c) = chars.peek().filter(|c| is_word_char(**c)) {
                // `a--x` is the word `a` and a comment, as PostgreSQL reads it.
                if c == '-' && chars.clone().nth(1) == Some('-') {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push(Lexeme::Word(word));
        } else {
            out.push(Lexeme::Symbol(c));
            chars.next();
        }
    }
    Some(out)
}

/// `SET [SESSION | LOCAL] ROLE name | NONE`, `SET [SESSION | LOCAL] role {= | TO} value |
/// DEFAULT` and `RESET ROLE`. `None` for anything else, and for these when written in a way
/// not understood (the caller refuses those: [`may_set_tracked`]).
fn parse_role(statement: &str) -> Option<SettingChange> {
    let lexemes = lex(statement)?;
    let word = |at: usize, expected: &str| matches!(lexemes.get(at), Some(Lexeme::Word(w)) if w.eq_ignore_ascii_case(expected));
    let name = "role".to_owned();
    if word(0, "reset") {
        return (word(1, "role") && lexemes.len() == 2)
            .then_some(SettingChange::Reset { name, local: false });
    }
    if !word(0, "set") {
        return None;
    }
    let local = word(1, "local");
    let mut at = if local || word(1, "session") { 2 } else { 1 };
    if !word(at, "role") {
        return None;
    }
    at += 1;
    let separated = matches!(lexemes.get(at), Some(Lexeme::Symbol('='))) || word(at, "to");
    if separated {
        at += 1;
    }
    if lexemes.len() != at + 1 {
        return None;
    }
    let value = match &lexemes[at] {
        Lexeme::Word(w) if separated && w.eq_ignore_ascii_case("default") => {
            return Some(SettingChange::Reset { name, local })
        }
        Lexeme::Word(w) if w.eq_ignore_ascii_case(NO_ROLE) => NO_ROLE.to_owned(),
        Lexeme::Word(w) => w.to_ascii_lowercase(),
        Lexeme::Quoted(text) | Lexeme::Literal(text) => text.clone(),
        Lexeme::Symbol(_) => return None,
    };
    Some(SettingChange::Set { name, value, local })
}

/// An identifier as PostgreSQL folds it.
fn identifier(token: &str) -> String {
    match token.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => token.to_lowercase(),
    }
}

/// A setting's name as PostgreSQL looks it up: quotes removed, any case (`"Search_Path"` is
/// `search_path`).
fn setting_name(token: &str) -> String {
    identifier(token).to_ascii_lowercase()
}

/// The setting a `SET`/`RESET` statement changes, for the settings this layer tracks. `None`
/// for anything else (settings this layer does not track).
pub(crate) fn parse_setting(statement: &str) -> Option<SettingChange> {
    let tokens = tokenize(statement)?;
    let mut words = tokens.iter().map(String::as_str);
    let first = words.next()?.to_ascii_lowercase();
    match first.as_str() {
        "reset" => {
            let word = words.next()?;
            if words.next().is_some() {
                return None;
            }
            if word.eq_ignore_ascii_case("all") {
                return Some(SettingChange::ResetAll);
            }
            let name = setting_name(word);
            (tracked(&name) && name != "role")
                .then_some(SettingChange::Reset { name, local: false })
        }
        "set" => {
            let mut word = words.next()?;
            let mut local = false;
            if word.eq_ignore_ascii_case("session") {
                word = words.next()?;
            } else if word.eq_ignore_ascii_case("local") {
                local = true;
                word = words.next()?;
            }
            let name = setting_name(word);
            // `role` is parse_role's: a role name keeps the case it was quoted in.
            if !tracked(&name) || name == "role" {
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
                return Some(SettingChange::Reset { name, local });
            }
            let value = rest
                .iter()
                .filter(|t| **t != ",")
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            Some(SettingChange::Set { name, value, local })
        }
        _ => None,
    }
}

/// The first words of the statements [`parse_control`] understands.
const CONTROL_WORDS: [&str; 10] = [
    "commit",
    "end",
    "prepare",
    "abort",
    "rollback",
    "savepoint",
    "release",
    "discard",
    "set",
    "reset",
];

/// Splits a `SET` statement into words, quoted strings and identifiers (quotes removed from
/// strings; double quotes kept on identifiers so `search_path` can tell `"$user"` apart),
/// `=` and `,`. `None` if it contains anything unexpected.
fn tokenize(sql: &str) -> Option<Vec<String>> {
    lex(sql)?
        .into_iter()
        .map(|lexeme| match lexeme {
            Lexeme::Word(word) | Lexeme::Literal(word) => Some(word),
            Lexeme::Quoted(name) => Some(format!("\"{name}\"")),
            Lexeme::Symbol(c @ ('=' | ',')) => Some(c.to_string()),
            Lexeme::Symbol(_) => None,
        })
        .collect()
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
                value: "3".into(),
                local: false
            })
        );
        assert_eq!(
            parse_setting("set session search_path to app, \"My Schema\", public;"),
            Some(SettingChange::Set {
                name: "search_path".into(),
                value: "app, \"My Schema\", public".into(),
                local: false
            })
        );
        assert_eq!(
            parse_setting("SET bytea_output TO 'escape'"),
            Some(SettingChange::Set {
                name: "bytea_output".into(),
                value: "escape".into(),
                local: false
            })
        );
        assert_eq!(
            parse_setting("SET search_path TO DEFAULT"),
            Some(SettingChange::Reset {
                name: "search_path".into(),
                local: false
            })
        );
        assert_eq!(parse_setting("RESET ALL"), Some(SettingChange::ResetAll));
        assert_eq!(
            parse_setting("SET LOCAL search_path = x"),
            Some(SettingChange::Set {
                name: "search_path".into(),
                value: "x".into(),
                local: true
            })
        );
        assert_eq!(parse_setting("SET work_mem = '64MB'"), None);
        assert_eq!(parse_setting("SELECT 1"), None);
    }

    #[test]
    fn transaction_statements_are_understood() {
        assert_eq!(parse_control("COMMIT"), Some(Control::Commit));
        assert_eq!(parse_control("end work;"), Some(Control::Commit));
        assert_eq!(parse_control("COMMIT AND CHAIN"), Some(Control::Commit));
        assert_eq!(parse_control("COMMIT PREPARED 'x'"), None);
        assert_eq!(parse_control("ROLLBACK"), Some(Control::Rollback));
        assert_eq!(parse_control("abort"), Some(Control::Rollback));
        assert_eq!(
            parse_control("ROLLBACK TRANSACTION TO SAVEPOINT \"A b\""),
            Some(Control::RollbackTo("A b".into()))
        );
        assert_eq!(
            parse_control("rollback to s1"),
            Some(Control::RollbackTo("s1".into()))
        );
        assert_eq!(
            parse_control("SAVEPOINT S1"),
            Some(Control::Savepoint("s1".into()))
        );
        assert_eq!(
            parse_control("RELEASE SAVEPOINT s1"),
            Some(Control::Release("s1".into()))
        );
        assert_eq!(
            parse_control("RELEASE s1"),
            Some(Control::Release("s1".into()))
        );
        assert_eq!(
            parse_control("DISCARD ALL"),
            Some(Control::Setting(SettingChange::DiscardAll))
        );
        assert_eq!(parse_control("SELECT 1"), None);
        assert_eq!(parse_control("BEGIN"), None);
        // Comments are white space, names are looked up in any case and quoting.
        for text in [
            "SET/**/search_path = a",
            "SET \"Search_Path\" TO a",
            "/* x */ -- y\n SET search_path = a; -- z",
            "SET /* a /* nested */ b */ search_path = a",
            "SET search_path = a--b",
        ] {
            assert_eq!(
                parse_control(text),
                Some(set("search_path", "a", false)),
                "{text}"
            );
        }
        for text in [
            "SET search_path = a /* never closed",
            "SET search_path FROM CURRENT",
            "SET U&\"\\0073earch_path\" = a",
            "reset SEARCH_PATH extra",
        ] {
            assert_eq!(parse_control(text), None, "{text}");
            assert!(may_set_tracked(text), "{text}");
        }
        // Role names keep the case they were quoted in.
        for (text, role) in [
            ("SET ROLE Admin", "admin"),
            ("set local role \"Admin\"", "Admin"),
            ("SET SESSION ROLE 'Admin';", "Admin"),
            ("SET role = admin", "admin"),
            ("SET role TO 'Ad''min'", "Ad'min"),
            ("SET ROLE NONE", NO_ROLE),
        ] {
            let local = text.contains("local");
            assert_eq!(
                parse_control(text),
                Some(set("role", role, local)),
                "{text}"
            );
        }
        assert_eq!(
            parse_control("RESET ROLE"),
            Some(Control::Setting(SettingChange::Reset {
                name: "role".into(),
                local: false
            }))
        );
        for text in [
            "SET ROLE a b",
            "SET SESSION AUTHORIZATION app",
            "RESET SESSION AUTHORIZATION",
            "SET session_authorization = app",
        ] {
            assert_eq!(parse_control(text), None, "{text}");
            assert!(may_set_tracked(text), "{text}");
        }
        for text in [
            "SET statement_timeout = 0",
            "SELECT 'search_path'",
            "COMMENT ON x",
        ] {
            assert!(!may_set_tracked(text), "{text}");
        }
        assert_eq!(parse_control("ENDx"), None);
        assert_eq!(
            parse_control("\n\tset\tSearch_Path = a"),
            Some(set("search_path", "a", false))
        );
        assert_eq!(
            parse_control("Reset search_path;"),
            Some(Control::Setting(SettingChange::Reset {
                name: "search_path".into(),
                local: false
            }))
        );
    }

    fn set(name: &str, value: &str, local: bool) -> Control {
        Control::Setting(SettingChange::Set {
            name: name.into(),
            value: value.into(),
            local,
        })
    }
}
