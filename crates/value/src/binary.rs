//! The canonical encoding (docs/format.md 2.3) and PostgreSQL's binary wire format.

use crate::datetime::{self, USECS_PER_DAY};
use crate::error::ValueError;
use crate::jsonb;
use crate::numeric;
use crate::types::{LogicalType, Value};

/// jsonb's binary format version byte.
const JSONB_VERSION: u8 = 1;

/// Encodes a value as the plaintext stored inside a ciphertext: PostgreSQL's binary send
/// format, which no session setting affects (docs/format.md 2.3).
pub fn encode_canonical(value: &Value) -> Vec<u8> {
    match value {
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Int2(v) => v.to_be_bytes().to_vec(),
        Value::Int4(v) => v.to_be_bytes().to_vec(),
        Value::Int8(v) => v.to_be_bytes().to_vec(),
        Value::Float4(v) => v.to_bits().to_be_bytes().to_vec(),
        Value::Float8(v) => v.to_bits().to_be_bytes().to_vec(),
        Value::Numeric(n) => {
            let mut out = Vec::with_capacity(8 + 2 * n.binary_parts().2.len());
            numeric::encode(n, &mut out);
            out
        }
        Value::Text(s) | Value::Varchar(s) => s.as_bytes().to_vec(),
        Value::Bytea(b) => b.clone(),
        Value::Date(d) => d.to_be_bytes().to_vec(),
        Value::Time(t) | Value::Timestamp(t) | Value::Timestamptz(t) => t.to_be_bytes().to_vec(),
        Value::Uuid(u) => u.to_vec(),
        Value::Jsonb(s) => {
            let mut out = Vec::with_capacity(1 + s.len());
            out.push(JSONB_VERSION);
            out.extend_from_slice(s.as_bytes());
            out
        }
    }
}

/// Bytes to feed a blind index: the canonical encoding, except that numeric values drop
/// trailing fractional zeros first ([`crate::Numeric::trimmed`]) so that `1.50` and `1.5` index equal.
/// Floats and jsonb are not searchable, so `-0.0` versus `0.0` does not arise.
pub fn index_input(value: &Value) -> Vec<u8> {
    match value {
        Value::Numeric(n) => encode_canonical(&Value::Numeric(n.trimmed())),
        other => encode_canonical(other),
    }
}

/// Encodes a value in PostgreSQL's binary wire format (result format 1). This is the canonical
/// encoding: the canonical form of every type is its send format.
pub fn encode_binary(value: &Value) -> Vec<u8> {
    encode_canonical(value)
}

fn malformed(ty: LogicalType, reason: &'static str) -> ValueError {
    ValueError::MalformedBinary { ty, reason }
}

fn fixed<const N: usize>(ty: LogicalType, bytes: &[u8]) -> Result<[u8; N], ValueError> {
    bytes
        .try_into()
        .map_err(|_| malformed(ty, "wrong length for this type"))
}

fn utf8(ty: LogicalType, bytes: &[u8]) -> Result<String, ValueError> {
    check_utf8(ty, bytes).map(str::to_owned)
}

/// `bytes` as a string, if they are one PostgreSQL can hold: UTF-8 without NUL.
pub(crate) fn check_utf8(ty: LogicalType, bytes: &[u8]) -> Result<&str, ValueError> {
    let s = std::str::from_utf8(bytes).map_err(|_| ValueError::CharacterNotInRepertoire { ty })?;
    if s.contains('\0') {
        return Err(ValueError::CharacterNotInRepertoire { ty });
    }
    Ok(s)
}

/// Shared decoding; `canonical` demands the exact canonical form instead of normalising.
fn decode(ty: LogicalType, bytes: &[u8], canonical: bool) -> Result<Value, ValueError> {
    Ok(match ty {
        LogicalType::Bool => {
            let [b] = fixed::<1>(ty, bytes)?;
            // boolrecv reads any non-zero byte as true; ours only ever holds 0 or 1.
            if canonical && b > 1 {
                return Err(malformed(ty, "boolean byte other than 0 or 1"));
            }
            Value::Bool(b != 0)
        }
        LogicalType::Int2 => Value::Int2(i16::from_be_bytes(fixed(ty, bytes)?)),
        LogicalType::Int4 => Value::Int4(i32::from_be_bytes(fixed(ty, bytes)?)),
        LogicalType::Int8 => Value::Int8(i64::from_be_bytes(fixed(ty, bytes)?)),
        LogicalType::Float4 => Value::Float4(f32::from_bits(u32::from_be_bytes(fixed(ty, bytes)?))),
        LogicalType::Float8 => Value::Float8(f64::from_bits(u64::from_be_bytes(fixed(ty, bytes)?))),
        LogicalType::Numeric => Value::Numeric(numeric::decode(bytes, canonical)?),
        LogicalType::Text => Value::Text(utf8(ty, bytes)?),
        LogicalType::Varchar => Value::Varchar(utf8(ty, bytes)?),
        LogicalType::Bytea => Value::Bytea(bytes.to_vec()),
        LogicalType::Date => {
            let d = i32::from_be_bytes(fixed(ty, bytes)?);
            if !datetime::date_is_valid(d) {
                return Err(ValueError::DatetimeOutOfRange { ty });
            }
            Value::Date(d)
        }
        LogicalType::Time => {
            let t = i64::from_be_bytes(fixed(ty, bytes)?);
            if !(0..=USECS_PER_DAY).contains(&t) {
                return Err(ValueError::DatetimeOutOfRange { ty });
            }
            Value::Time(t)
        }
        LogicalType::Timestamp | LogicalType::Timestamptz => {
            let t = i64::from_be_bytes(fixed(ty, bytes)?);
            if !datetime::timestamp_is_valid(t) {
                return Err(ValueError::DatetimeOutOfRange { ty });
            }
            if ty == LogicalType::Timestamp {
                Value::Timestamp(t)
            } else {
                Value::Timestamptz(t)
            }
        }
        LogicalType::Uuid => Value::Uuid(fixed(ty, bytes)?),
        LogicalType::Jsonb => {
            let (&version, rest) = bytes
                .split_first()
                .ok_or_else(|| malformed(ty, "missing version byte"))?;
            if version != JSONB_VERSION {
                return Err(malformed(ty, "unsupported jsonb version number"));
            }
            let text = utf8(ty, rest)?;
            if canonical {
                // Canonical plaintext is authenticated and was normalised when encrypted;
                // re-normalising every decrypted value would double the cost for nothing.
                Value::Jsonb(text)
            } else {
                Value::Jsonb(jsonb::normalise(&text)?)
            }
        }
    })
}

/// Decodes the canonical encoding of a value of type `ty` (the plaintext inside a ciphertext).
///
/// Strict: the bytes must be exactly what [`encode_canonical`] produces (numeric normalised,
/// boolean 0 or 1, dates and times within PostgreSQL's range, text UTF-8 without NUL).
pub fn decode_canonical(ty: LogicalType, bytes: &[u8]) -> Result<Value, ValueError> {
    decode(ty, bytes, true)
}

/// Decodes PostgreSQL's binary wire format (parameter format 1) as the type's receive function
/// does: validates ranges and encodings, normalises numeric (`numeric_recv`) and jsonb (version
/// 1 followed by JSON text, normalised as `jsonb_in`).
pub fn decode_binary(ty: LogicalType, bytes: &[u8]) -> Result<Value, ValueError> {
    decode(ty, bytes, false)
}
