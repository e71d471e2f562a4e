//! `Parse` ('P'): create a prepared statement.

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_count, put_cstr, write_message, Reader};
use crate::WireError;

/// `Parse`: prepares `sql` as statement `name` (`""` is the unnamed statement, which every
/// new unnamed `Parse` replaces).
#[derive(Clone, PartialEq, Eq)]
pub struct Parse {
    /// Statement name; empty for the unnamed statement.
    pub name: String,
    /// The SQL text, with `$n` placeholders.
    pub sql: String,
    /// Parameter type OIDs the client specified; 0 leaves a type to the server. May be shorter
    /// than the number of parameters.
    pub param_types: Vec<u32>,
}

impl std::fmt::Debug for Parse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parse")
            .field("name", &self.name)
            .field("sql_len", &self.sql.len())
            .field("param_types", &self.param_types)
            .finish()
    }
}

impl Parse {
    /// Message type byte.
    pub const TAG: u8 = b'P';

    /// Decodes a `Parse` body.
    ///
    /// # Errors
    /// [`WireError::InvalidUtf8`] for a name or text that is not UTF-8, or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let name = r.string("Parse.name")?;
        let sql = r.string("Parse.sql")?;
        let n = r.count("Parse.param_types", 4)?;
        let mut param_types = Vec::with_capacity(n);
        for _ in 0..n {
            param_types.push(r.u32("Parse.param_types")?);
        }
        r.finish("Parse")?;
        Ok(Self {
            name,
            sql,
            param_types,
        })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`] for a name or text containing NUL,
    /// [`WireError::TooManyValues`] for more than 65535 types; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            put_cstr(dst, "Parse.name", self.name.as_bytes())?;
            put_cstr(dst, "Parse.sql", self.sql.as_bytes())?;
            put_count(dst, "Parse.param_types", self.param_types.len())?;
            for &oid in &self.param_types {
                dst.put_u32(oid);
            }
            Ok(())
        })
    }
}
