//! The test cluster helpers against a real server.

use std::net::TcpStream;
use std::time::Duration;

use pgseal_testkit::TestCluster;

#[tokio::test]
async fn shared_cluster_answers_and_databases_are_isolated() {
    let cluster = TestCluster::shared();
    assert!(
        std::ptr::eq(cluster, TestCluster::shared()),
        "one per binary"
    );

    let a = cluster.create_database().await;
    let b = cluster.create_database().await;
    assert_ne!(a.name(), b.name());
    assert!(a
        .name()
        .starts_with(&format!("pgseal_test_{}_", std::process::id())));
    assert!(a.url().ends_with(&format!("/{}", a.name())));

    let ca = a.connect().await;
    let cb = b.connect().await;
    let row = ca
        .query_one("select current_database()", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), a.name());

    ca.batch_execute("create table only_here (v int); insert into only_here values (7)")
        .await
        .expect("create in a");
    let v: i32 = ca
        .query_one("select v from only_here", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(v, 7);
    let err = cb
        .query_one("select v from only_here", &[])
        .await
        .expect_err("the table exists only in database a");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
    );
}

#[tokio::test]
async fn statements_are_logged_and_tracked() {
    let cluster = TestCluster::shared();
    let db = cluster.create_database().await;
    let client = db.connect().await;
    client
        .batch_execute("select 1 as pgseal_testkit_marker")
        .await
        .expect("query");
    let log = std::fs::read_to_string(cluster.cluster().log_path()).expect("read log");
    assert!(log.contains("pgseal_testkit_marker"));
    let tracked: i64 = client
        .query_one(
            "select count(*) from pg_stat_statements where query like '%pgseal_testkit_marker%'",
            &[],
        )
        .await
        .expect("pg_stat_statements is installed in every test database")
        .get(0);
    assert!(tracked >= 1);
}

#[tokio::test]
async fn dedicated_cluster_goes_away_when_dropped() {
    let dedicated = TestCluster::start_dedicated(vec![("work_mem".into(), "8MB".into())]);
    let db = dedicated.create_database().await;
    let client = db.connect().await;
    let work_mem: String = client
        .query_one("show work_mem", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(work_mem, "8MB");
    let setting: String = client
        .query_one("show log_statement", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(setting, "all", "defaults still apply");
    drop(client);

    let port = dedicated.cluster().port();
    let dir = dedicated
        .cluster()
        .data_dir()
        .parent()
        .expect("cluster dir")
        .to_owned();
    drop(dedicated);
    assert!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_err()
    );
    assert!(!dir.exists());
}

const SHARED_CHILD_ENV: &str = "PGSEAL_TESTKIT_TEST_SHARED_CHILD";

/// Runs only as the child of `shared_cluster_is_cleaned_up_when_the_test_binary_exits`.
#[test]
fn shared_cluster_child() {
    if std::env::var_os(SHARED_CHILD_ENV).is_none() {
        return;
    }
    let cluster = TestCluster::shared().cluster();
    println!("PORT={}", cluster.port());
    println!("DATA={}", cluster.data_dir().display());
}

#[test]
fn shared_cluster_is_cleaned_up_when_the_test_binary_exits() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "shared_cluster_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SHARED_CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .expect("run child test binary");
    assert!(out.status.success());
    let (mut port, mut dir) = (None, None);
    for line in BufReader::new(out.stdout.as_slice()).lines() {
        let line = line.expect("utf-8 output");
        // The harness prints "test name ... " on the same line as the first report.
        if let Some((_, v)) = line.split_once("PORT=") {
            port = v.trim().parse::<u16>().ok();
        } else if let Some((_, v)) = line.split_once("DATA=") {
            dir = std::path::Path::new(v.trim())
                .parent()
                .map(|p| p.to_owned());
        }
    }
    let port = port.expect("child reported its port");
    let dir = dir.expect("child reported its data dir");
    // The static is never dropped; the watchdog must notice the exit and clean up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let refused =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
                .is_err();
        if refused && !dir.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shared cluster outlived its test binary"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
