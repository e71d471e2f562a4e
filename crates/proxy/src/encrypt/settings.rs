//! Session settings PostgreSQL 15 does not report but the encryption layer depends on:
//! `search_path` (to resolve table names), `extra_float_digits` and `bytea_output` (to format
//! values as the server would). Read from the session itself when it starts (the hook's
//! session query: startup options, `ALTER ROLE`/`ALTER DATABASE ... SET` and postgresql.conf
//! all decide them), then from the statements the session sends: `SET [SESSION|LOCAL]`,
//! `RESET`, `SET ROLE`, `DISCARD ALL`, `SELECT set_config(...)` with constant arguments
//! (read by `settings_syntax.rs`).
//!
//! [`Tracker`] follows PostgreSQL's rules for when a change ends: `SET LOCAL` (and
//! `set_config(..., true)`) at the end of the transaction; any change made in a transaction
//! when it rolls back (`ROLLBACK`, an error in an implicit transaction, a `COMMIT` the server
//! turns into a rollback); any change made after a savepoint at `ROLLBACK TO` it. Statements
//! are applied when they are sent (the next statement in the pipeline is analysed with them),
//! and the server's answers settle what was kept: `CommandComplete` `COMMIT`/`ROLLBACK` tags,
//! `ErrorResponse`, and the status of `ReadyForQuery`.

use std::collections::VecDeque;
use std::sync::Arc;

use super::settings_syntax::{Control, SettingChange};

/// PostgreSQL's default `search_path`.
pub(crate) const DEFAULT_SEARCH_PATH: &str = "\"$user\", public";

/// The settings this layer tracks (lower case).
pub(crate) const TRACKED: [&str; 4] = ["search_path", "extra_float_digits", "bytea_output", "role"];

/// Whether this layer tracks the setting `name` (lower case).
pub(crate) fn tracked(name: &str) -> bool {
    TRACKED.contains(&name)
}

/// The `role` setting's value when no `SET ROLE` is in effect.
pub(crate) const NO_ROLE: &str = "none";

/// The values of the tracked settings, shared: the tracker copies whole sets of values at
/// every transaction end (and keeps up to five per session), where nearly always nothing
/// changed, so a copy is one reference count and comparing two copies one pointer. A change
/// copies the set.
#[derive(Debug, Clone, Eq)]
pub(crate) struct Values(Arc<ValueSet>);

impl PartialEq for Values {
    fn eq(&self, other: &Self) -> bool {
        // `Arc`'s own comparison reads the strings even when both are the same set.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

/// The tracked settings' values themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueSet {
    pub(crate) search_path: String,
    pub(crate) extra_float_digits: String,
    pub(crate) bytea_output: String,
    /// `SET ROLE`'s role, exactly as PostgreSQL names it, or `none`: the user `"$user"` in
    /// `search_path` stands for when it is not `none`.
    pub(crate) role: String,
}

impl std::ops::Deref for Values {
    type Target = ValueSet;

    fn deref(&self) -> &ValueSet {
        &self.0
    }
}

impl Default for Values {
    /// PostgreSQL's defaults.
    fn default() -> Self {
        Self(Arc::new(ValueSet {
            search_path: DEFAULT_SEARCH_PATH.to_owned(),
            extra_float_digits: "1".to_owned(),
            bytea_output: "hex".to_owned(),
            role: NO_ROLE.to_owned(),
        }))
    }
}

impl ValueSet {
    fn slot(&mut self, name: &str) -> Option<&mut String> {
        match name {
            "search_path" => Some(&mut self.search_path),
            "extra_float_digits" => Some(&mut self.extra_float_digits),
            "bytea_output" => Some(&mut self.bytea_output),
            "role" => Some(&mut self.role),
            _ => None,
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "search_path" => Some(&self.search_path),
            "extra_float_digits" => Some(&self.extra_float_digits),
            "bytea_output" => Some(&self.bytea_output),
            "role" => Some(&self.role),
            _ => None,
        }
    }
}

impl Values {
    /// Sets a tracked setting; others are ignored.
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        if self.get(name).is_some_and(|old| old != value) {
            if let Some(slot) = Arc::make_mut(&mut self.0).slot(name) {
                value.clone_into(slot);
            }
        }
    }

    /// Makes these values `source`'s, without touching the reference counts when they are
    /// already the same set (nearly always).
    pub(crate) fn follow(&mut self, source: &Self) {
        if !Arc::ptr_eq(&self.0, &source.0) {
            self.clone_from(source);
        }
    }
}

/// How the server's `CommandComplete` says a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransactionEnd {
    /// `COMMIT` (or `PREPARE TRANSACTION`): the transaction's changes stay.
    Committed,
    /// `ROLLBACK`, also the answer to a `COMMIT` of a failed transaction.
    RolledBack,
}

impl TransactionEnd {
    fn of_tag(tag: &[u8]) -> Option<Self> {
        match tag {
            b"COMMIT" | b"PREPARE TRANSACTION" => Some(Self::Committed),
            b"ROLLBACK" => Some(Self::RolledBack),
            _ => None,
        }
    }
}

/// How a transaction-ending statement the session sent may settle the settings.
#[derive(Debug, Clone)]
enum Pending {
    /// `COMMIT`: if the server answers `COMMIT`, these values are the session's.
    Commit(Values),
    /// `ROLLBACK` or `ROLLBACK TO`: its `ROLLBACK` answer settles nothing.
    Rollback,
}

/// The tracked settings of one session through transactions and savepoints, as the statements
/// sent and the answers received so far leave them.
#[derive(Debug, Default, Clone)]
struct SettingsState {
    /// The values `RESET` returns to: those the session started with.
    startup: Values,
    /// The values of the last transaction the server confirmed as committed.
    confirmed: Values,
    /// `confirmed`, assuming every `COMMIT` sent so far succeeds.
    committed: Values,
    /// The values the current transaction keeps if it commits (changes without `LOCAL`).
    session: Values,
    /// The values in effect now.
    current: Values,
    /// Open savepoints, innermost last: name and (`current`, `session`) when it was made.
    savepoints: Vec<(String, Values, Values)>,
    /// Transaction ends sent, in order, whose `CommandComplete` has not arrived.
    pending: VecDeque<Pending>,
    /// An `ErrorResponse` arrived since the last `ReadyForQuery`.
    failed: bool,
}

impl SettingsState {
    fn new(startup: Values) -> Self {
        Self {
            confirmed: startup.clone(),
            committed: startup.clone(),
            session: startup.clone(),
            current: startup.clone(),
            startup,
            savepoints: Vec::new(),
            pending: VecDeque::new(),
            failed: false,
        }
    }

    /// A statement the session sends.
    fn apply(&mut self, control: &Control) {
        match control {
            Control::Setting(SettingChange::Set { name, value, local }) => {
                self.current.set(name, value);
                if !local {
                    self.session.set(name, value);
                }
            }
            Control::Setting(SettingChange::Reset { name, local }) => {
                if let Some(value) = self.startup.get(name).map(str::to_owned) {
                    self.apply(&Control::Setting(SettingChange::Set {
                        name: name.clone(),
                        value,
                        local: *local,
                    }));
                }
            }
            Control::Setting(SettingChange::ResetAll) => {
                // `RESET ALL` leaves `SET ROLE` in effect, as PostgreSQL does.
                for values in [&mut self.current, &mut self.session] {
                    let role = values.role.clone();
                    values.follow(&self.startup);
                    values.set("role", &role);
                }
            }
            Control::Setting(SettingChange::DiscardAll) => {
                self.current.follow(&self.startup);
                self.current.set("role", NO_ROLE);
                self.session.follow(&self.current);
            }
            Control::Commit => {
                self.pending
                    .push_back(Pending::Commit(self.session.clone()));
                self.committed.follow(&self.session);
                self.current.follow(&self.session);
                self.savepoints.clear();
            }
            Control::Rollback => {
                self.pending.push_back(Pending::Rollback);
                self.session.follow(&self.committed);
                self.current.follow(&self.committed);
                self.savepoints.clear();
            }
            Control::Savepoint(name) => {
                self.savepoints
                    .push((name.clone(), self.current.clone(), self.session.clone()));
            }
            Control::Release(name) => {
                if let Some(at) = self.savepoints.iter().rposition(|(n, _, _)| n == name) {
                    self.savepoints.truncate(at);
                }
            }
            Control::RollbackTo(name) => {
                self.pending.push_back(Pending::Rollback);
                if let Some(at) = self.savepoints.iter().rposition(|(n, _, _)| n == name) {
                    let (_, current, session) = &self.savepoints[at];
                    self.current.follow(current);
                    self.session.follow(session);
                    self.savepoints.truncate(at + 1);
                }
            }
        }
    }

    /// A `CommandComplete` that ended a transaction.
    fn on_transaction_end(&mut self, end: TransactionEnd) {
        if let Some(Pending::Commit(values)) = self.pending.pop_front() {
            if end == TransactionEnd::Committed {
                self.confirmed = values;
            } else {
                // COMMIT of a failed transaction: it rolled back, as after an error.
                self.failed = true;
            }
        }
    }

    /// An `ErrorResponse` from the server.
    fn on_error(&mut self) {
        self.failed = true;
    }

    /// A `ReadyForQuery`; `idle`: no transaction is open.
    fn on_ready(&mut self, idle: bool) {
        // Every answer to what was sent before has arrived.
        self.pending.clear();
        let failed = std::mem::take(&mut self.failed);
        if failed {
            // The statements after the error were skipped: a COMMIT among them never ran.
            self.committed.follow(&self.confirmed);
        }
        if !idle {
            return;
        }
        if failed {
            // The implicit or explicit transaction that failed rolled back.
            self.session.follow(&self.confirmed);
        } else {
            self.confirmed.follow(&self.session);
        }
        self.committed.follow(&self.confirmed);
        self.session.follow(&self.confirmed);
        self.current.follow(&self.confirmed);
        self.savepoints.clear();
    }
}

/// The schemas of a `search_path` value in order, `$user` replaced by `user`. Unquoted names
/// fold to lower case as PostgreSQL folds them.
pub(crate) fn parse_search_path(value: &str, user: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let name = match item.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => item.to_lowercase(),
            };
            if name == "$user" {
                user.to_owned()
            } else {
                name
            }
        })
        .collect()
}

/// An answer from the server that settles tracked settings.
#[derive(Debug, Clone)]
enum Answer {
    Ended(TransactionEnd),
    Error,
}

/// The tracked settings of one session, with clients that send before the answers to what
/// they sent earlier have arrived (pipelines, and drivers that send the next query once they
/// have seen an error, before its `ReadyForQuery`).
///
/// The server answers *cycles* (everything up to a `Sync` or a `Query`, each closed by one
/// `ReadyForQuery`) in order. A setting change counts for the statements analysed after it
/// (`current`), but how it settles (committed, rolled back, failed) is decided by the answers
/// of its own cycle: answers and `ReadyForQuery` of an earlier cycle must not settle it. So the
/// changes of unanswered cycles are kept apart and replayed on the settled state whenever a
/// cycle ends.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tracker {
    /// The settings after every answered cycle.
    settled: SettingsState,
    /// Answers received for the oldest unanswered cycle, while changes of some unanswered
    /// cycle are kept (otherwise answers settle `settled` at once).
    answers: Vec<Answer>,
    /// Changes of unanswered cycles, with the number of their cycle, in the order sent.
    unanswered: VecDeque<(u64, Control)>,
    /// `settled` with the unanswered changes applied; `None`: no unanswered change.
    ahead: Option<SettingsState>,
    /// Cycles answered so far (`ReadyForQuery`s received).
    answered: u64,
}

impl Tracker {
    /// A session that started with `startup` (its tracked settings as the server resolved them).
    pub(crate) fn new(startup: Values) -> Self {
        Self {
            settled: SettingsState::new(startup),
            ..Self::default()
        }
    }

    /// The values in effect for the next statement analysed.
    pub(crate) fn current(&self) -> &Values {
        &self.ahead.as_ref().unwrap_or(&self.settled).current
    }

    /// A statement of cycle `cycle` (counted from 1 over the session) that the session sends.
    pub(crate) fn apply(&mut self, cycle: u64, control: &Control) {
        self.unanswered.push_back((cycle, control.clone()));
        self.ahead
            .get_or_insert_with(|| self.settled.clone())
            .apply(control);
    }

    /// A `CommandComplete` from the server, with its tag (without the NUL).
    pub(crate) fn on_command_complete(&mut self, tag: &[u8]) {
        let Some(end) = TransactionEnd::of_tag(tag) else {
            // Nearly every statement: only the end of a transaction settles settings.
            return;
        };
        if self.unanswered.is_empty() {
            self.settled.on_transaction_end(end);
        } else {
            self.answers.push(Answer::Ended(end));
        }
    }

    /// An `ErrorResponse` from the server.
    pub(crate) fn on_error(&mut self) {
        if self.unanswered.is_empty() {
            self.settled.on_error();
        } else {
            self.answers.push(Answer::Error);
        }
    }

    /// A `ReadyForQuery`, the end of the oldest unanswered cycle; `idle`: no transaction is
    /// open.
    pub(crate) fn on_ready(&mut self, idle: bool) {
        self.answered += 1;
        if self.unanswered.is_empty() {
            // Nothing in flight changes settings (nearly always): settle in place.
            self.settled.on_ready(idle);
            return;
        }
        while let Some((_, control)) = self
            .unanswered
            .front()
            .filter(|(cycle, _)| *cycle <= self.answered)
        {
            self.settled.apply(control);
            self.unanswered.pop_front();
        }
        for answer in std::mem::take(&mut self.answers) {
            match answer {
                Answer::Ended(end) => self.settled.on_transaction_end(end),
                Answer::Error => self.settled.on_error(),
            }
        }
        self.settled.on_ready(idle);
        self.ahead = if self.unanswered.is_empty() {
            None
        } else {
            let mut ahead = self.settled.clone();
            for (_, control) in &self.unanswered {
                ahead.apply(control);
            }
            Some(ahead)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_folds_and_substitutes_user() {
        assert_eq!(
            parse_search_path("\"$user\", Public, \"Mixed\"", "ann"),
            vec!["ann", "public", "Mixed"]
        );
    }

    #[test]
    fn reset_all_keeps_the_role_and_discard_all_does_not() {
        let mut t = Tracker::new(Values::default());
        t.apply(1, &set("role", "tenant", false));
        t.apply(1, &set("search_path", "x", false));
        t.apply(1, &Control::Setting(SettingChange::ResetAll));
        assert_eq!(&*t.current().role, "tenant");
        assert_eq!(t.current().search_path, Values::default().search_path);
        t.apply(1, &Control::Setting(SettingChange::DiscardAll));
        assert_eq!(&*t.current().role, NO_ROLE);
    }

    fn set(name: &str, value: &str, local: bool) -> Control {
        Control::Setting(SettingChange::Set {
            name: name.into(),
            value: value.into(),
            local,
        })
    }

    #[test]
    fn set_local_ends_with_the_transaction() {
        let mut t = Tracker::new(Values::default());
        let mut cycle = 1;
        t.apply(cycle, &set("search_path", "a", false));
        t.on_ready(true);
        cycle += 1;
        t.apply(cycle, &set("search_path", "b", true));
        assert_eq!(&*t.current().search_path, "b");
        t.on_ready(false);
        cycle += 1;
        t.apply(cycle, &Control::Commit);
        assert_eq!(&*t.current().search_path, "a");
        t.on_command_complete(b"COMMIT");
        t.on_ready(true);
        assert_eq!(&*t.current().search_path, "a");
    }

    #[test]
    fn rollbacks_and_errors_undo_changes() {
        let mut t = Tracker::new(Values::default());
        let mut cycle = 1;
        // BEGIN; SET; ROLLBACK
        t.apply(cycle, &set("bytea_output", "escape", false));
        t.apply(cycle, &Control::Rollback);
        assert_eq!(&*t.current().bytea_output, "hex");
        t.on_command_complete(b"ROLLBACK");
        t.on_ready(true);
        cycle += 1;
        assert_eq!(&*t.current().bytea_output, "hex");
        // SET; SELECT 1/0 in one implicit transaction
        t.apply(cycle, &set("bytea_output", "escape", false));
        t.on_error();
        t.on_ready(true);
        cycle += 1;
        assert_eq!(&*t.current().bytea_output, "hex");
        // BEGIN; SET; COMMIT that the server turns into a rollback
        t.apply(cycle, &set("bytea_output", "escape", false));
        t.on_ready(false);
        cycle += 1;
        t.apply(cycle, &Control::Commit);
        t.on_command_complete(b"ROLLBACK");
        t.on_ready(true);
        cycle += 1;
        assert_eq!(&*t.current().bytea_output, "hex");
        // BEGIN; SET a; COMMIT; SET b; <error> in one string: a stays, b goes
        t.apply(cycle, &set("bytea_output", "escape", false));
        t.apply(cycle, &Control::Commit);
        t.apply(cycle, &set("extra_float_digits", "3", false));
        t.on_command_complete(b"COMMIT");
        t.on_error();
        t.on_ready(true);
        assert_eq!(&*t.current().bytea_output, "escape");
        assert_eq!(&*t.current().extra_float_digits, "1");
    }

    #[test]
    fn rollback_to_savepoint_undoes_later_changes() {
        let mut t = Tracker::new(Values::default());
        let cycle = 1;
        t.apply(cycle, &set("search_path", "a", false));
        t.apply(cycle, &Control::Savepoint("s".into()));
        t.apply(cycle, &set("search_path", "b", false));
        t.apply(cycle, &set("extra_float_digits", "3", true));
        t.apply(cycle, &Control::RollbackTo("s".into()));
        assert_eq!(&*t.current().search_path, "a");
        assert_eq!(&*t.current().extra_float_digits, "1");
        t.apply(cycle, &set("search_path", "c", true));
        t.apply(cycle, &Control::Release("s".into()));
        assert_eq!(&*t.current().search_path, "c");
        t.apply(cycle, &Control::Commit);
        assert_eq!(&*t.current().search_path, "a");
        t.on_command_complete(b"ROLLBACK");
        t.on_command_complete(b"COMMIT");
        t.on_ready(true);
        assert_eq!(&*t.current().search_path, "a");
    }

    #[test]
    fn answers_settle_only_the_changes_of_their_own_cycle() {
        // BEGIN; SET search_path = enc (cycle 1), then SELECT 1/0 (cycle 2) and, sent before
        // the error's ReadyForQuery arrived, COMMIT (cycle 3), which the server turns into a
        // rollback.
        let mut t = Tracker::new(Values::default());
        t.apply(1, &set("search_path", "enc", false));
        t.on_ready(false);
        t.apply(3, &Control::Commit);
        assert_eq!(&*t.current().search_path, "enc");
        t.on_error();
        t.on_ready(false);
        assert_eq!(
            &*t.current().search_path,
            "enc",
            "the COMMIT is still in flight"
        );
        t.on_command_complete(b"ROLLBACK");
        t.on_ready(true);
        assert_eq!(t.current().search_path, Values::default().search_path);

        // A SET sent ahead of the previous cycle's answer survives that answer.
        t.apply(5, &set("bytea_output", "escape", false));
        t.on_ready(true);
        assert_eq!(&*t.current().bytea_output, "escape");
        t.on_ready(true);
        assert_eq!(&*t.current().bytea_output, "escape");
    }
}
