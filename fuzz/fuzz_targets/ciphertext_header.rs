//! Arbitrary bytes into the ciphertext parser, `ColumnCipher::open` and the wrapped-key parser.
//! Nothing may panic; whatever parses must be self-consistent. The cipher's keys are those of the
//! `text` column in crates/crypto/tests/vectors/value.json, so seeds taken from there reach the
//! decryption path.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pgseal_crypto::{danger, parse_ciphertext, ColumnCipher, ColumnKeys, KeyState};

fn vector_key(tag: u8) -> pgseal_crypto::DataKey {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = tag.wrapping_mul(31).wrapping_add(i as u8);
    }
    danger::data_key_from_bytes(&bytes)
}

static CIPHER: LazyLock<ColumnCipher> = LazyLock::new(|| {
    ColumnCipher::new(ColumnKeys {
        column_id: 42,
        type_tag: 8,
        value_keys: vec![
            (1, KeyState::Retired, vector_key(1)),
            (2, KeyState::DecryptOnly, vector_key(2)),
            (3, KeyState::Active, vector_key(3)),
        ],
        index: None,
    })
    .expect("fixed key set is valid")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse_ciphertext(data) {
        assert_eq!(h.format_version, 1);
        assert!(h.key_version >= 1);
        assert!(h.header_len + 16 <= data.len());
        if let Some((version, index)) = h.blind_index {
            assert!(version >= 1);
            assert!((4..=32).contains(&index.len()));
            assert_eq!(h.header_len, 39 + index.len());
        } else {
            assert_eq!(h.header_len, 36);
        }
    }
    if let Ok(plain) = CIPHER.open(data) {
        // Only authentic values open; their length follows from the header.
        let h = parse_ciphertext(data).expect("an opened value parses");
        assert_eq!(plain.len(), data.len() - h.header_len - 16);
    }
    let _ = pgseal_crypto::wrapped_key_fingerprint(data);
});
