//! The listener: accepts clients and hands each connection to a [worker](crate::workers).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::cancel::CancelRegistry;
use crate::connection::Context;
use crate::session::{HookFactory, PassThrough};
use crate::workers::Workers;
use crate::{ProxyConfig, ProxyError};

/// Pause after a failed `accept` (out of file descriptors, for instance), so the loop does not
/// spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A bound proxy, ready to serve.
///
/// ```no_run
/// # async fn example() -> Result<(), pgseal_proxy::ProxyError> {
/// use pgseal_proxy::{Proxy, ProxyConfig};
///
/// let config = ProxyConfig::with_upstream_url(
///     "127.0.0.1:0".parse().expect("literal address"),
///     "postgres://db.internal:5432",
/// )?;
/// let proxy = Proxy::bind(config).await?;
/// println!("clients connect to {}", proxy.local_addr());
/// proxy.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(())
/// # }
/// ```
pub struct Proxy<F: HookFactory = PassThrough> {
    listener: TcpListener,
    local_addr: SocketAddr,
    context: Arc<Context<F>>,
}

impl<F: HookFactory> std::fmt::Debug for Proxy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("local_addr", &self.local_addr)
            .field("config", &self.context.config)
            .finish_non_exhaustive()
    }
}

impl Proxy<PassThrough> {
    /// Validates `config` and opens the listening socket; every message is forwarded
    /// unchanged.
    ///
    /// # Errors
    /// [`ProxyError::InvalidConfig`], or [`ProxyError::Bind`] if the address cannot be used.
    pub async fn bind(config: ProxyConfig) -> Result<Self, ProxyError> {
        Self::bind_with_hooks(config, PassThrough).await
    }
}

impl<F: HookFactory> Proxy<F> {
    /// Like [`Proxy::bind`], with `factory` creating the [`MessageHook`](crate::MessageHook) of
    /// each session.
    ///
    /// # Errors
    /// [`ProxyError::InvalidConfig`], or [`ProxyError::Bind`] if the address cannot be used.
    pub async fn bind_with_hooks(config: ProxyConfig, factory: F) -> Result<Self, ProxyError> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: config.listen,
            source,
        })?;
        Ok(Self {
            listener,
            local_addr,
            context: Arc::new(Context {
                config,
                registry: Arc::new(CancelRegistry::default()),
                factory,
            }),
        })
    }

    /// The address the proxy listens on (with the actual port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration in use.
    pub fn config(&self) -> &ProxyConfig {
        &self.context.config
    }

    /// Accepts clients until `shutdown` completes, then closes every open session (their
    /// servers roll back whatever transaction was open) and returns.
    ///
    /// Connections are served by [`ProxyConfig::workers`] threads, each running its own
    /// single-threaded runtime; this future only accepts. Each connection is a task of its
    /// own: a client that misbehaves, or a panic while serving one, ends only that connection
    /// (the panic is logged) and the proxy keeps accepting. Errors of `accept` itself (such as
    /// running out of file descriptors) are logged and retried.
    ///
    /// # Errors
    /// [`ProxyError::Workers`] when the worker threads cannot be started.
    pub async fn serve<S: Future>(self, shutdown: S) -> Result<(), ProxyError> {
        let Self {
            listener,
            local_addr,
            context,
        } = self;
        let limit = Arc::new(Semaphore::new(context.config.max_connections));
        let workers = Workers::start(context.config.workers, &context)?;
        info!(
            listen = %local_addr,
            upstream_host = %context.config.upstream_host,
            upstream_port = context.config.upstream_port,
            workers = context.config.workers,
            "pgseal proxy accepting connections"
        );
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Over the limit the session still runs, to tell the client why.
                        let permit = Arc::clone(&limit).try_acquire_owned().ok();
                        workers.dispatch(stream, peer, permit);
                    }
                    Err(error) => {
                        warn!(%error, "cannot accept a connection; retrying");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
            }
        }
        info!(
            open_sessions = workers.open_sessions(),
            "pgseal proxy shutting down; closing open sessions"
        );
        workers.shutdown().await;
        Ok(())
    }
}

/// Binds with `config` and serves until `shutdown` completes: [`Proxy::bind`] then
/// [`Proxy::serve`].
///
/// # Errors
/// Those of [`Proxy::bind`] and [`Proxy::serve`].
pub async fn run<S: Future>(config: ProxyConfig, shutdown: S) -> Result<(), ProxyError> {
    Proxy::bind(config).await?.serve(shutdown).await
}
