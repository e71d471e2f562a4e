//! Per-session state and the seam where the encryption layer plugs in.
//!
//! Every message that crosses the proxy after the session is ready passes through a
//! [`MessageHook`]: frontend messages before they go to the server, backend messages before
//! they go to the client. The hook sees the undecoded [`Frame`] (decode it with
//! [`FrontendMessage::decode`](pgseal_wire::FrontendMessage::decode) or
//! [`BackendMessage::decode`](pgseal_wire::BackendMessage::decode) only when it needs to) and
//! the [`SessionState`], and answers with a verdict. [`PassThrough`] forwards everything byte
//! for byte.
//!
//! Authentication messages never reach a hook: they carry passwords and SCRAM proofs, and the
//! proxy relays them without keeping them.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use pgseal_wire::backend::{ErrorFields, TransactionStatus};
use pgseal_wire::Frame;

/// What to do with one message from the client.
#[derive(Debug)]
#[non_exhaustive]
pub enum FrontendVerdict {
    /// Send this frame to the server (the one passed in, for a pass-through).
    Forward(Frame),
    /// Send these frames to the server instead (none drops the message).
    Replace(Vec<Frame>),
    /// Do not send the message; the client gets this `ErrorResponse` exactly as if the server
    /// had rejected the message.
    ///
    /// The proxy keeps the protocol's error discipline: the server is made to fail the same
    /// cycle (it receives, in place of the message, a statement that fails to parse), so an
    /// implicit transaction is rolled back and an explicit one is marked failed as PostgreSQL
    /// would; in the extended protocol the rest of the messages up to `Sync` are discarded;
    /// the client sees one `ErrorResponse` (this one, in place of the server's) followed by the
    /// server's `ReadyForQuery`. If an earlier message of the same cycle already failed, the
    /// client sees that earlier error instead, again as PostgreSQL behaves. The unnamed
    /// prepared statement does not survive a rejected extended-protocol message.
    ///
    /// Meant for `Query`, `Parse`, `Bind`, `Describe`, `Execute`, `Close`, `Sync` and
    /// `FunctionCall`; to abort a `COPY FROM STDIN`, replace the data with a `CopyFail`.
    Reject(ErrorFields),
}

/// What to do with one message from the server.
#[derive(Debug)]
#[non_exhaustive]
pub enum BackendVerdict {
    /// Send this frame to the client (the one passed in, for a pass-through).
    Forward(Frame),
    /// Send these frames to the client instead (none drops the message).
    Replace(Vec<Frame>),
}

/// Inspects and possibly rewrites the messages of one session.
///
/// Called synchronously, in order, for each message; both directions run concurrently, so
/// calls for frontend and backend messages interleave as traffic does. Keep the work per call
/// short: the session's traffic waits for it.
pub trait MessageHook: Send + 'static {
    /// A message from the client, before it goes to the server.
    fn frontend(&mut self, session: &SessionState, frame: Frame) -> FrontendVerdict;

    /// A message from the server, before it goes to the client.
    fn backend(&mut self, session: &SessionState, frame: Frame) -> BackendVerdict;

    /// Asked before each client message (`frame`, not yet judged) is passed to
    /// [`frontend`](Self::frontend): a hook that cannot judge it yet (its database's catalog is
    /// still loading, or reloading after a schema change, or the message touches a table whose
    /// schema is about to change) returns a future; the proxy holds this message and the ones
    /// after it, awaits the future without blocking the server direction, and asks again for
    /// the same message. The default is always ready.
    ///
    /// The future must finish in bounded time; a hook that gives up waiting should then decide
    /// the held message itself (fail closed) rather than ask to wait again.
    fn wait_before_frontend(&mut self, frame: &Frame) -> Option<HookWait> {
        let _ = frame;
        None
    }

    /// A simple query the hook needs answered on the session's own server connection before
    /// any client message reaches it: what only the session can tell, such as the settings
    /// the server resolved for it from the role's and the database's defaults and its
    /// configuration file. The proxy sends it once, after authentication, and hands every
    /// message of the answer, up to and including its `ReadyForQuery`, to
    /// [`session_answer`](Self::session_answer) instead of the client. The default asks
    /// nothing.
    fn session_query(&self) -> Option<&'static str> {
        None
    }

    /// One message of the answer to [`session_query`](Self::session_query). An error ends the
    /// session: the client gets it as a `FATAL` error and nothing of its reaches the server.
    ///
    /// # Errors
    /// Whatever the hook cannot accept in the answer; it must fail closed.
    fn session_answer(&mut self, frame: &Frame) -> Result<(), ErrorFields> {
        let _ = frame;
        Ok(())
    }
}

/// What [`MessageHook::wait_before_frontend`] asks the proxy to await.
pub type HookWait = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Creates the hook of each new session, once the session is ready for queries.
///
/// Any `Fn(&SessionState) -> H` closure is a factory.
pub trait HookFactory: Send + Sync + 'static {
    /// The hook type.
    type Hook: MessageHook;

    /// The hook for a session that just became ready.
    fn create(&self, session: &SessionState) -> Self::Hook;
}

impl<F, H> HookFactory for F
where
    F: Fn(&SessionState) -> H + Send + Sync + 'static,
    H: MessageHook,
{
    type Hook = H;

    fn create(&self, session: &SessionState) -> H {
        self(session)
    }
}

/// The transparent hook: every message passes unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl MessageHook for PassThrough {
    fn frontend(&mut self, _session: &SessionState, frame: Frame) -> FrontendVerdict {
        FrontendVerdict::Forward(frame)
    }

    fn backend(&mut self, _session: &SessionState, frame: Frame) -> BackendVerdict {
        BackendVerdict::Forward(frame)
    }
}

impl HookFactory for PassThrough {
    type Hook = PassThrough;

    fn create(&self, _session: &SessionState) -> PassThrough {
        PassThrough
    }
}

/// What the proxy knows about a session, for hooks to read.
///
/// Run-time parameters are the server's latest `ParameterStatus` values. PostgreSQL 15 reports
/// the `GUC_REPORT` parameters at start-up and whenever they change: `application_name`,
/// `client_encoding`, `DateStyle`, `default_transaction_read_only`, `in_hot_standby`,
/// `integer_datetimes`, `IntervalStyle`, `is_superuser`, `server_encoding`, `server_version`,
/// `session_authorization`, `standard_conforming_strings`, `TimeZone`. It does not report
/// `extra_float_digits` or `bytea_output`: a layer that depends on them must track them itself
/// (start from [`SessionState::startup_param`] and the `options` parameter) or produce output
/// that does not depend on them.
#[derive(Debug, Clone)]
pub struct SessionState {
    peer: SocketAddr,
    startup_params: Vec<(String, String)>,
    parameters: BTreeMap<String, String>,
    transaction_status: TransactionStatus,
    server_pid: i32,
}

impl SessionState {
    pub(crate) fn new(peer: SocketAddr, startup_params: Vec<(String, String)>) -> Self {
        Self {
            peer,
            startup_params,
            parameters: BTreeMap::new(),
            transaction_status: TransactionStatus::Idle,
            server_pid: 0,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Startup parameters exactly as the client sent them (`user`, `database`, `options`,
    /// `application_name`, ...), minus `_pq_.` protocol options.
    pub fn startup_params(&self) -> &[(String, String)] {
        &self.startup_params
    }

    /// The startup parameter `name`, if the client sent it.
    pub fn startup_param(&self, name: &str) -> Option<&str> {
        self.startup_params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The role the client logs in as.
    pub fn user(&self) -> Option<&str> {
        self.startup_param("user")
    }

    /// The database the client connects to (PostgreSQL defaults it to the user name).
    pub fn database(&self) -> Option<&str> {
        self.startup_param("database").or_else(|| self.user())
    }

    /// The latest value the server reported for run-time parameter `name` (exact,
    /// case-sensitive name as the server reports it, e.g. `DateStyle`).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// Every reported run-time parameter.
    pub fn parameters(&self) -> &BTreeMap<String, String> {
        &self.parameters
    }

    /// `client_encoding` (pgseal needs `UTF8`; this layer only records it).
    pub fn client_encoding(&self) -> Option<&str> {
        self.parameter("client_encoding")
    }

    /// `DateStyle`, e.g. `ISO, MDY`.
    pub fn date_style(&self) -> Option<&str> {
        self.parameter("DateStyle")
    }

    /// `TimeZone`, e.g. `UTC`.
    pub fn time_zone(&self) -> Option<&str> {
        self.parameter("TimeZone")
    }

    /// `IntervalStyle`, e.g. `postgres`.
    pub fn interval_style(&self) -> Option<&str> {
        self.parameter("IntervalStyle")
    }

    /// `server_version`, e.g. `15.8 (Debian 15.8-0+deb12u1)`.
    pub fn server_version(&self) -> Option<&str> {
        self.parameter("server_version")
    }

    /// `integer_datetimes` (`on` on every supported server).
    pub fn integer_datetimes(&self) -> Option<&str> {
        self.parameter("integer_datetimes")
    }

    /// `standard_conforming_strings`.
    pub fn standard_conforming_strings(&self) -> Option<&str> {
        self.parameter("standard_conforming_strings")
    }

    /// The transaction status of the latest `ReadyForQuery`.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.transaction_status
    }

    /// The process ID of the server backend serving this session (what `pg_backend_pid()`
    /// returns; the client was given a different, proxy-made one for cancelling).
    pub fn server_pid(&self) -> i32 {
        self.server_pid
    }

    pub(crate) fn set_parameter(&mut self, name: String, value: String) {
        self.parameters.insert(name, value);
    }

    pub(crate) fn set_transaction_status(&mut self, status: TransactionStatus) {
        self.transaction_status = status;
    }

    pub(crate) fn set_server_pid(&mut self, pid: i32) {
        self.server_pid = pid;
    }
}
