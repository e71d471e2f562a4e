//! The value ciphertext header (docs/format.md section 2): parsing and writing, no cryptography.
//!
//! ```text
//! 0    1  magic 0xB5
//! 1    1  format version 0x01
//! 2    1  logical type tag
//! 3    1  flags: bit 0 = a blind index follows
//! 4    4  column_id (u32)
//! 8    4  value key version (u32, ≥ 1)
//! 12  24  nonce (XAES-256-GCM)
//! 36   2  if flag bit 0: index key version (u16, ≥ 1)
//! 38   1  if flag bit 0: index length n (4..=32)
//! 39   n  if flag bit 0: blind index
//! H    …  AES-256-GCM ciphertext, then the 16-byte tag
//! ```

use crate::error::FormatError;
use crate::xaes::{TAG_LEN, XAES_NONCE_LEN};

/// First byte of every value ciphertext.
pub const VALUE_MAGIC: u8 = 0xB5;
/// The value format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 0x01;
/// Header flag: a blind index follows the nonce.
pub(crate) const FLAG_BLIND_INDEX: u8 = 0x01;
/// Header length without a blind index.
pub(crate) const BASE_HEADER_LEN: usize = 36;
/// Bytes between the nonce and the blind index itself (index version and length).
const INDEX_PREFIX_LEN: usize = 3;
/// Shortest and longest blind index.
pub(crate) const MIN_INDEX_LEN: u8 = 4;
pub(crate) const MAX_INDEX_LEN: u8 = 32;

/// A zero-copy view of a value ciphertext's header. Produced by [`parse_ciphertext`], which
/// never panics on any input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CiphertextHeader<'a> {
    /// Format version (always 1 for a successfully parsed header).
    pub format_version: u8,
    /// Logical type tag (docs/format.md 2.1).
    pub type_tag: u8,
    /// The column the value was written for.
    pub column_id: u32,
    /// The value key version that encrypted it (≥ 1).
    pub key_version: u32,
    /// The 192-bit XAES-256-GCM nonce.
    pub nonce: &'a [u8; 24],
    /// The blind index, if present: (index key version, index bytes).
    pub blind_index: Option<(u16, &'a [u8])>,
    /// header length H: the header is `bytes[..header_len]` and is the whole AAD.
    pub header_len: usize,
}

/// Parses the header of a value ciphertext and checks that the whole ciphertext is long enough
/// to hold its header and a GCM tag. Does no cryptography: the header is authenticated only when
/// the value is opened.
///
/// # Errors
/// A [`FormatError`] saying which part of the format the bytes break.
pub fn parse_ciphertext(bytes: &[u8]) -> Result<CiphertextHeader<'_>, FormatError> {
    let Some(&magic) = bytes.first() else {
        return Err(FormatError::TooShort {
            len: 0,
            min: BASE_HEADER_LEN + TAG_LEN,
        });
    };
    if magic != VALUE_MAGIC {
        return Err(FormatError::BadMagic { found: magic });
    }
    if let Some(&version) = bytes.get(1) {
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion { version });
        }
    }
    let too_short = |min: usize| FormatError::TooShort {
        len: bytes.len(),
        min,
    };
    let base: &[u8; BASE_HEADER_LEN] = bytes
        .get(..BASE_HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| too_short(BASE_HEADER_LEN + TAG_LEN))?;
    let type_tag = base[2];
    let flags = base[3];
    if flags & !FLAG_BLIND_INDEX != 0 {
        return Err(FormatError::UnknownFlags { flags });
    }
    let column_id = u32::from_be_bytes([base[4], base[5], base[6], base[7]]);
    let key_version = u32::from_be_bytes([base[8], base[9], base[10], base[11]]);
    if key_version == 0 {
        return Err(FormatError::ZeroKeyVersion);
    }
    let nonce: &[u8; XAES_NONCE_LEN] = base[12..]
        .try_into()
        .expect("the base header ends with exactly the 24 nonce bytes");

    let (blind_index, header_len) = if flags & FLAG_BLIND_INDEX == 0 {
        (None, BASE_HEADER_LEN)
    } else {
        let prefix = bytes
            .get(BASE_HEADER_LEN..BASE_HEADER_LEN + INDEX_PREFIX_LEN)
            .ok_or_else(|| {
                too_short(BASE_HEADER_LEN + INDEX_PREFIX_LEN + usize::from(MIN_INDEX_LEN) + TAG_LEN)
            })?;
        let index_version = u16::from_be_bytes([prefix[0], prefix[1]]);
        let length = prefix[2];
        if !(MIN_INDEX_LEN..=MAX_INDEX_LEN).contains(&length) {
            return Err(FormatError::BadIndexLength { length });
        }
        if index_version == 0 {
            return Err(FormatError::ZeroKeyVersion);
        }
        let start = BASE_HEADER_LEN + INDEX_PREFIX_LEN;
        let end = start + usize::from(length);
        let index = bytes
            .get(start..end)
            .ok_or_else(|| too_short(end + TAG_LEN))?;
        (Some((index_version, index)), end)
    };
    if bytes.len() < header_len + TAG_LEN {
        return Err(too_short(header_len + TAG_LEN));
    }
    Ok(CiphertextHeader {
        format_version: FORMAT_VERSION,
        type_tag,
        column_id,
        key_version,
        nonce,
        blind_index,
        header_len,
    })
}

/// Header length for a ciphertext with a blind index of `index_len` bytes, if any.
pub(crate) fn header_len(index_len: Option<u8>) -> usize {
    match index_len {
        None => BASE_HEADER_LEN,
        Some(n) => BASE_HEADER_LEN + INDEX_PREFIX_LEN + usize::from(n),
    }
}

/// Appends a header to `out`.
pub(crate) fn write_header(
    out: &mut Vec<u8>,
    type_tag: u8,
    column_id: u32,
    key_version: u32,
    nonce: &[u8; XAES_NONCE_LEN],
    blind_index: Option<(u16, &[u8])>,
) {
    let flags = if blind_index.is_some() {
        FLAG_BLIND_INDEX
    } else {
        0
    };
    out.extend_from_slice(&[VALUE_MAGIC, FORMAT_VERSION, type_tag, flags]);
    out.extend_from_slice(&column_id.to_be_bytes());
    out.extend_from_slice(&key_version.to_be_bytes());
    out.extend_from_slice(nonce);
    if let Some((version, index)) = blind_index {
        debug_assert!((MIN_INDEX_LEN..=MAX_INDEX_LEN).contains(&(index.len() as u8)));
        out.extend_from_slice(&version.to_be_bytes());
        // Index lengths are validated to 4..=32 when the ColumnCipher is built.
        out.push(index.len() as u8);
        out.extend_from_slice(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(index: Option<(u16, &[u8])>, body: usize) -> Vec<u8> {
        let mut v = Vec::new();
        write_header(&mut v, 8, 0x0102_0304, 5, &[0xAA; 24], index);
        v.extend(std::iter::repeat_n(0u8, body + TAG_LEN));
        v
    }

    #[test]
    fn round_trip_without_index() {
        let bytes = sample(None, 3);
        let h = parse_ciphertext(&bytes).unwrap();
        assert_eq!(h.format_version, 1);
        assert_eq!(h.type_tag, 8);
        assert_eq!(h.column_id, 0x0102_0304);
        assert_eq!(h.key_version, 5);
        assert_eq!(h.nonce, &[0xAA; 24]);
        assert_eq!(h.blind_index, None);
        assert_eq!(h.header_len, 36);
        assert_eq!(header_len(None), 36);
    }

    #[test]
    fn round_trip_with_index() {
        let idx = [7u8; 16];
        let bytes = sample(Some((2, &idx)), 0);
        assert_eq!(bytes.len(), 39 + 16 + 16);
        let h = parse_ciphertext(&bytes).unwrap();
        assert_eq!(h.blind_index, Some((2, &idx[..])));
        assert_eq!(h.header_len, 55);
        assert_eq!(header_len(Some(16)), 55);
    }

    #[test]
    fn minimum_lengths() {
        let bytes = sample(None, 0);
        assert_eq!(bytes.len(), 52);
        assert!(parse_ciphertext(&bytes).is_ok());
        assert_eq!(
            parse_ciphertext(&bytes[..51]),
            Err(FormatError::TooShort { len: 51, min: 52 })
        );
        let idx = [1u8; 4];
        let bytes = sample(Some((1, &idx)), 0);
        assert_eq!(bytes.len(), 39 + 4 + 16);
        for len in 0..bytes.len() {
            assert!(parse_ciphertext(&bytes[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn rejects_bad_fields() {
        let good = sample(Some((1, &[0u8; 8])), 1);
        let with = |i: usize, b: u8| {
            let mut v = good.clone();
            v[i] = b;
            v
        };
        assert_eq!(
            parse_ciphertext(&with(0, 0x42)),
            Err(FormatError::BadMagic { found: 0x42 })
        );
        assert_eq!(
            parse_ciphertext(&with(1, 2)),
            Err(FormatError::UnsupportedVersion { version: 2 })
        );
        assert_eq!(
            parse_ciphertext(&with(3, 0x03)),
            Err(FormatError::UnknownFlags { flags: 0x03 })
        );
        assert_eq!(
            parse_ciphertext(&with(11, 0)),
            Err(FormatError::ZeroKeyVersion)
        );
        assert_eq!(
            parse_ciphertext(&with(38, 3)),
            Err(FormatError::BadIndexLength { length: 3 })
        );
        assert_eq!(
            parse_ciphertext(&with(38, 33)),
            Err(FormatError::BadIndexLength { length: 33 })
        );
        assert_eq!(
            parse_ciphertext(&with(37, 0)),
            Err(FormatError::ZeroKeyVersion)
        );
        assert_eq!(
            parse_ciphertext(&[]),
            Err(FormatError::TooShort { len: 0, min: 52 })
        );
    }
}
