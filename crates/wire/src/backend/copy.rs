//! `CopyInResponse` ('G'), `CopyOutResponse` ('H') and `CopyBothResponse` ('W'): the server
//! starts a copy. (`CopyData` and `CopyDone` are variants of
//! [`BackendMessage`](super::BackendMessage) directly.)

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_formats, read_formats, write_message, Reader};
use crate::WireError;

/// The body shared by the three copy responses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyResponse {
    /// Overall format: 0 text (rows separated by newlines), 1 binary.
    pub format: i8,
    /// Per-column format codes.
    pub column_formats: Vec<i16>,
}

impl CopyResponse {
    /// Type byte of `CopyInResponse`.
    pub const IN_TAG: u8 = b'G';
    /// Type byte of `CopyOutResponse`.
    pub const OUT_TAG: u8 = b'H';
    /// Type byte of `CopyBothResponse`.
    pub const BOTH_TAG: u8 = b'W';

    /// Decodes a copy response body.
    ///
    /// # Errors
    /// A structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let format = r.i8("CopyResponse.format")?;
        let column_formats = read_formats(&mut r, "CopyResponse.column_formats")?;
        r.finish("CopyResponse")?;
        Ok(Self {
            format,
            column_formats,
        })
    }

    /// Appends the response as a message with type byte `tag` to `dst`.
    ///
    /// # Errors
    /// [`WireError::TooManyValues`]; `dst` is unchanged then.
    pub fn encode(&self, tag: u8, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(tag), |dst| {
            dst.put_i8(self.format);
            put_formats(dst, "CopyResponse.column_formats", &self.column_formats)
        })
    }
}
