//! Wrapped data keys in `pgseal.data_keys`.
//!
//! The store only ever holds keys wrapped by the master key (docs/format.md 1.1): it moves
//! bytes, and never sees an unwrapped key.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use tokio_postgres::error::SqlState;
use tokio_postgres::{GenericClient, Row, Transaction};

use crate::error::missing_schema_as;
use crate::StoreError;

/// Data key purpose 1: encrypts values.
pub const PURPOSE_VALUE: u8 = 1;
/// Data key purpose 2: computes blind indexes.
pub const PURPOSE_INDEX: u8 = 2;
/// Length of a wrapped data key (docs/format.md 1.1).
pub const WRAPPED_KEY_LEN: usize = 70;

/// The lifecycle of a data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Encrypts new values (at most one per column and purpose), and decrypts.
    Active,
    /// Decrypts existing values only.
    DecryptOnly,
    /// No longer used; kept so that old backups stay readable.
    Retired,
}

impl KeyState {
    /// The spelling stored in `pgseal.data_keys.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt_only",
            KeyState::Retired => "retired",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(KeyState::Active),
            "decrypt_only" => Ok(KeyState::DecryptOnly),
            "retired" => Ok(KeyState::Retired),
            other => Err(StoreError::Corrupt {
                what: format!("unknown data key state {other:?}"),
            }),
        }
    }
}

/// A row of `pgseal.data_keys`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredDataKey {
    /// The column it belongs to.
    pub column_id: u32,
    /// [`PURPOSE_VALUE`] or [`PURPOSE_INDEX`].
    pub purpose: u8,
    /// Version, from 1.
    pub version: u32,
    /// Lifecycle state.
    pub state: KeyState,
    /// The key wrapped by the master key ([`WRAPPED_KEY_LEN`] bytes).
    pub wrapped_key: Vec<u8>,
    /// Fingerprint (`mk_...`) of the master key that wrapped it.
    pub master_key_fingerprint: String,
    /// When it was created.
    pub created_at: SystemTime,
}

impl fmt::Debug for StoredDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Wrapped keys are not secret without the master key, but there is no reason to print them.
        f.debug_struct("StoredDataKey")
            .field("column_id", &self.column_id)
            .field("purpose", &self.purpose)
            .field("version", &self.version)
            .field("state", &self.state)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("master_key_fingerprint", &self.master_key_fingerprint)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A data key to insert.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDataKey {
    /// The column it belongs to (must be registered).
    pub column_id: u32,
    /// [`PURPOSE_VALUE`] or [`PURPOSE_INDEX`].
    pub purpose: u8,
    /// Version, usually from [`next_key_version`].
    pub version: u32,
    /// Initial state.
    pub state: KeyState,
    /// The wrapped key ([`WRAPPED_KEY_LEN`] bytes).
    pub wrapped_key: Vec<u8>,
    /// Fingerprint (`mk_` and 16 hex digits) of the master key that wrapped it.
    pub master_key_fingerprint: String,
}

impl fmt::Debug for NewDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDataKey")
            .field("column_id", &self.column_id)
            .field("purpose", &self.purpose)
            .field("version", &self.version)
            .field("state", &self.state)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("master_key_fingerprint", &self.master_key_fingerprint)
            .finish()
    }
}

const KEY_COLUMNS: &str =
    "column_id, purpose, version, state, wrapped_key, master_key_fingerprint, created_at";

fn from_row(row: &Row) -> Result<StoredDataKey, StoreError> {
    let column_id: i32 = row.try_get(0)?;
    let purpose: i16 = row.try_get(1)?;
    let version: i32 = row.try_get(2)?;
    let state: String = row.try_get(3)?;
    let corrupt = |what: String| StoreError::Corrupt { what };
    Ok(StoredDataKey {
        column_id: u32::try_from(column_id)
            .map_err(|_| corrupt(format!("pgseal.data_keys.column_id = {column_id}")))?,
        purpose: u8::try_from(purpose)
            .ok()
            .filter(|p| matches!(*p, PURPOSE_VALUE | PURPOSE_INDEX))
            .ok_or_else(|| corrupt(format!("pgseal.data_keys.purpose = {purpose}")))?,
        version: u32::try_from(version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| corrupt(format!("pgseal.data_keys.version = {version}")))?,
        state: state.parse()?,
        wrapped_key: row.try_get(4)?,
        master_key_fingerprint: row.try_get(5)?,
        created_at: row.try_get(6)?,
    })
}

/// Every data key, ordered by column, purpose and version.
pub async fn load_data_keys(client: &impl GenericClient) -> Result<Vec<StoredDataKey>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {KEY_COLUMNS} FROM pgseal.data_keys ORDER BY column_id, purpose, version"
            ),
            &[],
        )
        .await
        .map_err(missing_schema_as)?;
    rows.iter().map(from_row).collect()
}

fn db_id(what: &str, value: u32) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::InvalidArgument {
        what: format!("{what} {value} is larger than the database column allows"),
    })
}

fn db_purpose(purpose: u8) -> Result<i16, StoreError> {
    match purpose {
        PURPOSE_VALUE | PURPOSE_INDEX => Ok(i16::from(purpose)),
        other => Err(StoreError::InvalidArgument {
            what: format!("data key purpose {other} (must be 1 for values or 2 for indexes)"),
        }),
    }
}

fn check_wrapped(wrapped: &[u8], fingerprint: &str) -> Result<(), StoreError> {
    if wrapped.len() != WRAPPED_KEY_LEN || wrapped.first() != Some(&0xB6) {
        return Err(StoreError::InvalidArgument {
            what: format!(
                "a wrapped data key is {WRAPPED_KEY_LEN} bytes starting with 0xB6, got {} bytes",
                wrapped.len()
            ),
        });
    }
    let hex = fingerprint.strip_prefix("mk_").unwrap_or("");
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::InvalidArgument {
            what: "a master key fingerprint is `mk_` followed by 16 lower-case hex digits"
                .to_owned(),
        });
    }
    Ok(())
}

/// Maps the "one active key" index violation to [`StoreError::ActiveKeyExists`].
fn active_conflict(error: tokio_postgres::Error, column_id: u32, purpose: u8) -> StoreError {
    let is_active_conflict = error.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && error.as_db_error().and_then(|db| db.constraint()) == Some("data_keys_one_active");
    if is_active_conflict {
        StoreError::ActiveKeyExists { column_id, purpose }
    } else {
        error.into()
    }
}

/// Stores a new wrapped data key and returns the stored row.
pub async fn insert_data_key(
    tx: &Transaction<'_>,
    key: &NewDataKey,
) -> Result<StoredDataKey, StoreError> {
    check_wrapped(&key.wrapped_key, &key.master_key_fingerprint)?;
    let column_id = db_id("column id", key.column_id)?;
    let version = db_id("key version", key.version)?;
    if version == 0 {
        return Err(StoreError::InvalidArgument {
            what: "key versions start at 1".to_owned(),
        });
    }
    let purpose = db_purpose(key.purpose)?;
    lock_column(tx, key.column_id, column_id).await?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO pgseal.data_keys
                     (column_id, purpose, version, state, wrapped_key, master_key_fingerprint)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 RETURNING {KEY_COLUMNS}"
            ),
            &[
                &column_id,
                &purpose,
                &version,
                &key.state.as_str(),
                &key.wrapped_key,
                &key.master_key_fingerprint,
            ],
        )
        .await
        .map_err(|e| active_conflict(e, key.column_id, key.purpose))?;
    from_row(&row)
}

/// Locks the column's registry row, so concurrent key changes on one column take turns.
async fn lock_column(
    tx: &Transaction<'_>,
    column_id: u32,
    db_column_id: i32,
) -> Result<(), StoreError> {
    let found = tx
        .query_opt(
            "SELECT 1 FROM pgseal.columns WHERE column_id = $1 FOR UPDATE",
            &[&db_column_id],
        )
        .await
        .map_err(missing_schema_as)?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::UnknownColumn { column_id }),
    }
}

/// The next free version for a column's key of this purpose (1 for the first). Locks the column
/// until `tx` ends, so two rotations cannot pick the same version.
pub async fn next_key_version(
    tx: &Transaction<'_>,
    column_id: u32,
    purpose: u8,
) -> Result<u32, StoreError> {
    let db_column = db_id("column id", column_id)?;
    let db_purpose = db_purpose(purpose)?;
    lock_column(tx, column_id, db_column).await?;
    let row = tx
        .query_one(
            "SELECT COALESCE(max(version), 0)::int8 + 1 FROM pgseal.data_keys
             WHERE column_id = $1 AND purpose = $2",
            &[&db_column, &db_purpose],
        )
        .await?;
    let next: i64 = row.try_get(0)?;
    let limit = if purpose == PURPOSE_INDEX {
        i64::from(u16::MAX)
    } else {
        i64::from(i32::MAX)
    };
    if next > limit {
        return Err(StoreError::InvalidArgument {
            what: format!("column {column_id} has used every key version for purpose {purpose}"),
        });
    }
    u32::try_from(next).map_err(|_| StoreError::Corrupt {
        what: format!("next key version {next}"),
    })
}

/// Changes a key's state and returns the previous one.
pub async fn set_key_state(
    tx: &Transaction<'_>,
    column_id: u32,
    purpose: u8,
    version: u32,
    state: KeyState,
) -> Result<KeyState, StoreError> {
    let db_column = db_id("column id", column_id)?;
    let db_version = db_id("key version", version)?;
    let db_purpose = db_purpose(purpose)?;
    let row = tx
        .query_opt(
            "WITH old AS (
                 SELECT state FROM pgseal.data_keys
                 WHERE column_id = $1 AND purpose = $2 AND version = $3
                 FOR UPDATE
             )
             UPDATE pgseal.data_keys k
             SET state = $4,
                 state_changed_at = CASE WHEN k.state = $4 THEN k.state_changed_at ELSE now() END
             FROM old
             WHERE k.column_id = $1 AND k.purpose = $2 AND k.version = $3
             RETURNING old.state",
            &[&db_column, &db_purpose, &db_version, &state.as_str()],
        )
        .await
        .map_err(|e| active_conflict(e, column_id, purpose))?;
    match row {
        Some(row) => row.try_get::<_, String>(0)?.parse(),
        None => Err(StoreError::KeyNotFound {
            column_id,
            purpose,
            version,
        }),
    }
}

/// Replaces a key's wrapped bytes and master key fingerprint (master key rotation rewraps every
/// data key under the new master key; the data key itself does not change).
pub async fn update_wrapped_key(
    tx: &Transaction<'_>,
    column_id: u32,
    purpose: u8,
    version: u32,
    wrapped: &[u8],
    fingerprint: &str,
) -> Result<(), StoreError> {
    check_wrapped(wrapped, fingerprint)?;
    let db_column = db_id("column id", column_id)?;
    let db_version = db_id("key version", version)?;
    let db_purpose = db_purpose(purpose)?;
    let updated = tx
        .execute(
            "UPDATE pgseal.data_keys SET wrapped_key = $4, master_key_fingerprint = $5
             WHERE column_id = $1 AND purpose = $2 AND version = $3",
            &[&db_column, &db_purpose, &db_version, &wrapped, &fingerprint],
        )
        .await
        .map_err(missing_schema_as)?;
    if updated == 0 {
        return Err(StoreError::KeyNotFound {
            column_id,
            purpose,
            version,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_states_round_trip() {
        for state in [KeyState::Active, KeyState::DecryptOnly, KeyState::Retired] {
            assert_eq!(state.as_str().parse::<KeyState>().ok(), Some(state));
        }
        assert!(matches!(
            "paused".parse::<KeyState>(),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn wrapped_keys_and_fingerprints_are_validated() {
        let mut wrapped = vec![0u8; WRAPPED_KEY_LEN];
        wrapped[0] = 0xB6;
        assert!(check_wrapped(&wrapped, "mk_3f2a9c0d1e7b5a44").is_ok());
        assert!(check_wrapped(&wrapped[..69], "mk_3f2a9c0d1e7b5a44").is_err());
        assert!(check_wrapped(&[0u8; WRAPPED_KEY_LEN], "mk_3f2a9c0d1e7b5a44").is_err());
        assert!(check_wrapped(&wrapped, "mk_3F2A9C0D1E7B5A44").is_err());
        assert!(check_wrapped(&wrapped, "3f2a9c0d1e7b5a44").is_err());
        assert!(check_wrapped(&wrapped, "mk_3f2a").is_err());
    }

    #[test]
    fn debug_does_not_print_wrapped_bytes() {
        let key = NewDataKey {
            column_id: 1,
            purpose: PURPOSE_VALUE,
            version: 1,
            state: KeyState::Active,
            wrapped_key: vec![0xB6, 0xAB, 0xCD],
            master_key_fingerprint: "mk_3f2a9c0d1e7b5a44".into(),
        };
        let text = format!("{key:?}");
        assert!(text.contains("wrapped_key_len: 3"));
        assert!(!text.contains("171"), "{text}");
    }
}
