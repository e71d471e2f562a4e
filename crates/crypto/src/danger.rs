//! Deterministic variants of the sealing functions, for reproducible test vectors only.
//!
//! # Danger
//! Every function here takes the nonce or key bytes from the caller. Reusing a nonce with the
//! same key breaks confidentiality and authenticity of AES-GCM. Production code must use
//! [`ColumnCipher::seal`](crate::ColumnCipher::seal), [`wrap_data_key`](crate::wrap_data_key)
//! and [`DataKey::generate`](crate::DataKey::generate), which draw fresh randomness.

use crate::secret::{DataKey, DataKeyId, MasterKey, KEY_LEN};
use crate::value::ColumnCipher;

/// [`ColumnCipher::seal`] with a caller-chosen 24-byte nonce.
#[must_use]
pub fn seal_with_nonce(
    cipher: &ColumnCipher,
    plaintext: &[u8],
    index_input: &[u8],
    nonce: &[u8; 24],
) -> Vec<u8> {
    cipher.seal_with_nonce(plaintext, index_input, nonce)
}

/// [`wrap_data_key`](crate::wrap_data_key) with a caller-chosen 12-byte nonce.
#[must_use]
pub fn wrap_data_key_with_nonce(
    master: &MasterKey,
    id: DataKeyId,
    key: &DataKey,
    nonce: [u8; 12],
) -> Vec<u8> {
    crate::wrap::wrap_with_nonce(master, id, key, nonce)
}

/// A data key with caller-chosen bytes (fixed keys in test vectors).
#[must_use]
pub fn data_key_from_bytes(bytes: &[u8; KEY_LEN]) -> DataKey {
    DataKey::from_array(bytes)
}
