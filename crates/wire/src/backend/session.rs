//! Session-level messages: `BackendKeyData` ('K'), `ParameterStatus` ('S'), `ReadyForQuery`
//! ('Z'), `CommandComplete` ('C') and `NegotiateProtocolVersion` ('v').

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_cstr, write_message, Reader};
use crate::WireError;

/// `BackendKeyData`: the process ID and secret key a client needs to cancel a query.
///
/// Protocol 3.0 keys (4 bytes); the proxy negotiates 3.0 with clients and servers.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendKeyData {
    /// The backend's process ID.
    pub pid: i32,
    /// The cancel secret; never shown by `Debug`.
    pub key: i32,
}

impl std::fmt::Debug for BackendKeyData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendKeyData")
            .field("pid", &self.pid)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl BackendKeyData {
    /// Message type byte.
    pub const TAG: u8 = b'K';

    /// Decodes a `BackendKeyData` body.
    ///
    /// # Errors
    /// A structural error (including a key longer than 4 bytes).
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let pid = r.i32("BackendKeyData.pid")?;
        let key = r.i32("BackendKeyData.key")?;
        r.finish("BackendKeyData")?;
        Ok(Self { pid, key })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// None in practice; `Result` for uniformity with the other messages.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            dst.put_i32(self.pid);
            dst.put_i32(self.key);
            Ok(())
        })
    }
}

/// `ParameterStatus`: the current value of a run-time parameter the client should track
/// (`client_encoding`, `DateStyle`, `TimeZone`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterStatus {
    /// Parameter name.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl ParameterStatus {
    /// Message type byte.
    pub const TAG: u8 = b'S';

    /// Decodes a `ParameterStatus` body.
    ///
    /// # Errors
    /// [`WireError::InvalidUtf8`], or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let name = r.string("ParameterStatus.name")?;
        let value = r.string("ParameterStatus.value")?;
        r.finish("ParameterStatus")?;
        Ok(Self { name, value })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`]; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            put_cstr(dst, "ParameterStatus.name", self.name.as_bytes())?;
            put_cstr(dst, "ParameterStatus.value", self.value.as_bytes())
        })
    }
}

/// The transaction state reported by `ReadyForQuery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// `'I'`: not in a transaction block.
    Idle,
    /// `'T'`: in a transaction block.
    InTransaction,
    /// `'E'`: in a failed transaction block; statements are rejected until it ends.
    Failed,
}

impl TransactionStatus {
    /// The wire byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }

    /// The status for wire byte `code`.
    ///
    /// # Errors
    /// [`WireError::InvalidCode`] for anything but `'I'`, `'T'` and `'E'`.
    pub fn from_byte(code: u8) -> Result<Self, WireError> {
        match code {
            b'I' => Ok(Self::Idle),
            b'T' => Ok(Self::InTransaction),
            b'E' => Ok(Self::Failed),
            _ => Err(WireError::InvalidCode {
                field: "ReadyForQuery.status",
                code,
            }),
        }
    }
}

/// `ReadyForQuery`: the server is ready for a new query cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyForQuery {
    /// The transaction state.
    pub status: TransactionStatus,
}

impl ReadyForQuery {
    /// Message type byte.
    pub const TAG: u8 = b'Z';

    /// Decodes a `ReadyForQuery` body.
    ///
    /// # Errors
    /// [`WireError::InvalidCode`] for an unknown status, or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let status = TransactionStatus::from_byte(r.u8("ReadyForQuery.status")?)?;
        r.finish("ReadyForQuery")?;
        Ok(Self { status })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// None in practice; `Result` for uniformity with the other messages.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            dst.put_u8(self.status.as_byte());
            Ok(())
        })
    }
}

/// `CommandComplete`: a statement finished; `tag` is e.g. `INSERT 0 1` or `SELECT 5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandComplete {
    /// The command tag.
    pub tag: String,
}

impl CommandComplete {
    /// Message type byte.
    pub const TAG: u8 = b'C';

    /// Decodes a `CommandComplete` body.
    ///
    /// # Errors
    /// [`WireError::InvalidUtf8`], or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let tag = r.string("CommandComplete.tag")?;
        r.finish("CommandComplete")?;
        Ok(Self { tag })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`]; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            put_cstr(dst, "CommandComplete.tag", self.tag.as_bytes())
        })
    }
}

/// `NegotiateProtocolVersion`: the server (or the proxy) supports an older minor version than
/// the client asked for, and/or did not recognise some `_pq_.` protocol options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateProtocolVersion {
    /// Newest minor version supported for the requested major version.
    pub newest_minor: i32,
    /// Protocol options (`_pq_.*` startup parameters) that were not recognised.
    pub unrecognized: Vec<String>,
}

impl NegotiateProtocolVersion {
    /// Message type byte.
    pub const TAG: u8 = b'v';

    /// Decodes a `NegotiateProtocolVersion` body.
    ///
    /// # Errors
    /// [`WireError::NegativeCount`], [`WireError::InvalidUtf8`], or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        const FIELD: &str = "NegotiateProtocolVersion.unrecognized";
        let mut r = Reader::new(body);
        let newest_minor = r.i32("NegotiateProtocolVersion.newest_minor")?;
        let n = r.count32(FIELD, 1)?;
        let mut unrecognized = Vec::with_capacity(n);
        for _ in 0..n {
            unrecognized.push(r.string(FIELD)?);
        }
        r.finish("NegotiateProtocolVersion")?;
        Ok(Self {
            newest_minor,
            unrecognized,
        })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`], [`WireError::MessageTooLarge`]; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        const FIELD: &str = "NegotiateProtocolVersion.unrecognized";
        write_message(dst, Some(Self::TAG), |dst| {
            dst.put_i32(self.newest_minor);
            let count =
                i32::try_from(self.unrecognized.len()).map_err(|_| WireError::TooManyValues {
                    field: FIELD,
                    count: self.unrecognized.len(),
                    max: i32::MAX as usize,
                })?;
            dst.put_i32(count);
            for option in &self.unrecognized {
                put_cstr(dst, FIELD, option.as_bytes())?;
            }
            Ok(())
        })
    }
}
