//! The encryption layer: clients read and write plaintext, PostgreSQL stores only ciphertext.
//!
//! [`serve_encrypted`] runs the proxy with one encryption hook per session.
//! Everything below is what that hook does; `docs/format.md` has the byte formats.
//!
//! # Catalog (per database)
//!
//! A *control connection*, made with the credentials of [`EncryptionOptions::control_url`] to
//! the session's database, loads: every user table, view, materialized view and foreign table
//! (OID, schema, name, columns in `attnum` order), the encrypted columns and their keys
//! (`pgseal::ensure_data_keys`, which registers new columns and creates their keys, then
//! `pgseal::Keyring::load`), and the OIDs of the `pgseal.*` domains. View columns of a pgseal
//! domain type are mapped, through `pg_depend`, to the encrypted columns of that type the view
//! reads; a value in such a column opens only with the key of one of them. Keys are created
//! first, in their own transaction; everything else is read in one `REPEATABLE READ READ ONLY`
//! transaction, so a load never mixes the states before and after a concurrent change (a
//! column renamed by a migration's cutover while its keys move with it).
//!
//! The catalog is shared by all sessions of the database and replaced atomically. It is
//! reloaded every [`EncryptionOptions::reload_interval`] (new columns and rotated keys made
//! elsewhere appear without a restart) and after a session's statement that changes the schema
//! completes: that session's next message waits (at most 30 s) for the reload, so
//! `ALTER TABLE t ADD COLUMN c pgseal.text` through the proxy is usable at once. Every
//! session's next statement (`Query` or `Parse`), and a new session's first, likewise waits for
//! any reload asked for before it (another session's DDL, a `NOTIFY pgseal_catalog`), so a table
//! created in one session is known in the next. A failed
//! reload keeps the previous catalog. Until a database's first load succeeds, its sessions'
//! statements are refused with SQLSTATE `57P03` (fail closed).
//!
//! Each session resolves names with its own `search_path` (read from the session before its
//! first statement, whatever set it: startup options, role and database defaults, the server's
//! configuration; then `SET [SESSION|LOCAL] search_path`, `RESET`, constant `set_config()`,
//! undone by transaction ends and savepoints as PostgreSQL does (`settings.rs`); `pg_catalog`
//! first unless listed).
//!
//! # Statements
//!
//! Each statement text is analysed once per session by `pgseal-sql` (an LRU of 256 texts and
//! one of 256 plan templates for texts differing only in constants, `plan_cache.rs`, cleared
//! when the catalog or `search_path` changes) with 16 MiB of stack guaranteed
//! (`analyzer.rs`: in place on large-stack threads, on a fresh stack segment otherwise).
//! A refused statement never reaches the server: the client gets one `ErrorResponse` with the
//! analysis's SQLSTATE and a message naming the column, then `ReadyForQuery`, and the
//! connection stays usable. A statement that touches no encrypted column passes byte for byte.
//!
//! * **Literals** for encrypted columns are parsed as the column's type with the session's
//!   settings (`DateStyle`, `TimeZone`, ...), encoded canonically, sealed with the column's
//!   active key, and replaced in the text by `'\x<hex>'::bytea`; the rest of the text is kept
//!   byte for byte. `NULL` stays `NULL`.
//! * **Parameters** (extended protocol): `Parse` declares each encrypted `$n` as `bytea`; each
//!   `Bind` reads the client's value in its format (text through the type's input rules,
//!   binary as the type's binary format; a parameter declared `text`/`varchar` is read as
//!   text), seals it, and sends it in binary.
//! * **Results**: a `RowDescription` field whose table OID and attribute number are an
//!   encrypted column (or a view column mapped to some) is reported with the logical type's
//!   OID, length and typmod -1; its values are opened (the ciphertext's column id must be
//!   that column's) and produced in the client's format (text formatted for the session's
//!   `DateStyle`, `TimeZone`, `IntervalStyle`, `extra_float_digits`, `bytea_output`). In the
//!   extended protocol the server is asked for encrypted columns in binary when the
//!   statement's columns are known at `Bind`; otherwise a `Describe` of the portal is
//!   injected after the `Bind` and its answer withheld from the client.
//! * **Settings** the server does not report (`extra_float_digits`, `bytea_output`,
//!   `search_path`) are read from the session when it starts, then tracked through
//!   `SET [LOCAL]`/`RESET` (one that cannot be read is refused) and constant
//!   `set_config()` (applied when sent, settled by the server's answers; a `set_config()` on
//!   them that cannot be followed is refused).
//!   Statements on encrypted columns are refused while `standard_conforming_strings` is off or a
//!   setting cannot be honoured (a non-UTF8 `client_encoding`, a POSIX time zone with rules).
//!
//! # Extended protocol bookkeeping
//!
//! Prepared statements and portals are tracked by name as the server keeps them: a `Parse`
//! replaces the unnamed statement (a named one that exists stays, as the server refuses the
//! `Parse`), `Close` removes, a `Bind` is rewritten against the statement its name refers to
//! *now*, portals die at the end of the transaction. A FIFO of the responses owed for each
//! message sent (marking the injected `Describe`s) pairs every response with its request
//! through pipelines, `Execute` row limits with `PortalSuspended`, `Flush`, and errors (after
//! which the server discards up to `Sync`, and so does the FIFO).
//!
//! # Column migrations (`cutover.rs`)
//!
//! The catalog also lists the tables with an unfinished `pgseal encrypt-column` /
//! `decrypt-column` and the names that reach each (the table, views on it), with any announced
//! cutover (`pgseal.column_migrations.cutover_pending_until`). While a cutover is announced, a
//! `Query`, `Parse` or `Bind` whose statement text names the table waits, in its own session
//! only, until a catalog without the announcement is loaded (or its deadline, 30 s at most,
//! passes), then is analysed with that catalog: no statement analysed with the old column runs
//! against the new one. A session whose open transaction already touched the table is not held
//! (it holds a lock the cutover needs). A prepared statement whose tables' columns changed since
//! it was prepared is prepared again before its next `Bind` (`Close` and `Parse` of the same
//! name, with the current analysis; their replies withheld); not inside a failed transaction,
//! where the server would refuse the `Parse`, but at its first `Bind` after; one the server
//! discarded (an earlier error of the pipeline) is made again at the next `Bind`. A statement
//! with a `*` over a table whose columns moved (a migrated column comes last) is not
//! re-prepared: its rows would no longer match the description the client holds, and the
//! server refuses it as it would without the proxy.
//!
//! # Fail closed
//!
//! * A statement the analysis cannot fully handle is refused (see `pgseal-sql`).
//! * `COPY` of encrypted columns is carried only `FROM STDIN` / `TO STDOUT`, row by row
//!   (`copy.rs`); a server-side file or `PROGRAM` is refused (`0A000`).
//! * A value that fails to open (altered, copied from another column, key retired) gives the
//!   client an `ErrorResponse` with SQLSTATE `XX001` (`data_corrupted`) naming the column;
//!   the rest of that response, up to `ReadyForQuery`, is withheld. A ciphertext never reaches
//!   the client as a value.
//! * A `bytea` result column of unknown origin whose value is a pgseal ciphertext is the same
//!   error.
//! * Schema changes reach the catalog when they commit. Until then the session keeps the
//!   relations whose encrypted columns its open transaction declared, renamed or moved
//!   (`StatementPlan::declares_encrypted`), and a statement naming one of them with a constant
//!   or parameter, or a `COPY` of one, is refused (`0A000`); the catalog is reloaded when the
//!   transaction ends. Constants in `DEFAULT`, `CHECK`, `GENERATED` or `USING` of encrypted
//!   columns are refused, as are arrays of pgseal types and domains or composite types over
//!   them.
//!
//! # Known limits
//!
//! * When a value fails to open mid-result, statements after it in the same simple `Query`
//!   string (or the same pipeline) have still run on the server; the client only sees the
//!   error.
//! * Temporary tables are invisible to the control connection: statements that would put
//!   encrypted values in one are refused (`0A000`); a temporary table named like an encrypted
//!   table is treated as that table.

mod analyzer;
pub use analyzer::RECOMMENDED_THREAD_STACK;
mod catalog;
mod copy;
mod hook;
mod names;
mod settings;
mod settings_syntax;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::session::SessionState;
use crate::{HookFactory, Proxy, ProxyConfig, ProxyError};

use catalog::Catalogs;
use hook::EncryptHook;

/// Default [`EncryptionOptions::reload_interval`]: 5 s.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// What the encryption layer needs besides the proxy's own settings.
#[derive(Clone)]
pub struct EncryptionOptions {
    /// `postgres://user[:password]@host[:port]/database`: the proxy's own login, used for the
    /// control connections that load each database's catalog and keys (its database is loaded
    /// eagerly at start). The role must be able to read the catalog and `pgseal.*`, and to
    /// register columns and create keys.
    pub control_url: String,
    /// The master keys that unwrap the data keys.
    pub master: pgseal::MasterKeyring,
    /// Where key events are recorded.
    pub audit: pgseal::AuditLog,
    /// How often each database's catalog is reloaded ([`DEFAULT_RELOAD_INTERVAL`]).
    pub reload_interval: Duration,
}

impl std::fmt::Debug for EncryptionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password and the keyring holds keys: neither is shown.
        f.debug_struct("EncryptionOptions")
            .field("master", &self.master.current().fingerprint().to_string())
            .field("reload_interval", &self.reload_interval)
            .finish_non_exhaustive()
    }
}

/// Creates an [`EncryptHook`] per session, sharing each database's catalog.
struct EncryptFactory {
    catalogs: Arc<Catalogs>,
}

impl HookFactory for EncryptFactory {
    type Hook = EncryptHook;

    fn create(&self, session: &SessionState) -> EncryptHook {
        let database = session.database().unwrap_or_default();
        EncryptHook::new(self.catalogs.handle(database), session)
    }
}

/// Runs the encrypting proxy: binds `proxy_config.listen`, loads the catalog and keys of the
/// control URL's database (so a wrong master key fails here, with pgseal's "does not match the
/// data keys in database X" message), calls `ready` with the bound address, and serves until
/// `shutdown` completes.
///
/// # Errors
/// [`ProxyError::InvalidConfig`], [`ProxyError::Bind`], [`ProxyError::InvalidControlUrl`], or
/// [`ProxyError::Catalog`] when the control database's catalog cannot be loaded.
pub async fn serve_encrypted<S: Future<Output = ()>>(
    proxy_config: ProxyConfig,
    options: EncryptionOptions,
    ready: impl FnOnce(SocketAddr) + Send,
    shutdown: S,
) -> Result<(), ProxyError> {
    serve_encrypted_with_reload(proxy_config, options, &ReloadHandle::new(), ready, shutdown).await
}

/// A handle on a running encrypting proxy's keys, for reloading them without a restart (the
/// `pgseal proxy` command calls it on `SIGHUP`). Create it, pass it to
/// [`serve_encrypted_with_reload`], and keep a clone. Open sessions keep going throughout: they
/// switch to the new catalog at their next statement.
#[derive(Clone, Default)]
pub struct ReloadHandle {
    catalogs: Arc<Mutex<Weak<Catalogs>>>,
}

impl std::fmt::Debug for ReloadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadHandle")
            .field("running", &self.catalogs().is_some())
            .finish()
    }
}

impl ReloadHandle {
    /// A handle not yet attached to a proxy.
    pub fn new() -> Self {
        Self::default()
    }

    fn catalogs(&self) -> Option<Arc<Catalogs>> {
        self.catalogs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()
    }

    fn not_running() -> ProxyError {
        ProxyError::InvalidConfig {
            setting: "reload",
            problem: "the proxy is not running (yet, or any more)".to_owned(),
        }
    }

    /// Replaces the master keys (current and previous) of the running proxy.
    ///
    /// The new keyring is checked first: it must unwrap the stored data keys of every database
    /// the proxy serves. If it does not (a wrong or incomplete key set), the error names the
    /// database and the fingerprints, and the keys in force stay. On success every database's
    /// catalog is reloaded with the new keys.
    ///
    /// # Errors
    /// [`ProxyError::Catalog`] when a database's keys do not unwrap with `master` (or it cannot
    /// be reached); [`ProxyError::InvalidConfig`] when the proxy is not running.
    pub async fn reload_master_keys(
        &self,
        master: pgseal::MasterKeyring,
    ) -> Result<(), ProxyError> {
        let catalogs = self.catalogs().ok_or_else(Self::not_running)?;
        catalogs.reload_master_keys(master).await
    }

    /// The fingerprint of the master key in force.
    ///
    /// # Errors
    /// [`ProxyError::InvalidConfig`] when the proxy is not running.
    pub fn master_fingerprint(&self) -> Result<pgseal::KeyFingerprint, ProxyError> {
        let catalogs = self.catalogs().ok_or_else(Self::not_running)?;
        Ok(catalogs.master().current().fingerprint())
    }

    /// Reloads every database's catalog and keys now (as a key-change notification would).
    ///
    /// # Errors
    /// [`ProxyError::InvalidConfig`] when the proxy is not running.
    pub fn reload_catalogs(&self) -> Result<(), ProxyError> {
        let catalogs = self.catalogs().ok_or_else(Self::not_running)?;
        catalogs.reload_all();
        Ok(())
    }
}

/// [`serve_encrypted`], with `reload` attached to the running proxy once its first catalog has
/// loaded (so that its keys can be replaced at run time).
///
/// # Errors
/// As [`serve_encrypted`].
pub async fn serve_encrypted_with_reload<S: Future<Output = ()>>(
    proxy_config: ProxyConfig,
    options: EncryptionOptions,
    reload: &ReloadHandle,
    ready: impl FnOnce(SocketAddr) + Send,
    shutdown: S,
) -> Result<(), ProxyError> {
    proxy_config.validate()?;
    let catalogs = Catalogs::new(
        &options.control_url,
        options.master,
        options.audit,
        options.reload_interval,
    )?;
    catalogs.preload(&catalogs.control_database()).await?;
    *reload
        .catalogs
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(&catalogs);
    let proxy = Proxy::bind_with_hooks(proxy_config, EncryptFactory { catalogs }).await?;
    ready(proxy.local_addr());
    proxy.serve(shutdown).await
}
