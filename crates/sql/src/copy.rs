//! Analysis of `COPY` statements on relations with encrypted columns.
//!
//! The proxy carries `COPY ... FROM STDIN` and `COPY ... TO STDOUT` itself: it parses each row in
//! the statement's format, seals (or opens) the fields of encrypted columns and passes every
//! other field through byte for byte. For that it needs, per statement, a [`CopyPlan`]: the
//! direction, the format and its options (delimiter, `NULL` string, quote, escape, header,
//! `FORCE_*` lists), and for each copied field which column it is and whether it is encrypted.
//!
//! What is refused on a relation with encrypted columns (fail closed):
//!
//! * `COPY ... TO 'file'`, `FROM 'file'` and `PROGRAM`: the server would write ciphertext to, or
//!   read plaintext from, somewhere the proxy never sees ([`Reason::Copy`]);
//! * `COPY ... FROM ... WHERE` (the condition could read an encrypted column);
//! * an `ENCODING` other than UTF-8, and options this version does not know;
//! * `COPY (query) TO STDOUT` whose output columns cannot all be traced to a column of a table or
//!   view named in `FROM` (set operations, `WITH`, `VALUES`, subqueries or functions in `FROM`
//!   from which an output column might come, `*` over a `JOIN ... USING`). The query itself is
//!   analysed like a `SELECT` sent to the client, so it cannot compute on encrypted columns.

use pg_query::protobuf::{self as pb};
use pg_query::NodeEnum;

use crate::error::{Reason, SqlError};
use crate::scan::mentions_in_text;
use crate::{Catalog, EncryptedColumnInfo, TableRef};

/// Which way a `COPY` moves rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyDirection {
    /// `COPY ... FROM STDIN`: the client sends rows.
    In,
    /// `COPY ... TO STDOUT`: the server sends rows.
    Out,
}

/// The data format of a `COPY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's text format (backslash escapes, `\N` for `NULL` by default).
    Text,
    /// CSV.
    Csv,
    /// PostgreSQL's binary `COPY` format.
    Binary,
}

/// The format options of a `COPY`, with PostgreSQL's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOptions {
    /// The format.
    pub format: CopyFormat,
    /// Field delimiter (tab for text, `,` for CSV).
    pub delimiter: u8,
    /// The string that means `NULL` (`\N` for text, empty for CSV).
    pub null: String,
    /// CSV quote character (`"`).
    pub quote: u8,
    /// CSV escape character (the quote character by default).
    pub escape: u8,
    /// Whether the first line is a header line (`HEADER` or `HEADER MATCH`).
    pub header: bool,
}

/// One field of each copied row.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyColumn {
    /// The column's name (for error contexts).
    pub name: String,
    /// OID of the relation the value comes from or goes to (0: unknown, never encrypted).
    pub table_oid: u32,
    /// Attribute number in that relation (0: unknown).
    pub attnum: i16,
    /// `Some` if the field is a value of an encrypted column.
    pub encrypted: Option<EncryptedColumnInfo>,
    /// CSV `FORCE_QUOTE` applies to this column (output).
    pub force_quote: bool,
    /// CSV `FORCE_NOT_NULL` applies to this column (input).
    pub force_not_null: bool,
    /// CSV `FORCE_NULL` applies to this column (input).
    pub force_null: bool,
}

/// How the proxy carries one `COPY` statement that touches encrypted columns.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyPlan {
    /// Which way rows move.
    pub direction: CopyDirection,
    /// The relation as PostgreSQL names it in error contexts (`users`), or `query` for
    /// `COPY (query) TO`.
    pub relation: String,
    /// The fields of each row, in order.
    pub columns: Vec<CopyColumn>,
    /// Format and options.
    pub options: CopyOptions,
}

impl CopyPlan {
    /// Whether any field is encrypted.
    pub fn has_encrypted(&self) -> bool {
        self.columns.iter().any(|c| c.encrypted.is_some())
    }
}

/// The [`CopyPlan`] of `sql` if it is a single `COPY` statement that touches a relation with
/// encrypted columns; `None` for anything else (which the proxy handles as usual).
///
/// # Errors
/// A [`SqlError`] when the `COPY` must be refused (see the module documentation).
pub fn analyze_copy(sql: &str, catalog: &dyn Catalog) -> Result<Option<CopyPlan>, SqlError> {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return Ok(None);
    };
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return Ok(None);
    };
    match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::CopyStmt(copy)) => plan(copy, catalog, mentions_in_text(sql, catalog, 0)),
        _ => Ok(None),
    }
}

/// The plan of one parsed `COPY`, or `None` if it touches no encrypted column. `touched` is
/// the first relation with encrypted columns the statement may refer to (by resolution or by
/// name): a `COPY (query)` that names one must be fully traced or is refused.
pub(crate) fn plan(
    copy: &pb::CopyStmt,
    catalog: &dyn Catalog,
    touched: Option<String>,
) -> Result<Option<CopyPlan>, SqlError> {
    let direction = if copy.is_from {
        CopyDirection::In
    } else {
        CopyDirection::Out
    };
    let (relation, table_name, mut columns) = match (&copy.relation, copy.query.as_deref()) {
        (Some(rv), _) => {
            let schema = (!rv.schemaname.is_empty()).then_some(rv.schemaname.as_str());
            let Some(table) = catalog.resolve_table(schema, &rv.relname) else {
                return Ok(None);
            };
            if !table.has_encrypted_columns() {
                return Ok(None);
            }
            let columns = table_columns(&table, &copy.attlist)?;
            (table.name.clone(), qualified(&table), columns)
        }
        (None, Some(query)) => {
            let Some(NodeEnum::SelectStmt(select)) = query.node.as_ref() else {
                // INSERT/UPDATE/DELETE ... RETURNING: analysed by the caller like any
                // statement; its output has no traceable origin here.
                return refuse_if(
                    touched,
                    "COPY (INSERT/UPDATE/DELETE ... RETURNING) TO STDOUT",
                );
            };
            let Some(table) = touched else {
                return Ok(None);
            };
            match query_columns(select, catalog, table)? {
                Some((table, columns)) => ("query".to_owned(), table, columns),
                None => return Ok(None),
            }
        }
        (None, None) => return Ok(None),
    };
    if !columns.iter().any(|c| c.encrypted.is_some()) {
        return Ok(None);
    }
    if !copy.filename.is_empty() || copy.is_program {
        return Err(SqlError::EncryptedTable {
            table: table_name,
            reason: Reason::Copy,
        });
    }
    if copy.where_clause.is_some() {
        return Err(unsupported(&table_name, "COPY ... FROM ... WHERE"));
    }
    let options = options(&copy.options, &mut columns, &table_name)?;
    Ok(Some(CopyPlan {
        direction,
        relation,
        columns,
        options,
    }))
}

fn refuse_if(table: Option<String>, what: &str) -> Result<Option<CopyPlan>, SqlError> {
    match table {
        Some(table) => Err(unsupported(&table, what)),
        None => Ok(None),
    }
}

fn unsupported(table: &str, what: &str) -> SqlError {
    SqlError::EncryptedTable {
        table: table.to_owned(),
        reason: Reason::CopyUnsupported {
            what: what.to_owned(),
        },
    }
}

fn qualified(table: &TableRef) -> String {
    format!("{}.{}", table.schema, table.name)
}

fn string_value(n: &pb::Node) -> Option<&str> {
    match n.node.as_ref() {
        Some(NodeEnum::String(s)) => Some(&s.sval),
        _ => None,
    }
}

fn column(table: &TableRef, c: &crate::ColumnRef) -> CopyColumn {
    CopyColumn {
        name: c.name.clone(),
        table_oid: table.oid,
        attnum: c.attnum,
        encrypted: c.encrypted.clone(),
        force_quote: false,
        force_not_null: false,
        force_null: false,
    }
}

fn table_columns(table: &TableRef, attlist: &[pb::Node]) -> Result<Vec<CopyColumn>, SqlError> {
    if attlist.is_empty() {
        return Ok(table.columns.iter().map(|c| column(table, c)).collect());
    }
    let mut out = Vec::with_capacity(attlist.len());
    for item in attlist {
        let Some(name) = string_value(item) else {
            return Err(unsupported(&qualified(table), "this COPY column list"));
        };
        match table.columns.iter().find(|c| c.name == name) {
            Some(c) => out.push(column(table, c)),
            // The server refuses an unknown column before any row moves.
            None => out.push(CopyColumn {
                name: name.to_owned(),
                table_oid: 0,
                attnum: 0,
                encrypted: None,
                force_quote: false,
                force_not_null: false,
                force_null: false,
            }),
        }
    }
    Ok(out)
}

/// One byte from a single-character option, as PostgreSQL requires.
fn single_byte(value: &str, option: &str, table: &str) -> Result<u8, SqlError> {
    match value.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(unsupported(
            table,
            &format!("COPY option {option} other than a single one-byte character"),
        )),
    }
}

fn arg_text(arg: Option<&pb::Node>) -> Option<String> {
    match arg.and_then(|a| a.node.as_ref()) {
        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
        Some(NodeEnum::Integer(i)) => Some(i.ival.to_string()),
        Some(NodeEnum::Boolean(b)) => Some(if b.boolval { "true" } else { "false" }.to_owned()),
        _ => None,
    }
}

fn truthy(arg: Option<&pb::Node>) -> Option<bool> {
    let Some(text) = arg_text(arg) else {
        // `HEADER` alone.
        return arg.is_none().then_some(true);
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" | "match" => Some(true),
        "false" | "off" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Marks the columns a `FORCE_*` list names; `*` marks all.
fn force_list(
    arg: Option<&pb::Node>,
    columns: &mut [CopyColumn],
    set: fn(&mut CopyColumn),
    option: &str,
    table: &str,
) -> Result<(), SqlError> {
    match arg.and_then(|a| a.node.as_ref()) {
        Some(NodeEnum::AStar(_)) => columns.iter_mut().for_each(set),
        Some(NodeEnum::List(list)) => {
            for item in &list.items {
                let Some(name) = string_value(item) else {
                    return Err(unsupported(table, &format!("this {option} list")));
                };
                // A name outside the copied columns is refused by the server.
                columns.iter_mut().filter(|c| c.name == name).for_each(set);
            }
        }
        _ => return Err(unsupported(table, &format!("this {option} list"))),
    }
    Ok(())
}

fn options(
    list: &[pb::Node],
    columns: &mut [CopyColumn],
    table: &str,
) -> Result<CopyOptions, SqlError> {
    let mut format = CopyFormat::Text;
    let mut delimiter = None;
    let mut null = None;
    let mut quote = None;
    let mut escape = None;
    let mut header = false;
    let mut forces = Vec::new();
    for item in list {
        let Some(NodeEnum::DefElem(def)) = item.node.as_ref() else {
            return Err(unsupported(table, "this COPY option"));
        };
        let arg = def.arg.as_deref();
        let text = || {
            arg_text(arg).ok_or_else(|| {
                unsupported(
                    table,
                    &format!("COPY option {} without a value", def.defname),
                )
            })
        };
        match def.defname.as_str() {
            "format" => {
                format = match text()?.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    // The server refuses it.
                    _ => CopyFormat::Text,
                }
            }
            "delimiter" => delimiter = Some(single_byte(&text()?, "DELIMITER", table)?),
            "null" => null = Some(text()?),
            "quote" => quote = Some(single_byte(&text()?, "QUOTE", table)?),
            "escape" => escape = Some(single_byte(&text()?, "ESCAPE", table)?),
            "header" => {
                header = truthy(arg).ok_or_else(|| unsupported(table, "this HEADER value"))?;
            }
            "encoding" => {
                let name = text()?.to_ascii_lowercase().replace(['-', '_'], "");
                if name != "utf8" && name != "unicode" {
                    return Err(unsupported(table, "COPY ... ENCODING other than UTF8"));
                }
            }
            "freeze" => {}
            "force_quote" | "force_not_null" | "force_null" => {
                forces.push((def.defname.as_str(), arg))
            }
            other => {
                return Err(unsupported(table, &format!("COPY option {other}")));
            }
        }
    }
    for (option, arg) in forces {
        let set: fn(&mut CopyColumn) = match option {
            "force_quote" => |c| c.force_quote = true,
            "force_not_null" => |c| c.force_not_null = true,
            _ => |c| c.force_null = true,
        };
        force_list(arg, columns, set, &option.to_ascii_uppercase(), table)?;
    }
    let csv = format == CopyFormat::Csv;
    let quote = quote.unwrap_or(b'"');
    Ok(CopyOptions {
        format,
        delimiter: delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
        null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".to_owned() }),
        quote,
        escape: escape.unwrap_or(quote),
        header,
    })
}

/// A relation in the `FROM` of a `COPY (query)`.
struct FromRel {
    /// The name it is referred to by (alias or relation name).
    refname: String,
    /// Its schema, for `schema.table.column` (unaliased relations only).
    schema: Option<String>,
    kind: RelKind,
}

enum RelKind {
    /// A table or view the catalog knows.
    Known(TableRef),
    /// A relation the catalog does not know (system catalogs): never encrypted.
    Plain,
    /// A subquery, function, ...: its columns cannot be traced.
    Opaque,
}

/// The output columns of `COPY (SELECT ...) TO`, traced to their relations.
fn query_columns(
    select: &pb::SelectStmt,
    catalog: &dyn Catalog,
    table: String,
) -> Result<Option<(String, Vec<CopyColumn>)>, SqlError> {
    let mut rels = Vec::new();
    let mut merged = false;
    for item in &select.from_clause {
        from_item(item, catalog, &mut rels, &mut merged);
    }
    let simple = select.op == pb::SetOperation::SetopNone as i32
        && select.with_clause.is_none()
        && select.values_lists.is_empty();
    if !simple {
        return Err(unsupported(
            &table,
            "COPY (query) TO STDOUT with WITH, VALUES or a set operation",
        ));
    }
    let untraceable = |what: &str| {
        unsupported(
            &table,
            &format!(
                "COPY (query) TO STDOUT where {what}; select columns of tables and views named \
                 in FROM"
            ),
        )
    };
    let mut columns = Vec::new();
    for target in &select.target_list {
        let Some(NodeEnum::ResTarget(res)) = target.node.as_ref() else {
            return Err(untraceable("an output column is not a plain target"));
        };
        let Some(NodeEnum::ColumnRef(cref)) = res.val.as_deref().and_then(|v| v.node.as_ref())
        else {
            // Not a column reference: the query analysis guarantees it is no encrypted value.
            columns.push(plain_column(&res.name));
            continue;
        };
        let mut names = Vec::new();
        let mut star = false;
        for field in &cref.fields {
            match field.node.as_ref() {
                Some(NodeEnum::String(s)) => names.push(s.sval.as_str()),
                Some(NodeEnum::AStar(_)) => star = true,
                _ => return Err(untraceable("an output column is not a plain target")),
            }
        }
        if star {
            let chosen: Vec<&FromRel> = match names.as_slice() {
                [] => {
                    if merged {
                        return Err(untraceable("* expands a JOIN ... USING or NATURAL JOIN"));
                    }
                    rels.iter().collect()
                }
                qualifier => match find_rel(&rels, qualifier) {
                    Some(rel) => vec![rel],
                    None => return Err(untraceable("a relation in FROM cannot be traced")),
                },
            };
            for rel in chosen {
                match &rel.kind {
                    RelKind::Known(t) => columns.extend(t.columns.iter().map(|c| column(t, c))),
                    RelKind::Plain => {
                        return Err(untraceable("* expands a relation pgseal does not know"))
                    }
                    RelKind::Opaque => {
                        return Err(untraceable("* expands a subquery or function in FROM"))
                    }
                }
            }
            continue;
        }
        let (qualifier, name) = match names.split_last() {
            Some((name, qualifier)) => (qualifier, *name),
            None => return Err(untraceable("an output column is not a plain target")),
        };
        let mut col = if qualifier.is_empty() {
            let known: Vec<CopyColumn> = rels
                .iter()
                .filter_map(|r| match &r.kind {
                    RelKind::Known(t) => t
                        .columns
                        .iter()
                        .find(|c| c.name == name)
                        .map(|c| column(t, c)),
                    _ => None,
                })
                .collect();
            match known.as_slice() {
                [one] => one.clone(),
                [] if rels.iter().any(|r| matches!(r.kind, RelKind::Opaque)) => {
                    return Err(untraceable(&format!(
                        "column {name} may come from a subquery or function in FROM"
                    )))
                }
                [] => plain_column(name),
                // PostgreSQL reports the ambiguity.
                _ => plain_column(name),
            }
        } else {
            match find_rel(&rels, qualifier).map(|r| &r.kind) {
                Some(RelKind::Known(t)) => match t.columns.iter().find(|c| c.name == name) {
                    Some(c) => column(t, c),
                    None => plain_column(name),
                },
                Some(RelKind::Plain) => plain_column(name),
                Some(RelKind::Opaque) | None => {
                    return Err(untraceable(&format!(
                        "column {name} comes from a relation pgseal cannot trace"
                    )))
                }
            }
        };
        if !res.name.is_empty() {
            col.name.clone_from(&res.name);
        }
        columns.push(col);
    }
    Ok(Some((table, columns)))
}

fn plain_column(name: &str) -> CopyColumn {
    CopyColumn {
        name: name.to_owned(),
        table_oid: 0,
        attnum: 0,
        encrypted: None,
        force_quote: false,
        force_not_null: false,
        force_null: false,
    }
}

fn find_rel<'r>(rels: &'r [FromRel], qualifier: &[&str]) -> Option<&'r FromRel> {
    match qualifier {
        [name] => rels.iter().find(|r| r.refname == *name),
        [schema, name] | [_, schema, name] => rels
            .iter()
            .find(|r| r.refname == *name && r.schema.as_deref() == Some(*schema)),
        _ => None,
    }
}

fn from_item(item: &pb::Node, catalog: &dyn Catalog, rels: &mut Vec<FromRel>, merged: &mut bool) {
    match item.node.as_ref() {
        Some(NodeEnum::RangeVar(rv)) => {
            let schema = (!rv.schemaname.is_empty()).then_some(rv.schemaname.as_str());
            let alias = rv.alias.as_ref();
            let kind = match catalog.resolve_table(schema, &rv.relname) {
                // Column aliases rename columns: not traced.
                Some(_) if alias.is_some_and(|a| !a.colnames.is_empty()) => RelKind::Opaque,
                Some(table) => RelKind::Known(table),
                None => RelKind::Plain,
            };
            let (refname, schema) = match alias {
                Some(a) => (a.aliasname.clone(), None),
                None => {
                    let schema = match &kind {
                        RelKind::Known(t) => Some(t.schema.clone()),
                        _ => schema.map(str::to_owned),
                    };
                    (rv.relname.clone(), schema)
                }
            };
            rels.push(FromRel {
                refname,
                schema,
                kind,
            });
        }
        Some(NodeEnum::JoinExpr(join)) => {
            if join.is_natural || !join.using_clause.is_empty() {
                *merged = true;
            }
            if join.alias.is_some() {
                // A join alias hides the relations' names: treat its columns as untraceable.
                rels.push(FromRel {
                    refname: String::new(),
                    schema: None,
                    kind: RelKind::Opaque,
                });
                *merged = true;
                return;
            }
            for side in [&join.larg, &join.rarg].into_iter().flatten() {
                from_item(side, catalog, rels, merged);
            }
        }
        _ => rels.push(FromRel {
            refname: match item.node.as_ref() {
                Some(NodeEnum::RangeSubselect(s)) => s
                    .alias
                    .as_ref()
                    .map(|a| a.aliasname.clone())
                    .unwrap_or_default(),
                Some(NodeEnum::RangeFunction(f)) => f
                    .alias
                    .as_ref()
                    .map(|a| a.aliasname.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            },
            schema: None,
            kind: RelKind::Opaque,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analyze, ColumnRef, LogicalType, StatementKind};

    struct Users;

    fn enc(column: &str, ty: LogicalType) -> Option<EncryptedColumnInfo> {
        Some(EncryptedColumnInfo {
            column_id: 7,
            qualified_name: format!("public.users.{column}"),
            logical_type: ty,
            searchable: false,
        })
    }

    impl Catalog for Users {
        fn resolve_table(&self, schema: Option<&str>, name: &str) -> Option<TableRef> {
            if schema.unwrap_or("public") != "public" {
                return None;
            }
            let col = |name: &str, attnum, encrypted| ColumnRef {
                name: name.into(),
                attnum,
                encrypted,
            };
            match name {
                "users" => Some(TableRef {
                    oid: 100,
                    schema: "public".into(),
                    name: "users".into(),
                    columns: vec![
                        col("id", 1, None),
                        col("email", 2, enc("email", LogicalType::Text)),
                        col("born", 3, enc("born", LogicalType::Date)),
                    ],
                }),
                "plain" => Some(TableRef {
                    oid: 200,
                    schema: "public".into(),
                    name: "plain".into(),
                    columns: vec![col("id", 1, None), col("email", 2, None)],
                }),
                _ => None,
            }
        }

        fn is_encrypted_table_name(&self, name: &str) -> bool {
            name == "users"
        }
    }

    fn plan_of(sql: &str) -> Result<Option<CopyPlan>, SqlError> {
        analyze_copy(sql, &Users)
    }

    fn names(plan: &CopyPlan) -> Vec<(String, bool)> {
        plan.columns
            .iter()
            .map(|c| (c.name.clone(), c.encrypted.is_some()))
            .collect()
    }

    #[test]
    fn text_defaults_and_column_lists() {
        let plan = plan_of("COPY users FROM STDIN").unwrap().unwrap();
        assert_eq!(plan.direction, CopyDirection::In);
        assert_eq!(plan.relation, "users");
        assert_eq!(plan.options.format, CopyFormat::Text);
        assert_eq!(plan.options.delimiter, b'\t');
        assert_eq!(plan.options.null, "\\N");
        assert!(!plan.options.header);
        assert_eq!(
            names(&plan),
            [
                ("id".into(), false),
                ("email".into(), true),
                ("born".into(), true)
            ]
        );
        let plan = plan_of("COPY users (born, id) TO STDOUT").unwrap().unwrap();
        assert_eq!(plan.direction, CopyDirection::Out);
        assert_eq!(names(&plan), [("born".into(), true), ("id".into(), false)]);
        assert_eq!(plan.columns[0].attnum, 3);
        assert_eq!(plan.columns[0].table_oid, 100);
    }

    #[test]
    fn csv_options_old_and_new_syntax() {
        let plan = plan_of(
            "COPY users FROM STDIN WITH (FORMAT csv, HEADER match, DELIMITER ';', QUOTE '''', \
             ESCAPE '\\', NULL 'NULL', FORCE_NOT_NULL (email), FORCE_NULL (born))",
        )
        .unwrap()
        .unwrap();
        let o = &plan.options;
        assert_eq!(
            (
                o.format,
                o.header,
                o.delimiter,
                o.quote,
                o.escape,
                o.null.as_str()
            ),
            (CopyFormat::Csv, true, b';', b'\'', b'\\', "NULL")
        );
        assert!(plan.columns[1].force_not_null && !plan.columns[1].force_null);
        assert!(plan.columns[2].force_null && !plan.columns[2].force_not_null);
        let plan = plan_of("COPY users TO STDOUT CSV HEADER FORCE QUOTE *")
            .unwrap()
            .unwrap();
        assert_eq!(plan.options.format, CopyFormat::Csv);
        assert_eq!(
            (plan.options.delimiter, plan.options.null.as_str()),
            (b',', "")
        );
        assert!(plan.options.header);
        assert!(plan.columns.iter().all(|c| c.force_quote));
        let plan = plan_of("COPY users FROM STDIN BINARY").unwrap().unwrap();
        assert_eq!(plan.options.format, CopyFormat::Binary);
    }

    #[test]
    fn plain_tables_and_other_statements_have_no_plan() {
        assert!(plan_of("COPY plain FROM STDIN").unwrap().is_none());
        assert!(plan_of("COPY plain TO '/tmp/x'").unwrap().is_none());
        assert!(plan_of("COPY users (id) TO STDOUT").unwrap().is_none());
        assert!(plan_of("SELECT 1").unwrap().is_none());
        assert!(plan_of("COPY (SELECT id FROM users) TO STDOUT")
            .unwrap()
            .is_none());
    }

    #[test]
    fn server_files_programs_and_unknown_forms_are_refused() {
        for sql in [
            "COPY users TO '/tmp/x'",
            "COPY users FROM '/tmp/x'",
            "COPY users FROM PROGRAM 'cat'",
            "COPY (SELECT email FROM users) TO '/tmp/x'",
        ] {
            let refusal = plan_of(sql).unwrap_err();
            assert_eq!(refusal.reason(), Some(&Reason::Copy), "{sql}");
            assert_eq!(refusal.sqlstate(), "0A000");
        }
        for sql in [
            "COPY users FROM STDIN WHERE id > 1",
            "COPY users FROM STDIN WITH (ENCODING 'LATIN1')",
            "COPY users FROM STDIN WITH (DELIMITER '||')",
            "COPY (SELECT * FROM (SELECT email FROM users) s) TO STDOUT",
            "COPY (SELECT email FROM users UNION ALL SELECT email FROM users) TO STDOUT",
            "COPY (WITH w AS (SELECT email FROM users) SELECT email FROM w) TO STDOUT",
            "COPY (SELECT * FROM users JOIN plain USING (id)) TO STDOUT",
            "COPY (UPDATE users SET id = 1 RETURNING email) TO STDOUT",
        ] {
            let refusal = plan_of(sql).unwrap_err();
            assert!(
                matches!(refusal.reason(), Some(Reason::CopyUnsupported { .. })),
                "{sql}: {refusal}"
            );
        }
        assert!(plan_of("COPY users FROM STDIN WITH (ENCODING 'utf-8')").is_ok());
    }

    #[test]
    fn query_output_columns_are_traced_to_their_tables() {
        let plan = plan_of(
            "COPY (SELECT u.id, email AS e, 1 + 1, p.email, public.u.born FROM users u \
             JOIN plain p ON p.id = u.id) TO STDOUT (FORMAT csv)",
        );
        // `public.u.born`: an alias hides the schema; PostgreSQL refuses the reference.
        assert!(plan.is_err());
        let plan = plan_of(
            "COPY (SELECT u.id, u.email AS e, 1 + 1 AS two, p.email, born FROM users u \
             JOIN plain p ON p.id = u.id) TO STDOUT (FORMAT csv)",
        )
        .unwrap()
        .unwrap();
        assert_eq!(plan.relation, "query");
        assert_eq!(
            names(&plan),
            [
                ("id".into(), false),
                ("e".into(), true),
                ("two".into(), false),
                ("email".into(), false),
                ("born".into(), true)
            ]
        );
        let plan = plan_of("COPY (SELECT * FROM users, plain) TO STDOUT")
            .unwrap()
            .unwrap();
        assert_eq!(plan.columns.len(), 5);
        let plan = plan_of("COPY (SELECT p.*, users.born FROM plain p, users) TO STDOUT")
            .unwrap()
            .unwrap();
        assert_eq!(
            names(&plan),
            [
                ("id".into(), false),
                ("email".into(), false),
                ("born".into(), true)
            ]
        );
    }

    #[test]
    fn the_statement_analysis_accepts_and_marks_copy() {
        let analysis = analyze("COPY users FROM STDIN", &Users).unwrap();
        assert_eq!(analysis.statements[0].kind, StatementKind::Copy);
        assert!(analysis.statements[0].touches_encrypted);
        let refused = analyze("COPY users TO '/tmp/x'", &Users).unwrap_err();
        assert_eq!(refused.reason(), Some(&Reason::Copy));
        // The query of COPY (query) follows the SELECT rules.
        let refused = analyze("COPY (SELECT lower(email) FROM users) TO STDOUT", &Users);
        assert!(refused.is_err());
        let plain = analyze("COPY plain TO '/tmp/x'", &Users).unwrap();
        assert!(!plain.statements[0].touches_encrypted);
    }
}
