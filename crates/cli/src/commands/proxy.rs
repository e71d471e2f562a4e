//! `pgseal proxy`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pgseal::{load_master_keys_from_env, AuditLog};
use pgseal_proxy::{
    serve_encrypted_with_reload, ClientTls, EncryptionOptions, ProxyConfig, ReloadHandle,
    UpstreamTls,
};

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
    /// PEM certificate chain presented to clients that ask for TLS (server certificate first).
    /// Without it, clients are told the proxy does not offer TLS. Re-read on SIGHUP. TLS to
    /// PostgreSQL is set by the upstream URL's sslmode and sslrootcert (also re-read on SIGHUP).
    #[arg(long, env = "PGSEAL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (unencrypted PKCS#8, PKCS#1 or SEC1). Re-read on SIGHUP.
    #[arg(long, env = "PGSEAL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse clients that do not use TLS (they get FATAL 28000 and a hint to use
    /// sslmode=require). Needs --tls-cert and --tls-key.
    #[arg(long, env = "PGSEAL_REQUIRE_TLS", requires = "tls_cert")]
    require_tls: bool,
    /// Threads serving client connections, each owning the sessions it is given [default: one
    /// per core].
    #[arg(long, env = "PGSEAL_WORKERS")]
    workers: Option<usize>,
}

/// Serves until Ctrl-C or SIGTERM; reloads on SIGHUP.
pub async fn run(args: Args) -> CommandResult {
    // Installed before anything else: SIGHUP's default action would end the process.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
    let master = load_master_keys_from_env().map_err(|e| e.to_string())?;
    let audit = AuditLog::from_env().map_err(|e| e.to_string())?;
    master.record_loaded(&audit).map_err(|e| e.to_string())?;
    let mut config =
        ProxyConfig::with_upstream_url(args.listen, &args.upstream).map_err(|e| e.to_string())?;
    let client_tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ClientTls::load(cert, key).map_err(|e| e.to_string())?),
        _ => None,
    };
    config.client_tls = client_tls.clone();
    // Shares the CAs with the sessions' settings and, through the file name, with the control
    // connections': reloading it reaches both.
    let upstream_tls = config.upstream_tls.clone();
    config.require_tls = args.require_tls;
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    let options = EncryptionOptions {
        control_url: args.upstream,
        master: master.keyring,
        audit,
        reload_interval: Duration::from_secs(args.reload_interval.max(1)),
    };
    let fingerprint = master_fingerprint(&options);
    let reload = ReloadHandle::new();
    let on_hangup = tokio::spawn(reload_on_sighup(
        hangups,
        ReloadSteps {
            proxy: reload.clone(),
            audit: options.audit.clone(),
            client_tls,
            upstream_tls,
        },
    ));
    let served = serve_encrypted_with_reload(
        config,
        options,
        &reload,
        move |addr| {
            // The first line on stdout: scripts and tests wait for it.
            println!("pgseal proxy listening on {addr} (master key {fingerprint})");
        },
        shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string());
    on_hangup.abort();
    served
}

/// What a SIGHUP reloads.
struct ReloadSteps {
    proxy: ReloadHandle,
    audit: AuditLog,
    /// The certificate presented to clients, if any.
    client_tls: Option<ClientTls>,
    /// TLS to the server, whose `sslrootcert` is re-read.
    upstream_tls: UpstreamTls,
}

/// On each SIGHUP, runs every reload step in turn. The steps are independent: one that fails
/// says why on stderr and keeps what it had, and the others still run.
async fn reload_on_sighup(mut hangups: tokio::signal::unix::Signal, steps: ReloadSteps) {
    while hangups.recv().await.is_some() {
        reload_master_keys(&steps).await;
        reload_tls_certificate(&steps);
    }
}

/// Re-reads the master key (`PGSEAL_MASTER_KEY_FILE`, or the unchanged `PGSEAL_MASTER_KEY`) and
/// the previous keys (`PGSEAL_PREVIOUS_MASTER_KEYS`, `PGSEAL_PREVIOUS_MASTER_KEYS_FILE`), and
/// swaps them in if they unwrap every stored data key; otherwise the keys in force stay.
async fn reload_master_keys(steps: &ReloadSteps) {
    let before = steps
        .proxy
        .master_fingerprint()
        .map(|fp| fp.to_string())
        .unwrap_or_else(|_| "none".to_owned());
    let loaded = match load_master_keys_from_env() {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!(
                "pgseal proxy: SIGHUP: the master keys were not reloaded, {before} stays in \
                 force: {err}"
            );
            return;
        }
    };
    let fingerprint = loaded.fingerprint();
    match steps.proxy.reload_master_keys(loaded.keyring.clone()).await {
        Ok(()) => {
            if let Err(err) = loaded.record_loaded(&steps.audit) {
                eprintln!("pgseal proxy: SIGHUP: {err}");
            }
            eprintln!(
                "pgseal proxy: SIGHUP: master key {fingerprint} in force (was {before}), with \
                 {} previous key(s)",
                loaded.keyring.previous().len()
            );
        }
        Err(err) => eprintln!(
            "pgseal proxy: SIGHUP: master key {fingerprint} refused, {before} stays in force: \
             {err}"
        ),
    }
}

/// Re-reads `--tls-cert` and `--tls-key`, and the upstream URL's `sslrootcert`: new client
/// handshakes and new connections to the server use them, open sessions keep theirs; files
/// that cannot be used leave what was in force.
fn reload_tls_certificate(steps: &ReloadSteps) {
    match steps.upstream_tls.reload_root_cert() {
        Ok(Some(path)) => eprintln!(
            "pgseal proxy: SIGHUP: upstream CA certificates (sslrootcert) reloaded from {}",
            path.display()
        ),
        Ok(None) => {}
        Err(err) => eprintln!(
            "pgseal proxy: SIGHUP: the upstream CA certificates were not reloaded, the previous \
             ones stay in force: {err}"
        ),
    }
    let Some(tls) = &steps.client_tls else {
        return;
    };
    match tls.reload() {
        Ok(()) => eprintln!(
            "pgseal proxy: SIGHUP: TLS certificate reloaded from {}",
            tls.cert_path().display()
        ),
        Err(err) => eprintln!(
            "pgseal proxy: SIGHUP: the TLS certificate was not reloaded, the previous one stays \
             in force: {err}"
        ),
    }
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
