//! The per-session [`MessageHook`] that encrypts and decrypts.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use pgseal_sql::{
    Analysis, EncryptedColumnInfo, Literal, SearchUse, SearchValue, SqlError, ValueRole,
};
use pgseal_value::{
    assign, canonical_to_client, decode_binary, encode_canonical, index_input, is_assignable,
    parse_text, LogicalType, SessionSettings, Value, ValueError,
};
use pgseal_wire::backend::{
    DataRow, ErrorFields, FieldDescription, ParameterDescription, ParameterStatus, ReadyForQuery,
    RowDescription, TransactionStatus, BIND_COMPLETE_TAG, CLOSE_COMPLETE_TAG,
    EMPTY_QUERY_RESPONSE_TAG, ERROR_RESPONSE_TAG, NO_DATA_TAG, PARSE_COMPLETE_TAG,
    PORTAL_SUSPENDED_TAG,
};
use pgseal_wire::frontend::{
    Bind, Close, Describe, Execute, Parse, Query, TargetKind, FLUSH_TAG, SYNC_TAG,
};
use pgseal_wire::{Format, Frame, WireError};

use super::analyzer::analyze_deep;
use super::catalog::{
    ColumnCrypto, DbCatalog, DbHandle, HeldCatalog, SnapshotState, SnapshotView, Unavailable,
};
use super::copy::{self, CopyState};
use super::settings::{parse_search_path, Tracker, Values, DEFAULT_SEARCH_PATH, NO_ROLE, TRACKED};
use super::settings_syntax::Control;
use crate::session::{BackendVerdict, FrontendVerdict, HookWait, MessageHook, SessionState};

#[path = "cutover.rs"]
mod cutover;
#[path = "plan_cache.rs"]
mod plan_cache;
use plan_cache::{Analyzed, PlanCache};

use super::names::ByName;

/// SQLSTATE of a value that cannot be opened: `data_corrupted`.
pub(crate) const CORRUPTED: &str = "XX001";
/// How long a statement waits for its database's catalog to (re)load before the session
/// gives up waiting and fails closed.
const CATALOG_WAIT: Duration = Duration::from_secs(30);
/// Tag of `CommandComplete`.
const COMMAND_COMPLETE_TAG: u8 = b'C';
/// Tag of `FunctionCall`.
const FUNCTION_CALL_TAG: u8 = b'F';
/// OID of `bytea`.
const BYTEA_OID: u32 = 17;
/// Blind indexes shorter than this make an `UPDATE`/`DELETE` by equality refused: distinct
/// values would collide often enough to change rows that were not meant.
const MIN_MODIFYING_INDEX_BYTES: usize = 8;
/// OID of `json`: a `json` parameter for a `jsonb` column is read as its text.
const JSON_OID: u32 = 114;
/// Client-declared parameter types read as text whatever the column's type.
const TEXT_LIKE_OIDS: [u32; 3] = [25, 1043, 705];

/// How a result column is produced for the client.
#[derive(Debug, Clone)]
enum ColPlan {
    /// Passed through.
    Plain,
    /// A `bytea` of unknown origin: checked not to carry a pgseal ciphertext.
    CheckBytea { server_binary: bool },
    /// An encrypted column: opened and produced in the client's format.
    Encrypted {
        crypto: ColumnCrypto,
        server_binary: bool,
        client_binary: bool,
    },
}

/// How the rows of one result are produced.
#[derive(Debug)]
struct ResultPlan {
    catalog: HeldCatalog,
    cols: Vec<ColPlan>,
    /// The first portal description rewritten for this plan: (as received, as sent). A shared
    /// plan serves a portal per execution, and libpq describes each one; the server sends
    /// the same description each time, so it is rewritten once.
    portal_description: OnceLock<(Bytes, Frame)>,
}

impl ResultPlan {
    fn new(
        catalog: HeldCatalog,
        fields: &[FieldDescription],
        server_binary: impl Fn(usize) -> bool,
        client_binary: impl Fn(usize) -> bool,
    ) -> Self {
        let cols = fields
            .iter()
            .enumerate()
            .map(
                |(i, f)| match catalog.encrypted_column(f.table_oid, f.column_attr) {
                    Some(crypto) if f.table_oid != 0 => ColPlan::Encrypted {
                        crypto: crypto.clone(),
                        server_binary: server_binary(i),
                        client_binary: client_binary(i),
                    },
                    _ if f.type_oid == BYTEA_OID => ColPlan::CheckBytea {
                        server_binary: server_binary(i),
                    },
                    _ => ColPlan::Plain,
                },
            )
            .collect();
        Self {
            catalog,
            cols,
            portal_description: OnceLock::new(),
        }
    }

    fn passthrough(&self) -> bool {
        self.cols.iter().all(|c| matches!(c, ColPlan::Plain))
    }

    /// The fields as the client must see them: encrypted columns with their logical type and
    /// the client's format.
    fn rewrite_fields(&self, fields: &mut [FieldDescription], keep_format: bool) {
        for (field, col) in fields.iter_mut().zip(&self.cols) {
            if let ColPlan::Encrypted {
                crypto,
                client_binary,
                ..
            } = col
            {
                let ty = crypto.logical_type;
                field.type_oid = ty.oid();
                field.type_size = ty
                    .fixed_binary_len()
                    .and_then(|len| i16::try_from(len).ok())
                    .unwrap_or(-1);
                field.type_modifier = -1;
                if !keep_format {
                    field.format = i16::from(*client_binary);
                }
            }
        }
    }
}

/// A simple-protocol `RowDescription` as received, with the plan and the description sent for
/// it. Clients repeat the same queries, so the next one usually describes the same columns:
/// building the plan (a catalog lookup per column) and re-encoding the description took a
/// tenth of the proxy's CPU on pgbench's simple select-only run.
struct SimpleDescription {
    received: Bytes,
    /// Holds the catalog it was made with, which identifies it while the plan lives.
    plan: Arc<ResultPlan>,
    sent: Frame,
}

/// One value a prepared search compares with: its blind indexes are computed at each `Bind`,
/// under the index keys loaded then.
enum BoundTerm {
    /// A literal of the statement (`None`: `NULL`).
    Literal(Option<Value>),
    /// A client parameter (0-based).
    Param(usize),
}

/// A search predicate of a prepared statement. Its terms travel in `bytea` parameters the
/// proxy appends to the client's, `slots` per value, compared with
/// `= ANY(ARRAY[$a, $b, ...])`: an array of single parameters (rather than one `bytea[]`
/// parameter) gives the planner the array's length, so the server's generic plan costs what a
/// custom plan does and PostgreSQL stops re-planning every execution (measured: the lookup
/// then costs what a plaintext one does). One slot more than the column's index key versions
/// at `Parse` leaves room for a rotation while the statement lives; unused slots repeat a term.
struct SearchBinding {
    column: EncryptedColumnInfo,
    terms: Vec<BoundTerm>,
    slots: usize,
}

impl std::fmt::Debug for SearchBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The literal terms are plaintext.
        f.debug_struct("SearchBinding")
            .field("column", &self.column.qualified_name)
            .field("terms", &self.terms.len())
            .field("slots", &self.slots)
            .finish()
    }
}

impl SearchBinding {
    fn parameters(&self) -> usize {
        self.terms.len() * self.slots
    }
}

/// What fills the parameters the proxy appends to a prepared statement's own, at each `Bind`.
enum Appended {
    /// A search predicate's terms.
    Search(SearchBinding),
    /// A literal for an encrypted column. It is sealed afresh at every `Bind`: sealed once
    /// into the statement text, every execution would store the same ciphertext, showing
    /// which rows hold this statement's value.
    Literal {
        column: EncryptedColumnInfo,
        value: Value,
    },
}

impl std::fmt::Debug for Appended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Appended::Search(search) => search.fmt(f),
            // The value is plaintext.
            Appended::Literal { column, .. } => f
                .debug_struct("Literal")
                .field("column", &column.qualified_name)
                .finish_non_exhaustive(),
        }
    }
}

impl Appended {
    fn parameters(&self) -> usize {
        match self {
            Appended::Search(search) => search.parameters(),
            Appended::Literal { .. } => 1,
        }
    }
}

/// The number the next appended parameter gets (1-based, after the client's own).
fn next_appended(client_params: usize, appended: &[Appended]) -> usize {
    client_params + appended.iter().map(Appended::parameters).sum::<usize>() + 1
}

/// A prepared statement as this session knows it.
#[derive(Debug)]
struct Statement {
    id: u64,
    /// Encrypted `$n` parameters: (index, column). Sealed at `Bind` unless the parameter is
    /// only a search term (`search_only`).
    params: Vec<(usize, EncryptedColumnInfo)>,
    /// Parameters (0-based) used only as search terms: their own slot is sent as `NULL`, their
    /// value goes into the search's appended parameter.
    search_only: Vec<usize>,
    /// Parameters the client sends (the server expects these plus the search slots).
    client_params: usize,
    /// What fills the parameters the proxy appends after the client's, in order.
    appended: Vec<Appended>,
    /// Parameter types as the client declared them.
    declared: Vec<u32>,
    invalidates_schema: bool,
    /// The result columns, once a `Describe` of the statement told them (empty: no rows).
    fields: Option<Vec<FieldDescription>>,
    /// The result plan its last `Bind` built: the next `Bind` asking for the same result
    /// formats under the same catalog shares it instead of building its own (drivers send a
    /// `Bind` per execution).
    last_plan: Option<SharedPlan>,
    /// What it was prepared from, to prepare it again after a column migration (cutover.rs).
    origin: cutover::Origin,
    /// What its text does to tracked settings: done each time a portal of it is executed,
    /// as on the server, not when it is prepared.
    controls: Vec<Control>,
}

impl Statement {
    /// The result plan of its last `Bind`, if a `Bind` asking for `formats` under `catalog`
    /// may share it.
    fn shared_plan(
        &self,
        formats: impl IntoIterator<Item = i16>,
        catalog: &HeldCatalog,
    ) -> Option<&SharedPlan> {
        let shared = self.last_plan.as_ref()?;
        let same_catalog = shared
            .slot
            .get()
            .is_some_and(|plan| Arc::ptr_eq(&plan.catalog, catalog));
        (same_catalog && shared.client_formats.iter().copied().eq(formats)).then_some(shared)
    }
}

/// A result plan a `Bind` built, kept on its statement for the next `Bind`s.
#[derive(Debug)]
struct SharedPlan {
    /// The result formats the client asked for.
    client_formats: Arc<[i16]>,
    slot: PlanSlot,
    /// The result formats the server is asked for in their place, when they differ: encrypted
    /// columns are fetched in binary.
    server_formats: Option<Arc<[i16]>>,
}

/// What became of a `Bind` that may share its statement's last plan.
enum BindShare {
    /// The statement has no plan to share with it: it is planned in full.
    NotShared,
    /// Shared; the `Bind` goes to the server as it came.
    AsSent,
    /// Shared; the `Bind` goes with the result formats the plan fetches in.
    Rewritten(Frame),
}

/// Where a portal's result plan lands once known (at `Bind`, or from a `Describe`).
type PlanSlot = Arc<OnceLock<Arc<ResultPlan>>>;

#[derive(Debug)]
struct Portal {
    slot: PlanSlot,
    client_formats: Arc<[i16]>,
    invalidates_schema: bool,
    /// The statement it was bound from (name, id), to learn that statement's result columns
    /// from a `Describe` of the portal.
    statement: Option<(String, u64)>,
    /// The statement's setting changes, done at each `Execute`.
    controls: Vec<Control>,
}

/// What the server owes for one message sent to it, in order.
#[derive(Debug)]
enum Expect {
    ParseComplete,
    BindComplete,
    CloseComplete,
    /// `ParameterDescription` then `RowDescription` or `NoData`.
    DescribeStatement {
        name: String,
        id: u64,
        /// Encrypted parameters: (index, type OID to report).
        params: Vec<(usize, u32)>,
        /// Parameters the client knows of, when the proxy appended its own after them.
        client_params: Option<usize>,
        injected: bool,
    },
    /// `RowDescription` or `NoData`.
    DescribePortal {
        slot: PlanSlot,
        client_formats: Arc<[i16]>,
        injected: bool,
        /// The portal's statement (name, id), whose result columns this answer also gives.
        statement: Option<(String, u64)>,
    },
    /// Rows, then `CommandComplete`, `EmptyQueryResponse` or `PortalSuspended`.
    Execute {
        slot: Option<PlanSlot>,
        invalidates_schema: bool,
    },
    /// `ReadyForQuery` after `Sync`.
    Sync,
    /// Everything up to `ReadyForQuery` of a `Query` or `FunctionCall`.
    Query {
        invalidates_schema: bool,
    },
    /// `CloseComplete` or `ParseComplete` of a statement the proxy prepared again
    /// (cutover.rs): not the client's. The `Parse`'s carries the statement (name, id): if its
    /// reply never comes (an error discarded it), the statement is prepared again later.
    Reprepared {
        statement: Option<(String, u64)>,
    },
}

impl Expect {
    fn is_sync_point(&self) -> bool {
        matches!(self, Expect::Sync | Expect::Query { .. })
    }
}

/// The encryption layer of one session.
pub(crate) struct EncryptHook {
    db: Arc<DbHandle>,
    /// The database's latest catalog snapshot, as this session last saw it.
    view: SnapshotView,
    user: String,
    /// The catalog generation the next statement needs.
    needed: u64,
    gave_up: Arc<AtomicBool>,
    settings: SessionSettings,
    /// Settings under which values cannot be read or written faithfully (name → why).
    settings_errors: HashMap<String, String>,
    /// Shared with the statements prepared under it (cutover.rs), which compare theirs with
    /// it at every `Bind`: a pointer comparison while it has not changed.
    search_path: Arc<[String]>,
    /// Relations whose encrypted columns the open transaction declared (or earlier cycles
    /// still in flight): unknown to the catalog until the transaction commits, so statements
    /// naming them with values are refused (`pgseal_sql`'s `ddl.rs`).
    uncommitted: Vec<String>,
    /// `search_path`, `extra_float_digits`, `bytea_output` through transactions.
    tracker: Tracker,
    /// Cycles (`Query`, `Sync`, `FunctionCall`: one `ReadyForQuery` each) sent so far.
    cycles_sent: u64,
    /// The cycle of the statement being analysed, whose setting changes `tracker` records.
    analysing_cycle: u64,
    /// The tracked values `search_path` and `settings` were last made from.
    applied: Option<Values>,
    standard_strings: bool,
    cache: PlanCache,
    statements: ByName<Statement>,
    portals: ByName<Portal>,
    next_id: u64,
    expect: VecDeque<Expect>,
    /// The result of the current simple-protocol statement.
    simple_result: Option<Arc<ResultPlan>>,
    /// The last simple-protocol `RowDescription` and what was made of it.
    last_simple_description: Option<SimpleDescription>,
    /// After a value failed to open: everything up to `ReadyForQuery` is withheld.
    withholding: bool,
    reload_at_ready: bool,
    /// `COPY` with encrypted columns, carried row by row (`copy.rs`).
    copy: CopyState,
    /// Column-migration cutovers: held statements, touched tables (`cutover.rs`).
    cutover: cutover::CutoverState,
    /// The answer to the session query has brought the session's tracked settings.
    session_settings_read: bool,
}

/// Reads the tracked settings ([`TRACKED`], in that order) as the server resolved them for the session, before any client
/// statement is judged: the startup packet, but also `ALTER ROLE`/`ALTER DATABASE ... SET`
/// and the server's configuration decide them, and only the session can tell. Qualified, so
/// that no function on the session's `search_path` can stand in for `current_setting`.
const SESSION_SETTINGS_QUERY: &str = "SELECT pg_catalog.current_setting('search_path'), \
     pg_catalog.current_setting('extra_float_digits'), \
     pg_catalog.current_setting('bytea_output'), pg_catalog.current_setting('role')";

impl EncryptHook {
    pub(crate) fn new(db: Arc<DbHandle>, session: &SessionState) -> Self {
        let user = session.user().unwrap_or_default().to_owned();
        let mut hook = Self {
            view: SnapshotView::new(&db),
            db,
            needed: 1,
            gave_up: Arc::new(AtomicBool::new(false)),
            settings: SessionSettings::default(),
            settings_errors: HashMap::new(),
            search_path: parse_search_path(DEFAULT_SEARCH_PATH, &user).into(),
            uncommitted: Vec::new(),
            tracker: Tracker::default(),
            cycles_sent: 0,
            analysing_cycle: 0,
            applied: None,
            user,
            standard_strings: true,
            cache: PlanCache::default(),
            statements: ByName::default(),
            portals: ByName::default(),
            next_id: 0,
            expect: VecDeque::new(),
            simple_result: None,
            last_simple_description: None,
            withholding: false,
            reload_at_ready: false,
            copy: CopyState::default(),
            cutover: cutover::CutoverState::default(),
            session_settings_read: false,
        };
        for (name, value) in session.parameters() {
            hook.apply_reported(name, value);
        }
        // Until the session query's answer (`session_answer`) brings the values the server
        // resolved for this session, PostgreSQL's defaults; no client message is judged
        // before that answer.
        hook.sync_settings();
        hook
    }

    /// The answer to [`SESSION_SETTINGS_QUERY`]: the row becomes the session's tracked
    /// settings, what `RESET` returns to.
    fn on_session_settings(&mut self, frame: &Frame) -> Result<(), ErrorFields> {
        let unreadable = || {
            ErrorFields::fatal(
                "XX000",
                "the pgseal proxy could not read this session's search_path, \
                 extra_float_digits and bytea_output",
            )
            .hint("the proxy needs them to resolve table names and format values; its log has the details")
        };
        match frame.tag {
            DataRow::TAG => {
                let row = DataRow::decode(&frame.body).map_err(|_| unreadable())?;
                if row.values.len() != TRACKED.len() {
                    return Err(unreadable());
                }
                let mut values = Values::default();
                for (name, value) in TRACKED.iter().zip(&row.values) {
                    let text = value
                        .as_deref()
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .ok_or_else(unreadable)?;
                    values.set(name, text);
                }
                self.tracker = Tracker::new(values);
                self.sync_settings();
                self.session_settings_read = true;
                Ok(())
            }
            ERROR_RESPONSE_TAG => Err(unreadable()),
            ReadyForQuery::TAG if !self.session_settings_read => Err(unreadable()),
            _ => Ok(()),
        }
    }

    fn apply_reported(&mut self, name: &str, value: &str) {
        if name.eq_ignore_ascii_case("standard_conforming_strings") {
            self.standard_strings = value.eq_ignore_ascii_case("on");
            return;
        }
        match self.settings.apply_parameter(name, value) {
            Ok(()) => {
                self.settings_errors.remove(&name.to_ascii_lowercase());
            }
            Err(error) => {
                self.settings_errors
                    .insert(name.to_ascii_lowercase(), error.to_string());
            }
        }
    }

    /// Makes `search_path` and the value settings follow the tracked values in effect.
    fn sync_settings(&mut self) {
        let current = self.tracker.current();
        if let Some(applied) = self
            .applied
            .as_mut()
            .filter(|applied| **applied == *current)
        {
            // Nothing changed (the common case, checked at every ReadyForQuery). The same
            // values in another copy (the defaults before the session query's) are replaced by
            // the tracker's, so that the next check compares a pointer, not strings.
            applied.follow(current);
            return;
        }
        let current = self.tracker.current().clone();
        let before = self.applied.take();
        if before
            .as_ref()
            .is_none_or(|v| v.search_path != current.search_path || v.role != current.role)
        {
            // `"$user"` is the current user: the role `SET ROLE` chose, else the session's.
            let user = if &*current.role == NO_ROLE {
                self.user.as_str()
            } else {
                &current.role
            };
            self.search_path = parse_search_path(&current.search_path, user).into();
            self.cache.clear();
        }
        if before.as_ref().map(|v| &v.extra_float_digits) != Some(&current.extra_float_digits) {
            self.apply_reported("extra_float_digits", &current.extra_float_digits);
        }
        if before.as_ref().map(|v| &v.bytea_output) != Some(&current.bytea_output) {
            self.apply_reported("bytea_output", &current.bytea_output);
        }
        self.applied = Some(current);
    }

    /// The catalog to judge a statement with, or the error that refuses it (fail closed).
    fn catalog(&mut self) -> Result<HeldCatalog, ErrorFields> {
        match self.view.catalog() {
            Ok(catalog) => Ok(catalog),
            Err(Unavailable::Loading) => Err(ErrorFields::error(
                "57P03",
                "the pgseal proxy has not loaded this database's encryption catalog yet",
            )
            .hint("retry shortly; the proxy's log says why if this persists")),
            Err(Unavailable::Failed(why)) => Err(ErrorFields::error("57P03", why)
                .hint("fix the cause in the proxy's log; the proxy retries on its own")),
        }
    }

    /// Analyses `sql` (cached), applying any tracked `SET` it contains.
    fn analyze(
        &mut self,
        sql: &str,
        catalog: &Arc<DbCatalog>,
    ) -> Result<Arc<Analyzed>, ErrorFields> {
        let analyzed = self.analyze_text(sql, catalog)?;
        let controls = analyzed.controls.as_ref().map_err(Clone::clone)?;
        if controls.is_empty() {
            self.accept(&analyzed.analysis)?;
            return Ok(analyzed);
        }
        let analysis = &analyzed.analysis;
        // A refused text never reaches the server: its setting changes must not count. Only
        // a statement analysed after a change, or the check of a text that touches encrypted
        // columns, can refuse it once the changes are applied (`BEGIN`, `COMMIT` and a lone
        // `SET` cannot), so only then is there something to restore.
        let last = analysis.statements.len().saturating_sub(1);
        let reanalyse = controls.iter().any(|(at, _)| *at < last);
        let saved = (reanalyse || analysis.touches_encrypted()).then(|| self.tracker.clone());
        let result = self.apply_controls(sql, catalog, &analyzed, controls, reanalyse);
        if let (Err(_), Some(saved)) = (&result, saved) {
            self.tracker = saved;
            self.sync_settings();
        }
        result
    }

    /// Applies `controls` (of `sql`'s statements) to the tracked settings; with `reanalyse`
    /// (a change comes before the last statement), statements after a change are analysed
    /// again with the settings they will run with.
    fn apply_controls(
        &mut self,
        sql: &str,
        catalog: &Arc<DbCatalog>,
        analyzed: &Arc<Analyzed>,
        controls: &[(usize, Control)],
        reanalyse: bool,
    ) -> Result<Arc<Analyzed>, ErrorFields> {
        let analysis = &analyzed.analysis;
        let analyzed = if reanalyse {
            // A statement changes settings or ends a transaction before others in the same
            // text: each later statement is analysed with the settings it will run with.
            let mut statements = Vec::with_capacity(analysis.statements.len());
            let mut changed = false;
            for (at, plan) in analysis.statements.iter().enumerate() {
                if changed {
                    let text = sql.get(plan.span.clone()).ok_or_else(|| {
                        ErrorFields::error("XX000", "the pgseal proxy misread a statement's span")
                    })?;
                    let part = self.analyze_text(text, catalog)?;
                    for mut part_plan in part.analysis.statements.iter().cloned() {
                        part_plan.offset_by(plan.span.start);
                        statements.push(part_plan);
                    }
                } else {
                    statements.push(plan.clone());
                }
                // Statements after this one are analysed knowing what it declared.
                if let Some(last) = statements.last() {
                    self.note_uncommitted(&last.declares_encrypted);
                }
                for (_, control) in controls.iter().filter(|(of, _)| *of == at) {
                    self.tracker.apply(self.analysing_cycle, control);
                    changed = true;
                }
                self.sync_settings();
            }
            Arc::new(Analyzed {
                analysis: Analysis { statements },
                controls: analyzed.controls.clone(),
            })
        } else {
            for (_, control) in controls {
                self.tracker.apply(self.analysing_cycle, control);
            }
            self.sync_settings();
            Arc::clone(analyzed)
        };
        self.accept(&analyzed.analysis)?;
        Ok(analyzed)
    }

    /// Analyses a `Parse`'s text (cached). Its setting changes are returned, not applied: they
    /// happen when a portal of the statement is executed, maybe never, maybe many times.
    fn analyze_prepared(
        &mut self,
        sql: &str,
        catalog: &Arc<DbCatalog>,
    ) -> Result<(Arc<Analyzed>, Vec<Control>), ErrorFields> {
        let analyzed = self.analyze_text(sql, catalog)?;
        let controls = analyzed.controls.as_ref().map_err(Clone::clone)?;
        let controls = controls.iter().map(|(_, c)| c.clone()).collect();
        self.accept(&analyzed.analysis)?;
        Ok((analyzed, controls))
    }

    /// What every analysed text goes through before it is sent: the relations it declares are
    /// noted, and one that touches encrypted columns must be able to encrypt.
    fn accept(&mut self, analysis: &Analysis) -> Result<(), ErrorFields> {
        self.note_declared(analysis);
        if analysis.touches_encrypted() {
            self.check_can_encrypt()?;
        }
        Ok(())
    }

    /// Records the relations whose encrypted columns `analysis` declares: until the
    /// transaction ends, later statements are analysed knowing them.
    fn note_declared(&mut self, analysis: &Analysis) {
        for plan in &analysis.statements {
            self.note_uncommitted(&plan.declares_encrypted);
        }
    }

    fn note_uncommitted(&mut self, names: &[String]) {
        let mut added = false;
        for name in names {
            if !self.uncommitted.contains(name) {
                self.uncommitted.push(name.clone());
                added = true;
            }
        }
        if added {
            // Cached analyses were made without these names.
            self.cache.clear();
        }
    }

    /// The analysis of `sql` with the session's `search_path`, from the caches if it can.
    fn analyze_text(
        &mut self,
        sql: &str,
        catalog: &Arc<DbCatalog>,
    ) -> Result<Arc<Analyzed>, ErrorFields> {
        self.cache.sync_catalog(catalog);
        // Texts that differ only in constants share one analysis (plan_cache.rs).
        let analyzed = match self.cache.find(sql) {
            Ok(cached) => cached,
            Err(key) => {
                let result = analyze_deep(sql, catalog, &self.search_path, &self.uncommitted);
                self.cache.put(sql, key.as_ref(), result)
            }
        };
        analyzed.map_err(|refusal| refusal_fields(&refusal))
    }

    fn check_can_encrypt(&self) -> Result<(), ErrorFields> {
        if !self.standard_strings {
            return Err(ErrorFields::error(
                "0A000",
                "encrypted columns need standard_conforming_strings = on",
            )
            .hint("SET standard_conforming_strings = on"));
        }
        if let Some((name, why)) = self.settings_errors.iter().next() {
            return Err(ErrorFields::error(
                "0A000",
                format!("encrypted columns cannot be used with this session's {name}: {why}"),
            ));
        }
        Ok(())
    }

    fn frontend_message(&mut self, frame: Frame) -> Result<FrontendVerdict, ErrorFields> {
        match frame.tag {
            Query::TAG => self.on_query(frame),
            Parse::TAG => self.on_parse(frame),
            Bind::TAG => self.on_bind_current(frame),
            Describe::TAG => {
                let (kind, name) = Describe::target_of(&frame.body).map_err(protocol)?;
                match kind {
                    TargetKind::Statement => {
                        let client_params = self
                            .statements
                            .get(name)
                            .filter(|s| !s.appended.is_empty())
                            .map(|s| s.client_params);
                        let (id, params) = match self.statements.get(name) {
                            Some(s) => (
                                s.id,
                                s.params
                                    .iter()
                                    .map(|(i, c)| {
                                        // The server reports a declared type as declared.
                                        let declared = s.declared.get(*i).copied().unwrap_or(0);
                                        let oid = if declared == 0 {
                                            c.logical_type.oid()
                                        } else {
                                            declared
                                        };
                                        (*i, oid)
                                    })
                                    .collect(),
                            ),
                            None => (u64::MAX, Vec::new()),
                        };
                        self.expect.push_back(Expect::DescribeStatement {
                            name: name.to_owned(),
                            id,
                            params,
                            client_params,
                            injected: false,
                        });
                    }
                    TargetKind::Portal => {
                        let (slot, client_formats, statement) = match self.portals.get(name) {
                            Some(p) => (
                                Arc::clone(&p.slot),
                                p.client_formats.clone(),
                                p.statement.clone(),
                            ),
                            None => (PlanSlot::default(), Arc::from([]), None),
                        };
                        self.expect.push_back(Expect::DescribePortal {
                            slot,
                            client_formats,
                            injected: false,
                            statement,
                        });
                    }
                }
                Ok(FrontendVerdict::Forward(frame))
            }
            Execute::TAG => {
                let (portal, _) = Execute::portal_of(&frame.body).map_err(protocol)?;
                self.copy.on_execute(portal);
                let portal = self.portals.get(portal);
                let controls = portal
                    .filter(|p| !p.controls.is_empty())
                    .map(|p| p.controls.clone());
                let (slot, invalidates_schema) = match portal {
                    Some(p) => (Some(Arc::clone(&p.slot)), p.invalidates_schema),
                    None => (None, false),
                };
                if let Some(controls) = controls {
                    // Applied for the cycle the next Sync ends.
                    for control in &controls {
                        self.tracker.apply(self.cycles_sent + 1, control);
                    }
                    self.sync_settings();
                }
                self.expect.push_back(Expect::Execute {
                    slot,
                    invalidates_schema,
                });
                Ok(FrontendVerdict::Forward(frame))
            }
            Close::TAG => {
                let close = Close::decode(&frame.body).map_err(protocol)?;
                match close.kind {
                    TargetKind::Statement => {
                        self.statements.remove(&close.name);
                    }
                    TargetKind::Portal => {
                        self.portals.remove(&close.name);
                    }
                }
                self.expect.push_back(Expect::CloseComplete);
                Ok(FrontendVerdict::Forward(frame))
            }
            SYNC_TAG => {
                self.push_cycle_end(Expect::Sync);
                Ok(FrontendVerdict::Forward(frame))
            }
            FUNCTION_CALL_TAG => {
                self.push_cycle_end(Expect::Query {
                    invalidates_schema: false,
                });
                Ok(FrontendVerdict::Forward(frame))
            }
            copy::COPY_DATA_TAG | copy::COPY_DONE_TAG | copy::COPY_FAIL_TAG => {
                let catalog = self.catalog();
                Ok(self.copy.on_client_data(frame, catalog, &self.settings))
            }
            FLUSH_TAG => Ok(FrontendVerdict::Forward(frame)),
            _ => Ok(FrontendVerdict::Forward(frame)),
        }
    }

    /// Registers a message the server answers with `ReadyForQuery`, ending a cycle.
    fn push_cycle_end(&mut self, expect: Expect) {
        self.expect.push_back(expect);
        self.cycles_sent += 1;
    }

    fn on_query(&mut self, frame: Frame) -> Result<FrontendVerdict, ErrorFields> {
        // Registered first: a refusal is still answered by one ReadyForQuery.
        self.push_cycle_end(Expect::Query {
            invalidates_schema: false,
        });
        self.analysing_cycle = self.cycles_sent;
        let sql = Query::sql_of(&frame.body).map_err(protocol)?;
        let catalog = self.catalog()?;
        let analyzed = self.analyze(sql, &catalog)?;
        let analysis = &analyzed.analysis;
        let copy_plan = copy::plan_for(sql, analysis, &catalog, &self.search_path)?;
        self.copy.expect(copy_plan);
        if let Some(Expect::Query { invalidates_schema }) = self.expect.back_mut() {
            *invalidates_schema = analysis.invalidates_schema();
        }
        if !analysis.touches_encrypted() || !analysis.rewrites_text() {
            return Ok(FrontendVerdict::Forward(frame));
        }
        let sql = self.encrypt_literals(sql, analysis, &catalog, None)?;
        let frame = build(|buf| Query { sql }.encode(buf))?;
        Ok(FrontendVerdict::Replace(vec![frame]))
    }

    /// The SQL with every literal for an encrypted column replaced by its ciphertext, every
    /// equality predicate on a searchable column by a blind-index comparison, and the
    /// analysis's fixed rewrites (index columns) applied.
    ///
    /// `bindings`: in the extended protocol, the number of client parameters and where to
    /// record the searches whose terms are appended as parameters; `None` in the simple
    /// protocol, where a `$n` has no value.
    fn encrypt_literals(
        &self,
        sql: &str,
        analysis: &Analysis,
        catalog: &DbCatalog,
        mut bindings: Option<(usize, &mut Vec<Appended>)>,
    ) -> Result<String, ErrorFields> {
        let mut replacements = Vec::new();
        for plan in &analysis.statements {
            replacements.extend(plan.rewrites.iter().cloned());
            for literal in &plan.literals {
                let Some(value) = self.literal_value(&literal.value, &literal.column)? else {
                    replacements.push((literal.span.clone(), "NULL".to_owned()));
                    continue;
                };
                if let Some((client_params, appended)) = bindings.as_mut() {
                    let number = next_appended(*client_params, appended);
                    appended.push(Appended::Literal {
                        column: literal.column.clone(),
                        value,
                    });
                    replacements.push((literal.span.clone(), format!("${number}")));
                    continue;
                }
                let sealed = seal(catalog, &literal.column, &value)?;
                let mut text = String::with_capacity(sealed.len() * 2 + 12);
                text.push_str("'\\x");
                push_hex(&mut text, &sealed);
                text.push_str("'::bytea");
                replacements.push((literal.span.clone(), text));
            }
            for search in &plan.searches {
                let terms = self.search_terms(search, catalog, bindings.as_mut())?;
                let column = sql.get(search.column_span.clone()).ok_or_else(|| {
                    ErrorFields::error("XX000", "the pgseal proxy misread a search predicate")
                })?;
                let comparison = format!("pgseal.blind_index({column}) = ANY({terms})");
                let text = if search.negated {
                    format!("(NOT ({comparison}))")
                } else {
                    format!("({comparison})")
                };
                replacements.push((search.span.clone(), text));
            }
        }
        // A replacement that could not be placed would leave its value in the clear: the
        // text is refused rather than sent.
        pgseal_sql::rewrite(sql, &replacements).ok_or_else(|| {
            ErrorFields::error(
                "XX000",
                "the pgseal proxy could not place an encrypted value in this statement; \
                 it was not sent",
            )
            .hint("report this statement's shape (without its values) to the pgseal developers")
        })
    }

    /// A literal for an encrypted column as a value of its type (`None`: `NULL`).
    fn literal_value(
        &self,
        literal: &Literal,
        column: &EncryptedColumnInfo,
    ) -> Result<Option<Value>, ErrorFields> {
        let text = match literal {
            Literal::Null => return Ok(None),
            Literal::Text(s) | Literal::Number(s) => s.clone(),
            Literal::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
            // A new kind of literal this version does not know: refuse.
            _ => {
                return Err(ErrorFields::error(
                    "0A000",
                    format!(
                        "unsupported literal for encrypted column {}",
                        column.qualified_name
                    ),
                ))
            }
        };
        parse_text(column.logical_type, &text, &self.settings)
            .map(Some)
            .map_err(|e| value_error(column, &e))
    }

    /// The `bytea[]` a search compares the column's blind index with: in the simple protocol
    /// an array literal of the terms' blind indexes; in the extended protocol an array of
    /// appended parameters, computed at each `Bind` ([`SearchBinding`]).
    fn search_terms(
        &self,
        search: &SearchUse,
        catalog: &DbCatalog,
        bindings: Option<&mut (usize, &mut Vec<Appended>)>,
    ) -> Result<String, ErrorFields> {
        let column = &search.column;
        let cipher = search_cipher(catalog, column)?;
        let versions = cipher.blind_indexes(&[]);
        if search.modifies {
            let length = versions.first().map_or(0, |(_, ix)| ix.len());
            if length < MIN_MODIFYING_INDEX_BYTES {
                return Err(ErrorFields::error(
                    "0A000",
                    format!(
                        "encrypted column {} has a {length}-byte blind index, too short to \
                         choose the rows an UPDATE or DELETE changes: distinct values share \
                         index values, so other rows would change too",
                        column.qualified_name
                    ),
                )
                .hint(
                    "select the rows by equality first (the proxy returns the matching rows), \
                     then change them by a plaintext key such as the primary key",
                ));
            }
        }
        let mut terms = Vec::with_capacity(search.terms.len());
        for term in &search.terms {
            terms.push(match term {
                SearchValue::Literal(literal) => {
                    BoundTerm::Literal(self.literal_value(literal, column)?)
                }
                SearchValue::Param(number) => {
                    BoundTerm::Param(usize::from(*number).saturating_sub(1))
                }
                _ => {
                    return Err(ErrorFields::error(
                        "0A000",
                        format!(
                            "unsupported search term for encrypted column {}",
                            column.qualified_name
                        ),
                    ))
                }
            });
        }
        let Some((client_params, bindings)) = bindings else {
            let mut fixed = Vec::new();
            for term in &terms {
                match term {
                    BoundTerm::Literal(value) => {
                        fixed.extend(blind_indexes(cipher, value.as_ref()))
                    }
                    BoundTerm::Param(index) => {
                        return Err(ErrorFields::error(
                            "42P02",
                            format!("there is no parameter ${}", index + 1),
                        ))
                    }
                }
            }
            return Ok(format!("{}::bytea[]", array_literal(&fixed)));
        };
        let first = next_appended(*client_params, bindings);
        let binding = SearchBinding {
            column: column.clone(),
            terms,
            slots: versions.len() + 1,
        };
        let slots: Vec<String> = (first..first + binding.parameters())
            .map(|n| format!("${n}"))
            .collect();
        bindings.push(Appended::Search(binding));
        Ok(format!("ARRAY[{}]", slots.join(", ")))
    }

    fn on_parse(&mut self, frame: Frame) -> Result<FrontendVerdict, ErrorFields> {
        let mut parse = Parse::decode(&frame.body).map_err(protocol)?;
        // Its setting changes belong to the cycle the next Sync ends.
        self.analysing_cycle = self.cycles_sent + 1;
        let catalog = self.catalog()?;
        let (analyzed, controls) = self.analyze_prepared(&parse.sql, &catalog)?;
        let analysis = &analyzed.analysis;
        let copy_plan = copy::plan_for(&parse.sql, analysis, &catalog, &self.search_path)?;
        if analysis.touches_encrypted() && analysis.statements.len() > 1 {
            return Err(ErrorFields::error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let mut params: Vec<(usize, EncryptedColumnInfo)> = Vec::new();
        let mut stored: Vec<usize> = Vec::new();
        let mut client_params = parse.param_types.len();
        for plan in &analysis.statements {
            client_params = client_params.max(usize::from(plan.max_param));
            for param in &plan.params {
                let index = usize::from(param.number.max(1) - 1);
                if param.role != ValueRole::SearchTerm {
                    stored.push(index);
                }
                match params.iter_mut().find(|(i, _)| *i == index) {
                    // The stored use decides how the slot is sealed.
                    Some(entry) if param.role != ValueRole::SearchTerm => {
                        entry.1 = param.column.clone();
                    }
                    Some(_) => {}
                    None => params.push((index, param.column.clone())),
                }
            }
        }
        let search_only: Vec<usize> = params
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| !stored.contains(i))
            .collect();
        let declared = parse.param_types.clone();
        for (index, column) in &params {
            let ty = declared.get(*index).copied().unwrap_or(0);
            if !param_type_accepted(ty, column.logical_type) {
                return Err(ErrorFields::error(
                    "42804",
                    format!(
                        "parameter ${} is declared with type OID {ty}, but encrypted column {} \
                         holds {} values",
                        index + 1,
                        column.qualified_name,
                        column.logical_type.sql_name()
                    ),
                )
                .hint(
                    "declare it with the column's type, a type PostgreSQL assigns to it, as \
                     text, or leave it unspecified",
                ));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let statement = Statement {
            id,
            params,
            search_only,
            client_params,
            appended: Vec::new(),
            declared,
            invalidates_schema: analysis.invalidates_schema(),
            fields: None,
            last_plan: None,
            origin: cutover::Origin::new(&parse, &catalog, &self.search_path),
            controls,
        };
        let replaced = !parse.name.is_empty() && self.statements.contains_key(&parse.name);
        if !replaced {
            // A named statement that exists makes the server refuse this Parse; the old one
            // stays, as it does on the server.
            self.statements.insert(&parse.name, statement);
            self.copy.on_parse(&parse.name, copy_plan);
        }
        self.expect.push_back(Expect::ParseComplete);
        if !analysis.touches_encrypted() || replaced {
            return Ok(FrontendVerdict::Forward(frame));
        }
        let mut appended = Vec::new();
        parse.sql = self.encrypt_literals(
            &parse.sql,
            analysis,
            &catalog,
            Some((client_params, &mut appended)),
        )?;
        if let Some(statement) = self.statements.get_mut(&parse.name) {
            for (index, _) in &statement.params {
                if parse.param_types.len() <= *index {
                    parse.param_types.resize(index + 1, 0);
                }
                parse.param_types[*index] = BYTEA_OID;
            }
            if !appended.is_empty() {
                // The server expects the client's parameters, then the appended ones.
                let slots: usize = appended.iter().map(Appended::parameters).sum();
                parse.param_types.resize(client_params, 0);
                parse
                    .param_types
                    .extend(std::iter::repeat_n(BYTEA_OID, slots));
            }
            statement.appended = appended;
        }
        let frame = build(|buf| parse.encode(buf))?;
        Ok(FrontendVerdict::Replace(vec![frame]))
    }

    /// A `Bind` of a statement with no parameter to encrypt, asking for the result formats of
    /// the statement's last `Bind` under the same catalog (nearly every execution of a
    /// prepared statement): it shares that `Bind`'s result plan and is read in place rather
    /// than decoded. It goes on unchanged, or with the plan's result formats when the plan
    /// fetches encrypted columns in binary. [`BindShare::NotShared`]: not such a `Bind`, for
    /// [`Self::on_bind`] to handle; nothing has been recorded then.
    fn bind_sharing_plan(&mut self, frame: &Frame) -> Result<BindShare, ErrorFields> {
        let head = Bind::head_of(&frame.body).map_err(protocol)?;
        let catalog = self.catalog()?;
        let Some(statement) = self.statements.get(head.statement) else {
            return Ok(BindShare::NotShared);
        };
        if !statement.params.is_empty() || !statement.appended.is_empty() {
            return Ok(BindShare::NotShared);
        }
        let Some(shared) = statement.shared_plan(head.result_formats(), &catalog) else {
            return Ok(BindShare::NotShared);
        };
        // Built before anything is recorded, so that a failure leaves no portal behind.
        let share = match &shared.server_formats {
            None => BindShare::AsSent,
            Some(formats) => {
                BindShare::Rewritten(build(|buf| head.encode_with_result_formats(formats, buf))?)
            }
        };
        let portal = Portal {
            slot: Arc::clone(&shared.slot),
            client_formats: Arc::clone(&shared.client_formats),
            invalidates_schema: statement.invalidates_schema,
            // The statement's columns are known (it has a plan): nothing to learn from a
            // `Describe` of the portal.
            statement: None,
            controls: statement.controls.clone(),
        };
        self.copy.on_bind(head.statement, head.portal);
        if head.portal.is_empty() || !self.portals.contains_key(head.portal) {
            self.portals.insert(head.portal, portal);
        }
        self.expect.push_back(Expect::BindComplete);
        Ok(share)
    }

    fn on_bind(&mut self, frame: Frame) -> Result<FrontendVerdict, ErrorFields> {
        match self.bind_sharing_plan(&frame)? {
            BindShare::NotShared => {}
            BindShare::AsSent => return Ok(FrontendVerdict::Forward(frame)),
            BindShare::Rewritten(bind) => return Ok(FrontendVerdict::Replace(vec![bind])),
        }
        let mut bind = Bind::decode(&frame.body).map_err(protocol)?;
        self.copy.on_bind(&bind.statement, &bind.portal);
        let catalog = self.catalog()?;
        let client_formats: Arc<[i16]> = bind.result_formats.clone().into();
        let statement = self.statements.get(&bind.statement);
        let mut changed = false;
        if let Some(statement) =
            statement.filter(|s| !s.params.is_empty() || !s.appended.is_empty())
        {
            self.check_can_encrypt()?;
            let count = bind.params.len();
            let mut formats = Vec::with_capacity(count);
            for i in 0..count {
                formats.push(bind.param_format(i).map_err(protocol)?.code());
            }
            let mut appended = Vec::with_capacity(statement.appended.len());
            if !statement.appended.is_empty() {
                if count != statement.client_params {
                    return Err(ErrorFields::error(
                        "08P01",
                        format!(
                            "bind message supplies {count} parameters, but prepared statement \
                             \"{}\" requires {}",
                            bind.statement, statement.client_params
                        ),
                    ));
                }
                for item in &statement.appended {
                    let search = match item {
                        Appended::Search(search) => search,
                        Appended::Literal { column, value } => {
                            appended.push(Some(Bytes::from(seal(&catalog, column, value)?)));
                            continue;
                        }
                    };
                    let cipher = search_cipher(&catalog, &search.column)?;
                    for term in &search.terms {
                        let indexes = match term {
                            BoundTerm::Literal(value) => blind_indexes(cipher, value.as_ref()),
                            BoundTerm::Param(index) => {
                                match bind.params.get(*index).and_then(Option::as_ref) {
                                    None => vec![None],
                                    Some(raw) => {
                                        let format = match formats.get(*index) {
                                            Some(&code) if code == Format::Binary.code() => {
                                                Format::Binary
                                            }
                                            _ => Format::Text,
                                        };
                                        let declared =
                                            statement.declared.get(*index).copied().unwrap_or(0);
                                        let value = read_param(
                                            &search.column,
                                            raw,
                                            format,
                                            declared,
                                            &self.settings,
                                        )?;
                                        blind_indexes(cipher, Some(&value))
                                    }
                                }
                            }
                        };
                        if indexes.len() > search.slots {
                            return Err(ErrorFields::error(
                                "0A000",
                                format!(
                                    "cached plan must not change: encrypted column {} gained \
                                     index key versions since this statement was prepared",
                                    search.column.qualified_name
                                ),
                            )
                            .hint("prepare the statement again"));
                        }
                        // Unused slots repeat a term: a duplicate changes no result.
                        let last = indexes.last().cloned().flatten();
                        for i in 0..search.slots {
                            let term = indexes.get(i).cloned().unwrap_or_else(|| last.clone());
                            appended.push(term.map(Bytes::from));
                        }
                    }
                }
            }
            for index in &statement.search_only {
                if let Some(slot) = bind.params.get_mut(*index) {
                    *slot = None;
                }
            }
            for (index, column) in &statement.params {
                if statement.search_only.contains(index) {
                    continue;
                }
                let format = match formats.get(*index) {
                    Some(&code) if code == Format::Binary.code() => Format::Binary,
                    Some(_) => Format::Text,
                    // The server refuses a Bind with too few parameters.
                    None => continue,
                };
                let Some(slot) = bind.params.get_mut(*index) else {
                    continue;
                };
                let Some(raw) = slot.as_ref() else {
                    continue;
                };
                let declared = statement.declared.get(*index).copied().unwrap_or(0);
                let value = read_param(column, raw, format, declared, &self.settings)?;
                *slot = Some(Bytes::from(seal(&catalog, column, &value)?));
                formats[*index] = Format::Binary.code();
            }
            formats.extend(std::iter::repeat_n(Format::Binary.code(), appended.len()));
            bind.params.extend(appended);
            bind.param_formats = formats;
            changed = true;
        }
        let invalidates_schema = statement.is_some_and(|s| s.invalidates_schema);
        // Only while the statement's columns are unknown: a Describe of this portal then
        // records them (take_describe); afterwards no name is copied per Bind.
        let bound_from = statement
            .filter(|s| s.fields.is_none())
            .map(|s| (bind.statement.clone(), s.id));
        let controls = statement.map(|s| s.controls.clone()).unwrap_or_default();
        let reusable = statement
            .and_then(|s| s.shared_plan(bind.result_formats.iter().copied(), &catalog))
            .map(|shared| (Arc::clone(&shared.slot), shared.server_formats.clone()));
        let mut slot = PlanSlot::default();
        let mut inject = None;
        // `Some(server_formats)`: the plan built here is kept on the statement for its next
        // `Bind`s, with the result formats the server is asked for when they differ.
        let mut remember = None;
        match (statement.and_then(|s| s.fields.as_ref()), reusable) {
            (Some(_), Some((shared, server_formats))) => {
                slot = shared;
                if let Some(formats) = server_formats {
                    bind.result_formats = formats.to_vec();
                    changed = true;
                }
            }
            (Some(fields), None) => {
                let client_binary =
                    |i: usize| bind.result_format(i).is_ok_and(|f| f == Format::Binary);
                let plan = ResultPlan::new(
                    Arc::clone(&catalog),
                    fields,
                    |i| {
                        client_binary(i)
                            || catalog
                                .encrypted_column(fields[i].table_oid, fields[i].column_attr)
                                .is_some()
                    },
                    client_binary,
                );
                if plan
                    .cols
                    .iter()
                    .any(|c| matches!(c, ColPlan::Encrypted { .. }))
                {
                    let formats: Arc<[i16]> = plan
                        .cols
                        .iter()
                        .enumerate()
                        .map(|(i, c)| match c {
                            ColPlan::Encrypted { .. } => Format::Binary.code(),
                            _ => i16::from(client_binary(i)),
                        })
                        .collect();
                    bind.result_formats = formats.to_vec();
                    changed = true;
                    remember = Some(Some(formats));
                } else {
                    remember = Some(None);
                }
                // Set once, on a fresh slot.
                let _ = slot.set(Arc::new(plan));
            }
            (None, _) => {
                inject = Some(build(|buf| {
                    Describe {
                        kind: TargetKind::Portal,
                        name: bind.portal.clone(),
                    }
                    .encode(buf)
                })?);
            }
        }
        if let Some(server_formats) = remember {
            if let Some(statement) = self.statements.get_mut(&bind.statement) {
                statement.last_plan = Some(SharedPlan {
                    client_formats: Arc::clone(&client_formats),
                    slot: Arc::clone(&slot),
                    server_formats,
                });
            }
        }
        if bind.portal.is_empty() || !self.portals.contains_key(&bind.portal) {
            self.portals.insert(
                &bind.portal,
                Portal {
                    slot: Arc::clone(&slot),
                    client_formats: Arc::clone(&client_formats),
                    invalidates_schema,
                    statement: bound_from.clone(),
                    controls,
                },
            );
        }
        self.expect.push_back(Expect::BindComplete);
        let bind_frame = if changed {
            build(|buf| bind.encode(buf))?
        } else {
            frame
        };
        match inject {
            Some(describe) => {
                self.expect.push_back(Expect::DescribePortal {
                    slot,
                    client_formats,
                    injected: true,
                    statement: bound_from,
                });
                Ok(FrontendVerdict::Replace(vec![bind_frame, describe]))
            }
            None if changed => Ok(FrontendVerdict::Replace(vec![bind_frame])),
            None => Ok(FrontendVerdict::Forward(bind_frame)),
        }
    }

    fn backend_message(&mut self, frame: Frame) -> Result<BackendVerdict, ErrorFields> {
        // Settled before anything is withheld: the server ran the statements either way.
        if frame.tag == COMMAND_COMPLETE_TAG {
            let tag = frame.body.split(|b| *b == 0).next().unwrap_or_default();
            self.tracker.on_command_complete(tag);
        } else if frame.tag == ERROR_RESPONSE_TAG {
            self.tracker.on_error();
        }
        if frame.tag == ReadyForQuery::TAG {
            self.on_ready(&frame);
            self.copy.on_ready();
            return Ok(BackendVerdict::Forward(frame));
        }
        if frame.tag == ParameterStatus::TAG {
            if let Ok(status) = ParameterStatus::decode(&frame.body) {
                self.apply_reported(&status.name, &status.value);
            }
            return Ok(BackendVerdict::Forward(frame));
        }
        if self.withholding {
            return Ok(match frame.tag {
                // Asynchronous messages are not part of the withheld result.
                b'N' | b'A' => BackendVerdict::Forward(frame),
                _ => BackendVerdict::Replace(Vec::new()),
            });
        }
        match frame.tag {
            PARSE_COMPLETE_TAG | BIND_COMPLETE_TAG | CLOSE_COMPLETE_TAG => {
                if matches!(self.expect.front(), Some(Expect::Reprepared { .. })) {
                    self.expect.pop_front();
                    return Ok(BackendVerdict::Replace(Vec::new()));
                }
                if !self.front_is_query() {
                    self.expect.pop_front();
                }
                Ok(BackendVerdict::Forward(frame))
            }
            ParameterDescription::TAG => self.on_parameter_description(frame),
            RowDescription::TAG => self.on_row_description(frame),
            NO_DATA_TAG => match self.expect.front() {
                Some(Expect::DescribeStatement { .. } | Expect::DescribePortal { .. }) => {
                    // A portal whose `Bind` planned its (no) columns has nothing to learn.
                    let planned = matches!(
                        self.expect.front(),
                        Some(Expect::DescribePortal { slot, .. }) if slot.get().is_some()
                    );
                    let injected = self.take_describe((!planned).then(Vec::new));
                    Ok(if injected {
                        BackendVerdict::Replace(Vec::new())
                    } else {
                        BackendVerdict::Forward(frame)
                    })
                }
                _ => Ok(BackendVerdict::Forward(frame)),
            },
            DataRow::TAG => self.on_data_row(frame),
            COMMAND_COMPLETE_TAG | EMPTY_QUERY_RESPONSE_TAG | PORTAL_SUSPENDED_TAG => {
                match self.expect.front() {
                    Some(Expect::Execute {
                        invalidates_schema, ..
                    }) => {
                        if *invalidates_schema && frame.tag == COMMAND_COMPLETE_TAG {
                            self.reload_at_ready = true;
                        }
                        self.expect.pop_front();
                    }
                    Some(Expect::Query { .. }) => self.simple_result = None,
                    _ => {}
                }
                Ok(BackendVerdict::Forward(frame))
            }
            ERROR_RESPONSE_TAG => {
                if self.front_is_query() {
                    self.simple_result = None;
                } else {
                    // The server discards everything up to Sync.
                    while self.expect.front().is_some_and(|e| !e.is_sync_point()) {
                        if let Some(Expect::Reprepared {
                            statement: Some((name, id)),
                        }) = self.expect.pop_front()
                        {
                            self.reprepare_lost(&name, id);
                        }
                    }
                }
                // In place of the server's answer to a CopyFail the proxy sent, its own error.
                self.copy.on_server_error(frame)
            }
            copy::COPY_IN_RESPONSE_TAG
            | copy::COPY_OUT_RESPONSE_TAG
            | copy::COPY_BOTH_RESPONSE_TAG => self.copy.on_copy_response(frame),
            copy::COPY_DATA_TAG | copy::COPY_DONE_TAG => {
                let catalog = self.catalog();
                self.copy.on_server_data(frame, catalog, &self.settings)
            }
            _ => Ok(BackendVerdict::Forward(frame)),
        }
    }

    fn front_is_query(&self) -> bool {
        matches!(self.expect.front(), Some(Expect::Query { .. }))
    }

    fn on_ready(&mut self, frame: &Frame) {
        while let Some(expect) = self.expect.pop_front() {
            if let Expect::Reprepared {
                statement: Some((name, id)),
            } = &expect
            {
                self.reprepare_lost(name, *id);
            }
            if let Expect::Query { invalidates_schema } = expect {
                self.reload_at_ready |= invalidates_schema;
                break;
            }
            if expect.is_sync_point() {
                break;
            }
        }
        self.withholding = false;
        self.simple_result = None;
        if let Ok(ready) = ReadyForQuery::decode(&frame.body) {
            let idle = ready.status == TransactionStatus::Idle;
            if idle {
                // Transaction end destroys every portal.
                self.portals.clear();
                let in_flight = self.expect.iter().any(Expect::is_sync_point);
                if !in_flight && !self.uncommitted.is_empty() {
                    // The declarations committed (or rolled back): the catalog shows them once
                    // reloaded, and the session's next statement waits for that.
                    self.uncommitted.clear();
                    self.cache.clear();
                    self.reload_at_ready = true;
                }
            }
            self.tracker.on_ready(idle);
            self.sync_settings();
        }
        if std::mem::take(&mut self.reload_at_ready) {
            self.needed = self.db.request_reload();
        }
    }

    fn on_parameter_description(&mut self, frame: Frame) -> Result<BackendVerdict, ErrorFields> {
        let Some(Expect::DescribeStatement {
            params,
            client_params,
            injected,
            ..
        }) = self.expect.front()
        else {
            return Ok(BackendVerdict::Forward(frame));
        };
        if *injected {
            return Ok(BackendVerdict::Replace(Vec::new()));
        }
        if params.is_empty() && client_params.is_none() {
            return Ok(BackendVerdict::Forward(frame));
        }
        let mut description = ParameterDescription::decode(&frame.body).map_err(upstream)?;
        if let Some(count) = client_params {
            // The search-term parameters the proxy appended are its own.
            description.types.truncate(*count);
        }
        for (index, oid) in params {
            if let Some(slot) = description.types.get_mut(*index) {
                *slot = *oid;
            }
        }
        Ok(BackendVerdict::Replace(vec![build(|buf| {
            description.encode(buf)
        })?]))
    }

    /// Pops the `Describe` at the front, recording `fields`; whether it was injected.
    fn take_describe(&mut self, fields: Option<Vec<FieldDescription>>) -> bool {
        match self.expect.pop_front() {
            Some(Expect::DescribeStatement {
                name, id, injected, ..
            }) => {
                if let Some(statement) = self.statements.get_mut(&name).filter(|s| s.id == id) {
                    statement.fields = fields;
                    statement.last_plan = None;
                }
                injected
            }
            Some(Expect::DescribePortal {
                slot,
                client_formats,
                injected,
                statement,
            }) => {
                let Some(fields) = fields else {
                    return injected;
                };
                // The portal's columns are its statement's (with the portal's formats): later
                // `Bind`s of the statement then choose result formats without asking again.
                if let Some(known) = statement
                    .and_then(|(name, id)| self.statements.get_mut(&name).filter(|s| s.id == id))
                    .filter(|s| s.fields.is_none())
                {
                    let mut as_statement = fields.clone();
                    for field in &mut as_statement {
                        field.format = Format::Text.code();
                    }
                    known.fields = Some(as_statement);
                }
                if let Ok(catalog) = self.catalog() {
                    let binary = |i: usize| format_at(&client_formats, i);
                    let _ = slot.set(Arc::new(ResultPlan::new(catalog, &fields, binary, binary)));
                }
                injected
            }
            Some(other) => {
                self.expect.push_front(other);
                false
            }
            None => false,
        }
    }

    fn on_row_description(&mut self, frame: Frame) -> Result<BackendVerdict, ErrorFields> {
        let catalog = self.catalog()?;
        if !matches!(
            self.expect.front(),
            Some(Expect::DescribeStatement { .. } | Expect::DescribePortal { .. })
        ) {
            return self.on_simple_row_description(frame, catalog);
        }
        if let Some(Expect::DescribePortal { slot, .. }) = self.expect.front() {
            // The `Bind` already planned these columns (libpq describes every portal it runs):
            // when none needs rewriting, the description goes as it is, undecoded; when this
            // plan rewrote the same description before, the result is sent again.
            // `Some(None)`: forwarded as it came; `Some(Some(sent))`: replaced by `sent`.
            let known = slot.get().and_then(|plan| {
                if plan.passthrough() {
                    Some(None)
                } else {
                    plan.portal_description
                        .get()
                        .filter(|(received, _)| *received == frame.body)
                        .map(|(_, sent)| Some(sent.clone()))
                }
            });
            if let Some(sent) = known {
                return Ok(if self.take_describe(None) {
                    BackendVerdict::Replace(Vec::new())
                } else {
                    BackendVerdict::Forward(sent.unwrap_or(frame))
                });
            }
        }
        let mut description = RowDescription::decode(&frame.body).map_err(upstream)?;
        match self.expect.front() {
            Some(Expect::DescribeStatement { .. }) => {
                let injected = self.take_describe(Some(description.fields.clone()));
                if injected {
                    return Ok(BackendVerdict::Replace(Vec::new()));
                }
                let plan = ResultPlan::new(catalog, &description.fields, |_| false, |_| false);
                if plan.passthrough() {
                    return Ok(BackendVerdict::Forward(frame));
                }
                plan.rewrite_fields(&mut description.fields, true);
            }
            Some(Expect::DescribePortal { slot, .. }) => {
                let known = slot.get().cloned();
                let injected = self.take_describe(match known {
                    Some(_) => None,
                    None => Some(description.fields.clone()),
                });
                if injected {
                    return Ok(BackendVerdict::Replace(Vec::new()));
                }
                let plan = match known {
                    Some(plan) => plan,
                    None => {
                        let formats: Vec<i16> =
                            description.fields.iter().map(|f| f.format).collect();
                        let binary = |i: usize| formats.get(i) == Some(&1);
                        Arc::new(ResultPlan::new(
                            catalog,
                            &description.fields,
                            binary,
                            binary,
                        ))
                    }
                };
                if plan.passthrough() {
                    return Ok(BackendVerdict::Forward(frame));
                }
                plan.rewrite_fields(&mut description.fields, false);
                let sent = build(|buf| description.encode(buf))?;
                // Kept for the plan's next portals; a plan keeps the first it rewrote.
                let _ = plan.portal_description.set((frame.body, sent.clone()));
                return Ok(BackendVerdict::Replace(vec![sent]));
            }
            // Handled above, before decoding.
            _ => return self.on_simple_row_description(frame, catalog),
        }
        Ok(BackendVerdict::Replace(vec![build(|buf| {
            description.encode(buf)
        })?]))
    }

    /// A simple-protocol result: its rows follow in the formats given here.
    fn on_simple_row_description(
        &mut self,
        frame: Frame,
        catalog: HeldCatalog,
    ) -> Result<BackendVerdict, ErrorFields> {
        if let Some(last) = &self.last_simple_description {
            if last.received == frame.body && Arc::ptr_eq(&last.plan.catalog, &catalog) {
                self.simple_result = Some(Arc::clone(&last.plan));
                return Ok(BackendVerdict::Forward(last.sent.clone()));
            }
        }
        let mut description = RowDescription::decode(&frame.body).map_err(upstream)?;
        let formats: Vec<i16> = description.fields.iter().map(|f| f.format).collect();
        let binary = |i: usize| formats.get(i) == Some(&1);
        let plan = Arc::new(ResultPlan::new(
            catalog,
            &description.fields,
            binary,
            binary,
        ));
        // Kept as copies: a slice of the frame would pin the server's read buffer, which could
        // then not be reused from its start at the next read (framed.rs).
        let received = Bytes::copy_from_slice(&frame.body);
        let (sent, kept) = if plan.passthrough() {
            let kept = Frame::new(frame.tag, received.clone());
            (frame, kept)
        } else {
            plan.rewrite_fields(&mut description.fields, true);
            let built = build(|buf| description.encode(buf))?;
            (built.clone(), built)
        };
        self.simple_result = Some(Arc::clone(&plan));
        self.last_simple_description = Some(SimpleDescription {
            received,
            plan,
            sent: kept,
        });
        Ok(BackendVerdict::Forward(sent))
    }

    fn on_data_row(&mut self, frame: Frame) -> Result<BackendVerdict, ErrorFields> {
        let plan = match self.expect.front() {
            Some(Expect::Execute { slot, .. }) => match slot.as_ref().and_then(|s| s.get()) {
                Some(plan) => Arc::clone(plan),
                None => {
                    return Err(ErrorFields::error(
                        CORRUPTED,
                        "the pgseal proxy does not know the columns of this result",
                    )
                    .hint("describe the statement or portal before executing it"))
                }
            },
            _ => match &self.simple_result {
                Some(plan) => Arc::clone(plan),
                None => return Ok(BackendVerdict::Forward(frame)),
            },
        };
        if plan.passthrough() {
            return Ok(BackendVerdict::Forward(frame));
        }
        let mut row = DataRow::decode(&frame.body).map_err(upstream)?;
        for (value, col) in row.values.iter_mut().zip(&plan.cols) {
            let Some(bytes) = value.as_ref() else {
                continue;
            };
            match col {
                ColPlan::Plain => {}
                ColPlan::CheckBytea { server_binary } => {
                    if carries_ciphertext(bytes, *server_binary) {
                        return Err(ErrorFields::error(
                            CORRUPTED,
                            "a result column carries a pgseal ciphertext whose origin the \
                             pgseal proxy does not know",
                        )
                        .hint(
                            "select encrypted columns directly from their table or view; \
                             the rest of this result is withheld",
                        ));
                    }
                }
                ColPlan::Encrypted {
                    crypto,
                    server_binary,
                    client_binary,
                } => {
                    let out = open_value(
                        &plan.catalog,
                        crypto,
                        bytes,
                        *server_binary,
                        *client_binary,
                        &self.settings,
                    )?;
                    *value = Some(Bytes::from(out));
                }
            }
        }
        Ok(BackendVerdict::Replace(vec![build(|buf| row.encode(buf))?]))
    }
}

impl MessageHook for EncryptHook {
    fn frontend(&mut self, session: &SessionState, frame: Frame) -> FrontendVerdict {
        let tag = frame.tag;
        self.note_frontend(&frame, session);
        match self.frontend_message(frame) {
            Ok(verdict) => verdict,
            Err(fields) => {
                self.cutover.on_rejected(tag);
                if tag != Query::TAG && tag != FUNCTION_CALL_TAG {
                    // The connection layer skips to Sync and sends it: its ReadyForQuery ends
                    // this cycle. A rejected Parse leaves no unnamed statement behind.
                    self.push_cycle_end(Expect::Sync);
                    self.statements.remove("");
                }
                FrontendVerdict::Reject(fields)
            }
        }
    }

    fn backend(&mut self, _session: &SessionState, frame: Frame) -> BackendVerdict {
        self.cutover.on_backend(&frame);
        match self.backend_message(frame) {
            Ok(verdict) => verdict,
            Err(fields) => {
                // One error in place of the rest of the result; then nothing until
                // ReadyForQuery, as after a server error.
                self.withholding = true;
                self.simple_result = None;
                match build(|buf| fields.encode(ERROR_RESPONSE_TAG, buf)) {
                    Ok(frame) => BackendVerdict::Replace(vec![frame]),
                    Err(_) => BackendVerdict::Replace(Vec::new()),
                }
            }
        }
    }

    fn session_query(&self) -> Option<&'static str> {
        Some(SESSION_SETTINGS_QUERY)
    }

    fn session_answer(&mut self, frame: &Frame) -> Result<(), ErrorFields> {
        self.on_session_settings(frame)
    }

    fn wait_before_frontend(&mut self, frame: &Frame) -> Option<HookWait> {
        // A plain load first: the swap is a locked write, and this runs for every message.
        if self.gave_up.load(Ordering::Relaxed) && self.gave_up.swap(false, Ordering::SeqCst) {
            // Waited long enough: judge with whatever is published (fail closed if nothing).
            self.needed = 0;
            return None;
        }
        if matches!(frame.tag, Query::TAG | Parse::TAG) {
            // A statement waits for every reload asked for before it (another session's DDL,
            // an announced cutover), as the session that made the change does.
            self.needed = self.needed.max(self.db.latest_request());
        }
        let needed = self.needed;
        if is_ready(self.view.current(), needed) {
            return self.cutover_hold(frame);
        }
        let mut updates = self.db.subscribe();
        let gave_up = Arc::clone(&self.gave_up);
        Some(Box::pin(async move {
            let waited =
                tokio::time::timeout(CATALOG_WAIT, updates.wait_for(|s| is_ready(s, needed))).await;
            if !matches!(waited, Ok(Ok(_))) {
                gave_up.store(true, Ordering::SeqCst);
            }
        }))
    }
}

fn is_ready(snapshot: &super::catalog::Snapshot, needed: u64) -> bool {
    snapshot.generation >= needed && !matches!(snapshot.state, SnapshotState::Loading)
}

fn refusal_fields(refusal: &SqlError) -> ErrorFields {
    let fields = ErrorFields::error(refusal.sqlstate(), refusal.to_string());
    match refusal.column() {
        Some(column) => fields.detail(format!("encrypted column: {column}")),
        None => fields,
    }
}

fn protocol(error: WireError) -> ErrorFields {
    ErrorFields::error("08P01", format!("invalid message: {error}"))
}

fn upstream(error: WireError) -> ErrorFields {
    ErrorFields::error(
        "08P01",
        format!("the pgseal proxy cannot read the server's message: {error}"),
    )
}

pub(super) fn value_error(column: &EncryptedColumnInfo, error: &ValueError) -> ErrorFields {
    ErrorFields::error(
        error.sqlstate(),
        format!(
            "invalid {} value for encrypted column {}: {error}",
            column.logical_type.sql_name(),
            column.qualified_name
        ),
    )
}

/// Encodes one message into a frame.
pub(super) fn build(
    encode: impl FnOnce(&mut BytesMut) -> Result<(), WireError>,
) -> Result<Frame, ErrorFields> {
    // Most built messages (a statement text, a row with a few values) fit, so the buffer is
    // not grown piecemeal.
    let mut buf = BytesMut::with_capacity(256);
    encode(&mut buf).map_err(|e| {
        ErrorFields::error(
            "XX000",
            format!("the pgseal proxy cannot encode a message: {e}"),
        )
    })?;
    let tag = buf.first().copied().unwrap_or_default();
    if buf.len() < 5 {
        return Err(ErrorFields::error(
            "XX000",
            "the pgseal proxy produced an empty message",
        ));
    }
    // Advancing keeps the buffer's own allocation; splitting it off would add a shared one.
    buf.advance(5);
    Ok(Frame::new(tag, buf.freeze()))
}

fn format_at(formats: &[i16], index: usize) -> bool {
    match formats {
        [] => false,
        [one] => *one == 1,
        many => many.get(index) == Some(&1),
    }
}

/// Seals `value` for `column` under its active key.
pub(super) fn seal(
    catalog: &DbCatalog,
    column: &EncryptedColumnInfo,
    value: &Value,
) -> Result<Vec<u8>, ErrorFields> {
    let cipher = (column.column_id != 0)
        .then(|| catalog.cipher(column.column_id))
        .flatten()
        .ok_or_else(|| {
            ErrorFields::error(
                "0A000",
                format!(
                    "encrypted column {} has no data key the pgseal proxy can write with",
                    column.qualified_name
                ),
            )
            .hint(
                "write to the table itself (not through a view that mixes columns), and commit \
                 the column's creation first so its keys can be made",
            )
        })?;
    Ok(cipher.seal(&encode_canonical(value), &index_input(value)))
}

/// The cipher that computes search terms for `column`.
fn search_cipher<'c>(
    catalog: &'c DbCatalog,
    column: &EncryptedColumnInfo,
) -> Result<&'c pgseal_crypto::ColumnCipher, ErrorFields> {
    (column.column_id != 0)
        .then(|| catalog.cipher(column.column_id))
        .flatten()
        .filter(|cipher| cipher.is_searchable())
        .ok_or_else(|| {
            ErrorFields::error(
                "0A000",
                format!(
                    "encrypted column {} has no blind-index key the pgseal proxy can search with",
                    column.qualified_name
                ),
            )
            .hint(
                "search the table itself (not a view that mixes columns), and commit the \
                 column's creation first so its keys can be made",
            )
        })
}

/// A `bytea[]` array literal (`'{"\\x01",NULL}'`) of blind indexes; `NULL` for `None`.
fn array_literal(terms: &[Option<Vec<u8>>]) -> String {
    let elements: Vec<String> = terms
        .iter()
        .map(|term| match term {
            Some(ix) => format!("\"\\\\x{}\"", hex::encode(ix)),
            None => "NULL".to_owned(),
        })
        .collect();
    format!("'{{{}}}'", elements.join(","))
}

/// The blind indexes of a search value under every non-retired index key version (`[None]`
/// for `NULL`, which keeps SQL's `NULL` semantics in `= ANY(...)`).
fn blind_indexes(
    cipher: &pgseal_crypto::ColumnCipher,
    value: Option<&Value>,
) -> Vec<Option<Vec<u8>>> {
    match value {
        None => vec![None],
        Some(value) => cipher
            .blind_indexes(&index_input(value))
            .into_iter()
            .map(|(_, ix)| Some(ix))
            .collect(),
    }
}

/// Reads a client's parameter value for `column` in its format.
fn read_param(
    column: &EncryptedColumnInfo,
    raw: &[u8],
    format: Format,
    declared: u32,
    settings: &SessionSettings,
) -> Result<Value, ErrorFields> {
    let ty = column.logical_type;
    let as_text = |raw: &[u8]| {
        let text = std::str::from_utf8(raw).map_err(|_| {
            ErrorFields::error(
                "22021",
                format!(
                    "the value for encrypted column {} is not valid UTF-8",
                    column.qualified_name
                ),
            )
        })?;
        parse_text(ty, text, settings).map_err(|e| value_error(column, &e))
    };
    let text_like =
        TEXT_LIKE_OIDS.contains(&declared) || (declared == JSON_OID && ty == LogicalType::Jsonb);
    // A value declared with another supported type is read as that type, then converted with
    // PostgreSQL's assignment cast, exactly as the server would convert it.
    let other = LogicalType::from_oid(declared).filter(|from| *from != ty && !text_like);
    let value = match (format, other) {
        (Format::Text, None) => return as_text(raw),
        (Format::Binary, None) if text_like && ty.oid() != declared => return as_text(raw),
        (Format::Binary, None) => {
            return decode_binary(ty, raw).map_err(|e| value_error(column, &e))
        }
        (Format::Text, Some(from)) => {
            let text = std::str::from_utf8(raw).map_err(|_| {
                ErrorFields::error(
                    "22021",
                    format!(
                        "the value for encrypted column {} is not valid UTF-8",
                        column.qualified_name
                    ),
                )
            })?;
            parse_text(from, text, settings)
        }
        (Format::Binary, Some(from)) => decode_binary(from, raw),
    }
    .map_err(|e| value_error(column, &e))?;
    assign(value, ty, settings).map_err(|e| value_error(column, &e))
}

/// Whether a parameter declared with type `declared` can be stored in a column of type `target`
/// (unspecified, text-like, or a type PostgreSQL assigns to it).
fn param_type_accepted(declared: u32, target: LogicalType) -> bool {
    declared == 0
        || declared == target.oid()
        || TEXT_LIKE_OIDS.contains(&declared)
        || (declared == JSON_OID && target == LogicalType::Jsonb)
        || LogicalType::from_oid(declared).is_some_and(|from| is_assignable(from, target))
}

/// Whether a `bytea` value of unknown origin is a pgseal ciphertext.
pub(super) fn carries_ciphertext(bytes: &[u8], binary: bool) -> bool {
    if binary {
        return pgseal_crypto::parse_ciphertext(bytes).is_ok();
    }
    if bytes.first() != Some(&b'\\') {
        return false;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    match parse_text(LogicalType::Bytea, text, &SessionSettings::default()) {
        Ok(Value::Bytea(raw)) => pgseal_crypto::parse_ciphertext(&raw).is_ok(),
        _ => false,
    }
}

/// Each byte's value as a hex digit, or `INVALID_HEX`.
const HEX_DIGITS: [u8; 256] = {
    let mut table = [INVALID_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};
const INVALID_HEX: u8 = 0xff;

/// Plain hex digits (an even number, nothing else) as bytes; `None` for anything else. The
/// `hex` crate's decoder goes through an iterator of `Result`s and measured slower here than
/// PostgreSQL-style parsing; this runs for every encrypted value of every text-format row.
fn decode_hex(digits: &[u8]) -> Option<Vec<u8>> {
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    // Sized at once and checked once at the end: no capacity check or branch per byte.
    let mut out = vec![0u8; digits.len() / 2];
    let mut seen = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = HEX_DIGITS[usize::from(pair[0])];
        let low = HEX_DIGITS[usize::from(pair[1])];
        seen |= high | low;
        *byte = high << 4 | low;
    }
    // Every digit is below 16; `INVALID_HEX` has the high bits set.
    (seen & 0xf0 == 0).then_some(out)
}

/// `bytes` as lower-case hex digits appended to `out` (what `byteaout` writes after `\x`).
pub(super) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// Opens one stored value and produces it in the client's format.
pub(super) fn open_value(
    catalog: &DbCatalog,
    crypto: &ColumnCrypto,
    stored: &[u8],
    server_binary: bool,
    client_binary: bool,
    settings: &SessionSettings,
) -> Result<Vec<u8>, ErrorFields> {
    let corrupt = |why: String| {
        ErrorFields::error(
            CORRUPTED,
            format!(
                "pgseal cannot decrypt a value of encrypted column {}: {why}",
                crypto.qualified_name
            ),
        )
        .hint(
            "the stored value was altered, copied from another column, or its key is retired; \
             the rest of this result is withheld",
        )
    };
    let decoded;
    let ciphertext: &[u8] = if server_binary {
        stored
    } else {
        // The server's own output is `\x` and hex digits (bytea_output = hex): decoded
        // directly, this is a quarter of what the general `byteain` reading costs per value.
        decoded = match stored.strip_prefix(b"\\x").and_then(decode_hex) {
            Some(raw) => raw,
            _ => {
                let text = std::str::from_utf8(stored)
                    .map_err(|_| corrupt("the server sent a malformed bytea".to_owned()))?;
                match parse_text(LogicalType::Bytea, text, settings) {
                    Ok(Value::Bytea(raw)) => raw,
                    _ => return Err(corrupt("the server sent a malformed bytea".to_owned())),
                }
            }
        };
        &decoded
    };
    let header = pgseal_crypto::parse_ciphertext(ciphertext)
        .map_err(|e| corrupt(format!("not a pgseal ciphertext ({e})")))?;
    if !crypto.column_ids.contains(&header.column_id) {
        return Err(corrupt(format!(
            "the ciphertext belongs to column id {}, not to this column",
            header.column_id
        )));
    }
    let cipher = catalog
        .cipher(header.column_id)
        .ok_or_else(|| corrupt("no key of this column is loaded".to_owned()))?;
    let ty = crypto.logical_type;
    cipher
        .open_with(ciphertext, |plain| {
            canonical_to_client(ty, plain, client_binary, settings)
        })
        .map_err(|e| corrupt(e.to_string()))?
        .map_err(|e| corrupt(format!("the decrypted value is malformed ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_query_reads_every_tracked_setting_in_order() {
        let mut rest = SESSION_SETTINGS_QUERY;
        for name in TRACKED {
            let call = format!("pg_catalog.current_setting('{name}')");
            let at = rest
                .find(&call)
                .unwrap_or_else(|| panic!("{name} in order"));
            rest = &rest[at + call.len()..];
        }
        assert_eq!(
            SESSION_SETTINGS_QUERY.matches("current_setting").count(),
            TRACKED.len()
        );
    }

    #[test]
    fn hex_digits_decode_like_byteain_and_anything_else_is_refused() {
        assert_eq!(decode_hex(b"00ff7Fa0"), Some(vec![0x00, 0xff, 0x7f, 0xa0]));
        assert_eq!(decode_hex(b""), Some(Vec::new()));
        for bad in [&b"0"[..], b"0g", b"g0", b" 00", b"00 ", b"\\x", b"0\n"] {
            assert_eq!(decode_hex(bad), None, "{bad:?}");
        }
        for byte in 0..=255u8 {
            let text = format!("{byte:02x}{byte:02X}");
            assert_eq!(decode_hex(text.as_bytes()), Some(vec![byte, byte]));
        }
        let all: Vec<u8> = (0..=255u8).collect();
        let mut text = String::new();
        push_hex(&mut text, &all);
        assert_eq!(text, hex::encode(&all));
        assert_eq!(decode_hex(text.as_bytes()), Some(all));
    }

    #[test]
    fn format_lists_follow_the_protocol_rule() {
        assert!(!format_at(&[], 3));
        assert!(format_at(&[1], 3));
        assert!(format_at(&[0, 1], 1));
        assert!(!format_at(&[0, 1], 0));
        assert!(!format_at(&[0, 1], 7));
    }

    #[test]
    fn built_frames_round_trip() {
        let frame = build(|buf| {
            Query {
                sql: "select 1".to_owned(),
            }
            .encode(buf)
        })
        .expect("encodes");
        assert_eq!(frame.tag, Query::TAG);
        assert_eq!(Query::decode(&frame.body).expect("decodes").sql, "select 1");
    }

    #[test]
    fn only_ciphertexts_are_flagged_in_plain_bytea() {
        assert!(!carries_ciphertext(b"\\x0102", false));
        assert!(!carries_ciphertext(b"plain", false));
        assert!(!carries_ciphertext(&[0xB5, 1, 2], true));
    }
}
