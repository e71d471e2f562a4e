//! Blind indexes for equality search (docs/format.md section 2.4).
//!
//! `index = HMAC-SHA256(index key, "pgseal blind index v1" ‖ type tag ‖ normalised input)`,
//! truncated to `n` bytes (4..=32).

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::secret::DataKey;

const LABEL: &[u8] = b"pgseal blind index v1";

/// How a value is normalised before its blind index is computed, so that values the column
/// treats as equal get equal indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// The bytes as they are.
    None,
    /// Unicode lower case of the text with surrounding whitespace trimmed (`pgseal.email`).
    /// Input that is not UTF-8 is trimmed of ASCII whitespace and lower-cased in ASCII only.
    Lowercase,
    /// Only the ASCII digits, in order (`pgseal.phone`).
    Digits,
}

/// Computes a blind index of `input` under `key`, truncated to `length` bytes.
///
/// `length` is clamped to 1..=32 (the HMAC output length); columns validate it to 4..=32
/// when their [`ColumnCipher`](crate::ColumnCipher) is built. Prefer
/// [`ColumnCipher::blind_indexes`](crate::ColumnCipher::blind_indexes), which reuses a prepared
/// HMAC key.
#[must_use]
pub fn blind_index(
    key: &DataKey,
    type_tag: u8,
    normalization: Normalization,
    input: &[u8],
    length: u8,
) -> Vec<u8> {
    let key = IndexKey::new(key);
    key.compute(type_tag, normalization, input, length)
}

/// A prepared HMAC-SHA256 key for blind indexes.
pub(crate) struct IndexKey(hmac::Key);

impl IndexKey {
    pub(crate) fn new(key: &DataKey) -> IndexKey {
        IndexKey(hmac::Key::new(hmac::HMAC_SHA256, key.secret()))
    }

    pub(crate) fn compute(
        &self,
        type_tag: u8,
        normalization: Normalization,
        input: &[u8],
        length: u8,
    ) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(LABEL);
        ctx.update(&[type_tag]);
        match normalization {
            Normalization::None => ctx.update(input),
            Normalization::Lowercase => ctx.update(&lowercase(input)),
            Normalization::Digits => {
                // Digit runs are fed as they come, so no copy of the value is made.
                for run in input
                    .split(|b| !b.is_ascii_digit())
                    .filter(|r| !r.is_empty())
                {
                    ctx.update(run);
                }
            }
        }
        let tag = ctx.sign();
        let n = usize::from(length.clamp(1, 32));
        tag.as_ref()[..n].to_vec()
    }
}

/// The lower-cased, trimmed form of an e-mail-like value; wiped after use because it is a copy
/// of the plaintext.
fn lowercase(input: &[u8]) -> Zeroizing<Vec<u8>> {
    match std::str::from_utf8(input) {
        Ok(text) => Zeroizing::new(text.trim().to_lowercase().into_bytes()),
        Err(_) => Zeroizing::new(input.trim_ascii().to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_definition() {
        let key = DataKey::from_array(&[5; 32]);
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &[5; 32]),
            b"pgseal blind index v1\x08hello",
        );
        assert_eq!(
            blind_index(&key, 8, Normalization::None, b"hello", 32),
            expected.as_ref()
        );
        assert_eq!(
            blind_index(&key, 8, Normalization::None, b"hello", 16),
            &expected.as_ref()[..16]
        );
    }

    #[test]
    fn normalisations() {
        let key = DataKey::from_array(&[6; 32]);
        let bi = |n, s: &str| blind_index(&key, 8, n, s.as_bytes(), 16);
        assert_eq!(
            bi(Normalization::Lowercase, "Alice@Example.COM "),
            bi(Normalization::Lowercase, "alice@example.com")
        );
        assert_eq!(
            bi(Normalization::Lowercase, "ÉLODIE@exemple.fr"),
            bi(Normalization::None, "élodie@exemple.fr")
        );
        assert_ne!(
            bi(Normalization::None, "Alice@Example.COM"),
            bi(Normalization::None, "alice@example.com")
        );
        assert_eq!(
            bi(Normalization::Digits, "+44 (0)20 7946-0018"),
            bi(Normalization::Digits, "440207946 0018")
        );
        assert_eq!(
            bi(Normalization::Digits, "440207946 0018"),
            bi(Normalization::None, "4402079460018")
        );
        assert_ne!(
            bi(Normalization::Digits, "+44 20 7946 0018"),
            bi(Normalization::Digits, "+44 20 7946 0019")
        );
    }

    #[test]
    fn type_tag_and_key_separate_indexes() {
        let a = DataKey::from_array(&[1; 32]);
        let b = DataKey::from_array(&[2; 32]);
        let n = Normalization::None;
        assert_ne!(
            blind_index(&a, 8, n, b"x", 16),
            blind_index(&a, 9, n, b"x", 16)
        );
        assert_ne!(
            blind_index(&a, 8, n, b"x", 16),
            blind_index(&b, 8, n, b"x", 16)
        );
    }

    #[test]
    fn non_utf8_lowercase_does_not_panic() {
        let key = DataKey::from_array(&[3; 32]);
        let a = blind_index(&key, 10, Normalization::Lowercase, b" AB\xff ", 8);
        let b = blind_index(&key, 10, Normalization::Lowercase, b"ab\xff", 8);
        assert_eq!(a, b);
        assert_eq!(a.len(), 8);
    }
}
