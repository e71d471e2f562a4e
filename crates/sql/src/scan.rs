//! Token-level helpers: exact byte spans of value expressions (the parse tree records where an
//! expression starts, not where it ends), statement trimming, and the fail-closed check "does
//! this text name an encrypted table anywhere".

use std::ops::Range;

use pg_query::protobuf::{KeywordKind, ScanToken, Token};

use crate::Catalog;

/// How deep the fail-closed name check looks into string constants that hold code (`DO $$ ...
/// EXECUTE '...' $$`).
const MAX_BODY_DEPTH: u32 = 3;

/// The tokens of one SQL text, in text order.
pub(crate) struct Tokens {
    tokens: Vec<ScanToken>,
}

fn kind_is(token: &ScanToken, kind: Token) -> bool {
    token.token == kind as i32
}

fn is_comment(token: &ScanToken) -> bool {
    kind_is(token, Token::SqlComment) || kind_is(token, Token::CComment)
}

fn range_of(token: &ScanToken) -> Option<Range<usize>> {
    let start = usize::try_from(token.start).ok()?;
    let end = usize::try_from(token.end).ok()?;
    (start <= end).then_some(start..end)
}

impl Tokens {
    /// Scan `sql`; `None` if PostgreSQL's scanner rejects it.
    pub(crate) fn scan(sql: &str) -> Option<Tokens> {
        let result = pg_query::scan(sql).ok()?;
        Some(Tokens {
            tokens: result.tokens,
        })
    }

    fn index_at(&self, pos: usize) -> Option<usize> {
        let pos = i32::try_from(pos).ok()?;
        self.tokens.binary_search_by_key(&pos, |t| t.start).ok()
    }

    /// The tokens lying entirely inside `range` (binary search: texts may hold thousands of
    /// statements).
    fn within(&self, range: &Range<usize>) -> &[ScanToken] {
        let from = self
            .tokens
            .partition_point(|t| usize::try_from(t.start).map_or(true, |s| s < range.start));
        let to = self
            .tokens
            .partition_point(|t| usize::try_from(t.start).map_or(true, |s| s < range.end));
        let slice = &self.tokens[from..to.max(from)];
        // A token that starts inside but ends outside is not inside.
        match slice.last().and_then(range_of) {
            Some(last) if last.end > range.end => &slice[..slice.len() - 1],
            _ => slice,
        }
    }

    /// `range` without leading and trailing whitespace and comments.
    pub(crate) fn trim(&self, range: Range<usize>) -> Range<usize> {
        let mut inside = self
            .within(&range)
            .iter()
            .filter(|t| !is_comment(t))
            .filter_map(range_of);
        match inside.next() {
            Some(first) => {
                let end = inside.next_back().map_or(first.end, |last| last.end);
                first.start..end
            }
            None => range.start..range.start,
        }
    }

    /// The exact span of a value expression that starts at byte `start` and is one of the forms
    /// allowed for an encrypted column (`$n`, a literal, `NULL`, `DEFAULT`, optionally cast).
    ///
    /// The expression ends before the first token at its own parenthesis depth that cannot
    /// continue it: `,`, a closing `)`, `;`, or a reserved keyword other than the few that appear
    /// inside those forms (`NULL`, `TRUE`, `FALSE`, `DEFAULT`, `CAST`, `ARRAY`, and `WITH` of
    /// `timestamp with time zone`). Trailing comments are not part of the span. The caller checks
    /// that every location of the expression's tree lies inside the span, so a form this cannot
    /// delimit is refused rather than half-replaced.
    pub(crate) fn value_span(&self, start: usize, limit: usize) -> Option<Range<usize>> {
        let first = self.index_at(start)?;
        let mut depth: u32 = 0;
        let mut end = None;
        // Signs may follow each other (`- -7`); an operator after an operand ends the value.
        let mut after_operator = false;
        for token in &self.tokens[first..] {
            let range = range_of(token)?;
            if range.start >= limit {
                break;
            }
            if is_comment(token) {
                continue;
            }
            let open = kind_is(token, Token::Ascii40) || kind_is(token, Token::Ascii91);
            let close = kind_is(token, Token::Ascii41) || kind_is(token, Token::Ascii93);
            if depth == 0 && range.start > start {
                let separator = kind_is(token, Token::Ascii44) || kind_is(token, Token::Ascii59);
                let reserved = token.keyword_kind == KeywordKind::ReservedKeyword as i32
                    && ![
                        Token::NullP,
                        Token::TrueP,
                        Token::FalseP,
                        Token::Default,
                        Token::Cast,
                        Token::With,
                        Token::Array,
                    ]
                    .iter()
                    .any(|k| kind_is(token, *k));
                // An operator or predicate keyword after the value belongs to an enclosing
                // expression (`'a' = email`, `$1 IS NULL`): the value ends before it.
                let operator = [
                    Token::Op,
                    Token::Ascii60,
                    Token::Ascii61,
                    Token::Ascii62,
                    Token::Ascii43,
                    Token::Ascii45,
                    Token::Ascii42,
                    Token::Ascii47,
                    Token::Ascii37,
                    Token::Ascii94,
                    Token::LessEquals,
                    Token::GreaterEquals,
                    Token::NotEquals,
                    Token::Is,
                    Token::Isnull,
                    Token::Notnull,
                    Token::Like,
                    Token::Ilike,
                    Token::Similar,
                    Token::Between,
                    Token::Escape,
                ]
                .iter()
                .any(|k| kind_is(token, *k));
                if separator || close || reserved || (operator && !after_operator) {
                    break;
                }
            }
            after_operator = [Token::Op, Token::Ascii43, Token::Ascii45]
                .iter()
                .any(|k| kind_is(token, *k));
            if open {
                depth += 1;
            } else if close {
                depth = depth.checked_sub(1)?;
            }
            end = Some(range.end);
        }
        end.map(|end| start..end)
    }

    /// The span of `count` consecutive tokens (comments skipped) starting at byte `start`: a
    /// column reference of `n` names is `2n - 1` tokens (`u . email`).
    pub(crate) fn tokens_span(&self, start: usize, count: usize) -> Option<Range<usize>> {
        let first = self.index_at(start)?;
        let last = self.tokens[first..]
            .iter()
            .filter(|t| !is_comment(t))
            .nth(count.checked_sub(1)?)?;
        let end = range_of(last)?.end;
        Some(start..end)
    }

    /// The end of the closing parenthesis that is the first token at or after byte `pos`
    /// (comments skipped).
    pub(crate) fn close_paren_after(&self, pos: usize) -> Option<usize> {
        let from = self
            .tokens
            .partition_point(|t| usize::try_from(t.start).map_or(true, |s| s < pos));
        let token = self.tokens[from..].iter().find(|t| !is_comment(t))?;
        kind_is(token, Token::Ascii41)
            .then(|| range_of(token).map(|r| r.end))
            .flatten()
    }

    /// Whether the parentheses and brackets inside `range` balance: replacing the range then
    /// keeps the structure of the text around it.
    pub(crate) fn balanced(&self, range: &Range<usize>) -> bool {
        let mut depth: i64 = 0;
        for token in self.within(range) {
            if kind_is(token, Token::Ascii40) || kind_is(token, Token::Ascii91) {
                depth += 1;
            } else if kind_is(token, Token::Ascii41) || kind_is(token, Token::Ascii93) {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
        }
        depth == 0
    }

    /// The highest `$n` in `range` (0: none; numbers beyond 65535 count as 65535, which the
    /// server rejects anyway).
    pub(crate) fn max_param(&self, sql: &str, range: Range<usize>) -> u16 {
        self.within(&range)
            .iter()
            .filter(|t| kind_is(t, Token::Param))
            .filter_map(|t| sql.get(range_of(t)?))
            .filter_map(|text| text.strip_prefix('$'))
            .map(|digits| {
                digits
                    .parse::<u64>()
                    .map_or(u16::MAX, |n| n.min(65535) as u16)
            })
            .max()
            .unwrap_or(0)
    }

    /// The elements of the first parenthesised list that starts at or after byte `pos`
    /// (`(a, lower(b) DESC)`): each element's span, comments and whitespace trimmed.
    pub(crate) fn paren_list_after(&self, pos: usize) -> Option<Vec<Range<usize>>> {
        let from = self
            .tokens
            .partition_point(|t| usize::try_from(t.start).map_or(true, |s| s < pos));
        let open = from
            + self.tokens[from..]
                .iter()
                .position(|t| kind_is(t, Token::Ascii40))?;
        let mut elements = Vec::new();
        let mut current: Option<Range<usize>> = None;
        let mut depth: u32 = 0;
        for token in &self.tokens[open + 1..] {
            if is_comment(token) {
                continue;
            }
            let range = range_of(token)?;
            let opens = kind_is(token, Token::Ascii40) || kind_is(token, Token::Ascii91);
            let closes = kind_is(token, Token::Ascii41) || kind_is(token, Token::Ascii93);
            if depth == 0 && (closes || kind_is(token, Token::Ascii44)) {
                elements.push(current.take()?);
                if closes {
                    return Some(elements);
                }
                continue;
            }
            if opens {
                depth += 1;
            } else if closes {
                depth -= 1;
            }
            current = Some(match current {
                Some(c) => c.start..range.end,
                None => range,
            });
        }
        None
    }

    /// Whether `range` holds a value: a constant of any kind or a `$n` parameter.
    pub(crate) fn has_value(&self, range: Range<usize>) -> bool {
        self.within(&range).iter().any(|t| {
            [
                Token::Sconst,
                Token::Usconst,
                Token::Iconst,
                Token::Fconst,
                Token::Bconst,
                Token::Xconst,
                Token::Param,
            ]
            .into_iter()
            .any(|kind| kind_is(t, kind))
        })
    }

    /// The first identifier or keyword token in `range` that names a relation with encrypted
    /// columns, looking into string constants (code bodies) when `deep`.
    pub(crate) fn mentioned_encrypted_table(
        &self,
        sql: &str,
        range: Range<usize>,
        catalog: &dyn Catalog,
        deep: bool,
    ) -> Option<String> {
        let depth = if deep { MAX_BODY_DEPTH } else { 0 };
        self.mentions(sql, range, catalog, depth)
    }

    fn mentions(
        &self,
        sql: &str,
        range: Range<usize>,
        catalog: &dyn Catalog,
        depth: u32,
    ) -> Option<String> {
        for token in self.within(&range) {
            let Some(r) = range_of(token) else { continue };
            let Some(text) = sql.get(r) else { continue };
            let identifier = kind_is(token, Token::Ident)
                || kind_is(token, Token::Uident)
                || token.keyword_kind != KeywordKind::NoKeyword as i32;
            if identifier {
                match identifier_name(text) {
                    Some(name) if catalog.is_encrypted_table_name(&name) => return Some(name),
                    Some(_) => {}
                    // A Unicode-escaped identifier could spell any name: fail closed.
                    None => return Some(text.to_string()),
                }
            } else if depth > 0 && (kind_is(token, Token::Sconst) || kind_is(token, Token::Usconst))
            {
                let body = string_body(text);
                if let Some(found) = mentions_in_text(&body, catalog, depth - 1) {
                    return Some(found);
                }
            }
        }
        None
    }
}

/// The fail-closed name check on free text (unparseable SQL, code bodies): scanner tokens when
/// the text scans, every word otherwise.
pub(crate) fn mentions_in_text(text: &str, catalog: &dyn Catalog, depth: u32) -> Option<String> {
    match Tokens::scan(text) {
        Some(tokens) => tokens.mentions(text, 0..text.len(), catalog, depth),
        None => mentions_by_words(text, catalog),
    }
}

/// Every run of identifier characters, as written and case-folded: more names than the scanner
/// would see (it also looks inside strings and comments), which is the safe direction.
pub(crate) fn mentions_by_words(text: &str, catalog: &dyn Catalog) -> Option<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|word| !word.is_empty())
        .find_map(|word| {
            let folded = word.to_ascii_lowercase();
            if catalog.is_encrypted_table_name(&folded) || catalog.is_encrypted_table_name(word) {
                Some(folded)
            } else {
                None
            }
        })
}

/// The name an identifier token denotes: unquoted names fold ASCII letters to lower case, as
/// PostgreSQL does; quoted names keep their case with `""` unescaped. `None` for `U&"..."`,
/// whose escapes are not decoded here.
pub(crate) fn identifier_name(text: &str) -> Option<String> {
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        return Some(text[1..text.len() - 1].replace("\"\"", "\""));
    }
    if text.starts_with("U&") || text.starts_with("u&") {
        return None;
    }
    Some(text.to_ascii_lowercase())
}

/// The content of a string constant token, for the name check only: quotes stripped, `''`
/// collapsed. Escapes in `E'...'` are left as written; names rarely contain them.
fn string_body(text: &str) -> String {
    if let Some(rest) = text.strip_prefix('$') {
        // $tag$body$tag$
        let body = rest.find('$').and_then(|tag_end| {
            let tag_len = tag_end + 2;
            text.get(tag_len..text.len().checked_sub(tag_len)?)
        });
        return body.unwrap_or(text).to_string();
    }
    let unprefixed = text
        .strip_prefix(['E', 'e'])
        .or_else(|| text.strip_prefix("U&"))
        .or_else(|| text.strip_prefix("u&"))
        .unwrap_or(text);
    let inner = unprefixed
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(unprefixed);
    inner.replace("''", "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_folding() {
        assert_eq!(identifier_name("Users").as_deref(), Some("users"));
        assert_eq!(identifier_name("\"Users\"").as_deref(), Some("Users"));
        assert_eq!(identifier_name("\"a\"\"b\"").as_deref(), Some("a\"b"));
        assert_eq!(identifier_name("U&\"d\\0061t\""), None);
    }

    #[test]
    fn string_bodies() {
        assert_eq!(string_body("$$ select 1 $$"), " select 1 ");
        assert_eq!(string_body("$fn$x$fn$"), "x");
        assert_eq!(string_body("'it''s'"), "it's");
        assert_eq!(string_body("E'a'"), "a");
    }

    #[test]
    fn value_span_stops_at_separators_and_keywords() {
        let sql = "UPDATE t SET a = '1'::timestamp with time zone /* c */ WHERE b = 1";
        let tokens = Tokens::scan(sql).expect("scans");
        let start = sql.find("'1'").expect("literal");
        let span = tokens.value_span(start, sql.len()).expect("span");
        assert_eq!(&sql[span], "'1'::timestamp with time zone");

        let sql = "VALUES (CAST('x' AS numeric), 2)";
        let tokens = Tokens::scan(sql).expect("scans");
        let start = sql.find("CAST").expect("cast");
        let span = tokens.value_span(start, sql.len()).expect("span");
        assert_eq!(&sql[span], "CAST('x' AS numeric)");
    }
}
