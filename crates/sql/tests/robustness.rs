//! Inputs from outside: no panics, fail closed on what cannot be analysed, spans always valid.

mod common;

use common::TestCatalog;
use pgseal_sql::{analyze, Reason, SqlError};
use proptest::prelude::*;

#[test]
fn deeply_nested_statement_naming_an_encrypted_table_is_refused() {
    let catalog = TestCatalog::new();
    let deep = format!("SELECT id FROM users WHERE id = 1{}", " + 1".repeat(2000));
    match analyze(&deep, &catalog) {
        Err(SqlError::EncryptedTable { .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    let deep_plain = format!("SELECT id FROM notes WHERE id = 1{}", " + 1".repeat(2000));
    let analysis = analyze(&deep_plain, &catalog).expect("passes through");
    assert!(!analysis.touches_encrypted());
}

#[test]
fn unparseable_text_passes_only_without_encrypted_names() {
    let catalog = TestCatalog::new();
    let analysis = analyze("SELEC * FROM notes", &catalog).expect("passes through");
    assert_eq!(analysis.statements.len(), 1);
    assert!(!analysis.statements[0].touches_encrypted);
    let err = analyze("SELEC * FROM \"readings\"", &catalog).expect_err("refused");
    assert_eq!(err.reason(), Some(&Reason::Unparseable));
    assert_eq!(err.sqlstate(), "42601");
}

const FRAGMENTS: &[&str] = &[
    "SELECT",
    "INSERT INTO",
    "UPDATE",
    "DELETE FROM",
    "users",
    "readings",
    "notes",
    "email",
    "phone",
    "id",
    "(",
    ")",
    ",",
    "=",
    "$1",
    "$2",
    "'x'",
    "E'\\n'",
    "$$a$$",
    "::date",
    "WHERE",
    "FROM",
    "VALUES",
    "SET",
    "RETURNING",
    "*",
    "u",
    "AS",
    "JOIN",
    "ON",
    "NULL",
    "DEFAULT",
    ";",
    "-",
    "1.5",
    "/* c */",
    "-- c\n",
    "\"users\"",
    "lower",
    "count",
    "UNION",
    "WITH",
    "x",
    "ORDER BY",
    "GROUP BY",
    "IS NULL",
    "CAST",
    "é",
    "\"",
    "'",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_and_spans_are_valid(picks in prop::collection::vec(0..FRAGMENTS.len(), 0..24)) {
        let sql: String = picks.iter().map(|&i| FRAGMENTS[i]).collect::<Vec<_>>().join(" ");
        let catalog = TestCatalog::new();
        if let Ok(analysis) = analyze(&sql, &catalog) {
            for plan in &analysis.statements {
                prop_assert!(sql.get(plan.span.clone()).is_some());
                let mut last_end = 0;
                for lit in &plan.literals {
                    prop_assert!(sql.get(lit.span.clone()).is_some());
                    prop_assert!(lit.span.start >= plan.span.start && lit.span.end <= plan.span.end);
                    prop_assert!(lit.span.start >= last_end);
                    last_end = lit.span.end;
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(sql in ".{0,200}") {
        let catalog = TestCatalog::new();
        let _ = analyze(&sql, &catalog);
    }

    /// Random token soup ending in `FROM users` / `INTO users` / `JOIN users` is refused or
    /// planned as touching encrypted columns: never passed through untouched.
    #[test]
    fn soup_naming_users_fails_closed(picks in prop::collection::vec(0..FRAGMENTS.len(), 1..16)) {
        let mut sql: String = picks.iter().map(|&i| FRAGMENTS[i]).collect::<Vec<_>>().join(" ");
        sql.push_str(" users");
        let catalog = TestCatalog::new();
        if let Ok(analysis) = analyze(&sql, &catalog) {
            for plan in &analysis.statements {
                let text = &sql[plan.span.clone()];
                // A CTE named `users` legitimately shadows the table.
                let shadowed = text.to_ascii_lowercase().contains("with");
                if text.contains("users") && !plan.touches_encrypted && !shadowed {
                    // The appended `users` after FROM/INTO/JOIN is a relation reference, which
                    // must have been resolved (elsewhere it may be an alias or a column).
                    let lower = text.to_ascii_lowercase();
                    // `SELECT ... INTO users` creates a new table named users (the server refuses
                    // it as existing): it reads no encrypted column.
                    let select_into = lower.starts_with("select") && lower.ends_with("into users");
                    prop_assert!(
                        select_into
                            || (!lower.ends_with("from users") && !lower.ends_with("into users")
                                && !lower.ends_with("join users")),
                        "{text}"
                    );
                }
            }
        }
    }
}
