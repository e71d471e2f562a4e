//! COPY through the proxy with real clients: psql's `\copy` from and to files (simple query
//! protocol), psycopg 3's `cursor.copy()` in text and binary, and node `pg` with
//! `pg-copy-streams` (`tests/drivers/node/copy.mjs`). Each result is compared with
//! the same COPY on a plain-typed twin table straight to PostgreSQL.
//!
//! Encrypted mode only: every assertion here is about sealing and opening (ciphertext at rest,
//! the proxy's error shape for a bad value). COPY through the transparent proxy is covered by
//! crates/proxy/tests/through_proxy.rs.
#![cfg(feature = "encrypted")]

mod common;

use common::{repo_root, require_tool, run_checked, tool_runs, Harness};
use pgseal_testkit::TestCluster;

const SEALED: &str = "CREATE TABLE copy_sealed (id int, name text, email pgseal.email, \
    d pgseal.date, note pgseal.text, amount pgseal.numeric)";
const PLAIN: &str = "CREATE TABLE copy_plain (id int, name text, email text, d date, \
    note text, amount numeric)";

/// psql with fixed session settings and no user configuration.
fn psql(url: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(TestCluster::shared().cluster().psql_command());
    cmd.env("PGTZ", "UTC")
        .env("PGDATESTYLE", "ISO, MDY")
        .env("PGCLIENTENCODING", "UTF8")
        .env_remove("PSQLRC")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]);
    cmd.kill_on_drop(true);
    cmd
}

async fn run(cmd: &mut tokio::process::Command) -> std::process::Output {
    tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("psql finishes")
        .expect("psql runs")
}

async fn tables(h: &Harness) {
    // Created through the proxy, so its catalog knows the columns at once.
    let proxy = h.proxy_client().await;
    proxy.batch_execute(SEALED).await.expect("sealed table");
    // This session's next statement waits for the catalog reload its DDL asked for; other
    // sessions (psql below) start after it and see the new columns.
    proxy
        .batch_execute("SELECT note FROM copy_sealed LIMIT 0")
        .await
        .expect("the proxy knows the new table");
    let direct = h.direct_client().await;
    direct.batch_execute(PLAIN).await.expect("plain table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_backslash_copy_from_and_to_files() {
    if !require_tool(tool_runs("psql", &["--version"]).await, "psql") {
        return;
    }
    let h = Harness::start().await;
    tables(&h).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let text_in = dir.path().join("in.txt");
    let mut data = String::new();
    for i in 0..3000 {
        data.push_str(&format!(
            "{i}\tname {i}\tUser{i}@Example.com\t2024-{:02}-{:02}\tnote\\twith tab \\\\ {i}\t{i}.50\n",
            i % 12 + 1,
            i % 28 + 1
        ));
    }
    data.push_str("9999\t\\N\t\\N\t\\N\t\\N\t\\N\n");
    std::fs::write(&text_in, &data).expect("write input");
    let csv_in = dir.path().join("in.csv");
    std::fs::write(
        &csv_in,
        "id,name,email,d,note,amount\n1,Ann,a@x.org,2024-03-01,\"multi\nline, \"\"q\"\"\",1.5\n2,,,,\"\",\n",
    )
    .expect("write csv");

    for (table, url) in [
        ("copy_sealed", h.proxy_url()),
        ("copy_plain", h.direct_url()),
    ] {
        let script = format!(
            "\\copy {table} FROM '{}'\n\\copy {table} FROM '{}' WITH (FORMAT csv, HEADER)\n\
             \\copy {table} TO '{}/{table}.txt'\n\\copy {table} TO '{}/{table}.csv' WITH (FORMAT csv, HEADER)\n\
             \\copy (SELECT id, note, d FROM {table} WHERE id < 10) TO '{}/{table}.q.txt'\n",
            text_in.display(),
            csv_in.display(),
            dir.path().display(),
            dir.path().display(),
            dir.path().display(),
        );
        let script_file = dir.path().join(format!("{table}.sql"));
        std::fs::write(&script_file, script).expect("write script");
        let out = run(psql(&url).arg("-f").arg(&script_file)).await;
        assert!(
            out.status.success(),
            "psql \\copy on {table}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for ext in ["txt", "csv", "q.txt"] {
        let sealed = std::fs::read(dir.path().join(format!("copy_sealed.{ext}"))).expect("out");
        let plain = std::fs::read(dir.path().join(format!("copy_plain.{ext}"))).expect("out");
        assert!(sealed.len() > 1000 || ext == "q.txt");
        assert_eq!(
            String::from_utf8_lossy(&sealed),
            String::from_utf8_lossy(&plain),
            "\\copy TO .{ext} through the proxy equals the plain table's"
        );
    }
    // PostgreSQL holds ciphertext only.
    let direct = h.direct_client().await;
    let leaked: i64 = direct
        .query_one(
            "SELECT count(*) FROM copy_sealed WHERE encode(note::bytea, 'escape') LIKE '%note%' \
             OR encode(email::bytea, 'escape') LIKE '%Example%'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(leaked, 0);

    // A malformed row: psql reports PostgreSQL's error shape, nothing is committed.
    let bad = dir.path().join("bad.txt");
    std::fs::write(
        &bad,
        "10001\tok\tok@x.org\t2024-01-01\tfine\t1\n10002\tbad\tb@x.org\tsecret-date\tx\t1\n",
    )
    .expect("write bad input");
    let out = run(psql(&h.proxy_url()).args([
        "-c",
        &format!("\\copy copy_sealed FROM '{}'", bad.display()),
    ]))
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ERROR:"), "{stderr}");
    assert!(stderr.contains("public.copy_sealed.d"), "{stderr}");
    assert!(
        stderr.contains("CONTEXT:  COPY copy_sealed, line 2, column d"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
    let count: i64 = direct
        .query_one("SELECT count(*) FROM copy_sealed WHERE id > 10000", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 0);
}

const PSYCOPG_SCRIPT: &str = r#"
import datetime, decimal, json, os, sys
import psycopg

url = os.environ["PGSEAL_COPY_URL"]
table = os.environ["PGSEAL_COPY_TABLE"]
out = {}
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'")
    cur = conn.cursor()
    with cur.copy(f"COPY {table} (id, name, email, d, note, amount) FROM STDIN") as copy:
        copy.write_row((1, "Ann", "Ann@X.org", datetime.date(2024, 2, 29), "tab\there\nnl", decimal.Decimal("1.50")))
        copy.write_row((2, None, None, None, None, None))
    with cur.copy(f"COPY {table} (id, name, email, d, note, amount) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "text", "text", "date", "text", "numeric"])
        copy.write_row((3, "Bo", "bo@x.org", datetime.date(1999, 12, 31), "binary ✓", decimal.Decimal("-0.001")))
    rows = []
    with cur.copy(f"COPY {table} TO STDOUT") as copy:
        for row in copy.rows():
            rows.append(list(row))
    out["text"] = rows
    rows = []
    with cur.copy(f"COPY {table} (id, d, note, amount) TO STDOUT (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "date", "text", "numeric"])
        for row in copy.rows():
            rows.append([str(v) if v is not None else None for v in row])
    out["binary"] = rows
    try:
        with cur.copy(f"COPY {table} (id, d) FROM STDIN") as copy:
            copy.write_row((4, "not a date secret"))
        error = None
    except psycopg.Error as e:
        error = [e.sqlstate, e.diag.context or "", e.diag.message_primary or ""]
    out["after"] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
print(json.dumps(out, sort_keys=True))
print(json.dumps(error))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_cursor_copy_text_and_binary() {
    let available = tool_runs("python3", &["-c", "import psycopg"]).await;
    if !require_tool(available, "python3 with psycopg 3") {
        return;
    }
    let h = Harness::start().await;
    tables(&h).await;
    let mut outputs = Vec::new();
    for (table, url) in [
        ("copy_sealed", h.proxy_url()),
        ("copy_plain", h.direct_url()),
    ] {
        let mut cmd = tokio::process::Command::new("python3");
        cmd.args(["-c", PSYCOPG_SCRIPT])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PGSEAL_COPY_URL", &url)
            .env("PGSEAL_COPY_TABLE", table)
            .kill_on_drop(true);
        let out = run(&mut cmd).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "psycopg on {table}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(stdout);
    }
    let sealed = outputs[0].replace("copy_sealed", "T");
    let plain = outputs[1].replace("copy_plain", "T");
    let (sealed_rows, sealed_error) = sealed.split_once('\n').expect("two lines");
    let (plain_rows, plain_error) = plain.split_once('\n').expect("two lines");
    // Same rows back, in text and binary, as from the plain table.
    assert_eq!(sealed_rows, plain_rows);
    assert!(sealed_rows.contains("\\u2713"), "{sealed_rows}");
    assert!(sealed_rows.contains("\"after\": 3"), "{sealed_rows}");
    // PostgreSQL's own date parser and the proxy's report the same class and context; the
    // proxy's message names the column and never the value.
    assert!(plain_error.starts_with("[\"22"), "{plain_error}");
    assert!(sealed_error.starts_with("[\"22"), "{sealed_error}");
    assert!(
        sealed_error.contains("COPY T, line 1, column d"),
        "{sealed_error}"
    );
    assert!(sealed_error.contains("public.T.d"), "{sealed_error}");
    assert!(!sealed_error.contains("secret"), "{sealed_error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_pg_copy_streams_in_and_out() {
    let dir = repo_root().join("tests/drivers/node");
    let available = tool_runs("node", &["--version"]).await
        && dir.join("node_modules/pg-copy-streams").is_dir();
    if !require_tool(
        available,
        "node with tests/drivers/node/node_modules (npm ci)",
    ) {
        return;
    }
    let h = Harness::start().await;
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(["--test", "--test-reporter=spec", "copy.mjs"])
        .current_dir(&dir)
        .envs(h.driver_env());
    let out = run_checked(&mut cmd, "node --test copy.mjs").await;
    println!("{out}");
    assert!(
        out.contains("# pass 2") || out.contains("ℹ pass 2"),
        "both node COPY tests ran and passed: {out}"
    );
}
