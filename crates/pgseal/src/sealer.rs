//! [`Sealer`]: in-process encryption for Rust applications.

use pgseal_audit::AuditLog;
use pgseal_crypto::MasterKeyring;
use pgseal_value::{decode_canonical, encode_canonical, index_input, Value};
use tokio_postgres::Client;

use crate::keyring::{ensure_data_keys, Keyring, SealedColumn};
use crate::master_key::load_master_keys_from_env;
use crate::{Ciphertext, Error};

/// Seals and opens the values of a database's encrypted columns inside the application.
///
/// Built once from the environment's master key and a connection; then [`Sealer::seal`] and
/// [`Sealer::open`] work without touching the database. Values sealed here are the same bytes the
/// proxy writes, so an application may mix both.
///
/// ```no_run
/// # async fn demo(client: &mut tokio_postgres::Client) -> Result<(), pgseal::Error> {
/// use pgseal::{Sealer, Value};
/// let sealer = Sealer::from_env(client).await?;
/// let sealed = sealer.seal("users", "birth_place", &Value::Text("Lyon".into()))?;
/// client
///     .execute("UPDATE users SET birth_place = $1 WHERE id = $2", &[&sealed, &1_i32])
///     .await?;
/// # Ok(()) }
/// ```
pub struct Sealer {
    master: MasterKeyring,
    audit: AuditLog,
    keyring: Keyring,
}

impl Sealer {
    /// Builds a sealer from `PGSEAL_MASTER_KEY` (or `PGSEAL_MASTER_KEY_FILE`,
    /// `PGSEAL_PREVIOUS_MASTER_KEYS`) and `PGSEAL_AUDIT_LOG`.
    ///
    /// Requires the pgseal schema (`pgseal init`); creates the data keys of columns declared
    /// since, exactly as `pgseal init` would.
    pub async fn from_env(client: &mut Client) -> Result<Sealer, Error> {
        let master = load_master_keys_from_env()?;
        let audit = AuditLog::from_env().map_err(|err| Error::Audit(err.to_string()))?;
        Sealer::new(client, master.keyring, audit).await
    }

    /// Builds a sealer from an explicit master keyring and audit log.
    pub async fn new(
        client: &mut Client,
        master: MasterKeyring,
        audit: AuditLog,
    ) -> Result<Sealer, Error> {
        pgseal_store::check_schema(client).await?;
        ensure_data_keys(client, &master, &audit).await?;
        let keyring = Keyring::load(client, &master, &audit).await?;
        Ok(Sealer {
            master,
            audit,
            keyring,
        })
    }

    /// Reloads columns and keys (after a column was added or a key rotated).
    pub async fn refresh(&mut self, client: &mut Client) -> Result<(), Error> {
        ensure_data_keys(client, &self.master, &self.audit).await?;
        self.keyring = Keyring::load(client, &self.master, &self.audit).await?;
        Ok(())
    }

    /// The loaded keys.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    fn typed_column(
        &self,
        table: &str,
        column: &str,
        value: &Value,
    ) -> Result<&SealedColumn, Error> {
        let sealed = self.keyring.column(table, column)?;
        let expected = sealed.column.domain.logical_type;
        if value.logical_type() != expected {
            return Err(Error::WrongType {
                column: sealed.column.qualified_name(),
                expected,
                found: value.logical_type(),
            });
        }
        Ok(sealed)
    }

    /// Seals `value` for `table.column` (`table` may be `schema.table`).
    pub fn seal(&self, table: &str, column: &str, value: &Value) -> Result<Ciphertext, Error> {
        let sealed = self.typed_column(table, column, value)?;
        let plaintext = zeroize::Zeroizing::new(encode_canonical(value));
        let index = zeroize::Zeroizing::new(index_input(value));
        Ok(Ciphertext::from_bytes(
            sealed.cipher.seal(&plaintext, &index),
        ))
    }

    /// Seals an optional value: SQL `NULL` stays `NULL`.
    pub fn seal_opt(
        &self,
        table: &str,
        column: &str,
        value: Option<&Value>,
    ) -> Result<Option<Ciphertext>, Error> {
        value.map(|v| self.seal(table, column, v)).transpose()
    }

    /// Opens a ciphertext read from `table.column`; fails if it belongs to another column, was
    /// altered, or is under an unknown or retired key.
    pub fn open(&self, table: &str, column: &str, ciphertext: &Ciphertext) -> Result<Value, Error> {
        let sealed = self.keyring.column(table, column)?;
        let name = || sealed.column.qualified_name();
        let ty = sealed.column.domain.logical_type;
        // open_with wipes the plaintext in one pass once decoded (zeroize's per-byte wipe of a
        // returned Vec costs more than the decryption for large values).
        sealed
            .cipher
            .open_with(ciphertext.as_bytes(), |plaintext| {
                decode_canonical(ty, plaintext)
            })
            .map_err(|source| match source {
                pgseal_crypto::CryptoError::RetiredKey { version, .. } => Error::RetiredKey {
                    column: name(),
                    version,
                },
                source => Error::Crypto {
                    column: name(),
                    source,
                },
            })?
            .map_err(|source| Error::Value {
                column: name(),
                source,
            })
    }

    /// Opens an optional ciphertext: `NULL` stays `NULL`.
    pub fn open_opt(
        &self,
        table: &str,
        column: &str,
        ciphertext: Option<&Ciphertext>,
    ) -> Result<Option<Value>, Error> {
        ciphertext.map(|c| self.open(table, column, c)).transpose()
    }

    /// Blind indexes of `value` for an equality lookup on a searchable column, one per index key
    /// version in use: compare with `pgseal.blind_index(column) = ANY($1)`.
    pub fn search_terms(
        &self,
        table: &str,
        column: &str,
        value: &Value,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let sealed = self.typed_column(table, column, value)?;
        if !sealed.cipher.is_searchable() {
            return Err(Error::Config(format!(
                "{} is not searchable: declare it with an equality domain such as pgseal.text_eq",
                sealed.column.qualified_name()
            )));
        }
        let input = zeroize::Zeroizing::new(index_input(value));
        Ok(sealed
            .cipher
            .blind_indexes(&input)
            .into_iter()
            .map(|(_, index)| index)
            .collect())
    }
}
