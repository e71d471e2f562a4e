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
