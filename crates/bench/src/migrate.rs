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
use pgseal_localpg::{Cluster, ClusterOptions};
use tokio_postgres::{Client, NoTls};

use crate::system::{cpu_description, load_average};
use crate::BenchError;

const DATABASE: &str = "migrate_bench";
const START_MARKER: &str = "<!-- migrate-bench:start -->";
const END_MARKER: &str = "<!-- migrate-bench:end -->";

/// Settings of one run.
#[derive(Debug, Clone)]
pub(crate) struct MigrateSettings {
    pub(crate) rows: u32,
    /// The document to update, or `None` to print only.
    pub(crate) doc: Option<PathBuf>,
    pub(crate) command: String,
}

async fn connect(url: &str) -> Result<Client, BenchError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| BenchError::db("connecting for the migration benchmark", &e))?;
    tokio::spawn(async move {
        // Errors surface on the client's next call.
        let _ = connection.await;
    });
    Ok(client)
}

fn progress(message: &str) {
    eprintln!("pgseal-bench migrate: {message}");
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
    let date = jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string();
    let load = load_average();
    progress("starting a temporary PostgreSQL cluster");
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start(ClusterOptions::new().setting("shared_buffers", "512MB"))
    })
    .await
    .map_err(|e| BenchError::io("start PostgreSQL", std::io::Error::other(e)))??;
    let admin = connect(&cluster.url("postgres")).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .map_err(|e| BenchError::db("creating the benchmark database", &e))?;
    let mut client = connect(&cluster.url(DATABASE)).await?;
    let postgres_version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|e| BenchError::db("reading the server version", &e))?
        .get(0);
    let master = MasterKeyring::new(MasterKey::generate(), Vec::new());
    let audit = AuditLog::disabled();
    pgseal::init(&mut client, &master, &audit)
        .await
        .map_err(|source| BenchError::Pgseal {
            action: "installing the pgseal schema",
            source,
        })?;
    progress(&format!("loading {} rows", settings.rows));
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

    progress("baseline: UPDATE t SET email = email");
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
    progress("encrypt-column t.email");
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
    progress("decrypt-column t.email");
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
    println!("{section}");
    if let Some(doc) = &settings.doc {
        let text = std::fs::read_to_string(doc)
            .map_err(|e| BenchError::io(format!("read {}", doc.display()), e))?;
        let updated = replace_section(&text, &section).map_err(|problem| BenchError::Doc {
            path: doc.clone(),
            problem,
        })?;
        std::fs::write(doc, updated)
            .map_err(|e| BenchError::io(format!("write {}", doc.display()), e))?;
        progress(&format!("updated {}", doc.display()));
    }
    Ok(())
}

/// Puts `section` between the markers, or appends it when the document has none.
fn replace_section(doc: &str, section: &str) -> Result<String, String> {
    match (doc.find(START_MARKER), doc.find(END_MARKER)) {
        (None, None) => Ok(format!("{}\n\n{section}", doc.trim_end_matches('\n'))),
        (Some(start), Some(end)) if start < end && doc.matches(START_MARKER).count() == 1 => {
            let after = end + END_MARKER.len();
            let section = section.strip_suffix('\n').unwrap_or(section);
            Ok(format!("{}{section}{}", &doc[..start], &doc[after..]))
        }
        _ => Err(format!(
            "the markers `{START_MARKER}` and `{END_MARKER}` must appear once each, in that \
             order; fix them by hand and re-run"
        )),
    }
}
