//! Session workers: threads that each run a single-threaded runtime and own the sessions the
//! listener hands them, from the first byte to the last.
//!
//! Why not one work-stealing runtime for everything: a session is two sockets taking turns, and
//! the proxy's work per message is a few microseconds. On tokio's multi-threaded runtime the
//! I/O driver's wake-up of a session often lands on a worker other than the one polling the
//! driver, which must then be unparked with a `futex` call: about one per transaction, for work
//! that pgbouncer's single event loop does without. A session pinned to one thread is woken on
//! that thread. One worker per core keeps every core in use; each new session goes to the
//! worker with the fewest open sessions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tracing::{error, warn};

use crate::connection::{serve_client, Context};
use crate::session::HookFactory;
use crate::ProxyError;

/// A connection accepted by the listener, on its way to a worker.
struct Accepted {
    /// Taken off the listener's runtime, to be registered with the worker's own.
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    /// Counts the session on its worker until the session ends, however it ends.
    open: OpenSession,
}

/// One open session on a worker: decrements the worker's count when dropped.
struct OpenSession(Arc<AtomicUsize>);

impl OpenSession {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One worker as the listener sees it.
struct Worker {
    jobs: mpsc::UnboundedSender<Accepted>,
    open_sessions: Arc<AtomicUsize>,
    /// Completes (or is dropped) when the worker's thread has closed all its sessions.
    finished: oneshot::Receiver<()>,
}

/// The running workers.
pub(crate) struct Workers {
    workers: Vec<Worker>,
}

impl Workers {
    /// Starts `count` workers serving with `context`.
    ///
    /// # Errors
    /// [`ProxyError::Workers`] when a runtime or a thread cannot be created; the workers
    /// already started then stop.
    pub(crate) fn start<F: HookFactory>(
        count: usize,
        context: &Arc<Context<F>>,
    ) -> Result<Self, ProxyError> {
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            // Built here rather than on the thread, so that a failure is reported to the caller.
            // I/O and timers only: the signal and process drivers of `enable_all` would reap
            // child processes at every park, on a thread that has none.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|source| ProxyError::Workers { source })?;
            let (jobs, receiver) = mpsc::unbounded_channel();
            let (done, finished) = oneshot::channel();
            let context = Arc::clone(context);
            std::thread::Builder::new()
                .name(format!("pgseal-worker-{index}"))
                // The SQL analysis runs in place on a session's thread; see the constant.
                .stack_size(crate::RECOMMENDED_THREAD_STACK)
                .spawn(move || {
                    runtime.block_on(run_worker(receiver, context));
                    let _ = done.send(());
                })
                .map_err(|source| ProxyError::Workers { source })?;
            workers.push(Worker {
                jobs,
                open_sessions: Arc::new(AtomicUsize::new(0)),
                finished,
            });
        }
        Ok(Self { workers })
    }

    /// Hands a freshly accepted connection to the worker with the fewest open sessions.
    pub(crate) fn dispatch(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|worker| worker.open_sessions.load(Ordering::Relaxed))
        else {
            // Not reached: the configuration asks for at least one worker.
            error!(%peer, "no proxy worker to serve the connection; closing it");
            return;
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%peer, %error, "cannot hand the connection to a worker; closing it");
                return;
            }
        };
        let accepted = Accepted {
            stream,
            peer,
            permit,
            open: OpenSession::new(&worker.open_sessions),
        };
        if worker.jobs.send(accepted).is_err() {
            // Only when the worker's thread has died, which a panicking session cannot cause.
            error!(%peer, "a proxy worker has stopped; the connection is closed");
        }
    }

    /// Stops every worker: their open sessions are closed (their servers roll back whatever
    /// transaction was open), and this returns once all are.
    pub(crate) async fn shutdown(self) {
        let mut finished = Vec::with_capacity(self.workers.len());
        for worker in self.workers {
            // Closing the channel is the signal to stop.
            drop(worker.jobs);
            finished.push(worker.finished);
        }
        for done in finished {
            let _ = done.await;
        }
    }

    /// Sessions open on all workers together.
    pub(crate) fn open_sessions(&self) -> usize {
        self.workers
            .iter()
            .map(|worker| worker.open_sessions.load(Ordering::Relaxed))
            .sum()
    }
}

/// A worker's loop: runs each connection it is handed in a task of its own until the listener
/// closes the channel, then closes the sessions still open.
async fn run_worker<F: HookFactory>(
    mut jobs: mpsc::UnboundedReceiver<Accepted>,
    context: Arc<Context<F>>,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(Accepted { stream, peer, permit, open }) = job else {
                    break;
                };
                match TcpStream::from_std(stream) {
                    Ok(stream) => {
                        let context = Arc::clone(&context);
                        sessions.spawn(async move {
                            serve_client(stream, peer, context, permit).await;
                            drop(open);
                        });
                    }
                    Err(error) => {
                        warn!(%peer, %error, "a worker cannot take over the connection; closing it");
                    }
                }
            }
            Some(joined) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(join_error) = joined {
                    if join_error.is_panic() {
                        // The payload is not logged: it may quote data the task handled.
                        error!("a connection task panicked; that connection is closed, \
                                the proxy keeps serving");
                    }
                }
            }
        }
    }
    sessions.shutdown().await;
}
