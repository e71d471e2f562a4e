//! The pgseal proxy in a process of its own: this binary re-executed with the hidden
//! `serve-proxy` subcommand, so the proxy does not share a runtime, threads or an allocator with
//! the benchmark's own connections, just as pgbouncer does not.
//!
//! The child prints `listening on ADDR` as its first line on stdout and serves until its stdin
//! closes (so it also ends if the benchmark dies without cleaning up) or it receives SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use zeroize::Zeroizing;

use crate::error::tail;
use crate::BenchError;

/// The line prefix the child announces its address with.
const READY_PREFIX: &str = "listening on ";

/// The encrypting proxy loads the catalog and keys before it listens.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a proxy may take to finish after its stdin closes.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variable carrying the master key to the child (never its command line, which
/// any user can read in /proc).
pub(crate) const MASTER_KEY_ENV: &str = "PGSEAL_MASTER_KEY";

/// What the encrypting proxy needs besides the upstream address.
///
/// Deliberately not `Debug`: it holds the master key.
pub(crate) struct EncryptedSetup {
    /// Connection URL for the proxy's own catalog and key reads.
    pub(crate) control_url: String,
    /// The master key, base64; wiped when dropped.
    pub(crate) master_key_base64: Zeroizing<String>,
}

/// A proxy child process; killed on drop.
#[derive(Debug)]
pub(crate) struct ProxyProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    pid: u32,
}

impl ProxyProcess {
    /// Starts a proxy in front of `127.0.0.1:upstream_port`; with `encrypted`, the encrypting
    /// one. Its standard error goes to `log_path`.
    pub(crate) async fn start(
        upstream_port: u16,
        encrypted: Option<&EncryptedSetup>,
        log_path: PathBuf,
    ) -> Result<ProxyProcess, BenchError> {
        let exe = std::env::current_exe()
            .map_err(|e| BenchError::io("find the benchmark's own executable", e))?;
        let log = std::fs::File::create(&log_path)
            .map_err(|e| BenchError::io(format!("create {}", log_path.display()), e))?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve-proxy")
            .arg("--upstream-port")
            .arg(upstream_port.to_string())
            .env_remove(MASTER_KEY_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            // Ctrl-C reaches the benchmark, which stops its children itself.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(setup) = encrypted {
            cmd.arg("--encrypted")
                .arg("--control-url")
                .arg(&setup.control_url)
                .env(MASTER_KEY_ENV, setup.master_key_base64.as_str());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| BenchError::io("start the proxy process", e))?;
        let pid = child.id().ok_or_else(|| BenchError::NotReady {
            what: "pgseal proxy",
            problem: "it exited at once".to_owned(),
            log_tail: read_tail(&log_path),
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| BenchError::NotReady {
            what: "pgseal proxy",
            problem: "its standard output is not connected".to_owned(),
            log_tail: String::new(),
        })?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let addr = match first {
            Ok(Ok(Some(line))) => line
                .strip_prefix(READY_PREFIX)
                .and_then(|addr| addr.trim().parse::<SocketAddr>().ok())
                .ok_or_else(|| BenchError::NotReady {
                    what: "pgseal proxy",
                    problem: format!("it announced `{line}` instead of `{READY_PREFIX}ADDR`"),
                    log_tail: read_tail(&log_path),
                })?,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child.wait().await.ok();
                return Err(BenchError::NotReady {
                    what: "pgseal proxy",
                    problem: format!(
                        "it exited ({}) before announcing its address",
                        status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string())
                    ),
                    log_tail: read_tail(&log_path),
                });
            }
            Err(_elapsed) => {
                return Err(BenchError::NotReady {
                    what: "pgseal proxy",
                    problem: format!(
                        "it did not announce its address within {} s",
                        START_TIMEOUT.as_secs()
                    ),
                    log_tail: read_tail(&log_path),
                })
            }
        };
        // Nothing else is expected on stdout; drain it so a stray print can never block the
        // child on a full pipe.
        let mut rest = lines.into_inner();
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = rest.read_to_end(&mut sink).await;
        });
        Ok(ProxyProcess {
            child,
            stdin,
            addr,
            pid,
        })
    }

    /// The port clients connect to (on 127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The process id, for memory measurements.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Asks the proxy to stop (closes its stdin) and waits; kills it if it does not stop in time.
    pub(crate) async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn read_tail(path: &std::path::Path) -> String {
    tail(&std::fs::read_to_string(path).unwrap_or_default(), 20)
}
