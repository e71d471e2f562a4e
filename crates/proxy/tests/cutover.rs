//! Column-migration cutovers through the encrypting proxy: statements on a table whose cutover
//! is announced wait for it (others do not, nor a transaction that already holds the table),
//! and statements prepared before a cutover keep working after it, pipelined or not.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{clone_master, install, EncryptingProxy, Installed};
use pgseal::migrate::{decrypt_column, encrypt_column, MigrationOptions, NoObserver};
use pgseal::AuditLog;
use tokio_postgres::Client;

/// The encrypting proxy and a direct connection that plays the migration tool.
struct Env {
    proxy: EncryptingProxy,
    admin: Client,
}

async fn setup() -> Env {
    let Installed { db, admin, master } = install(
        "CREATE TABLE accounts (id int PRIMARY KEY, secret text, note text);
         INSERT INTO accounts SELECT i, 'initial-' || i, 'note' FROM generate_series(1, 100) i;
         CREATE TABLE other (id int PRIMARY KEY);
         INSERT INTO other VALUES (1);",
    )
    .await;
    // Long: the tests rely on NOTIFY, not on the interval.
    let proxy = EncryptingProxy::start(db, master, Duration::from_secs(30)).await;
    Env { proxy, admin }
}

/// Records an unfinished migration of `accounts.secret`, as `encrypt-column` does.
async fn record_migration(admin: &Client) {
    admin
        .batch_execute(
            "INSERT INTO pgseal.column_migrations (direction, table_oid, schema_name, table_name,
                 column_name, shadow_name, source_type, target_type, not_null, phase)
             VALUES ('encrypt', 'accounts'::regclass, 'public', 'accounts', 'secret',
                 'secret__pgseal', 'text', 'pgseal.text', false, 'backfill');
             NOTIFY pgseal_catalog;",
        )
        .await
        .expect("record a migration");
}

/// Announces (or withdraws) the cutover of the recorded migration.
async fn announce(admin: &Client, pending: bool) {
    let value = if pending {
        "clock_timestamp() + interval '20 seconds'"
    } else {
        "NULL"
    };
    admin
        .batch_execute(&format!(
            "UPDATE pgseal.column_migrations SET cutover_pending_until = {value};
             NOTIFY pgseal_catalog;"
        ))
        .await
        .expect("announce");
}

/// Long enough for the proxy to load a notified catalog (it takes ~100 ms).
const SETTLE: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_on_a_table_with_a_pending_cutover_wait_and_others_do_not() {
    let env = setup().await;
    record_migration(&env.admin).await;
    // As `encrypt-column` waits after recording its migration: the proxy knows of it before
    // the sessions below touch the table.
    tokio::time::sleep(SETTLE).await;
    let client = Arc::new(env.proxy.proxied().await);
    let in_tx = env.proxy.proxied().await;
    let prepared = client
        .prepare("SELECT secret FROM accounts WHERE id = $1")
        .await
        .expect("prepare");
    // A transaction that touched the table before the announcement holds a lock on it.
    in_tx.batch_execute("BEGIN").await.expect("begin");
    in_tx
        .query_one("SELECT secret FROM accounts WHERE id = 1", &[])
        .await
        .expect("read in the transaction");
    tokio::time::sleep(SETTLE).await;

    announce(&env.admin, true).await;
    tokio::time::sleep(SETTLE).await;

    let held_simple = {
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            client
                .simple_query("SELECT secret FROM accounts WHERE id = 2")
                .await
                .map(|_| ())
        })
    };
    let another = env.proxy.proxied().await;
    let held_prepared = {
        let prepared = prepared.clone();
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.query_one(&prepared, &[&3i32]).await.map(|_| ()) })
    };
    // Other tables, other sessions: not held.
    another
        .query_one("SELECT id FROM other WHERE id = $1", &[&1i32])
        .await
        .expect("another table is not held");
    another
        .simple_query("SELECT 1")
        .await
        .expect("a statement on no table is not held");
    // The transaction that already holds the table goes on: holding it would deadlock with
    // the cutover's lock.
    let row = tokio::time::timeout(
        Duration::from_secs(10),
        in_tx.query_one("SELECT secret FROM accounts WHERE id = 4", &[]),
    )
    .await
    .expect("the transaction holding the table is not held")
    .expect("read");
    assert_eq!(row.get::<_, String>(0), "initial-4");
    in_tx.batch_execute("COMMIT").await.expect("commit");

    tokio::time::sleep(SETTLE).await;
    assert!(
        !held_simple.is_finished(),
        "a simple query on the table waits"
    );
    assert!(
        !held_prepared.is_finished(),
        "a prepared statement on the table waits"
    );

    // Withdrawn (or done): the held statements run.
    announce(&env.admin, false).await;
    let simple = tokio::time::timeout(Duration::from_secs(10), held_simple)
        .await
        .expect("released")
        .expect("task");
    simple.expect("the held simple query succeeds");
    let prepared = tokio::time::timeout(Duration::from_secs(10), held_prepared)
        .await
        .expect("released")
        .expect("task");
    prepared.expect("the held prepared statement succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_prepared_before_a_cutover_are_prepared_again_after_it() {
    let mut env = setup().await;
    let client = env.proxy.proxied().await;
    let update = client
        .prepare("UPDATE accounts SET secret = $1 WHERE id = $2")
        .await
        .expect("prepare update");
    let select = client
        .prepare("SELECT secret FROM accounts WHERE id = $1")
        .await
        .expect("prepare select");
    let both = client
        .prepare("SELECT id, secret FROM accounts WHERE id = $1 OR secret = $2")
        .await
        .expect("prepare select by value");
    // `*` expands to (id, secret, note) now, to (id, note, secret) after the cutover.
    let star = client
        .prepare("SELECT * FROM accounts WHERE id = $1")
        .await
        .expect("prepare select *");
    client
        .execute(&update, &[&"before", &1i32])
        .await
        .expect("update before");

    let options = MigrationOptions {
        proxy_grace: Duration::from_millis(800),
        ..MigrationOptions::default()
    };
    let master = clone_master(&env.proxy.master);
    encrypt_column(
        &mut env.admin,
        &master,
        &AuditLog::disabled(),
        "accounts",
        "secret",
        &options,
        &NoObserver,
    )
    .await
    .expect("encrypt-column");
    tokio::time::sleep(SETTLE).await;

    // The same statements, prepared with the plaintext column, work on the encrypted one.
    let (wrote, read) = tokio::join!(
        client.execute(&update, &[&"after", &1i32]),
        client.query_one(&select, &[&1i32]),
    );
    assert_eq!(wrote.expect("pipelined update after the cutover"), 1);
    assert_eq!(
        read.expect("pipelined read after the cutover")
            .get::<_, String>(0),
        "after"
    );
    let row = client
        .query_one(&select, &[&2i32])
        .await
        .expect("read after the cutover");
    assert_eq!(row.get::<_, String>(0), "initial-2");
    // Re-preparing the `*` would hand the client columns in another order than it was told:
    // the server refuses the old statement instead, as it does without the proxy.
    let refused = client
        .query_one(&star, &[&2i32])
        .await
        .expect_err("a * whose columns moved");
    assert_eq!(
        refused.code().map(|c| c.code().to_owned()).as_deref(),
        Some("0A000"),
        "{refused}"
    );
    let stored: Vec<u8> = env
        .admin
        .query_one("SELECT secret::bytea FROM accounts WHERE id = 1", &[])
        .await
        .expect("raw value")
        .get(0);
    assert!(
        !stored.windows(5).any(|w| w == b"after"),
        "stored encrypted"
    );
    // An equality search on the now-encrypted column: re-prepared as a blind-index search, or
    // refused if the column is not searchable, never answered from ciphertext compared with
    // plaintext.
    match client.query(&both, &[&3i32, &"after"]).await {
        Ok(rows) => {
            let mut ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
            ids.sort_unstable();
            assert_eq!(ids, vec![1, 3]);
        }
        Err(err) => {
            let code = err.code().map(|c| c.code().to_owned());
            assert_eq!(code.as_deref(), Some("0A000"), "{err}");
        }
    }

    // In a failed transaction the statement fails as PostgreSQL makes it, and works after.
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .batch_execute("SELECT 1/0")
        .await
        .expect_err("division by zero");
    let aborted = client
        .query_one(&select, &[&1i32])
        .await
        .expect_err("aborted transaction");
    assert_eq!(
        aborted.code().map(|c| c.code().to_owned()).as_deref(),
        Some("25P02")
    );
    client.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(
        client
            .query_one(&select, &[&1i32])
            .await
            .expect("read after the rollback")
            .get::<_, String>(0),
        "after"
    );

    // And back: the statements follow the column to plaintext too.
    decrypt_column(
        &mut env.admin,
        &master,
        &AuditLog::disabled(),
        "accounts",
        "secret",
        &options,
        &NoObserver,
    )
    .await
    .expect("decrypt-column");
    tokio::time::sleep(SETTLE).await;
    let (wrote, read) = tokio::join!(
        client.execute(&update, &[&"plain again", &1i32]),
        client.query_one(&select, &[&1i32]),
    );
    assert_eq!(wrote.expect("update after decrypt"), 1);
    assert_eq!(
        read.expect("read after decrypt").get::<_, String>(0),
        "plain again"
    );
    let stored: String = env
        .admin
        .query_one("SELECT secret FROM accounts WHERE id = 1", &[])
        .await
        .expect("raw value")
        .get(0);
    assert_eq!(stored, "plain again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_waits_for_the_reload_another_sessions_ddl_asked_for() {
    let env = setup().await;
    let first = env.proxy.proxied().await;
    for round in 0..5 {
        // The table is created through the proxy in one session; its reload is asked for when
        // the CREATE completes. The next session (a new connection, as psql's \copy after a
        // \i) must write with the new catalog: plaintext would be refused by the domain CHECK.
        first
            .batch_execute(&format!("CREATE TABLE fresh{round} (v pgseal.text)"))
            .await
            .expect("create through the proxy");
        let next = env.proxy.proxied().await;
        next.batch_execute(&format!(
            "INSERT INTO fresh{round} VALUES ('secret {round}')"
        ))
        .await
        .expect("the new session knows the new column");
        let rows = next
            .simple_query(&format!("SELECT v FROM fresh{round}"))
            .await
            .expect("read back");
        let value = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        });
        assert_eq!(value.as_deref(), Some(format!("secret {round}").as_str()));
    }
}

/// Raw extended-protocol messages, to control exactly what shares a `Sync`.
mod wire {
    use super::common::raw::message;

    pub fn parse(name: &str, sql: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for s in [name, sql] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        body.extend_from_slice(&0i16.to_be_bytes());
        message(b'P', &body)
    }

    /// A `Bind` of the unnamed portal with text parameters.
    pub fn bind(statement: &str, params: &[&str]) -> Vec<u8> {
        let mut body = vec![0];
        body.extend_from_slice(statement.as_bytes());
        body.push(0);
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&i16::try_from(params.len()).expect("few").to_be_bytes());
        for p in params {
            body.extend_from_slice(&i32::try_from(p.len()).expect("short").to_be_bytes());
            body.extend_from_slice(p.as_bytes());
        }
        body.extend_from_slice(&0i16.to_be_bytes());
        message(b'B', &body)
    }

    pub fn execute() -> Vec<u8> {
        let mut body = vec![0];
        body.extend_from_slice(&0i32.to_be_bytes());
        message(b'E', &body)
    }

    pub fn sync() -> Vec<u8> {
        message(b'S', &[])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_prepare_discarded_by_an_earlier_error_in_the_pipeline_is_made_again() {
    use common::raw::{error_fields, login, read_message};
    use tokio::io::AsyncWriteExt;

    let mut env = setup().await;
    let mut stream = login(env.proxy.addr, env.proxy.db.name()).await;
    let mut batch = wire::parse("up", "UPDATE accounts SET secret = $1 WHERE id = $2");
    batch.extend(wire::parse(
        "sel",
        "SELECT secret FROM accounts WHERE id = $1",
    ));
    batch.extend(wire::sync());
    stream.write_all(&batch).await.expect("send");
    assert_eq!(
        common::raw::read_until_ready(&mut stream).await,
        b"11Z".to_vec()
    );

    let options = MigrationOptions {
        proxy_grace: Duration::from_millis(800),
        ..MigrationOptions::default()
    };
    encrypt_column(
        &mut env.admin,
        &clone_master(&env.proxy.master),
        &AuditLog::disabled(),
        "accounts",
        "secret",
        &options,
        &NoObserver,
    )
    .await
    .expect("encrypt-column");
    tokio::time::sleep(SETTLE).await;

    // One cycle: a failing statement, then the statement to re-prepare. The server discards
    // everything after the error up to Sync, the proxy's Close and Parse included; the client
    // sees exactly what PostgreSQL would send.
    let mut batch = wire::parse("", "SELECT 1/0");
    batch.extend(wire::bind("", &[]));
    batch.extend(wire::execute());
    batch.extend(wire::bind("up", &["pipelined", "1"]));
    batch.extend(wire::execute());
    batch.extend(wire::sync());
    stream.write_all(&batch).await.expect("send");
    let mut tags = Vec::new();
    loop {
        let (tag, body) = read_message(&mut stream).await.expect("answer");
        tags.push(tag);
        if tag == b'E' {
            assert_eq!(error_fields(&body).0, "22012");
        }
        if tag == b'Z' {
            break;
        }
    }
    // `1/0` is folded when planned, at Bind: ParseComplete, then the error.
    assert_eq!(tags, b"1EZ".to_vec(), "nothing of the proxy's own leaks");

    // The next cycle prepares both statements again and runs them.
    let mut batch = wire::bind("up", &["pipelined", "1"]);
    batch.extend(wire::execute());
    batch.extend(wire::bind("sel", &["1"]));
    batch.extend(wire::execute());
    batch.extend(wire::sync());
    stream.write_all(&batch).await.expect("send");
    let mut tags = Vec::new();
    let mut value = None;
    loop {
        let (tag, body) = read_message(&mut stream).await.expect("answer");
        tags.push(tag);
        match tag {
            b'E' => panic!("error: {:?}", error_fields(&body)),
            b'D' => {
                // One column: int16 count, int32 length, the text.
                let text = body.get(6..).expect("a value");
                value = Some(String::from_utf8_lossy(text).into_owned());
            }
            b'Z' => break,
            _ => {}
        }
    }
    assert_eq!(
        tags,
        b"2C2DCZ".to_vec(),
        "the client sees its own answers only"
    );
    assert_eq!(value.as_deref(), Some("pipelined"));
    let stored: Vec<u8> = env
        .admin
        .query_one("SELECT secret::bytea FROM accounts WHERE id = 1", &[])
        .await
        .expect("raw value")
        .get(0);
    assert!(!stored.windows(9).any(|w| w == b"pipelined"), "sealed");
}
