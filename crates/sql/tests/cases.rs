//! Table-driven cases: SQL text → expected plan or refusal, against the catalog in
//! `common/mod.rs`.

mod common;

use common::TestCatalog;
use pgseal_sql::{analyze, rewrite, Literal, SqlError, StatementPlan, ValueRole};

#[path = "common/case_list.rs"]
mod case_list;
use case_list::*;

fn literal_text(value: &Literal) -> String {
    match value {
        Literal::Text(t) => format!("t:{t}"),
        Literal::Number(n) => format!("n:{n}"),
        Literal::Bool(b) => format!("b:{b}"),
        Literal::Null => "null".into(),
        other => format!("{other:?}"),
    }
}

fn check_plan(
    sql: &str,
    plan: &StatementPlan,
    params: &[(u16, &str)],
    literals: &[(&str, &str, &str)],
) -> Result<(), String> {
    if !plan.touches_encrypted {
        return Err("expected touches_encrypted".into());
    }
    let got: Vec<(u16, &str)> = plan
        .params
        .iter()
        .map(|p| (p.number, p.column.qualified_name.as_str()))
        .collect();
    if got != params {
        return Err(format!("params {got:?}, expected {params:?}"));
    }
    if plan.params.iter().any(|p| p.role != ValueRole::Store) {
        return Err("unexpected role".into());
    }
    let got: Vec<(String, String, String)> = plan
        .literals
        .iter()
        .map(|l| {
            (
                sql[l.span.clone()].to_string(),
                l.column.qualified_name.clone(),
                literal_text(&l.value),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = literals
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    if got != expected {
        return Err(format!("literals {got:?}, expected {expected:?}"));
    }
    Ok(())
}

fn subject(err: &SqlError) -> String {
    match err {
        SqlError::EncryptedColumn { column, .. } | SqlError::TypeMismatch { column, .. } => {
            column.clone()
        }
        SqlError::EncryptedTable { table, .. } => table.clone(),
        SqlError::ParameterConflict { number, .. } => format!("${number}"),
        SqlError::PgsealTypeUse { name, .. } => name.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn all_cases() {
    assert!(CASES.len() >= 80, "only {} cases", CASES.len());
    let catalog = TestCatalog::new();
    let mut failures = Vec::new();
    for (sql, expect) in CASES {
        let result = analyze(sql, &catalog);
        let outcome = match (expect, &result) {
            (Pass, Ok(a)) => {
                if a.statements.len() == 1
                    && !a.statements[0].touches_encrypted
                    && a.statements[0].params.is_empty()
                    && a.statements[0].literals.is_empty()
                {
                    Ok(())
                } else {
                    Err(format!("expected pass through, got {a:?}"))
                }
            }
            (Plan { params, literals }, Ok(a)) => match a.statements.as_slice() {
                [plan] => check_plan(sql, plan, params, literals),
                _ => Err(format!("expected one statement, got {a:?}")),
            },
            (
                Refuse {
                    subject: s,
                    sqlstate,
                },
                Err(e),
            ) => {
                if subject(e) == *s && e.sqlstate() == *sqlstate {
                    Ok(())
                } else {
                    Err(format!(
                        "refused with {} ({}) [{e}], expected {s} ({sqlstate})",
                        subject(e),
                        e.sqlstate()
                    ))
                }
            }
            (_, Ok(a)) => Err(format!("expected refusal, got {a:?}")),
            (_, Err(e)) => Err(format!("unexpected refusal: {e} ({})", e.sqlstate())),
        };
        if let Err(why) = outcome {
            failures.push(format!("{sql}\n    {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rewrite_replaces_only_literal_spans() {
    let catalog = TestCatalog::new();
    let sql = "INSERT INTO users (id, email, birth_date, name)\n  VALUES (1, /* e */ 'a@b.c' , CAST('2024-01-01' AS date), 'Ann') ;";
    let analysis = analyze(sql, &catalog).expect("plans");
    let plan = &analysis.statements[0];
    let replacements: Vec<_> = plan
        .literals
        .iter()
        .map(|l| (l.span.clone(), format!("<{}>", l.column.column_id)))
        .collect();
    assert_eq!(
        rewrite(sql, &replacements).as_deref(),
        Some("INSERT INTO users (id, email, birth_date, name)\n  VALUES (1, /* e */ <1> , <3>, 'Ann') ;")
    );
}

#[test]
fn multi_statement_text_has_one_plan_per_statement() {
    let catalog = TestCatalog::new();
    let sql = "BEGIN; INSERT INTO users (email) VALUES ('x@y') ; SELECT 1;\nUPDATE users SET phone = '42' WHERE id = 7; COMMIT";
    let analysis = analyze(sql, &catalog).expect("plans");
    let spans: Vec<&str> = analysis
        .statements
        .iter()
        .map(|s| &sql[s.span.clone()])
        .collect();
    assert_eq!(
        spans,
        [
            "BEGIN",
            "INSERT INTO users (email) VALUES ('x@y')",
            "SELECT 1",
            "UPDATE users SET phone = '42' WHERE id = 7",
            "COMMIT"
        ]
    );
    let touched: Vec<bool> = analysis
        .statements
        .iter()
        .map(|s| s.touches_encrypted)
        .collect();
    assert_eq!(touched, [false, true, false, true, false]);
    assert!(analysis.touches_encrypted());
    let literal_spans: Vec<&str> = analysis
        .statements
        .iter()
        .flat_map(|s| s.literals.iter().map(|l| &sql[l.span.clone()]))
        .collect();
    assert_eq!(literal_spans, ["'x@y'", "'42'"]);
}

#[test]
fn one_refused_statement_refuses_the_text() {
    let catalog = TestCatalog::new();
    let err = analyze("SELECT 1; SELECT lower(email) FROM users", &catalog).expect_err("refused");
    assert_eq!(err.column(), Some(EMAIL));
}

#[test]
fn ddl_invalidates_schema() {
    let catalog = TestCatalog::new();
    for sql in [
        "CREATE TABLE t (id int)",
        "ALTER TABLE users ADD COLUMN x int",
        "DROP TABLE notes",
        "CREATE DOMAIN d AS bytea",
    ] {
        let analysis = analyze(sql, &catalog).expect("passes");
        assert!(analysis.invalidates_schema(), "{sql}");
        assert!(!analysis.touches_encrypted(), "{sql}");
    }
    let analysis = analyze("SELECT 1", &catalog).expect("passes");
    assert!(!analysis.invalidates_schema());
}

#[test]
fn errors_never_contain_literal_values() {
    let catalog = TestCatalog::new();
    for sql in [
        "INSERT INTO users (email) VALUES (lower('secret-value'))",
        "SELECT id FROM users WHERE email = 'secret-value'",
        "INSERT INTO users (birth_date) VALUES ('secret-value'::int4)",
        "SELEC 'secret-value' FROM users",
    ] {
        let err = analyze(sql, &catalog).expect_err("refused");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("secret-value"), "{shown}");
    }
}

#[test]
fn plans_do_not_debug_print_literals() {
    let catalog = TestCatalog::new();
    let analysis = analyze(
        "INSERT INTO users (email) VALUES ('secret-value')",
        &catalog,
    )
    .expect("plans");
    let shown = format!("{analysis:?}");
    assert!(!shown.contains("secret-value"), "{shown}");
}

#[test]
fn equality_search_reason_is_explicit() {
    let catalog = TestCatalog::new();
    let err = analyze("SELECT id FROM users WHERE email = $1", &catalog).expect_err("refused");
    assert!(
        err.to_string()
            .contains("equality search on encrypted columns is not supported yet"),
        "{err}"
    );
    assert!(err.to_string().contains("public.users.email"), "{err}");
}

#[test]
fn parameter_conflict_names_both_uses() {
    let catalog = TestCatalog::new();
    let err =
        analyze("INSERT INTO users (email, phone) VALUES ($2, $2)", &catalog).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("parameter $2 is used for both"), "{text}");
    assert!(text.contains(EMAIL) && text.contains(PHONE), "{text}");
}

#[test]
fn empty_text_has_no_statements() {
    let catalog = TestCatalog::new();
    assert!(analyze("", &catalog).expect("ok").statements.is_empty());
    assert!(analyze(" ; -- nothing\n", &catalog)
        .expect("ok")
        .statements
        .is_empty());
}

#[test]
fn nul_byte_is_handled() {
    let catalog = TestCatalog::new();
    assert!(analyze("SELECT 1\0", &catalog).is_ok());
    assert!(analyze("SELECT email FROM users\0", &catalog).is_err());
}

/// With `equality_search` on: the statement as the proxy would rewrite it, with each search
/// shown as `{col ∈ terms}` (`{!col ∈ terms}` negated, `*` when it decides an UPDATE/DELETE),
/// each stored literal as `S<value>` and each fixed rewrite as is; or the refused subject.
const SEARCH_CASES: &[(&str, Result<&str, &str>)] = &[
    ("SELECT id FROM users WHERE email = $1", Ok("SELECT id FROM users WHERE {email ∈ $1}")),
    ("SELECT id FROM users WHERE $1 = email", Ok("SELECT id FROM users WHERE {email ∈ $1}")),
    (
        "SELECT id FROM users u WHERE u.email = 'a@b.c' AND name = $1",
        Ok("SELECT id FROM users u WHERE {u.email ∈ 'a@b.c'} AND name = $1"),
    ),
    (
        "SELECT id FROM users u WHERE 'a@b.c'::text = u.email OR id = 2",
        Ok("SELECT id FROM users u WHERE {u.email ∈ 'a@b.c'} OR id = 2"),
    ),
    (
        "UPDATE users SET email = $1 WHERE email = $1",
        Ok("UPDATE users SET email = $1 WHERE {email ∈ $1}*"),
    ),
    (
        "UPDATE users SET email = 'x@y' WHERE email = 'x@y' RETURNING email",
        Ok("UPDATE users SET email = S<x@y> WHERE {email ∈ 'x@y'}* RETURNING email"),
    ),
    (
        "DELETE FROM users WHERE email = $2 AND id = $1",
        Ok("DELETE FROM users WHERE {email ∈ $2}* AND id = $1"),
    ),
    (
        "SELECT id FROM users WHERE email <> $1",
        Ok("SELECT id FROM users WHERE {!email ∈ $1}"),
    ),
    (
        "SELECT id FROM users WHERE email != 'a' AND email IS NOT NULL",
        Ok("SELECT id FROM users WHERE {!email ∈ 'a'} AND email IS NOT NULL"),
    ),
    (
        "SELECT id FROM users WHERE email IN ('a', $2, NULL) ORDER BY id",
        Ok("SELECT id FROM users WHERE {email ∈ 'a',$2,NULL} ORDER BY id"),
    ),
    (
        "SELECT id FROM users WHERE email NOT IN ( $1 , 'b' ) LIMIT 1",
        Ok("SELECT id FROM users WHERE {!email ∈ $1,'b'} LIMIT 1"),
    ),
    (
        "SELECT id FROM users WHERE (email = $1)",
        Ok("SELECT id FROM users WHERE ({email ∈ $1})"),
    ),
    (
        "SELECT r.id FROM readings r JOIN users u ON u.id = r.user_id AND u.email = $1",
        Ok("SELECT r.id FROM readings r JOIN users u ON u.id = r.user_id AND {u.email ∈ $1}"),
    ),
    (
        "SELECT id FROM readings WHERE user_id IN (SELECT id FROM users WHERE email = $1)",
        Ok("SELECT id FROM readings WHERE user_id IN (SELECT id FROM users WHERE {email ∈ $1})"),
    ),
    (
        "WITH m AS (SELECT id, email FROM users WHERE email = $1) SELECT email FROM m",
        Ok("WITH m AS (SELECT id, email FROM users WHERE {email ∈ $1}) SELECT email FROM m"),
    ),
    (
        "EXPLAIN ANALYZE SELECT id FROM users WHERE email = $1",
        Ok("EXPLAIN ANALYZE SELECT id FROM users WHERE {email ∈ $1}"),
    ),
    (
        "SELECT id FROM users WHERE email = $1 OR email = $2",
        Ok("SELECT id FROM users WHERE {email ∈ $1} OR {email ∈ $2}"),
    ),
    (
        "SELECT id FROM users WHERE email = $1 AND email IS NULL",
        Ok("SELECT id FROM users WHERE {email ∈ $1} AND email IS NULL"),
    ),
    (
        "CREATE UNIQUE INDEX users_email ON users (email)",
        Ok("CREATE UNIQUE INDEX users_email ON users ((pgseal.blind_index(email)))"),
    ),
    (
        "CREATE INDEX ON public.users USING btree (name, \"email\" DESC)",
        Ok("CREATE INDEX ON public.users USING btree (name, (pgseal.blind_index(\"email\")) DESC)"),
    ),
    (
        "CREATE INDEX ON users ((pgseal.blind_index(email)))",
        Ok("CREATE INDEX ON users ((pgseal.blind_index(email)))"),
    ),
    (
        "INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET name = 'x'",
        Ok("INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT ((pgseal.blind_index(email))) DO UPDATE SET name = 'x'"),
    ),
    (
        "INSERT INTO users (email) VALUES ($1) ON CONFLICT (email) DO NOTHING",
        Ok("INSERT INTO users (email) VALUES ($1) ON CONFLICT ((pgseal.blind_index(email))) DO NOTHING"),
    ),
    ("SELECT id FROM users WHERE phone = $1", Err(PHONE)),
    ("SELECT id FROM users WHERE phone IN ($1)", Err(PHONE)),
    ("CREATE INDEX ON users (phone)", Err(PHONE)),
    ("CREATE INDEX ON users (lower(email))", Err(EMAIL)),
    ("INSERT INTO users (phone) VALUES ($1) ON CONFLICT (phone) DO NOTHING", Err(PHONE)),
    ("SELECT id FROM users WHERE email = phone", Err(EMAIL)),
    ("SELECT id FROM users u JOIN users v ON u.email = v.email", Err(EMAIL)),
    ("SELECT id FROM users WHERE email = lower($1)", Err(EMAIL)),
    ("SELECT id FROM users WHERE email < $1", Err(EMAIL)),
    ("SELECT id FROM users WHERE email LIKE $1", Err(EMAIL)),
    ("SELECT id FROM users WHERE email IN (SELECT body FROM readings)", Err(EMAIL)),
    ("SELECT id FROM users WHERE (email) = $1", Err(EMAIL)),
    ("SELECT id FROM users WHERE email = $1 AND id = $1", Err("$1")),
    ("SELECT id FROM users WHERE email = $1::int4", Err(EMAIL)),
    ("CREATE TABLE t (id int, e pgseal.email UNIQUE)", Err("t.e")),
    ("CREATE TABLE t (id int, e pgseal.email, PRIMARY KEY (e))", Err("t.e")),
    ("ALTER TABLE users ADD CONSTRAINT u UNIQUE (email)", Err("users.email")),
    ("ALTER TABLE users ADD COLUMN e2 pgseal.text_eq UNIQUE", Err("users.e2")),
];

fn render(sql: &str, plan: &StatementPlan) -> String {
    use pgseal_sql::SearchValue;
    let mut replacements: Vec<(std::ops::Range<usize>, String)> = plan.rewrites.clone();
    for l in &plan.literals {
        let v = match &l.value {
            Literal::Text(t) | Literal::Number(t) => t.clone(),
            Literal::Bool(b) => b.to_string(),
            _ => "NULL".into(),
        };
        replacements.push((l.span.clone(), format!("S<{v}>")));
    }
    for s in &plan.searches {
        let terms: Vec<String> = s
            .terms
            .iter()
            .map(|t| match t {
                SearchValue::Param(n) => format!("${n}"),
                SearchValue::Literal(Literal::Text(t)) => format!("'{t}'"),
                SearchValue::Literal(Literal::Null) => "NULL".into(),
                SearchValue::Literal(other) => format!("{other:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        replacements.push((
            s.span.clone(),
            format!(
                "{{{}{} ∈ {}}}{}",
                if s.negated { "!" } else { "" },
                &sql[s.column_span.clone()],
                terms.join(","),
                if s.modifies { "*" } else { "" }
            ),
        ));
    }
    rewrite(sql, &replacements).expect("the plan's replacements do not overlap")
}

#[test]
fn equality_search_when_enabled() {
    use pgseal_sql::{analyze_with, AnalyzeOptions};
    let catalog = TestCatalog::new();
    let options = AnalyzeOptions {
        equality_search: true,
    };
    for (sql, expected) in SEARCH_CASES {
        let result = analyze_with(sql, &catalog, options);
        match (expected, result) {
            (Ok(want), Ok(analysis)) => {
                let plan = &analysis.statements[0];
                assert!(plan.touches_encrypted, "{sql}");
                assert_eq!(render(sql, plan), *want, "{sql}");
            }
            (Err(subject_expected), Err(err)) => {
                assert_eq!(&subject(&err), subject_expected, "{sql}: {err}");
            }
            (expected, got) => panic!("{sql}: expected {expected:?}, got {got:?}"),
        }
    }
    // The same parameter stored and searched for is listed once per role.
    let analysis = analyze_with(
        "UPDATE users SET email = $1 WHERE email = $1",
        &catalog,
        options,
    )
    .unwrap();
    let roles: Vec<ValueRole> = analysis.statements[0]
        .params
        .iter()
        .map(|p| p.role)
        .collect();
    assert_eq!(roles, [ValueRole::Store, ValueRole::SearchTerm]);
    // The highest parameter number, for the parameters the proxy appends.
    let analysis = analyze_with(
        "SELECT id FROM users WHERE email = $1 AND id = $7",
        &catalog,
        options,
    )
    .unwrap();
    assert_eq!(analysis.statements[0].max_param, 7);
    // Two encrypted columns are never compared, and the refusal says why.
    for sql in [
        "SELECT u.id FROM users u JOIN users v ON u.email = v.email",
        "SELECT u.id FROM users u JOIN users v USING (email)",
        "SELECT id FROM users WHERE email <> phone",
    ] {
        let err = analyze_with(sql, &catalog, options).unwrap_err();
        assert_eq!(
            err.reason(),
            Some(&pgseal_sql::Reason::ColumnEquality),
            "{sql}"
        );
        assert!(
            err.to_string().contains("each column has its own keys"),
            "{err}"
        );
    }
    // A UNIQUE refusal says how to get uniqueness.
    let err = analyze_with("ALTER TABLE users ADD UNIQUE (email)", &catalog, options).unwrap_err();
    assert!(
        err.to_string()
            .contains("CREATE UNIQUE INDEX ON users (email)"),
        "{err}"
    );
    // Off by default.
    assert!(analyze("SELECT id FROM users WHERE email = $1", &catalog).is_err());
}
