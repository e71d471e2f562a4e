//! Where records go.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::AuditError;

/// A destination for audit records.
///
/// `write_record` receives one complete record (a JSON object and its trailing newline) and must
/// write it whole, without interleaving with other records, before returning `Ok`. Records
/// arrive in the order they are to appear. A sink that adds integrity protection (an HMAC chain)
/// wraps another sink and forwards the records it produces.
pub trait Sink: Send + Sync + fmt::Debug {
    /// Writes one record. An error means it is not in the log.
    fn write_record(&self, record: &[u8]) -> Result<(), AuditError>;
}

/// Standard error.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrSink;

impl Sink for StderrSink {
    fn write_record(&self, record: &[u8]) -> Result<(), AuditError> {
        // The lock keeps other writers (logging) from splitting the line.
        let mut stderr = std::io::stderr().lock();
        stderr
            .write_all(record)
            .and_then(|()| stderr.flush())
            .map_err(|source| AuditError::Write {
                sink: "stderr".to_owned(),
                source,
            })
    }
}

/// A file opened for appending.
///
/// Each record is one `write_all` on an `O_APPEND` descriptor under a mutex, so records from
/// threads never interleave, and records from other processes appending to the same file land
/// whole at the end. Each record is synced to disk before `write_record` returns: audited
/// operations are rare, and a record that could be lost in a crash would not be an audit trail.
pub struct FileSink {
    path: PathBuf,
    file: Mutex<File>,
}

impl FileSink {
    /// Opens `path` for appending, creating it with mode 0600 (owner read/write only).
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| AuditError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for FileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSink")
            .field("path", &self.path)
            .finish()
    }
}

impl Sink for FileSink {
    fn write_record(&self, record: &[u8]) -> Result<(), AuditError> {
        // A writer that panicked mid-record cannot have left a partial line behind, because
        // `write_all` on a regular file writes the record in one call; the file stays usable.
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(record)
            .and_then(|()| file.flush())
            .and_then(|()| file.sync_data())
            .map_err(|source| AuditError::Write {
                sink: self.path.display().to_string(),
                source,
            })
    }
}
