//! The one error type of this crate.

use std::fmt;

use tokio_postgres::error::SqlState;

/// Everything the store can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database has no pgseal schema.
    #[error("this database has no pgseal schema: run `pgseal init`")]
    SchemaMissing,

    /// The pgseal schema is older than this pgseal.
    #[error(
        "the pgseal schema in this database is version {found} but this pgseal needs version \
         {supported}: run `pgseal init` to upgrade"
    )]
    SchemaTooOld {
        /// The version recorded in the database.
        found: i32,
        /// [`crate::SCHEMA_VERSION`].
        supported: i32,
    },

    /// The pgseal schema was written by a newer pgseal.
    #[error(
        "the pgseal schema in this database is version {found} but this pgseal supports up to \
         {supported}: upgrade pgseal"
    )]
    SchemaTooNew {
        /// The version recorded in the database.
        found: i32,
        /// [`crate::SCHEMA_VERSION`].
        supported: i32,
    },

    /// A query failed. Carries the server's message and SQLSTATE, never query parameters.
    #[error("{0}")]
    Database(DatabaseError),

    /// A migration script failed; the transaction was rolled back and nothing changed.
    #[error("pgseal schema migration {migration} failed, nothing was changed: {error}")]
    MigrationFailed {
        /// The migration's name, e.g. `0001_initial`.
        migration: &'static str,
        /// Why.
        error: DatabaseError,
    },

    /// The pgseal tables hold something this pgseal cannot interpret.
    #[error("the pgseal schema holds invalid data ({what}); it may have been edited by hand")]
    Corrupt {
        /// What was wrong, e.g. "pgseal.data_keys.state = 'paused'".
        what: String,
    },

    /// A column has a type in schema pgseal that this pgseal does not know.
    #[error(
        "column {column} has type pgseal.{domain}, which this pgseal does not know: upgrade \
         pgseal, or change the column to one of the documented pgseal domains"
    )]
    UnknownDomain {
        /// `schema.table.column`.
        column: String,
        /// The type name inside schema pgseal.
        domain: String,
    },

    /// A column uses a pgseal domain indirectly (an array of it, or a domain over it), which
    /// pgseal cannot encrypt; refused rather than left unencrypted.
    #[error(
        "column {column} has type {type_name}, built on a pgseal domain; pgseal only encrypts \
         columns declared directly with a pgseal domain: change the column's type"
    )]
    UnsupportedColumnType {
        /// `schema.table.column`.
        column: String,
        /// The column's type.
        type_name: String,
    },

    /// Two registry rows would end up with the same column name.
    #[error(
        "pgseal.columns row {stale_column_id} is registered as {column}, a column that no longer \
         exists, and another column now has that name; rename that row's column_name or \
         restore the original column"
    )]
    RegistryConflict {
        /// `schema.table.column`.
        column: String,
        /// The id of the registry row that refers to a column that is gone.
        stale_column_id: u32,
    },

    /// No registered column has this id.
    #[error("no column with id {column_id} is registered in pgseal.columns: run `pgseal init`")]
    UnknownColumn {
        /// The id asked for.
        column_id: u32,
    },

    /// No data key with this identity exists.
    #[error("no data key for column {column_id}, purpose {purpose}, version {version}")]
    KeyNotFound {
        /// Column id.
        column_id: u32,
        /// 1 = value key, 2 = index key.
        purpose: u8,
        /// Key version.
        version: u32,
    },

    /// A column and purpose can have only one active key.
    #[error(
        "column {column_id} already has an active key for purpose {purpose}: make it \
         decrypt_only before activating another"
    )]
    ActiveKeyExists {
        /// Column id.
        column_id: u32,
        /// 1 = value key, 2 = index key.
        purpose: u8,
    },

    /// The caller passed a value that cannot be stored.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What was wrong.
        what: String,
    },
}

impl StoreError {
    /// The SQLSTATE of a database error, if this is one.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            StoreError::Database(e) => e.sqlstate(),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        StoreError::Database(DatabaseError(error))
    }
}

/// A failed query. Displays the server's message and SQLSTATE (or the client-side cause), but
/// never the server's DETAIL, which can quote row values, and never query parameters.
pub struct DatabaseError(tokio_postgres::Error);

impl DatabaseError {
    pub(crate) fn new(error: tokio_postgres::Error) -> Self {
        Self(error)
    }

    /// The SQLSTATE, when the server reported the error.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        self.0.code()
    }

    /// The constraint the server named, if any.
    pub fn constraint(&self) -> Option<&str> {
        self.0.as_db_error().and_then(|db| db.constraint())
    }
}

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_db_error() {
            Some(db) => write!(
                f,
                "database error: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            ),
            None if self.0.is_closed() => f.write_str("database error: the connection is closed"),
            // Client-side errors (I/O, protocol, type conversion) carry no row data.
            None => write!(f, "database error: {}", self.0),
        }
    }
}

// No `source()`: the wrapped error's own Display includes the server's DETAIL.
impl std::error::Error for DatabaseError {}

impl fmt::Debug for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseError")
            .field("sqlstate", &self.sqlstate().map(SqlState::code))
            .field("constraint", &self.constraint())
            .finish_non_exhaustive()
    }
}

/// Maps "relation/schema pgseal.* does not exist" to [`StoreError::SchemaMissing`].
pub(crate) fn missing_schema_as(error: tokio_postgres::Error) -> StoreError {
    match error.code() {
        Some(code)
            if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME =>
        {
            StoreError::SchemaMissing
        }
        _ => error.into(),
    }
}
