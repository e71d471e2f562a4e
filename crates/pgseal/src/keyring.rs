//! The keys of one database: creating missing data keys, unwrapping stored ones, and building a
//! [`ColumnCipher`] per encrypted column.
//!
//! Shared by the `pgseal` CLI, the proxy and in-process applications ([`crate::Sealer`]), so all
//! three agree on how keys are found, created and audited.

use std::collections::HashMap;

use pgseal_audit::{AuditEvent, AuditLog};
use pgseal_crypto::{
    unwrap_data_key, wrap_data_key, wrapped_key_fingerprint, ColumnCipher, ColumnKeys, CryptoError,
    DataKey, DataKeyId, IndexKeys, KeyPurpose, KeyState as CipherKeyState, MasterKeyring,
    Normalization,
};
use pgseal_store::{EncryptedColumn, IndexNormalization, KeyState, NewDataKey, StoredDataKey};
use tokio_postgres::Client;

use crate::Error;

/// The channel on which key changes (creation, rotation, rewrap, retirement) are announced with
/// `NOTIFY`, in the transaction that makes them: running proxies `LISTEN` on it and reload the
/// database's keys as soon as the change commits.
pub const CATALOG_CHANNEL: &str = "pgseal_catalog";

/// Advisory lock key serialising data-key creation across concurrent CLIs, proxies and
/// applications (ASCII "pgsealky").
pub(crate) const KEY_CREATION_LOCK: i64 = 0x7067_7365_616c_6b79;

/// One encrypted column with its cipher, ready to seal and open values.
pub struct SealedColumn {
    /// The column as declared in the database.
    pub column: EncryptedColumn,
    /// Id of the column in `pgseal.columns` (the value bound into every ciphertext).
    pub column_id: u32,
    /// The cipher built from the column's unwrapped data keys.
    pub cipher: ColumnCipher,
}

/// The unwrapped keys of every encrypted column of one database.
pub struct Keyring {
    database: String,
    columns: Vec<SealedColumn>,
    by_id: HashMap<u32, usize>,
    /// The registered columns and the stored (wrapped) keys it was built from: nothing
    /// secret, they are what the database holds.
    source: (Vec<EncryptedColumn>, Vec<StoredDataKey>),
}

/// A data key created by [`ensure_data_keys`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedKey {
    /// `schema.table.column`.
    pub column: String,
    /// "value" or "index".
    pub purpose: &'static str,
    /// The new key's version.
    pub version: u32,
}

pub(crate) fn purpose_name(purpose: KeyPurpose) -> &'static str {
    match purpose {
        KeyPurpose::Value => "value",
        KeyPurpose::Index => "index",
    }
}

/// Name of the connected database (for messages and audit records).
pub async fn current_database(client: &Client) -> Result<String, Error> {
    let row = client
        .query_one("SELECT current_database()::text", &[])
        .await?;
    Ok(row.get(0))
}

/// Registers every declared encrypted column and creates, wrapped under the current master key,
/// the data keys a column lacks (a value key, and an index key for searchable columns).
///
/// Runs in one transaction under an advisory lock, so concurrent callers neither race nor leave
/// half-created keys. Before creating anything it checks that the master keyring unwraps every
/// stored key: a wrong master key is reported as [`Error::MasterKeyMismatch`] and changes nothing.
pub async fn ensure_data_keys(
    client: &mut Client,
    master: &MasterKeyring,
    audit: &AuditLog,
) -> Result<Vec<CreatedKey>, Error> {
    let database = current_database(client).await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_CREATION_LOCK])
        .await?;
    let columns = pgseal_store::register_columns(&tx).await?;
    let stored = pgseal_store::load_data_keys(&tx).await?;
    let names: HashMap<u32, String> = columns
        .iter()
        .filter_map(|c| c.column_id.map(|id| (id, c.qualified_name())))
        .collect();
    for key in &stored {
        unwrap_stored(&database, &names, master, audit, key)?;
    }

    let mut created = Vec::new();
    for column in &columns {
        let Some(column_id) = column.column_id else {
            continue;
        };
        let mut purposes = vec![KeyPurpose::Value];
        if column.domain.searchable {
            purposes.push(KeyPurpose::Index);
        }
        for purpose in purposes {
            let has_active = stored.iter().any(|k| {
                k.column_id == column_id
                    && k.purpose == purpose.as_u8()
                    && k.state == KeyState::Active
            });
            if has_active {
                continue;
            }
            let version = pgseal_store::next_key_version(&tx, column_id, purpose.as_u8()).await?;
            let id = DataKeyId {
                column_id,
                purpose,
                version,
            };
            let wrapped = wrap_data_key(master.current(), id, &DataKey::generate());
            let fingerprint = master.current().fingerprint();
            pgseal_store::insert_data_key(
                &tx,
                &NewDataKey {
                    column_id,
                    purpose: purpose.as_u8(),
                    version,
                    state: KeyState::Active,
                    wrapped_key: wrapped,
                    master_key_fingerprint: fingerprint.to_string(),
                },
            )
            .await?;
            // Recorded before the commit: a key that exists must never be missing from the
            // audit log, and a failed audit write aborts the creation.
            audit
                .record(AuditEvent::DataKeyCreated {
                    database: database.clone(),
                    column: column.qualified_name(),
                    column_id,
                    purpose: purpose_name(purpose),
                    version,
                    master_key: fingerprint.to_string(),
                })
                .map_err(|err| Error::Audit(err.to_string()))?;
            created.push(CreatedKey {
                column: column.qualified_name(),
                purpose: purpose_name(purpose),
                version,
            });
        }
    }
    if !created.is_empty() {
        notify_catalog_changed(&tx).await?;
    }
    tx.commit().await?;
    Ok(created)
}

/// Announces a key change to running proxies; delivered when `tx` commits, never if it rolls
/// back.
pub(crate) async fn notify_catalog_changed(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<(), Error> {
    tx.execute(&format!("NOTIFY {CATALOG_CHANNEL}"), &[])
        .await?;
    Ok(())
}

pub(crate) fn unwrap_stored(
    database: &str,
    names: &HashMap<u32, String>,
    master: &MasterKeyring,
    audit: &AuditLog,
    key: &StoredDataKey,
) -> Result<DataKey, Error> {
    let purpose = KeyPurpose::from_u8(key.purpose).ok_or_else(|| {
        Error::Config(format!(
            "pgseal.data_keys holds a key with unknown purpose {} for column id {}: this database \
             was written by a newer pgseal; upgrade pgseal",
            key.purpose, key.column_id
        ))
    })?;
    let id = DataKeyId {
        column_id: key.column_id,
        purpose,
        version: key.version,
    };
    let column = names
        .get(&key.column_id)
        .cloned()
        .unwrap_or_else(|| format!("column id {}", key.column_id));
    unwrap_data_key(master, id, &key.wrapped_key).map_err(|err| {
        let reason = match err {
            CryptoError::UnknownMasterKey { .. } => "unknown master key",
            _ => "authentication failed",
        };
        // The operation already fails; a failing audit sink must not hide the real error.
        let _ = audit.record(AuditEvent::DataKeyUnwrapFailed {
            database: database.to_owned(),
            column_id: key.column_id,
            purpose: purpose_name(purpose),
            version: key.version,
            master_key: key.master_key_fingerprint.clone(),
            reason,
        });
        match err {
            CryptoError::UnknownMasterKey { .. } => Error::MasterKeyMismatch {
                database: database.to_owned(),
                current: master.current().fingerprint(),
                wrapped_by: wrapped_key_fingerprint(&key.wrapped_key)
                    .map(|fp| fp.to_string())
                    .unwrap_or_else(|_| key.master_key_fingerprint.clone()),
            },
            _ => Error::DataKeyCorrupt {
                database: database.to_owned(),
                column,
                purpose: purpose_name(purpose),
                version: key.version,
                master_key: wrapped_key_fingerprint(&key.wrapped_key)
                    .unwrap_or_else(|_| master.current().fingerprint()),
            },
        }
    })
}

fn cipher_state(state: KeyState) -> CipherKeyState {
    match state {
        KeyState::Active => CipherKeyState::Active,
        KeyState::DecryptOnly => CipherKeyState::DecryptOnly,
        KeyState::Retired => CipherKeyState::Retired,
    }
}

fn normalization(n: IndexNormalization) -> Normalization {
    match n {
        IndexNormalization::None => Normalization::None,
        IndexNormalization::Lowercase => Normalization::Lowercase,
        IndexNormalization::Digits => Normalization::Digits,
    }
}

impl Keyring {
    /// Loads and unwraps the keys of every registered encrypted column.
    ///
    /// Columns declared but not yet given keys (no `pgseal init` since they were added) are
    /// skipped: [`Keyring::column`] reports them as unknown until [`ensure_data_keys`] has run.
    pub async fn load(
        client: &Client,
        master: &MasterKeyring,
        audit: &AuditLog,
    ) -> Result<Keyring, Error> {
        let database = current_database(client).await?;
        let declared = pgseal_store::discover_columns(client).await?;
        let stored = pgseal_store::load_data_keys(client).await?;
        let names: HashMap<u32, String> = declared
            .iter()
            .filter_map(|c| c.column_id.map(|id| (id, c.qualified_name())))
            .collect();

        let mut value_keys: HashMap<u32, Vec<(u32, CipherKeyState, DataKey)>> = HashMap::new();
        let mut index_keys: HashMap<u32, Vec<(u16, CipherKeyState, DataKey)>> = HashMap::new();
        for key in &stored {
            // Retired keys are unwrapped too (the cipher drops their material at once) so that a
            // value still under one, e.g. from a restored backup, is reported as "retired"
            // rather than as an unknown version.
            let data_key = unwrap_stored(&database, &names, master, audit, key)?;
            let state = cipher_state(key.state);
            if key.purpose == KeyPurpose::Index.as_u8() {
                let version = u16::try_from(key.version).map_err(|_| {
                    Error::Config(format!(
                        "index key version {} of column id {} exceeds 65535",
                        key.version, key.column_id
                    ))
                })?;
                index_keys
                    .entry(key.column_id)
                    .or_default()
                    .push((version, state, data_key));
            } else {
                value_keys
                    .entry(key.column_id)
                    .or_default()
                    .push((key.version, state, data_key));
            }
        }

        let source = (declared.clone(), stored);
        let mut columns = Vec::new();
        for column in declared {
            let Some(column_id) = column.column_id else {
                continue;
            };
            let Some(values) = value_keys.remove(&column_id) else {
                continue;
            };
            let index = if column.domain.searchable {
                match index_keys.remove(&column_id) {
                    Some(keys) => Some(IndexKeys {
                        keys,
                        length: column.index_bytes,
                        normalization: normalization(column.domain.normalization),
                    }),
                    None => continue,
                }
            } else {
                None
            };
            let cipher = ColumnCipher::new(ColumnKeys {
                column_id,
                type_tag: column.domain.logical_type.tag(),
                value_keys: values,
                index,
            })
            .map_err(|source| Error::Crypto {
                column: column.qualified_name(),
                source,
            })?;
            columns.push(SealedColumn {
                column,
                column_id,
                cipher,
            });
        }
        let by_id = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.column_id, i))
            .collect();
        Ok(Keyring {
            database,
            columns,
            by_id,
            source,
        })
    }

    /// Whether `other` was built from the same registered columns and stored keys (wrapped
    /// key, version and state of each). Unwrapped from the same rows, the two hold the same
    /// keys in the same states, so a holder of this one may keep it instead of `other`.
    pub fn same_source(&self, other: &Keyring) -> bool {
        self.database == other.database && self.source == other.source
    }

    /// The database these keys belong to.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Every encrypted column that has keys.
    pub fn columns(&self) -> &[SealedColumn] {
        &self.columns
    }

    /// The column with this id in `pgseal.columns`.
    pub fn by_id(&self, column_id: u32) -> Option<&SealedColumn> {
        self.by_id.get(&column_id).map(|&i| &self.columns[i])
    }

    /// Finds a column by `table` or `schema.table`, and column name. An unqualified table name
    /// found in several schemas means the one in `public` (PostgreSQL's default search_path);
    /// without one it is ambiguous.
    pub fn column(&self, table: &str, column: &str) -> Result<&SealedColumn, Error> {
        let (schema, table_name) = match table.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, table),
        };
        let matches: Vec<&SealedColumn> = self
            .columns
            .iter()
            .filter(|c| {
                c.column.table == table_name
                    && c.column.column == column
                    && schema.is_none_or(|s| c.column.schema == s)
            })
            .collect();
        // Several schemas have the table: an unqualified name means `public`, as under
        // PostgreSQL's default search_path; without a `public` one it is ambiguous.
        let public = matches
            .iter()
            .copied()
            .find(|c| schema.is_none() && c.column.schema == "public");
        match (matches.as_slice(), public) {
            ([one], _) => Ok(one),
            ([], _) => Err(Error::UnknownColumn(format!("{table}.{column}"))),
            (_, Some(public)) => Ok(public),
            (many, None) => Err(Error::AmbiguousTable {
                table: table.to_owned(),
                schemas: many
                    .iter()
                    .map(|c| c.column.schema.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}
