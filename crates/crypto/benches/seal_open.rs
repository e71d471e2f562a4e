//! ColumnCipher::seal/open against bare aws-lc-rs AES-256-GCM (LessSafeKey, key prepared once,
//! random 12-byte nonce) for the same value sizes. Results: docs/performance.md.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pgseal_crypto::{ColumnCipher, ColumnKeys, DataKey, KeyState};

const SIZES: [(usize, &str); 4] = [(16, "16B"), (64, "64B"), (1024, "1KiB"), (65536, "64KiB")];

fn bench(c: &mut Criterion) {
    let cipher = ColumnCipher::new(ColumnKeys {
        column_id: 1,
        type_tag: 10,
        value_keys: vec![(1, KeyState::Active, DataKey::generate())],
        index: None,
    })
    .expect("one active key is a valid key set");
    let mut key_bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key_bytes).expect("system RNG");
    let bare = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("32-byte key"));

    let mut group = c.benchmark_group("value");
    for (size, label) in SIZES {
        let plaintext = vec![0x5Au8; size];
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_with_input(
            BenchmarkId::new("pgseal_seal", label),
            &plaintext,
            |b, p| {
                b.iter(|| cipher.seal(black_box(p), &[]));
            },
        );
        let sealed = cipher.seal(&plaintext, &[]);
        group.bench_with_input(BenchmarkId::new("pgseal_open", label), &sealed, |b, s| {
            b.iter(|| cipher.open(black_box(s)).expect("authentic"));
        });
        group.bench_with_input(
            BenchmarkId::new("pgseal_open_with", label),
            &sealed,
            |b, s| {
                b.iter(|| {
                    cipher
                        .open_with(black_box(s), |p| black_box(p.len()))
                        .expect("authentic")
                });
            },
        );

        // The baseline does the same work a caller would: fresh nonce, one output buffer
        // holding nonce, ciphertext and tag.
        let bare_seal = |p: &[u8]| {
            let mut nonce = [0u8; NONCE_LEN];
            aws_lc_rs::rand::fill(&mut nonce).expect("system RNG");
            let mut out = Vec::with_capacity(NONCE_LEN + p.len() + 16);
            out.extend_from_slice(&nonce);
            out.extend_from_slice(p);
            let tag = bare
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    &mut out[NONCE_LEN..],
                )
                .expect("small message");
            out.extend_from_slice(tag.as_ref());
            out
        };
        group.bench_with_input(BenchmarkId::new("bare_seal", label), &plaintext, |b, p| {
            b.iter(|| bare_seal(black_box(p)));
        });
        let bare_sealed = bare_seal(&plaintext);
        group.bench_with_input(
            BenchmarkId::new("bare_open", label),
            &bare_sealed,
            |b, s| {
                b.iter(|| {
                    let s = black_box(s);
                    let nonce =
                        Nonce::try_assume_unique_for_key(&s[..NONCE_LEN]).expect("12 bytes");
                    let body = &s[NONCE_LEN..s.len() - 16];
                    let mut out = vec![0u8; body.len()];
                    bare.open_separate_gather(
                        nonce,
                        Aad::empty(),
                        body,
                        &s[s.len() - 16..],
                        &mut out,
                    )
                    .expect("authentic");
                    out
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
