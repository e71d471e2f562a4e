//! Turning on TLS in a running cluster, for tests of clients and proxies that speak TLS to it.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::{Cluster, LocalPgError};

impl Cluster {
    /// Installs `cert_pem` (the server certificate, then any intermediates) and `key_pem` in
    /// the data directory, owned by the server's user with the modes PostgreSQL insists on,
    /// and turns `ssl` on with a configuration reload, waiting until the server accepts TLS
    /// connections.
    ///
    /// The key is a test key: it is written as given, unencrypted.
    ///
    /// # Errors
    /// [`LocalPgError::Io`] if the files cannot be written, [`LocalPgError::CommandFailed`] if
    /// the server refuses the settings (its log says why).
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), LocalPgError> {
        let data = self.data_dir();
        let owner = std::fs::metadata(data)
            .map_err(|e| LocalPgError::io("read the data directory's owner", e))?;
        write_owned(&data.join("server.crt"), cert_pem, 0o644, &owner)?;
        // PostgreSQL refuses a key file readable by others.
        write_owned(&data.join("server.key"), key_pem, 0o600, &owner)?;
        let out = self
            .psql_command()
            .args([
                "-q",
                "-c",
                "alter system set ssl = on",
                "-c",
                "alter system set ssl_cert_file = 'server.crt'",
                "-c",
                "alter system set ssl_key_file = 'server.key'",
                "-c",
                "select pg_reload_conf()",
            ])
            .output()
            .map_err(|e| LocalPgError::io("run psql to turn ssl on", e))?;
        if !out.status.success() {
            return Err(LocalPgError::CommandFailed {
                program: "psql -c 'alter system set ssl = on'".to_owned(),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        // The reload is asynchronous: wait until a TLS connection succeeds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let probe = self
                .psql_command()
                .env("PGSSLMODE", "require")
                .args(["-q", "-c", "select 1"])
                .output()
                .map_err(|e| LocalPgError::io("run psql with sslmode=require", e))?;
            if probe.status.success() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(LocalPgError::CommandFailed {
                    program: "psql with PGSSLMODE=require".to_owned(),
                    status: probe.status.to_string(),
                    output: String::from_utf8_lossy(&probe.stderr).into_owned(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

fn write_owned(
    path: &Path,
    contents: &str,
    mode: u32,
    owner: &std::fs::Metadata,
) -> Result<(), LocalPgError> {
    let action = || format!("write {}", path.display());
    // Replaced, not rewritten in place: the server may be reading the old file.
    let tmp = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| LocalPgError::io(action(), e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| LocalPgError::io(action(), e))?;
    std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid()))
        .map_err(|e| LocalPgError::io(action(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| LocalPgError::io(action(), e))
}
