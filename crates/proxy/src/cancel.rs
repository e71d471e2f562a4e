//! Query cancellation.
//!
//! Clients receive a `BackendKeyData` made up by the proxy (a random process ID and secret),
//! never the server's: the server's key would let anyone who learns it cancel queries on that
//! backend directly, and a proxy-owned key stays valid if sessions are ever pooled onto other
//! server connections. A client's `CancelRequest` is looked up here and re-sent to the server
//! with the server's own key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use pgseal_wire::backend::BackendKeyData;
use pgseal_wire::StartupPacket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ProxyError;

/// How long a forwarded cancel request may take (connect, send, server closes).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts at drawing a process ID that no live session uses; with 2^31 IDs and at most a
/// few thousand sessions, more than one is already rare.
const MAX_DRAWS: usize = 16;

struct Entry {
    secret: i32,
    upstream: BackendKeyData,
}

/// Proxy-wide map from the cancel keys handed to clients to the server's keys.
#[derive(Default)]
pub(crate) struct CancelRegistry {
    entries: Mutex<HashMap<i32, Entry>>,
}

impl std::fmt::Debug for CancelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelRegistry")
            .field("sessions", &self.lock().len())
            .finish()
    }
}

impl CancelRegistry {
    // The map is consistent after every statement, so a panic elsewhere while it was held does
    // not make it unusable.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a session whose server key is `upstream` and returns the key to give the
    /// client; the entry lives as long as the returned [`Registration`].
    pub(crate) fn register(
        self: &Arc<Self>,
        upstream: BackendKeyData,
    ) -> Result<Registration, ProxyError> {
        for _ in 0..MAX_DRAWS {
            let mut random = [0u8; 8];
            aws_lc_rs::rand::fill(&mut random).map_err(|_| ProxyError::Random)?;
            // Positive process IDs, as a real server hands out; some clients print them.
            let pid = i32::from_be_bytes([random[0] & 0x7f, random[1], random[2], random[3]]);
            let secret = i32::from_be_bytes([random[4], random[5], random[6], random[7]]);
            if pid == 0 {
                continue;
            }
            let mut entries = self.lock();
            if let std::collections::hash_map::Entry::Vacant(slot) = entries.entry(pid) {
                slot.insert(Entry { secret, upstream });
                return Ok(Registration {
                    registry: Arc::clone(self),
                    client_key: BackendKeyData { pid, key: secret },
                });
            }
        }
        Err(ProxyError::Random)
    }

    /// The server key for a client's cancel request, if the request names a live session with
    /// its correct secret.
    pub(crate) fn lookup(&self, pid: i32, secret: i32) -> Option<BackendKeyData> {
        let entries = self.lock();
        let entry = entries.get(&pid)?;
        (entry.secret == secret).then(|| entry.upstream.clone())
    }
}

/// A live session's cancel key; dropping it unregisters the session.
pub(crate) struct Registration {
    registry: Arc<CancelRegistry>,
    client_key: BackendKeyData,
}

impl Registration {
    /// The key handed to the client.
    pub(crate) fn client_key(&self) -> &BackendKeyData {
        &self.client_key
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.client_key.pid);
    }
}

/// Sends a `CancelRequest` with the server's key to the server. As with PostgreSQL, nothing is
/// reported back to the client: cancellation is best effort.
pub(crate) async fn forward_cancel(
    host: &str,
    port: u16,
    upstream: &BackendKeyData,
) -> Result<(), ProxyError> {
    let request = StartupPacket::Cancel {
        process_id: upstream.pid,
        secret_key: upstream.key,
    };
    let mut packet = BytesMut::new();
    request.encode(&mut packet).map_err(ProxyError::Encode)?;
    let send = async {
        let mut stream = TcpStream::connect((host, port)).await.map_err(|source| {
            ProxyError::UpstreamConnect {
                host: host.to_owned(),
                port,
                source,
            }
        })?;
        stream
            .write_all(&packet)
            .await
            .map_err(ProxyError::UpstreamIo)?;
        // The server closes the connection once it has acted on the request; waiting for that
        // keeps the cancel ordered before anything the client does next.
        let mut sink = [0u8; 64];
        while stream
            .read(&mut sink)
            .await
            .map_err(ProxyError::UpstreamIo)?
            > 0
        {}
        Ok(())
    };
    match tokio::time::timeout(CANCEL_TIMEOUT, send).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::UpstreamConnect {
            host: host.to_owned(),
            port,
            source: std::io::ErrorKind::TimedOut.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_only_with_the_right_secret_and_only_while_registered() {
        let registry = Arc::new(CancelRegistry::default());
        let upstream = BackendKeyData { pid: 4242, key: 7 };
        let registration = registry.register(upstream.clone()).expect("register");
        let client = registration.client_key().clone();
        assert!(client.pid > 0);
        assert_eq!(registry.lookup(client.pid, client.key), Some(upstream));
        assert_eq!(
            registry.lookup(client.pid, client.key.wrapping_add(1)),
            None
        );
        drop(registration);
        assert_eq!(registry.lookup(client.pid, client.key), None);
    }

    #[test]
    fn client_keys_are_distinct() {
        let registry = Arc::new(CancelRegistry::default());
        let regs: Vec<_> = (0..200)
            .map(|i| {
                registry
                    .register(BackendKeyData { pid: i, key: i })
                    .expect("register")
            })
            .collect();
        let mut pids: Vec<i32> = regs.iter().map(|r| r.client_key().pid).collect();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), 200);
        assert!(!format!("{registry:?}").contains("key"));
    }
}
