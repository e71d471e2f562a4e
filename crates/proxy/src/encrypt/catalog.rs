//! The encryption catalog of each database: relations, encrypted columns and their keys,
//! loaded through the proxy's own control connection and shared by every session of that
//! database.
//!
//! One loader task per database keeps the catalog current: it loads once when the first session
//! (or [`serve_encrypted`](super::serve_encrypted)) asks, then again every `reload_interval`
//! and whenever a session asks for it after a schema change. Each load publishes a new
//! [`Snapshot`] (an `Arc`, swapped atomically through a `watch` channel); sessions read the
//! latest one per statement and never see a half-built catalog.
//!
//! Key changes made elsewhere (`pgseal keys rotate`, `rewrap`, `retire`, key creation) are
//! announced with `NOTIFY pgseal_catalog` in the transaction that makes them. Each control
//! connection `LISTEN`s on that channel as soon as it is made, and a notification wakes the
//! loader at once; the interval reload stays as the fallback (a notification sent while the
//! control connection was down is covered by the load that follows every reconnection).
//!
//! The master keys are replaceable at run time ([`Catalogs::reload_master_keys`]): a new
//! keyring is first checked against the stored keys of every database seen so far, and only
//! then swapped in and every catalog reloaded; sessions keep going on their current snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use pgseal::{AuditLog, Keyring, MasterKeyring};
use pgseal_sql::{ColumnRef, EncryptedColumnInfo, LogicalType, TableRef};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client};
use tracing::{debug, warn};

use crate::ProxyError;

/// Where decrypting a result column may look for its keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnCrypto {
    /// `schema.relation.column` as clients know it (a view column is named after the view).
    pub(crate) qualified_name: String,
    /// The values' logical type.
    pub(crate) logical_type: LogicalType,
    /// The `pgseal.columns` ids whose ciphertexts may appear here: one for a table column, the
    /// candidates a view column may come from. Empty: the column has no keys yet.
    pub(crate) column_ids: Vec<u32>,
}

/// One relation (table, view, ...) as the analysis sees it.
#[derive(Debug, Clone, PartialEq)]
struct Relation {
    schema: String,
    name: String,
    columns: Vec<ColumnRef>,
}

/// Everything the encryption layer knows about one database at one moment.
pub(crate) struct DbCatalog {
    database: String,
    relations: HashMap<u32, Relation>,
    by_name: HashMap<(String, String), u32>,
    system_names: HashSet<String>,
    encrypted_names: HashSet<String>,
    encrypted: HashMap<(u32, i16), ColumnCrypto>,
    keyring: Option<Keyring>,
    /// Relation OIDs by lower-cased name (any schema): what a statement's text may refer to.
    by_bare_name: HashMap<String, Vec<u32>>,
    /// Tables with an unfinished column migration (`pgseal encrypt-column`/`decrypt-column`).
    migrating: HashMap<u32, MigratingTable>,
}

/// A table whose column is being migrated, as the cutover hold sees it (`cutover.rs`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MigratingTable {
    /// Lower-cased names of the table and of the views that depend on it: a statement whose
    /// text names none of them does not touch the table.
    pub(crate) names: Vec<String>,
    /// Until when the migration announced its cutover (the cutover clears the mark when it
    /// commits); `None` or past: no cutover pending.
    pub(crate) cutover_until: Option<Instant>,
}

impl MigratingTable {
    /// Whether a cutover of this table is announced and not yet done or withdrawn.
    pub(crate) fn cutover_pending(&self) -> bool {
        self.cutover_until
            .is_some_and(|until| until > Instant::now())
    }
}

impl std::fmt::Debug for DbCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCatalog")
            .field("database", &self.database)
            .field("relations", &self.relations.len())
            .field("encrypted_columns", &self.encrypted.len())
            .finish_non_exhaustive()
    }
}

impl DbCatalog {
    /// Whether `other` knows exactly what this catalog knows: the same relations, encrypted
    /// columns, keys and migrations. The loader then keeps publishing this one, so that
    /// sessions keep the analyses and plans they made with it (a new catalog empties them).
    fn same_as(&self, other: &DbCatalog) -> bool {
        let same_keys = match (&self.keyring, &other.keyring) {
            (None, None) => true,
            (Some(mine), Some(theirs)) => mine.same_source(theirs),
            _ => false,
        };
        // Destructured so that a field added later cannot be forgotten here.
        let DbCatalog {
            database,
            relations,
            by_name,
            system_names,
            encrypted_names,
            encrypted,
            keyring: _,
            by_bare_name,
            migrating,
        } = self;
        same_keys
            && *database == other.database
            && *relations == other.relations
            && *by_name == other.by_name
            && *system_names == other.system_names
            && *encrypted_names == other.encrypted_names
            && *encrypted == other.encrypted
            && *by_bare_name == other.by_bare_name
            // A pending cutover's deadline is an instant of this load: a catalog with one
            // is never the same as another.
            && *migrating == other.migrating
    }

    /// The encrypted column a result field with this origin carries, if any.
    pub(crate) fn encrypted_column(&self, table_oid: u32, attnum: i16) -> Option<&ColumnCrypto> {
        self.encrypted.get(&(table_oid, attnum))
    }

    /// The cipher of column `column_id`.
    pub(crate) fn cipher(&self, column_id: u32) -> Option<&pgseal_crypto::ColumnCipher> {
        self.keyring
            .as_ref()?
            .by_id(column_id)
            .map(|sealed| &sealed.cipher)
    }

    /// Tables with an unfinished column migration, by OID.
    pub(crate) fn migrating(&self) -> &HashMap<u32, MigratingTable> {
        &self.migrating
    }

    /// The relations whose (lower-cased, unqualified) name is `name`.
    pub(crate) fn relations_named(&self, name: &str) -> &[u32] {
        self.by_bare_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether relation `oid` has the same columns (names, positions, encryption and keys)
    /// here and in `other`: a statement prepared with one catalog still fits the other.
    pub(crate) fn same_relation(&self, other: &DbCatalog, oid: u32) -> bool {
        match (self.relations.get(&oid), other.relations.get(&oid)) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.columns.len() == b.columns.len()
                    && a.columns.iter().zip(&b.columns).all(|(x, y)| {
                        x.name == y.name && x.attnum == y.attnum && x.encrypted == y.encrypted
                    })
            }
            _ => false,
        }
    }

    /// Whether relation `oid` has the same column names in the same order here and in `other`:
    /// a `*` over it expands the same way in both.
    pub(crate) fn same_column_order(&self, other: &DbCatalog, oid: u32) -> bool {
        match (self.relations.get(&oid), other.relations.get(&oid)) {
            (Some(a), Some(b)) => {
                a.columns.len() == b.columns.len()
                    && a.columns
                        .iter()
                        .zip(&b.columns)
                        .all(|(x, y)| x.name == y.name)
            }
            (a, b) => a.is_none() && b.is_none(),
        }
    }

    /// Resolves `name` along `search_path` as PostgreSQL does (the implicit `pg_catalog`
    /// first unless the path names it).
    fn resolve(&self, schema: Option<&str>, name: &str, search_path: &[String]) -> Option<u32> {
        if let Some(schema) = schema {
            return self
                .by_name
                .get(&(schema.to_owned(), name.to_owned()))
                .copied();
        }
        let explicit_catalog = search_path.iter().any(|s| s == "pg_catalog");
        if !explicit_catalog && self.system_names.contains(name) {
            return None;
        }
        for schema in search_path {
            if schema == "pg_catalog" {
                if self.system_names.contains(name) {
                    return None;
                }
                continue;
            }
            if let Some(oid) = self.by_name.get(&(schema.clone(), name.to_owned())) {
                return Some(*oid);
            }
        }
        None
    }
}

/// The catalog as one session sees it: the shared [`DbCatalog`] with the session's
/// `search_path` (schemas in order, `$user` already substituted).
pub(crate) struct SessionCatalog<'a> {
    pub(crate) catalog: &'a DbCatalog,
    pub(crate) search_path: &'a [String],
    /// Relations whose encrypted columns the session's open transaction declared
    /// ([`pgseal_sql::StatementPlan::declares_encrypted`]).
    pub(crate) uncommitted: &'a [String],
}

impl pgseal_sql::Catalog for SessionCatalog<'_> {
    fn resolve_table(&self, schema: Option<&str>, name: &str) -> Option<TableRef> {
        let oid = self.catalog.resolve(schema, name, self.search_path)?;
        let relation = self.catalog.relations.get(&oid)?;
        Some(TableRef {
            oid,
            schema: relation.schema.clone(),
            name: relation.name.clone(),
            columns: relation.columns.clone(),
        })
    }

    fn is_encrypted_table_name(&self, name: &str) -> bool {
        self.catalog.encrypted_names.contains(name)
    }

    fn uncommitted_encrypted(&self) -> &[String] {
        self.uncommitted
    }
}

/// One published state of a database's catalog.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    /// Reload requests this load answers: every request numbered up to it was made before
    /// the load started.
    pub(crate) generation: u64,
    pub(crate) state: SnapshotState,
}

/// Whether a catalog is available.
#[derive(Clone, Debug)]
pub(crate) enum SnapshotState {
    /// The first load has not finished.
    Loading,
    /// The latest good catalog.
    Ready(Arc<DbCatalog>),
    /// No load has ever succeeded; why the latest failed (no secrets: names and reasons).
    Failed(Arc<str>),
}

/// A published catalog as one session holds it, behind a reference count of its own. A session
/// takes a handle on its catalog for nearly every message; cloning the published `Arc` itself
/// would write to a cache line that the sessions on every core share, and bounce it between
/// the cores at every message.
pub(crate) type HeldCatalog = Arc<Arc<DbCatalog>>;

/// Why a session has no catalog to judge statements with.
pub(crate) enum Unavailable<'a> {
    /// The first load has not finished.
    Loading,
    /// No load has ever succeeded; why the latest failed.
    Failed(&'a str),
}

/// A session's view of its database's snapshots: the latest published one, copied again only
/// when a newer one has been published. Reading the shared `watch` takes its lock, an atomic
/// write to a cache line that every session on every core shares, and copying the snapshot
/// another on the catalog's reference count; checking the version is a plain load.
pub(crate) struct SnapshotView {
    updates: watch::Receiver<Snapshot>,
    current: Snapshot,
    /// `current`'s catalog when it is ready.
    held: Option<HeldCatalog>,
}

impl SnapshotView {
    pub(crate) fn new(db: &DbHandle) -> Self {
        let mut updates = db.subscribe();
        let current = updates.borrow_and_update().clone();
        let mut view = Self {
            updates,
            current,
            held: None,
        };
        view.hold();
        view
    }

    /// The latest published snapshot.
    pub(crate) fn current(&mut self) -> &Snapshot {
        // An error means the loader is gone (shutdown): the last snapshot stays.
        if self.updates.has_changed().unwrap_or(false) {
            self.current = self.updates.borrow_and_update().clone();
            self.hold();
        }
        &self.current
    }

    /// The latest published catalog, or why there is none.
    pub(crate) fn catalog(&mut self) -> Result<HeldCatalog, Unavailable<'_>> {
        self.current();
        match (&self.held, &self.current.state) {
            (Some(held), _) => Ok(Arc::clone(held)),
            (None, SnapshotState::Failed(why)) => Err(Unavailable::Failed(why)),
            (None, _) => Err(Unavailable::Loading),
        }
    }

    fn hold(&mut self) {
        self.held = match &self.current.state {
            // The same catalog published again (a reload that found nothing changed): the
            // handle stays, and with it the plans the session made with it.
            SnapshotState::Ready(catalog)
                if self
                    .held
                    .as_ref()
                    .is_some_and(|held| Arc::ptr_eq(held.as_ref(), catalog)) =>
            {
                self.held.take()
            }
            SnapshotState::Ready(catalog) => Some(Arc::new(Arc::clone(catalog))),
            SnapshotState::Loading | SnapshotState::Failed(_) => None,
        };
    }
}

/// A database's catalog, kept current by its loader task.
pub(crate) struct DbHandle {
    requested: AtomicU64,
    wake: Notify,
    snapshot: watch::Receiver<Snapshot>,
}

impl DbHandle {
    /// A receiver to wait for newer snapshots.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// The generation that reflects every reload asked for so far: a session that waits for
    /// it sees whatever an earlier schema change (by any session) or announcement asked for.
    pub(crate) fn latest_request(&self) -> u64 {
        self.requested.load(Ordering::SeqCst)
    }

    /// Asks for a reload; returns the generation that will reflect everything committed
    /// before this call.
    pub(crate) fn request_reload(&self) -> u64 {
        let generation = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        generation
    }
}

/// The control connection settings and the catalogs of every database seen so far.
pub(crate) struct Catalogs {
    control: tokio_postgres::Config,
    /// The upstream URL's TLS settings (`sslmode`, `sslrootcert`), as for client sessions.
    control_tls: crate::tls::PostgresTls,
    /// Replaced whole by [`Catalogs::reload_master_keys`]; loads take a clone of the `Arc`.
    master: RwLock<Arc<MasterKeyring>>,
    audit: AuditLog,
    reload_interval: Duration,
    databases: Mutex<HashMap<String, Arc<DbHandle>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The runtime the proxy was started on. Loaders and control connections run there, not
    /// on the worker thread of whichever session first named a database: they serve every
    /// session and outlive any one of them.
    runtime: tokio::runtime::Handle,
}

impl Drop for Catalogs {
    fn drop(&mut self) {
        // The loaders hold control connections; they end with the proxy.
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Catalogs {
    /// Settings checked; nothing connects yet. Must be called on the runtime the loaders are to
    /// run on.
    pub(crate) fn new(
        control_url: &str,
        master: MasterKeyring,
        audit: AuditLog,
        reload_interval: Duration,
    ) -> Result<Arc<Self>, ProxyError> {
        let (control, control_tls) = crate::tls::postgres_config(control_url).map_err(|err| {
            ProxyError::InvalidControlUrl {
                problem: err.to_string(),
            }
        })?;
        if control.get_user().is_none() {
            return Err(ProxyError::InvalidControlUrl {
                problem: "it names no user".to_owned(),
            });
        }
        if reload_interval.is_zero() {
            return Err(ProxyError::InvalidConfig {
                setting: "reload_interval",
                problem: "is 0; use a positive duration such as 5 s".to_owned(),
            });
        }
        Ok(Arc::new(Self {
            control,
            control_tls,
            master: RwLock::new(Arc::new(master)),
            audit,
            reload_interval,
            databases: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    /// The database the control URL names (PostgreSQL defaults it to the user name).
    pub(crate) fn control_database(&self) -> String {
        self.control
            .get_dbname()
            .or(self.control.get_user())
            .unwrap_or_default()
            .to_owned()
    }

    /// Loads `database`'s catalog now, returning the typed error if it fails, and publishes
    /// it so sessions start with it.
    pub(crate) async fn preload(self: &Arc<Self>, database: &str) -> Result<(), ProxyError> {
        let mut client = None;
        // This connection does not listen: the loader makes its own, listening one at once.
        let catalog = self
            .load(&mut client, database, None)
            .await
            .map_err(|source| ProxyError::Catalog {
                database: database.to_owned(),
                source,
            })?;
        drop(client);
        self.start(database, Some(Arc::new(catalog)), None);
        Ok(())
    }

    /// The handle of `database`, starting its loader on first use.
    pub(crate) fn handle(self: &Arc<Self>, database: &str) -> Arc<DbHandle> {
        self.start(database, None, None)
    }

    fn start(
        self: &Arc<Self>,
        database: &str,
        preloaded: Option<Arc<DbCatalog>>,
        client: Option<Client>,
    ) -> Arc<DbHandle> {
        let mut databases = self
            .databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = databases.get(database) {
            return Arc::clone(handle);
        }
        let initial = Snapshot {
            generation: u64::from(preloaded.is_some()),
            state: preloaded
                .clone()
                .map_or(SnapshotState::Loading, SnapshotState::Ready),
        };
        let (tx, rx) = watch::channel(initial);
        let handle = Arc::new(DbHandle {
            requested: AtomicU64::new(1),
            wake: Notify::new(),
            snapshot: rx,
        });
        databases.insert(database.to_owned(), Arc::clone(&handle));
        let task = self.runtime.spawn(loader(
            Arc::downgrade(self),
            Arc::clone(&handle),
            tx,
            database.to_owned(),
            preloaded,
            client,
        ));
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
        handle
    }

    /// The master keys in force.
    pub(crate) fn master(&self) -> Arc<MasterKeyring> {
        Arc::clone(&self.master.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every database handle seen so far.
    fn handles(&self) -> Vec<(String, Arc<DbHandle>)> {
        self.databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, handle)| (name.clone(), Arc::clone(handle)))
            .collect()
    }

    /// Asks every database's loader to reload now.
    pub(crate) fn reload_all(&self) {
        for (_, handle) in self.handles() {
            handle.request_reload();
        }
    }

    /// Replaces the master keys: first checks that `master` unwraps the stored data keys of
    /// every database seen so far (on fresh connections, changing nothing), then swaps it in and
    /// reloads every catalog. On any failure the keys in force stay, and the error says which
    /// database refused them.
    pub(crate) async fn reload_master_keys(&self, master: MasterKeyring) -> Result<(), ProxyError> {
        let mut databases: Vec<String> = self.handles().into_iter().map(|(n, _)| n).collect();
        let control = self.control_database();
        if !databases.contains(&control) {
            databases.push(control);
        }
        for database in databases {
            let check = async {
                let client = self.connect(&database, None).await?;
                let has_schema: bool = client
                    .query_one("SELECT to_regnamespace('pgseal') IS NOT NULL", &[])
                    .await
                    .map_err(db_error)?
                    .get(0);
                if has_schema {
                    Keyring::load(&client, &master, &self.audit).await?;
                }
                Ok::<(), pgseal::Error>(())
            };
            check.await.map_err(|source| ProxyError::Catalog {
                database: database.clone(),
                source,
            })?;
        }
        *self.master.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(master);
        self.reload_all();
        Ok(())
    }

    /// Opens a control connection. With `listener`, the connection `LISTEN`s on
    /// [`pgseal::keyring::CATALOG_CHANNEL`] and each notification asks that database's loader
    /// for a reload.
    async fn connect(
        &self,
        database: &str,
        listener: Option<std::sync::Weak<DbHandle>>,
    ) -> Result<Client, pgseal::Error> {
        let mut config = self.control.clone();
        config.dbname(database);
        config.application_name("pgseal proxy catalog");
        let (client, connection) = config
            .connect(self.control_tls.clone())
            .await
            .map_err(|err| pgseal::Error::Database(pgseal::describe_db_error(&err)))?;
        let mut connection = connection;
        let listening = listener.is_some();
        self.runtime.spawn(async move {
            // Drives the connection and forwards notifications; errors surface on the next
            // query through the client.
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(note))
                        if note.channel() == pgseal::keyring::CATALOG_CHANNEL =>
                    {
                        if let Some(handle) = listener.as_ref().and_then(std::sync::Weak::upgrade) {
                            debug!("key change announced: reloading the catalog");
                            handle.request_reload();
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        if listening {
            client
                .batch_execute(&format!("LISTEN {}", pgseal::keyring::CATALOG_CHANNEL))
                .await
                .map_err(db_error)?;
        }
        Ok(client)
    }

    /// One load, reusing (or re-making) the control connection.
    async fn load(
        &self,
        client: &mut Option<Client>,
        database: &str,
        listener: Option<&Arc<DbHandle>>,
    ) -> Result<DbCatalog, pgseal::Error> {
        if client.as_ref().is_none_or(Client::is_closed) {
            *client = Some(self.connect(database, listener.map(Arc::downgrade)).await?);
        }
        let Some(conn) = client.as_mut() else {
            return Err(pgseal::Error::Database(
                "control connection unavailable".to_owned(),
            ));
        };
        let master = self.master();
        let result = load_catalog(conn, &master, &self.audit).await;
        if result.is_err() {
            // The next attempt starts from a fresh connection.
            *client = None;
        }
        result
    }
}

async fn loader(
    catalogs: std::sync::Weak<Catalogs>,
    handle: Arc<DbHandle>,
    tx: watch::Sender<Snapshot>,
    database: String,
    mut last_good: Option<Arc<DbCatalog>>,
    mut client: Option<Client>,
) {
    let mut first = last_good.is_none();
    loop {
        if !first {
            let Some(current) = catalogs.upgrade() else {
                return;
            };
            let interval = current.reload_interval;
            if client.as_ref().is_none_or(Client::is_closed) {
                // Listen before waiting, so a key change is not missed until the next
                // interval. A load follows every new connection: changes committed while
                // nobody listened are picked up by it.
                match current
                    .connect(&database, Some(Arc::downgrade(&handle)))
                    .await
                {
                    Ok(fresh) => {
                        client = Some(fresh);
                        handle.request_reload();
                    }
                    Err(error) => {
                        debug!(database, %error, "control connection unavailable; retrying");
                    }
                }
            }
            drop(current);
            tokio::select! {
                () = handle.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
        first = false;
        let Some(catalogs) = catalogs.upgrade() else {
            return;
        };
        let generation = handle.requested.load(Ordering::SeqCst);
        let state = match catalogs.load(&mut client, &database, Some(&handle)).await {
            Ok(catalog) => match last_good.as_ref().filter(|old| old.same_as(&catalog)) {
                Some(unchanged) => {
                    debug!(database, "encryption catalog reloaded, unchanged");
                    SnapshotState::Ready(Arc::clone(unchanged))
                }
                None => {
                    debug!(database, "encryption catalog loaded");
                    let catalog = Arc::new(catalog);
                    last_good = Some(Arc::clone(&catalog));
                    SnapshotState::Ready(catalog)
                }
            },
            Err(error) => {
                warn!(database, %error, "cannot load the encryption catalog");
                match &last_good {
                    // Keep serving with what was known: columns added since are still
                    // guarded by their domains' CHECK, new key versions fail to open.
                    Some(catalog) => SnapshotState::Ready(Arc::clone(catalog)),
                    None => SnapshotState::Failed(Arc::from(format!(
                        "cannot load the encryption catalog of database {database}: {error}"
                    ))),
                }
            }
        };
        drop(catalogs);
        tx.send_replace(Snapshot { generation, state });
    }
}

fn db_error(err: tokio_postgres::Error) -> pgseal::Error {
    pgseal::Error::Database(pgseal::describe_db_error(&err))
}

/// Loads relations, encrypted columns and keys of the connected database.
async fn load_catalog(
    client: &mut Client,
    master: &MasterKeyring,
    audit: &AuditLog,
) -> Result<DbCatalog, pgseal::Error> {
    let database: String = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .map_err(db_error)?
        .get(0);
    let has_schema: bool = client
        .query_one("SELECT to_regnamespace('pgseal') IS NOT NULL", &[])
        .await
        .map_err(db_error)?
        .get(0);
    if has_schema {
        // Writes (creates missing keys), so in its own transaction, before the snapshot.
        pgseal::ensure_data_keys(client, master, audit).await?;
    }
    // Everything else from one snapshot: read piecemeal, a cutover committing in between
    // (a column renamed, its registration moved) would give a catalog that never existed.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(db_error)?;
    let loaded = load_snapshot(client, database, has_schema, master, audit).await;
    let end = if loaded.is_ok() { "COMMIT" } else { "ROLLBACK" };
    // A failed COMMIT/ROLLBACK fails the load too: the caller then drops the connection.
    let ended = client.batch_execute(end).await.map_err(db_error);
    let catalog = loaded?;
    ended?;
    Ok(catalog)
}

/// The body of [`load_catalog`], run inside its read-only snapshot transaction.
async fn load_snapshot(
    client: &mut Client,
    database: String,
    has_schema: bool,
    master: &MasterKeyring,
    audit: &AuditLog,
) -> Result<DbCatalog, pgseal::Error> {
    let keyring = if has_schema {
        Some(Keyring::load(client, master, audit).await?)
    } else {
        None
    };

    // pgseal domains by OID.
    let mut domains: HashMap<u32, &'static pgseal_store::DomainSpec> = HashMap::new();
    if has_schema {
        let rows = client
            .query(
                "SELECT t.oid, t.typname::text FROM pg_type t \
                 WHERE t.typnamespace = 'pgseal'::regnamespace AND t.typtype = 'd'",
                &[],
            )
            .await
            .map_err(db_error)?;
        for row in rows {
            let name: String = row.get(1);
            if let Some(spec) = pgseal_store::domain(&name) {
                domains.insert(row.get(0), spec);
            }
        }
    }

    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, \
                    COALESCE(array_agg(a.attname::text ORDER BY a.attnum) \
                             FILTER (WHERE a.attnum IS NOT NULL), '{}'), \
                    COALESCE(array_agg(a.attnum ORDER BY a.attnum) \
                             FILTER (WHERE a.attnum IS NOT NULL), '{}'), \
                    COALESCE(array_agg(a.atttypid ORDER BY a.attnum) \
                             FILTER (WHERE a.attnum IS NOT NULL), '{}'), \
                    n.nspname = 'pg_catalog' \
             FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
                                      AND NOT a.attisdropped \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
               AND n.nspname <> 'information_schema' \
               AND n.nspname NOT LIKE 'pg\\_toast%' \
               AND n.nspname NOT LIKE 'pg\\_temp%' \
             GROUP BY c.oid, n.nspname, c.relname",
            &[],
        )
        .await
        .map_err(db_error)?;

    let sealed: HashMap<(u32, i16), &pgseal::keyring::SealedColumn> = keyring
        .as_ref()
        .map(|k| {
            k.columns()
                .iter()
                .map(|c| ((c.column.table_oid, c.column.attnum), c))
                .collect()
        })
        .unwrap_or_default();

    let mut relations = HashMap::new();
    let mut by_name = HashMap::new();
    let mut system_names = HashSet::new();
    let mut encrypted = HashMap::new();
    // View columns of a pgseal domain type: resolved once the dependencies are known.
    let mut view_columns: Vec<(u32, usize, LogicalType, String)> = Vec::new();
    for row in rows {
        let oid: u32 = row.get(0);
        let schema: String = row.get(1);
        let name: String = row.get(2);
        let names: Vec<String> = row.get(3);
        let attnums: Vec<i16> = row.get(4);
        let types: Vec<u32> = row.get(5);
        let system: bool = row.get(6);
        if system {
            system_names.insert(name);
            continue;
        }
        let mut columns = Vec::with_capacity(names.len());
        for (index, ((column, attnum), ty)) in names.into_iter().zip(attnums).zip(types).enumerate()
        {
            let qualified_name = format!("{schema}.{name}.{column}");
            let info = match (sealed.get(&(oid, attnum)), domains.get(&ty)) {
                (Some(sealed), _) => {
                    let info = EncryptedColumnInfo {
                        column_id: sealed.column_id,
                        qualified_name: qualified_name.clone(),
                        logical_type: sealed.column.domain.logical_type,
                        searchable: sealed.column.domain.searchable,
                    };
                    encrypted.insert(
                        (oid, attnum),
                        ColumnCrypto {
                            qualified_name,
                            logical_type: info.logical_type,
                            column_ids: vec![sealed.column_id],
                        },
                    );
                    Some(info)
                }
                (None, Some(spec)) => {
                    // A table column without keys (added in a transaction not yet committed)
                    // or a view column: id 0 refuses writes until resolved.
                    view_columns.push((oid, index, spec.logical_type, qualified_name.clone()));
                    Some(EncryptedColumnInfo {
                        column_id: 0,
                        qualified_name,
                        logical_type: spec.logical_type,
                        searchable: spec.searchable,
                    })
                }
                (None, None) => None,
            };
            columns.push(ColumnRef {
                name: column,
                attnum,
                encrypted: info,
            });
        }
        by_name.insert((schema.clone(), name.clone()), oid);
        relations.insert(
            oid,
            Relation {
                schema,
                name,
                columns,
            },
        );
    }

    if !view_columns.is_empty() {
        resolve_view_columns(client, &mut relations, &mut encrypted, view_columns).await?;
    }

    let migrating = if has_schema {
        // The migrations table has the columns read below from schema version 4 on: an older
        // schema fails with the store's error, which says to run `pgseal init`.
        pgseal_store::check_schema(&*client)
            .await
            .map_err(pgseal::Error::from)?;
        load_migrating(client).await?
    } else {
        HashMap::new()
    };
    let by_bare_name = bare_name_index(&relations);

    let encrypted_names = relations
        .values()
        .filter(|r| r.columns.iter().any(|c| c.encrypted.is_some()))
        .map(|r| r.name.clone())
        .collect();
    Ok(DbCatalog {
        database,
        relations,
        by_name,
        system_names,
        encrypted_names,
        encrypted,
        keyring,
        by_bare_name,
        migrating,
    })
}

/// The tables with an unfinished column migration, the names a statement may reach each by
/// (the table and the views depending on it), and any announced cutover.
async fn load_migrating(client: &Client) -> Result<HashMap<u32, MigratingTable>, pgseal::Error> {
    // The remaining time is computed by the server (its clock set the mark), so the proxy's
    // clock only measures the wait from here.
    let rows = client
        .query(
            "SELECT m.table_oid, \
                    lower(c.relname::text), \
                    COALESCE((SELECT array_agg(DISTINCT lower(v.relname::text)) \
                              FROM pg_depend d \
                              JOIN pg_rewrite r ON r.oid = d.objid \
                              JOIN pg_class v ON v.oid = r.ev_class \
                              WHERE d.classid = 'pg_rewrite'::regclass \
                                AND d.refclassid = 'pg_class'::regclass \
                                AND d.refobjid = m.table_oid \
                                AND r.ev_class <> m.table_oid), '{}'), \
                    (EXTRACT(EPOCH FROM (max(m.cutover_pending_until) \
                                         - clock_timestamp())) * 1000)::int8 \
             FROM pgseal.column_migrations m \
             JOIN pg_class c ON c.oid = m.table_oid \
             WHERE m.phase = 'backfill' \
             GROUP BY m.table_oid, c.relname",
            &[],
        )
        .await
        .map_err(db_error)?;
    let now = Instant::now();
    let mut migrating = HashMap::new();
    for row in rows {
        let oid: u32 = row.get(0);
        let table: String = row.get(1);
        let mut names: Vec<String> = row.get(2);
        names.push(table);
        let remaining: Option<i64> = row.get(3);
        let cutover_until = remaining
            .and_then(|ms| u64::try_from(ms).ok())
            .filter(|ms| *ms > 0)
            // Bounded whatever the row says: a hold never outlives a minute.
            .map(|ms| now + Duration::from_millis(ms.min(60_000)));
        migrating.insert(
            oid,
            MigratingTable {
                names,
                cutover_until,
            },
        );
    }
    Ok(migrating)
}

/// Relation OIDs by lower-cased name, each list in OID order: built from a map whose order
/// changes from load to load, and compared between loads ([`DbCatalog::same_as`]).
fn bare_name_index(relations: &HashMap<u32, Relation>) -> HashMap<String, Vec<u32>> {
    let mut by_bare_name: HashMap<String, Vec<u32>> = HashMap::new();
    for (oid, relation) in relations {
        by_bare_name
            .entry(relation.name.to_lowercase())
            .or_default()
            .push(*oid);
    }
    for oids in by_bare_name.values_mut() {
        oids.sort_unstable();
    }
    by_bare_name
}

/// Maps each view column of a pgseal domain type to the encrypted columns it may come from:
/// the columns of that type its view depends on (through `pg_depend`, following views of
/// views). A result column of the view then opens only ciphertexts of those columns.
async fn resolve_view_columns(
    client: &Client,
    relations: &mut HashMap<u32, Relation>,
    encrypted: &mut HashMap<(u32, i16), ColumnCrypto>,
    view_columns: Vec<(u32, usize, LogicalType, String)>,
) -> Result<(), pgseal::Error> {
    let rows = client
        .query(
            "SELECT DISTINCT r.ev_class, d.refobjid, d.refobjsubid::int2 \
             FROM pg_rewrite r \
             JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
                             AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 \
             WHERE d.refobjid <> r.ev_class",
            &[],
        )
        .await
        .map_err(db_error)?;
    let mut depends: HashMap<u32, Vec<(u32, i16)>> = HashMap::new();
    for row in rows {
        depends
            .entry(row.get(0))
            .or_default()
            .push((row.get(1), row.get(2)));
    }
    // Views of views: resolve in rounds until nothing changes (bounded by the nesting depth).
    let mut pending = view_columns;
    for _ in 0..16 {
        let mut progressed = false;
        let mut rest = Vec::new();
        for (oid, index, ty, qualified_name) in pending {
            let Some(attnum) = relations
                .get(&oid)
                .and_then(|r| r.columns.get(index))
                .map(|c| c.attnum)
            else {
                continue;
            };
            let mut ids: Vec<u32> = depends
                .get(&oid)
                .into_iter()
                .flatten()
                .filter_map(|origin| encrypted.get(origin))
                .filter(|c| c.logical_type == ty)
                .flat_map(|c| c.column_ids.iter().copied())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let waiting_on_view = depends.get(&oid).into_iter().flatten().any(|origin| {
                !encrypted.contains_key(origin)
                    && relations.get(&origin.0).is_some_and(|r| {
                        r.columns.iter().any(|c| {
                            c.attnum == origin.1
                                && c.encrypted.as_ref().is_some_and(|e| e.logical_type == ty)
                        })
                    })
                    && origin.0 != oid
            });
            if waiting_on_view {
                rest.push((oid, index, ty, qualified_name));
                continue;
            }
            progressed = true;
            if let [only] = ids.as_slice() {
                // A unique origin: writes through the view can be encrypted for it.
                if let Some(info) = relations
                    .get_mut(&oid)
                    .and_then(|r| r.columns.get_mut(index))
                    .and_then(|c| c.encrypted.as_mut())
                {
                    info.column_id = *only;
                }
            }
            encrypted.insert(
                (oid, attnum),
                ColumnCrypto {
                    qualified_name,
                    logical_type: ty,
                    column_ids: ids,
                },
            );
        }
        pending = rest;
        if pending.is_empty() || !progressed {
            break;
        }
    }
    // Whatever is left (cycles, unusual nesting) is known to be encrypted but opens nothing:
    // reading it is an error, never a leak.
    for (oid, index, ty, qualified_name) in pending {
        if let Some(attnum) = relations
            .get(&oid)
            .and_then(|r| r.columns.get(index))
            .map(|c| c.attnum)
        {
            encrypted.insert(
                (oid, attnum),
                ColumnCrypto {
                    qualified_name,
                    logical_type: ty,
                    column_ids: Vec::new(),
                },
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_catalog() -> Arc<DbCatalog> {
        Arc::new(DbCatalog {
            database: "app".to_owned(),
            relations: HashMap::new(),
            by_name: HashMap::new(),
            system_names: HashSet::new(),
            encrypted_names: HashSet::new(),
            encrypted: HashMap::new(),
            keyring: None,
            by_bare_name: HashMap::new(),
            migrating: HashMap::new(),
        })
    }

    /// A catalog with one table `public.people (id, secret)`, `secret` encrypted.
    fn people_catalog() -> DbCatalog {
        let secret = EncryptedColumnInfo {
            column_id: 7,
            qualified_name: "public.people.secret".to_owned(),
            logical_type: LogicalType::Text,
            searchable: false,
        };
        let columns = vec![
            ColumnRef {
                name: "id".to_owned(),
                attnum: 1,
                encrypted: None,
            },
            ColumnRef {
                name: "secret".to_owned(),
                attnum: 2,
                encrypted: Some(secret),
            },
        ];
        let relation = Relation {
            schema: "public".to_owned(),
            name: "people".to_owned(),
            columns,
        };
        DbCatalog {
            database: "app".to_owned(),
            relations: HashMap::from([(16_384, relation)]),
            by_name: HashMap::from([(("public".to_owned(), "people".to_owned()), 16_384)]),
            system_names: HashSet::from(["pg_class".to_owned()]),
            encrypted_names: HashSet::from(["people".to_owned()]),
            encrypted: HashMap::from([(
                (16_384, 2),
                ColumnCrypto {
                    qualified_name: "public.people.secret".to_owned(),
                    logical_type: LogicalType::Text,
                    column_ids: vec![7],
                },
            )]),
            keyring: None,
            by_bare_name: HashMap::from([("people".to_owned(), vec![16_384])]),
            migrating: HashMap::new(),
        }
    }

    #[test]
    fn relations_of_one_name_are_listed_in_the_same_order_by_every_load() {
        // Two loads of the same relations fill their maps in different orders.
        let load = || -> HashMap<u32, Relation> {
            (0..16)
                .map(|i| {
                    let relation = Relation {
                        schema: format!("tenant{i}"),
                        name: if i % 2 == 0 { "Users" } else { "users" }.to_owned(),
                        columns: Vec::new(),
                    };
                    (16_384 + i, relation)
                })
                .collect()
        };
        let first = bare_name_index(&load());
        assert_eq!(first["users"], (16_384..16_400).collect::<Vec<u32>>());
        for _ in 0..8 {
            assert_eq!(bare_name_index(&load()), first);
        }
    }

    #[test]
    fn only_a_catalog_that_knows_exactly_the_same_is_the_same() {
        let old = people_catalog();
        assert!(
            old.same_as(&people_catalog()),
            "a reload with nothing changed"
        );

        type Change = fn(&mut DbCatalog);
        let changes: [(&str, Change); 8] = [
            ("a column renamed", |c| {
                if let Some(r) = c.relations.get_mut(&16_384) {
                    r.columns[1].name = "secret2".to_owned();
                }
            }),
            ("a column no longer encrypted", |c| {
                if let Some(r) = c.relations.get_mut(&16_384) {
                    r.columns[1].encrypted = None;
                }
            }),
            ("another column id", |c| {
                if let Some(e) = c.encrypted.get_mut(&(16_384, 2)) {
                    e.column_ids = vec![8];
                }
            }),
            ("a table recreated under a new OID", |c| {
                c.by_name
                    .insert(("public".to_owned(), "people".to_owned()), 16_390);
            }),
            ("a new system name", |c| {
                c.system_names.insert("pg_proc".to_owned());
            }),
            ("a new encrypted table name", |c| {
                c.encrypted_names.insert("orders".to_owned());
            }),
            ("a new relation name", |c| {
                c.by_bare_name.insert("orders".to_owned(), vec![16_400]);
            }),
            ("a migration started", |c| {
                c.migrating.insert(
                    16_384,
                    MigratingTable {
                        names: vec!["people".to_owned()],
                        cutover_until: None,
                    },
                );
            }),
        ];
        for (what, change) in changes {
            let mut new = people_catalog();
            change(&mut new);
            assert!(!old.same_as(&new), "{what}");
            assert!(!new.same_as(&old), "{what}, compared the other way");
        }

        // A pending cutover's deadline is an instant of its own load: never the same.
        let with_cutover = |until| {
            let mut c = people_catalog();
            c.migrating.insert(
                16_384,
                MigratingTable {
                    names: vec!["people".to_owned()],
                    cutover_until: Some(until),
                },
            );
            c
        };
        let now = Instant::now();
        assert!(!with_cutover(now).same_as(&with_cutover(now + Duration::from_millis(1))));
    }

    #[test]
    fn a_session_sees_each_published_catalog_through_a_handle_of_its_own() {
        let (publish, snapshot) = watch::channel(Snapshot {
            generation: 0,
            state: SnapshotState::Loading,
        });
        let db = DbHandle {
            requested: AtomicU64::new(0),
            wake: Notify::new(),
            snapshot,
        };
        let mut view = SnapshotView::new(&db);
        assert!(matches!(view.catalog(), Err(Unavailable::Loading)));

        let first = empty_catalog();
        publish.send_replace(Snapshot {
            generation: 1,
            state: SnapshotState::Ready(Arc::clone(&first)),
        });
        let held = view.catalog().ok().expect("ready");
        assert!(Arc::ptr_eq(held.as_ref(), &first));
        let shared_count = Arc::strong_count(&first);
        let again = view.catalog().ok().expect("ready");
        assert!(Arc::ptr_eq(&held, &again), "one handle per snapshot");
        assert_eq!(
            Arc::strong_count(&first),
            shared_count,
            "taking a handle leaves the published catalog's count alone"
        );

        // A reload that found nothing changed publishes the same catalog again: the session
        // sees the newer generation and keeps its handle (and with it its plans).
        publish.send_replace(Snapshot {
            generation: 2,
            state: SnapshotState::Ready(Arc::clone(&first)),
        });
        let republished = view.catalog().ok().expect("ready");
        assert!(Arc::ptr_eq(&held, &republished), "the same handle");
        assert_eq!(view.current().generation, 2);

        let second = empty_catalog();
        publish.send_replace(Snapshot {
            generation: 3,
            state: SnapshotState::Ready(Arc::clone(&second)),
        });
        let newer = view.catalog().ok().expect("ready");
        assert!(Arc::ptr_eq(newer.as_ref(), &second));
        assert!(
            !Arc::ptr_eq(&held, &newer),
            "a new handle for a new catalog"
        );

        publish.send_replace(Snapshot {
            generation: 4,
            state: SnapshotState::Failed(Arc::from("no connection")),
        });
        assert!(matches!(
            view.catalog(),
            Err(Unavailable::Failed("no connection"))
        ));
    }
}
