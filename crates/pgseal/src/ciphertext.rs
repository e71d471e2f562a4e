//! [`Ciphertext`]: a sealed value as it is stored, passed to and read from PostgreSQL.

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};

/// A sealed value, as stored in a `pgseal.*` column.
///
/// Binds to and reads from `bytea` and every domain over it (the `pgseal.*` domains), which
/// tokio-postgres's own `Vec<u8>` refuses. Its `Debug` shows only the length: a ciphertext
/// reveals little, but logs are no place for it either.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(Vec<u8>);

impl Ciphertext {
    /// Wraps stored bytes (for example read with another driver).
    pub fn from_bytes(bytes: Vec<u8>) -> Ciphertext {
        Ciphertext(bytes)
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The stored bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ciphertext({} bytes)", self.0.len())
    }
}

fn is_bytea_like(ty: &Type) -> bool {
    *ty == Type::BYTEA || matches!(ty.kind(), Kind::Domain(inner) if is_bytea_like(inner))
}

impl ToSql for Ciphertext {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        is_bytea_like(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Ciphertext {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Ciphertext(raw.to_vec()))
    }

    fn accepts(ty: &Type) -> bool {
        is_bytea_like(ty)
    }
}
