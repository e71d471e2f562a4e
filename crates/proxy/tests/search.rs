//! Equality search on encrypted columns through the proxy, against a real PostgreSQL: `=`,
//! `<>`, `IN`, `NOT IN` in both protocols give the same rows as on plaintext (NULL semantics
//! included), inside joins, subqueries and CTEs; a parameter may be stored and searched for at
//! once; indexes, `UNIQUE` and `ON CONFLICT` work on the blind index; lookups keep finding rows
//! while index key versions coexist; what the blind index cannot answer stays refused.

mod common;

use std::time::Duration;

use common::{install, simple_rows, EncryptingProxy, Installed};
use pgseal::AuditLog;
use pgseal_crypto::KeyPurpose;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

const SCHEMA: &str = "
    CREATE TABLE people (id int PRIMARY KEY, name text, code pgseal.text_eq,
                         email pgseal.email, note pgseal.text);
    CREATE TABLE people_plain (id int PRIMARY KEY, name text, code text, email text, note text);";
const ROWS: &str =
    "(1, 'one', 'a', 'ann@example.com', 'n1'), (2, 'two', 'b', 'bob@example.com', 'n2'),
    (3, 'three', 'b', NULL, 'n3'), (4, 'four', NULL, 'dan@example.com', NULL),
    (5, 'five', 'c', 'eve@example.com', 'n5')";

async fn setup() -> EncryptingProxy {
    let Installed {
        db,
        mut admin,
        master,
    } = install(SCHEMA).await;
    pgseal::init(&mut admin, &master, &AuditLog::disabled())
        .await
        .expect("register the columns");
    let env = EncryptingProxy::start(db, master, Duration::from_millis(300)).await;
    let client = env.proxied().await;
    for table in ["people", "people_plain"] {
        client
            .batch_execute(&format!("INSERT INTO {table} VALUES {ROWS}"))
            .await
            .expect("rows");
    }
    env
}

async fn ids(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<i32> {
    client
        .query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn error_code<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>) -> (String, String) {
    let err = result.expect_err("refused");
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {err}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

/// Same statement on the encrypted and the plain table (`{t}`), simple protocol.
const SAME_AS_PLAIN: &[&str] = &[
    "SELECT id, code FROM {t} WHERE code = 'b' ORDER BY id",
    "SELECT id FROM {t} WHERE 'b' = code ORDER BY id",
    "SELECT id FROM {t} WHERE code <> 'b' ORDER BY id",
    "SELECT id FROM {t} WHERE code != 'b' OR code IS NULL ORDER BY id",
    "SELECT id FROM {t} WHERE code IN ('a', 'c', 'zz') ORDER BY id",
    "SELECT id FROM {t} WHERE code IN ('a', NULL) ORDER BY id",
    "SELECT id FROM {t} WHERE code NOT IN ('a', 'c') ORDER BY id",
    "SELECT id FROM {t} WHERE code NOT IN ('a', NULL) ORDER BY id",
    "SELECT id FROM {t} WHERE code = NULL ORDER BY id",
    "SELECT id, (code = 'a') IS NULL, code = 'a', code NOT IN ('b', NULL) FROM {t} ORDER BY id",
    "SELECT id FROM {t} WHERE code = 'b' AND name = 'three'",
    "SELECT id FROM {t} WHERE (code = 'a' OR code = 'c') AND id > 1 ORDER BY id",
    "SELECT a.id, b.id FROM {t} a JOIN {t} b ON b.id > a.id AND b.code = 'b' ORDER BY 1, 2",
    "SELECT a.id, b.name FROM {t} a LEFT JOIN {t} b ON b.id = a.id AND b.code = 'a' ORDER BY 1",
    "SELECT id FROM {t} WHERE id IN (SELECT id FROM {t} WHERE code = 'b') ORDER BY id",
    "SELECT id FROM {t} x WHERE EXISTS (SELECT 1 FROM {t} y WHERE y.code = 'c' AND y.id = x.id)",
    "WITH m AS (SELECT id, code FROM {t} WHERE code IN ('a', 'b')) SELECT id, code FROM m ORDER BY id",
    "SELECT count(*) FROM {t} WHERE code = 'b'",
    "SELECT id, email FROM {t} WHERE email = 'bob@example.com'",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equality_predicates_give_the_rows_plaintext_gives() {
    let env = setup().await;
    let client = env.proxied().await;
    for sql in SAME_AS_PLAIN {
        let encrypted = simple_rows(&client, &sql.replace("{t}", "people")).await;
        let plain = simple_rows(&client, &sql.replace("{t}", "people_plain")).await;
        assert_eq!(encrypted, plain, "{sql}");
    }
    // Extended protocol: the same with parameters, NULL parameters included.
    let none: Option<&str> = None;
    let cases: Vec<(&str, Vec<&(dyn ToSql + Sync)>)> = vec![
        ("SELECT id FROM {t} WHERE code = $1 ORDER BY id", vec![&"b"]),
        ("SELECT id FROM {t} WHERE $1 = code ORDER BY id", vec![&"a"]),
        (
            "SELECT id FROM {t} WHERE code <> $1 ORDER BY id",
            vec![&"b"],
        ),
        (
            "SELECT id FROM {t} WHERE code = $1 ORDER BY id",
            vec![&none],
        ),
        (
            "SELECT id FROM {t} WHERE code IN ($1, 'c', $2) ORDER BY id",
            vec![&"a", &none],
        ),
        (
            "SELECT id FROM {t} WHERE code NOT IN ($1, $2) ORDER BY id",
            vec![&"a", &"c"],
        ),
        (
            "SELECT id FROM {t} WHERE code NOT IN ($1, $2) ORDER BY id",
            vec![&"a", &none],
        ),
        (
            "SELECT id FROM {t} WHERE code = $1 AND name = $2 ORDER BY id",
            vec![&"b", &"two"],
        ),
        (
            "SELECT id FROM {t} WHERE name = $2 OR code = $1 ORDER BY id",
            vec![&"c", &"one"],
        ),
        (
            "SELECT id FROM {t} WHERE code = $1 OR email = $1 ORDER BY id",
            vec![&"a"],
        ),
        (
            "SELECT a.id FROM {t} a JOIN {t} b ON b.id = a.id WHERE b.code = $1 ORDER BY 1",
            vec![&"b"],
        ),
    ];
    for (sql, params) in &cases {
        let encrypted = ids(&client, &sql.replace("{t}", "people"), params).await;
        let plain = ids(&client, &sql.replace("{t}", "people_plain"), params).await;
        assert_eq!(encrypted, plain, "{sql}");
    }
    // The client sees its own parameters only, with their logical types.
    let statement = client
        .prepare(
            "SELECT id, code FROM people WHERE code = $1 AND id > $2 AND email NOT IN ($1, $3)",
        )
        .await
        .expect("prepare");
    assert_eq!(statement.params(), &[Type::TEXT, Type::INT4, Type::TEXT]);
    let rows = client
        .query(&statement, &[&"b", &1i32, &"x"])
        .await
        .expect("query");
    assert_eq!(
        rows.len(),
        1,
        "bob's row; the NULL email is neither in nor not in the list"
    );
    assert_eq!(rows[0].get::<_, i32>(0), 2);
    assert_eq!(rows[0].get::<_, Option<String>>(1).as_deref(), Some("b"));
    // Binary-format parameters of another logical type.
    client
        .batch_execute("CREATE TABLE counters (id int, n pgseal.int4_eq)")
        .await
        .expect("DDL");
    client
        .execute(
            "INSERT INTO counters VALUES (1, $1), (2, $2)",
            &[&7i32, &8i32],
        )
        .await
        .expect("insert");
    assert_eq!(
        ids(&client, "SELECT id FROM counters WHERE n = $1", &[&8i32]).await,
        [2]
    );
    assert_eq!(
        ids(&client, "SELECT id FROM counters WHERE n = 7", &[]).await,
        [1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_deletes_by_equality_and_one_parameter_in_two_roles() {
    let env = setup().await;
    let client = env.proxied().await;
    // `$1` is stored and searched for: the search travels in a parameter of its own.
    let changed = client
        .execute(
            "UPDATE people SET code = $1, name = $2 WHERE code = $1",
            &[&"b", &"renamed"],
        )
        .await
        .expect("update");
    assert_eq!(changed, 2);
    let changed = client
        .execute("UPDATE people SET code = $1 WHERE code = $2", &[&"z", &"b"])
        .await
        .expect("update");
    assert_eq!(changed, 2);
    assert_eq!(
        ids(
            &client,
            "SELECT id FROM people WHERE code = 'z' ORDER BY id",
            &[]
        )
        .await,
        [2, 3]
    );
    let changed = client
        .execute(
            "DELETE FROM people WHERE code = $1 AND name = $2",
            &[&"z", &"renamed"],
        )
        .await
        .expect("delete");
    assert_eq!(changed, 2);
    client
        .batch_execute("UPDATE people SET note = 'changed' WHERE email IN ('ann@example.com')")
        .await
        .expect("simple update");
    let rows = simple_rows(&client, "SELECT note FROM people WHERE id = 1").await;
    assert_eq!(rows[0][0].as_deref(), Some("changed"));
    // RETURNING decrypts as usual.
    let rows = client
        .query(
            "UPDATE people SET name = 'r' WHERE code = $1 RETURNING id, code",
            &[&"c"],
        )
        .await
        .expect("returning");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(1), "c");
    // The same statement prepared once, executed with many values.
    let statement = client
        .prepare("SELECT id FROM people WHERE email = $1")
        .await
        .expect("prepare");
    for (email, id) in [
        ("ann@example.com", 1),
        ("eve@example.com", 5),
        ("dan@example.com", 4),
    ] {
        let rows = client.query(&statement, &[&email]).await.expect("query");
        assert_eq!(
            rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
            [id]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equality_follows_the_column_normalisation() {
    let env = setup().await;
    let client = env.proxied().await;
    assert_eq!(
        ids(
            &client,
            "SELECT id FROM people WHERE email = 'Ann@Example.COM '",
            &[]
        )
        .await,
        [1]
    );
    assert_eq!(
        ids(
            &client,
            "SELECT id FROM people WHERE email = $1",
            &[&"  BOB@example.com"]
        )
        .await,
        [2]
    );
    client
        .batch_execute(
            "CREATE TABLE contacts (id int, phone pgseal.phone, amount pgseal.numeric_eq)",
        )
        .await
        .expect("table");
    client
        .batch_execute("INSERT INTO contacts VALUES (1, '+41 79 123 45 67', 1.50)")
        .await
        .expect("row");
    assert_eq!(
        ids(
            &client,
            "SELECT id FROM contacts WHERE phone = '0041-79-123-45-67'",
            &[]
        )
        .await,
        Vec::<i32>::new(),
        "digits differ: 0041… is not +41…"
    );
    assert_eq!(
        ids(
            &client,
            "SELECT id FROM contacts WHERE phone = '41791234567'",
            &[]
        )
        .await,
        [1]
    );
    assert_eq!(
        ids(
            &client,
            "SELECT id FROM contacts WHERE amount = 1.5000",
            &[]
        )
        .await,
        [1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_unique_and_on_conflict_use_the_blind_index() {
    let env = setup().await;
    let client = env.proxied().await;
    client
        .batch_execute("CREATE INDEX people_email ON people (email)")
        .await
        .expect("index through the proxy");
    let direct = env.db.connect().await;
    let definition: String = direct
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'people_email'",
            &[],
        )
        .await
        .expect("index")
        .get(0);
    assert!(
        definition.contains("pgseal.blind_index((email)"),
        "{definition}"
    );

    // Lookups use it: a plan assertion on a table large enough for the planner to care.
    client
        .batch_execute(
            "INSERT INTO people (id, name) SELECT g, 'n' FROM generate_series(100, 3000) g",
        )
        .await
        .expect("bulk rows");
    direct
        .batch_execute("ANALYZE people")
        .await
        .expect("analyze");
    let plan: Vec<String> = simple_rows(
        &client,
        "EXPLAIN SELECT id FROM people WHERE email = 'ann@example.com'",
    )
    .await
    .into_iter()
    .filter_map(|r| r.into_iter().next().flatten())
    .collect();
    assert!(
        plan.iter()
            .any(|l| l.contains("Index Scan") && l.contains("people_email")),
        "{plan:?}"
    );
    let statement = client
        .prepare("EXPLAIN ANALYZE SELECT id FROM people WHERE email = $1")
        .await
        .expect("prepare EXPLAIN");
    let plan: Vec<String> = client
        .query(&statement, &[&"ann@example.com"])
        .await
        .expect("EXPLAIN ANALYZE")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter()
            .any(|l| l.contains("Index Scan") && l.contains("rows=1 ")),
        "{plan:?}"
    );

    // UNIQUE on equal values, not on ciphertexts.
    client
        .batch_execute("CREATE TABLE accounts (id int, login pgseal.text_eq, n int)")
        .await
        .expect("table");
    client
        .batch_execute("CREATE UNIQUE INDEX accounts_login ON accounts (login)")
        .await
        .expect("unique index");
    client
        .execute("INSERT INTO accounts VALUES (1, $1, 0)", &[&"ann"])
        .await
        .expect("first");
    let (code, _) = error_code(
        client
            .execute("INSERT INTO accounts VALUES (2, $1, 0)", &[&"ann"])
            .await,
    );
    assert_eq!(code, "23505");
    // ON CONFLICT on the searchable column.
    for _ in 0..3 {
        client
            .execute(
                "INSERT INTO accounts VALUES (3, $1, 1) \
                 ON CONFLICT (login) DO UPDATE SET n = accounts.n + 1",
                &[&"ann"],
            )
            .await
            .expect("upsert");
    }
    client
        .batch_execute("INSERT INTO accounts VALUES (4, 'bea', 1) ON CONFLICT (login) DO NOTHING")
        .await
        .expect("insert or nothing");
    let rows = simple_rows(&client, "SELECT login, n FROM accounts ORDER BY id").await;
    assert_eq!(
        rows,
        [
            vec![Some("ann".to_owned()), Some("3".to_owned())],
            vec![Some("bea".to_owned()), Some("1".to_owned())]
        ]
    );
    // Without a unique index on the blind index, PostgreSQL says there is no arbiter.
    let (code, message) = error_code(
        client
            .execute(
                "INSERT INTO people (id, email) VALUES (9, $1) ON CONFLICT (email) DO NOTHING",
                &[&"x@y"],
            )
            .await,
    );
    assert_eq!(code, "42P10", "{message}");
    // UNIQUE constraints on encrypted columns are refused with the way to get uniqueness.
    let (code, message) = error_code(
        client
            .batch_execute("ALTER TABLE accounts ADD CONSTRAINT u UNIQUE (login)")
            .await,
    );
    assert_eq!(code, "0A000");
    assert!(message.contains("CREATE UNIQUE INDEX"), "{message}");
    let (code, _) = error_code(client.batch_execute("CREATE INDEX ON people (note)").await);
    assert_eq!(code, "0A000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_find_rows_under_every_index_key_version() {
    let env = setup().await;
    let client = env.proxied().await;
    let column_id = env.column_id("people", "code").await;
    // Prepared while the column has one index key version, executed after the rotation.
    let prepared = client
        .prepare("SELECT id FROM people WHERE code = $1 ORDER BY id")
        .await
        .expect("prepare before the rotation");
    let version = env.rotate_data_key(column_id, KeyPurpose::Index).await;
    let direct = env.db.connect().await;

    // Once the proxy has the new key, new rows carry the new version's index.
    let mut rotated = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let id = 100 + i;
        client
            .execute("INSERT INTO people (id, code) VALUES ($1, 'b')", &[&id])
            .await
            .expect("insert");
        let stored: Vec<u8> = direct
            .query_one("SELECT code::bytea FROM people WHERE id = $1", &[&id])
            .await
            .expect("direct")
            .get(0);
        let header = pgseal_crypto::parse_ciphertext(&stored).expect("a ciphertext");
        if header.blind_index.map(|(v, _)| u32::from(v)) == Some(version) {
            rotated = true;
            break;
        }
    }
    assert!(rotated, "the new index key was not picked up");
    // Old rows (version 1) and new rows (version 2) are both found, in both protocols.
    let found = ids(
        &client,
        "SELECT id FROM people WHERE code = 'b' ORDER BY id",
        &[],
    )
    .await;
    assert_eq!(&found[..2], [2, 3]);
    assert!(found.len() >= 3, "{found:?}");
    let by_param = ids(
        &client,
        "SELECT id FROM people WHERE code = $1 ORDER BY id",
        &[&"b"],
    )
    .await;
    assert_eq!(found, by_param);
    let by_old_statement: Vec<i32> = client
        .query(&prepared, &[&"b"])
        .await
        .expect("the statement prepared before the rotation")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(found, by_old_statement);
    let others = ids(
        &client,
        "SELECT id FROM people WHERE code <> $1 ORDER BY id",
        &[&"b"],
    )
    .await;
    assert_eq!(others, [1, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_blind_index_cannot_answer_is_refused() {
    let env = setup().await;
    let client = env.proxied().await;
    for sql in [
        "SELECT id FROM people WHERE code < 'b'",
        "SELECT id FROM people WHERE code LIKE 'a%'",
        "SELECT id FROM people ORDER BY code",
        "SELECT id FROM people WHERE code = email",
        "SELECT a.id FROM people a JOIN people b ON a.code = b.code",
        "SELECT id FROM people WHERE lower(code) = 'a'",
        "SELECT id FROM people WHERE code BETWEEN 'a' AND 'b'",
    ] {
        let (code, message) = error_code(client.simple_query(sql).await);
        assert_eq!(code, "0A000", "{sql}: {message}");
    }
    // Equality on a column without a blind index says how to get one.
    let (code, message) = error_code(
        client
            .query("SELECT id FROM people WHERE note = $1", &[&"n1"])
            .await,
    );
    assert_eq!(code, "0A000");
    assert!(message.contains("_eq"), "{message}");

    // A truncated index: lookups still work, UPDATE/DELETE by equality are refused.
    let column_id = env.column_id("people", "code").await;
    let direct = env.db.connect().await;
    direct
        .execute(
            "UPDATE pgseal.columns SET index_bytes = 4 WHERE column_id = $1",
            &[&i32::try_from(column_id).expect("id")],
        )
        .await
        .expect("truncate the index");
    let mut refused = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Err(err) = client
            .execute("DELETE FROM people WHERE code = $1", &[&"nothing"])
            .await
        {
            let message = err.as_db_error().map(|d| d.message().to_owned());
            assert!(
                message
                    .as_deref()
                    .is_some_and(|m| m.contains("4-byte blind index")),
                "{err:?}"
            );
            refused = true;
            break;
        }
    }
    assert!(refused, "the truncated index length was not picked up");
    client
        .execute("INSERT INTO people (id, code) VALUES (50, 'q')", &[])
        .await
        .expect("insert with a 4-byte index");
    assert_eq!(
        ids(&client, "SELECT id FROM people WHERE code = 'q'", &[]).await,
        [50]
    );
}
