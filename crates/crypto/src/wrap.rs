//! Envelope encryption of data keys under the master key (docs/format.md section 1.1).
//!
//! ```text
//! 0     1  magic 0xB6
//! 1     1  wrap format version 0x01
//! 2     8  fingerprint of the wrapping master key
//! 10   12  AES-256-GCM nonce (random)
//! 22   32  encrypted data key
//! 54   16  GCM tag
//! AAD = bytes 0..22 ‖ "pgseal data key v1" ‖ column_id (u32) ‖ purpose (u8) ‖ version (u32)
//! ```

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::CryptoError;
use crate::fingerprint::{KeyFingerprint, FINGERPRINT_LEN};
use crate::secret::{fill_random, DataKey, DataKeyId, MasterKey, MasterKeyring, KEY_LEN};

/// Length of a wrapped data key.
pub const WRAPPED_KEY_LEN: usize = 70;

const MAGIC: u8 = 0xB6;
const VERSION: u8 = 0x01;
const NONCE_LEN: usize = aead::NONCE_LEN;
const FP_AT: usize = 2;
const NONCE_AT: usize = FP_AT + FINGERPRINT_LEN;
const BODY_AT: usize = NONCE_AT + NONCE_LEN;
const TAG_AT: usize = BODY_AT + KEY_LEN;
const LABEL: &[u8] = b"pgseal data key v1";
const AAD_LEN: usize = BODY_AT + LABEL.len() + 4 + 1 + 4;

const _: () = assert!(TAG_AT + aead::MAX_TAG_LEN == WRAPPED_KEY_LEN);

/// Wraps `key` under `master` for the row `id`: 70 bytes for `pgseal.data_keys.wrapped_key`.
#[must_use]
pub fn wrap_data_key(master: &MasterKey, id: DataKeyId, key: &DataKey) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    wrap_with_nonce(master, id, key, nonce)
}

pub(crate) fn wrap_with_nonce(
    master: &MasterKey,
    id: DataKeyId,
    key: &DataKey,
    nonce: [u8; NONCE_LEN],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
    out.push(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(master.fingerprint().as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(key.secret());
    let aad = aad(&out[..BODY_AT], id);
    let (_, body) = out.split_at_mut(BODY_AT);
    let tag = aes_gcm_key(master)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad), body)
        // Fails only for messages longer than GCM's 64 GiB limit; this one is 32 bytes.
        .expect("AES-256-GCM seal of a 32-byte key cannot fail");
    out.extend_from_slice(tag.as_ref());
    out
}

/// Unwraps a data key stored for row `id`, with whichever master key in `ring` wrapped it.
///
/// # Errors
/// [`CryptoError::MalformedWrappedKey`] if `wrapped` is not in the format;
/// [`CryptoError::UnknownMasterKey`] if no key in the ring has the recorded fingerprint;
/// [`CryptoError::UnwrapFailed`] if authentication fails (the key belongs to another row, or the
/// bytes were altered).
pub fn unwrap_data_key(
    ring: &MasterKeyring,
    id: DataKeyId,
    wrapped: &[u8],
) -> Result<DataKey, CryptoError> {
    let fingerprint = wrapped_key_fingerprint(wrapped)?;
    let master = ring
        .find(fingerprint)
        .ok_or(CryptoError::UnknownMasterKey { fingerprint })?;
    let nonce = Nonce::try_assume_unique_for_key(&wrapped[NONCE_AT..BODY_AT])
        .map_err(|_| CryptoError::MalformedWrappedKey)?;
    let aad = aad(&wrapped[..BODY_AT], id);
    let mut plain = Zeroizing::new([0u8; KEY_LEN]);
    aes_gcm_key(master)
        .open_separate_gather(
            nonce,
            Aad::from(&aad),
            &wrapped[BODY_AT..TAG_AT],
            &wrapped[TAG_AT..],
            &mut plain[..],
        )
        .map_err(|_| CryptoError::UnwrapFailed { id })?;
    Ok(DataKey::from_array(&plain))
}

/// The fingerprint of the master key that wrapped `wrapped`, without unwrapping it (to find
/// rows that still need a rewrap after a master key rotation).
///
/// # Errors
/// [`CryptoError::MalformedWrappedKey`] if `wrapped` is not in the format.
pub fn wrapped_key_fingerprint(wrapped: &[u8]) -> Result<KeyFingerprint, CryptoError> {
    if wrapped.len() != WRAPPED_KEY_LEN || wrapped[0] != MAGIC || wrapped[1] != VERSION {
        return Err(CryptoError::MalformedWrappedKey);
    }
    let mut fp = [0u8; FINGERPRINT_LEN];
    fp.copy_from_slice(&wrapped[FP_AT..NONCE_AT]);
    Ok(KeyFingerprint::from_bytes(fp))
}

fn aad(prefix: &[u8], id: DataKeyId) -> [u8; AAD_LEN] {
    let mut aad = [0u8; AAD_LEN];
    let (head, rest) = aad.split_at_mut(BODY_AT);
    head.copy_from_slice(prefix);
    let (label, rest) = rest.split_at_mut(LABEL.len());
    label.copy_from_slice(LABEL);
    rest[..4].copy_from_slice(&id.column_id.to_be_bytes());
    rest[4] = id.purpose.as_u8();
    rest[5..].copy_from_slice(&id.version.to_be_bytes());
    aad
}

fn aes_gcm_key(master: &MasterKey) -> LessSafeKey {
    let unbound = UnboundKey::new(&aead::AES_256_GCM, master.secret())
        .expect("a 32-byte key is always a valid AES-256 key");
    LessSafeKey::new(unbound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::KeyPurpose;

    fn id() -> DataKeyId {
        DataKeyId {
            column_id: 7,
            purpose: KeyPurpose::Value,
            version: 3,
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let master = MasterKey::generate();
        let key = DataKey::generate();
        let wrapped = wrap_data_key(&master, id(), &key);
        assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);
        assert_eq!(&wrapped[..2], &[0xB6, 0x01]);
        assert_eq!(&wrapped[2..10], master.fingerprint().as_bytes());
        assert_ne!(&wrapped[22..54], key.secret());
        assert_eq!(wrapped_key_fingerprint(&wrapped), Ok(master.fingerprint()));
        let ring = MasterKeyring::new(master, vec![]);
        assert_eq!(unwrap_data_key(&ring, id(), &wrapped), Ok(key));
    }

    #[test]
    fn previous_key_unwraps_unknown_key_is_named() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let key = DataKey::generate();
        let wrapped = wrap_data_key(&old, id(), &key);
        let ring = MasterKeyring::new(new.clone(), vec![old.clone()]);
        assert_eq!(unwrap_data_key(&ring, id(), &wrapped), Ok(key));
        let without_old = MasterKeyring::new(new, vec![]);
        let err = unwrap_data_key(&without_old, id(), &wrapped).unwrap_err();
        assert_eq!(
            err,
            CryptoError::UnknownMasterKey {
                fingerprint: old.fingerprint()
            }
        );
        assert!(err.to_string().contains(&old.fingerprint().to_string()));
    }

    #[test]
    fn other_identity_fails() {
        let master = MasterKey::generate();
        let wrapped = wrap_data_key(&master, id(), &DataKey::generate());
        let ring = MasterKeyring::new(master, vec![]);
        for other in [
            DataKeyId {
                column_id: 8,
                ..id()
            },
            DataKeyId {
                purpose: KeyPurpose::Index,
                ..id()
            },
            DataKeyId { version: 4, ..id() },
        ] {
            assert_eq!(
                unwrap_data_key(&ring, other, &wrapped),
                Err(CryptoError::UnwrapFailed { id: other })
            );
        }
    }

    #[test]
    fn every_bit_flip_and_truncation_fails() {
        let master = MasterKey::generate();
        let wrapped = wrap_data_key(&master, id(), &DataKey::generate());
        let ring = MasterKeyring::new(master, vec![]);
        for i in 0..wrapped.len() * 8 {
            let mut bad = wrapped.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(unwrap_data_key(&ring, id(), &bad).is_err(), "bit {i}");
        }
        for len in 0..wrapped.len() {
            assert_eq!(
                unwrap_data_key(&ring, id(), &wrapped[..len]),
                Err(CryptoError::MalformedWrappedKey)
            );
        }
        let mut longer = wrapped.clone();
        longer.push(0);
        assert_eq!(
            unwrap_data_key(&ring, id(), &longer),
            Err(CryptoError::MalformedWrappedKey)
        );
    }
}
