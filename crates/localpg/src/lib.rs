//! Temporary local PostgreSQL clusters, started from the system's server binaries.
//!
//! Used by the test suites (through `pgseal-testkit`) and by `pgseal dev`.
//!
//! ```no_run
//! use pgseal_localpg::{Cluster, ClusterOptions};
//!
//! let cluster = Cluster::start(ClusterOptions::new().setting("log_statement", "all"))?;
//! let status = cluster.psql_command().args(["-c", "select 1"]).status();
//! println!("{}", cluster.url("postgres"));
//! cluster.stop()?;
//! # Ok::<(), pgseal_localpg::LocalPgError>(())
//! ```
//!
//! * **Binaries:** `$PGSEAL_PG_BINDIR`, else `pg_config --bindir`, else the newest
//!   `/usr/lib/postgresql/*/bin`; each must contain `initdb`.
//! * **Speed:** initdb runs once per server version and user; its result is cached in the
//!   temporary directory and copied for each cluster. The server runs with `fsync=off`: a
//!   cluster is disposable by design.
//! * **Root:** initdb and postgres refuse to run as root, so as root they run as the `postgres`
//!   system user (found in `/etc/passwd`, so no `unsafe` lookup is needed).
//! * **Cleanup:** `stop()` or `Drop`; if the owning process dies first, a watchdog process
//!   stops the server and removes the directory.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod binaries;
mod cluster;
mod error;
mod template;
mod tls;
mod user;
mod watchdog;

pub use binaries::BINDIR_ENV;
pub use cluster::{Cluster, ClusterOptions, HOST, SUPERUSER};
pub use error::LocalPgError;
pub use user::RunAs;
