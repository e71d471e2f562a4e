//! One client connection: the startup packet, the authentication relay, then the message loop.
//!
//! Phases:
//!
//! 1. Startup: with a certificate configured, `SSLRequest` is answered `'S'` and the TLS
//!    handshake follows, and a client that opens with a TLS record (PostgreSQL 17's direct TLS)
//!    is handshaken at once; otherwise, and for `GSSENCRequest`, `'N'`. A `CancelRequest` is
//!    mapped to the server's key and forwarded; a `StartupMessage` from a plain-text client
//!    is refused when TLS is required, else sent upstream (over TLS when the upstream URL says
//!    so) unchanged except that `_pq_.` protocol options are removed and the version is 3.0
//!    (the client gets `NegotiateProtocolVersion` when it asked for more, as PostgreSQL
//!    answers).
//! 2. Authentication: both directions are relayed verbatim until `ReadyForQuery`, so every
//!    method the server offers (trust, password, md5, SCRAM) works without the proxy seeing a
//!    password in a form it keeps. Two exceptions, both about SCRAM channel binding, which
//!    cannot cross a proxy that terminates TLS: a plain-text client is never offered
//!    `SCRAM-SHA-256-PLUS`, and a TLS client whose server asks for SCRAM is asked for its
//!    password and the proxy logs in itself ([`crate::scram`]). `BackendKeyData` is replaced by
//!    a proxy-made key.
//! 3. The message loop: two directions run concurrently, each reading a batch of whole messages,
//!    passing each through the session's [`MessageHook`], and writing the batch before reading
//!    again, so a slow reader slows its writer instead of growing a buffer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pgseal_wire::backend::{
    Authentication, BackendKeyData, ErrorFields, NegotiateProtocolVersion, ParameterStatus,
    ReadyForQuery, ERROR_RESPONSE_TAG,
};
use pgseal_wire::frontend::{Parse, Query, SYNC_TAG, TERMINATE_TAG};
use pgseal_wire::{Frame, StartupPacket, WireError};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info, warn};

use crate::cancel::{forward_cancel, CancelRegistry, Registration};
use crate::config::MAX_STARTUP_PACKET_LEN;
use crate::framed::FramedReader;
use crate::halves::{self, Reader, Writer};
use crate::race::first_to_finish;
use crate::scram::{self, UpstreamBinding};
use crate::session::{BackendVerdict, FrontendVerdict, HookFactory, MessageHook, SessionState};
use crate::tls::{ClientTls, Stream, ALPN_POSTGRESQL, TLS_HANDSHAKE_RECORD};
use crate::{ProxyConfig, ProxyError};

/// How long the proxy tries to deliver its own final error to a client that is not reading.
const FINAL_ERROR_TIMEOUT: Duration = Duration::from_secs(5);

/// `SSLRequest` plus `GSSENCRequest` is the most a well-behaved client sends before its
/// startup message.
const MAX_ENCRYPTION_REQUESTS: usize = 2;

/// Tag of `FunctionCall`, which like `Query` is answered with its own `ReadyForQuery`.
const FUNCTION_CALL_TAG: u8 = b'F';

/// Writes all of `buf` and flushes: a TLS stream may otherwise keep the last records in its
/// buffer until the next write.
pub(crate) async fn send<W: AsyncWrite + Unpin>(dst: &mut W, buf: &[u8]) -> std::io::Result<()> {
    dst.write_all(buf).await?;
    dst.flush().await
}

/// What every connection task shares.
pub(crate) struct Context<F> {
    pub(crate) config: ProxyConfig,
    pub(crate) registry: Arc<CancelRegistry>,
    pub(crate) factory: F,
}

/// How a connection ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// It was a cancel request.
    Cancel,
    /// Refused: `max_connections` reached.
    TooManyClients,
    /// The client sent `Terminate`.
    ClientTerminated,
    /// The client closed the connection.
    ClientClosed,
    /// The server closed the connection (after a `FATAL` error, which the client received).
    UpstreamClosed,
    /// `idle_timeout` expired.
    IdleTimeout,
    /// Refused: TLS is required and the client did not use it.
    TlsRequired,
    /// Refused by the hook, from the answer to its session query.
    HookRefused,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel request handled",
            Self::TooManyClients => "refused: max_connections reached",
            Self::ClientTerminated => "client terminated the session",
            Self::ClientClosed => "client closed the connection",
            Self::UpstreamClosed => "server closed the connection",
            Self::IdleTimeout => "idle timeout",
            Self::TlsRequired => "refused: TLS is required and the client did not use it",
            Self::HookRefused => "refused by the message hook at session start",
        }
    }
}

/// Serves one accepted client until its session ends, and logs the outcome. Never panics on
/// anything the client or the server sends.
pub(crate) async fn serve_client<F: HookFactory>(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context<F>>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let started = Instant::now();
    // Protocol messages are small and latency-bound; Nagle's algorithm would delay them.
    let _ = stream.set_nodelay(true);
    info!(%peer, "connection opened");
    let config = &ctx.config;
    let deadline = tokio::time::Instant::now() + config.startup_timeout;
    // The startup phase runs on the whole stream, which an SSLRequest upgrades in place; the
    // stream is split in two directions once the startup message has arrived.
    let mut client = FramedReader::new(Stream::Plain(stream), config.max_message_len);
    let startup = match tokio::time::timeout_at(deadline, read_startup(&mut client, config)).await {
        Ok(result) => result,
        Err(_) => Err(startup_timeout(config)),
    };
    match startup {
        Ok(Some(packet)) => {
            let (stream, buf) = client.into_parts();
            let client_tls = stream.is_tls();
            let (read, mut write) = halves::split(stream);
            let client = FramedReader::with_buffer(read, buf, config.max_message_len);
            let session = Session {
                peer,
                deadline,
                client_tls,
            };
            let result = handle(client, &mut write, packet, session, &ctx, permit).await;
            finish(result, &mut write, peer, config, started).await;
            let _ = write.shutdown().await;
        }
        Ok(None) => {
            finish(
                Ok(End::ClientClosed),
                client.get_mut(),
                peer,
                config,
                started,
            )
            .await
        }
        Err(error) => {
            let stream = client.get_mut();
            finish(Err(error), stream, peer, config, started).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// Facts about one client connection, fixed once its startup message has arrived.
#[derive(Clone, Copy)]
struct Session {
    peer: SocketAddr,
    /// When startup and authentication must be complete.
    deadline: tokio::time::Instant,
    /// The client connection is TLS.
    client_tls: bool,
}

fn startup_timeout(config: &ProxyConfig) -> ProxyError {
    ProxyError::StartupTimeout {
        seconds: config.startup_timeout.as_secs(),
    }
}

/// Logs how a session ended, and tells the client why when an error ended it.
async fn finish<W: AsyncWrite + Unpin>(
    result: Result<End, ProxyError>,
    client_write: &mut W,
    peer: SocketAddr,
    config: &ProxyConfig,
    started: Instant,
) {
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(End::Cancel) => debug!(%peer, duration_ms, "cancel connection closed"),
        Ok(end) => info!(%peer, duration_ms, reason = end.as_str(), "connection closed"),
        Err(error) => {
            if let Some(fields) = client_error(&error, config) {
                send_error(client_write, &fields).await;
            }
            match error {
                // The client's own doing: not the operator's concern beyond a note.
                ProxyError::ClientIo(_)
                | ProxyError::ClientProtocol(_)
                | ProxyError::ClientProtocolViolation { .. }
                | ProxyError::StartupTimeout { .. } => {
                    info!(%peer, duration_ms, %error, "connection closed by a client error");
                }
                _ => warn!(%peer, duration_ms, %error, "connection closed by an error"),
            }
        }
    }
}

/// The `ErrorResponse` a client gets when its session ends with `error`, if it can still use one.
fn client_error(error: &ProxyError, config: &ProxyConfig) -> Option<ErrorFields> {
    let fields = match error {
        ProxyError::ClientProtocol(WireError::UnsupportedProtocol { .. }) => {
            ErrorFields::fatal("0A000", error_text(error))
        }
        ProxyError::ClientProtocol(wire) => {
            ErrorFields::fatal("08P01", format!("invalid message: {wire}"))
        }
        ProxyError::ClientProtocolViolation { reason } => {
            ErrorFields::fatal("08P01", format!("protocol violation: {reason}"))
        }
        ProxyError::StartupTimeout { seconds } => ErrorFields::fatal(
            "08006",
            format!("startup and authentication did not complete within {seconds} s"),
        ),
        ProxyError::UpstreamConnect { .. } => {
            ErrorFields::fatal("08006", "the pgseal proxy cannot reach the database server")
                .hint("the proxy's log says why; check that the server is running")
        }
        ProxyError::UpstreamProtocol(_) => ErrorFields::fatal(
            "08P01",
            "the database server sent a message the pgseal proxy cannot accept",
        )
        .hint(format!(
            "a message larger than the proxy's max_message_len ({} bytes) is the usual cause; \
             the proxy's log has the details",
            config.max_message_len
        )),
        ProxyError::UpstreamTls { .. } => ErrorFields::fatal(
            "08006",
            "the pgseal proxy cannot set up TLS to the database server",
        )
        .hint("the proxy's log says why; check the upstream URL's sslmode and sslrootcert"),
        ProxyError::UpstreamAuthentication { .. } => ErrorFields::fatal(
            "28000",
            "the pgseal proxy cannot complete authentication with the database server",
        )
        .hint("the proxy's log says why"),
        ProxyError::UpstreamIo(_) => {
            ErrorFields::fatal("08006", "the connection to the database server was lost")
        }
        ProxyError::Encode(_) | ProxyError::Random => {
            ErrorFields::fatal("XX000", "internal error in the pgseal proxy")
                .hint("the proxy's log has the details")
        }
        _ => return None,
    };
    Some(fields)
}

fn error_text(error: &ProxyError) -> String {
    match error {
        ProxyError::ClientProtocol(wire) => wire.to_string(),
        other => other.to_string(),
    }
}

/// Writes one `ErrorResponse`, giving up quietly if the client is gone or not reading.
async fn send_error<W: AsyncWrite + Unpin>(dst: &mut W, fields: &ErrorFields) {
    let mut buf = BytesMut::new();
    if fields.encode(ERROR_RESPONSE_TAG, &mut buf).is_ok() {
        let _ = tokio::time::timeout(FINAL_ERROR_TIMEOUT, send(dst, &buf)).await;
    }
}

async fn handle<F: HookFactory>(
    mut client: Reader,
    client_write: &mut Writer,
    packet: StartupPacket,
    session: Session,
    ctx: &Context<F>,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<End, ProxyError> {
    let config = &ctx.config;
    let Session { peer, deadline, .. } = session;
    let timed_out = || startup_timeout(config);
    let (minor, params) = match packet {
        StartupPacket::Cancel {
            process_id,
            secret_key,
        } => {
            handle_cancel(ctx, peer, process_id, secret_key).await;
            return Ok(End::Cancel);
        }
        StartupPacket::Startup { protocol, params } => (protocol.1, params),
        _ => {
            return Err(ProxyError::ClientProtocolViolation {
                reason: "unexpected packet in place of the startup message",
            })
        }
    };
    if config.require_tls && !session.client_tls {
        // Nothing reaches the server: PostgreSQL's answer to a hostssl-only pg_hba.conf.
        let fields = ErrorFields::fatal(
            "28000",
            "the pgseal proxy accepts only TLS connections, and this one is not encrypted",
        )
        .hint("connect with sslmode=require (or verify-full with the proxy's CA)");
        send_error(client_write, &fields).await;
        return Ok(End::TlsRequired);
    }
    // Held for the whole session; released when this function returns.
    let Some(_permit) = permit else {
        let fields = ErrorFields::fatal("53300", "sorry, too many clients already")
            .hint("the pgseal proxy's max_connections is reached");
        send_error(client_write, &fields).await;
        return Ok(End::TooManyClients);
    };

    // Protocol options are negotiated between client and proxy; the proxy supports none, and
    // speaks 3.0 to the server.
    let (options, params): (Vec<_>, Vec<_>) = params
        .into_iter()
        .partition(|(name, _)| name.starts_with("_pq_."));
    let negotiate = (minor > 0 || !options.is_empty()).then(|| NegotiateProtocolVersion {
        newest_minor: 0,
        unrecognized: options.into_iter().map(|(name, _)| name).collect(),
    });
    let mut state = SessionState::new(peer, params.clone());

    let upstream = tokio::time::timeout_at(deadline, connect_upstream(config))
        .await
        .map_err(|_| timed_out())??;
    let binding = UpstreamBinding {
        tls: upstream.is_tls(),
        end_point: upstream.server_end_point(),
    };
    let (upstream_read, mut upstream_write) = halves::split(upstream);
    let mut server = FramedReader::new(upstream_read, config.max_message_len);

    let mut out = BytesMut::new();
    StartupPacket::startup(params)
        .encode(&mut out)
        .map_err(ProxyError::Encode)?;
    send(&mut upstream_write, &out)
        .await
        .map_err(ProxyError::UpstreamIo)?;
    if let Some(negotiate) = negotiate {
        out.clear();
        negotiate.encode(&mut out).map_err(ProxyError::Encode)?;
        send(client_write, &out)
            .await
            .map_err(ProxyError::ClientIo)?;
    }

    let authenticated = tokio::time::timeout_at(
        deadline,
        authenticate(
            &mut client,
            client_write,
            &mut server,
            &mut upstream_write,
            &mut state,
            &ctx.registry,
            session.client_tls.then_some(binding),
        ),
    )
    .await
    .map_err(|_| timed_out())??;
    let _registration = match authenticated {
        Authenticated::Ready(registration) => registration,
        Authenticated::Ended(end) => return Ok(end),
    };
    debug!(
        %peer,
        user = state.user().unwrap_or_default(),
        database = state.database().unwrap_or_default(),
        server_pid = state.server_pid(),
        "session ready"
    );

    let mut hook = ctx.factory.create(&state);
    if let Some(sql) = hook.session_query() {
        let answer = tokio::time::timeout_at(
            deadline,
            ask_session(sql, &mut hook, &mut server, &mut upstream_write),
        )
        .await
        .map_err(|_| timed_out())??;
        if let Err(fields) = answer {
            send_error(client_write, &fields).await;
            return Ok(End::HookRefused);
        }
    }
    let end = relay(
        &mut client,
        client_write,
        &mut server,
        &mut upstream_write,
        state,
        hook,
        config.idle_timeout,
    )
    .await?;
    match end {
        End::IdleTimeout => {
            let fields = ErrorFields::fatal(
                "57P05",
                "terminating connection due to idle-session timeout",
            );
            send_error(client_write, &fields).await;
        }
        End::ClientTerminated => {
            let _ = upstream_write.shutdown().await;
        }
        _ => {}
    }
    Ok(end)
}

/// Sends the hook's session query on the server connection and hands the hook every message
/// of the answer, up to its `ReadyForQuery`; the client sees none of it. The outer error ends
/// the session for an I/O or protocol failure, the inner one is the hook's refusal.
async fn ask_session<H: MessageHook>(
    sql: &str,
    hook: &mut H,
    server: &mut Reader,
    server_write: &mut Writer,
) -> Result<Result<(), ErrorFields>, ProxyError> {
    let mut out = BytesMut::new();
    Query {
        sql: sql.to_owned(),
    }
    .encode(&mut out)
    .map_err(ProxyError::Encode)?;
    send(server_write, &out)
        .await
        .map_err(ProxyError::UpstreamIo)?;
    let mut answer = Ok(());
    loop {
        while let Some(frame) = server.try_frame().map_err(ProxyError::UpstreamProtocol)? {
            if answer.is_ok() {
                answer = hook.session_answer(&frame);
            }
            if frame.tag == ReadyForQuery::TAG {
                return Ok(answer);
            }
        }
        if server.fill().await.map_err(ProxyError::UpstreamIo)? == 0 {
            return Err(ProxyError::UpstreamIo(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
    }
}

/// Reads the client's packets up to its startup message or cancel request, answering
/// encryption requests (and upgrading the stream in place for TLS). `None` if the client closes
/// first (port probes, health checks).
async fn read_startup(
    client: &mut FramedReader<Stream>,
    config: &ProxyConfig,
) -> Result<Option<StartupPacket>, ProxyError> {
    if let (Some(tls), Stream::Plain(tcp)) = (&config.client_tls, client.get_mut()) {
        // PostgreSQL 17's direct TLS: the client starts with a TLS handshake record instead of
        // an SSLRequest. Peeking leaves the byte for whichever reader comes next.
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await.map_err(ProxyError::ClientIo)? == 0 {
            return Ok(None);
        }
        if first[0] == TLS_HANDSHAKE_RECORD {
            accept_tls(client, tls, true).await?;
        }
    }
    let mut encryption_requests = 0;
    loop {
        while let Some(packet) = client
            .try_startup(MAX_STARTUP_PACKET_LEN)
            .map_err(ProxyError::ClientProtocol)?
        {
            match packet {
                StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                    encryption_requests += 1;
                    if encryption_requests > MAX_ENCRYPTION_REQUESTS {
                        return Err(ProxyError::ClientProtocolViolation {
                            reason: "too many SSL/GSS encryption requests",
                        });
                    }
                    let tls = match (&packet, &config.client_tls) {
                        (StartupPacket::SslRequest, Some(tls)) => Some(tls),
                        _ => None,
                    };
                    if client.get_mut().is_tls() {
                        return Err(ProxyError::ClientProtocolViolation {
                            reason: "encryption requested again inside TLS",
                        });
                    }
                    let Some(tls) = tls else {
                        // 'N': not offered here; the client continues in plain text or gives
                        // up (sslmode=require).
                        send(client.get_mut(), b"N")
                            .await
                            .map_err(ProxyError::ClientIo)?;
                        continue;
                    };
                    if client.has_partial() {
                        // Bytes sent before the handshake would be taken as if they had come
                        // through TLS (CVE-2021-23214 in PostgreSQL): refused.
                        return Err(ProxyError::ClientProtocolViolation {
                            reason: "data sent after SSLRequest before the TLS handshake",
                        });
                    }
                    send(client.get_mut(), b"S")
                        .await
                        .map_err(ProxyError::ClientIo)?;
                    accept_tls(client, tls, false).await?;
                }
                other => return Ok(Some(other)),
            }
        }
        if client.fill().await.map_err(ProxyError::ClientIo)? == 0 {
            return Ok(None);
        }
    }
}

/// The TLS handshake with a client, replacing its plain stream. `direct`: the client skipped
/// `SSLRequest`, so it must name the protocol by ALPN, as PostgreSQL 17 requires.
async fn accept_tls(
    client: &mut FramedReader<Stream>,
    tls: &ClientTls,
    direct: bool,
) -> Result<(), ProxyError> {
    let Stream::Plain(tcp) = std::mem::replace(client.get_mut(), Stream::Detached) else {
        return Err(ProxyError::ClientProtocolViolation {
            reason: "encryption requested again inside TLS",
        });
    };
    let stream = tls
        .acceptor()
        .accept(tcp)
        .await
        .map_err(ProxyError::ClientIo)?;
    if direct && stream.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
        return Err(ProxyError::ClientProtocolViolation {
            reason: "direct TLS without the ALPN protocol \"postgresql\"",
        });
    }
    *client.get_mut() = Stream::FromClient(Box::new(stream));
    Ok(())
}

async fn handle_cancel<F>(ctx: &Context<F>, peer: SocketAddr, pid: i32, secret: i32) {
    let Some(upstream) = ctx.registry.lookup(pid, secret) else {
        // Like PostgreSQL, say nothing to the requester: a wrong key must not be confirmable.
        info!(%peer, "cancel request for no live session ignored");
        return;
    };
    let config = &ctx.config;
    match forward_cancel(
        &config.upstream_host,
        config.upstream_port,
        &config.upstream_tls,
        &upstream,
    )
    .await
    {
        Ok(()) => debug!(%peer, server_pid = upstream.pid, "cancel request forwarded"),
        Err(error) => warn!(%peer, %error, "cannot forward a cancel request"),
    }
}

async fn connect_upstream(config: &ProxyConfig) -> Result<Stream, ProxyError> {
    let connect = TcpStream::connect((config.upstream_host.as_str(), config.upstream_port));
    let stream = match tokio::time::timeout(config.connect_timeout, connect).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
    .map_err(|source| ProxyError::UpstreamConnect {
        host: config.upstream_host.clone(),
        port: config.upstream_port,
        source,
    })?;
    let _ = stream.set_nodelay(true);
    config
        .upstream_tls
        .connect(stream, &config.upstream_host)
        .await
}

enum Authenticated {
    /// `ReadyForQuery` arrived; the session's cancel key (if the server sent one).
    Ready(Option<Registration>),
    /// The session ended during authentication (wrong password, client gave up, ...).
    Ended(End),
}

/// Relays authentication both ways until the server's first `ReadyForQuery`.
///
/// `tls_client` is `Some` (with the facts of the server connection) when the client is on TLS:
/// a SCRAM exchange is then terminated by the proxy ([`scram::terminate`]); otherwise the
/// channel-bound SCRAM variants are withdrawn from the server's offer.
///
/// Nothing here is logged or kept: the client's messages are password, md5 or SCRAM responses.
async fn authenticate(
    client: &mut Reader,
    client_write: &mut Writer,
    server: &mut Reader,
    server_write: &mut Writer,
    state: &mut SessionState,
    registry: &Arc<CancelRegistry>,
    mut tls_client: Option<UpstreamBinding>,
) -> Result<Authenticated, ProxyError> {
    let mut out = BytesMut::new();
    let mut registration = None;
    loop {
        // Frames already buffered first: the server may send several messages at once.
        let mut ready = false;
        while !ready {
            let Some(frame) = server.try_frame().map_err(ProxyError::UpstreamProtocol)? else {
                break;
            };
            match frame.tag {
                Authentication::TAG => match Authentication::decode(&frame.body) {
                    Ok(Authentication::Ok) => debug!(peer = %state.peer(), "authenticated"),
                    Ok(Authentication::Sasl { mechanisms }) => {
                        if let Some(binding) = tls_client.take() {
                            // Whatever preceded it (notices) reaches the client first.
                            if !out.is_empty() {
                                send(client_write, &out)
                                    .await
                                    .map_err(ProxyError::ClientIo)?;
                                out.clear();
                            }
                            let outcome = scram::terminate(
                                client,
                                client_write,
                                server,
                                server_write,
                                &mechanisms,
                                binding,
                            )
                            .await?;
                            match outcome {
                                // The server's AuthenticationOk and start-up follow.
                                scram::Outcome::Done => {}
                                // Its error reached the client; its close ends the loop.
                                scram::Outcome::Refused => {}
                                scram::Outcome::ClientGone { terminated: true } => {
                                    return Ok(Authenticated::Ended(End::ClientTerminated))
                                }
                                scram::Outcome::ClientGone { terminated: false } => {
                                    return Ok(Authenticated::Ended(End::ClientClosed))
                                }
                            }
                            continue;
                        }
                        // A plain-text client cannot bind to the server's certificate, and
                        // one that picked PLUS would fail: offer only what can work.
                        let offer: Vec<String> = mechanisms
                            .into_iter()
                            .filter(|m| !m.ends_with("-PLUS"))
                            .collect();
                        if offer.is_empty() {
                            return Err(ProxyError::UpstreamAuthentication {
                                problem: "the server offers only channel-bound SCRAM \
                                          (SCRAM-SHA-256-PLUS), which cannot pass through a \
                                          proxy; let clients use TLS to the proxy, or allow \
                                          SCRAM-SHA-256"
                                    .to_owned(),
                            });
                        }
                        Authentication::Sasl { mechanisms: offer }
                            .encode(&mut out)
                            .map_err(ProxyError::Encode)?;
                        continue;
                    }
                    _ => {}
                },
                BackendKeyData::TAG => {
                    let key = BackendKeyData::decode(&frame.body)
                        .map_err(ProxyError::UpstreamProtocol)?;
                    state.set_server_pid(key.pid);
                    let registered = registry.register(key)?;
                    registered
                        .client_key()
                        .encode(&mut out)
                        .map_err(ProxyError::Encode)?;
                    registration = Some(registered);
                    continue;
                }
                ParameterStatus::TAG => record_parameter(state, &frame.body),
                ReadyForQuery::TAG => {
                    record_ready(state, &frame.body);
                    ready = true;
                }
                _ => {}
            }
            frame.encode(&mut out).map_err(ProxyError::Encode)?;
        }
        if !out.is_empty() {
            send(client_write, &out)
                .await
                .map_err(ProxyError::ClientIo)?;
            out.clear();
        }
        if ready {
            return Ok(Authenticated::Ready(registration));
        }

        tokio::select! {
            read = client.fill() => {
                if read.map_err(ProxyError::ClientIo)? == 0 {
                    return Ok(Authenticated::Ended(End::ClientClosed));
                }
                while let Some(frame) = client.try_frame().map_err(ProxyError::ClientProtocol)? {
                    if frame.tag == TERMINATE_TAG {
                        return Ok(Authenticated::Ended(End::ClientTerminated));
                    }
                    frame.encode(&mut out).map_err(ProxyError::Encode)?;
                }
                if !out.is_empty() {
                    send(server_write, &out).await.map_err(ProxyError::UpstreamIo)?;
                    out.clear();
                }
            }
            read = server.fill() => {
                if read.map_err(ProxyError::UpstreamIo)? == 0 {
                    return if server.has_partial() {
                        Err(ProxyError::UpstreamIo(std::io::ErrorKind::UnexpectedEof.into()))
                    } else {
                        // After a FATAL error (wrong password, no such database), which the
                        // client has already received.
                        Ok(Authenticated::Ended(End::UpstreamClosed))
                    };
                }
            }
        }
    }
}

fn record_parameter(state: &mut SessionState, body: &Bytes) {
    match ParameterStatus::decode(body) {
        Ok(status) => state.set_parameter(status.name, status.value),
        // Forwarded regardless: the client may cope, and the hook sees the old value.
        Err(error) => debug!(peer = %state.peer(), %error, "undecodable ParameterStatus"),
    }
}

fn record_ready(state: &mut SessionState, body: &Bytes) {
    match ReadyForQuery::decode(body) {
        Ok(ready) => state.set_transaction_status(ready.status),
        Err(error) => debug!(peer = %state.peer(), %error, "undecodable ReadyForQuery"),
    }
}

/// A message a hook rejected, waiting for the server's error that takes its place.
struct PendingReject {
    /// The query cycle (count of `Query`/`Sync`/`FunctionCall` sent before it) it belongs to.
    cycle: u64,
    /// The identifier in the failing statement sent in its place; the server's syntax error
    /// quotes it in every locale.
    token: String,
    fields: ErrorFields,
}

/// State both directions of the message loop share.
struct Shared<H> {
    state: SessionState,
    hook: H,
    /// Messages that each end a query cycle with one `ReadyForQuery`, sent so far.
    cycles_sent: u64,
    /// `ReadyForQuery` messages received so far.
    cycles_done: u64,
    /// Since when every cycle is answered and the client has sent nothing; kept only with an
    /// idle timeout (reading the clock at every `ReadyForQuery` is not free).
    idle_since: Option<Instant>,
    tracks_idle: bool,
    rejects: Vec<PendingReject>,
}

impl<H> Shared<H> {
    fn send_upstream(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), ProxyError> {
        if matches!(frame.tag, Query::TAG | SYNC_TAG | FUNCTION_CALL_TAG) {
            self.cycles_sent += 1;
        }
        frame.encode(out).map_err(ProxyError::Encode)
    }
}

// Both directions run in one task and never hold the lock across an await; a poisoned lock
// can only come from a hook that panicked, which has already unwound this task.
fn lock<H>(shared: &Mutex<Shared<H>>) -> MutexGuard<'_, Shared<H>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn relay<H: MessageHook>(
    client: &mut Reader,
    client_write: &mut Writer,
    server: &mut Reader,
    server_write: &mut Writer,
    state: SessionState,
    hook: H,
    idle_timeout: Option<Duration>,
) -> Result<End, ProxyError> {
    let shared = Mutex::new(Shared {
        state,
        hook,
        cycles_sent: 0,
        cycles_done: 0,
        idle_since: Some(Instant::now()),
        tracks_idle: idle_timeout.is_some(),
        rejects: Vec::new(),
    });
    // Whichever direction ends first ends the session; the other is dropped mid-read (reads
    // are cancel-safe) or mid-write (the connection is being closed anyway). Each direction is
    // polled only when something it waits for woke it (race.rs).
    first_to_finish(
        client_to_server(client, server_write, &shared, idle_timeout),
        server_to_client(server, client_write, &shared),
    )
    .await
}

async fn client_to_server<H: MessageHook>(
    client: &mut Reader,
    server_write: &mut Writer,
    shared: &Mutex<Shared<H>>,
    idle_timeout: Option<Duration>,
) -> Result<End, ProxyError> {
    let mut out = BytesMut::new();
    let mut skip_to_sync = false;
    let mut rejected = 0u64;
    // A message held while the hook asked to wait before judging it.
    let mut held: Option<Frame> = None;
    loop {
        let mut terminate = false;
        let mut wait = None;
        {
            let mut guard = lock(shared);
            let sh = &mut *guard;
            loop {
                let frame = match held.take() {
                    Some(frame) => frame,
                    None => match client.try_frame().map_err(ProxyError::ClientProtocol)? {
                        Some(frame) => frame,
                        None => break,
                    },
                };
                sh.idle_since = None;
                if frame.tag == TERMINATE_TAG {
                    // Let the server end the session cleanly instead of seeing an EOF.
                    frame.encode(&mut out).map_err(ProxyError::Encode)?;
                    terminate = true;
                    break;
                }
                if skip_to_sync {
                    // A rejected extended-protocol message: like the server after an error,
                    // discard everything up to Sync, which ends the failed cycle.
                    if frame.tag == SYNC_TAG {
                        skip_to_sync = false;
                        sh.send_upstream(&frame, &mut out)?;
                    }
                    continue;
                }
                if let Some(until) = sh.hook.wait_before_frontend(&frame) {
                    held = Some(frame);
                    wait = Some(until);
                    break;
                }
                let tag = frame.tag;
                match sh.hook.frontend(&sh.state, frame) {
                    FrontendVerdict::Forward(frame) => sh.send_upstream(&frame, &mut out)?,
                    FrontendVerdict::Replace(frames) => {
                        for frame in &frames {
                            sh.send_upstream(frame, &mut out)?;
                        }
                    }
                    FrontendVerdict::Reject(fields) => {
                        rejected += 1;
                        skip_to_sync = reject(sh, tag, fields, rejected, &mut out)?;
                    }
                }
            }
        }
        if !out.is_empty() {
            send(server_write, &out)
                .await
                .map_err(ProxyError::UpstreamIo)?;
            out.clear();
        }
        if terminate {
            return Ok(End::ClientTerminated);
        }
        if let Some(until) = wait {
            // The lock is released: the server direction keeps flowing meanwhile.
            until.await;
            continue;
        }
        let read = match idle_timeout {
            None => client.fill().await,
            Some(limit) => match fill_unless_idle(client, shared, limit).await {
                Some(read) => read,
                None => return Ok(End::IdleTimeout),
            },
        };
        if read.map_err(ProxyError::ClientIo)? == 0 {
            if client.has_partial() {
                debug!("client closed the connection in the middle of a message");
            }
            return Ok(End::ClientClosed);
        }
    }
}

/// Sends the server, in place of a rejected message, a statement that fails to parse, so the
/// server fails the cycle exactly as PostgreSQL would have, and registers the hook's error to
/// take the place of the server's. Returns whether the rest of the cycle must be discarded.
fn reject<H>(
    sh: &mut Shared<H>,
    tag: u8,
    fields: ErrorFields,
    sequence: u64,
    out: &mut BytesMut,
) -> Result<bool, ProxyError> {
    // Fixed width, so no token is a prefix of another.
    let token = format!("pgseal_reject_{sequence:016x}");
    let cycle = sh.cycles_sent;
    let skip_to_sync = match tag {
        Query::TAG | FUNCTION_CALL_TAG => {
            Query { sql: token.clone() }
                .encode(out)
                .map_err(ProxyError::Encode)?;
            sh.cycles_sent += 1;
            false
        }
        _ => {
            Parse {
                name: String::new(),
                sql: token.clone(),
                param_types: Vec::new(),
            }
            .encode(out)
            .map_err(ProxyError::Encode)?;
            if tag == SYNC_TAG {
                sh.send_upstream(&Frame::new(SYNC_TAG, Bytes::new()), out)?;
                false
            } else {
                true
            }
        }
    };
    sh.rejects.push(PendingReject {
        cycle,
        token,
        fields,
    });
    Ok(skip_to_sync)
}

/// Reads from the client, but gives up once the session has been idle for `limit`. `None`
/// when it has.
async fn fill_unless_idle<H>(
    client: &mut Reader,
    shared: &Mutex<Shared<H>>,
    limit: Duration,
) -> Option<std::io::Result<usize>> {
    loop {
        // Re-checked after every wake-up: a cycle may have completed (idle from then on) or
        // not (a long query is never idle) while this direction waited.
        let wait = match lock(shared).idle_since {
            Some(since) => limit.saturating_sub(since.elapsed()),
            None => limit,
        };
        if let Ok(read) = tokio::time::timeout(wait, client.fill()).await {
            return Some(read);
        }
        if lock(shared)
            .idle_since
            .is_some_and(|since| since.elapsed() >= limit)
        {
            return None;
        }
    }
}

async fn server_to_client<H: MessageHook>(
    server: &mut Reader,
    client_write: &mut Writer,
    shared: &Mutex<Shared<H>>,
) -> Result<End, ProxyError> {
    let mut out = BytesMut::new();
    loop {
        {
            let mut guard = lock(shared);
            let sh = &mut *guard;
            while let Some(frame) = server.try_frame().map_err(ProxyError::UpstreamProtocol)? {
                match frame.tag {
                    ParameterStatus::TAG => record_parameter(&mut sh.state, &frame.body),
                    ReadyForQuery::TAG => {
                        record_ready(&mut sh.state, &frame.body);
                        sh.cycles_done += 1;
                        let done = sh.cycles_done;
                        // A reject whose cycle is over had its place taken by an earlier error.
                        sh.rejects.retain(|r| r.cycle >= done);
                        if sh.tracks_idle && sh.cycles_done >= sh.cycles_sent {
                            sh.idle_since = Some(Instant::now());
                        }
                    }
                    ERROR_RESPONSE_TAG if !sh.rejects.is_empty() => {
                        if let Some(fields) = take_reject(sh, &frame.body) {
                            fields
                                .encode(ERROR_RESPONSE_TAG, &mut out)
                                .map_err(ProxyError::Encode)?;
                            continue;
                        }
                    }
                    _ => {}
                }
                match sh.hook.backend(&sh.state, frame) {
                    BackendVerdict::Forward(frame) => {
                        frame.encode(&mut out).map_err(ProxyError::Encode)?;
                    }
                    BackendVerdict::Replace(frames) => {
                        for frame in &frames {
                            frame.encode(&mut out).map_err(ProxyError::Encode)?;
                        }
                    }
                }
            }
        }
        if !out.is_empty() {
            send(client_write, &out)
                .await
                .map_err(ProxyError::ClientIo)?;
            out.clear();
        }
        if server.fill().await.map_err(ProxyError::UpstreamIo)? == 0 {
            return if server.has_partial() {
                Err(ProxyError::UpstreamIo(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ))
            } else {
                Ok(End::UpstreamClosed)
            };
        }
    }
}

/// The hook's error, if this server error is the one its failing stand-in statement caused.
fn take_reject<H>(sh: &mut Shared<H>, body: &Bytes) -> Option<ErrorFields> {
    let current = sh.cycles_done;
    let message = ErrorFields::decode(body).ok()?;
    let text = message.message()?;
    let index = sh
        .rejects
        .iter()
        .position(|r| r.cycle == current && text.contains(&r.token))?;
    Some(sh.rejects.remove(index).fields)
}
