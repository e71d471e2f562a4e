//! Secret hygiene: no key bytes in Debug output or error messages.

use base64::Engine as _;
use pgseal_crypto::{
    danger, unwrap_data_key, wrap_data_key, ColumnCipher, ColumnKeys, DataKey, DataKeyId,
    IndexKeys, KeyPurpose, KeyState, MasterKey, MasterKeyring, Normalization,
};

const DATA_KEY: [u8; 32] = [
    0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98,
    0x76, 0x54, 0x32, 0x10, 0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4,
];

/// Every rendering of `bytes` an accidental print might produce.
fn renderings(bytes: &[u8]) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lower = hex::encode(bytes);
    let upper = hex::encode_upper(bytes);
    let decimal = format!("{bytes:?}"); // [222, 173, ...]
    vec![
        b64[..16].to_string(),
        lower[..16].to_string(),
        upper[..16].to_string(),
        decimal[..20].to_string(),
        // A run of decimal bytes as they appear in a Debug of an array in the middle.
        format!("{}, {}, {}", bytes[4], bytes[5], bytes[6]),
    ]
}

fn assert_clean(text: &str, secret: &[u8]) {
    for r in renderings(secret) {
        assert!(!text.contains(&r), "{text:?} contains {r:?}");
    }
}

#[test]
fn debug_output_has_no_key_bytes() {
    let master = MasterKey::generate();
    let b64 = master.expose_base64();
    let master_bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .unwrap();
    let text = format!("{master:?}");
    assert_eq!(text, format!("MasterKey({})", master.fingerprint()));
    assert_clean(&text, &master_bytes);
    assert!(!text.contains(&b64[..12]));

    let ring = MasterKeyring::new(master.clone(), vec![MasterKey::generate()]);
    assert_clean(&format!("{ring:?}"), &master_bytes);
    assert_clean(&format!("{ring:#?}"), &master_bytes);

    let dk = danger::data_key_from_bytes(&DATA_KEY);
    assert_eq!(format!("{dk:?}"), "DataKey(..)");
    assert_eq!(format!("{dk:#?}"), "DataKey(..)");

    let ck = ColumnKeys {
        column_id: 1,
        type_tag: 8,
        value_keys: vec![(1, KeyState::Active, dk.clone())],
        index: Some(IndexKeys {
            keys: vec![(1, KeyState::Active, dk.clone())],
            length: 16,
            normalization: Normalization::None,
        }),
    };
    assert_clean(&format!("{ck:?}"), &DATA_KEY);
    let cipher = ColumnCipher::new(ck).unwrap();
    assert_clean(&format!("{cipher:?}"), &DATA_KEY);
}

#[test]
fn errors_have_no_key_bytes_or_plaintext() {
    let master = MasterKey::generate();
    let master_bytes = base64::engine::general_purpose::STANDARD
        .decode(master.expose_base64().as_bytes())
        .unwrap();
    let dk = danger::data_key_from_bytes(&DATA_KEY);
    let id = DataKeyId {
        column_id: 3,
        purpose: KeyPurpose::Value,
        version: 1,
    };
    let wrapped = wrap_data_key(&master, id, &dk);
    let ring = MasterKeyring::new(master, vec![]);
    let other = DataKeyId { version: 2, ..id };
    let mut errors = vec![
        unwrap_data_key(&ring, other, &wrapped).unwrap_err(),
        unwrap_data_key(
            &MasterKeyring::new(MasterKey::generate(), vec![]),
            id,
            &wrapped,
        )
        .unwrap_err(),
        unwrap_data_key(&ring, id, &wrapped[1..]).unwrap_err(),
    ];

    let cipher = ColumnCipher::new(ColumnKeys {
        column_id: 3,
        type_tag: 8,
        value_keys: vec![(1, KeyState::Active, dk)],
        index: None,
    })
    .unwrap();
    let plaintext = b"my very secret plaintext";
    let mut ct = cipher.seal(plaintext, b"");
    let last = ct.len() - 1;
    ct[last] ^= 1;
    errors.push(cipher.open(&ct).unwrap_err());
    errors.push(cipher.open(plaintext).unwrap_err());

    for e in &errors {
        for text in [e.to_string(), format!("{e:?}")] {
            assert_clean(&text, &DATA_KEY);
            assert_clean(&text, &master_bytes);
            assert!(!text.contains("secret plaintext"), "{text}");
        }
    }
}

#[test]
fn data_keys_compare_by_value() {
    assert_eq!(
        danger::data_key_from_bytes(&DATA_KEY),
        danger::data_key_from_bytes(&DATA_KEY)
    );
    assert_ne!(DataKey::generate(), DataKey::generate());
}
