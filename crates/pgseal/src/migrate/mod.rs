//! Online migration of an existing column: plaintext → encrypted ([`encrypt_column`]) and back
//! ([`decrypt_column`], for rollback), while applications keep reading and writing.
//!
//! # Phases
//!
//! 1. **Prepare** (one short transaction, `lock_timeout` and retries): the column is checked
//!    (supported type; nothing depends on it: indexes, constraints, defaults, views are refused
//!    and listed), the migration is recorded in `pgseal.column_migrations`, a *shadow* column
//!    `<column>__pgseal` (encrypt: of the pgseal domain; decrypt: `<column>__plain` of the
//!    plaintext type) is added — metadata only, no rewrite —, and `BEFORE INSERT` / `BEFORE
//!    UPDATE` triggers clear the shadow of any row whose column an application writes, so a
//!    stale converted value can never survive an application write. The data keys of a new shadow
//!    column are created (audited) right after. Then the migration waits `proxy_grace` so
//!    every proxy has reloaded its catalog (`NOTIFY pgseal_catalog`, or its reload interval)
//!    and knows the shadow column's keys before any ciphertext lands in it.
//! 2. **Backfill** (online, no lock beyond row locks, each batch giving up on a row lock after
//!    200 ms so an application transaction is never the one that waits or deadlocks): the
//!    table is read in ranges of blocks
//!    (TID range scans); each value is sealed (or opened) here, never in the database, and
//!    written with a compare-and-swap: `WHERE ctid = … AND <binary form of column> = <what was
//!    read> AND shadow IS NULL`. A row changed in between is skipped and picked up by the
//!    catch-up passes that follow. `max_rows_per_second` limits the rate.
//! 3. **Cutover**, announced first: `cutover_pending_until` is set on the migration's row
//!    (a deadline) with `NOTIFY pgseal_catalog`, and the migration waits `proxy_grace`, so every
//!    proxy holds new statements on the table until the cutover commits (which clears the
//!    mark) — none analysed with the old column runs against the new one. Then one
//!    transaction (`ACCESS EXCLUSIVE` with `lock_timeout`, retried with backoff; before each
//!    backoff the announcement is withdrawn, releasing the held statements, and it is made
//!    again before the next attempt): the few rows still missing are converted under the lock, the trigger is
//!    dropped, the old column is dropped and the shadow renamed to the column's name; the
//!    column registry (`pgseal.columns`) follows, so the shadow's column id — bound into every
//!    ciphertext — is the column's id; `NOT NULL` comes back as a `NOT VALID` check.
//! 4. **Restore constraints** (online): the check is validated without blocking writers, then
//!    turned into `NOT NULL` (PostgreSQL skips the scan thanks to the validated check). After a
//!    decrypt, a guard that refused pgseal ciphertexts in the plaintext column (a proxy that had
//!    not yet seen the cutover could write one there) is dropped once every proxy has reloaded.
//!
//! Killed at any point, a rerun of the same command continues from the recorded phase: every
//! step is a transaction, and the backfill simply continues with the rows whose shadow is
//! missing.

mod inspect;
mod mover;
mod sql;

use std::fmt;
use std::time::{Duration, Instant};

use pgseal_audit::AuditLog;
use pgseal_crypto::MasterKeyring;
use pgseal_value::LogicalType;
use tokio_postgres::{Client, Transaction};

use crate::keyring::{ensure_data_keys, Keyring};
use crate::Error;
use inspect::{column_exists, column_info, dependents, ColumnInfo};
use mover::Mover;
use sql::{ident, qualified};

/// Which way a column is migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Plaintext column → pgseal domain (`pgseal encrypt-column`).
    Encrypt,
    /// pgseal domain → plaintext column (`pgseal decrypt-column`, rollback).
    Decrypt,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Encrypt => "encrypt",
            Direction::Decrypt => "decrypt",
        }
    }

    fn shadow_suffix(self) -> &'static str {
        match self {
            Direction::Encrypt => "__pgseal",
            Direction::Decrypt => "__plain",
        }
    }
}

/// How a migration runs.
#[derive(Debug, Clone)]
pub struct MigrationOptions {
    /// Encrypt only: use the column type's equality domain (`pgseal.<type>_eq`, with a blind
    /// index) so the column stays searchable by equality.
    pub searchable: bool,
    /// Target number of rows per backfill transaction.
    pub batch_rows: usize,
    /// Upper bound on rows converted per second (`None`: as fast as possible).
    pub max_rows_per_second: Option<u32>,
    /// How long to wait after the prepare step (and, for a decrypt, after the cutover) for
    /// every proxy to reload its catalog. Set it above the proxies' `--reload-interval`.
    pub proxy_grace: Duration,
    /// `lock_timeout` of each statement that needs a table lock (prepare, cutover, restoring
    /// `NOT NULL`): application statements queue behind a waiting lock for at most this long.
    pub lock_timeout: Duration,
    /// How many times a lock that timed out is tried again (with growing pauses) before giving
    /// up.
    pub lock_attempts: u32,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            searchable: false,
            batch_rows: 1000,
            max_rows_per_second: None,
            proxy_grace: Duration::from_secs(6),
            lock_timeout: Duration::from_secs(2),
            lock_attempts: 20,
        }
    }
}

/// A phase of a migration, as reported to a [`MigrationObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationPhase {
    /// Checking the column, adding the shadow column and trigger.
    Preparing,
    /// Waiting for proxies to reload their catalog.
    WaitingForProxies,
    /// Converting values online.
    Backfilling,
    /// Converting the rows applications changed during the backfill.
    CatchingUp,
    /// Swapping the columns under a brief exclusive lock.
    CuttingOver,
    /// Validating and restoring `NOT NULL` online.
    RestoringConstraints,
}

impl fmt::Display for MigrationPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MigrationPhase::Preparing => "preparing",
            MigrationPhase::WaitingForProxies => "waiting for proxies to reload",
            MigrationPhase::Backfilling => "backfilling",
            MigrationPhase::CatchingUp => "catching up with concurrent writes",
            MigrationPhase::CuttingOver => "cutting over",
            MigrationPhase::RestoringConstraints => "restoring constraints",
        })
    }
}

/// Receives progress while a migration runs (the CLI draws a progress bar or logs lines).
pub trait MigrationObserver: Send + Sync {
    /// A new phase starts.
    fn phase(&self, _phase: MigrationPhase) {}
    /// The backfill starts with about this many rows to convert.
    fn backfill_started(&self, _rows: u64) {}
    /// Rows converted so far in this run (cumulative).
    fn rows_done(&self, _rows: u64) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl MigrationObserver for NoObserver {}

/// What a finished migration did.
#[derive(Debug, Clone)]
pub struct MigrationReport {
    /// `schema.table.column`.
    pub column: String,
    /// Which way.
    pub direction: Direction,
    /// The column's type before and after.
    pub from_type: String,
    /// The column's type now.
    pub to_type: String,
    /// Whether an interrupted run was continued.
    pub resumed: bool,
    /// Rows converted online by this run.
    pub rows_backfilled: u64,
    /// Rows converted under the cutover lock.
    pub rows_at_cutover: u64,
    /// How many times the cutover lock was attempted.
    pub cutover_attempts: u32,
    /// How long the cutover held the table's exclusive lock.
    pub cutover_lock_held: Duration,
    /// Wall-clock time of this run.
    pub elapsed: Duration,
}

/// Turns the populated plaintext column `table.column` (`table` may be `schema.table`) into an
/// encrypted one, online. See the module documentation for the phases and locks.
pub async fn encrypt_column(
    client: &mut Client,
    master: &MasterKeyring,
    audit: &AuditLog,
    table: &str,
    column: &str,
    options: &MigrationOptions,
    observer: &dyn MigrationObserver,
) -> Result<MigrationReport, Error> {
    run(
        client,
        master,
        audit,
        Direction::Encrypt,
        table,
        column,
        options,
        observer,
    )
    .await
}

/// Turns the encrypted column `table.column` back into a plaintext column, online (rollback of
/// [`encrypt_column`]; the original type, `varchar(80)` say, is restored when pgseal encrypted
/// it). The column's data keys are kept: backups may still need them.
pub async fn decrypt_column(
    client: &mut Client,
    master: &MasterKeyring,
    audit: &AuditLog,
    table: &str,
    column: &str,
    options: &MigrationOptions,
    observer: &dyn MigrationObserver,
) -> Result<MigrationReport, Error> {
    run(
        client,
        master,
        audit,
        Direction::Decrypt,
        table,
        column,
        options,
        observer,
    )
    .await
}

/// Serialises registry changes with `pgseal_store::register_columns` (must equal its
/// `REGISTRY_LOCK`).
const REGISTRY_LOCK: i64 = 0x7067_7365_616c_0002;

/// A row of `pgseal.column_migrations`.
#[derive(Debug, Clone)]
struct Record {
    id: i32,
    direction: Direction,
    table_oid: u32,
    schema: String,
    table: String,
    column: String,
    shadow: String,
    source_type: String,
    target_type: String,
    not_null: bool,
    phase: String,
}

impl Record {
    fn name(&self) -> String {
        format!("{}.{}.{}", self.schema, self.table, self.column)
    }
    fn table_sql(&self) -> String {
        qualified(&self.schema, &self.table)
    }
    fn trigger(&self, event: &str) -> String {
        // Named to sort after application triggers (BEFORE triggers fire in name order), so a
        // value an application trigger rewrites is the one compared.
        format!("zzz_pgseal_migrate_{}_{event}", self.id)
    }
    fn function(&self) -> String {
        format!("pgseal.{}", ident(&format!("migrate_{}", self.id)))
    }
    fn not_null_check(&self) -> String {
        format!("pgseal_migrate_{}_not_null", self.id)
    }
    fn guard(&self) -> String {
        format!("pgseal_migrate_{}_no_ciphertext", self.id)
    }
}

async fn open_record(
    client: &Client,
    table_oid: u32,
    column: &str,
) -> Result<Option<Record>, Error> {
    let rows = client
        .query(
            "SELECT migration_id, direction, table_oid, schema_name::text, table_name::text,
                    column_name::text, shadow_name::text, source_type, target_type, not_null,
                    phase
             FROM pgseal.column_migrations
             WHERE table_oid = $1 AND column_name = $2 AND phase <> 'done'",
            &[&table_oid, &column],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let direction: String = row.try_get(1)?;
    Ok(Some(Record {
        id: row.try_get(0)?,
        direction: if direction == "encrypt" {
            Direction::Encrypt
        } else {
            Direction::Decrypt
        },
        table_oid: row.try_get(2)?,
        schema: row.try_get(3)?,
        table: row.try_get(4)?,
        column: row.try_get(5)?,
        shadow: row.try_get(6)?,
        source_type: row.try_get(7)?,
        target_type: row.try_get(8)?,
        not_null: row.try_get(9)?,
        phase: row.try_get(10)?,
    }))
}

/// The table's OID, without refusing anything yet (to find a recorded migration).
async fn table_oid(client: &Client, table: &str) -> Result<Option<u32>, Error> {
    let (schema, name) = match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    };
    let rows = client
        .query(
            "SELECT c.oid FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relname = $2
               AND (($1::text IS NULL AND n.nspname = ANY (pg_catalog.current_schemas(false)))
                    OR n.nspname = $1::text)
             ORDER BY array_position(pg_catalog.current_schemas(false), n.nspname)
             LIMIT 1",
            &[&schema, &name],
        )
        .await?;
    rows.first()
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(Error::from)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    client: &mut Client,
    master: &MasterKeyring,
    audit: &AuditLog,
    direction: Direction,
    table: &str,
    column: &str,
    options: &MigrationOptions,
    observer: &dyn MigrationObserver,
) -> Result<MigrationReport, Error> {
    let started = Instant::now();
    pgseal_store::check_schema(client).await?;
    let existing = match table_oid(client, table).await? {
        Some(oid) => open_record(client, oid, column).await?,
        None => None,
    };
    let (record, resumed) = match existing {
        Some(record) if record.direction != direction => {
            return Err(Error::MigrationRefused {
                column: record.name(),
                reason: format!(
                    "an unfinished {}-column migration of this column exists: run `pgseal \
                     {}-column {}.{}` again to finish it first",
                    record.direction.as_str(),
                    record.direction.as_str(),
                    record.table,
                    record.column
                ),
            })
        }
        Some(record) => (record, true),
        None => {
            observer.phase(MigrationPhase::Preparing);
            (
                prepare(client, direction, table, column, options).await?,
                false,
            )
        }
    };
    let mut report = MigrationReport {
        column: record.name(),
        direction,
        from_type: record.source_type.clone(),
        to_type: record.target_type.clone(),
        resumed,
        rows_backfilled: 0,
        rows_at_cutover: 0,
        cutover_attempts: 0,
        cutover_lock_held: Duration::ZERO,
        elapsed: Duration::ZERO,
    };

    if record.phase == "backfill" {
        // Registers the new shadow column and creates its keys (audited), or finds them.
        ensure_data_keys(client, master, audit).await?;
        let keyring = Keyring::load(client, master, audit).await?;
        let table_name = format!("{}.{}", record.schema, record.table);
        // The pgseal column: the shadow when encrypting, the column itself when decrypting.
        let encrypted = match direction {
            Direction::Encrypt => keyring.column(&table_name, &record.shadow)?,
            Direction::Decrypt => keyring.column(&table_name, &record.column)?,
        };
        let source = column_info(&*client, &table_name, &record.column).await?;
        let ty = encrypted.column.domain.logical_type;
        // The column must still be what the migration was prepared for (an operator could have
        // altered it since an interrupted run): values are read in its binary format.
        let unchanged = match direction {
            Direction::Encrypt => LogicalType::from_oid(source.type_oid) == Some(ty),
            Direction::Decrypt => source.pgseal_domain,
        };
        if !unchanged {
            return Err(Error::MigrationRefused {
                column: record.name(),
                reason: format!(
                    "its type changed to {} since the migration started; restore it, or abandon \
                     the migration as docs/operations.md describes",
                    source.type_display
                ),
            });
        }
        let mover = Mover::new(
            direction,
            record.name(),
            ty,
            &encrypted.cipher,
            &record.schema,
            &record.table,
            &record.column,
            &record.shadow,
            &source.send_fn,
        );
        if !options.proxy_grace.is_zero() {
            notify(client).await?;
            observer.phase(MigrationPhase::WaitingForProxies);
            tokio::time::sleep(options.proxy_grace).await;
        }
        report.rows_backfilled = backfill(client, &record, &mover, options, observer).await?;
        let (attempts, held, rows) = cutover(
            client,
            &record,
            &mover,
            encrypted.column_id,
            options,
            observer,
        )
        .await?;
        report.cutover_attempts = attempts;
        report.cutover_lock_held = held;
        report.rows_at_cutover = rows;
    }
    finish(client, &record, options, observer).await?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Checks the column and installs the shadow column, the trigger and the record, in one
/// transaction.
async fn prepare(
    client: &mut Client,
    direction: Direction,
    table: &str,
    column: &str,
    options: &MigrationOptions,
) -> Result<Record, Error> {
    let info = column_info(&*client, table, column).await?;
    let name = info.qualified_name();
    let refuse = |reason: String| Error::MigrationRefused {
        column: name.clone(),
        reason,
    };
    let target_type = match direction {
        Direction::Encrypt => {
            if info.pgseal_domain {
                return Err(refuse(format!(
                    "it is already encrypted (type pgseal.{})",
                    info.type_name
                )));
            }
            let ty = LogicalType::from_oid(info.type_oid).ok_or_else(|| {
                refuse(format!(
                    "its type {} has no pgseal domain; supported: bool, int2, int4, int8, \
                     float4, float8, numeric, text, varchar, bytea, date, time, timestamp, \
                     timestamptz, uuid, jsonb",
                    info.type_display
                ))
            })?;
            if options.searchable && !ty.supports_equality() {
                return Err(refuse(format!(
                    "{} columns cannot be searchable (their binary equality differs from SQL \
                     equality); run without --search",
                    ty.sql_name()
                )));
            }
            let domain = if options.searchable {
                format!("{}_eq", ty.sql_name())
            } else {
                ty.sql_name().to_owned()
            };
            let spec = pgseal_store::domain(&domain)
                .ok_or_else(|| refuse(format!("no pgseal domain {domain} for its type")))?;
            spec.qualified_name()
        }
        Direction::Decrypt => {
            let spec = pgseal_store::domain(&info.type_name)
                .filter(|_| info.pgseal_domain)
                .ok_or_else(|| {
                    refuse(format!(
                        "it is not encrypted (type {}): nothing to decrypt",
                        info.type_display
                    ))
                })?;
            original_type(client, &info, spec.logical_type).await?
        }
    };
    let deps = dependents(&*client, &info).await?;
    if !deps.is_empty() {
        return Err(refuse(format!(
            "these objects depend on it and would be lost or would not work on the migrated \
             column: {}. Drop them first (recreate what still makes sense afterwards)",
            deps.join("; ")
        )));
    }
    let shadow = format!("{}{}", info.column, direction.shadow_suffix());
    if shadow.len() > 63 {
        return Err(refuse(format!(
            "the shadow column name {shadow} would exceed PostgreSQL's 63-byte limit: rename the \
             column to something shorter first"
        )));
    }
    if column_exists(&*client, info.table_oid, &shadow).await? {
        return Err(refuse(format!(
            "a column named {shadow} already exists and no pgseal migration owns it: rename or \
             drop it first"
        )));
    }
    let mut retry = LockRetry::new(options);
    loop {
        let tx = retry.begin(client).await?;
        let result = async {
            let record = prepare_tx(&tx, direction, &info, &shadow, &target_type).await?;
            tx.commit().await?;
            Ok(record)
        }
        .await;
        if let Some(record) = retry.outcome(result).await? {
            return Ok(record);
        }
    }
}

/// The plaintext type to restore: the one recorded when pgseal encrypted the column (so
/// `varchar(80)` comes back as `varchar(80)`), else the logical type's own.
async fn original_type(
    client: &Client,
    info: &ColumnInfo,
    ty: LogicalType,
) -> Result<String, Error> {
    let rows = client
        .query(
            "SELECT source_type FROM pgseal.column_migrations
             WHERE direction = 'encrypt' AND phase = 'done' AND table_oid = $1
               AND column_name = $2
             ORDER BY migration_id DESC LIMIT 1",
            &[&info.table_oid, &info.column],
        )
        .await?;
    if let Some(row) = rows.first() {
        let recorded: String = row.try_get(0)?;
        // Only if it still names a type of the same base: the record is a hint, not trusted.
        let same = client
            .query_one(
                "SELECT to_regtype($1) IS NOT NULL AND to_regtype($1)::oid = $2",
                &[&recorded, &ty.oid()],
            )
            .await?
            .try_get::<_, Option<bool>>(0)?
            .unwrap_or(false);
        if same {
            return Ok(recorded);
        }
    }
    Ok(format!("pg_catalog.{}", ty.sql_name()))
}

async fn prepare_tx(
    tx: &Transaction<'_>,
    direction: Direction,
    info: &ColumnInfo,
    shadow: &str,
    target_type: &str,
) -> Result<Record, Error> {
    let row = tx
        .query_one(
            "INSERT INTO pgseal.column_migrations
                 (direction, table_oid, schema_name, table_name, column_name, shadow_name,
                  source_type, target_type, not_null, phase)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'backfill')
             RETURNING migration_id",
            &[
                &direction.as_str(),
                &info.table_oid,
                &info.schema,
                &info.table,
                &info.column,
                &shadow,
                &info.type_display,
                &target_type,
                &info.not_null,
            ],
        )
        .await?;
    let record = Record {
        id: row.try_get(0)?,
        direction,
        table_oid: info.table_oid,
        schema: info.schema.clone(),
        table: info.table.clone(),
        column: info.column.clone(),
        shadow: shadow.to_owned(),
        source_type: info.type_display.clone(),
        target_type: target_type.to_owned(),
        not_null: info.not_null,
        phase: "backfill".to_owned(),
    };
    let t = record.table_sql();
    let (c, s) = (ident(&record.column), ident(shadow));
    // The target type is pgseal's own domain name or a format_type() output checked by
    // to_regtype: never text from outside.
    tx.batch_execute(&format!("ALTER TABLE {t} ADD COLUMN {s} {target_type}"))
        .await?;
    // Compares binary forms: exact where `=` is not (numeric scale, collations, -0).
    let changed = match direction {
        Direction::Encrypt => format!(
            "{send}(NEW.{c}) IS DISTINCT FROM {send}(OLD.{c})",
            send = info.send_fn
        ),
        Direction::Decrypt => format!("NEW.{c}::bytea IS DISTINCT FROM OLD.{c}::bytea"),
    };
    // The function only clears the shadow; the triggers' WHEN conditions decide, evaluated by
    // the executor without entering PL/pgSQL, so the backfill's own updates (which leave the
    // column alone) cost no function call.
    let body = format!("BEGIN NEW.{s} := NULL; RETURN NEW; END");
    if body.contains("$pgseal$") {
        return Err(Error::MigrationRefused {
            column: record.name(),
            reason: "the column or table name contains \"$pgseal$\": rename it first".to_owned(),
        });
    }
    tx.batch_execute(&format!(
        "CREATE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $pgseal${body}$pgseal$;
         COMMENT ON FUNCTION {f}() IS 'pgseal column migration {id}: clears the shadow column \
           of rows whose column an application writes. Dropped at cutover.';
         CREATE TRIGGER {ins} BEFORE INSERT ON {t}
           FOR EACH ROW WHEN (NEW.{s} IS NOT NULL) EXECUTE FUNCTION {f}();
         CREATE TRIGGER {upd} BEFORE UPDATE ON {t}
           FOR EACH ROW WHEN (NEW.{s} IS NOT NULL AND {changed}) EXECUTE FUNCTION {f}();",
        f = record.function(),
        id = record.id,
        ins = ident(&record.trigger("insert")),
        upd = ident(&record.trigger("update")),
    ))
    .await?;
    if direction == Direction::Decrypt {
        // After the cutover, a proxy that has not reloaded yet would seal what it writes to
        // this column; PostgreSQL would store that ciphertext as text (or bytea) through an
        // assignment cast. This guard refuses it until every proxy has reloaded. NOT VALID:
        // adding it reads nothing.
        let check = match pgseal_store::domain(&info.type_name).map(|d| d.logical_type) {
            Some(LogicalType::Text | LogicalType::Varchar) => Some(format!(
                "NOT starts_with({s}::text, E'\\\\xb501') \
                 AND NOT starts_with({s}::text, E'\\\\265\\\\001')"
            )),
            Some(LogicalType::Bytea) => Some(format!("substr({s}, 1, 2) <> E'\\\\xb501'::bytea")),
            _ => None,
        };
        if let Some(check) = check {
            tx.batch_execute(&format!(
                "ALTER TABLE {t} ADD CONSTRAINT {g} CHECK ({check}) NOT VALID",
                g = ident(&record.guard())
            ))
            .await?;
        }
    }
    tx.batch_execute(&notify_sql()).await?;
    Ok(record)
}

/// Tells running proxies to reload their catalog now (delivered when the transaction commits).
fn notify_sql() -> String {
    format!("NOTIFY {}", crate::keyring::CATALOG_CHANNEL)
}

async fn notify(client: &Client) -> Result<(), Error> {
    client.batch_execute(&notify_sql()).await?;
    Ok(())
}

/// Retries of a transaction whose first act is taking locks under `lock_timeout`: a lock that
/// times out rolls everything back and is tried again after a growing pause.
struct LockRetry {
    attempt: u32,
    attempts: u32,
    pause: Duration,
    timeout: Duration,
}

impl LockRetry {
    fn new(options: &MigrationOptions) -> LockRetry {
        LockRetry {
            attempt: 0,
            attempts: options.lock_attempts.max(1),
            pause: Duration::from_millis(100),
            timeout: options.lock_timeout,
        }
    }

    /// Opens the next attempt's transaction with its `lock_timeout`.
    async fn begin<'c>(&mut self, client: &'c mut Client) -> Result<Transaction<'c>, Error> {
        self.attempt += 1;
        let tx = client.transaction().await?;
        let ms = self.timeout.as_millis().clamp(1, i32::MAX as u128);
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {ms}"))
            .await?;
        Ok(tx)
    }

    /// `Ok(Some)` on success; `Ok(None)` after pausing when the lock timed out and attempts
    /// remain (the transaction was rolled back by dropping it); the error otherwise.
    async fn outcome<T>(&mut self, result: Result<T, Error>) -> Result<Option<T>, Error> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(err) if is_lock_timeout(&err) && self.attempt < self.attempts => {
                tokio::time::sleep(self.pause).await;
                self.pause = (self.pause * 2).min(Duration::from_secs(5));
                Ok(None)
            }
            Err(err) if is_lock_timeout(&err) => Err(Error::LockNotAcquired {
                attempts: self.attempts,
                timeout: self.timeout,
            }),
            Err(err) => Err(err),
        }
    }
}

fn is_lock_timeout(err: &Error) -> bool {
    // describe_db_error keeps the SQLSTATE: 55P03 lock_not_available.
    matches!(err, Error::Database(message) if message.contains("SQLSTATE 55P03"))
}

/// The online part: block ranges front to back, then catch-up passes.
async fn backfill(
    client: &Client,
    record: &Record,
    mover: &Mover<'_>,
    options: &MigrationOptions,
    observer: &dyn MigrationObserver,
) -> Result<u64, Error> {
    observer.phase(MigrationPhase::Backfilling);
    observer.backfill_started(mover.missing(client).await?);
    // A batch never waits long for a row an application holds: it gives up (the rows are
    // picked up later) well before deadlock_timeout, so in a lock cycle with an application
    // transaction the batch is the one that yields, never the application.
    client
        .batch_execute(&format!("SET lock_timeout = {BATCH_LOCK_TIMEOUT_MS}"))
        .await?;
    let batch_rows = options.batch_rows.max(1);
    let started = Instant::now();
    let mut done: u64 = 0;
    let mut blocks: u64 = 8;
    let mut block: u64 = 0;
    loop {
        // Re-read each time: rows inserted meanwhile may extend the table.
        let total = relation_blocks(client, record.table_oid).await?;
        if block >= total {
            break;
        }
        let to = (block + blocks).min(total);
        let (read, written) = yield_on_lock(mover.move_block_range(client, block, to).await)?;
        done += written;
        block = to;
        let delta = written;
        // Aim at `batch_rows` per batch whatever the row width.
        if read < batch_rows / 2 {
            blocks = (blocks * 2).min(1 << 16);
        } else if read > batch_rows * 2 {
            blocks = (blocks / 2).max(1);
        }
        progress(client, record, delta, done, started, options, observer).await?;
    }
    observer.phase(MigrationPhase::CatchingUp);
    // Rows written by applications during the pass: bounded, so a write-heavy table still
    // reaches the cutover, which converts whatever remains under its lock.
    for _ in 0..100 {
        let (read, written) = yield_on_lock(mover.move_missing(client, Some(batch_rows)).await)?;
        done += written;
        progress(client, record, written, done, started, options, observer).await?;
        if read < batch_rows {
            break;
        }
    }
    // The caller's connection gets its own setting back.
    client.batch_execute("RESET lock_timeout").await?;
    Ok(done)
}

/// `lock_timeout` of each backfill batch, in milliseconds (below PostgreSQL's default
/// `deadlock_timeout` of 1 s).
const BATCH_LOCK_TIMEOUT_MS: u32 = 200;

/// A batch that timed out on a row lock converted nothing; its rows stay missing and are
/// picked up by a later pass or the cutover. It reports as many rows read as a full batch, so
/// the catch-up does not take it for the end of the work.
fn yield_on_lock(result: Result<(usize, u64), Error>) -> Result<(usize, u64), Error> {
    match result {
        Err(err) if is_lock_timeout(&err) => Ok((usize::MAX, 0)),
        other => other,
    }
}

async fn relation_blocks(client: &Client, table_oid: u32) -> Result<u64, Error> {
    let row = client
        .query_one(
            "SELECT pg_catalog.pg_relation_size($1::oid::regclass)
                    / current_setting('block_size')::bigint",
            &[&table_oid],
        )
        .await?;
    let n: i64 = row.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Reports progress, records it, and sleeps as the rate limit requires.
async fn progress(
    client: &Client,
    record: &Record,
    delta: u64,
    done: u64,
    started: Instant,
    options: &MigrationOptions,
    observer: &dyn MigrationObserver,
) -> Result<(), Error> {
    observer.rows_done(done);
    client
        .execute(
            "UPDATE pgseal.column_migrations SET rows_done = rows_done + $2, updated_at = now()
             WHERE migration_id = $1",
            &[&record.id, &i64::try_from(delta).unwrap_or(i64::MAX)],
        )
        .await?;
    if let Some(rate) = options.max_rows_per_second.filter(|r| *r > 0) {
        let due = Duration::from_secs_f64(done as f64 / f64::from(rate));
        let elapsed = started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
    Ok(())
}

/// Swaps the columns in one transaction under an exclusive lock.
async fn cutover(
    client: &mut Client,
    record: &Record,
    mover: &Mover<'_>,
    encrypted_id: u32,
    options: &MigrationOptions,
    observer: &dyn MigrationObserver,
) -> Result<(u32, Duration, u64), Error> {
    observer.phase(MigrationPhase::CuttingOver);
    let encrypted_id = i32::try_from(encrypted_id).map_err(|_| {
        Error::Config(format!(
            "column id {encrypted_id} does not fit pgseal.columns"
        ))
    })?;
    let mut retry = LockRetry::new(options);
    // Announcing is pointless without a grace period for proxies to see it.
    let announce = !options.proxy_grace.is_zero();
    loop {
        if announce {
            announce_cutover(client, record, options).await?;
            observer.phase(MigrationPhase::WaitingForProxies);
            tokio::time::sleep(options.proxy_grace).await;
            observer.phase(MigrationPhase::CuttingOver);
        }
        let tx = retry.begin(client).await?;
        let result = async {
            tx.batch_execute(&format!(
                "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                record.table_sql()
            ))
            .await?;
            let locked = Instant::now();
            // Under the lock nothing changes concurrently: every row read must be written.
            let (read, written) = mover.move_missing(&tx, None).await?;
            if u64::try_from(read).unwrap_or(u64::MAX) != written {
                return Err(Error::Config(format!(
                    "{}: {read} rows read but {written} converted under the cutover lock; \
                     nothing was changed, run the command again",
                    record.name()
                )));
            }
            cutover_ddl(&tx, record, encrypted_id).await?;
            tx.commit().await?;
            Ok((written, locked.elapsed()))
        }
        .await;
        if announce {
            if let Err(error) = &result {
                // The cutover did not happen (its transaction rolled back, taking nothing with
                // it): release the statements proxies hold before backing off. If this fails
                // too, the mark's deadline releases them.
                if let Err(withdraw) = withdraw_cutover(client, record).await {
                    if is_lock_timeout(error) {
                        return Err(withdraw);
                    }
                }
            }
        }
        if let Some((rows, held)) = retry.outcome(result).await? {
            return Ok((retry.attempt, held, rows));
        }
    }
}

/// How long past the grace period and the lock timeout an announced cutover may still take
/// (converting the last rows, the DDL, the commit) before proxies stop holding statements for
/// it: what bounds the hold if the migration is killed mid-cutover.
const CUTOVER_ANNOUNCEMENT_MARGIN: Duration = Duration::from_secs(20);

/// Marks the cutover as pending (`cutover_pending_until`) and tells proxies, in one
/// transaction. Proxies that load the mark hold new statements on the table until the cutover
/// commits (it clears the mark) or the mark is withdrawn or expires.
async fn announce_cutover(
    client: &mut Client,
    record: &Record,
    options: &MigrationOptions,
) -> Result<(), Error> {
    let window = options.proxy_grace + options.lock_timeout + CUTOVER_ANNOUNCEMENT_MARGIN;
    let millis = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE pgseal.column_migrations
         SET cutover_pending_until = clock_timestamp() + $2::int8 * interval '1 millisecond'
         WHERE migration_id = $1",
        &[&record.id, &millis],
    )
    .await?;
    tx.batch_execute(&notify_sql()).await?;
    tx.commit().await?;
    Ok(())
}

/// Clears the pending-cutover mark and tells proxies, in one transaction.
async fn withdraw_cutover(client: &mut Client, record: &Record) -> Result<(), Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE pgseal.column_migrations SET cutover_pending_until = NULL
         WHERE migration_id = $1",
        &[&record.id],
    )
    .await?;
    tx.batch_execute(&notify_sql()).await?;
    tx.commit().await?;
    Ok(())
}

async fn cutover_ddl(
    tx: &Transaction<'_>,
    record: &Record,
    encrypted_id: i32,
) -> Result<(), Error> {
    let t = record.table_sql();
    let (c, s) = (ident(&record.column), ident(&record.shadow));
    let mut ddl = format!(
        "DROP TRIGGER {ins} ON {t};
         DROP TRIGGER {upd} ON {t};
         DROP FUNCTION {f}();
         ALTER TABLE {t} DROP COLUMN {c};
         ALTER TABLE {t} RENAME COLUMN {s} TO {c};",
        ins = ident(&record.trigger("insert")),
        upd = ident(&record.trigger("update")),
        f = record.function(),
    );
    if record.not_null {
        // Validated online afterwards; NOT VALID still applies to every new write.
        ddl.push_str(&format!(
            "ALTER TABLE {t} ADD CONSTRAINT {n} CHECK ({c} IS NOT NULL) NOT VALID;",
            n = ident(&record.not_null_check())
        ));
    }
    tx.batch_execute(&ddl).await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REGISTRY_LOCK])
        .await?;
    // The registry row named like the column that is going away keeps its keys (backups may
    // need them) under a name no live column has; the unique constraint is deferred.
    tx.execute(
        "UPDATE pgseal.columns
         SET column_name = left(column_name, 40) || '#dropped#' || column_id
         WHERE schema_name = $1 AND table_name = $2 AND column_name = $3
           AND column_id <> $4",
        &[&record.schema, &record.table, &record.column, &encrypted_id],
    )
    .await?;
    match record.direction {
        Direction::Encrypt => {
            // The shadow's registration (with its keys and the id inside its ciphertexts)
            // becomes the column's; same OID and attribute number, new name.
            tx.execute(
                "UPDATE pgseal.columns SET column_name = $2 WHERE column_id = $1",
                &[&encrypted_id, &record.column],
            )
            .await?;
        }
        Direction::Decrypt => {
            tx.execute(
                "UPDATE pgseal.columns
                 SET column_name = left(column_name, 40) || '#dropped#' || column_id
                 WHERE column_id = $1",
                &[&encrypted_id],
            )
            .await?;
        }
    }
    let needs_finish = record.not_null || record.direction == Direction::Decrypt;
    tx.execute(
        "UPDATE pgseal.column_migrations
         SET phase = CASE WHEN $2 THEN 'validating' ELSE 'done' END, updated_at = now(),
             cutover_pending_until = NULL,
             finished_at = CASE WHEN $2 THEN NULL ELSE now() END
         WHERE migration_id = $1",
        &[&record.id, &needs_finish],
    )
    .await?;
    tx.batch_execute(&notify_sql()).await?;
    Ok(())
}

/// After the cutover: validates the `NOT NULL` check online, makes it `NOT NULL`, drops the
/// decrypt guard once proxies have reloaded, and marks the migration done.
async fn finish(
    client: &mut Client,
    record: &Record,
    options: &MigrationOptions,
    observer: &dyn MigrationObserver,
) -> Result<(), Error> {
    let still_open = open_record(client, record.table_oid, &record.column).await?;
    let Some(current) = still_open else {
        return Ok(());
    };
    if current.phase != "validating" {
        return Ok(());
    }
    observer.phase(MigrationPhase::RestoringConstraints);
    let t = record.table_sql();
    let c = ident(&record.column);
    if record.not_null {
        let n = ident(&record.not_null_check());
        let validate = format!("ALTER TABLE {t} VALIDATE CONSTRAINT {n}");
        // Takes SHARE UPDATE EXCLUSIVE: reads and writes go on while it scans.
        let mut retry = LockRetry::new(options);
        loop {
            let tx = retry.begin(client).await?;
            let result = async {
                tx.batch_execute(&validate).await?;
                tx.commit().await?;
                Ok(())
            }
            .await;
            if retry.outcome(result).await?.is_some() {
                break;
            }
        }
    }
    if record.direction == Direction::Decrypt && !options.proxy_grace.is_zero() {
        observer.phase(MigrationPhase::WaitingForProxies);
        tokio::time::sleep(options.proxy_grace).await;
    }
    let mut ddl = String::new();
    if record.not_null {
        // The validated check proves the column has no NULL: PostgreSQL skips the scan.
        ddl.push_str(&format!(
            "ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;
             ALTER TABLE {t} DROP CONSTRAINT {n};",
            n = ident(&record.not_null_check())
        ));
    }
    if record.direction == Direction::Decrypt {
        ddl.push_str(&format!(
            "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {g};",
            g = ident(&record.guard())
        ));
    }
    let mut retry = LockRetry::new(options);
    loop {
        let tx = retry.begin(client).await?;
        let result = async {
            if !ddl.is_empty() {
                tx.batch_execute(&ddl).await?;
            }
            tx.execute(
                "UPDATE pgseal.column_migrations
                 SET phase = 'done', updated_at = now(), finished_at = now()
                 WHERE migration_id = $1",
                &[&record.id],
            )
            .await?;
            tx.batch_execute(&notify_sql()).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if retry.outcome(result).await?.is_some() {
            break;
        }
    }
    Ok(())
}
