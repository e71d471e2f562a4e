//! Master key fingerprints (docs/format.md section 1).

use std::fmt;
use std::str::FromStr;

use crate::error::KeyError;

/// Length of a fingerprint in bytes.
pub const FINGERPRINT_LEN: usize = 8;

const PREFIX: &str = "mk_";

/// The public name of a master key: the first 8 bytes of
/// `HMAC-SHA256(master key, "pgseal master key fingerprint v1")`.
///
/// Displayed (and debug-printed) as `mk_` followed by 16 lower-case hex digits; [`FromStr`]
/// parses that form back. It is safe to print, log and store: it is a PRF output under the key and
/// reveals nothing about it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyFingerprint([u8; FINGERPRINT_LEN]);

impl KeyFingerprint {
    /// Wraps 8 fingerprint bytes (as stored in a wrapped key).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; FINGERPRINT_LEN]) -> KeyFingerprint {
        KeyFingerprint(bytes)
    }

    /// The 8 fingerprint bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for KeyFingerprint {
    type Err = KeyError;

    /// Parses exactly the display form: `mk_` and 16 lower-case hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix(PREFIX).ok_or(KeyError::InvalidFingerprint)?;
        let hex = hex.as_bytes();
        if hex.len() != 2 * FINGERPRINT_LEN {
            return Err(KeyError::InvalidFingerprint);
        }
        let mut out = [0u8; FINGERPRINT_LEN];
        for (dst, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            *dst = (lower_hex_digit(pair[0])? << 4) | lower_hex_digit(pair[1])?;
        }
        Ok(KeyFingerprint(out))
    }
}

fn lower_hex_digit(c: u8) -> Result<u8, KeyError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(KeyError::InvalidFingerprint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let fp = KeyFingerprint::from_bytes([0x3f, 0x2a, 0x9c, 0x0d, 0x1e, 0x7b, 0x5a, 0x44]);
        assert_eq!(fp.to_string(), "mk_3f2a9c0d1e7b5a44");
        assert_eq!(format!("{fp:?}"), "mk_3f2a9c0d1e7b5a44");
        assert_eq!("mk_3f2a9c0d1e7b5a44".parse::<KeyFingerprint>(), Ok(fp));
    }

    #[test]
    fn parse_rejects_other_forms() {
        for bad in [
            "",
            "mk_",
            "3f2a9c0d1e7b5a44",
            "mk_3F2A9C0D1E7B5A44",
            "mk_3f2a9c0d1e7b5a4",
            "mk_3f2a9c0d1e7b5a445",
            "mk_3f2a9c0d1e7b5a4g",
            "MK_3f2a9c0d1e7b5a44",
            "mk_3f2a9c0d1e7b5a4é",
        ] {
            assert_eq!(
                bad.parse::<KeyFingerprint>(),
                Err(KeyError::InvalidFingerprint),
                "{bad:?}"
            );
        }
    }
}
