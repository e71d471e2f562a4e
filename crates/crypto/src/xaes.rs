//! XAES-256-GCM (C2SP, <https://c2sp.org/XAES-256-GCM>): AES-256-GCM with a 192-bit nonce.
//!
//! For key `K` and nonce `N` (24 bytes):
//!
//! ```text
//! L  = AES-256_K(0^128)
//! K1 = L << 1, xor 0x87 into the last byte if the top bit of L was set
//! M1 = 0x00 0x01 'X' 0x00 ‖ N[0..12]      M2 = 0x00 0x02 'X' 0x00 ‖ N[0..12]
//! Kx = AES-256_K(M1 ⊕ K1) ‖ AES-256_K(M2 ⊕ K1)
//! ciphertext = AES-256-GCM(key = Kx, nonce = N[12..24], plaintext, aad)
//! ```
//!
//! Everything that depends on `K` alone (the AES key schedule and `K1`) is computed once in
//! [`XaesKey::new`]; each message costs two AES blocks and one AES-256-GCM key setup.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{EncryptingKey, UnboundCipherKey, AES_256};
use aws_lc_rs::error::Unspecified;
use zeroize::Zeroizing;

use crate::secret::KEY_LEN;

/// XAES-256-GCM nonce length.
pub(crate) const XAES_NONCE_LEN: usize = 24;
/// GCM tag length.
pub(crate) const TAG_LEN: usize = 16;

const BLOCK: usize = 16;
const DERIVE_NONCE_LEN: usize = 12;

/// A prepared XAES-256-GCM key.
pub(crate) struct XaesKey {
    ecb: EncryptingKey,
    k1: Zeroizing<[u8; BLOCK]>,
}

impl XaesKey {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> XaesKey {
        let ecb = EncryptingKey::ecb(
            UnboundCipherKey::new(&AES_256, key).expect("a 32-byte key is a valid AES-256 key"),
        )
        .expect("AES-256 supports ECB mode");
        let mut l = Zeroizing::new([0u8; BLOCK]);
        ecb.encrypt(&mut l[..])
            .expect("ECB encryption of one whole block cannot fail");
        let mut k1 = Zeroizing::new([0u8; BLOCK]);
        let mut carry = 0u8;
        for i in (0..BLOCK).rev() {
            k1[i] = (l[i] << 1) | carry;
            carry = l[i] >> 7;
        }
        // Constant-time conditional xor: `carry` is the top bit of L.
        k1[BLOCK - 1] ^= 0x87 & 0u8.wrapping_sub(carry);
        XaesKey { ecb, k1 }
    }

    /// Derives the per-message AES-256-GCM key from the first 12 nonce bytes.
    fn derive(&self, nonce: &[u8; XAES_NONCE_LEN]) -> LessSafeKey {
        let mut kx = Zeroizing::new([0u8; 2 * BLOCK]);
        for (half, counter) in kx.chunks_exact_mut(BLOCK).zip([1u8, 2]) {
            half[..4].copy_from_slice(&[0x00, counter, b'X', 0x00]);
            half[4..].copy_from_slice(&nonce[..DERIVE_NONCE_LEN]);
            for (b, k) in half.iter_mut().zip(self.k1.iter()) {
                *b ^= k;
            }
        }
        self.ecb
            .encrypt(&mut kx[..])
            .expect("ECB encryption of two whole blocks cannot fail");
        let unbound = UnboundKey::new(&aead::AES_256_GCM, &kx[..])
            .expect("a 32-byte key is a valid AES-256-GCM key");
        LessSafeKey::new(unbound)
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; XAES_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<aead::Tag, Unspecified> {
        self.derive(nonce)
            .seal_in_place_separate_tag(gcm_nonce(nonce), Aad::from(aad), in_out)
    }

    /// Authenticates `ciphertext` and `tag` and decrypts into `out` (same length as
    /// `ciphertext`). On error `out` holds garbage and must be discarded.
    pub(crate) fn open_into(
        &self,
        nonce: &[u8; XAES_NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), Unspecified> {
        self.derive(nonce).open_separate_gather(
            gcm_nonce(nonce),
            Aad::from(aad),
            ciphertext,
            tag,
            out,
        )
    }
}

fn gcm_nonce(nonce: &[u8; XAES_NONCE_LEN]) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n.copy_from_slice(&nonce[DERIVE_NONCE_LEN..]);
    Nonce::assume_unique_for_key(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: u8, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let k = XaesKey::new(&[key; KEY_LEN]);
        let nonce: &[u8; 24] = b"ABCDEFGHIJKLMNOPQRSTUVWX";
        let mut buf = plaintext.to_vec();
        let tag = k.seal_in_place(nonce, aad, &mut buf).unwrap();
        buf.extend_from_slice(tag.as_ref());
        let mut back = vec![0u8; plaintext.len()];
        k.open_into(
            nonce,
            aad,
            &buf[..plaintext.len()],
            &buf[plaintext.len()..],
            &mut back,
        )
        .unwrap();
        assert_eq!(back, plaintext);
        buf
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The two test vectors published in the C2SP specification.
    #[test]
    fn c2sp_vectors() {
        assert_eq!(
            hex(&seal(0x01, b"", b"XAES-256-GCM")),
            "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271"
        );
        assert_eq!(
            hex(&seal(0x03, b"c2sp.org/XAES-256-GCM", b"XAES-256-GCM")),
            "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d"
        );
    }

    #[test]
    fn wrong_aad_or_nonce_fails() {
        let k = XaesKey::new(&[7; KEY_LEN]);
        let nonce = [9u8; 24];
        let mut buf = b"hello".to_vec();
        let tag = k.seal_in_place(&nonce, b"aad", &mut buf).unwrap();
        let mut out = [0u8; 5];
        assert!(k
            .open_into(&nonce, b"aaD", &buf, tag.as_ref(), &mut out)
            .is_err());
        let mut other = nonce;
        other[0] ^= 1; // first half of the nonce: a different derived key
        assert!(k
            .open_into(&other, b"aad", &buf, tag.as_ref(), &mut out)
            .is_err());
        let mut other = nonce;
        other[23] ^= 1; // second half: a different GCM nonce
        assert!(k
            .open_into(&other, b"aad", &buf, tag.as_ref(), &mut out)
            .is_err());
        k.open_into(&nonce, b"aad", &buf, tag.as_ref(), &mut out)
            .unwrap();
        assert_eq!(&out, b"hello");
    }
}
