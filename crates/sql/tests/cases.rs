//! Table-driven cases: SQL text → expected plan or refusal, against the catalog in
//! `common/mod.rs`.

mod common;

use common::TestCatalog;
use pgseal_sql::{analyze, rewrite, Literal, SqlError, StatementPlan, ValueRole};

enum Expect {
    /// Touches no encrypted column: forwarded untouched.
    Pass,
    /// Touches encrypted columns; exactly these `$n` → column and literal text → (column,
    /// value) uses (value as `t:text`, `n:number`, `b:bool` or `null`).
    Plan {
        params: &'static [(u16, &'static str)],
        literals: &'static [(&'static str, &'static str, &'static str)],
    },
    /// Refused: the error names this column (or table) and carries this SQLSTATE.
    Refuse {
        subject: &'static str,
        sqlstate: &'static str,
    },
}

use Expect::*;

const fn plan(
    params: &'static [(u16, &'static str)],
    literals: &'static [(&'static str, &'static str, &'static str)],
) -> Expect {
    Plan { params, literals }
}

const fn refuse(subject: &'static str, sqlstate: &'static str) -> Expect {
    Refuse { subject, sqlstate }
}

const EMAIL: &str = "public.users.email";
const PHONE: &str = "public.users.phone";
const BIRTH: &str = "public.users.birth_date";
const BODY: &str = "public.readings.body";
const BALANCE: &str = "public.accounts.balance";
const ACTIVE: &str = "public.accounts.active";
const NOT_SUPPORTED: &str = "0A000";
const MISMATCH: &str = "42804";

const CASES: &[(&str, Expect)] = &[
    // ----- pass through -----
    ("SELECT 1", Pass),
    ("SELECT id, email FROM other.users WHERE email = 'a@b'", Pass),
    ("SELECT * FROM notes WHERE body LIKE '%x%' ORDER BY body", Pass),
    ("INSERT INTO notes (body) VALUES (lower($1))", Pass),
    ("BEGIN", Pass),
    ("SET search_path = public", Pass),
    ("SHOW TimeZone", Pass),
    ("COMMIT", Pass),
    ("SELECT * FROM unknown_table WHERE x = 1", Pass),
    ("SELEC oops FROM notes", Pass),
    ("DO $$ BEGIN PERFORM 1; END $$", Pass),
    ("CALL refresh_stats(1)", Pass),
    ("COPY notes FROM STDIN", Pass),
    ("SELECT xmlelement(name foo, body) FROM notes", Pass),
    ("SELECT my_func('x')", Pass),
    ("EXECUTE stmt1(1, 2)", Pass),
    ("FETCH 10 FROM c", Pass),
    // ----- SELECT target lists -----
    ("SELECT email FROM users", plan(&[], &[])),
    ("SELECT u.email, users.phone FROM users u JOIN users ON true", plan(&[], &[])),
    ("SELECT public.users.email FROM users", plan(&[], &[])),
    ("SELECT email AS e, birth_date FROM users WHERE id = $1", plan(&[], &[])),
    ("SELECT * FROM users", plan(&[], &[])),
    ("SELECT u.* FROM users u", plan(&[], &[])),
    ("TABLE users", plan(&[], &[])),
    ("SELECT \"email\" FROM \"users\"", plan(&[], &[])),
    ("SELECT EMAIL FROM USERS", plan(&[], &[])),
    ("SELECT u.email, r.body FROM users u JOIN readings r ON r.user_id = u.id WHERE u.name = $1", plan(&[], &[])),
    ("SELECT s.e FROM (SELECT email AS e FROM users) s", plan(&[], &[])),
    ("WITH x AS (SELECT email, id FROM users) SELECT email FROM x WHERE id = 1", plan(&[], &[])),
    ("SELECT email FROM user_emails", plan(&[], &[])),
    ("SELECT id FROM users WHERE email IS NULL AND phone IS NOT NULL", plan(&[], &[])),
    ("SELECT count(email), count(*) FROM users", plan(&[], &[])),
    ("SELECT id FROM users u WHERE EXISTS (SELECT email FROM readings r WHERE r.user_id = u.id)", plan(&[], &[])),
    ("SELECT email FROM users ORDER BY id LIMIT $1", plan(&[], &[])),
    ("SELECT email FROM users FOR UPDATE", plan(&[], &[])),
    ("SELECT u.email FROM users u LEFT JOIN other.users o ON o.id = u.id WHERE o.email = 'x'", plan(&[], &[])),
    ("SELECT name FROM users GROUP BY name HAVING count(email) > 1", plan(&[], &[])),
    ("SELECT id FROM \"Mixed Case\"", plan(&[], &[])),
    // ----- SELECT refusals -----
    ("SELECT id FROM users WHERE email = $1", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM users WHERE email <> 'x'", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM users WHERE birth_date < '2000-01-01'", refuse(BIRTH, NOT_SUPPORTED)),
    ("SELECT id FROM users WHERE email LIKE '%@x.com'", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM users WHERE phone IN ('1', '2')", refuse(PHONE, NOT_SUPPORTED)),
    ("SELECT id FROM users WHERE birth_date BETWEEN $1 AND $2", refuse(BIRTH, NOT_SUPPORTED)),
    ("SELECT id FROM users u JOIN readings r ON r.body = u.email", refuse(BODY, NOT_SUPPORTED)),
    ("SELECT name FROM users GROUP BY name HAVING max(email) > 'a'", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email FROM users ORDER BY email", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email AS e FROM users ORDER BY e", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id, email FROM users ORDER BY 2", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email FROM users GROUP BY email", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT DISTINCT email FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT DISTINCT ON (phone) id FROM users", refuse(PHONE, NOT_SUPPORTED)),
    ("SELECT lower(email) FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email || 'x' FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email::text FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT count(DISTINCT email) FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT max(birth_date) FROM users", refuse(BIRTH, NOT_SUPPORTED)),
    ("SELECT string_agg(phone, ',') FROM users", refuse(PHONE, NOT_SUPPORTED)),
    ("SELECT row_number() OVER (ORDER BY email) FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT count(*) OVER (PARTITION BY phone) FROM users", refuse(PHONE, NOT_SUPPORTED)),
    ("SELECT email FROM users UNION SELECT body FROM readings", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM users UNION ALL SELECT id FROM readings", plan(&[], &[])),
    ("SELECT (SELECT email FROM users LIMIT 1)", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM notes WHERE body IN (SELECT email FROM users)", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT CASE WHEN id > 1 THEN email END FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT COALESCE(email, phone) FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT ROW(id, email) FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT json_agg(users) FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT users FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT row_to_json(u) FROM users u", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT to_jsonb(u.*) FROM users u", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT ARRAY[email] FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email COLLATE \"C\" FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM users WHERE email", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email FROM users, user_emails", refuse(EMAIL, "42702")),
    ("SELECT id FROM users JOIN readings USING (id) WHERE body LIKE 'x'", refuse(BODY, NOT_SUPPORTED)),
    ("SELECT 1 FROM users JOIN user_emails USING (email)", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT s.x FROM (SELECT upper(phone) AS x FROM users) s", refuse(PHONE, NOT_SUPPORTED)),
    ("WITH x AS (SELECT email FROM users) SELECT lower(email) FROM x", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT xmlelement(name foo, email) FROM users", refuse("public.users", NOT_SUPPORTED)),
    ("SELECT id FROM users WHERE email IS NOT DISTINCT FROM $1", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM users u WHERE (u).email IS NULL", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT greatest(balance, 0) FROM accounts", refuse(BALANCE, NOT_SUPPORTED)),
    ("SELECT id FROM accounts WHERE active", refuse(ACTIVE, NOT_SUPPORTED)),
    ("SELECT id FROM accounts WHERE NOT active", refuse(ACTIVE, NOT_SUPPORTED)),
    ("SELECT sum(balance) FROM accounts", refuse(BALANCE, NOT_SUPPORTED)),
    // CTE names shadow tables: `users` here is the CTE over other.users (plaintext).
    ("WITH users AS (SELECT * FROM other.users) SELECT lower(email) FROM users", Pass),
    // ... and a schema-qualified name bypasses the CTE.
    ("WITH users AS (SELECT 1 AS x) SELECT lower(email) FROM public.users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT lower(email) FROM other.users", Pass),
    // Correlated subquery: `email` resolves to the outer encrypted column.
    ("SELECT id FROM users WHERE EXISTS (SELECT 1 FROM notes WHERE notes.body = email)", refuse(EMAIL, NOT_SUPPORTED)),
    // ----- INSERT -----
    ("INSERT INTO users (id, email, name) VALUES ($1, $2, $3)", plan(&[(2, EMAIL)], &[])),
    ("INSERT INTO users VALUES ($1, $2, $3, $4, $5)", plan(&[(2, EMAIL), (3, PHONE), (4, BIRTH)], &[])),
    ("INSERT INTO users (email, phone) VALUES ($1, $2), ($3, $4)", plan(&[(1, EMAIL), (2, PHONE), (3, EMAIL), (4, PHONE)], &[])),
    ("INSERT INTO users (email, name) VALUES ($1, $1)", refuse("$1", "42P08")),
    ("INSERT INTO users (email, phone) VALUES ($1, $1)", refuse("$1", "42P08")),
    ("INSERT INTO users (email) VALUES ('a@b.c')", plan(&[], &[("'a@b.c'", EMAIL, "t:a@b.c")])),
    ("INSERT INTO users (email) VALUES ('it''s')", plan(&[], &[("'it''s'", EMAIL, "t:it's")])),
    ("INSERT INTO users (email) VALUES (E'a\\nb')", plan(&[], &[("E'a\\nb'", EMAIL, "t:a\nb")])),
    ("INSERT INTO users (email) VALUES ($$dollar 'quoted'$$)", plan(&[], &[("$$dollar 'quoted'$$", EMAIL, "t:dollar 'quoted'")])),
    ("INSERT INTO users (email) VALUES ($tag$x$tag$)", plan(&[], &[("$tag$x$tag$", EMAIL, "t:x")])),
    ("INSERT INTO users (email) VALUES (U&'d\\0061t')", plan(&[], &[("U&'d\\0061t'", EMAIL, "t:dat")])),
    ("INSERT INTO users (birth_date) VALUES ('2024-01-01'::date)", plan(&[], &[("'2024-01-01'::date", BIRTH, "t:2024-01-01")])),
    ("INSERT INTO users (birth_date) VALUES (CAST('2024-01-01' AS date))", plan(&[], &[("CAST('2024-01-01' AS date)", BIRTH, "t:2024-01-01")])),
    ("INSERT INTO users (birth_date) VALUES (date '2024-01-01')", plan(&[], &[("date '2024-01-01'", BIRTH, "t:2024-01-01")])),
    ("INSERT INTO users (birth_date) VALUES ('2024-01-01'::text)", plan(&[], &[("'2024-01-01'::text", BIRTH, "t:2024-01-01")])),
    ("INSERT INTO users (birth_date) VALUES ('2024-01-01'::timestamp)", refuse(BIRTH, MISMATCH)),
    ("INSERT INTO users (birth_date) VALUES (20240101)", refuse(BIRTH, MISMATCH)),
    ("INSERT INTO users (email) VALUES ('x'::varchar(3))", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO accounts (balance) VALUES (-12.50)", plan(&[], &[("-12.50", BALANCE, "n:-12.50")])),
    ("INSERT INTO accounts (balance) VALUES (- /* minus */ 5)", plan(&[], &[("- /* minus */ 5", BALANCE, "n:-5")])),
    ("INSERT INTO accounts (balance) VALUES (12345678901234567890)", plan(&[], &[("12345678901234567890", BALANCE, "n:12345678901234567890")])),
    ("INSERT INTO accounts (balance, active) VALUES (1::numeric, true)", plan(&[], &[("1::numeric", BALANCE, "n:1"), ("true", ACTIVE, "b:true")])),
    ("INSERT INTO accounts (active) VALUES ('yes'::boolean)", plan(&[], &[("'yes'::boolean", ACTIVE, "t:yes")])),
    ("INSERT INTO accounts (balance) VALUES (1::int4)", refuse(BALANCE, MISMATCH)),
    ("INSERT INTO users (email, phone) VALUES (NULL, DEFAULT)", plan(&[], &[("NULL", EMAIL, "null")])),
    ("INSERT INTO users (birth_date) VALUES (NULL::date)", plan(&[], &[("NULL::date", BIRTH, "null")])),
    ("INSERT INTO users (email) VALUES (lower($1))", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO users (email) VALUES ($1::text)", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO users (email) VALUES ('a' || 'b')", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO users (email) VALUES ((SELECT 'x'))", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO users (email) SELECT body FROM notes", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO users (id, name) SELECT id, body FROM notes", plan(&[], &[])),
    ("INSERT INTO notes (body) SELECT email FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO users (email) VALUES ($1) RETURNING id, email", plan(&[(1, EMAIL)], &[])),
    ("INSERT INTO users (email) VALUES ($1) RETURNING lower(email)", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", plan(&[(2, EMAIL)], &[])),
    ("INSERT INTO users (id, email, name) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name", plan(&[(2, EMAIL)], &[])),
    ("INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.phone", refuse(PHONE, NOT_SUPPORTED)),
    ("INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET phone = $3", plan(&[(2, EMAIL), (3, PHONE)], &[])),
    ("INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.email", refuse(EMAIL, NOT_SUPPORTED)),
    ("WITH n AS (INSERT INTO users (email) VALUES ($1) RETURNING id) SELECT id FROM n", plan(&[(1, EMAIL)], &[])),
    ("INSERT INTO \"Mixed Case\" (\"Secret\") VALUES ($1)", plan(&[(1, "public.Mixed Case.Secret")], &[])),
    // ----- UPDATE -----
    ("UPDATE users SET email = $1, name = $2 WHERE id = $3", plan(&[(1, EMAIL)], &[])),
    ("UPDATE users SET email = 'x@y.z' WHERE id = 1", plan(&[], &[("'x@y.z'", EMAIL, "t:x@y.z")])),
    ("UPDATE users SET birth_date = '2000-02-29'::date /* c */ WHERE id = 1", plan(&[], &[("'2000-02-29'::date", BIRTH, "t:2000-02-29")])),
    ("UPDATE users SET phone = NULL, email = DEFAULT", plan(&[], &[("NULL", PHONE, "null")])),
    ("UPDATE users SET email = phone", refuse(PHONE, NOT_SUPPORTED)),
    ("UPDATE users SET name = email", refuse(EMAIL, NOT_SUPPORTED)),
    ("UPDATE users SET email = lower($1)", refuse(EMAIL, NOT_SUPPORTED)),
    ("UPDATE users SET email = $1 WHERE email = $2", refuse(EMAIL, NOT_SUPPORTED)),
    ("UPDATE users SET email = $1 WHERE id = $1", refuse("$1", "42P08")),
    ("UPDATE users SET (email, name) = ($1, 'n')", plan(&[(1, EMAIL)], &[])),
    ("UPDATE users SET (phone, name) = ('555', $1)", plan(&[], &[("'555'", PHONE, "t:555")])),
    ("UPDATE users SET (email, name) = (SELECT body, body FROM notes LIMIT 1)", refuse(EMAIL, NOT_SUPPORTED)),
    ("UPDATE users u SET name = $1 FROM readings r WHERE r.user_id = u.id RETURNING u.email, r.body", plan(&[], &[])),
    ("UPDATE users SET name = 'x' RETURNING old.email", refuse(EMAIL, NOT_SUPPORTED)),
    ("UPDATE users SET email[1] = 'x'", refuse(EMAIL, NOT_SUPPORTED)),
    // ----- DELETE -----
    ("DELETE FROM users WHERE id = $1 RETURNING email", plan(&[], &[])),
    ("DELETE FROM users WHERE phone = '1'", refuse(PHONE, NOT_SUPPORTED)),
    ("DELETE FROM users USING readings r WHERE r.user_id = users.id AND r.body IS NULL", plan(&[], &[])),
    // ----- other statements -----
    ("COPY users FROM STDIN", plan(&[], &[])),
    ("COPY (SELECT email FROM users) TO STDOUT", plan(&[], &[])),
    ("COPY users TO '/tmp/x'", refuse("public.users", NOT_SUPPORTED)),
    ("MERGE INTO users u USING notes n ON u.id = n.id WHEN MATCHED THEN UPDATE SET name = n.body", refuse("public.users", NOT_SUPPORTED)),
    ("CREATE TABLE t2 AS SELECT email FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email INTO t2 FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("CREATE TABLE t2 AS SELECT id FROM users", plan(&[], &[])),
    ("PREPARE p AS SELECT email FROM users WHERE id = $1", refuse("public.users", NOT_SUPPORTED)),
    ("PREPARE p AS SELECT body FROM notes", Pass),
    ("DECLARE c CURSOR FOR SELECT email FROM users", refuse("public.users", NOT_SUPPORTED)),
    ("DO $$ BEGIN UPDATE users SET name = 'x'; END $$", refuse("users", NOT_SUPPORTED)),
    ("DO $$ BEGIN EXECUTE 'DELETE FROM readings'; END $$", refuse("readings", NOT_SUPPORTED)),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT count(*) FROM users $$", refuse("users", NOT_SUPPORTED)),
    ("CALL archive_users(users.id)", refuse("users", NOT_SUPPORTED)),
    ("SELEC email FROM users", refuse("users", "42601")),
    ("SELECT 'unterminated FROM users", refuse("users", "42601")),
    ("EXPLAIN SELECT lower(email) FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("EXPLAIN ANALYZE INSERT INTO users (email) VALUES ($1)", plan(&[(1, EMAIL)], &[])),
    // ----- more name resolution and spans -----
    ("SELECT j.email FROM (users u JOIN readings r ON r.user_id = u.id) AS j", plan(&[], &[])),
    ("SELECT x FROM (SELECT email FROM users) s(x)", plan(&[], &[])),
    ("SELECT lower(x) FROM (SELECT email FROM users) s(x)", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email FROM users u, unknown_t x WHERE x.a = u.id", plan(&[], &[])),
    ("SELECT lower(\"Secret\") FROM \"Mixed Case\"", refuse("public.Mixed Case.Secret", NOT_SUPPORTED)),
    ("SELECT lower(secret) FROM \"Mixed Case\"", plan(&[], &[])),
    ("SELECT id FROM users WHERE (id, email) = (1, $1)", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM notes WHERE body IN ('a', (SELECT phone FROM users LIMIT 1))", refuse(PHONE, NOT_SUPPORTED)),
    ("INSERT INTO accounts (balance) VALUES (-1.5::numeric)", plan(&[], &[("-1.5::numeric", BALANCE, "n:-1.5")])),
    ("INSERT INTO accounts (balance) VALUES (+ 7)", plan(&[], &[("+ 7", BALANCE, "n:7")])),
    ("INSERT INTO accounts (balance) VALUES (- -7)", plan(&[], &[("- -7", BALANCE, "n:7")])),
    ("INSERT INTO users (email) VALUES (-'x')", refuse(EMAIL, NOT_SUPPORTED)),
    ("INSERT INTO users (birth_date) VALUES (CAST( /* why */ '2024-01-01' AS pg_catalog.date ))", plan(&[], &[("CAST( /* why */ '2024-01-01' AS pg_catalog.date )", BIRTH, "t:2024-01-01")])),
    ("INSERT INTO users (email) VALUES ('multi'\n  'line')", plan(&[], &[("'multi'\n  'line'", EMAIL, "t:multiline")])),
    ("INSERT INTO users (email) VALUES ((('paren')))", plan(&[], &[("'paren'", EMAIL, "t:paren")])),
    ("INSERT INTO users (birth_date) VALUES (('2024-01-01')::date)", refuse(BIRTH, NOT_SUPPORTED)),
    ("INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET email = users.email", plan(&[(2, EMAIL)], &[])),
    ("INSERT INTO users (email) VALUES ($1) RETURNING *", plan(&[(1, EMAIL)], &[])),
    ("INSERT INTO users (email) VALUES ($1) RETURNING users", refuse(EMAIL, NOT_SUPPORTED)),
    ("UPDATE user_emails SET email = $1 WHERE id = $2", plan(&[(1, "public.user_emails.email")], &[])),
    ("INSERT INTO users (email) VALUES ($0)", refuse(EMAIL, "42P02")),
    ("INSERT INTO users (email) VALUES (B'0101')", refuse(EMAIL, MISMATCH)),
    ("INSERT INTO users (birth_date) VALUES ('2024-01-01'::date[])", refuse(BIRTH, MISMATCH)),
    ("INSERT INTO users (birth_date) VALUES ('2024-01-01'::myschema.date)", refuse(BIRTH, MISMATCH)),
    ("WITH RECURSIVE r AS (SELECT email FROM users UNION ALL SELECT email FROM r) SELECT * FROM r", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM users NATURAL JOIN user_emails", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM users NATURAL JOIN unknown_t", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT id FROM notes NATURAL JOIN other.users", Pass),
    ("SELECT email FROM users WHERE id IN (SELECT user_id FROM readings WHERE body IS NULL)", plan(&[], &[])),
    ("SELECT array_agg(id ORDER BY email) FROM users", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT count(*) FILTER (WHERE phone IS NULL) FROM users", plan(&[], &[])),
    ("SELECT id FROM users WHERE email = ANY($1)", refuse(EMAIL, NOT_SUPPORTED)),
    ("SELECT email FROM users LIMIT (SELECT count(*) FROM readings)", plan(&[], &[])),
    ("CREATE VIEW v AS SELECT lower(email) AS e FROM users", refuse(EMAIL, NOT_SUPPORTED)),
];

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
        rewrite(sql, &replacements),
        "INSERT INTO users (id, email, birth_date, name)\n  VALUES (1, /* e */ <1> , <3>, 'Ann') ;"
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
    rewrite(sql, &replacements)
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
