//! The `pgseal` binary, run for real against a temporary PostgreSQL cluster.

use std::process::{Command, Output};

use pgseal_testkit::{TestCluster, TestDatabase};

fn pgseal(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pgseal"));
    command.args(args);
    // Start from a clean slate: the developer's own keys must not leak into a test.
    for var in [
        "PGSEAL_MASTER_KEY",
        "PGSEAL_MASTER_KEY_FILE",
        "PGSEAL_PREVIOUS_MASTER_KEYS",
        "PGSEAL_AUDIT_LOG",
        "DATABASE_URL",
    ] {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the pgseal binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn keygen() -> String {
    let output = pgseal(&["keygen"], &[]);
    assert!(
        output.status.success(),
        "keygen failed: {}",
        stderr(&output)
    );
    stdout(&output).trim().to_owned()
}

/// Runs `pgseal init` with `key` against `db` and requires it to succeed.
fn init_ok(key: &str, db: &TestDatabase) {
    let output = pgseal(
        &["init"],
        &[("PGSEAL_MASTER_KEY", key), ("DATABASE_URL", db.url())],
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

async fn database() -> TestDatabase {
    TestCluster::shared().create_database().await
}

async fn schema_exists(db: &TestDatabase) -> bool {
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgseal'",
            &[],
        )
        .await
        .expect("query");
    row.get::<_, i64>(0) == 1
}

#[test]
fn keygen_prints_a_fresh_32_byte_key_and_its_fingerprint() {
    use base64::Engine;
    let first = pgseal(&["keygen"], &[]);
    assert!(first.status.success());
    let key = stdout(&first).trim().to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .expect("keygen prints standard base64");
    assert_eq!(bytes.len(), 32);
    assert!(bytes.iter().any(|&b| b != 0));
    let fingerprint = stderr(&first);
    assert!(fingerprint.contains("fingerprint: mk_"), "{fingerprint}");
    assert!(
        !fingerprint.contains(&key),
        "the key must go to stdout only"
    );
    assert_ne!(key, keygen(), "two keys must differ");
}

#[tokio::test]
async fn init_refuses_bad_keys_naming_the_variable_and_touches_nothing() {
    let db = database().await;
    let zeros = "A".repeat(43) + "=";
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "PGSEAL_MASTER_KEY"),
        (
            &[("PGSEAL_MASTER_KEY", "this is not base64")],
            "PGSEAL_MASTER_KEY",
        ),
        (&[("PGSEAL_MASTER_KEY", "AAECAwQ=")], "PGSEAL_MASTER_KEY"),
        (&[("PGSEAL_MASTER_KEY", &zeros)], "PGSEAL_MASTER_KEY"),
    ];
    for (env, variable) in cases {
        let mut env = env.to_vec();
        env.push(("DATABASE_URL", db.url()));
        let output = pgseal(&["init"], &env);
        assert!(!output.status.success());
        let message = stderr(&output);
        assert!(message.starts_with("error: "), "{message}");
        assert!(message.contains(variable), "{message}");
        assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
        assert!(!message.contains("panicked"), "{message}");
    }
    assert!(
        !schema_exists(&db).await,
        "a refused key must not install anything"
    );
}

#[tokio::test]
async fn init_is_idempotent_and_creates_keys_for_declared_columns() {
    let db = database().await;
    let key = keygen();
    let audit = tempfile::NamedTempFile::new().expect("temp file");
    let audit_path = audit.path().to_str().expect("utf-8 path").to_owned();
    let env = [
        ("PGSEAL_MASTER_KEY", key.as_str()),
        ("DATABASE_URL", db.url()),
        ("PGSEAL_AUDIT_LOG", audit_path.as_str()),
    ];

    let first = pgseal(&["init"], &env);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("installed the pgseal schema"));

    let again = pgseal(&["init"], &env);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("is current"), "{}", stdout(&again));

    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE users (id serial PRIMARY KEY, name text,
                                 email pgseal.email, birth_date pgseal.date);
             CREATE SCHEMA other;
             CREATE TABLE other.users (id int, email pgseal.text);",
        )
        .await
        .expect("declare encrypted columns");

    let no_keys = pgseal(&["columns"], &[("DATABASE_URL", db.url())]);
    assert!(no_keys.status.success(), "{}", stderr(&no_keys));
    assert!(
        stdout(&no_keys).contains("run `pgseal init`"),
        "{}",
        stdout(&no_keys)
    );

    let keys = pgseal(&["init"], &env);
    assert!(keys.status.success(), "{}", stderr(&keys));
    let created = stdout(&keys);
    assert!(
        created.contains("created value key v1 for public.users.email"),
        "{created}"
    );
    assert!(
        created.contains("created index key v1 for public.users.email"),
        "{created}"
    );
    assert!(
        created.contains("created value key v1 for public.users.birth_date"),
        "{created}"
    );
    assert!(
        created.contains("created value key v1 for other.users.email"),
        "{created}"
    );
    assert!(
        !created.contains("index key v1 for public.users.birth_date"),
        "{created}"
    );

    let listed = pgseal(&["columns"], &[("DATABASE_URL", db.url())]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = stdout(&listed);
    assert!(table.contains("public.users.email"), "{table}");
    assert!(table.contains("lower-cased"), "{table}");
    assert!(table.contains("date (pgseal.date)"), "{table}");

    let json = pgseal(&["columns", "--json"], &[("DATABASE_URL", db.url())]);
    let parsed: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("columns --json prints JSON");
    let columns = parsed.as_array().expect("an array");
    assert_eq!(columns.len(), 3);
    let email = columns
        .iter()
        .find(|c| c["column"] == "public.users.email")
        .expect("email listed");
    assert_eq!(email["logical_type"], "text");
    assert_eq!(email["searchable"], true);
    assert_eq!(email["keys"].as_array().map(Vec::len), Some(2));
    let other = columns
        .iter()
        .find(|c| c["column"] == "other.users.email")
        .expect("same-named table in another schema is its own column");
    assert_ne!(other["column_id"], email["column_id"]);

    // Nothing pgseal printed or audited holds the key.
    let audit_text = std::fs::read_to_string(audit.path()).expect("audit log");
    assert!(
        audit_text.contains("\"event\":\"schema_installed\""),
        "{audit_text}"
    );
    assert!(
        audit_text.contains("\"event\":\"master_key_loaded\",\"source\":\"PGSEAL_MASTER_KEY\""),
        "{audit_text}"
    );
    assert!(
        audit_text.contains("\"event\":\"data_key_created\""),
        "{audit_text}"
    );
    for text in [audit_text, created, table, stderr(&keys)] {
        assert!(!text.contains(&key), "key material leaked: {text}");
    }
}

#[tokio::test]
async fn a_different_master_key_is_reported_as_a_mismatch() {
    let db = database().await;
    let key = keygen();
    let client = db.connect().await;
    init_ok(&key, &db);
    client
        .batch_execute("CREATE TABLE t (id int, secret pgseal.text)")
        .await
        .expect("create");
    init_ok(&key, &db);

    let other = keygen();
    let wrong = pgseal(
        &["init"],
        &[("PGSEAL_MASTER_KEY", &other), ("DATABASE_URL", db.url())],
    );
    assert!(!wrong.status.success());
    let message = stderr(&wrong);
    assert!(
        message.contains("does not match the data keys in database"),
        "{message}"
    );
    assert!(
        !message.contains(&other) && !message.contains(&key),
        "{message}"
    );

    // The old key as a previous key is accepted during a rotation.
    let rotating = pgseal(
        &["init"],
        &[
            ("PGSEAL_MASTER_KEY", &other),
            ("PGSEAL_PREVIOUS_MASTER_KEYS", &key),
            ("DATABASE_URL", db.url()),
        ],
    );
    assert!(rotating.status.success(), "{}", stderr(&rotating));
}

#[tokio::test]
async fn plaintext_written_around_pgseal_is_refused_by_postgres() {
    let db = database().await;
    let key = keygen();
    init_ok(&key, &db);
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE users (id int, phone pgseal.phone, born pgseal.date)")
        .await
        .expect("create");
    for statement in [
        "INSERT INTO users (id, phone) VALUES (1, '+44 20 7946 0018')",
        "INSERT INTO users (id, born) VALUES (1, '1990-04-01')",
        "INSERT INTO users (id, phone) VALUES (1, '\\xb501080100000001'::bytea)",
    ] {
        let err = client
            .batch_execute(statement)
            .await
            .expect_err("plaintext must be refused");
        let db_err = err.as_db_error().expect("a server error");
        assert_eq!(db_err.code().code(), "23514", "{statement}: {db_err}");
        assert!(
            db_err.message().contains("pgseal_ciphertext_required"),
            "{}",
            db_err.message()
        );
    }
}

#[test]
fn unreachable_database_and_missing_url_give_one_clear_line() {
    let key = keygen();
    let unreachable = pgseal(
        &["init"],
        &[
            ("PGSEAL_MASTER_KEY", &key),
            ("DATABASE_URL", "postgres://nobody:hunter2@127.0.0.1:1/app"),
        ],
    );
    assert!(!unreachable.status.success());
    let message = stderr(&unreachable);
    assert!(
        message.contains("cannot connect to the database at 127.0.0.1:1/app"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "passwords are never printed: {message}"
    );

    let missing = pgseal(&["columns"], &[]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("DATABASE_URL"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test]
async fn commands_on_a_database_without_the_schema_say_to_run_init() {
    let db = database().await;
    let output = pgseal(&["columns"], &[("DATABASE_URL", db.url())]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("pgseal init"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn proxy_serves_plaintext_to_clients_and_refuses_a_wrong_key_at_start() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let db = database().await;
    let key = keygen();
    init_ok(&key, &db);
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE people (id int PRIMARY KEY, phone pgseal.phone)")
        .await
        .expect("create");
    init_ok(&key, &db);

    // A wrong master key fails at start, before accepting anyone.
    let other = keygen();
    let wrong = pgseal(
        &["proxy", "--listen", "127.0.0.1:0", "--upstream", db.url()],
        &[("PGSEAL_MASTER_KEY", &other)],
    );
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("does not match the data keys"),
        "{}",
        stderr(&wrong)
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_pgseal"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", db.url()])
        .env("PGSEAL_MASTER_KEY", &key)
        .env("PGSEAL_AUDIT_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .expect("proxy starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("the proxy says where it listens");
    assert!(
        first.starts_with("pgseal proxy listening on 127.0.0.1:"),
        "{first}"
    );
    let addr = first
        .split_whitespace()
        .nth(4)
        .expect("an address")
        .to_owned();
    let proxy_url = format!("postgres://postgres@{addr}/{}", db.name());
    let psql = Command::new("psql")
        .args([
            proxy_url.as_str(),
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "INSERT INTO people VALUES (1, '+44 20 7946 0018')",
            "-c",
            "SELECT phone FROM people",
        ])
        .output()
        .expect("psql runs");
    let _ = child.kill();
    let _ = child.wait();
    assert!(psql.status.success(), "{}", stderr(&psql));
    assert_eq!(stdout(&psql).lines().last(), Some("+44 20 7946 0018"));
    let row = client
        .query_one("SELECT encode(phone, 'hex') FROM people", &[])
        .await
        .expect("select");
    let stored: String = row.get(0);
    assert!(stored.starts_with("b501"), "{stored}");
}
