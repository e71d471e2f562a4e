//! Property tests: round trips, tamper detection, truncation, parser robustness, blind index
//! determinism.

use pgseal_crypto::{
    parse_ciphertext, ColumnCipher, ColumnKeys, CryptoError, DataKey, IndexKeys, KeyState,
    Normalization,
};
use proptest::prelude::*;

fn cipher(column_id: u32, version: u32, searchable: bool) -> ColumnCipher {
    ColumnCipher::new(ColumnKeys {
        column_id,
        type_tag: 8,
        value_keys: vec![(version, KeyState::Active, DataKey::generate())],
        index: searchable.then(|| IndexKeys {
            keys: vec![(1, KeyState::Active, DataKey::generate())],
            length: 16,
            normalization: Normalization::Lowercase,
        }),
    })
    .expect("valid key set")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(
        plaintext in proptest::collection::vec(any::<u8>(), 0..4096),
        column_id in any::<u32>(),
        version in 1u32..,
        searchable in any::<bool>(),
    ) {
        let c = cipher(column_id, version, searchable);
        let sealed = c.seal(&plaintext, &plaintext);
        let expected_header = if searchable { 39 + 16 } else { 36 };
        prop_assert_eq!(sealed.len(), expected_header + plaintext.len() + 16);
        let h = parse_ciphertext(&sealed).expect("own output parses");
        prop_assert_eq!(h.column_id, column_id);
        prop_assert_eq!(h.key_version, version);
        prop_assert_eq!(h.header_len, expected_header);
        prop_assert_eq!(h.blind_index.is_some(), searchable);
        let opened = c.open(&sealed).expect("own output opens");
        prop_assert_eq!(&opened[..], &plaintext[..]);
        // Randomised: the same value seals differently each time.
        prop_assert_ne!(c.seal(&plaintext, &plaintext), sealed);
    }

    #[test]
    fn any_single_bit_flip_fails(
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
        searchable in any::<bool>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let c = cipher(7, 3, searchable);
        let mut sealed = c.seal(&plaintext, &plaintext);
        let bit = bit.index(sealed.len() * 8);
        sealed[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(c.open(&sealed).is_err(), "bit {} accepted", bit);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = parse_ciphertext(&bytes);
    }

    #[test]
    fn parse_never_panics_on_near_valid_headers(
        tail in proptest::collection::vec(any::<u8>(), 0..96),
        flags in any::<u8>(),
    ) {
        let mut bytes = vec![0xB5, 0x01, 8, flags];
        bytes.extend_from_slice(&tail);
        if let Ok(h) = parse_ciphertext(&bytes) {
            prop_assert!(h.header_len + 16 <= bytes.len());
        }
        let c = cipher(7, 3, false);
        prop_assert!(c.open(&bytes).is_err());
    }

    #[test]
    fn blind_index_is_deterministic_across_ciphertexts(
        local in "[a-zA-Z0-9._]{1,20}",
        domain in "[a-zA-Z0-9]{1,20}\\.[a-z]{2,5}",
        pad in "[ \t]{0,3}",
    ) {
        let c = cipher(7, 1, true);
        let mixed = format!("{pad}{local}@{domain}{pad}");
        let lower = format!("{local}@{domain}").to_lowercase();
        let a = parse_ciphertext(&c.seal(b"x", mixed.as_bytes())).expect("parses").blind_index.map(|(v, b)| (v, b.to_vec()));
        let b = parse_ciphertext(&c.seal(b"y", lower.as_bytes())).expect("parses").blind_index.map(|(v, b)| (v, b.to_vec()));
        prop_assert!(a.is_some());
        prop_assert_eq!(&a, &b);
        let lookups = c.blind_indexes(lower.as_bytes());
        prop_assert_eq!(lookups.len(), 1);
        prop_assert_eq!(Some(lookups[0].clone()), a);
    }
}

#[test]
fn truncation_at_every_length_fails() {
    for searchable in [false, true] {
        let c = cipher(9, 1, searchable);
        let sealed = c.seal(b"a value of some thirty bytes..", b"key");
        for len in 0..sealed.len() {
            let err = c.open(&sealed[..len]).expect_err("truncated value opened");
            assert!(
                matches!(err, CryptoError::Format(_) | CryptoError::Tampered),
                "len {len}: {err:?}"
            );
        }
        assert!(c.open(&sealed).is_ok());
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(c.open(&longer), Err(CryptoError::Tampered));
    }
}
