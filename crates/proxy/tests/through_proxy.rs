//! Real clients through the proxy to a real PostgreSQL: tokio-postgres and psql.

mod common;

use std::time::{Duration, Instant};

use common::{connect, connect_with_messages, start_proxy};
use futures_util::{SinkExt, StreamExt};
use pgseal_testkit::TestCluster;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_with_several_statements() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let client = connect(&proxy, db.name()).await;

    let messages = client
        .simple_query(
            "create table t (id int, name text); \
             insert into t values (1, 'one'), (2, 'two'), (3, NULL); \
             select id, name from t order by id; \
             select current_database()",
        )
        .await
        .expect("simple query");
    let rows: Vec<(Option<String>, Option<String>)> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some((
                row.get(0).map(str::to_owned),
                row.try_get(1).ok().flatten().map(str::to_owned),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (Some("1".into()), Some("one".into())),
            (Some("2".into()), Some("two".into())),
            (Some("3".into()), None),
            (Some(db.name().to_owned()), None),
        ]
    );
    let completions: Vec<u64> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(completions, vec![0, 3, 3, 1]);

    // The server saw the statements the client sent, unchanged.
    let direct = db.connect().await;
    let n: i64 = direct
        .query_one("select count(*) from t", &[])
        .await
        .expect("count directly")
        .get(0);
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statement_reused_a_hundred_times() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let client = connect(&proxy, db.name()).await;
    client
        .batch_execute("create table kv (k int primary key, v text)")
        .await
        .expect("create");

    let insert = client
        .prepare("insert into kv values ($1, $2)")
        .await
        .expect("prepare insert");
    let select = client
        .prepare("select v from kv where k = $1")
        .await
        .expect("prepare select");
    for k in 0..100i32 {
        let v = format!("value {k} \u{e9}\u{4e2d}");
        assert_eq!(client.execute(&insert, &[&k, &v]).await.expect("insert"), 1);
        let got: String = client
            .query_one(&select, &[&k])
            .await
            .expect("select")
            .get(0);
        assert_eq!(got, v);
    }
    let n: i64 = client
        .query_one("select count(*) from kv", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_inside_a_transaction_then_rollback_and_recovery() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let client = connect(&proxy, db.name()).await;
    client
        .batch_execute("create table t (id int primary key)")
        .await
        .expect("create");

    client.batch_execute("begin").await.expect("begin");
    client
        .execute("insert into t values (1)", &[])
        .await
        .expect("insert");
    let err = client
        .execute("insert into t values (1)", &[])
        .await
        .expect_err("duplicate key");
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let err = client
        .query("select 1", &[])
        .await
        .expect_err("the transaction is aborted");
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("rollback").await.expect("rollback");

    let n: i64 = client
        .query_one("select count(*) from t", &[])
        .await
        .expect("the session works again")
        .get(0);
    assert_eq!(n, 0, "the rolled-back insert is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_results_arrive_intact() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let client = connect(&proxy, db.name()).await;

    // tokio-postgres asks for every result column in binary.
    let blob: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let row = client
        .query_one(
            "select $1::bytea, 9223372036854775807::int8, 1.5::float8, \
             array[1,2,3]::int4[], 'x'::text, NULL::int4",
            &[&blob],
        )
        .await
        .expect("binary query");
    assert_eq!(row.get::<_, Vec<u8>>(0), blob);
    assert_eq!(row.get::<_, i64>(1), i64::MAX);
    assert_eq!(row.get::<_, f64>(2), 1.5);
    assert_eq!(row.get::<_, Vec<i32>>(3), vec![1, 2, 3]);
    assert_eq!(row.get::<_, String>(4), "x");
    assert_eq!(row.get::<_, Option<i32>>(5), None);

    // Many rows stream through.
    let rows = client
        .query(
            "select g, md5(g::text) from generate_series(1, 20000) g",
            &[],
        )
        .await
        .expect("many rows");
    assert_eq!(rows.len(), 20000);
    assert_eq!(rows[19999].get::<_, i32>(0), 20000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_and_to_stdout() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let client = connect(&proxy, db.name()).await;
    client
        .batch_execute("create table c (id int, name text)")
        .await
        .expect("create");

    let mut data = String::new();
    for i in 0..5000 {
        data.push_str(&format!("{i}\tname {i}\n"));
    }
    let sink = client
        .copy_in::<_, bytes::Bytes>("copy c from stdin")
        .await
        .expect("copy in");
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from(data.clone()))
        .await
        .expect("send copy data");
    let written = sink.as_mut().finish().await.expect("finish copy");
    assert_eq!(written, 5000);

    let stream = client
        .copy_out("copy (select * from c order by id) to stdout")
        .await
        .expect("copy out");
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("copy chunk"));
    }
    assert_eq!(String::from_utf8(out).expect("utf8"), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_and_notices_reach_the_client() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let (client, mut messages) = connect_with_messages(&proxy, db.name()).await;

    client
        .batch_execute("listen pgseal_channel")
        .await
        .expect("listen");
    let direct = db.connect().await;
    direct
        .batch_execute("notify pgseal_channel, 'hello through the proxy'")
        .await
        .expect("notify");
    let notification = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match messages.recv().await {
                Some(AsyncMessage::Notification(n)) => return n,
                Some(_) => continue,
                None => panic!("connection closed before the notification"),
            }
        }
    })
    .await
    .expect("the notification arrives within 10 s");
    assert_eq!(notification.channel(), "pgseal_channel");
    assert_eq!(notification.payload(), "hello through the proxy");

    client
        .batch_execute("do $$ begin raise notice 'notice % through the proxy', 42; end $$")
        .await
        .expect("do block");
    let notice = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match messages.recv().await {
                Some(AsyncMessage::Notice(n)) => return n,
                Some(_) => continue,
                None => panic!("connection closed before the notice"),
            }
        }
    })
    .await
    .expect("the notice arrives");
    assert_eq!(notice.message(), "notice 42 through the proxy");
    assert_eq!(notice.severity(), "NOTICE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_through_the_proxy_cancels_the_query() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let client = connect(&proxy, db.name()).await;

    // The client holds the proxy's key, not the server's.
    let server_pid: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);

    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
    // Give the query time to reach the server.
    let direct = db.connect().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running: i64 = direct
            .query_one(
                "select count(*) from pg_stat_activity where pid = $1 and state = 'active'",
                &[&server_pid],
            )
            .await
            .expect("activity")
            .get(0);
        if running == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the sleep never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token
        .cancel_query(NoTls)
        .await
        .expect("send the cancel request");
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the query ends soon after the cancel")
        .expect("join");
    let err = result.expect_err("the query is cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_with_a_wrong_key_does_nothing() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let client = connect(&proxy, db.name()).await;
    let server_pid: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);

    // A cancel request naming the server's real pid (which the client can learn with SQL)
    // with a guessed key: the proxy knows no such session.
    use tokio::io::AsyncWriteExt;
    let mut raw = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let mut packet = Vec::new();
    packet.extend_from_slice(&16i32.to_be_bytes());
    packet.extend_from_slice(&pgseal_proxy::pgseal_wire::CANCEL_REQUEST_CODE.to_be_bytes());
    packet.extend_from_slice(&server_pid.to_be_bytes());
    packet.extend_from_slice(&1234i32.to_be_bytes());
    raw.write_all(&packet).await.expect("send");
    drop(raw);

    let row = client
        .query_one("select pg_sleep(0.3), 1::int4", &[])
        .await
        .expect("the query is not cancelled");
    assert_eq!(row.get::<_, i32>(1), 1);
}

fn psql(proxy: &common::RunningProxy, dbname: &str, args: &[&str]) -> std::process::Output {
    TestCluster::shared()
        .cluster()
        .psql_command()
        .args(["-h", "127.0.0.1", "-p", &proxy.addr.port().to_string()])
        .args(["-U", "postgres", "-d", dbname])
        .args(args)
        .output()
        .expect("run psql")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_through_the_proxy_including_copy() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let dir = std::env::temp_dir().join(format!("pgseal-proxy-psql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("in.tsv");
    let output = dir.join("out.tsv");
    std::fs::write(&input, "1\talpha\n2\tbeta\n3\t\\N\n").expect("write input");

    let name = db.name().to_owned();
    let (input_s, output_s) = (input.display().to_string(), output.display().to_string());
    let out = tokio::task::spawn_blocking(move || {
        psql(
            &proxy,
            &name,
            &[
                "-c",
                "create table p (id int, name text)",
                "-c",
                &format!("\\copy p from '{input_s}'"),
                "-c",
                &format!("\\copy (select * from p order by id) to '{output_s}'"),
                "-At",
                "-c",
                "select count(*), count(name) from p",
            ],
        )
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3|2"), "unexpected psql output: {stdout}");
    assert_eq!(
        std::fs::read_to_string(&output).expect("read output"),
        "1\talpha\n2\tbeta\n3\t\\N\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_request_is_refused_so_prefer_connects_and_require_fails() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;
    let name = db.name().to_owned();
    let port = proxy.addr.port().to_string();
    let run = move |sslmode: &'static str| {
        let name = name.clone();
        let port = port.clone();
        tokio::task::spawn_blocking(move || {
            TestCluster::shared()
                .cluster()
                .psql_command()
                .env("PGSSLMODE", sslmode)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    &name,
                ])
                .args(["-At", "-c", "select 'connected'"])
                .output()
                .expect("run psql")
        })
    };

    let prefer = run("prefer").await.expect("join");
    assert!(
        prefer.status.success(),
        "sslmode=prefer must connect in plain text: {}",
        String::from_utf8_lossy(&prefer.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&prefer.stdout).trim(), "connected");

    let require = run("require").await.expect("join");
    assert!(!require.status.success(), "sslmode=require must fail");
    let stderr = String::from_utf8_lossy(&require.stderr);
    assert!(
        stderr.contains("SSL"),
        "the failure should name SSL: {stderr}"
    );

    // The proxy is unaffected.
    let again = run("disable").await.expect("join");
    assert!(again.status.success());
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_minor_version_and_options_are_negotiated_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy(cluster).await;

    // Protocol 3.2 with a _pq_ option, as newer clients may send.
    let mut body = Vec::new();
    body.extend_from_slice(&((3i32 << 16) | 2).to_be_bytes());
    for s in ["user", "postgres", "database", db.name(), "_pq_.fancy", "1"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    let mut raw = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    raw.write_all(&packet).await.expect("startup");

    let mut first = [0u8; 5];
    raw.read_exact(&mut first).await.expect("first message");
    assert_eq!(first[0], b'v', "NegotiateProtocolVersion comes first");
    let len = i32::from_be_bytes([first[1], first[2], first[3], first[4]]) as usize;
    let mut rest = vec![0u8; len - 4];
    raw.read_exact(&mut rest).await.expect("body");
    assert_eq!(&rest[..4], &0i32.to_be_bytes(), "newest minor 0");
    assert_eq!(&rest[4..8], &1i32.to_be_bytes(), "one unrecognized option");
    assert_eq!(&rest[8..], b"_pq_.fancy\0");

    // Then the trust login completes: AuthenticationOk ... ReadyForQuery.
    let mut seen = Vec::new();
    loop {
        let mut header = [0u8; 5];
        raw.read_exact(&mut header).await.expect("header");
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        raw.read_exact(&mut body).await.expect("body");
        seen.push(header[0]);
        if header[0] == b'Z' {
            break;
        }
    }
    assert_eq!(seen.first(), Some(&b'R'));
    assert!(seen.contains(&b'K') && seen.contains(&b'S'));
}
