//! Password authentication relayed through the proxy: SCRAM-SHA-256, md5 and cleartext.

mod common;

use std::sync::{Arc, Mutex};

use common::{config_for, start_proxy_with};
use pgseal_proxy::PassThrough;
use pgseal_testkit::TestCluster;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

const HBA_LINES: &str = "\
host all scram_user 127.0.0.1/32 scram-sha-256
host all md5_user 127.0.0.1/32 md5
host all plain_user 127.0.0.1/32 password
";

/// A dedicated cluster whose pg_hba requires passwords for the test roles over TCP; `postgres`
/// keeps trust.
async fn cluster_with_passwords() -> TestCluster {
    let cluster = TestCluster::start_dedicated(Vec::new());
    let admin = cluster.connect("postgres").await;
    admin
        .batch_execute(
            "set password_encryption = 'scram-sha-256'; \
             create role scram_user login password 'scram pass'; \
             create role plain_user login password 'plain pass'; \
             set password_encryption = 'md5'; \
             create role md5_user login password 'md5 pass';",
        )
        .await
        .expect("create roles");
    let stored: Vec<(String, String)> = admin
        .query(
            "select rolname::text, left(rolpassword, 13) from pg_authid \
             where rolname in ('scram_user', 'md5_user') order by 1",
            &[],
        )
        .await
        .expect("stored passwords")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(stored[0].1.starts_with("md5"), "{stored:?}");
    assert_eq!(stored[1].1, "SCRAM-SHA-256");

    let hba = cluster.cluster().data_dir().join("pg_hba.conf");
    let existing = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    // First match wins: the role-specific lines go before initdb's trust lines.
    std::fs::write(&hba, format!("{HBA_LINES}{existing}")).expect("write pg_hba.conf");
    let reloaded: bool = admin
        .query_one("select pg_reload_conf()", &[])
        .await
        .expect("reload")
        .get(0);
    assert!(reloaded);
    // The reload is asynchronous; wait until the server uses the new rules.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n: i64 = admin
            .query_one(
                "select count(*) from pg_hba_file_rules where 'scram_user' = any(user_name)",
                &[],
            )
            .await
            .expect("hba rules")
            .get(0);
        let direct = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=scram_user dbname=postgres",
                cluster.cluster().port()
            ),
            NoTls,
        )
        .await;
        if n == 1 && direct.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pg_hba.conf was not reloaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cluster
}

/// Collects everything the proxy logs, at every level.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_methods_authenticate_through_the_proxy() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        // Only the proxy's own logs: the test's client library logs its SQL itself.
        .with_env_filter("pgseal_proxy=trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let cluster = cluster_with_passwords().await;
    let proxy = start_proxy_with(config_for(&cluster), PassThrough).await;
    let port = proxy.addr.port();

    for (user, password, method) in [
        ("scram_user", "scram pass", "scram-sha-256"),
        ("md5_user", "md5 pass", "md5"),
        ("plain_user", "plain pass", "password"),
    ] {
        let conninfo =
            format!("host=127.0.0.1 port={port} user={user} password='{password}' dbname=postgres");
        let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
            .await
            .unwrap_or_else(|e| panic!("{method} login through the proxy: {e}"));
        tokio::spawn(connection);
        let row = client
            .query_one("select current_user::text", &[])
            .await
            .expect("query as the role");
        assert_eq!(row.get::<_, String>(0), user);

        // A wrong password: the server's own error reaches the client.
        let err = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={port} user={user} password=wrong-pw-xyz dbname=postgres"
            ),
            NoTls,
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{method}: a wrong password must fail"));
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{method}: {err}"
        );

        // No password at all: the server asks, the client has none to give.
        let err = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user={user} dbname=postgres"),
            NoTls,
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{method}: a missing password must fail"));
        assert!(
            format!("{err:?}").contains("password missing"),
            "{method}: {err:?}"
        );
    }

    // Trust for the superuser is unchanged.
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        NoTls,
    )
    .await
    .expect("trust login");
    tokio::spawn(connection);
    client.simple_query("select 1").await.expect("query");

    // psql with a password from the environment, over SCRAM.
    let psql_port = port.to_string();
    let mut cmd = cluster.cluster().psql_command();
    let out = tokio::task::spawn_blocking(move || {
        cmd.env("PGPASSWORD", "scram pass")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &psql_port,
                "-U",
                "scram_user",
                "-d",
                "postgres",
            ])
            .args(["-At", "-c", "select current_user"])
            .output()
            .expect("run psql")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "psql over SCRAM: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "scram_user");

    proxy.stop().await;
    let logs = String::from_utf8(logs.0.lock().expect("log lock").clone()).expect("utf8 logs");
    assert!(
        logs.contains("connection closed"),
        "connections are logged: {logs}"
    );
    for secret in [
        "scram pass",
        "md5 pass",
        "plain pass",
        "wrong-pw-xyz",
        "current_user",
    ] {
        assert!(
            !logs.contains(secret),
            "the log mentions {secret:?}: {logs}"
        );
    }
}
