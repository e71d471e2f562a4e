//! Helpers shared by the CLI's integration tests that run the `pgseal` binary for real.
// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::process::{Command, Output};

use pgseal::MasterKey;
use pgseal_testkit::{TestCluster, TestDatabase};

/// `pgseal ARGS` with exactly the pgseal variables in `env`: any inherited from the test's own
/// environment are removed so the tests are hermetic, and the audit log is off unless `env`
/// says otherwise.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pgseal"));
    command.args(args);
    for var in [
        "PGSEAL_MASTER_KEY",
        "PGSEAL_MASTER_KEY_FILE",
        "PGSEAL_PREVIOUS_MASTER_KEYS",
        "PGSEAL_PREVIOUS_MASTER_KEYS_FILE",
        "PGSEAL_AUDIT_LOG",
        "DATABASE_URL",
    ] {
        command.env_remove(var);
    }
    command.env("PGSEAL_AUDIT_LOG", "off");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs `pgseal ARGS` to completion.
pub fn pgseal(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("the pgseal binary runs")
}

/// Runs `pgseal ARGS`, requires success, and returns its stdout.
pub fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = pgseal(args, env);
    assert!(
        output.status.success(),
        "pgseal {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `pgseal ARGS`, requires a failure without a panic, and returns its stderr.
fn failure(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = pgseal(args, env);
    assert!(!output.status.success(), "pgseal {args:?} should fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Runs `pgseal ARGS`, requires a failure whose whole stderr is the `error: ` message, and
/// returns it.
pub fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let message = failure(args, env);
    assert!(message.starts_with("error: "), "{message}");
    message
}

/// Like [`fails`] for commands that print progress lines (phases) first: the error is the last
/// line, and only that line is returned.
pub fn fails_after_progress(args: &[&str], env: &[(&str, &str)]) -> String {
    let stderr = failure(args, env);
    let message = stderr.trim().lines().last().unwrap_or_default().to_owned();
    assert!(message.starts_with("error: "), "{stderr}");
    message
}

/// The environment for a `pgseal` command on `db` under the master key `b64`.
pub fn key_env<'a>(b64: &'a str, db: &'a TestDatabase) -> [(&'static str, &'a str); 2] {
    [("PGSEAL_MASTER_KEY", b64), ("DATABASE_URL", db.url())]
}

/// A fresh database on the shared cluster with pgseal installed by `pgseal init` under `key`.
pub async fn initialised_database(key: &MasterKey) -> TestDatabase {
    let db = TestCluster::shared().create_database().await;
    let b64 = key.expose_base64();
    ok(&["init"], &key_env(&b64, &db));
    db
}
