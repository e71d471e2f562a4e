//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while finding, starting or stopping a local cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalPgError {
    /// No directory with the PostgreSQL server binaries (`initdb`, `postgres`, `pg_ctl`) was found.
    #[error(
        "the PostgreSQL server binaries (initdb, postgres, pg_ctl) are missing ({searched}); \
         psql alone is not enough. Install the server, on Debian/Ubuntu: \
         `apt-get install -y postgresql`, or set PGSEAL_PG_BINDIR to the directory that holds initdb"
    )]
    ServerNotInstalled {
        /// Where we looked, for the message.
        searched: String,
    },

    /// The server binaries are older than this crate supports.
    #[error(
        "PostgreSQL {version} in {bin_dir} is too old: pgseal needs PostgreSQL 10 or newer; \
         install a newer server or point PGSEAL_PG_BINDIR at one"
    )]
    UnsupportedVersion {
        /// The version string the binaries reported.
        version: String,
        /// The binary directory that was used.
        bin_dir: PathBuf,
    },

    /// Running as root without a `postgres` user to run the server as.
    #[error(
        "running as root, and initdb/postgres refuse to run as root, but there is no `postgres` \
         system user to run them as: create it with `useradd --system postgres` or install the \
         postgresql package"
    )]
    NoPostgresUser,

    /// An operating-system call failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What we were doing, e.g. "create the cluster directory".
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A helper program (initdb, cp, pg_ctl) exited unsuccessfully.
    #[error("`{program}` failed ({status}): {output}")]
    CommandFailed {
        /// The program and its key arguments.
        program: String,
        /// Its exit status.
        status: String,
        /// The last lines it printed.
        output: String,
    },

    /// The server exited before accepting connections, on every attempt.
    #[error(
        "PostgreSQL exited during startup ({attempts} attempts); last lines of {}:\n{log_tail}",
        log_path.display()
    )]
    StartFailed {
        /// How many ports were tried.
        attempts: u32,
        /// The server log.
        log_path: PathBuf,
        /// Its last lines.
        log_tail: String,
    },

    /// The server did not accept connections in time.
    #[error(
        "PostgreSQL did not accept connections within {seconds} s; last lines of {}:\n{log_tail}",
        log_path.display()
    )]
    StartTimeout {
        /// The limit that passed.
        seconds: u64,
        /// The server log.
        log_path: PathBuf,
        /// Its last lines.
        log_tail: String,
    },
}

impl LocalPgError {
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }
}
