//! Rough cost of one analysis (`cargo test --release -p pgseal-sql --test timing -- --ignored
//! --nocapture`); the proxy calls `analyze` once per distinct statement text.

mod common;

use std::time::Instant;

use common::TestCatalog;
use pgseal_sql::analyze;

#[test]
#[ignore = "timing, not a check; run in release"]
fn analysis_cost() {
    let catalog = TestCatalog::new();
    for sql in [
        "SELECT 1",
        "SELECT id, email, phone FROM users WHERE id = $1",
        "INSERT INTO users (id, email, phone, birth_date, name) VALUES ($1, $2, $3, $4, $5)",
        "SELECT u.email, r.body FROM users u JOIN readings r ON r.user_id = u.id \
         WHERE u.name = $1 AND r.id > $2 ORDER BY r.id LIMIT 50",
    ] {
        let rounds = 2000;
        let start = Instant::now();
        for _ in 0..rounds {
            let analysis = analyze(sql, &catalog).expect("analyses");
            std::hint::black_box(analysis);
        }
        let per = start.elapsed() / rounds;
        println!("{per:>10.2?}  {sql}");
    }
}

/// Cost of a template key through this crate's scanner and through libpg_query's
/// (`TemplateKey::of` takes the first whenever it can; the proxy keys every simple-protocol
/// statement).
#[test]
#[ignore = "timing, not a check; run in release"]
fn template_key_cost() {
    use pgseal_sql::TemplateKey;
    for sql in [
        "BEGIN;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 87013;",
        "UPDATE pgbench_accounts SET abalance = abalance + -4193 WHERE aid = 87013;",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (8, 2, 87013, -4193, CURRENT_TIMESTAMP);",
        "UPDATE pgbench_accounts_sealed SET abalance = abalance + 245, filler = 'updated by pgbench through the pgseal proxy' WHERE aid = 373238;",
        "SELECT \"users\".\"id\", \"users\".\"email\" FROM \"users\" WHERE \"users\".\"id\" = 5 LIMIT 1 /* app:web */",
        "INSERT INTO users (id, email, phone) VALUES (1, E'a\\tb', $$x$$)",
    ] {
        let quick_path = TemplateKey::of_quick_scan(sql).is_some();
        let rounds = 50_000;
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(TemplateKey::of(std::hint::black_box(sql)));
        }
        let of = start.elapsed() / rounds;
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(TemplateKey::of_postgres_scan(std::hint::black_box(sql)));
        }
        let postgres = start.elapsed() / rounds;
        let speedup = postgres.as_secs_f64() / of.as_secs_f64();
        let path = if quick_path { "quick" } else { "declined" };
        println!("{of:>10.2?} of ({path:>8})  {postgres:>10.2?} libpg_query  x{speedup:>5.1}  {sql}");
    }
}
