//! Starts real clusters from the system's PostgreSQL binaries.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgseal_localpg::{Cluster, ClusterOptions};

fn psql(cluster: &Cluster, db: &str, sql: &str) -> String {
    let out = cluster
        .psql_command()
        .args(["-d", db, "-tA", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn refuses_connections(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_err()
}

fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process that is gone or a zombie no longer serves anything.
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn postmaster_pid(data_dir: &Path) -> u32 {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .expect("read postmaster.pid")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid in postmaster.pid")
}

#[test]
fn starts_answers_queries_and_stop_removes_everything() {
    let cluster = Cluster::start(
        ClusterOptions::new()
            .setting("log_statement", "all")
            .setting("application_name", "localpg test"),
    )
    .expect("start cluster");
    assert_eq!(cluster.host(), "127.0.0.1");
    assert!(cluster.version() >= 10);
    assert!(cluster.bin_dir().join("initdb").is_file());
    assert!(cluster.data_dir().join("PG_VERSION").is_file());
    assert_eq!(
        cluster.url("app db"),
        format!("postgres://postgres@127.0.0.1:{}/app%20db", cluster.port())
    );
    assert_eq!(psql(&cluster, "postgres", "select 40 + 2"), "42");
    assert_eq!(psql(&cluster, "postgres", "show log_statement"), "all");
    assert_eq!(psql(&cluster, "postgres", "show fsync"), "off");
    assert_eq!(
        psql(&cluster, "postgres", "show listen_addresses"),
        "127.0.0.1"
    );
    assert_eq!(psql(&cluster, "postgres", "show server_encoding"), "UTF8");
    assert_eq!(
        psql(&cluster, "postgres", "show unix_socket_directories"),
        cluster.socket_dir().to_string_lossy()
    );
    // The unix socket works too.
    let via_socket = cluster
        .psql_command()
        .env("PGHOST", cluster.socket_dir())
        .args(["-tA", "-c", "select current_user"])
        .output()
        .expect("psql over the socket");
    assert_eq!(
        String::from_utf8_lossy(&via_socket.stdout).trim(),
        "postgres"
    );
    let log = std::fs::read_to_string(cluster.log_path()).expect("read log");
    assert!(
        log.contains("select 40 + 2"),
        "log_statement=all applies: {log}"
    );

    let port = cluster.port();
    let dir = cluster.data_dir().parent().expect("cluster dir").to_owned();
    let pid = postmaster_pid(cluster.data_dir());
    cluster.stop().expect("stop");
    assert!(refuses_connections(port));
    assert!(!dir.exists(), "{} must be removed", dir.display());
    assert!(process_gone(pid));
}

#[test]
fn drop_shuts_down_and_removes_the_directory() {
    let cluster = Cluster::start(ClusterOptions::new()).expect("start cluster");
    let port = cluster.port();
    let dir: PathBuf = cluster.data_dir().parent().expect("cluster dir").to_owned();
    let pid = postmaster_pid(cluster.data_dir());
    assert!(!refuses_connections(port));
    drop(cluster);
    assert!(refuses_connections(port));
    assert!(!dir.exists());
    assert!(process_gone(pid));
}

#[test]
fn clusters_are_independent() {
    let a = Cluster::start(ClusterOptions::new()).expect("start a");
    let b = Cluster::start(ClusterOptions::new()).expect("start b");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());
    psql(&a, "postgres", "create database only_in_a");
    assert_eq!(
        psql(
            &a,
            "postgres",
            "select count(*) from pg_database where datname = 'only_in_a'"
        ),
        "1"
    );
    assert_eq!(
        psql(
            &b,
            "postgres",
            "select count(*) from pg_database where datname = 'only_in_a'"
        ),
        "0"
    );
}

const ABORT_CHILD_ENV: &str = "PGSEAL_LOCALPG_TEST_ABORTING_OWNER";

/// Runs only as the child of `watchdog_cleans_up_after_an_owner_that_aborts`: starts a cluster,
/// reports it, and dies without running any destructor.
#[test]
fn aborting_owner_child() {
    if std::env::var_os(ABORT_CHILD_ENV).is_none() {
        return;
    }
    let cluster = Cluster::start(ClusterOptions::new()).expect("start cluster");
    println!("PORT={}", cluster.port());
    println!("DATA={}", cluster.data_dir().display());
    println!("PID={}", postmaster_pid(cluster.data_dir()));
    std::process::abort();
}

#[test]
fn watchdog_cleans_up_after_an_owner_that_aborts() {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "aborting_owner_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ABORT_CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child test process");
    let stdout = child.stdout.take().expect("piped stdout");
    let (mut port, mut data, mut pid) = (None, None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        // The harness prints "test name ... " on the same line as the first report.
        let value = |key: &str| line.split_once(key).map(|(_, v)| v.trim().to_owned());
        if let Some(v) = value("PORT=") {
            port = v.parse::<u16>().ok();
        } else if let Some(v) = value("DATA=") {
            data = Some(PathBuf::from(v));
        } else if let Some(v) = value("PID=") {
            pid = v.parse::<u32>().ok();
        }
    }
    let status = child.wait().expect("wait for child");
    assert!(!status.success(), "the child must have aborted");
    let port = port.expect("child reported its port");
    let data = data.expect("child reported its data dir");
    let pid = pid.expect("child reported the postmaster pid");
    let dir = data.parent().expect("cluster dir").to_owned();

    eventually("the orphaned server stops", || {
        refuses_connections(port) && process_gone(pid)
    });
    eventually("the cluster directory is removed", || !dir.exists());
}
