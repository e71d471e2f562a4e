//! The pgseal schema inside PostgreSQL: migrations, encrypted-column registry, wrapped data keys.
//!
//! The schema is the configuration. An operator declares an encrypted column by giving it one
//! of pgseal's domain types:
//!
//! ```sql
//! ALTER TABLE users ADD COLUMN email pgseal.email;
//! ```
//!
//! Each domain is `bytea` with a `CHECK` (constraint `pgseal_ciphertext_required`) that accepts
//! only a well-formed pgseal ciphertext of the domain's type (docs/format.md 2), so plaintext
//! written around the proxy is refused by the database itself (SQLSTATE 23514).
//!
//! * [`install`] creates or upgrades the schema; [`check_schema`] verifies its version.
//! * [`discover_columns`] and [`register_columns`] find the encrypted columns and give each an
//!   id (stored in every ciphertext), following renames and dump and restore.
//! * [`load_data_keys`], [`insert_data_key`], [`set_key_state`], ... store data keys, always
//!   wrapped by the master key: this crate never sees a key in the clear.
//!
//! Every function takes a connection or a transaction from the caller, who decides what to
//! commit together (a key and its audit record, for instance).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod columns;
mod domains;
mod error;
mod keys;
mod migrate;

pub use columns::{discover_columns, register_columns, EncryptedColumn};
pub use domains::{domain, DomainSpec, IndexNormalization, LogicalType, DOMAINS};
pub use error::{DatabaseError, StoreError};
pub use keys::{
    insert_data_key, load_data_keys, next_key_version, set_key_state, update_wrapped_key, KeyState,
    NewDataKey, StoredDataKey, PURPOSE_INDEX, PURPOSE_VALUE, WRAPPED_KEY_LEN,
};
pub use migrate::{check_schema, install, InstallOutcome, SCHEMA_VERSION};
