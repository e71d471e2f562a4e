//! Framing of tagged messages: one type byte, an `Int32` length that counts itself, the body.
//!
//! The proxy forwards most frames without looking inside them, so a [`Frame`] keeps the body as
//! an opaque [`Bytes`] split off the read buffer without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::buf::MAX_MESSAGE_LEN;
use crate::WireError;

/// Size of the tag byte plus the length field.
pub(crate) const HEADER_LEN: usize = 5;

/// One tagged protocol message, undecoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type byte, e.g. `b'Q'`.
    pub tag: u8,
    /// The message body: everything after the length field.
    pub body: Bytes,
}

// The body may hold SQL text, parameters or row data, which may be plaintext of an encrypted
// column; Debug shows only its size.
impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("tag", &char::from(self.tag))
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Frame {
    /// A frame of `tag` with `body`.
    pub fn new(tag: u8, body: Bytes) -> Self {
        Self { tag, body }
    }

    /// Number of bytes [`Frame::encode`] writes: tag, length and body.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    /// Appends the frame to `dst`.
    ///
    /// # Errors
    /// [`WireError::MessageTooLarge`] if the body does not fit the protocol's `Int32` length;
    /// `dst` is left unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        // Written directly rather than through write_message: the length is known up front,
        // and this runs for every message the proxy forwards. (MAX_MESSAGE_LEN is i32::MAX.)
        let too_large = || WireError::MessageTooLarge {
            len: self.body.len().saturating_add(4),
            max: MAX_MESSAGE_LEN,
        };
        let len = self
            .body
            .len()
            .checked_add(4)
            .and_then(|len| i32::try_from(len).ok())
            .ok_or_else(too_large)?;
        dst.reserve(self.encoded_len());
        dst.put_u8(self.tag);
        dst.put_i32(len);
        dst.put_slice(&self.body);
        Ok(())
    }
}

/// Splits the next complete tagged message off the front of `src`.
///
/// Returns `Ok(None)` without consuming anything when `src` does not yet hold the whole message;
/// read more bytes into `src` and call again. The body is split off `src` without copying.
///
/// `max_len` bounds the length field (body length + 4). Nothing is reserved on the strength of
/// the length field, so a forged length costs nothing beyond the error.
///
/// # Errors
/// [`WireError::InvalidLength`] if the length field is below 4, [`WireError::MessageTooLarge`]
/// if it exceeds `max_len`. Both are reported as soon as the 5-byte header has arrived; the
/// stream cannot be resynchronised afterwards.
pub fn decode_frame(src: &mut BytesMut, max_len: usize) -> Result<Option<Frame>, WireError> {
    let Some(header) = src.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let tag = header[0];
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let body_len = checked_len(len, 4, max_len)?;
    if src.len() < HEADER_LEN + body_len {
        return Ok(None);
    }
    src.advance(HEADER_LEN);
    let body = src.split_to(body_len).freeze();
    Ok(Some(Frame { tag, body }))
}

/// Validates a length field against its minimum and the caller's limit and returns the number
/// of bytes that follow the length field.
pub(crate) fn checked_len(len: i32, min: i32, max_len: usize) -> Result<usize, WireError> {
    if len < min {
        return Err(WireError::InvalidLength { len, min });
    }
    let len_usize = usize::try_from(len).map_err(|_| WireError::InvalidLength { len, min })?;
    if len_usize > max_len {
        return Err(WireError::MessageTooLarge {
            len: len_usize,
            max: max_len,
        });
    }
    Ok(len_usize - 4)
}
