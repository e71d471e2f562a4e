//! psql through the proxy (simple query protocol, text results): `-c` commands and script
//! files, output compared byte for byte with what PostgreSQL prints for the same values.

mod common;

use common::{require_tool, run_checked, tool_runs, Harness, TABLE};
use pgseal_testkit::TestCluster;

/// psql preset for the shared cluster (`-X -w -v ON_ERROR_STOP=1`), unaligned output with
/// `|` between fields and a visible NULL, UTC and ISO dates whatever the machine's settings.
fn psql(url: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(TestCluster::shared().cluster().psql_command());
    cmd.env("PGTZ", "UTC")
        .env("PGDATESTYLE", "ISO, MDY")
        .env("PGCLIENTENCODING", "UTF8")
        .env_remove("PSQLRC")
        .args(["-q", "-A", "-F", "|", "-P", "null=(null)", "-d", url]);
    cmd
}

async fn psql_available() -> bool {
    require_tool(tool_runs("psql", &["--version"]).await, "psql")
}

const INSERT_ORDINARY: &str = r#"INSERT INTO vault (id, note, c_bool, c_int2, c_int4, c_int8, c_float4, c_float8,
    c_numeric, c_text, c_varchar, c_bytea, c_date, c_time, c_timestamp, c_timestamptz, c_uuid,
    c_jsonb, c_email, c_phone)
VALUES (1, 'ordinary', true, 12345, -2000000000, 9007199254740993, 1.5, -0.1,
    12345.67890, 'Sun in Leo, Moon in Pisces ☽', 'varchar value', '\x000102b5ff', '2024-02-29',
    '13:45:30.123456', '1999-12-31 23:59:59.999999', '2024-07-01 14:00:00+02',
    '123e4567-e89b-12d3-a456-426614174000', '{"b": [true, null], "a": 1.50}',
    'Ada@Example.com', '+44 20 7946 0018')"#;

const INSERT_EDGES: &str = r#"INSERT INTO vault (id, note, c_bool, c_int2, c_int4, c_int8, c_float4, c_float8,
    c_numeric, c_text, c_varchar, c_bytea, c_date, c_time, c_timestamp, c_timestamptz, c_uuid,
    c_jsonb, c_email, c_phone)
VALUES (2, 'edges', false, -32768, 2147483647, -9223372036854775808, '3.4028235e+38', 1e-300,
    -0.000100, '', 'ünïcødé 🦀 ''quoted'' "double" \ back', '\x', '-infinity', '24:00:00',
    'infinity', '-infinity', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', '"a \"string\" with ☃"',
    '  MiXeD@Case.ORG ', '(555) 010-9999')"#;

const INSERT_NULLS: &str = "INSERT INTO vault (id, note) VALUES (3, 'nulls')";

const UPDATE: &str = "UPDATE vault SET c_text = 'updated text ✓', c_int8 = -42, \
    c_numeric = 0.5, c_date = '1970-01-01', c_bytea = '\\xdeadbeef', c_bool = NULL WHERE id = 2";

const SELECT_ALL: &str = "SELECT id, note, c_bool, c_int2, c_int4, c_int8, c_float4, c_float8, \
    c_numeric, c_text, c_varchar, c_bytea, c_date, c_time, c_timestamp, c_timestamptz, c_uuid, \
    c_jsonb, c_email, c_phone FROM vault ORDER BY id";

const HEADER: &str = "id|note|c_bool|c_int2|c_int4|c_int8|c_float4|c_float8|c_numeric|c_text|\
    c_varchar|c_bytea|c_date|c_time|c_timestamp|c_timestamptz|c_uuid|c_jsonb|c_email|c_phone";

const ROW_ORDINARY: &str = "1|ordinary|t|12345|-2000000000|9007199254740993|1.5|-0.1|\
    12345.67890|Sun in Leo, Moon in Pisces ☽|varchar value|\\x000102b5ff|2024-02-29|\
    13:45:30.123456|1999-12-31 23:59:59.999999|2024-07-01 12:00:00+00|\
    123e4567-e89b-12d3-a456-426614174000|{\"a\": 1.50, \"b\": [true, null]}|Ada@Example.com|\
    +44 20 7946 0018";

const ROW_EDGES_UPDATED: &str = "2|edges|(null)|-32768|2147483647|-42|3.4028235e+38|1e-300|\
    0.5|updated text ✓|ünïcødé 🦀 'quoted' \"double\" \\ back|\\xdeadbeef|1970-01-01|24:00:00|\
    infinity|-infinity|ffffffff-ffff-ffff-ffff-ffffffffffff|\"a \\\"string\\\" with ☃\"\
    |  MiXeD@Case.ORG |(555) 010-9999";

const ROW_NULLS: &str = "3|nulls|(null)|(null)|(null)|(null)|(null)|(null)|(null)|(null)|(null)|\
    (null)|(null)|(null)|(null)|(null)|(null)|(null)|(null)|(null)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_insert_update_and_select_every_type_exactly() {
    if !psql_available().await {
        return;
    }
    let h = Harness::start().await;
    let url = h.proxy_url();
    for sql in [INSERT_ORDINARY, INSERT_EDGES, INSERT_NULLS, UPDATE] {
        let out = run_checked(psql(&url).args(["-c", sql]), "psql -c").await;
        assert_eq!(out, "", "a quiet psql prints nothing for {sql:?}");
    }
    let out = run_checked(psql(&url).args(["-c", SELECT_ALL]), "psql -c SELECT").await;
    assert_eq!(
        out,
        format!("{HEADER}\n{ROW_ORDINARY}\n{ROW_EDGES_UPDATED}\n{ROW_NULLS}\n(3 rows)\n")
    );
    // The same rows with the other output settings clients use: another DateStyle, time
    // zone, float digits and bytea format are the session's to choose.
    let out = run_checked(
        psql(&url).args([
            "-t",
            "-c",
            "SET DateStyle = 'German'; SET TimeZone = 'Asia/Kolkata'; \
                 SET extra_float_digits = 0; SET bytea_output = 'escape'",
            "-c",
            &format!(
                "SELECT c_date, c_timestamptz, c_float4, c_float8, c_bytea FROM {TABLE} \
                     WHERE id = 1"
            ),
        ]),
        "psql -c with session settings",
    )
    .await;
    assert_eq!(
        out,
        "29.02.2024|01.07.2024 17:30:00 IST|1.5|-0.1|\\000\\001\\002\\265\\377\n"
    );
    assert_eq!(h.check_storage().await, 3);
}

const FAILING_SCRIPT: &str = r"
BEGIN;
INSERT INTO vault (id, note, c_text, c_int8) VALUES (10, 'rolled back', 'gone', 10);
INSERT INTO vault (id, note, c_text) VALUES (10, 'duplicate', 'dup');
SELECT c_text FROM vault WHERE id = 10;
ROLLBACK;
SELECT count(*) AS after_rollback FROM vault;
BEGIN;
INSERT INTO vault (id, note, c_text, c_int8) VALUES (11, 'kept', 'first ✓', 11);
SAVEPOINT before_failure;
UPDATE vault SET c_int8 = 0 WHERE id = 1 / 0;
ROLLBACK TO SAVEPOINT before_failure;
INSERT INTO vault (id, note, c_text, c_date) VALUES (12, 'kept', 'second', '2020-02-02');
COMMIT;
SELECT id, note, c_text, c_int8, c_date FROM vault ORDER BY id;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_with_a_failed_transaction_recovers() {
    if !psql_available().await {
        return;
    }
    let h = Harness::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("script.sql");
    std::fs::write(&script, FAILING_SCRIPT).expect("write the script");

    // This script is meant to meet errors: psql carries on after each one.
    let mut cmd = psql(&h.proxy_url());
    cmd.args(["-v", "ON_ERROR_STOP=0", "-f"]).arg(&script);
    cmd.kill_on_drop(true);
    let output = cmd.output().await.expect("run psql -f");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "psql -f: {stderr}");
    assert_eq!(
        stdout,
        "after_rollback\n0\n(1 row)\n\
         id|note|c_text|c_int8|c_date\n\
         11|kept|first ✓|11|(null)\n\
         12|kept|second|(null)|2020-02-02\n\
         (2 rows)\n"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR:")).collect();
    assert_eq!(errors.len(), 3, "three statements fail: {stderr}");
    assert!(errors[0].contains("duplicate key value violates unique constraint"));
    assert!(errors[1].contains("current transaction is aborted"));
    assert!(errors[2].contains("division by zero"));

    // The same script stops at the first error with ON_ERROR_STOP=1 (psql exits 3), and the
    // open transaction is rolled back when the session ends.
    let mut cmd = psql(&h.proxy_url());
    cmd.arg("-f").arg(&script).kill_on_drop(true);
    let stopped = cmd.output().await.expect("run psql -f");
    assert_eq!(
        stopped.status.code(),
        Some(3),
        "psql stops at the first error"
    );
    let out = run_checked(
        psql(&h.proxy_url()).args(["-t", "-c", "SELECT count(*) FROM vault WHERE id = 10"]),
        "psql -c count",
    )
    .await;
    assert_eq!(out, "0\n");
    assert_eq!(h.check_storage().await, 2);
}
