//! Scaffolding shared by the benchmarks that run on a throwaway cluster (lookup, COPY,
//! migration, backup): progress lines, connections, the cluster with its benchmark database,
//! and publishing the result into the benchmark's marked section of a document.

use std::path::{Path, PathBuf};

use pgseal::{AuditLog, MasterKey, MasterKeyring};
use pgseal_localpg::{Cluster, ClusterOptions};
use tokio_postgres::{Client, NoTls};
use zeroize::Zeroizing;

use crate::proxy_process::{EncryptedSetup, ProxyProcess};
use crate::BenchError;

/// What a benchmark calls itself, and where its section of a document is.
pub(crate) struct Bench {
    /// The subcommand, prefixed to progress lines (`pgseal-bench NAME: ...`).
    pub(crate) name: &'static str,
    /// How errors name the benchmark (`connecting for WHAT`).
    pub(crate) what: &'static str,
    /// The marker that opens the benchmark's section in the document.
    pub(crate) start_marker: &'static str,
    /// The marker that closes it.
    pub(crate) end_marker: &'static str,
}

impl Bench {
    /// Reports progress on stderr, so stdout carries only the result.
    pub(crate) fn progress(&self, message: &str) {
        eprintln!("pgseal-bench {}: {message}", self.name);
    }

    /// Connects to `url`; the connection runs in the background.
    pub(crate) async fn connect(&self, url: &str) -> Result<Client, BenchError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| BenchError::db(format!("connecting for {}", self.what), &e))?;
        tokio::spawn(async move {
            // Errors surface on the client's next call.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Starts a temporary cluster with `options`, creates `database` in it, connects to it and
    /// reads the server version for the report.
    pub(crate) async fn scratch(
        &self,
        options: ClusterOptions,
        database: &str,
    ) -> Result<Scratch, BenchError> {
        self.progress("starting a temporary PostgreSQL cluster");
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(options))
            .await
            .map_err(|e| BenchError::io("start PostgreSQL", std::io::Error::other(e)))??;
        let admin = self.connect(&cluster.url("postgres")).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .map_err(|e| BenchError::db("creating the benchmark database", &e))?;
        let client = self.connect(&cluster.url(database)).await?;
        let postgres_version: String = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| BenchError::db("reading the server version", &e))?
            .get(0);
        Ok(Scratch {
            cluster,
            admin,
            client,
            postgres_version,
        })
    }

    /// Prints `section` and, with a document, puts it between the benchmark's markers there.
    pub(crate) fn publish(&self, section: &str, doc: Option<&Path>) -> Result<(), BenchError> {
        println!("{section}");
        if let Some(doc) = doc {
            let text = std::fs::read_to_string(doc)
                .map_err(|e| BenchError::io(format!("read {}", doc.display()), e))?;
            let updated =
                self.replace_section(&text, section)
                    .map_err(|problem| BenchError::Doc {
                        path: doc.to_owned(),
                        problem,
                    })?;
            std::fs::write(doc, updated)
                .map_err(|e| BenchError::io(format!("write {}", doc.display()), e))?;
            self.progress(&format!("updated {}", doc.display()));
        }
        Ok(())
    }

    /// Puts `section` between the markers, or appends it when the document has none.
    fn replace_section(&self, doc: &str, section: &str) -> Result<String, String> {
        let (start_marker, end_marker) = (self.start_marker, self.end_marker);
        match (doc.find(start_marker), doc.find(end_marker)) {
            (None, None) => Ok(format!("{}\n\n{section}", doc.trim_end_matches('\n'))),
            (Some(start), Some(end)) if start < end && doc.matches(start_marker).count() == 1 => {
                let after = end + end_marker.len();
                let section = section.strip_suffix('\n').unwrap_or(section);
                Ok(format!("{}{section}{}", &doc[..start], &doc[after..]))
            }
            _ => Err(format!(
                "the markers `{start_marker}` and `{end_marker}` must appear once each, in that \
                 order; fix them by hand and re-run"
            )),
        }
    }
}

/// A temporary cluster with the benchmark's database; the cluster stops when this is dropped.
pub(crate) struct Scratch {
    /// The cluster.
    pub(crate) cluster: Cluster,
    /// A connection to the `postgres` database, open for the whole run.
    pub(crate) admin: Client,
    /// A direct connection to the benchmark's database.
    pub(crate) client: Client,
    /// `SHOW server_version`, for the report.
    pub(crate) postgres_version: String,
}

/// Starts the encrypting proxy process in front of `database` on `cluster`, logging to `log`,
/// and returns it with a connection string through it.
pub(crate) async fn encrypting_proxy(
    cluster: &Cluster,
    database: &str,
    master_key_base64: Zeroizing<String>,
    log: PathBuf,
) -> Result<(ProxyProcess, String), BenchError> {
    let setup = EncryptedSetup {
        control_url: cluster.url(database),
        master_key_base64,
    };
    let proxy = ProxyProcess::start(cluster.port(), Some(&setup), log).await?;
    let url = format!(
        "host=127.0.0.1 port={} user={} dbname={database}",
        proxy.port(),
        pgseal_localpg::SUPERUSER
    );
    Ok((proxy, url))
}

/// `pgseal::init` under `master`, without an audit log.
pub(crate) async fn install_pgseal(
    client: &mut Client,
    master: &MasterKeyring,
) -> Result<(), BenchError> {
    pgseal::init(client, master, &AuditLog::disabled())
        .await
        .map_err(|source| BenchError::Pgseal {
            action: "installing the pgseal schema",
            source,
        })?;
    Ok(())
}

/// The cluster settings the benchmarks share: enough shared buffers to hold their tables.
pub(crate) fn cluster_options() -> ClusterOptions {
    ClusterOptions::new().setting("shared_buffers", "512MB")
}

/// When the run started, for the report.
pub(crate) fn run_date() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// A fresh master key: the keyring the library uses, and the base64 form the proxy process
/// reads from its environment.
pub(crate) fn master_key() -> (MasterKeyring, Zeroizing<String>) {
    let master = MasterKey::generate();
    let base64 = master.expose_base64();
    (MasterKeyring::new(master, Vec::new()), base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BENCH: Bench = Bench {
        name: "test",
        what: "the test benchmark",
        start_marker: "<!-- t:start -->",
        end_marker: "<!-- t:end -->",
    };

    #[test]
    fn replaces_between_the_markers_or_appends() {
        let section = "<!-- t:start -->\nnew\n<!-- t:end -->\n";
        let doc = "# T\n<!-- t:start -->\nold\n<!-- t:end -->\ntail\n";
        assert_eq!(
            BENCH.replace_section(doc, section).expect("markers"),
            "# T\n<!-- t:start -->\nnew\n<!-- t:end -->\ntail\n"
        );
        assert_eq!(
            BENCH.replace_section("# T\n", section).expect("no markers"),
            format!("# T\n\n{section}")
        );
        assert!(BENCH
            .replace_section("<!-- t:end --><!-- t:start -->", section)
            .is_err());
    }
}
