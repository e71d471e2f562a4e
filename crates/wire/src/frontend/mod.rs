//! Messages the client sends to the server (after the startup phase).
//!
//! The authentication responses (`PasswordMessage`, `SASLInitialResponse`, `SASLResponse`,
//! `GSSResponse`) all share tag `'p'`; which one a frame is depends on the authentication
//! request that preceded it, so it is kept as opaque bytes, [`FrontendMessage::AuthResponse`].

mod bind;
mod copy;
mod describe;
mod execute;
mod function_call;
mod parse;
mod query;

use bytes::{BufMut, Bytes, BytesMut};

pub use bind::{Bind, BindHead};
pub use copy::CopyFail;
pub use describe::{Close, Describe, TargetKind};
pub use execute::Execute;
pub use function_call::FunctionCall;
pub use parse::Parse;
pub use query::Query;

use crate::buf::write_message;
use crate::{Frame, WireError};

/// Tag of `Sync`.
pub const SYNC_TAG: u8 = b'S';
/// Tag of `Flush`.
pub const FLUSH_TAG: u8 = b'H';
/// Tag of `Terminate`.
pub const TERMINATE_TAG: u8 = b'X';
/// Tag of `CopyData` (both directions).
pub const COPY_DATA_TAG: u8 = b'd';
/// Tag of `CopyDone` (both directions).
pub const COPY_DONE_TAG: u8 = b'c';
/// Tag of the authentication responses (password, SASL, GSS).
pub const AUTH_RESPONSE_TAG: u8 = b'p';

/// A decoded client-to-server message.
///
/// Deliberately not `#[non_exhaustive]`: the proxy matches it exhaustively, so a message type
/// added here is a compile error there rather than a silent fall-through to "forward as is".
#[derive(Clone, PartialEq, Eq)]
pub enum FrontendMessage {
    /// `Query` ('Q').
    Query(Query),
    /// `Parse` ('P').
    Parse(Parse),
    /// `Bind` ('B').
    Bind(Bind),
    /// `Describe` ('D').
    Describe(Describe),
    /// `Execute` ('E').
    Execute(Execute),
    /// `Close` ('C').
    Close(Close),
    /// `Sync` ('S').
    Sync,
    /// `Flush` ('H').
    Flush,
    /// `Terminate` ('X').
    Terminate,
    /// `CopyData` ('d'): a chunk of `COPY FROM STDIN` data.
    CopyData(Bytes),
    /// `CopyDone` ('c').
    CopyDone,
    /// `CopyFail` ('f').
    CopyFail(CopyFail),
    /// `FunctionCall` ('F').
    FunctionCall(FunctionCall),
    /// `PasswordMessage`, `SASLInitialResponse`, `SASLResponse` or `GSSResponse` ('p'): the
    /// body, undecoded, since its layout depends on the authentication exchange.
    AuthResponse(Bytes),
    /// A message type this codec does not know; forwarded as is.
    Unknown {
        /// The type byte.
        tag: u8,
        /// The body.
        body: Bytes,
    },
}

impl std::fmt::Debug for FrontendMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Query(m) => m.fmt(f),
            Self::Parse(m) => m.fmt(f),
            Self::Bind(m) => m.fmt(f),
            Self::Describe(m) => m.fmt(f),
            Self::Execute(m) => m.fmt(f),
            Self::Close(m) => m.fmt(f),
            Self::Sync => f.write_str("Sync"),
            Self::Flush => f.write_str("Flush"),
            Self::Terminate => f.write_str("Terminate"),
            // Row data, passwords and SASL proofs: sizes only.
            Self::CopyData(data) => f
                .debug_struct("CopyData")
                .field("len", &data.len())
                .finish(),
            Self::CopyDone => f.write_str("CopyDone"),
            Self::CopyFail(m) => m.fmt(f),
            Self::FunctionCall(m) => m.fmt(f),
            Self::AuthResponse(data) => f
                .debug_struct("AuthResponse")
                .field("len", &data.len())
                .finish(),
            Self::Unknown { tag, body } => f
                .debug_struct("Unknown")
                .field("tag", &char::from(*tag))
                .field("len", &body.len())
                .finish(),
        }
    }
}

fn empty(body: &Bytes, message: &'static str) -> Result<(), WireError> {
    match body.len() {
        0 => Ok(()),
        extra => Err(WireError::TrailingBytes { message, extra }),
    }
}

fn encode_raw(dst: &mut BytesMut, tag: u8, body: &[u8]) -> Result<(), WireError> {
    write_message(dst, Some(tag), |dst| {
        dst.put_slice(body);
        Ok(())
    })
}

impl FrontendMessage {
    /// Decodes a frame read from a client. Tags this codec does not know become
    /// [`FrontendMessage::Unknown`]; a known tag with a malformed body is an error.
    ///
    /// # Errors
    /// The decoding errors of the message type the tag names.
    pub fn decode(frame: &Frame) -> Result<Self, WireError> {
        let body = &frame.body;
        Ok(match frame.tag {
            Query::TAG => Self::Query(Query::decode(body)?),
            Parse::TAG => Self::Parse(Parse::decode(body)?),
            Bind::TAG => Self::Bind(Bind::decode(body)?),
            Describe::TAG => Self::Describe(Describe::decode(body)?),
            Execute::TAG => Self::Execute(Execute::decode(body)?),
            Close::TAG => Self::Close(Close::decode(body)?),
            SYNC_TAG => {
                empty(body, "Sync")?;
                Self::Sync
            }
            FLUSH_TAG => {
                empty(body, "Flush")?;
                Self::Flush
            }
            TERMINATE_TAG => {
                empty(body, "Terminate")?;
                Self::Terminate
            }
            COPY_DATA_TAG => Self::CopyData(body.clone()),
            COPY_DONE_TAG => {
                empty(body, "CopyDone")?;
                Self::CopyDone
            }
            CopyFail::TAG => Self::CopyFail(CopyFail::decode(body)?),
            FunctionCall::TAG => Self::FunctionCall(FunctionCall::decode(body)?),
            AUTH_RESPONSE_TAG => Self::AuthResponse(body.clone()),
            tag => Self::Unknown {
                tag,
                body: body.clone(),
            },
        })
    }

    /// The message type byte.
    pub fn tag(&self) -> u8 {
        match self {
            Self::Query(_) => Query::TAG,
            Self::Parse(_) => Parse::TAG,
            Self::Bind(_) => Bind::TAG,
            Self::Describe(_) => Describe::TAG,
            Self::Execute(_) => Execute::TAG,
            Self::Close(_) => Close::TAG,
            Self::Sync => SYNC_TAG,
            Self::Flush => FLUSH_TAG,
            Self::Terminate => TERMINATE_TAG,
            Self::CopyData(_) => COPY_DATA_TAG,
            Self::CopyDone => COPY_DONE_TAG,
            Self::CopyFail(_) => CopyFail::TAG,
            Self::FunctionCall(_) => FunctionCall::TAG,
            Self::AuthResponse(_) => AUTH_RESPONSE_TAG,
            Self::Unknown { tag, .. } => *tag,
        }
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// The encoding errors of the message type; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        match self {
            Self::Query(m) => m.encode(dst),
            Self::Parse(m) => m.encode(dst),
            Self::Bind(m) => m.encode(dst),
            Self::Describe(m) => m.encode(dst),
            Self::Execute(m) => m.encode(dst),
            Self::Close(m) => m.encode(dst),
            Self::CopyFail(m) => m.encode(dst),
            Self::FunctionCall(m) => m.encode(dst),
            Self::Sync | Self::Flush | Self::Terminate | Self::CopyDone => {
                encode_raw(dst, self.tag(), &[])
            }
            Self::CopyData(body) | Self::AuthResponse(body) | Self::Unknown { body, .. } => {
                encode_raw(dst, self.tag(), body)
            }
        }
    }
}
