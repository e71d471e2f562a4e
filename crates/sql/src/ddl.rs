//! Schema changes that involve encrypted columns.
//!
//! The proxy encrypts values for the columns its catalog shows, and that catalog is read by
//! another connection: it shows a schema change only once the change has committed. Until
//! then, a value written to a column declared in the same transaction would reach the server
//! as plaintext, refused by the domain's `CHECK` only after PostgreSQL has logged the
//! statement (`log_min_error_statement` is `error` by default). Hence, besides the temporary
//! relations and `UNIQUE` constraints the proxy cannot carry:
//!
//! * a statement reports the relations whose encrypted columns it declares, renames or moves
//!   ([`StatementPlan::declares_encrypted`](crate::StatementPlan::declares_encrypted)); later
//!   statements of the same text, and of the same transaction through the caller's
//!   [`Catalog::uncommitted_encrypted`], treat them as *uncommitted*;
//! * a statement that names an uncommitted relation (anywhere, code bodies included) and
//!   carries a value (a constant or a `$n`), or is a `COPY`, is refused;
//! * expressions attached to an encrypted column are refused where PostgreSQL would evaluate
//!   them on ciphertext or keep a constant as plaintext in its catalog: only `DEFAULT NULL`,
//!   `CHECK (col IS [NOT] NULL)` and a `USING` without constants pass;
//! * arrays of pgseal types, and domains or composite types over them, are refused: the
//!   catalog recognises an encrypted column by its pgseal domain.

use pg_query::protobuf::{self as pb, AlterTableType, ConstrType, ObjectType};
use pg_query::NodeEnum;

use super::{boxed, node, string_value, Planner};
use crate::error::{Reason, SqlError};
use crate::{Catalog, TableRef};

/// What an expression attached to a column refers to, as far as these rules need it.
#[derive(Default)]
struct ExprRefs {
    /// An encrypted column used other than as the operand of `IS [NOT] NULL`.
    encrypted: Option<String>,
    /// A constant other than `NULL`.
    constant: bool,
    /// A node this walk does not know: it may hide either of the above.
    unknown: bool,
}

/// The relations named by earlier statements of the text or the session's open transaction,
/// as a [`Catalog`] for the shared name check (`Tokens::mentioned_encrypted_table`).
struct Uncommitted<'a> {
    catalog: &'a dyn Catalog,
    earlier: &'a [String],
}

impl Catalog for Uncommitted<'_> {
    fn resolve_table(&self, _schema: Option<&str>, _name: &str) -> Option<TableRef> {
        None
    }

    fn is_encrypted_table_name(&self, name: &str) -> bool {
        self.earlier.iter().any(|n| n == name)
            || self
                .catalog
                .uncommitted_encrypted()
                .iter()
                .any(|n| n == name)
    }
}

impl Planner<'_> {
    /// Refuses a statement that names a relation whose encrypted columns are not committed yet
    /// (declared in the session's open transaction, or by earlier statements of the same text)
    /// and carries a value.
    pub(super) fn uncommitted(&mut self, stmt: &NodeEnum) -> Result<(), SqlError> {
        if self.earlier.is_empty() && self.catalog.uncommitted_encrypted().is_empty() {
            return Ok(());
        }
        let is_copy = matches!(stmt, NodeEnum::CopyStmt(_));
        if !is_copy && !self.tokens.has_value(self.span.clone()) {
            return Ok(());
        }
        let names = self.uncommitted_names();
        match self
            .tokens
            .mentioned_encrypted_table(self.sql, self.span.clone(), &names, true)
        {
            Some(table) => Err(SqlError::EncryptedTable {
                table,
                reason: Reason::Uncommitted,
            }),
            None => Ok(()),
        }
    }

    fn is_uncommitted(&self, name: &str) -> bool {
        self.uncommitted_names().is_encrypted_table_name(name)
    }

    fn uncommitted_names(&self) -> Uncommitted<'_> {
        Uncommitted {
            catalog: self.catalog,
            earlier: self.earlier,
        }
    }

    /// Whether `rv` has encrypted columns, committed or not.
    fn encrypted_relation(&self, rv: &pb::RangeVar) -> bool {
        let schema = (!rv.schemaname.is_empty()).then_some(rv.schemaname.as_str());
        self.catalog
            .resolve_table(schema, &rv.relname)
            .is_some_and(|t| t.has_encrypted_columns())
            || self.catalog.is_encrypted_table_name(&rv.relname)
            || self.is_uncommitted(&rv.relname)
    }

    /// `CREATE [FOREIGN] TABLE`: the relations whose encrypted columns it declares.
    pub(super) fn create_table(&mut self, c: &pb::CreateStmt) -> Result<Vec<String>, SqlError> {
        let Some(relation) = c.relation.as_ref() else {
            return Ok(Vec::new());
        };
        let table = written(relation);
        let temporary_relation = relation.relpersistence == "t";
        let mut encrypted: Vec<String> = Vec::new();
        // A parent whose columns are not known yet (uncommitted): any column may be encrypted.
        let mut unknown_parent = false;
        let mut parents: Vec<&pb::RangeVar> = c
            .table_elts
            .iter()
            .filter_map(node)
            .filter_map(|elt| match elt {
                NodeEnum::TableLikeClause(like) => like.relation.as_ref(),
                _ => None,
            })
            .collect();
        parents.extend(
            c.inh_relations
                .iter()
                .filter_map(node)
                .filter_map(|n| match n {
                    NodeEnum::RangeVar(rv) => Some(rv),
                    _ => None,
                }),
        );
        for rv in parents {
            if !self.encrypted_relation(rv) {
                continue;
            }
            if temporary_relation {
                return Err(temporary(&rv.relname));
            }
            let schema = (!rv.schemaname.is_empty()).then_some(rv.schemaname.as_str());
            match self.catalog.resolve_table(schema, &rv.relname) {
                Some(parent) if parent.has_encrypted_columns() => encrypted.extend(
                    parent
                        .columns
                        .iter()
                        .filter(|c| c.encrypted.is_some())
                        .map(|c| c.name.clone()),
                ),
                _ => unknown_parent = true,
            }
        }
        for elt in c.table_elts.iter().filter_map(node) {
            if let NodeEnum::ColumnDef(d) = elt {
                if declares_pgseal(d.type_name.as_ref()) {
                    if temporary_relation {
                        return Err(temporary(&relation.relname));
                    }
                    encrypted.push(d.colname.clone());
                }
            }
        }
        let table_encrypted = !encrypted.is_empty() || unknown_parent;
        let is_encrypted = |name: &str| unknown_parent || encrypted.iter().any(|e| e == name);
        for elt in c.table_elts.iter().filter_map(node) {
            match elt {
                NodeEnum::ColumnDef(d) => {
                    column_def(&table, d, &is_encrypted, table_encrypted)?;
                }
                NodeEnum::Constraint(con) => {
                    if is_unique_constraint(con) {
                        if let Some(key) = constraint_keys(con).find(|k| is_encrypted(k)) {
                            return Err(unique_refusal(&table, key));
                        }
                    }
                    check_constraint(&table, "", con, &is_encrypted, table_encrypted)?;
                }
                _ => {}
            }
        }
        Ok(if !table_encrypted {
            Vec::new()
        } else {
            vec![relation.relname.clone()]
        })
    }

    /// `ALTER TABLE`: refuses what cannot hold on encrypted columns; the relations whose
    /// encrypted columns it declares.
    pub(super) fn alter_table(&mut self, a: &pb::AlterTableStmt) -> Result<Vec<String>, SqlError> {
        let Some(relation) = a.relation.as_ref() else {
            return Ok(Vec::new());
        };
        let table = written(relation);
        // Looked up without marking the statement as touching encrypted columns: ALTER TABLE
        // passes through unchanged.
        let schema = (!relation.schemaname.is_empty()).then_some(relation.schemaname.as_str());
        let known = self.catalog.resolve_table(schema, &relation.relname);
        let mut added: Vec<&str> = Vec::new();
        for cmd in a.cmds.iter().filter_map(node) {
            if let NodeEnum::AlterTableCmd(cmd) = cmd {
                if let Some(NodeEnum::ColumnDef(d)) = boxed(&cmd.def) {
                    let kind = AlterTableType::try_from(cmd.subtype);
                    if declares_pgseal(d.type_name.as_ref())
                        && matches!(kind, Ok(AlterTableType::AtAddColumn))
                    {
                        added.push(&d.colname);
                    }
                    if declares_pgseal(d.type_name.as_ref())
                        && matches!(kind, Ok(AlterTableType::AtAlterColumnType))
                    {
                        added.push(&cmd.name);
                    }
                }
            }
        }
        let table_encrypted = !added.is_empty()
            || known.as_ref().is_some_and(TableRef::has_encrypted_columns)
            || self.is_uncommitted(&relation.relname);
        let uncommitted = self.is_uncommitted(&relation.relname);
        let is_encrypted = |name: &str| {
            uncommitted
                || added.contains(&name)
                || known.as_ref().is_some_and(|t| {
                    t.columns
                        .iter()
                        .any(|c| c.name == name && c.encrypted.is_some())
                })
        };
        for cmd in a.cmds.iter().filter_map(node) {
            let NodeEnum::AlterTableCmd(cmd) = cmd else {
                continue;
            };
            let kind = AlterTableType::try_from(cmd.subtype);
            match (kind, boxed(&cmd.def)) {
                (Ok(AlterTableType::AtAddColumn), Some(NodeEnum::ColumnDef(d))) => {
                    column_def(&table, d, &is_encrypted, table_encrypted)?;
                }
                (Ok(AlterTableType::AtAlterColumnType), Some(NodeEnum::ColumnDef(d)))
                    if declares_pgseal(d.type_name.as_ref()) =>
                {
                    refuse_wrapped_type(&format!("{table}.{}", cmd.name), d.type_name.as_ref())?;
                    if let Some(using) = boxed(&d.raw_default) {
                        let refs = expr_refs(using, &|_| false);
                        if refs.constant || refs.unknown {
                            return Err(column_expression(&table, &cmd.name, "USING"));
                        }
                    }
                }
                (Ok(AlterTableType::AtColumnDefault), Some(default))
                    if is_encrypted(&cmd.name) && !is_null(default) =>
                {
                    return Err(column_expression(&table, &cmd.name, "DEFAULT"));
                }
                (Ok(AlterTableType::AtSetExpression), _) if is_encrypted(&cmd.name) => {
                    return Err(column_expression(&table, &cmd.name, "GENERATED"));
                }
                (Ok(AlterTableType::AtAddConstraint), Some(NodeEnum::Constraint(con))) => {
                    if is_unique_constraint(con) {
                        if let Some(key) = constraint_keys(con).find(|k| is_encrypted(k)) {
                            return Err(unique_refusal(&table, key));
                        }
                    }
                    check_constraint(&table, "", con, &is_encrypted, table_encrypted)?;
                }
                _ => {}
            }
        }
        Ok(if added.is_empty() {
            Vec::new()
        } else {
            vec![relation.relname.clone()]
        })
    }

    /// `ALTER ... RENAME`: renaming a relation with encrypted columns, or one of its columns,
    /// leaves the catalog with the old names until it commits.
    pub(super) fn rename(&mut self, r: &pb::RenameStmt) -> Vec<String> {
        let Some(relation) = r.relation.as_ref() else {
            return Vec::new();
        };
        if !self.encrypted_relation(relation) {
            return Vec::new();
        }
        let mut names = vec![relation.relname.clone()];
        let renames_relation = matches!(
            ObjectType::try_from(r.rename_type),
            Ok(ObjectType::ObjectTable
                | ObjectType::ObjectView
                | ObjectType::ObjectMatview
                | ObjectType::ObjectForeignTable)
        );
        if renames_relation && !r.newname.is_empty() {
            names.push(r.newname.clone());
        }
        names
    }

    /// `ALTER TABLE ... SET SCHEMA` of a relation with encrypted columns.
    pub(super) fn alter_schema(&mut self, a: &pb::AlterObjectSchemaStmt) -> Vec<String> {
        a.relation
            .as_ref()
            .filter(|rv| self.encrypted_relation(rv))
            .map(|rv| vec![rv.relname.clone()])
            .unwrap_or_default()
    }

    /// A view: it has encrypted columns when its query reads any, or reads an uncommitted
    /// relation.
    pub(super) fn view(&mut self, v: &pb::ViewStmt) -> Vec<String> {
        let Some(view) = v.view.as_ref() else {
            return Vec::new();
        };
        let names = self.uncommitted_names();
        let reads_uncommitted = self
            .tokens
            .mentioned_encrypted_table(self.sql, self.span.clone(), &names, false)
            .is_some();
        if self.encrypted_table.is_some() || reads_uncommitted {
            vec![view.relname.clone()]
        } else {
            Vec::new()
        }
    }
}

/// `CREATE DOMAIN ... AS pgseal.x` and `CREATE TYPE ... AS (a pgseal.x)`.
pub(super) fn wrapped_types(stmt: &NodeEnum) -> Result<(), SqlError> {
    match stmt {
        NodeEnum::CreateDomainStmt(d) if declares_pgseal(d.type_name.as_ref()) => {
            let name: Vec<&str> = d.domainname.iter().filter_map(string_value).collect();
            Err(SqlError::PgsealTypeUse {
                name: name.join("."),
                what: "a domain over a pgseal type".into(),
            })
        }
        NodeEnum::CompositeTypeStmt(t) => {
            for def in t.coldeflist.iter().filter_map(node) {
                if let NodeEnum::ColumnDef(d) = def {
                    if declares_pgseal(d.type_name.as_ref()) {
                        return Err(SqlError::PgsealTypeUse {
                            name: t.typevar.as_ref().map_or_else(String::new, written),
                            what: "a composite type with a pgseal attribute".into(),
                        });
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The relation as written (`schema.name` or `name`), for messages.
fn written(rv: &pb::RangeVar) -> String {
    if rv.schemaname.is_empty() {
        rv.relname.clone()
    } else {
        format!("{}.{}", rv.schemaname, rv.relname)
    }
}

fn temporary(table: &str) -> SqlError {
    SqlError::EncryptedTable {
        table: table.to_string(),
        reason: Reason::TemporaryTable,
    }
}

/// A column definition of `CREATE TABLE` or `ALTER TABLE ... ADD COLUMN`: the rules of a
/// pgseal column if it is one, and its constraints.
fn column_def(
    table: &str,
    d: &pb::ColumnDef,
    is_encrypted: &dyn Fn(&str) -> bool,
    table_encrypted: bool,
) -> Result<(), SqlError> {
    let pgseal = declares_pgseal(d.type_name.as_ref());
    if pgseal {
        pgseal_column(table, d)?;
    }
    for con in d.constraints.iter().filter_map(node) {
        let NodeEnum::Constraint(con) = con else {
            continue;
        };
        if pgseal && is_unique_constraint(con) {
            return Err(unique_refusal(table, &d.colname));
        }
        check_constraint(table, &d.colname, con, is_encrypted, table_encrypted)?;
    }
    Ok(())
}

/// A column declared with a pgseal type: not an array; `DEFAULT NULL` at most; not generated.
fn pgseal_column(table: &str, d: &pb::ColumnDef) -> Result<(), SqlError> {
    refuse_wrapped_type(&format!("{table}.{}", d.colname), d.type_name.as_ref())?;
    if !d.generated.is_empty() {
        return Err(column_expression(table, &d.colname, "GENERATED"));
    }
    if boxed(&d.raw_default).is_some_and(|e| !is_null(e)) {
        return Err(column_expression(table, &d.colname, "DEFAULT"));
    }
    for con in d.constraints.iter().filter_map(node) {
        let NodeEnum::Constraint(con) = con else {
            continue;
        };
        match ConstrType::try_from(con.contype) {
            Ok(ConstrType::ConstrDefault) if boxed(&con.raw_expr).is_some_and(|e| !is_null(e)) => {
                return Err(column_expression(table, &d.colname, "DEFAULT"));
            }
            Ok(ConstrType::ConstrGenerated | ConstrType::ConstrIdentity) => {
                return Err(column_expression(table, &d.colname, "GENERATED"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// An array of a pgseal type: its elements would not be recognised as encrypted.
fn refuse_wrapped_type(column: &str, t: Option<&pb::TypeName>) -> Result<(), SqlError> {
    if t.is_some_and(|t| !t.array_bounds.is_empty()) {
        return Err(SqlError::PgsealTypeUse {
            name: column.to_string(),
            what: "an array of a pgseal type".into(),
        });
    }
    Ok(())
}

/// A `CHECK` constraint (of column `column`, or of the table when empty) may use an encrypted
/// column only under `IS [NOT] NULL`; on a table with encrypted columns, one this walk cannot
/// follow is refused.
fn check_constraint(
    table: &str,
    column: &str,
    con: &pb::Constraint,
    is_encrypted: &dyn Fn(&str) -> bool,
    table_encrypted: bool,
) -> Result<(), SqlError> {
    if !matches!(
        ConstrType::try_from(con.contype),
        Ok(ConstrType::ConstrCheck)
    ) {
        return Ok(());
    }
    let Some(expr) = boxed(&con.raw_expr) else {
        return Ok(());
    };
    let refs = expr_refs(expr, is_encrypted);
    if let Some(name) = refs.encrypted {
        return Err(column_expression(table, &name, "CHECK"));
    }
    if refs.unknown && table_encrypted {
        return Err(column_expression(table, column, "CHECK"));
    }
    Ok(())
}

fn column_expression(table: &str, column: &str, what: &str) -> SqlError {
    let column = if column.is_empty() {
        table.to_string()
    } else {
        format!("{table}.{column}")
    };
    SqlError::EncryptedColumn {
        column,
        reason: Reason::ColumnExpression { what: what.into() },
    }
}

fn is_null(expr: &NodeEnum) -> bool {
    match expr {
        NodeEnum::AConst(c) => c.isnull,
        NodeEnum::TypeCast(t) => boxed(&t.arg).is_some_and(is_null),
        _ => false,
    }
}

/// What `expr` refers to, walking the expression forms a `DEFAULT`, `CHECK` or `USING`
/// commonly takes; anything else is reported as unknown.
fn expr_refs(expr: &NodeEnum, is_encrypted: &dyn Fn(&str) -> bool) -> ExprRefs {
    let mut refs = ExprRefs::default();
    walk(expr, is_encrypted, &mut refs);
    refs
}

fn walk(expr: &NodeEnum, is_encrypted: &dyn Fn(&str) -> bool, refs: &mut ExprRefs) {
    let all = |nodes: &[pb::Node], refs: &mut ExprRefs| {
        for n in nodes.iter().filter_map(node) {
            walk(n, is_encrypted, refs);
        }
    };
    match expr {
        NodeEnum::ColumnRef(c) => {
            if let Some(name) = c.fields.last().and_then(string_value) {
                if is_encrypted(name) && refs.encrypted.is_none() {
                    refs.encrypted = Some(name.to_string());
                }
            }
        }
        NodeEnum::AConst(c) => refs.constant |= !c.isnull,
        NodeEnum::NullTest(t) => match boxed(&t.arg) {
            // The one use of an encrypted column PostgreSQL can evaluate on ciphertext.
            Some(NodeEnum::ColumnRef(_)) => {}
            Some(arg) => walk(arg, is_encrypted, refs),
            None => {}
        },
        NodeEnum::TypeCast(t) => {
            if let Some(arg) = boxed(&t.arg) {
                walk(arg, is_encrypted, refs);
            }
        }
        NodeEnum::AExpr(e) => {
            for side in [&e.lexpr, &e.rexpr] {
                if let Some(side) = boxed(side) {
                    walk(side, is_encrypted, refs);
                }
            }
        }
        NodeEnum::BoolExpr(b) => all(&b.args, refs),
        NodeEnum::FuncCall(f) => all(&f.args, refs),
        NodeEnum::CoalesceExpr(c) => all(&c.args, refs),
        NodeEnum::MinMaxExpr(m) => all(&m.args, refs),
        NodeEnum::RowExpr(r) => all(&r.args, refs),
        NodeEnum::AArrayExpr(a) => all(&a.elements, refs),
        NodeEnum::List(l) => all(&l.items, refs),
        NodeEnum::BooleanTest(t) => {
            if let Some(arg) = boxed(&t.arg) {
                walk(arg, is_encrypted, refs);
            }
        }
        NodeEnum::CollateClause(c) => {
            if let Some(arg) = boxed(&c.arg) {
                walk(arg, is_encrypted, refs);
            }
        }
        NodeEnum::CaseExpr(c) => {
            for part in [&c.arg, &c.defresult] {
                if let Some(part) = boxed(part) {
                    walk(part, is_encrypted, refs);
                }
            }
            all(&c.args, refs);
        }
        NodeEnum::CaseWhen(w) => {
            for part in [&w.expr, &w.result] {
                if let Some(part) = boxed(part) {
                    walk(part, is_encrypted, refs);
                }
            }
        }
        NodeEnum::SqlvalueFunction(_) | NodeEnum::ParamRef(_) => {}
        _ => refs.unknown = true,
    }
}

/// A column type that makes the column encrypted: one of pgseal's domains (`pgseal.email`,
/// `pgseal.text_eq`, ...), or `email`, which only pgseal has (with `pgseal` in the
/// `search_path` it is one).
pub(super) fn declares_pgseal(t: Option<&pb::TypeName>) -> bool {
    t.is_some_and(|t| {
        let names: Vec<&str> = t.names.iter().filter_map(string_value).collect();
        (names.len() == 2 && names.first() == Some(&"pgseal")) || names.as_slice() == ["email"]
    })
}

/// A `UNIQUE` or `PRIMARY KEY` constraint.
fn is_unique_constraint(c: &pb::Constraint) -> bool {
    matches!(
        ConstrType::try_from(c.contype),
        Ok(ConstrType::ConstrUnique | ConstrType::ConstrPrimary)
    )
}

fn constraint_keys(c: &pb::Constraint) -> impl Iterator<Item = &str> {
    c.keys.iter().filter_map(string_value)
}

fn unique_refusal(table: &str, column: &str) -> SqlError {
    SqlError::EncryptedColumn {
        column: format!("{table}.{column}"),
        reason: Reason::UniqueConstraint {
            table: table.to_string(),
            column: column.to_string(),
        },
    }
}
