//! Running pgbench: initialisation, one measured run, and the scripts of target (d).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::error::tail;
use crate::report::{Measurement, Mode, Outcome};
use crate::stats::{parse_summary, Latencies};
use crate::BenchError;

/// The database every target serves.
pub(crate) const DATABASE: &str = "bench";
/// The user pgbench connects as (trust authentication everywhere).
pub(crate) const USER: &str = "postgres";

/// The encrypted copy of `pgbench_accounts` used by target (d).
pub(crate) const SEALED_ACCOUNTS: &str = "pgbench_accounts_sealed";

/// The plaintext copy used by the control target (c2): same rows and same scripts as (d),
/// with a plain `text` filler, so (d)/(c2) isolates what encryption itself costs.
pub(crate) const PLAIN_ACCOUNTS: &str = "pgbench_accounts_plain";

/// The string the read-write script of (d) writes into the encrypted column.
const UPDATED_FILLER: &str = "updated by pgbench through the pgseal proxy";

/// What one run executes.
#[derive(Debug, Clone)]
pub(crate) enum Script {
    /// `-S`: pgbench's builtin select-only script.
    SelectOnly,
    /// `-b tpcb-like`: pgbench's builtin read-write script.
    TpcbLike,
    /// `-f FILE`: a script of our own.
    File(PathBuf),
}

/// pgbench with the settings shared by every run.
#[derive(Debug, Clone)]
pub(crate) struct Pgbench {
    pub(crate) program: PathBuf,
    pub(crate) clients: u32,
    pub(crate) threads: u32,
}

impl Pgbench {
    /// pgbench from the cluster's binary directory.
    pub(crate) fn in_dir(bin_dir: &Path, clients: u32, threads: u32) -> Result<Self, BenchError> {
        let program = bin_dir.join("pgbench");
        if !program.is_file() {
            return Err(BenchError::MissingProgram {
                program: "pgbench",
                path: program,
                package: "postgresql-contrib or postgresql-client",
            });
        }
        Ok(Pgbench {
            program,
            clients,
            threads,
        })
    }

    fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", USER])
            // Whatever the environment says about the server must not apply here.
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS")
            // No target offers TLS; skipping the SSLRequest round trip keeps connection
            // set-up identical for all of them.
            .env("PGSSLMODE", "disable")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Ctrl-C reaches the benchmark, which kills pgbench by dropping it.
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }

    /// `pgbench -i -s SCALE` against the server on `port`.
    pub(crate) async fn initialize(&self, port: u16, scale: u32) -> Result<(), BenchError> {
        let mut cmd = self.command(port);
        cmd.args(["-i", "-q", "-s", &scale.to_string(), DATABASE]);
        let output = cmd
            .output()
            .await
            .map_err(|e| BenchError::io("run pgbench -i", e))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(BenchError::CommandFailed {
                program: format!("pgbench -i -s {scale}"),
                status: output.status.to_string(),
                output_tail: tail(&String::from_utf8_lossy(&output.stderr), 15),
            })
        }
    }

    /// One timed run against `port`; its per-transaction logs go to `log_dir` and are removed
    /// once read. A run that pgbench itself reports as failed becomes [`Outcome::Failed`].
    pub(crate) async fn run(
        &self,
        port: u16,
        mode: Mode,
        script: &Script,
        seconds: u32,
        log_dir: &Path,
        name: &str,
    ) -> Result<Outcome, BenchError> {
        let mut cmd = self.command(port);
        cmd.args(["-n", "-M", mode.flag()])
            .args(["-c", &self.clients.to_string()])
            .args(["-j", &self.threads.to_string()])
            .args(["-T", &seconds.to_string()])
            .arg("--log")
            .arg(format!("--log-prefix={}", log_dir.join(name).display()));
        match script {
            Script::SelectOnly => {
                cmd.arg("-S");
            }
            Script::TpcbLike => {
                cmd.args(["-b", "tpcb-like"]);
            }
            Script::File(path) => {
                cmd.arg("-f").arg(path);
            }
        }
        cmd.arg(DATABASE);
        let output = cmd
            .output()
            .await
            .map_err(|e| BenchError::io("run pgbench", e))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let latencies = read_logs(log_dir, name)?;
        if !output.status.success() {
            return Ok(Outcome::Failed(format!(
                "pgbench exited with {}: {}",
                output.status,
                first_error(&stderr)
            )));
        }
        let summary = parse_summary(&stdout)?;
        match latencies.summary() {
            Some(latency) => Ok(Outcome::Measured(Measurement { summary, latency })),
            None => Ok(Outcome::Failed(format!(
                "no transaction completed: {}",
                first_error(&stderr)
            ))),
        }
    }
}

/// Reads and deletes the log files of run `name` (one per pgbench thread: `NAME.PID` and
/// `NAME.PID.N`).
fn read_logs(dir: &Path, name: &str) -> Result<Latencies, BenchError> {
    let prefix = format!("{name}.");
    let mut latencies = Latencies::default();
    let entries =
        std::fs::read_dir(dir).map_err(|e| BenchError::io("list pgbench's log files", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BenchError::io("list pgbench's log files", e))?;
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let path = entry.path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::io(format!("read {}", path.display()), e))?;
        latencies.add_log(&text)?;
        std::fs::remove_file(&path)
            .map_err(|e| BenchError::io(format!("remove {}", path.display()), e))?;
    }
    Ok(latencies)
}

/// The line of pgbench's standard error that explains a failure best.
fn first_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|line| line.contains("aborted") || line.contains("ERROR") || line.contains("FATAL"))
        .map(str::to_owned)
        .unwrap_or_else(|| tail(stderr, 3))
}

/// The select-only script of (d) (on [`SEALED_ACCOUNTS`]) and (c2) (on [`PLAIN_ACCOUNTS`]):
/// the builtin one, also returning `filler`. Scale is written out because custom scripts do
/// not read it from the database.
pub(crate) fn copy_select_script(table: &str, scale: u32) -> String {
    format!(
        "\\set aid random(1, 100000 * {scale})\n\
         SELECT abalance, filler FROM {table} WHERE aid = :aid;\n"
    )
}

/// The read-write script of (d) and (c2): the builtin TPC-B-like one on `table`, whose update
/// also writes `filler` from a literal and whose select also reads it.
pub(crate) fn copy_tpcb_script(table: &str, scale: u32) -> String {
    format!(
        "\\set aid random(1, 100000 * {scale})\n\
         \\set bid random(1, 1 * {scale})\n\
         \\set tid random(1, 10 * {scale})\n\
         \\set delta random(-5000, 5000)\n\
         BEGIN;\n\
         UPDATE {table} SET abalance = abalance + :delta, filler = '{UPDATED_FILLER}' \
         WHERE aid = :aid;\n\
         SELECT abalance, filler FROM {table} WHERE aid = :aid;\n\
         UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;\n\
         UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;\n\
         INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) \
         VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);\n\
         END;\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_abort_line() {
        let stderr = "pgbench: warning: something\n\
                      pgbench: error: client 3 script 0 aborted in command 1 query 0: ERROR:  \
                      relation \"x\" does not exist\n\
                      pgbench: fatal: Run was aborted; the above results are incomplete.\n";
        assert!(first_error(stderr).contains("client 3 script 0 aborted"));
        assert_eq!(first_error("a\nb\nc\nd\n"), "b\nc\nd");
    }

    #[test]
    fn sealed_scripts_use_the_scale_and_the_sealed_table() {
        let select = copy_select_script(SEALED_ACCOUNTS, 10);
        assert!(select.contains("random(1, 100000 * 10)"));
        assert!(select.contains("SELECT abalance, filler FROM pgbench_accounts_sealed"));
        let tpcb = copy_tpcb_script(PLAIN_ACCOUNTS, 3);
        assert!(tpcb.contains("\\set tid random(1, 10 * 3)"));
        assert!(tpcb.contains(&format!("filler = '{UPDATED_FILLER}'")));
        assert!(tpcb.contains("UPDATE pgbench_accounts_plain SET abalance"));
        assert_eq!(tpcb.matches(';').count(), 7);
    }

    #[test]
    fn reads_and_removes_every_thread_log_of_a_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("run1.4242"), "0 0 100 0 1700000000 1\n").expect("write");
        std::fs::write(dir.path().join("run1.4242.1"), "1 0 300 0 1700000000 2\n").expect("write");
        std::fs::write(dir.path().join("run10.4243"), "0 0 999 0 1700000000 3\n").expect("write");
        let summary = read_logs(dir.path(), "run1")
            .expect("logs parse")
            .summary()
            .expect("two transactions");
        assert_eq!(summary.count, 2);
        assert!((summary.mean_ms - 0.2).abs() < 1e-9);
        assert!(!dir.path().join("run1.4242").exists());
        assert!(dir.path().join("run10.4243").exists());
    }
}
