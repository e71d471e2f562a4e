//! The crate's error types.
//!
//! [`CryptoError`] is the one error of the crate; [`KeyError`] (loading a master key) and
//! [`FormatError`] (a ciphertext whose bytes are not in the format of `docs/format.md`) are typed
//! parts of it. No error ever carries key bytes or plaintext; a failed decryption carries no
//! detail at all ([`CryptoError::Tampered`]).

use crate::fingerprint::KeyFingerprint;
use crate::secret::DataKeyId;

/// A master key could not be loaded from its text form.
///
/// `var` names where the text came from (an environment variable or a file), so the message can
/// point at it; the text itself is never part of the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text was empty or only whitespace.
    #[error(
        "{var} is empty; set it to a 32-byte key in base64 (generate one with `pgseal keygen`)"
    )]
    Empty {
        /// Where the key text came from.
        var: String,
    },
    /// The text is not standard base64 with padding.
    #[error(
        "{var} is not valid base64; expected 44 characters of standard base64 with `=` padding \
         (as printed by `pgseal keygen`)"
    )]
    NotBase64 {
        /// Where the key text came from.
        var: String,
    },
    /// The text decoded to the wrong number of bytes.
    #[error("{var} decodes to {len} bytes, but a master key is exactly 32 bytes; generate one with `pgseal keygen`")]
    WrongLength {
        /// Where the key text came from.
        var: String,
        /// How many bytes the text decoded to.
        len: usize,
    },
    /// The key is all zero bytes: a placeholder, not a key.
    #[error("{var} is all zero bytes, which is a placeholder and not a key; generate one with `pgseal keygen`")]
    AllZero {
        /// Where the key text came from.
        var: String,
    },
    /// A key fingerprint was not in its display form.
    #[error("not a key fingerprint; expected `mk_` followed by 16 lower-case hex digits")]
    InvalidFingerprint,
}

/// A ciphertext's bytes do not follow the value format (docs/format.md section 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than the smallest ciphertext the header announces.
    #[error(
        "ciphertext is {len} bytes, shorter than the {min} bytes its header requires; \
         the stored value is truncated or not a pgseal ciphertext"
    )]
    TooShort {
        /// Bytes present.
        len: usize,
        /// Bytes the format requires at least.
        min: usize,
    },
    /// The first byte is not the pgseal value magic `0xB5`.
    #[error(
        "value does not start with the pgseal ciphertext magic 0xB5 (found 0x{found:02x}); \
         it is plaintext or was written around the proxy"
    )]
    BadMagic {
        /// The first byte found.
        found: u8,
    },
    /// The format version is not one this build reads.
    #[error("ciphertext format version {version} is not supported (this build reads version 1); upgrade pgseal")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// Flag bits that the format does not define are set.
    #[error("ciphertext flags 0x{flags:02x} set bits this build does not know; upgrade pgseal or check the data")]
    UnknownFlags {
        /// The flags byte found.
        flags: u8,
    },
    /// The embedded blind index has a length outside 4..=32.
    #[error("ciphertext blind index length {length} is outside 4..=32; the value is corrupt")]
    BadIndexLength {
        /// The length byte found.
        length: u8,
    },
    /// A key version of 0, which the format never writes.
    #[error("ciphertext names key version 0, which is never written; the value is corrupt")]
    ZeroKeyVersion,
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A master key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A ciphertext is not in the pgseal value format.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The ciphertext belongs to another column (copied or moved between columns).
    #[error(
        "ciphertext was written for column {found} but is stored in column {expected}; \
         it was copied between columns and cannot be decrypted here"
    )]
    WrongColumn {
        /// This column's id.
        expected: u32,
        /// The column id in the ciphertext.
        found: u32,
    },
    /// The ciphertext holds a value of another logical type.
    #[error(
        "ciphertext holds logical type {found} but the column has type {expected}; \
         the column's type changed or the value was copied from another column"
    )]
    WrongType {
        /// This column's type tag.
        expected: u8,
        /// The type tag in the ciphertext.
        found: u8,
    },
    /// The ciphertext names a key version the column does not have.
    #[error(
        "ciphertext for column {column_id} uses value key version {version}, which is not among \
         the column's keys; the keys in pgseal.data_keys are out of date or were deleted"
    )]
    UnknownKeyVersion {
        /// The column.
        column_id: u32,
        /// The key version in the ciphertext.
        version: u32,
    },
    /// The ciphertext uses a key version that has been retired.
    #[error(
        "data key version {version} of column id {column_id} is retired: the value was written \
         before the key was retired (an old backup?); set that key back to decrypt_only to read \
         it, then run `pgseal reencrypt`"
    )]
    RetiredKey {
        /// The column.
        column_id: u32,
        /// The retired key version.
        version: u32,
    },
    /// Authentication failed: the ciphertext or its header was altered.
    #[error("ciphertext failed authentication: it was altered or corrupted")]
    Tampered,
    /// A wrapped data key is not 70 bytes of the wrapped-key format.
    #[error("wrapped data key is not in the pgseal wrapped-key format (70 bytes starting 0xB6 0x01); the row in pgseal.data_keys is corrupt")]
    MalformedWrappedKey,
    /// No master key in the ring has the fingerprint recorded in a wrapped key.
    #[error(
        "data key was wrapped by master key {fingerprint} which is neither PGSEAL_MASTER_KEY nor \
         in PGSEAL_PREVIOUS_MASTER_KEYS; supply that key"
    )]
    UnknownMasterKey {
        /// Fingerprint of the master key that wrapped the data key.
        fingerprint: KeyFingerprint,
    },
    /// A wrapped data key failed authentication.
    #[error(
        "wrapped data key for {id} failed authentication: it belongs to another column, purpose \
         or version, or its bytes were altered"
    )]
    UnwrapFailed {
        /// The identity the key was expected to have.
        id: DataKeyId,
    },
    /// A column has no Active value key.
    #[error("column {column_id} has no active value key; activate one key version before writing")]
    NoActiveKey {
        /// The column.
        column_id: u32,
    },
    /// A column has more than one Active value key.
    #[error(
        "column {column_id} has more than one active value key; exactly one version may be active"
    )]
    MultipleActiveKeys {
        /// The column.
        column_id: u32,
    },
    /// A searchable column has no Active index key.
    #[error("column {column_id} is searchable but has no active index key; activate one index key version")]
    NoActiveIndexKey {
        /// The column.
        column_id: u32,
    },
    /// A searchable column has more than one Active index key.
    #[error(
        "column {column_id} has more than one active index key; exactly one version may be active"
    )]
    MultipleActiveIndexKeys {
        /// The column.
        column_id: u32,
    },
    /// The same key version appears twice in a column's key set.
    #[error("column {column_id} lists {purpose} key version {version} twice; each version must appear once")]
    DuplicateKeyVersion {
        /// The column.
        column_id: u32,
        /// Value or index key.
        purpose: crate::secret::KeyPurpose,
        /// The repeated version.
        version: u32,
    },
    /// A key version of 0; versions start at 1.
    #[error("column {column_id} has a {purpose} key with version 0; key versions start at 1")]
    ZeroKeyVersion {
        /// The column.
        column_id: u32,
        /// Value or index key.
        purpose: crate::secret::KeyPurpose,
    },
    /// A blind index length outside 4..=32 bytes.
    #[error("blind index length {length} is outside 4..=32 bytes; choose a length in that range (default 16)")]
    InvalidIndexLength {
        /// The rejected length.
        length: u8,
    },
}
