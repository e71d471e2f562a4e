//! A helper process that cleans up a cluster when its owner dies without doing so.
//!
//! Destructors do not run on `panic = "abort"`, `SIGKILL`, `std::process::exit` or for a `static`
//! that is never dropped. The watchdog is a small `sh` script reading from a pipe whose only
//! writer is the owner: when the owner exits in any way the kernel closes that pipe, `read` sees
//! end-of-file, and the script stops the server (SIGQUIT, PostgreSQL's immediate shutdown) and
//! removes the cluster directory. An owner that cleaned up itself writes one line first, and the
//! script exits without touching anything. Unlike polling `kill -0 <owner pid>`, this cannot be
//! fooled by pid reuse and reacts at once.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::LocalPgError;

const SCRIPT: &str = r#"
trap '' HUP INT
if read -r _line; then exit 0; fi
kill -QUIT "$1" 2>/dev/null
i=0
while [ -e "$2/postmaster.pid" ] && kill -0 "$1" 2>/dev/null && [ "$i" -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
rm -rf -- "$3"
"#;

/// The running watchdog; dismiss it after cleaning up normally.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    owner_end: Option<ChildStdin>,
}

impl Watchdog {
    /// Watches the postmaster `pid` with data directory `data_dir`, and removes `cluster_dir`.
    pub(crate) fn spawn(
        pid: u32,
        data_dir: &Path,
        cluster_dir: &Path,
    ) -> Result<Self, LocalPgError> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("pgseal-localpg-watchdog")
            .arg(pid.to_string())
            .arg(data_dir)
            .arg(cluster_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C aimed at the test run must not kill the cleaner.
            .process_group(0)
            .spawn()
            .map_err(|e| LocalPgError::io("start the cluster watchdog (sh)", e))?;
        let owner_end = child.stdin.take();
        Ok(Self { child, owner_end })
    }

    /// Tells the watchdog the owner has cleaned up, and reaps it.
    pub(crate) fn dismiss(mut self) {
        if let Some(mut pipe) = self.owner_end.take() {
            // If the write fails the script already got EOF; its cleanup is then harmless
            // because the postmaster has been reaped and the directory is gone.
            let _ = pipe.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }
}
