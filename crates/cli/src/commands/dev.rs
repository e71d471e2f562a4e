//! `pgseal dev`: a throwaway local PostgreSQL with pgseal installed and sample encrypted data.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use std::net::SocketAddr;
use std::time::Duration;

use pgseal::{init, AuditLog, MasterKey, MasterKeyring, Sealer, Value};
use pgseal_localpg::{Cluster, ClusterOptions};
use pgseal_proxy::{serve_encrypted, ClientTls, EncryptionOptions, ProxyConfig};
use tokio_postgres::{Client, NoTls};

use super::CommandResult;

/// Flags of `pgseal dev`.
#[derive(clap::Args)]
pub struct Args {
    /// Address of the pgseal proxy that applications and psql connect to.
    #[arg(long, default_value = "127.0.0.1:6432")]
    listen: SocketAddr,
    /// PEM certificate chain the proxy presents to clients that ask for TLS (try
    /// `sslmode=require`); with --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

const DATABASE: &str = "pgseal_dev";

const SAMPLE_SCHEMA: &str = "
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    email       pgseal.email,
    phone       pgseal.phone,
    birth_date  pgseal.date,
    birth_time  pgseal.time,
    birth_place pgseal.text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE readings (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users,
    kind       text NOT NULL,
    body       pgseal.text,
    created_at timestamptz NOT NULL DEFAULT now()
);
";

struct SampleUser {
    name: &'static str,
    email: &'static str,
    phone: &'static str,
    /// Days since 2000-01-01.
    birth_date: i32,
    /// Hours and minutes.
    birth_time: (i64, i64),
    birth_place: &'static str,
    reading: &'static str,
}

const USERS: &[SampleUser] = &[
    SampleUser {
        name: "Ada",
        email: "ada@example.com",
        phone: "+44 20 7946 0018",
        birth_date: -3_287, // 1991-01-01
        birth_time: (6, 45),
        birth_place: "London, United Kingdom",
        reading: "Sun in Capricorn, Moon in Aries: a year to build patiently.",
    },
    SampleUser {
        name: "Bruno",
        email: "Bruno.Costa@example.org",
        phone: "+55 11 91234-5678",
        birth_date: 1_000, // 2002-09-27
        birth_time: (23, 10),
        birth_place: "São Paulo, Brazil",
        reading: "Sun in Libra, rising Leo: partnerships take the spotlight.",
    },
    SampleUser {
        name: "Chiara",
        email: "chiara@example.net",
        phone: "+39 06 1234 5678",
        birth_date: -8_000, // 1978-02-05
        birth_time: (12, 0),
        birth_place: "Rome, Italy",
        reading: "Sun in Aquarius, Moon in Cancer: trust the long view.",
    },
];

fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| {
        format!(
            "cannot connect to the dev cluster: {}",
            pgseal::describe_db_error(&e)
        )
    })?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!("dev cluster connection closed: {err}");
        }
    });
    Ok(client)
}

async fn load_samples(client: &Client, sealer: &Sealer) -> Result<(), String> {
    let err = |e: pgseal::Error| e.to_string();
    for user in USERS {
        let (hours, minutes) = user.birth_time;
        let row = client
            .query_one(
                "INSERT INTO users (name, email, phone, birth_date, birth_time, birth_place)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &user.name,
                    &sealer
                        .seal("users", "email", &Value::Text(user.email.into()))
                        .map_err(err)?,
                    &sealer
                        .seal("users", "phone", &Value::Text(user.phone.into()))
                        .map_err(err)?,
                    &sealer
                        .seal("users", "birth_date", &Value::Date(user.birth_date))
                        .map_err(err)?,
                    &sealer
                        .seal(
                            "users",
                            "birth_time",
                            &Value::Time((hours * 60 + minutes) * 60_000_000),
                        )
                        .map_err(err)?,
                    &sealer
                        .seal(
                            "users",
                            "birth_place",
                            &Value::Text(user.birth_place.into()),
                        )
                        .map_err(err)?,
                ],
            )
            .await
            .map_err(|e| pgseal::describe_db_error(&e))?;
        let id: i64 = row.get(0);
        client
            .execute(
                "INSERT INTO readings (user_id, kind, body) VALUES ($1, 'natal', $2)",
                &[
                    &id,
                    &sealer
                        .seal("readings", "body", &Value::Text(user.reading.into()))
                        .map_err(err)?,
                ],
            )
            .await
            .map_err(|e| pgseal::describe_db_error(&e))?;
    }
    Ok(())
}

/// Starts the cluster, installs pgseal and the samples, starts the proxy, prints how to look,
/// and serves until Ctrl-C; then removes everything.
pub async fn run(args: Args) -> CommandResult {
    eprintln!("starting a throwaway PostgreSQL cluster…");
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(ClusterOptions::new()))
        .await
        .map_err(|e| format!("the cluster start task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    // From here on the cluster is removed on every path (its Drop stops it), errors included.
    let result = serve(&args, &cluster).await;
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .map_err(|e| format!("the cluster stop task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    result
}

async fn serve(args: &Args, cluster: &Cluster) -> CommandResult {
    let admin = connect(&cluster.url("postgres")).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .map_err(|e| pgseal::describe_db_error(&e))?;
    let direct_url = cluster.url(DATABASE);
    let mut client = connect(&direct_url).await?;

    // A development key, generated here and kept in a private file beside the cluster so the
    // library example and the CLI can be tried against it; it dies with the cluster.
    let files = tempfile::Builder::new()
        .prefix("pgseal-dev-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let key = MasterKey::generate();
    let fingerprint = key.fingerprint();
    let key_path = files.path().join("master.key");
    write_private_file(&key_path, key.expose_base64().as_bytes())?;
    let audit_path = files.path().join("audit.log");
    let audit = AuditLog::file(&audit_path).map_err(|e| e.to_string())?;
    let master = MasterKeyring::new(key, Vec::new());

    let err = |e: pgseal::Error| e.to_string();
    init(&mut client, &master, &audit).await.map_err(err)?;
    client
        .batch_execute(SAMPLE_SCHEMA)
        .await
        .map_err(|e| pgseal::describe_db_error(&e))?;
    let sealer = Sealer::new(&mut client, master.clone(), audit.clone())
        .await
        .map_err(err)?;
    load_samples(&client, &sealer).await?;
    drop(client);
    drop(admin);

    let mut config =
        ProxyConfig::with_upstream_url(args.listen, &direct_url).map_err(|e| e.to_string())?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.client_tls = Some(ClientTls::load(cert, key).map_err(|e| e.to_string())?);
    }
    let options = EncryptionOptions {
        control_url: direct_url.clone(),
        master,
        audit,
        reload_interval: Duration::from_secs(2),
    };
    let key_path = key_path.display().to_string();
    let audit_path = audit_path.display().to_string();
    serve_encrypted(
        config,
        options,
        move |addr| {
            let proxy_url = format!("postgres://postgres@{addr}/{DATABASE}");
            println!(
                "\npgseal dev is running.\n\n\
                 Through the pgseal proxy (what applications see: plaintext):\n  \
                 psql '{proxy_url}' -c 'SELECT name, email, phone, birth_date, birth_time FROM users'\n  \
                 psql '{proxy_url}' -c \"INSERT INTO users (name, email, birth_date) VALUES ('Dana', 'dana@example.com', '1988-10-23')\"\n\n\
                 PostgreSQL directly (what is stored: ciphertext in every pgseal.* column):\n  \
                 psql '{direct_url}' -c 'SELECT name, email, birth_date FROM users'\n  \
                 psql '{direct_url}' -c '\\d users'\n\n\
                 Encrypted columns and their keys:\n  \
                 DATABASE_URL='{direct_url}' pgseal columns\n\n\
                 Try writing plaintext around pgseal (PostgreSQL refuses it):\n  \
                 psql '{direct_url}' -c \"INSERT INTO users (name, phone) VALUES ('Eve', '+1 555 0100')\"\n\n\
                 The in-process library example, with this cluster's development key:\n  \
                 DATABASE_URL='{direct_url}' PGSEAL_MASTER_KEY_FILE={key_path} cargo run -p pgseal --example birth_details\n\n\
                 master key: {fingerprint} (development only, in {key_path}, removed on exit)\n\
                 audit log:  {audit_path}\n\n\
                 Press Ctrl-C to stop and remove everything."
            );
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("\nstopping: removing the proxy, the cluster, the key and the audit log…");
        },
    )
    .await
    .map_err(|e| match e {
        pgseal_proxy::ProxyError::Bind { .. } => format!(
            "{e}; another program uses {}: pass --listen 127.0.0.1:0 (any free port) or another address",
            args.listen
        ),
        other => other.to_string(),
    })?;
    drop(files);
    Ok(())
}
