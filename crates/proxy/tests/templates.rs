//! Plan templates against a real PostgreSQL: statements that differ only in their constants
//! share one analysis in the proxy, and every value still reaches the server and comes back
//! exactly as it does on a plaintext table. `enc.t` and `plain.t` here have the same columns,
//! encrypted in `enc`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::config_for;
use pgseal::{AuditLog, MasterKey, MasterKeyring};
use pgseal_proxy::{serve_encrypted, EncryptionOptions, ProxyError};
use pgseal_testkit::{TestCluster, TestDatabase};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

struct Env {
    db: TestDatabase,
    addr: SocketAddr,
    stop: Arc<Notify>,
    task: JoinHandle<Result<(), ProxyError>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.notify_one();
        self.task.abort();
    }
}

impl Env {
    async fn client(&self) -> Client {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres dbname={}",
            self.addr.port(),
            self.db.name()
        );
        let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
            .await
            .expect("connect through the encrypting proxy");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

async fn setup() -> Env {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let mut admin = db.connect().await;
    let master = MasterKeyring::new(MasterKey::generate(), Vec::new());
    pgseal::init(&mut admin, &master, &AuditLog::disabled())
        .await
        .expect("install pgseal");
    admin
        .batch_execute(
            "CREATE SCHEMA enc; CREATE SCHEMA plain;
             CREATE TABLE enc.t (id int PRIMARY KEY, v pgseal.text, n pgseal.numeric, \
                 d pgseal.date, b pgseal.bool);
             CREATE TABLE plain.t (id int PRIMARY KEY, v text, n numeric, d date, b bool);",
        )
        .await
        .expect("schema");
    let options = EncryptionOptions {
        control_url: db.url().to_owned(),
        master: MasterKeyring::new(
            MasterKey::from_base64("test", &master.current().expose_base64()).expect("valid key"),
            Vec::new(),
        ),
        audit: AuditLog::disabled(),
        reload_interval: Duration::from_millis(500),
    };
    let stop = Arc::new(Notify::new());
    let stopped = Arc::clone(&stop);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(serve_encrypted(
        config_for(cluster),
        options,
        move |addr| {
            let _ = tx.send(addr);
        },
        async move { stopped.notified().await },
    ));
    let addr = rx.await.expect("the proxy is ready");
    Env {
        db,
        addr,
        stop,
        task,
    }
}

/// All rows of `schema.t`, as text, read through the proxy.
async fn rows(client: &Client, schema: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(&format!(
            "SELECT id, v, n, d, b FROM {schema}.t ORDER BY id"
        ))
        .await
        .expect("read")
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_differing_in_constants_keep_their_own_values() {
    let env = setup().await;
    let client = env.client().await;
    let strings = [
        "'a'",
        "''",
        "'it''s'",
        "'Zoë ∑ 🦀'",
        "'a much longer value, 123'",
        "'\\x00'",
    ];
    let numbers = [
        "0",
        "-0",
        "7",
        "-5",
        "007",
        "- 12",
        "1.50",
        "-2.25",
        "1e3",
        "3000000000",
        "-.5",
    ];
    let dates = [
        "'2024-01-02'",
        "date '1999-12-31'",
        "'2000-02-29'::date",
        "NULL",
    ];
    let bools = ["true", "FALSE", "'t'", "NULL"];
    let mut id = 0;
    for (i, number) in numbers.iter().enumerate() {
        for (j, string) in strings.iter().enumerate() {
            id += 1;
            let date = dates[(i + j) % dates.len()];
            let boolean = bools[(i * 3 + j) % bools.len()];
            for schema in ["enc", "plain"] {
                let sql = format!(
                    "INSERT INTO {schema}.t (id, v, n, d, b) VALUES ({id}, {string}, {number}, {date}, {boolean})"
                );
                client
                    .batch_execute(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }
    // Updates and deletes of the same shape with other constants.
    for schema in ["enc", "plain"] {
        for (k, number) in numbers.iter().enumerate() {
            let sql = format!(
                "UPDATE {schema}.t SET n = {number}, v = 'updated {k}' WHERE id = {}",
                k * 3 + 1
            );
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        for gone in [2, 9, 30] {
            let sql = format!("DELETE FROM {schema}.t WHERE id = {gone}");
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    let encrypted = rows(&client, "enc").await;
    assert_eq!(encrypted.len(), id - 3);
    assert_eq!(encrypted, rows(&client, "plain").await);
    // What the server holds for `enc.t` is ciphertext.
    let admin = env.db.connect().await;
    let stored: Vec<String> = admin
        .query("SELECT v::bytea::text FROM enc.t", &[])
        .await
        .expect("read directly")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        stored.iter().all(|v| v.starts_with("\\xb501")),
        "{stored:?}"
    );
}
