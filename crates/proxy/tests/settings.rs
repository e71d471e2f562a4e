//! Session settings through transactions, against a real PostgreSQL: `SET LOCAL`,
//! `set_config()`, `ROLLBACK`, savepoints and failed implicit transactions change the
//! `search_path` the proxy resolves tables with exactly as they change the server's. Two
//! schemas hold a table `t`: in `enc` its column `v` is encrypted, in `plain` it is not, so a
//! proxy that resolved the wrong one would either store plaintext in `enc.t` (which the
//! domain's check rejects) or ciphertext in `plain.t` (which the test reads back).

mod common;

use std::time::Duration;

use common::{encrypting_proxy, EncryptingProxy};
use tokio_postgres::{Client, SimpleQueryMessage};

async fn setup() -> EncryptingProxy {
    encrypting_proxy(
        "CREATE SCHEMA enc; CREATE SCHEMA plain;
         CREATE TABLE enc.t (id int PRIMARY KEY, v pgseal.text);
         CREATE TABLE plain.t (id int PRIMARY KEY, v text);",
        Duration::from_millis(500),
    )
    .await
}

/// The first column of every row of a simple query.
async fn column(client: &Client, sql: &str) -> Vec<Option<String>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
            _ => None,
        })
        .collect()
}

/// Where row `id` went, read directly from the server: `"enc"` (stored as a ciphertext) or
/// `"plain:<value>"`.
async fn stored(env: &EncryptingProxy, id: i32) -> Vec<String> {
    let admin = env.db.connect().await;
    let mut found = Vec::new();
    let enc = admin
        .query("SELECT v::bytea FROM enc.t WHERE id = $1", &[&id])
        .await
        .expect("read enc.t");
    for row in enc {
        let bytes: Vec<u8> = row.get(0);
        assert!(!bytes.is_empty());
        found.push("enc".to_owned());
    }
    let plain = admin
        .query("SELECT v FROM plain.t WHERE id = $1", &[&id])
        .await
        .expect("read plain.t");
    for row in plain {
        let value: String = row.get(0);
        found.push(format!("plain:{value}"));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_local_lasts_until_the_transaction_ends() {
    let env = setup().await;
    let client = env.proxied().await;
    client
        .batch_execute("SET search_path = plain")
        .await
        .expect("set");

    // SET LOCAL inside a transaction: the statements in it resolve `enc.t`.
    client
        .batch_execute("BEGIN; SET LOCAL search_path = enc, public")
        .await
        .expect("begin");
    client
        .batch_execute("INSERT INTO t VALUES (1, 'inside')")
        .await
        .expect("insert inside the transaction");
    assert_eq!(
        column(&client, "SELECT v FROM t WHERE id = 1").await,
        [Some("inside".to_owned())]
    );
    client.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(stored(&env, 1).await, ["enc"]);

    // After COMMIT the session's own setting is back, in the server and in the proxy.
    assert_eq!(
        column(&client, "SHOW search_path").await,
        [Some("plain".to_owned())]
    );
    client
        .batch_execute("INSERT INTO t VALUES (2, 'after commit')")
        .await
        .expect("insert after commit");
    assert_eq!(stored(&env, 2).await, ["plain:after commit"]);

    // The same in one simple query string.
    client
        .batch_execute(
            "BEGIN; SET LOCAL search_path = enc, public; INSERT INTO t VALUES (3, 'x'); COMMIT;
             INSERT INTO t VALUES (4, 'y')",
        )
        .await
        .expect("one string");
    assert_eq!(stored(&env, 3).await, ["enc"]);
    assert_eq!(stored(&env, 4).await, ["plain:y"]);

    // The extended protocol inside a transaction.
    let mut client = client;
    let tx = client.transaction().await.expect("begin");
    tx.batch_execute("SET LOCAL search_path TO enc")
        .await
        .expect("set local");
    tx.execute("INSERT INTO t VALUES ($1, $2)", &[&5i32, &"bound"])
        .await
        .expect("insert with parameters");
    let row = tx
        .query_one("SELECT v FROM t WHERE id = $1", &[&5i32])
        .await
        .expect("read back");
    assert_eq!(row.get::<_, String>(0), "bound");
    tx.commit().await.expect("commit");
    assert_eq!(stored(&env, 5).await, ["enc"]);
    client
        .execute("INSERT INTO t VALUES ($1, $2)", &[&6i32, &"plain again"])
        .await
        .expect("insert after commit");
    assert_eq!(stored(&env, 6).await, ["plain:plain again"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollbacks_savepoints_and_errors_undo_changes() {
    let env = setup().await;
    let client = env.proxied().await;
    client
        .batch_execute("SET search_path = plain")
        .await
        .expect("set");

    // A session-level SET undone by ROLLBACK.
    client
        .batch_execute("BEGIN; SET search_path = enc; ROLLBACK")
        .await
        .expect("rolled back");
    client
        .batch_execute("INSERT INTO t VALUES (1, 'a')")
        .await
        .expect("insert");
    assert_eq!(stored(&env, 1).await, ["plain:a"]);

    // Undone by ROLLBACK TO a savepoint made before it; kept when made before the savepoint.
    client
        .batch_execute(
            "BEGIN; SET LOCAL search_path = enc; SAVEPOINT s; SET LOCAL search_path = plain;
             ROLLBACK TO SAVEPOINT s; INSERT INTO t VALUES (2, 'b')",
        )
        .await
        .expect("savepoint");
    client.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(stored(&env, 2).await, ["enc"]);
    client
        .batch_execute(
            "BEGIN; SAVEPOINT s; SET search_path = enc; ROLLBACK TO s; \
             INSERT INTO t VALUES (3, 'c'); COMMIT",
        )
        .await
        .expect("savepoint");
    assert_eq!(stored(&env, 3).await, ["plain:c"]);

    // A failed implicit transaction takes its SET with it.
    let failed = client
        .batch_execute("SET search_path = enc; SELECT 1 / 0")
        .await;
    assert!(failed.is_err());
    assert_eq!(
        column(&client, "SHOW search_path").await,
        [Some("plain".to_owned())]
    );
    client
        .batch_execute("INSERT INTO t VALUES (4, 'd')")
        .await
        .expect("insert");
    assert_eq!(stored(&env, 4).await, ["plain:d"]);

    // A text the proxy refuses never runs: its SET does not count either.
    let refused = client
        .batch_execute("SET search_path = enc; SELECT lower(v) FROM t")
        .await
        .expect_err("refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("0A000"));
    client
        .batch_execute("INSERT INTO t VALUES (6, 'f')")
        .await
        .expect("insert");
    assert_eq!(stored(&env, 6).await, ["plain:f"]);

    // A failed explicit transaction too, once rolled back.
    client
        .batch_execute("BEGIN; SET search_path = enc")
        .await
        .expect("begin");
    assert!(client.batch_execute("SELECT 1 / 0").await.is_err());
    client
        .batch_execute("COMMIT")
        .await
        .expect("commit of a failed transaction");
    client
        .batch_execute("INSERT INTO t VALUES (5, 'e')")
        .await
        .expect("insert");
    assert_eq!(stored(&env, 5).await, ["plain:e"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_config_is_followed_or_refused() {
    let env = setup().await;
    let client = env.proxied().await;
    client
        .batch_execute("SET search_path = plain")
        .await
        .expect("set");

    // is_local = true: until the end of the transaction.
    client
        .batch_execute(
            "BEGIN; SELECT set_config('search_path', 'enc', true); \
             INSERT INTO t VALUES (1, 'local'); COMMIT; INSERT INTO t VALUES (2, 'after')",
        )
        .await
        .expect("set_config local");
    assert_eq!(stored(&env, 1).await, ["enc"]);
    assert_eq!(stored(&env, 2).await, ["plain:after"]);

    // is_local = false: for the session.
    client
        .batch_execute("SELECT pg_catalog.set_config('search_path', 'enc, public', false)")
        .await
        .expect("set_config");
    client
        .batch_execute("INSERT INTO t VALUES (3, 'session')")
        .await
        .expect("insert");
    assert_eq!(stored(&env, 3).await, ["enc"]);
    assert_eq!(
        column(&client, "SELECT v FROM t WHERE id = 3").await,
        [Some("session".to_owned())]
    );

    // Arguments the proxy cannot know: refused before reaching the server.
    let refused = client
        .simple_query(
            "SELECT set_config('search_path', current_setting('search_path') || ', plain', false)",
        )
        .await
        .expect_err("refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("0A000"));
    let refused = client
        .query(
            "SELECT set_config($1, $2, false)",
            &[&"search_path", &"plain"],
        )
        .await
        .expect_err("refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("0A000"));
    // The name spelled with Unicode escapes: the proxy does not decode it, so it refuses.
    let refused = client
        .simple_query(r#"SELECT U&"s\0065t_config"('search_path', 'plain', false)"#)
        .await
        .expect_err("refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("0A000"));
    assert_eq!(
        column(&client, "SHOW search_path").await,
        [Some("enc, public".to_owned())]
    );
    // A setting the proxy does not track is none of its business.
    client
        .query("SELECT set_config('work_mem', $1, false)", &[&"8MB"])
        .await
        .expect("untracked setting");
}

/// What a text does to the settings is kept with its analysis: a text sent again, and a text
/// that differs only in constants from one analysed before (they share a plan template), are
/// followed or refused as the first time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_templated_texts_keep_their_setting_changes() {
    let env = setup().await;
    let client = env.proxied().await;
    let cannot_follow =
        "SELECT set_config('search_path', current_setting('search_path') || ', plain', false)";
    for round in 0..3 {
        client
            .batch_execute("SET search_path = plain")
            .await
            .expect("set plain");
        client
            .batch_execute(&format!("INSERT INTO t VALUES ({}, 'p')", 10 + round))
            .await
            .expect("insert into plain.t");
        client
            .batch_execute("SET search_path = enc")
            .await
            .expect("set enc");
        client
            .batch_execute(&format!("INSERT INTO t VALUES ({}, 'e')", 20 + round))
            .await
            .expect("insert into enc.t");
        let refused = client
            .simple_query(cannot_follow)
            .await
            .expect_err("refused every time");
        assert_eq!(refused.code().map(|c| c.code()), Some("0A000"));
    }
    for round in 0..3 {
        assert_eq!(stored(&env, 10 + round).await, ["plain:p"]);
        assert_eq!(stored(&env, 20 + round).await, ["enc"]);
    }

    // Both calls have the key `SELECT set_config(<s>, <s>, false)`: the first, on a setting
    // the proxy does not track, makes the template; the second changes search_path.
    client
        .batch_execute("SET search_path = plain")
        .await
        .expect("set plain");
    client
        .batch_execute("SELECT set_config('work_mem', '8MB', false)")
        .await
        .expect("untracked setting");
    client
        .batch_execute("SELECT set_config('search_path', 'enc', false)")
        .await
        .expect("tracked setting");
    client
        .batch_execute("INSERT INTO t VALUES (30, 'x')")
        .await
        .expect("insert into enc.t");
    assert_eq!(stored(&env, 30).await, ["enc"]);
}

/// A session starts with the settings the server resolved for it, which the startup packet
/// does not show: `ALTER ROLE ... IN DATABASE ... SET` here (`ALTER DATABASE ... SET` and
/// postgresql.conf work the same way). The proxy asks the session before judging anything.
/// And a `SET` is followed however it is written: with comments, a quoted name in any case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_the_server_chose_and_unusual_spellings_are_followed() {
    let env = setup().await;
    let admin = env.db.connect().await;
    admin
        .batch_execute(&format!(
            "ALTER ROLE postgres IN DATABASE \"{}\" SET search_path = enc, public",
            env.db.name()
        ))
        .await
        .expect("role default");
    let client = env.proxied().await;
    assert_eq!(
        column(&client, "SHOW search_path").await,
        [Some("enc, public".to_owned())]
    );
    client
        .batch_execute("INSERT INTO t VALUES (1, 'role default')")
        .await
        .expect("the role's search_path resolves enc.t, whose value is sealed");
    assert_eq!(stored(&env, 1).await, ["enc"]);

    client
        .batch_execute("SET/* x */search_path = plain; INSERT INTO t VALUES (2, 'commented')")
        .await
        .expect("set with a comment");
    assert_eq!(stored(&env, 2).await, ["plain:commented"]);
    client
        .batch_execute("SET \"Search_Path\" TO enc; INSERT INTO t VALUES (3, 'quoted')")
        .await
        .expect("set with a quoted name");
    assert_eq!(stored(&env, 3).await, ["enc"]);
    // RESET returns to the session's own default, the role's.
    client
        .batch_execute(
            "SET search_path = plain; RESET search_path; INSERT INTO t VALUES (4, 'reset')",
        )
        .await
        .expect("reset");
    assert_eq!(stored(&env, 4).await, ["enc"]);

    // A spelling the proxy cannot follow is refused, not guessed at.
    let refused = client
        .simple_query(r#"SET U&"search_p\0061th" = plain"#)
        .await
        .expect_err("refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("0A000"));
    assert_eq!(
        column(&client, "SHOW search_path").await,
        [Some("enc, public".to_owned())]
    );
}

/// `"$user"` in `search_path` is the current user, which `SET ROLE` changes: a schema named
/// like the role (one schema per tenant, one role per tenant) then holds the tables that
/// unqualified names mean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_role_changes_what_user_means() {
    let env = setup().await;
    // Roles are the cluster's: one named after this test's database is its own.
    let tenant = format!("tenant_{}", env.db.name());
    let client = env.proxied().await;
    client
        .batch_execute(&format!(
            "CREATE ROLE \"{tenant}\"; CREATE SCHEMA \"{tenant}\";
             CREATE TABLE \"{tenant}\".t (id int PRIMARY KEY, v pgseal.text);
             GRANT USAGE ON SCHEMA \"{tenant}\", plain, pgseal TO \"{tenant}\";
             GRANT ALL ON \"{tenant}\".t, plain.t TO \"{tenant}\""
        ))
        .await
        .expect("tenant schema");
    let in_tenant = |id: i32| {
        let tenant = tenant.clone();
        let db = &env.db;
        async move {
            let admin = db.connect().await;
            admin
                .query(
                    &format!("SELECT 1 FROM \"{tenant}\".t WHERE id = $1"),
                    &[&id],
                )
                .await
                .expect("read the tenant's table")
                .len()
        }
    };

    client
        .batch_execute("SET search_path = \"$user\", plain; INSERT INTO t VALUES (1, 'no role')")
        .await
        .expect("no schema is named postgres: plain.t");
    assert_eq!(stored(&env, 1).await, ["plain:no role"]);
    // As a string: the role's name exactly as written.
    client
        .batch_execute(&format!(
            "SET ROLE '{tenant}'; INSERT INTO t VALUES (2, 'tenant')"
        ))
        .await
        .expect("the tenant's t, whose value is sealed");
    assert_eq!(in_tenant(2).await, 1);
    client
        .batch_execute("RESET ROLE; INSERT INTO t VALUES (3, 'reset')")
        .await
        .expect("back to plain.t");
    assert_eq!(stored(&env, 3).await, ["plain:reset"]);
    // SET LOCAL ROLE ends with its transaction.
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE \"{tenant}\"; INSERT INTO t VALUES (4, 'local'); COMMIT;
             INSERT INTO t VALUES (5, 'after')"
        ))
        .await
        .expect("set local role");
    assert_eq!(in_tenant(4).await, 1);
    assert_eq!(stored(&env, 5).await, ["plain:after"]);

    let refused = client
        .simple_query("SET SESSION AUTHORIZATION DEFAULT")
        .await
        .expect_err("refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("0A000"));
}

/// PostgreSQL parses a prepared statement again when `search_path` has changed since it was
/// prepared, so the same statement can write to another table: the proxy prepares it again
/// under the new path too, and seals what now goes to an encrypted column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_follow_search_path_changes() {
    let env = setup().await;
    let client = env.proxied().await;
    client
        .batch_execute("SET search_path = plain")
        .await
        .expect("set");
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, $2)")
        .await
        .expect("prepare");
    let select = client
        .prepare("SELECT v FROM t WHERE id = $1")
        .await
        .expect("prepare");
    client
        .execute(&insert, &[&1i32, &"plain first"])
        .await
        .expect("insert into plain.t");
    assert_eq!(stored(&env, 1).await, ["plain:plain first"]);

    client
        .batch_execute("SET search_path = enc, public")
        .await
        .expect("set");
    client
        .execute(&insert, &[&2i32, &"sealed"])
        .await
        .expect("the same statement now inserts into enc.t, sealed");
    assert_eq!(stored(&env, 2).await, ["enc"]);
    let row = client.query_one(&select, &[&2i32]).await.expect("select");
    assert_eq!(row.get::<_, String>(0), "sealed");

    client
        .batch_execute("SET search_path = plain")
        .await
        .expect("set");
    client
        .execute(&insert, &[&3i32, &"plain again"])
        .await
        .expect("back to plain.t");
    assert_eq!(stored(&env, 3).await, ["plain:plain again"]);
}

/// A prepared `SET` changes the setting when it is executed, not when it is prepared; it may
/// be executed later, several times, or never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_set_statements_take_effect_when_executed() {
    let env = setup().await;
    let client = env.proxied().await;
    let to_enc = client
        .prepare("SET search_path = enc, public")
        .await
        .expect("prepare");
    let to_plain = client
        .prepare("SET search_path = plain")
        .await
        .expect("prepare");
    client.execute(&to_enc, &[]).await.expect("execute");
    client
        .batch_execute("INSERT INTO t VALUES (1, 'after enc')")
        .await
        .expect("the executed SET chose enc.t, so the value is sealed");
    assert_eq!(stored(&env, 1).await, ["enc"]);
    client.execute(&to_plain, &[]).await.expect("execute");
    client
        .batch_execute("INSERT INTO t VALUES (2, 'after plain')")
        .await
        .expect("insert");
    assert_eq!(stored(&env, 2).await, ["plain:after plain"]);
    client.execute(&to_enc, &[]).await.expect("again");
    client
        .batch_execute("INSERT INTO t VALUES (3, 'enc again')")
        .await
        .expect("insert");
    assert_eq!(stored(&env, 3).await, ["enc"]);
}

/// Not a setting, but the same blind spot: the proxy's catalog connection cannot see a
/// session's temporary relations, so temporary tables and views with encrypted values are
/// refused before they reach the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_relations_with_encrypted_columns_are_refused() {
    let env = setup().await;
    let client = env.proxied().await;
    for sql in [
        "CREATE TEMP TABLE tmp1 (id int, v pgseal.text)",
        "CREATE TEMPORARY TABLE tmp2 (LIKE enc.t)",
        "CREATE TEMP TABLE tmp3 AS SELECT id, v FROM enc.t",
        "SELECT id, v INTO TEMP tmp4 FROM enc.t",
        "CREATE TEMP VIEW tmp5 AS SELECT v FROM enc.t",
    ] {
        let refused = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(refused.code().map(|c| c.code()), Some("0A000"), "{sql}");
    }
    // Nothing reached the server.
    let admin = env.db.connect().await;
    let count: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relname LIKE 'tmp%'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 0);
    // Temporary tables of plaintext columns, even copied from an encrypted table, work.
    client
        .batch_execute(
            "INSERT INTO enc.t VALUES (1, 'x');
             CREATE TEMP TABLE ids AS SELECT id FROM enc.t;
             CREATE TEMP TABLE notes (id int, body text)",
        )
        .await
        .expect("plaintext temporary tables");
    assert_eq!(
        column(&client, "SELECT id FROM ids").await,
        [Some("1".to_owned())]
    );
}
