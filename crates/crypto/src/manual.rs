//! Design notes: why the cryptography of pgseal looks the way it does.
//!
//! The byte formats are specified in `docs/format.md`; this module explains the choices behind
//! them. It contains no code.
//!
//! # Envelope encryption
//!
//! The master key (`PGSEAL_MASTER_KEY`) never encrypts a value. It wraps *data keys* with
//! AES-256-GCM ([`wrap_data_key`](crate::wrap_data_key)), and the wrapped data keys are stored in
//! `pgseal.data_keys` beside the data. Rotating the master key therefore rewrites a few dozen
//! 70-byte rows, not every encrypted value. Each wrapped key records the
//! [fingerprint](crate::KeyFingerprint) of the master key that wrapped it, so a
//! [`MasterKeyring`](crate::MasterKeyring) holding the current and previous master keys can
//! unwrap every row during a rotation, and an error can say exactly which key is missing.
//!
//! The wrap's AAD is the wrapped-key header plus the data key's identity
//! `(column_id, purpose, version)`. Whoever can write `pgseal.data_keys` cannot make column A use
//! column B's key by copying a row, nor swap a value key and an index key: the copy fails to
//! unwrap. Wrapping uses random 96-bit nonces; the number of wraps under one master key is tiny
//! (see `docs/format.md` 1.1 for the arithmetic).
//!
//! # XAES-256-GCM for values
//!
//! A column may hold billions of values under one data key. With AES-256-GCM and random 96-bit
//! nonces NIST SP 800-38D allows only 2^32 messages per key, which a busy table can reach.
//! XAES-256-GCM (C2SP) extends the nonce to 192 bits: the first 96 bits derive a per-message
//! AES-256 key with two AES block operations (a CMAC-style KDF), the last 96 bits are the GCM
//! nonce under it. Random 192-bit nonces make collisions negligible for any realistic number of
//! values, so keys are rotated for hygiene, never because they are "used up". Compared with
//! deriving a fresh key by HKDF per value (the AWS Encryption SDK approach), XAES costs two AES
//! blocks instead of several SHA-256 compressions, and it is built only from AES, so FIPS-mode
//! aws-lc serves it. The AES key schedule of the data key and the CMAC subkey `K1` are computed
//! once per [`ColumnCipher`](crate::ColumnCipher); each value pays for the two blocks and one
//! AES-GCM key setup.
//!
//! # The header is the AAD
//!
//! Key identifiers in a ciphertext prefix are not protected unless they are authenticated. The
//! whole value header (format version, type tag, column id, key version, nonce and blind index)
//! is the GCM additional data. A ciphertext copied into another column, relabelled with another
//! type or key version, or given another blind index fails to open. The cheap checks (type,
//! column, key version) run first, on the unauthenticated header, only to produce a precise error
//! message; the decision to return plaintext is made by the authentication alone, which reports
//! nothing but [`CryptoError::Tampered`](crate::CryptoError::Tampered).
//!
//! # Blind indexes
//!
//! Equality search uses HMAC-SHA256 under a separate index key, over a domain label, the type tag
//! and the normalised value, truncated per column (4..=32 bytes). Separate keys mean an index key
//! leak reveals nothing about values beyond equality; the type tag keeps `int4 1` and `int8 1`
//! apart. Truncation trades false positives (filtered out after decryption) for less leakage on
//! low-cardinality columns. [`ColumnCipher::blind_indexes`](crate::ColumnCipher::blind_indexes)
//! returns one index per non-retired key version so searches keep working during index key
//! rotation.
//!
//! # Secret hygiene
//!
//! Keys live in heap boxes wiped on drop, compare in constant time and print at most their
//! fingerprint. Derived per-message keys and decrypted plaintext are wiped after use
//! ([`zeroize::Zeroizing`]). Prepared aws-lc key schedules are owned and released by aws-lc-rs.
//! Errors never contain key material or plaintext.
