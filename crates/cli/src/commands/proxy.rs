//! `pgseal proxy`.

use std::net::SocketAddr;
use std::time::Duration;

use pgseal::{load_master_keys_from_env, AuditLog};
use pgseal_proxy::{serve_encrypted, EncryptionOptions, ProxyConfig};

use super::CommandResult;

/// Flags of `pgseal proxy`.
#[derive(clap::Args)]
pub struct Args {
    /// Address clients connect to.
    #[arg(long, default_value = "127.0.0.1:6432", env = "PGSEAL_LISTEN")]
    listen: SocketAddr,
    /// The PostgreSQL server, as a connection URL. Clients are forwarded to its host and port
    /// with their own user and database; its credentials are pgseal's own login, used to read the
    /// catalog and the wrapped data keys.
    #[arg(long, env = "PGSEAL_UPSTREAM_URL", hide_env_values = true)]
    upstream: String,
    /// How often to reload encrypted columns and keys (after DDL through the proxy it is
    /// immediate), in seconds.
    #[arg(long, default_value_t = 5)]
    reload_interval: u64,
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: Args) -> CommandResult {
    let master = load_master_keys_from_env().map_err(|e| e.to_string())?;
    let audit = AuditLog::from_env().map_err(|e| e.to_string())?;
    master.record_loaded(&audit).map_err(|e| e.to_string())?;
    let config =
        ProxyConfig::with_upstream_url(args.listen, &args.upstream).map_err(|e| e.to_string())?;
    let options = EncryptionOptions {
        control_url: args.upstream,
        master: master.keyring,
        audit,
        reload_interval: Duration::from_secs(args.reload_interval.max(1)),
    };
    let fingerprint = master_fingerprint(&options);
    serve_encrypted(
        config,
        options,
        move |addr| {
            // The first line on stdout: scripts and tests wait for it.
            println!("pgseal proxy listening on {addr} (master key {fingerprint})");
        },
        shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string())
}

fn master_fingerprint(options: &EncryptionOptions) -> String {
    options.master.current().fingerprint().to_string()
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
