//! Column-migration cutovers as one session sees them: statements held while a cutover is
//! pending, and prepared statements re-prepared once their tables changed.
//!
//! `pgseal encrypt-column`/`decrypt-column` announce their cutover (a deadline in
//! `pgseal.column_migrations`, `NOTIFY pgseal_catalog`) and wait before taking the table's
//! `ACCESS EXCLUSIVE` lock. Once the catalog carries the announcement:
//!
//! - a `Query`, `Parse` or `Bind` whose statement names the table (or a view on it) waits —
//!   only this session's messages, the server direction keeps flowing — until a catalog
//!   without the announcement is loaded (the cutover committed and cleared it, or gave up and
//!   withdrew it) or the announcement's deadline passes; it is then judged with that newer
//!   catalog. Without the hold, a statement judged with the old column would run right after
//!   the cutover commits, against the new one, and be refused (fail closed).
//! - except in a transaction that already touched the table: it holds a lock on the table, so
//!   the cutover cannot commit before it ends, and holding it would deadlock with the cutover.
//!   Tables touched are tracked per transaction (until a `ReadyForQuery` reports idle).
//!
//! A prepared statement whose tables changed since it was prepared (a column replaced by its
//! converted shadow) is prepared again upstream before its next `Bind`: `Close` and `Parse`
//! of the same name, the statement judged with the current catalog, are sent ahead of the
//! client's `Bind` and their replies swallowed. The client keeps the descriptions it was given:
//! a migration changes no logical type. The server then never answers "cached plan must not
//! change result type".
//!
//! Which tables a statement touches is read from its text: the names it contains, matched
//! against relation names in any schema. That over-approximates (a name in a string or another
//! schema also counts): the cost is a needless wait or re-prepare, never a missed one for
//! statements that name their tables. Functions that reach a table without naming it are not
//! seen; such statements are still checked fail-closed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgseal_wire::backend::{ErrorFields, ReadyForQuery, TransactionStatus};
use pgseal_wire::frontend::{Bind, Close, Parse, Query, TargetKind, SYNC_TAG};
use pgseal_wire::Frame;

use super::super::catalog::{DbCatalog, SnapshotState};
use super::{build, EncryptHook, Expect, FrontendVerdict, HookWait, FUNCTION_CALL_TAG};
use crate::session::SessionState;

/// The longest a statement is held for a pending cutover, whatever the announcement says.
const HOLD_MAX: Duration = Duration::from_secs(30);

/// What a prepared statement was made from: to prepare it again once its tables change.
#[derive(Debug)]
pub(super) struct Origin {
    /// The client's `Parse` (its `Debug` does not show the SQL).
    pub(super) parse: Parse,
    /// The catalog it was last judged with.
    catalog: Arc<DbCatalog>,
    /// The `search_path` it was judged with (resolved). PostgreSQL parses a prepared statement
    /// again when the session's `search_path` has changed since, so its names may then mean
    /// other tables: the proxy prepares it again too, judged with the new path.
    search_path: Arc<[String]>,
    /// A re-prepare was sent but the server discarded or refused it: prepare it again at the
    /// next `Bind`, whatever the catalog.
    stale: bool,
}

impl Origin {
    pub(super) fn new(
        parse: &Parse,
        catalog: &Arc<DbCatalog>,
        search_path: &Arc<[String]>,
    ) -> Self {
        Self {
            parse: parse.clone(),
            catalog: Arc::clone(catalog),
            search_path: Arc::clone(search_path),
            stale: false,
        }
    }
}

/// The per-session state of this module.
#[derive(Debug, Default)]
pub(super) struct CutoverState {
    /// Messages sent upstream that each end a query cycle (`Query`, `Sync`, `FunctionCall`,
    /// and the stand-ins for rejected ones).
    cycles_sent: u64,
    /// `ReadyForQuery` messages seen.
    cycles_done: u64,
    /// Migrating tables the session's open transaction touched: (table OID, cycle it was
    /// touched in). A `ReadyForQuery` reporting idle ends every cycle up to it.
    touched: Vec<(u32, u64)>,
    /// Set when a hold timed out: the held message goes on with what is loaded.
    gave_up: Arc<AtomicBool>,
    /// The latest `ReadyForQuery` reported a failed transaction.
    failed: bool,
}

impl CutoverState {
    /// A frontend message the hook is about to judge: counts cycles and records the
    /// migrating tables it touches.
    pub(super) fn on_frontend(
        &mut self,
        frame: &Frame,
        catalog: Option<&DbCatalog>,
        sql: Option<&str>,
    ) {
        if let (Some(catalog), Some(sql)) = (catalog, sql) {
            if !catalog.migrating().is_empty() {
                let words = words(sql);
                let cycle = self.cycles_sent;
                for (oid, table) in catalog.migrating() {
                    if table.names.iter().any(|n| words.contains(n))
                        && !self.touched.iter().any(|(t, _)| t == oid)
                    {
                        self.touched.push((*oid, cycle));
                    }
                }
            }
        }
        if matches!(frame.tag, Query::TAG | SYNC_TAG | FUNCTION_CALL_TAG) {
            self.cycles_sent += 1;
        }
    }

    /// The hook rejected a message of `tag`: the proxy ends its cycle with a `Sync` or a
    /// stand-in `Query` the hook does not see (a rejected `Query`, `Sync` or `FunctionCall`
    /// was already counted).
    pub(super) fn on_rejected(&mut self, tag: u8) {
        if !matches!(tag, Query::TAG | SYNC_TAG | FUNCTION_CALL_TAG) {
            self.cycles_sent += 1;
        }
    }

    /// A backend message: `ReadyForQuery` ends a cycle, and the transaction if idle.
    pub(super) fn on_backend(&mut self, frame: &Frame) {
        if frame.tag != ReadyForQuery::TAG {
            return;
        }
        self.cycles_done += 1;
        if ReadyForQuery::decode(&frame.body).is_ok_and(|r| r.status == TransactionStatus::Idle) {
            let done = self.cycles_done;
            self.touched.retain(|(_, cycle)| *cycle >= done);
        }
    }

    fn touched(&self, oid: u32) -> bool {
        self.touched.iter().any(|(t, _)| *t == oid)
    }
}

/// The lower-cased words of `sql` that may name a relation (identifiers, quoted or not).
fn words(sql: &str) -> HashSet<String> {
    let mut words = HashSet::new();
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c == '"' {
            // A quoted identifier, `""` standing for a quote.
            let mut word = String::new();
            while let Some((_, c)) = chars.next() {
                if c == '"' {
                    if chars.peek().is_some_and(|(_, n)| *n == '"') {
                        chars.next();
                        word.push('"');
                        continue;
                    }
                    break;
                }
                word.push(c);
            }
            words.insert(word.to_lowercase());
        } else if c.is_alphanumeric() || c == '_' {
            let mut end = start + c.len_utf8();
            while let Some(&(i, n)) = chars.peek() {
                if n.is_alphanumeric() || n == '_' || n == '$' {
                    end = i + n.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            if let Some(word) = sql.get(start..end) {
                words.insert(word.to_lowercase());
            }
        }
    }
    words
}

/// Whether `sql` may expand a `*` into columns (`SELECT *`, `t.*`, `RETURNING *`), as opposed
/// to `count(*)` or a multiplication: a `*` right after `SELECT`, `DISTINCT`, `ALL`,
/// `RETURNING`, a comma, a dot or a closing parenthesis (`DISTINCT ON (...) *`).
fn has_star_expansion(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    bytes.iter().enumerate().any(|(i, b)| {
        if *b != b'*' {
            return false;
        }
        let before = sql.get(..i).unwrap_or_default().trim_end();
        if before.ends_with(',') || before.ends_with('.') || before.ends_with(')') {
            return true;
        }
        let word: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
            .to_ascii_lowercase();
        matches!(word.as_str(), "select" | "distinct" | "all" | "returning")
    })
}

/// The statement name a `Bind` refers to, read without decoding its parameters.
/// Whether two resolved search paths are the same; nearly always they are one shared list.
fn same_path(a: &Arc<[String]>, b: &Arc<[String]>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

fn bind_statement(body: &[u8]) -> Option<&str> {
    let portal_end = body.iter().position(|b| *b == 0)?;
    let rest = body.get(portal_end + 1..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    std::str::from_utf8(rest.get(..end)?).ok()
}

impl EncryptHook {
    /// Whether any table is being migrated: without one (nearly always) there is nothing to
    /// record or hold, and no copy of the catalog is taken for every statement.
    fn any_migrating(&mut self) -> bool {
        match &self.view.current().state {
            SnapshotState::Ready(catalog) => !catalog.migrating().is_empty(),
            _ => false,
        }
    }

    fn ready_catalog(&mut self) -> Option<Arc<DbCatalog>> {
        match &self.view.current().state {
            SnapshotState::Ready(catalog) => Some(Arc::clone(catalog)),
            _ => None,
        }
    }

    /// The SQL a `Query`, `Parse` or `Bind` runs (a `Bind`: its prepared statement's).
    fn statement_sql(&self, frame: &Frame) -> Option<String> {
        match frame.tag {
            Query::TAG => Query::decode(&frame.body).ok().map(|q| q.sql),
            Parse::TAG => Parse::decode(&frame.body).ok().map(|p| p.sql),
            Bind::TAG => {
                let name = bind_statement(&frame.body)?;
                self.statements
                    .get(name)
                    .map(|s| s.origin.parse.sql.clone())
            }
            _ => None,
        }
    }

    /// Records what a frontend message touches (before the hook judges it).
    pub(super) fn note_frontend(&mut self, frame: &Frame, session: &SessionState) {
        self.cutover.failed = session.transaction_status() == TransactionStatus::Failed;
        if !matches!(frame.tag, Query::TAG | Parse::TAG | Bind::TAG) || !self.any_migrating() {
            // Nothing to record; only the cycle count.
            self.cutover.on_frontend(frame, None, None);
            return;
        }
        let catalog = self.ready_catalog();
        let tracked = catalog.as_ref().is_some_and(|c| !c.migrating().is_empty());
        let sql = if tracked {
            self.statement_sql(frame)
        } else {
            None
        };
        self.cutover
            .on_frontend(frame, catalog.as_deref(), sql.as_deref());
    }

    /// Whether `frame` must wait for a pending cutover, and the wait.
    pub(super) fn cutover_hold(&mut self, frame: &Frame) -> Option<HookWait> {
        if !matches!(frame.tag, Query::TAG | Parse::TAG | Bind::TAG) {
            return None;
        }
        if self.cutover.gave_up.swap(false, Ordering::SeqCst) {
            // Held long enough: judged with what is loaded (fail closed if it no longer fits).
            return None;
        }
        if !self.any_migrating() {
            return None;
        }
        let catalog = self.ready_catalog()?;
        let pending: Vec<(u32, Instant)> = catalog
            .migrating()
            .iter()
            .filter(|(oid, table)| table.cutover_pending() && !self.cutover.touched(**oid))
            .filter_map(|(oid, table)| table.cutover_until.map(|until| (*oid, until)))
            .collect();
        if pending.is_empty() {
            return None;
        }
        let sql = self.statement_sql(frame)?;
        let words = words(&sql);
        let held: Vec<(u32, Instant)> = pending
            .into_iter()
            .filter(|(oid, _)| {
                catalog
                    .migrating()
                    .get(oid)
                    .is_some_and(|t| t.names.iter().any(|n| words.contains(n)))
            })
            .collect();
        let until = held.iter().map(|(_, until)| *until).max()?;
        let limit = until
            .saturating_duration_since(Instant::now())
            .min(HOLD_MAX);
        let oids: Vec<u32> = held.into_iter().map(|(oid, _)| oid).collect();
        let mut updates = self.db.subscribe();
        let gave_up = Arc::clone(&self.cutover.gave_up);
        Some(Box::pin(async move {
            let released = tokio::time::timeout(
                limit,
                updates.wait_for(|snapshot| match &snapshot.state {
                    SnapshotState::Ready(catalog) => oids.iter().all(|oid| {
                        !catalog
                            .migrating()
                            .get(oid)
                            .is_some_and(super::super::catalog::MigratingTable::cutover_pending)
                    }),
                    _ => false,
                }),
            )
            .await;
            if !matches!(released, Ok(Ok(_))) {
                gave_up.store(true, Ordering::SeqCst);
            }
        }))
    }

    /// A client `Bind`: first prepares its statement again if the statement's tables changed
    /// since it was prepared.
    pub(super) fn on_bind_current(&mut self, frame: Frame) -> Result<FrontendVerdict, ErrorFields> {
        let expected = self.expect.len();
        let Some((name, old, mut frames)) = self.reprepare(&frame)? else {
            return self.on_bind(frame);
        };
        match self.on_bind(frame) {
            Ok(FrontendVerdict::Forward(bind)) => frames.push(bind),
            Ok(FrontendVerdict::Replace(rest)) => frames.extend(rest),
            Ok(FrontendVerdict::Reject(fields)) | Err(fields) => {
                // Nothing goes upstream: the old statement stays as the server has it.
                self.expect.truncate(expected);
                self.statements.insert(&name, old);
                return Err(fields);
            }
        }
        Ok(FrontendVerdict::Replace(frames))
    }

    /// A re-prepare of statement `name` (`id`) got no `ParseComplete`: an earlier error of the
    /// pipeline made the server discard it, or the server refused it. Whatever the server has
    /// now (the old statement, or none), the next `Bind` prepares it again.
    pub(super) fn reprepare_lost(&mut self, name: &str, id: u64) {
        if let Some(statement) = self.statements.get_mut(name).filter(|s| s.id == id) {
            statement.origin.stale = true;
        }
    }

    /// The `Close` and `Parse` that prepare a `Bind`'s statement again, if its tables changed;
    /// the statement as it was, to put back if the `Bind` is refused.
    fn reprepare(
        &mut self,
        frame: &Frame,
    ) -> Result<Option<(String, super::Statement, Vec<Frame>)>, ErrorFields> {
        // Nearly always the statement was prepared with the current catalog: nothing to copy.
        let Some(name) = bind_statement(&frame.body) else {
            return Ok(None);
        };
        let may_have_changed = match (&self.view.current().state, self.statements.get(name)) {
            (SnapshotState::Ready(current), Some(statement)) => {
                statement.origin.stale
                    || !Arc::ptr_eq(&statement.origin.catalog, current)
                    || !same_path(&statement.origin.search_path, &self.search_path)
            }
            _ => false,
        };
        if !may_have_changed {
            return Ok(None);
        }
        let name = name.to_owned();
        let Some(current) = self.ready_catalog() else {
            return Ok(None);
        };
        let Some(statement) = self.statements.get_mut(&name) else {
            return Ok(None);
        };
        let stale =
            statement.origin.stale || !same_path(&statement.origin.search_path, &self.search_path);
        if !stale && Arc::ptr_eq(&statement.origin.catalog, &current) {
            return Ok(None);
        }
        let previous = &statement.origin.catalog;
        let words = words(&statement.origin.parse.sql);
        let changed: Vec<u32> = words
            .iter()
            .flat_map(|word| {
                current
                    .relations_named(word)
                    .iter()
                    .chain(previous.relations_named(word))
                    .copied()
            })
            .filter(|oid| !previous.same_relation(&current, *oid))
            .collect();
        if !stale && changed.is_empty() {
            statement.origin.catalog = current;
            return Ok(None);
        }
        if !stale
            && has_star_expansion(&statement.origin.parse.sql)
            && changed
                .iter()
                .any(|oid| !previous.same_column_order(&current, *oid))
        {
            // A `*` would now expand to other columns (a migrated column comes last): the
            // client's description would no longer match the rows. The old statement stays,
            // and the server refuses it as it would without the proxy ("cached plan must not
            // change result type").
            statement.origin.catalog = current;
            return Ok(None);
        }
        if self.cutover.failed {
            // The server refuses the Parse in a failed transaction: re-prepared after it ends.
            return Ok(None);
        }
        let parse = statement.origin.parse.clone();
        let Some(old) = self.statements.remove(&name) else {
            return Ok(None);
        };
        let expected = self.expect.len();
        let reparsed = build(|buf| parse.encode(buf)).and_then(|f| self.on_parse(f));
        let parsed = match reparsed {
            Ok(FrontendVerdict::Forward(f)) => vec![f],
            Ok(FrontendVerdict::Replace(frames)) => frames,
            Ok(FrontendVerdict::Reject(fields)) | Err(fields) => {
                self.expect.truncate(expected);
                self.statements.insert(&name, old);
                return Err(fields);
            }
        };
        // The replies to the Close and the Parse are the proxy's own.
        self.expect.truncate(expected);
        let id = self.statements.get(&name).map(|s| s.id);
        self.expect
            .push_back(Expect::Reprepared { statement: None });
        self.expect.push_back(Expect::Reprepared {
            statement: id.map(|id| (name.clone(), id)),
        });
        let mut frames = vec![build(|buf| {
            Close {
                kind: TargetKind::Statement,
                name: name.clone(),
            }
            .encode(buf)
        })?];
        frames.extend(parsed);
        Ok(Some((name, old, frames)))
    }
}

#[cfg(test)]
mod tests {
    use super::{bind_statement, has_star_expansion, words};

    #[test]
    fn star_expansions_are_told_from_count_and_products() {
        assert!(has_star_expansion("SELECT * FROM t"));
        assert!(has_star_expansion("select t.* from t"));
        assert!(has_star_expansion("SELECT id, * FROM t"));
        assert!(has_star_expansion("INSERT INTO t VALUES (1) RETURNING *"));
        assert!(!has_star_expansion("SELECT count(*) FROM t"));
        assert!(!has_star_expansion("SELECT a * 2 FROM t"));
        assert!(!has_star_expansion("UPDATE t SET a = $1 WHERE id = $2"));
    }

    #[test]
    fn words_are_lower_cased_identifiers() {
        let w = words(r#"SELECT a FROM public."Mixed""Name" JOIN t2 ON x=$1"#);
        assert!(w.contains("select"));
        assert!(w.contains("public"));
        assert!(w.contains("mixed\"name"));
        assert!(w.contains("t2"));
        assert!(!w.contains("$1"));
    }

    #[test]
    fn bind_statement_name_is_read() {
        assert_eq!(bind_statement(b"portal\0stmt\0\0\0"), Some("stmt"));
        assert_eq!(bind_statement(b"\0\0"), Some(""));
        assert_eq!(bind_statement(b"no terminator"), None);
    }
}
