//! Test vectors as data: `tests/vectors/*.json`. Every case names the outcome it expects; this
//! file checks every case. The files were produced by `generate_vectors` (ignored), which is
//! deterministic: rerunning it rewrites identical files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use pgseal_crypto::{
    blind_index, danger, unwrap_data_key, ColumnCipher, ColumnKeys, CryptoError, DataKey,
    DataKeyId, IndexKeys, KeyPurpose, KeyState, MasterKey, MasterKeyring, Normalization,
};
use serde::{Deserialize, Serialize};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector files hold valid hex")
}

fn key(hex_key: &str) -> DataKey {
    let bytes: [u8; 32] = unhex(hex_key).try_into().expect("32-byte key in vector");
    danger::data_key_from_bytes(&bytes)
}

fn state(s: &str) -> KeyState {
    match s {
        "active" => KeyState::Active,
        "decrypt_only" => KeyState::DecryptOnly,
        "retired" => KeyState::Retired,
        other => panic!("unknown key state {other:?} in vector"),
    }
}

fn normalization(s: &str) -> Normalization {
    match s {
        "none" => Normalization::None,
        "lowercase" => Normalization::Lowercase,
        "digits" => Normalization::Digits,
        other => panic!("unknown normalization {other:?} in vector"),
    }
}

// ---------------------------------------------------------------------------------------------
// Value ciphertexts

#[derive(Serialize, Deserialize, Clone)]
struct KeySpec {
    version: u32,
    state: String,
    key: String,
}

#[derive(Serialize, Deserialize, Clone)]
struct IndexSpec {
    length: u8,
    normalization: String,
    keys: Vec<KeySpec>,
}

#[derive(Serialize, Deserialize, Clone)]
struct ColumnSpec {
    column_id: u32,
    type_tag: u8,
    value_keys: Vec<KeySpec>,
    index: Option<IndexSpec>,
}

impl ColumnSpec {
    fn cipher(&self) -> ColumnCipher {
        ColumnCipher::new(ColumnKeys {
            column_id: self.column_id,
            type_tag: self.type_tag,
            value_keys: self
                .value_keys
                .iter()
                .map(|k| (k.version, state(&k.state), key(&k.key)))
                .collect(),
            index: self.index.as_ref().map(|ix| IndexKeys {
                keys: ix
                    .keys
                    .iter()
                    .map(|k| {
                        let v = u16::try_from(k.version).expect("index version fits u16");
                        (v, state(&k.state), key(&k.key))
                    })
                    .collect(),
                length: ix.length,
                normalization: normalization(&ix.normalization),
            }),
        })
        .expect("vector columns are valid")
    }
}

#[derive(Serialize, Deserialize, Clone)]
struct SealSpec {
    with: String,
    plaintext: String,
    index_input: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
struct ValueCase {
    name: String,
    expect: String,
    open_with: String,
    ciphertext: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    /// How the ciphertext was produced (success cases): resealing must reproduce it exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    seal: Option<SealSpec>,
}

#[derive(Serialize, Deserialize)]
struct ValueFile {
    description: String,
    columns: BTreeMap<String, ColumnSpec>,
    cases: Vec<ValueCase>,
}

#[test]
fn value_vectors() {
    let text = std::fs::read_to_string(vectors_dir().join("value.json")).expect("value.json");
    let file: ValueFile = serde_json::from_str(&text).expect("value.json parses");
    let ciphers: BTreeMap<&str, ColumnCipher> = file
        .columns
        .iter()
        .map(|(name, spec)| (name.as_str(), spec.cipher()))
        .collect();
    let mut seen = BTreeMap::<&str, usize>::new();
    for case in &file.cases {
        *seen.entry(case.expect.as_str()).or_default() += 1;
        let cipher = &ciphers[case.open_with.as_str()];
        let ct = unhex(&case.ciphertext);
        let got = cipher.open(&ct);
        let ok = match case.expect.as_str() {
            "success" => {
                let expected = unhex(case.plaintext.as_deref().expect("success has plaintext"));
                let seal = case.seal.as_ref().expect("success has seal inputs");
                let nonce: [u8; 24] = unhex(&seal.nonce).try_into().expect("24-byte nonce");
                let resealed = danger::seal_with_nonce(
                    &ciphers[seal.with.as_str()],
                    &unhex(&seal.plaintext),
                    &unhex(&seal.index_input),
                    &nonce,
                );
                assert_eq!(resealed, ct, "{}: reseal differs", case.name);
                matches!(&got, Ok(p) if **p == expected)
            }
            "tampered_header" | "tampered_body" | "wrong_key" => {
                matches!(got, Err(CryptoError::Tampered))
            }
            "wrong_column" => matches!(got, Err(CryptoError::WrongColumn { .. })),
            "wrong_type" => matches!(got, Err(CryptoError::WrongType { .. })),
            "unknown_version" => matches!(got, Err(CryptoError::UnknownKeyVersion { .. })),
            "retired_key" => matches!(got, Err(CryptoError::RetiredKey { .. })),
            "malformed" => matches!(got, Err(CryptoError::Format(_))),
            other => panic!("{}: unknown expect {other:?}", case.name),
        };
        assert!(
            ok,
            "{}: expected {}, got {:?}",
            case.name,
            case.expect,
            got.as_ref().map(|_| "plaintext")
        );
    }
    for expect in [
        "success",
        "tampered_header",
        "tampered_body",
        "wrong_column",
        "wrong_type",
        "wrong_key",
        "unknown_version",
        "retired_key",
        "malformed",
    ] {
        assert!(seen.contains_key(expect), "no {expect} case in value.json");
    }
}

// ---------------------------------------------------------------------------------------------
// Wrapped data keys

#[derive(Serialize, Deserialize, Clone, Copy)]
struct IdSpec {
    column_id: u32,
    purpose: u8,
    version: u32,
}

impl IdSpec {
    fn id(self) -> DataKeyId {
        DataKeyId {
            column_id: self.column_id,
            purpose: KeyPurpose::from_u8(self.purpose).expect("valid purpose in vector"),
            version: self.version,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RingSpec {
    current: String,
    previous: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct WrapCase {
    name: String,
    expect: String,
    ring: RingSpec,
    id: IdSpec,
    wrapped: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_key: Option<String>,
    /// For success cases: the wrapping master key and nonce, to reproduce `wrapped` exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    wrapped_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WrapFile {
    description: String,
    /// name -> master key in base64
    master_keys: BTreeMap<String, String>,
    cases: Vec<WrapCase>,
}

#[test]
fn wrapped_key_vectors() {
    let text =
        std::fs::read_to_string(vectors_dir().join("wrapped_key.json")).expect("wrapped_key.json");
    let file: WrapFile = serde_json::from_str(&text).expect("wrapped_key.json parses");
    let master = |name: &str| {
        MasterKey::from_base64(name, &file.master_keys[name]).expect("valid master key")
    };
    let mut seen = BTreeMap::<&str, usize>::new();
    for case in &file.cases {
        *seen.entry(case.expect.as_str()).or_default() += 1;
        let ring = MasterKeyring::new(
            master(&case.ring.current),
            case.ring.previous.iter().map(|n| master(n)).collect(),
        );
        let wrapped = unhex(&case.wrapped);
        let got = unwrap_data_key(&ring, case.id.id(), &wrapped);
        let ok = match case.expect.as_str() {
            "success" => {
                let expected = key(case.data_key.as_deref().expect("success has data_key"));
                let by = master(case.wrapped_by.as_deref().expect("success has wrapped_by"));
                let nonce: [u8; 12] = unhex(case.nonce.as_deref().expect("success has nonce"))
                    .try_into()
                    .expect("12-byte nonce");
                let rewrapped =
                    danger::wrap_data_key_with_nonce(&by, case.id.id(), &expected, nonce);
                assert_eq!(rewrapped, wrapped, "{}: rewrap differs", case.name);
                got.as_ref() == Ok(&expected)
            }
            "wrong_master_key" => matches!(got, Err(CryptoError::UnknownMasterKey { .. })),
            "wrong_identity" => matches!(got, Err(CryptoError::UnwrapFailed { .. })),
            "tampered" => matches!(
                got,
                Err(CryptoError::UnwrapFailed { .. } | CryptoError::MalformedWrappedKey)
            ),
            other => panic!("{}: unknown expect {other:?}", case.name),
        };
        assert!(ok, "{}: expected {}, got {:?}", case.name, case.expect, got);
    }
    for expect in ["success", "wrong_master_key", "wrong_identity", "tampered"] {
        assert!(
            seen.contains_key(expect),
            "no {expect} case in wrapped_key.json"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Blind indexes

#[derive(Serialize, Deserialize)]
struct IndexCase {
    name: String,
    expect: String,
    key: String,
    type_tag: u8,
    normalization: String,
    input: String,
    length: u8,
    index: String,
}

#[derive(Serialize, Deserialize)]
struct IndexFile {
    description: String,
    cases: Vec<IndexCase>,
}

#[test]
fn blind_index_vectors() {
    let text =
        std::fs::read_to_string(vectors_dir().join("blind_index.json")).expect("blind_index.json");
    let file: IndexFile = serde_json::from_str(&text).expect("blind_index.json parses");
    assert!(!file.cases.is_empty());
    for case in &file.cases {
        assert_eq!(case.expect, "success", "{}", case.name);
        let got = blind_index(
            &key(&case.key),
            case.type_tag,
            normalization(&case.normalization),
            &unhex(&case.input),
            case.length,
        );
        assert_eq!(hex::encode(got), case.index, "{}", case.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Generator

fn fixed_key(tag: u8) -> String {
    // Distinct, recognisable keys: tag followed by a counting pattern.
    let bytes: Vec<u8> = (0u8..32)
        .map(|i| tag.wrapping_mul(31).wrapping_add(i))
        .collect();
    hex::encode(bytes)
}

fn ks(version: u32, state: &str, tag: u8) -> KeySpec {
    KeySpec {
        version,
        state: state.into(),
        key: fixed_key(tag),
    }
}

fn fixed_nonce(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag ^ (i as u8).wrapping_mul(7)).collect()
}

fn flip(ct: &str, byte: usize) -> String {
    let mut v = unhex(ct);
    v[byte] ^= 0x01;
    hex::encode(v)
}

#[test]
#[ignore = "rewrites tests/vectors/*.json; run by hand after a deliberate format change"]
fn generate_vectors() {
    generate_value_vectors();
    generate_wrap_vectors();
    generate_index_vectors();
}

fn generate_value_vectors() {
    let text = ColumnSpec {
        column_id: 42,
        type_tag: 8,
        value_keys: vec![
            ks(1, "retired", 1),
            ks(2, "decrypt_only", 2),
            ks(3, "active", 3),
        ],
        index: None,
    };
    let mut columns = BTreeMap::new();
    columns.insert("text".to_string(), text.clone());
    columns.insert(
        "text_v1_active".to_string(),
        ColumnSpec {
            value_keys: vec![ks(1, "active", 1)],
            ..text.clone()
        },
    );
    columns.insert(
        "text_v2_active".to_string(),
        ColumnSpec {
            value_keys: vec![ks(1, "decrypt_only", 1), ks(2, "active", 2)],
            ..text.clone()
        },
    );
    columns.insert(
        "text_in_column_44".to_string(),
        ColumnSpec {
            column_id: 44,
            ..text.clone()
        },
    );
    columns.insert(
        "text_as_varchar".to_string(),
        ColumnSpec {
            type_tag: 9,
            ..text.clone()
        },
    );
    columns.insert(
        "text_other_keys".to_string(),
        ColumnSpec {
            value_keys: vec![ks(3, "active", 99)],
            ..text.clone()
        },
    );
    columns.insert(
        "text_without_v3".to_string(),
        ColumnSpec {
            value_keys: vec![ks(1, "retired", 1), ks(2, "active", 2)],
            ..text.clone()
        },
    );
    columns.insert(
        "email".to_string(),
        ColumnSpec {
            column_id: 43,
            type_tag: 8,
            value_keys: vec![ks(1, "active", 4)],
            index: Some(IndexSpec {
                length: 16,
                normalization: "lowercase".into(),
                keys: vec![ks(1, "decrypt_only", 5), ks(2, "active", 6)],
            }),
        },
    );
    columns.insert(
        "phone".to_string(),
        ColumnSpec {
            column_id: 45,
            type_tag: 8,
            value_keys: vec![ks(7, "active", 7)],
            index: Some(IndexSpec {
                length: 4,
                normalization: "digits".into(),
                keys: vec![ks(1, "active", 8)],
            }),
        },
    );
    columns.insert(
        "int8_eq".to_string(),
        ColumnSpec {
            column_id: 46,
            type_tag: 4,
            value_keys: vec![ks(1, "active", 9)],
            index: Some(IndexSpec {
                length: 32,
                normalization: "none".into(),
                keys: vec![ks(1, "active", 10)],
            }),
        },
    );
    let ciphers: BTreeMap<String, ColumnCipher> = columns
        .iter()
        .map(|(n, s)| (n.clone(), s.cipher()))
        .collect();

    let mut cases = Vec::new();
    let mut success = |name: &str, with: &str, open_with: &str, pt: &[u8], ix: &[u8], n: u8| {
        let nonce = fixed_nonce(n, 24);
        let ct = danger::seal_with_nonce(
            &ciphers[with],
            pt,
            ix,
            &nonce.clone().try_into().expect("24 bytes"),
        );
        let ct = hex::encode(ct);
        cases.push(ValueCase {
            name: name.into(),
            expect: "success".into(),
            open_with: open_with.into(),
            ciphertext: ct.clone(),
            plaintext: Some(hex::encode(pt)),
            seal: Some(SealSpec {
                with: with.into(),
                plaintext: hex::encode(pt),
                index_input: hex::encode(ix),
                nonce: hex::encode(nonce),
            }),
        });
        ct
    };
    let hello = success(
        "text, active key v3",
        "text",
        "text",
        b"hello, world",
        b"",
        0x10,
    );
    success("empty text", "text", "text", b"", b"", 0x11);
    let long: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    success("300 bytes", "text", "text", &long, b"", 0x12);
    success(
        "written under v2, now decrypt-only",
        "text_v2_active",
        "text",
        "données".as_bytes(),
        b"",
        0x13,
    );
    let email = success(
        "email with lower-cased blind index",
        "email",
        "email",
        b"Alice@Example.COM",
        b"Alice@Example.COM",
        0x14,
    );
    success(
        "phone with digits blind index",
        "phone",
        "phone",
        b"+44 (0)20 7946-0018",
        b"+44 (0)20 7946-0018",
        0x15,
    );
    success(
        "int8 with 32-byte blind index",
        "int8_eq",
        "int8_eq",
        &(-5i64).to_be_bytes(),
        &(-5i64).to_be_bytes(),
        0x16,
    );
    let v1 = success(
        "written under v1 (setup for the retired case)",
        "text_v1_active",
        "text_v1_active",
        b"old",
        b"",
        0x17,
    );

    let mut fail = |name: &str, expect: &str, open_with: &str, ct: String| {
        cases.push(ValueCase {
            name: name.into(),
            expect: expect.into(),
            open_with: open_with.into(),
            ciphertext: ct,
            plaintext: None,
            seal: None,
        });
    };
    fail(
        "nonce byte flipped",
        "tampered_header",
        "text",
        flip(&hello, 20),
    );
    fail(
        "nonce byte flipped (second half)",
        "tampered_header",
        "text",
        flip(&hello, 35),
    );
    // Version 3 -> 2: the header now names a key the column has, so only the AAD catches it.
    fail(
        "key version edited to 2",
        "tampered_header",
        "text",
        flip(&hello, 11),
    );
    fail(
        "blind index byte flipped",
        "tampered_header",
        "email",
        flip(&email, 40),
    );
    // Index key version 2 -> 3: unknown index versions are not checked, the AAD catches it.
    fail(
        "index key version edited",
        "tampered_header",
        "email",
        flip(&email, 37),
    );
    fail(
        "ciphertext byte flipped",
        "tampered_body",
        "text",
        flip(&hello, 36),
    );
    let last = unhex(&hello).len() - 1;
    fail(
        "tag byte flipped",
        "tampered_body",
        "text",
        flip(&hello, last),
    );
    let mut truncated = unhex(&hello);
    truncated.pop();
    fail(
        "last byte cut off",
        "tampered_body",
        "text",
        hex::encode(&truncated),
    );
    fail(
        "opened in another column",
        "wrong_column",
        "text_in_column_44",
        hello.clone(),
    );
    fail("column id edited", "wrong_column", "text", flip(&hello, 7));
    fail(
        "opened as varchar",
        "wrong_type",
        "text_as_varchar",
        hello.clone(),
    );
    fail(
        "opened with other key bytes",
        "wrong_key",
        "text_other_keys",
        hello.clone(),
    );
    fail(
        "key v3 unknown",
        "unknown_version",
        "text_without_v3",
        hello.clone(),
    );
    fail("written under v1, now retired", "retired_key", "text", v1);
    fail("empty value", "malformed", "text", String::new());
    fail(
        "plaintext",
        "malformed",
        "text",
        hex::encode(b"hello, world"),
    );
    fail("header only", "malformed", "text", hello[..72].to_string());
    fail(
        "51 bytes",
        "malformed",
        "text",
        hex::encode(&unhex(&hello)[..51]),
    );
    fail("format version 2", "malformed", "text", {
        let mut v = unhex(&hello);
        v[1] = 2;
        hex::encode(v)
    });
    fail("unknown flag", "malformed", "text", {
        let mut v = unhex(&hello);
        v[3] = 0x80;
        hex::encode(v)
    });
    fail("index length 40", "malformed", "email", {
        let mut v = unhex(&email);
        v[38] = 40;
        hex::encode(v)
    });
    fail("key version 0", "malformed", "text", {
        let mut v = unhex(&hello);
        v[8..12].copy_from_slice(&[0; 4]);
        hex::encode(v)
    });

    write(
        "value.json",
        &ValueFile {
            description: "pgseal value ciphertexts, docs/format.md section 2. Keys are hex; \
                          `seal` gives the inputs that reproduce a success ciphertext exactly."
                .into(),
            columns,
            cases,
        },
    );
}

fn generate_wrap_vectors() {
    let b64 = |tag: u8| {
        let bytes: [u8; 32] = unhex(&fixed_key(tag)).try_into().expect("32 bytes");
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        MasterKey::from_base64("vector", &text).expect("valid key");
        text
    };
    let mut master_keys = BTreeMap::new();
    master_keys.insert("current".to_string(), b64(0x41));
    master_keys.insert("previous".to_string(), b64(0x42));
    master_keys.insert("stranger".to_string(), b64(0x43));
    let m = |name: &str| MasterKey::from_base64(name, &master_keys[name]).expect("valid");
    let id = IdSpec {
        column_id: 42,
        purpose: 1,
        version: 3,
    };

    let mut cases = Vec::new();
    let mut success = |name: &str, by: &str, ring: RingSpec, id: IdSpec, tag: u8, n: u8| {
        let dk = fixed_key(tag);
        let nonce = fixed_nonce(n, 12);
        let wrapped = danger::wrap_data_key_with_nonce(
            &m(by),
            id.id(),
            &key(&dk),
            nonce.clone().try_into().expect("12 bytes"),
        );
        let wrapped = hex::encode(wrapped);
        cases.push(WrapCase {
            name: name.into(),
            expect: "success".into(),
            ring,
            id,
            wrapped: wrapped.clone(),
            data_key: Some(dk),
            wrapped_by: Some(by.into()),
            nonce: Some(hex::encode(nonce)),
        });
        wrapped
    };
    let ring = |current: &str, previous: &[&str]| RingSpec {
        current: current.into(),
        previous: previous.iter().map(|s| s.to_string()).collect(),
    };
    let w = success("value key", "current", ring("current", &[]), id, 0x51, 0x61);
    success(
        "index key",
        "current",
        ring("current", &[]),
        IdSpec {
            purpose: 2,
            version: 1,
            ..id
        },
        0x52,
        0x62,
    );
    let old = success(
        "wrapped by the previous master key",
        "previous",
        ring("current", &["previous"]),
        id,
        0x53,
        0x63,
    );

    let mut fail = |name: &str, expect: &str, ring: RingSpec, id: IdSpec, wrapped: String| {
        cases.push(WrapCase {
            name: name.into(),
            expect: expect.into(),
            ring,
            id,
            wrapped,
            data_key: None,
            wrapped_by: None,
            nonce: None,
        });
    };
    fail(
        "previous key not supplied",
        "wrong_master_key",
        ring("current", &[]),
        id,
        old,
    );
    fail(
        "ring of strangers",
        "wrong_master_key",
        ring("stranger", &["previous"]),
        id,
        w.clone(),
    );
    fail(
        "other column",
        "wrong_identity",
        ring("current", &[]),
        IdSpec {
            column_id: 43,
            ..id
        },
        w.clone(),
    );
    fail(
        "other purpose",
        "wrong_identity",
        ring("current", &[]),
        IdSpec { purpose: 2, ..id },
        w.clone(),
    );
    fail(
        "other version",
        "wrong_identity",
        ring("current", &[]),
        IdSpec { version: 4, ..id },
        w.clone(),
    );
    fail(
        "nonce flipped",
        "tampered",
        ring("current", &[]),
        id,
        flip(&w, 12),
    );
    fail(
        "key byte flipped",
        "tampered",
        ring("current", &[]),
        id,
        flip(&w, 30),
    );
    fail(
        "tag byte flipped",
        "tampered",
        ring("current", &[]),
        id,
        flip(&w, 69),
    );
    fail(
        "magic changed",
        "tampered",
        ring("current", &[]),
        id,
        flip(&w, 0),
    );
    fail(
        "truncated",
        "tampered",
        ring("current", &[]),
        id,
        w[..138].to_string(),
    );

    write(
        "wrapped_key.json",
        &WrapFile {
            description: "pgseal wrapped data keys, docs/format.md section 1.1. Master keys are \
                          base64, data keys hex."
                .into(),
            master_keys,
            cases,
        },
    );
}

fn generate_index_vectors() {
    let mut cases = Vec::new();
    let mut add = |name: &str, norm: &str, tag: u8, input: &[u8], length: u8| {
        let k = fixed_key(0x71);
        let index = blind_index(&key(&k), tag, normalization(norm), input, length);
        cases.push(IndexCase {
            name: name.into(),
            expect: "success".into(),
            key: k,
            type_tag: tag,
            normalization: norm.into(),
            input: hex::encode(input),
            length,
            index: hex::encode(index),
        });
    };
    add("text, none", "none", 8, b"hello", 16);
    add(
        "email, lowercase",
        "lowercase",
        8,
        b"Alice@Example.COM ",
        16,
    );
    add(
        "email already lower",
        "lowercase",
        8,
        b"alice@example.com",
        16,
    );
    add(
        "unicode lowercase",
        "lowercase",
        8,
        "ÉLODIE@Exemple.FR".as_bytes(),
        16,
    );
    add("phone digits", "digits", 8, b"+44 (0)20 7946-0018", 8);
    add(
        "phone digits, other spelling",
        "digits",
        8,
        b"440207946 0018",
        8,
    );
    add("int4 7, 4 bytes", "none", 3, &7i32.to_be_bytes(), 4);
    add(
        "numeric trimmed, 32 bytes",
        "none",
        7,
        b"\x00\x01\x00\x00\x00\x00\x00\x01\x00\x01",
        32,
    );
    add("empty input", "none", 10, b"", 16);
    write(
        "blind_index.json",
        &IndexFile {
            description: "pgseal blind indexes, docs/format.md section 2.4. All hex.".into(),
            cases,
        },
    );
}

fn write<T: Serialize>(name: &str, value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("serialisable");
    text.push('\n');
    std::fs::write(vectors_dir().join(name), text).expect("write vector file");
}
