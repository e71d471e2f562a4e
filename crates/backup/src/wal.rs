//! Archiving WAL files (`archive_command`) and fetching them back (`restore_command`).
//!
//! Each file is zstd-compressed and sealed as its own backup stream whose authenticated header
//! names the file, so a segment stored under another segment's name is refused on fetch. Push is
//! atomic (nothing is visible until complete) and idempotent: pushing a file that is already
//! archived with the same content succeeds (PostgreSQL retries after a crash between archiving
//! and recording it), with different content fails.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aws_lc_rs::digest;

use crate::format::{Metadata, ObjectKind};
use crate::key::BackupKeyring;
use crate::storage::Storage;
use crate::stream::{random_suffix, sync_dir, DecryptReader, EncryptWriter, TempPath};
use crate::BackupError;

/// zstd level for WAL: WAL compresses well at low levels and archiving must keep up with
/// the server.
const WAL_ZSTD_LEVEL: i32 = 1;

/// The result of [`push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The file was archived.
    Stored,
    /// The same content was already archived under this name.
    AlreadyArchived,
}

/// The result of [`fetch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The file was restored to the destination.
    Restored,
    /// The archive has no such file (normal at the end of recovery).
    Missing,
}

/// Whether `name` is a WAL file name PostgreSQL archives: a segment (24 hex digits), a partial
/// segment (`.partial`), a timeline history file (8 hex digits + `.history`) or a backup label
/// (`<segment>.<8 hex>.backup`).
#[must_use]
pub fn is_wal_file_name(name: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if hex(name, 24) {
        return true;
    }
    if let Some(seg) = name.strip_suffix(".partial") {
        return hex(seg, 24);
    }
    if let Some(tli) = name.strip_suffix(".history") {
        return hex(tli, 8);
    }
    if let Some(rest) = name.strip_suffix(".backup") {
        if let Some((seg, offset)) = rest.split_once('.') {
            return hex(seg, 24) && hex(offset, 8);
        }
    }
    false
}

/// The storage key of a WAL file.
///
/// # Errors
/// [`BackupError::InvalidObjectKey`] when `name` is not a WAL file name.
pub fn object_key(name: &str) -> Result<String, BackupError> {
    if is_wal_file_name(name) {
        Ok(format!("wal/{name}"))
    } else {
        Err(BackupError::InvalidObjectKey {
            key: name.to_owned(),
        })
    }
}

/// Archives the file at `source` under `name`, sealed with the keyring's current key.
///
/// # Errors
/// [`BackupError::Conflict`] when different content is already archived under `name`; storage
/// and I/O errors otherwise.
pub fn push(
    storage: &dyn Storage,
    keyring: &BackupKeyring,
    source: &Path,
    name: &str,
) -> Result<PushOutcome, BackupError> {
    let key = object_key(name)?;
    if storage.exists(&key)? {
        return same_content(storage, keyring, &key, name, source);
    }
    let mut input =
        File::open(source).map_err(|e| BackupError::io(format!("open {}", source.display()), e))?;
    let writer = storage.put(&key)?;
    let sealed = EncryptWriter::new(
        writer,
        keyring.current(),
        ObjectKind::WalFile,
        Metadata::now().with_object_name(name),
    )?;
    let mut encoder = zstd::Encoder::new(sealed, WAL_ZSTD_LEVEL)
        .map_err(|e| BackupError::io("start zstd compression", e))?;
    io::copy(&mut input, &mut encoder)
        .map_err(|e| BackupError::from_io(e, &format!("archive {}", source.display())))?;
    let sealed = encoder
        .finish()
        .map_err(|e| BackupError::from_io(e, "finish zstd compression"))?;
    let writer = sealed.finish()?;
    match writer.commit() {
        Ok(()) => Ok(PushOutcome::Stored),
        // Another archiver won the race: accept it only if it stored the same bytes.
        Err(BackupError::AlreadyExists { .. }) => {
            same_content(storage, keyring, &key, name, source)
        }
        Err(e) => Err(e),
    }
}

fn same_content(
    storage: &dyn Storage,
    keyring: &BackupKeyring,
    key: &str,
    name: &str,
    source: &Path,
) -> Result<PushOutcome, BackupError> {
    let mut archived = open_object(storage, keyring, key, name)?
        .ok_or_else(|| BackupError::io(format!("read {key}"), io::ErrorKind::NotFound.into()))?;
    let archived_digest = digest_of(&mut archived, key)?;
    let mut local =
        File::open(source).map_err(|e| BackupError::io(format!("open {}", source.display()), e))?;
    let local_digest = digest_of(&mut local, &source.display().to_string())?;
    if archived_digest.as_ref() == local_digest.as_ref() {
        Ok(PushOutcome::AlreadyArchived)
    } else {
        Err(BackupError::Conflict {
            key: key.to_owned(),
        })
    }
}

fn digest_of(input: &mut dyn Read, what: &str) -> Result<digest::Digest, BackupError> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BackupError::from_io(e, &format!("read {what}"))),
        };
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish())
}

/// Opens an archived WAL object: authenticated, checked to be the file `name`, decompressing.
fn open_object(
    storage: &dyn Storage,
    keyring: &BackupKeyring,
    key: &str,
    name: &str,
) -> Result<Option<impl Read>, BackupError> {
    let Some(raw) = storage.get(key)? else {
        return Ok(None);
    };
    let reader = DecryptReader::named(raw, keyring, key)?;
    let header = reader.header();
    let found = header.metadata().object_name.clone();
    if header.kind() != ObjectKind::WalFile || found.as_deref() != Some(name) {
        return Err(BackupError::WrongObject {
            what: key.to_owned(),
            expected: format!("WAL file {name}"),
            found: match found {
                Some(other) if header.kind() == ObjectKind::WalFile => format!("WAL file {other}"),
                _ => format!("a {}", header.kind().name()),
            },
        });
    }
    let decoder =
        zstd::Decoder::new(reader).map_err(|e| BackupError::io("start zstd decompression", e))?;
    Ok(Some(decoder))
}

/// Restores the archived file `name` to `dest`: written to a temporary file beside it, synced,
/// and renamed into place only after the whole object authenticated.
///
/// # Errors
/// [`BackupError::WrongObject`] for a swapped file, the stream's damage errors, I/O errors.
pub fn fetch(
    storage: &dyn Storage,
    keyring: &BackupKeyring,
    name: &str,
    dest: &Path,
) -> Result<FetchOutcome, BackupError> {
    let key = object_key(name)?;
    let Some(mut plain) = open_object(storage, keyring, &key, name)? else {
        return Ok(FetchOutcome::Missing);
    };
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_owned());
    let temp = TempPath(dir.join(format!(".{file_name}.pgseal-{}", random_suffix())));
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp.0)
        .map_err(|e| BackupError::io(format!("create {}", temp.0.display()), e))?;
    io::copy(&mut plain, &mut out).map_err(|e| {
        match BackupError::from_io(e, &format!("write {}", temp.0.display())) {
            // zstd reports a damaged frame with its own error kind; authentication errors
            // pass through unchanged.
            BackupError::Io { source, .. } if source.kind() == io::ErrorKind::Other => {
                BackupError::Decompress {
                    what: key.clone(),
                    detail: source.to_string(),
                }
            }
            other => other,
        }
    })?;
    out.flush()
        .and_then(|()| out.sync_all())
        .map_err(|e| BackupError::io(format!("sync {}", temp.0.display()), e))?;
    drop(out);
    std::fs::rename(&temp.0, dest)
        .map_err(|e| BackupError::io(format!("move the file into {}", dest.display()), e))?;
    temp.disarm();
    sync_dir(dir)?;
    Ok(FetchOutcome::Restored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackupKey, LocalDir};

    const SEG1: &str = "000000010000000000000001";
    const SEG2: &str = "000000010000000000000002";

    fn setup() -> (tempfile::TempDir, LocalDir, BackupKeyring) {
        let dir = tempfile::tempdir().expect("dir");
        let store = LocalDir::open(dir.path().join("repo")).expect("repo");
        (
            dir,
            store,
            BackupKeyring::new(BackupKey::generate(), Vec::new()),
        )
    }

    #[test]
    fn names() {
        for good in [
            SEG1,
            "00000002.history",
            "000000010000000000000001.partial",
            "000000010000000000000002.00000028.backup",
        ] {
            assert!(is_wal_file_name(good), "{good}");
        }
        for bad in [
            "",
            "../000000010000000000000001",
            "00000001000000000000000",
            "x.history",
        ] {
            assert!(!is_wal_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn push_fetch_idempotence_conflict_and_swap() {
        let (dir, store, keyring) = setup();
        let seg1 = dir.path().join("seg1");
        let seg2 = dir.path().join("seg2");
        std::fs::write(&seg1, vec![1u8; 100_000]).expect("write");
        std::fs::write(&seg2, vec![2u8; 100_000]).expect("write");
        assert_eq!(
            push(&store, &keyring, &seg1, SEG1).expect("push"),
            PushOutcome::Stored
        );
        assert_eq!(
            push(&store, &keyring, &seg1, SEG1).expect("again"),
            PushOutcome::AlreadyArchived
        );
        assert!(matches!(
            push(&store, &keyring, &seg2, SEG1),
            Err(BackupError::Conflict { .. })
        ));
        push(&store, &keyring, &seg2, SEG2).expect("push 2");
        let dest = dir.path().join("restored");
        assert_eq!(
            fetch(&store, &keyring, SEG1, &dest).expect("fetch"),
            FetchOutcome::Restored
        );
        assert_eq!(std::fs::read(&dest).expect("read"), vec![1u8; 100_000]);
        assert_eq!(
            fetch(&store, &keyring, "000000010000000000000009", &dest).expect("missing"),
            FetchOutcome::Missing
        );
        // Swap the two archived objects on disk.
        let root = store.root().join("wal");
        std::fs::rename(root.join(SEG1), root.join("tmp")).expect("mv");
        std::fs::rename(root.join(SEG2), root.join(SEG1)).expect("mv");
        let err = fetch(&store, &keyring, SEG1, &dir.path().join("x")).expect_err("swapped");
        assert!(matches!(err, BackupError::WrongObject { .. }), "{err}");
        assert!(err.to_string().contains(SEG2), "{err}");
        assert!(!dir.path().join("x").exists());
    }
}
