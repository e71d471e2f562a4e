//! The backup stream format, version 1 (docs/format.md, "Backup stream"). No I/O.
//!
//! ```text
//! header core (authenticated, hashed into every chunk):
//!   0   8  magic "PGSEALBK"
//!   8   1  format version (1)
//!   9   1  object kind (1 logical dump, 2 base backup, 3 WAL file)
//!   10  1  compression (1 zstd)
//!   11  1  reserved, 0
//!   12  4  chunk size in plaintext bytes, u32 big-endian (1 KiB ..= 16 MiB)
//!   16  16 file id (random)
//!   32  8  nonce prefix (7 random bytes, then 0)
//!   40  4  metadata length N, u32 big-endian (<= 64 KiB)
//!   44  N  metadata: UTF-8 JSON object
//! key slot (fixed size, so `rekey` rewrites it in place):
//!   +0  8  backup key fingerprint
//!   +8  12 wrap nonce (random)
//!   +20 48 data key sealed with AES-256-GCM under the backup key,
//!          AAD = "pgseal backup key wrap v1" || header core || fingerprint
//! payload: chunks, each chunk-size plaintext bytes (the final one 0 ..= chunk size) sealed with
//!   AES-256-GCM under the data key (ciphertext || 16-byte tag),
//!   nonce = nonce prefix[0..7] || counter u32 BE || final flag (1 or 0),
//!   AAD   = SHA-256(header core) || counter u64 BE || final flag.
//! ```

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::key::{BackupKey, BackupKeyFingerprint, BackupKeyring, FINGERPRINT_LEN, KEY_LEN};
use crate::BackupError;

/// The eight bytes every backup starts with.
pub const MAGIC: [u8; 8] = *b"PGSEALBK";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Plaintext bytes per chunk unless told otherwise: large enough that the per-chunk overhead
/// (16 bytes, one AEAD call) is negligible, small enough that memory stays constant.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_SIZE: u32 = 1 << 10;
/// Largest chunk size accepted: bounds the memory a reader commits to from an untrusted header.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Largest metadata block accepted.
pub const MAX_METADATA_LEN: usize = 64 << 10;
/// Length of the header core before the metadata.
pub const FIXED_LEN: usize = 44;
/// Length of the key slot.
pub const KEY_SLOT_LEN: usize = FINGERPRINT_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

const NONCE_LEN: usize = 12;
const NONCE_PREFIX_LEN: usize = 7;
const COMPRESSION_ZSTD: u8 = 1;
const WRAP_LABEL: &[u8] = b"pgseal backup key wrap v1";

pub(crate) fn fill_random(dest: &mut [u8]) {
    // aws-lc's RAND_bytes fails only without a kernel RNG; continuing would risk reusing keys
    // or nonces, so there is nothing sound to do but stop.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(dest).expect("the system random number generator failed");
}

/// What a backup object holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectKind {
    /// zstd-compressed `pg_dump -Fc` output.
    LogicalDump,
    /// zstd-compressed `pg_basebackup -Ft` tar stream.
    BaseBackup,
    /// A zstd-compressed WAL segment or timeline history file.
    WalFile,
}

impl ObjectKind {
    fn to_byte(self) -> u8 {
        match self {
            ObjectKind::LogicalDump => 1,
            ObjectKind::BaseBackup => 2,
            ObjectKind::WalFile => 3,
        }
    }

    fn from_byte(byte: u8) -> Option<ObjectKind> {
        match byte {
            1 => Some(ObjectKind::LogicalDump),
            2 => Some(ObjectKind::BaseBackup),
            3 => Some(ObjectKind::WalFile),
            _ => None,
        }
    }

    /// A short name for messages and `inspect`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::LogicalDump => "logical dump (pg_dump -Fc)",
            ObjectKind::BaseBackup => "base backup (pg_basebackup tar)",
            ObjectKind::WalFile => "WAL file",
        }
    }
}

/// Descriptive, authenticated facts about a backup, stored as JSON in the header.
///
/// Never holds key material or data: only names, versions and times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// Creation time, RFC 3339 in UTC.
    pub created_at: String,
    /// The pgseal version that wrote the backup.
    pub pgseal_version: String,
    /// The object's own name, bound into its authentication (a WAL file's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_name: Option<String>,
    /// The source database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The source server's version (`server_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The program that produced the payload (`pg_dump --version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
}

impl Metadata {
    /// Metadata stamped with the current time and this pgseal version.
    #[must_use]
    pub fn now() -> Metadata {
        Metadata {
            created_at: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
            pgseal_version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Metadata::default()
        }
    }

    /// Sets the object name.
    #[must_use]
    pub fn with_object_name(mut self, name: impl Into<String>) -> Metadata {
        self.object_name = Some(name.into());
        self
    }

    /// Sets the source database.
    #[must_use]
    pub fn with_database(mut self, name: impl Into<String>) -> Metadata {
        self.database = Some(name.into());
        self
    }

    /// Sets the server version.
    #[must_use]
    pub fn with_server_version(mut self, version: impl Into<String>) -> Metadata {
        self.server_version = Some(version.into());
        self
    }

    /// Sets the producing program.
    #[must_use]
    pub fn with_producer(mut self, producer: impl Into<String>) -> Metadata {
        self.producer = Some(producer.into());
        self
    }
}

/// A parsed or freshly made backup header.
#[derive(Clone, Debug)]
pub struct Header {
    kind: ObjectKind,
    chunk_size: u32,
    file_id: [u8; 16],
    metadata: Metadata,
    /// The encoded header core, exactly as stored: what the key wrap and every chunk bind.
    core: Vec<u8>,
    key_fingerprint: BackupKeyFingerprint,
    wrap_nonce: [u8; NONCE_LEN],
    wrapped_key: [u8; KEY_LEN + TAG_LEN],
}

/// The per-backup data key, ready to seal or open chunks.
pub struct ChunkCipher {
    key: LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    header_hash: [u8; 32],
}

impl std::fmt::Debug for ChunkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkCipher(..)")
    }
}

impl Header {
    /// Makes a header for a new object: a fresh random data key wrapped under `key`, a fresh
    /// file id and nonce prefix. Returns the header and the cipher for its chunks.
    ///
    /// # Errors
    /// [`BackupError::MalformedHeader`] if `chunk_size` is out of range or the metadata too
    /// large.
    pub fn create(
        key: &BackupKey,
        kind: ObjectKind,
        chunk_size: u32,
        metadata: Metadata,
    ) -> Result<(Header, ChunkCipher), BackupError> {
        let malformed = |detail: String| BackupError::MalformedHeader {
            what: "the new backup".into(),
            detail,
        };
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(malformed(format!(
                "chunk size {chunk_size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
            )));
        }
        let meta_bytes = serde_json::to_vec(&metadata)
            .map_err(|e| malformed(format!("metadata does not encode: {e}")))?;
        if meta_bytes.len() > MAX_METADATA_LEN {
            return Err(malformed("metadata is larger than 64 KiB".into()));
        }
        let mut file_id = [0u8; 16];
        fill_random(&mut file_id);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        fill_random(&mut nonce_prefix);
        let mut core = Vec::with_capacity(FIXED_LEN + meta_bytes.len());
        core.extend_from_slice(&MAGIC);
        core.push(FORMAT_VERSION);
        core.push(kind.to_byte());
        core.push(COMPRESSION_ZSTD);
        core.push(0);
        core.extend_from_slice(&chunk_size.to_be_bytes());
        core.extend_from_slice(&file_id);
        core.extend_from_slice(&nonce_prefix);
        core.push(0);
        core.extend_from_slice(&u32_len(meta_bytes.len()).to_be_bytes());
        core.extend_from_slice(&meta_bytes);

        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut data_key[..]);
        let mut header = Header {
            kind,
            chunk_size,
            file_id,
            metadata,
            core,
            key_fingerprint: key.fingerprint(),
            wrap_nonce: [0; NONCE_LEN],
            wrapped_key: [0; KEY_LEN + TAG_LEN],
        };
        header.wrap(key, &data_key)?;
        let cipher = header.cipher(&data_key)?;
        Ok((header, cipher))
    }

    /// How long the whole header is, from its first [`FIXED_LEN`] bytes.
    ///
    /// # Errors
    /// [`BackupError::NotABackup`], [`BackupError::UnsupportedVersion`] or
    /// [`BackupError::MalformedHeader`]; `what` names the input in messages.
    pub fn total_len(fixed: &[u8], what: &str) -> Result<usize, BackupError> {
        check_magic(fixed, what)?;
        if fixed.len() < FIXED_LEN {
            return Err(BackupError::MalformedHeader {
                what: what.into(),
                detail: format!("only {} bytes, shorter than a header", fixed.len()),
            });
        }
        let meta_len = read_u32(&fixed[40..44]) as usize;
        if meta_len > MAX_METADATA_LEN {
            return Err(BackupError::MalformedHeader {
                what: what.into(),
                detail: format!("metadata length {meta_len} exceeds 64 KiB"),
            });
        }
        Ok(FIXED_LEN + meta_len + KEY_SLOT_LEN)
    }

    /// Parses a complete header (exactly [`Header::total_len`] bytes). Nothing in it is trusted
    /// until [`Header::open`] authenticates it.
    ///
    /// # Errors
    /// As [`Header::total_len`], plus out-of-range fields.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Header, BackupError> {
        let total = Header::total_len(bytes, what)?;
        let malformed = |detail: String| BackupError::MalformedHeader {
            what: what.into(),
            detail,
        };
        if bytes.len() != total {
            return Err(malformed(format!(
                "{} header bytes where {total} are expected (the file is cut inside its header)",
                bytes.len()
            )));
        }
        let kind = ObjectKind::from_byte(bytes[9])
            .ok_or_else(|| malformed(format!("unknown object kind {}", bytes[9])))?;
        if bytes[10] != COMPRESSION_ZSTD {
            return Err(malformed(format!("unknown compression {}", bytes[10])));
        }
        if bytes[11] != 0 || bytes[39] != 0 {
            return Err(malformed("reserved bytes are not zero".into()));
        }
        let chunk_size = read_u32(&bytes[12..16]);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(malformed(format!(
                "chunk size {chunk_size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
            )));
        }
        let mut file_id = [0u8; 16];
        file_id.copy_from_slice(&bytes[16..32]);
        let core_len = total - KEY_SLOT_LEN;
        let metadata: Metadata = serde_json::from_slice(&bytes[FIXED_LEN..core_len])
            .map_err(|_| malformed("the metadata is not valid JSON".into()))?;
        let slot = &bytes[core_len..];
        let mut fp = [0u8; FINGERPRINT_LEN];
        fp.copy_from_slice(&slot[..FINGERPRINT_LEN]);
        let mut wrap_nonce = [0u8; NONCE_LEN];
        wrap_nonce.copy_from_slice(&slot[FINGERPRINT_LEN..FINGERPRINT_LEN + NONCE_LEN]);
        let mut wrapped_key = [0u8; KEY_LEN + TAG_LEN];
        wrapped_key.copy_from_slice(&slot[FINGERPRINT_LEN + NONCE_LEN..]);
        Ok(Header {
            kind,
            chunk_size,
            file_id,
            metadata,
            core: bytes[..core_len].to_vec(),
            key_fingerprint: BackupKeyFingerprint::from_bytes(fp),
            wrap_nonce,
            wrapped_key,
        })
    }

    /// The header's bytes as stored: core, then key slot.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&self.core);
        out.extend_from_slice(&self.key_slot());
        out
    }

    /// The key slot's bytes (what `rekey` rewrites).
    #[must_use]
    pub fn key_slot(&self) -> [u8; KEY_SLOT_LEN] {
        let mut slot = [0u8; KEY_SLOT_LEN];
        slot[..FINGERPRINT_LEN].copy_from_slice(self.key_fingerprint.as_bytes());
        slot[FINGERPRINT_LEN..FINGERPRINT_LEN + NONCE_LEN].copy_from_slice(&self.wrap_nonce);
        slot[FINGERPRINT_LEN + NONCE_LEN..].copy_from_slice(&self.wrapped_key);
        slot
    }

    /// Offset of the key slot in the file.
    #[must_use]
    pub fn key_slot_offset(&self) -> usize {
        self.core.len()
    }

    /// Encoded length.
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.len() + KEY_SLOT_LEN
    }

    /// Always false: a header is never empty (present for clippy's `len_without_is_empty`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// What the object holds.
    #[must_use]
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// Plaintext bytes per chunk.
    #[must_use]
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The random file id, as hex.
    #[must_use]
    pub fn file_id_hex(&self) -> String {
        self.file_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The metadata (authenticated only once [`Header::open`] succeeded).
    #[must_use]
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Fingerprint of the backup key that wraps the data key.
    #[must_use]
    pub fn key_fingerprint(&self) -> BackupKeyFingerprint {
        self.key_fingerprint
    }

    /// Authenticates the header and unwraps its data key with the matching key of `keyring`.
    ///
    /// # Errors
    /// [`BackupError::UnknownKey`] when no loaded key has the recorded fingerprint,
    /// [`BackupError::HeaderTampered`] when the header does not authenticate under it.
    pub fn open(&self, keyring: &BackupKeyring, what: &str) -> Result<ChunkCipher, BackupError> {
        let data_key = self.unwrap(keyring, what)?;
        self.cipher(&data_key)
    }

    /// Re-wraps the data key under `new_key` (after authenticating with `keyring`). Only the key
    /// slot changes; the core, and therefore every chunk, stays valid.
    ///
    /// # Errors
    /// As [`Header::open`].
    pub fn rewrap(
        &mut self,
        keyring: &BackupKeyring,
        new_key: &BackupKey,
        what: &str,
    ) -> Result<(), BackupError> {
        let data_key = self.unwrap(keyring, what)?;
        self.key_fingerprint = new_key.fingerprint();
        self.wrap(new_key, &data_key)
    }

    fn unwrap(
        &self,
        keyring: &BackupKeyring,
        what: &str,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, BackupError> {
        let key = keyring
            .find(self.key_fingerprint)
            .ok_or_else(|| BackupError::UnknownKey {
                what: what.into(),
                fingerprint: self.key_fingerprint,
                loaded: keyring
                    .fingerprints()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let tampered = || BackupError::HeaderTampered {
            what: what.into(),
            fingerprint: self.key_fingerprint,
        };
        let kek = aead_key(key.secret()).map_err(|_| tampered())?;
        let mut buf = Zeroizing::new(self.wrapped_key);
        let plain = kek
            .open_in_place(
                Nonce::assume_unique_for_key(self.wrap_nonce),
                Aad::from(self.wrap_aad(self.key_fingerprint)),
                &mut buf[..],
            )
            .map_err(|_| tampered())?;
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        if plain.len() != KEY_LEN {
            return Err(tampered());
        }
        out.copy_from_slice(plain);
        Ok(out)
    }

    fn wrap(&mut self, key: &BackupKey, data_key: &[u8; KEY_LEN]) -> Result<(), BackupError> {
        let failed = || BackupError::MalformedHeader {
            what: "the backup header".into(),
            detail: "the data key could not be wrapped".into(),
        };
        let kek = aead_key(key.secret()).map_err(|_| failed())?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut buf = Zeroizing::new([0u8; KEY_LEN]);
        buf.copy_from_slice(data_key);
        let tag = kek
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.wrap_aad(key.fingerprint())),
                &mut buf[..],
            )
            .map_err(|_| failed())?;
        self.key_fingerprint = key.fingerprint();
        self.wrap_nonce = nonce;
        self.wrapped_key[..KEY_LEN].copy_from_slice(&buf[..]);
        self.wrapped_key[KEY_LEN..].copy_from_slice(tag.as_ref());
        Ok(())
    }

    fn wrap_aad(&self, fingerprint: BackupKeyFingerprint) -> Vec<u8> {
        let mut aad = Vec::with_capacity(WRAP_LABEL.len() + self.core.len() + FINGERPRINT_LEN);
        aad.extend_from_slice(WRAP_LABEL);
        aad.extend_from_slice(&self.core);
        aad.extend_from_slice(fingerprint.as_bytes());
        aad
    }

    fn cipher(&self, data_key: &[u8; KEY_LEN]) -> Result<ChunkCipher, BackupError> {
        let key = aead_key(data_key).map_err(|_| BackupError::MalformedHeader {
            what: "the backup header".into(),
            detail: "the data key is unusable".into(),
        })?;
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&self.core[32..32 + NONCE_PREFIX_LEN]);
        let mut header_hash = [0u8; 32];
        header_hash.copy_from_slice(digest::digest(&digest::SHA256, &self.core).as_ref());
        Ok(ChunkCipher {
            key,
            nonce_prefix,
            header_hash,
        })
    }
}

/// A chunk that did not authenticate (no detail, as an attacker could use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRejected;

impl ChunkCipher {
    /// Seals one chunk in place and appends its tag. `index` counts from 0; `last` marks the
    /// final chunk.
    ///
    /// # Errors
    /// [`BackupError::MalformedHeader`] past 2^32 chunks (4 PiB at 1 MiB chunks), where the
    /// nonce counter would wrap.
    pub fn seal(&self, index: u64, last: bool, buf: &mut Vec<u8>) -> Result<(), BackupError> {
        let too_long = || BackupError::MalformedHeader {
            what: "the backup".into(),
            detail: "more than 2^32 chunks: split the backup".into(),
        };
        let nonce = self.nonce(index, last).ok_or_else(too_long)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(self.aad(index, last)), &mut buf[..])
            .map_err(|_| too_long())?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens one sealed chunk (`sealed` = ciphertext || tag) into `out`, which must be exactly
    /// `sealed.len() - 16` bytes. `sealed` is left untouched, so a failed chunk can be tried at
    /// other positions to tell reordering from damage.
    ///
    /// # Errors
    /// [`ChunkRejected`] when the chunk does not authenticate as chunk `index` with flag `last`.
    pub fn open(
        &self,
        index: u64,
        last: bool,
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<(), ChunkRejected> {
        if sealed.len() < TAG_LEN || out.len() != sealed.len() - TAG_LEN {
            return Err(ChunkRejected);
        }
        let nonce = self.nonce(index, last).ok_or(ChunkRejected)?;
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        self.key
            .open_separate_gather(
                nonce,
                Aad::from(self.aad(index, last)),
                ciphertext,
                tag,
                out,
            )
            .map_err(|_| ChunkRejected)
    }

    fn nonce(&self, index: u64, last: bool) -> Option<Nonce> {
        let counter = u32::try_from(index).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
        nonce[NONCE_LEN - 1] = u8::from(last);
        Some(Nonce::assume_unique_for_key(nonce))
    }

    fn aad(&self, index: u64, last: bool) -> [u8; 41] {
        let mut aad = [0u8; 41];
        aad[..32].copy_from_slice(&self.header_hash);
        aad[32..40].copy_from_slice(&index.to_be_bytes());
        aad[40] = u8::from(last);
        aad
    }
}

fn aead_key(bytes: &[u8; KEY_LEN]) -> Result<LessSafeKey, aws_lc_rs::error::Unspecified> {
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes)?))
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(b)
}

fn u32_len(len: usize) -> u32 {
    // Callers bound `len` by MAX_METADATA_LEN first.
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Checks the magic and version, naming what the input looks like when it is something else.
fn check_magic(bytes: &[u8], what: &str) -> Result<(), BackupError> {
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] || bytes.len() < MAGIC.len() {
        let found = if bytes.is_empty() {
            "it is empty".to_owned()
        } else if bytes.starts_with(b"PGDMP") {
            "it is an unencrypted pg_dump custom-format archive".to_owned()
        } else if bytes.starts_with(b"age-encryption.org") {
            "it is an age-encrypted file".to_owned()
        } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            "it is a plain zstd file".to_owned()
        } else if bytes[..n] == MAGIC[..n] {
            format!("it is only {} bytes long", bytes.len())
        } else {
            "its first bytes are not the PGSEALBK magic".to_owned()
        };
        return Err(BackupError::NotABackup {
            what: what.into(),
            found,
        });
    }
    if bytes.len() > 8 && bytes[8] != FORMAT_VERSION {
        return Err(BackupError::UnsupportedVersion {
            what: what.into(),
            version: bytes[8],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(key: BackupKey) -> BackupKeyring {
        BackupKeyring::new(key, Vec::new())
    }

    #[test]
    fn header_round_trips_and_authenticates() {
        let key = BackupKey::generate();
        let meta = Metadata::now().with_database("app");
        let (header, cipher) = Header::create(
            &key,
            ObjectKind::LogicalDump,
            DEFAULT_CHUNK_SIZE,
            meta.clone(),
        )
        .expect("header");
        let bytes = header.encode();
        assert_eq!(
            Header::total_len(&bytes[..FIXED_LEN], "t").expect("len"),
            bytes.len()
        );
        let parsed = Header::decode(&bytes, "t").expect("decodes");
        assert_eq!(parsed.metadata(), &meta);
        let opened = parsed.open(&ring(key), "t").expect("opens");
        let mut sealed = b"hello".to_vec();
        cipher.seal(0, true, &mut sealed).expect("seal");
        let mut out = [0u8; 5];
        opened.open(0, true, &sealed, &mut out).expect("open");
        assert_eq!(&out, b"hello");
        assert_eq!(opened.open(0, false, &sealed, &mut out), Err(ChunkRejected));
        assert_eq!(opened.open(1, true, &sealed, &mut out), Err(ChunkRejected));
    }

    #[test]
    fn every_header_byte_is_authenticated() {
        let key = BackupKey::generate();
        let (header, _) = Header::create(
            &key,
            ObjectKind::WalFile,
            MIN_CHUNK_SIZE,
            Metadata::now().with_object_name("000000010000000000000001"),
        )
        .expect("header");
        let keyring = ring(key);
        let bytes = header.encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let ok = Header::total_len(&bad[..FIXED_LEN], "t")
                .ok()
                .filter(|&n| n == bad.len())
                .and_then(|_| Header::decode(&bad, "t").ok())
                .and_then(|h| h.open(&keyring, "t").ok())
                .is_some();
            assert!(!ok, "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn rewrap_keeps_chunks_valid() {
        let old = BackupKey::generate();
        let new = BackupKey::generate();
        let new_fp = new.fingerprint();
        let (mut header, cipher) = Header::create(
            &old,
            ObjectKind::LogicalDump,
            MIN_CHUNK_SIZE,
            Metadata::now(),
        )
        .expect("header");
        let mut sealed = vec![7u8; 100];
        cipher.seal(0, true, &mut sealed).expect("seal");
        header
            .rewrap(&BackupKeyring::new(old, Vec::new()), &new, "t")
            .expect("rewrap");
        assert_eq!(header.key_fingerprint(), new_fp);
        let parsed = Header::decode(&header.encode(), "t").expect("decode");
        let opened = parsed.open(&ring(new), "t").expect("new key opens");
        let mut out = vec![0u8; 100];
        opened
            .open(0, true, &sealed, &mut out)
            .expect("chunk still opens");
        assert_eq!(out, vec![7u8; 100]);
    }

    #[test]
    fn foreign_inputs_are_named() {
        for (input, expect) in [
            (&b""[..], "empty"),
            (&b"PGDMP\x01\x0e\x00"[..], "pg_dump"),
            (&b"age-encryption.org/v1\n"[..], "age"),
            (&b"\x28\xb5\x2f\xfd\x00\x00"[..], "zstd"),
            (&b"hello world, no magic"[..], "magic"),
            (&b"PGSEAL"[..], "bytes long"),
        ] {
            let err = Header::total_len(input, "f").expect_err("refused");
            assert!(err.to_string().contains(expect), "{err}");
        }
        let mut v2 = MAGIC.to_vec();
        v2.push(2);
        v2.resize(FIXED_LEN, 0);
        assert!(matches!(
            Header::total_len(&v2, "f"),
            Err(BackupError::UnsupportedVersion { version: 2, .. })
        ));
    }

    #[test]
    fn wrong_key_is_reported_by_fingerprint() {
        let key = BackupKey::generate();
        let other = BackupKey::generate();
        let (header, _) = Header::create(
            &key,
            ObjectKind::LogicalDump,
            MIN_CHUNK_SIZE,
            Metadata::now(),
        )
        .expect("header");
        let err = header.open(&ring(other), "f").expect_err("wrong key");
        let text = err.to_string();
        assert!(text.contains(&key.fingerprint().to_string()), "{text}");
        assert!(text.contains("PGSEAL_PREVIOUS_BACKUP_KEYS"), "{text}");
    }
}
