//! `Query` ('Q'): a simple-protocol query string.

use bytes::{Bytes, BytesMut};

use crate::buf::{put_cstr, write_message, Reader};
use crate::WireError;

/// `Query`: one or more SQL statements to run with the simple protocol.
#[derive(Clone, PartialEq, Eq)]
pub struct Query {
    /// The SQL text.
    pub sql: String,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("sql_len", &self.sql.len())
            .finish()
    }
}

impl Query {
    /// Message type byte.
    pub const TAG: u8 = b'Q';

    /// Decodes a `Query` body.
    ///
    /// # Errors
    /// [`WireError::InvalidUtf8`] if the text is not UTF-8, or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        Self::sql_of(body).map(|sql| Self {
            sql: sql.to_owned(),
        })
    }

    /// The SQL text of a `Query` body, borrowed: what a layer that only reads the text and
    /// forwards the message unchanged needs, without a copy.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn sql_of(body: &Bytes) -> Result<&str, WireError> {
        let mut r = Reader::new(body);
        let sql = r.str("Query.sql")?;
        r.finish("Query")?;
        Ok(sql)
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`] if the text contains NUL; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            put_cstr(dst, "Query.sql", self.sql.as_bytes())
        })
    }
}
