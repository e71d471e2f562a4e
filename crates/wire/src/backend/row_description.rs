//! `RowDescription` ('T') and `ParameterDescription` ('t'): the shapes of a statement's result
//! rows and parameters.

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_count, put_cstr, write_message, Reader};
use crate::WireError;

/// One result column of a `RowDescription`.
///
/// `table_oid` and `column_attr` identify the source column when there is one (0 otherwise);
/// they, not the name, tell which column a value came from (a domain column is reported with
/// its base type in `type_oid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name (or alias).
    pub name: String,
    /// OID of the source table, or 0.
    pub table_oid: u32,
    /// Attribute number of the source column, or 0.
    pub column_attr: i16,
    /// OID of the column's data type.
    pub type_oid: u32,
    /// `pg_type.typlen` (negative for variable-length types).
    pub type_size: i16,
    /// `pg_attribute.atttypmod`; -1 if none.
    pub type_modifier: i32,
    /// Format code the values come in (0 text, 1 binary; 0 in a `Describe` of a statement).
    pub format: i16,
}

/// Smallest encoding of one field: an empty name's NUL and the 18 bytes of fixed fields.
const MIN_FIELD_LEN: usize = 1 + 4 + 2 + 4 + 2 + 4 + 2;

/// `RowDescription`: the columns of the rows that follow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowDescription {
    /// One entry per column, in order.
    pub fields: Vec<FieldDescription>,
}

impl RowDescription {
    /// Message type byte.
    pub const TAG: u8 = b'T';

    /// Decodes a `RowDescription` body.
    ///
    /// # Errors
    /// [`WireError::InvalidUtf8`] for a column name, or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let n = r.count("RowDescription.fields", MIN_FIELD_LEN)?;
        let mut fields = Vec::with_capacity(n);
        for _ in 0..n {
            fields.push(FieldDescription {
                name: r.string("RowDescription.name")?,
                table_oid: r.u32("RowDescription.table_oid")?,
                column_attr: r.i16("RowDescription.column_attr")?,
                type_oid: r.u32("RowDescription.type_oid")?,
                type_size: r.i16("RowDescription.type_size")?,
                type_modifier: r.i32("RowDescription.type_modifier")?,
                format: r.i16("RowDescription.format")?,
            });
        }
        r.finish("RowDescription")?;
        Ok(Self { fields })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`] in a name, [`WireError::TooManyValues`]; `dst` is unchanged
    /// then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            put_count(dst, "RowDescription.fields", self.fields.len())?;
            for field in &self.fields {
                put_cstr(dst, "RowDescription.name", field.name.as_bytes())?;
                dst.put_u32(field.table_oid);
                dst.put_i16(field.column_attr);
                dst.put_u32(field.type_oid);
                dst.put_i16(field.type_size);
                dst.put_i32(field.type_modifier);
                dst.put_i16(field.format);
            }
            Ok(())
        })
    }
}

/// `ParameterDescription`: the types the server inferred for a statement's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParameterDescription {
    /// Type OID of each parameter, in order.
    pub types: Vec<u32>,
}

impl ParameterDescription {
    /// Message type byte.
    pub const TAG: u8 = b't';

    /// Decodes a `ParameterDescription` body.
    ///
    /// # Errors
    /// A structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let n = r.count("ParameterDescription.types", 4)?;
        let mut types = Vec::with_capacity(n);
        for _ in 0..n {
            types.push(r.u32("ParameterDescription.types")?);
        }
        r.finish("ParameterDescription")?;
        Ok(Self { types })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::TooManyValues`]; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            put_count(dst, "ParameterDescription.types", self.types.len())?;
            for &oid in &self.types {
                dst.put_u32(oid);
            }
            Ok(())
        })
    }
}
