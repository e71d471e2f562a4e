//! Bounds-checked reading and writing of protocol fields.
//!
//! Every read checks the remaining length first and returns a typed error instead of panicking;
//! every variable-length list is checked against the bytes that are actually left before any
//! allocation, so a forged count cannot make us reserve memory the message does not contain.

use bytes::{BufMut, Bytes, BytesMut};

use crate::WireError;

/// Largest value of the protocol's 16-bit counts. PostgreSQL reads them unsigned
/// (`pq_getmsgint(msg, 2)`), and libpq sends up to 65535 parameters.
pub(crate) const MAX_COUNT: usize = u16::MAX as usize;

/// Largest length field the protocol can carry.
pub(crate) const MAX_MESSAGE_LEN: usize = i32::MAX as usize;

/// A cursor over a message body. Values it returns are zero-copy slices of the body.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], WireError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(WireError::Truncated {
                field,
                needed: n,
                remaining,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, WireError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn array4(&mut self, field: &'static str) -> Result<[u8; 4], WireError> {
        self.array(field)
    }

    /// A 16-bit element count, checked against the bytes left: `min_size` is the smallest
    /// encoding of one element.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        min_size: usize,
    ) -> Result<usize, WireError> {
        let count = usize::from(u16::from_be_bytes(self.array(field)?));
        self.check_count(field, count, min_size)?;
        Ok(count)
    }

    /// A 32-bit element count (used by NegotiateProtocolVersion), checked like [`Self::count`].
    pub(crate) fn count32(
        &mut self,
        field: &'static str,
        min_size: usize,
    ) -> Result<usize, WireError> {
        let raw = self.i32(field)?;
        let count =
            usize::try_from(raw).map_err(|_| WireError::NegativeCount { field, count: raw })?;
        self.check_count(field, count, min_size)?;
        Ok(count)
    }

    fn check_count(
        &self,
        field: &'static str,
        count: usize,
        min_size: usize,
    ) -> Result<(), WireError> {
        let remaining = self.remaining();
        // `count` is at most i32::MAX and `min_size` tiny, but saturate so no input can wrap.
        let needed = count.saturating_mul(min_size);
        if needed > remaining {
            return Err(WireError::CountExceedsBody {
                field,
                count,
                needed,
                remaining,
            });
        }
        Ok(())
    }

    /// Raw bytes up to (not including) the next NUL; the NUL is consumed.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let rest = &self.buf[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(WireError::MissingNul { field });
        };
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    /// A NUL-terminated string that must be UTF-8.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, WireError> {
        self.str(field).map(str::to_owned)
    }

    /// A NUL-terminated string that must be UTF-8, borrowed from the body.
    pub(crate) fn str(&mut self, field: &'static str) -> Result<&'a str, WireError> {
        let raw = self.cstr(field)?;
        std::str::from_utf8(raw).map_err(|_| WireError::InvalidUtf8 { field })
    }

    /// `n` bytes as a zero-copy slice of the body.
    pub(crate) fn bytes(&mut self, field: &'static str, n: usize) -> Result<Bytes, WireError> {
        self.take(field, n)?;
        Ok(self.buf.slice(self.pos - n..self.pos))
    }

    /// Everything left, as a zero-copy slice.
    pub(crate) fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        out
    }

    /// An `Int32` length followed by that many bytes; -1 means NULL.
    pub(crate) fn value(&mut self, field: &'static str) -> Result<Option<Bytes>, WireError> {
        let len = self.i32(field)?;
        if len == -1 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| WireError::InvalidValueLength { field, len })?;
        self.bytes(field, n).map(Some)
    }

    /// Skips an `Int32` length and that many bytes (-1 = NULL), checked as [`Self::value`]
    /// checks them.
    pub(crate) fn skip_value(&mut self, field: &'static str) -> Result<(), WireError> {
        let len = self.i32(field)?;
        if len == -1 {
            return Ok(());
        }
        let n = usize::try_from(len).map_err(|_| WireError::InvalidValueLength { field, len })?;
        self.take(field, n).map(|_| ())
    }

    /// `n` raw bytes, borrowed.
    pub(crate) fn raw(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], WireError> {
        self.take(field, n)
    }

    /// Fails if any byte is left: every decoder consumes its whole body, which is what makes
    /// decode-then-encode reproduce the input byte for byte.
    pub(crate) fn finish(&self, message: &'static str) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes { message, extra }),
        }
    }
}

/// Writes one message: optional tag, a length placeholder, the body from `body`, then the real
/// length. On any error the buffer is restored to its previous length, so a failed encode never
/// leaves half a message in an outgoing stream.
pub(crate) fn write_message(
    dst: &mut BytesMut,
    tag: Option<u8>,
    body: impl FnOnce(&mut BytesMut) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let start = dst.len();
    if let Some(tag) = tag {
        dst.put_u8(tag);
    }
    let len_at = dst.len();
    dst.put_i32(0);
    if let Err(err) = body(dst) {
        dst.truncate(start);
        return Err(err);
    }
    let len = dst.len() - len_at;
    let Ok(len32) = i32::try_from(len) else {
        dst.truncate(start);
        return Err(WireError::MessageTooLarge {
            len,
            max: MAX_MESSAGE_LEN,
        });
    };
    dst[len_at..len_at + 4].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

/// A NUL-terminated string; refuses interior NULs, which would smuggle extra fields.
pub(crate) fn put_cstr(dst: &mut BytesMut, field: &'static str, s: &[u8]) -> Result<(), WireError> {
    if s.contains(&0) {
        return Err(WireError::InteriorNul { field });
    }
    dst.put_slice(s);
    dst.put_u8(0);
    Ok(())
}

/// A 16-bit element count.
pub(crate) fn put_count(
    dst: &mut BytesMut,
    field: &'static str,
    count: usize,
) -> Result<(), WireError> {
    let Ok(count16) = u16::try_from(count) else {
        return Err(WireError::TooManyValues {
            field,
            count,
            max: MAX_COUNT,
        });
    };
    dst.put_u16(count16);
    Ok(())
}

/// An `Int32` length and the bytes; `None` is written as length -1.
pub(crate) fn put_value(dst: &mut BytesMut, value: Option<&Bytes>) -> Result<(), WireError> {
    match value {
        None => dst.put_i32(-1),
        Some(v) => {
            let Ok(len) = i32::try_from(v.len()) else {
                return Err(WireError::MessageTooLarge {
                    len: v.len(),
                    max: MAX_MESSAGE_LEN,
                });
            };
            dst.put_i32(len);
            dst.put_slice(v);
        }
    }
    Ok(())
}

/// Encoded size of one value written by [`put_value`].
pub(crate) fn value_len(value: Option<&Bytes>) -> usize {
    4 + value.map_or(0, Bytes::len)
}

/// Reads a list of 16-bit format codes preceded by their count.
pub(crate) fn read_formats(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<i16>, WireError> {
    let n = r.count(field, 2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.i16(field)?);
    }
    Ok(out)
}

/// Reads a list of values (length-prefixed, -1 = NULL) preceded by their count.
pub(crate) fn read_values(
    r: &mut Reader<'_>,
    field: &'static str,
    out: &mut Vec<Option<Bytes>>,
) -> Result<(), WireError> {
    let n = r.count(field, 4)?;
    out.clear();
    out.reserve(n);
    for _ in 0..n {
        out.push(r.value(field)?);
    }
    Ok(())
}

/// Writes a count and the 16-bit format codes.
pub(crate) fn put_formats(
    dst: &mut BytesMut,
    field: &'static str,
    formats: &[i16],
) -> Result<(), WireError> {
    put_count(dst, field, formats.len())?;
    for &f in formats {
        dst.put_i16(f);
    }
    Ok(())
}

/// Writes a count and the values.
pub(crate) fn put_values(
    dst: &mut BytesMut,
    field: &'static str,
    values: &[Option<Bytes>],
) -> Result<(), WireError> {
    put_count(dst, field, values.len())?;
    for v in values {
        put_value(dst, v.as_ref())?;
    }
    Ok(())
}
