//! Test-only: temporary PostgreSQL clusters started from the system's binaries.
//!
//! One cluster per test binary ([`TestCluster::shared`]), one fresh database per test
//! ([`TestCluster::create_database`]):
//!
//! ```no_run
//! # async fn example() {
//! use pgseal_testkit::TestCluster;
//!
//! let db = TestCluster::shared().create_database().await;
//! let client = db.connect().await;
//! client.batch_execute("create table t (id int)").await.unwrap();
//! # }
//! ```
//!
//! Every cluster logs every statement (`log_statement=all`) and loads `pg_stat_statements`
//! (installed in `template1`, so in every test database) with `track=all`, so tests can check
//! what reached the server. Failures panic with a message that says what to fix: this crate is
//! for tests only.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub use pgseal_localpg::{Cluster, ClusterOptions, LocalPgError};
use tokio_postgres::{Client, NoTls};

/// Settings every test cluster gets.
const DEFAULT_SETTINGS: [(&str, &str); 3] = [
    ("log_statement", "all"),
    ("shared_preload_libraries", "pg_stat_statements"),
    ("pg_stat_statements.track", "all"),
];

/// A PostgreSQL cluster for tests.
#[derive(Debug)]
pub struct TestCluster {
    cluster: Cluster,
    next_database: AtomicU32,
}

impl TestCluster {
    /// The cluster shared by every test in this test binary, started on first use.
    ///
    /// It is never dropped; the localpg watchdog stops it and removes its files when the test
    /// binary exits.
    ///
    /// # Panics
    /// If the cluster cannot start (for example the PostgreSQL server is not installed); the
    /// message says how to fix it.
    pub fn shared() -> &'static TestCluster {
        static SHARED: OnceLock<TestCluster> = OnceLock::new();
        SHARED.get_or_init(|| TestCluster::start_dedicated(Vec::new()))
    }

    /// A cluster of its own, with the default test settings plus `settings` (which win).
    /// Dropping it shuts it down and removes its files.
    ///
    /// # Panics
    /// If the cluster cannot start; the message says how to fix it.
    pub fn start_dedicated(settings: Vec<(String, String)>) -> TestCluster {
        let mut options = ClusterOptions::new();
        for (name, value) in DEFAULT_SETTINGS {
            options = options.setting(name, value);
        }
        for (name, value) in settings {
            options = options.setting(name, value);
        }
        let cluster = Cluster::start(options)
            .unwrap_or_else(|e| panic!("cannot start a test PostgreSQL cluster: {e}"));
        let out = cluster
            .psql_command()
            .args([
                "-d",
                "template1",
                "-q",
                "-c",
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql against the test cluster: {e}"));
        assert!(
            out.status.success(),
            "cannot install pg_stat_statements in template1 (is postgresql-contrib installed?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestCluster {
            cluster,
            next_database: AtomicU32::new(1),
        }
    }

    /// The underlying cluster: port, directories, log, `psql_command()`.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Connects to `dbname` as the superuser.
    ///
    /// # Panics
    /// If the connection fails. Must be called inside a tokio runtime (the connection task is
    /// spawned on it).
    pub async fn connect(&self, dbname: &str) -> Client {
        connect_url(&self.cluster.url(dbname)).await
    }

    /// Creates a fresh, empty database `pgseal_test_<pid>_<n>` (a copy of `template1`).
    ///
    /// # Panics
    /// If the database cannot be created.
    pub async fn create_database(&self) -> TestDatabase {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = format!("pgseal_test_{}_{n}", std::process::id());
        let admin = self.connect("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        TestDatabase {
            url: self.cluster.url(&name),
            name,
        }
    }
}

/// A database created for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `postgres://` URL for it, as the superuser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection to it; the connection task runs on the current tokio runtime.
    ///
    /// # Panics
    /// If the connection fails, or outside a tokio runtime.
    pub async fn connect(&self) -> Client {
        connect_url(&self.url).await
    }
}

async fn connect_url(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster at {url}: {e}"));
    tokio::spawn(async move {
        // The connection ends when the client is dropped; an error here means the test already
        // sees failures on its client.
        let _ = connection.await;
    });
    client
}
