//! pgseal for Rust applications: seal and open values of encrypted PostgreSQL columns in-process,
//! with the same keys, formats and audit trail as the `pgseal` proxy and CLI.
//!
//! * [`Sealer`]: built from the environment's master key and a connection; `seal`/`open` for a
//!   table, a column and a typed [`Value`].
//! * [`master_key`]: how the master key is read from `PGSEAL_MASTER_KEY`,
//!   `PGSEAL_MASTER_KEY_FILE` and `PGSEAL_PREVIOUS_MASTER_KEYS`.
//! * [`keyring`]: data-key creation and unwrapping, shared with the CLI and proxy.
//! * [`rotation`]: master-key rewrap, data-key rotation, retirement and key status.
//! * [`reencrypt`]: online re-encryption of values still under older data keys.
//! * [`migrate`]: online encryption of an existing plaintext column, and its rollback.
//!
//! See `examples/birth_details.rs` in the repository for a complete program.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ciphertext;
mod error;
mod init;
pub mod keyring;
pub mod master_key;
pub mod migrate;
pub mod reencrypt;
pub mod rotation;
mod sealer;

pub use ciphertext::Ciphertext;
pub use error::{describe_db_error, Error};
pub use init::{init, InitReport};
pub use keyring::{ensure_data_keys, Keyring};
pub use master_key::{load_master_keys, load_master_keys_from_env, LoadedMasterKeys};
pub use pgseal_audit::AuditLog;
pub use pgseal_crypto::{KeyFingerprint, MasterKey, MasterKeyring};
pub use pgseal_value::{LogicalType, Numeric, Value};
pub use sealer::Sealer;

/// Typed values and their text and binary formats (re-exported from `pgseal-value`).
pub mod value {
    pub use pgseal_value::*;
}
