//! ColumnCipher behaviour: key sets, rotation, error order, blind index lookups.

use pgseal_crypto::{
    danger, parse_ciphertext, ColumnCipher, ColumnKeys, CryptoError, DataKey, FormatError,
    IndexKeys, KeyPurpose, KeyState, Normalization,
};

fn k(b: u8) -> DataKey {
    danger::data_key_from_bytes(&[b; 32])
}

fn keys(value_keys: Vec<(u32, KeyState, DataKey)>, index: Option<IndexKeys>) -> ColumnKeys {
    ColumnKeys {
        column_id: 5,
        type_tag: 8,
        value_keys,
        index,
    }
}

fn index(keys: Vec<(u16, KeyState, DataKey)>, length: u8) -> Option<IndexKeys> {
    Some(IndexKeys {
        keys,
        length,
        normalization: Normalization::Lowercase,
    })
}

#[test]
fn key_set_validation() {
    use KeyState::*;
    let err = |ck| ColumnCipher::new(ck).map(|_| ()).unwrap_err();
    assert_eq!(
        err(keys(vec![(1, DecryptOnly, k(1))], None)),
        CryptoError::NoActiveKey { column_id: 5 }
    );
    assert_eq!(
        err(keys(vec![], None)),
        CryptoError::NoActiveKey { column_id: 5 }
    );
    assert_eq!(
        err(keys(vec![(1, Active, k(1)), (2, Active, k(2))], None)),
        CryptoError::MultipleActiveKeys { column_id: 5 }
    );
    assert_eq!(
        err(keys(vec![(1, Active, k(1)), (1, Retired, k(2))], None)),
        CryptoError::DuplicateKeyVersion {
            column_id: 5,
            purpose: KeyPurpose::Value,
            version: 1
        }
    );
    assert_eq!(
        err(keys(vec![(0, Active, k(1))], None)),
        CryptoError::ZeroKeyVersion {
            column_id: 5,
            purpose: KeyPurpose::Value
        }
    );
    for bad in [0u8, 3, 33, 255] {
        assert_eq!(
            err(keys(
                vec![(1, Active, k(1))],
                index(vec![(1, Active, k(2))], bad)
            )),
            CryptoError::InvalidIndexLength { length: bad }
        );
    }
    assert_eq!(
        err(keys(
            vec![(1, Active, k(1))],
            index(vec![(1, DecryptOnly, k(2))], 16)
        )),
        CryptoError::NoActiveIndexKey { column_id: 5 }
    );
    assert_eq!(
        err(keys(
            vec![(1, Active, k(1))],
            index(vec![(1, Active, k(2)), (2, Active, k(3))], 16)
        )),
        CryptoError::MultipleActiveIndexKeys { column_id: 5 }
    );
    for len in [4u8, 16, 32] {
        let c = ColumnCipher::new(keys(
            vec![(1, Active, k(1))],
            index(vec![(1, Active, k(2))], len),
        ))
        .unwrap();
        let sealed = c.seal(b"v", b"v");
        let h = parse_ciphertext(&sealed).unwrap();
        assert_eq!(h.blind_index.unwrap().1.len(), usize::from(len));
    }
}

#[test]
fn rotation_lifecycle() {
    use KeyState::*;
    let v1 = ColumnCipher::new(keys(vec![(1, Active, k(1))], None)).unwrap();
    let old = v1.seal(b"old value", b"");

    // New key added decrypt-only everywhere, then made active; old values still open.
    let v2 =
        ColumnCipher::new(keys(vec![(1, DecryptOnly, k(1)), (2, Active, k(2))], None)).unwrap();
    assert_eq!(v2.active_version(), 2);
    assert_eq!(v2.key_state(1), Some(DecryptOnly));
    assert_eq!(&v2.open(&old).unwrap()[..], b"old value");
    let new = v2.seal(b"new value", b"");
    assert_eq!(parse_ciphertext(&new).unwrap().key_version, 2);

    // The old key retired: values still under it are reported, not silently failed.
    let v3 = ColumnCipher::new(keys(vec![(1, Retired, k(1)), (2, Active, k(2))], None)).unwrap();
    assert_eq!(
        v3.open(&old),
        Err(CryptoError::RetiredKey {
            column_id: 5,
            version: 1
        })
    );
    assert_eq!(&v3.open(&new).unwrap()[..], b"new value");

    // Forgotten entirely.
    let v4 = ColumnCipher::new(keys(vec![(2, Active, k(2))], None)).unwrap();
    assert_eq!(
        v4.open(&old),
        Err(CryptoError::UnknownKeyVersion {
            column_id: 5,
            version: 1
        })
    );
}

#[test]
fn open_checks_in_documented_order() {
    let c = ColumnCipher::new(keys(vec![(1, KeyState::Active, k(1))], None)).unwrap();
    let mut ct = c.seal(b"value", b"");
    // Another column id, another type and an unknown key version all at once: the type is
    // reported first, then the column, then the version.
    ct[2] = 9;
    ct[4..8].copy_from_slice(&6u32.to_be_bytes());
    ct[8..12].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        c.open(&ct),
        Err(CryptoError::WrongType {
            expected: 8,
            found: 9
        })
    );
    ct[2] = 8;
    assert_eq!(
        c.open(&ct),
        Err(CryptoError::WrongColumn {
            expected: 5,
            found: 6
        })
    );
    ct[4..8].copy_from_slice(&5u32.to_be_bytes());
    assert_eq!(
        c.open(&ct),
        Err(CryptoError::UnknownKeyVersion {
            column_id: 5,
            version: 7
        })
    );
    ct[0] = b'h';
    assert_eq!(
        c.open(&ct),
        Err(CryptoError::Format(FormatError::BadMagic { found: b'h' }))
    );
}

#[test]
fn blind_indexes_cover_every_live_version_newest_first() {
    use KeyState::*;
    let before = ColumnCipher::new(keys(
        vec![(1, Active, k(1))],
        index(vec![(1, Active, k(10))], 16),
    ))
    .unwrap();
    let after = ColumnCipher::new(keys(
        vec![(1, Active, k(1))],
        index(
            vec![
                (1, DecryptOnly, k(10)),
                (3, Retired, k(30)),
                (2, Active, k(20)),
            ],
            16,
        ),
    ))
    .unwrap();
    let old_row = before.seal(b"Bob@Example.com", b"Bob@Example.com");
    let new_row = after.seal(b"bob@example.com", b"bob@example.com");

    let lookups = after.blind_indexes(b" BOB@example.COM");
    assert_eq!(
        lookups.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        vec![2, 1],
        "retired version 3 is not searched"
    );
    let old_index = parse_ciphertext(&old_row).unwrap().blind_index.unwrap();
    let new_index = parse_ciphertext(&new_row).unwrap().blind_index.unwrap();
    assert_eq!(old_index.0, 1);
    assert_eq!(new_index.0, 2);
    assert!(lookups.contains(&(1, old_index.1.to_vec())));
    assert!(lookups.contains(&(2, new_index.1.to_vec())));

    let plain = ColumnCipher::new(keys(vec![(1, Active, k(1))], None)).unwrap();
    assert!(!plain.is_searchable());
    assert!(plain.blind_indexes(b"x").is_empty());
    assert!(parse_ciphertext(&plain.seal(b"x", b"x"))
        .unwrap()
        .blind_index
        .is_none());
}

#[test]
fn values_from_before_a_column_became_searchable_still_open() {
    use KeyState::*;
    let plain = ColumnCipher::new(keys(vec![(1, Active, k(1))], None)).unwrap();
    let searchable = ColumnCipher::new(keys(
        vec![(1, Active, k(1))],
        index(vec![(1, Active, k(2))], 8),
    ))
    .unwrap();
    let ct = plain.seal(b"v", b"v");
    assert_eq!(&searchable.open(&ct).unwrap()[..], b"v");
    let ct = searchable.seal(b"w", b"w");
    assert_eq!(&plain.open(&ct).unwrap()[..], b"w");
}

#[test]
fn accessors() {
    let c = ColumnCipher::new(ColumnKeys {
        column_id: 77,
        type_tag: 15,
        value_keys: vec![
            (4, KeyState::Active, k(1)),
            (3, KeyState::DecryptOnly, k(2)),
        ],
        index: None,
    })
    .unwrap();
    assert_eq!(c.column_id(), 77);
    assert_eq!(c.type_tag(), 15);
    assert_eq!(c.active_version(), 4);
    assert_eq!(c.key_state(9), None);
}

#[test]
fn open_with_lends_the_plaintext_and_reports_errors() {
    let c = ColumnCipher::new(keys(vec![(1, KeyState::Active, k(1))], None)).unwrap();
    let ct = c.seal(b"lend me", b"");
    assert_eq!(c.open_with(&ct, |p| p.to_vec()).unwrap(), b"lend me");
    let mut bad = ct.clone();
    bad[40] ^= 1;
    let mut called = false;
    assert_eq!(
        c.open_with(&bad, |_| called = true),
        Err(CryptoError::Tampered)
    );
    assert!(!called, "f must not see unauthenticated data");
    assert!(matches!(
        c.open_with(b"", |_| ()),
        Err(CryptoError::Format(_))
    ));
}
