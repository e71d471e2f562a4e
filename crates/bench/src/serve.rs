//! The child side of [`crate::proxy_process`]: `pgseal-bench serve-proxy`.

use std::io::{Read, Write};
use std::net::SocketAddr;

use pgseal_proxy::{Proxy, ProxyConfig};
use tokio::sync::oneshot;

use crate::BenchError;

/// Whether this binary can run the encrypting proxy, target (d).
pub(crate) const ENCRYPTION_BUILT: bool = cfg!(feature = "encryption");

/// Serves until stdin closes or SIGINT/SIGTERM arrives. With `control_url`, serves the
/// encrypting proxy with the master key from `PGSEAL_MASTER_KEY`
/// ([`crate::proxy_process::MASTER_KEY_ENV`]).
pub(crate) async fn serve_proxy(
    upstream_port: u16,
    control_url: Option<String>,
) -> Result<(), BenchError> {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = ProxyConfig::new(listen, "127.0.0.1", upstream_port);
    let shutdown = shutdown_signal()?;
    match control_url {
        None => {
            let proxy = Proxy::bind(config).await?;
            announce(proxy.local_addr())?;
            proxy.serve(shutdown).await?;
            Ok(())
        }
        Some(control_url) => serve_encrypted(config, control_url, shutdown).await,
    }
}

#[cfg(feature = "encryption")]
async fn serve_encrypted(
    config: ProxyConfig,
    control_url: String,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BenchError> {
    let master = pgseal::load_master_keys_from_env().map_err(|source| BenchError::Pgseal {
        action: "loading the master key in the proxy process",
        source,
    })?;
    let options = pgseal_proxy::EncryptionOptions {
        control_url,
        master: master.keyring,
        // Audit records are written for key loads, not per statement; off keeps the
        // benchmark's output clean without changing what is measured.
        audit: pgseal::AuditLog::disabled(),
        reload_interval: std::time::Duration::from_secs(5),
    };
    pgseal_proxy::serve_encrypted(
        config,
        options,
        |addr| {
            // The parent times out and shows this log if the announcement never arrives.
            if let Err(err) = announce(addr) {
                eprintln!("{err}");
            }
        },
        shutdown,
    )
    .await?;
    Ok(())
}

#[cfg(not(feature = "encryption"))]
async fn serve_encrypted(
    _config: ProxyConfig,
    _control_url: String,
    _shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BenchError> {
    Err(BenchError::EncryptionUnavailable)
}

/// The one line the parent waits for.
fn announce(addr: SocketAddr) -> Result<(), BenchError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}")
        .and_then(|()| stdout.flush())
        .map_err(|e| BenchError::io("announce the proxy's address on stdout", e))
}

/// Completes when stdin reaches end of file (the parent closed it, or died) or on SIGINT or
/// SIGTERM.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, BenchError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| BenchError::io("install the SIGINT handler", e))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| BenchError::io("install the SIGTERM handler", e))?;
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    // A plain thread rather than tokio's stdin: a blocked read there would hold up the
    // runtime's shutdown, while this thread simply ends with the process.
    std::thread::Builder::new()
        .name("stdin-watch".to_owned())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0_u8; 256];
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            let _ = closed_tx.send(());
        })
        .map_err(|e| BenchError::io("start the stdin watcher thread", e))?;
    Ok(async move {
        tokio::select! {
            _ = closed_rx => {}
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
