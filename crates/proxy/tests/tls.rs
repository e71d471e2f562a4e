//! TLS on both legs of the proxy against a real PostgreSQL server with `ssl = on`: every
//! combination of client leg (plain, TLS) × server leg (plain, TLS verify-full) × authentication
//! (trust, md5, SCRAM-SHA-256), `require_tls`, direct TLS, cancel over TLS on both legs,
//! certificate verification failures, and reloading the proxy's certificate and the upstream
//! CA (`sslrootcert`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::BytesMut;
use common::{start_proxy_with, RunningProxy};
use pgseal_proxy::pgseal_wire::backend::Authentication;
use pgseal_proxy::pgseal_wire::{decode_frame, StartupPacket};
use pgseal_proxy::{postgres_config, ClientTls, PassThrough, ProxyConfig, ProxyError};
use pgseal_testkit::TestCluster;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

const HBA_LINES: &str = "\
host all scram_user 127.0.0.1/32 scram-sha-256
host all scram_user ::1/128 scram-sha-256
host all md5_user 127.0.0.1/32 md5
host all md5_user ::1/128 md5
";

/// A CA and the PEM files of one certificate it issued.
struct Pki {
    ca: PathBuf,
    cert: String,
    key: String,
}

/// A fresh CA named `name` and a server certificate for `names` signed by it; the CA
/// certificate is written to `dir/<name>-ca.pem`.
fn issue(dir: &Path, name: &str, names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("server params");
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("server"),
    );
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let ca = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca, ca_cert.pem()).expect("write CA");
    Pki {
        ca,
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

struct Fixture {
    cluster: TestCluster,
    dir: tempfile::TempDir,
    /// The CA of the database server's certificate (issued for `localhost` only).
    db_ca: PathBuf,
    /// The proxy's certificate (for `localhost` and 127.0.0.1) and its CA.
    proxy: Pki,
    /// A CA that issued neither.
    stranger_ca: PathBuf,
}

/// One cluster for the whole file, with password roles and TLS on.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let cluster = TestCluster::start_dedicated(Vec::new());
        let dir = tempfile::tempdir().expect("temp dir");
        let out = cluster
            .cluster()
            .psql_command()
            .args([
                "-q",
                "-c",
                "set password_encryption = 'scram-sha-256'; \
                 create role scram_user login password 'scram pass'; \
                 set password_encryption = 'md5'; \
                 create role md5_user login password 'md5 pass';",
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hba = cluster.cluster().data_dir().join("pg_hba.conf");
        let existing = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        // First match wins: the role-specific lines go before initdb's trust lines.
        std::fs::write(&hba, format!("{HBA_LINES}{existing}")).expect("write pg_hba.conf");
        let db = issue(dir.path(), "db", &["localhost"]);
        // Reloads the configuration (pg_hba.conf included) and waits for TLS to work.
        cluster
            .cluster()
            .enable_tls(&db.cert, &db.key)
            .expect("turn on TLS in the test cluster");
        let proxy = issue(dir.path(), "proxy", &["localhost", "127.0.0.1"]);
        let stranger_ca = issue(dir.path(), "stranger", &["localhost"]).ca;
        Fixture {
            cluster,
            dir,
            db_ca: db.ca,
            proxy,
            stranger_ca,
        }
    })
}

impl Fixture {
    fn port(&self) -> u16 {
        self.cluster.cluster().port()
    }

    fn upstream_url(&self, host: &str, query: &str) -> String {
        format!("postgres://{host}:{}/postgres?{query}", self.port())
    }

    fn proxy_tls(&self) -> ClientTls {
        // A file pair per call: tests run in parallel, and rewriting one shared pair let a
        // concurrent load read a half-written certificate.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cert = self.dir.path().join(format!("proxy-{n}.crt"));
        let key = self.dir.path().join(format!("proxy-{n}.key"));
        std::fs::write(&cert, &self.proxy.cert).expect("write proxy cert");
        std::fs::write(&key, &self.proxy.key).expect("write proxy key");
        ClientTls::load(cert, key).expect("load the proxy's certificate")
    }

    /// A proxy config towards `upstream` (a URL), with the proxy's certificate.
    fn config(&self, upstream: &str) -> ProxyConfig {
        let mut config =
            ProxyConfig::with_upstream_url("127.0.0.1:0".parse().expect("addr"), upstream)
                .expect("upstream URL");
        config.client_tls = Some(self.proxy_tls());
        config
    }
}

/// How a test client reaches the proxy.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ClientLeg {
    Plain,
    Tls,
}

fn conninfo(proxy: &RunningProxy, leg: ClientLeg, user: &str, password: Option<&str>) -> String {
    let f = fixture();
    let tls = match leg {
        ClientLeg::Plain => "sslmode=disable".to_owned(),
        ClientLeg::Tls => format!("sslmode=verify-full sslrootcert={}", f.proxy.ca.display()),
    };
    let password = password.map_or(String::new(), |p| format!(" password='{p}'"));
    format!(
        "host=localhost port={} user={user} dbname=postgres {tls}{password}",
        proxy.addr.port()
    )
}

/// Connects with tokio-postgres and pgseal's rustls connector.
async fn connect(conn: &str) -> Result<Client, tokio_postgres::Error> {
    let (config, tls) = postgres_config(conn).expect("connection string");
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The session's user and whether the *server* sees it on TLS.
async fn who(client: &Client) -> (String, bool) {
    let row = client
        .query_one(
            "select current_user::text, ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query through the proxy");
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_combination_of_legs_and_methods_authenticates() {
    let f = fixture();
    let upstreams = [
        (f.upstream_url("localhost", "sslmode=disable"), false),
        (
            f.upstream_url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={}", f.db_ca.display()),
            ),
            true,
        ),
    ];
    for (upstream, upstream_tls) in upstreams {
        let proxy = start_proxy_with(f.config(&upstream), PassThrough).await;
        for leg in [ClientLeg::Plain, ClientLeg::Tls] {
            for (user, password) in [
                ("postgres", None),
                ("md5_user", Some("md5 pass")),
                ("scram_user", Some("scram pass")),
            ] {
                let case = format!("{user}, client {leg:?}, upstream TLS {upstream_tls}");
                let client = connect(&conninfo(&proxy, leg, user, password))
                    .await
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(
                    who(&client).await,
                    (user.to_owned(), upstream_tls),
                    "{case}"
                );
            }
            for (user, wrong) in [("scram_user", "not it"), ("md5_user", "not it")] {
                let case = format!("{user} wrong password, client {leg:?}, TLS {upstream_tls}");
                let err = connect(&conninfo(&proxy, leg, user, Some(wrong)))
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{case}: a wrong password must fail"));
                assert_eq!(
                    err.code(),
                    Some(&SqlState::INVALID_PASSWORD),
                    "{case}: {err}"
                );
            }
        }
        proxy.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_clients_are_never_offered_channel_binding() {
    let f = fixture();
    let upstream = f.upstream_url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", f.db_ca.display()),
    );
    let proxy = start_proxy_with(f.config(&upstream), PassThrough).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let mut out = BytesMut::new();
    StartupPacket::startup(vec![
        ("user".to_owned(), "scram_user".to_owned()),
        ("database".to_owned(), "postgres".to_owned()),
    ])
    .encode(&mut out)
    .expect("encode startup");
    stream.write_all(&out).await.expect("send startup");
    let mut buf = BytesMut::new();
    let frame = loop {
        if let Some(frame) = decode_frame(&mut buf, 1 << 20).expect("frame") {
            break frame;
        }
        assert_ne!(stream.read_buf(&mut buf).await.expect("read"), 0, "closed");
    };
    // The server itself offers SCRAM-SHA-256-PLUS on its TLS connection to the proxy.
    match Authentication::decode(&frame.body).expect("authentication request") {
        Authentication::Sasl { mechanisms } => assert_eq!(mechanisms, ["SCRAM-SHA-256"]),
        other => panic!("expected AuthenticationSASL, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_refuses_plain_clients_before_the_server() {
    let f = fixture();
    let mut config = f.config(&f.upstream_url("localhost", "sslmode=disable"));
    config.require_tls = true;
    let proxy = start_proxy_with(config, PassThrough).await;

    let err = connect(&conninfo(&proxy, ClientLeg::Plain, "postgres", None))
        .await
        .expect_err("a plain-text client is refused");
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
    let db = err.as_db_error().expect("a server-style error");
    assert!(db.message().contains("only TLS"), "{db:?}");
    assert!(
        db.hint().unwrap_or_default().contains("sslmode=require"),
        "{db:?}"
    );

    let client = connect(&conninfo(
        &proxy,
        ClientLeg::Tls,
        "scram_user",
        Some("scram pass"),
    ))
    .await
    .expect("a TLS client is served");
    assert_eq!(who(&client).await.0, "scram_user");

    // require_tls without a certificate is a configuration error, not a proxy that refuses all.
    let mut config = ProxyConfig::new("127.0.0.1:0".parse().expect("addr"), "localhost", 5432);
    config.require_tls = true;
    assert!(matches!(
        config.validate(),
        Err(ProxyError::InvalidConfig {
            setting: "require_tls",
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_and_cancel_over_tls() {
    let f = fixture();
    let upstream = f.upstream_url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", f.db_ca.display()),
    );
    let proxy = start_proxy_with(f.config(&upstream), PassThrough).await;

    // PostgreSQL 17's direct TLS: no SSLRequest, ALPN "postgresql".
    let conn = format!(
        "{} sslnegotiation=direct",
        conninfo(&proxy, ClientLeg::Tls, "scram_user", Some("scram pass"))
    );
    let (config, tls) = postgres_config(&conn).expect("connection string");
    let (client, connection) = config.connect(tls.clone()).await.expect("direct TLS");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    assert_eq!(who(&client).await, ("scram_user".to_owned(), true));

    // A cancel request made inside TLS (tokio-postgres uses the session's sslmode for it).
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.batch_execute("select pg_sleep(30)").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    token
        .cancel_query(tls)
        .await
        .expect("send the cancel request");
    let err = sleeper
        .await
        .expect("join")
        .expect_err("the query is cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");

    // Direct TLS without the ALPN protocol is refused, as PostgreSQL 17 refuses it.
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let ca = std::fs::read(&f.proxy.ca).expect("read CA");
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(cert.expect("CA pem")).expect("add CA");
    }
    let no_alpn = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let outcome = async {
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(no_alpn))
            .connect(name, tcp)
            .await?;
        let mut out = BytesMut::new();
        StartupPacket::startup(vec![("user".to_owned(), "postgres".to_owned())])
            .encode(&mut out)
            .map_err(std::io::Error::other)?;
        tls.write_all(&out).await?;
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    }
    .await;
    if let Ok(reply) = outcome {
        // The handshake may complete before the proxy checks ALPN; then the connection closes
        // without a single message of the protocol.
        assert!(
            reply.first().is_none_or(|tag| *tag == b'E'),
            "a session was served without ALPN"
        );
        assert!(
            !reply.windows(1).any(|w| w == [b'R']),
            "authentication began"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_certificate_checks_fail_clearly() {
    let f = fixture();
    let tls_query = |ca: &Path, mode: &str| format!("sslmode={mode}&sslrootcert={}", ca.display());
    let refused = [
        // A CA that did not issue the server's certificate.
        f.upstream_url("localhost", &tls_query(&f.stranger_ca, "verify-full")),
        f.upstream_url("localhost", &tls_query(&f.stranger_ca, "verify-ca")),
        // The right CA, but the certificate names localhost, not 127.0.0.1.
        f.upstream_url("127.0.0.1", &tls_query(&f.db_ca, "verify-full")),
    ];
    for upstream in refused {
        let proxy = start_proxy_with(f.config(&upstream), PassThrough).await;
        let err = connect(&conninfo(&proxy, ClientLeg::Tls, "postgres", None))
            .await
            .err()
            .unwrap_or_else(|| panic!("{upstream}: the server's certificate must be refused"));
        assert_eq!(
            err.code(),
            Some(&SqlState::CONNECTION_FAILURE),
            "{upstream}"
        );
        let db = err.as_db_error().expect("a server-style error");
        assert!(db.message().contains("cannot set up TLS"), "{db:?}");
        proxy.stop().await;
    }
    let accepted = [
        // verify-ca does not look at the name.
        (
            f.upstream_url("127.0.0.1", &tls_query(&f.db_ca, "verify-ca")),
            true,
        ),
        // require and prefer encrypt without a CA, as libpq does.
        (f.upstream_url("localhost", "sslmode=require"), true),
        (f.upstream_url("localhost", ""), true),
    ];
    for (upstream, tls) in accepted {
        let proxy = start_proxy_with(f.config(&upstream), PassThrough).await;
        let client = connect(&conninfo(
            &proxy,
            ClientLeg::Plain,
            "scram_user",
            Some("scram pass"),
        ))
        .await
        .unwrap_or_else(|e| panic!("{upstream}: {e}"));
        assert_eq!(
            who(&client).await,
            ("scram_user".to_owned(), tls),
            "{upstream}"
        );
        proxy.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rustls_connector_binds_scram_to_the_server_certificate() {
    // The server checks the channel binding data: a wrong tls-server-end-point fails the login.
    let f = fixture();
    let conn = format!(
        "host=localhost port={} user=scram_user password='scram pass' dbname=postgres \
         sslmode=verify-full sslrootcert={} channel_binding=require",
        f.port(),
        f.db_ca.display()
    );
    let client = connect(&conn)
        .await
        .expect("SCRAM-SHA-256-PLUS to the server");
    assert_eq!(who(&client).await, ("scram_user".to_owned(), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_replaced_without_a_restart() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let first = issue(dir.path(), "first", &["localhost"]);
    let second = issue(dir.path(), "second", &["localhost"]);
    let cert = dir.path().join("proxy.crt");
    let key = dir.path().join("proxy.key");
    std::fs::write(&cert, &first.cert).expect("write cert");
    std::fs::write(&key, &first.key).expect("write key");
    let tls = ClientTls::load(&cert, &key).expect("load");
    let mut config = f.config(&f.upstream_url("localhost", "sslmode=disable"));
    config.client_tls = Some(tls.clone());
    let proxy = start_proxy_with(config, PassThrough).await;
    let with_ca = |ca: &Path| {
        format!(
            "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full \
             sslrootcert={}",
            proxy.addr.port(),
            ca.display()
        )
    };
    let old_session = connect(&with_ca(&first.ca))
        .await
        .expect("first certificate");

    std::fs::write(&cert, &second.cert).expect("replace cert");
    std::fs::write(&key, &second.key).expect("replace key");
    tls.reload().expect("reload");
    assert!(
        connect(&with_ca(&first.ca)).await.is_err(),
        "new handshakes must use the new certificate"
    );
    connect(&with_ca(&second.ca))
        .await
        .expect("second certificate");
    assert_eq!(
        who(&old_session).await.0,
        "postgres",
        "open sessions continue"
    );

    // A broken file is refused and the certificate in use stays.
    std::fs::write(&cert, "not a certificate").expect("break cert");
    let err = tls
        .reload()
        .expect_err("a broken certificate file is refused");
    assert!(err.to_string().contains("tls_cert"), "{err}");
    std::fs::write(&cert, &first.cert).expect("write cert");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("break key");
    assert!(tls.reload().is_err(), "a broken key file is refused");
    connect(&with_ca(&second.ca))
        .await
        .expect("the last good certificate stays in use");
}

/// A rustls client trusting the proxy's CA, with only `versions`.
fn raw_client(
    versions: &[&'static tokio_rustls::rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let ca = std::fs::read(&fixture().proxy.ca).expect("read CA");
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(cert.expect("CA pem")).expect("add CA");
    }
    let config = tokio_rustls::rustls::ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

fn ssl_request() -> [u8; 8] {
    let mut request = [0u8; 8];
    request[..4].copy_from_slice(&8i32.to_be_bytes());
    request[4..].copy_from_slice(&80_877_103i32.to_be_bytes());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_1_3_are_accepted_and_bytes_before_the_handshake_are_not() {
    use tokio_rustls::rustls::{version, ProtocolVersion};
    let f = fixture();
    let proxy = start_proxy_with(
        f.config(&f.upstream_url("localhost", "sslmode=disable")),
        PassThrough,
    )
    .await;
    for (versions, expected) in [
        (&[&version::TLS12][..], ProtocolVersion::TLSv1_2),
        (&[&version::TLS13][..], ProtocolVersion::TLSv1_3),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect");
        tcp.write_all(&ssl_request()).await.expect("SSLRequest");
        assert_eq!(tcp.read_u8().await.expect("answer"), b'S');
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = raw_client(versions)
            .connect(name, tcp)
            .await
            .unwrap_or_else(|e| panic!("{expected:?} handshake: {e}"));
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
    }

    // A startup message sent right behind the SSLRequest would be read as if it had come
    // through TLS: the proxy refuses instead of answering 'S'.
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let mut out = BytesMut::from(&ssl_request()[..]);
    StartupPacket::startup(vec![("user".to_owned(), "postgres".to_owned())])
        .encode(&mut out)
        .expect("encode startup");
    tcp.write_all(&out).await.expect("send");
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply)
        .await
        .expect("read until closed");
    assert_eq!(reply.first(), Some(&b'E'), "{reply:?}");
    assert!(
        String::from_utf8_lossy(&reply).contains("before the TLS handshake"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

/// A TCP relay in front of the database server that records the first 8 bytes of every
/// connection, which tell an `SSLRequest` from a plain `CancelRequest` or startup message.
struct Relay {
    port: u16,
    openings: std::sync::Arc<std::sync::Mutex<Vec<[u8; 8]>>>,
}

impl Relay {
    async fn start(server_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let openings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&openings);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let seen = std::sync::Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut opening = [0u8; 8];
                    if client.read_exact(&mut opening).await.is_err() {
                        return;
                    }
                    seen.lock().expect("openings").push(opening);
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", server_port)).await
                    else {
                        return;
                    };
                    if server.write_all(&opening).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { port, openings }
    }

    fn openings(&self) -> Vec<[u8; 8]> {
        self.openings.lock().expect("openings").clone()
    }
}

/// The first 8 bytes of a `CancelRequest` (length 16, code 1234.5678).
fn cancel_request_opening() -> [u8; 8] {
    let mut opening = [0u8; 8];
    opening[..4].copy_from_slice(&16i32.to_be_bytes());
    opening[4..].copy_from_slice(&80_877_102i32.to_be_bytes());
    opening
}

/// Runs `select pg_sleep(60)` through `proxy` as `postgres` and cancels it with the client's
/// cancel token; asserts that it ends with `57014`.
async fn cancel_a_sleep(proxy: &RunningProxy) {
    let conn = conninfo(proxy, ClientLeg::Plain, "postgres", None);
    let (config, tls) = postgres_config(&conn).expect("connection string");
    let (client, connection) = config.connect(tls.clone()).await.expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.batch_execute("select pg_sleep(60)").await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    token
        .cancel_query(tls)
        .await
        .expect("send the cancel request");
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), sleeper)
        .await
        .expect("the query is cancelled long before pg_sleep(60) ends")
        .expect("join");
    let err = outcome.expect_err("the query is cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_requests_to_the_server_follow_the_upstream_tls_settings() {
    let f = fixture();

    // verify-full upstream: the session and the forwarded cancel both start with SSLRequest.
    let relay = Relay::start(f.port()).await;
    let upstream = format!(
        "postgres://localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        relay.port,
        f.db_ca.display()
    );
    let proxy = start_proxy_with(f.config(&upstream), PassThrough).await;
    cancel_a_sleep(&proxy).await;
    let openings = relay.openings();
    assert_eq!(
        openings.len(),
        2,
        "one session and one cancel connection: {openings:?}"
    );
    assert!(
        openings.iter().all(|o| *o == ssl_request()),
        "every connection to the server negotiates TLS first: {openings:?}"
    );
    proxy.stop().await;

    // sslmode=disable: the cancel goes in plain text, as the relay can see.
    let relay = Relay::start(f.port()).await;
    let upstream = format!(
        "postgres://localhost:{}/postgres?sslmode=disable",
        relay.port
    );
    let proxy = start_proxy_with(f.config(&upstream), PassThrough).await;
    cancel_a_sleep(&proxy).await;
    assert!(
        relay.openings().contains(&cancel_request_opening()),
        "{:?}",
        relay.openings()
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_root_certificate_is_reloaded() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("upstream-ca.pem");
    std::fs::copy(&f.stranger_ca, &root).expect("write root certificate");
    let upstream = f.upstream_url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", root.display()),
    );
    let config = f.config(&upstream);
    let upstream_tls = config.upstream_tls.clone();
    let proxy = start_proxy_with(config, PassThrough).await;
    // Parsed separately from the same file, as the encryption layer's control connections are.
    let (direct, direct_tls) = postgres_config(&format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
        f.port(),
        root.display()
    ))
    .expect("connection string");
    let direct_connect = || async {
        let (client, connection) = direct.connect(direct_tls.clone()).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok::<_, tokio_postgres::Error>(client)
    };
    let proxy_conn = conninfo(&proxy, ClientLeg::Plain, "postgres", None);
    let through_proxy = || connect(&proxy_conn);

    let err = through_proxy()
        .await
        .expect_err("a CA that did not issue the server's certificate");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
    assert!(
        direct_connect().await.is_err(),
        "the control path refuses too"
    );

    std::fs::copy(&f.db_ca, &root).expect("replace root certificate");
    assert_eq!(
        upstream_tls.reload_root_cert().expect("reload"),
        Some(root.as_path())
    );
    let session = through_proxy().await.expect("the new CA is trusted");
    assert_eq!(who(&session).await, ("postgres".to_owned(), true));
    let control = direct_connect()
        .await
        .expect("the control path follows the reload");
    assert_eq!(who(&control).await, ("postgres".to_owned(), true));

    // A broken file is refused and the CAs in use stay.
    std::fs::write(&root, "not a certificate").expect("break root certificate");
    let err = upstream_tls
        .reload_root_cert()
        .expect_err("a broken file is refused");
    assert!(err.to_string().contains("sslrootcert"), "{err}");
    through_proxy()
        .await
        .expect("the last good CA stays in use");

    // Back to a CA that does not vouch for the server: new connections are refused, the open
    // session goes on (no TLS session resumption around the new check).
    std::fs::copy(&f.stranger_ca, &root).expect("replace root certificate");
    upstream_tls.reload_root_cert().expect("reload");
    assert!(
        through_proxy().await.is_err(),
        "the old CA is no longer trusted"
    );
    assert!(
        direct_connect().await.is_err(),
        "on the control path either"
    );
    assert_eq!(who(&session).await.0, "postgres", "open sessions continue");

    // Without a CA file there is nothing to reload.
    let plain = pgseal_proxy::UpstreamTls::from_connection_string("host=h sslmode=require")
        .expect("settings");
    assert_eq!(plain.reload_root_cert().expect("no-op"), None);
    proxy.stop().await;
}
