//! PostgreSQL's text format: `parse_text` (the types' input functions) and `format_text`
//! (their output functions under the session's settings).

use crate::datetime;
use crate::error::ValueError;
use crate::float;
use crate::jsonb;
use crate::numeric::{is_pg_space, Numeric};
use crate::session::{ByteaOutput, SessionSettings};
use crate::types::{LogicalType, Value};

/// Parses PostgreSQL text format as the type's input function does.
///
/// Accepts what PostgreSQL 15 accepts for the forms clients send, and refuses the rest with
/// the SQLSTATE PostgreSQL would report, never guessing:
///
/// * `bool`: `t`, `true`, `yes`, `on`, `1` and the negatives, any case, unique prefixes.
/// * integers: optional sign and surrounding white space; no underscores or hex (PostgreSQL 16
///   syntax).
/// * floats: decimal notation, `NaN`, `Infinity`, `inf`; glibc's hexadecimal floats are refused.
/// * `date`/`time`/`timestamp`/`timestamptz`: ISO 8601 (`2024-03-01`, `2024-03-01T13:45:00.5`,
///   with `Z`, `+02`, `+05:30`, `-0800` or an IANA zone name such as `Europe/Paris`), the
///   numeric forms of the session `DateStyle` (`03/01/2024`, `01.03.2024`, `01-03-2024`), the
///   `Postgres` style (`Fri Mar 01 13:45:00 2024 CET`), `BC`/`AD`, `infinity`, `-infinity`,
///   `epoch`, `allballs`, and every output of [`format_text`] that PostgreSQL itself reads back.
///   Refused with SQLSTATE 22007: values relative to the clock (`now`, `today`), zone
///   abbreviations whose offset depends on the server's `timezone_abbreviations` or on zone
///   history (`EST`, `CST`, `IST`, `MSK`, `LMT`), and any other form (free-form month names,
///   Julian dates, ...).
/// * `uuid`: hex digits with optional braces and a hyphen after any group of four.
/// * `bytea`: `\x` hex or the escape format.
/// * `jsonb`: normalised as `jsonb_in` does.
pub fn parse_text(
    ty: LogicalType,
    text: &str,
    session: &SessionSettings,
) -> Result<Value, ValueError> {
    let style = session.date_style;
    Ok(match ty {
        LogicalType::Bool => Value::Bool(parse_bool(text)?),
        LogicalType::Int2 => Value::Int2(
            i16::try_from(parse_int(text, ty)?).map_err(|_| ValueError::OutOfRange { ty })?,
        ),
        LogicalType::Int4 => Value::Int4(
            i32::try_from(parse_int(text, ty)?).map_err(|_| ValueError::OutOfRange { ty })?,
        ),
        LogicalType::Int8 => Value::Int8(parse_int(text, ty)?),
        LogicalType::Float4 => Value::Float4(float::parse_f32(text)?),
        LogicalType::Float8 => Value::Float8(float::parse_f64(text)?),
        LogicalType::Numeric => Value::Numeric(text.parse::<Numeric>()?),
        LogicalType::Text => Value::Text(check_text(text, ty)?.to_owned()),
        LogicalType::Varchar => Value::Varchar(check_text(text, ty)?.to_owned()),
        LogicalType::Bytea => Value::Bytea(parse_bytea(text)?),
        LogicalType::Date => Value::Date(datetime::parse_date(text, style)?),
        LogicalType::Time => Value::Time(datetime::parse_time(text, style)?),
        LogicalType::Timestamp => Value::Timestamp(datetime::parse_timestamp(text, style)?),
        LogicalType::Timestamptz => Value::Timestamptz(datetime::parse_timestamptz(
            text,
            style,
            &session.time_zone,
        )?),
        LogicalType::Uuid => Value::Uuid(parse_uuid(text)?),
        LogicalType::Jsonb => Value::Jsonb(jsonb::normalise(check_text(text, ty)?)?),
    })
}

/// Formats a value as the type's output function does under `session`, byte for byte.
pub fn format_text(value: &Value, session: &SessionSettings) -> String {
    let style = session.date_style;
    match value {
        Value::Bool(b) => (if *b { "t" } else { "f" }).to_owned(),
        Value::Int2(v) => v.to_string(),
        Value::Int4(v) => v.to_string(),
        Value::Int8(v) => v.to_string(),
        Value::Float4(v) => float::format_f32(*v, session.extra_float_digits),
        Value::Float8(v) => float::format_f64(*v, session.extra_float_digits),
        Value::Numeric(n) => n.to_string(),
        Value::Text(s) | Value::Varchar(s) | Value::Jsonb(s) => s.clone(),
        Value::Bytea(b) => format_bytea(b, session.bytea_output),
        Value::Date(d) => datetime::format_date(*d, style),
        Value::Time(t) => datetime::format_time(*t),
        Value::Timestamp(t) => datetime::format_timestamp(*t, style),
        Value::Timestamptz(t) => datetime::format_timestamptz(*t, style, &session.time_zone),
        Value::Uuid(u) => format_uuid(u),
    }
}

/// Text must be free of NUL, which PostgreSQL cannot store in text.
pub(crate) fn check_text(text: &str, ty: LogicalType) -> Result<&str, ValueError> {
    if text.contains('\0') {
        return Err(ValueError::CharacterNotInRepertoire { ty });
    }
    Ok(text)
}

/// `parse_bool_with_len`.
fn parse_bool(text: &str) -> Result<bool, ValueError> {
    let t = text.trim_matches(is_pg_space).to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| t.len() >= min && word.starts_with(t.as_str());
    let result = match t.as_bytes().first() {
        Some(b't') if prefix_of("true", 1) => Some(true),
        Some(b'y') if prefix_of("yes", 1) => Some(true),
        Some(b'f') if prefix_of("false", 1) => Some(false),
        Some(b'n') if prefix_of("no", 1) => Some(false),
        // "o" alone is ambiguous between on and off.
        Some(b'o') if prefix_of("on", 2) => Some(true),
        Some(b'o') if prefix_of("off", 2) => Some(false),
        Some(b'1') if t.len() == 1 => Some(true),
        Some(b'0') if t.len() == 1 => Some(false),
        _ => None,
    };
    result.ok_or(ValueError::InvalidTextRepresentation {
        ty: LogicalType::Bool,
        hint: "expected true/false, yes/no, on/off, 1/0 or a unique prefix",
    })
}

/// `pg_strtoint16/32/64` (PostgreSQL 15: decimal only).
fn parse_int(text: &str, ty: LogicalType) -> Result<i64, ValueError> {
    let syntax = || ValueError::InvalidTextRepresentation {
        ty,
        hint: "expected decimal digits with an optional sign",
    };
    let t = text.trim_matches(is_pg_space);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut acc: i64 = 0;
    for b in digits.bytes() {
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_sub(i64::from(b - b'0')))
            .ok_or(ValueError::OutOfRange { ty })?;
    }
    if negative {
        Ok(acc)
    } else {
        acc.checked_neg().ok_or(ValueError::OutOfRange { ty })
    }
}

/// `byteain`: `\x` hex (white space allowed between digit pairs) or the escape format.
fn parse_bytea(text: &str) -> Result<Vec<u8>, ValueError> {
    let ty = LogicalType::Bytea;
    let b = text.as_bytes();
    if b.len() >= 2 && b[0] == b'\\' && b[1] == b'x' {
        let mut out = Vec::with_capacity((b.len() - 2) / 2);
        let mut i = 2;
        while i < b.len() {
            if matches!(b[i], b' ' | b'\n' | b'\t' | b'\r') {
                i += 1;
                continue;
            }
            let hi = hex_value(b[i]).ok_or(ValueError::InvalidParameterValue {
                ty,
                reason: "invalid hexadecimal digit",
            })?;
            let lo = match b.get(i + 1) {
                None => {
                    return Err(ValueError::InvalidParameterValue {
                        ty,
                        reason: "invalid hexadecimal data: odd number of digits",
                    })
                }
                Some(&c) => hex_value(c).ok_or(ValueError::InvalidParameterValue {
                    ty,
                    reason: "invalid hexadecimal digit",
                })?,
            };
            out.push(hi << 4 | lo);
            i += 2;
        }
        return Ok(out);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let (Some(&a), Some(&m), Some(&c)) = (b.get(i + 1), b.get(i + 2), b.get(i + 3)) {
            if !(b'0'..=b'3').contains(&a)
                || !(b'0'..=b'7').contains(&m)
                || !(b'0'..=b'7').contains(&c)
            {
                return Err(bytea_syntax());
            }
            out.push(((a - b'0') << 6) | ((m - b'0') << 3) | (c - b'0'));
            i += 4;
        } else {
            return Err(bytea_syntax());
        }
    }
    Ok(out)
}

fn bytea_syntax() -> ValueError {
    ValueError::InvalidTextRepresentation {
        ty: LogicalType::Bytea,
        hint: "use \\x followed by hex digits, or escape backslashes as \\\\ and bytes as \\ooo",
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `byteaout`.
fn format_bytea(bytes: &[u8], output: ByteaOutput) -> String {
    match output {
        ByteaOutput::Hex => {
            let mut out = String::with_capacity(2 + 2 * bytes.len());
            out.push_str("\\x");
            for &b in bytes {
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            out
        }
        ByteaOutput::Escape => {
            let mut out = String::with_capacity(bytes.len());
            for &b in bytes {
                if b == b'\\' {
                    out.push_str("\\\\");
                } else if !(0x20..=0x7e).contains(&b) {
                    out.push('\\');
                    out.push(char::from(b'0' + (b >> 6)));
                    out.push(char::from(b'0' + ((b >> 3) & 7)));
                    out.push(char::from(b'0' + (b & 7)));
                } else {
                    out.push(char::from(b));
                }
            }
            out
        }
    }
}

/// `string_to_uuid`.
fn parse_uuid(text: &str) -> Result<[u8; 16], ValueError> {
    let syntax = || ValueError::InvalidTextRepresentation {
        ty: LogicalType::Uuid,
        hint:
            "expected 32 hex digits, optionally in braces and with hyphens between groups of four",
    };
    let b = text.as_bytes();
    let mut i = 0;
    let braces = b.first() == Some(&b'{');
    if braces {
        i += 1;
    }
    let mut out = [0u8; 16];
    for (k, slot) in out.iter_mut().enumerate() {
        let hi = b.get(i).copied().and_then(hex_value).ok_or_else(syntax)?;
        let lo = b
            .get(i + 1)
            .copied()
            .and_then(hex_value)
            .ok_or_else(syntax)?;
        *slot = hi << 4 | lo;
        i += 2;
        if b.get(i) == Some(&b'-') && k % 2 == 1 && k < 15 {
            i += 1;
        }
    }
    if braces {
        if b.get(i) != Some(&b'}') {
            return Err(syntax());
        }
        i += 1;
    }
    if i != b.len() {
        return Err(syntax());
    }
    Ok(out)
}

fn format_uuid(u: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (k, &b) in u.iter().enumerate() {
        if matches!(k, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}
