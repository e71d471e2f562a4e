//! Reading whole protocol messages off a socket with a bounded buffer.

use bytes::BytesMut;
use pgseal_wire::{decode_frame, decode_startup, Frame, StartupPacket, WireError};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes asked of the socket per read. Larger messages grow the buffer up to the message
/// limit; nothing is ever reserved on the strength of a length field.
const READ_CHUNK: usize = 16 * 1024;

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

    /// Reads more bytes; `Ok(0)` at end of stream.
    ///
    /// Cancel-safe: dropped before completion, no bytes are lost.
    pub(crate) async fn fill(&mut self) -> std::io::Result<usize> {
        // Reserve only when the buffer is full: a message larger than READ_CHUNK grows the
        // buffer by READ_CHUNK per read, bounded by max_len because decode_frame rejects longer
        // length fields as soon as the header arrives.
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
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
