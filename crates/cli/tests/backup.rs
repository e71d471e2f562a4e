//! `pgseal backup` and `pgseal wal`, run for real against temporary PostgreSQL clusters: round
//! trip, every kind of damage, key separation and rotation, WAL archiving, and point-in-time
//! recovery from a base backup plus archived WAL.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pgseal::{init, AuditLog, MasterKey, MasterKeyring, Sealer, Value};
use pgseal_localpg::RunAs;
use pgseal_testkit::{TestCluster, TestDatabase};
use tokio_postgres::Client;

const CHUNK: usize = 1 << 20;
const SEALED_CHUNK: usize = CHUNK + 16;

fn pgseal(args: &[&str], env: &[(&str, &str)]) -> Output {
    pgseal_as(Path::new(env!("CARGO_BIN_EXE_pgseal")), None, args, env)
}

/// Runs `binary` (a pgseal) as `run_as` (the server's user when tests run as root). That user
/// may not reach the build directory (a checkout under a private temporary directory): pass a
/// copy it can execute, whose directory it may also work in.
fn pgseal_as(binary: &Path, run_as: Option<RunAs>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary);
    command.args(args);
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
        if let Some(dir) = binary.parent() {
            command.current_dir(dir);
        }
    }
    // Start from a clean slate: the developer's own keys must not leak into a test.
    for var in [
        "PGSEAL_MASTER_KEY",
        "PGSEAL_MASTER_KEY_FILE",
        "PGSEAL_PREVIOUS_MASTER_KEYS",
        "PGSEAL_BACKUP_KEY",
        "PGSEAL_BACKUP_KEY_FILE",
        "PGSEAL_PREVIOUS_BACKUP_KEYS",
        "PGSEAL_BACKUP_REPO",
        "PGSEAL_AUDIT_LOG",
        "DATABASE_URL",
    ] {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the pgseal binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "pgseal failed: {}{}",
        stderr(&output),
        stdout(&output)
    );
    output
}

/// A fresh backup key in base64 (as `pgseal keygen` prints it).
fn keygen() -> String {
    stdout(&ok(pgseal(&["keygen"], &[]))).trim().to_owned()
}

fn key_bytes(base64_key: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(base64_key)
        .expect("keygen prints base64")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts neither the key's bytes nor its base64 occur in `file`.
fn assert_key_absent(file: &Path, key: &str) {
    let bytes = std::fs::read(file).expect("read produced file");
    assert!(
        !contains(&bytes, &key_bytes(key)),
        "{} holds the key bytes",
        file.display()
    );
    assert!(
        !contains(&bytes, key.as_bytes()),
        "{} holds the key's base64",
        file.display()
    );
}

async fn user_table_count(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' \
               AND n.nspname NOT LIKE 'pg\\_%'",
            &[],
        )
        .await
        .expect("count tables")
        .get(0)
}

/// Every user table with its row count and a checksum of its rows in a stable order.
async fn table_fingerprints(client: &Client) -> Vec<(String, i64, String)> {
    let tables = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' \
               AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
            &[],
        )
        .await
        .expect("list tables");
    let mut out = Vec::new();
    for row in tables {
        let table: String = row.get(0);
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') \
                     FROM {table} t"
                ),
                &[],
            )
            .await
            .expect("checksum");
        out.push((table, row.get(0), row.get(1)));
    }
    out
}

fn master_clone(ring: &MasterKeyring) -> MasterKeyring {
    MasterKeyring::new(
        MasterKey::from_base64("test", &ring.current().expose_base64()).expect("valid key"),
        Vec::new(),
    )
}

/// A database with pgseal installed, encrypted columns written through the library, plaintext
/// tables, a sequence and an index; `rows` extra rows of incompressible-ish text.
async fn populated_database(rows: i32) -> (TestDatabase, MasterKeyring) {
    let db = TestCluster::shared().create_database().await;
    let mut client = db.connect().await;
    let master = MasterKeyring::new(MasterKey::generate(), Vec::new());
    init(&mut client, &master, &AuditLog::disabled())
        .await
        .expect("init");
    client
        .batch_execute(&format!(
            "CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, secret pgseal.text, \
                                  born pgseal.date);
             CREATE TABLE notes (id int PRIMARY KEY, body text, at timestamptz DEFAULT now());
             CREATE INDEX notes_body ON notes (body);
             INSERT INTO notes (id, body)
               SELECT g, md5(g::text || random()::text) FROM generate_series(1, {rows}) g;"
        ))
        .await
        .expect("schema");
    let sealer = Sealer::new(&mut client, master_clone(&master), AuditLog::disabled())
        .await
        .expect("sealer");
    for i in 0..40 {
        let secret = sealer
            .seal(
                "people",
                "secret",
                &Value::Text(format!("secret number {i}")),
            )
            .expect("seal");
        client
            .execute(
                "INSERT INTO people (name, secret) VALUES ($1, $2)",
                &[&format!("person {i}"), &secret],
            )
            .await
            .expect("insert");
    }
    (db, master)
}

#[tokio::test]
async fn round_trip_restores_every_row_and_encrypted_columns_still_need_the_master_key() {
    let (source, master) = populated_database(5_000).await;
    let key = keygen();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("app.pgseal");
    let file_s = file.to_str().expect("utf8");

    let created = ok(pgseal(
        &["backup", "create", "-o", file_s],
        &[("PGSEAL_BACKUP_KEY", &key), ("DATABASE_URL", source.url())],
    ));
    assert!(stderr(&created).contains("bk_"), "{}", stderr(&created));
    assert_key_absent(&file, &key);
    assert!(
        !contains(&std::fs::read(&file).expect("read"), b"secret number"),
        "plaintext in the backup"
    );

    // The same backup streamed to standard output (a pipe or file, never a terminal).
    let piped = dir.path().join("piped.pgseal");
    let status = Command::new(env!("CARGO_BIN_EXE_pgseal"))
        .args(["backup", "create"])
        .env_remove("PGSEAL_BACKUP_KEY_FILE")
        .env("PGSEAL_BACKUP_KEY", &key)
        .env("DATABASE_URL", source.url())
        .stdout(std::fs::File::create(&piped).expect("create"))
        .status()
        .expect("runs");
    assert!(status.success());
    ok(pgseal(
        &["backup", "verify", piped.to_str().expect("utf8")],
        &[("PGSEAL_BACKUP_KEY", &key)],
    ));

    let verified = ok(pgseal(
        &["backup", "verify", file_s],
        &[("PGSEAL_BACKUP_KEY", &key)],
    ));
    assert!(stdout(&verified).contains("OK"), "{}", stdout(&verified));

    // inspect needs no key and reports the header.
    let inspected = ok(pgseal(&["backup", "inspect", "--json", file_s], &[]));
    let doc: serde_json::Value = serde_json::from_slice(&inspected.stdout).expect("json");
    assert_eq!(doc["database"], source.name());
    assert!(doc["backup_key_fingerprint"]
        .as_str()
        .is_some_and(|f| f.starts_with("bk_")));
    assert!(doc["server_version"]
        .as_str()
        .is_some_and(|v| v.starts_with("15")));
    assert_eq!(doc["chunk_size"], CHUNK);
    let text = stdout(&ok(pgseal(&["backup", "inspect", file_s], &[])));
    assert!(
        text.contains("created:") && text.contains(source.name()),
        "{text}"
    );

    // A non-empty target is refused unless told otherwise.
    let refused = pgseal(
        &["backup", "restore", file_s],
        &[("PGSEAL_BACKUP_KEY", &key), ("DATABASE_URL", source.url())],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not empty"),
        "{}",
        stderr(&refused)
    );

    let target = TestCluster::shared().create_database().await;
    ok(pgseal(
        &["backup", "restore", file_s],
        &[("PGSEAL_BACKUP_KEY", &key), ("DATABASE_URL", target.url())],
    ));

    let source_client = source.connect().await;
    let mut target_client = target.connect().await;
    let before = table_fingerprints(&source_client).await;
    let after = table_fingerprints(&target_client).await;
    assert!(before
        .iter()
        .any(|(t, n, _)| t == "public.notes" && *n == 5_000));
    assert!(before.iter().any(|(t, _, _)| t.starts_with("pgseal.")));
    assert_eq!(before, after);

    // Encrypted values were restored as ciphertext and open with the master key only.
    let stored: pgseal::Ciphertext = target_client
        .query_one("SELECT secret FROM people WHERE name = 'person 7'", &[])
        .await
        .expect("select")
        .get(0);
    let sealer = Sealer::new(
        &mut target_client,
        master_clone(&master),
        AuditLog::disabled(),
    )
    .await
    .expect("the restored key tables open with the master key");
    assert_eq!(
        sealer.open("people", "secret", &stored).expect("decrypts"),
        Value::Text("secret number 7".into())
    );
    let other = MasterKeyring::new(MasterKey::generate(), Vec::new());
    assert!(
        Sealer::new(&mut target_client, other, AuditLog::disabled())
            .await
            .is_err(),
        "another master key must not open the restored data keys"
    );
}

#[tokio::test]
async fn every_kind_of_damage_has_its_own_message_and_restores_nothing() {
    // About 4 MiB of compressed payload: several 1 MiB chunks.
    let (source, _master) = populated_database(250_000).await;
    let key = keygen();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("good.pgseal");
    ok(pgseal(
        &["backup", "create", "-o", file.to_str().expect("utf8")],
        &[("PGSEAL_BACKUP_KEY", &key), ("DATABASE_URL", source.url())],
    ));
    let good = std::fs::read(&file).expect("read");
    let (header, h) = pgseal_backup::read_header(&mut &good[..], "good").expect("header parses");
    assert_eq!(header.chunk_size() as usize, CHUNK);
    assert!(good.len() > h + 3 * SEALED_CHUNK, "need at least 4 chunks");
    let chunk = |i: usize| h + i * SEALED_CHUNK..h + (i + 1) * SEALED_CHUNK;

    let mut flipped_header = good.clone();
    flipped_header[20] ^= 0x04;
    let mut flipped_payload = good.clone();
    flipped_payload[chunk(1).start + 1000] ^= 0x01;
    let mut swapped = good.clone();
    swapped[chunk(1)].copy_from_slice(&good[chunk(2)]);
    swapped[chunk(2)].copy_from_slice(&good[chunk(1)]);
    let mut duplicated = good[..chunk(1).end].to_vec();
    duplicated.extend_from_slice(&good[chunk(1)]);
    duplicated.extend_from_slice(&good[chunk(1).end..]);
    let foreign = {
        let out = ok(pgseal(&["keygen"], &[]));
        let mut bytes = b"PGDMP".to_vec();
        bytes.extend_from_slice(&out.stdout);
        bytes
    };

    let other_key = keygen();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "cut at a boundary",
            good[..chunk(2).end].to_vec(),
            &key,
            "cut at a chunk boundary",
        ),
        (
            "cut mid-chunk",
            good[..chunk(2).start + 5000].to_vec(),
            &key,
            "ends inside chunk 2",
        ),
        (
            "flipped header byte",
            flipped_header,
            &key,
            "header failed authentication",
        ),
        (
            "flipped payload byte",
            flipped_payload,
            &key,
            "chunk 1 failed authentication",
        ),
        ("swapped chunks", swapped, &key, "chunks were reordered"),
        (
            "duplicated chunk",
            duplicated,
            &key,
            "a chunk was duplicated",
        ),
        ("wrong key", good.clone(), &other_key, "which is not loaded"),
        ("foreign file", foreign, &key, "not a pgseal backup"),
    ];
    let mut messages = Vec::new();
    for (name, bytes, key, expect) in &cases {
        let path = dir.path().join(name.replace(' ', "_"));
        std::fs::write(&path, bytes).expect("write case");
        let path_s = path.to_str().expect("utf8");
        let verify = pgseal(&["backup", "verify", path_s], &[("PGSEAL_BACKUP_KEY", key)]);
        assert!(!verify.status.success(), "{name}: verify passed");
        let message = stderr(&verify);
        assert!(message.contains(expect), "{name}: {message}");
        assert_eq!(
            message.trim().lines().count(),
            1,
            "{name}: one line: {message}"
        );

        let target = TestCluster::shared().create_database().await;
        let restore = pgseal(
            &["backup", "restore", path_s],
            &[("PGSEAL_BACKUP_KEY", key), ("DATABASE_URL", target.url())],
        );
        assert!(!restore.status.success(), "{name}: restore passed");
        assert!(
            stderr(&restore).contains(expect),
            "{name}: {}",
            stderr(&restore)
        );
        assert_eq!(
            user_table_count(&target.connect().await).await,
            0,
            "{name}: restore left tables behind"
        );
        messages.push(message);
    }
    messages.sort();
    messages.dedup();
    assert_eq!(
        messages.len(),
        cases.len(),
        "every case has its own message"
    );
}

#[tokio::test]
async fn rekey_rewraps_so_only_the_new_key_opens_and_the_payload_is_untouched() {
    let (source, _master) = populated_database(100).await;
    let old = keygen();
    let new = keygen();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("b.pgseal");
    let file_s = file.to_str().expect("utf8");
    ok(pgseal(
        &["backup", "create", "-o", file_s],
        &[("PGSEAL_BACKUP_KEY", &old), ("DATABASE_URL", source.url())],
    ));
    let before = std::fs::read(&file).expect("read");

    let without_old = pgseal(&["backup", "rekey", file_s], &[("PGSEAL_BACKUP_KEY", &new)]);
    assert!(!without_old.status.success());
    assert!(stderr(&without_old).contains("PGSEAL_PREVIOUS_BACKUP_KEYS"));

    ok(pgseal(
        &["backup", "rekey", file_s],
        &[
            ("PGSEAL_BACKUP_KEY", &new),
            ("PGSEAL_PREVIOUS_BACKUP_KEYS", &old),
        ],
    ));
    let after = std::fs::read(&file).expect("read");
    let (_, h) = pgseal_backup::read_header(&mut &after[..], "b").expect("header");
    assert_eq!(before.len(), after.len());
    assert_eq!(before[h..], after[h..], "payload not re-encrypted");
    assert_ne!(before[..h], after[..h], "key slot rewritten");
    assert_key_absent(&file, &new);
    assert_key_absent(&file, &old);

    ok(pgseal(
        &["backup", "verify", file_s],
        &[("PGSEAL_BACKUP_KEY", &new)],
    ));
    let old_only = pgseal(
        &["backup", "verify", file_s],
        &[("PGSEAL_BACKUP_KEY", &old)],
    );
    assert!(!old_only.status.success());
    assert!(
        stderr(&old_only).contains("not loaded"),
        "{}",
        stderr(&old_only)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        1,
        "no temp file left"
    );
}

#[tokio::test]
async fn the_master_key_is_refused_as_backup_key_and_a_missing_key_is_named() {
    let source = TestCluster::shared().create_database().await;
    let key = keygen();
    let same = pgseal(
        &["backup", "create", "-o", "/nonexistent/x"],
        &[
            ("PGSEAL_BACKUP_KEY", &key),
            ("PGSEAL_MASTER_KEY", &key),
            ("DATABASE_URL", source.url()),
        ],
    );
    assert!(!same.status.success());
    assert!(
        stderr(&same).contains("same key as the master key"),
        "{}",
        stderr(&same)
    );
    assert!(!stderr(&same).contains(&key));

    let missing = pgseal(&["backup", "create"], &[("DATABASE_URL", source.url())]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("PGSEAL_BACKUP_KEY"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn wal_push_fetch_round_trip_is_idempotent_and_detects_swapped_segments() {
    const SEG1: &str = "000000010000000000000001";
    const SEG2: &str = "000000010000000000000002";
    let key = keygen();
    let dir = tempfile::tempdir().expect("dir");
    let repo = dir.path().join("repo");
    let repo_s = repo.to_str().expect("utf8");
    let seg1 = dir.path().join("seg1");
    let seg2 = dir.path().join("seg2");
    let content1: Vec<u8> = (0..2_000_000u32).map(|i| (i % 7) as u8).collect();
    std::fs::write(&seg1, &content1).expect("write");
    std::fs::write(&seg2, vec![9u8; 100_000]).expect("write");
    let env = [("PGSEAL_BACKUP_KEY", key.as_str())];
    let p = |p: &Path| p.to_str().expect("utf8").to_owned();

    ok(pgseal(
        &["wal", "push", &p(&seg1), SEG1, "--repo", repo_s],
        &env,
    ));
    ok(pgseal(
        &["wal", "push", &p(&seg1), SEG1, "--repo", repo_s],
        &env,
    ));
    let conflict = pgseal(&["wal", "push", &p(&seg2), SEG1, "--repo", repo_s], &env);
    assert!(!conflict.status.success());
    assert!(
        stderr(&conflict).contains("different content"),
        "{}",
        stderr(&conflict)
    );
    ok(pgseal(
        &["wal", "push", &p(&seg2), SEG2, "--repo", repo_s],
        &env,
    ));
    for object in std::fs::read_dir(repo.join("wal")).expect("ls") {
        assert_key_absent(&object.expect("entry").path(), &key);
    }

    let dest = dir.path().join("pg_wal_RECOVERYXLOG");
    ok(pgseal(
        &["wal", "fetch", SEG1, &p(&dest), "--repo", repo_s],
        &env,
    ));
    assert_eq!(std::fs::read(&dest).expect("read"), content1);

    let missing = pgseal(
        &[
            "wal",
            "fetch",
            "000000010000000000000007",
            &p(&dest),
            "--repo",
            repo_s,
        ],
        &env,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).is_empty(), "quiet: {}", stderr(&missing));

    // Put segment 2's object where segment 1 belongs.
    std::fs::remove_file(repo.join("wal").join(SEG1)).expect("rm");
    std::fs::copy(repo.join("wal").join(SEG2), repo.join("wal").join(SEG1)).expect("cp");
    let swapped_dest = dir.path().join("swapped");
    let swapped = pgseal(
        &["wal", "fetch", SEG1, &p(&swapped_dest), "--repo", repo_s],
        &env,
    );
    assert!(!swapped.status.success());
    assert!(
        stderr(&swapped).contains(&format!("holds WAL file {SEG2}")),
        "{}",
        stderr(&swapped)
    );
    assert!(
        !swapped_dest.exists(),
        "nothing written for a swapped segment"
    );

    let wrong = pgseal(
        &["wal", "fetch", SEG2, &p(&swapped_dest), "--repo", repo_s],
        &[("PGSEAL_BACKUP_KEY", &keygen())],
    );
    assert!(!wrong.status.success());
    assert!(stderr(&wrong).contains("not loaded"), "{}", stderr(&wrong));
}

// ---------------------------------------------------------------------------------------------
// Point-in-time recovery

/// A server started by the test from a restored data directory; stopped on drop.
struct RestoredServer {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    run_as: Option<RunAs>,
    port: u16,
}

impl RestoredServer {
    fn pg_ctl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("pg_ctl"));
        cmd.env_remove("PGDATA");
        if let Some(user) = self.run_as {
            cmd.uid(user.uid).gid(user.gid).current_dir(&self.data_dir);
        }
        cmd
    }
}

impl Drop for RestoredServer {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "-s"])
            .output();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn give(path: &Path, run_as: Option<RunAs>) {
    if let Some(user) = run_as {
        user.chown(path).expect("chown to the server user");
    }
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn point_in_time_recovery_reaches_the_named_restore_point_exactly() {
    let run_as = RunAs::for_servers().expect("server user");
    let work = tempfile::tempdir().expect("dir");
    // The server (maybe another OS user) runs `pgseal wal push` and must reach all of this.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let key = keygen();
    let key_file = work.path().join("backup.key");
    std::fs::write(&key_file, format!("{key}\n")).expect("write key file");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    give(&key_file, run_as);
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo).expect("mkdir");
    give(&repo, run_as);
    // A copy of the binary the server user can surely execute.
    let binary = work.path().join("pgseal");
    std::fs::copy(env!("CARGO_BIN_EXE_pgseal"), &binary).expect("copy binary");
    let (binary_s, key_file_s, repo_s) = (
        binary.to_str().expect("utf8"),
        key_file.to_str().expect("utf8"),
        repo.to_str().expect("utf8"),
    );
    // The key travels as a file name: never the key itself on a command line.
    let archive_command =
        format!("PGSEAL_BACKUP_KEY_FILE={key_file_s} {binary_s} wal push %p %f --repo {repo_s}");
    let cluster = TestCluster::start_dedicated(vec![
        ("wal_level".into(), "replica".into()),
        ("archive_mode".into(), "on".into()),
        ("archive_command".into(), archive_command),
    ]);
    let admin = cluster.connect("postgres").await;
    admin
        .batch_execute("CREATE DATABASE pitr")
        .await
        .expect("createdb");
    let url = cluster.cluster().url("pitr");
    let client = cluster.connect("pitr").await;
    client
        .batch_execute(
            "CREATE TABLE events (id int PRIMARY KEY, note text);
             INSERT INTO events SELECT g, 'before base' FROM generate_series(1, 100) g;",
        )
        .await
        .expect("setup");

    // The repository belongs to the server's user, who also takes the base backup.
    let base = ok(pgseal_as(
        &binary,
        run_as,
        &["backup", "base", "--repo", repo_s, "--fast-checkpoint"],
        &[
            ("PGSEAL_BACKUP_KEY_FILE", key_file_s),
            ("DATABASE_URL", &url),
        ],
    ));
    let base_name = stdout(&base).trim().to_owned();
    assert!(base_name.starts_with("base/"), "{base_name}");

    // Separate statements: a multi-statement string is one transaction, which would commit
    // only after the restore point.
    for sql in [
        "INSERT INTO events SELECT g, 'after base' FROM generate_series(101, 200) g",
        "SELECT pg_create_restore_point('before_mistake')",
        "INSERT INTO events SELECT g, 'the mistake' FROM generate_series(201, 300) g",
    ] {
        client.batch_execute(sql).await.expect("write");
    }
    let last_segment: String = client
        .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
        .await
        .expect("switch")
        .get(0);
    wait_for("the last segment to be archived", || async {
        let row = admin
            .query_one(
                "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver",
                &[],
            )
            .await
            .expect("archiver");
        let archived: String = row.get(0);
        archived.as_str() >= last_segment.as_str()
    })
    .await;
    for object in std::fs::read_dir(repo.join("wal")).expect("ls") {
        assert_key_absent(&object.expect("entry").path(), &key);
    }
    assert_key_absent(&repo.join(&base_name), &key);

    // Restore into a fresh data directory, as the server user.
    let data_dir = work.path().join("restored");
    std::fs::create_dir(&data_dir).expect("mkdir");
    give(&data_dir, run_as);
    let mut restore = Command::new(&binary);
    restore
        .args(["backup", "restore-base", "--repo", repo_s, "-D"])
        .arg(&data_dir)
        .env_remove("PGSEAL_BACKUP_KEY")
        .env("PGSEAL_BACKUP_KEY_FILE", key_file_s);
    if let Some(user) = run_as {
        restore.uid(user.uid).gid(user.gid).current_dir(work.path());
    }
    ok(restore.output().expect("restore-base runs"));
    assert!(data_dir.join("PG_VERSION").is_file());
    assert!(
        data_dir.join("backup_manifest").is_file(),
        "the manifest travels in the tar"
    );
    let restore_command =
        format!("PGSEAL_BACKUP_KEY_FILE={key_file_s} {binary_s} wal fetch %f %p --repo {repo_s}");
    let recovery = format!(
        "restore_command = '{restore_command}'\n\
         recovery_target_name = 'before_mistake'\n\
         recovery_target_action = 'promote'\n"
    );
    let auto_conf = data_dir.join("postgresql.auto.conf");
    let mut conf = std::fs::read_to_string(&auto_conf).unwrap_or_default();
    conf.push_str(&recovery);
    std::fs::write(&auto_conf, conf).expect("write recovery settings");
    std::fs::write(data_dir.join("recovery.signal"), "").expect("recovery.signal");
    give(&auto_conf, run_as);
    give(&data_dir.join("recovery.signal"), run_as);

    let socket_dir = work.path().join("socket");
    std::fs::create_dir(&socket_dir).expect("mkdir");
    give(&socket_dir, run_as);
    let server = RestoredServer {
        bin_dir: cluster.cluster().bin_dir().to_owned(),
        data_dir: data_dir.clone(),
        run_as,
        port: free_port(),
    };
    let log = work.path().join("restored.log");
    std::fs::write(&log, "").expect("log");
    give(&log, run_as);
    let options = format!(
        "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
         -c archive_mode=off -c shared_preload_libraries=''",
        server.port,
        socket_dir.display()
    );
    let started = server
        .pg_ctl()
        .arg("start")
        .arg("-D")
        .arg(&data_dir)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60", "-o", &options])
        .output()
        .expect("pg_ctl runs");
    assert!(
        started.status.success(),
        "restored server did not start: {}\n{}",
        stderr(&started),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let restored_url = format!("postgres://postgres@127.0.0.1:{}/pitr", server.port);
    let (restored, connection) = tokio_postgres::connect(&restored_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the restored server");
    tokio::spawn(connection);
    wait_for("recovery to finish", || async {
        let row = restored
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .expect("query");
        !row.get::<_, bool>(0)
    })
    .await;
    let row = restored
        .query_one(
            "SELECT count(*), max(id), count(*) FILTER (WHERE note = 'the mistake') FROM events",
            &[],
        )
        .await
        .expect("count");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        row.get::<_, i64>(0),
        200,
        "rows before the restore point: {log_text}"
    );
    assert_eq!(row.get::<_, Option<i32>>(1), Some(200));
    assert_eq!(
        row.get::<_, i64>(2),
        0,
        "rows after the restore point must be absent"
    );
    assert!(
        log_text.contains("recovery stopping at restore point \"before_mistake\""),
        "{log_text}"
    );
    drop(server);
}
