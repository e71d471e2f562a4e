//! Keys, envelope encryption, the pgseal value ciphertext format and blind indexes. No I/O.
//!
//! The byte formats are specified in `docs/format.md` (sections 1, 2.2 and 2.4); the design
//! choices are explained in [`manual`].
//!
//! * [`MasterKey`], [`MasterKeyring`], [`KeyFingerprint`]: the key-encryption keys.
//! * [`DataKey`], [`wrap_data_key`], [`unwrap_data_key`]: data keys and their envelope.
//! * [`ColumnCipher`]: seals and opens one column's values (XAES-256-GCM) with blind indexes.
//! * [`parse_ciphertext`]: reads a ciphertext header without decrypting.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod blind_index;
pub mod danger;
mod error;
mod fingerprint;
mod header;
pub mod manual;
mod secret;
mod value;
mod wrap;
mod xaes;

pub use blind_index::{blind_index, Normalization};
pub use error::{CryptoError, FormatError, KeyError};
pub use fingerprint::{KeyFingerprint, FINGERPRINT_LEN};
pub use header::{parse_ciphertext, CiphertextHeader, FORMAT_VERSION, VALUE_MAGIC};
pub use secret::{DataKey, DataKeyId, KeyPurpose, MasterKey, MasterKeyring, KEY_LEN};
pub use value::{ColumnCipher, ColumnKeys, IndexKeys, KeyState, Plaintext};
pub use wrap::{unwrap_data_key, wrap_data_key, wrapped_key_fingerprint, WRAPPED_KEY_LEN};

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        assert_send_sync::<crate::ColumnCipher>();
        assert_send_sync::<crate::MasterKeyring>();
        assert_send_sync::<crate::DataKey>();
    }
}
