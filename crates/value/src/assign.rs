//! PostgreSQL's assignment casts between the supported types.
//!
//! A client may bind a value of one type to a column of another: psycopg declares a Python `int`
//! as `int2`, `int4` or `int8` by its magnitude and a `float` as `float8`, whatever the column.
//! PostgreSQL converts such a parameter with the *assignment* cast from the declared type to the
//! column's; the proxy must convert it the same way before it encrypts, since the server only
//! ever sees ciphertext. Conversions that depend on the session (timestamps and time zones, text
//! output) reuse this crate's text formats, which match the server's byte for byte, so each
//! conversion gives the value the server's own cast would give.

use crate::{
    format_text, parse_text, DateOrder, DateOutputStyle, DateStyle, LogicalType, Numeric,
    SessionSettings, Value, ValueError,
};

/// Whether PostgreSQL assigns a value of type `from` to a column of type `to` (an implicit or
/// assignment cast exists, or every type's I/O conversion to text).
pub fn is_assignable(from: LogicalType, to: LogicalType) -> bool {
    use LogicalType::*;
    if from == to || matches!(to, Text | Varchar) {
        return true;
    }
    match from {
        Int2 | Int4 | Int8 => matches!(to, Int2 | Int4 | Int8 | Float4 | Float8 | Numeric),
        Float4 | Float8 => matches!(to, Int2 | Int4 | Int8 | Float4 | Float8 | Numeric),
        Numeric => matches!(to, Int2 | Int4 | Int8 | Float4 | Float8),
        Text | Varchar => false,
        Date => matches!(to, Timestamp | Timestamptz),
        Timestamp => matches!(to, Date | Time | Timestamptz),
        Timestamptz => matches!(to, Date | Time | Timestamp),
        Bool | Bytea | Time | Uuid | Jsonb => false,
    }
}

/// Converts `value` to `target` as PostgreSQL's assignment cast would in this session.
///
/// # Errors
/// [`ValueError::OutOfRange`] when the value does not fit the target (22003), and
/// [`ValueError::InvalidParameterValue`] when no assignment cast exists or the value cannot be
/// converted (NaN or infinity to an integer).
pub fn assign(
    value: Value,
    target: LogicalType,
    session: &SessionSettings,
) -> Result<Value, ValueError> {
    let from = value.logical_type();
    if from == target {
        return Ok(value);
    }
    if !is_assignable(from, target) {
        return Err(ValueError::InvalidParameterValue {
            ty: target,
            reason: "the value's type has no assignment cast to the column's type",
        });
    }
    let out_of_range = || ValueError::OutOfRange { ty: target };
    match (value, target) {
        (Value::Text(s), LogicalType::Varchar) => Ok(Value::Varchar(s)),
        (Value::Varchar(s), LogicalType::Text) => Ok(Value::Text(s)),
        (v, LogicalType::Text) => Ok(Value::Text(format_text(&v, session))),
        (v, LogicalType::Varchar) => Ok(Value::Varchar(format_text(&v, session))),

        (Value::Int2(i), t) => from_integer(i64::from(i), t),
        (Value::Int4(i), t) => from_integer(i64::from(i), t),
        (Value::Int8(i), t) => from_integer(i, t),

        (Value::Float4(f), LogicalType::Float8) => Ok(Value::Float8(f64::from(f))),
        (Value::Float8(f), LogicalType::Float4) => {
            // float8_to_float4: overflow and underflow are errors, not infinities or zeros.
            let narrowed = f as f32;
            if (narrowed.is_infinite() && f.is_finite()) || (narrowed == 0.0 && f != 0.0) {
                return Err(out_of_range());
            }
            Ok(Value::Float4(narrowed))
        }
        (Value::Float4(f), t @ (LogicalType::Int2 | LogicalType::Int4 | LogicalType::Int8)) => {
            float_to_integer(f64::from(f), t)
        }
        (Value::Float8(f), t @ (LogicalType::Int2 | LogicalType::Int4 | LogicalType::Int8)) => {
            float_to_integer(f, t)
        }
        // float4_numeric / float8_numeric print FLT_DIG / DBL_DIG significant digits and read
        // them back: exactly format_text with extra_float_digits = 0.
        (v @ (Value::Float4(_) | Value::Float8(_)), LogicalType::Numeric) => {
            let mut short = session.clone();
            short.extra_float_digits = 0;
            parse_text(LogicalType::Numeric, &format_text(&v, &short), session)
        }

        // numeric_float4/8 print the numeric and read it as a float.
        (Value::Numeric(n), t @ (LogicalType::Float4 | LogicalType::Float8)) => {
            parse_text(t, &n.to_string(), session)
        }
        (Value::Numeric(n), t) => numeric_to_integer(&n, t),

        (Value::Date(days), LogicalType::Timestamp) => date_to_timestamp(days, target),
        (v, t) => via_iso_text(&v, t, session),
    }
}

fn from_integer(i: i64, target: LogicalType) -> Result<Value, ValueError> {
    let out_of_range = || ValueError::OutOfRange { ty: target };
    Ok(match target {
        LogicalType::Int2 => Value::Int2(i16::try_from(i).map_err(|_| out_of_range())?),
        LogicalType::Int4 => Value::Int4(i32::try_from(i).map_err(|_| out_of_range())?),
        LogicalType::Int8 => Value::Int8(i),
        // (float4) / (float8) casts in the server: round to nearest.
        LogicalType::Float4 => Value::Float4(i as f32),
        LogicalType::Float8 => Value::Float8(i as f64),
        LogicalType::Numeric => Value::Numeric(
            i.to_string()
                .parse::<Numeric>()
                .map_err(|_| out_of_range())?,
        ),
        _ => {
            return Err(ValueError::InvalidParameterValue {
                ty: target,
                reason: "an integer has no assignment cast to the column's type",
            })
        }
    })
}

fn float_to_integer(f: f64, target: LogicalType) -> Result<Value, ValueError> {
    // dtoi2/dtoi4/dtoi8: rint (ties to even), then a range check; NaN is out of range.
    if !f.is_finite() {
        return Err(ValueError::OutOfRange { ty: target });
    }
    let rounded = f.round_ties_even();
    // i64's range is not exactly representable in f64: compare against 2^63 as PostgreSQL does.
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&rounded) {
        return Err(ValueError::OutOfRange { ty: target });
    }
    from_integer(rounded as i64, target)
}

fn numeric_to_integer(n: &Numeric, target: LogicalType) -> Result<Value, ValueError> {
    if n.is_nan() || n.is_infinite() {
        return Err(ValueError::InvalidParameterValue {
            ty: target,
            reason: "NaN and infinity cannot be converted to an integer",
        });
    }
    // numeric_int*: round half away from zero, then check the range.
    let text = n.to_string();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let mut magnitude: i128 = whole
        .parse()
        .map_err(|_| ValueError::OutOfRange { ty: target })?;
    if fraction.as_bytes().first().is_some_and(|d| *d >= b'5') {
        magnitude += 1;
    }
    let signed = if negative { -magnitude } else { magnitude };
    let value = i64::try_from(signed).map_err(|_| ValueError::OutOfRange { ty: target })?;
    from_integer(value, target)
}

fn date_to_timestamp(days: i32, target: LogicalType) -> Result<Value, ValueError> {
    match days {
        i32::MAX => Ok(Value::Timestamp(i64::MAX)),
        i32::MIN => Ok(Value::Timestamp(i64::MIN)),
        _ => i64::from(days)
            .checked_mul(86_400_000_000)
            .map(Value::Timestamp)
            .ok_or(ValueError::DatetimeOutOfRange { ty: target }),
    }
}

/// Date/time conversions that depend on the session's time zone: print the value in ISO style
/// and read it back as the target, which is what the server's casts amount to (a timestamp read
/// in the session zone; a timestamptz seen in the session zone; a date at local midnight).
fn via_iso_text(
    value: &Value,
    target: LogicalType,
    session: &SessionSettings,
) -> Result<Value, ValueError> {
    let mut iso = session.clone();
    iso.date_style = DateStyle {
        output: DateOutputStyle::Iso,
        order: DateOrder::Ymd,
    };
    let text = format_text(value, &iso);
    let text = match (value, target) {
        // The local date and time of a timestamp; its zone (if any) is dropped by the target.
        (Value::Timestamp(_) | Value::Timestamptz(_), LogicalType::Date) => {
            if is_infinity(&text) {
                text
            } else {
                let date = text.split(' ').next().unwrap_or_default();
                let era = if text.ends_with(" BC") { " BC" } else { "" };
                format!("{date}{era}")
            }
        }
        (Value::Timestamp(_) | Value::Timestamptz(_), LogicalType::Time) => {
            if is_infinity(&text) {
                return Err(ValueError::DatetimeOutOfRange { ty: target });
            }
            let time = text.split(' ').nth(1).unwrap_or_default();
            // A timestamptz prints its offset after the time: cut it.
            time.split(['+', '-']).next().unwrap_or_default().to_owned()
        }
        (Value::Timestamptz(_), LogicalType::Timestamp) => {
            if is_infinity(&text) {
                text
            } else {
                strip_offset(&text)
            }
        }
        _ => text,
    };
    parse_text(target, &text, &iso)
}

fn is_infinity(text: &str) -> bool {
    text.ends_with("infinity")
}

/// Removes the trailing `+01`, `-05:30` offset of an ISO timestamptz (and keeps a trailing ` BC`).
fn strip_offset(text: &str) -> String {
    let (body, era) = match text.strip_suffix(" BC") {
        Some(body) => (body, " BC"),
        None => (text, ""),
    };
    let time_start = body.find(' ').map(|i| i + 1).unwrap_or(0);
    let offset_at = body[time_start..]
        .find(['+', '-'])
        .map(|i| i + time_start)
        .unwrap_or(body.len());
    format!("{}{era}", &body[..offset_at])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionSettings {
        SessionSettings::default()
    }

    #[test]
    fn integers_widen_and_narrow_with_range_checks() {
        let s = session();
        assert_eq!(
            assign(Value::Int2(7), LogicalType::Int8, &s),
            Ok(Value::Int8(7))
        );
        assert_eq!(
            assign(Value::Int8(70_000), LogicalType::Int4, &s),
            Ok(Value::Int4(70_000))
        );
        assert_eq!(
            assign(Value::Int8(70_000), LogicalType::Int2, &s),
            Err(ValueError::OutOfRange {
                ty: LogicalType::Int2
            })
        );
        assert_eq!(
            assign(Value::Int4(-3), LogicalType::Numeric, &s),
            Ok(Value::Numeric("-3".parse().unwrap()))
        );
    }

    #[test]
    fn floats_follow_the_server_casts() {
        let s = session();
        assert_eq!(
            assign(Value::Float8(2.5), LogicalType::Int4, &s),
            Ok(Value::Int4(2))
        );
        assert_eq!(
            assign(Value::Float8(3.5), LogicalType::Int4, &s),
            Ok(Value::Int4(4))
        );
        assert!(assign(Value::Float8(f64::NAN), LogicalType::Int8, &s).is_err());
        assert!(assign(Value::Float8(1e300), LogicalType::Float4, &s).is_err());
        assert!(assign(Value::Float8(1e-300), LogicalType::Float4, &s).is_err());
        assert_eq!(
            assign(Value::Float8(0.1), LogicalType::Numeric, &s),
            Ok(Value::Numeric("0.1".parse().unwrap()))
        );
        assert_eq!(
            assign(
                Value::Numeric("2.5".parse().unwrap()),
                LogicalType::Int4,
                &s
            ),
            Ok(Value::Int4(3))
        );
        assert_eq!(
            assign(
                Value::Numeric("-2.5".parse().unwrap()),
                LogicalType::Int8,
                &s
            ),
            Ok(Value::Int8(-3))
        );
    }

    #[test]
    fn anything_assigns_to_text_and_nothing_else_to_bool() {
        let s = session();
        assert_eq!(
            assign(Value::Int4(42), LogicalType::Text, &s),
            Ok(Value::Text("42".into()))
        );
        assert!(assign(Value::Int4(1), LogicalType::Bool, &s).is_err());
        assert!(assign(Value::Text("1".into()), LogicalType::Int4, &s).is_err());
    }

    #[test]
    fn timestamps_convert_in_the_session_zone() {
        let mut s = session();
        s.apply_parameter("TimeZone", "Europe/Paris").unwrap();
        let local = parse_text(LogicalType::Timestamp, "2024-07-01 12:00:00", &s).unwrap();
        let tz = assign(local.clone(), LogicalType::Timestamptz, &s).unwrap();
        assert_eq!(format_text(&tz, &s), "2024-07-01 12:00:00+02");
        assert_eq!(assign(tz.clone(), LogicalType::Timestamp, &s), Ok(local));
        assert_eq!(
            format_text(&assign(tz.clone(), LogicalType::Date, &s).unwrap(), &s),
            "2024-07-01"
        );
        assert_eq!(
            format_text(&assign(tz, LogicalType::Time, &s).unwrap(), &s),
            "12:00:00"
        );
        let date = parse_text(LogicalType::Date, "2024-01-02", &s).unwrap();
        assert_eq!(
            format_text(
                &assign(date.clone(), LogicalType::Timestamptz, &s).unwrap(),
                &s
            ),
            "2024-01-02 00:00:00+01"
        );
        assert_eq!(
            format_text(&assign(date, LogicalType::Timestamp, &s).unwrap(), &s),
            "2024-01-02 00:00:00"
        );
    }
}
