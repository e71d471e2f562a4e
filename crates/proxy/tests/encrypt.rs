//! The encryption layer against a real PostgreSQL and real clients: values round-trip through
//! the proxy in both protocols and both formats, PostgreSQL only ever holds ciphertext, refused
//! statements never reach it, and no plaintext reaches its log, files or statistics.

mod common;

use std::time::Duration;

use common::{config_for, encrypting_proxy, install, simple_rows, EncryptingProxy, Installed};
use pgseal::{AuditLog, MasterKey, MasterKeyring};
use pgseal_crypto::KeyPurpose;
use pgseal_proxy::{serve_encrypted, EncryptionOptions, ProxyError};
use pgseal_testkit::TestCluster;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

/// Every pgseal type, and the same columns in plain types for differential checks.
const ENCRYPTED_COLUMNS: &str = "b pgseal.bool, i2 pgseal.int2, i4 pgseal.int4, \
    i8 pgseal.int8, f4 pgseal.float4, f8 pgseal.float8, num pgseal.numeric, t pgseal.text, \
    vc pgseal.varchar, ba pgseal.bytea, d pgseal.date, tm pgseal.time, ts pgseal.timestamp, \
    tz pgseal.timestamptz, u pgseal.uuid, j pgseal.jsonb, email pgseal.email";
const PLAIN_COLUMNS: &str = "b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, \
    num numeric, t text, vc varchar, ba bytea, d date, tm time, ts timestamp, tz timestamptz, \
    u uuid, j jsonb, email text";
const ROW_VALUES: &str = "true, 12, -345, 6789012345, 1.5, 2.25, 123.450, 'it''s', 'vc', \
    '\\xdeadbeef', '2024-03-01', '13:45:00.5', '2024-03-01 13:45:00', \
    '2024-03-01 13:45:00+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": 1, \"a\": [1, 2]}', \
    'Ann@Example.com'";

async fn setup(ddl: &str) -> EncryptingProxy {
    encrypting_proxy(ddl, Duration::from_millis(500)).await
}

async fn standard_setup() -> EncryptingProxy {
    setup(&format!(
        "CREATE TABLE people (id int PRIMARY KEY, name text, {ENCRYPTED_COLUMNS});
         CREATE TABLE people_plain (id int PRIMARY KEY, name text, {PLAIN_COLUMNS});
         CREATE VIEW people_view AS SELECT id, t AS label, d FROM people;
         CREATE VIEW people_plain_view AS SELECT id, t AS label, d FROM people_plain;"
    ))
    .await
}

/// The standard tables with one row of `people` (`t = 'raw'`, `i4 = 42`), and a raw protocol
/// session logged in through the proxy.
async fn one_row_and_raw_session() -> (EncryptingProxy, tokio::net::TcpStream) {
    let env = standard_setup().await;
    env.proxied()
        .await
        .batch_execute("INSERT INTO people (id, t, i4) VALUES (1, 'raw', 42)")
        .await
        .expect("insert");
    let stream = common::raw::login(env.addr, env.db.name()).await;
    (env, stream)
}

/// Runs `sql` (with `{t}` for the table) on the encrypted and the plain table through the
/// proxy and requires identical text results.
async fn same_as_plain(client: &Client, sql: &str) {
    let encrypted = simple_rows(client, &sql.replace("{t}", "people")).await;
    let plain = simple_rows(client, &sql.replace("{t}", "people_plain")).await;
    assert_eq!(encrypted, plain, "{sql}");
}

/// Appends a `Parse` of `sql` as statement `name` (no declared types) to `out`.
fn raw_parse(out: &mut bytes::BytesMut, name: &str, sql: &str) {
    use pgseal_proxy::pgseal_wire::frontend::Parse;
    Parse {
        name: name.to_owned(),
        sql: sql.to_owned(),
        param_types: Vec::new(),
    }
    .encode(out)
    .expect("parse");
}

/// Appends one cycle to `out`: `Bind` of statement `statement` to the unnamed portal with no
/// parameters and `result_formats`, `Execute` of every row, `Sync`.
fn raw_execute(out: &mut bytes::BytesMut, statement: &str, result_formats: Vec<i16>) {
    raw_cycle(out, statement, result_formats, false);
}

/// [`raw_execute`], with a `Describe` of the portal before the `Execute` when `describe` (as
/// libpq sends for every prepared statement it runs).
fn raw_cycle(out: &mut bytes::BytesMut, statement: &str, result_formats: Vec<i16>, describe: bool) {
    use pgseal_proxy::pgseal_wire::frontend::{Bind, Describe, Execute, TargetKind};
    Bind {
        portal: String::new(),
        statement: statement.to_owned(),
        param_formats: Vec::new(),
        params: Vec::new(),
        result_formats,
    }
    .encode(out)
    .expect("bind");
    if describe {
        Describe {
            kind: TargetKind::Portal,
            name: String::new(),
        }
        .encode(out)
        .expect("describe");
    }
    Execute {
        portal: String::new(),
        max_rows: 0,
    }
    .encode(out)
    .expect("execute");
    out.extend_from_slice(&common::raw::message(b'S', &[]));
}

fn error_code<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>) -> String {
    let err = result.expect_err("refused");
    err.code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| panic!("not a server-style error: {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_in_both_protocols_and_is_stored_encrypted() {
    let env = standard_setup().await;
    let client = env.proxied().await;
    for table in ["people", "people_plain"] {
        client
            .batch_execute(&format!(
                "INSERT INTO {table} VALUES (1, 'ann', {ROW_VALUES});
                 INSERT INTO {table} (id, name, t, i4) VALUES (2, 'bob', 'x', 1), (3, 'cy', NULL, DEFAULT);
                 INSERT INTO {table} (id, t) VALUES (4, 'first') ON CONFLICT (id) DO NOTHING;
                 INSERT INTO {table} (id, t) VALUES (4, 'second')
                     ON CONFLICT (id) DO UPDATE SET t = EXCLUDED.t;
                 UPDATE {table} SET d = '2000-01-02', i8 = NULL WHERE id = 2;"
            ))
            .await
            .unwrap_or_else(|e| panic!("writes to {table}: {e}"));
    }
    same_as_plain(&client, "SELECT * FROM {t} ORDER BY id").await;
    same_as_plain(
        &client,
        "SELECT p.t AS label, p.d, p.id FROM public.{t} p WHERE p.id > 1 ORDER BY p.id",
    )
    .await;
    same_as_plain(
        &client,
        "SELECT a.id, b.email FROM {t} a JOIN {t} b ON a.id = b.id ORDER BY a.id",
    )
    .await;
    same_as_plain(
        &client,
        "WITH c AS (SELECT id, tz, j FROM {t}) SELECT * FROM (SELECT tz, j, id FROM c) s ORDER BY id",
    )
    .await;
    same_as_plain(&client, "SELECT * FROM {t}_view ORDER BY id").await;
    same_as_plain(
        &client,
        "INSERT INTO {t} (id, t, num) VALUES (9, 'returned', -1.50) RETURNING t, num, id",
    )
    .await;
    same_as_plain(
        &client,
        "SELECT count(t), count(*) FROM {t} WHERE t IS NOT NULL",
    )
    .await;

    // Extended protocol, binary results.
    let sql = "SELECT b, i2, i4, i8, f4, f8, t, vc, ba, email FROM {t} WHERE id = 1";
    let enc = client
        .query_one(&sql.replace("{t}", "people"), &[])
        .await
        .expect("binary read");
    let plain = client
        .query_one(&sql.replace("{t}", "people_plain"), &[])
        .await
        .expect("plain");
    assert_eq!(enc.columns()[0].type_(), &Type::BOOL);
    assert_eq!(enc.columns()[6].type_(), &Type::TEXT);
    assert_eq!(enc.get::<_, bool>(0), plain.get::<_, bool>(0));
    assert_eq!(enc.get::<_, i16>(1), plain.get::<_, i16>(1));
    assert_eq!(enc.get::<_, i32>(2), plain.get::<_, i32>(2));
    assert_eq!(enc.get::<_, i64>(3), plain.get::<_, i64>(3));
    assert_eq!(enc.get::<_, f32>(4), plain.get::<_, f32>(4));
    assert_eq!(enc.get::<_, f64>(5), plain.get::<_, f64>(5));
    assert_eq!(enc.get::<_, String>(6), "it's");
    assert_eq!(enc.get::<_, String>(7), plain.get::<_, String>(7));
    assert_eq!(enc.get::<_, Vec<u8>>(8), vec![0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(enc.get::<_, String>(9), "Ann@Example.com");

    // Parameters in binary, then in text (declared text), into every type.
    let insert = "INSERT INTO {t} (id, b, i2, i4, i8, f4, f8, t, vc, ba) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    for table in ["people", "people_plain"] {
        client
            .execute(
                &insert.replace("{t}", table),
                &[
                    &20i32,
                    &false,
                    &-7i16,
                    &123_456i32,
                    &-9_876_543_210i64,
                    &0.1f32,
                    &-1e300f64,
                    &"param ü",
                    &"v",
                    &vec![0u8, 1, 255],
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("binary params into {table}: {e}"));
    }
    // Text parameters (declared text, so sent as text) read with the type's input rules.
    let typed = client
        .prepare_typed(
            "INSERT INTO people (id, d, tz, num, u, j, tm) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                Type::INT4,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
            ],
        )
        .await
        .expect("prepare typed");
    client
        .execute(
            &typed,
            &[
                &21i32,
                &"1999-12-31",
                &"2024-06-01 12:00:00+00",
                &"-0.000123",
                &"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                &"[1, {\"x\": null}]",
                &"23:59:59",
            ],
        )
        .await
        .expect("text params");
    client
        .batch_execute(
            "INSERT INTO people_plain (id, d, tz, num, u, j, tm) VALUES (21, '1999-12-31', \
             '2024-06-01 12:00:00+00', '-0.000123', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', \
             '[1, {\"x\": null}]', '23:59:59')",
        )
        .await
        .expect("plain mirror");
    same_as_plain(&client, "SELECT * FROM {t} WHERE id >= 20 ORDER BY id").await;

    // Directly in PostgreSQL: only ciphertext.
    let direct = env.db.connect().await;
    let rows = direct
        .query(
            "SELECT t::bytea, i4::bytea, d::bytea FROM people WHERE id = 1",
            &[],
        )
        .await
        .expect("direct read");
    for i in 0..3 {
        let stored: Vec<u8> = rows[0].get(i);
        assert_eq!(
            stored.first(),
            Some(&0xB5),
            "column {i} is stored encrypted"
        );
        assert!(!stored.windows(4).any(|w| w == b"it's"));
    }
    let nulls: i64 = direct
        .query_one(
            "SELECT count(*) FROM people WHERE id = 3 AND t IS NULL",
            &[],
        )
        .await
        .expect("null stays null")
        .get(0);
    assert_eq!(nulls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_bookkept_by_name_and_the_session_recovers_from_refusals() {
    let env = standard_setup().await;
    let client = env.proxied().await;
    let insert = client
        .prepare("INSERT INTO people (id, t, i8) VALUES ($1, $2, $3)")
        .await
        .expect("prepare");
    assert_eq!(insert.params()[1], Type::TEXT);
    assert_eq!(insert.params()[2], Type::INT8);
    for i in 0..50i32 {
        client
            .execute(&insert, &[&i, &format!("row {i}"), &i64::from(i * 1000)])
            .await
            .expect("reused statement");
    }
    let select = client
        .prepare("SELECT t, i8 FROM people WHERE id = $1")
        .await
        .expect("prepare select");
    for i in [0i32, 17, 49] {
        let row = client.query_one(&select, &[&i]).await.expect("select");
        assert_eq!(row.get::<_, String>(0), format!("row {i}"));
        assert_eq!(row.get::<_, i64>(1), i64::from(i * 1000));
    }

    // The unnamed statement re-parsed with other SQL between binds (tokio-postgres' query
    // with parameters uses the unnamed statement each time).
    let a: String = client
        .query_one("SELECT t FROM people WHERE id = 3", &[])
        .await
        .expect("first unnamed")
        .get(0);
    let b: i64 = client
        .query_one("SELECT i8 FROM people WHERE id = 4", &[])
        .await
        .expect("second unnamed")
        .get(0);
    assert_eq!((a.as_str(), b), ("row 3", 4000));

    // A refusal in the middle of a transaction fails it like a server error would.
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .execute(&insert, &[&100i32, &"in tx", &1i64])
        .await
        .expect("insert in tx");
    let code = error_code(client.query("SELECT * FROM people ORDER BY t", &[]).await);
    assert_eq!(code, "0A000");
    let code = error_code(client.query("SELECT 1", &[]).await);
    assert_eq!(code, "25P02");
    client.batch_execute("ROLLBACK").await.expect("rollback");
    let n: i64 = client
        .query_one("SELECT count(*) FROM people WHERE id = 100", &[])
        .await
        .expect("recovered")
        .get(0);
    assert_eq!(n, 0);
    let again: String = client
        .query_one(&select, &[&49i32])
        .await
        .expect("prepared statement still usable")
        .get(0);
    assert_eq!(again, "row 49");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_their_sqlstate_and_nothing_reaches_the_server() {
    let env = standard_setup().await;
    let client = env.proxied().await;
    let cases = [
        ("SELECT * FROM people ORDER BY t -- canary_order", "0A000"),
        ("SELECT * FROM people WHERE i4 < 5 -- canary_range", "0A000"),
        ("SELECT * FROM people WHERE t LIKE 'canary_like%'", "0A000"),
        ("SELECT lower(t) FROM people -- canary_function", "0A000"),
        (
            "SELECT t, count(*) FROM people GROUP BY t -- canary_group",
            "0A000",
        ),
        ("SELECT DISTINCT t FROM people -- canary_distinct", "0A000"),
        (
            "INSERT INTO people (id, t) SELECT id, 'canary_insel' FROM people_plain",
            "0A000",
        ),
        (
            "COPY people TO '/tmp/pgseal_canary' -- canary_copy",
            "0A000",
        ),
        ("SELEC t FROM people WHERE canary_syntax", "42601"),
    ];
    for (sql, expected) in cases {
        let code = error_code(client.simple_query(sql).await);
        assert_eq!(code, expected, "{sql}");
        let code = error_code(client.query(sql, &[]).await);
        assert_eq!(code, expected, "{sql} (extended)");
    }
    let log = std::fs::read_to_string(TestCluster::shared().cluster().log_path())
        .expect("read the server log");
    let direct = env.db.connect().await;
    let statements: Vec<String> = direct
        .query("SELECT query FROM pg_stat_statements", &[])
        .await
        .expect("pg_stat_statements")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for canary in [
        "canary_order",
        "canary_range",
        "canary_like",
        "canary_function",
        "canary_group",
        "canary_distinct",
        "canary_insel",
        "canary_copy",
        "canary_syntax",
    ] {
        assert!(!log.contains(canary), "{canary} reached the server log");
        assert!(
            !statements.iter().any(|q| q.contains(canary)),
            "{canary} reached pg_stat_statements"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_reaches_the_log_the_files_or_the_statistics() {
    let env = standard_setup().await;
    let client = env.proxied().await;
    let nonce = canary_nonce();
    let text_a = format!("leakcanarya{nonce}");
    let text_b = format!("leakcanaryb{nonce}");
    let number_a =
        7_000_000_000_000_000_000i64 + i64::try_from(nonce % 1_000_000_000).expect("small");
    let number_b = number_a + 17;
    let date_a = "1987-06-05";
    client
        .simple_query(&format!(
            "INSERT INTO people (id, t, i8, d) VALUES (1, '{text_a}', {number_a}, '{date_a}')"
        ))
        .await
        .expect("simple insert");
    client
        .execute(
            "INSERT INTO people (id, t, i8) VALUES ($1, $2, $3)",
            &[&2i32, &text_b, &number_b],
        )
        .await
        .expect("extended insert");
    let rows = simple_rows(&client, "SELECT t, i8, d FROM people ORDER BY id").await;
    assert_eq!(rows[0][0].as_deref(), Some(text_a.as_str()));
    assert_eq!(rows[0][2].as_deref(), Some(date_a));
    let row = client
        .query_one("SELECT t, i8 FROM people WHERE id = $1", &[&2i32])
        .await
        .expect("extended read");
    assert_eq!(row.get::<_, String>(0), text_b);
    assert_eq!(row.get::<_, i64>(1), number_b);

    let needles: Vec<Vec<u8>> = vec![
        text_a.clone().into_bytes(),
        text_b.clone().into_bytes(),
        number_a.to_string().into_bytes(),
        number_b.to_string().into_bytes(),
        number_a.to_be_bytes().to_vec(),
        number_b.to_le_bytes().to_vec(),
        number_b.to_be_bytes().to_vec(),
        date_a.as_bytes().to_vec(),
    ];
    assert_nowhere_on_the_server(&env, &needles).await;
}

/// After a `CHECKPOINT`, none of `needles` is in the server log, `pg_stat_statements` or any
/// file of the cluster's data directory.
async fn assert_nowhere_on_the_server(env: &EncryptingProxy, needles: &[Vec<u8>]) {
    let direct = env.db.connect().await;
    direct
        .batch_execute("CHECKPOINT")
        .await
        .expect("checkpoint");
    let statements: Vec<String> = direct
        .query("SELECT query FROM pg_stat_statements", &[])
        .await
        .expect("pg_stat_statements")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let cluster = TestCluster::shared().cluster();
    let log = std::fs::read(cluster.log_path()).expect("read the server log");
    let mut files = Vec::new();
    collect_files(cluster.data_dir(), &mut files);
    for needle in needles {
        assert!(!contains(&log, needle), "a canary reached the server log");
        assert!(
            !statements.iter().any(|q| contains(q.as_bytes(), needle)),
            "a canary reached pg_stat_statements"
        );
        for file in &files {
            let Ok(bytes) = std::fs::read(file) else {
                continue;
            };
            assert!(
                !contains(&bytes, needle),
                "a canary is in {}",
                file.display()
            );
        }
    }
}

/// The proxy learns of a schema change when it commits (its catalog is read by another
/// connection): until then no value may go to a column the change declared, and DDL may not
/// put a constant into an encrypted column's default or check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_for_encrypted_columns_not_yet_committed_never_reach_the_server() {
    let env = standard_setup().await;
    let client = env.proxied().await;
    let nonce = canary_nonce();
    let canary = |n: u32| format!("ddlcanary{n}x{nonce}");

    // One text: the table and the insert.
    let one_text = client
        .simple_query(&format!(
            "CREATE TABLE fresh (id int, c pgseal.text); INSERT INTO fresh VALUES (1, '{}')",
            canary(1)
        ))
        .await;
    assert_eq!(error_code(one_text), "0A000");
    // Refused as a whole: the table was not created either.
    let direct = env.db.connect().await;
    let exists: bool = direct
        .query_one("SELECT to_regclass('fresh') IS NOT NULL", &[])
        .await
        .expect("lookup")
        .get(0);
    assert!(!exists);

    // An explicit transaction, simple protocol, then extended protocol.
    client
        .batch_execute("BEGIN; CREATE TABLE fresh (id int, c pgseal.text)")
        .await
        .expect("create in a transaction");
    let insert = client
        .simple_query(&format!("INSERT INTO fresh VALUES (1, '{}')", canary(2)))
        .await;
    assert_eq!(error_code(insert), "0A000");
    client.batch_execute("ROLLBACK").await.expect("rollback");
    client
        .batch_execute("BEGIN; ALTER TABLE people ADD COLUMN extra pgseal.text")
        .await
        .expect("alter in a transaction");
    let update = client
        .execute(
            "UPDATE people SET extra = $1 WHERE id = $2",
            &[&canary(3), &1i32],
        )
        .await;
    assert_eq!(error_code(update), "0A000");
    client.batch_execute("ROLLBACK").await.expect("rollback");

    // Constants in DDL expressions of encrypted columns.
    let default = client
        .batch_execute(&format!(
            "ALTER TABLE people ALTER COLUMN t SET DEFAULT '{}'",
            canary(4)
        ))
        .await;
    assert_eq!(error_code(default), "0A000");
    let check = client
        .batch_execute(&format!(
            "CREATE TABLE fresh (id int, c pgseal.text CHECK (c <> '{}'))",
            canary(5)
        ))
        .await;
    assert_eq!(error_code(check), "0A000");

    // Once committed, the column is known and its values are sealed.
    client
        .batch_execute(
            "INSERT INTO people (id) VALUES (1); \
             BEGIN; ALTER TABLE people ADD COLUMN extra pgseal.text; COMMIT",
        )
        .await
        .expect("committed schema change");
    client
        .execute(
            "UPDATE people SET extra = $1 WHERE id = $2",
            &[&canary(6), &1i32],
        )
        .await
        .expect("write to the committed column");
    let row = client
        .query_one("SELECT extra FROM people WHERE id = 1", &[])
        .await
        .expect("read back");
    assert_eq!(row.get::<_, String>(0), canary(6));

    let needles: Vec<Vec<u8>> = (1..=6).map(|n| canary(n).into_bytes()).collect();
    assert_nowhere_on_the_server(&env, &needles).await;
}

/// A number no earlier run used, to make canaries unique in the shared cluster's log.
fn canary_nonce() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else if path.extension().is_none_or(|e| e != "log") {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_and_key_rotations_are_picked_up() {
    let env = standard_setup().await;
    let client = env.proxied().await;
    client
        .batch_execute("ALTER TABLE people ADD COLUMN extra pgseal.text")
        .await
        .expect("DDL through the proxy");
    client
        .batch_execute("INSERT INTO people (id, extra) VALUES (1, 'added at once')")
        .await
        .expect("the new column is encrypted at once");
    let rows = simple_rows(&client, "SELECT extra FROM people WHERE id = 1").await;
    assert_eq!(rows[0][0].as_deref(), Some("added at once"));

    // Rotate the value key of `t` elsewhere: a new active version, the old one decrypt-only.
    client
        .batch_execute("INSERT INTO people (id, t) VALUES (2, 'before rotation')")
        .await
        .expect("insert");
    // Read once before the rotation, so the session holds this result's description.
    let rows = simple_rows(&client, "SELECT t FROM people WHERE id = 2").await;
    assert_eq!(rows[0][0].as_deref(), Some("before rotation"));
    let column_id = env.column_id("people", "t").await;
    let version = env.rotate_data_key(column_id, KeyPurpose::Value).await;
    let direct = env.db.connect().await;

    let mut rotated = None;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let id = 100 + i;
        client
            .batch_execute(&format!(
                "INSERT INTO people (id, t) VALUES ({id}, 'after')"
            ))
            .await
            .expect("insert after rotation");
        let stored: Vec<u8> = direct
            .query_one(&format!("SELECT t::bytea FROM people WHERE id = {id}"), &[])
            .await
            .expect("direct")
            .get(0);
        let header = pgseal_crypto::parse_ciphertext(&stored).expect("a ciphertext");
        if header.key_version == version {
            rotated = Some(id);
            break;
        }
    }
    let rotated = rotated.expect("the new key was not picked up within the reload interval");
    // The same description as before the rotation, over a value only the new key opens.
    let rows = simple_rows(
        &client,
        &format!("SELECT t FROM people WHERE id = {rotated}"),
    )
    .await;
    assert_eq!(rows[0][0].as_deref(), Some("after"));
    let rows = simple_rows(&client, "SELECT t FROM people WHERE id = 2").await;
    assert_eq!(rows[0][0].as_deref(), Some("before rotation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_values_are_errors_never_ciphertext() {
    let env = standard_setup().await;
    let client = env.proxied().await;
    client
        .batch_execute("INSERT INTO people (id, t, vc) VALUES (1, 'one', 'v'), (2, 'two', 'w')")
        .await
        .expect("insert");
    // Copy a ciphertext into another row's other column of the same type tag? Swap rows
    // instead: same column, other row, still opens; a value from another column must not.
    let direct = env.db.connect().await;
    direct
        .batch_execute("UPDATE people SET t = (SELECT t FROM people WHERE id = 1) WHERE id = 2")
        .await
        .expect("copy within the column");
    let rows = simple_rows(&client, "SELECT t FROM people ORDER BY id").await;
    assert_eq!(rows[1][0].as_deref(), Some("one"));
    direct
        .batch_execute(
            "UPDATE people SET t = overlay(t::bytea placing '\\x00'::bytea from 60 for 1)::pgseal.text \
             WHERE id = 2",
        )
        .await
        .expect("tamper");
    let code = error_code(
        client
            .simple_query("SELECT id, t FROM people ORDER BY id")
            .await,
    );
    assert_eq!(code, "XX001");
    let code = error_code(
        client
            .query("SELECT id, t FROM people ORDER BY id", &[])
            .await,
    );
    assert_eq!(code, "XX001");
    // The session is still usable.
    let rows = simple_rows(&client, "SELECT t FROM people WHERE id = 1").await;
    assert_eq!(rows[0][0].as_deref(), Some("one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_master_key_fails_at_start() {
    let Installed {
        db,
        mut admin,
        master,
    } = install("CREATE TABLE s (v pgseal.text)").await;
    pgseal::ensure_data_keys(&mut admin, &master, &AuditLog::disabled())
        .await
        .expect("keys");
    let options = EncryptionOptions {
        control_url: db.url().to_owned(),
        master: MasterKeyring::new(MasterKey::generate(), Vec::new()),
        audit: AuditLog::disabled(),
        reload_interval: Duration::from_secs(5),
    };
    let result =
        serve_encrypted(config_for(TestCluster::shared()), options, |_| {}, async {}).await;
    let err = result.expect_err("a wrong master key must fail");
    assert!(matches!(err, ProxyError::Catalog { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_with_row_limits_and_pipelines_decrypt_every_row() {
    let env = standard_setup().await;
    let mut client = env.proxied().await;
    let insert = client
        .prepare("INSERT INTO people (id, t) VALUES ($1, $2)")
        .await
        .expect("prepare");
    // Pipelined: tokio-postgres sends these before reading any answer.
    let inserts: Vec<_> = (0..30i32)
        .map(|i| {
            let client = &client;
            let insert = &insert;
            async move {
                client
                    .execute(insert, &[&i, &format!("p{i}")])
                    .await
                    .expect("pipelined insert")
            }
        })
        .collect();
    futures_util::future::join_all(inserts).await;

    let tx = client.transaction().await.expect("begin");
    let portal = tx
        .bind("SELECT id, t FROM people ORDER BY id", &[])
        .await
        .expect("bind a portal");
    let mut seen = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 7).await.expect("fetch 7 rows");
        if rows.is_empty() {
            break;
        }
        for row in rows {
            seen.push((row.get::<_, i32>(0), row.get::<_, String>(1)));
        }
    }
    tx.commit().await.expect("commit");
    let expected: Vec<(i32, String)> = (0..30).map(|i| (i, format!("p{i}"))).collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undescribed_portal_is_described_by_the_proxy_and_answered_in_the_clients_format() {
    use bytes::BytesMut;
    use common::raw;
    use tokio::io::AsyncWriteExt;

    // `_env` keeps the proxy and the database alive for the raw session.
    let (_env, mut stream) = one_row_and_raw_session().await;
    let mut out = BytesMut::new();
    raw_parse(&mut out, "", "SELECT t, i4 FROM people");
    // Text for t, binary for i4.
    raw_execute(&mut out, "", vec![0, 1]);
    stream.write_all(&out).await.expect("send");
    let mut tags = Vec::new();
    let mut row = None;
    while let Some((tag, body)) = raw::read_message(&mut stream).await {
        tags.push(tag);
        if tag == b'D' {
            row = Some(body);
        }
        if tag == b'Z' {
            break;
        }
    }
    // The proxy's injected Describe is answered to the proxy only.
    assert_eq!(tags, vec![b'1', b'2', b'D', b'C', b'Z']);
    let row = row.expect("a row");
    let decoded = pgseal_proxy::pgseal_wire::backend::DataRow::decode(&bytes::Bytes::from(row))
        .expect("a data row");
    assert_eq!(decoded.values[0].as_deref(), Some(&b"raw"[..]));
    assert_eq!(decoded.values[1].as_deref(), Some(&42i32.to_be_bytes()[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_literal_is_sealed_afresh_at_every_execution() {
    let env = standard_setup().await;
    let client = env.proxied().await;
    // The literal is part of the statement; the server must still get a new ciphertext each
    // time, or equal ciphertexts would show which rows this statement wrote.
    let insert = client
        .prepare("INSERT INTO people (id, t, i4) VALUES ($1, 'the same literal', 7)")
        .await
        .expect("prepare");
    for id in 1..=3i32 {
        client.execute(&insert, &[&id]).await.expect("execute");
    }
    let update = client
        .prepare("UPDATE people SET vc = 'also the same' WHERE id = $1")
        .await
        .expect("prepare update");
    for id in 1..=3i32 {
        client.execute(&update, &[&id]).await.expect("update");
    }
    let rows = client
        .query("SELECT t, i4, vc FROM people ORDER BY id", &[])
        .await
        .expect("read back");
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row.get::<_, String>(0), "the same literal");
        assert_eq!(row.get::<_, i32>(1), 7);
        assert_eq!(row.get::<_, String>(2), "also the same");
    }
    let direct = env.db.connect().await;
    for column in ["t", "i4", "vc"] {
        let distinct: i64 = direct
            .query_one(
                &format!("SELECT count(DISTINCT {column}::bytea) FROM people"),
                &[],
            )
            .await
            .expect("direct read")
            .get(0);
        assert_eq!(distinct, 3, "column {column}: one ciphertext per execution");
    }

    // A Bind that does not match the statement's own parameters is refused by the proxy (the
    // server would count the appended one too), and the session goes on.
    use bytes::BytesMut;
    use common::raw;
    use tokio::io::AsyncWriteExt;
    let mut stream = raw::login(env.addr, env.db.name()).await;
    let mut out = BytesMut::new();
    raw_parse(
        &mut out,
        "lit",
        "INSERT INTO people (id, t) VALUES ($1, 'the same literal')",
    );
    raw_execute(&mut out, "lit", Vec::new());
    stream.write_all(&out).await.expect("send");
    let mut error = None;
    while let Some((tag, body)) = raw::read_message(&mut stream).await {
        if tag == b'E' {
            error = Some(raw::error_fields(&body));
        }
        if tag == b'Z' {
            break;
        }
    }
    let (code, message) = error.expect("the short Bind is refused");
    assert_eq!(code, "08P01", "{message}");
    assert!(message.contains("supplies 0 parameters"), "{message}");
    stream
        .write_all(&raw::query("SELECT count(*) FROM people"))
        .await
        .expect("send");
    let tags = raw::read_until_ready(&mut stream).await;
    assert_eq!(tags, vec![b'T', b'D', b'C', b'Z'], "the session goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_described_once_answers_later_portals_in_their_own_formats() {
    use bytes::BytesMut;
    use common::raw;
    use tokio::io::AsyncWriteExt;

    // `_env` keeps the proxy and the database alive for the raw session.
    let (_env, mut stream) = one_row_and_raw_session().await;
    let mut out = BytesMut::new();
    raw_parse(&mut out, "s1", "SELECT t, i4 FROM people");
    // The first portal is described by the proxy (the client never asks); the later ones use
    // the columns learnt then, each in the formats its own Bind asks for.
    for formats in [vec![0, 1], vec![1, 0], vec![0, 0]] {
        raw_execute(&mut out, "s1", formats);
    }
    stream.write_all(&out).await.expect("send");
    let mut tags = Vec::new();
    let mut rows = Vec::new();
    let mut ready = 0;
    while let Some((tag, body)) = raw::read_message(&mut stream).await {
        tags.push(tag);
        if tag == b'D' {
            let row =
                pgseal_proxy::pgseal_wire::backend::DataRow::decode(&bytes::Bytes::from(body))
                    .expect("a data row");
            rows.push(row.values);
        }
        if tag == b'Z' {
            ready += 1;
            if ready == 3 {
                break;
            }
        }
    }
    assert_eq!(
        tags,
        vec![b'1', b'2', b'D', b'C', b'Z', b'2', b'D', b'C', b'Z', b'2', b'D', b'C', b'Z']
    );
    let text = Some(&b"raw"[..]);
    let int_binary = 42i32.to_be_bytes();
    assert_eq!(rows[0][0].as_deref(), text);
    assert_eq!(rows[0][1].as_deref(), Some(&int_binary[..]));
    assert_eq!(rows[1][0].as_deref(), text, "text is its own binary form");
    assert_eq!(rows[1][1].as_deref(), Some(&b"42"[..]));
    assert_eq!(rows[2][0].as_deref(), text);
    assert_eq!(rows[2][1].as_deref(), Some(&b"42"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_output_follows_the_session_settings() {
    let env = standard_setup().await;
    let client = env.proxied().await;
    for table in ["people", "people_plain"] {
        client
            .batch_execute(&format!(
                "INSERT INTO {table} VALUES (1, 'ann', {ROW_VALUES})"
            ))
            .await
            .expect("insert");
    }
    let settings = [
        "SET DateStyle = 'German'",
        "SET DateStyle = 'SQL, DMY'",
        "SET TimeZone = 'America/New_York'",
        "SET extra_float_digits = 0",
        "SET bytea_output = 'escape'",
        "RESET ALL",
    ];
    // Twice: the second time, the proxy knows each text from its cache.
    for setting in settings.iter().chain(&settings) {
        client.batch_execute(setting).await.expect(setting);
        same_as_plain(&client, "SELECT * FROM {t}").await;
    }
    // Input follows DateStyle too: 03/04/2024 is the 3rd of April under DMY.
    client
        .batch_execute("SET DateStyle = 'ISO, DMY'")
        .await
        .expect("set");
    for table in ["people", "people_plain"] {
        client
            .batch_execute(&format!(
                "INSERT INTO {table} (id, d) VALUES (2, '03/04/2024')"
            ))
            .await
            .expect("insert");
    }
    same_as_plain(&client, "SELECT d FROM {t} WHERE id = 2").await;
    let rows = simple_rows(&client, "SELECT d FROM people WHERE id = 2").await;
    assert_eq!(rows[0][0].as_deref(), Some("2024-04-03"));
}

/// Sends `out` and collects the messages of `cycles` cycles, each up to its `ReadyForQuery`.
async fn run_cycles(
    stream: &mut tokio::net::TcpStream,
    out: &[u8],
    cycles: usize,
) -> Vec<Vec<(u8, Vec<u8>)>> {
    use tokio::io::AsyncWriteExt;
    stream.write_all(out).await.expect("send");
    let mut done = vec![Vec::new()];
    while let Some((tag, body)) = common::raw::read_message(stream).await {
        if tag == b'Z' {
            if done.len() == cycles {
                return done;
            }
            done.push(Vec::new());
            continue;
        }
        done.last_mut().expect("a cycle").push((tag, body));
    }
    panic!(
        "the proxy closed the session after {} cycles",
        done.len() - 1
    );
}

/// A statement's `Bind`s share a result plan only when they ask for the same formats: a
/// ciphertext copied into a plain `bytea` column is caught in the format each `Bind` asks
/// for, whichever format the `Bind` before it asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_sharing_a_plan_still_check_plain_bytea_in_their_own_format() {
    use bytes::BytesMut;

    let (env, mut stream) = one_row_and_raw_session().await;
    // Behind the proxy's back, as a careless migration might: a ciphertext in a plain column,
    // and a harmless value in another row.
    env.db
        .connect()
        .await
        .batch_execute(
            "INSERT INTO people_plain (id, ba) SELECT 1, t::bytea FROM people WHERE id = 1;
             INSERT INTO people_plain (id, ba) VALUES (2, '\\xdeadbeef')",
        )
        .await
        .expect("rows behind the proxy");
    // Two Binds in a row with the same formats share a plan; each change of format must not.
    let formats = [0, 0, 1, 1, 0, 1];
    for (name, sql) in [
        ("s1", "SELECT ba FROM people_plain WHERE id = 1"),
        ("s2", "SELECT ba FROM people_plain WHERE id = 2"),
    ] {
        // The first cycle teaches the proxy the statement's columns (a Describe it injects);
        // only the Binds after it can share a plan.
        let mut out = BytesMut::new();
        raw_parse(&mut out, name, sql);
        raw_execute(&mut out, name, vec![0]);
        run_cycles(&mut stream, &out, 1).await;
        let mut out = BytesMut::new();
        for format in formats {
            raw_execute(&mut out, name, vec![format]);
        }
        let cycles = run_cycles(&mut stream, &out, formats.len()).await;
        for (cycle, format) in cycles.iter().zip(formats) {
            let tags =
                String::from_utf8_lossy(&cycle.iter().map(|(tag, _)| *tag).collect::<Vec<_>>())
                    .into_owned();
            let row = cycle.iter().find(|(tag, _)| *tag == b'D');
            if name == "s1" {
                // The ciphertext is refused before any row.
                assert_eq!(tags, "2E", "format {format}");
                assert_eq!(
                    common::raw::error_fields(&cycle[1].1).0,
                    "XX001",
                    "format {format}"
                );
            } else {
                let (_, body) = row.unwrap_or_else(|| panic!("format {format}: a row, got {tags}"));
                let row = pgseal_proxy::pgseal_wire::backend::DataRow::decode(
                    &bytes::Bytes::copy_from_slice(body),
                )
                .expect("a data row");
                let expected: &[u8] = if format == 1 {
                    b"\xde\xad\xbe\xef"
                } else {
                    b"\\xdeadbeef"
                };
                assert_eq!(row.values[0].as_deref(), Some(expected), "format {format}");
            }
        }
    }
}

/// libpq describes every portal it runs. Each execution of a statement gets the description
/// of its own formats with the encrypted columns shown as their logical types, rewritten from
/// the server's, which describes the binary columns the proxy asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_portal_description_shows_the_logical_types() {
    use bytes::BytesMut;
    use pgseal_proxy::pgseal_wire::backend::{DataRow, RowDescription};

    let (_env, mut stream) = one_row_and_raw_session().await;
    // The first cycle alone: the proxy learns the statement's columns from it, so the `Bind`s
    // after it ask the server for the encrypted columns in binary.
    let mut out = BytesMut::new();
    raw_parse(&mut out, "s", "SELECT t, i4, id FROM people WHERE id = 1");
    raw_cycle(&mut out, "s", vec![0], true);
    let mut cycles = run_cycles(&mut stream, &out, 1).await;
    let formats = [0i16, 0, 0, 1, 1, 0, 0];
    let mut out = BytesMut::new();
    for format in &formats[1..] {
        raw_cycle(&mut out, "s", vec![*format], true);
    }
    cycles.extend(run_cycles(&mut stream, &out, formats.len() - 1).await);
    for (cycle, format) in cycles.iter().zip(formats) {
        let body = |tag: u8| {
            let (_, body) = cycle
                .iter()
                .find(|(t, _)| *t == tag)
                .unwrap_or_else(|| panic!("format {format}: no {}", tag as char));
            bytes::Bytes::copy_from_slice(body)
        };
        let description = RowDescription::decode(&body(b'T')).expect("a description");
        let shown: Vec<(u32, i16)> = description
            .fields
            .iter()
            .map(|f| (f.type_oid, f.format))
            .collect();
        // text and int4, in the format asked for; the plain id too.
        assert_eq!(
            shown,
            [(25, format), (23, format), (23, format)],
            "format {format}"
        );
        let row = DataRow::decode(&body(b'D')).expect("a data row");
        let int: &[u8] = if format == 1 { &[0, 0, 0, 42] } else { b"42" };
        assert_eq!(
            row.values[0].as_deref(),
            Some(&b"raw"[..]),
            "format {format}"
        );
        assert_eq!(row.values[1].as_deref(), Some(int), "format {format}");
    }
}
