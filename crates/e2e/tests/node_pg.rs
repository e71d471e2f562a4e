//! node-postgres (`pg`) through the proxy: runs `node --test` in `tests/drivers/node` against
//! a fresh harness, then checks what the program left in the database.

mod common;

use common::{repo_root, require_tool, run_checked, tool_runs, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_pg_passes_its_tests() {
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
    // Run from the package directory: `node --test` then finds `*.test.mjs` there and skips
    // node_modules, the same on every Node version from 18 on.
    cmd.args(["--test", "--test-reporter=spec"])
        .current_dir(&dir)
        .envs(h.driver_env());
    let out = run_checked(&mut cmd, "node --test tests/drivers/node").await;
    println!("{out}");
    assert!(
        out.contains("# pass 3") || out.contains("ℹ pass 3"),
        "all three node tests ran and passed: {out}"
    );
    assert!(
        h.check_storage().await > 0,
        "the node tests left rows to check"
    );
}
