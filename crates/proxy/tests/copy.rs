//! `COPY FROM STDIN` / `COPY TO STDOUT` through the encrypting proxy against a real PostgreSQL,
//! with tokio-postgres (extended protocol) and raw simple-protocol messages.
//!
//! Each format is checked differentially: the same input is copied into a table with encrypted
//! columns through the proxy and into the same table with plain types directly; PostgreSQL must
//! hold only ciphertext in the first, and `COPY TO STDOUT` of both must give the same bytes.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{encrypting_proxy, EncryptingProxy};
use futures_util::{SinkExt, TryStreamExt};
use tokio_postgres::Client;

const ENCRYPTED: &str = "id int, name text, email pgseal.email, d pgseal.date, n pgseal.int4, \
    note pgseal.text, amount pgseal.numeric, ts pgseal.timestamptz, raw pgseal.bytea";
const PLAIN: &str = "id int, name text, email text, d date, n int4, note text, \
    amount numeric, ts timestamptz, raw bytea";

async fn setup() -> EncryptingProxy {
    encrypting_proxy(
        &format!(
            "CREATE TABLE sealed ({ENCRYPTED}); CREATE TABLE plain ({PLAIN});
             CREATE TABLE sealed2 ({ENCRYPTED}); CREATE TABLE plain2 ({PLAIN});
             CREATE TABLE texts (id int, a pgseal.text, b pgseal.text);
             CREATE TABLE generated (id int, twice int GENERATED ALWAYS AS (id * 2) STORED, \
                 e pgseal.text);
             CREATE VIEW sealed_v AS SELECT id, note AS remark, d FROM sealed;
             CREATE VIEW plain_v AS SELECT id, note AS remark, d FROM plain;"
        ),
        Duration::from_millis(500),
    )
    .await
}

/// `COPY ... FROM STDIN` of `data`, sent in chunks of `chunk` bytes (rows split anywhere).
async fn copy_in(client: &Client, sql: &str, data: &[u8], chunk: usize) -> u64 {
    try_copy_in(client, sql, data, chunk)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

async fn try_copy_in(
    client: &Client,
    sql: &str,
    data: &[u8],
    chunk: usize,
) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in::<_, Bytes>(sql).await?;
    futures_util::pin_mut!(sink);
    for part in data.chunks(chunk.max(1)) {
        sink.send(Bytes::copy_from_slice(part)).await?;
    }
    sink.finish().await
}

async fn copy_out(client: &Client, sql: &str) -> Vec<u8> {
    try_copy_out(client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

async fn try_copy_out(client: &Client, sql: &str) -> Result<Vec<u8>, tokio_postgres::Error> {
    let stream = client.copy_out(sql).await?;
    let parts: Vec<Bytes> = stream.try_collect().await?;
    Ok(parts.concat())
}

/// Whether every non-NULL encrypted value stored in `table` is a pgseal ciphertext.
async fn assert_all_sealed(direct: &Client, table: &str) {
    let rows = direct
        .query(
            &format!(
                "SELECT email::bytea, d::bytea, n::bytea, note::bytea, amount::bytea, \
                 ts::bytea, raw::bytea FROM {table}"
            ),
            &[],
        )
        .await
        .expect("read stored values");
    assert!(!rows.is_empty());
    for row in rows {
        for i in 0..7 {
            if let Some(bytes) = row.get::<_, Option<Vec<u8>>>(i) {
                assert!(
                    pgseal_crypto::parse_ciphertext(&bytes).is_ok(),
                    "column {i} of {table} holds something other than a ciphertext"
                );
            }
        }
    }
}

const TEXT_ROWS: &[u8] = b"1\tAnn\tAnn@Example.com\t2024-03-01\t42\tline1\\nline2\\ttab\\\\back\t123.450\t2024-03-01 13:45:00+02\t\\\\xdeadbeef\n\
2\tBob\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n\
3\tC\xc3\xa9\tc@x.org\t1999-12-31\t-7\tsemi;colon \\x41 \\101 \\\\x\t0\t2000-01-01 00:00:00+00\t\\\\x\n\
4\tDan\td@x.org\tJan 2 2020\t+5\t\t-0.5e2\tinfinity\t\\\\x00ff";

#[tokio::test]
async fn text_copy_round_trips_and_matches_a_plain_table() {
    let env = setup().await;
    let direct = env.db.connect().await;
    let proxied = env.proxied().await;
    for chunk in [1, 7, 8192] {
        direct
            .batch_execute("TRUNCATE sealed; TRUNCATE plain")
            .await
            .expect("truncate");
        assert_eq!(
            copy_in(&proxied, "COPY sealed FROM STDIN", TEXT_ROWS, chunk).await,
            4
        );
        assert_eq!(
            copy_in(&direct, "COPY plain FROM STDIN", TEXT_ROWS, chunk).await,
            4
        );
        assert_all_sealed(&direct, "sealed").await;
        for sql in [
            "COPY {} TO STDOUT",
            "COPY {} (note, id, email) TO STDOUT WITH (DELIMITER '|', NULL 'nil')",
            "COPY (SELECT s.id, note AS remark, s.d, 1 + 1 AS two FROM {} s WHERE id > 1) TO STDOUT",
            "COPY (SELECT * FROM {}_v) TO STDOUT WITH (FORMAT csv, HEADER)",
            "COPY (SELECT v.remark, t.name FROM {}_v v JOIN {} t ON t.id = v.id) TO STDOUT",
        ] {
            let sealed = copy_out(&proxied, &sql.replace("{}", "sealed")).await;
            let plain = copy_out(&direct, &sql.replace("{}", "plain")).await;
            assert_eq!(
                String::from_utf8_lossy(&sealed),
                String::from_utf8_lossy(&plain),
                "{sql}"
            );
        }
    }
    // What the client reads back through a SELECT is what it copied in.
    let row = proxied
        .query_one("SELECT note, email FROM sealed WHERE id = 1", &[])
        .await
        .expect("select");
    assert_eq!(row.get::<_, String>(0), "line1\nline2\ttab\\back");
    assert_eq!(row.get::<_, String>(1), "Ann@Example.com");
}

const CSV_ROWS: &[u8] = b"id,name,email,d,n,note,amount,ts,raw\n\
1,Ann,ann@example.com,2024-03-01,42,\"multi\nline, \"\"quoted\"\"\",123.450,2024-03-01 13:45:00+02,\\xdeadbeef\n\
2,Bob,,,,\"\",,,\n\
3,\"Cy, Jr\",\"c@x.org\",1999-12-31,-7,\\.,0,2000-01-01 00:00:00+00,\"\\x\"\n";

const CSV_CUSTOM: &[u8] = b"1;Ann;'NULL';2024-03-01;42;NULL;1.5;NULL;NULL\n\
2;'it\\'s';x@y.z;NULL;NULL;'a;b\\\\c';NULL;NULL;NULL\n";

#[tokio::test]
async fn csv_copy_with_options_matches_a_plain_table() {
    let env = setup().await;
    let direct = env.db.connect().await;
    let proxied = env.proxied().await;
    for chunk in [1, 5, 4096] {
        direct
            .batch_execute("TRUNCATE sealed; TRUNCATE plain; TRUNCATE sealed2; TRUNCATE plain2")
            .await
            .expect("truncate");
        let default = "COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)";
        copy_in(&proxied, &default.replace("{}", "sealed"), CSV_ROWS, chunk).await;
        copy_in(&direct, &default.replace("{}", "plain"), CSV_ROWS, chunk).await;
        let custom = "COPY {} FROM STDIN WITH (FORMAT csv, DELIMITER ';', QUOTE '''', \
                      ESCAPE '\\', NULL 'NULL', FORCE_NOT_NULL (note), FORCE_NULL (email))";
        copy_in(
            &proxied,
            &custom.replace("{}", "sealed2"),
            CSV_CUSTOM,
            chunk,
        )
        .await;
        copy_in(&direct, &custom.replace("{}", "plain2"), CSV_CUSTOM, chunk).await;
        assert_all_sealed(&direct, "sealed").await;
        assert_all_sealed(&direct, "sealed2").await;
        for (sealed_table, plain_table) in [("sealed", "plain"), ("sealed2", "plain2")] {
            for sql in [
                "COPY {} TO STDOUT WITH (FORMAT csv, HEADER)",
                "COPY {} TO STDOUT WITH (FORMAT csv, FORCE_QUOTE (note, d), NULL 'N/A')",
                "COPY {} TO STDOUT WITH (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', FORCE_QUOTE *)",
                "COPY {} (note) TO STDOUT WITH (FORMAT csv)",
            ] {
                let sealed = copy_out(&proxied, &sql.replace("{}", sealed_table)).await;
                let plain = copy_out(&direct, &sql.replace("{}", plain_table)).await;
                assert_eq!(
                    String::from_utf8_lossy(&sealed),
                    String::from_utf8_lossy(&plain),
                    "{sql}"
                );
            }
        }
    }
}

#[tokio::test]
async fn binary_copy_round_trips() {
    let env = setup().await;
    let direct = env.db.connect().await;
    let proxied = env.proxied().await;
    copy_in(&direct, "COPY plain FROM STDIN", TEXT_ROWS, 8192).await;
    let binary = copy_out(&direct, "COPY plain TO STDOUT WITH (FORMAT binary)").await;
    for chunk in [1, 3, 65536] {
        direct
            .batch_execute("TRUNCATE sealed")
            .await
            .expect("truncate");
        let n = copy_in(
            &proxied,
            "COPY sealed FROM STDIN WITH (FORMAT binary)",
            &binary,
            chunk,
        )
        .await;
        assert_eq!(n, 4);
        assert_all_sealed(&direct, "sealed").await;
        let back = copy_out(&proxied, "COPY sealed TO STDOUT WITH (FORMAT binary)").await;
        assert_eq!(
            back, binary,
            "binary COPY TO through the proxy equals the plain table's"
        );
    }
    let text_sealed = copy_out(&proxied, "COPY sealed TO STDOUT").await;
    let text_plain = copy_out(&direct, "COPY plain TO STDOUT").await;
    assert_eq!(text_sealed, text_plain);
}

#[tokio::test]
async fn a_malformed_row_fails_the_copy_with_postgres_error_shape_and_commits_nothing() {
    let env = setup().await;
    let direct = env.db.connect().await;
    let proxied = env.proxied().await;
    let cases: [(&[u8], &str, &str, &str); 4] = [
        (
            b"1\ta\tx@y.z\t2024-01-01\t1\tok\t1\t2024-01-01 00:00:00+00\t\\\\x00\n\
              2\tb\tx@y.z\tnot-a-date-secret\t1\tok\t1\t2024-01-01 00:00:00+00\t\\\\x00\n",
            "COPY sealed FROM STDIN",
            "22007",
            "line 2, column d",
        ),
        (
            b"1\ta\tx@y.z\t2024-01-01\n",
            "COPY sealed FROM STDIN",
            "22P04",
            "line 1",
        ),
        (
            b"1,a,x@y.z,2024-01-01,99999999999,secret,1,,\n",
            "COPY sealed FROM STDIN (FORMAT csv)",
            "22003",
            "line 1, column n",
        ),
        (
            b"1,a,x@y.z,2024-01-01,1,\"unterminated secret\n",
            "COPY sealed FROM STDIN (FORMAT csv)",
            "22P04",
            "line 1",
        ),
    ];
    for (data, sql, sqlstate, context) in cases {
        for chunk in [3, 4096] {
            let error = try_copy_in(&proxied, sql, data, chunk)
                .await
                .expect_err("the malformed COPY fails");
            let db = error.as_db_error().expect("a server-shaped error");
            let code = db.code().code();
            assert!(
                code == sqlstate || (sqlstate == "22007" && code.starts_with("22")),
                "{sql}: {code} {}",
                db.message()
            );
            assert!(
                db.where_().unwrap_or_default().contains(context),
                "context {:?}",
                db.where_()
            );
            assert!(db
                .where_()
                .unwrap_or_default()
                .starts_with("COPY sealed, line"));
            let shown = format!("{} {:?} {:?}", db.message(), db.detail(), db.where_());
            assert!(!shown.contains("secret"), "{shown}");
            // Nothing of the COPY is committed, and the connection stays usable.
            let count: i64 = direct
                .query_one("SELECT count(*) FROM sealed", &[])
                .await
                .expect("count")
                .get(0);
            assert_eq!(count, 0);
            let one: i32 = proxied
                .query_one("SELECT 1", &[])
                .await
                .expect("the session is usable")
                .get(0);
            assert_eq!(one, 1);
        }
    }
}

#[tokio::test]
async fn a_value_that_fails_to_open_ends_copy_to_with_xx001_and_no_ciphertext() {
    let env = setup().await;
    let direct = env.db.connect().await;
    let proxied = env.proxied().await;
    copy_in(
        &proxied,
        "COPY texts FROM STDIN",
        b"1\tone\ttwo\n2\tthree\tfour\n",
        4096,
    )
    .await;
    // A ciphertext copied into another column must not open there.
    direct
        .batch_execute("UPDATE texts SET a = b WHERE id = 2")
        .await
        .expect("swap ciphertexts directly");
    for sql in [
        "COPY texts TO STDOUT",
        "COPY texts TO STDOUT (FORMAT csv)",
        "COPY texts TO STDOUT (FORMAT binary)",
    ] {
        let error = try_copy_out(&proxied, sql)
            .await
            .expect_err("the COPY fails");
        let db = error.as_db_error().expect("a server-shaped error");
        assert_eq!(db.code().code(), "XX001", "{sql}");
        assert!(db.message().contains("public.texts.a"), "{}", db.message());
        proxied.simple_query("SELECT 1").await.expect("usable");
    }
    // A plaintext column carrying a ciphertext is refused too.
    let error = try_copy_out(&proxied, "COPY (SELECT id, a::bytea FROM texts) TO STDOUT").await;
    assert!(
        error.is_err(),
        "a computed column over ciphertext is refused or withheld"
    );
}

#[tokio::test]
async fn copy_forms_the_proxy_cannot_carry_are_refused() {
    let env = setup().await;
    let proxied = env.proxied().await;
    for sql in [
        "COPY sealed TO '/tmp/pgseal-copy-test'",
        "COPY sealed FROM '/tmp/pgseal-copy-test'",
        "COPY sealed TO PROGRAM 'cat'",
        "COPY (SELECT note FROM sealed) TO '/tmp/pgseal-copy-test'",
        "COPY sealed FROM STDIN WHERE id > 1",
        "COPY sealed FROM STDIN WITH (ENCODING 'LATIN1')",
        "COPY (SELECT lower(note) FROM sealed) TO STDOUT",
        "COPY (SELECT * FROM (SELECT note FROM sealed) s) TO STDOUT",
        "COPY (SELECT note FROM sealed UNION ALL SELECT note FROM sealed) TO STDOUT",
    ] {
        let error = proxied.simple_query(sql).await.expect_err(sql);
        let db = error.as_db_error().expect("a server-shaped error");
        assert_eq!(db.code().code(), "0A000", "{sql}: {}", db.message());
    }
    // A table without encrypted columns is not affected.
    let direct = env.db.connect().await;
    direct
        .batch_execute("INSERT INTO plain (id, name) VALUES (1, 'x')")
        .await
        .expect("insert");
    assert_eq!(
        copy_out(&proxied, "COPY plain (id, name) TO STDOUT").await,
        b"1\tx\n"
    );
}

#[tokio::test]
async fn large_copy_streams_through() {
    let env = setup().await;
    let direct = env.db.connect().await;
    let proxied = env.proxied().await;
    let mut data = Vec::new();
    for i in 0..20_000 {
        data.extend_from_slice(
            format!(
                "{i}\tname{i}\tuser{i}@example.com\t2024-01-{:02}\t{i}\tnote {i}\t{i}.5\t2024-01-01 00:00:00+00\t\\\\x{:04x}\n",
                i % 28 + 1,
                i % 65536
            )
            .as_bytes(),
        );
    }
    assert_eq!(
        copy_in(&proxied, "COPY sealed FROM STDIN", &data, 8192).await,
        20_000
    );
    copy_in(&direct, "COPY plain FROM STDIN", &data, 65536).await;
    assert_eq!(
        copy_out(&proxied, "COPY sealed TO STDOUT").await,
        copy_out(&direct, "COPY plain TO STDOUT").await
    );
}

/// Simple-protocol COPY with raw messages: the malformed row's error arrives in place of the
/// server's, followed by ReadyForQuery, and a later COPY on the same connection works.
#[tokio::test]
async fn simple_protocol_copy_in_with_a_bad_row_then_a_good_one() {
    use common::raw;
    let env = setup().await;
    let mut stream = raw::login(env.addr, env.db.name()).await;
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(&raw::query("COPY texts FROM STDIN"))
        .await
        .expect("send");
    let (tag, _) = raw::read_message(&mut stream)
        .await
        .expect("CopyInResponse");
    assert_eq!(tag, b'G');
    // An octal escape that makes invalid UTF-8, split across two messages.
    let mut out = raw::message(b'd', b"1\tfine\tfine\n2\tbad\\3");
    out.extend(raw::message(b'd', b"77\tx\n"));
    out.extend(raw::message(b'c', b""));
    stream.write_all(&out).await.expect("send data");
    let (tag, body) = raw::read_message(&mut stream).await.expect("a reply");
    assert_eq!(tag, b'E', "an error first");
    let (code, message) = raw::error_fields(&body);
    assert_eq!(code, "22021", "{message}");
    assert!(message.contains("public.texts.a"), "{message}");
    assert_eq!(raw::read_until_ready(&mut stream).await, vec![b'Z']);
    stream
        .write_all(&raw::query("COPY texts FROM STDIN"))
        .await
        .expect("send");
    let (tag, _) = raw::read_message(&mut stream)
        .await
        .expect("CopyInResponse");
    assert_eq!(tag, b'G');
    let mut out = raw::message(b'd', b"3\tx\ty\n");
    out.extend(raw::message(b'c', b""));
    stream.write_all(&out).await.expect("send data");
    assert_eq!(raw::read_until_ready(&mut stream).await, vec![b'C', b'Z']);
    let direct = env.db.connect().await;
    let ids: Vec<i32> = direct
        .query("SELECT id FROM texts", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![3]);
}

/// A table whose COPY columns differ from what the catalog lists (generated columns are not
/// copied): the proxy cannot map fields to columns and fails closed, in both directions.
#[tokio::test]
async fn a_column_count_mismatch_fails_closed() {
    let env = setup().await;
    let proxied = env.proxied().await;
    let error = try_copy_in(&proxied, "COPY generated FROM STDIN", b"1\tsecret\n", 4096)
        .await
        .expect_err("refused");
    let db = error.as_db_error().expect("a server-shaped error");
    assert_eq!(db.code().code(), "0A000", "{}", db.message());
    let error = try_copy_out(&proxied, "COPY generated TO STDOUT")
        .await
        .expect_err("refused");
    assert_eq!(
        error.as_db_error().expect("db error").code().code(),
        "0A000"
    );
    // With the columns named, both work.
    copy_in(
        &proxied,
        "COPY generated (id, e) FROM STDIN",
        b"1\tsecret\n",
        4096,
    )
    .await;
    assert_eq!(
        copy_out(&proxied, "COPY generated (id, e) TO STDOUT").await,
        b"1\tsecret\n"
    );
    let direct = env.db.connect().await;
    let stored: Vec<u8> = direct
        .query_one("SELECT e::bytea FROM generated", &[])
        .await
        .expect("row")
        .get(0);
    assert!(pgseal_crypto::parse_ciphertext(&stored).is_ok());
}
