//! The template key from the crate's own scanner equals the key from PostgreSQL's scanner
//! (libpg_query) for every text the own scanner accepts, and common statements take that
//! quick path.

use pgseal_sql::TemplateKey;
use proptest::prelude::*;

/// `Ok(true)` when the quick scanner accepts `sql` and gives PostgreSQL's key, `Ok(false)`
/// when it declines, `Err` with both keys when they differ.
fn compare_paths(sql: &str) -> Result<bool, String> {
    let Some(quick) = TemplateKey::of_quick_scan(sql) else {
        return Ok(false);
    };
    let quick = quick.parts_for_tests();
    let postgres = TemplateKey::of_postgres_scan(sql).map(|key| key.parts_for_tests());
    if postgres.as_ref() == Some(&quick) {
        Ok(true)
    } else {
        Err(format!(
            "{sql:?}\n  quick:    {quick}\n  postgres: {postgres:?}"
        ))
    }
}

/// Texts at the edges of PostgreSQL's lexical grammar.
const TRICKY: &[&str] = &[
    "UPDATE t SET a = b=-5 WHERE c =- 5",
    "SELECT a->>'k', a->'k', a #>> '{x}' FROM t WHERE b ->> 'x' = 'y'",
    "SELECT 'a' || 'b' || 3",
    "SELECT 1 WHERE a !=-1 AND b @-1 AND c *-1 AND d +-1 AND e -+1 AND f <>-1",
    "SELECT 1 /* outer /* inner 5 */ still 'comment' */ + 2 /**/ - /*/ */ 3",
    "SELECT 'a'\n'b'",
    "SELECT 'a' -- comment\n'b'",
    "SELECT 'a' 'b'",
    "SELECT 'a' /* c */ 'b'",
    "SELECT 1e5, 1E+5, 1e-5, 1.e3, .5e2",
    "SELECT 1., .5, 12.34, 1.5::numeric(10, 2)",
    "SELECT 1..2",
    "SELECT 0x1f, 0o17, 0b101",
    "SELECT 1_000",
    "SELECT $1, $2::int FROM t WHERE a = $3",
    "SELECT $1a",
    "SELECT $$x$$",
    "SELECT $tag$x$tag$",
    "SELECT E'a\\nb', e'x'",
    "SELECT U&\"d\\0061t\", U&'d\\0061t'",
    "SELECT B'101', X'1f', N'abc'",
    "SELECT \"a\"\"b\", \"with space\", \"BY\" FROM \"t\"\"x\" WHERE \"id\" = 1",
    "SELECT 'é', 'ünïcödé ''q''' FROM t WHERE a = 'ß'",
    "SELECT é FROM t",
    "SELECT \"é\" FROM t WHERE a = 1",
    "SELECT 2147483647, 2147483648, -2147483648, 4294967296",
    "SELECT 007, 0000000000000000000042, 00",
    "SELECT - - 5, - 5, -5, --5\n, 6",
    "SELECT 1-1, a-1, a - 1, a-b",
    "SELECT a FROM t ORDER BY 1, 2 DESC",
    "select distinct on (2) a from t where b = 3",
    "SELECT count(DISTINCT a) FROM t GROUP BY 1",
    "SELECT a::text, b[1:2], t.* FROM t",
    "SELECT 'it''s', '', ''''",
    "SELECT 'a\\b'",
    "SELECT a$b FROM t",
    "SELECT \"\" FROM t",
    "SELECT 'unterminated",
    "SELECT 1 /* unterminated",
    "SELECT 1 -- comment at the end",
    "SELECT 1\r-- windows\r\n, 2",
    "\u{b}SELECT\u{c}1",
    "SELECT 1;; SELECT 2;",
    "SELECT 1.5x",
    "SELECT 1e",
    "SELECT 1 \\g",
];

/// Statements the proxy sees all the time: they must take the quick path.
const TYPICAL: &[&str] = &[
    "UPDATE pgbench_accounts SET abalance = abalance + -4193 WHERE aid = 87013;",
    "SELECT abalance FROM pgbench_accounts WHERE aid = 87013;",
    "UPDATE pgbench_tellers SET tbalance = tbalance + -4193 WHERE tid = 8;",
    "UPDATE pgbench_branches SET bbalance = bbalance + -4193 WHERE bid = 2;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (8, 2, 87013, -4193, CURRENT_TIMESTAMP);",
    "BEGIN;",
    "END;",
    "SELECT abalance, filler FROM pgbench_accounts_sealed WHERE aid = 12345;",
    "UPDATE pgbench_accounts_sealed SET abalance = abalance + 245, filler = 'updated by pgbench through the pgseal proxy' WHERE aid = 373238;",
    "INSERT INTO orders (id, customer, total, discount, note, placed, qty, weight, code, flag) \
     VALUES (42, 'ann@example.com', 199.95, -5, 'leave at the door', '2024-05-01 10:00:00', 3, 1.5e2, 'X-1', true)",
    "SELECT \"users\".\"id\", \"users\".\"email\" FROM \"users\" WHERE \"users\".\"id\" = 5 LIMIT 1 /* app:web */",
    "SELECT id, email FROM users WHERE email = 'ann@example.com' AND id > 10 ORDER BY id LIMIT 20 OFFSET 40",
    "DELETE FROM sessions WHERE expires_at < '2024-01-01' -- cleanup",
];

#[test]
fn tricky_texts_give_postgres_keys() {
    let mut failures = Vec::new();
    let mut accepted = 0;
    for sql in TRICKY {
        match compare_paths(sql) {
            Ok(quick) => accepted += usize::from(quick),
            Err(mismatch) => failures.push(mismatch),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Both paths must be exercised by the list.
    assert!(accepted >= 20, "only {accepted} accepted");
    assert!(
        TRICKY.len() - accepted >= 15,
        "only {} declined",
        TRICKY.len() - accepted
    );
}

#[test]
fn typical_statements_take_the_quick_path() {
    for sql in TYPICAL {
        assert_eq!(compare_paths(sql), Ok(true), "{sql}");
    }
}

#[test]
fn keys_from_either_path_abstract_the_same_constants() {
    // The pgbench statement with two values gives one key for all its instances.
    let a = TemplateKey::of(
        "UPDATE pgbench_accounts SET abalance = abalance + -4193 WHERE aid = 87013;",
    );
    let b = TemplateKey::of("UPDATE pgbench_accounts SET abalance = abalance + 12 WHERE aid = 5;");
    let (Some(a), Some(b)) = (a, b) else {
        panic!("no key");
    };
    assert_ne!(a.as_str(), b.as_str(), "the sign is part of the key");
    let c = TemplateKey::of("UPDATE pgbench_accounts SET abalance = abalance + -1 WHERE aid = 5;");
    assert_eq!(
        a.as_str(),
        c.map(|k| k.as_str().to_owned()).unwrap_or_default()
    );
}

/// Pieces of statements: constants of every kind, operators, comments, and pieces the quick
/// scanner must decline.
const PIECES: &[&str] = &[
    "SELECT",
    "UPDATE t SET a =",
    "WHERE",
    "ORDER BY",
    "DISTINCT",
    "id",
    "\"Id\"",
    "\"a\"\"b\"",
    "'x'",
    "''",
    "'it''s'",
    "'é'",
    "0",
    "42",
    "007",
    "2147483647",
    "2147483648",
    "1.5",
    "1.",
    ".5",
    "1e5",
    "2E-3",
    "$1",
    "-",
    "+",
    "*",
    "=",
    "<>",
    "!=",
    "->>",
    "||",
    "@",
    "=-",
    "*-",
    ",",
    "(",
    ")",
    "::",
    ";",
    ".",
    "-- c\n",
    "/* c */",
    "/* a /* b */ c */",
    "\n",
    "é",
    "E'x'",
    "$$x$$",
    "0x1f",
    "1_0",
    "'a\\b'",
    "$1a",
    "1e",
    "..",
    "U&'x'",
];
const GLUE: &[&str] = &["", " ", " ", "\n", "\t"];

fn statements() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (prop::sample::select(PIECES), prop::sample::select(GLUE)),
        0..16,
    )
    .prop_map(|pieces| {
        pieces
            .iter()
            .flat_map(|(piece, glue)| [*piece, *glue])
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn generated_statements_give_postgres_keys(sql in statements()) {
        if let Err(mismatch) = compare_paths(&sql) {
            prop_assert!(false, "{}", mismatch);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(sql in any::<String>()) {
        let _ = TemplateKey::of_quick_scan(&sql);
        let _ = TemplateKey::of(&sql);
    }
}
