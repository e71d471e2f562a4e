//! Key rotation: rewrapping data keys under a new master key, rotating a column's data keys,
//! retiring old versions, and reporting which key protects how many values.
//!
//! Every change runs in one transaction under the key-creation advisory lock (so it never races
//! [`crate::ensure_data_keys`] or another rotation), records its audit events before the commit,
//! and announces itself with `NOTIFY pgseal_catalog` so running proxies reload at once.
//!
//! Where the versions of stored values come from: bytes 8..12 of a ciphertext are its value key
//! version, and bytes 36..38 its index key version when flag bit 0 (byte 3) is set
//! (docs/format.md 2). [`status`] and [`retire`] count them in SQL, without decrypting anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use pgseal_audit::{AuditEvent, AuditLog};
use pgseal_crypto::{
    wrap_data_key, wrapped_key_fingerprint, DataKey, DataKeyId, KeyPurpose, MasterKeyring,
};
use pgseal_store::{EncryptedColumn, KeyState, NewDataKey, StoredDataKey};
use tokio_postgres::{Client, GenericClient};

use crate::keyring::{
    current_database, notify_catalog_changed, purpose_name, unwrap_stored, KEY_CREATION_LOCK,
};
use crate::Error;

/// SQL for a column's value key version as a 4-byte big-endian `bytea` (docs/format.md 2:
/// bytes 8..12). Comparing two such `bytea`s compares the versions.
pub(crate) fn value_version_sql(column: &str) -> String {
    format!("substring({column}::bytea from 9 for 4)")
}

/// SQL for a column's index key version as a 2-byte `bytea`, `NULL` when the value carries no
/// blind index (flag bit 0 of byte 3 clear).
pub(crate) fn index_version_sql(column: &str) -> String {
    format!(
        "CASE WHEN get_byte({column}::bytea, 3) & 1 = 1 \
         THEN substring({column}::bytea from 37 for 2) END"
    )
}

/// Quotes an SQL identifier (`"` doubled), so any table or column name is safe in a statement.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub(crate) fn quoted_table(column: &EncryptedColumn) -> String {
    format!(
        "{}.{}",
        quote_ident(&column.schema),
        quote_ident(&column.table)
    )
}

fn version_from_bytes(bytes: &[u8]) -> Option<u32> {
    match *bytes {
        [a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
        [a, b] => Some(u32::from(u16::from_be_bytes([a, b]))),
        _ => None,
    }
}

/// Which columns a command acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnSelection {
    /// Every registered encrypted column.
    All,
    /// One column, as `table.column` or `schema.table.column`.
    One(String),
}

/// Finds the columns `selection` names among `columns` (registered ones only). An unqualified
/// table found in several schemas means the one in `public`, as in [`crate::Keyring::column`].
pub(crate) fn select_columns<'a>(
    columns: &'a [EncryptedColumn],
    selection: &ColumnSelection,
) -> Result<Vec<&'a EncryptedColumn>, Error> {
    let registered = columns.iter().filter(|c| c.column_id.is_some());
    let spec = match selection {
        ColumnSelection::All => return Ok(registered.collect()),
        ColumnSelection::One(spec) => spec,
    };
    let Some((table, column)) = spec.rsplit_once('.') else {
        return Err(Error::Config(format!(
            "{spec:?} does not name a column: write TABLE.COLUMN or SCHEMA.TABLE.COLUMN"
        )));
    };
    let (schema, table_name) = match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    };
    let matches: Vec<&EncryptedColumn> = registered
        .filter(|c| {
            c.table == table_name && c.column == column && schema.is_none_or(|s| c.schema == s)
        })
        .collect();
    let public = matches
        .iter()
        .copied()
        .find(|c| schema.is_none() && c.schema == "public");
    match (matches.as_slice(), public) {
        ([one], _) => Ok(vec![one]),
        ([], _) => Err(Error::UnknownColumn(spec.clone())),
        (_, Some(public)) => Ok(vec![public]),
        (many, None) => Err(Error::AmbiguousTable {
            table: table.to_owned(),
            schemas: many
                .iter()
                .map(|c| c.schema.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn column_names(columns: &[EncryptedColumn]) -> HashMap<u32, String> {
    columns
        .iter()
        .filter_map(|c| c.column_id.map(|id| (id, c.qualified_name())))
        .collect()
}

fn audit_err(err: pgseal_audit::AuditError) -> Error {
    Error::Audit(err.to_string())
}

// ---------------------------------------------------------------------------------------------
// rewrap

/// What [`rewrap`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewrapReport {
    /// The database.
    pub database: String,
    /// Data keys rewrapped under the current master key.
    pub rewrapped: u64,
    /// Data keys that were already under it (checked, left alone).
    pub unchanged: u64,
    /// Fingerprint of the current master key, which now wraps every data key.
    pub master_key: String,
    /// Fingerprints of the master keys that wrapped the rewrapped keys before.
    pub replaced: Vec<String>,
}

/// Rewraps every data key of the database (retired ones included: old backups may need them)
/// under the current master key of `master`, unwrapping each with whichever key of the ring
/// wrapped it. One transaction; idempotent (keys already under the current master key are only
/// checked). Fails, changing nothing, if some key cannot be unwrapped by the ring.
pub async fn rewrap(
    client: &mut Client,
    master: &MasterKeyring,
    audit: &AuditLog,
) -> Result<RewrapReport, Error> {
    let database = current_database(client).await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_CREATION_LOCK])
        .await?;
    let columns = pgseal_store::discover_columns(&tx).await?;
    let names = column_names(&columns);
    let stored = pgseal_store::load_data_keys(&tx).await?;
    let current = master.current().fingerprint();
    let mut rewrapped = 0u64;
    let mut unchanged = 0u64;
    let mut replaced = BTreeSet::new();
    for key in &stored {
        // Unwrapping also proves the ring holds the key that wrapped it, before anything changes.
        let data_key = unwrap_stored(&database, &names, master, audit, key)?;
        let wrapped_by =
            wrapped_key_fingerprint(&key.wrapped_key).map_err(|source| Error::Crypto {
                column: names
                    .get(&key.column_id)
                    .cloned()
                    .unwrap_or_else(|| format!("column id {}", key.column_id)),
                source,
            })?;
        if wrapped_by == current {
            unchanged += 1;
            continue;
        }
        let id = data_key_id(key)?;
        let wrapped = wrap_data_key(master.current(), id, &data_key);
        pgseal_store::update_wrapped_key(
            &tx,
            key.column_id,
            key.purpose,
            key.version,
            &wrapped,
            &current.to_string(),
        )
        .await?;
        replaced.insert(wrapped_by.to_string());
        rewrapped += 1;
    }
    let report = RewrapReport {
        database: database.clone(),
        rewrapped,
        unchanged,
        master_key: current.to_string(),
        replaced: replaced.into_iter().collect(),
    };
    if rewrapped > 0 {
        audit
            .record(AuditEvent::DataKeysRewrapped {
                database,
                rewrapped,
                master_key: report.master_key.clone(),
                replaced: report.replaced.clone(),
            })
            .map_err(audit_err)?;
        notify_catalog_changed(&tx).await?;
    }
    tx.commit().await?;
    Ok(report)
}

fn data_key_id(key: &StoredDataKey) -> Result<DataKeyId, Error> {
    let purpose = KeyPurpose::from_u8(key.purpose).ok_or_else(|| {
        Error::Config(format!(
            "pgseal.data_keys holds a key with unknown purpose {} for column id {}: upgrade pgseal",
            key.purpose, key.column_id
        ))
    })?;
    Ok(DataKeyId {
        column_id: key.column_id,
        purpose,
        version: key.version,
    })
}

// ---------------------------------------------------------------------------------------------
// rotate

/// One key made active by [`rotate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotatedKey {
    /// `schema.table.column`.
    pub column: String,
    /// "value" or "index".
    pub purpose: &'static str,
    /// The version that was active before (now decrypt_only), if there was one.
    pub previous: Option<u32>,
    /// The new active version.
    pub version: u32,
}

/// Creates a new value key version for each selected column, makes it active and the previous
/// active version decrypt_only; with `index`, does the same for the blind-index key of
/// searchable columns. One transaction for all columns; running proxies are notified.
///
/// Values written before keep their version and stay readable; `pgseal reencrypt` moves them.
pub async fn rotate(
    client: &mut Client,
    master: &MasterKeyring,
    audit: &AuditLog,
    selection: &ColumnSelection,
    index: bool,
) -> Result<Vec<RotatedKey>, Error> {
    let database = current_database(client).await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_CREATION_LOCK])
        .await?;
    let columns = pgseal_store::register_columns(&tx).await?;
    let names = column_names(&columns);
    let stored = pgseal_store::load_data_keys(&tx).await?;
    // Check the master key against what is stored before creating keys under it.
    for key in &stored {
        unwrap_stored(&database, &names, master, audit, key)?;
    }
    let selected = select_columns(&columns, selection)?;
    let fingerprint = master.current().fingerprint().to_string();
    let mut rotated = Vec::new();
    for column in selected {
        let Some(column_id) = column.column_id else {
            continue;
        };
        let mut purposes = vec![KeyPurpose::Value];
        if index && column.domain.searchable {
            purposes.push(KeyPurpose::Index);
        }
        for purpose in purposes {
            let previous = stored
                .iter()
                .find(|k| {
                    k.column_id == column_id
                        && k.purpose == purpose.as_u8()
                        && k.state == KeyState::Active
                })
                .map(|k| k.version);
            let version = pgseal_store::next_key_version(&tx, column_id, purpose.as_u8()).await?;
            if let Some(old) = previous {
                // First, because at most one key per column and purpose may be active.
                pgseal_store::set_key_state(
                    &tx,
                    column_id,
                    purpose.as_u8(),
                    old,
                    KeyState::DecryptOnly,
                )
                .await?;
                audit
                    .record(AuditEvent::KeyStateChanged {
                        database: database.clone(),
                        column: column.qualified_name(),
                        purpose: purpose_name(purpose),
                        version: old,
                        from: KeyState::Active.as_str(),
                        to: KeyState::DecryptOnly.as_str(),
                    })
                    .map_err(audit_err)?;
            }
            let id = DataKeyId {
                column_id,
                purpose,
                version,
            };
            pgseal_store::insert_data_key(
                &tx,
                &NewDataKey {
                    column_id,
                    purpose: purpose.as_u8(),
                    version,
                    state: KeyState::Active,
                    wrapped_key: wrap_data_key(master.current(), id, &DataKey::generate()),
                    master_key_fingerprint: fingerprint.clone(),
                },
            )
            .await?;
            audit
                .record(AuditEvent::DataKeyCreated {
                    database: database.clone(),
                    column: column.qualified_name(),
                    column_id,
                    purpose: purpose_name(purpose),
                    version,
                    master_key: fingerprint.clone(),
                })
                .map_err(audit_err)?;
            rotated.push(RotatedKey {
                column: column.qualified_name(),
                purpose: purpose_name(purpose),
                previous,
                version,
            });
        }
    }
    if !rotated.is_empty() {
        notify_catalog_changed(&tx).await?;
    }
    tx.commit().await?;
    Ok(rotated)
}

// ---------------------------------------------------------------------------------------------
// retire

/// What [`retire`] changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetiredKey {
    /// `schema.table.column`.
    pub column: String,
    /// "value" or "index".
    pub purpose: &'static str,
    /// The retired version.
    pub version: u32,
    /// Its state before (decrypt_only, or retired already: then nothing changed).
    pub previous: KeyState,
}

/// Marks a value key version (an index key version with `index`) of one column retired.
///
/// Refuses, changing nothing: the active version; a version that does not exist; and a version
/// that some stored value still uses (the error says how many; `pgseal reencrypt` moves them).
/// The count and the change happen in one transaction that takes a `SHARE` lock on the table, so
/// no write can slip a value under that version in between (writers wait for the count, which
/// is one scan of the column). Running proxies are notified.
pub async fn retire(
    client: &mut Client,
    audit: &AuditLog,
    selection: &ColumnSelection,
    version: u32,
    index: bool,
) -> Result<RetiredKey, Error> {
    if matches!(selection, ColumnSelection::All) {
        return Err(Error::Config(
            "keys retire acts on one column: name it as TABLE.COLUMN".to_owned(),
        ));
    }
    let database = current_database(client).await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_CREATION_LOCK])
        .await?;
    let columns = pgseal_store::discover_columns(&tx).await?;
    let column = select_columns(&columns, selection)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::UnknownColumn(format!("{selection:?}")))?;
    let Some(column_id) = column.column_id else {
        return Err(Error::UnknownColumn(column.qualified_name()));
    };
    let purpose = if index {
        KeyPurpose::Index
    } else {
        KeyPurpose::Value
    };
    let stored = pgseal_store::load_data_keys(&tx).await?;
    let key = stored
        .iter()
        .find(|k| k.column_id == column_id && k.purpose == purpose.as_u8() && k.version == version)
        .ok_or_else(|| Error::KeyVersionNotFound {
            column: column.qualified_name(),
            purpose: purpose_name(purpose),
            version,
        })?;
    if key.state == KeyState::Active {
        return Err(Error::RetireActive {
            column: column.qualified_name(),
            purpose: purpose_name(purpose),
            version,
        });
    }
    let table = quoted_table(column);
    let col = quote_ident(&column.column);
    // SHARE blocks writers (not readers) for the length of the count, so the count stays true
    // until the commit.
    tx.execute(&format!("LOCK TABLE {table} IN SHARE MODE"), &[])
        .await?;
    let version_sql = if index {
        index_version_sql(&col)
    } else {
        value_version_sql(&col)
    };
    let version_bytes: Vec<u8> = if index {
        u16::try_from(version)
            .map_err(|_| Error::KeyVersionNotFound {
                column: column.qualified_name(),
                purpose: purpose_name(purpose),
                version,
            })?
            .to_be_bytes()
            .to_vec()
    } else {
        version.to_be_bytes().to_vec()
    };
    let count: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE {col} IS NOT NULL AND {version_sql} = $1"),
            &[&version_bytes],
        )
        .await?
        .try_get(0)
        .map_err(|e| Error::Database(e.to_string()))?;
    if count > 0 {
        return Err(Error::KeyVersionInUse {
            column: column.qualified_name(),
            purpose: purpose_name(purpose),
            version,
            values: u64::try_from(count).unwrap_or(0),
        });
    }
    let previous =
        pgseal_store::set_key_state(&tx, column_id, purpose.as_u8(), version, KeyState::Retired)
            .await?;
    if previous != KeyState::Retired {
        audit
            .record(AuditEvent::KeyStateChanged {
                database,
                column: column.qualified_name(),
                purpose: purpose_name(purpose),
                version,
                from: previous.as_str(),
                to: KeyState::Retired.as_str(),
            })
            .map_err(audit_err)?;
        notify_catalog_changed(&tx).await?;
    }
    tx.commit().await?;
    Ok(RetiredKey {
        column: column.qualified_name(),
        purpose: purpose_name(purpose),
        version,
        previous,
    })
}

// ---------------------------------------------------------------------------------------------
// status

/// One data key in [`ColumnStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    /// "value" or "index".
    pub purpose: &'static str,
    /// Version.
    pub version: u32,
    /// Lifecycle state.
    pub state: KeyState,
    /// Fingerprint of the master key that wraps it.
    pub master_key: String,
    /// When it was created.
    pub created_at: SystemTime,
    /// How many stored values carry this version (value keys: encrypted under it; index keys:
    /// with a blind index under it).
    pub values: u64,
}

/// Keys and value counts of one encrypted column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnStatus {
    /// `schema.table.column`.
    pub column: String,
    /// Id in `pgseal.columns`.
    pub column_id: u32,
    /// Whether values carry a blind index.
    pub searchable: bool,
    /// Every data key of the column, value keys first, by version.
    pub keys: Vec<KeyStatus>,
    /// Values whose value key version has no row in `pgseal.data_keys` (version, count): they
    /// cannot be opened.
    pub unknown_value_versions: Vec<(u32, u64)>,
    /// Values under the active value key.
    pub values_on_active: u64,
    /// Values under the active value key whose blind index (if any) is under the active index
    /// key: nothing left for `pgseal reencrypt` to do on them.
    pub values_current: u64,
    /// Non-NULL values in the column.
    pub values_total: u64,
}

impl ColumnStatus {
    /// Values that `pgseal reencrypt` would rewrite: under an older value key, or (for
    /// searchable columns) with a blind index under an older index key.
    pub fn values_to_reencrypt(&self) -> u64 {
        self.values_total.saturating_sub(self.values_current)
    }
}

/// Per encrypted column: how many values each data key version protects, each key's state, and
/// the master key that wraps it. Read-only: one scan of each encrypted column, no lock beyond
/// `ACCESS SHARE`.
pub async fn status(client: &Client) -> Result<Vec<ColumnStatus>, Error> {
    let columns = pgseal_store::discover_columns(client).await?;
    let stored = pgseal_store::load_data_keys(client).await?;
    let mut out = Vec::new();
    for column in &columns {
        let Some(column_id) = column.column_id else {
            continue;
        };
        let keys: Vec<&StoredDataKey> =
            stored.iter().filter(|k| k.column_id == column_id).collect();
        let active = |purpose: KeyPurpose| {
            keys.iter()
                .find(|k| k.purpose == purpose.as_u8() && k.state == KeyState::Active)
                .map(|k| k.version)
        };
        let active_value = active(KeyPurpose::Value);
        let active_index = active(KeyPurpose::Index);
        let counts = version_counts(client, column).await?;
        let mut value_counts: BTreeMap<u32, u64> = BTreeMap::new();
        let mut index_counts: BTreeMap<u32, u64> = BTreeMap::new();
        let mut total = 0u64;
        let mut on_active = 0u64;
        let mut current_everywhere = 0u64;
        for (value_version, index_version, n) in counts {
            total += n;
            *value_counts.entry(value_version).or_default() += n;
            if let Some(iv) = index_version {
                *index_counts.entry(iv).or_default() += n;
            }
            if Some(value_version) == active_value {
                on_active += n;
                let index_current = !column.domain.searchable
                    || index_version.is_none()
                    || index_version == active_index;
                if index_current {
                    current_everywhere += n;
                }
            }
        }
        let mut key_status = Vec::new();
        for key in &keys {
            let counts = if key.purpose == KeyPurpose::Index.as_u8() {
                &index_counts
            } else {
                &value_counts
            };
            key_status.push(KeyStatus {
                purpose: KeyPurpose::from_u8(key.purpose).map_or("unknown", purpose_name),
                version: key.version,
                state: key.state,
                master_key: key.master_key_fingerprint.clone(),
                created_at: key.created_at,
                values: counts.get(&key.version).copied().unwrap_or(0),
            });
        }
        let unknown_value_versions = value_counts
            .iter()
            .filter(|(v, _)| {
                !keys
                    .iter()
                    .any(|k| k.purpose == KeyPurpose::Value.as_u8() && k.version == **v)
            })
            .map(|(v, n)| (*v, *n))
            .collect();
        out.push(ColumnStatus {
            column: column.qualified_name(),
            column_id,
            searchable: column.domain.searchable,
            keys: key_status,
            unknown_value_versions,
            values_on_active: on_active,
            values_total: total,
            values_current: current_everywhere,
        });
    }
    Ok(out)
}

/// (value version, index version, count) over the column's non-NULL values.
async fn version_counts(
    client: &impl GenericClient,
    column: &EncryptedColumn,
) -> Result<Vec<(u32, Option<u32>, u64)>, Error> {
    let col = quote_ident(&column.column);
    let sql = format!(
        "SELECT {}, {}, count(*) FROM {} WHERE {col} IS NOT NULL GROUP BY 1, 2",
        value_version_sql(&col),
        index_version_sql(&col),
        quoted_table(column),
    );
    let rows = client.query(&sql, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let value: Option<Vec<u8>> = row.try_get(0).map_err(|e| Error::Database(e.to_string()))?;
        let index: Option<Vec<u8>> = row.try_get(1).map_err(|e| Error::Database(e.to_string()))?;
        let count: i64 = row.try_get(2).map_err(|e| Error::Database(e.to_string()))?;
        // A value too short to hold a version cannot pass the domain's CHECK; count it as 0.
        let value = value.as_deref().and_then(version_from_bytes).unwrap_or(0);
        let index = index.as_deref().and_then(version_from_bytes);
        out.push((value, index, u64::try_from(count).unwrap_or(0)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn versions_decode_big_endian() {
        assert_eq!(version_from_bytes(&[0, 0, 1, 2]), Some(258));
        assert_eq!(version_from_bytes(&[0, 7]), Some(7));
        assert_eq!(version_from_bytes(&[1]), None);
    }
}
