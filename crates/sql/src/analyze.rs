//! The analysis proper: a walk over PostgreSQL's raw parse tree with name resolution.
//!
//! Every expression is classified as either *the value of an encrypted column, untouched*
//! ([`Val::Enc`]) or *anything else* ([`Val::Plain`]). An encrypted value may only end up in a
//! few places: directly in a target list that reaches the client (or a derived table whose
//! target list does), under `IS [NOT] NULL`, as the argument of `count()`, or as the same
//! column it came from. Every composite node that consumes an operand refuses an encrypted one,
//! with the reason that fits the node. Constructs the walk does not know are refused whenever
//! the statement may refer to an encrypted table (fail closed).

use std::collections::HashMap;
use std::ops::Range;

use pg_query::protobuf::{self as pb, a_const, AExprKind, OnConflictAction, SetOperation};
use pg_query::NodeEnum;

use crate::error::{Reason, SqlError};
#[path = "ddl.rs"]
mod ddl;
use crate::scan::{mentions_by_words, mentions_in_text, Tokens};
use crate::{
    Analysis, AnalyzeOptions, Catalog, EncryptedColumnInfo, Literal, LiteralUse, LogicalType,
    ParamUse, SearchUse, SearchValue, StatementKind, StatementPlan, TableRef, ValueRole,
};

/// How far the name check looks into code bodies (`DO`, `CREATE FUNCTION`).
const BODY_DEPTH: u32 = 3;

pub(crate) fn analyze(
    sql: &str,
    catalog: &dyn Catalog,
    options: AnalyzeOptions,
) -> Result<Analysis, SqlError> {
    let parsed = match pg_query::parse(sql, 0) {
        Ok(parsed) => parsed,
        // The tree parsed but is nested deeper than the protobuf decoder accepts.
        Err(pg_query::Error::Decode(_)) => return too_deep(sql, catalog),
        Err(_) => return unparseable(sql, catalog),
    };
    // The parser accepted the text, so the scanner does too; if it somehow does not, spans
    // cannot be computed and the text is handled like unparseable text.
    let Some(tokens) = Tokens::scan(sql) else {
        return unparseable(sql, catalog);
    };
    let mut statements = Vec::with_capacity(parsed.protobuf.stmts.len());
    // Relations whose encrypted columns earlier statements of this text declared.
    let mut declared: Vec<String> = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(stmt) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let start = usize::try_from(raw.stmt_location)
            .unwrap_or(0)
            .min(sql.len());
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => sql.len(),
            Ok(len) => start.saturating_add(len).min(sql.len()),
        };
        let span = tokens.trim(start..end);
        let mut planner = Planner::new(sql, catalog, &tokens, span, options);
        planner.earlier = &declared;
        planner.uncommitted(stmt)?;
        ddl::wrapped_types(stmt)?;
        let (kind, invalidates_schema) = planner.statement(stmt)?;
        planner.declares = match stmt {
            NodeEnum::CreateStmt(c) => planner.create_table(c)?,
            NodeEnum::CreateForeignTableStmt(f) => match f.base_stmt.as_ref() {
                Some(c) => planner.create_table(c)?,
                None => Vec::new(),
            },
            NodeEnum::AlterTableStmt(a) => planner.alter_table(a)?,
            NodeEnum::RenameStmt(r) => planner.rename(r),
            NodeEnum::AlterObjectSchemaStmt(a) => planner.alter_schema(a),
            NodeEnum::ViewStmt(v) => planner.view(v),
            _ => Vec::new(),
        };
        let plan = planner.finish(kind, invalidates_schema);
        declared.extend(plan.declares_encrypted.iter().cloned());
        statements.push(plan);
    }
    Ok(Analysis { statements })
}

/// A statement nested too deeply to analyse: PostgreSQL would run it, so it passes only if it
/// names no encrypted table.
fn too_deep(sql: &str, catalog: &dyn Catalog) -> Result<Analysis, SqlError> {
    if let Some(table) = mentions_in_text(sql, catalog, 0) {
        return Err(SqlError::EncryptedTable {
            table,
            reason: Reason::Unanalysed {
                construct: "a statement nested this deeply".into(),
            },
        });
    }
    Ok(Analysis {
        statements: vec![opaque_plan(sql)],
    })
}

fn opaque_plan(sql: &str) -> StatementPlan {
    StatementPlan {
        span: 0..sql.len(),
        kind: StatementKind::Other,
        touches_encrypted: false,
        params: Vec::new(),
        literals: Vec::new(),
        invalidates_schema: false,
        declares_encrypted: Vec::new(),
        searches: Vec::new(),
        rewrites: Vec::new(),
        max_param: 0,
    }
}

/// Text PostgreSQL will reject: forward it (so the client sees PostgreSQL's own syntax error)
/// unless it names an encrypted table, in which case it may be a statement pgseal failed to
/// understand rather than a typo.
fn unparseable(sql: &str, catalog: &dyn Catalog) -> Result<Analysis, SqlError> {
    let mentioned = if sql.contains('\0') {
        mentions_by_words(sql, catalog)
    } else {
        mentions_in_text(sql, catalog, 0)
    };
    if let Some(table) = mentioned {
        return Err(SqlError::EncryptedTable {
            table,
            reason: Reason::Unparseable,
        });
    }
    Ok(Analysis {
        statements: vec![opaque_plan(sql)],
    })
}

/// An encrypted column's value as it flows through the query.
#[derive(Clone, Debug)]
struct EncCol {
    info: EncryptedColumnInfo,
    /// `false` once the value has lost its table origin in `RowDescription` (`RETURNING
    /// OLD.x`, a recursive CTE's self reference).
    origin: bool,
}

/// The classification of an expression.
#[derive(Clone, Debug)]
enum Val {
    Enc(EncCol),
    Plain,
}

/// One output column of a relation in scope.
#[derive(Clone, Debug)]
enum Slot {
    Col {
        name: String,
        enc: Option<EncCol>,
    },
    /// Any number of columns of a relation the catalog does not know (never encrypted).
    Unknown,
}

impl Slot {
    fn enc(&self) -> Option<&EncCol> {
        match self {
            Slot::Col { enc, .. } => enc.as_ref(),
            Slot::Unknown => None,
        }
    }
}

/// A relation in a `FROM` list (or the target of `INSERT`/`UPDATE`/`DELETE`).
#[derive(Clone, Debug)]
struct Item {
    /// Alias, or the relation's name when there is none (empty for an unnamed subquery).
    refname: String,
    /// The relation's schema, for `schema.table.column` references (unaliased relations only).
    schema: Option<String>,
    slots: Vec<Slot>,
    /// Only visible through qualified references (`excluded`, `old`, `new`).
    qualified_only: bool,
}

impl Item {
    fn first_enc(&self) -> Option<&EncCol> {
        self.slots.iter().find_map(Slot::enc)
    }
}

#[derive(Default)]
struct Level {
    items: Vec<Item>,
}

struct Cte {
    name: String,
    slots: Vec<Slot>,
}

/// Where the target list of a `SELECT` (or a `RETURNING` list) goes.
#[derive(Clone, Debug)]
enum Out {
    /// To the client, with column origins.
    Client,
    /// Into a subquery in `FROM` or a CTE: encrypted values pass through as derived columns.
    Derived,
    /// Nowhere (`EXISTS`).
    Exists,
    /// Somewhere an encrypted value is not allowed, for this reason.
    Refuse(Reason),
}

/// The first use of a parameter, to detect conflicting uses.
#[derive(Clone, Debug)]
enum ParamRole {
    Plain,
    /// Stored in (or, without equality search, compared with) an encrypted column.
    Enc(EncryptedColumnInfo),
    /// A search term only: its blind indexes travel in a parameter of their own, so it may
    /// also be stored, or searched for in another column.
    Search(EncryptedColumnInfo),
}

impl ParamRole {
    fn describe(&self) -> String {
        match self {
            ParamRole::Plain => "a plaintext value".to_string(),
            ParamRole::Enc(info) | ParamRole::Search(info) => {
                format!("encrypted column {}", info.qualified_name)
            }
        }
    }
}

enum Field<'n> {
    Name(&'n str),
    Star,
}

fn node(n: &pb::Node) -> Option<&NodeEnum> {
    n.node.as_ref()
}

fn boxed(n: &Option<Box<pb::Node>>) -> Option<&NodeEnum> {
    n.as_deref().and_then(node)
}

fn string_value(n: &pb::Node) -> Option<&str> {
    match node(n) {
        Some(NodeEnum::String(s)) => Some(&s.sval),
        _ => None,
    }
}

fn fields(cref: &pb::ColumnRef) -> Vec<Field<'_>> {
    cref.fields
        .iter()
        .filter_map(|f| match node(f) {
            Some(NodeEnum::String(s)) => Some(Field::Name(&s.sval)),
            Some(NodeEnum::AStar(_)) => Some(Field::Star),
            _ => None,
        })
        .collect()
}

fn location(loc: i32) -> Option<usize> {
    usize::try_from(loc).ok()
}

fn col_err(enc: &EncCol, reason: Reason) -> SqlError {
    SqlError::EncryptedColumn {
        column: enc.info.qualified_name.clone(),
        reason,
    }
}

const AGGREGATES: &[&str] = &[
    "min",
    "max",
    "sum",
    "avg",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "bit_xor",
    "xmlagg",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "stddev",
    "variance",
    "any_value",
    "range_agg",
];

struct Planner<'a> {
    sql: &'a str,
    catalog: &'a dyn Catalog,
    tokens: &'a Tokens,
    span: Range<usize>,
    levels: Vec<Level>,
    ctes: Vec<Vec<Cte>>,
    params: Vec<ParamUse>,
    param_roles: HashMap<u16, ParamRole>,
    literals: Vec<LiteralUse>,
    searches: Vec<SearchUse>,
    rewrites: Vec<(Range<usize>, String)>,
    /// Inside the `WHERE` (or `FROM`/`USING`) of an `UPDATE` or `DELETE`.
    modifying: u32,
    /// The first relation with encrypted columns the statement refers to.
    encrypted_table: Option<String>,
    mentions: Option<Option<String>>,
    options: AnalyzeOptions,
    /// DDL: relations whose encrypted columns the statement declares (`ddl.rs`).
    declares: Vec<String>,
    /// Relations whose encrypted columns earlier statements of the text declared.
    earlier: &'a [String],
}

impl<'a> Planner<'a> {
    fn new(
        sql: &'a str,
        catalog: &'a dyn Catalog,
        tokens: &'a Tokens,
        span: Range<usize>,
        options: AnalyzeOptions,
    ) -> Self {
        Planner {
            sql,
            catalog,
            tokens,
            span,
            levels: Vec::new(),
            ctes: Vec::new(),
            params: Vec::new(),
            param_roles: HashMap::new(),
            literals: Vec::new(),
            searches: Vec::new(),
            rewrites: Vec::new(),
            modifying: 0,
            encrypted_table: None,
            mentions: None,
            options,
            declares: Vec::new(),
            earlier: &[],
        }
    }

    fn finish(mut self, kind: StatementKind, invalidates_schema: bool) -> StatementPlan {
        self.literals.sort_by_key(|l| l.span.start);
        self.searches.sort_by_key(|l| l.span.start);
        self.rewrites.sort_by_key(|(span, _)| span.start);
        let max_param = self.tokens.max_param(self.sql, self.span.clone());
        StatementPlan {
            touches_encrypted: self.encrypted_table.is_some(),
            span: self.span,
            kind,
            params: self.params,
            literals: self.literals,
            invalidates_schema,
            declares_encrypted: self.declares,
            searches: self.searches,
            rewrites: self.rewrites,
            max_param,
        }
    }

    // ----- fail-closed helpers -------------------------------------------------------------

    /// The first encrypted table named anywhere in this statement's text (cached).
    fn statement_mentions(&mut self) -> Option<String> {
        if self.mentions.is_none() {
            let found = self.tokens.mentioned_encrypted_table(
                self.sql,
                self.span.clone(),
                self.catalog,
                false,
            );
            self.mentions = Some(found);
        }
        self.mentions.clone().flatten()
    }

    /// An encrypted table the statement refers to, by resolution or by name.
    fn may_touch(&mut self) -> Option<String> {
        self.encrypted_table
            .clone()
            .or_else(|| self.statement_mentions())
    }

    /// A construct the walk does not analyse: refuse if the statement may touch an encrypted
    /// table, otherwise it cannot involve an encrypted column.
    fn unanalysed(&mut self, construct: &str) -> Result<Val, SqlError> {
        match self.may_touch() {
            Some(table) => Err(SqlError::EncryptedTable {
                table,
                reason: Reason::Unanalysed {
                    construct: construct.to_string(),
                },
            }),
            None => Ok(Val::Plain),
        }
    }

    fn refuse_if_touched(&mut self, reason: Reason) -> Result<(), SqlError> {
        match self.encrypted_table.clone() {
            Some(table) => Err(SqlError::EncryptedTable { table, reason }),
            None => Ok(()),
        }
    }

    // ----- statements ------------------------------------------------------------------------

    fn statement(&mut self, stmt: &NodeEnum) -> Result<(StatementKind, bool), SqlError> {
        use StatementKind as K;
        match stmt {
            NodeEnum::SelectStmt(s) => {
                if s.into_clause.is_some() {
                    self.select(s, &Out::Refuse(Reason::CreateTableAs))?;
                    Ok((K::Ddl, true))
                } else {
                    self.select(s, &Out::Client)?;
                    Ok((K::Select, false))
                }
            }
            NodeEnum::InsertStmt(s) => {
                self.insert(s, &Out::Client)?;
                Ok((K::Insert, false))
            }
            NodeEnum::UpdateStmt(s) => {
                self.update(s, &Out::Client)?;
                Ok((K::Update, false))
            }
            NodeEnum::DeleteStmt(s) => {
                self.delete(s, &Out::Client)?;
                Ok((K::Delete, false))
            }
            NodeEnum::ExplainStmt(e) => {
                // EXPLAIN ANALYZE runs the statement: plan it like the statement itself.
                let invalidates = match boxed(&e.query) {
                    Some(inner) => self.statement(inner)?.1,
                    None => false,
                };
                Ok((K::Utility, invalidates))
            }
            NodeEnum::CopyStmt(c) => {
                // The proxy carries COPY FROM STDIN / TO STDOUT itself; `copy.rs` refuses what
                // it cannot carry. A `COPY (query)` query is analysed like a SELECT.
                if let Some(rv) = &c.relation {
                    self.resolve_catalog(rv);
                }
                if let Some(query) = boxed(&c.query) {
                    self.statement(query)?;
                }
                let touched = self.may_touch();
                crate::copy::plan(c, self.catalog, touched)?;
                Ok((K::Copy, false))
            }
            NodeEnum::MergeStmt(m) => {
                let target_encrypted = m
                    .relation
                    .as_ref()
                    .and_then(|rv| self.resolve_catalog(rv))
                    .filter(TableRef::has_encrypted_columns)
                    .map(|t| qualified(&t));
                if let Some(table) = target_encrypted.or_else(|| self.statement_mentions()) {
                    return Err(SqlError::EncryptedTable {
                        table,
                        reason: Reason::Merge,
                    });
                }
                Ok((K::Other, false))
            }
            NodeEnum::CreateTableAsStmt(c) => {
                match boxed(&c.query) {
                    Some(NodeEnum::SelectStmt(s)) => {
                        self.select(s, &Out::Refuse(Reason::CreateTableAs))?;
                    }
                    Some(NodeEnum::ExecuteStmt(_)) | None => {}
                    Some(other) => {
                        self.statement(other)?;
                        self.refuse_if_touched(Reason::CreateTableAs)?;
                    }
                }
                Ok((K::Ddl, true))
            }
            NodeEnum::ViewStmt(v) => {
                // The view's query runs whenever the view is read: it must not compute on
                // ciphertext either. Its columns reach clients with the view as origin.
                if let Some(NodeEnum::SelectStmt(s)) = boxed(&v.query) {
                    self.select(s, &Out::Derived)?;
                }
                let temporary = v.view.as_ref().is_some_and(|rv| rv.relpersistence == "t");
                if temporary {
                    self.refuse_if_touched(Reason::TemporaryTable)?;
                }
                Ok((K::Ddl, true))
            }
            NodeEnum::PrepareStmt(p) => {
                if let Some(query) = boxed(&p.query) {
                    self.statement(query)?;
                }
                self.refuse_if_touched(Reason::Prepare)?;
                Ok((K::Utility, false))
            }
            NodeEnum::DeclareCursorStmt(d) => {
                if let Some(query) = boxed(&d.query) {
                    self.statement(query)?;
                }
                self.refuse_if_touched(Reason::Cursor)?;
                Ok((K::Utility, false))
            }
            NodeEnum::DoStmt(d) => {
                self.opaque_bodies(&d.args, "DO block")?;
                Ok((K::Other, false))
            }
            NodeEnum::CreateFunctionStmt(f) => {
                self.opaque_bodies(&f.options, "function body")?;
                if f.sql_body.is_some() {
                    if let Some(table) = self.statement_mentions() {
                        return Err(SqlError::EncryptedTable {
                            table,
                            reason: Reason::OpaqueBody {
                                what: "function body".into(),
                            },
                        });
                    }
                }
                Ok((K::Ddl, true))
            }
            NodeEnum::CallStmt(_) => {
                self.unanalysed("CALL")?;
                Ok((K::Other, false))
            }
            NodeEnum::TransactionStmt(_)
            | NodeEnum::VariableSetStmt(_)
            | NodeEnum::VariableShowStmt(_)
            | NodeEnum::DiscardStmt(_)
            | NodeEnum::ListenStmt(_)
            | NodeEnum::UnlistenStmt(_)
            | NodeEnum::NotifyStmt(_)
            | NodeEnum::LockStmt(_)
            | NodeEnum::VacuumStmt(_)
            | NodeEnum::CheckPointStmt(_)
            | NodeEnum::ExecuteStmt(_)
            | NodeEnum::DeallocateStmt(_)
            | NodeEnum::FetchStmt(_)
            | NodeEnum::ClosePortalStmt(_)
            | NodeEnum::LoadStmt(_)
            | NodeEnum::ReindexStmt(_)
            | NodeEnum::ClusterStmt(_)
            | NodeEnum::TruncateStmt(_)
            | NodeEnum::ConstraintsSetStmt(_)
            | NodeEnum::RefreshMatViewStmt(_)
            | NodeEnum::AlterSystemStmt(_) => Ok((K::Utility, false)),
            NodeEnum::IndexStmt(ix) => {
                self.index_stmt(ix)?;
                Ok((K::Ddl, true))
            }
            // Checked by `ddl.rs` once the statement is classified.
            NodeEnum::CreateStmt(_) | NodeEnum::AlterTableStmt(_) => Ok((K::Ddl, true)),
            NodeEnum::DropStmt(_)
            | NodeEnum::RenameStmt(_)
            | NodeEnum::CommentStmt(_)
            | NodeEnum::GrantStmt(_)
            | NodeEnum::GrantRoleStmt(_)
            | NodeEnum::RuleStmt(_)
            | NodeEnum::DefineStmt(_)
            | NodeEnum::CompositeTypeStmt(_)
            | NodeEnum::CreateEnumStmt(_)
            | NodeEnum::AlterEnumStmt(_)
            | NodeEnum::CreateRangeStmt(_)
            | NodeEnum::CreateDomainStmt(_)
            | NodeEnum::AlterDomainStmt(_)
            | NodeEnum::CreateSchemaStmt(_)
            | NodeEnum::CreateSeqStmt(_)
            | NodeEnum::AlterSeqStmt(_)
            | NodeEnum::CreateExtensionStmt(_)
            | NodeEnum::AlterExtensionStmt(_)
            | NodeEnum::CreateTrigStmt(_)
            | NodeEnum::CreatePolicyStmt(_)
            | NodeEnum::AlterPolicyStmt(_)
            | NodeEnum::AlterFunctionStmt(_)
            | NodeEnum::AlterObjectSchemaStmt(_)
            | NodeEnum::AlterOwnerStmt(_)
            | NodeEnum::AlterTypeStmt(_)
            | NodeEnum::CreateStatsStmt(_)
            | NodeEnum::AlterStatsStmt(_)
            | NodeEnum::CreateRoleStmt(_)
            | NodeEnum::AlterRoleStmt(_)
            | NodeEnum::AlterRoleSetStmt(_)
            | NodeEnum::DropRoleStmt(_)
            | NodeEnum::DropOwnedStmt(_)
            | NodeEnum::ReassignOwnedStmt(_)
            | NodeEnum::AlterDefaultPrivilegesStmt(_)
            | NodeEnum::SecLabelStmt(_)
            | NodeEnum::CreateCastStmt(_)
            | NodeEnum::CreateForeignTableStmt(_)
            | NodeEnum::ImportForeignSchemaStmt(_)
            | NodeEnum::CreatedbStmt(_)
            | NodeEnum::DropdbStmt(_)
            | NodeEnum::AlterDatabaseStmt(_)
            | NodeEnum::AlterDatabaseSetStmt(_)
            | NodeEnum::CreateTableSpaceStmt(_)
            | NodeEnum::DropTableSpaceStmt(_)
            | NodeEnum::CreatePublicationStmt(_)
            | NodeEnum::AlterPublicationStmt(_)
            | NodeEnum::CreateSubscriptionStmt(_)
            | NodeEnum::AlterSubscriptionStmt(_)
            | NodeEnum::DropSubscriptionStmt(_) => Ok((K::Ddl, true)),
            _ => {
                self.unanalysed("this statement")?;
                Ok((K::Other, false))
            }
        }
    }

    /// `DO` and `CREATE FUNCTION ... AS '...'`: the body is a string pgseal cannot analyse;
    /// refuse it if it names an encrypted table.
    fn opaque_bodies(&mut self, options: &[pb::Node], what: &str) -> Result<(), SqlError> {
        for option in options {
            let Some(NodeEnum::DefElem(def)) = node(option) else {
                continue;
            };
            if def.defname != "as" {
                continue;
            }
            let mut bodies = Vec::new();
            match boxed(&def.arg) {
                Some(NodeEnum::String(s)) => bodies.push(s.sval.as_str()),
                Some(NodeEnum::List(list)) => {
                    bodies.extend(list.items.iter().filter_map(string_value))
                }
                _ => {}
            }
            for body in bodies {
                if let Some(table) = mentions_in_text(body, self.catalog, BODY_DEPTH) {
                    return Err(SqlError::EncryptedTable {
                        table,
                        reason: Reason::OpaqueBody { what: what.into() },
                    });
                }
            }
        }
        Ok(())
    }

    // ----- relations -------------------------------------------------------------------------

    fn resolve_catalog(&mut self, rv: &pb::RangeVar) -> Option<TableRef> {
        let schema = (!rv.schemaname.is_empty()).then_some(rv.schemaname.as_str());
        let table = self.catalog.resolve_table(schema, &rv.relname)?;
        if table.has_encrypted_columns() && self.encrypted_table.is_none() {
            self.encrypted_table = Some(qualified(&table));
        }
        Some(table)
    }

    fn find_cte(&self, name: &str) -> Option<Vec<Slot>> {
        self.ctes
            .iter()
            .rev()
            .flat_map(|frame| frame.iter().rev())
            .find(|cte| cte.name == name)
            .map(|cte| cte.slots.clone())
    }

    /// The item for a relation named in `FROM` (or as a DML target when `allow_cte`).
    fn relation_item(&mut self, rv: &pb::RangeVar, allow_cte: bool) -> Result<Item, SqlError> {
        let alias = rv.alias.as_ref();
        let refname = alias.map_or_else(|| rv.relname.clone(), |a| a.aliasname.clone());
        if allow_cte && rv.schemaname.is_empty() {
            if let Some(slots) = self.find_cte(&rv.relname) {
                let slots = rename(slots, alias.map(|a| a.colnames.as_slice()))?;
                return Ok(Item {
                    refname,
                    schema: None,
                    slots,
                    qualified_only: false,
                });
            }
        }
        let item = match self.resolve_catalog(rv) {
            Some(table) => {
                let slots = table
                    .columns
                    .iter()
                    .map(|c| Slot::Col {
                        name: c.name.clone(),
                        enc: c
                            .encrypted
                            .clone()
                            .map(|info| EncCol { info, origin: true }),
                    })
                    .collect();
                Item {
                    refname,
                    schema: alias.is_none().then(|| table.schema.clone()),
                    slots: rename(slots, alias.map(|a| a.colnames.as_slice()))?,
                    qualified_only: false,
                }
            }
            None => Item {
                refname,
                schema: (alias.is_none() && !rv.schemaname.is_empty())
                    .then(|| rv.schemaname.clone()),
                slots: vec![Slot::Unknown],
                qualified_only: false,
            },
        };
        Ok(item)
    }

    fn level(&mut self) -> &mut Level {
        if self.levels.is_empty() {
            self.levels.push(Level::default());
        }
        let last = self.levels.len() - 1;
        &mut self.levels[last]
    }

    /// Add the relations of one `FROM` item to the current level.
    fn add_from_item(&mut self, item: &NodeEnum) -> Result<(), SqlError> {
        match item {
            NodeEnum::RangeVar(rv) => {
                let item = self.relation_item(rv, true)?;
                self.level().items.push(item);
            }
            NodeEnum::RangeSubselect(sub) => {
                let slots = match boxed(&sub.subquery) {
                    Some(NodeEnum::SelectStmt(s)) => self.select(s, &Out::Derived)?,
                    _ => {
                        self.unanalysed("this subquery")?;
                        vec![Slot::Unknown]
                    }
                };
                let alias = sub.alias.as_ref();
                let item = Item {
                    refname: alias.map(|a| a.aliasname.clone()).unwrap_or_default(),
                    schema: None,
                    slots: rename(slots, alias.map(|a| a.colnames.as_slice()))?,
                    qualified_only: false,
                };
                self.level().items.push(item);
            }
            NodeEnum::JoinExpr(join) => self.join(join)?,
            NodeEnum::RangeFunction(f) => {
                for function in &f.functions {
                    // Each entry is a list: the function call, then its column definitions.
                    if let Some(NodeEnum::List(list)) = node(function) {
                        if let Some(call) = list.items.first().and_then(node) {
                            self.operand(call, |_| Reason::Computation {
                                what: "a function in FROM".into(),
                            })?;
                        }
                    }
                }
                let refname = f
                    .alias
                    .as_ref()
                    .map(|a| a.aliasname.clone())
                    .unwrap_or_default();
                self.level().items.push(Item {
                    refname,
                    schema: None,
                    slots: vec![Slot::Unknown],
                    qualified_only: false,
                });
            }
            NodeEnum::RangeTableSample(sample) => {
                if let Some(relation) = boxed(&sample.relation) {
                    self.add_from_item(relation)?;
                }
                for arg in sample.args.iter().chain(sample.repeatable.as_deref()) {
                    if let Some(arg) = node(arg) {
                        self.operand(arg, |_| Reason::Computation {
                            what: "TABLESAMPLE".into(),
                        })?;
                    }
                }
            }
            NodeEnum::RangeTableFunc(_) => {
                self.unanalysed("XMLTABLE")?;
                self.push_unknown_item();
            }
            NodeEnum::JsonTable(_) => {
                self.unanalysed("JSON_TABLE")?;
                self.push_unknown_item();
            }
            _ => {
                self.unanalysed("this FROM item")?;
                self.push_unknown_item();
            }
        }
        Ok(())
    }

    fn push_unknown_item(&mut self) {
        self.level().items.push(Item {
            refname: String::new(),
            schema: None,
            slots: vec![Slot::Unknown],
            qualified_only: false,
        });
    }

    fn join(&mut self, join: &pb::JoinExpr) -> Result<(), SqlError> {
        let first = self.level().items.len();
        if let Some(left) = boxed(&join.larg) {
            self.add_from_item(left)?;
        }
        let middle = self.level().items.len();
        if let Some(right) = boxed(&join.rarg) {
            self.add_from_item(right)?;
        }
        let items = &self.level().items;
        let left: Vec<Slot> = items[first..middle]
            .iter()
            .flat_map(|i| i.slots.clone())
            .collect();
        let right: Vec<Slot> = items[middle..]
            .iter()
            .flat_map(|i| i.slots.clone())
            .collect();

        // USING and NATURAL compare same-named columns of both sides.
        let using: Vec<&str> = join.using_clause.iter().filter_map(string_value).collect();
        for name in &using {
            for slot in left.iter().chain(&right) {
                if let Slot::Col {
                    name: n,
                    enc: Some(enc),
                } = slot
                {
                    if n == name {
                        return Err(col_err(enc, self.column_equality()));
                    }
                }
            }
        }
        if join.is_natural {
            let open = |side: &[Slot]| side.iter().any(|s| matches!(s, Slot::Unknown));
            let has = |side: &[Slot], name: &str| {
                side.iter()
                    .any(|s| matches!(s, Slot::Col { name: n, .. } if n == name))
            };
            for (side, other) in [(&left, &right), (&right, &left)] {
                for slot in side.iter() {
                    if let Slot::Col {
                        name,
                        enc: Some(enc),
                    } = slot
                    {
                        if has(other, name) || open(other) {
                            return Err(col_err(enc, self.column_equality()));
                        }
                    }
                }
            }
        }
        if let Some(quals) = boxed(&join.quals) {
            self.condition(quals)?;
        }
        if let Some(alias) = &join.alias {
            let mut slots = left;
            slots.extend(right);
            let slots = rename(slots, Some(alias.colnames.as_slice()))?;
            let level = self.level();
            level.items.truncate(first);
            level.items.push(Item {
                refname: alias.aliasname.clone(),
                schema: None,
                slots,
                qualified_only: false,
            });
        }
        Ok(())
    }

    fn with_clause(&mut self, with: &pb::WithClause) -> Result<(), SqlError> {
        self.ctes.push(Vec::new());
        for cte in &with.ctes {
            let Some(NodeEnum::CommonTableExpr(cte)) = node(cte) else {
                continue;
            };
            if with.recursive {
                // The self reference of a recursive CTE has no origin; its non-recursive
                // branch is in a UNION, which refuses encrypted columns anyway.
                if let Some(frame) = self.ctes.last_mut() {
                    frame.push(Cte {
                        name: cte.ctename.clone(),
                        slots: vec![Slot::Unknown],
                    });
                }
            }
            let slots = match boxed(&cte.ctequery) {
                Some(NodeEnum::SelectStmt(s)) => self.select(s, &Out::Derived)?,
                Some(NodeEnum::InsertStmt(s)) => self.insert(s, &Out::Derived)?,
                Some(NodeEnum::UpdateStmt(s)) => self.update(s, &Out::Derived)?,
                Some(NodeEnum::DeleteStmt(s)) => self.delete(s, &Out::Derived)?,
                _ => {
                    self.unanalysed("this WITH query")?;
                    vec![Slot::Unknown]
                }
            };
            let colnames: Vec<pb::Node> = cte.aliascolnames.clone();
            let slots = rename(slots, Some(colnames.as_slice()))?;
            if cte.search_clause.is_some() || cte.cycle_clause.is_some() {
                if let Some(enc) = slots.iter().find_map(Slot::enc) {
                    return Err(col_err(
                        enc,
                        Reason::Unanalysed {
                            construct: "SEARCH/CYCLE".into(),
                        },
                    ));
                }
            }
            if let Some(frame) = self.ctes.last_mut() {
                frame.retain(|c| c.name != cte.ctename);
                frame.push(Cte {
                    name: cte.ctename.clone(),
                    slots,
                });
            }
        }
        Ok(())
    }

    // ----- SELECT ----------------------------------------------------------------------------

    fn select(&mut self, s: &pb::SelectStmt, out: &Out) -> Result<Vec<Slot>, SqlError> {
        let has_with = s.with_clause.is_some();
        if let Some(with) = &s.with_clause {
            self.with_clause(with)?;
        }
        let result = match SetOperation::try_from(s.op) {
            Ok(
                SetOperation::SetopUnion | SetOperation::SetopIntersect | SetOperation::SetopExcept,
            ) => self.set_operation(s),
            _ => self.simple_select(s, out),
        };
        if has_with {
            self.ctes.pop();
        }
        result
    }

    fn set_operation(&mut self, s: &pb::SelectStmt) -> Result<Vec<Slot>, SqlError> {
        let branch = Out::Refuse(Reason::SetOperation);
        let mut slots = match s.larg.as_deref() {
            Some(left) => self.select(left, &branch)?,
            None => Vec::new(),
        };
        if let Some(right) = s.rarg.as_deref() {
            self.select(right, &branch)?;
        }
        // The result has no encrypted column; ORDER BY / LIMIT refer to its output only.
        for slot in &mut slots {
            if let Slot::Col { enc, .. } = slot {
                *enc = None;
            }
        }
        self.levels.push(Level {
            items: vec![Item {
                refname: String::new(),
                schema: None,
                slots: slots.clone(),
                qualified_only: false,
            }],
        });
        let result = self.tail_clauses(s, &slots);
        self.levels.pop();
        result.map(|()| slots)
    }

    fn simple_select(&mut self, s: &pb::SelectStmt, out: &Out) -> Result<Vec<Slot>, SqlError> {
        self.levels.push(Level::default());
        let result = self.simple_select_body(s, out);
        self.levels.pop();
        result
    }

    fn simple_select_body(&mut self, s: &pb::SelectStmt, out: &Out) -> Result<Vec<Slot>, SqlError> {
        if !s.values_lists.is_empty() {
            let mut width = 0;
            for row in &s.values_lists {
                let items = match node(row) {
                    Some(NodeEnum::List(list)) => list.items.as_slice(),
                    _ => &[],
                };
                width = width.max(items.len());
                for item in items.iter().filter_map(node) {
                    self.operand(item, |_| Reason::NoOrigin {
                        what: "a VALUES list".into(),
                    })?;
                }
            }
            let slots: Vec<Slot> = (1..=width)
                .map(|i| Slot::Col {
                    name: format!("column{i}"),
                    enc: None,
                })
                .collect();
            self.tail_clauses(s, &slots)?;
            return Ok(slots);
        }
        for item in s.from_clause.iter().filter_map(node) {
            self.add_from_item(item)?;
        }
        if let Some(cond) = boxed(&s.where_clause) {
            self.condition(cond)?;
        }
        let targets = self.target_list(&s.target_list, out)?;
        for group in s.group_clause.iter().filter_map(node) {
            self.group_item(group, &targets)?;
        }
        if let Some(cond) = boxed(&s.having_clause) {
            self.condition(cond)?;
        }
        for window in s.window_clause.iter().filter_map(node) {
            if let NodeEnum::WindowDef(w) = window {
                self.window_def(w)?;
            }
        }
        if !s.distinct_clause.is_empty() {
            let plain_distinct = s.distinct_clause.iter().all(|d| d.node.is_none());
            if plain_distinct {
                if let Some(enc) = targets.iter().find_map(Slot::enc) {
                    return Err(col_err(enc, Reason::Distinct));
                }
            } else {
                for expr in s.distinct_clause.iter().filter_map(node) {
                    self.order_item(expr, &targets, Reason::Distinct)?;
                }
            }
        }
        self.tail_clauses(s, &targets)?;
        Ok(targets)
    }

    /// `ORDER BY`, `LIMIT`, `OFFSET`.
    fn tail_clauses(&mut self, s: &pb::SelectStmt, targets: &[Slot]) -> Result<(), SqlError> {
        for sort in s.sort_clause.iter().filter_map(node) {
            if let NodeEnum::SortBy(sort) = sort {
                if let Some(expr) = boxed(&sort.node) {
                    self.order_item(expr, targets, Reason::OrderBy)?;
                }
            }
        }
        for limit in [&s.limit_offset, &s.limit_count] {
            if let Some(expr) = boxed(limit) {
                self.operand(expr, |_| Reason::Computation {
                    what: "LIMIT/OFFSET".into(),
                })?;
            }
        }
        Ok(())
    }

    /// The output slot an `ORDER BY`/`GROUP BY`/`DISTINCT ON` item names by output column name
    /// or position, if any.
    fn output_ref<'t>(expr: &NodeEnum, targets: &'t [Slot]) -> Option<&'t Slot> {
        match expr {
            NodeEnum::ColumnRef(c) => match fields(c).as_slice() {
                [Field::Name(name)] => targets
                    .iter()
                    .find(|s| matches!(s, Slot::Col { name: n, .. } if n == name)),
                _ => None,
            },
            NodeEnum::AConst(pb::AConst {
                val: Some(a_const::Val::Ival(i)),
                ..
            }) => usize::try_from(i.ival)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| targets.get(n)),
            _ => None,
        }
    }

    /// An item that sorts or groups by an expression: refuse it if it is an encrypted column,
    /// whether named as an input column or as an output column (PostgreSQL prefers one or the
    /// other depending on the clause; refusing both is the safe reading).
    fn order_item(
        &mut self,
        expr: &NodeEnum,
        targets: &[Slot],
        reason: Reason,
    ) -> Result<(), SqlError> {
        if let Some(enc) = Self::output_ref(expr, targets).and_then(Slot::enc) {
            return Err(col_err(enc, reason));
        }
        if matches!(expr, NodeEnum::AConst(_)) {
            return Ok(());
        }
        if let Val::Enc(enc) = self.expr(expr)? {
            return Err(col_err(&enc, reason));
        }
        Ok(())
    }

    fn group_item(&mut self, item: &NodeEnum, targets: &[Slot]) -> Result<(), SqlError> {
        match item {
            NodeEnum::GroupingSet(set) => {
                for inner in set.content.iter().filter_map(node) {
                    self.group_item(inner, targets)?;
                }
                Ok(())
            }
            NodeEnum::RowExpr(row) => {
                for inner in row.args.iter().filter_map(node) {
                    self.group_item(inner, targets)?;
                }
                Ok(())
            }
            _ => self.order_item(item, targets, Reason::GroupBy),
        }
    }

    fn window_def(&mut self, w: &pb::WindowDef) -> Result<(), SqlError> {
        for part in w.partition_clause.iter().filter_map(node) {
            self.operand(part, |_| Reason::Window)?;
        }
        for sort in w.order_clause.iter().filter_map(node) {
            if let NodeEnum::SortBy(sort) = sort {
                if let Some(expr) = boxed(&sort.node) {
                    self.operand(expr, |_| Reason::Window)?;
                }
            }
        }
        for offset in [&w.start_offset, &w.end_offset] {
            if let Some(expr) = boxed(offset) {
                self.operand(expr, |_| Reason::Window)?;
            }
        }
        Ok(())
    }

    /// A target list (or `RETURNING` list): which output columns it produces, refusing
    /// encrypted values where `out` does not allow them.
    fn target_list(&mut self, targets: &[pb::Node], out: &Out) -> Result<Vec<Slot>, SqlError> {
        let mut slots = Vec::with_capacity(targets.len());
        for target in targets.iter().filter_map(node) {
            let NodeEnum::ResTarget(rt) = target else {
                continue;
            };
            let Some(val) = boxed(&rt.val) else { continue };
            if let NodeEnum::ColumnRef(c) = val {
                let f = fields(c);
                if matches!(f.last(), Some(Field::Star)) {
                    let expanded = self.expand_star(&f[..f.len() - 1]);
                    for slot in &expanded {
                        if let Some(enc) = slot.enc() {
                            accept_output(enc, out)?;
                        }
                    }
                    slots.extend(expanded);
                    continue;
                }
            }
            let name = if rt.name.is_empty() {
                output_name(val)
            } else {
                rt.name.clone()
            };
            match self.expr(val)? {
                Val::Enc(enc) => {
                    accept_output(&enc, out)?;
                    slots.push(Slot::Col {
                        name,
                        enc: Some(enc),
                    });
                }
                Val::Plain => slots.push(Slot::Col { name, enc: None }),
            }
        }
        Ok(slots)
    }

    // ----- INSERT / UPDATE / DELETE ---------------------------------------------------------

    /// The DML target: its item and its catalog entry (if known).
    fn dml_target(
        &mut self,
        rv: Option<&pb::RangeVar>,
    ) -> Result<(Item, Option<TableRef>), SqlError> {
        let Some(rv) = rv else {
            return Ok((
                Item {
                    refname: String::new(),
                    schema: None,
                    slots: vec![Slot::Unknown],
                    qualified_only: false,
                },
                None,
            ));
        };
        let table = self.resolve_catalog(rv);
        let item = self.relation_item(rv, false)?;
        Ok((item, table))
    }

    fn insert(&mut self, s: &pb::InsertStmt, out: &Out) -> Result<Vec<Slot>, SqlError> {
        let has_with = s.with_clause.is_some();
        if let Some(with) = &s.with_clause {
            self.with_clause(with)?;
        }
        let result = self.insert_body(s, out);
        if has_with {
            self.ctes.pop();
        }
        result
    }

    fn insert_body(&mut self, s: &pb::InsertStmt, out: &Out) -> Result<Vec<Slot>, SqlError> {
        let (target, table) = self.dml_target(s.relation.as_ref())?;
        let column = |name: &str| -> Option<EncCol> {
            target.slots.iter().find_map(|slot| match slot {
                Slot::Col { name: n, enc } if n == name => enc.clone(),
                _ => None,
            })
        };
        // The encrypted column (if any) each value position is for.
        let mut columns: Vec<Option<EncCol>> = Vec::new();
        if s.cols.is_empty() {
            if let Some(table) = &table {
                columns = table
                    .columns
                    .iter()
                    .map(|c| {
                        c.encrypted
                            .clone()
                            .map(|info| EncCol { info, origin: true })
                    })
                    .collect();
            }
        } else {
            for col in s.cols.iter().filter_map(node) {
                let NodeEnum::ResTarget(rt) = col else {
                    columns.push(None);
                    continue;
                };
                let enc = column(&rt.name);
                if let Some(enc) = &enc {
                    if !rt.indirection.is_empty() {
                        return Err(col_err(enc, Reason::Subscript));
                    }
                }
                columns.push(enc);
            }
        }

        match boxed(&s.select_stmt) {
            None => {}
            Some(NodeEnum::SelectStmt(source)) if is_plain_values(source) => {
                // VALUES rows cannot see the target table.
                self.levels.push(Level::default());
                let result = self.values_rows(source, &columns);
                self.levels.pop();
                result?;
            }
            Some(NodeEnum::SelectStmt(source)) => {
                if let Some(enc) = columns.iter().flatten().next() {
                    return Err(col_err(enc, Reason::InsertSelect));
                }
                self.levels.push(Level::default());
                let result = self.select(source, &Out::Refuse(Reason::CopiesCiphertext));
                self.levels.pop();
                result?;
            }
            Some(_) => {
                self.unanalysed("this INSERT source")?;
            }
        }

        self.levels.push(Level {
            items: vec![target.clone()],
        });
        let result = self.on_conflict_and_returning(s, &target, out);
        self.levels.pop();
        result
    }

    fn values_rows(
        &mut self,
        source: &pb::SelectStmt,
        columns: &[Option<EncCol>],
    ) -> Result<(), SqlError> {
        for row in &source.values_lists {
            let Some(NodeEnum::List(list)) = node(row) else {
                continue;
            };
            for (i, item) in list.items.iter().filter_map(node).enumerate() {
                match columns.get(i) {
                    Some(Some(enc)) => self.value_for(enc, item, ValueRole::Store)?,
                    _ => self.operand(item, |_| Reason::CopiesCiphertext)?,
                }
            }
        }
        Ok(())
    }

    fn on_conflict_and_returning(
        &mut self,
        s: &pb::InsertStmt,
        target: &Item,
        out: &Out,
    ) -> Result<Vec<Slot>, SqlError> {
        if let Some(conflict) = s.on_conflict_clause.as_deref() {
            if let Some(infer) = conflict.infer.as_deref() {
                if self.options.equality_search {
                    self.index_elems(
                        &infer.index_elems,
                        location(infer.location),
                        target,
                        Reason::ConflictArbiter,
                    )?;
                } else {
                    for elem in infer.index_elems.iter().filter_map(node) {
                        let NodeEnum::IndexElem(elem) = elem else {
                            continue;
                        };
                        if let Some(expr) = boxed(&elem.expr) {
                            self.operand(expr, |_| Reason::ConflictArbiter)?;
                        } else if let Some(enc) = target.slots.iter().find_map(|slot| match slot {
                            Slot::Col { name, enc } if *name == elem.name => enc.as_ref(),
                            _ => None,
                        }) {
                            return Err(col_err(enc, Reason::ConflictArbiter));
                        }
                    }
                }
                if let Some(cond) = boxed(&infer.where_clause) {
                    self.condition(cond)?;
                }
            }
            if OnConflictAction::try_from(conflict.action) == Ok(OnConflictAction::OnconflictUpdate)
            {
                self.level().items.push(Item {
                    refname: "excluded".into(),
                    schema: None,
                    slots: target.slots.clone(),
                    qualified_only: true,
                });
                self.set_clause(&conflict.target_list, target)?;
                if let Some(cond) = boxed(&conflict.where_clause) {
                    self.condition(cond)?;
                }
                self.level().items.retain(|i| !i.qualified_only);
            }
        }
        self.returning(s.returning_clause.as_ref(), target, out)
    }

    fn update(&mut self, s: &pb::UpdateStmt, out: &Out) -> Result<Vec<Slot>, SqlError> {
        let has_with = s.with_clause.is_some();
        if let Some(with) = &s.with_clause {
            self.with_clause(with)?;
        }
        let result = self.update_body(s, out);
        if has_with {
            self.ctes.pop();
        }
        result
    }

    fn update_body(&mut self, s: &pb::UpdateStmt, out: &Out) -> Result<Vec<Slot>, SqlError> {
        let (target, _) = self.dml_target(s.relation.as_ref())?;
        self.levels.push(Level {
            items: vec![target.clone()],
        });
        let result = (|| {
            for item in s.from_clause.iter().filter_map(node) {
                self.add_from_item(item)?;
            }
            self.set_clause(&s.target_list, &target)?;
            if let Some(cond) = boxed(&s.where_clause) {
                self.modifying += 1;
                let result = self.condition(cond);
                self.modifying -= 1;
                result?;
            }
            self.returning(s.returning_clause.as_ref(), &target, out)
        })();
        self.levels.pop();
        result
    }

    fn delete(&mut self, s: &pb::DeleteStmt, out: &Out) -> Result<Vec<Slot>, SqlError> {
        let has_with = s.with_clause.is_some();
        if let Some(with) = &s.with_clause {
            self.with_clause(with)?;
        }
        let result = (|| {
            let (target, _) = self.dml_target(s.relation.as_ref())?;
            self.levels.push(Level {
                items: vec![target.clone()],
            });
            let result = (|| {
                for item in s.using_clause.iter().filter_map(node) {
                    self.add_from_item(item)?;
                }
                if let Some(cond) = boxed(&s.where_clause) {
                    self.modifying += 1;
                    let result = self.condition(cond);
                    self.modifying -= 1;
                    result?;
                }
                self.returning(s.returning_clause.as_ref(), &target, out)
            })();
            self.levels.pop();
            result
        })();
        if has_with {
            self.ctes.pop();
        }
        result
    }

    /// `SET col = value, ...` of `UPDATE` and `ON CONFLICT DO UPDATE`.
    fn set_clause(&mut self, targets: &[pb::Node], target: &Item) -> Result<(), SqlError> {
        for t in targets.iter().filter_map(node) {
            let NodeEnum::ResTarget(rt) = t else { continue };
            let enc = target.slots.iter().find_map(|slot| match slot {
                Slot::Col { name, enc } if *name == rt.name => enc.clone(),
                _ => None,
            });
            if !rt.indirection.is_empty() {
                if let Some(enc) = &enc {
                    return Err(col_err(enc, Reason::Subscript));
                }
                for ind in rt.indirection.iter().filter_map(node) {
                    self.indirection(ind)?;
                }
            }
            let Some(mut val) = boxed(&rt.val) else {
                continue;
            };
            if let NodeEnum::MultiAssignRef(m) = val {
                let Some(source) = boxed(&m.source) else {
                    continue;
                };
                match source {
                    NodeEnum::RowExpr(row) => {
                        let index = usize::try_from(m.colno).ok().and_then(|c| c.checked_sub(1));
                        match index.and_then(|i| row.args.get(i)).and_then(node) {
                            Some(element) => val = element,
                            None => continue,
                        }
                    }
                    _ if m.ncolumns == 1 => val = source,
                    _ => {
                        // `SET (a, b) = (SELECT ...)`: one source for several columns.
                        if let Some(enc) = &enc {
                            return Err(col_err(enc, Reason::NotAValue));
                        }
                        if m.colno == 1 {
                            self.operand(source, |_| Reason::CopiesCiphertext)?;
                        }
                        continue;
                    }
                }
            }
            match &enc {
                Some(enc) => self.value_for(enc, val, ValueRole::Store)?,
                None => self.operand(val, |_| Reason::CopiesCiphertext)?,
            }
        }
        Ok(())
    }

    fn returning(
        &mut self,
        clause: Option<&pb::ReturningClause>,
        target: &Item,
        out: &Out,
    ) -> Result<Vec<Slot>, SqlError> {
        let Some(clause) = clause else {
            return Ok(Vec::new());
        };
        if !clause.options.is_empty() {
            if let Some(enc) = target.first_enc() {
                return Err(col_err(
                    enc,
                    Reason::NoOrigin {
                        what: "RETURNING WITH (OLD/NEW AS ...)".into(),
                    },
                ));
            }
        }
        // PostgreSQL 18: OLD.x and NEW.x. Their origin in RowDescription is not the table's,
        // so encrypted values through them are refused in a client target list.
        let taken: Vec<String> = self
            .level()
            .items
            .iter()
            .map(|i| i.refname.clone())
            .collect();
        for special in ["old", "new"] {
            if !taken.iter().any(|t| t == special) {
                let slots = target
                    .slots
                    .iter()
                    .cloned()
                    .map(|mut slot| {
                        if let Slot::Col { enc: Some(enc), .. } = &mut slot {
                            enc.origin = false;
                        }
                        slot
                    })
                    .collect();
                self.level().items.push(Item {
                    refname: special.into(),
                    schema: None,
                    slots,
                    qualified_only: true,
                });
            }
        }
        let result = self.target_list(&clause.exprs, out);
        self.level().items.retain(|i| !i.qualified_only);
        result
    }

    // ----- indexes and constraints -----------------------------------------------------------

    /// `CREATE [UNIQUE] INDEX ... ON t (col)`: a searchable column is indexed by its blind
    /// index (`(pgseal.blind_index(col))`), so lookups and uniqueness work on equal values
    /// rather than on ciphertexts, which differ for equal values.
    fn index_stmt(&mut self, ix: &pb::IndexStmt) -> Result<(), SqlError> {
        let Some(rv) = &ix.relation else {
            return Ok(());
        };
        let Some(table) = self.resolve_catalog(rv) else {
            return Ok(());
        };
        if !table.has_encrypted_columns() {
            return Ok(());
        }
        let item = self.relation_item(rv, false)?;
        self.levels.push(Level {
            items: vec![item.clone()],
        });
        let result = (|| {
            self.index_elems(
                &ix.index_params,
                location(rv.location),
                &item,
                Reason::Computation {
                    what: "an index expression".into(),
                },
            )?;
            if let Some(cond) = boxed(&ix.where_clause) {
                let before = self.searches.len();
                self.condition(cond)?;
                if let Some(search) = self.searches.get(before) {
                    // The index would hold the terms of today's index keys only.
                    return Err(SqlError::EncryptedColumn {
                        column: search.column.qualified_name.clone(),
                        reason: Reason::Unanalysed {
                            construct: "an equality search in an index predicate".into(),
                        },
                    });
                }
            }
            Ok(())
        })();
        self.levels.pop();
        result
    }

    /// The column list of an index or an `ON CONFLICT` arbiter: a searchable column becomes
    /// its blind index; `pgseal.blind_index(col)` written out is accepted; any other use of an
    /// encrypted column is refused with `reason` (or as not searchable).
    fn index_elems(
        &mut self,
        elems: &[pb::Node],
        list_after: Option<usize>,
        target: &Item,
        reason: Reason,
    ) -> Result<(), SqlError> {
        let mut spans: Option<Option<Vec<Range<usize>>>> = None;
        for (i, elem) in elems.iter().filter_map(node).enumerate() {
            let NodeEnum::IndexElem(elem) = elem else {
                continue;
            };
            if let Some(expr) = boxed(&elem.expr) {
                if self.blind_index_call(expr)? {
                    continue;
                }
                self.operand(expr, |_| reason.clone())?;
                continue;
            }
            let Some(enc) = target.slots.iter().find_map(|slot| match slot {
                Slot::Col { name, enc } if *name == elem.name => enc.clone(),
                _ => None,
            }) else {
                continue;
            };
            if !enc.info.searchable || !enc.info.logical_type.supports_equality() {
                return Err(col_err(&enc, Reason::NotSearchable));
            }
            if !elem.collation.is_empty() || !elem.opclass.is_empty() {
                return Err(col_err(
                    &enc,
                    Reason::Unanalysed {
                        construct: "a collation or operator class on an encrypted column".into(),
                    },
                ));
            }
            let sql = self.sql;
            let tokens = self.tokens;
            let spans =
                spans.get_or_insert_with(|| list_after.and_then(|p| tokens.paren_list_after(p)));
            let name_span = spans
                .as_ref()
                .filter(|s| s.len() == elems.len())
                .and_then(|s| s.get(i))
                .and_then(|span| tokens.tokens_span(span.start, 1))
                .filter(|span| {
                    sql.get(span.clone())
                        .and_then(crate::scan::identifier_name)
                        .is_some_and(|n| n == elem.name)
                })
                .ok_or_else(|| {
                    col_err(
                        &enc,
                        Reason::Unanalysed {
                            construct: "this index column list".into(),
                        },
                    )
                })?;
            let text = format!("(pgseal.blind_index({}))", &sql[name_span.clone()]);
            self.rewrites.push((name_span, text));
        }
        Ok(())
    }

    /// `pgseal.blind_index(col)` on a searchable encrypted column (an index expression an
    /// operator wrote out).
    fn blind_index_call(&mut self, expr: &NodeEnum) -> Result<bool, SqlError> {
        let NodeEnum::FuncCall(f) = expr else {
            return Ok(false);
        };
        let names: Vec<&str> = f.funcname.iter().filter_map(string_value).collect();
        if names != ["pgseal", "blind_index"] || f.args.len() != 1 {
            return Ok(false);
        }
        match f.args.first().and_then(node) {
            Some(arg @ NodeEnum::ColumnRef(_)) => match self.expr(arg)? {
                Val::Enc(enc) if enc.info.searchable => Ok(true),
                Val::Enc(enc) => Err(col_err(&enc, Reason::NotSearchable)),
                Val::Plain => Ok(false),
            },
            _ => Ok(false),
        }
    }

    // ----- values for encrypted columns -----------------------------------------------------

    /// A value stored into (or compared with) encrypted column `enc`: `$n`, a literal
    /// (optionally cast), `NULL`, `DEFAULT`, or the same column's own value.
    fn value_for(&mut self, enc: &EncCol, val: &NodeEnum, role: ValueRole) -> Result<(), SqlError> {
        match val {
            NodeEnum::ParamRef(p) => self.param_enc(p.number, enc, role),
            NodeEnum::SetToDefault(_) => Ok(()),
            NodeEnum::AConst(_) | NodeEnum::TypeCast(_) | NodeEnum::AExpr(_) => {
                self.literal_for(enc, val, role)
            }
            NodeEnum::ColumnRef(_) => match self.expr(val)? {
                Val::Enc(source) if source.info.column_id == enc.info.column_id => Ok(()),
                Val::Enc(source) => Err(col_err(&source, Reason::CopiesCiphertext)),
                Val::Plain => Err(col_err(enc, Reason::NotAValue)),
            },
            _ => Err(col_err(enc, Reason::NotAValue)),
        }
    }

    fn literal_for(
        &mut self,
        enc: &EncCol,
        val: &NodeEnum,
        role: ValueRole,
    ) -> Result<(), SqlError> {
        let (span, value) = self.literal_value(enc, val)?;
        self.literals.push(LiteralUse {
            span,
            value,
            column: enc.info.clone(),
            role,
        });
        Ok(())
    }

    /// A literal (optionally signed and cast) for encrypted column `enc`: its exact span and
    /// its value.
    fn literal_value(
        &mut self,
        enc: &EncCol,
        val: &NodeEnum,
    ) -> Result<(Range<usize>, Literal), SqlError> {
        let mut casts: Vec<&pb::TypeName> = Vec::new();
        let mut locations: Vec<usize> = Vec::new();
        let mut current = val;
        // `-5::numeric` parses as `-(5::numeric)`: a sign in front of a (cast) number.
        let mut negate = false;
        if let NodeEnum::AExpr(e) = current {
            let op = e.name.iter().filter_map(string_value).next_back();
            let unary = e.lexpr.is_none()
                && AExprKind::try_from(e.kind) == Ok(AExprKind::AexprOp)
                && matches!(op, Some("-" | "+"));
            match boxed(&e.rexpr) {
                Some(operand) if unary => {
                    negate = op == Some("-");
                    locations.extend(location(e.location));
                    current = operand;
                }
                _ => return Err(col_err(enc, Reason::NotAValue)),
            }
        }
        let signed = !locations.is_empty();
        let constant = loop {
            match current {
                NodeEnum::TypeCast(cast) => {
                    locations.extend(location(cast.location));
                    if let Some(type_name) = &cast.type_name {
                        locations.extend(location(type_name.location));
                        casts.push(type_name);
                    }
                    match boxed(&cast.arg) {
                        Some(arg) => current = arg,
                        None => return Err(col_err(enc, Reason::NotAValue)),
                    }
                }
                NodeEnum::AConst(c) => break c,
                NodeEnum::ParamRef(_) => return Err(col_err(enc, Reason::ParameterCast)),
                _ => return Err(col_err(enc, Reason::NotAValue)),
            }
        };
        locations.extend(location(constant.location));
        for type_name in casts {
            check_cast(enc, type_name)?;
        }
        let ty = enc.info.logical_type;
        let mismatch = |found: &str| SqlError::TypeMismatch {
            column: enc.info.qualified_name.clone(),
            expected: ty,
            found: found.to_string(),
        };
        let value = if constant.isnull {
            Literal::Null
        } else {
            match &constant.val {
                Some(a_const::Val::Sval(s)) => Literal::Text(s.sval.clone()),
                Some(a_const::Val::Ival(i)) => Literal::Number(i.ival.to_string()),
                Some(a_const::Val::Fval(f)) => Literal::Number(f.fval.clone()),
                Some(a_const::Val::Boolval(b)) => Literal::Bool(b.boolval),
                Some(a_const::Val::Bsval(_)) => return Err(mismatch("a bit-string literal")),
                None => Literal::Null,
            }
        };
        let value = match value {
            Literal::Number(n) if negate => Literal::Number(
                n.strip_prefix('-')
                    .map_or_else(|| format!("-{n}"), str::to_string),
            ),
            Literal::Number(n) => Literal::Number(n),
            _ if signed => return Err(col_err(enc, Reason::NotAValue)),
            other => other,
        };
        match &value {
            Literal::Number(_) if !number_fits(ty) => return Err(mismatch("a numeric literal")),
            Literal::Bool(_) if !bool_fits(ty) => return Err(mismatch("a boolean literal")),
            _ => {}
        }

        let (Some(&start), Some(&last)) = (locations.iter().min(), locations.iter().max()) else {
            return Err(col_err(enc, Reason::NotAValue));
        };
        let span = self
            .tokens
            .value_span(start, self.span.end)
            .filter(|span| last < span.end)
            .ok_or_else(|| col_err(enc, Reason::NotAValue))?;
        Ok((span, value))
    }

    // ----- parameters ------------------------------------------------------------------------

    fn record_param(&mut self, number: u16, role: ParamRole) -> Result<(), SqlError> {
        match self.param_roles.get(&number) {
            None => {
                self.param_roles.insert(number, role);
                Ok(())
            }
            Some(first) => {
                let compatible = match (first, &role) {
                    (ParamRole::Plain, ParamRole::Plain) => true,
                    (ParamRole::Enc(a), ParamRole::Enc(b)) => a.column_id == b.column_id,
                    (ParamRole::Search(_), ParamRole::Enc(_)) => {
                        // The stored use decides how the parameter's own slot is encrypted.
                        self.param_roles.insert(number, role);
                        return Ok(());
                    }
                    (ParamRole::Enc(_) | ParamRole::Search(_), ParamRole::Search(_)) => true,
                    _ => false,
                };
                if compatible {
                    Ok(())
                } else {
                    Err(SqlError::ParameterConflict {
                        number,
                        first: first.describe(),
                        second: role.describe(),
                    })
                }
            }
        }
    }

    fn param_plain(&mut self, number: i32) -> Result<(), SqlError> {
        match u16::try_from(number) {
            // PostgreSQL rejects $0 and out-of-range numbers itself.
            Ok(n) if n > 0 => self.record_param(n, ParamRole::Plain),
            _ => Ok(()),
        }
    }

    fn param_enc(&mut self, number: i32, enc: &EncCol, role: ValueRole) -> Result<(), SqlError> {
        let number = u16::try_from(number)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| col_err(enc, Reason::ParameterNumber))?;
        let recorded = match role {
            ValueRole::SearchTerm if self.options.equality_search => {
                ParamRole::Search(enc.info.clone())
            }
            _ => ParamRole::Enc(enc.info.clone()),
        };
        self.record_param(number, recorded)?;
        let known = self.params.iter().any(|p| {
            p.number == number && p.column.column_id == enc.info.column_id && p.role == role
        });
        if !known {
            self.params.push(ParamUse {
                number,
                column: enc.info.clone(),
                role,
            });
        }
        Ok(())
    }

    // ----- name resolution -------------------------------------------------------------------

    fn expand_star(&mut self, qualifier: &[Field<'_>]) -> Vec<Slot> {
        let names: Vec<&str> = qualifier
            .iter()
            .filter_map(|f| match f {
                Field::Name(n) => Some(*n),
                Field::Star => None,
            })
            .collect();
        match names.as_slice() {
            [] => self
                .levels
                .last()
                .map(|level| {
                    level
                        .items
                        .iter()
                        .filter(|i| !i.qualified_only)
                        .flat_map(|i| i.slots.clone())
                        .collect()
                })
                .unwrap_or_default(),
            [.., schema, table] => self
                .find_item(Some(schema), table)
                .or_else(|| self.find_item(None, table))
                .map(|i| i.slots.clone())
                .unwrap_or_else(|| vec![Slot::Unknown]),
            [table] => self
                .find_item(None, table)
                .map(|i| i.slots.clone())
                .unwrap_or_else(|| vec![Slot::Unknown]),
        }
    }

    /// The innermost item with this reference name (and schema, for unaliased relations).
    fn find_item(&self, schema: Option<&str>, refname: &str) -> Option<&Item> {
        self.levels.iter().rev().find_map(|level| {
            level.items.iter().find(|item| {
                item.refname == refname && schema.is_none_or(|s| item.schema.as_deref() == Some(s))
            })
        })
    }

    fn column_in(item: &Item, name: &str) -> Result<Val, SqlError> {
        let mut matches = item.slots.iter().filter_map(|slot| match slot {
            Slot::Col { name: n, enc } if n == name => Some(enc),
            _ => None,
        });
        let first = matches.next();
        let more: Vec<_> = matches.collect();
        match first {
            None => Ok(Val::Plain),
            Some(enc) if more.is_empty() => Ok(enc.clone().map_or(Val::Plain, Val::Enc)),
            Some(enc) => match enc.iter().chain(more.into_iter().flatten()).next() {
                Some(e) => Err(col_err(
                    e,
                    Reason::Ambiguous {
                        name: name.to_string(),
                    },
                )),
                None => Ok(Val::Plain),
            },
        }
    }

    fn resolve_column(&mut self, c: &pb::ColumnRef) -> Result<Val, SqlError> {
        let f = fields(c);
        if matches!(f.last(), Some(Field::Star)) {
            // `t.*` inside an expression: a whole-row value.
            let expanded = self.expand_star(&f[..f.len() - 1]);
            if let Some(enc) = expanded.iter().find_map(Slot::enc) {
                return Err(col_err(enc, Reason::WholeRow));
            }
            return Ok(Val::Plain);
        }
        let names: Vec<&str> = f
            .iter()
            .filter_map(|x| match x {
                Field::Name(n) => Some(*n),
                Field::Star => None,
            })
            .collect();
        match names.as_slice() {
            [] => Ok(Val::Plain),
            [name] => self.resolve_unqualified(name),
            [table, name] => match self.find_item(None, table) {
                Some(item) => Self::column_in(item, name),
                // `composite_column.field`
                None => self.field_of(table),
            },
            [schema, table, name] => match self.find_item(Some(schema), table) {
                Some(item) => Self::column_in(item, name),
                None => match self.find_item(None, schema) {
                    Some(item) => match Self::column_in(item, table)? {
                        Val::Enc(enc) => Err(col_err(&enc, Reason::Subscript)),
                        Val::Plain => Ok(Val::Plain),
                    },
                    None => Ok(Val::Plain),
                },
            },
            [.., schema, table, name] => match self.find_item(Some(schema), table) {
                Some(item) => Self::column_in(item, name),
                None => Ok(Val::Plain),
            },
        }
    }

    fn field_of(&mut self, column: &str) -> Result<Val, SqlError> {
        match self.resolve_unqualified(column)? {
            Val::Enc(enc) => Err(col_err(&enc, Reason::Subscript)),
            Val::Plain => Ok(Val::Plain),
        }
    }

    fn resolve_unqualified(&mut self, name: &str) -> Result<Val, SqlError> {
        for level in self.levels.iter().rev() {
            let mut found: Vec<&Option<EncCol>> = Vec::new();
            for item in level.items.iter().filter(|i| !i.qualified_only) {
                for slot in &item.slots {
                    if let Slot::Col { name: n, enc } = slot {
                        if n == name {
                            found.push(enc);
                        }
                    }
                }
            }
            match found.as_slice() {
                [] => continue,
                [single] => return Ok((*single).clone().map_or(Val::Plain, Val::Enc)),
                several => {
                    return match several.iter().find_map(|e| e.as_ref()) {
                        Some(enc) => Err(col_err(
                            enc,
                            Reason::Ambiguous {
                                name: name.to_string(),
                            },
                        )),
                        None => Ok(Val::Plain),
                    };
                }
            }
        }
        // Not a column: a whole-row reference to a relation of that name?
        if let Some(item) = self.find_item(None, name) {
            if let Some(enc) = item.first_enc() {
                return Err(col_err(enc, Reason::WholeRow));
            }
        }
        Ok(Val::Plain)
    }

    // ----- expressions -----------------------------------------------------------------------

    /// A condition (`WHERE`, `ON`, `HAVING`, `FILTER`): an encrypted column is not a boolean.
    fn condition(&mut self, expr: &NodeEnum) -> Result<(), SqlError> {
        self.operand(expr, |_| Reason::Condition)
    }

    /// An operand of a node that computes with it: an encrypted value is refused with
    /// `reason`.
    fn operand(
        &mut self,
        expr: &NodeEnum,
        reason: impl FnOnce(&EncCol) -> Reason,
    ) -> Result<(), SqlError> {
        match self.expr(expr)? {
            Val::Enc(enc) => {
                let reason = reason(&enc);
                Err(col_err(&enc, reason))
            }
            Val::Plain => Ok(()),
        }
    }

    fn operands(&mut self, exprs: &[pb::Node], reason: &Reason) -> Result<(), SqlError> {
        for expr in exprs.iter().filter_map(node) {
            self.operand(expr, |_| reason.clone())?;
        }
        Ok(())
    }

    fn expr(&mut self, expr: &NodeEnum) -> Result<Val, SqlError> {
        match expr {
            NodeEnum::ColumnRef(c) => self.resolve_column(c),
            NodeEnum::ParamRef(p) => {
                self.param_plain(p.number)?;
                Ok(Val::Plain)
            }
            NodeEnum::AConst(_)
            | NodeEnum::SqlvalueFunction(_)
            | NodeEnum::SetToDefault(_)
            | NodeEnum::CurrentOfExpr(_) => Ok(Val::Plain),
            NodeEnum::TypeCast(cast) => {
                if let Some(arg) = boxed(&cast.arg) {
                    let what = format!(
                        "cast to {}",
                        cast.type_name.as_ref().map_or("a type".into(), type_label)
                    );
                    self.operand(arg, |_| Reason::Computation { what })?;
                }
                Ok(Val::Plain)
            }
            NodeEnum::AExpr(e) => self.a_expr(e),
            NodeEnum::BoolExpr(b) => {
                for arg in b.args.iter().filter_map(node) {
                    self.condition(arg)?;
                }
                Ok(Val::Plain)
            }
            NodeEnum::NullTest(t) => {
                // IS [NOT] NULL on ciphertext is exact: NULL is stored as NULL.
                if let Some(arg) = boxed(&t.arg) {
                    self.expr(arg)?;
                }
                Ok(Val::Plain)
            }
            NodeEnum::BooleanTest(t) => {
                if let Some(arg) = boxed(&t.arg) {
                    self.condition(arg)?;
                }
                Ok(Val::Plain)
            }
            NodeEnum::FuncCall(f) => self.func_call(f),
            NodeEnum::NamedArgExpr(n) => match boxed(&n.arg) {
                Some(arg) => self.expr(arg),
                None => Ok(Val::Plain),
            },
            NodeEnum::SubLink(s) => self.sublink(s),
            NodeEnum::CaseExpr(c) => {
                if let Some(arg) = boxed(&c.arg) {
                    self.operand(arg, |_| Reason::Comparison {
                        operator: "CASE".into(),
                    })?;
                }
                let no_origin = Reason::NoOrigin {
                    what: "a CASE expression".into(),
                };
                for when in c.args.iter().filter_map(node) {
                    if let NodeEnum::CaseWhen(w) = when {
                        if let Some(cond) = boxed(&w.expr) {
                            if c.arg.is_some() {
                                self.operand(cond, |_| Reason::Comparison {
                                    operator: "CASE".into(),
                                })?;
                            } else {
                                self.condition(cond)?;
                            }
                        }
                        if let Some(result) = boxed(&w.result) {
                            self.operand(result, |_| no_origin.clone())?;
                        }
                    }
                }
                if let Some(default) = boxed(&c.defresult) {
                    self.operand(default, |_| no_origin.clone())?;
                }
                Ok(Val::Plain)
            }
            NodeEnum::CoalesceExpr(c) => {
                self.operands(
                    &c.args,
                    &Reason::NoOrigin {
                        what: "COALESCE".into(),
                    },
                )?;
                Ok(Val::Plain)
            }
            NodeEnum::MinMaxExpr(m) => {
                self.operands(
                    &m.args,
                    &Reason::Comparison {
                        operator: "GREATEST/LEAST".into(),
                    },
                )?;
                Ok(Val::Plain)
            }
            NodeEnum::RowExpr(r) => {
                self.operands(
                    &r.args,
                    &Reason::NoOrigin {
                        what: "a row constructor".into(),
                    },
                )?;
                Ok(Val::Plain)
            }
            NodeEnum::AArrayExpr(a) => {
                self.operands(
                    &a.elements,
                    &Reason::NoOrigin {
                        what: "an ARRAY constructor".into(),
                    },
                )?;
                Ok(Val::Plain)
            }
            NodeEnum::CollateClause(c) => {
                if let Some(arg) = boxed(&c.arg) {
                    self.operand(arg, |_| Reason::Computation {
                        what: "COLLATE".into(),
                    })?;
                }
                Ok(Val::Plain)
            }
            NodeEnum::AIndirection(i) => {
                if let Some(arg) = boxed(&i.arg) {
                    self.operand(arg, |_| Reason::Subscript)?;
                }
                for ind in i.indirection.iter().filter_map(node) {
                    self.indirection(ind)?;
                }
                Ok(Val::Plain)
            }
            NodeEnum::GroupingFunc(g) => {
                self.operands(&g.args, &Reason::GroupBy)?;
                Ok(Val::Plain)
            }
            NodeEnum::List(l) => {
                self.operands(
                    &l.items,
                    &Reason::Computation {
                        what: "a list".into(),
                    },
                )?;
                Ok(Val::Plain)
            }
            NodeEnum::XmlExpr(_) | NodeEnum::XmlSerialize(_) => self.unanalysed("XML functions"),
            NodeEnum::JsonObjectConstructor(_)
            | NodeEnum::JsonArrayConstructor(_)
            | NodeEnum::JsonArrayQueryConstructor(_)
            | NodeEnum::JsonObjectAgg(_)
            | NodeEnum::JsonArrayAgg(_)
            | NodeEnum::JsonFuncExpr(_)
            | NodeEnum::JsonIsPredicate(_)
            | NodeEnum::JsonParseExpr(_)
            | NodeEnum::JsonScalarExpr(_)
            | NodeEnum::JsonSerializeExpr(_) => self.unanalysed("SQL/JSON functions"),
            _ => self.unanalysed("this expression"),
        }
    }

    fn indirection(&mut self, ind: &NodeEnum) -> Result<(), SqlError> {
        if let NodeEnum::AIndices(idx) = ind {
            for bound in [&idx.lidx, &idx.uidx] {
                if let Some(expr) = boxed(bound) {
                    self.operand(expr, |_| Reason::Subscript)?;
                }
            }
        }
        Ok(())
    }

    fn a_expr(&mut self, e: &pb::AExpr) -> Result<Val, SqlError> {
        let op = e
            .name
            .iter()
            .filter_map(string_value)
            .next_back()
            .unwrap_or("?");
        let kind = AExprKind::try_from(e.kind).unwrap_or(AExprKind::Undefined);
        let eq_search = self.options.equality_search;
        let reason = match kind {
            AExprKind::AexprOp => match op {
                "=" if !self.options.equality_search => Reason::EqualitySearch,
                "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" | "~~" | "!~~" | "~~*" | "!~~*"
                | "~" | "~*" | "!~" | "!~*" => Reason::Comparison {
                    operator: op.to_string(),
                },
                _ => Reason::Computation {
                    what: format!("operator {op}"),
                },
            },
            AExprKind::AexprOpAny | AExprKind::AexprOpAll if op == "=" && !eq_search => {
                Reason::EqualitySearch
            }
            AExprKind::AexprOpAny => Reason::Comparison {
                operator: format!("{op} ANY"),
            },
            AExprKind::AexprOpAll => Reason::Comparison {
                operator: format!("{op} ALL"),
            },
            AExprKind::AexprNotDistinct if !eq_search => Reason::EqualitySearch,
            AExprKind::AexprNotDistinct => Reason::Comparison {
                operator: "IS NOT DISTINCT FROM".into(),
            },
            AExprKind::AexprDistinct => Reason::Comparison {
                operator: "IS DISTINCT FROM".into(),
            },
            AExprKind::AexprNullif => Reason::Comparison {
                operator: "NULLIF".into(),
            },
            AExprKind::AexprIn => Reason::Comparison {
                operator: if op == "=" { "IN" } else { "NOT IN" }.into(),
            },
            AExprKind::AexprLike => Reason::Comparison {
                operator: "LIKE".into(),
            },
            AExprKind::AexprIlike => Reason::Comparison {
                operator: "ILIKE".into(),
            },
            AExprKind::AexprSimilar => Reason::Comparison {
                operator: "SIMILAR TO".into(),
            },
            AExprKind::AexprBetween
            | AExprKind::AexprNotBetween
            | AExprKind::AexprBetweenSym
            | AExprKind::AexprNotBetweenSym => Reason::Comparison {
                operator: "BETWEEN".into(),
            },
            AExprKind::Undefined => Reason::Computation {
                what: format!("operator {op}"),
            },
        };
        let eq = eq_search;
        if kind == AExprKind::AexprOp && matches!(op, "=" | "<>") {
            // Two encrypted columns: their blind indexes come from different keys.
            if let (Some(l @ NodeEnum::ColumnRef(_)), Some(r @ NodeEnum::ColumnRef(_))) =
                (boxed(&e.lexpr), boxed(&e.rexpr))
            {
                if let (Val::Enc(enc), Val::Enc(_)) = (self.expr(l)?, self.expr(r)?) {
                    return Err(col_err(&enc, self.column_equality()));
                }
            }
        }
        // (a list of values, negated)
        let search = match (kind, op) {
            (AExprKind::AexprOp, "=") => Some((false, false)),
            (AExprKind::AexprOp, "<>") if eq => Some((false, true)),
            (AExprKind::AexprIn, "=") if eq => Some((true, false)),
            (AExprKind::AexprIn, "<>") if eq => Some((true, true)),
            _ => None,
        };
        if let Some((list, negated)) = search {
            if self.search(e, list, negated)? {
                return Ok(Val::Plain);
            }
        }
        for side in [&e.lexpr, &e.rexpr] {
            match boxed(side) {
                // `x IN (a, b)`, `BETWEEN a AND b`, `(a, b) = (c, d)`: each element is compared.
                Some(NodeEnum::List(list)) => self.operands(&list.items, &reason)?,
                Some(NodeEnum::RowExpr(row)) => self.operands(&row.args, &reason)?,
                Some(operand) => self.operand(operand, |_| reason.clone())?,
                None => {}
            }
        }
        Ok(Val::Plain)
    }

    /// An equality predicate between an encrypted column and values (`col = v`, `v = col`,
    /// `col <> v`, `col [NOT] IN (v, ...)`): recorded as a [`SearchUse`] when the caller
    /// supports equality search and the column does. `Ok(false)`: not this form (the caller
    /// refuses it as a comparison if it involves an encrypted column).
    fn search(&mut self, e: &pb::AExpr, list: bool, negated: bool) -> Result<bool, SqlError> {
        let (Some(left), Some(right)) = (boxed(&e.lexpr), boxed(&e.rexpr)) else {
            return Ok(false);
        };
        if list {
            let NodeEnum::List(items) = right else {
                return Ok(false);
            };
            let values: Vec<&NodeEnum> = items.items.iter().filter_map(node).collect();
            if values.is_empty() || !values.iter().all(|v| is_search_value(v)) {
                return Ok(false);
            }
            return self.search_use(left, &values, true, negated);
        }
        if is_search_value(right) && self.search_use(left, &[right], false, negated)? {
            return Ok(true);
        }
        if is_search_value(left) {
            return self.search_use(right, &[left], false, negated);
        }
        Ok(false)
    }

    fn search_use(
        &mut self,
        column: &NodeEnum,
        values: &[&NodeEnum],
        list: bool,
        negated: bool,
    ) -> Result<bool, SqlError> {
        let NodeEnum::ColumnRef(cref) = column else {
            return Ok(false);
        };
        let Val::Enc(enc) = self.expr(column)? else {
            return Ok(false);
        };
        if !self.options.equality_search {
            return Err(col_err(&enc, Reason::EqualitySearch));
        }
        if !enc.info.searchable || !enc.info.logical_type.supports_equality() {
            return Err(col_err(&enc, Reason::NotSearchable));
        }
        let unanalysed = |enc: &EncCol| {
            col_err(
                enc,
                Reason::Unanalysed {
                    construct: "this form of equality predicate".into(),
                },
            )
        };
        let column_span = location(cref.location)
            .and_then(|start| {
                self.tokens
                    .tokens_span(start, (2 * cref.fields.len()).saturating_sub(1))
            })
            .ok_or_else(|| unanalysed(&enc))?;
        let mut span = column_span.clone();
        let mut terms = Vec::with_capacity(values.len());
        let mut term_spans = Vec::with_capacity(values.len());
        for value in values {
            let value_span = match value {
                NodeEnum::ParamRef(p) => {
                    self.param_enc(p.number, &enc, ValueRole::SearchTerm)?;
                    let number = u16::try_from(p.number).map_err(|_| unanalysed(&enc))?;
                    terms.push(SearchValue::Param(number));
                    location(p.location)
                        .and_then(|start| self.tokens.tokens_span(start, 1))
                        .ok_or_else(|| unanalysed(&enc))?
                }
                _ => {
                    let (value_span, literal) = self.literal_value(&enc, value)?;
                    terms.push(SearchValue::Literal(literal));
                    value_span
                }
            };
            span = span.start.min(value_span.start)..span.end.max(value_span.end);
            term_spans.push(value_span);
        }
        if list {
            let end = self
                .tokens
                .close_paren_after(span.end)
                .ok_or_else(|| unanalysed(&enc))?;
            span = span.start..end;
        }
        // `(email) = $1` would leave an unmatched parenthesis behind the replacement.
        if !self.tokens.balanced(&span) {
            return Err(unanalysed(&enc));
        }
        self.searches.push(SearchUse {
            span,
            column_span,
            column: enc.info.clone(),
            terms,
            term_spans,
            negated,
            modifies: self.modifying > 0,
        });
        Ok(true)
    }

    /// Why two encrypted columns cannot be compared (`a.email = b.email`, `JOIN ... USING`).
    fn column_equality(&self) -> Reason {
        if self.options.equality_search {
            Reason::ColumnEquality
        } else {
            Reason::EqualitySearch
        }
    }

    fn func_call(&mut self, f: &pb::FuncCall) -> Result<Val, SqlError> {
        let names: Vec<&str> = f.funcname.iter().filter_map(string_value).collect();
        let name = names.last().copied().unwrap_or("?");
        let is_count = name == "count"
            && (names.len() == 1 || names.first() == Some(&"pg_catalog"))
            && f.args.len() == 1
            && !f.agg_within_group;
        if let Some(over) = &f.over {
            self.window_def(over)?;
        }
        if let Some(filter) = boxed(&f.agg_filter) {
            self.condition(filter)?;
        }
        for sort in f.agg_order.iter().filter_map(node) {
            if let NodeEnum::SortBy(sort) = sort {
                if let Some(expr) = boxed(&sort.node) {
                    self.operand(expr, |_| Reason::OrderBy)?;
                }
            }
        }
        for arg in f.args.iter().filter_map(node) {
            let Val::Enc(enc) = self.expr(arg)? else {
                continue;
            };
            let reason = if is_count && f.agg_distinct {
                Reason::CountDistinct
            } else if is_count {
                // count(enc) counts non-NULL values, exactly as on plaintext.
                continue;
            } else if f.over.is_some() {
                Reason::Computation {
                    what: format!("window function {name}()"),
                }
            } else if AGGREGATES.contains(&name) || f.agg_distinct || !f.agg_order.is_empty() {
                Reason::Aggregate {
                    name: name.to_string(),
                }
            } else {
                Reason::Computation {
                    what: format!("function {name}()"),
                }
            };
            return Err(col_err(&enc, reason));
        }
        Ok(Val::Plain)
    }

    fn sublink(&mut self, s: &pb::SubLink) -> Result<Val, SqlError> {
        use pb::SubLinkType as T;
        let kind = T::try_from(s.sub_link_type).unwrap_or(T::Undefined);
        let compare = Reason::Comparison {
            operator: if s.oper_name.is_empty() {
                "IN".to_string()
            } else {
                let op = s
                    .oper_name
                    .iter()
                    .filter_map(string_value)
                    .next_back()
                    .unwrap_or("?");
                format!("{op} ANY/ALL")
            },
        };
        if let Some(test) = boxed(&s.testexpr) {
            self.operand(test, |_| compare.clone())?;
        }
        let out = match kind {
            T::ExistsSublink => Out::Exists,
            T::ExprSublink => Out::Refuse(Reason::NoOrigin {
                what: "a scalar subquery".into(),
            }),
            T::ArraySublink => Out::Refuse(Reason::NoOrigin {
                what: "ARRAY(subquery)".into(),
            }),
            T::MultiexprSublink => Out::Refuse(Reason::CopiesCiphertext),
            T::AnySublink | T::AllSublink | T::RowcompareSublink => Out::Refuse(compare),
            T::CteSublink | T::Undefined => return self.unanalysed("this subquery"),
        };
        match boxed(&s.subselect) {
            Some(NodeEnum::SelectStmt(select)) => {
                self.select(select, &out)?;
                Ok(Val::Plain)
            }
            _ => self.unanalysed("this subquery"),
        }
    }
}

fn accept_output(enc: &EncCol, out: &Out) -> Result<(), SqlError> {
    match out {
        Out::Client if !enc.origin => Err(col_err(
            enc,
            Reason::NoOrigin {
                what: "RETURNING OLD/NEW or a recursive query".into(),
            },
        )),
        Out::Client | Out::Derived | Out::Exists => Ok(()),
        Out::Refuse(reason) => Err(col_err(enc, reason.clone())),
    }
}

/// Apply `AS alias(a, b, ...)` column names by position.
fn rename(mut slots: Vec<Slot>, colnames: Option<&[pb::Node]>) -> Result<Vec<Slot>, SqlError> {
    let Some(colnames) = colnames.filter(|c| !c.is_empty()) else {
        return Ok(slots);
    };
    let mut exact = true;
    for (i, slot) in slots.iter_mut().enumerate() {
        match slot {
            Slot::Unknown => exact = false,
            Slot::Col { name, enc } => {
                let new = if exact {
                    colnames.get(i).and_then(string_value)
                } else {
                    None
                };
                if let Some(new) = new {
                    *name = new.to_string();
                } else if !exact && i < colnames.len() {
                    // Positions after a relation of unknown width cannot be matched to
                    // aliases: an encrypted column there would be lost track of.
                    if let Some(enc) = enc {
                        return Err(col_err(
                            enc,
                            Reason::Unanalysed {
                                construct: "column aliases over a relation pgseal does not know"
                                    .into(),
                            },
                        ));
                    }
                }
            }
        }
    }
    Ok(slots)
}

/// The forms a value compared with an encrypted column may take: `$n`, a literal, `NULL`, a
/// cast or signed literal.
fn is_search_value(value: &NodeEnum) -> bool {
    matches!(
        value,
        NodeEnum::ParamRef(_) | NodeEnum::AConst(_) | NodeEnum::TypeCast(_) | NodeEnum::AExpr(_)
    )
}

fn is_plain_values(s: &pb::SelectStmt) -> bool {
    !s.values_lists.is_empty()
        && s.with_clause.is_none()
        && s.sort_clause.is_empty()
        && s.limit_count.is_none()
        && s.limit_offset.is_none()
        && s.locking_clause.is_empty()
}

/// The column name PostgreSQL gives an unnamed target (close enough for resolving references
/// to derived tables; unmatched names only make references resolve as plaintext columns of
/// unknown relations, which PostgreSQL rejects itself).
fn output_name(val: &NodeEnum) -> String {
    match val {
        NodeEnum::ColumnRef(c) => match fields(c).last() {
            Some(Field::Name(n)) => (*n).to_string(),
            _ => "?column?".into(),
        },
        NodeEnum::TypeCast(cast) => match boxed(&cast.arg) {
            Some(arg @ NodeEnum::ColumnRef(_)) => output_name(arg),
            _ => cast
                .type_name
                .as_ref()
                .and_then(|t| t.names.iter().filter_map(string_value).next_back())
                .unwrap_or("?column?")
                .to_string(),
        },
        NodeEnum::FuncCall(f) => f
            .funcname
            .iter()
            .filter_map(string_value)
            .next_back()
            .unwrap_or("?column?")
            .to_string(),
        _ => "?column?".into(),
    }
}

fn qualified(table: &TableRef) -> String {
    format!("{}.{}", table.schema, table.name)
}

fn type_label(t: &pb::TypeName) -> String {
    let names: Vec<&str> = t
        .names
        .iter()
        .filter_map(string_value)
        .filter(|n| *n != "pg_catalog")
        .collect();
    let mut label = names.join(".");
    if !t.array_bounds.is_empty() {
        label.push_str("[]");
    }
    label
}

/// A cast on a literal for an encrypted column must be to the column's type or to a text type
/// (the proxy parses the text as the column's type), without a modifier (PostgreSQL would
/// truncate or round; the proxy would not).
fn check_cast(enc: &EncCol, t: &pb::TypeName) -> Result<(), SqlError> {
    let ty = enc.info.logical_type;
    if !t.typmods.is_empty() {
        return Err(col_err(enc, Reason::TypeModifier));
    }
    let names: Vec<&str> = t.names.iter().filter_map(string_value).collect();
    let name = match names.as_slice() {
        [name] | ["pg_catalog", name] => Some(*name),
        _ => None,
    };
    let fits = !t.setof
        && !t.pct_type
        && t.array_bounds.is_empty()
        && name.is_some_and(|n| n == ty.sql_name() || matches!(n, "text" | "varchar" | "unknown"));
    if fits {
        Ok(())
    } else {
        Err(SqlError::TypeMismatch {
            column: enc.info.qualified_name.clone(),
            expected: ty,
            found: format!("cast to {}", type_label(t)),
        })
    }
}

/// Whether PostgreSQL would accept a numeric constant for a column of this type.
fn number_fits(ty: LogicalType) -> bool {
    matches!(
        ty,
        LogicalType::Int2
            | LogicalType::Int4
            | LogicalType::Int8
            | LogicalType::Float4
            | LogicalType::Float8
            | LogicalType::Numeric
            | LogicalType::Text
            | LogicalType::Varchar
            | LogicalType::Jsonb
    )
}

/// Whether PostgreSQL would accept `TRUE`/`FALSE` for a column of this type.
fn bool_fits(ty: LogicalType) -> bool {
    matches!(
        ty,
        LogicalType::Bool | LogicalType::Text | LogicalType::Varchar
    )
}
