//! `pgseal-bench migrate`: `pgseal encrypt-column` on a large table against a plain
//! `UPDATE t SET c = c` rewrite of the same rows, in the same run.
//!
//! One table of `--rows` rows (`id bigint PRIMARY KEY, email text NOT NULL, note text`) in a
//! temporary cluster. The baseline rewrites every row once with `UPDATE t SET email = email` (one
//! statement, the cheapest full rewrite PostgreSQL can do); `VACUUM` then makes the dead versions
//! reusable, and the migration (`pgseal::migrate::encrypt_column`, batches of 1000, no proxy grace
//! since no proxy runs) converts the same column. Reported: both in rows per second and their
//! ratio, the time the cutover held its exclusive lock, and `decrypt-column` back for
//! completeness. No client load runs meanwhile: this is the migration's own cost.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pgseal::migrate::{decrypt_column, encrypt_column, MigrationOptions, NoObserver};
use pgseal::{AuditLog, MasterKey, MasterKeyring};
use tokio_postgres::Client;

use crate::scratch::{cluster_options, install_pgseal, run_date, Bench, Scratch};
use crate::system::{cpu_description, load_average};
use crate::BenchError;

const DATABASE: &str = "migrate_bench";
const START_MARKER: &str = "<!-- migrate-bench:start -->";
const END_MARKER: &str = "<!-- migrate-bench:end -->";
const BENCH: Bench = Bench {
    name: "migrate",
    what: "the migration benchmark",
    start_marker: START_MARKER,
    end_marker: END_MARKER,
};

/// Settings of one run.
#[derive(Debug, Clone)]
pub(crate) struct MigrateSettings {
    pub(crate) rows: u32,
    /// The document to update, or `None` to print only.
    pub(crate) doc: Option<PathBuf>,
    pub(crate) command: String,
}

/// `VACUUM` (which cannot run in a multi-statement string) then a checkpoint, so each measured
/// step starts from the same clean state.
async fn maintain(client: &Client, vacuum: &str) -> Result<(), BenchError> {
    for sql in [vacuum, "CHECKPOINT"] {
        client
            .batch_execute(sql)
            .await
            .map_err(|e| BenchError::db(format!("running {sql}"), &e))?;
    }
    Ok(())
}

fn per_second(rows: u32, elapsed: Duration) -> f64 {
    f64::from(rows) / elapsed.as_secs_f64().max(1e-9)
}

/// Runs the benchmark; the cluster stops when this returns or is dropped.
pub(crate) async fn run(settings: MigrateSettings) -> Result<(), BenchError> {
    let date = run_date();
    let load = load_average();
    // Bound, not ignored: the cluster and the admin connection live until the run ends.
    let Scratch {
        cluster: _cluster,
        admin: _admin,
        mut client,
        postgres_version,
    } = BENCH.scratch(cluster_options(), DATABASE).await?;
    let master = MasterKeyring::new(MasterKey::generate(), Vec::new());
    install_pgseal(&mut client, &master).await?;
    let audit = AuditLog::disabled();
    BENCH.progress(&format!("loading {} rows", settings.rows));
    client
        .batch_execute(&format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, email text NOT NULL, note text);
             INSERT INTO t SELECT i, 'user' || i || '@example.com', 'note ' || i
             FROM generate_series(1, {}) AS i;",
            settings.rows
        ))
        .await
        .map_err(|e| BenchError::db("loading the table", &e))?;
    maintain(&client, "VACUUM ANALYZE t").await?;

    BENCH.progress("baseline: UPDATE t SET email = email");
    let started = Instant::now();
    client
        .batch_execute("UPDATE t SET email = email")
        .await
        .map_err(|e| BenchError::db("the baseline rewrite", &e))?;
    let baseline = started.elapsed();
    maintain(&client, "VACUUM t").await?;

    let options = MigrationOptions {
        proxy_grace: Duration::ZERO,
        ..MigrationOptions::default()
    };
    BENCH.progress("encrypt-column t.email");
    let encrypted = encrypt_column(
        &mut client,
        &master,
        &audit,
        "t",
        "email",
        &options,
        &NoObserver,
    )
    .await
    .map_err(|source| BenchError::Pgseal {
        action: "encrypt-column",
        source,
    })?;
    maintain(&client, "VACUUM t").await?;
    BENCH.progress("decrypt-column t.email");
    let decrypted = decrypt_column(
        &mut client,
        &master,
        &audit,
        "t",
        "email",
        &options,
        &NoObserver,
    )
    .await
    .map_err(|source| BenchError::Pgseal {
        action: "decrypt-column",
        source,
    })?;

    let base_rate = per_second(settings.rows, baseline);
    let enc_rate = per_second(settings.rows, encrypted.elapsed);
    let dec_rate = per_second(settings.rows, decrypted.elapsed);
    let section = format!(
        "{START_MARKER}
### Online column migration (`pgseal encrypt-column`)

Measured {date} on {cpu} (load average before: {load}), PostgreSQL {postgres_version}, one table
of {rows} rows (`email text NOT NULL`), no client load. Command: `{command}`.

| operation | time | rows/s | vs `UPDATE t SET email = email` |
|---|---:|---:|---:|
| `UPDATE t SET email = email` (baseline, one statement) | {b:.1} s | {base_rate:.0} | 1.00 |
| `encrypt-column t.email` (all phases) | {e:.1} s | {enc_rate:.0} | {er:.2} |
| `decrypt-column t.email` (all phases) | {d:.1} s | {dec_rate:.0} | {dr:.2} |

The cutover held the table's `ACCESS EXCLUSIVE` lock for {el} ms (encrypt, {ec} rows converted
under it) and {dl} ms (decrypt, {dc} rows). The baseline is a single statement that neither
reads values out of the server nor encrypts them; the migration reads each batch, seals every
value in pgseal, and writes it back with a compare-and-swap, in batches of 1000 rows that each
commit on their own (the cost of being online and resumable).
{END_MARKER}
",
        cpu = cpu_description(),
        rows = settings.rows,
        command = settings.command,
        b = baseline.as_secs_f64(),
        e = encrypted.elapsed.as_secs_f64(),
        d = decrypted.elapsed.as_secs_f64(),
        er = enc_rate / base_rate,
        dr = dec_rate / base_rate,
        el = encrypted.cutover_lock_held.as_millis(),
        ec = encrypted.rows_at_cutover,
        dl = decrypted.cutover_lock_held.as_millis(),
        dc = decrypted.rows_at_cutover,
    );
    BENCH.publish(&section, settings.doc.as_deref())?;
    Ok(())
}
