//! psycopg 3 and asyncpg through the proxy: runs `python3 -m pytest -q tests/drivers/python`
//! against a fresh harness, then checks what the Python programs left in the database.

mod common;

use common::{repo_root, require_tool, run_checked, tool_runs, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_and_asyncpg_pass_their_tests() {
    let available = tool_runs("python3", &["-c", "import psycopg, asyncpg, pytest"]).await;
    if !require_tool(available, "python3 with psycopg 3, asyncpg and pytest") {
        return;
    }
    let h = Harness::start().await;
    let root = repo_root();
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/drivers/python",
    ])
    .current_dir(&root)
    // Bytecode caches would be written into the source tree.
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .envs(h.driver_env());
    let out = run_checked(&mut cmd, "pytest tests/drivers/python").await;
    println!("{out}");
    assert!(
        !out.contains("skipped") && out.contains("passed"),
        "every Python driver test ran: {out}"
    );
    // The last test leaves its rows: what the proxy returns must be what the server holds.
    assert!(
        h.check_storage().await > 0,
        "the Python tests left rows to check"
    );
}
