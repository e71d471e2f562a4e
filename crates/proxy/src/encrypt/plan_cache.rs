//! Per-session caches of statement analyses.
//!
//! Two least-recently-used maps, both valid for one catalog and one `search_path` (the only
//! inputs of an analysis besides the text) and emptied when either changes:
//!
//! * by exact text: every analysis, refusals included, that has no template;
//! * by [`TemplateKey`] (the text with its constants abstracted): [`PlanTemplate`]s of data
//!   statements, so that texts differing only in constants (`... WHERE aid = 4711`, then
//!   `... = 815`: pgbench in simple mode, ORMs that inline values) are analysed once. A key
//!   costs a scan, about a fifth of a parse and analysis (`docs/performance.md`).
//!
//! With each analysis the cache keeps what the text's statements do to the session's tracked
//! settings and transaction (`settings_syntax.rs`), so that a `BEGIN`, `COMMIT` or `SET` sent
//! again, or a text of a known template, is not read a second time for it.
//!
//! The caches are per session, not shared by the sessions of a database: a template stands for
//! many texts but its key still holds every constant it does not abstract (escape strings,
//! dollar-quoted strings, pinned positions), so a shared cache would let one session learn,
//! from how fast its statement is answered, whether another session sent a text with the same
//! constants. Sessions that live for more than a handful of statements lose nothing by it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Weak};

use pgseal_sql::{may_call_set_config, Analysis, PlanTemplate, SqlError, TemplateKey};
use pgseal_wire::backend::ErrorFields;

use super::super::catalog::DbCatalog;
use super::super::settings_syntax::{controls_of, Control};

/// Entries per map before the least recently used is dropped.
const CAPACITY: usize = 256;

/// An analysed text and what its statements do to the session's tracked settings and
/// transaction: both depend on the text alone (and the analysis on the catalog and
/// `search_path` the cache is kept for), so both are worked out once per text or template.
pub(super) struct Analyzed {
    pub(super) analysis: Analysis,
    /// Each `SET`, `COMMIT`, constant `set_config()`, ... with the index of its statement,
    /// in order (empty for most texts); or why the proxy cannot follow them.
    pub(super) controls: Result<Vec<(usize, Control)>, ErrorFields>,
}

impl Analyzed {
    fn new(sql: &str, analysis: Analysis) -> Self {
        let controls = controls_of(sql, &analysis);
        Self { analysis, controls }
    }
}

/// An analysis or its refusal, shared between the cache and the statements using it.
pub(super) type CachedAnalysis = Result<Arc<Analyzed>, Arc<SqlError>>;

/// A template and whether its texts may call `set_config()`.
struct CachedTemplate {
    template: PlanTemplate,
    /// `false` when the key, the text outside abstracted constants, spells no `set_config`:
    /// then no text of the template calls it. Templates are only made of data statements,
    /// whose only controls are such calls, so their texts' controls are known to be none
    /// without reading them.
    may_set: bool,
}

/// A bounded map that drops its least recently used entry when full.
struct Lru<K, V> {
    entries: HashMap<K, (V, u64)>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }

    fn get<Q>(&mut self, key: &Q, tick: u64) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get_mut(key).map(|(value, used)| {
            *used = tick;
            value.clone()
        })
    }

    fn put(&mut self, key: K, value: V, tick: u64) {
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(&key) {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (value, tick));
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The analyses of one session.
pub(super) struct PlanCache {
    texts: Lru<String, CachedAnalysis>,
    templates: Lru<String, Arc<CachedTemplate>>,
    tick: u64,
    catalog: Option<Weak<DbCatalog>>,
    /// The key of the text being looked up, kept between lookups for its memory.
    scratch: TemplateKey,
}

impl Default for PlanCache {
    fn default() -> Self {
        Self {
            texts: Lru::new(),
            templates: Lru::new(),
            tick: 0,
            catalog: None,
            scratch: TemplateKey::default(),
        }
    }
}

impl PlanCache {
    /// Empties the cache if `catalog` is not the one its entries were made with.
    pub(super) fn sync_catalog(&mut self, catalog: &Arc<DbCatalog>) {
        let same = self.catalog.as_ref().is_some_and(|c| {
            std::ptr::eq(c.as_ptr(), Arc::as_ptr(catalog)) && c.strong_count() > 0
        });
        if !same {
            self.clear();
            self.catalog = Some(Arc::downgrade(catalog));
        }
    }

    /// Empties the cache (the session's `search_path` changed).
    pub(super) fn clear(&mut self) {
        self.texts.clear();
        self.templates.clear();
    }

    /// The cached analysis of `sql`; else the key to record its analysis under (`None`: no
    /// template can stand for it).
    ///
    /// Texts with constants, the common case, are looked up by template first: their quick
    /// key is needed anyway and a lookup by text would miss. Only texts this crate's scanner
    /// declines pay for PostgreSQL's, and only when their text is not cached.
    pub(super) fn find(&mut self, sql: &str) -> Result<CachedAnalysis, Option<TemplateKey>> {
        self.tick += 1;
        let mut key = std::mem::take(&mut self.scratch);
        let quick = key.rescan_quick(sql);
        let instance = if quick {
            self.by_template(sql, &key)
        } else {
            None
        };
        let found = instance.or_else(|| self.texts.get(sql, self.tick));
        if let Some(found) = found {
            self.scratch = key;
            return Ok(found);
        }
        if quick {
            // Recorded with the analysis; the next lookup starts a new buffer.
            return Err(Some(key));
        }
        self.scratch = key;
        let key = TemplateKey::of_postgres_scan(sql);
        match key.as_ref().and_then(|key| self.by_template(sql, key)) {
            Some(instance) => Ok(instance),
            None => Err(key),
        }
    }

    /// The analysis of `sql` from the template of its `key`, if there is one that applies.
    fn by_template(&mut self, sql: &str, key: &TemplateKey) -> Option<CachedAnalysis> {
        let cached = self.templates.get(key.as_str(), self.tick)?;
        let analysis = cached.template.instantiate(sql, key)?;
        let analyzed = if cached.may_set {
            Analyzed::new(sql, analysis)
        } else {
            Analyzed {
                analysis,
                controls: Ok(Vec::new()),
            }
        };
        Some(Ok(Arc::new(analyzed)))
    }

    /// Records the analysis of `sql` (found under [`find`](Self::find)'s `key`): as a
    /// template when one can stand for it, else by text. Returns it as cached.
    pub(super) fn put(
        &mut self,
        sql: &str,
        key: Option<&TemplateKey>,
        analysis: Result<Analysis, SqlError>,
    ) -> CachedAnalysis {
        self.tick += 1;
        let cached = analysis
            .map(|analysis| Arc::new(Analyzed::new(sql, analysis)))
            .map_err(Arc::new);
        if let (Some(key), Ok(done)) = (key, &cached) {
            if let Some(template) = PlanTemplate::build(sql, key, &done.analysis) {
                let may_set = may_call_set_config(key.as_str());
                let entry = Arc::new(CachedTemplate { template, may_set });
                self.templates
                    .put(key.as_str().to_owned(), entry, self.tick);
                return cached;
            }
        }
        self.texts.put(sql.to_owned(), cached.clone(), self.tick);
        cached
    }
}
