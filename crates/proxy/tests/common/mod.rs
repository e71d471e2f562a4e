//! Helpers shared by the proxy's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use pgseal_proxy::{HookFactory, PassThrough, Proxy, ProxyConfig};
use pgseal_testkit::TestCluster;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, NoTls};

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
