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
//! The caches are per session, not shared by the sessions of a database: a template stands for
//! many texts but its key still holds every constant it does not abstract (escape strings,
//! dollar-quoted strings, pinned positions), so a shared cache would let one session learn,
//! from how fast its statement is answered, whether another session sent a text with the same
//! constants. Sessions that live for more than a handful of statements lose nothing by it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Weak};

use pgseal_sql::{Analysis, PlanTemplate, SqlError, TemplateKey};

use super::super::catalog::DbCatalog;

/// Entries per map before the least recently used is dropped.
const CAPACITY: usize = 256;

/// An analysis or its refusal, shared between the cache and the statements using it.
pub(super) type CachedAnalysis = Result<Arc<Analysis>, Arc<SqlError>>;

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
    templates: Lru<String, Arc<PlanTemplate>>,
    tick: u64,
    catalog: Option<Weak<DbCatalog>>,
}

impl Default for PlanCache {
    fn default() -> Self {
        Self {
            texts: Lru::new(),
            templates: Lru::new(),
            tick: 0,
            catalog: None,
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

    /// The analysis of `sql` if this exact text was analysed.
    pub(super) fn by_text(&mut self, sql: &str) -> Option<CachedAnalysis> {
        self.tick += 1;
        self.texts.get(sql, self.tick)
    }

    /// The analysis of `sql` from the template of its `key`, if there is one that applies.
    pub(super) fn by_template(&mut self, sql: &str, key: &TemplateKey) -> Option<CachedAnalysis> {
        self.tick += 1;
        let template = self.templates.get(key.as_str(), self.tick)?;
        template.instantiate(sql, key).map(|a| Ok(Arc::new(a)))
    }

    /// Records the analysis of `sql`: as a template when one can stand for it, else by text.
    pub(super) fn put(&mut self, sql: &str, key: Option<&TemplateKey>, analysis: &CachedAnalysis) {
        self.tick += 1;
        if let (Some(key), Ok(done)) = (key, analysis) {
            if let Some(template) = PlanTemplate::build(sql, key, done) {
                self.templates
                    .put(key.as_str().to_owned(), Arc::new(template), self.tick);
                return;
            }
        }
        self.texts.put(sql.to_owned(), analysis.clone(), self.tick);
    }
}
