//! SQL text built from catalog names, and the raw binary values the backfill moves.

use std::error::Error as StdError;

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use zeroize::Zeroizing;

/// Quotes an identifier as PostgreSQL's `quote_ident` would always do (double quotes doubled):
/// names come from the catalog, but are still never spliced unquoted.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// A value in PostgreSQL's binary format, whatever its type: read from a row as sent by the
/// server, and sent back as a parameter (or an array element) byte for byte. Plaintext may pass
/// through it, so its buffer is wiped on drop.
pub(crate) struct RawBinary(pub(crate) Zeroizing<Vec<u8>>);

impl std::fmt::Debug for RawBinary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the bytes: they may be plaintext.
        write!(f, "RawBinary({} bytes)", self.0.len())
    }
}

impl<'a> FromSql<'a> for RawBinary {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawBinary(Zeroizing::new(raw.to_vec())))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl ToSql for RawBinary {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted_and_quotes_doubled() {
        assert_eq!(ident("email"), "\"email\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("public", "Users"), "\"public\".\"Users\"");
    }
}
