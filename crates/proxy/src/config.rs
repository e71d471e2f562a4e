//! Proxy settings.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tls::{split_connection_string, ClientTls, UpstreamTls};
use crate::ProxyError;

/// Default limit of one protocol message, in bytes: 64 MiB.
///
/// The proxy holds each message whole in memory before forwarding it (so the encryption layer
/// can rewrite it), so this bounds the memory one connection can make the proxy allocate: a
/// thousand connections each sending a maximal message need 64 GiB in the worst case, where
/// PostgreSQL's own limit (1 GiB) would need a terabyte. 64 MiB still carries any ordinary row,
/// `COPY` chunk (clients send `COPY` data in chunks of a few KiB) and bulk `INSERT`; sessions
/// that store very large `bytea`/`text` values can raise it up to [`MAX_MESSAGE_LEN_LIMIT`].
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 64 << 20;

/// The largest accepted `max_message_len`: PostgreSQL's own limit for one message (1 GiB - 1).
pub const MAX_MESSAGE_LEN_LIMIT: usize = (1 << 30) - 1;

/// The smallest accepted `max_message_len`: 64 KiB, so ordinary traffic always fits.
pub const MIN_MESSAGE_LEN_LIMIT: usize = 64 << 10;

/// The largest startup packet accepted, as PostgreSQL itself limits it (10000 bytes).
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

/// The most worker threads accepted in [`ProxyConfig::workers`].
pub const MAX_WORKERS: usize = 1024;

/// Where the proxy listens, where it connects, and its limits.
///
/// Build it with [`ProxyConfig::new`] or [`ProxyConfig::with_upstream_url`] and adjust the
/// public fields; [`Proxy::bind`](crate::Proxy::bind) validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The address clients connect to (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Host name or IP address of the PostgreSQL server.
    pub upstream_host: String,
    /// TCP port of the PostgreSQL server.
    pub upstream_port: u16,
    /// Largest protocol message accepted in either direction, in bytes (length field included):
    /// see [`DEFAULT_MAX_MESSAGE_LEN`]. A client that exceeds it gets an `08P01` error and is
    /// disconnected; a server message that exceeds it ends that session with an error too.
    pub max_message_len: usize,
    /// Most client connections served at once; further clients get PostgreSQL's
    /// `53300 too_many_connections` error. Default 1000.
    pub max_connections: usize,
    /// Threads serving connections, each with a single-threaded runtime that owns the
    /// sessions handed to it (see the `workers` module). Default: one per core
    /// ([`std::thread::available_parallelism`]). At most [`MAX_WORKERS`].
    pub workers: usize,
    /// Time allowed to open the TCP connection to the server. Default 10 s.
    pub connect_timeout: Duration,
    /// Time allowed from accepting a client to its session being ready for queries (startup
    /// packet, authentication, server start-up messages), like PostgreSQL's
    /// `authentication_timeout`. Default 60 s.
    pub startup_timeout: Duration,
    /// Close a session whose server has answered everything and whose client has sent nothing
    /// for this long (PostgreSQL's `idle_session_timeout`, SQLSTATE `57P05`). A running query
    /// never counts as idle. Default `None`: never.
    pub idle_timeout: Option<Duration>,
    /// The certificate and key presented to clients that ask for TLS (`SSLRequest`, or
    /// PostgreSQL 17's direct TLS). `None` (the default): such clients are answered `'N'`.
    pub client_tls: Option<ClientTls>,
    /// Refuse clients that do not use TLS (`FATAL 28000` before anything reaches the server).
    /// Needs [`client_tls`](Self::client_tls). Cancel requests are accepted either way, as
    /// PostgreSQL accepts them before any authentication rule applies. Default `false`.
    pub require_tls: bool,
    /// TLS to the server: [`UpstreamTls::disabled`] with [`new`](Self::new), the URL's
    /// `sslmode`/`sslrootcert` with [`with_upstream_url`](Self::with_upstream_url).
    pub upstream_tls: UpstreamTls,
}

impl ProxyConfig {
    /// Settings with the defaults, listening on `listen` and forwarding to
    /// `upstream_host:upstream_port`.
    pub fn new(listen: SocketAddr, upstream_host: impl Into<String>, upstream_port: u16) -> Self {
        Self {
            listen,
            upstream_host: upstream_host.into(),
            upstream_port,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_connections: 1000,
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            connect_timeout: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(60),
            idle_timeout: None,
            client_tls: None,
            require_tls: false,
            upstream_tls: UpstreamTls::disabled(),
        }
    }

    /// Settings with the defaults and the upstream server taken from a
    /// `postgres://[user[:password]@]host[:port][/database][?...]` URL (also `postgresql://`).
    ///
    /// The host, the port and the TLS settings (`sslmode`, `sslrootcert`, as libpq reads them:
    /// see [`UpstreamTls`]) are used: clients send their own user, database and credentials,
    /// which the proxy relays. The port defaults to 5432; IPv6 hosts go in brackets.
    ///
    /// # Errors
    /// [`ProxyError::InvalidUpstreamUrl`] if the URL has another scheme, no host, a bad port,
    /// or TLS settings that cannot be used. The message never repeats the URL, which may
    /// contain a password.
    pub fn with_upstream_url(listen: SocketAddr, url: &str) -> Result<Self, ProxyError> {
        let (host, port) = parse_upstream_url(url)?;
        let (_, upstream_tls) = split_connection_string(url)?;
        let mut config = Self::new(listen, host, port);
        config.upstream_tls = upstream_tls;
        Ok(config)
    }

    /// Checks every limit.
    ///
    /// # Errors
    /// [`ProxyError::InvalidConfig`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), ProxyError> {
        if !(MIN_MESSAGE_LEN_LIMIT..=MAX_MESSAGE_LEN_LIMIT).contains(&self.max_message_len) {
            return Err(ProxyError::InvalidConfig {
                setting: "max_message_len",
                problem: format!(
                    "is {} bytes; it must be between {MIN_MESSAGE_LEN_LIMIT} and \
                     {MAX_MESSAGE_LEN_LIMIT}",
                    self.max_message_len
                ),
            });
        }
        if self.max_connections == 0 || self.max_connections > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ProxyError::InvalidConfig {
                setting: "max_connections",
                problem: format!(
                    "is {}; it must be between 1 and {}",
                    self.max_connections,
                    tokio::sync::Semaphore::MAX_PERMITS
                ),
            });
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(ProxyError::InvalidConfig {
                setting: "workers",
                problem: format!(
                    "is {}; it must be between 1 and {MAX_WORKERS} (one per core is best)",
                    self.workers
                ),
            });
        }
        if self.upstream_host.is_empty() {
            return Err(ProxyError::InvalidConfig {
                setting: "upstream_host",
                problem: "is empty; give the PostgreSQL server's host name or address".to_owned(),
            });
        }
        if self.upstream_port == 0 {
            return Err(ProxyError::InvalidConfig {
                setting: "upstream_port",
                problem: "is 0; give the PostgreSQL server's TCP port (usually 5432)".to_owned(),
            });
        }
        if self.require_tls && self.client_tls.is_none() {
            return Err(ProxyError::InvalidConfig {
                setting: "require_tls",
                problem: "is set without a TLS certificate; give tls_cert and tls_key too"
                    .to_owned(),
            });
        }
        for (setting, value) in [
            ("connect_timeout", Some(self.connect_timeout)),
            ("startup_timeout", Some(self.startup_timeout)),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(ProxyError::InvalidConfig {
                    setting,
                    problem: "is zero; give a positive duration".to_owned(),
                });
            }
        }
        Ok(())
    }
}

fn parse_upstream_url(url: &str) -> Result<(String, u16), ProxyError> {
    let bad = |problem: &str| ProxyError::InvalidUpstreamUrl {
        problem: problem.to_owned(),
    };
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| bad("it must start with postgres:// or postgresql://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    // Userinfo may itself contain '@' only percent-encoded, so the last '@' ends it.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.contains(',') {
        return Err(bad("several hosts are not supported; give exactly one"));
    }
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address opened with '[' is not closed with ']'"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("unexpected characters after the IPv6 address"))?,
            ),
        };
        (host, port)
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(bad(
            "it names no host (unix sockets are not supported upstream)",
        ));
    }
    let port = match port {
        None => 5432,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port is not a number between 1 and 65535"))?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[test]
    fn upstream_urls() {
        let cases = [
            ("postgres://db.example:6543/app", "db.example", 6543),
            (
                "postgresql://u:p%40ss@10.0.0.1/app?sslmode=disable",
                "10.0.0.1",
                5432,
            ),
            ("postgres://[::1]:5433", "::1", 5433),
            ("postgres://[fe80::1]/x", "fe80::1", 5432),
            ("postgres://user@host", "host", 5432),
        ];
        for (url, host, port) in cases {
            let c = ProxyConfig::with_upstream_url(listen(), url).expect(url);
            assert_eq!(
                (c.upstream_host.as_str(), c.upstream_port),
                (host, port),
                "{url}"
            );
        }
    }

    #[test]
    fn bad_upstream_urls_do_not_echo_the_url() {
        for url in [
            "mysql://h/db",
            "postgres://",
            "postgres://u:secretpw@/db",
            "postgres://h:0",
            "postgres://h:99999",
            "postgres://h:x",
            "postgres://[::1/db",
            "postgres://a,b/db",
        ] {
            let err = ProxyConfig::with_upstream_url(listen(), url).expect_err(url);
            assert!(
                matches!(err, ProxyError::InvalidUpstreamUrl { .. }),
                "{url}"
            );
            assert!(!err.to_string().contains("secretpw"));
        }
    }

    #[test]
    fn validation() {
        let ok = ProxyConfig::new(listen(), "localhost", 5432);
        ok.validate().expect("defaults are valid");
        let mut c = ok.clone();
        c.max_message_len = 100;
        assert!(matches!(
            c.validate(),
            Err(ProxyError::InvalidConfig {
                setting: "max_message_len",
                ..
            })
        ));
        let mut c = ok.clone();
        c.max_message_len = MAX_MESSAGE_LEN_LIMIT + 1;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.max_connections = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.workers = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.workers = MAX_WORKERS + 1;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.idle_timeout = Some(Duration::ZERO);
        assert!(matches!(
            c.validate(),
            Err(ProxyError::InvalidConfig {
                setting: "idle_timeout",
                ..
            })
        ));
        let mut c = ok;
        c.upstream_port = 0;
        assert!(c.validate().is_err());
    }
}
