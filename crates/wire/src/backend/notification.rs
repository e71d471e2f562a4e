//! `NotificationResponse` ('A'): an asynchronous `NOTIFY`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_cstr, write_message, Reader};
use crate::WireError;

/// `NotificationResponse`: a `NOTIFY` on a channel this session listens to.
#[derive(Clone, PartialEq, Eq)]
pub struct NotificationResponse {
    /// Process ID of the notifying backend.
    pub pid: i32,
    /// Channel name.
    pub channel: String,
    /// Payload; may be application data, so `Debug` shows its length only.
    pub payload: String,
}

impl std::fmt::Debug for NotificationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationResponse")
            .field("pid", &self.pid)
            .field("channel", &self.channel)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl NotificationResponse {
    /// Message type byte.
    pub const TAG: u8 = b'A';

    /// Decodes a `NotificationResponse` body.
    ///
    /// # Errors
    /// [`WireError::InvalidUtf8`], or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let pid = r.i32("NotificationResponse.pid")?;
        let channel = r.string("NotificationResponse.channel")?;
        let payload = r.string("NotificationResponse.payload")?;
        r.finish("NotificationResponse")?;
        Ok(Self {
            pid,
            channel,
            payload,
        })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`]; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            dst.put_i32(self.pid);
            put_cstr(dst, "NotificationResponse.channel", self.channel.as_bytes())?;
            put_cstr(dst, "NotificationResponse.payload", self.payload.as_bytes())
        })
    }
}
