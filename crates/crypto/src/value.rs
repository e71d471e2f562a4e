//! Sealing and opening column values (docs/format.md section 2).

use std::fmt;

use zeroize::Zeroize as _;

use crate::blind_index::{IndexKey, Normalization};
use crate::error::CryptoError;
use crate::header::{self, parse_ciphertext, MAX_INDEX_LEN, MIN_INDEX_LEN};
use crate::secret::{fill_random, DataKey, KeyPurpose};
use crate::xaes::{XaesKey, TAG_LEN, XAES_NONCE_LEN};

/// The lifecycle state of one key version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Encrypts new values (exactly one per column and purpose) and decrypts.
    Active,
    /// Decrypts (and, for index keys, is searched) but never encrypts: a key being introduced or
    /// phased out.
    DecryptOnly,
    /// Neither encrypts nor decrypts. Values still under it are reported as
    /// [`CryptoError::RetiredKey`].
    Retired,
}

/// The keys of one column, as unwrapped from `pgseal.data_keys`: input to [`ColumnCipher::new`].
pub struct ColumnKeys {
    /// Id of the column in `pgseal.columns`.
    pub column_id: u32,
    /// Logical type tag (docs/format.md 2.1).
    pub type_tag: u8,
    /// every version of the value key known for this column, with its state; exactly one Active
    pub value_keys: Vec<(u32, KeyState, DataKey)>,
    /// Some(..) for searchable columns
    pub index: Option<IndexKeys>,
}

impl fmt::Debug for ColumnKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColumnKeys")
            .field("column_id", &self.column_id)
            .field("type_tag", &self.type_tag)
            .field("value_keys", &self.value_keys)
            .field("index", &self.index)
            .finish()
    }
}

/// The blind-index keys and settings of a searchable column.
pub struct IndexKeys {
    /// Every version of the index key, with its state; exactly one Active.
    pub keys: Vec<(u16, KeyState, DataKey)>,
    /// Index length in bytes, 4..=32.
    pub length: u8,
    /// How values are normalised before indexing.
    pub normalization: Normalization,
}

impl fmt::Debug for IndexKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexKeys")
            .field("keys", &self.keys)
            .field("length", &self.length)
            .field("normalization", &self.normalization)
            .finish()
    }
}

struct ValueKey {
    version: u32,
    state: KeyState,
    /// `None` for retired keys: their material is dropped at construction.
    key: Option<XaesKey>,
}

struct IndexSet {
    /// Non-retired keys, newest version first.
    keys: Vec<(u16, IndexKey)>,
    active: u16,
    length: u8,
    normalization: Normalization,
}

/// Everything needed to seal and open one column's values.
///
/// Built once per column and key-set change, then used for many values: AES key schedules and
/// HMAC keys are prepared in [`ColumnCipher::new`]. `Send + Sync`; share it behind an `Arc`.
pub struct ColumnCipher {
    column_id: u32,
    type_tag: u8,
    active: usize,
    value_keys: Vec<ValueKey>,
    index: Option<IndexSet>,
}

impl fmt::Debug for ColumnCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColumnCipher")
            .field("column_id", &self.column_id)
            .field("type_tag", &self.type_tag)
            .field("active_version", &self.active_version())
            .field("searchable", &self.is_searchable())
            .finish_non_exhaustive()
    }
}

impl ColumnCipher {
    /// Prepares a column's keys.
    ///
    /// # Errors
    /// [`CryptoError::NoActiveKey`] / [`CryptoError::MultipleActiveKeys`] unless exactly one
    /// value key is Active (likewise [`CryptoError::NoActiveIndexKey`] /
    /// [`CryptoError::MultipleActiveIndexKeys`] for index keys);
    /// [`CryptoError::ZeroKeyVersion`] or [`CryptoError::DuplicateKeyVersion`] for a bad key
    /// list; [`CryptoError::InvalidIndexLength`] for an index length outside 4..=32.
    pub fn new(keys: ColumnKeys) -> Result<ColumnCipher, CryptoError> {
        let ColumnKeys {
            column_id,
            type_tag,
            value_keys,
            index,
        } = keys;
        let versions: Vec<(u32, KeyState)> = value_keys.iter().map(|(v, s, _)| (*v, *s)).collect();
        let active_version = check_key_set(column_id, KeyPurpose::Value, &versions)?
            .ok_or(CryptoError::NoActiveKey { column_id })?;

        let value_keys: Vec<ValueKey> = value_keys
            .into_iter()
            .map(|(version, state, key)| ValueKey {
                version,
                state,
                key: (state != KeyState::Retired).then(|| XaesKey::new(key.secret())),
            })
            .collect();
        let active = value_keys
            .iter()
            .position(|k| k.version == active_version)
            .expect("the active version was found in this list");

        let index = index.map(|ix| build_index(column_id, ix)).transpose()?;
        Ok(ColumnCipher {
            column_id,
            type_tag,
            active,
            value_keys,
            index,
        })
    }

    /// The column's id.
    #[must_use]
    pub fn column_id(&self) -> u32 {
        self.column_id
    }

    /// The column's logical type tag.
    #[must_use]
    pub fn type_tag(&self) -> u8 {
        self.type_tag
    }

    /// The version of the value key that seals new values.
    #[must_use]
    pub fn active_version(&self) -> u32 {
        self.value_keys[self.active].version
    }

    /// Whether values carry a blind index.
    #[must_use]
    pub fn is_searchable(&self) -> bool {
        self.index.is_some()
    }

    /// Encrypts one value under the Active value key, with a blind index under the Active index
    /// key when the column is searchable.
    ///
    /// `plaintext` is the canonical encoding (docs/format.md 2.3). `index_input` is the bytes the
    /// blind index is computed over before normalisation: normally the plaintext itself; numeric
    /// passes its form without trailing fractional zeros. Ignored for non-searchable columns.
    ///
    /// # Panics
    /// Only if the plaintext exceeds AES-GCM's limit of 64 GiB per message (PostgreSQL values are
    /// at most 1 GiB) or the system random number generator fails.
    #[must_use]
    pub fn seal(&self, plaintext: &[u8], index_input: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; XAES_NONCE_LEN];
        fill_random(&mut nonce);
        self.seal_with_nonce(plaintext, index_input, &nonce)
    }

    pub(crate) fn seal_with_nonce(
        &self,
        plaintext: &[u8],
        index_input: &[u8],
        nonce: &[u8; XAES_NONCE_LEN],
    ) -> Vec<u8> {
        let key = &self.value_keys[self.active];
        let blind = self.index.as_ref().map(|ix| {
            let active = ix
                .keys
                .iter()
                .find(|(v, _)| *v == ix.active)
                .map(|(_, k)| k)
                .expect("the active index key is never dropped");
            (
                ix.active,
                active.compute(self.type_tag, ix.normalization, index_input, ix.length),
            )
        });
        let header_len = header::header_len(blind.as_ref().map(|(_, b)| b.len() as u8));
        // One allocation: header, then the plaintext encrypted in place, then the tag.
        let mut out = Vec::with_capacity(header_len + plaintext.len() + TAG_LEN);
        header::write_header(
            &mut out,
            self.type_tag,
            self.column_id,
            key.version,
            nonce,
            blind.as_ref().map(|(v, b)| (*v, b.as_slice())),
        );
        out.extend_from_slice(plaintext);
        let (aad, body) = out.split_at_mut(header_len);
        let tag = key
            .key
            .as_ref()
            .expect("the active key is never retired")
            .seal_in_place(nonce, aad, body)
            .expect("plaintext within AES-GCM's 64 GiB message limit");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Authenticates and decrypts one value of this column.
    ///
    /// Checks, in order: the header format ([`CryptoError::Format`]); the type tag
    /// ([`CryptoError::WrongType`]); the column ([`CryptoError::WrongColumn`]); that the key
    /// version is known ([`CryptoError::UnknownKeyVersion`]) and not retired
    /// ([`CryptoError::RetiredKey`]); then authentication ([`CryptoError::Tampered`], with no
    /// further detail). A blind index in the header is authenticated but not otherwise checked,
    /// so values written before a column became searchable (or after) still open.
    ///
    /// The plaintext is wiped (in one pass) when the returned [`Plaintext`] is dropped.
    ///
    /// # Errors
    /// As listed above.
    pub fn open(&self, ciphertext: &[u8]) -> Result<Plaintext, CryptoError> {
        let mut plain = Plaintext(Vec::new());
        self.open_into(ciphertext, |len| {
            plain.0 = vec![0u8; len];
            &mut plain.0[..]
        })?;
        Ok(plain)
    }

    /// Like [`open`](Self::open), but lends the plaintext to `f` and wipes it as soon as `f`
    /// returns, so the caller can decode it straight into an output buffer without holding a
    /// copy.
    ///
    /// # Errors
    /// As [`open`](Self::open); `f` is called only on success.
    pub fn open_with<R>(
        &self,
        ciphertext: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CryptoError> {
        // A stack buffer for small values was measured slower (≈ +100 ns at 64 B) than the
        // zero-initialised allocation, which the allocator serves from its free lists.
        let plain = self.open(ciphertext)?;
        Ok(f(&plain))
    }

    /// Decrypts into the buffer `buffer(len)` provides, allocated only once the header checks
    /// pass and zero-initialised by the allocator (`vec![0; n]` is a calloc). On error the
    /// buffer may hold garbage, which the caller's wrapper wipes.
    fn open_into<'b>(
        &self,
        ciphertext: &[u8],
        buffer: impl FnOnce(usize) -> &'b mut [u8],
    ) -> Result<(), CryptoError> {
        let h = parse_ciphertext(ciphertext)?;
        if h.type_tag != self.type_tag {
            return Err(CryptoError::WrongType {
                expected: self.type_tag,
                found: h.type_tag,
            });
        }
        if h.column_id != self.column_id {
            return Err(CryptoError::WrongColumn {
                expected: self.column_id,
                found: h.column_id,
            });
        }
        let entry = self
            .value_keys
            .iter()
            .find(|k| k.version == h.key_version)
            .ok_or(CryptoError::UnknownKeyVersion {
                column_id: self.column_id,
                version: h.key_version,
            })?;
        let key = entry.key.as_ref().ok_or(CryptoError::RetiredKey {
            column_id: self.column_id,
            version: h.key_version,
        })?;
        let (aad, rest) = ciphertext.split_at(h.header_len);
        // parse_ciphertext guarantees room for the tag.
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        key.open_into(h.nonce, aad, body, tag, buffer(body.len()))
            .map_err(|_| CryptoError::Tampered)
    }

    /// Blind indexes of a search term under every non-retired index key version, newest first,
    /// so that a lookup finds rows written under any of them. Empty for a non-searchable column.
    #[must_use]
    pub fn blind_indexes(&self, index_input: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let Some(ix) = &self.index else {
            return Vec::new();
        };
        ix.keys
            .iter()
            .map(|(version, key)| {
                (
                    *version,
                    key.compute(self.type_tag, ix.normalization, index_input, ix.length),
                )
            })
            .collect()
    }

    /// The state of value key `version`, if the column has it.
    #[must_use]
    pub fn key_state(&self, version: u32) -> Option<KeyState> {
        self.value_keys
            .iter()
            .find(|k| k.version == version)
            .map(|k| k.state)
    }
}

/// A decrypted value. Its bytes are wiped in one pass when it is dropped (a `Zeroizing<Vec<u8>>`
/// wipes one volatile byte at a time, which costs more than decrypting a large value); `Debug`
/// shows only its length.
#[derive(PartialEq, Eq)]
pub struct Plaintext(Vec<u8>);

impl std::ops::Deref for Plaintext {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Plaintext {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plaintext({} bytes)", self.0.len())
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        // Allocated once at its final length: no spare capacity, never reallocated, so wiping
        // the slice wipes every byte it ever held.
        self.0.as_mut_slice().zeroize();
    }
}

fn build_index(column_id: u32, ix: IndexKeys) -> Result<IndexSet, CryptoError> {
    if !(MIN_INDEX_LEN..=MAX_INDEX_LEN).contains(&ix.length) {
        return Err(CryptoError::InvalidIndexLength { length: ix.length });
    }
    let versions: Vec<(u32, KeyState)> = ix
        .keys
        .iter()
        .map(|(v, s, _)| (u32::from(*v), *s))
        .collect();
    let active = check_key_set(column_id, KeyPurpose::Index, &versions)?
        .ok_or(CryptoError::NoActiveIndexKey { column_id })?;
    let active = u16::try_from(active).expect("index versions come from u16");
    let mut keys: Vec<(u16, IndexKey)> = ix
        .keys
        .into_iter()
        .filter(|(_, state, _)| *state != KeyState::Retired)
        .map(|(version, _, key)| (version, IndexKey::new(&key)))
        .collect();
    keys.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    Ok(IndexSet {
        keys,
        active,
        length: ix.length,
        normalization: ix.normalization,
    })
}

/// Checks versions are nonzero and distinct and at most one is Active; returns the Active one.
fn check_key_set(
    column_id: u32,
    purpose: KeyPurpose,
    versions: &[(u32, KeyState)],
) -> Result<Option<u32>, CryptoError> {
    let mut active = None;
    for (i, &(version, state)) in versions.iter().enumerate() {
        if version == 0 {
            return Err(CryptoError::ZeroKeyVersion { column_id, purpose });
        }
        if versions[..i].iter().any(|(v, _)| *v == version) {
            return Err(CryptoError::DuplicateKeyVersion {
                column_id,
                purpose,
                version,
            });
        }
        if state == KeyState::Active {
            if active.is_some() {
                return Err(match purpose {
                    KeyPurpose::Value => CryptoError::MultipleActiveKeys { column_id },
                    KeyPurpose::Index => CryptoError::MultipleActiveIndexKeys { column_id },
                });
            }
            active = Some(version);
        }
    }
    Ok(active)
}
