//! `CopyFail` ('f'): the client aborts a `COPY FROM STDIN`. (`CopyData` and `CopyDone` carry no
//! structure and are variants of [`FrontendMessage`](super::FrontendMessage) directly.)

use bytes::{Bytes, BytesMut};

use crate::buf::{put_cstr, write_message, Reader};
use crate::WireError;

/// `CopyFail`: aborts the copy with an error message for the server to report.
#[derive(Clone, PartialEq, Eq)]
pub struct CopyFail {
    /// Why the client gave up.
    pub message: String,
}

// The client's reason may quote the data being copied.
impl std::fmt::Debug for CopyFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyFail")
            .field("message_len", &self.message.len())
            .finish()
    }
}

impl CopyFail {
    /// Message type byte.
    pub const TAG: u8 = b'f';

    /// Decodes a `CopyFail` body.
    ///
    /// # Errors
    /// [`WireError::InvalidUtf8`], or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let message = r.string("CopyFail.message")?;
        r.finish("CopyFail")?;
        Ok(Self { message })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`]; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            put_cstr(dst, "CopyFail.message", self.message.as_bytes())
        })
    }
}
