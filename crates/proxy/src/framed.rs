//! Reading whole protocol messages off a socket with a bounded buffer.

use bytes::BytesMut;
use pgseal_wire::{decode_frame, decode_startup, Frame, StartupPacket, WireError};
use tokio::io::{AsyncRead, AsyncReadExt};
use zeroize::{Zeroize, Zeroizing};

/// Bytes asked of the socket per read. Larger messages grow the buffer up to the message
/// limit; nothing is ever reserved on the strength of a length field.
const READ_CHUNK: usize = 16 * 1024;

/// A message holding a secret: its tag and its body, wiped on drop.
pub(crate) type SecretMessage = (u8, Zeroizing<Vec<u8>>);

/// A read half and the bytes read from it that do not yet form a whole message.
pub(crate) struct FramedReader<R> {
    inner: R,
    buf: BytesMut,
    max_len: usize,
}

impl<R: AsyncRead + Unpin> FramedReader<R> {
    pub(crate) fn new(inner: R, max_len: usize) -> Self {
        Self {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            max_len,
        }
    }

    /// A reader that starts with `buf`, bytes already read from `inner`'s stream.
    pub(crate) fn with_buffer(inner: R, buf: BytesMut, max_len: usize) -> Self {
        Self {
            inner,
            buf,
            max_len,
        }
    }

    /// The stream and the bytes read from it not yet framed.
    pub(crate) fn into_parts(self) -> (R, BytesMut) {
        (self.inner, self.buf)
    }

    /// The stream, to write to it or to upgrade it to TLS in place.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    ///
    /// Cancel-safe: dropped before completion, no bytes are lost.
    pub(crate) async fn fill(&mut self) -> std::io::Result<usize> {
        // Once every message read has been framed and dropped, reserving moves the buffer back
        // to the start of its memory: each read then lands in the same few cache lines instead
        // of walking through the whole chunk, which evicted the data of PostgreSQL and the
        // clients sharing the core (measured: 3-6 % more read-write TPS, docs/performance.md).
        // Otherwise reserve only when the buffer is nearly full: a message larger than
        // READ_CHUNK grows the buffer by READ_CHUNK per read, bounded by max_len because
        // decode_frame rejects longer length fields as soon as the header arrives.
        if self.buf.is_empty() || self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        self.inner.read_buf(&mut self.buf).await
    }

    /// The next whole tagged message already buffered, if any.
    pub(crate) fn try_frame(&mut self) -> Result<Option<Frame>, WireError> {
        let frame = decode_frame(&mut self.buf, self.max_len)?;
        if self.buf.is_empty() && self.buf.capacity() > 4 * READ_CHUNK {
            // Give back the memory of an exceptionally large message once it is gone.
            self.buf = BytesMut::with_capacity(READ_CHUNK);
        }
        Ok(frame)
    }

    /// Like [`try_frame`](Self::try_frame) for a message that holds a secret (a password): the
    /// tag and a copy of the body in a buffer wiped on drop, and the bytes in the read buffer
    /// wiped before they are released. (A [`Frame`] shares the read buffer's memory, which
    /// cannot be wiped once split off.)
    pub(crate) fn try_secret_frame(&mut self) -> Result<Option<SecretMessage>, WireError> {
        let Some(header) = self.buf.get(..5) else {
            return Ok(None);
        };
        // decode_frame validates the header (length at least 4, at most max_len) on a copy of
        // it, so this method accepts and rejects exactly what try_frame does.
        decode_frame(&mut BytesMut::from(header), self.max_len)?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let Some(total) = usize::try_from(len).ok().and_then(|l| l.checked_add(1)) else {
            return Ok(None);
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut message = self.buf.split_to(total);
        let tag = message[0];
        let body = Zeroizing::new(message[5..].to_vec());
        message.as_mut().zeroize();
        Ok(Some((tag, body)))
    }

    /// The next whole startup-phase packet already buffered, if any.
    pub(crate) fn try_startup(
        &mut self,
        max_len: usize,
    ) -> Result<Option<StartupPacket>, WireError> {
        decode_startup(&mut self.buf, max_len)
    }

    /// Whether bytes of an incomplete message are buffered.
    pub(crate) fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}
