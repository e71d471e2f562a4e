//! Encrypted backups for pgseal: the backup stream format (docs/format.md, "Backup stream"),
//! streaming encryption adapters, backup keys, and the storage interface backups and archived WAL
//! go through.
//!
//! * [`format`]: the I/O-free core: header encoding, data-key wrapping, chunk sealing and opening
//!   (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár over AES-256-GCM).
//! * [`EncryptWriter`] / [`DecryptReader`]: `Write` and `Read` adapters over the core with
//!   constant memory (one chunk).
//! * [`BackupKey`], [`BackupKeyring`], [`load_backup_keys_from_env`]: the backup key, which is
//!   never the master key and never stored with a backup.
//! * [`Storage`], [`LocalDir`]: where backups and WAL segments are kept.
//! * [`wal`]: archiving and fetching WAL segments and history files.
//!
//! ```
//! use pgseal_backup::{BackupKey, BackupKeyring, DecryptReader, EncryptWriter, Metadata, ObjectKind};
//! use std::io::{Read, Write};
//!
//! let key = BackupKey::generate();
//! let mut out = EncryptWriter::new(Vec::new(), &key, ObjectKind::LogicalDump, Metadata::now())?;
//! out.write_all(b"compressed dump bytes")?;
//! let file = out.finish()?;
//!
//! let keyring = BackupKeyring::new(key, Vec::new());
//! let mut reader = DecryptReader::new(&file[..], &keyring)?;
//! let mut back = Vec::new();
//! reader.read_to_end(&mut back)?;
//! assert_eq!(back, b"compressed dump bytes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod format;
mod key;
mod storage;
mod stream;
pub mod wal;

pub use error::BackupError;
pub use format::{Header, Metadata, ObjectKind, DEFAULT_CHUNK_SIZE, FORMAT_VERSION, MAGIC};
pub use key::{
    load_backup_keys, load_backup_keys_from_env, BackupKey, BackupKeyFingerprint, BackupKeyring,
    BACKUP_KEY_FILE_VAR, BACKUP_KEY_VAR, PREVIOUS_BACKUP_KEYS_VAR,
};
pub use storage::{new_base_backup_key, LocalDir, ObjectWriter, Storage};
pub use stream::{
    read_header, rekey_file, DecryptReader, EncryptWriter, RekeyOutcome, StreamSummary,
};
