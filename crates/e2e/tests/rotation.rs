//! Key rotation while clients keep working through the proxy.
//!
//! Writers (tokio-postgres through the in-process proxy) keep inserting, updating and reading
//! rows with encrypted columns, each keeping its own log of what it wrote; meanwhile, in turn:
//! a master-key rotation (new key with the old one as previous, reload, rewrap, reload without
//! the old key; a wrong key refused on the way), a data-key rotation of every column, a full
//! online re-encryption, and the online migration of a plaintext column to an encrypted one
//! (`encrypt-column`). Required: zero client errors, every read right, the final table equal
//! to the writers' logs, every value (the migrated column's too) under the newest data key at
//! the end.
//!
//! The proxy's interval reload is set to an hour: every pick-up here comes from
//! `NOTIFY pgseal_catalog` or the reload API.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgseal::migrate::{encrypt_column, MigrationOptions, NoObserver};
use pgseal::reencrypt::{reencrypt, ReencryptOptions};
use pgseal::rotation::{self, ColumnSelection};
use pgseal::{AuditLog, MasterKey, MasterKeyring};
use pgseal_proxy::{EncryptionOptions, ProxyConfig, ReloadHandle};
use pgseal_testkit::{TestCluster, TestDatabase};
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls};

const WRITERS: i32 = 4;
const INITIAL_ROWS: i32 = 300;

/// Successful writes of all writers so far: each phase must see some, or it did not run
/// concurrently with the clients.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Asserts that the writers committed writes since `before` (taken when `phase` started).
fn assert_writes_during(phase: &str, before: u64) -> u64 {
    let now = WRITES.load(Ordering::Relaxed);
    assert!(now > before, "no client write during the {phase}");
    now
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    email: String,
    balance: i64,
    note: Option<String>,
    /// A plaintext column until the last phase encrypts it in place.
    secret: Option<String>,
}

/// A small deterministic generator: the test needs variety, not unpredictability.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

struct Proxy {
    addr: SocketAddr,
    reload: ReloadHandle,
    _stop: oneshot::Sender<()>,
}

async fn start_proxy(db: &TestDatabase, master: MasterKeyring) -> Proxy {
    let cluster = TestCluster::shared().cluster();
    let config = ProxyConfig::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        cluster.host(),
        cluster.port(),
    );
    let options = EncryptionOptions {
        control_url: db.url().to_owned(),
        master,
        audit: AuditLog::disabled(),
        // Only notifications and the reload API can explain a pick-up within the test.
        reload_interval: Duration::from_secs(3600),
    };
    let reload = ReloadHandle::new();
    let (ready, listening) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = reload.clone();
    tokio::spawn(async move {
        let result = pgseal_proxy::serve_encrypted_with_reload(
            config,
            options,
            &handle,
            move |addr| {
                let _ = ready.send(addr);
            },
            async move {
                let _ = stopped.await;
            },
        )
        .await;
        if let Err(err) = result {
            panic!("the proxy failed: {err}");
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(30), listening)
        .await
        .expect("the proxy starts")
        .expect("the proxy reports its address");
    Proxy {
        addr,
        reload,
        _stop: stop,
    }
}

fn proxy_url(proxy: &Proxy, db: &TestDatabase) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        proxy.addr.port(),
        db.name()
    )
}

/// One writer: its own ids (`writer * 1_000_000 + n`), its own log, and every error it saw.
async fn writer(
    url: String,
    writer: i32,
    stop: Arc<AtomicBool>,
) -> (BTreeMap<i32, Row>, Vec<String>, u64) {
    let client = connect(&url).await;
    let mut log = BTreeMap::new();
    let mut errors = Vec::new();
    let mut rng = Lcg(u64::try_from(writer).unwrap_or(0) + 17);
    let mut next = 0;
    let mut operations = 0u64;
    let base = writer * 1_000_000;
    let insert = "INSERT INTO acct (id, writer, email, balance, note, secret) \
                  VALUES ($1, $2, $3, $4, $5, $6)";
    let update = "UPDATE acct SET email = $1, balance = $2, note = $3, secret = $4 WHERE id = $5";
    let select = "SELECT email, balance, note, secret FROM acct WHERE id = $1";
    loop {
        let warming_up = next < INITIAL_ROWS;
        if !warming_up && stop.load(Ordering::Relaxed) {
            break;
        }
        operations += 1;
        let choice = if warming_up { 0 } else { rng.next() % 10 };
        let result: Result<(), String> = async {
            match choice {
                // Insert a new row.
                0..=2 => {
                    let id = base + next;
                    next += 1;
                    let row = Row {
                        email: format!("W{writer}.User{id}@Example.com"),
                        balance: i64::from(id) * 3 - 7,
                        note: (id % 4 != 0).then(|| format!("note {id} ✓")),
                        secret: (id % 5 != 0).then(|| format!("secret-{id}-ß")),
                    };
                    client
                        .execute(
                            insert,
                            &[
                                &id,
                                &writer,
                                &row.email,
                                &row.balance,
                                &row.note,
                                &row.secret,
                            ],
                        )
                        .await
                        .map_err(|e| format!("insert {id}: {e}"))?;
                    log.insert(id, row);
                    WRITES.fetch_add(1, Ordering::Relaxed);
                }
                // Update one of ours.
                3..=5 => {
                    let id = base
                        + i32::try_from(rng.next() % u64::try_from(next).unwrap_or(1)).unwrap_or(0);
                    let row = Row {
                        email: format!("u{}@example.org", rng.next()),
                        balance: i64::try_from(rng.next()).unwrap_or(0) - 1_000_000,
                        note: (!rng.next().is_multiple_of(3))
                            .then(|| format!("updated {}", rng.next())),
                        secret: (!rng.next().is_multiple_of(4))
                            .then(|| format!("secret updated {}", rng.next())),
                    };
                    let n = client
                        .execute(
                            update,
                            &[&row.email, &row.balance, &row.note, &row.secret, &id],
                        )
                        .await
                        .map_err(|e| format!("update {id}: {e}"))?;
                    if n != 1 {
                        return Err(format!("update {id} touched {n} rows"));
                    }
                    log.insert(id, row);
                    WRITES.fetch_add(1, Ordering::Relaxed);
                }
                // Read one of ours and compare with the log.
                _ => {
                    let id = base
                        + i32::try_from(rng.next() % u64::try_from(next).unwrap_or(1)).unwrap_or(0);
                    let found = client
                        .query_one(select, &[&id])
                        .await
                        .map_err(|e| format!("read {id}: {e}"))?;
                    let got = Row {
                        email: found.try_get(0).map_err(|e| format!("read {id}: {e}"))?,
                        balance: found.try_get(1).map_err(|e| format!("read {id}: {e}"))?,
                        note: found.try_get(2).map_err(|e| format!("read {id}: {e}"))?,
                        secret: found.try_get(3).map_err(|e| format!("read {id}: {e}"))?,
                    };
                    if log.get(&id) != Some(&got) {
                        return Err(format!("read {id}: got {got:?}, wrote {:?}", log.get(&id)));
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(err) = result {
            errors.push(err);
        }
    }
    (log, errors, operations)
}

/// The value key version in the header of the newest row a probe writes through the proxy.
async fn version_written(proxy_client: &Client, direct: &Client, id: i32) -> u32 {
    proxy_client
        .execute(
            "INSERT INTO acct (id, writer, email, balance, note) VALUES ($1, -1, 'probe@x', 1, 'p') \
             ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note",
            &[&id],
        )
        .await
        .expect("probe insert");
    let bytes: Vec<u8> = direct
        .query_one(
            "SELECT substring(note::bytea from 9 for 4) FROM acct WHERE id = $1",
            &[&id],
        )
        .await
        .expect("probe read")
        .get(0);
    u32::from_be_bytes(bytes.try_into().expect("4 bytes"))
}

async fn wait_for_version(proxy_client: &Client, direct: &Client, version: u32) -> Duration {
    let started = Instant::now();
    loop {
        if version_written(proxy_client, direct, -42).await == version {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the proxy did not switch to key version {version} (interval reload is 1 h: \
             NOTIFY pgseal_catalog must have been missed)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_keep_working_through_key_rotations_reencryption_and_column_migration() {
    let db = TestCluster::shared().create_database().await;
    let mut direct = db.connect().await;
    let audit = AuditLog::disabled();
    let old = MasterKey::generate();
    let old_ring = MasterKeyring::new(old.clone(), vec![]);
    pgseal::init(&mut direct, &old_ring, &audit)
        .await
        .expect("init");
    direct
        .batch_execute(
            "CREATE TABLE acct (id int PRIMARY KEY, writer int NOT NULL, email pgseal.email, \
             balance pgseal.int8, note pgseal.text, secret text)",
        )
        .await
        .expect("create table");
    pgseal::init(&mut direct, &old_ring, &audit)
        .await
        .expect("keys");
    let proxy = start_proxy(&db, old_ring.clone()).await;
    let url = proxy_url(&proxy, &db);
    let probe = connect(&url).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(url.clone(), w, Arc::clone(&stop))))
        .collect();
    // Let the writers fill their first rows.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut writes = WRITES.load(Ordering::Relaxed);

    // 1. Master-key rotation.
    let new = MasterKey::generate();
    let transition = MasterKeyring::new(new.clone(), vec![old.clone()]);
    proxy
        .reload
        .reload_master_keys(transition.clone())
        .await
        .expect("new key with the old one as previous is accepted");
    let rewrapped = rotation::rewrap(&mut direct, &transition, &audit)
        .await
        .expect("rewrap");
    assert_eq!(
        rewrapped.rewrapped, 4,
        "value keys of 3 columns + the email index key"
    );
    assert_eq!(rewrapped.replaced, vec![old.fingerprint().to_string()]);
    // A key that wraps nothing here is refused; the proxy keeps its keys.
    let stranger = MasterKeyring::new(MasterKey::generate(), vec![]);
    let refused = proxy
        .reload
        .reload_master_keys(stranger)
        .await
        .expect_err("a key that does not match is refused");
    assert!(refused.to_string().contains("does not match"), "{refused}");
    assert_eq!(
        proxy.reload.master_fingerprint().expect("running"),
        new.fingerprint()
    );
    // Now the old key can go.
    proxy
        .reload
        .reload_master_keys(MasterKeyring::new(new.clone(), vec![]))
        .await
        .expect("the new key alone suffices after rewrap");
    let new_ring = MasterKeyring::new(new.clone(), vec![]);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // An "old backup" of one value under data key version 1, restored at the end.
    let backup: Vec<u8> = direct
        .query_one(
            "SELECT note::bytea FROM acct WHERE note IS NOT NULL AND writer = 0 ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .expect("a value under v1")
        .get(0);

    writes = assert_writes_during("master-key rotation", writes);

    // 2. Data-key rotation of every column; the proxy switches on the notification.
    let rotated = rotation::rotate(&mut direct, &new_ring, &audit, &ColumnSelection::All, false)
        .await
        .expect("rotate");
    assert_eq!(rotated.len(), 3);
    assert!(rotated
        .iter()
        .all(|k| k.version == 2 && k.previous == Some(1)));
    let picked_up = wait_for_version(&probe, &direct, 2).await;
    println!("the proxy wrote under the new key {picked_up:?} after the rotation committed");
    tokio::time::sleep(Duration::from_millis(500)).await;

    writes = assert_writes_during("data-key rotation", writes);

    // 3. Full online re-encryption while the writers go on.
    direct
        .batch_execute("SET lock_timeout = '7s'")
        .await
        .expect("a setting of the caller's own");
    let mut batches = 0u64;
    let report = reencrypt(
        &mut direct,
        &new_ring,
        &audit,
        &ColumnSelection::All,
        &ReencryptOptions {
            batch_size: 50,
            ..ReencryptOptions::default()
        },
        &mut |_| batches += 1,
    )
    .await
    .expect("reencrypt");
    assert!(report.rewritten() > 0, "{report:?}");
    let lock_timeout: String = direct
        .query_one("SHOW lock_timeout", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(
        lock_timeout, "7s",
        "the caller's session settings are restored"
    );
    assert!(batches > 1);
    tokio::time::sleep(Duration::from_millis(500)).await;

    writes = assert_writes_during("re-encryption", writes);

    // 4. The plaintext column becomes an encrypted one, online, under the new master key. The
    // proxy learns of each step by `NOTIFY pgseal_catalog`; the grace is a margin above that.
    let migrated = encrypt_column(
        &mut direct,
        &new_ring,
        &audit,
        "acct",
        "secret",
        &MigrationOptions {
            proxy_grace: Duration::from_millis(1500),
            batch_rows: 200,
            ..MigrationOptions::default()
        },
        &NoObserver,
    )
    .await
    .expect("encrypt-column under load");
    println!(
        "encrypt-column: {} rows online, {} at cutover ({} ms lock)",
        migrated.rows_backfilled,
        migrated.rows_at_cutover,
        migrated.cutover_lock_held.as_millis()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;

    assert_writes_during("encrypt-column", writes);
    stop.store(true, Ordering::Relaxed);
    let mut expected = BTreeMap::new();
    let mut operations = 0;
    for task in writers {
        let (log, errors, ops) = task.await.expect("writer task");
        assert!(errors.is_empty(), "client errors: {errors:#?}");
        operations += ops;
        expected.extend(log);
    }
    println!("{operations} client operations, {} rows", expected.len());

    // The final table, read through the proxy, is exactly the writers' logs.
    let rows = probe
        .query(
            "SELECT id, email, balance, note, secret FROM acct WHERE writer >= 0 ORDER BY id",
            &[],
        )
        .await
        .expect("final read");
    let actual: BTreeMap<i32, Row> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Row {
                    email: r.get(1),
                    balance: r.get(2),
                    note: r.get(3),
                    secret: r.get(4),
                },
            )
        })
        .collect();
    assert_eq!(actual.len(), expected.len());
    assert!(
        actual == expected,
        "the table differs from the writers' logs"
    );

    // The migrated column is stored encrypted: every live value a ciphertext, no plaintext left.
    let raw = direct
        .query_one(
            "SELECT count(secret), \
                    count(*) FILTER (WHERE get_byte(secret::bytea, 0) <> 181), \
                    count(*) FILTER (WHERE position('secret'::bytea IN secret::bytea) > 0) \
             FROM acct",
            &[],
        )
        .await
        .expect("raw values");
    let secrets = expected.values().filter(|r| r.secret.is_some()).count();
    assert_eq!(
        usize::try_from(raw.get::<_, i64>(0)).expect("count"),
        secrets
    );
    assert_eq!(raw.get::<_, i64>(1), 0, "every secret is a ciphertext");
    assert_eq!(raw.get::<_, i64>(2), 0, "no plaintext in a live secret");

    // Every value is under the newest data key of its column (version 2 for the rotated
    // columns, 1 for the migrated one), wrapped by the new master key.
    let statuses = rotation::status(&direct).await.expect("status");
    let names: Vec<&str> = statuses.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(
        names.len(),
        4,
        "three rotated columns and the migrated one: {names:?}"
    );
    for column in statuses {
        assert_eq!(column.values_to_reencrypt(), 0, "{column:?}");
        assert!(column.unknown_value_versions.is_empty(), "{column:?}");
        assert!(column.values_total > 0, "{column:?}");
        let newest = if column.column == "public.acct.secret" {
            1
        } else {
            2
        };
        for key in &column.keys {
            assert_eq!(key.master_key, new.fingerprint().to_string());
            if key.purpose == "value" {
                let n = if key.version == newest {
                    column.values_total
                } else {
                    0
                };
                assert_eq!(key.values, n, "{}: {key:?}", column.column);
            }
        }
    }
    let secret_one = probe
        .query_one("SELECT secret FROM acct WHERE id = 1", &[])
        .await
        .expect("read the migrated column");
    assert_eq!(
        secret_one.get::<_, Option<String>>(0),
        expected.get(&1).and_then(|r| r.secret.clone())
    );

    // With nothing left under version 1, it can be retired; the proxy keeps serving.
    for name in ["acct.email", "acct.balance", "acct.note"] {
        rotation::retire(
            &mut direct,
            &audit,
            &ColumnSelection::One(name.into()),
            1,
            false,
        )
        .await
        .expect("retire v1");
    }
    let after: i64 = probe
        .query_one("SELECT count(*) FROM acct WHERE writer >= 0", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(usize::try_from(after).expect("count"), expected.len());
    let one = probe
        .query_one("SELECT email FROM acct WHERE id = 0", &[])
        .await
        .expect("read after retire");
    assert_eq!(
        Some(&one.get::<_, String>(0)),
        expected.get(&0).map(|r| &r.email)
    );

    // The old backup's value restored: reading it through the proxy is a clear error naming
    // the column and the retired version, and the session stays usable.
    direct
        .execute(
            "INSERT INTO acct (id, writer, note) VALUES (-7, -2, $1::bytea)",
            &[&backup],
        )
        .await
        .expect("restore the old value");
    // The proxy reloads on the retirement's notification: give it a moment.
    let started = Instant::now();
    let err = loop {
        match probe
            .query_one("SELECT note FROM acct WHERE id = -7", &[])
            .await
        {
            Err(err) => break err,
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "a value under a retired key still opens through the proxy"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let db_error = err.as_db_error().expect("a server-shaped error");
    assert_eq!(db_error.code().code(), "XX001");
    assert!(
        db_error.message().contains("public.acct.note")
            && db_error.message().contains("data key version 1")
            && db_error.message().contains("retired"),
        "{}",
        db_error.message()
    );
    let still: i64 = probe
        .query_one("SELECT count(*) FROM acct", &[])
        .await
        .expect("the session still works")
        .get(0);
    assert!(still > 0);
}
