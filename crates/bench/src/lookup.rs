//! `pgseal-bench lookup`: equality lookups on a searchable encrypted column through the proxy,
//! against the same lookups on an indexed plaintext column.
//!
//! One table of `--rows` users carries every e-mail address twice: as `pgseal.email` (sealed in
//! Rust with [`pgseal::Sealer`], loaded with a binary `COPY` straight into PostgreSQL, indexed
//! by `pgseal.blind_index(email)`) and as plain `text` with a btree index. Through the
//! encrypting proxy (a child process, as in `proxy`), a prepared `SELECT id, <column> ... WHERE
//! <column> = $1` looks up random existing addresses, one at a time on one connection; the
//! same plaintext lookup directly on PostgreSQL is the reference. The targets take turns in
//! rounds so that a slow phase of the machine hits them alike. The report gives the mean, p50
//! and p99 latency of each, and the ratio encrypted / plaintext through the proxy, and the
//! plan `EXPLAIN` shows through the proxy.

use std::path::PathBuf;
use std::pin::pin;
use std::time::Instant;

use pgseal::{AuditLog, MasterKeyring, Sealer, Value};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use crate::scratch::{
    cluster_options, encrypting_proxy, install_pgseal, master_key, run_date, Bench, Scratch,
};
use crate::stats::percentile;
use crate::system::{cpu_description, load_average};
use crate::BenchError;

const DATABASE: &str = "lookup_bench";
const TABLE: &str = "bench_users";
const START_MARKER: &str = "<!-- lookup-bench:start -->";
const END_MARKER: &str = "<!-- lookup-bench:end -->";
const BENCH: Bench = Bench {
    name: "lookup",
    what: "the lookup benchmark",
    start_marker: START_MARKER,
    end_marker: END_MARKER,
};
/// Lookups per target between two turns of the other targets.
const ROUND: u32 = 500;

/// Settings of one lookup benchmark run.
#[derive(Debug, Clone)]
pub(crate) struct LookupSettings {
    pub(crate) rows: u32,
    pub(crate) lookups: u32,
    pub(crate) warmup: u32,
    /// The document to update, or `None` to print only.
    pub(crate) doc: Option<PathBuf>,
    pub(crate) command: String,
}

/// What a target sends as `$1` and gets back.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// The address as text; the address comes back as text (through the proxy, decrypted).
    Address,
    /// The blind indexes the library computes (`Sealer::search_terms`); the ciphertext comes
    /// back and the library opens it: what an application using the library in-process does.
    Terms,
}

/// One measured target.
struct Target {
    label: &'static str,
    client: Client,
    statement: Statement,
    kind: Kind,
    micros: Vec<u64>,
}

fn email(i: u32) -> String {
    format!("user{i}@example.com")
}

/// A small deterministic generator (xorshift64*): the same keys in every run, no dependency.
struct Keys(u64);

impl Keys {
    fn next(&mut self, rows: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        1 + u32::try_from(x % u64::from(rows)).unwrap_or(0)
    }
}

/// Runs the benchmark; the cluster and the proxy process stop when this returns or is dropped.
pub(crate) async fn run(settings: LookupSettings) -> Result<(), BenchError> {
    let date = run_date();
    let load = load_average();
    let Scratch {
        cluster,
        admin: _admin,
        client: mut direct,
        postgres_version,
    } = BENCH.scratch(cluster_options(), DATABASE).await?;

    let (keyring, master_key_base64) = master_key();
    BENCH.progress(&format!("sealing and loading {} rows", settings.rows));
    let load_started = Instant::now();
    let sealer = load_table(&mut direct, &keyring, settings.rows).await?;
    let load_seconds = load_started.elapsed().as_secs_f64();

    let work = tempfile::Builder::new()
        .prefix("pgseal-bench-lookup-")
        .tempdir()
        .map_err(|e| BenchError::io("create the benchmark's directory", e))?;
    BENCH.progress("starting the encrypting proxy");
    let (proxy, proxy_url) = encrypting_proxy(
        &cluster,
        DATABASE,
        master_key_base64,
        work.path().join("proxy-encrypted.log"),
    )
    .await?;

    // The plan the proxy's rewrite gets: it must use the blind-index expression index.
    let through_proxy = BENCH.connect(&proxy_url).await?;
    let explain = through_proxy
        .query(
            &format!("EXPLAIN SELECT id, email FROM {TABLE} WHERE email = $1"),
            &[&email(1)],
        )
        .await
        .map_err(|e| BenchError::db("EXPLAIN through the proxy", &e))?;
    let plan: Vec<String> = explain.iter().map(|r| r.get::<_, String>(0)).collect();
    if !plan.iter().any(|l| l.contains("Index Scan")) {
        return Err(BenchError::Parse(format!(
            "the lookup through the proxy does not use the index: {}",
            plan.join(" / ")
        )));
    }
    drop(through_proxy);

    let mut targets = Vec::new();
    let direct_url = cluster.url(DATABASE);
    for (label, url, sql, kind) in [
        (
            "proxy, encrypted column (`pgseal.email`)",
            proxy_url.as_str(),
            format!("SELECT id, email FROM {TABLE} WHERE email = $1"),
            Kind::Address,
        ),
        (
            "proxy, plaintext column (`text`)",
            proxy_url.as_str(),
            format!("SELECT id, email_plain FROM {TABLE} WHERE email_plain = $1"),
            Kind::Address,
        ),
        (
            "PostgreSQL directly, plaintext column",
            direct_url.as_str(),
            format!("SELECT id, email_plain FROM {TABLE} WHERE email_plain = $1"),
            Kind::Address,
        ),
        (
            "PostgreSQL directly, `pgseal.blind_index(email) = ANY($1)` (one `bytea[]` parameter; the library computes the terms and opens the result)",
            direct_url.as_str(),
            format!("SELECT id, email FROM {TABLE} WHERE pgseal.blind_index(email) = ANY($1)"),
            Kind::Terms,
        ),
    ] {
        let client = BENCH.connect(url).await?;
        let statement = client
            .prepare(&sql)
            .await
            .map_err(|e| BenchError::db(format!("preparing the lookup for {label}"), &e))?;
        targets.push(Target {
            label,
            client,
            statement,
            kind,
            micros: Vec::with_capacity(settings.lookups as usize),
        });
    }

    BENCH.progress(&format!(
        "{} warm-up and {} measured lookups per target",
        settings.warmup, settings.lookups
    ));
    let mut keys = Keys(0x9E37_79B9_7F4A_7C15);
    for target in &mut targets {
        for _ in 0..settings.warmup {
            lookup(target, &sealer, keys.next(settings.rows), false).await?;
        }
    }
    let mut done = 0;
    while done < settings.lookups {
        let n = ROUND.min(settings.lookups - done);
        for target in &mut targets {
            for _ in 0..n {
                lookup(target, &sealer, keys.next(settings.rows), true).await?;
            }
        }
        done += n;
    }
    proxy.stop().await;

    let rows: Vec<(&str, Summary)> = targets
        .iter_mut()
        .map(|t| {
            t.micros.sort_unstable();
            (t.label, Summary::of(&t.micros))
        })
        .collect();
    let section = report(
        &settings,
        &date,
        &load,
        &postgres_version,
        load_seconds,
        &plan,
        &rows,
    );
    BENCH.publish(&section, settings.doc.as_deref())?;
    Ok(())
}

/// Creates the table, seals every address with the library, loads it with a binary `COPY`,
/// indexes both columns and analyses the table.
async fn load_table(
    client: &mut Client,
    master: &MasterKeyring,
    rows: u32,
) -> Result<Sealer, BenchError> {
    install_pgseal(client, master).await?;
    let audit = AuditLog::disabled();
    client
        .batch_execute(&format!(
            "CREATE TABLE {TABLE} (id integer NOT NULL, email pgseal.email, email_plain text)"
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
        .copy_in(&format!(
            "COPY {TABLE} (id, email, email_plain) FROM STDIN (FORMAT binary)"
        ))
        .await
        .map_err(|e| BenchError::db(format!("starting COPY into {TABLE}"), &e))?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[Type::INT4, Type::BYTEA, Type::TEXT],
    ));
    for i in 1..=rows {
        let address = email(i);
        let sealed = sealer
            .seal(TABLE, "email", &Value::Text(address.clone()))
            .map_err(|source| BenchError::Pgseal {
                action: "sealing an address",
                source,
            })?;
        let id = i32::try_from(i).unwrap_or(i32::MAX);
        writer
            .as_mut()
            .write(&[&id, &sealed.as_bytes(), &address])
            .await
            .map_err(|e| BenchError::db(format!("copying rows into {TABLE}"), &e))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| BenchError::db(format!("finishing COPY into {TABLE}"), &e))?;
    for statement in [
        format!("CREATE INDEX {TABLE}_email ON {TABLE} (pgseal.blind_index(email))"),
        format!("CREATE INDEX {TABLE}_email_plain ON {TABLE} (email_plain)"),
        format!("VACUUM ANALYZE {TABLE}"),
    ] {
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| BenchError::db(format!("preparing {TABLE}"), &e))?;
    }
    Ok(sealer)
}

/// One lookup of user `key`; checks that exactly that user came back (so a wrong rewrite
/// cannot look fast), and records the latency when `measure`.
async fn lookup(
    target: &mut Target,
    sealer: &Sealer,
    key: u32,
    measure: bool,
) -> Result<(), BenchError> {
    let address = email(key);
    let started = Instant::now();
    let result = match target.kind {
        Kind::Address => target.client.query(&target.statement, &[&address]).await,
        Kind::Terms => {
            let terms = sealer
                .search_terms(TABLE, "email", &Value::Text(address.clone()))
                .map_err(|source| BenchError::Pgseal {
                    action: "computing search terms",
                    source,
                })?;
            target.client.query(&target.statement, &[&terms]).await
        }
    };
    let rows =
        result.map_err(|e| BenchError::db(format!("looking up through {}", target.label), &e))?;
    let found = match (rows.first(), target.kind) {
        (Some(row), Kind::Address) => Some((row.get::<_, i32>(0), row.get::<_, Option<String>>(1))),
        (Some(row), Kind::Terms) => {
            let stored: Option<Vec<u8>> = row.get(1);
            let opened = stored
                .map(|bytes| sealer.open(TABLE, "email", &pgseal::Ciphertext::from_bytes(bytes)))
                .transpose()
                .map_err(|source| BenchError::Pgseal {
                    action: "opening a looked-up address",
                    source,
                })?;
            let text = match opened {
                Some(Value::Text(text)) => Some(text),
                _ => None,
            };
            Some((row.get::<_, i32>(0), text))
        }
        (None, _) => None,
    };
    let elapsed = started.elapsed();
    let expected = i32::try_from(key).unwrap_or(i32::MAX);
    if rows.len() != 1 || found != Some((expected, Some(address))) {
        return Err(BenchError::Parse(format!(
            "{} returned {} rows for user {key}, not exactly that user",
            target.label,
            rows.len(),
        )));
    }
    if measure {
        target
            .micros
            .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }
    Ok(())
}

/// Latency summary in microseconds.
#[derive(Clone, Copy)]
struct Summary {
    mean: f64,
    p50: u64,
    p99: u64,
}

impl Summary {
    fn of(sorted: &[u64]) -> Summary {
        let sum: u64 = sorted.iter().sum();
        Summary {
            mean: sum as f64 / sorted.len().max(1) as f64,
            p50: percentile(sorted, 50.0).unwrap_or(0),
            p99: percentile(sorted, 99.0).unwrap_or(0),
        }
    }
}

fn report(
    settings: &LookupSettings,
    date: &str,
    load: &str,
    postgres_version: &str,
    load_seconds: f64,
    plan: &[String],
    rows: &[(&str, Summary)],
) -> String {
    let mut out = String::new();
    out.push_str(START_MARKER);
    out.push('\n');
    out.push_str("### Equality lookups on an encrypted column (`lookup`)\n\n");
    out.push_str(&format!(
        "Measured {date} on {} (load before the run: {load}), PostgreSQL {postgres_version}, \
         with:\n\n```sh\n{}\n```\n\n",
        cpu_description(),
        settings.command
    ));
    out.push_str(&format!(
        "{} rows; `email pgseal.email` indexed by `pgseal.blind_index(email)` and the same \
         addresses in `email_plain text` with a btree index. Sealing in Rust and loading with \
         a binary COPY took {load_seconds:.1} s. One connection per target, a prepared \
         `SELECT id, <column> ... WHERE <column> = $1` per random existing address \
         ({} measured lookups per target after {} warm-up lookups, targets taking turns every \
         {ROUND}); every lookup is checked to return exactly the right row.\n\n",
        settings.rows, settings.lookups, settings.warmup
    ));
    out.push_str("| target | mean (µs) | p50 (µs) | p99 (µs) |\n|---|---:|---:|---:|\n");
    for (label, s) in rows {
        out.push_str(&format!(
            "| {label} | {:.0} | {} | {} |\n",
            s.mean, s.p50, s.p99
        ));
    }
    if let (Some((_, enc)), Some((_, plain))) = (rows.first(), rows.get(1)) {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        out.push_str(&format!(
            "\nEncrypted / plaintext column, both through the proxy: **{:.2}x** mean, \
             {:.2}x p50, {:.2}x p99 (target ≤ 1.2x).\n",
            ratio(enc.mean, plain.mean),
            ratio(enc.p50 as f64, plain.p50 as f64),
            ratio(enc.p99 as f64, plain.p99 as f64),
        ));
    }
    out.push_str("\n`EXPLAIN` of the encrypted lookup through the proxy:\n\n```\n");
    for line in plan {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("```\n");
    out.push_str(END_MARKER);
    out.push('\n');
    out
}
