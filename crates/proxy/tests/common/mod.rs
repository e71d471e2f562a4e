//! Helpers shared by the proxy's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use pgseal::{AuditLog, MasterKey, MasterKeyring};
use pgseal_crypto::{DataKey, DataKeyId, KeyPurpose};
use pgseal_proxy::{
    serve_encrypted, EncryptionOptions, HookFactory, PassThrough, Proxy, ProxyConfig, ProxyError,
};
use pgseal_testkit::{TestCluster, TestDatabase};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, NoTls, SimpleQueryMessage};

/// A proxy serving in the background; stops when dropped.
pub struct RunningProxy {
    pub addr: SocketAddr,
    stop: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl RunningProxy {
    /// A connection string through the proxy.
    pub fn conninfo(&self, user: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={dbname}",
            self.addr.port()
        )
    }

    /// Stops the proxy and waits for it.
    pub async fn stop(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            task.await.expect("the proxy task ends cleanly");
        }
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

pub fn config_for(cluster: &TestCluster) -> ProxyConfig {
    ProxyConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        cluster.cluster().host(),
        cluster.cluster().port(),
    )
}

pub async fn start_proxy(cluster: &TestCluster) -> RunningProxy {
    start_proxy_with(config_for(cluster), PassThrough).await
}

pub async fn start_proxy_with<F: HookFactory>(config: ProxyConfig, factory: F) -> RunningProxy {
    let proxy = Proxy::bind_with_hooks(config, factory)
        .await
        .expect("bind the proxy");
    let addr = proxy.local_addr();
    let stop = Arc::new(Notify::new());
    let stopped = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        proxy
            .serve(stopped.notified())
            .await
            .expect("the proxy serves until stopped");
    });
    RunningProxy {
        addr,
        stop,
        task: Some(task),
    }
}

/// Connects through the proxy as `postgres`; the connection task runs in the background.
pub async fn connect(proxy: &RunningProxy, dbname: &str) -> Client {
    connect_as(&proxy.conninfo("postgres", dbname)).await
}

pub async fn connect_as(conninfo: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect through the proxy ({conninfo}): {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Connects through the proxy and returns the asynchronous messages (notices, notifications)
/// on a channel.
pub async fn connect_with_messages(
    proxy: &RunningProxy,
    dbname: &str,
) -> (Client, tokio::sync::mpsc::UnboundedReceiver<AsyncMessage>) {
    let (client, mut connection) =
        tokio_postgres::connect(&proxy.conninfo("postgres", dbname), NoTls)
            .await
            .expect("connect through the proxy");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(message) => {
                    if tx.send(message).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    (client, rx)
}

/// A test database with pgseal installed under a fresh master key, before any proxy runs.
pub struct Installed {
    /// The database.
    pub db: TestDatabase,
    /// A direct (unproxied) connection to it.
    pub admin: Client,
    /// The master keyring pgseal was installed with.
    pub master: MasterKeyring,
}

/// Creates a database on the shared cluster, installs pgseal with a freshly generated master
/// key, then runs `ddl` directly (so encrypted columns are created without the proxy).
pub async fn install(ddl: &str) -> Installed {
    let db = TestCluster::shared().create_database().await;
    let mut admin = db.connect().await;
    let master = MasterKeyring::new(MasterKey::generate(), Vec::new());
    pgseal::init(&mut admin, &master, &AuditLog::disabled())
        .await
        .expect("install pgseal");
    admin.batch_execute(ddl).await.expect("schema");
    Installed { db, admin, master }
}

/// An independent copy of a keyring's current master key: the proxy gets its own, as it would
/// in production, while the test keeps the original to wrap keys with.
pub fn clone_master(ring: &MasterKeyring) -> MasterKeyring {
    MasterKeyring::new(
        MasterKey::from_base64("test", &ring.current().expose_base64()).expect("valid key"),
        Vec::new(),
    )
}

/// The encrypting proxy (`serve_encrypted`) in front of a test database; stops when dropped.
pub struct EncryptingProxy {
    /// The database behind the proxy.
    pub db: TestDatabase,
    /// Where the proxy listens.
    pub addr: SocketAddr,
    /// The master keyring pgseal was installed with (the proxy holds a copy).
    pub master: MasterKeyring,
    stop: Arc<Notify>,
    task: JoinHandle<Result<(), ProxyError>>,
}

impl Drop for EncryptingProxy {
    fn drop(&mut self) {
        self.stop.notify_one();
        self.task.abort();
    }
}

impl EncryptingProxy {
    /// Starts the encrypting proxy for `db`, reloading its catalogue every `reload_interval`,
    /// and returns once it listens.
    pub async fn start(db: TestDatabase, master: MasterKeyring, reload_interval: Duration) -> Self {
        let options = EncryptionOptions {
            control_url: db.url().to_owned(),
            master: clone_master(&master),
            audit: AuditLog::disabled(),
            reload_interval,
        };
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve_encrypted(
            config_for(TestCluster::shared()),
            options,
            move |addr| {
                let _ = tx.send(addr);
            },
            async move { stopped.notified().await },
        ));
        let addr = rx.await.expect("the proxy is ready");
        Self {
            db,
            addr,
            master,
            stop,
            task,
        }
    }

    /// A client connected through the proxy as `postgres`; its connection runs in the
    /// background.
    pub async fn proxied(&self) -> Client {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres dbname={}",
            self.addr.port(),
            self.db.name()
        );
        let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
            .await
            .expect("connect through the encrypting proxy");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl EncryptingProxy {
    /// The id pgseal gave `table.column`.
    pub async fn column_id(&self, table: &str, column: &str) -> u32 {
        let direct = self.db.connect().await;
        let id: i32 = direct
            .query_one(
                "SELECT column_id::int4 FROM pgseal.columns \
                 WHERE table_name = $1 AND column_name = $2",
                &[&table, &column],
            )
            .await
            .expect("column id")
            .get(0);
        u32::try_from(id).expect("positive")
    }

    /// Rotates a column's data key behind the proxy's back, as another pgseal process would:
    /// in one transaction, a new active version wrapped under the master key and the previous
    /// version demoted to decrypt-only. Returns the new version.
    pub async fn rotate_data_key(&self, column_id: u32, purpose: KeyPurpose) -> u32 {
        let store_purpose = match purpose {
            KeyPurpose::Value => pgseal_store::PURPOSE_VALUE,
            KeyPurpose::Index => pgseal_store::PURPOSE_INDEX,
        };
        let mut direct = self.db.connect().await;
        let tx = direct.transaction().await.expect("tx");
        let version = pgseal_store::next_key_version(&tx, column_id, store_purpose)
            .await
            .expect("next version");
        pgseal_store::set_key_state(
            &tx,
            column_id,
            store_purpose,
            version - 1,
            pgseal_store::KeyState::DecryptOnly,
        )
        .await
        .expect("demote");
        let id = DataKeyId {
            column_id,
            purpose,
            version,
        };
        pgseal_store::insert_data_key(
            &tx,
            &pgseal_store::NewDataKey {
                column_id,
                purpose: store_purpose,
                version,
                state: pgseal_store::KeyState::Active,
                wrapped_key: pgseal_crypto::wrap_data_key(
                    self.master.current(),
                    id,
                    &DataKey::generate(),
                ),
                master_key_fingerprint: self.master.current().fingerprint().to_string(),
            },
        )
        .await
        .expect("new data key");
        tx.commit().await.expect("commit rotation");
        version
    }
}

/// [`install`] with `ddl`, then [`EncryptingProxy::start`] with `reload_interval`.
pub async fn encrypting_proxy(ddl: &str, reload_interval: Duration) -> EncryptingProxy {
    let Installed { db, master, .. } = install(ddl).await;
    EncryptingProxy::start(db, master, reload_interval).await
}

/// The rows of a simple-protocol query, as text.
pub async fn simple_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Raw protocol helpers for tests that misbehave on purpose.
pub mod raw {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A startup packet for `user` and `database`, protocol 3.0.
    pub fn startup_packet(user: &str, database: &str) -> Vec<u8> {
        let mut body = 196_608i32.to_be_bytes().to_vec();
        for s in ["user", user, "database", database] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = i32::try_from(body.len() + 4)
            .expect("small")
            .to_be_bytes()
            .to_vec();
        packet.extend_from_slice(&body);
        packet
    }

    /// A tagged message.
    pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(i32::try_from(body.len() + 4).expect("small")).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// A simple `Query`.
    pub fn query(sql: &str) -> Vec<u8> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        message(b'Q', &body)
    }

    /// Reads one tagged message; `None` at end of stream. Panics after 10 s of silence.
    pub async fn read_message(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
        tokio::time::timeout(Duration::from_secs(10), async {
            let mut header = [0u8; 5];
            if stream.read_exact(&mut header).await.is_err() {
                return None;
            }
            let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let len = usize::try_from(len).expect("sane length") - 4;
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body).await.ok()?;
            Some((header[0], body))
        })
        .await
        .expect("the peer answers or closes within 10 s")
    }

    /// Reads messages until `ReadyForQuery`, returning their tags.
    pub async fn read_until_ready(stream: &mut TcpStream) -> Vec<u8> {
        let mut tags = Vec::new();
        while let Some((tag, _)) = read_message(stream).await {
            tags.push(tag);
            if tag == b'Z' {
                return tags;
            }
        }
        panic!("connection closed before ReadyForQuery; got {tags:?}");
    }

    /// Logs in (trust) through `addr` and waits for the first `ReadyForQuery`.
    pub async fn login(addr: SocketAddr, database: &str) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(&startup_packet("postgres", database))
            .await
            .expect("startup");
        let tags = read_until_ready(&mut stream).await;
        assert_eq!(tags.first(), Some(&b'R'), "authentication first");
        stream
    }

    /// The SQLSTATE and message of an `ErrorResponse` body.
    pub fn error_fields(body: &[u8]) -> (String, String) {
        let mut code = String::new();
        let mut message = String::new();
        for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
            let value = String::from_utf8_lossy(&field[1..]).into_owned();
            match field[0] {
                b'C' => code = value,
                b'M' => message = value,
                _ => {}
            }
        }
        (code, message)
    }

    /// Reads until the stream ends, returning the error of the last `ErrorResponse`, if any.
    pub async fn error_then_close(stream: &mut TcpStream) -> Option<(String, String)> {
        let mut last = None;
        while let Some((tag, body)) = read_message(stream).await {
            if tag == b'E' {
                last = Some(error_fields(&body));
            }
        }
        last
    }
}
