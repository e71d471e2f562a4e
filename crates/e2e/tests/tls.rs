//! Real clients over TLS through the encrypting proxy, with TLS on both legs: psql
//! (`sslmode=verify-full` and `require`, libpq's default `channel_binding=prefer`), psycopg 3
//! (libpq 17+'s direct TLS too), node `pg` with `ssl: { ca }`, and tokio-postgres with pgseal's
//! rustls connector. The server has `ssl = on` with a certificate from a test CA; the proxy
//! checks it with `verify-full`, for client sessions and for its control connection alike, and
//! requires TLS from clients. Logins use SCRAM-SHA-256, which the proxy terminates.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{repo_root, require_tool, run_checked, tool_runs};
use pgseal::{init, AuditLog, MasterKey, MasterKeyring};
use pgseal_proxy::{postgres_config, serve_encrypted, ClientTls, EncryptionOptions, ProxyConfig};
use pgseal_testkit::TestCluster;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::sync::oneshot;

const PASSWORD: &str = "tls pass";
const DATABASE: &str = "tls_e2e";

/// A CA and the PEM certificate and key it issued for `names`; the CA goes to
/// `dir/<name>-ca.pem`.
fn issue(dir: &Path, name: &str, names: &[&str]) -> (PathBuf, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .expect("params");
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    let ca = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca, ca_cert.pem()).expect("write CA");
    (ca, cert.pem(), key.serialize_pem())
}

struct Setup {
    cluster: TestCluster,
    _dir: tempfile::TempDir,
    proxy_ca: PathBuf,
    stranger_ca: PathBuf,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Setup {
    /// A libpq connection string through the proxy as the SCRAM role.
    fn conninfo(&self, tls: &str) -> String {
        format!(
            "host=localhost port={} dbname={DATABASE} user=app {tls}",
            self.addr.port()
        )
    }

    fn verify_full(&self) -> String {
        self.conninfo(&format!(
            "sslmode=verify-full sslrootcert={}",
            self.proxy_ca.display()
        ))
    }
}

/// The cluster with TLS and a SCRAM role `app`, a database with pgseal and an encrypted column,
/// and the encrypting proxy in front of it: upstream `verify-full` against the server's CA, its
/// own certificate for `localhost`, TLS required.
async fn start() -> Setup {
    let cluster = TestCluster::start_dedicated(Vec::new());
    let dir = tempfile::tempdir().expect("temp dir");
    let port = cluster.cluster().port();
    let hba = cluster.cluster().data_dir().join("pg_hba.conf");
    let existing = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    // `app` must use SCRAM, over TLS or not; first match wins.
    std::fs::write(
        &hba,
        format!("host all app 127.0.0.1/32 scram-sha-256\nhost all app ::1/128 scram-sha-256\n{existing}"),
    )
    .expect("write pg_hba.conf");
    let (db_ca, db_cert, db_key) = issue(dir.path(), "db", &["localhost"]);
    cluster
        .cluster()
        .enable_tls(&db_cert, &db_key)
        .expect("turn TLS on in the test cluster");

    let admin = cluster.connect("postgres").await;
    admin
        .batch_execute(&format!(
            "set password_encryption = 'scram-sha-256'; \
             create role app login password '{PASSWORD}'"
        ))
        .await
        .expect("role");
    admin
        .batch_execute(&format!("create database {DATABASE} owner app"))
        .await
        .expect("database");
    let mut client = cluster.connect(DATABASE).await;
    let master = MasterKeyring::new(MasterKey::generate(), Vec::new());
    let audit = AuditLog::disabled();
    init(&mut client, &master, &audit)
        .await
        .expect("pgseal init");
    client
        .batch_execute(
            "create table people (id int primary key, phone pgseal.text); \
             alter table people owner to app; grant usage on schema pgseal to app",
        )
        .await
        .expect("schema");

    let (proxy_ca, proxy_cert, proxy_key) = issue(dir.path(), "proxy", &["localhost"]);
    let cert = dir.path().join("proxy.crt");
    let key = dir.path().join("proxy.key");
    std::fs::write(&cert, proxy_cert).expect("write cert");
    std::fs::write(&key, proxy_key).expect("write key");
    let (stranger_ca, _, _) = issue(dir.path(), "stranger", &["localhost"]);

    // The control connection logs in as postgres (trust) over the same verify-full TLS.
    let upstream = format!(
        "postgres://postgres@localhost:{port}/{DATABASE}?sslmode=verify-full&sslrootcert={}",
        db_ca.display()
    );
    let mut config =
        ProxyConfig::with_upstream_url("127.0.0.1:0".parse().expect("addr"), &upstream)
            .expect("upstream URL");
    config.client_tls = Some(ClientTls::load(&cert, &key).expect("proxy certificate"));
    config.require_tls = true;
    config.startup_timeout = Duration::from_secs(30);
    let options = EncryptionOptions {
        control_url: upstream,
        master,
        audit,
        reload_interval: Duration::from_secs(1),
    };
    let (ready, listening) = oneshot::channel::<SocketAddr>();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut task = tokio::spawn(serve_encrypted(
        config,
        options,
        move |addr| {
            let _ = ready.send(addr);
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let addr = tokio::select! {
        addr = listening => addr.expect("the proxy reports its address"),
        ended = &mut task => panic!("the proxy stopped before serving: {ended:?}"),
    };
    Setup {
        cluster,
        _dir: dir,
        proxy_ca,
        stranger_ca,
        addr,
        stop: Some(stop),
    }
}

fn psql(setup: &Setup, conninfo: &str, sql: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(setup.cluster.cluster().psql_command());
    cmd.env("PGPASSWORD", PASSWORD)
        .env_remove("PGSSLMODE")
        .env_remove("PGCHANNELBINDING")
        .args(["-q", "-A", "-t", "-d", conninfo, "-c", sql]);
    cmd
}

/// What the server stores for row `id`: must be a ciphertext, not the plaintext.
async fn assert_stored_encrypted(setup: &Setup, id: i32, plaintext: &str) {
    let direct = setup.cluster.connect(DATABASE).await;
    let stored: Vec<u8> = direct
        .query_one("select phone::bytea from people where id = $1", &[&id])
        .await
        .expect("stored row")
        .get(0);
    assert!(
        !stored
            .windows(plaintext.len())
            .any(|w| w == plaintext.as_bytes()),
        "row {id} is stored in plaintext"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_over_tls_on_both_legs() {
    if !require_tool(tool_runs("psql", &["--version"]).await, "psql") {
        return;
    }
    let setup = start().await;

    // psql, verify-full against the proxy's CA; SCRAM with channel_binding=prefer (default).
    let out = run_checked(
        &mut psql(
            &setup,
            &setup.verify_full(),
            "insert into people values (1, '+44 20 7946 0018'); \
             select phone from people where id = 1; \
             select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        ),
        "psql sslmode=verify-full",
    )
    .await;
    // The row decrypted, and the server sees the proxy's session on TLS.
    assert_eq!(out, "+44 20 7946 0018\nt\n");
    assert_stored_encrypted(&setup, 1, "+44 20 7946 0018").await;

    // sslmode=require (no certificate check on the client's side).
    let out = run_checked(
        &mut psql(
            &setup,
            &setup.conninfo("sslmode=require"),
            "select phone from people where id = 1",
        ),
        "psql sslmode=require",
    )
    .await;
    assert_eq!(out, "+44 20 7946 0018\n");

    // A plain-text client is refused by the proxy, with the fix in the message.
    let out = psql(&setup, &setup.conninfo("sslmode=disable"), "select 1")
        .output()
        .await
        .expect("run psql");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("accepts only TLS"), "{stderr}");
    assert!(stderr.contains("sslmode=require"), "{stderr}");

    // verify-full with a CA that did not issue the proxy's certificate fails in libpq.
    let out = psql(
        &setup,
        &setup.conninfo(&format!(
            "sslmode=verify-full sslrootcert={}",
            setup.stranger_ca.display()
        )),
        "select 1",
    )
    .output()
    .await
    .expect("run psql");
    assert!(!out.status.success(), "a wrong CA must fail");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate verify failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // tokio-postgres with pgseal's rustls connector (extended protocol, binary parameters).
    let (config, tls) = postgres_config(&format!("{} password='{PASSWORD}'", setup.verify_full()))
        .expect("connection string");
    let (client, connection) = config.connect(tls).await.expect("tokio-postgres over TLS");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
        .execute(
            "insert into people values ($1, $2)",
            &[&2i32, &"+1 555 0100"],
        )
        .await
        .expect("insert through the proxy");
    let phone: String = client
        .query_one("select phone from people where id = $1", &[&2i32])
        .await
        .expect("select through the proxy")
        .get(0);
    assert_eq!(phone, "+1 555 0100");
    assert_stored_encrypted(&setup, 2, "+1 555 0100").await;

    psycopg(&setup).await;
    node_pg(&setup).await;
}

/// psycopg 3 (its own libpq) with verify-full, and with libpq 17+'s direct TLS when its libpq
/// has it.
async fn psycopg(setup: &Setup) {
    let available = tool_runs("python3", &["-c", "import psycopg"]).await;
    if !require_tool(available, "python3 with psycopg 3") {
        return;
    }
    let script = r#"
import os, sys, psycopg
conninfo = os.environ["CONNINFO"]
modes = [""]
if psycopg.pq.version() >= 170000:
    modes.append(" sslnegotiation=direct")
for i, extra in enumerate(modes):
    with psycopg.connect(conninfo + extra, password=os.environ["PASSWORD"]) as conn:
        row_id = 3 + i
        conn.execute("insert into people values (%s, %s)", (row_id, "+33 1 23 45 67 89"))
        (phone,) = conn.execute("select phone from people where id = %s", (row_id,)).fetchone()
        assert phone == "+33 1 23 45 67 89", phone
        print(f"ok{extra}")
"#;
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-c", script])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("CONNINFO", setup.verify_full())
        .env("PASSWORD", PASSWORD);
    let out = run_checked(&mut cmd, "psycopg 3 over TLS").await;
    println!("psycopg: {out}");
    assert!(out.starts_with("ok\n"), "{out}");
    assert_stored_encrypted(setup, 3, "+33 1 23 45 67 89").await;
}

/// node-postgres with `ssl: { ca }` (Node's own TLS, host name checked).
async fn node_pg(setup: &Setup) {
    let dir = repo_root().join("tests/drivers/node");
    let available = tool_runs("node", &["--version"]).await && dir.join("node_modules/pg").is_dir();
    if !require_tool(
        available,
        "node with tests/drivers/node/node_modules (npm ci)",
    ) {
        return;
    }
    let script = r#"
const fs = require("fs");
const { Client } = require("pg");
(async () => {
  const client = new Client({
    host: "localhost", port: Number(process.env.PORT), database: process.env.DATABASE,
    user: "app", password: process.env.PASSWORD,
    ssl: { ca: fs.readFileSync(process.env.CA, "utf8") },
  });
  await client.connect();
  await client.query("insert into people values ($1, $2)", [10, "+49 30 901820"]);
  const res = await client.query("select phone from people where id = $1", [10]);
  if (res.rows[0].phone !== "+49 30 901820") throw new Error("got " + res.rows[0].phone);
  await client.end();
  console.log("ok");
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(["-e", script])
        .current_dir(&dir)
        .env("PORT", setup.addr.port().to_string())
        .env("DATABASE", DATABASE)
        .env("PASSWORD", PASSWORD)
        .env("CA", &setup.proxy_ca);
    let out = run_checked(&mut cmd, "node pg over TLS").await;
    assert_eq!(out, "ok\n");
    assert_stored_encrypted(setup, 10, "+49 30 901820").await;
}
