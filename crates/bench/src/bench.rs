//! `pgseal-bench proxy`: sets every target up, runs pgbench against each, measures memory and
//! writes the report.

use std::path::{Path, PathBuf};

use pgseal::{MasterKey, MasterKeyring};
use pgseal_localpg::{Cluster, ClusterOptions};
use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};

use crate::pgbench::{
    copy_select_script, copy_tpcb_script, Pgbench, Script, DATABASE, PLAIN_ACCOUNTS,
    SEALED_ACCOUNTS,
};
use crate::pgbouncer::Pgbouncer;
use crate::proxy_process::{EncryptedSetup, ProxyProcess};
use crate::report::{replace_section, Mode, Outcome, Report, RssRow, RunResult, Target, Workload};
use crate::rss::{rss_with_idle_clients, vm_rss_kib};
use crate::serve::ENCRYPTION_BUILT;
use crate::system::{cpu_description, load_average};
use crate::BenchError;

/// Settings of one benchmark run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) seconds: u32,
    pub(crate) warmup_seconds: u32,
    pub(crate) scale: u32,
    pub(crate) clients: u32,
    pub(crate) threads: u32,
    pub(crate) idle_clients: usize,
    /// How many times every target × mode × workload runs; the report gives medians.
    pub(crate) rounds: u32,
    /// The document to update, or `None` to print only.
    pub(crate) doc: Option<PathBuf>,
    /// The command line, as the report shows it.
    pub(crate) command: String,
}

/// Why (d) was not run, when it was not.
const NOT_BUILT: &str = "encryption layer not built";

/// Runs everything; every process and directory it starts is stopped or removed when this
/// returns or is dropped (Ctrl-C).
pub(crate) async fn run(settings: Settings) -> Result<(), BenchError> {
    let date = jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string();
    let load = load_average();

    progress("starting a temporary PostgreSQL cluster");
    let max_connections = (settings.idle_clients + 2 * settings.clients as usize + 50).to_string();
    let cluster = tokio::task::spawn_blocking(move || {
        Cluster::start(
            ClusterOptions::new()
                .setting("max_connections", max_connections)
                // Room for both account tables, so every target reads from shared buffers.
                .setting("shared_buffers", "512MB"),
        )
    })
    .await
    .map_err(|e| BenchError::io("start PostgreSQL", std::io::Error::other(e)))??;
    let pgbench = Pgbench::in_dir(cluster.bin_dir(), settings.clients, settings.threads)?;
    let admin = connect(&cluster.url("postgres")).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .map_err(|e| BenchError::db("creating the benchmark database", &e))?;
    let mut client = connect(&cluster.url(DATABASE)).await?;
    let postgres_version = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|e| BenchError::db("reading the server version", &e))?
        .get::<_, String>(0);
    let pgbouncer_version = Pgbouncer::version()?;

    progress(&format!("pgbench -i -s {}", settings.scale));
    pgbench.initialize(cluster.port(), settings.scale).await?;

    let work = tempfile::Builder::new()
        .prefix("pgseal-bench-")
        .tempdir()
        .map_err(|e| BenchError::io("create the benchmark's directory", e))?;
    let scripts = CopyScripts::write(work.path(), settings.scale)?;
    progress("creating the plaintext copy of pgbench_accounts");
    crate::sealed::create_plain_accounts(&client).await?;

    let encrypted_setup = if ENCRYPTION_BUILT {
        progress("creating the encrypted copy of pgbench_accounts");
        let master = MasterKey::generate();
        let master_key_base64 = master.expose_base64();
        let keyring = MasterKeyring::new(master, Vec::new());
        crate::sealed::create_sealed_accounts(&mut client, &keyring, settings.scale).await?;
        Some(EncryptedSetup {
            control_url: cluster.url(DATABASE),
            master_key_base64,
        })
    } else {
        None
    };

    progress("starting pgbouncer and the proxies");
    let pool = settings.idle_clients + settings.clients as usize + 10;
    let bouncer = Pgbouncer::start(cluster.port(), pool)?;
    let mut rss = Vec::new();
    let (encrypted_proxy, encrypted_unavailable) = match &encrypted_setup {
        None => (None, Some(NOT_BUILT.to_owned())),
        Some(setup) => {
            match ProxyProcess::start(
                cluster.port(),
                Some(setup),
                work.path().join("proxy-encrypted.log"),
            )
            .await
            {
                Ok(p) => match crate::sealed::verify_decryption(&client, p.port()).await {
                    Ok(()) => (Some(p), None),
                    Err(why) => {
                        p.stop().await;
                        (
                            None,
                            Some(format!("the encrypting proxy failed a check: {why}")),
                        )
                    }
                },
                Err(err) => (None, Some(err.to_string())),
            }
        }
    };
    if let Some(p) = &encrypted_proxy {
        rss.push(
            measure_rss(
                "(c), (c2), (d) pgseal proxy",
                "fresh",
                p.port(),
                p.pid(),
                &settings,
            )
            .await,
        );
    }

    if settings.warmup_seconds > 0 {
        progress(&format!("warming up for {} s", settings.warmup_seconds));
        let _ = pgbench
            .run(
                cluster.port(),
                Mode::Prepared,
                &Script::SelectOnly,
                settings.warmup_seconds,
                work.path(),
                "warmup",
            )
            .await?;
    }

    let mut results = Vec::new();
    let mut run_number = 0;
    let runs_per_round = Workload::ALL.len() * Mode::ALL.len() * Target::ALL.len();
    let total_runs = runs_per_round * settings.rounds as usize;
    for round in 0..settings.rounds {
        for workload in Workload::ALL {
            for mode in Mode::ALL {
                for target in targets_in_run_order(round) {
                    run_number += 1;
                    let (port, script) = match target {
                        Target::Direct => (Some(cluster.port()), builtin(workload)),
                        Target::Pgbouncer => (Some(bouncer.port()), builtin(workload)),
                        // (c), (c2) and (d) share one process: the proxy as `pgseal proxy`
                        // runs it, encryption layer included, whatever the tables hold.
                        Target::Proxy => (
                            encrypted_proxy.as_ref().map(ProxyProcess::port),
                            builtin(workload),
                        ),
                        Target::ProxyPlainCopy => (
                            encrypted_proxy.as_ref().map(ProxyProcess::port),
                            scripts.plain(workload),
                        ),
                        Target::ProxyEncrypted => (
                            encrypted_proxy.as_ref().map(ProxyProcess::port),
                            scripts.sealed(workload),
                        ),
                    };
                    let outcome = match port {
                        None => Outcome::Unavailable(
                            encrypted_unavailable
                                .clone()
                                .unwrap_or_else(|| NOT_BUILT.to_owned()),
                        ),
                        Some(port) => {
                            progress(&format!(
                                "round {}/{}, run {run_number}/{total_runs}: {} -M {} {} for {} s",
                                round + 1,
                                settings.rounds,
                                target.label(),
                                mode.flag(),
                                workload.label(),
                                settings.seconds
                            ));
                            reset_between_runs(&client).await?;
                            pgbench
                                .run(
                                    port,
                                    mode,
                                    &script,
                                    settings.seconds,
                                    work.path(),
                                    &format!("run{run_number}"),
                                )
                                .await?
                        }
                    };
                    if let Outcome::Failed(why) = &outcome {
                        progress(&format!("  failed: {why}"));
                    }
                    results.push(RunResult {
                        round,
                        target,
                        mode,
                        workload,
                        outcome,
                    });
                }
            }
        }
    }

    progress("measuring memory with idle clients");
    if let Some(p) = &encrypted_proxy {
        rss.push(
            measure_rss(
                "(c), (c2), (d) pgseal proxy",
                "after the pgbench runs",
                p.port(),
                p.pid(),
                &settings,
            )
            .await,
        );
    }
    rss.push(
        measure_rss(
            "(b) pgbouncer, for comparison",
            "after the pgbench runs",
            bouncer.port(),
            bouncer.pid(),
            &settings,
        )
        .await,
    );

    progress("stopping");
    if let Some(p) = encrypted_proxy {
        p.stop().await;
    }
    drop(bouncer);
    drop(client);
    drop(admin);
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .map_err(|e| BenchError::io("stop PostgreSQL", std::io::Error::other(e)))??;
    close(work)?;

    let script_texts = vec![
        (
            "(d) select-only",
            copy_select_script(SEALED_ACCOUNTS, settings.scale),
        ),
        (
            "(d) read-write",
            copy_tpcb_script(SEALED_ACCOUNTS, settings.scale),
        ),
    ];
    let report = Report {
        command: settings.command.clone(),
        date,
        cpu: cpu_description(),
        load_average: load,
        load_average_after: load_average(),
        postgres_version,
        pgbouncer_version,
        seconds: settings.seconds,
        scale: settings.scale,
        clients: settings.clients,
        threads: settings.threads,
        idle_clients: settings.idle_clients,
        rounds: settings.rounds,
        results,
        rss,
        scripts: script_texts,
    };
    let section = report.to_markdown();
    println!("{section}");
    if let Some(path) = &settings.doc {
        update_doc(path, &section)?;
        progress(&format!("updated {}", path.display()));
    }
    Ok(())
}

/// The script files of (d) and (c2).
struct CopyScripts {
    sealed_select: PathBuf,
    sealed_tpcb: PathBuf,
    plain_select: PathBuf,
    plain_tpcb: PathBuf,
}

impl CopyScripts {
    fn write(dir: &Path, scale: u32) -> Result<Self, BenchError> {
        let scripts = CopyScripts {
            sealed_select: dir.join("sealed-select.sql"),
            sealed_tpcb: dir.join("sealed-tpcb.sql"),
            plain_select: dir.join("plain-select.sql"),
            plain_tpcb: dir.join("plain-tpcb.sql"),
        };
        write(
            &scripts.sealed_select,
            &copy_select_script(SEALED_ACCOUNTS, scale),
        )?;
        write(
            &scripts.sealed_tpcb,
            &copy_tpcb_script(SEALED_ACCOUNTS, scale),
        )?;
        write(
            &scripts.plain_select,
            &copy_select_script(PLAIN_ACCOUNTS, scale),
        )?;
        write(
            &scripts.plain_tpcb,
            &copy_tpcb_script(PLAIN_ACCOUNTS, scale),
        )?;
        Ok(scripts)
    }

    fn sealed(&self, workload: Workload) -> Script {
        Script::File(match workload {
            Workload::SelectOnly => self.sealed_select.clone(),
            Workload::ReadWrite => self.sealed_tpcb.clone(),
        })
    }

    fn plain(&self, workload: Workload) -> Script {
        Script::File(match workload {
            Workload::SelectOnly => self.plain_select.clone(),
            Workload::ReadWrite => self.plain_tpcb.clone(),
        })
    }
}

/// The targets in the order they run in `round`: [`Target::ALL`] rotated left by one place per
/// round, so that over five rounds each target runs once in each position and drift over the
/// benchmark (table bloat, checkpoints, other load on the machine) does not always land on the
/// same target.
fn targets_in_run_order(round: u32) -> [Target; 5] {
    let mut order = Target::ALL;
    let places = round as usize % order.len();
    order.rotate_left(places);
    order
}

fn builtin(workload: Workload) -> Script {
    match workload {
        Workload::SelectOnly => Script::SelectOnly,
        Workload::ReadWrite => Script::TpcbLike,
    }
}

/// What pgbench's own pre-run vacuum does (`-n` turns it off in the runs, so that it happens
/// here, directly and identically for every target), plus a checkpoint so no run pays for the
/// previous one's dirty pages.
async fn reset_between_runs(client: &Client) -> Result<(), BenchError> {
    // One statement per call: VACUUM cannot run inside the implicit transaction of a
    // multi-statement query.
    for statement in [
        "VACUUM pgbench_branches",
        "VACUUM pgbench_tellers",
        "TRUNCATE pgbench_history",
        "CHECKPOINT",
    ] {
        client
            .batch_execute(statement)
            .await
            .map_err(|e| BenchError::db(format!("running {statement} between runs"), &e))?;
    }
    Ok(())
}

async fn measure_rss(
    process: &str,
    when: &'static str,
    port: u16,
    pid: u32,
    settings: &Settings,
) -> RssRow {
    let idle_kib = vm_rss_kib(pid).ok();
    let with_clients_kib = rss_with_idle_clients(port, pid, settings.idle_clients)
        .await
        .map_err(|e| e.to_string());
    RssRow {
        process: process.to_owned(),
        when,
        idle_kib,
        with_clients_kib,
    }
}

async fn connect(url: &str) -> Result<Client, BenchError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| BenchError::db("connecting to the temporary cluster", &e))?;
    tokio::spawn(async move {
        // Errors surface on the client's next call; nothing to add here.
        let _ = connection.await;
    });
    Ok(client)
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|e| BenchError::io(format!("write {}", path.display()), e))
}

fn close(dir: TempDir) -> Result<(), BenchError> {
    let path = dir.path().to_owned();
    dir.close()
        .map_err(|e| BenchError::io(format!("remove {}", path.display()), e))
}

/// Replaces the marked section of `path` (or appends it), leaving the rest untouched.
fn update_doc(path: &Path, section: &str) -> Result<(), BenchError> {
    let doc = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(BenchError::io(format!("read {}", path.display()), e)),
    };
    let updated = replace_section(&doc, section).map_err(|problem| BenchError::Doc {
        path: path.to_owned(),
        problem,
    })?;
    write(path, &updated)
}

fn progress(message: &str) {
    eprintln!("pgseal-bench: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_order_rotates_by_one_target_per_round() {
        assert_eq!(targets_in_run_order(0), Target::ALL);
        assert_eq!(
            targets_in_run_order(1),
            [
                Target::Pgbouncer,
                Target::Proxy,
                Target::ProxyPlainCopy,
                Target::ProxyEncrypted,
                Target::Direct,
            ]
        );
        // After as many rounds as there are targets, the order starts over.
        assert_eq!(targets_in_run_order(5), Target::ALL);
    }

    #[test]
    fn over_five_rounds_each_target_runs_once_in_each_position() {
        for target in Target::ALL {
            let mut positions: Vec<usize> = (0..5)
                .filter_map(|round| {
                    targets_in_run_order(round)
                        .iter()
                        .position(|&t| t == target)
                })
                .collect();
            positions.sort_unstable();
            assert_eq!(positions, vec![0, 1, 2, 3, 4], "{target:?}");
        }
    }
}
