//! `DataRow` ('D'): one result row. This is the proxy's hot path (one message per row), so
//! decoding can reuse a caller's `Vec` and never copies column bytes, and encoding writes
//! straight into the destination after a single reservation.

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_values, read_values, value_len, Reader, MAX_COUNT, MAX_MESSAGE_LEN};
use crate::frame::HEADER_LEN;
use crate::WireError;

const FIELD: &str = "DataRow.values";

/// `DataRow`: the column values of one row; `None` is SQL NULL.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DataRow {
    /// Column values, in `RowDescription` order.
    pub values: Vec<Option<Bytes>>,
}

// Row values may be plaintext of encrypted columns: Debug shows the column count only.
impl std::fmt::Debug for DataRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataRow")
            .field("columns", &self.values.len())
            .finish()
    }
}

impl DataRow {
    /// Message type byte.
    pub const TAG: u8 = b'D';

    /// Decodes a `DataRow` body; values are zero-copy slices of `body`.
    ///
    /// # Errors
    /// [`WireError::InvalidValueLength`] for a length below -1, or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut values = Vec::new();
        Self::decode_into(body, &mut values)?;
        Ok(Self { values })
    }

    /// Decodes a `DataRow` body into `values`, which is cleared first and keeps its capacity,
    /// so decoding many rows allocates nothing once the vector has grown to the row width.
    ///
    /// # Errors
    /// As for [`DataRow::decode`]; `values` holds an unspecified prefix of the row then.
    pub fn decode_into(body: &Bytes, values: &mut Vec<Option<Bytes>>) -> Result<(), WireError> {
        let mut r = Reader::new(body);
        read_values(&mut r, FIELD, values)?;
        r.finish("DataRow")
    }

    /// Number of bytes [`DataRow::encode`] writes (tag and length included).
    pub fn encoded_len(&self) -> usize {
        Self::encoded_len_of(&self.values)
    }

    /// Number of bytes [`DataRow::encode_values`] writes for `values`.
    pub fn encoded_len_of(values: &[Option<Bytes>]) -> usize {
        HEADER_LEN + 2 + values.iter().map(|v| value_len(v.as_ref())).sum::<usize>()
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// As for [`DataRow::encode_values`].
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        Self::encode_values(&self.values, dst)
    }

    /// Appends a `DataRow` of `values` to `dst`, reserving the exact size once.
    ///
    /// # Errors
    /// [`WireError::TooManyValues`] for more than 65535 columns, [`WireError::MessageTooLarge`]
    /// if the row does not fit the `Int32` length; `dst` is unchanged then.
    pub fn encode_values(values: &[Option<Bytes>], dst: &mut BytesMut) -> Result<(), WireError> {
        if values.len() > MAX_COUNT {
            return Err(WireError::TooManyValues {
                field: FIELD,
                count: values.len(),
                max: MAX_COUNT,
            });
        }
        let total = Self::encoded_len_of(values);
        let len = total - 1;
        let Ok(len32) = i32::try_from(len) else {
            return Err(WireError::MessageTooLarge {
                len,
                max: MAX_MESSAGE_LEN,
            });
        };
        dst.reserve(total);
        let start = dst.len();
        dst.put_u8(Self::TAG);
        dst.put_i32(len32);
        // The checks above bound the count and every value length, so this cannot fail; the
        // rollback keeps the "unchanged on error" promise even so.
        put_values(dst, FIELD, values).inspect_err(|_| dst.truncate(start))
    }
}
