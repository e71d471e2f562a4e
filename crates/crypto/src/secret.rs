//! Key types: the master key, the master keyring, data keys and their identities.
//!
//! Every secret lives in a heap box that is wiped when dropped, so moving a key around never
//! leaves copies of it on the stack. No secret type implements `Display`; their `Debug` shows at
//! most the fingerprint. The one way to get a master key back out is
//! [`MasterKey::expose_base64`].

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine as _;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, Zeroizing};

use crate::error::KeyError;
use crate::fingerprint::{KeyFingerprint, FINGERPRINT_LEN};

/// Length in bytes of every key pgseal uses: master keys and data keys.
pub const KEY_LEN: usize = 32;

const FINGERPRINT_LABEL: &[u8] = b"pgseal master key fingerprint v1";

/// 32 secret bytes on the heap, wiped on drop.
#[derive(Clone)]
pub(crate) struct SecretBytes(Box<[u8; KEY_LEN]>);

impl SecretBytes {
    fn random() -> SecretBytes {
        let mut bytes = Box::new([0u8; KEY_LEN]);
        fill_random(&mut bytes[..]);
        SecretBytes(bytes)
    }

    fn from_slice(bytes: &[u8; KEY_LEN]) -> SecretBytes {
        let mut boxed = Box::new([0u8; KEY_LEN]);
        boxed.copy_from_slice(bytes);
        SecretBytes(boxed)
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&*other.0).into()
    }
}

impl Eq for SecretBytes {}

/// Fills `dest` from the operating system's CSPRNG through aws-lc.
pub(crate) fn fill_random(dest: &mut [u8]) {
    // aws-lc's RAND_bytes only fails if the kernel RNG is unavailable; nothing sound can be
    // done without randomness, and continuing would risk reusing keys or nonces.
    aws_lc_rs::rand::fill(dest).expect("the system random number generator failed");
}

/// The master key (key-encryption key): 32 bytes that wrap every data key.
///
/// Loaded from `PGSEAL_MASTER_KEY` (or a file) with [`MasterKey::from_base64`], never stored by
/// pgseal. Wiped from memory on drop; compared in constant time; `Debug` prints only the
/// fingerprint (`MasterKey(mk_…)`). Clones are independent copies, each wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    bytes: SecretBytes,
    fingerprint: KeyFingerprint,
}

impl MasterKey {
    /// Generates a fresh random master key from the system CSPRNG.
    #[must_use]
    pub fn generate() -> MasterKey {
        MasterKey::from_secret(SecretBytes::random())
    }

    /// Parses a master key from standard base64 with padding (44 characters).
    ///
    /// `var` names where the text came from (an environment variable or a file) and is used only
    /// in error messages; the text itself never appears in an error. Surrounding ASCII whitespace
    /// is ignored, since key files usually end with a newline.
    ///
    /// # Errors
    /// [`KeyError::Empty`], [`KeyError::NotBase64`], [`KeyError::WrongLength`] (not 32 bytes) or
    /// [`KeyError::AllZero`] (an all-zero placeholder).
    pub fn from_base64(var: &str, text: &str) -> Result<MasterKey, KeyError> {
        let trimmed = text.trim_ascii();
        if trimmed.is_empty() {
            return Err(KeyError::Empty { var: var.into() });
        }
        // The decoder pre-sizes its output, so the secret is never reallocated and left behind.
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(trimmed)
                .map_err(|_| KeyError::NotBase64 { var: var.into() })?,
        );
        let bytes: &[u8; KEY_LEN] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::WrongLength {
                    var: var.into(),
                    len: decoded.len(),
                })?;
        if bool::from(bytes.ct_eq(&[0u8; KEY_LEN])) {
            return Err(KeyError::AllZero { var: var.into() });
        }
        Ok(MasterKey::from_secret(SecretBytes::from_slice(bytes)))
    }

    /// The key as standard base64 with padding: the one explicit way to take the secret out
    /// (for `pgseal keygen`). The returned string is wiped on drop.
    #[must_use]
    pub fn expose_base64(&self) -> Zeroizing<String> {
        // Sized up front so encoding never reallocates and leaves a copy behind.
        let mut out = Zeroizing::new(String::with_capacity(4 * KEY_LEN.div_ceil(3)));
        base64::engine::general_purpose::STANDARD.encode_string(self.bytes.expose(), &mut out);
        out
    }

    /// The key's public name.
    #[must_use]
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    pub(crate) fn secret(&self) -> &[u8; KEY_LEN] {
        self.bytes.expose()
    }

    fn from_secret(bytes: SecretBytes) -> MasterKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, bytes.expose());
        let tag = hmac::sign(&key, FINGERPRINT_LABEL);
        let mut fp = [0u8; FINGERPRINT_LEN];
        fp.copy_from_slice(&tag.as_ref()[..FINGERPRINT_LEN]);
        MasterKey {
            bytes,
            fingerprint: KeyFingerprint::from_bytes(fp),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint)
    }
}

/// The current master key plus previous ones that may still have wrapped some data keys.
///
/// New wraps always use [`current`](MasterKeyring::current); unwrapping picks the key whose
/// fingerprint the wrapped key records, so a master rotation can proceed row by row.
#[derive(Clone)]
pub struct MasterKeyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl MasterKeyring {
    /// A ring with `current` for wrapping and `previous` for unwrapping only.
    #[must_use]
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> MasterKeyring {
        MasterKeyring { current, previous }
    }

    /// The key that wraps new data keys.
    #[must_use]
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Previous keys, kept to unwrap data keys not yet rewrapped.
    #[must_use]
    pub fn previous(&self) -> &[MasterKey] {
        &self.previous
    }

    /// Fingerprints of every key in the ring, current first.
    #[must_use]
    pub fn fingerprints(&self) -> Vec<KeyFingerprint> {
        self.keys().map(MasterKey::fingerprint).collect()
    }

    /// The key with fingerprint `fp`, if the ring holds it.
    #[must_use]
    pub fn find(&self, fp: KeyFingerprint) -> Option<&MasterKey> {
        self.keys().find(|k| k.fingerprint == fp)
    }

    fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

impl fmt::Debug for MasterKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeyring")
            .field("current", &self.current.fingerprint)
            .field(
                "previous",
                &self
                    .previous
                    .iter()
                    .map(MasterKey::fingerprint)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A 32-byte data key: a column's value key or blind-index key.
///
/// Stored only wrapped (see [`wrap_data_key`](crate::wrap_data_key)). Wiped on drop, compared in
/// constant time, and its `Debug` prints `DataKey(..)`. Clones are independent copies, each
/// wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey {
    bytes: SecretBytes,
}

impl DataKey {
    /// Generates a fresh random data key from the system CSPRNG.
    #[must_use]
    pub fn generate() -> DataKey {
        DataKey {
            bytes: SecretBytes::random(),
        }
    }

    pub(crate) fn from_array(bytes: &[u8; KEY_LEN]) -> DataKey {
        DataKey {
            bytes: SecretBytes::from_slice(bytes),
        }
    }

    pub(crate) fn secret(&self) -> &[u8; KEY_LEN] {
        self.bytes.expose()
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// What a data key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum KeyPurpose {
    /// Encrypts values (XAES-256-GCM).
    Value = 1,
    /// Computes blind indexes (HMAC-SHA256).
    Index = 2,
}

impl KeyPurpose {
    /// The byte stored in `pgseal.data_keys.purpose` and in the wrapping AAD.
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The purpose for a stored byte, or `None` if the byte names none.
    #[must_use]
    pub const fn from_u8(byte: u8) -> Option<KeyPurpose> {
        match byte {
            1 => Some(KeyPurpose::Value),
            2 => Some(KeyPurpose::Index),
            _ => None,
        }
    }
}

impl fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyPurpose::Value => "value",
            KeyPurpose::Index => "index",
        })
    }
}

/// Which row of `pgseal.data_keys` a data key belongs to. Bound into the wrapping AAD, so a
/// wrapped key copied to another row fails to unwrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataKeyId {
    /// Id of the column in `pgseal.columns`.
    pub column_id: u32,
    /// Value key or index key.
    pub purpose: KeyPurpose,
    /// Key version, starting at 1.
    pub version: u32,
}

impl fmt::Display for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "column {} {} key version {}",
            self.column_id, self.purpose, self.version
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    #[test]
    fn base64_round_trip_and_whitespace() {
        let k = MasterKey::from_base64("K", &format!("  {KEY_B64}\n")).unwrap();
        assert_eq!(k.expose_base64().as_str(), KEY_B64);
        assert_eq!(k.secret(), &[1u8; KEY_LEN]);
        let g = MasterKey::generate();
        let back = MasterKey::from_base64("K", &g.expose_base64()).unwrap();
        assert_eq!(g, back);
        assert_eq!(g.fingerprint(), back.fingerprint());
        assert_ne!(g, k);
    }

    #[test]
    fn from_base64_errors() {
        let var = "PGSEAL_MASTER_KEY";
        assert_eq!(
            MasterKey::from_base64(var, " \n\t"),
            Err(KeyError::Empty { var: var.into() })
        );
        // Unpadded, URL-safe and non-canonical forms are all rejected.
        for bad in [
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ-_",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF=",
            "not base64!",
        ] {
            assert_eq!(
                MasterKey::from_base64(var, bad),
                Err(KeyError::NotBase64 { var: var.into() }),
                "{bad}"
            );
        }
        assert_eq!(
            MasterKey::from_base64(var, "AAEC"),
            Err(KeyError::WrongLength {
                var: var.into(),
                len: 3
            })
        );
        assert_eq!(
            MasterKey::from_base64(var, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(KeyError::AllZero { var: var.into() })
        );
    }

    #[test]
    fn errors_do_not_echo_the_text() {
        let secretish = "c2VjcmV0c2VjcmV0c2VjcmV0";
        let err = MasterKey::from_base64("V", secretish).unwrap_err();
        assert!(!err.to_string().contains(secretish));
        assert!(!format!("{err:?}").contains(secretish));
    }

    #[test]
    fn fingerprint_matches_format_definition() {
        let k = MasterKey::from_base64("K", KEY_B64).unwrap();
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &[1u8; KEY_LEN]),
            b"pgseal master key fingerprint v1",
        );
        assert_eq!(&k.fingerprint().as_bytes()[..], &tag.as_ref()[..8]);
        assert_eq!(format!("{k:?}"), format!("MasterKey({})", k.fingerprint()));
    }

    #[test]
    fn keyring_lookup() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        let c = MasterKey::generate();
        let ring = MasterKeyring::new(a.clone(), vec![b.clone()]);
        assert_eq!(ring.fingerprints(), vec![a.fingerprint(), b.fingerprint()]);
        assert_eq!(ring.find(b.fingerprint()), Some(&b));
        assert_eq!(ring.find(a.fingerprint()), Some(&a));
        assert!(ring.find(c.fingerprint()).is_none());
        assert_eq!(ring.current(), &a);
    }

    #[test]
    fn purpose_bytes() {
        for p in [KeyPurpose::Value, KeyPurpose::Index] {
            assert_eq!(KeyPurpose::from_u8(p.as_u8()), Some(p));
        }
        assert_eq!(KeyPurpose::Value.as_u8(), 1);
        assert_eq!(KeyPurpose::Index.as_u8(), 2);
        assert_eq!(KeyPurpose::from_u8(0), None);
        assert_eq!(KeyPurpose::from_u8(3), None);
    }
}
