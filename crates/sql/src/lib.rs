//! Statement analysis for encrypted columns, on PostgreSQL's own grammar (libpg_query). No I/O.
//!
//! The proxy calls [`analyze`] once per distinct statement text and caches the resulting
//! [`Analysis`]. For each statement in the text it learns:
//!
//! * whether the statement touches an encrypted column at all ([`StatementPlan::touches_encrypted`]);
//!   if not, the statement is forwarded byte for byte;
//! * which `$n` parameters ([`StatementPlan::params`]) and which literals
//!   ([`StatementPlan::literals`]) carry a value for an encrypted column, so the proxy can encrypt
//!   them (literals are replaced in the text with [`rewrite`]);
//! * or that the statement must be refused ([`SqlError`]), before anything reaches PostgreSQL,
//!   because it would need PostgreSQL to compute on ciphertext, or would return an encrypted value
//!   without the table origin the proxy needs to decrypt it, or uses a construct this crate does
//!   not analyse while it may refer to an encrypted table (fail closed).
//!
//! Results are decrypted by the proxy from `RowDescription` (table OID and attribute number), so
//! this crate does not compute result column origins; it only refuses encrypted values that would
//! reach the client without one (expressions, scalar subqueries, set operations, whole-row
//! references, ...).
//!
//! # What is allowed
//!
//! * `SELECT` target lists and `RETURNING` lists that name encrypted columns directly (`email`,
//!   `u.email`, `public.users.email`, `email AS e`, `*`, `u.*`), through subqueries in `FROM`,
//!   CTEs (including data-modifying ones), joins on plaintext columns, and views (which the
//!   [`Catalog`] resolves like tables). `IS [NOT] NULL` on an encrypted column anywhere;
//!   `count(enc)` and `count(*)`.
//! * `INSERT ... VALUES`, `UPDATE ... SET` and `ON CONFLICT ... DO UPDATE SET` where each value
//!   for an encrypted column is `$n`, a literal (optionally cast to the column's type or to
//!   text: `'x'::date`, `CAST('x' AS date)`, `date 'x'`, `-1.5::numeric`), `NULL`, `DEFAULT`,
//!   or that same column's value (`EXCLUDED.email` for `email`). `SET (a, b) = (...)` with a
//!   row of such values.
//! * `WHERE`/`ON`/`HAVING` on plaintext columns.
//! * Everything that refers to no relation with encrypted columns, DDL (marked
//!   [`StatementPlan::invalidates_schema`]) and session/transaction statements.
//!
//! # What is refused
//!
//! Comparisons, functions, operators, casts, aggregates other than `count`, window clauses,
//! `ORDER BY`, `GROUP BY`, `DISTINCT` on an encrypted column; encrypted values reaching the
//! client without a table origin (scalar subqueries, set operations, `CASE`, `COALESCE`, row
//! and array constructors, whole-row references, `RETURNING OLD/NEW`); ciphertext copied into
//! another column or table (`INSERT ... SELECT`, `SET plain = enc`, `CREATE TABLE AS`);
//! temporary tables and views that would hold encrypted values ([`Reason::TemporaryTable`]);
//! `COPY` to or from a server file or program ([`analyze_copy`] plans `COPY FROM STDIN` and
//! `TO STDOUT`), `MERGE`, SQL-level `PREPARE` and `DECLARE CURSOR` on encrypted tables; `DO` blocks
//! and function bodies that name one; ambiguous column names when a candidate is encrypted;
//! one `$n` stored in two different columns or used for a column and a plaintext use;
//! `UNIQUE`/`PRIMARY KEY` constraints on encrypted columns. Equality search (`email = $1` on a
//! searchable column) is refused by default with [`Reason::EqualitySearch`]; a caller that can
//! send blind-index search terms turns on [`AnalyzeOptions::equality_search`] and gets, for
//! each equality predicate (`=`, `<>`, `IN`, `NOT IN` against `$n`, literals and `NULL`), a
//! [`SearchUse`] with the predicate's exact span and terms, [`ValueRole::SearchTerm`] parameter
//! uses, and [`StatementPlan::rewrites`] that index `CREATE INDEX`/`ON CONFLICT` columns by their
//! blind index.
//!
//! Fail closed: text that does not parse passes through only if none of its tokens names an
//! encrypted table ([`Catalog::is_encrypted_table_name`]); a statement or expression this crate
//! does not analyse is refused when the statement refers to an encrypted table (by resolution
//! or by name).
//!
//! ```
//! use pgseal_sql::{analyze, rewrite, Catalog, ColumnRef, EncryptedColumnInfo, Literal,
//!                  LogicalType, TableRef};
//!
//! struct OneTable;
//! impl Catalog for OneTable {
//!     fn resolve_table(&self, schema: Option<&str>, name: &str) -> Option<TableRef> {
//!         (schema.unwrap_or("public") == "public" && name == "users").then(|| TableRef {
//!             oid: 16384,
//!             schema: "public".into(),
//!             name: "users".into(),
//!             columns: vec![
//!                 ColumnRef { name: "id".into(), attnum: 1, encrypted: None },
//!                 ColumnRef {
//!                     name: "email".into(),
//!                     attnum: 2,
//!                     encrypted: Some(EncryptedColumnInfo {
//!                         column_id: 1,
//!                         qualified_name: "public.users.email".into(),
//!                         logical_type: LogicalType::Text,
//!                         searchable: true,
//!                     }),
//!                 },
//!             ],
//!         })
//!     }
//!     fn is_encrypted_table_name(&self, name: &str) -> bool {
//!         name == "users"
//!     }
//! }
//!
//! let sql = "INSERT INTO users (id, email) VALUES ($1, 'ann@example.com')";
//! let analysis = analyze(sql, &OneTable).unwrap();
//! let plan = &analysis.statements[0];
//! assert!(plan.touches_encrypted);
//! assert_eq!(plan.literals[0].value, Literal::Text("ann@example.com".into()));
//! // The proxy encrypts the value and splices in a bytea literal:
//! let out = rewrite(sql, &[(plan.literals[0].span.clone(), "'\\xb501...'".into())]);
//! assert_eq!(out.as_deref(), Some("INSERT INTO users (id, email) VALUES ($1, '\\xb501...')"));
//!
//! let refused = analyze("SELECT lower(email) FROM users", &OneTable).unwrap_err();
//! assert_eq!(refused.sqlstate(), "0A000");
//! assert_eq!(refused.column(), Some("public.users.email"));
//! ```
//!
//! # Repeated statements
//!
//! [`TemplateKey`] and [`PlanTemplate`] let a caller analyse texts that differ only in their
//! constants once (`... WHERE id = 1`, `... WHERE id = 2`), with exactly the result a fresh
//! analysis gives. [`set_config_calls`] finds `set_config()` calls, the function form of `SET`.
//!
//! # Stack depth
//!
//! libpg_query (PostgreSQL's parser and its parse-tree serialiser) recurses deeply, and this
//! crate walks the tree recursively: deeply nested SQL (thousands of nested parentheses) needs a
//! deep stack. Call [`analyze`] on a thread with a large stack (8 MiB or
//! more) when the SQL comes from untrusted clients.
//!
//! # Session settings
//!
//! Literals are unescaped as PostgreSQL does with `standard_conforming_strings = on` (the default
//! since 9.1). A session that turns it off would see backslashes in `'...'` literals differently;
//! the proxy should refuse that setting.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod analyze;
mod copy;
mod error;
mod quick_scan;
mod scan;
mod set_config;
mod template;

use std::fmt;
use std::ops::Range;

pub use copy::{analyze_copy, CopyColumn, CopyDirection, CopyFormat, CopyOptions, CopyPlan};
pub use error::{Reason, SqlError};
pub use pgseal_value::LogicalType;
pub use set_config::{may_call_set_config, set_config_calls, SetConfigCall};
pub use template::{PlanTemplate, TemplateKey};

/// The proxy's view of the database schema, as PostgreSQL would resolve names in this session.
pub trait Catalog {
    /// Resolve a table or view name as PostgreSQL would with the session's `search_path`
    /// (`schema` `None` = unqualified). `None` if unknown: an unknown relation has no encrypted
    /// column. CTE names are scoped by this crate and never looked up here while a CTE of that
    /// name is visible.
    fn resolve_table(&self, schema: Option<&str>, name: &str) -> Option<TableRef>;

    /// Quick check for fail-closed decisions: does any relation with encrypted columns (tables
    /// and views alike) have this name, in any schema? `name` is an identifier as PostgreSQL
    /// folds it: unquoted names arrive lower-cased, quoted names as written.
    fn is_encrypted_table_name(&self, name: &str) -> bool;

    /// Relations whose encrypted columns statements of the session's open transaction
    /// declared, renamed or moved ([`StatementPlan::declares_encrypted`]): the catalog cannot
    /// show them until the transaction commits. A statement naming one of them that carries a
    /// value is refused ([`Reason::Uncommitted`]). Names as PostgreSQL folds them.
    fn uncommitted_encrypted(&self) -> &[String] {
        &[]
    }
}

/// A table or view, as the [`Catalog`] resolved it.
#[derive(Clone, Debug)]
pub struct TableRef {
    /// `pg_class.oid`.
    pub oid: u32,
    /// Schema name (exact, as stored in the catalog).
    pub schema: String,
    /// Relation name (exact, as stored in the catalog).
    pub name: String,
    /// All columns in attnum order (needed for `INSERT` without a column list and `SELECT *`).
    /// Dropped columns must be left out.
    pub columns: Vec<ColumnRef>,
}

impl TableRef {
    /// Whether any column of this relation is encrypted.
    pub fn has_encrypted_columns(&self) -> bool {
        self.columns.iter().any(|c| c.encrypted.is_some())
    }
}

/// One column of a [`TableRef`].
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnRef {
    /// Column name (exact, as stored in the catalog).
    pub name: String,
    /// `pg_attribute.attnum`.
    pub attnum: i16,
    /// `Some` if the column is encrypted.
    pub encrypted: Option<EncryptedColumnInfo>,
}

/// Metadata of an encrypted column: everything the proxy needs to encrypt a value for it.
#[derive(Clone, Debug, PartialEq)]
pub struct EncryptedColumnInfo {
    /// Id of the column in `pgseal.columns` (selects its keys).
    pub column_id: u32,
    /// `schema.table.column`, used in error messages.
    pub qualified_name: String,
    /// The type clients see and send.
    pub logical_type: LogicalType,
    /// Whether the column carries a blind index (equality search).
    pub searchable: bool,
}

/// The analysis of a whole statement text: one plan per statement, in text order.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// One entry per statement in the text.
    pub statements: Vec<StatementPlan>,
}

impl Analysis {
    /// Whether any statement touches an encrypted column (if not, the whole text passes
    /// through untouched).
    pub fn touches_encrypted(&self) -> bool {
        self.statements.iter().any(|s| s.touches_encrypted)
    }

    /// Whether the text must be rewritten before it is sent: a literal to encrypt, a search to
    /// turn into a blind-index comparison, or a fixed rewrite. A text that only reads
    /// encrypted columns is sent as it is.
    pub fn rewrites_text(&self) -> bool {
        self.statements
            .iter()
            .any(|s| !s.literals.is_empty() || !s.searches.is_empty() || !s.rewrites.is_empty())
    }

    /// Whether any statement changes the schema (the proxy reloads its catalog after it).
    pub fn invalidates_schema(&self) -> bool {
        self.statements.iter().any(|s| s.invalidates_schema)
    }
}

/// What kind of statement a [`StatementPlan`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatementKind {
    /// `SELECT`, `VALUES`, `TABLE`.
    Select,
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `COPY`.
    Copy,
    /// Schema changes (`CREATE`, `ALTER`, `DROP`, `COMMENT`, `GRANT`, ...).
    Ddl,
    /// Session and transaction control, maintenance, `EXPLAIN`, `EXECUTE`, `FETCH`, ...
    Utility,
    /// Anything else (`CALL`, `DO`, `MERGE`, text that does not parse, ...).
    Other,
}

/// The plan for one statement of the text.
#[derive(Clone, Debug)]
pub struct StatementPlan {
    /// Byte range of this statement in the text (first token to last token, without the
    /// terminating `;`).
    pub span: Range<usize>,
    /// The kind of statement.
    pub kind: StatementKind,
    /// `false`: the statement refers to no relation with encrypted columns and passes through
    /// untouched.
    pub touches_encrypted: bool,
    /// `$n` parameters that carry a value for an encrypted column, in order of first use.
    pub params: Vec<ParamUse>,
    /// Literals to replace in the text, in text order.
    pub literals: Vec<LiteralUse>,
    /// DDL: the proxy reloads its catalog after this statement.
    pub invalidates_schema: bool,
    /// DDL: relations (unqualified, as PostgreSQL folds them) whose encrypted columns this
    /// statement declares, renames or moves. Until the statement's transaction ends, pass them
    /// to later analyses through [`Catalog::uncommitted_encrypted`] (later statements of the
    /// same text already see them).
    pub declares_encrypted: Vec<String>,
    /// Equality predicates on searchable encrypted columns, in text order (planned only with
    /// [`AnalyzeOptions::equality_search`]): the proxy replaces each whole predicate with a
    /// blind-index comparison ([`SearchUse`]).
    pub searches: Vec<SearchUse>,
    /// Text replacements that do not depend on keys or values, in text order: a searchable
    /// column in `CREATE INDEX` or an `ON CONFLICT` arbiter becomes its blind index
    /// (`(pgseal.blind_index(email))`). Apply them with the literal and search replacements.
    pub rewrites: Vec<(Range<usize>, String)>,
    /// The highest `$n` the statement's text refers to (0: none). With the parameter types a
    /// `Parse` declares, this gives the number of parameters the server expects from the
    /// client; parameters the proxy adds for search terms are numbered after it.
    pub max_param: u16,
}

impl StatementPlan {
    /// Moves every byte span of the plan by `offset`: for a plan of a statement analysed on
    /// its own that lies at `offset` in a longer text.
    pub fn offset_by(&mut self, offset: usize) {
        let shift = |r: &mut Range<usize>| {
            *r = r.start.saturating_add(offset)..r.end.saturating_add(offset);
        };
        shift(&mut self.span);
        for literal in &mut self.literals {
            shift(&mut literal.span);
        }
        for search in &mut self.searches {
            shift(&mut search.span);
            shift(&mut search.column_span);
            search.term_spans.iter_mut().for_each(shift);
        }
        for (span, _) in &mut self.rewrites {
            shift(span);
        }
    }

    /// The parameter use for `$number`, if it carries a value for an encrypted column.
    pub fn param(&self, number: u16) -> Option<&ParamUse> {
        self.params.iter().find(|p| p.number == number)
    }
}

/// How a value is used for its encrypted column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueRole {
    /// The value is stored in the column: encrypt it (with its blind index if searchable).
    Store,
    /// The value is compared for equality with the column: produce its blind index
    /// (planned only with [`AnalyzeOptions::equality_search`]).
    SearchTerm,
}

/// An equality predicate on a searchable encrypted column: `col = v`, `v = col`, `col <> v`,
/// `col IN (v, ...)`, `col NOT IN (v, ...)`, where each `v` is a `$n`, a literal or `NULL`.
///
/// The proxy replaces [`span`](Self::span) with
/// `(pgseal.blind_index(<column_text>) = ANY(<terms>))` (wrapped in `NOT (...)` when
/// [`negated`](Self::negated)), where `<terms>` is a `bytea[]` holding the blind index of every
/// value under every non-retired index key version of the column, and `NULL` for a `NULL`
/// value. SQL `NULL` semantics are kept exactly: `x = ANY(array)` is `NULL` when nothing
/// matches and the array holds a `NULL`, as `x IN (..., NULL)` is.
#[derive(Clone, PartialEq)]
pub struct SearchUse {
    /// Byte span of the whole predicate (column, operator and values): replace exactly this.
    pub span: Range<usize>,
    /// Byte span of the column reference as written (`email`, `u.email`).
    pub column_span: Range<usize>,
    /// The searched column.
    pub column: EncryptedColumnInfo,
    /// The values compared with the column, in text order.
    pub terms: Vec<SearchValue>,
    /// Byte span of each of [`terms`](Self::terms) as written (a literal with its sign and
    /// cast), in the same order.
    pub term_spans: Vec<Range<usize>>,
    /// `<>` and `NOT IN`.
    pub negated: bool,
    /// The predicate decides which rows an `UPDATE` or `DELETE` changes (a false positive of a
    /// truncated blind index would change a row it should not).
    pub modifies: bool,
}

impl fmt::Debug for SearchUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchUse")
            .field("span", &self.span)
            .field("column_span", &self.column_span)
            .field("column", &self.column)
            .field("terms", &self.terms)
            .field("term_spans", &self.term_spans)
            .field("negated", &self.negated)
            .field("modifies", &self.modifies)
            .finish()
    }
}

/// One value an encrypted column is compared with in a [`SearchUse`].
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum SearchValue {
    /// `$n`.
    Param(u16),
    /// A literal (plaintext; `Debug` redacts it). [`Literal::Null`] stands for `NULL`.
    Literal(Literal),
}

impl fmt::Debug for SearchValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchValue::Param(n) => write!(f, "Param({n})"),
            SearchValue::Literal(l) => write!(f, "Literal({l:?})"),
        }
    }
}

/// A `$n` parameter carrying a value for an encrypted column.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamUse {
    /// Parameter number (1-based, as in `$1`).
    pub number: u16,
    /// The column the value is for.
    pub column: EncryptedColumnInfo,
    /// How the value is used.
    pub role: ValueRole,
}

/// The value of a literal as written in the SQL text. This is plaintext: its `Debug` output is
/// redacted.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Literal {
    /// A string constant, SQL-unescaped (`'it''s'`, `E'\n'`, `$$...$$`, `U&'...'`).
    Text(String),
    /// A numeric constant in PostgreSQL's canonical decimal form (sign included: `-5`, `1.50`).
    Number(String),
    /// `TRUE` or `FALSE`.
    Bool(bool),
    /// `NULL` (possibly cast: `NULL::date`). Replace it with `NULL`; it is never encrypted.
    Null,
}

impl fmt::Debug for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(_) => f.write_str("Text(<redacted>)"),
            Literal::Number(_) => f.write_str("Number(<redacted>)"),
            Literal::Bool(_) => f.write_str("Bool(<redacted>)"),
            Literal::Null => f.write_str("Null"),
        }
    }
}

/// A literal in the text carrying a value for an encrypted column.
#[derive(Clone, PartialEq)]
pub struct LiteralUse {
    /// Byte span of the whole literal expression, cast included (`'2024-01-01'::date`,
    /// `CAST('x' AS text)`, `date '2024-01-01'`, `-5`): replace exactly this range.
    pub span: Range<usize>,
    /// The value as written. Plaintext.
    pub value: Literal,
    /// The column the value is for.
    pub column: EncryptedColumnInfo,
    /// How the value is used.
    pub role: ValueRole,
}

impl fmt::Debug for LiteralUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiteralUse")
            .field("span", &self.span)
            .field("value", &format_args!("<redacted>"))
            .field("column", &self.column)
            .field("role", &self.role)
            .finish()
    }
}

/// Analyse every statement of `sql` against `catalog`.
///
/// Returns one [`StatementPlan`] per statement, or the first refusal. Text that does not parse
/// passes through as a single [`StatementKind::Other`] plan (PostgreSQL reports the syntax
/// error) unless one of its tokens names a relation with encrypted columns; then it is refused.
///
/// libpg_query and this analysis recurse deeply on nested SQL: see the crate documentation on
/// stack depth.
pub fn analyze(sql: &str, catalog: &dyn Catalog) -> Result<Analysis, SqlError> {
    analyze::analyze(sql, catalog, AnalyzeOptions::default())
}

/// [`analyze`] with options.
pub fn analyze_with(
    sql: &str,
    catalog: &dyn Catalog,
    options: AnalyzeOptions,
) -> Result<Analysis, SqlError> {
    analyze::analyze(sql, catalog, options)
}

/// Features the caller supports beyond the default analysis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnalyzeOptions {
    /// Plan equality predicates on searchable columns (with a type that has equality, see
    /// [`LogicalType::supports_equality`]) as [`SearchUse`]s with [`ValueRole::SearchTerm`]
    /// parameter uses, instead of refusing them, and index columns of `CREATE INDEX` and
    /// `ON CONFLICT` by their blind index ([`StatementPlan::rewrites`]). Only a caller that
    /// replaces each [`SearchUse`] with a blind-index comparison may turn this on. A parameter
    /// may then appear twice in [`StatementPlan::params`], once per role (`UPDATE t SET enc =
    /// $1 WHERE enc = $1`), and be a search term for several columns. Off by default.
    pub equality_search: bool,
}

/// Splice `replacements` (byte range in `sql`, new text) into `sql`, keeping everything else
/// byte-identical. Replacements may come in any order. `None` if a range overlaps another,
/// lies outside `sql` or not on a character boundary (ranges from [`LiteralUse::span`],
/// [`SearchUse::span`] and [`StatementPlan::rewrites`] never do): a replacement left out could
/// leave a plaintext value in the text, so the caller must not send it.
pub fn rewrite(sql: &str, replacements: &[(Range<usize>, String)]) -> Option<String> {
    let mut sorted: Vec<&(Range<usize>, String)> = replacements.iter().collect();
    sorted.sort_by_key(|(range, _)| (range.start, range.end));
    let extra: usize = sorted.iter().map(|(_, text)| text.len()).sum();
    let mut out = String::with_capacity(sql.len() + extra);
    let mut copied = 0;
    for (range, text) in sorted {
        let valid = range.start >= copied
            && range.start <= range.end
            && range.end <= sql.len()
            && sql.is_char_boundary(range.start)
            && sql.is_char_boundary(range.end);
        if !valid {
            return None;
        }
        out.push_str(&sql[copied..range.start]);
        out.push_str(text);
        copied = range.end;
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_splices_in_any_order_and_keeps_the_rest() {
        let sql = "INSERT INTO t VALUES ('a', 'bb')";
        let out = rewrite(sql, &[(27..31, "$2".into()), (22..25, "X".into())]);
        assert_eq!(out.as_deref(), Some("INSERT INTO t VALUES (X, $2)"));
    }

    #[test]
    fn rewrite_refuses_overlapping_and_out_of_range() {
        let sql = "abcdef";
        assert_eq!(
            rewrite(sql, &[(1..3, "X".into()), (2..4, "Y".into())]),
            None
        );
        assert_eq!(
            rewrite(sql, &[(1..3, "X".into()), (5..99, "Z".into())]),
            None
        );
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 3..2;
        assert_eq!(rewrite(sql, &[(reversed, "X".into())]), None);
        assert_eq!(
            rewrite(sql, &[(1..3, "X".into()), (3..4, "Y".into())]).as_deref(),
            Some("aXYef")
        );
        assert_eq!(rewrite(sql, &[]).as_deref(), Some(sql));
    }

    #[test]
    fn rewrite_refuses_non_char_boundary() {
        let sql = "é'x'";
        assert_eq!(rewrite(sql, &[(1..3, "Z".into())]), None);
    }

    #[test]
    fn literal_debug_is_redacted() {
        let lit = LiteralUse {
            span: 0..5,
            value: Literal::Text("secret@example.com".into()),
            column: EncryptedColumnInfo {
                column_id: 1,
                qualified_name: "public.users.email".into(),
                logical_type: LogicalType::Text,
                searchable: true,
            },
            role: ValueRole::Store,
        };
        let shown = format!("{lit:?} {:?}", lit.value);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
