//! Connecting to PostgreSQL from a `--database-url` / `DATABASE_URL`, with errors that name the
//! server but never the password.

use tokio_postgres::{Client, Config};

/// The `--database-url` flag shared by every command that talks to a database.
#[derive(clap::Args, Clone)]
pub struct DatabaseArgs {
    /// PostgreSQL connection string (URL or key=value form).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// Describes where a config points (host, port, database, user), for messages. Never the password.
pub fn describe(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// Connects, returning a client whose connection task runs on the current runtime.
///
/// TLS follows libpq's `sslmode` (`disable`, `allow`, `prefer` — the default —, `require`,
/// `verify-ca`, `verify-full`) and `sslrootcert`, exactly as the proxy's connections to the
/// server do.
pub async fn connect(args: &DatabaseArgs) -> Result<Client, String> {
    let url = args.database_url.as_deref().ok_or(
        "no database given: set DATABASE_URL or pass --database-url \
         (e.g. postgres://user@localhost:5432/app)",
    )?;
    let (config, tls) = pgseal_proxy::postgres_config(url).map_err(|err| {
        // The problem never quotes the string, which may hold a password.
        let problem = match err {
            pgseal_proxy::ProxyError::InvalidUpstreamUrl { problem } => problem,
            other => other.to_string(),
        };
        format!(
            "the database URL is not a valid PostgreSQL connection string ({problem}); \
             expected postgres://user[:password]@host[:port]/database"
        )
    })?;
    let target = describe(&config);
    let (client, connection) = config.connect(tls).await.map_err(|err| {
        format!(
            "cannot connect to the database at {target}: {}. Check DATABASE_URL and that \
             PostgreSQL is running",
            pgseal::describe_db_error(&err)
        )
    })?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!("database connection closed: {err}");
        }
    });
    Ok(client)
}
