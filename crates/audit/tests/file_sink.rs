//! The file sink: appending, permissions, concurrent writers.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use pgseal_audit::{AuditEvent, AuditLog};

fn created(n: u32) -> AuditEvent {
    AuditEvent::DataKeyCreated {
        database: "app".into(),
        column: "public.users.email".into(),
        column_id: n,
        purpose: "value",
        version: 1,
        master_key: "mk_3f2a9c0d1e7b5a44".into(),
    }
}

#[test]
fn appends_to_a_private_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.log");
    AuditLog::file(&path)
        .expect("open")
        .record(created(1))
        .expect("record 1");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Reopening appends instead of truncating.
    AuditLog::file(&path)
        .expect("reopen")
        .record(created(2))
        .expect("record 2");
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["column_id"], 1);
    assert_eq!(lines[1]["column_id"], 2);
    assert_eq!(lines[1]["event"], "data_key_created");
    assert_eq!(lines[1]["pid"], std::process::id());
    let ts = lines[1]["ts"].as_str().expect("ts");
    assert_eq!(ts.len(), "2026-11-24T01:02:03.456Z".len());
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    assert!(text.ends_with('\n'));
}

#[test]
fn concurrent_writers_produce_whole_lines() {
    const THREADS: u32 = 8;
    const PER_THREAD: u32 = 100;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.log");
    // Two independent handles on one file, as two processes would have.
    let logs = [
        AuditLog::file(&path).expect("open a"),
        AuditLog::file(&path).expect("open b"),
    ];
    let logs = Arc::new(logs);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                let log = logs[usize::try_from(t % 2).expect("small")].clone();
                for i in 0..PER_THREAD {
                    log.record(created(t * PER_THREAD + i)).expect("record");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("writer thread");
    }
    let text = std::fs::read_to_string(&path).expect("read");
    let mut ids: Vec<u64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
            v["column_id"].as_u64().expect("column_id")
        })
        .collect();
    ids.sort_unstable();
    let expected: Vec<u64> = (0..u64::from(THREADS * PER_THREAD)).collect();
    assert_eq!(ids, expected);
}
