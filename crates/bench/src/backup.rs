//! `pgseal-bench backup`: `pgseal backup create`/`restore` against `pg_dump`/`pg_restore` on the
//! same database in the same run, and the encryption layer alone.
//!
//! A temporary cluster gets one database of at least `--size-mb` (default 1024) built with
//! `generate_series` (a table of orders with a primary key and a secondary index). Then, one after
//! the other, each writing to its own file and each restore going into a fresh empty database:
//!
//! * `pg_dump -Fc -f FILE` (gzip level 6 inside pg_dump: the stock tool as people run it);
//! * `pg_dump -Fc -Z0 | zstd -3 -T1` (like for like: pgseal compresses with zstd level 3 too);
//! * `pgseal backup create -o FILE` (pg_dump -Fc -Z0, zstd -3, AES-256-GCM);
//! * `pg_restore --single-transaction --exit-on-error` of the first file, `zstd -dc | pg_restore`
//!   of the second, and `pgseal backup restore` (the same pg_restore flags) of the third.
//!
//! The encryption layer alone (`EncryptWriter` to a sink, `DecryptReader` from memory) is timed
//! on one core with 1 MiB chunks. Ratios are against the baselines of the same run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgseal_backup::{BackupKey, BackupKeyring, DecryptReader, EncryptWriter, Metadata, ObjectKind};
use tokio_postgres::Client;

use crate::scratch::{cluster_options, run_date, Bench, Scratch};
use crate::system::{cpu_description, load_average};
use crate::BenchError;

const DATABASE: &str = "backup_bench";
const START_MARKER: &str = "<!-- backup-bench:start -->";
const END_MARKER: &str = "<!-- backup-bench:end -->";
const BENCH: Bench = Bench {
    name: "backup",
    what: "the backup benchmark",
    start_marker: START_MARKER,
    end_marker: END_MARKER,
};

/// Settings of one run.
#[derive(Debug, Clone)]
pub(crate) struct BackupSettings {
    pub(crate) size_mb: u32,
    /// The document to update, or `None` to print only.
    pub(crate) doc: Option<PathBuf>,
    pub(crate) command: String,
}

/// Runs `script` through `bash -c` with `pipefail` (for pipelines) with the cluster's `PG*` variables, timing it.
fn timed_shell(script: &str, env: &[(String, String)], what: &str) -> Result<Duration, BenchError> {
    BENCH.progress(what);
    let start = Instant::now();
    let out = Command::new("bash")
        .args(["-c", &format!("set -eo pipefail; {script}")])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BenchError::io(format!("run {what}"), e))?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        return Err(BenchError::io(
            format!("run {what}"),
            std::io::Error::other(format!(
                "exit {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        ));
    }
    Ok(elapsed)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

async fn checkpoint(admin: &Client) -> Result<(), BenchError> {
    admin
        .batch_execute("CHECKPOINT")
        .await
        .map_err(|e| BenchError::db("checkpoint", &e))
}

/// The `pgseal` binary of this build profile, built first so it is never stale.
fn pgseal_binary() -> Result<PathBuf, BenchError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    BENCH.progress("building the pgseal binary (release)");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "pgseal-cli", "--bin", "pgseal"])
        .status()
        .map_err(|e| BenchError::io("run cargo build for pgseal", e))?;
    if !status.success() {
        return Err(BenchError::io(
            "build the pgseal binary",
            std::io::Error::other(format!("cargo build exited with {status}")),
        ));
    }
    let exe = std::env::current_exe().map_err(|e| BenchError::io("find this executable", e))?;
    let path = exe
        .parent()
        .map(|dir| dir.join("pgseal"))
        .ok_or_else(|| BenchError::io("find pgseal", std::io::Error::other("no parent dir")))?;
    if !path.is_file() {
        return Err(BenchError::io(
            format!("find {}", path.display()),
            std::io::Error::other("not built"),
        ));
    }
    Ok(path)
}

/// GB/s of sealing and of opening `total` bytes on this thread.
fn encryption_layer(total: usize) -> Result<(f64, f64), BenchError> {
    let key = BackupKey::generate();
    let block = vec![0x5au8; 1 << 20];
    let blocks = total / block.len();
    // Sealing: everything goes to a sink, so only the encryption layer is timed.
    let start = Instant::now();
    let mut writer = EncryptWriter::new(
        std::io::sink(),
        &key,
        ObjectKind::LogicalDump,
        Metadata::now(),
    )
    .map_err(|e| BenchError::io("start sealing", std::io::Error::other(e)))?;
    for _ in 0..blocks {
        writer
            .write_all(&block)
            .map_err(|e| BenchError::io("seal", e))?;
    }
    writer
        .finish()
        .map_err(|e| BenchError::io("finish sealing", std::io::Error::other(e)))?;
    let seal = start.elapsed();

    // Opening: a sealed stream of 256 MiB held in memory, read `total` bytes' worth.
    let sealed_len = 256usize << 20;
    let mut sealed = EncryptWriter::new(Vec::new(), &key, ObjectKind::LogicalDump, Metadata::now())
        .map_err(|e| BenchError::io("start sealing", std::io::Error::other(e)))?;
    for _ in 0..sealed_len / block.len() {
        sealed
            .write_all(&block)
            .map_err(|e| BenchError::io("seal", e))?;
    }
    let sealed = sealed
        .finish()
        .map_err(|e| BenchError::io("finish sealing", std::io::Error::other(e)))?;
    let keyring = BackupKeyring::new(key, Vec::new());
    let rounds = (total / sealed_len).max(1);
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    for _ in 0..rounds {
        let mut reader = DecryptReader::new(&sealed[..], &keyring)
            .map_err(|e| BenchError::io("open", std::io::Error::other(e)))?;
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| BenchError::io("open", e))?;
            if n == 0 {
                break;
            }
        }
    }
    let open = start.elapsed();
    let gb = |bytes: usize, d: Duration| bytes as f64 / 1e9 / d.as_secs_f64().max(1e-9);
    Ok((
        gb(blocks * block.len(), seal),
        gb(rounds * sealed_len, open),
    ))
}

/// Runs the benchmark; the cluster stops when this returns or is dropped.
pub(crate) async fn run(settings: BackupSettings) -> Result<(), BenchError> {
    let date = run_date();
    let load = load_average();
    let pgseal = tokio::task::spawn_blocking(pgseal_binary)
        .await
        .map_err(|e| BenchError::io("build pgseal", std::io::Error::other(e)))??;

    BENCH.progress("measuring the encryption layer alone (one core)");
    let (seal_gbs, open_gbs) = tokio::task::spawn_blocking(|| encryption_layer(2 << 30))
        .await
        .map_err(|e| BenchError::io("encryption layer", std::io::Error::other(e)))??;

    let Scratch {
        cluster,
        admin,
        client,
        postgres_version,
    } = BENCH
        .scratch(
            cluster_options()
                .setting("max_wal_size", "8GB")
                .setting("maintenance_work_mem", "256MB"),
            DATABASE,
        )
        .await?;

    // About 150 bytes per row on disk with the indexes; grown until the target is reached.
    BENCH.progress(&format!(
        "building a database of at least {} MB",
        settings.size_mb
    ));
    client
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, \
             amount numeric(12,2) NOT NULL, status text NOT NULL, note text, \
             created timestamptz NOT NULL)",
        )
        .await
        .map_err(|e| BenchError::db("creating the table", &e))?;
    let target = i64::from(settings.size_mb) << 20;
    let mut next: i64 = 1;
    let batch: i64 = 2_000_000;
    loop {
        let size: i64 = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .map_err(|e| BenchError::db("reading the database size", &e))?
            .get(0);
        if size >= target {
            break;
        }
        client
            .batch_execute(&format!(
                "INSERT INTO orders SELECT g, (g * 7919) % 100000, ((g * 31) % 100000) / 100.0, \
                 (ARRAY['new','paid','shipped','returned'])[1 + g % 4], \
                 'order ' || g || ' ' || md5(g::text), \
                 timestamptz '2024-01-01' + g * interval '1 second' \
                 FROM generate_series({next}::bigint, {}) g",
                next + batch - 1
            ))
            .await
            .map_err(|e| BenchError::db("loading rows", &e))?;
        next += batch;
        if next == 1 + batch {
            client
                .batch_execute("CREATE INDEX orders_customer ON orders (customer)")
                .await
                .map_err(|e| BenchError::db("creating the index", &e))?;
        }
    }
    for sql in ["VACUUM ANALYZE orders", "CHECKPOINT"] {
        client
            .batch_execute(sql)
            .await
            .map_err(|e| BenchError::db("vacuum", &e))?;
    }
    let rows = next - 1;
    let db_size: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .map_err(|e| BenchError::db("reading the database size", &e))?
        .get(0);

    let dir = tempfile::Builder::new()
        .prefix("pgseal-backup-bench-")
        .tempdir()
        .map_err(|e| BenchError::io("create a temporary directory", e))?;
    let plain = dir.path().join("plain.dump");
    let zst = dir.path().join("plain-z0.dump.zst");
    let sealed = dir.path().join("sealed.pgseal");
    let bin = cluster.bin_dir().to_owned();
    let key = BackupKey::generate();
    let key_b64 = key.expose_base64();
    let env = |db: &str| -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), cluster.host().into()),
            ("PGPORT".into(), cluster.port().to_string()),
            ("PGUSER".into(), "postgres".into()),
            ("PGDATABASE".into(), db.into()),
            ("DATABASE_URL".into(), cluster.url(db)),
            ("PGSEAL_BACKUP_KEY".into(), key_b64.to_string()),
            ("PGSEAL_PG_BINDIR".into(), bin.display().to_string()),
        ]
    };
    let has_zstd = Command::new("zstd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let pg_dump = bin.join("pg_dump").display().to_string();
    let pg_restore = bin.join("pg_restore").display().to_string();
    let restore_flags = "--single-transaction --exit-on-error";
    let q = |p: &Path| p.display().to_string();

    let source_env = env(DATABASE);
    // Each variant runs once per round; the second round runs them in reverse order, and the
    // faster of the two counts, so neither the order nor a passing burst of load on this shared
    // machine favours one. A checkpoint before each run starts it with no dirty buffers left by
    // the previous one.
    let dump_steps: Vec<(&str, String)> = {
        let mut steps = vec![("gzip", format!("{pg_dump} -Fc -f {}", q(&plain)))];
        if has_zstd {
            steps.push((
                "zstd",
                format!("{pg_dump} -Fc -Z0 | zstd -3 -T1 -q -f -o {}", q(&zst)),
            ));
        }
        steps.push((
            "pgseal",
            format!(
                "rm -f {out}; {} backup create -o {out}",
                q(&pgseal),
                out = q(&sealed)
            ),
        ));
        steps
    };
    let restore_steps: Vec<(&str, String)> = {
        let mut steps = vec![(
            "gzip",
            format!("{pg_restore} {restore_flags} -d restore_gzip {}", q(&plain)),
        )];
        if has_zstd {
            steps.push((
                "zstd",
                format!(
                    "zstd -dc -q {} | {pg_restore} {restore_flags} -d restore_zstd",
                    q(&zst)
                ),
            ));
        }
        steps.push((
            "pgseal",
            format!("{} backup restore {}", q(&pgseal), q(&sealed)),
        ));
        steps
    };
    let mut dumps: std::collections::HashMap<&str, Duration> = std::collections::HashMap::new();
    let mut restores: std::collections::HashMap<&str, Duration> = std::collections::HashMap::new();
    for round in 0..2 {
        let mut order = dump_steps.clone();
        if round == 1 {
            order.reverse();
        }
        for (name, script) in order {
            checkpoint(&admin).await?;
            let env = source_env.clone();
            let elapsed = tokio::task::spawn_blocking(move || {
                timed_shell(
                    &script,
                    &env,
                    &format!("dump ({name}), round {}", round + 1),
                )
            })
            .await
            .map_err(|e| BenchError::io("dump", std::io::Error::other(e)))??;
            let best = dumps.entry(name).or_insert(elapsed);
            *best = (*best).min(elapsed);
        }
        let mut order = restore_steps.clone();
        if round == 1 {
            order.reverse();
        }
        for (name, script) in order {
            let db = format!("restore_{name}");
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .map_err(|e| BenchError::db("creating a restore target", &e))?;
            checkpoint(&admin).await?;
            let env = env(&db);
            let elapsed = tokio::task::spawn_blocking(move || {
                timed_shell(
                    &script,
                    &env,
                    &format!("restore ({name}), round {}", round + 1),
                )
            })
            .await
            .map_err(|e| BenchError::io("restore", std::io::Error::other(e)))??;
            let best = restores.entry(name).or_insert(elapsed);
            *best = (*best).min(elapsed);
            // The restore must have brought back every row.
            let c = BENCH.connect(&cluster.url(&db)).await?;
            let n: i64 = c
                .query_one("SELECT count(*) FROM orders", &[])
                .await
                .map_err(|e| BenchError::db("counting restored rows", &e))?
                .get(0);
            drop(c);
            if n != rows {
                return Err(BenchError::io(
                    format!("check {db}"),
                    std::io::Error::other(format!("{n} rows restored, {rows} expected")),
                ));
            }
            admin
                .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
                .await
                .map_err(|e| BenchError::db("dropping a restore target", &e))?;
        }
    }
    let get = |m: &std::collections::HashMap<&str, Duration>, k: &str| m.get(k).copied();
    let (dump_gzip, dump_zstd, dump_pgseal) = (
        get(&dumps, "gzip").unwrap_or_default(),
        get(&dumps, "zstd"),
        get(&dumps, "pgseal").unwrap_or_default(),
    );
    let (restore_gzip, restore_zstd, restore_pgseal) = (
        get(&restores, "gzip").unwrap_or_default(),
        get(&restores, "zstd"),
        get(&restores, "pgseal").unwrap_or_default(),
    );

    let s = |d: Duration| d.as_secs_f64();
    let mb = |bytes: u64| bytes as f64 / 1_048_576.0;
    let (zstd_dump_rows, zstd_restore_rows) = match (dump_zstd, restore_zstd) {
        (Some(dz), Some(rz)) => (
            format!(
                "| `pg_dump -Fc -Z0 \\| zstd -3` (like for like, no encryption) | {:.1} s | {:.0} MB | {:.2}x |\n\
                 | **`pgseal backup create`** against like for like | | | **{:.2}x** |\n",
                s(dz),
                mb(file_size(&zst)),
                s(dz) / s(dump_gzip),
                s(dump_pgseal) / s(dz)
            ),
            format!(
                "| `zstd -dc \\| pg_restore` (like for like, no encryption) | {:.1} s | {:.2}x |\n\
                 | **`pgseal backup restore`** against like for like | | **{:.2}x** |\n",
                s(rz),
                s(rz) / s(restore_gzip),
                s(restore_pgseal) / s(rz)
            ),
        ),
        _ => (String::new(), String::new()),
    };
    let section = format!(
        "{START_MARKER}
### Encrypted backups (`pgseal backup`)

Measured {date} on {cpu} (load average before: {load}; the machine is shared with other
builds, so figures are noisy), PostgreSQL {postgres_version}, one database of {db_mb:.0} MB ({rows} rows in one table
with a primary key and a secondary index). Each command ran on its own, one after the other; each
restore went into a fresh empty database with `--single-transaction --exit-on-error`. Two
rounds, the second in reverse order, a `CHECKPOINT` before each run; each figure is the faster
of its two runs.
Command: `{command}`.

| backup | time | file | ratio |
|---|---:|---:|---:|
| `pg_dump -Fc -f FILE` (gzip inside pg_dump) | {dg:.1} s | {gz_mb:.0} MB | 1.00 |
| **`pgseal backup create -o FILE`** (zstd -3 + AES-256-GCM) | {dp:.1} s | {pg_mb:.0} MB | **{dr:.2}x** |
{zstd_dump_rows}
| restore | time | ratio |
|---|---:|---:|
| `pg_restore FILE` | {rg:.1} s | 1.00 |
| **`pgseal backup restore FILE`** | {rp:.1} s | **{rr:.2}x** |
{zstd_restore_rows}
Encryption layer alone, one core, 1 MiB chunks (`EncryptWriter` into a sink, `DecryptReader`
from memory): **sealing {seal_gbs:.2} GB/s, opening {open_gbs:.2} GB/s**.

`pg_dump -Fc` compresses with gzip by default, so the first ratio compares pgseal with the
stock tool as people run it; the like-for-like rows compare with the same pipeline minus
encryption (`pg_dump -Fc -Z0` piped through `zstd -3`, one thread), which isolates what
encryption and pgseal's plumbing add. A restore is dominated by PostgreSQL loading rows and
building indexes; pgseal adds decryption, decompression and a pipe.
{END_MARKER}
",
        cpu = cpu_description(),
        command = settings.command,
        db_mb = mb(u64::try_from(db_size).unwrap_or(0)),
        dg = s(dump_gzip),
        dp = s(dump_pgseal),
        dr = s(dump_pgseal) / s(dump_gzip),
        gz_mb = mb(file_size(&plain)),
        pg_mb = mb(file_size(&sealed)),
        rg = s(restore_gzip),
        rp = s(restore_pgseal),
        rr = s(restore_pgseal) / s(restore_gzip),
    );
    BENCH.publish(&section, settings.doc.as_deref())?;
    drop(cluster);
    Ok(())
}
