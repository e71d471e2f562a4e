//! Clients that misbehave lose their own connection only.

mod common;

use std::time::Duration;

use common::raw::{self, error_then_close, login, message, query, read_until_ready};
use common::{connect, start_proxy};
use pgseal_testkit::TestCluster;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn assert_still_serving(
    client: &tokio_postgres::Client,
    proxy: &common::RunningProxy,
    db: &str,
) {
    let v: i32 = client
        .query_one("select 41 + 1", &[])
        .await
        .expect("the bystander keeps working")
        .get(0);
    assert_eq!(v, 42);
    let fresh = connect(proxy, db).await;
    let v: i32 = fresh
        .query_one("select 7", &[])
        .await
        .expect("new connections are accepted")
        .get(0);
    assert_eq!(v, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_startup_gets_08p01_and_only_that_client_is_closed() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let bystander = connect(&proxy, db.name()).await;

    let mut bad = login(proxy.addr, db.name()).await;
    bad.write_all(b"Qxxxxxxxxxxxxxxxxxxxxxxx")
        .await
        .expect("send garbage");
    let (code, message) = error_then_close(&mut bad)
        .await
        .expect("an error before the close");
    assert_eq!(code, "08P01");
    assert!(message.starts_with("invalid message:"), "{message}");

    assert_still_serving(&bystander, &proxy, db.name()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_tiny_length_fields_are_refused_without_allocating() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let bystander = connect(&proxy, db.name()).await;

    for header in [
        &b"Q\x7f\xff\xff\xff"[..],
        &b"Q\x00\x00\x00\x02"[..],
        &b"d\x80\x00\x00\x00"[..],
    ] {
        let mut bad = login(proxy.addr, db.name()).await;
        bad.write_all(header).await.expect("send header");
        let (code, message) = error_then_close(&mut bad)
            .await
            .expect("an error before the close");
        assert_eq!(code, "08P01", "{message}");
        assert!(message.contains("length"), "{message}");
    }

    // The same before startup: a 2 GiB startup packet, and an HTTP request.
    for first in [
        &b"\x7f\xff\xff\xff\x00\x03\x00\x00"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut bad = TcpStream::connect(proxy.addr).await.expect("connect");
        bad.write_all(first).await.expect("send");
        let (code, _) = error_then_close(&mut bad)
            .await
            .expect("an error before the close");
        assert_eq!(code, "08P01");
    }

    assert_still_serving(&bystander, &proxy, db.name()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_protocol_version_is_refused() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let mut packet = raw::startup_packet("postgres", db.name());
    packet[4..8].copy_from_slice(&(2i32 << 16).to_be_bytes());
    let mut bad = TcpStream::connect(proxy.addr).await.expect("connect");
    bad.write_all(&packet).await.expect("send");
    let (code, message) = error_then_close(&mut bad).await.expect("an error");
    assert_eq!(code, "0A000");
    assert!(
        message.contains("unsupported frontend protocol 2.0"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_message_then_close() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let bystander = connect(&proxy, db.name()).await;

    let mut bad = login(proxy.addr, db.name()).await;
    bad.write_all(b"Q\x00\x00\x00\x40select 1")
        .await
        .expect("send a partial message");
    bad.shutdown().await.expect("half-close");
    assert_eq!(
        error_then_close(&mut bad).await,
        None,
        "closed without a word"
    );

    // Truncated during startup as well.
    let mut bad = TcpStream::connect(proxy.addr).await.expect("connect");
    bad.write_all(&raw::startup_packet("postgres", db.name())[..10])
        .await
        .expect("send");
    drop(bad);

    assert_still_serving(&bystander, &proxy, db.name()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_message_type_is_passed_to_the_server_which_rejects_it() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let bystander = connect(&proxy, db.name()).await;

    let mut bad = login(proxy.addr, db.name()).await;
    bad.write_all(&message(b'!', b"abc")).await.expect("send");
    let (code, message) = error_then_close(&mut bad)
        .await
        .expect("the server's error");
    assert_eq!(code, "08P01");
    assert!(
        message.contains("invalid frontend message type 33"),
        "the server's own message: {message}"
    );

    assert_still_serving(&bystander, &proxy, db.name()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_mid_query_harms_no_one() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let bystander = connect(&proxy, db.name()).await;

    for _ in 0..5 {
        let mut bad = login(proxy.addr, db.name()).await;
        bad.write_all(&query(
            "select pg_sleep(0.5); select g from generate_series(1, 100000) g",
        ))
        .await
        .expect("send");
        drop(bad);
    }
    assert_still_serving(&bystander, &proxy, db.name()).await;

    // The abandoned sessions end on the server too once it notices.
    let direct = db.connect().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = direct
            .query_one(
                "select count(*) from pg_stat_activity where query like 'select pg_sleep(0.5)%'",
                &[],
            )
            .await
            .expect("activity")
            .get(0);
        if n == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} abandoned sessions remain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_closes_both_sides() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;

    let mut client = login(proxy.addr, db.name()).await;
    client.write_all(&query("select 1")).await.expect("query");
    let tags = read_until_ready(&mut client).await;
    assert_eq!(tags, vec![b'T', b'D', b'C', b'Z']);
    client
        .write_all(&message(b'X', b""))
        .await
        .expect("terminate");
    assert_eq!(error_then_close(&mut client).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let mut tasks = Vec::new();
    for i in 0..20i32 {
        let client = connect(&proxy, db.name()).await;
        tasks.push(tokio::spawn(async move {
            for j in 0..20i32 {
                let v: i32 = client
                    .query_one("select $1::int4 * 1000 + $2::int4", &[&i, &j])
                    .await
                    .expect("query")
                    .get(0);
                assert_eq!(v, i * 1000 + j);
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_gives_the_client_08006() {
    let cluster = TestCluster::shared();
    let mut config = common::config_for(cluster);
    // A port nothing listens on.
    let vacant = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    config.upstream_port = vacant.local_addr().expect("addr").port();
    drop(vacant);
    let proxy = common::start_proxy_with(config, pgseal_proxy::PassThrough).await;
    let err = tokio_postgres::connect(
        &proxy.conninfo("postgres", "postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .err()
    .expect("no server behind the proxy");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::CONNECTION_FAILURE),
        "{err}"
    );
    let db = err.as_db_error().expect("a server-style error");
    assert_eq!(
        db.message(),
        "the pgseal proxy cannot reach the database server"
    );
    assert!(!db.message().contains(&cluster.cluster().host().to_string()));
}

/// Sessions spread over several workers (each new one goes to the least busy) are all closed
/// at shutdown, and the transactions they had open roll back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_closes_sessions_on_every_worker() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let direct = db.connect().await;
    direct
        .batch_execute("create table pending (session int)")
        .await
        .expect("create table");
    let mut config = common::config_for(cluster);
    config.workers = 3;
    let proxy = common::start_proxy_with(config, pgseal_proxy::PassThrough).await;
    let addr = proxy.addr;
    let mut clients = Vec::new();
    for session in 0..7 {
        let client = connect(&proxy, db.name()).await;
        client
            .batch_execute(&format!("begin; insert into pending values ({session})"))
            .await
            .expect("open a transaction through the proxy");
        clients.push(client);
    }
    let backends: i64 = direct
        .query_one(
            "select count(*) from pg_stat_activity \
             where datname = current_database() and state = 'idle in transaction'",
            &[],
        )
        .await
        .expect("count sessions")
        .get(0);
    assert_eq!(backends, 7, "every session reached the server");

    proxy.stop().await;
    for client in &clients {
        let err = client
            .simple_query("select 1")
            .await
            .expect_err("the session was closed");
        assert!(err.is_closed() || err.code().is_none(), "{err}");
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
    // The servers saw their clients go and rolled back.
    let mut left = i64::MAX;
    for _ in 0..100 {
        left = direct
            .query_one(
                "select count(*) from pg_stat_activity \
                 where datname = current_database() and pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("count sessions")
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "every server session ended");
    let rows: i64 = direct
        .query_one("select count(*) from pending", &[])
        .await
        .expect("count rows")
        .get(0);
    assert_eq!(rows, 0, "nothing of the open transactions was committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_max_message_len_end_the_session_in_either_direction() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let mut config = common::config_for(cluster);
    config.max_message_len = pgseal_proxy::MIN_MESSAGE_LEN_LIMIT;
    let proxy = common::start_proxy_with(config, pgseal_proxy::PassThrough).await;

    // Client to server: a parameter larger than the limit.
    let client = connect(&proxy, db.name()).await;
    let big = vec![7u8; 100_000];
    let err = client
        .query_one("select length($1::bytea)", &[&big])
        .await
        .expect_err("the message is too large for this proxy");
    let db_err = err.as_db_error().expect("the proxy's error");
    assert_eq!(db_err.code().code(), "08P01");
    assert!(
        db_err.message().contains("exceeds the limit"),
        "{}",
        db_err.message()
    );

    // Server to client: a row larger than the limit.
    let client = connect(&proxy, db.name()).await;
    let err = client
        .query_one("select repeat('x', 100000)", &[])
        .await
        .expect_err("the row is too large for this proxy");
    let db_err = err.as_db_error().expect("the proxy's error");
    assert_eq!(db_err.code().code(), "08P01");
    assert!(db_err.hint().is_some_and(|h| h.contains("max_message_len")));

    // Just under the limit passes.
    let client = connect(&proxy, db.name()).await;
    let n: i32 = client
        .query_one("select length(repeat('x', 60000))", &[])
        .await
        .expect("fits")
        .get(0);
    assert_eq!(n, 60000);
}
