//! The crate's one error type. No variant carries key bytes or plaintext.

use crate::key::BackupKeyFingerprint;

/// Everything that can go wrong writing, reading or storing a backup.
///
/// Each way a backup file can be damaged has its own variant, so an operator learns *what*
/// happened (truncation, reordering, a flipped bit, the wrong key, a foreign file) rather than a
/// bare "decryption failed".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Neither `PGSEAL_BACKUP_KEY` nor `PGSEAL_BACKUP_KEY_FILE` is set.
    #[error(
        "no backup key: set PGSEAL_BACKUP_KEY to a 32-byte key in base64 (generate one with \
         `pgseal keygen`; it must differ from the master key) or PGSEAL_BACKUP_KEY_FILE to a file \
         holding it"
    )]
    KeyMissing,
    /// A backup key supplied by the operator is unusable (the message names the variable).
    #[error("{0}")]
    KeyConfig(String),
    /// The backup key equals a master key.
    #[error(
        "{var} holds the same key as the master key; a backup key must be a different key, kept \
         apart from the master key, so that whoever holds the backups cannot read the database \
         and losing one key does not lose both: generate one with `pgseal keygen`"
    )]
    SameAsMasterKey {
        /// Which variable holds the offending key.
        var: String,
    },
    /// The input does not start with the backup magic.
    #[error("{what} is not a pgseal backup ({found})")]
    NotABackup {
        /// The file or object name.
        what: String,
        /// What it looks like instead.
        found: String,
    },
    /// A backup in a format version this build cannot read.
    #[error("{what} uses backup format version {version}, but this build reads version 1; upgrade pgseal")]
    UnsupportedVersion {
        /// The file or object name.
        what: String,
        /// The version byte found.
        version: u8,
    },
    /// The header's fields are out of range or the header is cut short.
    #[error("{what} has a damaged header: {detail}")]
    MalformedHeader {
        /// The file or object name.
        what: String,
        /// Which field is wrong.
        detail: String,
    },
    /// The backup was sealed with a key that is not loaded.
    #[error(
        "{what} was sealed with backup key {fingerprint}, which is not loaded (loaded: {loaded}); \
         set PGSEAL_BACKUP_KEY to that key or add it to PGSEAL_PREVIOUS_BACKUP_KEYS"
    )]
    UnknownKey {
        /// The file or object name.
        what: String,
        /// The fingerprint recorded in the header.
        fingerprint: BackupKeyFingerprint,
        /// Fingerprints of the loaded keys.
        loaded: String,
    },
    /// The header failed authentication under the key its fingerprint names.
    #[error(
        "{what}: the header failed authentication under backup key {fingerprint}: the header \
         was modified or damaged"
    )]
    HeaderTampered {
        /// The file or object name.
        what: String,
        /// The key that was tried.
        fingerprint: BackupKeyFingerprint,
    },
    /// The stream ends at a chunk boundary without its final chunk.
    #[error(
        "{what} is truncated: it ends cleanly after chunk {chunks_read} but its final chunk is \
         missing (the file was cut at a chunk boundary)"
    )]
    TruncatedAtBoundary {
        /// The file or object name.
        what: String,
        /// Chunks that authenticated before the end.
        chunks_read: u64,
    },
    /// The stream ends inside a chunk.
    #[error(
        "{what} is truncated: it ends inside chunk {index} ({len} of its bytes present), which \
         does not authenticate as a final chunk"
    )]
    TruncatedInChunk {
        /// The file or object name.
        what: String,
        /// Position of the incomplete chunk.
        index: u64,
        /// Bytes of it present (ciphertext and tag).
        len: usize,
    },
    /// A chunk failed authentication and matches no other position.
    #[error(
        "{what}: chunk {index} failed authentication: its bytes were modified (a flipped bit or \
         damaged storage)"
    )]
    ChunkTampered {
        /// The file or object name.
        what: String,
        /// Position of the chunk.
        index: u64,
    },
    /// A chunk from a later position was found early: chunks were swapped or reordered.
    #[error("{what}: chunk {found} was found at position {position}: the chunks were reordered")]
    ChunkReordered {
        /// The file or object name.
        what: String,
        /// Where the chunk was found.
        position: u64,
        /// The position it was sealed for.
        found: u64,
    },
    /// A chunk that was already read appears again.
    #[error("{what}: chunk {found} appears again at position {position}: a chunk was duplicated")]
    ChunkDuplicated {
        /// The file or object name.
        what: String,
        /// Where the copy was found.
        position: u64,
        /// The position it was sealed for.
        found: u64,
    },
    /// Bytes follow the final chunk.
    #[error("{what}: data follows the final chunk {index}: bytes were appended to the backup")]
    TrailingData {
        /// The file or object name.
        what: String,
        /// Position of the final chunk.
        index: u64,
    },
    /// An object holds another object than the one asked for (e.g. a swapped WAL segment).
    #[error("{what} holds {found}, not {expected}: the file was swapped or renamed")]
    WrongObject {
        /// The file or object name.
        what: String,
        /// What the caller asked for.
        expected: String,
        /// What the authenticated header says it is.
        found: String,
    },
    /// An object already exists with different content.
    #[error("{key} is already in the repository with different content; refusing to overwrite it")]
    Conflict {
        /// The object key.
        key: String,
    },
    /// An object already exists.
    #[error("{key} already exists in the repository")]
    AlreadyExists {
        /// The object key.
        key: String,
    },
    /// An object key that could escape the repository or is not a plain name.
    #[error(
        "{key:?} is not a valid object name (letters, digits, `.`, `_`, `-`, separated by `/`)"
    )]
    InvalidObjectKey {
        /// The refused key.
        key: String,
    },
    /// The decompressed payload is not a valid zstd stream although it authenticated: the
    /// backup was written by a broken producer.
    #[error("{what}: the payload authenticated but does not decompress: {detail}")]
    Decompress {
        /// The file or object name.
        what: String,
        /// The decompressor's message.
        detail: String,
    },
    /// An I/O operation failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl BackupError {
    /// Wraps an I/O error with what was being done.
    pub fn io(action: impl Into<String>, source: std::io::Error) -> BackupError {
        BackupError::Io {
            action: action.into(),
            source,
        }
    }

    /// Recovers a `BackupError` carried inside an `io::Error` (as [`crate::DecryptReader`]
    /// returns them through `Read`), or wraps a plain I/O error with `action`.
    pub fn from_io(err: std::io::Error, action: &str) -> BackupError {
        if err.get_ref().is_some_and(|inner| inner.is::<BackupError>()) {
            if let Some(inner) = err.into_inner() {
                if let Ok(backup) = inner.downcast::<BackupError>() {
                    return *backup;
                }
                return BackupError::io(action, std::io::Error::other("unexpected error type"));
            }
            return BackupError::io(action, std::io::Error::other("unexpected error type"));
        }
        BackupError::io(action, err)
    }

    /// Carries this error through an `io::Error` (for `Read`/`Write` implementations).
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}
