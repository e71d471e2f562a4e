//! pgbouncer, the baseline: session pooling, trust authentication, on a free port.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::tail;
use crate::system::{free_port, RunAs};
use crate::BenchError;

/// Where Debian's `pgbouncer` package installs the program.
const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running pgbouncer; stopped and its directory removed on drop.
#[derive(Debug)]
pub(crate) struct Pgbouncer {
    child: Child,
    port: u16,
    log_path: PathBuf,
    // Dropped after the child is killed (field order does not matter: Drop kills first).
    _dir: TempDir,
}

impl Pgbouncer {
    /// The first line of `pgbouncer --version`, e.g. `PgBouncer 1.18.0`.
    pub(crate) fn version() -> Result<String, BenchError> {
        let output = Command::new(program()?)
            .arg("--version")
            .output()
            .map_err(|e| BenchError::io("run pgbouncer --version", e))?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or("PgBouncer (unknown version)")
            .trim()
            .to_owned())
    }

    /// Starts pgbouncer in front of `127.0.0.1:pg_port`, allowing `max_clients` clients (each
    /// with its own server connection: session pooling, pool as large as the client limit).
    pub(crate) fn start(pg_port: u16, max_clients: usize) -> Result<Pgbouncer, BenchError> {
        let program = program()?;
        let run_as = RunAs::for_servers()?;
        let dir = tempfile::Builder::new()
            .prefix("pgseal-bench-pgbouncer-")
            .tempdir()
            .map_err(|e| BenchError::io("create pgbouncer's directory", e))?;
        let port = free_port()?;
        let ini_path = dir.path().join("pgbouncer.ini");
        let users_path = dir.path().join("userlist.txt");
        let log_path = dir.path().join("pgbouncer.log");
        write(&users_path, "\"postgres\" \"\"\n")?;
        write(
            &ini_path,
            &config(pg_port, port, max_clients, &users_path, &log_path),
        )?;
        if let Some(user) = run_as {
            for path in [dir.path(), &ini_path, &users_path] {
                user.chown(path)?;
            }
        }
        let mut cmd = Command::new(program);
        cmd.arg(&ini_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir(dir.path())
            // Its own process group: Ctrl-C reaches us, and we stop it ourselves.
            .process_group(0);
        if let Some(user) = run_as {
            user.apply(&mut cmd);
        }
        let child = cmd
            .spawn()
            .map_err(|e| BenchError::io("start pgbouncer", e))?;
        let mut bouncer = Pgbouncer {
            child,
            port,
            log_path,
            _dir: dir,
        };
        bouncer.wait_until_listening()?;
        Ok(bouncer)
    }

    fn wait_until_listening(&mut self) -> Result<(), BenchError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("it exited with {status}")));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!(
                    "it did not listen on port {} within {} s",
                    self.port,
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn not_ready(&self, problem: String) -> BenchError {
        BenchError::NotReady {
            what: "pgbouncer",
            problem,
            log_tail: tail(
                &std::fs::read_to_string(&self.log_path).unwrap_or_default(),
                15,
            ),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its process id, for memory measurements.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        // A benchmark instance holds nothing worth a graceful shutdown.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn program() -> Result<&'static Path, BenchError> {
    let path = Path::new(PGBOUNCER);
    if path.is_file() {
        Ok(path)
    } else {
        Err(BenchError::MissingProgram {
            program: "pgbouncer",
            path: path.to_owned(),
            package: "pgbouncer",
        })
    }
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|e| BenchError::io(format!("write {}", path.display()), e))
}

/// A minimal configuration: every database forwarded to the cluster, no unix socket, trust
/// authentication checked against the user list, session pooling with a pool as large as the
/// client limit so no client ever waits for a server connection.
fn config(pg_port: u16, listen_port: u16, max_clients: usize, users: &Path, log: &Path) -> String {
    format!(
        "[databases]\n\
         * = host=127.0.0.1 port={pg_port}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {listen_port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {users}\n\
         pool_mode = session\n\
         max_client_conn = {max_clients}\n\
         default_pool_size = {max_clients}\n\
         max_db_connections = 0\n\
         logfile = {log}\n\
         log_connections = 0\n\
         log_disconnections = 0\n\
         log_pooler_errors = 1\n\
         server_login_retry = 1\n",
        users = users.display(),
        log = log.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_names_ports_and_files() {
        let text = config(
            5432,
            6543,
            120,
            Path::new("/tmp/x/userlist.txt"),
            Path::new("/tmp/x/pgbouncer.log"),
        );
        assert!(text.contains("* = host=127.0.0.1 port=5432\n"));
        assert!(text.contains("listen_port = 6543\n"));
        assert!(text.contains("pool_mode = session\n"));
        assert!(text.contains("default_pool_size = 120\n"));
        assert!(text.contains("auth_file = /tmp/x/userlist.txt\n"));
    }
}
