//! The benchmark's one error type.

use std::path::PathBuf;

/// Why a benchmark could not be set up or finished.
///
/// A single pgbench run that fails (a target rejecting the workload, say) is not an error: it is
/// reported in its table cell and the other runs go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The temporary PostgreSQL cluster could not be started or stopped.
    #[error("temporary PostgreSQL cluster: {0}")]
    Cluster(#[from] pgseal_localpg::LocalPgError),

    /// A file or process operation failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done, e.g. "write the pgbouncer configuration".
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A program the benchmark runs is missing.
    #[error("{program} not found at {path}; install the Debian package `{package}`")]
    MissingProgram {
        /// The program's name.
        program: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The package that provides it.
        package: &'static str,
    },

    /// A helper program exited with a failure status.
    #[error("{program} failed ({status}); its output ends with:\n{output_tail}")]
    CommandFailed {
        /// The program and what it was asked to do.
        program: String,
        /// Its exit status.
        status: String,
        /// The last lines of its output.
        output_tail: String,
    },

    /// A statement of the benchmark's own setup failed.
    #[error("database error while {action}: {detail}")]
    Database {
        /// What was being done.
        action: String,
        /// PostgreSQL's message (the benchmark's data is synthetic, never a secret).
        detail: String,
    },

    /// pgseal itself (schema installation, keys, sealing) failed during setup.
    #[error("pgseal failed while {action}: {source}")]
    Pgseal {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: pgseal::Error,
    },

    /// The proxy library refused its configuration or could not serve.
    #[error("proxy: {0}")]
    Proxy(#[from] pgseal_proxy::ProxyError),

    /// A background server did not come up in time, or exited while starting.
    #[error("{what} did not start: {problem}; its log ends with:\n{log_tail}")]
    NotReady {
        /// Which server.
        what: &'static str,
        /// What went wrong.
        problem: String,
        /// The last lines of its log.
        log_tail: String,
    },

    /// The encrypting proxy was asked for but this binary was built without it.
    #[cfg(not(feature = "encryption"))]
    #[error(
        "the proxy's encryption layer is not built into this binary (it was built with \
         --no-default-features); rebuild with the default features"
    )]
    EncryptionUnavailable,

    /// pgbench wrote something the parser does not understand.
    #[error("cannot parse pgbench output: {0}")]
    Parse(String),

    /// The markdown section could not be placed in the performance document.
    #[error("cannot update {path}: {problem}")]
    Doc {
        /// The document.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// Ctrl-C or SIGTERM arrived; everything started so far has been stopped and removed.
    #[error("interrupted; every process and temporary directory started so far was cleaned up")]
    Interrupted,
}

impl BenchError {
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn db(action: impl Into<String>, err: &tokio_postgres::Error) -> Self {
        BenchError::Database {
            action: action.into(),
            detail: pgseal::describe_db_error(err),
        }
    }
}

/// The last `n` lines of `text`, for error messages.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
