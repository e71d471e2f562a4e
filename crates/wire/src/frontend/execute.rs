//! `Execute` ('E'): run a portal.

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_cstr, write_message, Reader};
use crate::WireError;

/// `Execute`: runs portal `portal`, returning at most `max_rows` rows (0 = no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    /// Portal name; empty for the unnamed portal.
    pub portal: String,
    /// Row limit; 0 means no limit.
    pub max_rows: i32,
}

impl Execute {
    /// Message type byte.
    pub const TAG: u8 = b'E';

    /// Decodes an `Execute` body.
    ///
    /// # Errors
    /// A structural error, or [`WireError::InvalidUtf8`] for the portal name.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        Self::portal_of(body).map(|(portal, max_rows)| Self {
            portal: portal.to_owned(),
            max_rows,
        })
    }

    /// The portal and row limit of an `Execute` body, the name borrowed: for a layer that
    /// forwards the message unchanged, without a copy of the name.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn portal_of(body: &Bytes) -> Result<(&str, i32), WireError> {
        let mut r = Reader::new(body);
        let portal = r.str("Execute.portal")?;
        let max_rows = r.i32("Execute.max_rows")?;
        r.finish("Execute")?;
        Ok((portal, max_rows))
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`] in the portal name; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            put_cstr(dst, "Execute.portal", self.portal.as_bytes())?;
            dst.put_i32(self.max_rows);
            Ok(())
        })
    }
}
