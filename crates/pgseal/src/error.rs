//! The one error type of the `pgseal` library.

use pgseal_crypto::{CryptoError, KeyError, KeyFingerprint};
use pgseal_store::StoreError;
use pgseal_value::{LogicalType, ValueError};

/// Everything that can go wrong in the library. Messages say what is wrong and what to do; none
/// carries a key, a plaintext or a ciphertext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither `PGSEAL_MASTER_KEY` nor `PGSEAL_MASTER_KEY_FILE` is set.
    #[error(
        "PGSEAL_MASTER_KEY is not set (nor PGSEAL_MASTER_KEY_FILE): generate a key with \
         `pgseal keygen` and pass it in the environment"
    )]
    MasterKeyMissing,
    /// A key supplied by the operator is unusable (the message names the variable).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Inconsistent configuration (the message names the setting).
    #[error("{0}")]
    Config(String),
    /// The master key cannot unwrap the data keys stored in the database.
    #[error(
        "this master key ({current}) does not match the data keys in database {database}: \
         they were wrapped by {wrapped_by}. Set PGSEAL_MASTER_KEY to that key, or, during a \
         master-key rotation, add it to PGSEAL_PREVIOUS_MASTER_KEYS"
    )]
    MasterKeyMismatch {
        /// The database whose keys did not unwrap.
        database: String,
        /// Fingerprint of the master key in use.
        current: KeyFingerprint,
        /// Fingerprint recorded in the wrapped data key.
        wrapped_by: String,
    },
    /// A wrapped data key failed authentication under the master key that claims to have
    /// wrapped it: the row was altered or moved.
    #[error(
        "the data key {purpose} v{version} of column {column} in database {database} failed \
         authentication under master key {master_key}: the stored key was altered or copied from \
         another column; restore pgseal.data_keys from a backup"
    )]
    DataKeyCorrupt {
        /// The database.
        database: String,
        /// `schema.table.column`.
        column: String,
        /// "value" or "index".
        purpose: &'static str,
        /// Key version.
        version: u32,
        /// Fingerprint of the master key used.
        master_key: KeyFingerprint,
    },
    /// No encrypted column of that name.
    #[error(
        "{0} is not an encrypted column: declare it with a pgseal domain type (for example \
         `ALTER TABLE t ADD COLUMN c pgseal.text`), then run `pgseal init`"
    )]
    UnknownColumn(String),
    /// A table name matches encrypted columns in several schemas.
    #[error("table name {table} is ambiguous (schemas: {schemas}): qualify it as schema.table")]
    AmbiguousTable {
        /// The name as given.
        table: String,
        /// The schemas that have it.
        schemas: String,
    },
    /// A value of one type given for a column of another.
    #[error(
        "column {column} holds {} values, not {}: convert the value first",
        expected.sql_name(),
        found.sql_name()
    )]
    WrongType {
        /// `schema.table.column`.
        column: String,
        /// The column's logical type.
        expected: LogicalType,
        /// The type of the value given.
        found: LogicalType,
    },
    /// A value could not be decoded or encoded.
    #[error("column {column}: {source}")]
    Value {
        /// `schema.table.column`.
        column: String,
        /// What was wrong.
        source: ValueError,
    },
    /// Sealing or opening failed (tampered ciphertext, wrong column, unknown key version...).
    #[error("column {column}: {source}")]
    Crypto {
        /// `schema.table.column`.
        column: String,
        /// What failed.
        source: CryptoError,
    },
    /// The pgseal schema or the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed outside the store (for example while connecting).
    #[error("database error: {0}")]
    Database(String),
    /// A value is under a data key version that was retired.
    #[error(
        "data key version {version} of {column} is retired: the value was written before the key \
         was retired (for example restored from an old backup). To read it, set the key back to \
         decrypt_only (UPDATE pgseal.data_keys SET state = 'decrypt_only' WHERE ...), then run \
         `pgseal reencrypt`"
    )]
    RetiredKey {
        /// `schema.table.column`.
        column: String,
        /// The retired value key version.
        version: u32,
    },
    /// `keys retire` named a key version the column does not have.
    #[error("{column} has no {purpose} key version {version}: see `pgseal keys status`")]
    KeyVersionNotFound {
        /// `schema.table.column`.
        column: String,
        /// "value" or "index".
        purpose: &'static str,
        /// The version asked for.
        version: u32,
    },
    /// `keys retire` named the active version.
    #[error(
        "{purpose} key version {version} of {column} is the active one and cannot be retired: \
         run `pgseal keys rotate {column}` and `pgseal reencrypt {column}` first"
    )]
    RetireActive {
        /// `schema.table.column`.
        column: String,
        /// "value" or "index".
        purpose: &'static str,
        /// The version asked for.
        version: u32,
    },
    /// `keys retire` refused: values still use the version.
    #[error(
        "{values} value(s) of {column} still use {purpose} key version {version}; nothing was \
         retired. Run `pgseal reencrypt {column}` to move them to the active key, then retry"
    )]
    KeyVersionInUse {
        /// `schema.table.column`.
        column: String,
        /// "value" or "index".
        purpose: &'static str,
        /// The version asked for.
        version: u32,
        /// How many values use it.
        values: u64,
    },
    /// Re-encryption met a value it cannot open.
    #[error(
        "re-encryption stopped: the value of {column} in the row at ctid {ctid} cannot be opened \
         ({reason}); rows rewritten so far are committed. Restore that value or set it to NULL, \
         then run `pgseal reencrypt` again"
    )]
    ReencryptValue {
        /// `schema.table.column`.
        column: String,
        /// The row's physical position (not secret).
        ctid: String,
        /// Why it failed (no value, no key).
        reason: String,
    },
    /// Re-encryption gave up on rows that kept changing.
    #[error(
        "re-encryption of {table} left {remaining} row(s) under older keys after {passes} passes \
         (they were updated concurrently every time, or kept waiting on locks); run `pgseal \
         reencrypt` again, at a quieter moment or with a larger --lock-timeout"
    )]
    ReencryptIncomplete {
        /// `schema.table`.
        table: String,
        /// Rows still to do.
        remaining: u64,
        /// Passes made.
        passes: u32,
    },
    /// An online column migration cannot start or continue (the message says why and what to
    /// do).
    #[error("cannot migrate {column}: {reason}")]
    MigrationRefused {
        /// `schema.table.column` (or the table name as given when it was not found).
        column: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A brief table lock could not be taken: other transactions kept holding the table.
    #[error(
        "could not lock the table within lock_timeout ({timeout:?}) in {attempts} attempts: \
         long transactions hold it. Nothing half-done was left; run the command again at a \
         quieter time, or raise --lock-timeout / --lock-attempts"
    )]
    LockNotAcquired {
        /// Attempts made.
        attempts: u32,
        /// The `lock_timeout` of each attempt.
        timeout: std::time::Duration,
    },
    /// An audit record could not be written; the operation it describes was not carried out.
    #[error("the audit log cannot be written ({0}): fix PGSEAL_AUDIT_LOG, the operation was not carried out")]
    Audit(String),
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        Error::Database(describe_db_error(&err))
    }
}

/// Describes a database error by the server's message and SQLSTATE (never the statement's
/// parameters, which may be secret).
pub fn describe_db_error(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}
