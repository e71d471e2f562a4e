//! PostgreSQL frontend/backend protocol v3 messages. No I/O, no runtime.
//!
//! Pure functions over [`bytes::BytesMut`] and [`bytes::Bytes`], so the codec can be tested and
//! fuzzed byte for byte:
//!
//! - [`decode_frame`] and [`decode_startup`] split complete messages off a read buffer, returning
//!   `Ok(None)` while more bytes are needed. A proxy forwards most [`Frame`]s untouched.
//! - [`FrontendMessage`] (client to server) and [`BackendMessage`] (server to client) decode a
//!   frame into typed messages, for the few the proxy rewrites; each message type also has its
//!   own `decode(body)` / `encode(dst)`.
//!
//! Decoding is strict: every decoder consumes its whole body, so decoding and re-encoding
//! reproduces the input byte for byte, and anything malformed is a typed [`WireError`]. Nothing
//! is decoded lossily: fields that must be text are checked UTF-8 (pgseal requires
//! `client_encoding` UTF8), everything else stays bytes. Counts are checked against the bytes
//! that remain before anything is allocated.
//!
//! The protocol documents its 16-bit counts as `Int16`, but PostgreSQL reads them unsigned
//! (`pq_getmsgint(msg, 2)`) and libpq sends up to 65535 parameters, so this codec reads them as
//! `u16` too: a transparent proxy must not reject what the server accepts. A count with the
//! high bit set is therefore a large count, rejected only when the body cannot hold it.
//!
//! Encoding returns `Result`: a string with an interior NUL (which would let its tail be read as
//! further fields), a list longer than its 16-bit count, or a message beyond the `Int32` length
//! cannot be represented, and a failed encode leaves the destination buffer unchanged.
//!
//! `Debug` of messages that carry SQL, parameters, row data or secrets shows sizes only.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
mod buf;
mod error;
mod frame;
pub mod frontend;
mod startup;

pub use backend::BackendMessage;
pub use error::WireError;
pub use frame::{decode_frame, Frame};
pub use frontend::FrontendMessage;
pub use startup::{
    decode_startup, StartupPacket, CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, PROTOCOL_3_0,
    SSL_REQUEST_CODE,
};

/// The format of a parameter or result value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Format code 0: the type's text representation.
    Text,
    /// Format code 1: the type's binary representation.
    Binary,
}

impl Format {
    /// The format for wire code `code`.
    ///
    /// # Errors
    /// [`WireError::InvalidFormatCode`] for codes other than 0 and 1; `field` names the field.
    pub fn from_code(field: &'static str, code: i16) -> Result<Self, WireError> {
        match code {
            0 => Ok(Self::Text),
            1 => Ok(Self::Binary),
            _ => Err(WireError::InvalidFormatCode { field, code }),
        }
    }

    /// The wire code of this format.
    pub fn code(self) -> i16 {
        match self {
            Self::Text => 0,
            Self::Binary => 1,
        }
    }
}

/// Resolves the format of value `index` from a format-code list under the protocol's rule:
/// no codes means all text, one code applies to every value, otherwise one code per value.
pub(crate) fn format_at(
    field: &'static str,
    formats: &[i16],
    index: usize,
) -> Result<Format, WireError> {
    match formats {
        [] => Ok(Format::Text),
        [one] => Format::from_code(field, *one),
        many => match many.get(index) {
            Some(code) => Format::from_code(field, *code),
            None => Err(WireError::FormatIndexOutOfRange {
                field,
                index,
                count: many.len(),
            }),
        },
    }
}
