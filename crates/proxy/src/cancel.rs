//! Query cancellation.
//!
//! Clients receive a `BackendKeyData` made up by the proxy (a random process ID and secret),
//! never the server's: the server's key would let anyone who learns it cancel queries on that
//! backend directly, and a proxy-owned key stays valid if sessions are ever pooled onto other
//! server connections. A client's `CancelRequest` is looked up here and re-sent to the server
//! with the server's own key, over TLS when the upstream settings use TLS (`SSLRequest`, the
//! handshake with the same certificate checks as the sessions, then the `CancelRequest`, as
//! libpq 17 does): under `sslmode=require` or stricter the key never crosses the network in
//! clear, and is never sent to a server that fails the certificate check the `sslmode` asks for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use pgseal_wire::backend::BackendKeyData;
use pgseal_wire::StartupPacket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::UpstreamTls;
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

/// Sends a `CancelRequest` with the server's key to the server, negotiating TLS first as `tls`
/// says. As with PostgreSQL, nothing is reported back to the client: cancellation is best
/// effort.
pub(crate) async fn forward_cancel(
    host: &str,
    port: u16,
    tls: &UpstreamTls,
    upstream: &BackendKeyData,
) -> Result<(), ProxyError> {
    let request = StartupPacket::Cancel {
        process_id: upstream.pid,
        secret_key: upstream.key,
    };
    let mut packet = BytesMut::new();
    request.encode(&mut packet).map_err(ProxyError::Encode)?;
    let send = async {
        let tcp = TcpStream::connect((host, port)).await.map_err(|source| {
            ProxyError::UpstreamConnect {
                host: host.to_owned(),
                port,
                source,
            }
        })?;
        let mut stream = tls.connect(tcp, host).await?;
        stream
            .write_all(&packet)
            .await
            .map_err(ProxyError::UpstreamIo)?;
        stream.flush().await.map_err(ProxyError::UpstreamIo)?;
        // The server closes the connection once it has acted on the request; waiting for that
        // keeps the cancel ordered before anything the client does next.
        let mut sink = [0u8; 64];
        loop {
            match stream.read(&mut sink).await {
                Ok(0) => break,
                Ok(_) => {}
                // A server that closes its TLS session without close_notify has still acted:
                // the request was complete when it closed.
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(err) => return Err(ProxyError::UpstreamIo(err)),
            }
        }
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

    /// A server (or someone in the middle) that answers the `SSLRequest` with 'N' is not sent
    /// the cancel key in clear when the settings require TLS.
    #[tokio::test]
    async fn no_key_in_clear_when_tls_is_required_and_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        std::fs::write(&ca, cert.pem()).expect("write CA");
        let tls = UpstreamTls::new(crate::SslMode::VerifyFull, Some(ca)).expect("settings");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let refuser = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut received = [0u8; 8];
            conn.read_exact(&mut received).await.expect("SSLRequest");
            conn.write_all(b"N").await.expect("answer");
            let mut rest = Vec::new();
            let _ = conn.read_to_end(&mut rest).await;
            (received, rest)
        });
        let server_key = BackendKeyData {
            pid: 1234,
            key: 5678,
        };
        let err = forward_cancel("127.0.0.1", port, &tls, &server_key)
            .await
            .expect_err("no TLS, no cancel");
        assert!(matches!(err, ProxyError::UpstreamTls { .. }), "{err}");
        let (received, rest) = refuser.await.expect("join");
        assert_eq!(
            i32::from_be_bytes([received[4], received[5], received[6], received[7]]),
            pgseal_wire::SSL_REQUEST_CODE
        );
        assert!(rest.is_empty(), "nothing follows the refused SSLRequest");
    }
}
