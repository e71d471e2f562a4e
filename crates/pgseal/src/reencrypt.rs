//! Online re-encryption: rewrites the values of encrypted columns that are still under an older
//! value key (or carry a blind index under an older index key) with the active keys, while the
//! application keeps reading and writing.
//!
//! How it stays safe online:
//!
//! * **Short transactions.** Each table is walked in ranges of heap blocks with TID range scans
//!   (`ctid >= '(p,0)' AND ctid < '(q,0)'`, PostgreSQL 14+), reading only rows that need work;
//!   each batch of at most `batch_size` rows is rewritten by one `UPDATE` statement, its own
//!   (autocommit) transaction, under a session `lock_timeout` (the caller's setting is restored
//!   at the end), so no lock is held longer than one batch and a batch that would wait on an
//!   application's lock gives up and is retried later. Reading and sealing the next block range
//!   overlaps with writing the current one (pipelined on the one connection).
//! * **Compare-and-swap.** The `UPDATE` of a row matches its `ctid` *and* the exact old
//!   ciphertext of every rewritten column. A row the application changed after it was read no
//!   longer matches (its `ctid` moved or its value differs), so the application's write is never
//!   overwritten; the row is simply revisited by the next pass.
//! * **Passes until done.** Rows that moved (updated rows get a new `ctid`) or missed the swap
//!   are found again by the next pass; the run ends when a pass finds nothing left.
//! * **Resumable by construction.** There is no job state: a rerun selects whatever is still
//!   under an old version. Killed at any moment (SIGKILL included), at most the current batch's
//!   statement rolls back.
//!
//! The same plaintext is sealed again (a fresh nonce, the active value key, a blind index under
//! the active index key), so blind indexes stay consistent with values.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};

use pgseal_audit::{AuditEvent, AuditLog};
use pgseal_crypto::{parse_ciphertext, ColumnCipher, CryptoError, MasterKeyring};
use pgseal_store::EncryptedColumn;
use pgseal_value::{decode_canonical, index_input, LogicalType};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::Client;
use zeroize::Zeroizing;

use crate::keyring::{current_database, ensure_data_keys, Keyring};
use crate::rotation::{
    index_version_sql, quote_ident, quoted_table, select_columns, value_version_sql,
    ColumnSelection,
};
use crate::Error;

/// Default rows per batch (one transaction each).
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Default `lock_timeout` of a batch's transaction.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of passes before giving up on rows that keep changing under us.
pub const DEFAULT_MAX_PASSES: u32 = 50;

/// How [`reencrypt`] paces itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ReencryptOptions {
    /// Rows per batch transaction (at least 1).
    pub batch_size: usize,
    /// Upper bound on rows rewritten per second (token bucket with one second of burst);
    /// `None` for no limit.
    pub max_rows_per_second: Option<f64>,
    /// `lock_timeout` of each batch: a batch that would wait longer on a row or table lock is
    /// rolled back and its rows retried in a later pass.
    pub lock_timeout: Duration,
    /// Passes over a table before the run stops with [`Error::ReencryptIncomplete`] (rows that
    /// an application updates continuously may miss the swap every time).
    pub max_passes: u32,
}

impl Default for ReencryptOptions {
    fn default() -> Self {
        ReencryptOptions {
            batch_size: DEFAULT_BATCH_SIZE,
            max_rows_per_second: None,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            max_passes: DEFAULT_MAX_PASSES,
        }
    }
}

/// Where a run stands, given to the progress callback after every batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReencryptProgress {
    /// `schema.table` being worked on.
    pub table: String,
    /// Pass over that table, from 1.
    pub pass: u32,
    /// Rows that needed work when the pass started.
    pub pass_todo: u64,
    /// Rows rewritten in this pass so far.
    pub pass_done: u64,
    /// Rows rewritten over the whole run, all tables.
    pub total_rewritten: u64,
    /// Rows skipped (changed concurrently, or a lock timeout) over the whole run; they are
    /// retried by later passes.
    pub total_skipped: u64,
}

/// The outcome of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableReport {
    /// `schema.table`.
    pub table: String,
    /// The columns rewritten (`schema.table.column`).
    pub columns: Vec<String>,
    /// Rows rewritten.
    pub rewritten: u64,
    /// Rows skipped at least once (and then retried).
    pub skipped: u64,
    /// Passes made (the last one found nothing left).
    pub passes: u32,
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReencryptReport {
    /// The database.
    pub database: String,
    /// One entry per table worked on.
    pub tables: Vec<TableReport>,
    /// Wall time.
    pub elapsed: Duration,
}

impl ReencryptReport {
    /// Rows rewritten over all tables.
    pub fn rewritten(&self) -> u64 {
        self.tables.iter().map(|t| t.rewritten).sum()
    }
}

/// Rewrites every value of the selected columns that is not under the active keys; see the
/// module documentation for how it stays online and safe. Calls `progress` after each batch.
///
/// Registers new columns and creates missing keys first (as `pgseal init` does), which also
/// checks the master key.
///
/// # Errors
/// A value that cannot be opened (altered, unknown or retired key) stops the run with the
/// column and row position; everything committed so far stays valid and a rerun continues.
/// [`Error::ReencryptIncomplete`] if rows still need work after `max_passes` passes.
pub async fn reencrypt(
    client: &mut Client,
    master: &MasterKeyring,
    audit: &AuditLog,
    selection: &ColumnSelection,
    options: &ReencryptOptions,
    progress: &mut (dyn FnMut(&ReencryptProgress) + Send),
) -> Result<ReencryptReport, Error> {
    let started = Instant::now();
    pgseal_store::check_schema(client).await?;
    ensure_data_keys(client, master, audit).await?;
    let database = current_database(client).await?;
    let keyring = Keyring::load(client, master, audit).await?;
    let columns = pgseal_store::discover_columns(client).await?;
    let selected = select_columns(&columns, selection)?;

    // Group by table: one walk rewrites all its encrypted columns at once.
    let mut tables: BTreeMap<(String, String), Vec<Target<'_>>> = BTreeMap::new();
    for column in selected {
        let Some(sealed) = column.column_id.and_then(|id| keyring.by_id(id)) else {
            continue;
        };
        tables
            .entry((column.schema.clone(), column.table.clone()))
            .or_default()
            .push(Target::new(column, &sealed.cipher));
    }

    let mut run = Run {
        options,
        bucket: options.max_rows_per_second.map(TokenBucket::new),
        total_rewritten: 0,
        total_skipped: 0,
    };
    // Each batch is one autocommit statement, so these are set for the session, and the
    // caller's settings restored afterwards:
    // * lock_timeout: a batch never waits long behind an application's lock;
    // * synchronous_commit off: a batch does not wait for its WAL flush. Safe here: a batch lost
    //   in a server crash leaves its rows with their old ciphertexts, which still open (their key
    //   is decrypt_only) and are found again by the next run; and a later commit of anyone else
    //   flushes the WAL before it, so no application write can depend on a lost batch.
    let previous: (String, String) = {
        let row = client
            .query_one(
                "SELECT current_setting('lock_timeout'), current_setting('synchronous_commit')",
                &[],
            )
            .await?;
        (
            row.try_get(0).map_err(|e| Error::Database(e.to_string()))?,
            row.try_get(1).map_err(|e| Error::Database(e.to_string()))?,
        )
    };
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}; SET synchronous_commit = off",
            options.lock_timeout.as_millis().max(1)
        ))
        .await?;
    let result = run_tables(client, &database, audit, tables, &mut run, progress).await;
    let restored = client
        .execute(
            "SELECT set_config('lock_timeout', $1, false), \
                    set_config('synchronous_commit', $2, false)",
            &[&previous.0, &previous.1],
        )
        .await;
    let reports = result?;
    restored?;
    Ok(ReencryptReport {
        database,
        tables: reports,
        elapsed: started.elapsed(),
    })
}

async fn run_tables(
    client: &Client,
    database: &str,
    audit: &AuditLog,
    tables: BTreeMap<(String, String), Vec<Target<'_>>>,
    run: &mut Run<'_>,
    progress: &mut (dyn FnMut(&ReencryptProgress) + Send),
) -> Result<Vec<TableReport>, Error> {
    let database = database.to_owned();
    let mut reports = Vec::new();
    for ((schema, table), targets) in tables {
        for target in &targets {
            audit
                .record(AuditEvent::ReencryptStarted {
                    database: database.clone(),
                    column: target.column.qualified_name(),
                    version: target.value_version,
                })
                .map_err(|e| Error::Audit(e.to_string()))?;
        }
        let name = format!("{schema}.{table}");
        let report = run.table(client, &name, &targets, progress).await?;
        for target in &targets {
            audit
                .record(AuditEvent::ReencryptFinished {
                    database: database.clone(),
                    column: target.column.qualified_name(),
                    version: target.value_version,
                    rewritten: report.rewritten,
                })
                .map_err(|e| Error::Audit(e.to_string()))?;
        }
        reports.push(report);
    }
    Ok(reports)
}

/// One column to rewrite, with the versions its active keys write.
struct Target<'a> {
    column: &'a EncryptedColumn,
    cipher: &'a ColumnCipher,
    logical_type: LogicalType,
    value_version: u32,
    /// The active index key's version, for searchable columns.
    index_version: Option<u16>,
}

impl<'a> Target<'a> {
    fn new(column: &'a EncryptedColumn, cipher: &'a ColumnCipher) -> Self {
        // The cipher does not expose its active index version; a throwaway seal reports it in
        // the header, exactly as every rewritten value will carry it.
        let probe = cipher.seal(&[], &[]);
        let index_version = parse_ciphertext(&probe)
            .ok()
            .and_then(|h| h.blind_index.map(|(v, _)| v));
        Target {
            column,
            cipher,
            logical_type: column.domain.logical_type,
            value_version: cipher.active_version(),
            index_version,
        }
    }

    /// Whether a stored value is under an older key than the active ones.
    fn needs_work(&self, ciphertext: &[u8]) -> bool {
        match parse_ciphertext(ciphertext) {
            Ok(header) => {
                header.key_version < self.value_version
                    || matches!(
                        (header.blind_index, self.index_version),
                        (Some((stored, _)), Some(active)) if stored < active
                    )
            }
            // Not a ciphertext: opening reports it with the column's name.
            Err(_) => true,
        }
    }

    /// SQL condition: the column holds a value under an older key. Parameters `$a` (4-byte value
    /// version) and `$b` (2-byte index version) are numbered by the caller.
    fn condition(&self, value_param: usize, index_param: Option<usize>) -> String {
        let col = quote_ident(&self.column.column);
        let mut cond = format!("{} < ${value_param}", value_version_sql(&col));
        if let Some(p) = index_param {
            cond = format!(
                "{cond} OR COALESCE({} < ${p}, false)",
                index_version_sql(&col)
            );
        }
        format!("({col} IS NOT NULL AND ({cond}))")
    }

    /// Opens `ciphertext` and seals the same plaintext under the active keys.
    fn reseal(&self, ciphertext: &[u8], ctid: Tid) -> Result<Vec<u8>, Error> {
        let column = || self.column.qualified_name();
        let ty = self.logical_type;
        let result = self
            .cipher
            .open_with(ciphertext, |plaintext| {
                decode_canonical(ty, plaintext).map(|value| {
                    let index = Zeroizing::new(index_input(&value));
                    self.cipher.seal(plaintext, &index)
                })
            })
            .map_err(|source| match source {
                CryptoError::RetiredKey { version, .. } => Error::RetiredKey {
                    column: column(),
                    version,
                },
                source => Error::ReencryptValue {
                    column: column(),
                    ctid: ctid.to_string(),
                    reason: source.to_string(),
                },
            })?;
        result.map_err(|source| Error::ReencryptValue {
            column: column(),
            ctid: ctid.to_string(),
            reason: source.to_string(),
        })
    }
}

/// A token bucket: `rate` tokens per second, at most one second's worth banked.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            f64::MAX
        };
        TokenBucket {
            rate,
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens, returning how long to wait before using them (the debt is repaid by
    /// the time that passes, so a batch larger than the bucket still averages out to the rate).
    fn take(&mut self, n: u64) -> Duration {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        // Row counts are far below 2^52: the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        self.tokens -= n;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((-self.tokens / self.rate).min(3600.0))
        }
    }
}

struct Run<'o> {
    options: &'o ReencryptOptions,
    bucket: Option<TokenBucket>,
    total_rewritten: u64,
    total_skipped: u64,
}

/// A row read for rewriting: its `ctid` and, per target column, (old, new) ciphertexts when
/// that column needs work.
struct PendingRow {
    ctid: Tid,
    columns: Vec<Option<(Vec<u8>, Vec<u8>)>>,
}

impl Run<'_> {
    async fn table(
        &mut self,
        client: &Client,
        name: &str,
        targets: &[Target<'_>],
        progress: &mut (dyn FnMut(&ReencryptProgress) + Send),
    ) -> Result<TableReport, Error> {
        let Some(first) = targets.first() else {
            return Ok(TableReport {
                table: name.to_owned(),
                columns: Vec::new(),
                rewritten: 0,
                skipped: 0,
                passes: 0,
            });
        };
        let table = quoted_table(first.column);
        let table_oid = first.column.table_oid;

        // Parameters: value version of each target, then index version of searchable ones.
        let mut params: Vec<Vec<u8>> = Vec::new();
        let mut conditions = Vec::new();
        for target in targets {
            params.push(target.value_version.to_be_bytes().to_vec());
            let value_param = params.len();
            let index_param = target.index_version.map(|v| {
                params.push(v.to_be_bytes().to_vec());
                params.len()
            });
            conditions.push(target.condition(value_param, index_param));
        }
        let needs = conditions.join(" OR ");
        let count_sql = format!("SELECT count(*) FROM {table} WHERE {needs}");
        let range_from = params.len() + 1;
        let columns_sql = targets
            .iter()
            .map(|t| format!("{}::bytea", quote_ident(&t.column.column)))
            .collect::<Vec<_>>()
            .join(", ");
        let select_sql = format!(
            "SELECT ctid, {columns_sql} FROM {table} \
             WHERE ctid >= ${range_from}::tid AND ctid < ${}::tid AND ({needs})",
            range_from + 1
        );
        // Prepared once per table: the batches only bind new values.
        let count_statement = client.prepare(&count_sql).await?;
        let select_statement = client.prepare(&select_sql).await?;
        let update_statement = client.prepare(&update_statement(&table, targets)).await?;

        let mut report = TableReport {
            table: name.to_owned(),
            columns: targets.iter().map(|t| t.column.qualified_name()).collect(),
            rewritten: 0,
            skipped: 0,
            passes: 0,
        };
        loop {
            let param_refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let todo: i64 = client
                .query_one(&count_statement, &param_refs)
                .await?
                .try_get(0)
                .map_err(|e| Error::Database(e.to_string()))?;
            let todo = u64::try_from(todo).unwrap_or(0);
            if todo == 0 {
                break;
            }
            if report.passes >= self.options.max_passes {
                return Err(Error::ReencryptIncomplete {
                    table: name.to_owned(),
                    remaining: todo,
                    passes: report.passes,
                });
            }
            report.passes += 1;
            if report.passes > 1 {
                // Rows left after a pass were being changed concurrently: give the writers a
                // moment, a little longer each time.
                tokio::time::sleep(Duration::from_millis(20 * u64::from(report.passes))).await;
            }
            let (blocks, rows_per_block): (i64, f64) = {
                let row = client
                    .query_one(
                        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int8, \
                                CASE WHEN c.relpages > 0 AND c.reltuples > 0 \
                                     THEN c.reltuples / c.relpages ELSE 0 END::float8 \
                         FROM pg_class c WHERE c.oid = $1",
                        &[&table_oid],
                    )
                    .await?;
                (
                    row.try_get(0).map_err(|e| Error::Database(e.to_string()))?,
                    row.try_get(1).map_err(|e| Error::Database(e.to_string()))?,
                )
            };
            let step = blocks_per_range(self.options.batch_size, rows_per_block);
            let mut pass = ReencryptProgress {
                table: name.to_owned(),
                pass: report.passes,
                pass_todo: todo,
                pass_done: 0,
                total_rewritten: self.total_rewritten,
                total_skipped: self.total_skipped,
            };
            progress(&pass);
            // Reading (and sealing) the next range overlaps with writing the current one: the
            // two share the connection, which pipelines them, while the sealing runs here.
            let mut block: i64 = 0;
            let mut pending = Vec::new();
            loop {
                let next_range = (block < blocks).then(|| (block, block.saturating_add(step)));
                let fetch_next = async {
                    match next_range {
                        Some((from, to)) => {
                            fetch(client, &select_statement, &param_refs, from, to, targets)
                                .await
                                .map(Some)
                        }
                        None => Ok(None),
                    }
                };
                let write = self.write(
                    client,
                    &update_statement,
                    targets,
                    &pending,
                    &mut report,
                    &mut pass,
                    progress,
                );
                let (written, fetched) = tokio::join!(write, fetch_next);
                written?;
                match (fetched?, next_range) {
                    (Some(rows), Some((_, to))) => {
                        pending = rows;
                        block = to;
                    }
                    _ => break,
                }
            }
        }
        Ok(report)
    }

    /// Writes `pending` in batches of `batch_size`, each paced by the rate limit.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &mut self,
        client: &Client,
        update: &tokio_postgres::Statement,
        targets: &[Target<'_>],
        pending: &[PendingRow],
        report: &mut TableReport,
        pass: &mut ReencryptProgress,
        progress: &mut (dyn FnMut(&ReencryptProgress) + Send),
    ) -> Result<(), Error> {
        for batch in pending.chunks(self.options.batch_size.max(1)) {
            if let Some(bucket) = self.bucket.as_mut() {
                let wait = bucket.take(batch.len() as u64);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let (done, skipped) = batch_update(client, update, targets, batch).await?;
            report.rewritten += done;
            report.skipped += skipped;
            self.total_rewritten += done;
            self.total_skipped += skipped;
            pass.pass_done += done;
            pass.total_rewritten = self.total_rewritten;
            pass.total_skipped = self.total_skipped;
            progress(pass);
        }
        Ok(())
    }
}

/// A row's physical position (`ctid`), exchanged in PostgreSQL's binary `tid` format (block
/// number, then line pointer, big-endian): reading and matching a million rows then costs no
/// text formatting on the server and no parsing here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tid {
    block: u32,
    offset: u16,
}

impl Tid {
    /// The position before every row of `block` (line pointers start at 1), for range bounds.
    /// Block numbers come from `pg_relation_size` (below 2^32); larger ones saturate, which
    /// still bounds a range past the end of the table.
    fn block_start(block: i64) -> Tid {
        Tid {
            block: u32::try_from(block.max(0)).unwrap_or(u32::MAX),
            offset: 0,
        }
    }
}

impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.block, self.offset)
    }
}

impl<'a> FromSql<'a> for Tid {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        match raw {
            [b0, b1, b2, b3, o0, o1] => Ok(Tid {
                block: u32::from_be_bytes([*b0, *b1, *b2, *b3]),
                offset: u16::from_be_bytes([*o0, *o1]),
            }),
            _ => Err(format!("a tid is 6 bytes, the server sent {}", raw.len()).into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TID
    }
}

impl ToSql for Tid {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_u32(self.block);
        out.put_u16(self.offset);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TID
    }

    to_sql_checked!();
}

/// Reads the rows of blocks `from..to` that need work and seals their new values.
async fn fetch(
    client: &Client,
    select: &tokio_postgres::Statement,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    from: i64,
    to: i64,
    targets: &[Target<'_>],
) -> Result<Vec<PendingRow>, Error> {
    let from = Tid::block_start(from);
    let to = Tid::block_start(to);
    let mut range_params = params.to_vec();
    range_params.push(&from);
    range_params.push(&to);
    let rows = client.query(select, &range_params).await?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in rows {
        let ctid: Tid = row.try_get(0).map_err(|e| Error::Database(e.to_string()))?;
        let mut columns = Vec::with_capacity(targets.len());
        for (i, target) in targets.iter().enumerate() {
            let old: Option<Vec<u8>> = row
                .try_get(i + 1)
                .map_err(|e| Error::Database(e.to_string()))?;
            columns.push(match old {
                Some(old) if target.needs_work(&old) => {
                    let new = target.reseal(&old, ctid)?;
                    Some((old, new))
                }
                _ => None,
            });
        }
        pending.push(PendingRow { ctid, columns });
    }
    Ok(pending)
}

/// Rewrites one batch with one compare-and-swap `UPDATE`, a transaction by itself (autocommit):
/// returns (rows rewritten, rows skipped).
async fn batch_update(
    client: &Client,
    update: &tokio_postgres::Statement,
    targets: &[Target<'_>],
    batch: &[PendingRow],
) -> Result<(u64, u64), Error> {
    let ctids: Vec<Tid> = batch.iter().map(|r| r.ctid).collect();
    let mut olds: Vec<Vec<Option<&[u8]>>> = vec![Vec::with_capacity(batch.len()); targets.len()];
    let mut news: Vec<Vec<Option<&[u8]>>> = vec![Vec::with_capacity(batch.len()); targets.len()];
    for row in batch {
        for (i, column) in row.columns.iter().enumerate() {
            olds[i].push(column.as_ref().map(|(o, _)| o.as_slice()));
            news[i].push(column.as_ref().map(|(_, n)| n.as_slice()));
        }
    }
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&ctids];
    for i in 0..targets.len() {
        params.push(&olds[i]);
        params.push(&news[i]);
    }
    let total = batch.len() as u64;
    match client.execute(update, &params).await {
        Ok(updated) => Ok((updated, total.saturating_sub(updated))),
        Err(err)
            if matches!(
                err.code(),
                Some(&SqlState::LOCK_NOT_AVAILABLE)
                    | Some(&SqlState::T_R_DEADLOCK_DETECTED)
                    | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            ) =>
        {
            // Someone holds these rows: the whole batch is retried in a later pass.
            Ok((0, total))
        }
        Err(err) => Err(err.into()),
    }
}

/// How many heap blocks one range read covers: about one batch of rows when every row needs
/// work, at least one block.
fn blocks_per_range(batch_size: usize, rows_per_block: f64) -> i64 {
    if !(rows_per_block.is_finite() && rows_per_block >= 1.0) {
        return 8;
    }
    // Both are small positive numbers: the conversions cannot overflow.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let blocks = (batch_size.max(1) as f64 / rows_per_block).ceil() as i64;
    blocks.clamp(1, 1 << 16)
}

/// The compare-and-swap `UPDATE` of one batch: `$1` the rows' ctids, then per column
/// the old and new ciphertexts (`NULL` where that column of that row needs no work). A row
/// matches only if its ctid still holds exactly the old values; a column with no new value
/// keeps its current one.
fn update_statement(table: &str, targets: &[Target<'_>]) -> String {
    let mut sets = Vec::new();
    let mut checks = Vec::new();
    let mut aliases = vec!["tid".to_owned()];
    let mut types = vec!["$1::tid[]".to_owned()];
    for (i, target) in targets.iter().enumerate() {
        let col = quote_ident(&target.column.column);
        let old = format!("o{i}");
        let new = format!("n{i}");
        types.push(format!("${}::bytea[]", 2 * i + 2));
        types.push(format!("${}::bytea[]", 2 * i + 3));
        sets.push(format!("{col} = COALESCE(v.{new}, t.{col}::bytea)"));
        checks.push(format!("(v.{new} IS NULL OR t.{col}::bytea = v.{old})"));
        aliases.push(old);
        aliases.push(new);
    }
    format!(
        "UPDATE {table} AS t SET {} \
         FROM unnest({}) AS v({}) \
         WHERE t.ctid = v.tid AND {}",
        sets.join(", "),
        types.join(", "),
        aliases.join(", "),
        checks.join(" AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_about_one_batch() {
        assert_eq!(blocks_per_range(500, 50.0), 10);
        assert_eq!(blocks_per_range(500, 1000.0), 1);
        assert_eq!(blocks_per_range(500, 0.0), 8);
        assert_eq!(blocks_per_range(500, f64::NAN), 8);
    }

    #[test]
    fn tids_use_the_binary_wire_format() {
        let tid = Tid {
            block: 0x0102_0304,
            offset: 0x0506,
        };
        let mut out = BytesMut::new();
        assert!(matches!(tid.to_sql(&Type::TID, &mut out), Ok(IsNull::No)));
        assert_eq!(&out[..], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(Tid::from_sql(&Type::TID, &out).ok(), Some(tid));
        assert!(Tid::from_sql(&Type::TID, &[1, 2, 3]).is_err());
        assert_eq!(tid.to_string(), "(16909060,1286)");
        assert_eq!(
            Tid::block_start(-1),
            Tid {
                block: 0,
                offset: 0
            }
        );
        assert_eq!(Tid::block_start(1 << 40).block, u32::MAX);
    }

    #[test]
    fn token_bucket_makes_callers_wait_for_the_rate() {
        let mut bucket = TokenBucket::new(100.0);
        // Empty at first: 50 rows at 100/s is half a second of debt.
        let wait = bucket.take(50);
        assert!(wait >= Duration::from_millis(450), "{wait:?}");
        assert!(wait <= Duration::from_millis(510), "{wait:?}");
    }
}
