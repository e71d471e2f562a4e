//! The seam for the encryption layer: hooks that observe, rewrite, reject and misbehave; and
//! the session limits.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config_for, connect, start_proxy_with};
use pgseal_proxy::pgseal_wire::backend::{ErrorFields, TransactionStatus};
use pgseal_proxy::pgseal_wire::frontend::Query;
use pgseal_proxy::pgseal_wire::{Frame, FrontendMessage};
use pgseal_proxy::{BackendVerdict, FrontendVerdict, MessageHook, PassThrough, SessionState};
use pgseal_testkit::TestCluster;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

const MARKER: &str = "forbidden_marker";

/// Rejects any `Query` or `Parse` whose SQL mentions [`MARKER`]; rewrites `select 'swap me'`.
struct Guard;

impl MessageHook for Guard {
    fn frontend(&mut self, _session: &SessionState, frame: Frame) -> FrontendVerdict {
        let sql = match FrontendMessage::decode(&frame) {
            Ok(FrontendMessage::Query(q)) => Some(q.sql),
            Ok(FrontendMessage::Parse(p)) => Some(p.sql),
            _ => None,
        };
        match sql {
            Some(sql) if sql.contains(MARKER) => FrontendVerdict::Reject(
                ErrorFields::error("42501", "statement rejected by the test hook")
                    .hint("remove the marker"),
            ),
            Some(sql) if sql == "select 'swap me'" => {
                let mut body = bytes::BytesMut::new();
                Query {
                    sql: "select 'swapped'".to_owned(),
                }
                .encode(&mut body)
                .expect("encode");
                // encode wrote tag and length; rebuild the frame from its body.
                let body = body.split_off(5).freeze();
                FrontendVerdict::Replace(vec![Frame::new(Query::TAG, body)])
            }
            _ => FrontendVerdict::Forward(frame),
        }
    }

    fn backend(&mut self, _session: &SessionState, frame: Frame) -> BackendVerdict {
        BackendVerdict::Forward(frame)
    }
}

async fn assert_rejected<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>) {
    let err = result.expect_err("rejected by the hook");
    let db = err.as_db_error().expect("a server-style error");
    assert_eq!(db.code(), &SqlState::INSUFFICIENT_PRIVILEGE);
    assert_eq!(db.message(), "statement rejected by the test hook");
    assert_eq!(db.hint(), Some("remove the marker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_messages_fail_like_server_errors_and_the_session_recovers() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy_with(config_for(cluster), |_: &SessionState| Guard).await;
    let client = connect(&proxy, db.name()).await;
    client
        .batch_execute("create table t (id int)")
        .await
        .expect("create");

    // Simple protocol.
    assert_rejected(client.simple_query(&format!("select '{MARKER}'")).await).await;
    // Extended protocol: the Parse of the prepare is rejected.
    assert_rejected(
        client
            .prepare(&format!("select $1::text, '{MARKER}'"))
            .await,
    )
    .await;
    assert_rejected(client.query(&format!("select '{MARKER}'"), &[]).await).await;
    let v: i32 = client
        .query_one("select 5", &[])
        .await
        .expect("the session recovers")
        .get(0);
    assert_eq!(v, 5);

    // Rewrite.
    let rows = client
        .simple_query("select 'swap me'")
        .await
        .expect("rewritten query");
    let swapped = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(swapped.as_deref(), Some("swapped"));

    // Inside a transaction block the rejection fails the transaction, as a server error does.
    client.batch_execute("begin").await.expect("begin");
    client
        .execute("insert into t values (1)", &[])
        .await
        .expect("insert");
    assert_rejected(client.simple_query(&format!("select '{MARKER}'")).await).await;
    let err = client
        .query("select 1", &[])
        .await
        .expect_err("aborted transaction");
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("rollback").await.expect("rollback");
    let n: i64 = client
        .query_one("select count(*) from t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);

    // A multi-statement simple query is rejected whole: nothing of it runs.
    assert_rejected(
        client
            .simple_query(&format!("insert into t values (2); select '{MARKER}'"))
            .await,
    )
    .await;
    let n: i64 = client
        .query_one("select count(*) from t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);
}

/// What a hook saw of the session at each client message.
#[derive(Debug, Clone)]
struct Seen {
    time_zone: Option<String>,
    date_style: Option<String>,
    client_encoding: Option<String>,
    status: TransactionStatus,
    user: Option<String>,
}

struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl MessageHook for Recorder {
    fn frontend(&mut self, session: &SessionState, frame: Frame) -> FrontendVerdict {
        if frame.tag == Query::TAG {
            self.0.lock().expect("test lock").push(Seen {
                time_zone: session.time_zone().map(str::to_owned),
                date_style: session.date_style().map(str::to_owned),
                client_encoding: session.client_encoding().map(str::to_owned),
                status: session.transaction_status(),
                user: session.user().map(str::to_owned),
            });
        }
        FrontendVerdict::Forward(frame)
    }

    fn backend(&mut self, _session: &SessionState, frame: Frame) -> BackendVerdict {
        BackendVerdict::Forward(frame)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_see_parameter_status_and_transaction_state() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let proxy = start_proxy_with(config_for(cluster), move |_: &SessionState| {
        Recorder(Arc::clone(&log))
    })
    .await;
    let client = connect(&proxy, db.name()).await;
    client
        .batch_execute("set timezone = 'Asia/Tokyo'")
        .await
        .expect("set");
    client
        .batch_execute("set datestyle = 'German, DMY'")
        .await
        .expect("set");
    client.batch_execute("begin").await.expect("begin");
    client.batch_execute("commit").await.expect("commit");

    let seen = seen.lock().expect("test lock").clone();
    assert_eq!(seen.len(), 4);
    assert!(seen[0].time_zone.is_some(), "reported at start-up");
    assert_ne!(seen[0].time_zone.as_deref(), Some("Asia/Tokyo"));
    assert_eq!(seen[1].time_zone.as_deref(), Some("Asia/Tokyo"));
    assert_eq!(seen[2].date_style.as_deref(), Some("German, DMY"));
    assert_eq!(seen[0].client_encoding.as_deref(), Some("UTF8"));
    assert_eq!(seen[2].status, TransactionStatus::Idle);
    assert_eq!(seen[3].status, TransactionStatus::InTransaction);
    assert_eq!(seen[0].user.as_deref(), Some("postgres"));
}

/// Panics on a marker, as a buggy hook might.
struct Panicky;

impl MessageHook for Panicky {
    fn frontend(&mut self, _session: &SessionState, frame: Frame) -> FrontendVerdict {
        if let Ok(FrontendMessage::Query(q)) = FrontendMessage::decode(&frame) {
            assert!(
                !q.sql.contains("panic_marker"),
                "test hook panics on purpose"
            );
        }
        FrontendVerdict::Forward(frame)
    }

    fn backend(&mut self, _session: &SessionState, frame: Frame) -> BackendVerdict {
        BackendVerdict::Forward(frame)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_session_does_not_take_down_the_proxy() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let proxy = start_proxy_with(config_for(cluster), |_: &SessionState| Panicky).await;
    let bystander = connect(&proxy, db.name()).await;
    let victim = connect(&proxy, db.name()).await;

    let err = victim
        .simple_query("select 'panic_marker'")
        .await
        .expect_err("the session dies");
    assert!(err.is_closed() || err.code().is_none(), "{err}");

    let v: i32 = bystander
        .query_one("select 1", &[])
        .await
        .expect("the bystander is unaffected")
        .get(0);
    assert_eq!(v, 1);
    let fresh = connect(&proxy, db.name()).await;
    fresh
        .simple_query("select 2")
        .await
        .expect("still accepting");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_time_out_but_long_queries_do_not() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let mut config = config_for(cluster);
    config.idle_timeout = Some(Duration::from_millis(400));
    let proxy = start_proxy_with(config, PassThrough).await;
    let client = connect(&proxy, db.name()).await;

    // A query that runs longer than the idle timeout is not idle.
    client
        .simple_query("select pg_sleep(1)")
        .await
        .expect("a long query survives the idle timeout");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let err = client
        .simple_query("select 1")
        .await
        .expect_err("the idle session was closed");
    assert!(
        err.is_closed() || err.code() == Some(&SqlState::from_code("57P05")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_extra_clients_with_53300() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let mut config = config_for(cluster);
    config.max_connections = 1;
    let proxy = start_proxy_with(config, PassThrough).await;
    let first = connect(&proxy, db.name()).await;
    let err = tokio_postgres::connect(&proxy.conninfo("postgres", db.name()), NoTls)
        .await
        .err()
        .expect("the second client is refused");
    assert_eq!(err.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));
    first
        .simple_query("select 1")
        .await
        .expect("the first works");
    drop(first);
    // The slot frees once the first session ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio_postgres::connect(&proxy.conninfo("postgres", db.name()), NoTls).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "slot never freed: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
