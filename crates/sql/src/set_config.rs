//! `set_config(name, value, is_local)` calls: the function form of `SET`, which a proxy that
//! tracks session settings must see too.

use pg_query::protobuf::{KeywordKind, ScanToken, Token};

use crate::scan::identifier_name;

/// A call of `set_config` found in a statement.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetConfigCall {
    /// The whole statement is `SELECT [pg_catalog.]set_config('name', 'value', true|false)`:
    /// it runs exactly once and its effect is known. `name` is lower-cased.
    Constant {
        /// The setting, lower-cased.
        name: String,
        /// The value, SQL-unescaped.
        value: String,
        /// `is_local`: the change ends with the transaction, like `SET LOCAL`.
        local: bool,
    },
    /// Any other call: arguments that are not constants, or a call inside a larger statement
    /// (which may run it any number of times). `name` is the setting when the first argument
    /// is a plain string constant.
    Opaque {
        /// The setting, lower-cased, if written as a constant.
        name: Option<String>,
    },
}

impl std::fmt::Debug for SetConfigCall {
    // The value may be anything the client sent: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetConfigCall::Constant { name, local, .. } => f
                .debug_struct("Constant")
                .field("name", name)
                .field("local", local)
                .finish_non_exhaustive(),
            SetConfigCall::Opaque { name } => f.debug_struct("Opaque").field("name", name).finish(),
        }
    }
}

/// Every `set_config(...)` call in `statement` (one statement's text). Text that does not
/// scan but mentions `set_config` gives one [`SetConfigCall::Opaque`] without a name.
pub fn set_config_calls(statement: &str) -> Vec<SetConfigCall> {
    if !may_call_set_config(statement) {
        return Vec::new();
    }
    let Ok(scanned) = pg_query::scan(statement) else {
        return vec![SetConfigCall::Opaque { name: None }];
    };
    let tokens: Vec<(&ScanToken, &str)> = scanned
        .tokens
        .iter()
        .filter(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32)
        .filter_map(|t| {
            let start = usize::try_from(t.start).ok()?;
            let end = usize::try_from(t.end).ok()?;
            Some((t, statement.get(start..end)?))
        })
        .collect();
    let mut calls = Vec::new();
    for (i, (token, text)) in tokens.iter().enumerate() {
        let identifier = token.token == Token::Ident as i32
            || token.token == Token::Uident as i32
            || token.keyword_kind != KeywordKind::NoKeyword as i32;
        if !identifier {
            continue;
        }
        // `U&"..."` could spell it, or another name: such a call is never taken for a
        // constant one.
        let escaped = match identifier_name(text) {
            Some(name) if name == "set_config" => false,
            None => true,
            Some(_) => continue,
        };
        if tokens.get(i + 1).map(|(_, t)| *t) != Some("(") {
            continue;
        }
        let name = tokens
            .get(i + 2)
            .filter(|_| tokens.get(i + 3).map(|(_, t)| *t) == Some(","))
            .and_then(|(t, text)| plain_string(t, text))
            .map(|s| s.to_ascii_lowercase());
        let constant = if escaped {
            None
        } else {
            whole_statement_call(&tokens, i)
        };
        calls.push(constant.unwrap_or(SetConfigCall::Opaque { name }));
    }
    calls
}

/// Whether `statement` spells `set_config` in any case, or has a `U&"..."` identifier, whose
/// escapes could spell it (`U&"s\0065t_config"`): only then is it scanned. Most statements
/// are not, and this runs for every statement the proxy sees.
///
/// A text for which this is `false` calls no `set_config`, and neither does any text that
/// differs from it only inside constants: the proxy asks it of a plan template's key once,
/// not of every text that uses the template.
pub fn may_call_set_config(statement: &str) -> bool {
    // The proxy asks this of every statement it is sent: the search jumps between the few
    // `_` and `&` of a text rather than looking at every byte.
    let bytes = statement.as_bytes();
    memchr::memchr2_iter(b'_', b'&', bytes).any(|at| {
        if bytes[at] == b'&' {
            return at > 0 && bytes[at - 1].eq_ignore_ascii_case(&b'u');
        }
        at >= 3
            && bytes[at - 3..at].eq_ignore_ascii_case(b"set")
            && bytes
                .get(at + 1..at + 7)
                .is_some_and(|word| word.eq_ignore_ascii_case(b"config"))
    })
}

/// The call at `at` if the statement is exactly `SELECT [pg_catalog.]set_config('n', 'v',
/// bool) [;]`.
fn whole_statement_call(tokens: &[(&ScanToken, &str)], at: usize) -> Option<SetConfigCall> {
    let prefix: Vec<String> = tokens[..at]
        .iter()
        .map(|(_, t)| t.to_ascii_lowercase())
        .collect();
    let prefix_ok = matches!(
        prefix
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["select"] | ["select", "pg_catalog", "."]
    );
    if !prefix_ok {
        return None;
    }
    let rest = &tokens[at + 1..];
    let rest = match rest.last() {
        Some((_, ";")) => &rest[..rest.len() - 1],
        _ => rest,
    };
    let [(_, "("), name, (_, ","), value, (_, ","), local, (_, ")")] = rest else {
        return None;
    };
    let name = plain_string(name.0, name.1)?.to_ascii_lowercase();
    let value = plain_string(value.0, value.1)?;
    let local = match local.1.to_ascii_lowercase().as_str() {
        "true" | "'true'" | "'t'" | "'on'" => true,
        "false" | "'false'" | "'f'" | "'off'" => false,
        _ => return None,
    };
    Some(SetConfigCall::Constant { name, value, local })
}

/// The value of a `'...'` constant without prefix or continuation.
fn plain_string(token: &ScanToken, text: &str) -> Option<String> {
    if token.token != Token::Sconst as i32 {
        return None;
    }
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let unescaped = inner.replace("''", "'");
    (!inner.replace("''", "").contains('\'')).then_some(unescaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `may_call_set_config` must answer, byte by byte.
    fn may_call_set_config_slowly(statement: &str) -> bool {
        let bytes = statement.as_bytes();
        (0..bytes.len()).any(|at| {
            bytes
                .get(at..at + 10)
                .is_some_and(|word| word.eq_ignore_ascii_case(b"set_config"))
                || (bytes[at] == b'&' && at > 0 && bytes[at - 1].eq_ignore_ascii_case(&b'u'))
        })
    }

    proptest::proptest! {
        #[test]
        fn the_quick_check_agrees_on_any_text(text in "[setSETconfigCONFIG_&uU x]{0,24}") {
            proptest::prop_assert_eq!(may_call_set_config(&text), may_call_set_config_slowly(&text));
        }
    }

    #[test]
    fn the_quick_check_finds_what_the_byte_by_byte_one_finds() {
        for text in [
            "",
            "set_config",
            "SELECT set_config('a', 'b', false)",
            "SELECT SeT_CoNfIg('a', 'b', false)",
            "select pg_catalog.set_config('x','y',true);",
            "SELECT set_confi('a')",
            "SELECT _config, set_, et_config FROM t",
            "_config",
            "set_",
            "xset_configx",
            "SELECT U&\"s\" FROM t",
            "SELECT u&'x'",
            "& u &",
            "&",
            "SELECT a & b FROM t",
            "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 2",
            "SELECT 'set_config' || 'x'",
        ] {
            assert_eq!(
                may_call_set_config(text),
                may_call_set_config_slowly(text),
                "{text:?}"
            );
        }
    }

    fn constant(name: &str, value: &str, local: bool) -> SetConfigCall {
        SetConfigCall::Constant {
            name: name.into(),
            value: value.into(),
            local,
        }
    }

    #[test]
    fn constant_calls_are_read() {
        assert_eq!(
            set_config_calls("SELECT set_config('search_path', 'app, public', false)"),
            vec![constant("search_path", "app, public", false)]
        );
        assert_eq!(
            set_config_calls("select pg_catalog.SET_CONFIG('Bytea_Output', 'escape', true);"),
            vec![constant("bytea_output", "escape", true)]
        );
        assert_eq!(set_config_calls("SELECT 1"), Vec::new());
        assert_eq!(set_config_calls("SELECT 'set_config(x)'"), Vec::new());
    }

    #[test]
    fn other_calls_are_opaque() {
        assert_eq!(
            set_config_calls("SELECT set_config('search_path', $1, false)"),
            vec![SetConfigCall::Opaque {
                name: Some("search_path".into())
            }]
        );
        assert_eq!(
            set_config_calls("SELECT set_config(name, 'x', false) FROM t"),
            vec![SetConfigCall::Opaque { name: None }]
        );
        assert_eq!(
            set_config_calls("SELECT id, set_config('search_path', 'x', false) FROM t"),
            vec![SetConfigCall::Opaque {
                name: Some("search_path".into())
            }]
        );
    }

    /// A name spelled with Unicode escapes is not decoded, so it is taken for a call that
    /// cannot be followed, never for no call at all.
    #[test]
    fn escaped_names_are_opaque_calls() {
        for sql in [
            r#"SELECT U&"s\0065t_config"('search_path', 'x', false)"#,
            r#"select u&"\0073et_config"('search_path', 'x', false)"#,
            r#"SELECT pg_catalog.U&"s\0065t_config"('search_path', 'x', false)"#,
        ] {
            assert_eq!(
                set_config_calls(sql),
                vec![SetConfigCall::Opaque {
                    name: Some("search_path".into())
                }],
                "{sql}"
            );
        }
        assert_eq!(
            set_config_calls("SELECT 'u&' AS x, setconfig FROM s"),
            vec![]
        );
        assert!(set_config_calls(r"SELECT U&'\0041' AS x").is_empty());
    }
}
