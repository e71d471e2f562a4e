//! A hand-written scanner for the common subset of SQL, for
//! [`TemplateKey::of`](crate::TemplateKey::of).
//!
//! `pg_query::scan` runs PostgreSQL's flex scanner, serialises its tokens to protobuf in C and
//! decodes them in Rust: about 1.5 µs for a short statement, paid for every simple-protocol
//! statement the proxy sees. Most such statements use a small part of the lexical grammar
//! (words, `'...'`, decimal numbers, `$n`, operators, comments), which this module scans an
//! order of magnitude faster.
//!
//! The scanner is conservative: it returns tokens only when it is sure PostgreSQL's scanner
//! (`scan.l` of PostgreSQL 17/18, as vendored by pg_query 18) splits the text into exactly the
//! same tokens with the same kinds, and declines anything outside its subset, so that the
//! caller falls back to `pg_query::scan`. A wrong token boundary or kind would give a wrong
//! template key, and a wrong key could reuse a plan that leaves a value for an encrypted
//! column unencrypted: when in doubt, it declines.
//!
//! Outside the subset (declined): escape, bit, national and Unicode strings (`E'`, `B'`, `X'`,
//! `N'`, `U&'`, `U&"`), dollar quotes, backslashes, string continuations, non-decimal and
//! underscored numbers, numbers followed by anything PostgreSQL would call trailing junk, `$`
//! in identifiers, non-ASCII outside strings, quoted identifiers and comments, `..`, and any
//! character PostgreSQL would return as a lone "other" token.

use std::ops::Range;

/// The kind of a token, as far as the template key needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QuickKind {
    /// An unquoted word: keyword or identifier (this scanner keeps no keyword list).
    Word,
    /// `"..."`.
    QuotedIdent,
    /// `'...'` (PostgreSQL's `SCONST`).
    Sconst,
    /// A decimal integer that fits in 32 bits (`ICONST`).
    Iconst,
    /// A decimal number with a fraction or exponent, or too large an integer (`FCONST`).
    Fconst,
    /// `$n` (`PARAM`).
    Param,
    /// An operator or punctuation.
    Symbol,
}

/// One token: its byte range in the text and its kind. Comments are not tokens here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QuickToken {
    pub(crate) range: Range<usize>,
    pub(crate) kind: QuickKind,
}

/// PostgreSQL's `NAMEDATALEN`: an operator this long or longer is a scanner error.
const NAMEDATALEN: usize = 64;

/// The tokens of `sql`, or `None` when the text is outside the subset this scanner is sure to
/// split exactly as PostgreSQL does.
#[cfg(test)]
pub(crate) fn quick_scan(sql: &str) -> Option<Vec<QuickToken>> {
    QuickScanner::new(sql).collect()
}

/// The tokens of a text, one at a time: `Some(token)` items, or a `None` item (then the end)
/// when the text is outside the subset this scanner is sure to split exactly as PostgreSQL
/// does. The whole text is in the subset only when no item is `None`.
///
/// An iterator rather than a vector of tokens: the caller builds its key while scanning,
/// without a buffer.
pub(crate) struct QuickScanner<'a> {
    bytes: &'a [u8],
    at: usize,
    declined: bool,
}

impl<'a> QuickScanner<'a> {
    pub(crate) fn new(sql: &'a str) -> QuickScanner<'a> {
        QuickScanner {
            bytes: sql.as_bytes(),
            at: 0,
            declined: false,
        }
    }

    /// The next token, `Ok(None)` at the end, `Err(())` when the text is outside the subset.
    fn next_token(&mut self) -> Result<Option<QuickToken>, ()> {
        let bytes = self.bytes;
        let mut at = self.at;
        let number = |scanned: Option<(usize, QuickKind)>| match scanned {
            Some((end, kind)) => (Some(end), kind),
            None => (None, QuickKind::Fconst),
        };
        while let Some(&byte) = bytes.get(at) {
            let next = bytes.get(at + 1).copied();
            let (end, kind) = match byte {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                    at += 1;
                    continue;
                }
                b'-' if next == Some(b'-') => {
                    at = skip_line_comment(bytes, at);
                    continue;
                }
                b'/' if next == Some(b'*') => {
                    at = skip_block_comment(bytes, at).ok_or(())?;
                    continue;
                }
                b'A'..=b'Z' | b'a'..=b'z' | b'_' => (scan_word(bytes, at), QuickKind::Word),
                b'"' => (scan_quoted_ident(bytes, at), QuickKind::QuotedIdent),
                b'\'' => (scan_string(bytes, at), QuickKind::Sconst),
                b'0'..=b'9' => number(scan_number(bytes, at)),
                b'.' => match next {
                    Some(b'0'..=b'9') => number(scan_number(bytes, at)),
                    // `..` is its own token, and rare enough to leave to PostgreSQL.
                    Some(b'.') => return Err(()),
                    _ => (Some(at + 1), QuickKind::Symbol),
                },
                b'$' => (scan_param(bytes, at), QuickKind::Param),
                b',' | b'(' | b')' | b'[' | b']' | b';' => (Some(at + 1), QuickKind::Symbol),
                // `::` (cast) and `:=` are two-character tokens; `:` is not an operator
                // character.
                b':' => match next {
                    Some(b':' | b'=') => (Some(at + 2), QuickKind::Symbol),
                    _ => (Some(at + 1), QuickKind::Symbol),
                },
                _ if is_op_char(byte) => (scan_operator(bytes, at), QuickKind::Symbol),
                // Backslashes, braces, NUL, non-ASCII, ...: PostgreSQL's business.
                _ => return Err(()),
            };
            let end = end.ok_or(())?;
            self.at = end;
            return Ok(Some(QuickToken {
                range: at..end,
                kind,
            }));
        }
        self.at = at;
        Ok(None)
    }
}

impl Iterator for QuickScanner<'_> {
    type Item = Option<QuickToken>;

    fn next(&mut self) -> Option<Option<QuickToken>> {
        if self.declined {
            return None;
        }
        match self.next_token() {
            Ok(token) => token.map(Some),
            Err(()) => {
                self.declined = true;
                Some(None)
            }
        }
    }
}

/// PostgreSQL's `op_chars`.
fn is_op_char(byte: u8) -> bool {
    matches!(
        byte,
        b'~' | b'!'
            | b'@'
            | b'#'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
            | b'+'
            | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'<'
            | b'>'
            | b'='
    )
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// End of a `--` comment starting at `at`: the next line break (PostgreSQL's `newline` is
/// `\n` or `\r`) or the end of the text.
fn skip_line_comment(bytes: &[u8], at: usize) -> usize {
    end_of(bytes, at, |b| b != b'\n' && b != b'\r')
}

/// End of a `/* ... */` comment starting at `at`. Comments nest, as in PostgreSQL: each `/*`
/// inside needs its own `*/`. `None` if unterminated (a scanner error).
fn skip_block_comment(bytes: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut cursor = at + 2;
    loop {
        let pair = (*bytes.get(cursor)?, *bytes.get(cursor + 1)?);
        match pair {
            (b'/', b'*') => {
                depth += 1;
                cursor += 2;
            }
            (b'*', b'/') => {
                if depth == 0 {
                    return Some(cursor + 2);
                }
                depth -= 1;
                cursor += 2;
            }
            _ => cursor += 1,
        }
    }
}

/// End of an unquoted word. `None` when PostgreSQL would read more into it or read it as a
/// string prefix: `$` or a non-ASCII byte continues an identifier, and a word right before
/// `'`, `"` or `&` may be `E'`, `B'`, `X'`, `N'`, `U&'` or `U&"`.
fn scan_word(bytes: &[u8], at: usize) -> Option<usize> {
    let end = end_of(bytes, at + 1, is_word_byte);
    match bytes.get(end) {
        Some(b'$' | b'\'' | b'"' | b'&') => None,
        Some(&b) if !b.is_ascii() => None,
        _ => Some(end),
    }
}

/// End of a `"..."` identifier (`""` stands for one quote). `None` if unterminated or empty
/// (both scanner errors).
fn scan_quoted_ident(bytes: &[u8], at: usize) -> Option<usize> {
    let end = end_of_quoted(bytes, at, b'"')?;
    // `""` alone is a zero-length identifier: an error in PostgreSQL.
    (end - at > 2).then_some(end)
}

/// End of a `'...'` string (`''` stands for one quote). `None` for a backslash inside (its
/// meaning depends on `standard_conforming_strings`), if unterminated, or if another quote
/// follows after only whitespace and `--` comments: PostgreSQL joins `'a'` newline `'b'` into
/// one constant, and this scanner does not tell that from a syntax error.
fn scan_string(bytes: &[u8], at: usize) -> Option<usize> {
    let end = end_of_quoted(bytes, at, b'\'')?;
    if bytes.get(at..end)?.contains(&b'\\') {
        return None;
    }
    let mut after = end;
    loop {
        match bytes.get(after) {
            Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) => after += 1,
            Some(b'-') if bytes.get(after + 1) == Some(&b'-') => {
                after = skip_line_comment(bytes, after);
            }
            Some(b'\'') => return None,
            _ => return Some(end),
        }
    }
}

/// End of a quoted token opened by `quote` at `at`, where a doubled quote stands for itself.
fn end_of_quoted(bytes: &[u8], at: usize, quote: u8) -> Option<usize> {
    let mut cursor = at + 1;
    loop {
        let close = cursor + bytes.get(cursor..)?.iter().position(|&b| b == quote)?;
        if bytes.get(close + 1) == Some(&quote) {
            cursor = close + 2;
        } else {
            return Some(close + 1);
        }
    }
}

/// A decimal number starting at `at` (a digit, or `.` before a digit):
/// `digits [. digits*] [(e|E) [+-] digits+]` or `. digits+ [exponent]`. `None` for anything
/// PostgreSQL reads differently or rejects: an exponent marker without digits, `_`, a letter
/// (`0x1f`, `1e`, `12abc`), `.`, a quote or `$` right after the number.
fn scan_number(bytes: &[u8], at: usize) -> Option<(usize, QuickKind)> {
    let digit = |b: u8| b.is_ascii_digit();
    let mut end = end_of(bytes, at, digit);
    let mut integer = true;
    if bytes.get(end) == Some(&b'.') {
        integer = false;
        end = end_of(bytes, end + 1, digit);
    }
    if let Some(b'e' | b'E') = bytes.get(end) {
        integer = false;
        let mut exponent = end + 1;
        if let Some(b'+' | b'-') = bytes.get(exponent) {
            exponent += 1;
        }
        let digits_end = end_of(bytes, exponent, digit);
        if digits_end == exponent {
            return None;
        }
        end = digits_end;
    }
    match bytes.get(end) {
        Some(&b) if is_word_byte(b) || !b.is_ascii() => return None,
        Some(b'.' | b'\'' | b'"' | b'$') => return None,
        _ => {}
    }
    let text = std::str::from_utf8(bytes.get(at..end)?).ok()?;
    // PostgreSQL's `process_integer_literal`: an integer that does not fit in 32 bits (leading
    // zeros do not count) is a decimal constant.
    let kind = if integer && text.parse::<i32>().is_ok() {
        QuickKind::Iconst
    } else {
        QuickKind::Fconst
    };
    Some((end, kind))
}

/// End of `$n`. `None` for dollar quotes, `$n` followed by identifier characters (trailing
/// junk) and parameter numbers that do not fit in 32 bits (both scanner errors).
fn scan_param(bytes: &[u8], at: usize) -> Option<usize> {
    let end = end_of(bytes, at + 1, |b| b.is_ascii_digit());
    if end == at + 1 {
        return None;
    }
    match bytes.get(end) {
        Some(&b) if is_word_byte(b) || b == b'$' || !b.is_ascii() => return None,
        _ => {}
    }
    let digits = std::str::from_utf8(bytes.get(at + 1..end)?).ok()?;
    digits.parse::<i32>().ok()?;
    Some(end)
}

/// End of the operator starting at `at` (not a comment start: the caller checked), by
/// PostgreSQL's rule: the longest run of operator characters, cut before a `/*` or `--`
/// inside it, then, unless it holds one of `~ ! @ # ^ & | ` ? %`, without trailing `+` and
/// `-` (so `=-5` is `=`, `-`, `5`). `None` for an operator PostgreSQL finds too long.
fn scan_operator(bytes: &[u8], at: usize) -> Option<usize> {
    let run = bytes.get(at..end_of(bytes, at, is_op_char))?;
    let comment_start = run
        .windows(2)
        .position(|pair| pair == b"/*" || pair == b"--");
    let mut length = comment_start.unwrap_or(run.len());
    let ends_in_sign =
        |length: usize| length > 1 && matches!(run.get(length - 1), Some(b'+' | b'-'));
    if ends_in_sign(length) {
        // Characters no SQL-standard operator has: with one of them, `+` and `-` at the end
        // belong to the operator (`@-`, `?-`).
        let non_sql = run.iter().take(length - 1).any(|b| {
            matches!(
                b,
                b'~' | b'!' | b'@' | b'#' | b'^' | b'&' | b'|' | b'`' | b'?' | b'%'
            )
        });
        if !non_sql {
            while ends_in_sign(length) {
                length -= 1;
            }
        }
    }
    if length == 0 || length >= NAMEDATALEN {
        return None;
    }
    Some(at + length)
}

/// The first position from `from` whose byte does not satisfy `keep`.
fn end_of(bytes: &[u8], from: usize, keep: impl Fn(u8) -> bool) -> usize {
    match bytes.get(from..) {
        Some(rest) => rest
            .iter()
            .position(|&b| !keep(b))
            .map_or(bytes.len(), |offset| from + offset),
        None => from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_query::protobuf::{KeywordKind, Token};
    use proptest::prelude::*;

    /// What PostgreSQL's scanner makes of `sql`, in this scanner's terms (comments left
    /// out); `None` if it fails.
    fn postgres_tokens(sql: &str) -> Option<Vec<QuickToken>> {
        let scanned = pg_query::scan(sql).ok()?;
        let mut tokens = Vec::new();
        for token in scanned.tokens {
            if token.token == Token::SqlComment as i32 || token.token == Token::CComment as i32 {
                continue;
            }
            let range = usize::try_from(token.start).ok()?..usize::try_from(token.end).ok()?;
            let kind = if token.keyword_kind != KeywordKind::NoKeyword as i32 {
                QuickKind::Word
            } else if token.token == Token::Ident as i32 {
                if sql.get(range.clone())?.starts_with('"') {
                    QuickKind::QuotedIdent
                } else {
                    QuickKind::Word
                }
            } else if token.token == Token::Sconst as i32 {
                QuickKind::Sconst
            } else if token.token == Token::Iconst as i32 {
                QuickKind::Iconst
            } else if token.token == Token::Fconst as i32 {
                QuickKind::Fconst
            } else if token.token == Token::Param as i32 {
                QuickKind::Param
            } else {
                QuickKind::Symbol
            };
            tokens.push(QuickToken { range, kind });
        }
        Some(tokens)
    }

    /// Whether the quick scanner accepts `sql`; `Err` when it accepts it with tokens other
    /// than PostgreSQL's.
    fn differs_from_postgres(sql: &str) -> Result<bool, String> {
        let Some(quick) = quick_scan(sql) else {
            return Ok(false);
        };
        match postgres_tokens(sql) {
            Some(postgres) if postgres == quick => Ok(true),
            postgres => Err(format!(
                "{sql:?}\n  quick:    {quick:?}\n  postgres: {postgres:?}"
            )),
        }
    }

    /// Texts at the edges of the subset, each with whether the quick scanner must accept it.
    const EDGES: &[(&str, bool)] = &[
        (
            "SELECT a=-5, b->c, d->>'k', e||f, g!=-1, h@-1, i*-1, j+-2, k-+3",
            true,
        ),
        ("SELECT 1-1, a-1, - - 5, -5, --5\n, 6", true),
        ("SELECT 1 */* c */ 2, 3 +-- c\n 4, 5 </*x*/ 6", true),
        (
            "SELECT /* a /* nested */ still comment */ 1 /**/ /*/ x */ 2 /* ** / */",
            true,
        ),
        ("SELECT 1e5, 1E+5, 1e-5, 1., .5, 1.e3, .5e2, 12.34", true),
        (
            "SELECT 2147483647, 2147483648, 007, 0000000000000000000001, 99999999999",
            true,
        ),
        ("SELECT $1, $12, $0 FROM t WHERE a = $2::int", true),
        (
            "SELECT $1.5, $1'x', $1\"a\", $1-1, 1::int, 1.5::numeric, 'x'::text",
            true,
        ),
        (
            "SELECT \"a\"\"b\", \"with space\", \"é\", 'é', 'it''s', '' FROM t",
            true,
        ),
        ("SELECT 'a' /* c */ 'b', 'a'\t-- c\n, 2, 'a'x", true),
        ("SELECT 'a' 'b'", false),
        ("SELECT a::text, b := 1, c[1:2], t.d, t.* FROM t;", true),
        ("select x from t order by 1 -- trailing comment", true),
        (
            "SELECT ~1, !a, @b, #c, ^d, &e, |f, `g, ?h, %i, <j, >k, =l",
            true,
        ),
        (
            "SELECT a <=> b, c => d, e <= f, g >= h, i <> j, k ~~* l, m !~~ n",
            true,
        ),
        ("\x0b\x0cSELECT\r1\t\n", true),
        ("SELECT 'a'\n'b'", false),
        ("SELECT 'a' -- c\n 'b'", false),
        ("SELECT 1..2", false),
        ("SELECT 1.2.3", false),
        ("SELECT 0x1f", false),
        ("SELECT 0o17", false),
        ("SELECT 0b101", false),
        ("SELECT 1_000", false),
        ("SELECT 12abc", false),
        ("SELECT 1e", false),
        ("SELECT 1e+", false),
        ("SELECT 1.5x", false),
        ("SELECT 1'a'", false),
        ("SELECT $1a", false),
        ("SELECT $$x$$", false),
        ("SELECT $a$x$a$", false),
        ("SELECT $2147483648", false),
        ("SELECT E'a'", false),
        ("SELECT e'a'", false),
        ("SELECT B'101', X'1f', N'a'", false),
        ("SELECT U&'a', U&\"a\"", false),
        ("SELECT a$b", false),
        ("SELECT 'a\\b'", false),
        ("SELECT \"\"", false),
        ("SELECT 'open", false),
        ("SELECT \"open", false),
        ("SELECT 1 /* open", false),
        ("SELECT é", false),
        ("SELECT a\\b", false),
        ("SELECT {a}", false),
        ("SELECT 1\0", false),
    ];

    #[test]
    fn edges_scan_as_postgres_does() {
        let mut failures = Vec::new();
        for &(sql, accepted) in EDGES {
            match differs_from_postgres(sql) {
                Ok(got) if got == accepted => {}
                Ok(got) => failures.push(format!("{sql:?}: accepted {got}, wanted {accepted}")),
                Err(mismatch) => failures.push(mismatch),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn operators_split_as_postgres_does() {
        fn ranges(sql: &str) -> Vec<&str> {
            quick_scan(sql)
                .unwrap_or_default()
                .into_iter()
                .map(|t| &sql[t.range])
                .collect()
        }
        assert_eq!(ranges("a=-5"), ["a", "=", "-", "5"]);
        assert_eq!(ranges("a->b"), ["a", "->", "b"]);
        assert_eq!(ranges("a@-1"), ["a", "@-", "1"]);
        assert_eq!(ranges("a*-+-1"), ["a", "*", "-", "+", "-", "1"]);
        assert_eq!(ranges("a+/*c*/1"), ["a", "+", "1"]);
        assert_eq!(ranges("1--5\n2"), ["1", "2"]);
        let long = format!("a {} b", "<".repeat(NAMEDATALEN));
        assert!(quick_scan(&long).is_none());
    }

    /// Pieces of SQL inside the subset.
    const COMMON: &[&str] = &[
        "SELECT",
        "select",
        "by",
        "BY",
        "Distinct",
        "order",
        "x",
        "_a1",
        "e",
        "E",
        "u",
        "U",
        "n",
        "b",
        "x1",
        "'a'",
        "''",
        "'it''s'",
        "'é'",
        "\"a\"",
        "\"a\"\"b\"",
        "\"a b\"",
        "\"é\"",
        "0",
        "1",
        "007",
        "2147483647",
        "2147483648",
        "99999999999",
        "1.5",
        "1.",
        ".5",
        "1e5",
        "1E+5",
        "1e-5",
        "1.e3",
        "$1",
        "$0",
        "$12",
        "-",
        "+",
        "*",
        "/",
        "%",
        "^",
        "<",
        ">",
        "=",
        "~",
        "!",
        "@",
        "#",
        "&",
        "|",
        "`",
        "?",
        "=-",
        "->",
        "->>",
        "||",
        "!=",
        "<>",
        "<=",
        ">=",
        "=>",
        "@-",
        "*-",
        "+-",
        "-+",
        ",",
        "(",
        ")",
        "[",
        "]",
        ";",
        ":",
        "::",
        ":=",
        ".",
        "--c\n",
        "-- x",
        "/* c */",
        "/* /* nested */ */",
        "/**/",
        "/*/ */",
        "\t",
        "\n",
        "\r",
        "\x0b",
        "\x0c",
    ];
    /// Pieces at the edges of the subset and beyond.
    const EDGY: &[&str] = &[
        "ab$c",
        "é",
        "'a\\b'",
        "'",
        "\"\"",
        "\"",
        "1e",
        "0x1f",
        "0o7",
        "0b1",
        "1_000",
        "$",
        "$$",
        "$a$",
        "$2147483648",
        "..",
        "/*",
        "*/",
        "\\",
        "{",
        "E'a'",
        "U&'a'",
        "U&\"a\"",
        "B'1'",
        "X'1f'",
        "N'a'",
    ];
    const SEPARATORS: &[&str] = &["", "", " ", "\n", "\t", "  "];

    /// Texts of up to 14 pieces, mostly from inside the subset, glued with and without space.
    fn sequences() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            12 => prop::sample::select(COMMON),
            1 => prop::sample::select(EDGY),
        ];
        prop::collection::vec((piece, prop::sample::select(SEPARATORS)), 0..14).prop_map(|pieces| {
            pieces
                .iter()
                .flat_map(|(piece, separator)| [*piece, *separator])
                .collect()
        })
    }

    #[test]
    fn generated_texts_cover_both_paths() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = sequences();
        let mut accepted = 0;
        let mut agreeing = 0;
        let total = 2000;
        for _ in 0..total {
            let sql = strategy.new_tree(&mut runner).expect("generates").current();
            let quick = quick_scan(&sql).is_some();
            accepted += usize::from(quick);
            agreeing += usize::from(quick && pg_query::scan(&sql).is_ok());
        }
        // The equivalence check must see many accepted texts and many declined ones.
        assert!(accepted > total / 5, "only {accepted} of {total} accepted");
        assert!(accepted < total * 4 / 5, "{accepted} of {total} accepted");
        assert_eq!(agreeing, accepted);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn token_sequences_scan_as_postgres_does(sql in sequences()) {
            if let Err(mismatch) = differs_from_postgres(&sql) {
                prop_assert!(false, "{}", mismatch);
            }
        }

        #[test]
        fn printable_ascii_scans_as_postgres_does(sql in "[ -~\n\t]{0,40}") {
            if let Err(mismatch) = differs_from_postgres(&sql) {
                prop_assert!(false, "{}", mismatch);
            }
        }

        #[test]
        fn never_panics(sql in any::<String>()) {
            let _ = quick_scan(&sql);
        }
    }
}
