//! The one error type of this crate.

use std::net::SocketAddr;

use pgseal_wire::WireError;

/// Everything that can go wrong in the proxy.
///
/// [`Proxy::bind`](crate::Proxy::bind), [`Proxy::serve`](crate::Proxy::serve) and
/// [`run`](crate::run) return the configuration and listener errors; the per-connection
/// variants end one client's session only and are logged, never returned by `serve`. No variant
/// carries message contents: those may hold SQL text, parameters, row data or passwords.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A configuration value is out of range.
    #[error("invalid proxy configuration: {setting} {problem}")]
    InvalidConfig {
        /// The setting at fault, e.g. `max_message_len`.
        setting: &'static str,
        /// What is wrong with it and what to use instead.
        problem: String,
    },

    /// The upstream URL cannot be understood.
    #[error("invalid upstream URL: {problem}; expected postgres://[user@]host[:port][/database]")]
    InvalidUpstreamUrl {
        /// What is wrong with it.
        problem: String,
    },

    /// The listening socket cannot be opened.
    #[error("cannot listen on {addr}: {source}; is another process using that address?")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The upstream PostgreSQL server cannot be reached.
    #[error(
        "cannot connect to the upstream server {host}:{port}: {source}; check that PostgreSQL \
         is running there and accepts TCP connections"
    )]
    UpstreamConnect {
        /// Upstream host.
        host: String,
        /// Upstream port.
        port: u16,
        /// The error (a timeout appears as `TimedOut`).
        source: std::io::Error,
    },

    /// TLS to the upstream server cannot be set up as the upstream URL's `sslmode` asks
    /// (the server refuses TLS, its certificate is rejected, the handshake fails).
    #[error("TLS to the upstream server {host} failed: {problem}")]
    UpstreamTls {
        /// Upstream host.
        host: String,
        /// What failed and what to check.
        problem: String,
    },

    /// The proxy, logging in to the server on the client's behalf (SCRAM with a TLS client),
    /// met an exchange it cannot complete.
    #[error("authentication to the upstream server failed: {problem}")]
    UpstreamAuthentication {
        /// What went wrong (never a password, nonce or proof).
        problem: String,
    },

    /// The client sent bytes that are not a valid protocol message.
    #[error("client protocol violation: {0}")]
    ClientProtocol(#[source] WireError),

    /// The client broke the protocol in a way that is not a malformed message.
    #[error("client protocol violation: {reason}")]
    ClientProtocolViolation {
        /// What the client did.
        reason: &'static str,
    },

    /// The upstream server sent bytes that are not a valid protocol message.
    #[error("upstream protocol violation: {0}")]
    UpstreamProtocol(#[source] WireError),

    /// Reading from or writing to the client failed.
    #[error("client connection failed: {0}")]
    ClientIo(#[source] std::io::Error),

    /// Reading from or writing to the upstream server failed.
    #[error("upstream connection failed: {0}")]
    UpstreamIo(#[source] std::io::Error),

    /// The client did not finish the startup phase (startup packet and authentication) in time.
    #[error(
        "the client did not complete startup and authentication within {seconds} s; raise \
         startup_timeout if authentication is legitimately slow"
    )]
    StartupTimeout {
        /// The configured limit.
        seconds: u64,
    },

    /// A message built by the proxy or a hook cannot be encoded.
    #[error("cannot encode a message: {0}")]
    Encode(#[source] WireError),

    /// The control URL of the encryption layer cannot be understood.
    #[error(
        "invalid control URL for the encryption layer: {problem}; expected \
         postgres://user[:password]@host[:port]/database"
    )]
    InvalidControlUrl {
        /// What is wrong with it (never the URL itself, which may hold a password).
        problem: String,
    },

    /// The encryption catalog (tables, encrypted columns, data keys) of a database cannot be
    /// loaded: the control connection fails, the master key does not match, or the pgseal
    /// schema is unusable.
    #[error("cannot load the encryption catalog of database {database}: {source}")]
    Catalog {
        /// The database.
        database: String,
        /// Why.
        #[source]
        source: pgseal::Error,
    },

    /// The threads that serve connections cannot be started.
    #[error("cannot start the proxy's worker threads: {source}; lower the number of workers")]
    Workers {
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed; cannot create a cancel key")]
    Random,
}
