//! The real `pgseal proxy` binary reloading its TLS files on SIGHUP, against a PostgreSQL
//! cluster with TLS on: the certificate presented to clients (`--tls-cert`/`--tls-key`) and
//! the CA of the server (`sslrootcert` in the upstream URL). New connections see the new files,
//! open ones keep working, and broken files leave what was in force.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use pgseal_testkit::TestCluster;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// A CA and one certificate it issued, as PEM text.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

/// A fresh CA named `name` and a certificate for `localhost` signed by it.
fn issue(name: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    Pki {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A running `pgseal proxy`; killed (by its process ID) when dropped.
struct ProxyProcess {
    child: Child,
    port: u16,
    stderr: Receiver<String>,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ProxyProcess {
    fn start(upstream: &str, cert: &Path, key: &Path, master_key: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pgseal"));
        for var in [
            "PGSEAL_MASTER_KEY_FILE",
            "PGSEAL_PREVIOUS_MASTER_KEYS",
            "PGSEAL_PREVIOUS_MASTER_KEYS_FILE",
            "PGSEAL_REQUIRE_TLS",
            "DATABASE_URL",
        ] {
            command.env_remove(var);
        }
        let mut child = command
            .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", upstream])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args(["--reload-interval", "3600"])
            .env("PGSEAL_MASTER_KEY", master_key)
            .env("PGSEAL_AUDIT_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the proxy starts");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("the proxy says where it listens");
        let stderr_so_far: Vec<String> = lines.try_iter().collect();
        let port = first
            .split_whitespace()
            .nth(4)
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}; stderr: {stderr_so_far:?}"));
        Self {
            child,
            port,
            stderr: lines,
        }
    }

    /// Sends SIGHUP and returns the stderr lines of that reload, up to the last step's line
    /// (the client certificate's, printed whenever `--tls-cert` is given).
    fn hangup(&self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -HUP failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut batch = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let last = line.contains("SIGHUP: TLS certificate reloaded")
                        || line.contains("SIGHUP: the TLS certificate was not reloaded");
                    batch.push(line);
                    if last {
                        return batch;
                    }
                }
                Err(_) => panic!("the reload never finished; stderr so far: {batch:?}"),
            }
        }
    }

    /// Connects as `postgres` with sslmode=verify-full, trusting `ca` for the proxy.
    async fn connect(&self, dbname: &str, ca: &Path) -> Result<Client, tokio_postgres::Error> {
        let conn = format!(
            "host=localhost port={} user=postgres dbname={dbname} sslmode=verify-full \
             sslrootcert={}",
            self.port,
            ca.display()
        );
        let (config, tls) = pgseal_proxy::postgres_config(&conn).expect("connection string");
        let (client, connection) = config.connect(tls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

/// Whether the server sees the session on TLS (the proxy's upstream leg).
async fn server_side_tls(client: &Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query through the proxy")
        .get(0)
}

fn has_line(batch: &[String], needle: &str) -> bool {
    batch.iter().any(|line| line.contains(needle))
}

fn keygen() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pgseal"))
        .arg("keygen")
        .output()
        .expect("pgseal keygen runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_client_certificate_and_the_upstream_ca() {
    let cluster = TestCluster::start_dedicated(Vec::new());
    let db_first = issue("db-first");
    cluster
        .cluster()
        .enable_tls(&db_first.cert, &db_first.key)
        .expect("turn on TLS in the test cluster");
    let db = cluster.create_database().await;
    let master_key = keygen();
    let init = Command::new(env!("CARGO_BIN_EXE_pgseal"))
        .arg("init")
        .env("PGSEAL_MASTER_KEY", &master_key)
        .env("PGSEAL_AUDIT_LOG", "off")
        .env("DATABASE_URL", db.url())
        .output()
        .expect("pgseal init runs");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str| -> PathBuf { dir.path().join(name) };
    let (cert, key, upstream_ca) = (file("proxy.crt"), file("proxy.key"), file("db-ca.pem"));
    let first = issue("proxy-first");
    let second = issue("proxy-second");
    let (first_ca, second_ca) = (file("first-ca.pem"), file("second-ca.pem"));
    write(&first_ca, &first.ca);
    write(&second_ca, &second.ca);
    write(&cert, &first.cert);
    write(&key, &first.key);
    write(&upstream_ca, &db_first.ca);
    let upstream = format!(
        "postgres://postgres@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
        cluster.cluster().port(),
        db.name(),
        upstream_ca.display()
    );
    let proxy = ProxyProcess::start(&upstream, &cert, &key, &master_key);

    let old = proxy
        .connect(db.name(), &first_ca)
        .await
        .expect("the first certificate is presented");
    assert!(server_side_tls(&old).await, "the upstream leg uses TLS");

    // A new certificate: new connections see it, the open one goes on.
    write(&cert, &second.cert);
    write(&key, &second.key);
    let batch = proxy.hangup();
    assert!(has_line(&batch, "TLS certificate reloaded"), "{batch:?}");
    assert!(
        proxy.connect(db.name(), &first_ca).await.is_err(),
        "new handshakes must present the new certificate"
    );
    let current = proxy
        .connect(db.name(), &second_ca)
        .await
        .expect("the second certificate is presented");
    assert!(server_side_tls(&current).await);
    assert!(server_side_tls(&old).await, "the open connection goes on");

    // A broken certificate file: refused, the second certificate stays.
    write(&cert, "not a certificate");
    let batch = proxy.hangup();
    assert!(
        has_line(&batch, "the TLS certificate was not reloaded"),
        "{batch:?}"
    );
    assert!(!has_line(&batch, "not a certificate"), "{batch:?}");
    proxy
        .connect(db.name(), &second_ca)
        .await
        .expect("the last good certificate stays in force");
    write(&cert, &second.cert);

    // The server moves to a certificate from another CA: the proxy refuses it until its
    // sslrootcert is replaced and reloaded.
    let db_second = issue("db-second");
    cluster
        .cluster()
        .enable_tls(&db_second.cert, &db_second.key)
        .expect("replace the server's certificate");
    let err = proxy
        .connect(db.name(), &second_ca)
        .await
        .expect_err("a server certificate from an unknown CA is refused");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
    write(&upstream_ca, &db_second.ca);
    let batch = proxy.hangup();
    assert!(
        has_line(&batch, "upstream CA certificates (sslrootcert) reloaded"),
        "{batch:?}"
    );
    let renewed = proxy
        .connect(db.name(), &second_ca)
        .await
        .expect("the new upstream CA is trusted");
    assert!(server_side_tls(&renewed).await);
    assert!(
        server_side_tls(&current).await,
        "sessions opened before go on"
    );

    // A broken sslrootcert: refused, the CA in force stays.
    write(&upstream_ca, "not a certificate");
    let batch = proxy.hangup();
    assert!(
        has_line(&batch, "the upstream CA certificates were not reloaded"),
        "{batch:?}"
    );
    let still = proxy
        .connect(db.name(), &second_ca)
        .await
        .expect("the last good upstream CA stays in force");
    assert!(server_side_tls(&still).await);
}
