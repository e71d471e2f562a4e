//! The two directions of a client or server connection, read and written independently.
//!
//! A plain TCP stream splits into halves that each hold the socket: nothing is shared but the
//! socket itself. A TLS stream's two directions share one session state, so its halves take
//! turns through `tokio::io::split`'s lock. The plain case is the common one and its halves
//! are polled at every message, so it does without the lock.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::framed::FramedReader;
use crate::tls::Stream;

/// The read side of a client or server connection, framed.
pub(crate) type Reader = FramedReader<ReadPart>;
/// The write side of a client or server connection.
pub(crate) type Writer = WritePart;

/// The read direction of a [`Stream`].
pub(crate) enum ReadPart {
    Plain(OwnedReadHalf),
    Shared(ReadHalf<Stream>),
}

/// The write direction of a [`Stream`].
pub(crate) enum WritePart {
    Plain(OwnedWriteHalf),
    Shared(WriteHalf<Stream>),
}

/// Splits `stream` into its two directions.
pub(crate) fn split(stream: Stream) -> (ReadPart, WritePart) {
    match stream {
        Stream::Plain(tcp) => {
            let (read, write) = tcp.into_split();
            (ReadPart::Plain(read), WritePart::Plain(write))
        }
        other => {
            let (read, write) = tokio::io::split(other);
            (ReadPart::Shared(read), WritePart::Shared(write))
        }
    }
}

impl AsyncRead for ReadPart {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(half) => Pin::new(half).poll_read(cx, buf),
            Self::Shared(half) => Pin::new(half).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WritePart {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(half) => Pin::new(half).poll_write(cx, buf),
            Self::Shared(half) => Pin::new(half).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(half) => Pin::new(half).poll_flush(cx),
            Self::Shared(half) => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(half) => Pin::new(half).poll_shutdown(cx),
            Self::Shared(half) => Pin::new(half).poll_shutdown(cx),
        }
    }
}
