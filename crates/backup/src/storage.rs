//! Where backups and archived WAL are kept: a small interface and a local-directory
//! implementation.
//!
//! Objects are named by keys such as `wal/000000010000000000000003` or
//! `base/20260101T000000Z.pgseal`. The format never depends on the store: an object is the same
//! sealed byte stream wherever it lives, so a store only has to move bytes. Writing is
//! all-or-nothing: an [`ObjectWriter`] becomes visible under its key only on
//! [`ObjectWriter::commit`], and never replaces an existing object.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::stream::{random_suffix, sync_dir, TempPath};
use crate::BackupError;

/// A place to keep backup objects.
///
/// An S3-compatible store implements it with `PutObject` (or a multipart upload) with
/// `If-None-Match: *` on commit, `GetObject`, `HeadObject` and `ListObjectsV2`.
pub trait Storage: Send + Sync {
    /// Starts writing a new object. Nothing is visible under `key` until the writer is
    /// committed; dropping it uncommitted leaves nothing behind.
    ///
    /// # Errors
    /// [`BackupError::InvalidObjectKey`] or [`BackupError::Io`].
    fn put(&self, key: &str) -> Result<Box<dyn ObjectWriter>, BackupError>;

    /// Opens an object for reading; `None` when there is no such object.
    ///
    /// # Errors
    /// [`BackupError::InvalidObjectKey`] or [`BackupError::Io`].
    fn get(&self, key: &str) -> Result<Option<Box<dyn Read + Send>>, BackupError>;

    /// Whether an object exists.
    ///
    /// # Errors
    /// [`BackupError::InvalidObjectKey`] or [`BackupError::Io`].
    fn exists(&self, key: &str) -> Result<bool, BackupError>;

    /// Keys of every object whose key starts with `prefix`, sorted.
    ///
    /// # Errors
    /// [`BackupError::Io`].
    fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError>;

    /// Where the store is, for messages.
    fn describe(&self) -> String;
}

/// An object being written.
pub trait ObjectWriter: Write + Send {
    /// Makes the object durable and visible under its key.
    ///
    /// # Errors
    /// [`BackupError::AlreadyExists`] if another object took the key meanwhile;
    /// [`BackupError::Io`].
    fn commit(self: Box<Self>) -> Result<(), BackupError>;
}

/// A fresh, unique key for a base backup: `base/<UTC time>-<8 random hex digits>.pgseal`, so
/// the keys of one repository sort by time.
#[must_use]
pub fn new_base_backup_key() -> String {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let mut id = [0u8; 4];
    crate::format::fill_random(&mut id);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("base/{stamp}-{id}.pgseal")
}

/// Checks a key is a relative path of plain names: it can never leave the store's root.
fn check_key(key: &str) -> Result<(), BackupError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(BackupError::InvalidObjectKey { key: key.into() })
    }
}

/// A directory on a local (or mounted) file system. Objects are files under it, written
/// to a temporary file, fsynced, then linked into place (which fails if the name exists) and the
/// directory fsynced, so an object is either absent or complete.
#[derive(Clone, Debug)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// Uses `root`, creating it (mode 0700) if missing.
    ///
    /// # Errors
    /// [`BackupError::Io`] when it cannot be created or is not a directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalDir, BackupError> {
        let root = root.into();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|e| BackupError::io(format!("create the repository {}", root.display()), e))?;
        if !root.is_dir() {
            return Err(BackupError::io(
                format!("use the repository {}", root.display()),
                io::Error::other("not a directory"),
            ));
        }
        Ok(LocalDir { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, BackupError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

impl Storage for LocalDir {
    fn put(&self, key: &str) -> Result<Box<dyn ObjectWriter>, BackupError> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| BackupError::io(format!("create {}", dir.display()), e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{name}.tmp-{}", random_suffix()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| BackupError::io(format!("create {}", temp.display()), e))?;
        Ok(Box::new(LocalWriter {
            file,
            temp: TempPath(temp),
            path,
            dir,
            key: key.to_owned(),
        }))
    }

    fn get(&self, key: &str) -> Result<Option<Box<dyn Read + Send>>, BackupError> {
        let path = self.path(key)?;
        match File::open(&path) {
            Ok(file) => Ok(Some(Box::new(io::BufReader::with_capacity(1 << 16, file)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BackupError::io(format!("open {}", path.display()), e)),
        }
    }

    fn exists(&self, key: &str) -> Result<bool, BackupError> {
        let path = self.path(key)?;
        path.try_exists()
            .map_err(|e| BackupError::io(format!("check {}", path.display()), e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let mut out = Vec::new();
        walk(&self.root, "", &mut out)?;
        out.retain(|k| k.starts_with(prefix));
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), BackupError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| BackupError::io(format!("list {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BackupError::io(format!("list {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Temporary files of unfinished writes start with a dot and are not objects.
        if name.starts_with('.') {
            continue;
        }
        let key = format!("{prefix}{name}");
        let kind = entry
            .file_type()
            .map_err(|e| BackupError::io(format!("stat {}", entry.path().display()), e))?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{key}/"), out)?;
        } else if kind.is_file() {
            out.push(key);
        }
    }
    Ok(())
}

struct LocalWriter {
    file: File,
    temp: TempPath,
    path: PathBuf,
    dir: PathBuf,
    key: String,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl ObjectWriter for LocalWriter {
    fn commit(self: Box<Self>) -> Result<(), BackupError> {
        let LocalWriter {
            file,
            temp,
            path,
            dir,
            key,
        } = *self;
        file.sync_all()
            .map_err(|e| BackupError::io(format!("sync {}", temp.0.display()), e))?;
        drop(file);
        // link(2) refuses an existing name, unlike rename(2): an archived object is never
        // replaced, even by a concurrent writer.
        match std::fs::hard_link(&temp.0, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(BackupError::AlreadyExists { key });
            }
            Err(e) => return Err(BackupError::io(format!("store {}", path.display()), e)),
        }
        drop(temp);
        sync_dir(&dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_exists_list() {
        let dir = tempfile::tempdir().expect("dir");
        let store = LocalDir::open(dir.path().join("repo")).expect("open");
        assert!(!store.exists("wal/a").expect("exists"));
        assert!(store.get("wal/a").expect("get").is_none());
        let mut w = store.put("wal/a").expect("put");
        w.write_all(b"one").expect("write");
        assert!(
            !store.exists("wal/a").expect("exists"),
            "invisible before commit"
        );
        assert!(
            store.list("").expect("list").is_empty(),
            "temp files are not listed"
        );
        w.commit().expect("commit");
        let mut back = String::new();
        store
            .get("wal/a")
            .expect("get")
            .expect("present")
            .read_to_string(&mut back)
            .expect("read");
        assert_eq!(back, "one");
        let mut again = store.put("wal/a").expect("put");
        again.write_all(b"two").expect("write");
        assert!(matches!(
            again.commit(),
            Err(BackupError::AlreadyExists { .. })
        ));
        let dropped = store.put("base/x").expect("put");
        drop(dropped);
        assert_eq!(store.list("").expect("list"), vec!["wal/a".to_owned()]);
        assert_eq!(
            std::fs::read_dir(store.root().join("wal"))
                .expect("ls")
                .count(),
            1
        );
    }

    #[test]
    fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().expect("dir");
        let store = LocalDir::open(dir.path()).expect("open");
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            ".hidden",
            "a/./b",
            "a b",
        ] {
            assert!(
                matches!(store.exists(bad), Err(BackupError::InvalidObjectKey { .. })),
                "{bad:?}"
            );
        }
    }
}
