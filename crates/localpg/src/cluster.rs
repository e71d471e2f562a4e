//! A running temporary cluster.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binaries::{self, ServerBinaries};
use crate::template;
use crate::user::RunAs;
use crate::watchdog::Watchdog;
use crate::LocalPgError;

/// The address the server listens on; never a public interface.
pub const HOST: &str = "127.0.0.1";

/// The superuser created by initdb (trust authentication, no password).
pub const SUPERUSER: &str = "postgres";

/// How long one start attempt may take before we give up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The free port we pick can be taken before the server binds it; try a few others.
const START_ATTEMPTS: u32 = 5;

/// Settings for a new cluster.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// Extra server settings, passed as `-c name=value` (after pgseal's own, so they win), e.g.
    /// `("log_statement", "all")` or `("shared_preload_libraries", "pg_stat_statements")`.
    pub settings: Vec<(String, String)>,
}

impl ClusterOptions {
    /// Options with no extra settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one server setting.
    #[must_use]
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }
}

/// A temporary PostgreSQL cluster: its own data directory, port and unix socket, listening on
/// 127.0.0.1 only, with durability turned off for speed (`fsync=off`).
///
/// The cluster is shut down and its directory removed by [`Cluster::stop`], by `Drop`, or, if
/// the owning process dies first (abort, `SIGKILL`, a `static` never dropped), by a watchdog
/// process started with it.
#[derive(Debug)]
pub struct Cluster {
    bins: ServerBinaries,
    run_as: Option<RunAs>,
    port: u16,
    dir: Option<TempDir>,
    dir_path: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    postmaster: Option<Child>,
    watchdog: Option<Watchdog>,
}

impl Cluster {
    /// Starts a new cluster. Blocks until it accepts connections (at most 30 s per attempt).
    ///
    /// When run as root, the server runs as the `postgres` system user, since initdb and
    /// postgres refuse to run as root.
    pub fn start(options: ClusterOptions) -> Result<Cluster, LocalPgError> {
        let bins = binaries::find()?;
        let dir = tempfile::Builder::new()
            .prefix("pgseal-pg-")
            .tempdir()
            .map_err(|e| LocalPgError::io("create the cluster directory", e))?;
        let dir_path = dir.path().to_owned();
        let run_as = RunAs::for_current_process(&dir_path)?;
        if let Some(user) = run_as {
            user.chown(&dir_path)?;
        }
        let mut cluster = Cluster {
            bins,
            run_as,
            port: 0,
            data_dir: dir_path.join("data"),
            socket_dir: dir_path.join("socket"),
            log_path: dir_path.join("postgres.log"),
            dir: Some(dir),
            dir_path,
            postmaster: None,
            watchdog: None,
        };
        // From here on, an early return drops `cluster`, which cleans up what exists so far.
        template::prepare_data_dir(&cluster.bins, run_as, &cluster.dir_path, &cluster.data_dir)?;
        std::fs::create_dir(&cluster.socket_dir)
            .map_err(|e| LocalPgError::io("create the socket directory", e))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cluster.log_path)
            .map_err(|e| LocalPgError::io("create the server log file", e))?;
        if let Some(user) = run_as {
            user.chown(&cluster.socket_dir)?;
            user.chown(&cluster.log_path)?;
        }
        cluster.launch(&log, &options)?;
        let pid = cluster
            .postmaster
            .as_ref()
            .map(Child::id)
            .expect("launch() returned Ok, so the postmaster is running");
        cluster.watchdog = Some(Watchdog::spawn(pid, &cluster.data_dir, &cluster.dir_path)?);
        Ok(cluster)
    }

    fn launch(&mut self, log: &File, options: &ClusterOptions) -> Result<(), LocalPgError> {
        for _attempt in 0..START_ATTEMPTS {
            let port = free_port()?;
            let mut child = self
                .postgres_command(port, log, options)?
                .spawn()
                .map_err(|e| {
                    LocalPgError::io(
                        format!("start {}", self.bins.bin_dir.join("postgres").display()),
                        e,
                    )
                })?;
            match wait_until_ready(&mut child, &self.data_dir, START_TIMEOUT) {
                Startup::Ready => {
                    self.port = port;
                    self.postmaster = Some(child);
                    return Ok(());
                }
                // Most likely the port was taken between our probe and the server's bind.
                Startup::Exited => continue,
                Startup::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(LocalPgError::StartTimeout {
                        seconds: START_TIMEOUT.as_secs(),
                        log_path: self.log_path.clone(),
                        log_tail: self.log_tail(),
                    });
                }
            }
        }
        Err(LocalPgError::StartFailed {
            attempts: START_ATTEMPTS,
            log_path: self.log_path.clone(),
            log_tail: self.log_tail(),
        })
    }

    fn postgres_command(
        &self,
        port: u16,
        log: &File,
        options: &ClusterOptions,
    ) -> Result<Command, LocalPgError> {
        let clone_log = || {
            log.try_clone()
                .map_err(|e| LocalPgError::io("duplicate the log file handle", e))
        };
        let mut cmd = Command::new(self.bins.bin_dir.join("postgres"));
        cmd.arg("-D").arg(&self.data_dir);
        let mut settings: Vec<(String, String)> = vec![
            ("port".into(), port.to_string()),
            ("listen_addresses".into(), HOST.into()),
            (
                "unix_socket_directories".into(),
                self.socket_dir.to_string_lossy().into_owned(),
            ),
            ("fsync".into(), "off".into()),
            ("synchronous_commit".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("logging_collector".into(), "off".into()),
        ];
        settings.extend(options.settings.iter().cloned());
        for (name, value) in settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(clone_log()?)
            .stderr(clone_log()?)
            .current_dir(&self.dir_path)
            .env_remove("PGDATA")
            // Keep terminal signals (Ctrl-C) away from the server: the owner or the watchdog
            // decides when it stops.
            .process_group(0);
        if let Some(user) = self.run_as {
            user.apply(&mut cmd);
        }
        Ok(cmd)
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host to connect to: always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log (stdout and stderr of the postmaster).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The directory of the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bins.bin_dir
    }

    /// The server's major version, e.g. 15.
    pub fn version(&self) -> u32 {
        self.bins.major
    }

    /// A connection URL for `dbname` as the superuser `postgres` (no password: trust auth).
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@{HOST}:{}/{}",
            self.port,
            percent_encode(dbname)
        )
    }

    /// A `psql` command preset for this cluster (host, port, user, database `postgres` through
    /// `PG*` variables, so `-d` and other arguments can still override them), with `-X` (no
    /// psqlrc), `-w` (never prompt) and `ON_ERROR_STOP=1`.
    pub fn psql_command(&self) -> Command {
        let bundled = self.bins.bin_dir.join("psql");
        let mut cmd = if bundled.is_file() {
            Command::new(bundled)
        } else {
            Command::new("psql")
        };
        // A service file would take precedence over the PG* variables below.
        cmd.env_remove("PGSERVICE")
            .env("PGHOST", HOST)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", SUPERUSER)
            .env("PGDATABASE", "postgres")
            .args(["-X", "-w", "-v", "ON_ERROR_STOP=1"]);
        cmd
    }

    /// Shuts the server down cleanly (`pg_ctl stop -m fast`) and removes the cluster directory.
    pub fn stop(mut self) -> Result<(), LocalPgError> {
        self.shutdown("fast")
    }

    fn shutdown(&mut self, mode: &str) -> Result<(), LocalPgError> {
        let mut first_error = None;
        if let Some(mut child) = self.postmaster.take() {
            let mut cmd = Command::new(self.bins.bin_dir.join("pg_ctl"));
            cmd.arg("stop")
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-m", mode, "-w", "-t", "30", "-s"])
                .current_dir(&self.dir_path)
                .env_remove("PGDATA");
            if let Some(user) = self.run_as {
                user.apply(&mut cmd);
            }
            if let Err(e) = template::run(cmd, "pg_ctl stop") {
                first_error = Some(e);
                // The server did not stop on request; do not leave it behind.
                if matches!(child.try_wait(), Ok(None)) {
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.close() {
                first_error.get_or_insert(LocalPgError::io("remove the cluster directory", e));
            }
        }
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.dismiss();
        }
        first_error.map_or(Ok(()), Err)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        last_lines(&text, 20)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Tests only need the server gone; immediate shutdown skips the checkpoint.
        let _ = self.shutdown("immediate");
    }
}

enum Startup {
    Ready,
    Exited,
    TimedOut,
}

/// Waits for the postmaster to report `ready` in `postmaster.pid` (what `pg_ctl -w` waits for).
fn wait_until_ready(child: &mut Child, data_dir: &Path, timeout: Duration) -> Startup {
    let deadline = Instant::now() + timeout;
    let pid_file = data_dir.join("postmaster.pid");
    loop {
        if !matches!(child.try_wait(), Ok(None)) {
            return Startup::Exited;
        }
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            if pid_file_says_ready(&text, child.id()) {
                return Startup::Ready;
            }
        }
        if Instant::now() >= deadline {
            return Startup::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Line 1 of postmaster.pid is the pid, line 8 the status (PostgreSQL 10+).
pub(crate) fn pid_file_says_ready(text: &str, pid: u32) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    lines.first().and_then(|l| l.trim().parse::<u32>().ok()) == Some(pid)
        && lines.get(7).map(|l| l.trim()) == Some("ready")
}

fn free_port() -> Result<u16, LocalPgError> {
    let listener = TcpListener::bind((HOST, 0))
        .map_err(|e| LocalPgError::io("find a free TCP port on 127.0.0.1", e))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| LocalPgError::io("read the free port's number", e))
}

pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ready_status_from_pid_file() {
        let ready =
            "4242\n/tmp/x/data\n1700000000\n5432\n/tmp/x/socket\n127.0.0.1\n  1234 5\nready   \n";
        assert!(pid_file_says_ready(ready, 4242));
        assert!(!pid_file_says_ready(ready, 4243));
        assert!(!pid_file_says_ready(
            &ready.replace("ready", "starting"),
            4242
        ));
        assert!(!pid_file_says_ready("4242\n/tmp/x/data\n", 4242));
    }

    #[test]
    fn encodes_database_names_in_urls() {
        assert_eq!(percent_encode("app_db-1"), "app_db-1");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn keeps_last_lines() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
