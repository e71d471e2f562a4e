//! Streaming adapters over the format core: [`EncryptWriter`] seals whatever is written to it,
//! [`DecryptReader`] returns only bytes whose chunk has authenticated. Both hold one chunk in
//! memory, whatever the size of the stream.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::format::{ChunkCipher, Header, Metadata, ObjectKind, FIXED_LEN, TAG_LEN};
use crate::key::{BackupKey, BackupKeyFingerprint, BackupKeyring};
use crate::{BackupError, DEFAULT_CHUNK_SIZE};

/// How far around a failed chunk's position other positions are tried, to tell a reordered or
/// duplicated chunk from a damaged one. Bounded so that a damaged file cannot make us spend
/// unbounded time.
const SEARCH_WINDOW: u64 = 1024;

/// Counts of a finished stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// Chunks written or read (including the final one).
    pub chunks: u64,
    /// Plaintext bytes (the compressed payload) through the stream.
    pub plaintext_bytes: u64,
    /// Bytes of the whole file: header and sealed chunks.
    pub file_bytes: u64,
}

/// Seals a stream: writes the header at once, then one sealed chunk per `chunk size` bytes
/// written. [`EncryptWriter::finish`] must be called: it seals the final chunk; a stream whose
/// writer was dropped without it lacks that chunk and is reported as truncated by any reader.
pub struct EncryptWriter<W: Write> {
    inner: W,
    cipher: ChunkCipher,
    header: Header,
    chunk_size: usize,
    buf: Vec<u8>,
    index: u64,
    summary: StreamSummary,
    failed: bool,
}

impl<W: Write> EncryptWriter<W> {
    /// Starts a stream under `key` with the default chunk size (1 MiB).
    ///
    /// # Errors
    /// [`BackupError::Io`] when the header cannot be written.
    pub fn new(
        inner: W,
        key: &BackupKey,
        kind: ObjectKind,
        metadata: Metadata,
    ) -> Result<Self, BackupError> {
        Self::with_chunk_size(inner, key, kind, metadata, DEFAULT_CHUNK_SIZE)
    }

    /// Starts a stream with the given chunk size (1 KiB ..= 16 MiB).
    ///
    /// # Errors
    /// [`BackupError::MalformedHeader`] for a chunk size out of range, [`BackupError::Io`] when
    /// the header cannot be written.
    pub fn with_chunk_size(
        mut inner: W,
        key: &BackupKey,
        kind: ObjectKind,
        metadata: Metadata,
        chunk_size: u32,
    ) -> Result<Self, BackupError> {
        let (header, cipher) = Header::create(key, kind, chunk_size, metadata)?;
        let bytes = header.encode();
        inner
            .write_all(&bytes)
            .map_err(|e| BackupError::io("write the backup header", e))?;
        let chunk_size = chunk_size as usize;
        Ok(EncryptWriter {
            inner,
            cipher,
            header,
            chunk_size,
            buf: Vec::with_capacity(chunk_size + TAG_LEN),
            index: 0,
            summary: StreamSummary {
                file_bytes: bytes.len() as u64,
                ..StreamSummary::default()
            },
            failed: false,
        })
    }

    /// The header written at the start.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Seals the final chunk, flushes, and returns the inner writer and the stream's counts.
    ///
    /// # Errors
    /// [`BackupError::Io`] when the final chunk cannot be written, or an earlier write failed.
    pub fn finish_with_summary(mut self) -> Result<(W, StreamSummary), BackupError> {
        if self.failed {
            return Err(BackupError::io(
                "finish the backup stream",
                io::Error::other("an earlier write failed"),
            ));
        }
        self.seal_buffered(true)
            .map_err(|e| BackupError::from_io(e, "write the final chunk"))?;
        self.inner
            .flush()
            .map_err(|e| BackupError::io("flush the backup stream", e))?;
        Ok((self.inner, self.summary))
    }

    /// As [`EncryptWriter::finish_with_summary`], returning only the inner writer.
    ///
    /// # Errors
    /// As [`EncryptWriter::finish_with_summary`].
    pub fn finish(self) -> Result<W, BackupError> {
        self.finish_with_summary().map(|(w, _)| w)
    }

    fn seal_buffered(&mut self, last: bool) -> io::Result<()> {
        let plain_len = self.buf.len() as u64;
        if let Err(err) = self.cipher.seal(self.index, last, &mut self.buf) {
            self.failed = true;
            return Err(err.into_io());
        }
        if let Err(err) = self.inner.write_all(&self.buf) {
            self.failed = true;
            return Err(err);
        }
        self.summary.chunks += 1;
        self.summary.plaintext_bytes += plain_len;
        self.summary.file_bytes += self.buf.len() as u64;
        self.index += 1;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("an earlier write to the backup failed"));
        }
        let mut rest = data;
        while !rest.is_empty() {
            // A full chunk is sealed only once more data arrives: until then it may be the final
            // one, which carries a different flag.
            if self.buf.len() == self.chunk_size {
                self.seal_buffered(false)?;
            }
            let take = (self.chunk_size - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Buffered plaintext cannot be flushed without sealing it as a chunk of the wrong size;
        // only what has been sealed is passed on.
        self.inner.flush()
    }
}

/// Opens a stream: reads and authenticates the header, then returns plaintext chunk by chunk,
/// each only after its tag has been verified. `read` returns 0 (end of stream) only after the
/// final chunk authenticated, so reaching the end proves the stream complete; every kind of
/// damage is an error carrying a [`BackupError`] (recover it with [`BackupError::from_io`]).
pub struct DecryptReader<R: Read> {
    inner: R,
    what: String,
    header: Header,
    cipher: ChunkCipher,
    full: usize,
    sealed: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
    index: u64,
    lookahead: Option<u8>,
    done: bool,
    failed: bool,
    summary: StreamSummary,
}

impl<R: Read> DecryptReader<R> {
    /// Reads the header from `inner` and opens it with `keyring`.
    ///
    /// # Errors
    /// See [`DecryptReader::named`].
    pub fn new(inner: R, keyring: &BackupKeyring) -> Result<Self, BackupError> {
        Self::named(inner, keyring, "the input")
    }

    /// As [`DecryptReader::new`]; `what` names the input in messages (a path or object key).
    ///
    /// # Errors
    /// [`BackupError::NotABackup`], [`BackupError::UnsupportedVersion`],
    /// [`BackupError::MalformedHeader`], [`BackupError::UnknownKey`],
    /// [`BackupError::HeaderTampered`] or [`BackupError::Io`].
    pub fn named(mut inner: R, keyring: &BackupKeyring, what: &str) -> Result<Self, BackupError> {
        let (header, header_len) = read_header(&mut inner, what)?;
        let cipher = header.open(keyring, what)?;
        let full = header.chunk_size() as usize + TAG_LEN;
        Ok(DecryptReader {
            inner,
            what: what.to_owned(),
            header,
            cipher,
            full,
            sealed: Vec::with_capacity(full + 1),
            plain: Vec::with_capacity(full),
            pos: 0,
            index: 0,
            lookahead: None,
            done: false,
            failed: false,
            summary: StreamSummary {
                file_bytes: header_len as u64,
                ..StreamSummary::default()
            },
        })
    }

    /// The authenticated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Counts so far (complete once `read` has returned 0).
    pub fn summary(&self) -> StreamSummary {
        self.summary
    }

    /// Whether the final chunk has authenticated.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    fn next_chunk(&mut self) -> Result<(), BackupError> {
        self.sealed.clear();
        if let Some(byte) = self.lookahead.take() {
            self.sealed.push(byte);
        }
        // One byte beyond a full chunk tells whether this chunk is the final one.
        let want = self.full + 1;
        while self.sealed.len() < want {
            let start = self.sealed.len();
            self.sealed.resize(want, 0);
            match self.inner.read(&mut self.sealed[start..]) {
                Ok(0) => {
                    self.sealed.truncate(start);
                    break;
                }
                Ok(n) => self.sealed.truncate(start + n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.sealed.truncate(start),
                Err(e) => {
                    self.sealed.truncate(start);
                    return Err(BackupError::io(format!("read {}", self.what), e));
                }
            }
        }
        let last = self.sealed.len() <= self.full;
        if !last {
            self.lookahead = self.sealed.pop();
        }
        let index = self.index;
        if self.sealed.is_empty() {
            return Err(BackupError::TruncatedAtBoundary {
                what: self.what.clone(),
                chunks_read: index,
            });
        }
        if self.sealed.len() < TAG_LEN {
            return Err(BackupError::TruncatedInChunk {
                what: self.what.clone(),
                index,
                len: self.sealed.len(),
            });
        }
        self.plain.resize(self.sealed.len() - TAG_LEN, 0);
        if self
            .cipher
            .open(index, last, &self.sealed, &mut self.plain)
            .is_err()
        {
            return Err(self.diagnose(index, last));
        }
        self.summary.chunks += 1;
        self.summary.plaintext_bytes += self.plain.len() as u64;
        self.summary.file_bytes += self.sealed.len() as u64;
        self.pos = 0;
        self.index += 1;
        self.done = last;
        Ok(())
    }

    /// Works out why chunk `index` failed, by trying it under the other flag and at nearby
    /// positions. Only called on failure.
    fn diagnose(&mut self, index: u64, last: bool) -> BackupError {
        let what = self.what.clone();
        let opens = |this: &mut Self, k: u64, flag: bool| {
            this.cipher
                .open(k, flag, &this.sealed, &mut this.plain)
                .is_ok()
        };
        if last && self.sealed.len() == self.full && opens(self, index, false) {
            return BackupError::TruncatedAtBoundary {
                what,
                chunks_read: index + 1,
            };
        }
        if !last && opens(self, index, true) {
            return BackupError::TrailingData { what, index };
        }
        let low = index.saturating_sub(SEARCH_WINDOW);
        let high = index.saturating_add(SEARCH_WINDOW);
        for k in low..=high {
            if k == index {
                continue;
            }
            if opens(self, k, false) || opens(self, k, true) {
                return if k < index {
                    BackupError::ChunkDuplicated {
                        what,
                        position: index,
                        found: k,
                    }
                } else {
                    BackupError::ChunkReordered {
                        what,
                        position: index,
                        found: k,
                    }
                };
            }
        }
        if last && self.sealed.len() < self.full {
            return BackupError::TruncatedInChunk {
                what,
                index,
                len: self.sealed.len(),
            };
        }
        BackupError::ChunkTampered { what, index }
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(
                "the backup stream already failed authentication",
            ));
        }
        while self.pos == self.plain.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if let Err(err) = self.next_chunk() {
                self.failed = true;
                self.plain.clear();
                self.pos = 0;
                return Err(err.into_io());
            }
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads and parses a header without opening it (for `inspect`): nothing in it is
/// authenticated. Returns the header and its length.
///
/// # Errors
/// [`BackupError::NotABackup`], [`BackupError::UnsupportedVersion`],
/// [`BackupError::MalformedHeader`] or [`BackupError::Io`].
pub fn read_header<R: Read>(inner: &mut R, what: &str) -> Result<(Header, usize), BackupError> {
    let mut fixed = vec![0u8; FIXED_LEN];
    let got =
        read_full(inner, &mut fixed).map_err(|e| BackupError::io(format!("read {what}"), e))?;
    fixed.truncate(got);
    let total = Header::total_len(&fixed, what)?;
    let mut bytes = fixed;
    bytes.resize(total, 0);
    let got = read_full(inner, &mut bytes[FIXED_LEN..])
        .map_err(|e| BackupError::io(format!("read {what}"), e))?;
    bytes.truncate(FIXED_LEN + got);
    let header = Header::decode(&bytes, what)?;
    Ok((header, total))
}

fn read_full<R: Read>(inner: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match inner.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The result of [`rekey_file`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RekeyOutcome {
    /// The data key was rewrapped.
    Rekeyed {
        /// The key it was wrapped under.
        from: BackupKeyFingerprint,
        /// The key it is wrapped under now.
        to: BackupKeyFingerprint,
    },
    /// Already wrapped under the current key; the file was not touched.
    AlreadyCurrent(BackupKeyFingerprint),
}

/// Rewraps a backup file's data key under the keyring's current key without re-encrypting its
/// payload. The header's key slot has a fixed size; the file is copied to a temporary file in the
/// same directory, the slot rewritten there, synced, and renamed over the original, so a crash
/// leaves either the old or the new file, never a mix.
///
/// # Errors
/// As [`DecryptReader::named`] for the header, [`BackupError::Io`] for file operations.
pub fn rekey_file(path: &Path, keyring: &BackupKeyring) -> Result<RekeyOutcome, BackupError> {
    let what = path.display().to_string();
    let mut file = File::open(path).map_err(|e| BackupError::io(format!("open {what}"), e))?;
    let (mut header, _) = read_header(&mut file, &what)?;
    drop(file);
    let from = header.key_fingerprint();
    let current = keyring.current();
    if from == current.fingerprint() {
        // Authenticate anyway, so a damaged header is reported rather than called current.
        header.open(keyring, &what)?;
        return Ok(RekeyOutcome::AlreadyCurrent(from));
    }
    header.rewrap(keyring, current, &what)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".to_owned());
    let temp = TempPath(dir.join(format!(".{file_name}.rekey-{}", random_suffix())));
    std::fs::copy(path, &temp.0)
        .map_err(|e| BackupError::io(format!("copy {what} to {}", temp.0.display()), e))?;
    let mut copy = OpenOptions::new()
        .write(true)
        .open(&temp.0)
        .map_err(|e| BackupError::io(format!("open {}", temp.0.display()), e))?;
    copy.seek(SeekFrom::Start(header.key_slot_offset() as u64))
        .and_then(|_| copy.write_all(&header.key_slot()))
        .and_then(|()| copy.sync_all())
        .map_err(|e| BackupError::io(format!("rewrite the key slot of {}", temp.0.display()), e))?;
    drop(copy);
    std::fs::rename(&temp.0, path).map_err(|e| BackupError::io(format!("replace {what}"), e))?;
    temp.disarm();
    sync_dir(dir)?;
    Ok(RekeyOutcome::Rekeyed {
        from,
        to: current.fingerprint(),
    })
}

/// Fsyncs a directory so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BackupError::io(format!("sync directory {}", dir.display()), e))
}

pub(crate) fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    crate::format::fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A temporary file removed on drop unless disarmed.
pub(crate) struct TempPath(pub(crate) PathBuf);

impl TempPath {
    pub(crate) fn disarm(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::MIN_CHUNK_SIZE;
    use proptest::prelude::*;

    const CHUNK: u32 = MIN_CHUNK_SIZE;
    const SEALED: usize = CHUNK as usize + TAG_LEN;

    fn seal(key: &BackupKey, data: &[u8]) -> (Vec<u8>, usize) {
        let mut w = EncryptWriter::with_chunk_size(
            Vec::new(),
            key,
            ObjectKind::LogicalDump,
            Metadata::now(),
            CHUNK,
        )
        .expect("writer");
        let header_len = w.header().len();
        w.write_all(data).expect("write");
        (w.finish().expect("finish"), header_len)
    }

    fn open(keyring: &BackupKeyring, file: &[u8]) -> Result<Vec<u8>, BackupError> {
        let mut r = DecryptReader::named(file, keyring, "f")?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| BackupError::from_io(e, "read"))?;
        assert!(r.is_complete());
        Ok(out)
    }

    fn ring(key: &BackupKey) -> BackupKeyring {
        BackupKeyring::new(
            BackupKey::from_base64("k", &key.expose_base64()).expect("copy"),
            Vec::new(),
        )
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_every_boundary() {
        let key = BackupKey::generate();
        let keyring = ring(&key);
        for len in [
            0,
            1,
            CHUNK as usize - 1,
            CHUNK as usize,
            CHUNK as usize + 1,
            3 * CHUNK as usize,
        ] {
            let input = data(len);
            let (file, header_len) = seal(&key, &input);
            let chunks =
                (len / CHUNK as usize) + usize::from(len % CHUNK as usize != 0 || len == 0);
            assert_eq!(file.len(), header_len + len + chunks * TAG_LEN, "len {len}");
            assert_eq!(open(&keyring, &file).expect("opens"), input, "len {len}");
        }
    }

    #[test]
    fn each_kind_of_damage_has_its_own_error() {
        let key = BackupKey::generate();
        let keyring = ring(&key);
        let (file, h) = seal(&key, &data(3 * CHUNK as usize + 100));
        let chunk = |i: usize| h + i * SEALED..h + (i + 1) * SEALED;

        let cut = &file[..h + 2 * SEALED];
        assert!(matches!(
            open(&keyring, cut),
            Err(BackupError::TruncatedAtBoundary { chunks_read: 2, .. })
        ));
        assert!(matches!(
            open(&keyring, &file[..h]),
            Err(BackupError::TruncatedAtBoundary { chunks_read: 0, .. })
        ));
        assert!(matches!(
            open(&keyring, &file[..h + SEALED + 500]),
            Err(BackupError::TruncatedInChunk { index: 1, .. })
        ));
        let mut flipped = file.clone();
        flipped[h + SEALED + 7] ^= 0x80;
        assert!(matches!(
            open(&keyring, &flipped),
            Err(BackupError::ChunkTampered { index: 1, .. })
        ));
        let mut swapped = file.clone();
        swapped[chunk(0)].copy_from_slice(&file[chunk(1)]);
        swapped[chunk(1)].copy_from_slice(&file[chunk(0)]);
        assert!(matches!(
            open(&keyring, &swapped),
            Err(BackupError::ChunkReordered {
                position: 0,
                found: 1,
                ..
            })
        ));
        let mut duplicated = file[..chunk(1).end].to_vec();
        duplicated.extend_from_slice(&file[chunk(1)]);
        duplicated.extend_from_slice(&file[chunk(1).end..]);
        assert!(matches!(
            open(&keyring, &duplicated),
            Err(BackupError::ChunkDuplicated {
                position: 2,
                found: 1,
                ..
            })
        ));
        let mut appended = file.clone();
        appended.extend_from_slice(&[0u8; SEALED]);
        assert!(matches!(
            open(&keyring, &appended),
            Err(BackupError::TrailingData { .. }) | Err(BackupError::ChunkTampered { .. })
        ));
        let mut header_flip = file.clone();
        header_flip[20] ^= 1;
        assert!(matches!(
            open(&keyring, &header_flip),
            Err(BackupError::HeaderTampered { .. })
        ));
        let other = ring(&BackupKey::generate());
        assert!(matches!(
            open(&other, &file),
            Err(BackupError::UnknownKey { .. })
        ));
        let (foreign, _) = seal(&BackupKey::generate(), &data(100));
        let mut spliced = file[..h].to_vec();
        spliced.extend_from_slice(&foreign[foreign.len() - 116..]);
        assert!(open(&keyring, &spliced).is_err());
    }

    #[test]
    fn an_unfinished_writer_leaves_a_truncated_stream() {
        let key = BackupKey::generate();
        let mut w = EncryptWriter::with_chunk_size(
            Vec::new(),
            &key,
            ObjectKind::LogicalDump,
            Metadata::now(),
            CHUNK,
        )
        .expect("writer");
        w.write_all(&data(5 * CHUNK as usize)).expect("write");
        // Dropped without finish: only the complete non-final chunks reached the output.
        let partial = w.inner.clone();
        assert!(matches!(
            open(&ring(&key), &partial),
            Err(BackupError::TruncatedAtBoundary { chunks_read: 4, .. })
        ));
    }

    #[test]
    fn rekey_file_rewraps_without_touching_the_payload() {
        let old = BackupKey::generate();
        let new = BackupKey::generate();
        let (file, h) = seal(&old, &data(2 * CHUNK as usize + 9));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("b.pgseal");
        std::fs::write(&path, &file).expect("write");
        let both = BackupKeyring::new(
            BackupKey::from_base64("k", &new.expose_base64()).expect("copy"),
            vec![BackupKey::from_base64("k", &old.expose_base64()).expect("copy")],
        );
        let outcome = rekey_file(&path, &both).expect("rekey");
        assert_eq!(
            outcome,
            RekeyOutcome::Rekeyed {
                from: old.fingerprint(),
                to: new.fingerprint()
            }
        );
        let rekeyed = std::fs::read(&path).expect("read");
        assert_eq!(rekeyed[h..], file[h..], "payload unchanged");
        assert_eq!(
            open(&ring(&new), &rekeyed).expect("new key"),
            data(2 * CHUNK as usize + 9)
        );
        assert!(open(&ring(&old), &rekeyed).is_err());
        assert_eq!(
            rekey_file(&path, &both).expect("again"),
            RekeyOutcome::AlreadyCurrent(new.fingerprint())
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "no temp left"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn any_length_and_write_pattern_round_trips(
            len in 0usize..5000,
            pieces in proptest::collection::vec(1usize..1500, 1..8),
        ) {
            let key = BackupKey::generate();
            let input = data(len);
            let mut w = EncryptWriter::with_chunk_size(
                Vec::new(), &key, ObjectKind::WalFile, Metadata::now(), CHUNK,
            ).expect("writer");
            let mut rest = &input[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = pieces[i % pieces.len()].min(rest.len());
                w.write_all(&rest[..n]).expect("write");
                rest = &rest[n..];
                i += 1;
            }
            let file = w.finish().expect("finish");
            prop_assert_eq!(open(&ring(&key), &file).expect("opens"), input);
        }

        #[test]
        fn any_flipped_bit_or_cut_is_rejected(seed in any::<u64>(), bit in 0u8..8) {
            let key = BackupKey::generate();
            let (file, _) = seal(&key, &data(2 * CHUNK as usize + 77));
            let pos = (seed % file.len() as u64) as usize;
            let mut bad = file.clone();
            bad[pos] ^= 1 << bit;
            prop_assert!(open(&ring(&key), &bad).is_err());
            prop_assert!(open(&ring(&key), &file[..pos]).is_err());
        }
    }
}
