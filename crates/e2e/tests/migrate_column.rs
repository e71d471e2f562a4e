//! Online column migration under load: clients keep writing and reading through the proxy while
//! `encrypt-column` and then `decrypt-column` run on the column they use.
//!
//! Required: every read returns the value its client last wrote; no write is lost (the final
//! table equals what the writers' own logs say); the plaintext is gone from the live table after
//! the encryption; and no client sees any error: the proxy holds statements on the table while
//! a cutover is pending and prepares cached statements again after it (docs/operations.md,
//! "Encrypting an existing column"). The clients use the simple protocol, ad-hoc extended-
//! protocol statements, and statements prepared once and reused across both cutovers, pipelined.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgseal::migrate::{decrypt_column, encrypt_column, MigrationOptions, NoObserver};
use pgseal::{init, AuditLog, MasterKey, MasterKeyring};
use pgseal_proxy::ProxyConfig;
use pgseal_testkit::{TestCluster, TestDatabase};
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls};

const ROWS: i64 = 20_000;
/// Divides ROWS, so workers' ids never collide; two of each style but the simple protocol.
const WORKERS: i64 = 5;

fn keyring(key: &MasterKey) -> MasterKeyring {
    MasterKeyring::new(
        MasterKey::from_base64("test", &key.expose_base64()).expect("key"),
        Vec::new(),
    )
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

/// The encrypting proxy in front of `db`, reloading its catalog every second.
async fn start_proxy(db: &TestDatabase, key: &MasterKey) -> (SocketAddr, oneshot::Sender<()>) {
    let cluster = TestCluster::shared().cluster();
    let mut config = ProxyConfig::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        cluster.host(),
        cluster.port(),
    );
    config.startup_timeout = Duration::from_secs(30);
    let options = pgseal_proxy::EncryptionOptions {
        control_url: db.url().to_owned(),
        master: keyring(key),
        audit: AuditLog::disabled(),
        reload_interval: Duration::from_secs(1),
    };
    let (ready, listening) = oneshot::channel::<SocketAddr>();
    let (shutdown, stop) = oneshot::channel::<()>();
    tokio::spawn(pgseal_proxy::serve_encrypted(
        config,
        options,
        move |addr| {
            let _ = ready.send(addr);
        },
        async move {
            let _ = stop.await;
        },
    ));
    let addr = listening.await.expect("the proxy starts");
    (addr, shutdown)
}

/// What one worker saw.
#[derive(Default)]
struct WorkerLog {
    /// id → the last value this worker wrote successfully.
    written: HashMap<i64, String>,
    writes: u64,
    reads: u64,
    /// Reads that returned something other than what was written: must stay empty.
    wrong_reads: Vec<String>,
}

/// Client errors by SQLSTATE and message, shared by all workers.
type Errors = Arc<Mutex<BTreeMap<String, u64>>>;

fn count(errors: &Errors, err: &tokio_postgres::Error) {
    if let Ok(mut map) = errors.lock() {
        *map.entry(describe(err)).or_default() += 1;
    }
}

fn snapshot(errors: &Errors) -> BTreeMap<String, u64> {
    errors.lock().map(|m| m.clone()).unwrap_or_default()
}

fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => err.to_string(),
    }
}

/// How a worker talks to the server.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// Ad-hoc extended-protocol statements: each parsed anew, as with most ORMs without a
    /// statement cache.
    AdHoc,
    /// Statements prepared once when the worker starts and reused across both cutovers (a
    /// driver's statement cache), the write and the read-back pipelined.
    Cached,
    /// The simple protocol, values as literals.
    Simple,
}

impl Style {
    fn of(worker: i64) -> Style {
        match worker % 3 {
            0 => Style::AdHoc,
            1 => Style::Cached,
            _ => Style::Simple,
        }
    }
}

/// Runs `worker`'s loop in its style.
async fn worker(url: String, worker: i64, stop: Arc<AtomicBool>, errors: Errors) -> WorkerLog {
    match Style::of(worker) {
        Style::AdHoc => ad_hoc_worker(url, worker, stop, errors).await,
        Style::Cached => cached_worker(url, worker, stop, errors).await,
        Style::Simple => simple_worker(url, worker, stop, errors).await,
    }
}

/// The id and value of a worker's `n`th write: mostly updates of its own rows (ids ≡ `worker`
/// mod WORKERS), every tenth a new row.
fn next_write(worker: i64, n: i64) -> (i64, String) {
    let id = if n % 10 == 0 {
        1_000_000 + worker * 100_000 + n
    } else {
        1 + ((n * WORKERS + worker) % ROWS)
    };
    (id, format!("w{worker}-{n}-secret"))
}

/// Records a write's outcome; whether it succeeded.
fn record_write(
    log: &mut WorkerLog,
    errors: &Errors,
    id: i64,
    value: &str,
    wrote: Result<u64, tokio_postgres::Error>,
) -> bool {
    match wrote {
        Ok(1) => {
            log.writes += 1;
            log.written.insert(id, value.to_owned());
            true
        }
        Ok(other) => {
            log.wrong_reads
                .push(format!("write of id {id} touched {other} rows"));
            false
        }
        Err(err) => {
            count(errors, &err);
            false
        }
    }
}

/// Records a read-back of what was just written.
fn record_read(
    log: &mut WorkerLog,
    errors: &Errors,
    id: i64,
    value: &str,
    read: Result<Option<String>, tokio_postgres::Error>,
) {
    match read {
        Ok(Some(read)) if read == value => log.reads += 1,
        Ok(other) => {
            log.reads += 1;
            log.wrong_reads
                .push(format!("id {id}: wrote {value:?}, read {other:?}"));
        }
        Err(err) => count(errors, &err),
    }
}

/// Statements prepared once and reused; each write pipelined with its read-back.
async fn cached_worker(
    url: String,
    worker: i64,
    stop: Arc<AtomicBool>,
    errors: Errors,
) -> WorkerLog {
    let client = connect(&url).await;
    let insert = client
        .prepare("INSERT INTO accounts (id, owner, secret) VALUES ($1, 'o', $2)")
        .await
        .expect("prepare insert");
    let update = client
        .prepare("UPDATE accounts SET secret = $1 WHERE id = $2")
        .await
        .expect("prepare update");
    let select = client
        .prepare("SELECT secret FROM accounts WHERE id = $1")
        .await
        .expect("prepare select");
    let mut log = WorkerLog::default();
    let mut n: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (id, value) = next_write(worker, n);
        // Both sent before either answer arrives: one pipeline on the connection.
        let write = async {
            if id > ROWS {
                client.execute(&insert, &[&id, &value]).await
            } else {
                client.execute(&update, &[&value, &id]).await
            }
        };
        let read = async {
            client
                .query_one(&select, &[&id])
                .await
                .and_then(|row| row.try_get::<_, Option<String>>(0))
        };
        let (wrote, read) = tokio::join!(write, read);
        if record_write(&mut log, &errors, id, &value, wrote) {
            record_read(&mut log, &errors, id, &value, read);
        }
    }
    log
}

/// The simple protocol: statements with literal values.
async fn simple_worker(
    url: String,
    worker: i64,
    stop: Arc<AtomicBool>,
    errors: Errors,
) -> WorkerLog {
    let client = connect(&url).await;
    let mut log = WorkerLog::default();
    let mut n: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        // Letters, digits and dashes only: safe as literals.
        let (id, value) = next_write(worker, n);
        let sql = if id > ROWS {
            format!("INSERT INTO accounts (id, owner, secret) VALUES ({id}, 'o', '{value}')")
        } else {
            format!("UPDATE accounts SET secret = '{value}' WHERE id = {id}")
        };
        let wrote = client.simple_query(&sql).await.map(|messages| {
            messages
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::CommandComplete(rows) => Some(*rows),
                    _ => None,
                })
                .unwrap_or(0)
        });
        if !record_write(&mut log, &errors, id, &value, wrote) {
            continue;
        }
        let read = client
            .simple_query(&format!("SELECT secret FROM accounts WHERE id = {id}"))
            .await
            .map(|messages| {
                messages.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
            });
        record_read(&mut log, &errors, id, &value, read);
    }
    log
}

/// Ad-hoc extended-protocol statements.
async fn ad_hoc_worker(
    url: String,
    worker: i64,
    stop: Arc<AtomicBool>,
    errors: Errors,
) -> WorkerLog {
    let client = connect(&url).await;
    let mut log = WorkerLog::default();
    let mut n: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = if n % 10 == 0 {
            // A new row.
            1_000_000 + worker * 100_000 + n
        } else {
            1 + ((n * WORKERS + worker) % ROWS)
        };
        let value = format!("w{worker}-{n}-secret");
        let wrote = if id > ROWS {
            client
                .execute(
                    "INSERT INTO accounts (id, owner, secret) VALUES ($1, 'o', $2)",
                    &[&id, &value],
                )
                .await
        } else {
            client
                .execute(
                    "UPDATE accounts SET secret = $1 WHERE id = $2",
                    &[&value, &id],
                )
                .await
        };
        match wrote {
            Ok(1) => {
                log.writes += 1;
                log.written.insert(id, value.clone());
            }
            Ok(other) => log
                .wrong_reads
                .push(format!("write of id {id} touched {other} rows")),
            Err(err) => {
                count(&errors, &err);
                continue;
            }
        }
        match client
            .query_one("SELECT secret FROM accounts WHERE id = $1", &[&id])
            .await
        {
            Ok(row) => {
                log.reads += 1;
                match row.try_get::<_, Option<String>>(0) {
                    Ok(Some(read)) if read == value => {}
                    Ok(other) => log
                        .wrong_reads
                        .push(format!("id {id}: wrote {value:?}, read {other:?}")),
                    Err(err) => log.wrong_reads.push(format!("id {id}: {err}")),
                }
            }
            Err(err) => count(&errors, &err),
        }
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_and_readers_through_the_proxy_during_encrypt_and_decrypt_column() {
    let db = TestCluster::shared().create_database().await;
    let key = MasterKey::generate();
    let mut admin = db.connect().await;
    init(&mut admin, &keyring(&key), &AuditLog::disabled())
        .await
        .expect("init");
    admin
        .batch_execute(&format!(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, secret text);
             INSERT INTO accounts SELECT i, 'owner ' || i, 'initial-' || i || '-secret'
             FROM generate_series(1, {ROWS}) AS i;"
        ))
        .await
        .expect("populate");
    let (addr, shutdown) = start_proxy(&db, &key).await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        addr.port(),
        db.name()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let errors: Errors = Arc::default();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(url.clone(), w, stop.clone(), errors.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let options = MigrationOptions {
        // Above the proxy's 1 s reload interval.
        proxy_grace: Duration::from_millis(2500),
        batch_rows: 500,
        max_rows_per_second: Some(10_000),
        ..MigrationOptions::default()
    };
    let master = keyring(&key);
    let audit = AuditLog::disabled();
    let encrypted = encrypt_column(
        &mut admin,
        &master,
        &audit,
        "accounts",
        "secret",
        &options,
        &NoObserver,
    )
    .await
    .expect("encrypt-column under load");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let encrypt_errors = snapshot(&errors);

    // Encrypted now: the live values are ciphertexts only.
    let live = admin
        .query(
            "SELECT count(*) FILTER (WHERE get_byte(secret::bytea, 0) <> 181),
                    count(*) FILTER (WHERE position('-secret'::bytea IN secret::bytea) > 0)
             FROM accounts",
            &[],
        )
        .await
        .expect("raw values");
    assert_eq!(live[0].get::<_, i64>(0), 0, "every value is a ciphertext");
    assert_eq!(live[0].get::<_, i64>(1), 0, "no plaintext in a live value");

    let decrypted = decrypt_column(
        &mut admin,
        &master,
        &audit,
        "accounts",
        "secret",
        &options,
        &NoObserver,
    )
    .await
    .expect("decrypt-column under load");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let mut expected: HashMap<i64, String> = (1..=ROWS)
        .map(|i| (i, format!("initial-{i}-secret")))
        .collect();
    let (mut writes, mut reads) = (0, 0);
    let mut wrong = Vec::new();
    for handle in workers {
        let log = handle.await.expect("worker");
        expected.extend(log.written);
        writes += log.writes;
        reads += log.reads;
        wrong.extend(log.wrong_reads);
    }
    let errors = snapshot(&errors);
    let _ = shutdown.send(());
    let total_errors: u64 = errors.values().sum();
    eprintln!(
        "migration under load: {writes} writes, {reads} reads, {total_errors} client errors \
         (during encrypt-column: {encrypt_errors:?}; in all: {errors:?}); encrypt: {} rows online, {} at cutover ({} ms lock); decrypt: {} online, {} \
         at cutover ({} ms lock)",
        encrypted.rows_backfilled,
        encrypted.rows_at_cutover,
        encrypted.cutover_lock_held.as_millis(),
        decrypted.rows_backfilled,
        decrypted.rows_at_cutover,
        decrypted.cutover_lock_held.as_millis(),
    );
    assert!(wrong.is_empty(), "wrong reads: {wrong:?}");
    assert!(writes > 100, "the workload ran ({writes} writes)");

    // No lost write: the table (plaintext again) is exactly what the writers' logs say.
    let rows = admin
        .query("SELECT id, secret FROM accounts", &[])
        .await
        .expect("final table");
    let actual: HashMap<i64, String> = rows
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
        .collect();
    let inserted_failed: Vec<_> = actual
        .keys()
        .filter(|id| !expected.contains_key(id))
        .collect();
    assert!(
        inserted_failed.is_empty(),
        "rows nobody logged: {inserted_failed:?}"
    );
    for (id, value) in &expected {
        assert_eq!(actual.get(id), Some(value), "row {id}");
    }
    let column_type: String = admin
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = 'accounts'::regclass AND attname = 'secret'",
            &[],
        )
        .await
        .expect("type")
        .get(0);
    assert_eq!(column_type, "text");

    // The cutovers are invisible through the proxy: no client error at all.
    assert!(errors.is_empty(), "client errors: {errors:?}");
}
