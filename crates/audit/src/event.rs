//! The audit events. Only names, ids and fingerprints: no field can hold a value, a ciphertext
//! or a key.
//!
//! Every field is an id, a `&'static str` chosen from a fixed set (which cannot carry data read
//! at run time), a database or column name, or a master key fingerprint. Fingerprint and source
//! fields are checked before a record is written ([`AuditEvent::validate`]), so a key passed by
//! mistake where a fingerprint belongs is refused instead of logged.

use serde::Serialize;

use crate::AuditError;

/// `source` of [`AuditEvent::MasterKeyLoaded`]: the key came from this environment variable.
pub const SOURCE_ENV: &str = "PGSEAL_MASTER_KEY";
/// `source` of [`AuditEvent::MasterKeyLoaded`]: the key came from the file this variable names.
pub const SOURCE_FILE: &str = "PGSEAL_MASTER_KEY_FILE";

/// One audited operation.
///
/// `database` is the database name; `column` a column's `schema.table.column`; `column_id` its
/// id in `pgseal.columns`; `purpose` is `"value"` or `"index"`; key states are `"active"`,
/// `"decrypt_only"` or `"retired"`; master keys appear only as fingerprints (`mk_` and 16
/// lower-case hex digits, docs/format.md 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// `pgseal init` created the schema.
    SchemaInstalled {
        /// Database name.
        database: String,
        /// Schema version installed.
        version: i32,
    },
    /// `pgseal init` upgraded the schema.
    SchemaUpgraded {
        /// Database name.
        database: String,
        /// Version found.
        from: i32,
        /// Version installed.
        to: i32,
    },
    /// A data key was generated, wrapped and stored.
    DataKeyCreated {
        /// Database name.
        database: String,
        /// `schema.table.column`.
        column: String,
        /// Column id.
        column_id: u32,
        /// `"value"` or `"index"`.
        purpose: &'static str,
        /// Key version.
        version: u32,
        /// Fingerprint of the wrapping master key.
        master_key: String,
    },
    /// A stored data key could not be unwrapped (wrong master key, or tampering).
    DataKeyUnwrapFailed {
        /// Database name.
        database: String,
        /// Column id.
        column_id: u32,
        /// `"value"` or `"index"`.
        purpose: &'static str,
        /// Key version.
        version: u32,
        /// Fingerprint recorded with the wrapped key.
        master_key: String,
        /// A fixed description, e.g. `"authentication failed"`.
        reason: &'static str,
    },
    /// A master key was loaded.
    MasterKeyLoaded {
        /// [`SOURCE_ENV`] or [`SOURCE_FILE`].
        source: String,
        /// Its fingerprint.
        fingerprint: String,
        /// Fingerprints of previous master keys loaded for decryption and rewrapping only.
        previous: Vec<String>,
    },
    /// A data key changed state (rotation).
    KeyStateChanged {
        /// Database name.
        database: String,
        /// `schema.table.column`.
        column: String,
        /// `"value"` or `"index"`.
        purpose: &'static str,
        /// Key version.
        version: u32,
        /// Previous state.
        from: &'static str,
        /// New state.
        to: &'static str,
    },
    /// `pgseal keys rewrap` rewrapped data keys under the current master key.
    DataKeysRewrapped {
        /// Database name.
        database: String,
        /// How many data keys were rewrapped (keys already under it are left alone).
        rewrapped: u64,
        /// Fingerprint of the master key that now wraps every data key.
        master_key: String,
        /// Fingerprints of the master keys that wrapped the rewrapped keys before.
        replaced: Vec<String>,
    },
    /// `pgseal reencrypt` started on a column.
    ReencryptStarted {
        /// Database name.
        database: String,
        /// `schema.table.column`.
        column: String,
        /// The value key version values are moved to.
        version: u32,
    },
    /// `pgseal reencrypt` finished a column: no value is left under an older key version.
    ReencryptFinished {
        /// Database name.
        database: String,
        /// `schema.table.column`.
        column: String,
        /// The value key version every value is now under.
        version: u32,
        /// Values rewritten by this run.
        rewritten: u64,
    },
}

impl AuditEvent {
    /// The `event` field's value, e.g. `"data_key_created"`.
    pub fn name(&self) -> &'static str {
        match self {
            AuditEvent::SchemaInstalled { .. } => "schema_installed",
            AuditEvent::SchemaUpgraded { .. } => "schema_upgraded",
            AuditEvent::DataKeyCreated { .. } => "data_key_created",
            AuditEvent::DataKeyUnwrapFailed { .. } => "data_key_unwrap_failed",
            AuditEvent::MasterKeyLoaded { .. } => "master_key_loaded",
            AuditEvent::KeyStateChanged { .. } => "key_state_changed",
            AuditEvent::DataKeysRewrapped { .. } => "data_keys_rewrapped",
            AuditEvent::ReencryptStarted { .. } => "reencrypt_started",
            AuditEvent::ReencryptFinished { .. } => "reencrypt_finished",
        }
    }

    /// Checks the fields whose form is fixed: fingerprints, purposes, key states and the master
    /// key source. [`crate::AuditLog::record`] refuses an event that fails this check; the error
    /// names the field but never echoes its content.
    pub fn validate(&self) -> Result<(), AuditError> {
        match self {
            AuditEvent::SchemaInstalled { .. } | AuditEvent::SchemaUpgraded { .. } => Ok(()),
            AuditEvent::DataKeyCreated {
                purpose,
                master_key,
                ..
            }
            | AuditEvent::DataKeyUnwrapFailed {
                purpose,
                master_key,
                ..
            } => {
                check_purpose(purpose)?;
                check_fingerprint("master_key", master_key)
            }
            AuditEvent::MasterKeyLoaded {
                source,
                fingerprint,
                previous,
            } => {
                if source != SOURCE_ENV && source != SOURCE_FILE {
                    return Err(AuditError::InvalidField {
                        field: "source",
                        expected: "PGSEAL_MASTER_KEY or PGSEAL_MASTER_KEY_FILE",
                    });
                }
                check_fingerprint("fingerprint", fingerprint)?;
                previous
                    .iter()
                    .try_for_each(|fp| check_fingerprint("previous", fp))
            }
            AuditEvent::KeyStateChanged {
                purpose, from, to, ..
            } => {
                check_purpose(purpose)?;
                check_state("from", from)?;
                check_state("to", to)
            }
            AuditEvent::DataKeysRewrapped {
                master_key,
                replaced,
                ..
            } => {
                check_fingerprint("master_key", master_key)?;
                replaced
                    .iter()
                    .try_for_each(|fp| check_fingerprint("replaced", fp))
            }
            AuditEvent::ReencryptStarted { .. } | AuditEvent::ReencryptFinished { .. } => Ok(()),
        }
    }
}

/// `mk_` followed by 16 lower-case hex digits.
pub fn is_fingerprint(text: &str) -> bool {
    text.strip_prefix("mk_").is_some_and(|hex| {
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn check_fingerprint(field: &'static str, text: &str) -> Result<(), AuditError> {
    if is_fingerprint(text) {
        Ok(())
    } else {
        Err(AuditError::InvalidField {
            field,
            expected: "a master key fingerprint: `mk_` followed by 16 lower-case hex digits",
        })
    }
}

fn check_purpose(purpose: &str) -> Result<(), AuditError> {
    match purpose {
        "value" | "index" => Ok(()),
        _ => Err(AuditError::InvalidField {
            field: "purpose",
            expected: "\"value\" or \"index\"",
        }),
    }
}

fn check_state(field: &'static str, state: &str) -> Result<(), AuditError> {
    match state {
        "active" | "decrypt_only" | "retired" => Ok(()),
        _ => Err(AuditError::InvalidField {
            field,
            expected: "\"active\", \"decrypt_only\" or \"retired\"",
        }),
    }
}
