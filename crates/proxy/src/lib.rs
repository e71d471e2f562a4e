//! The pgseal proxy's connection layer: a PostgreSQL wire-protocol proxy that applications
//! connect to instead of the server.
//!
//! The connection layer is transparent: every message passes through byte for byte. Hooks
//! plug in through [`MessageHook`], which sees each message after the session is ready
//! ([`Proxy::bind_with_hooks`]). The encryption of columns is such a hook:
//! [`serve_encrypted`] runs the proxy with it; the [`encrypt`] module documents what it
//! encrypts, decrypts and refuses.
//!
//! ```no_run
//! # async fn example() -> Result<(), pgseal_proxy::ProxyError> {
//! use pgseal_proxy::{run, ProxyConfig};
//!
//! let config = ProxyConfig::new("0.0.0.0:6432".parse().expect("literal"), "db.internal", 5432);
//! run(config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! # What it does with a connection
//!
//! * **TLS** ([`tls`]): with [`ProxyConfig::client_tls`] set, `SSLRequest` is answered `'S'`
//!   and the handshake follows (TLS 1.2 and 1.3, rustls on aws-lc-rs), and PostgreSQL 17's
//!   direct TLS is accepted; [`ProxyConfig::require_tls`] refuses plain-text clients with
//!   `FATAL 28000`. Without a certificate, `SSLRequest` is answered `'N'`. `GSSENCRequest` is
//!   always answered `'N'`. The connections to the server (forwarded cancel requests
//!   included) follow the upstream URL's `sslmode` and `sslrootcert` ([`UpstreamTls`]); the
//!   control connections use the same settings.
//! * **Startup**: the client's parameters go to the server unchanged. The proxy speaks protocol
//!   3.0 to the server; a client asking for 3.x, x > 0, or sending `_pq_.` options receives
//!   `NegotiateProtocolVersion` (newest minor 0) from the proxy, as PostgreSQL 15 would answer.
//! * **Authentication** is relayed verbatim both ways (trust, cleartext password, md5,
//!   SCRAM-SHA-256); nothing from it is logged or kept, and no hook sees it. SCRAM channel
//!   binding cannot cross a proxy that terminates TLS, so plain-text clients are never offered
//!   `SCRAM-SHA-256-PLUS`, and for a TLS client the proxy terminates SCRAM: it asks the client
//!   for the password (inside TLS) and logs in to the server itself, channel-bound when its
//!   own connection to the server is TLS.
//! * **Cancellation**: clients receive a random `BackendKeyData` made by the proxy; a
//!   `CancelRequest` with it is re-sent to the server with the server's key. The server's key
//!   never reaches the client, and the mapping survives a future change to pooled server
//!   connections.
//! * **Messages** are framed with [`pgseal_wire::decode_frame`] and forwarded in batches:
//!   whatever whole messages one read delivered, written with one `write_all` before the next
//!   read. Memory per connection is bounded by [`ProxyConfig::max_message_len`] plus a read
//!   chunk; rows stream through as they arrive. A malformed or oversized client message ends
//!   that client's connection with `FATAL 08P01`.
//! * **Session state** ([`SessionState`]): the server's `ParameterStatus` values, the
//!   transaction status, the startup parameters.
//! * **Threads**: the listener hands each connection to one of [`ProxyConfig::workers`]
//!   threads (one per core by default), each with a single-threaded runtime, which serves it
//!   to the end: a session's wake-ups stay on its thread.
//! * **Isolation**: each connection is a task; a failure or panic in one never affects another
//!   or the listener.
//! * **Logging** (`tracing`): connections opened and closed with peer address and duration,
//!   and errors. Never message contents, SQL text, parameters or passwords.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cancel;
mod config;
mod connection;
pub mod encrypt;
mod error;
mod framed;
mod halves;
mod race;
mod scram;
mod server;
mod session;
pub mod tls;
mod workers;

pub use config::{
    ProxyConfig, DEFAULT_MAX_MESSAGE_LEN, MAX_MESSAGE_LEN_LIMIT, MAX_STARTUP_PACKET_LEN,
    MAX_WORKERS, MIN_MESSAGE_LEN_LIMIT,
};
pub use encrypt::{
    serve_encrypted, serve_encrypted_with_reload, EncryptionOptions, ReloadHandle,
    DEFAULT_RELOAD_INTERVAL, RECOMMENDED_THREAD_STACK,
};
pub use error::ProxyError;
pub use server::{run, Proxy};
pub use session::{
    BackendVerdict, FrontendVerdict, HookFactory, HookWait, MessageHook, PassThrough, SessionState,
};
pub use tls::{postgres_config, ClientTls, PostgresTls, SslMode, UpstreamTls};

/// Re-exported so hooks can name frames and errors without depending on `pgseal-wire`
/// themselves.
pub use pgseal_wire;
