//! `pgseal dev`: starts, shows only ciphertext in PostgreSQL, and removes everything on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn dev_starts_serves_ciphertext_and_cleans_up_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgseal"))
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env_remove("PGSEAL_MASTER_KEY")
        .env_remove("PGSEAL_AUDIT_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pgseal dev starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("utf-8 output");
        let done = line.starts_with("Press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    assert!(text.contains("pgseal dev is running"), "{text}");
    let urls: Vec<&str> = text
        .split('\'')
        .filter(|part| part.starts_with("postgres://"))
        .collect();
    let proxy_url = urls
        .first()
        .expect("the proxy URL is printed first")
        .to_string();
    let url = urls
        .iter()
        .find(|u| **u != proxy_url)
        .expect("the direct URL is printed")
        .to_string();
    let key_file = text
        .lines()
        .find_map(|l| l.strip_prefix("master key: "))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|l| l.split(',').next())
        .expect("the key file is named")
        .to_owned();
    assert!(std::path::Path::new(&key_file).exists(), "{key_file}");

    // What PostgreSQL holds for the encrypted columns is ciphertext, not the sample values.
    let psql = Command::new("psql")
        .args([
            url.as_str(),
            "-At",
            "-c",
            "SELECT name, encode(email, 'hex'), encode(birth_place, 'hex') FROM users ORDER BY id",
        ])
        .output()
        .expect("psql runs");
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    let rows = String::from_utf8_lossy(&psql.stdout).into_owned();
    assert_eq!(rows.lines().count(), 3, "{rows}");
    assert!(rows.starts_with("Ada|b501"), "{rows}");
    let london_hex: String = "London".bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        !rows.contains("ada@example.com") && !rows.contains(&london_hex),
        "{rows}"
    );

    // Through the proxy the same rows read as plaintext, and a plaintext write is sealed.
    let through = Command::new("psql")
        .args([
            proxy_url.as_str(),
            "-At",
            "-c",
            "INSERT INTO users (name, email, birth_date) VALUES ('Dana', 'dana@example.com', '1988-10-23')",
            "-c",
            "SELECT name, email, birth_date FROM users ORDER BY id",
        ])
        .output()
        .expect("psql runs");
    assert!(
        through.status.success(),
        "{}",
        String::from_utf8_lossy(&through.stderr)
    );
    let plain = String::from_utf8_lossy(&through.stdout).into_owned();
    assert!(plain.contains("Ada|ada@example.com|1991-01-01"), "{plain}");
    assert!(
        plain.contains("Dana|dana@example.com|1988-10-23"),
        "{plain}"
    );
    let stored = Command::new("psql")
        .args([
            url.as_str(),
            "-At",
            "-c",
            "SELECT encode(email, 'hex') FROM users WHERE name = 'Dana'",
        ])
        .output()
        .expect("psql runs");
    let stored = String::from_utf8_lossy(&stored.stdout).into_owned();
    assert!(
        stored.starts_with("b501"),
        "what PostgreSQL stores is ciphertext: {stored}"
    );

    let columns = Command::new(env!("CARGO_BIN_EXE_pgseal"))
        .arg("columns")
        .env("DATABASE_URL", &url)
        .output()
        .expect("columns runs");
    let listed = String::from_utf8_lossy(&columns.stdout);
    assert!(listed.contains("public.users.phone"), "{listed}");
    assert!(listed.contains("public.readings.body"), "{listed}");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut exited = None;
    for _ in 0..300 {
        if let Some(status) = child.try_wait().expect("wait") {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = exited.expect("pgseal dev stops within 30 s of Ctrl-C");
    assert!(status.success(), "{status}");
    assert!(
        !std::path::Path::new(&key_file).exists(),
        "the dev key is removed"
    );
    let after = Command::new("psql")
        .args([url.as_str(), "-c", "SELECT 1"])
        .output()
        .expect("psql runs");
    assert!(!after.status.success(), "the cluster is gone after Ctrl-C");
}
