//! The startup phase: the first packet a client sends has no tag byte, only an `Int32` length
//! and an `Int32` code that says which kind of packet it is.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::buf::{put_cstr, write_message, Reader};
use crate::frame::checked_len;
use crate::WireError;

/// Request code of an `SSLRequest` (1234 << 16 | 5679).
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// Request code of a `GSSENCRequest` (1234 << 16 | 5680).
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// Request code of a `CancelRequest` (1234 << 16 | 5678).
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Protocol code of version 3.0 (3 << 16).
pub const PROTOCOL_3_0: i32 = 196_608;

/// The smallest startup packet: the length and the code.
const MIN_STARTUP_LEN: i32 = 8;

/// The packet a client opens a connection (or a cancel connection) with.
#[derive(Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// `StartupMessage`: protocol 3.x and the session parameters (`user`, `database`, ...).
    Startup {
        /// Requested `(major, minor)`; major is always 3. Minors above 0 are accepted so the
        /// proxy can answer with `NegotiateProtocolVersion`.
        protocol: (u16, u16),
        /// Parameter names and values in the order sent.
        params: Vec<(String, String)>,
    },
    /// `SSLRequest`: the client asks for TLS before the startup message.
    SslRequest,
    /// `GSSENCRequest`: the client asks for GSSAPI encryption.
    GssEncRequest,
    /// `CancelRequest` with a protocol 3.0 (4-byte) key.
    Cancel {
        /// Process ID from `BackendKeyData`.
        process_id: i32,
        /// Secret key from `BackendKeyData`; never shown by `Debug`.
        secret_key: i32,
    },
}

impl std::fmt::Debug for StartupPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Startup { protocol, params } => f
                .debug_struct("Startup")
                .field("protocol", protocol)
                .field("params", params)
                .finish(),
            Self::SslRequest => f.write_str("SslRequest"),
            Self::GssEncRequest => f.write_str("GssEncRequest"),
            Self::Cancel { process_id, .. } => f
                .debug_struct("Cancel")
                .field("process_id", process_id)
                .field("secret_key", &"<redacted>")
                .finish(),
        }
    }
}

impl StartupPacket {
    /// A protocol 3.0 startup message with `params`.
    pub fn startup(params: Vec<(String, String)>) -> Self {
        Self::Startup {
            protocol: (3, 0),
            params,
        }
    }

    /// The value of startup parameter `name`, if the client sent it.
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            Self::Startup { params, .. } => params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    /// Decodes a packet body: everything after the length field, starting with the code.
    ///
    /// # Errors
    /// [`WireError::UnsupportedProtocol`] for a protocol major other than 3 (or an unknown
    /// request code), [`WireError::InvalidUtf8`] for a parameter that is not UTF-8, and the
    /// structural errors (truncated, missing terminator, trailing bytes).
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let code = r.i32("StartupPacket.code")?;
        let packet = match code {
            SSL_REQUEST_CODE => {
                r.finish("SSLRequest")?;
                Self::SslRequest
            }
            GSSENC_REQUEST_CODE => {
                r.finish("GSSENCRequest")?;
                Self::GssEncRequest
            }
            CANCEL_REQUEST_CODE => {
                let process_id = r.i32("CancelRequest.process_id")?;
                let secret_key = r.i32("CancelRequest.secret_key")?;
                r.finish("CancelRequest")?;
                Self::Cancel {
                    process_id,
                    secret_key,
                }
            }
            _ => {
                let code = code.cast_unsigned();
                let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
                if major != 3 {
                    return Err(WireError::UnsupportedProtocol { major, minor });
                }
                let mut params = Vec::new();
                loop {
                    let name = r.cstr("StartupMessage.name")?;
                    if name.is_empty() {
                        break;
                    }
                    let name = std::str::from_utf8(name)
                        .map_err(|_| WireError::InvalidUtf8 {
                            field: "StartupMessage.name",
                        })?
                        .to_owned();
                    let value = r.string("StartupMessage.value")?;
                    params.push((name, value));
                }
                r.finish("StartupMessage")?;
                Self::Startup {
                    protocol: (major, minor),
                    params,
                }
            }
        };
        Ok(packet)
    }

    /// Appends the packet (length field included, no tag) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`] for a parameter containing NUL, [`WireError::EmptyListItem`]
    /// for an empty parameter name (it would end the list); `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, None, |dst| {
            match self {
                Self::SslRequest => dst.put_i32(SSL_REQUEST_CODE),
                Self::GssEncRequest => dst.put_i32(GSSENC_REQUEST_CODE),
                Self::Cancel {
                    process_id,
                    secret_key,
                } => {
                    dst.put_i32(CANCEL_REQUEST_CODE);
                    dst.put_i32(*process_id);
                    dst.put_i32(*secret_key);
                }
                Self::Startup { protocol, params } => {
                    dst.put_u16(protocol.0);
                    dst.put_u16(protocol.1);
                    for (name, value) in params {
                        if name.is_empty() {
                            return Err(WireError::EmptyListItem {
                                field: "StartupMessage.name",
                            });
                        }
                        put_cstr(dst, "StartupMessage.name", name.as_bytes())?;
                        put_cstr(dst, "StartupMessage.value", value.as_bytes())?;
                    }
                    dst.put_u8(0);
                }
            }
            Ok(())
        })
    }
}

/// Splits the next startup-phase packet off the front of `src` and decodes it.
///
/// Returns `Ok(None)` without consuming anything while the packet is incomplete. `max_len`
/// bounds the length field (PostgreSQL itself allows 10000 bytes). Nothing is reserved on the
/// strength of the length field.
///
/// # Errors
/// [`WireError::InvalidLength`] for a length below 8, [`WireError::MessageTooLarge`] above
/// `max_len`, and the errors of [`StartupPacket::decode`]. The packet's bytes are consumed when
/// it is complete, even if it does not decode.
pub fn decode_startup(
    src: &mut BytesMut,
    max_len: usize,
) -> Result<Option<StartupPacket>, WireError> {
    let Some(header) = src.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let body_len = checked_len(len, MIN_STARTUP_LEN, max_len)?;
    if src.len() < 4 + body_len {
        return Ok(None);
    }
    src.advance(4);
    let body = src.split_to(body_len).freeze();
    StartupPacket::decode(&body).map(Some)
}
