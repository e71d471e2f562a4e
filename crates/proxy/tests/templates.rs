//! Plan templates against a real PostgreSQL: statements that differ only in their constants
//! share one analysis in the proxy, and every value still reaches the server and comes back
//! exactly as it does on a plaintext table. `enc.t` and `plain.t` here have the same columns,
//! encrypted in `enc`.

mod common;

use std::time::Duration;

use common::{encrypting_proxy, simple_rows, EncryptingProxy};
use tokio_postgres::Client;

async fn setup() -> EncryptingProxy {
    encrypting_proxy(
        "CREATE SCHEMA enc; CREATE SCHEMA plain;
         CREATE TABLE enc.t (id int PRIMARY KEY, v pgseal.text, n pgseal.numeric, \
             d pgseal.date, b pgseal.bool);
         CREATE TABLE plain.t (id int PRIMARY KEY, v text, n numeric, d date, b bool);",
        Duration::from_millis(500),
    )
    .await
}

/// All rows of `schema.t`, as text, read through the proxy.
/// Every row of `{schema}.t`, as text.
async fn rows(client: &Client, schema: &str) -> Vec<Vec<Option<String>>> {
    simple_rows(
        client,
        &format!("SELECT id, v, n, d, b FROM {schema}.t ORDER BY id"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_differing_in_constants_keep_their_own_values() {
    let env = setup().await;
    let client = env.proxied().await;
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
