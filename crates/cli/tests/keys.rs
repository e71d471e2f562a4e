//! `pgseal keys` and `pgseal reencrypt`, run for real against a temporary PostgreSQL cluster:
//! master-key rewrap, data-key rotation, status, retire, and re-encryption (including one killed
//! with SIGKILL and rerun).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgseal::{AuditLog, MasterKey, MasterKeyring, Sealer, Value};
use pgseal_testkit::TestDatabase;
use serde_json::Value as Json;

use common::{command, fails, initialised_database, key_env, ok};

fn status(db: &TestDatabase) -> Vec<Json> {
    let text = ok(&["keys", "status", "--json"], &[("DATABASE_URL", db.url())]);
    match serde_json::from_str(&text).expect("status prints JSON") {
        Json::Array(items) => items,
        other => panic!("status JSON is not a list: {other}"),
    }
}

fn column<'a>(status: &'a [Json], name: &str) -> &'a Json {
    status
        .iter()
        .find(|c| c["column"] == name)
        .unwrap_or_else(|| panic!("{name} in status: {status:?}"))
}

/// (purpose, version) -> (state, values, master_key)
fn key_of(column: &Json, purpose: &str, version: u64) -> (String, u64, String) {
    let key = column["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["purpose"] == purpose && k["version"] == version)
        .unwrap_or_else(|| panic!("{purpose} v{version} in {column}"));
    (
        key["state"].as_str().expect("state").to_owned(),
        key["values"].as_u64().expect("values"),
        key["master_key"].as_str().expect("master_key").to_owned(),
    )
}

/// A database with `people(id, email pgseal.email, note pgseal.text)`, `rows` rows sealed with
/// `key`.
async fn populated(key: &MasterKey, rows: i32) -> TestDatabase {
    let db = initialised_database(key).await;
    let mut client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE people (id int PRIMARY KEY, email pgseal.email, note pgseal.text, \
             plain text)",
        )
        .await
        .expect("create table");
    let sealer = Sealer::new(
        &mut client,
        MasterKeyring::new(key.clone(), vec![]),
        AuditLog::disabled(),
    )
    .await
    .expect("sealer");
    insert_rows(&client, &sealer, 0..rows).await;
    db
}

async fn insert_rows(client: &tokio_postgres::Client, sealer: &Sealer, ids: std::ops::Range<i32>) {
    let statement = client
        .prepare("INSERT INTO people (id, email, note, plain) SELECT * FROM unnest($1::int[], $2::bytea[], $3::bytea[], $4::text[])")
        .await
        .expect("prepare");
    let ids: Vec<i32> = ids.collect();
    for chunk in ids.chunks(2000) {
        let mut emails = Vec::new();
        let mut notes = Vec::new();
        let mut plains = Vec::new();
        for id in chunk {
            emails.push(
                sealer
                    .seal(
                        "people",
                        "email",
                        &Value::Text(format!("user{id}@example.com")),
                    )
                    .expect("seal")
                    .into_bytes(),
            );
            // Every tenth note is NULL: NULL stays NULL through re-encryption.
            notes.push((id % 10 != 0).then(|| {
                sealer
                    .seal("people", "note", &Value::Text(format!("note {id}")))
                    .expect("seal")
                    .into_bytes()
            }));
            plains.push(format!("plain {id}"));
        }
        client
            .execute(&statement, &[&chunk, &emails, &notes, &plains])
            .await
            .expect("insert");
    }
}

/// Reads every row with a fresh sealer (current + previous keys) and checks each value.
async fn check_all(db: &TestDatabase, keyring: MasterKeyring, rows: i32) {
    let mut client = db.connect().await;
    let sealer = Sealer::new(&mut client, keyring, AuditLog::disabled())
        .await
        .expect("sealer");
    let found = client
        .query(
            "SELECT id, email::bytea, note::bytea FROM people ORDER BY id",
            &[],
        )
        .await
        .expect("select");
    assert_eq!(found.len(), usize::try_from(rows).expect("rows"));
    for row in found {
        let id: i32 = row.get(0);
        let email: Vec<u8> = row.get(1);
        let note: Option<Vec<u8>> = row.get(2);
        let email = sealer
            .open("people", "email", &pgseal::Ciphertext::from_bytes(email))
            .expect("email opens");
        assert_eq!(email, Value::Text(format!("user{id}@example.com")));
        let note = sealer
            .open_opt(
                "people",
                "note",
                note.map(pgseal::Ciphertext::from_bytes).as_ref(),
            )
            .expect("note opens");
        let expected = (id % 10 != 0).then(|| Value::Text(format!("note {id}")));
        assert_eq!(note, expected, "row {id}");
    }
}

#[tokio::test]
async fn rotate_reencrypt_retire_and_status() {
    let key = MasterKey::generate();
    let db = populated(&key, 300).await;
    let b64 = key.expose_base64();
    let env = key_env(&b64, &db);

    let before = status(&db);
    let email = column(&before, "public.people.email");
    assert_eq!(email["values"], 300);
    assert_eq!(key_of(email, "value", 1).0, "active");
    assert_eq!(key_of(email, "value", 1).1, 300);
    assert_eq!(key_of(email, "index", 1).1, 300);
    assert_eq!(key_of(email, "value", 1).2, key.fingerprint().to_string());
    assert_eq!(column(&before, "public.people.note")["values"], 270);

    // Usage errors are one clear line.
    let message = fails(&["keys", "rotate"], &env);
    assert!(message.contains("<COLUMN>"), "{message}");
    let message = fails(&["keys", "rotate", "people.nosuch"], &env);
    assert!(message.contains("people.nosuch"), "{message}");

    let out = ok(&["keys", "rotate", "people.email"], &env);
    assert!(
        out.contains("public.people.email: value key v2 active (v1 now decrypt_only)"),
        "{out}"
    );
    assert!(
        !out.contains("index key"),
        "the index key rotates only with --index: {out}"
    );
    let out = ok(&["keys", "rotate", "--all", "--index"], &env);
    assert!(
        out.contains("public.people.email: value key v3 active (v2 now decrypt_only)"),
        "{out}"
    );
    assert!(
        out.contains("public.people.email: index key v2 active (v1 now decrypt_only)"),
        "{out}"
    );
    assert!(
        out.contains("public.people.note: value key v2 active (v1 now decrypt_only)"),
        "{out}"
    );

    let rotated = status(&db);
    let email = column(&rotated, "public.people.email");
    assert_eq!(
        key_of(email, "value", 1),
        ("decrypt_only".into(), 300, key.fingerprint().to_string())
    );
    assert_eq!(key_of(email, "value", 3).0, "active");
    assert_eq!(key_of(email, "value", 3).1, 0);
    assert_eq!(email["values_to_reencrypt"], 300);

    // Retire refuses the active version and a version values still use, and changes nothing.
    let message = fails(&["keys", "retire", "people.email", "3"], &env);
    assert!(message.contains("active"), "{message}");
    let message = fails(&["keys", "retire", "people.email", "1"], &env);
    assert!(message.contains("300 value(s)"), "{message}");
    assert!(message.contains("pgseal reencrypt"), "{message}");
    let message = fails(&["keys", "retire", "people.email", "9"], &env);
    assert!(message.contains("no value key version 9"), "{message}");
    assert_eq!(
        key_of(column(&status(&db), "public.people.email"), "value", 1).0,
        "decrypt_only"
    );

    let out = ok(&["reencrypt", "--all", "--batch-size", "50"], &env);
    assert!(out.contains("public.people: 300 row(s) rewritten"), "{out}");
    assert!(out.contains("complete"), "{out}");

    let after = status(&db);
    let email = column(&after, "public.people.email");
    assert_eq!(email["values_to_reencrypt"], 0);
    assert_eq!(key_of(email, "value", 3).1, 300);
    assert_eq!(key_of(email, "value", 1).1, 0);
    assert_eq!(
        key_of(email, "index", 2).1,
        300,
        "blind indexes follow the new index key"
    );
    assert_eq!(key_of(email, "index", 1).1, 0);
    let note = column(&after, "public.people.note");
    assert_eq!(key_of(note, "value", 2).1, 270);
    check_all(&db, MasterKeyring::new(key.clone(), vec![]), 300).await;

    // Blind indexes were recomputed, not copied: a lookup with the new index key finds the row.
    {
        let mut client = db.connect().await;
        let sealer = Sealer::new(
            &mut client,
            MasterKeyring::new(key.clone(), vec![]),
            AuditLog::disabled(),
        )
        .await
        .expect("sealer");
        let terms = sealer
            .search_terms("people", "email", &Value::Text("USER7@example.com ".into()))
            .expect("terms");
        let found: i64 = client
            .query_one(
                "SELECT count(*) FROM people WHERE pgseal.blind_index(email) = ANY($1)",
                &[&terms],
            )
            .await
            .expect("lookup")
            .get(0);
        assert_eq!(found, 1);
    }

    // A second run has nothing to do.
    let out = ok(&["reencrypt", "--all"], &env);
    assert!(out.contains("0 row(s) rewritten"), "{out}");

    // The table form says the same, one line per key.
    let text = ok(&["keys", "status"], &[("DATABASE_URL", db.url())]);
    assert!(text.contains("public.people.email (id "), "{text}");
    assert!(text.contains("300 value(s), 0 to re-encrypt"), "{text}");
    assert!(
        text.lines().any(|l| l.contains("value v3")
            && l.contains("active")
            && l.contains("300 value(s)")
            && l.contains(&format!("wrapped by {}", key.fingerprint()))),
        "{text}"
    );

    // Now retire works, and is idempotent.
    let out = ok(&["keys", "retire", "people.email", "1"], &env);
    assert!(
        out.contains("value key v1 retired (was decrypt_only)"),
        "{out}"
    );
    let out = ok(&["keys", "retire", "people.email", "1"], &env);
    assert!(out.contains("already retired"), "{out}");
    let out = ok(&["keys", "retire", "people.email", "1", "--index"], &env);
    assert!(out.contains("index key v1 retired"), "{out}");

    // A value under the retired key (an old backup restored) is a clear error naming the column
    // and version.
    let mut client = db.connect().await;
    let sealer = Sealer::new(
        &mut client,
        MasterKeyring::new(key.clone(), vec![]),
        AuditLog::disabled(),
    )
    .await
    .expect("sealer");
    let v1 = forge_v1(&db, &key).await;
    let err = sealer
        .open("people", "email", &pgseal::Ciphertext::from_bytes(v1))
        .expect_err("retired");
    let text = err.to_string();
    assert!(
        text.contains("data key version 1 of public.people.email is retired"),
        "{text}"
    );
}

/// A value sealed under version 1 of people.email, as an old backup would hold: sealed with
/// that key unwrapped directly from pgseal.data_keys.
async fn forge_v1(db: &TestDatabase, key: &MasterKey) -> Vec<u8> {
    use pgseal_crypto::{ColumnCipher, ColumnKeys, DataKeyId, KeyPurpose, KeyState};
    let client = db.connect().await;
    let column_id: i32 = client
        .query_one(
            "SELECT column_id FROM pgseal.columns WHERE column_name = 'email'",
            &[],
        )
        .await
        .expect("column id")
        .get(0);
    let column_id = u32::try_from(column_id).expect("id");
    let stored = pgseal_store::load_data_keys(&client).await.expect("keys");
    let v1 = stored
        .iter()
        .find(|k| k.column_id == column_id && k.purpose == 1 && k.version == 1)
        .expect("v1");
    let ring = MasterKeyring::new(key.clone(), vec![]);
    let id = DataKeyId {
        column_id,
        purpose: KeyPurpose::Value,
        version: 1,
    };
    let data_key = pgseal_crypto::unwrap_data_key(&ring, id, &v1.wrapped_key).expect("unwrap");
    let cipher = ColumnCipher::new(ColumnKeys {
        column_id,
        type_tag: pgseal::LogicalType::Text.tag(),
        value_keys: vec![(1, KeyState::Active, data_key)],
        index: None,
    })
    .expect("cipher");
    cipher.seal(b"old@example.com", b"old@example.com")
}

#[tokio::test]
async fn master_key_rotation_with_rewrap() {
    let old = MasterKey::generate();
    let db = populated(&old, 20).await;
    let new = MasterKey::generate();
    let old_b64 = old.expose_base64();
    let new_b64 = new.expose_base64();

    // The new key alone does not match the stored keys: refused, naming both fingerprints.
    let message = fails(
        &["keys", "rewrap"],
        &[
            ("PGSEAL_MASTER_KEY", new_b64.as_str()),
            ("DATABASE_URL", db.url()),
        ],
    );
    assert!(
        message.contains(&old.fingerprint().to_string()),
        "{message}"
    );

    let audit = tempfile::NamedTempFile::new().expect("temp file");
    let audit_path = audit.path().to_str().expect("utf-8").to_owned();
    let env = [
        ("PGSEAL_MASTER_KEY", new_b64.as_str()),
        ("PGSEAL_PREVIOUS_MASTER_KEYS", old_b64.as_str()),
        ("DATABASE_URL", db.url()),
        ("PGSEAL_AUDIT_LOG", audit_path.as_str()),
    ];
    let out = ok(&["keys", "rewrap"], &env);
    let log = std::fs::read_to_string(audit.path()).expect("audit log");
    assert!(log.contains("\"event\":\"data_keys_rewrapped\""), "{log}");
    assert!(log.contains("\"rewrapped\":3"), "{log}");
    assert!(log.contains(&old.fingerprint().to_string()), "{log}");
    assert!(
        !log.contains(new_b64.as_str()) && !log.contains(old_b64.as_str()),
        "no key in the audit log"
    );
    assert!(out.contains("rewrapped 3 data key(s)"), "{out}");
    assert!(out.contains(&new.fingerprint().to_string()), "{out}");
    assert!(out.contains(&old.fingerprint().to_string()), "{out}");
    // Idempotent.
    let out = ok(&["keys", "rewrap"], &env);
    assert!(out.contains("nothing to do"), "{out}");

    for column in status(&db) {
        for key in column["keys"].as_array().expect("keys") {
            assert_eq!(key["master_key"], new.fingerprint().to_string());
        }
    }
    // The old key is no longer needed; values are untouched and read with the new key alone.
    check_all(&db, MasterKeyring::new(new.clone(), vec![]), 20).await;
    let message = fails(
        &["keys", "rewrap"],
        &[
            ("PGSEAL_MASTER_KEY", old_b64.as_str()),
            ("DATABASE_URL", db.url()),
        ],
    );
    assert!(message.contains("does not match"), "{message}");
}

#[tokio::test]
async fn reencrypt_killed_with_sigkill_then_rerun_completes() {
    let key = MasterKey::generate();
    let rows = 40_000;
    let db = populated(&key, rows).await;
    let b64 = key.expose_base64();
    let env = key_env(&b64, &db);
    ok(&["keys", "rotate", "--all"], &env);

    // Slow it down so that it is surely mid-way when killed.
    let mut child = command(
        &[
            "reencrypt",
            "--all",
            "--batch-size",
            "200",
            "--max-rows-per-second",
            "8000",
        ],
        &env,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn reencrypt");
    // Wait until some rows are done, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let done = column(&status(&db), "public.people.email")["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["purpose"] == "value" && k["version"] == 2)
            .and_then(|k| k["values"].as_u64())
            .unwrap_or(0);
        if done >= 2_000 {
            break;
        }
        assert!(Instant::now() < deadline, "reencrypt made no progress");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "reencrypt ended too early"
        );
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    let mid = status(&db);
    let email = column(&mid, "public.people.email");
    let moved = key_of(email, "value", 2).1;
    let left = key_of(email, "value", 1).1;
    assert!(
        moved > 0 && left > 0,
        "killed mid-way: {moved} moved, {left} left"
    );
    assert_eq!(
        moved + left,
        u64::try_from(rows).expect("rows"),
        "no value lost or duplicated"
    );
    // Every value is readable in the half-done state.
    check_all(&db, MasterKeyring::new(key.clone(), vec![]), rows).await;

    let out = ok(&["reencrypt", "--all"], &env);
    assert!(out.contains("complete"), "{out}");
    let done = status(&db);
    for name in ["public.people.email", "public.people.note"] {
        assert_eq!(column(&done, name)["values_to_reencrypt"], 0, "{name}");
        assert_eq!(key_of(column(&done, name), "value", 1).1, 0, "{name}");
    }
    check_all(&db, MasterKeyring::new(key.clone(), vec![]), rows).await;
}

#[tokio::test]
async fn reencrypt_never_overwrites_a_concurrent_update() {
    let key = MasterKey::generate();
    let rows = 5_000;
    let db = populated(&key, rows).await;
    let b64 = key.expose_base64();
    let env = key_env(&b64, &db);
    ok(&["keys", "rotate", "people.note"], &env);

    // While reencrypt runs, a writer keeps rewriting notes with values sealed under the old key
    // (as a proxy that has not reloaded yet would): each write must survive.
    let mut client = db.connect().await;
    let old_sealer = Sealer::new(
        &mut client,
        MasterKeyring::new(key.clone(), vec![]),
        AuditLog::disabled(),
    )
    .await
    .expect("sealer");
    let child = command(&["reencrypt", "people.note", "--batch-size", "100"], &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut written = std::collections::HashMap::new();
    for round in 0..200 {
        let id = (round * 37) % rows;
        let text = format!("updated {id} round {round}");
        let sealed = old_sealer
            .seal("people", "note", &Value::Text(text.clone()))
            .expect("seal");
        client
            .execute("UPDATE people SET note = $1 WHERE id = $2", &[&sealed, &id])
            .await
            .expect("update");
        written.insert(id, text);
    }
    let output = child.wait_with_output().expect("reencrypt ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Finish whatever the writer left under the old key, then check every written value.
    ok(&["reencrypt", "people.note"], &env);
    let sealer = Sealer::new(
        &mut client,
        MasterKeyring::new(key.clone(), vec![]),
        AuditLog::disabled(),
    )
    .await
    .expect("sealer");
    for (id, text) in written {
        let row = client
            .query_one("SELECT note::bytea FROM people WHERE id = $1", &[&id])
            .await
            .expect("select");
        let stored: Vec<u8> = row.get(0);
        let value = sealer
            .open("people", "note", &pgseal::Ciphertext::from_bytes(stored))
            .expect("opens");
        assert_eq!(
            value,
            Value::Text(text),
            "row {id}: the application's write survived"
        );
    }
    let note = column(&status(&db), "public.people.note").clone();
    assert_eq!(note["values_to_reencrypt"], 0);
}

#[test]
fn reencrypt_usage_errors_are_one_line() {
    let message = fails(&["reencrypt"], &[]);
    assert!(
        message.contains("--all") || message.contains("COLUMN"),
        "{message}"
    );
    let message = fails(&["reencrypt", "--all", "--max-rows-per-second", "0"], &[]);
    assert!(message.contains("positive"), "{message}");
}

/// Waits (at most 30 s) for a line of the proxy's stderr containing `needle`.
fn wait_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("the proxy never printed a line with {needle:?}"),
        }
    }
}

fn sighup(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn proxy_reloads_its_master_key_file_on_sighup_without_dropping_connections() {
    use std::io::{BufRead, BufReader};

    let old = MasterKey::generate();
    let db = populated(&old, 10).await;
    let new = MasterKey::generate();
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("master.key");
    let previous_file = dir.path().join("previous.keys");
    std::fs::write(&key_file, format!("{}\n", &*old.expose_base64())).expect("write key");
    std::fs::write(&previous_file, "").expect("write previous");
    let key_path = key_file.to_str().expect("utf-8").to_owned();
    let previous_path = previous_file.to_str().expect("utf-8").to_owned();

    let mut child = command(
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            db.url(),
            "--reload-interval",
            "3600",
        ],
        &[
            ("PGSEAL_MASTER_KEY_FILE", key_path.as_str()),
            ("PGSEAL_PREVIOUS_MASTER_KEYS_FILE", previous_path.as_str()),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("proxy starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("the proxy says where it listens");
    assert!(first.contains(&old.fingerprint().to_string()), "{first}");
    let addr = first
        .split_whitespace()
        .nth(4)
        .expect("an address")
        .to_owned();
    let stderr = child.stderr.take().expect("stderr");
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });

    let url = format!("postgres://postgres@{addr}/{}", db.name());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect through the proxy");
    tokio::spawn(connection);
    let read = |id: i32| {
        let client = &client;
        async move {
            client
                .query_one("SELECT email FROM people WHERE id = $1", &[&id])
                .await
                .expect("read through the proxy")
                .get::<_, String>(0)
        }
    };
    assert_eq!(read(3).await, "user3@example.com");

    // Not a key: refused, the old key stays.
    std::fs::write(&key_file, "not a key").expect("write");
    sighup(&child);
    let line = wait_line(&lines, "SIGHUP");
    assert!(line.contains("not reloaded"), "{line}");
    assert!(line.contains("PGSEAL_MASTER_KEY_FILE"), "{line}");
    assert!(!line.contains("not a key"), "{line}");
    assert_eq!(read(3).await, "user3@example.com");

    // The new key without the old one: it unwraps nothing yet, refused.
    std::fs::write(&key_file, format!("{}\n", &*new.expose_base64())).expect("write");
    sighup(&child);
    let line = wait_line(&lines, "SIGHUP");
    assert!(line.contains("refused"), "{line}");
    assert!(
        line.contains(&format!("{} stays in force", old.fingerprint())),
        "{line}"
    );
    assert_eq!(read(4).await, "user4@example.com");

    // The rotation procedure: new key, old one as previous, reload, rewrap, drop the old one.
    std::fs::write(&previous_file, format!("{}\n", &*old.expose_base64())).expect("write");
    sighup(&child);
    let line = wait_line(&lines, "SIGHUP");
    assert!(
        line.contains(&format!("master key {} in force", new.fingerprint())),
        "{line}"
    );
    let new_b64 = new.expose_base64();
    let old_b64 = old.expose_base64();
    ok(
        &["keys", "rewrap"],
        &[
            ("PGSEAL_MASTER_KEY", new_b64.as_str()),
            ("PGSEAL_PREVIOUS_MASTER_KEYS", old_b64.as_str()),
            ("DATABASE_URL", db.url()),
        ],
    );
    std::fs::write(&previous_file, "").expect("write");
    sighup(&child);
    let line = wait_line(&lines, "SIGHUP");
    assert!(line.contains("in force"), "{line}");
    assert!(line.contains("0 previous"), "{line}");

    // The connection opened before it all still works, and so do new writes and reads.
    assert_eq!(read(5).await, "user5@example.com");
    client
        .execute(
            "UPDATE people SET email = $1 WHERE id = 5",
            &[&"after@rotation.example"],
        )
        .await
        .expect("write after the rotation");
    assert_eq!(read(5).await, "after@rotation.example");
    let _ = child.kill();
    let _ = child.wait();
    check_all_but(&db, MasterKeyring::new(new.clone(), vec![]), 10, 5).await;
}

/// [`check_all`] for every row but `skip`.
async fn check_all_but(db: &TestDatabase, keyring: MasterKeyring, rows: i32, skip: i32) {
    let mut client = db.connect().await;
    let sealer = Sealer::new(&mut client, keyring, AuditLog::disabled())
        .await
        .expect("sealer");
    for id in (0..rows).filter(|id| *id != skip) {
        let stored: Vec<u8> = client
            .query_one("SELECT email::bytea FROM people WHERE id = $1", &[&id])
            .await
            .expect("select")
            .get(0);
        let value = sealer
            .open("people", "email", &pgseal::Ciphertext::from_bytes(stored))
            .expect("opens with the new key alone");
        assert_eq!(value, Value::Text(format!("user{id}@example.com")));
    }
}
