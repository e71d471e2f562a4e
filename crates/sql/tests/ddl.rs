//! Schema changes and the statements after them: a relation whose encrypted columns are
//! declared in a transaction that has not committed is unknown to the proxy's catalog, so a
//! value for it would reach the server as plaintext (`ddl.rs`).

mod common;

use common::TestCatalog;
use pgseal_sql::{analyze, Reason, SqlError};

fn uncommitted_table(result: Result<pgseal_sql::Analysis, SqlError>) -> Option<String> {
    match result {
        Err(SqlError::EncryptedTable {
            table,
            reason: Reason::Uncommitted,
        }) => Some(table),
        _ => None,
    }
}

#[test]
fn statements_declare_the_relations_whose_encrypted_columns_they_change() {
    let catalog = TestCatalog::new();
    let declared = |sql: &str| {
        let analysis = analyze(sql, &catalog).expect("analysed");
        analysis.statements[0].declares_encrypted.clone()
    };
    assert_eq!(declared("CREATE TABLE t2 (id int, c pgseal.text)"), ["t2"]);
    assert_eq!(declared("CREATE TABLE t2 (id int, e email)"), ["t2"]);
    assert_eq!(declared("CREATE TABLE t3 (LIKE users)"), ["t3"]);
    assert_eq!(declared("CREATE TABLE t3 () INHERITS (accounts)"), ["t3"]);
    assert_eq!(
        declared("CREATE TABLE t4 (id int, body text)"),
        Vec::<String>::new()
    );
    assert_eq!(
        declared("ALTER TABLE notes ADD COLUMN c pgseal.date"),
        ["notes"]
    );
    assert_eq!(
        declared("ALTER TABLE notes ALTER COLUMN body TYPE pgseal.text"),
        ["notes"]
    );
    assert_eq!(
        declared("ALTER TABLE notes ADD COLUMN n int"),
        Vec::<String>::new()
    );
    assert_eq!(
        declared("ALTER TABLE users RENAME TO customers"),
        ["users", "customers"]
    );
    assert_eq!(
        declared("ALTER TABLE users RENAME COLUMN email TO mail"),
        ["users"]
    );
    assert_eq!(
        declared("ALTER TABLE notes RENAME TO memos"),
        Vec::<String>::new()
    );
    assert_eq!(declared("ALTER TABLE users SET SCHEMA archive"), ["users"]);
    assert_eq!(
        declared("CREATE VIEW v2 AS SELECT id, email FROM users"),
        ["v2"]
    );
    assert_eq!(
        declared("CREATE VIEW v3 AS SELECT id, body FROM notes"),
        Vec::<String>::new()
    );
}

#[test]
fn later_statements_of_the_text_cannot_carry_values_for_them() {
    let catalog = TestCatalog::new();
    for (sql, table) in [
        ("CREATE TABLE t2 (id int, c pgseal.text); INSERT INTO t2 VALUES (1, 'secret')", "t2"),
        ("ALTER TABLE notes ADD COLUMN c pgseal.text; UPDATE notes SET c = $1", "notes"),
        ("ALTER TABLE users RENAME TO customers; INSERT INTO customers (email) VALUES ('a@b')", "customers"),
        ("ALTER TABLE users RENAME COLUMN email TO mail; UPDATE users SET mail = 'a@b'", "users"),
        ("CREATE TABLE t2 (c pgseal.text); COPY t2 FROM STDIN", "t2"),
        ("CREATE TABLE t2 (c pgseal.text); CREATE VIEW v2 AS SELECT c FROM t2; INSERT INTO v2 VALUES ('x')", "v2"),
        ("CREATE TABLE t2 (c pgseal.text); DO $$ BEGIN INSERT INTO t2 VALUES ('x'); END $$", "t2"),
        ("CREATE TABLE t2 (c pgseal.text); ALTER TABLE t2 ALTER COLUMN c SET DEFAULT 'x'", "t2"),
        // Relations made from an uncommitted one are uncommitted too.
        ("CREATE TABLE t2 (c pgseal.text); CREATE TABLE t3 (LIKE t2); INSERT INTO t3 VALUES ('x')", "t3"),
        ("CREATE TABLE t2 (c pgseal.text); ALTER TABLE t2 RENAME TO t4; INSERT INTO t4 VALUES ('x')", "t4"),
    ] {
        assert_eq!(uncommitted_table(analyze(sql, &catalog)).as_deref(), Some(table), "{sql}");
    }
    // Statements without values, and statements about other tables, pass.
    for sql in [
        "CREATE TABLE t2 (id int, c pgseal.text); CREATE INDEX ON t2 (id); SELECT * FROM t2",
        "CREATE TABLE t2 (id int, c pgseal.text); INSERT INTO t2 (id) SELECT id FROM notes",
        "CREATE TABLE t2 (c pgseal.text); INSERT INTO notes (body) VALUES ('x')",
        "INSERT INTO t2 VALUES ('x'); CREATE TABLE t2 (c pgseal.text)",
    ] {
        assert!(analyze(sql, &catalog).is_ok(), "{sql}");
    }
}

#[test]
fn the_open_transaction_declarations_come_from_the_catalog() {
    let catalog = TestCatalog::with_uncommitted(&["t2"]);
    for sql in [
        "INSERT INTO t2 VALUES (1, 'secret')",
        "INSERT INTO public.t2 (c) VALUES ($1)",
        "UPDATE \"t2\" SET c = E'x'",
        "COPY t2 FROM STDIN",
        "COPY t2 (c) FROM STDIN WITH (FORMAT csv)",
        "DO $$ BEGIN EXECUTE 'INSERT INTO t2 VALUES (1)'; END $$",
        "SELECT * FROM t2 WHERE c = 'x'",
    ] {
        assert_eq!(
            uncommitted_table(analyze(sql, &catalog)).as_deref(),
            Some("t2"),
            "{sql}"
        );
    }
    for sql in [
        "SELECT * FROM t2",
        "CREATE INDEX ON t2 (id)",
        "INSERT INTO schema_migrations (version) VALUES ('20261124')",
        "COMMIT",
    ] {
        assert!(analyze(sql, &catalog).is_ok(), "{sql}");
    }
}

#[test]
fn refusals_name_the_table_and_say_to_commit_first() {
    let catalog = TestCatalog::with_uncommitted(&["t2"]);
    let err = analyze("INSERT INTO t2 VALUES ('top secret')", &catalog).expect_err("refused");
    let message = err.to_string();
    assert_eq!(err.sqlstate(), "0A000");
    assert!(message.contains("t2"), "{message}");
    assert!(
        message.contains("commit the schema change first"),
        "{message}"
    );
    assert!(!message.contains("top secret"), "{message}");
}
