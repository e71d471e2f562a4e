//! `pgseal-bench reencrypt`: online re-encryption throughput against a plain rewrite of the same
//! rows, and client latency through the proxy while it runs.
//!
//! One table of `--rows` rows with an encrypted `pgseal.text` column (sealed in Rust, loaded
//! with a binary `COPY`). In one run:
//!
//! 1. **Baseline**: `UPDATE t SET c = c` rewrites every row in one statement; then `VACUUM`.
//!    For reference (not the target's baseline), `UPDATE t SET c = c::bytea` does the same but
//!    assigns a `bytea`, so the domain's `CHECK` runs on every row, as it does for every real
//!    write (the application's through the proxy, and re-encryption's); then `VACUUM`.
//! 2. **Re-encryption alone**: `keys rotate`, then `pgseal::reencrypt::reencrypt` (the engine
//!    of `pgseal reencrypt`, default batch size, no rate limit) moves every row to the new key;
//!    then `VACUUM`. Ratio: re-encryption rows/s ÷ baseline rows/s.
//! 3. **Client latency**: one client through the encrypting proxy (a child process) does a
//!    paced mix of point reads and updates of the encrypted column, first with nothing else
//!    running (idle), then while a second rotation's re-encryption runs. Ratio: p99 during ÷
//!    p99 idle. Every read is checked against what the client wrote.
//! 4. The same client during a third rotation's re-encryption limited with
//!    `--max-rows-per-second` and smaller batches (`--throttled-rows-per-second`, default
//!    25 000; `--throttled-batch-size`, default 50), as an operator runs it next to live
//!    traffic.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgseal::reencrypt::{reencrypt, ReencryptOptions};
use pgseal::rotation::{rotate, ColumnSelection};
use pgseal::{AuditLog, MasterKey, MasterKeyring, Sealer, Value};
use pgseal_localpg::{Cluster, ClusterOptions};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

use crate::proxy_process::{EncryptedSetup, ProxyProcess};
use crate::stats::percentile;
use crate::system::{cpu_description, load_average};
use crate::BenchError;

const DATABASE: &str = "reencrypt_bench";
const TABLE: &str = "bench_reencrypt";
const START_MARKER: &str = "<!-- reencrypt-bench:start -->";
const END_MARKER: &str = "<!-- reencrypt-bench:end -->";
/// Pause between two client operations: a light load, not a saturating one.
const CLIENT_PAUSE: Duration = Duration::from_millis(4);

/// Settings of one run.
#[derive(Debug, Clone)]
pub(crate) struct ReencryptSettings {
    pub(crate) rows: u32,
    /// Rows per re-encryption batch.
    pub(crate) batch_size: usize,
    /// Length of the idle latency measurement.
    pub(crate) idle_seconds: u32,
    /// Rate limit of the throttled re-encryption phase (0: no such phase).
    pub(crate) throttled_rows_per_second: u32,
    /// Rows per batch in the throttled phase.
    pub(crate) throttled_batch_size: usize,
    /// The document to update, or `None` to print only.
    pub(crate) doc: Option<PathBuf>,
    pub(crate) command: String,
}

fn plaintext(i: u32) -> String {
    format!("customer {i:>9} / account note")
}

/// Runs the benchmark; the cluster and proxy stop when this returns or is dropped.
pub(crate) async fn run(settings: ReencryptSettings) -> Result<(), BenchError> {
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
    let mut direct = connect(&cluster.url(DATABASE)).await?;
    let postgres_version: String = direct
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|e| BenchError::db("reading the server version", &e))?
        .get(0);

    let master = MasterKey::generate();
    let master_key_base64 = master.expose_base64();
    let keyring = MasterKeyring::new(master, Vec::new());
    let audit = AuditLog::disabled();
    progress(&format!("sealing and loading {} rows", settings.rows));
    load_table(&mut direct, &keyring, settings.rows).await?;

    // 1. Baseline.
    progress("baseline: UPDATE t SET c = c");
    let started = Instant::now();
    let updated = direct
        .execute(&format!("UPDATE {TABLE} SET c = c"), &[])
        .await
        .map_err(|e| BenchError::db("the baseline UPDATE", &e))?;
    let baseline_seconds = started.elapsed().as_secs_f64();
    vacuum(&direct).await?;
    progress("reference: UPDATE t SET c = c::bytea");
    let started = Instant::now();
    let checked_rows = direct
        .execute(&format!("UPDATE {TABLE} SET c = c::bytea"), &[])
        .await
        .map_err(|e| BenchError::db("the domain-checked UPDATE", &e))?;
    let checked_seconds = started.elapsed().as_secs_f64();
    vacuum(&direct).await?;

    // 2. Re-encryption alone.
    progress("re-encryption alone");
    rotate_all(&mut direct, &keyring, &audit).await?;
    let started = Instant::now();
    let report = reencrypt(
        &mut direct,
        &keyring,
        &audit,
        &ColumnSelection::All,
        &ReencryptOptions {
            batch_size: settings.batch_size,
            ..ReencryptOptions::default()
        },
        &mut |_| {},
    )
    .await
    .map_err(|source| BenchError::Pgseal {
        action: "re-encrypting",
        source,
    })?;
    let reencrypt_seconds = started.elapsed().as_secs_f64();
    let reencrypted = report.rewritten();
    if reencrypted != u64::from(settings.rows) {
        return Err(BenchError::Parse(format!(
            "re-encryption rewrote {reencrypted} rows, not {}",
            settings.rows
        )));
    }
    vacuum(&direct).await?;

    // 3. Client latency, idle then during a re-encryption.
    let work = tempfile::Builder::new()
        .prefix("pgseal-bench-reencrypt-")
        .tempdir()
        .map_err(|e| BenchError::io("create the benchmark's directory", e))?;
    progress("starting the encrypting proxy");
    let setup = EncryptedSetup {
        control_url: cluster.url(DATABASE),
        master_key_base64,
    };
    let proxy = ProxyProcess::start(
        cluster.port(),
        Some(&setup),
        work.path().join("proxy-encrypted.log"),
    )
    .await?;
    let proxy_url = format!(
        "host=127.0.0.1 port={} user={} dbname={DATABASE}",
        proxy.port(),
        pgseal_localpg::SUPERUSER
    );
    let client = connect(&proxy_url).await?;
    let mut client_load = ClientLoad::new(client, settings.rows);

    progress(&format!("client load, idle, {} s", settings.idle_seconds));
    let stop = Arc::new(AtomicBool::new(false));
    let timer = {
        let stop = Arc::clone(&stop);
        let seconds = settings.idle_seconds;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(u64::from(seconds))).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let idle = client_load.run(&stop).await?;
    let _ = timer.await;

    progress("client load during a re-encryption");
    rotate_all(&mut direct, &keyring, &audit).await?;
    stop.store(false, Ordering::Relaxed);
    let busy_stop = Arc::clone(&stop);
    let load_task = tokio::spawn(async move {
        let result = client_load.run(&busy_stop).await;
        (client_load, result)
    });
    let started = Instant::now();
    let during_report = reencrypt(
        &mut direct,
        &keyring,
        &audit,
        &ColumnSelection::All,
        &ReencryptOptions {
            batch_size: settings.batch_size,
            ..ReencryptOptions::default()
        },
        &mut |_| {},
    )
    .await;
    let during_seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (client_load, during) = load_task
        .await
        .map_err(|e| BenchError::io("the client load", std::io::Error::other(e)))?;
    let during = during?;
    let during_report = during_report.map_err(|source| BenchError::Pgseal {
        action: "re-encrypting under load",
        source,
    })?;

    // 4. The same, with the re-encryption throttled as an operator runs it next to live
    // traffic: the latency cost of a rate the machine has room for.
    let throttled = if settings.throttled_rows_per_second > 0 {
        progress(&format!(
            "client load during a re-encryption limited to {} rows/s",
            settings.throttled_rows_per_second
        ));
        rotate_all(&mut direct, &keyring, &audit).await?;
        vacuum(&direct).await?;
        stop.store(false, Ordering::Relaxed);
        let mut client_load = client_load;
        let busy_stop = Arc::clone(&stop);
        let load_task = tokio::spawn(async move { client_load.run(&busy_stop).await });
        let started = Instant::now();
        let report = reencrypt(
            &mut direct,
            &keyring,
            &audit,
            &ColumnSelection::All,
            &ReencryptOptions {
                batch_size: settings.throttled_batch_size,
                max_rows_per_second: Some(f64::from(settings.throttled_rows_per_second)),
                ..ReencryptOptions::default()
            },
            &mut |_| {},
        )
        .await;
        let seconds = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let phase = load_task
            .await
            .map_err(|e| BenchError::io("the client load", std::io::Error::other(e)))??;
        let report = report.map_err(|source| BenchError::Pgseal {
            action: "re-encrypting with a rate limit",
            source,
        })?;
        Some(Throttled {
            phase,
            rewritten: report.rewritten(),
            seconds,
        })
    } else {
        None
    };
    proxy.stop().await;

    let section = report_section(
        &settings,
        &Figures {
            date,
            load,
            postgres_version,
            baseline_rows: updated,
            baseline_seconds,
            checked_rows,
            checked_seconds,
            reencrypted,
            reencrypt_seconds,
            idle,
            during,
            during_rewritten: during_report.rewritten(),
            during_seconds,
            throttled,
        },
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

async fn rotate_all(
    client: &mut Client,
    keyring: &MasterKeyring,
    audit: &AuditLog,
) -> Result<(), BenchError> {
    rotate(client, keyring, audit, &ColumnSelection::All, false)
        .await
        .map_err(|source| BenchError::Pgseal {
            action: "rotating the data key",
            source,
        })?;
    Ok(())
}

async fn vacuum(client: &Client) -> Result<(), BenchError> {
    // Two statements: a multi-statement string runs as one transaction, which VACUUM refuses.
    for statement in [format!("VACUUM ANALYZE {TABLE}"), "CHECKPOINT".to_owned()] {
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| BenchError::db(format!("vacuuming {TABLE}"), &e))?;
    }
    Ok(())
}

/// Creates the table, seals every value with the library and loads it with a binary `COPY`.
async fn load_table(
    client: &mut Client,
    master: &MasterKeyring,
    rows: u32,
) -> Result<(), BenchError> {
    let audit = AuditLog::disabled();
    pgseal::init(client, master, &audit)
        .await
        .map_err(|source| BenchError::Pgseal {
            action: "installing the pgseal schema",
            source,
        })?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {TABLE} (id integer PRIMARY KEY, c pgseal.text)"
        ))
        .await
        .map_err(|e| BenchError::db(format!("creating {TABLE}"), &e))?;
    let sealer = Sealer::new(client, master.clone(), audit)
        .await
        .map_err(|source| BenchError::Pgseal {
            action: "creating the encrypted column's keys",
            source,
        })?;
    let sink = client
        .copy_in(&format!("COPY {TABLE} (id, c) FROM STDIN (FORMAT binary)"))
        .await
        .map_err(|e| BenchError::db(format!("starting COPY into {TABLE}"), &e))?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::INT4, Type::BYTEA]));
    for i in 1..=rows {
        let sealed = sealer
            .seal(TABLE, "c", &Value::Text(plaintext(i)))
            .map_err(|source| BenchError::Pgseal {
                action: "sealing a value",
                source,
            })?;
        let id = i32::try_from(i).unwrap_or(i32::MAX);
        writer
            .as_mut()
            .write(&[&id, &sealed.as_bytes()])
            .await
            .map_err(|e| BenchError::db(format!("copying rows into {TABLE}"), &e))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| BenchError::db(format!("finishing COPY into {TABLE}"), &e))?;
    vacuum(client).await
}

/// A paced client through the proxy: alternately reads a random row and updates one,
/// checking every read against what it knows of the row.
struct ClientLoad {
    client: Client,
    rows: u32,
    state: u64,
    written: HashMap<u32, String>,
    counter: u64,
}

/// Latencies of one phase, in microseconds, sorted.
struct Phase {
    micros: Vec<u64>,
}

impl Phase {
    fn p(&self, pct: f64) -> u64 {
        percentile(&self.micros, pct).unwrap_or(0)
    }
}

impl ClientLoad {
    fn new(client: Client, rows: u32) -> Self {
        ClientLoad {
            client,
            rows,
            state: 0x9E37_79B9_7F4A_7C15,
            written: HashMap::new(),
            counter: 0,
        }
    }

    fn next_id(&mut self) -> u32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        1 + u32::try_from(x % u64::from(self.rows)).unwrap_or(0)
    }

    async fn run(&mut self, stop: &AtomicBool) -> Result<Phase, BenchError> {
        let mut micros = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let id = self.next_id();
            let key = i32::try_from(id).unwrap_or(i32::MAX);
            self.counter += 1;
            let started = Instant::now();
            if self.counter.is_multiple_of(2) {
                let text = format!("updated {} by the client", self.counter);
                self.client
                    .execute(
                        &format!("UPDATE {TABLE} SET c = $1 WHERE id = $2"),
                        &[&text, &key],
                    )
                    .await
                    .map_err(|e| BenchError::db("a client update through the proxy", &e))?;
                micros.push(elapsed_micros(started));
                self.written.insert(id, text);
            } else {
                let row = self
                    .client
                    .query_one(&format!("SELECT c FROM {TABLE} WHERE id = $1"), &[&key])
                    .await
                    .map_err(|e| BenchError::db("a client read through the proxy", &e))?;
                micros.push(elapsed_micros(started));
                let got: String = row.get(0);
                let expected = self
                    .written
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| plaintext(id));
                if got != expected {
                    return Err(BenchError::Parse(format!(
                        "row {id} read back something other than what was written"
                    )));
                }
            }
            tokio::time::sleep(CLIENT_PAUSE).await;
        }
        micros.sort_unstable();
        Ok(Phase { micros })
    }
}

fn elapsed_micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

struct Figures {
    date: String,
    load: String,
    postgres_version: String,
    baseline_rows: u64,
    baseline_seconds: f64,
    /// `UPDATE t SET c = c::bytea`: the same rewrite with the domain's `CHECK` on every row.
    checked_rows: u64,
    checked_seconds: f64,
    reencrypted: u64,
    reencrypt_seconds: f64,
    idle: Phase,
    during: Phase,
    during_rewritten: u64,
    during_seconds: f64,
    throttled: Option<Throttled>,
}

/// The client's latency during a rate-limited re-encryption.
struct Throttled {
    phase: Phase,
    rewritten: u64,
    seconds: f64,
}

// Row counts and microseconds are far below 2^52: the float conversions are exact.
#[allow(clippy::cast_precision_loss)]
fn report_section(settings: &ReencryptSettings, f: &Figures) -> String {
    let rate = |rows: u64, secs: f64| rows as f64 / secs.max(1e-9);
    let baseline_rate = rate(f.baseline_rows, f.baseline_seconds);
    let checked_rate = rate(f.checked_rows, f.checked_seconds);
    let reencrypt_rate = rate(f.reencrypted, f.reencrypt_seconds);
    let during_rate = rate(f.during_rewritten, f.during_seconds);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mut out = String::new();
    out.push_str(START_MARKER);
    out.push('\n');
    out.push_str("### Online re-encryption (`reencrypt`)\n\n");
    out.push_str(&format!(
        "Measured {} on {} (load before the run: {}), PostgreSQL {}, with:\n\n```sh\n{}\n```\n\n",
        f.date,
        cpu_description(),
        f.load,
        f.postgres_version,
        settings.command
    ));
    out.push_str(&format!(
        "{} rows of `(id integer PRIMARY KEY, c pgseal.text)` (30-byte plaintexts). The baseline \
         rewrites every row with one `UPDATE t SET c = c`; re-encryption is `pgseal reencrypt`'s \
         engine after `keys rotate` (batches of {}, compare-and-swap, one transaction per \
         batch, no rate limit). `VACUUM` runs between phases.\n\n",
        settings.rows, settings.batch_size
    ));
    out.push_str("| rewrite of every row | rows | seconds | rows/s |\n|---|---:|---:|---:|\n");
    out.push_str(&format!(
        "| `UPDATE t SET c = c` (baseline) | {} | {:.1} | {:.0} |\n",
        f.baseline_rows, f.baseline_seconds, baseline_rate
    ));
    out.push_str(&format!(
        "| `UPDATE t SET c = c::bytea` (reference: domain `CHECK` per row) | {} | {:.1} | {:.0} |\n",
        f.checked_rows, f.checked_seconds, checked_rate
    ));
    out.push_str(&format!(
        "| `pgseal reencrypt`, alone | {} | {:.1} | {:.0} |\n",
        f.reencrypted, f.reencrypt_seconds, reencrypt_rate
    ));
    out.push_str(&format!(
        "| `pgseal reencrypt`, with the client below | {} | {:.1} | {:.0} |\n",
        f.during_rewritten, f.during_seconds, during_rate
    ));
    out.push_str(&format!(
        "\nRe-encryption / baseline: **{:.2}** (target ≥ 0.5). Re-encryption / domain-checked \
         rewrite: {:.2}.\n\n",
        ratio(reencrypt_rate, baseline_rate),
        ratio(reencrypt_rate, checked_rate)
    ));
    out.push_str(
        "How to read it: the baseline is the cheapest possible rewrite (one statement, no data \
         leaves the server). Re-encryption does the same heap and index writes, plus: a count \
         and a final check that each scan the column, a TID range scan that ships every row \
         needing work to pgseal, an XAES-256-GCM open and seal per value (in pgseal, overlapped \
         with the server's work on the previous range), and per batch one compare-and-swap \
         `UPDATE` that joins the batch's `ctid`s (binary `tid`s, one TID lookup per row) and \
         old ciphertexts. Its new values are `bytea` assigned to the column's domain, so \
         PostgreSQL runs the domain's `CHECK` (`pgseal.is_ciphertext`) on each, which \
         `SET c = c` skips (the value already has the domain's type) but every real write pays. \
         The `c = c::bytea` reference is the like-for-like rewrite: it pays that `CHECK` and, \
         like re-encryption, runs after a `VACUUM` (into the space the previous rewrite freed), \
         whereas the baseline runs first, on the freshly loaded table, which it must extend. \
         All run on the same 2 \
         cores as the server, so the ratio moves with the machine's other load (see the load \
         average above).\n\n",
    );
    out.push_str(&format!(
        "Client through the encrypting proxy: one connection alternating a point read and a \
         point update of `c`, with a {} ms pause between operations; every read is checked.\n\n",
        CLIENT_PAUSE.as_millis()
    ));
    out.push_str(
        "| phase | operations | p50 (µs) | p99 (µs) | max (µs) |\n|---|---:|---:|---:|---:|\n",
    );
    let throttled_label = f.throttled.as_ref().map(|t| {
        format!(
            "during re-encryption at `--max-rows-per-second {} --batch-size {}` ({} rows in {:.1} s, {:.0} rows/s)",
            settings.throttled_rows_per_second,
            settings.throttled_batch_size,
            t.rewritten,
            t.seconds,
            rate(t.rewritten, t.seconds)
        )
    });
    let mut phases = vec![
        ("idle".to_owned(), &f.idle),
        ("during re-encryption, unthrottled".to_owned(), &f.during),
    ];
    if let (Some(t), Some(label)) = (&f.throttled, throttled_label) {
        phases.push((label, &t.phase));
    }
    for (label, phase) in phases {
        out.push_str(&format!(
            "| {label} | {} | {} | {} | {} |\n",
            phase.micros.len(),
            phase.p(50.0),
            phase.p(99.0),
            phase.micros.last().copied().unwrap_or(0)
        ));
    }
    out.push_str(&format!(
        "\nClient p99 during / idle: **{:.2}x** unthrottled",
        ratio(f.during.p(99.0) as f64, f.idle.p(99.0) as f64)
    ));
    if let Some(t) = &f.throttled {
        out.push_str(&format!(
            ", **{:.2}x** at {} rows/s",
            ratio(t.phase.p(99.0) as f64, f.idle.p(99.0) as f64),
            settings.throttled_rows_per_second
        ));
    }
    out.push_str(
        " (target ≤ 2x). Unthrottled, re-encryption, PostgreSQL, the proxy and the client \
         compete for the same 2 cores; the rate limit is how it is meant to run next to live \
         traffic.\n",
    );
    out.push_str(END_MARKER);
    out.push('\n');
    out
}

/// Puts `section` in place of the marked section of `doc`, or appends it.
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

async fn connect(url: &str) -> Result<Client, BenchError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| BenchError::db("connecting for the re-encryption benchmark", &e))?;
    tokio::spawn(async move {
        // Errors surface on the client's next call.
        let _ = connection.await;
    });
    Ok(client)
}

fn progress(message: &str) {
    eprintln!("pgseal-bench reencrypt: {message}");
}
