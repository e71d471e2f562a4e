//! Equality search on encrypted columns through the proxy with real clients: psql (simple
//! protocol), tokio-postgres (extended protocol, binary), psycopg 3
//! (`tests/drivers/python/test_search.py`) and node `pg` (`tests/drivers/node/search.mjs`).
//! Each works on a table of its own with searchable columns (`pgseal.email`, `pgseal.text_eq`
//! in encrypted mode, plain `text` in the plaintext twin) and must see the same rows in both
//! modes, except where the encrypted column's normalisation answers differently on purpose.

mod common;

use common::{repo_root, require_tool, run_checked, tool_runs, Harness, ENCRYPTED};
use pgseal_testkit::TestCluster;

fn searchable(domain: &str) -> &str {
    if ENCRYPTED {
        domain
    } else {
        "text"
    }
}

fn psql(url: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(TestCluster::shared().cluster().psql_command());
    cmd.env("PGCLIENTENCODING", "UTF8")
        .env_remove("PSQLRC")
        .args([
            "-q",
            "-A",
            "-t",
            "-F",
            "|",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
        ]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_looks_up_by_encrypted_values() {
    if !require_tool(tool_runs("psql", &["--version"]).await, "psql") {
        return;
    }
    let h = Harness::start().await;
    let url = h.proxy_url();
    let setup = format!(
        "CREATE TABLE search_psql (id int PRIMARY KEY, name text, email {}, code {});",
        searchable("pgseal.email"),
        searchable("pgseal.text_eq")
    );
    // One session: it waits for the proxy to learn the new columns before the INSERT.
    run_checked(
        psql(&url).args([
            "-c",
            &setup,
            "-c",
            "INSERT INTO search_psql VALUES (1, 'ann', 'ann@example.com', 'a'), \
             (2, 'bob', 'bob@example.com', 'b'), (3, 'bea', NULL, 'b'), (4, 'cy', 'cy@x', NULL)",
        ]),
        "psql CREATE TABLE and INSERT",
    )
    .await;
    // The index is created through the proxy on the column, before any UPDATE: an index built
    // over HOT chains that updates broke is unusable (pg_index.indcheckxmin) to transactions
    // whose snapshot predates it, which any other test's open transaction on the shared
    // cluster can make the EXPLAIN below be.
    run_checked(
        psql(&url).args([
            "-c",
            "CREATE UNIQUE INDEX search_psql_email ON search_psql (email)",
        ]),
        "psql CREATE UNIQUE INDEX",
    )
    .await;
    let cases = [
        (
            "SELECT id, email FROM search_psql WHERE email = 'bob@example.com'",
            "2|bob@example.com\n",
        ),
        (
            "SELECT id FROM search_psql WHERE code = 'b' ORDER BY id",
            "2\n3\n",
        ),
        (
            "SELECT id FROM search_psql WHERE code <> 'b' ORDER BY id",
            "1\n",
        ),
        (
            "SELECT id FROM search_psql WHERE code IN ('a', NULL) ORDER BY id",
            "1\n",
        ),
        (
            "SELECT id FROM search_psql WHERE code NOT IN ('a', NULL) ORDER BY id",
            "",
        ),
        (
            "SELECT count(*) FROM search_psql WHERE code = 'b' AND email IS NULL",
            "1\n",
        ),
        (
            "UPDATE search_psql SET name = 'x' WHERE email IN ('ann@example.com', 'cy@x') \
             RETURNING id, name",
            "1|x\n4|x\n",
        ),
    ];
    for (sql, want) in cases {
        let out = run_checked(psql(&url).args(["-c", sql]), sql).await;
        assert_eq!(out, want, "{sql}");
    }
    // EXPLAIN goes through the proxy too.
    let out = run_checked(
        psql(&url).args([
            "-c",
            "SET enable_seqscan = off",
            "-c",
            "EXPLAIN (COSTS OFF) SELECT id FROM search_psql WHERE email = 'ann@example.com'",
        ]),
        "psql EXPLAIN",
    )
    .await;
    assert!(out.contains("search_psql_email"), "{out}");
    let out = run_checked(
        psql(&url).args([
            "-c",
            "INSERT INTO search_psql (id, email) VALUES (9, 'ann@example.com') \
             ON CONFLICT (email) DO UPDATE SET name = 'upserted' RETURNING id, name",
        ]),
        "psql ON CONFLICT",
    )
    .await;
    assert_eq!(out, "1|upserted\n");
    if ENCRYPTED {
        let out = run_checked(
            psql(&url).args([
                "-c",
                "SELECT id FROM search_psql WHERE email = ' ANN@Example.com'",
            ]),
            "psql normalised lookup",
        )
        .await;
        assert_eq!(
            out, "1\n",
            "pgseal.email compares lower-cased, trimmed text"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_looks_up_with_parameters() {
    let h = Harness::start().await;
    let client = h.proxy_client().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE search_rust (id int PRIMARY KEY, email {}, n {})",
            searchable("pgseal.email"),
            if ENCRYPTED { "pgseal.int8_eq" } else { "int8" }
        ))
        .await
        .expect("table");
    for (id, email, n) in [(1, Some("a@x"), 10i64), (2, Some("b@x"), 20), (3, None, 10)] {
        client
            .execute(
                "INSERT INTO search_rust VALUES ($1, $2, $3)",
                &[&id, &email, &n],
            )
            .await
            .expect("insert");
    }
    let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i32>>();
    let lookup = client
        .prepare(
            "SELECT id FROM search_rust WHERE n = $1 AND (email = $2 OR email IS NULL) ORDER BY id",
        )
        .await
        .expect("prepare");
    assert_eq!(
        lookup.params(),
        &[
            tokio_postgres::types::Type::INT8,
            tokio_postgres::types::Type::TEXT
        ]
    );
    assert_eq!(
        ids(client.query(&lookup, &[&10i64, &"a@x"]).await.expect("q")),
        [1, 3]
    );
    assert_eq!(
        ids(client.query(&lookup, &[&20i64, &"a@x"]).await.expect("q")),
        Vec::<i32>::new()
    );
    let changed = client
        .execute(
            "UPDATE search_rust SET n = $1 WHERE n = $1 AND email <> $2",
            &[&10i64, &"zz"],
        )
        .await
        .expect("update");
    assert_eq!(changed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_looks_up_by_encrypted_values() {
    let available = tool_runs("python3", &["-c", "import psycopg, pytest"]).await;
    if !require_tool(available, "python3 with psycopg 3 and pytest") {
        return;
    }
    let h = Harness::start().await;
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/drivers/python/test_search.py",
    ])
    .current_dir(repo_root())
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .envs(h.driver_env());
    let out = run_checked(&mut cmd, "pytest tests/drivers/python/test_search.py").await;
    println!("{out}");
    assert!(
        !out.contains("skipped") && out.contains("4 passed"),
        "every search test ran and passed: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_pg_looks_up_by_encrypted_values() {
    let dir = repo_root().join("tests/drivers/node");
    let available = tool_runs("node", &["--version"]).await && dir.join("node_modules/pg").is_dir();
    if !require_tool(
        available,
        "node with tests/drivers/node/node_modules (npm ci)",
    ) {
        return;
    }
    let h = Harness::start().await;
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(["--test", "--test-reporter=spec", "search.mjs"])
        .current_dir(&dir)
        .envs(h.driver_env());
    let out = run_checked(&mut cmd, "node --test search.mjs").await;
    println!("{out}");
    assert!(
        out.contains("# pass 1") || out.contains("ℹ pass 1"),
        "the node search test ran and passed: {out}"
    );
}
