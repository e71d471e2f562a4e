//! `real` and `double precision` text input and output (`float4in`/`float8in`,
//! `float4out`/`float8out`).

use crate::error::ValueError;
use crate::numeric::is_pg_space;
use crate::types::LogicalType;

/// Formats a `double precision` as `float8out` does for the given `extra_float_digits`.
pub(crate) fn format_f64(v: f64, extra_float_digits: i32) -> String {
    if let Some(s) = special(v.is_nan(), v.is_infinite(), v.is_sign_negative()) {
        return s.to_owned();
    }
    if extra_float_digits > 0 {
        // Shortest round-trip digits (Ryu in PostgreSQL); Rust's `{:e}` yields the same digits.
        shortest(&format!("{v:e}"), 15)
    } else {
        printf_g(&|p| format!("{v:.p$e}"), (15 + extra_float_digits).max(1))
    }
}

/// Formats a `real` as `float4out` does for the given `extra_float_digits`.
pub(crate) fn format_f32(v: f32, extra_float_digits: i32) -> String {
    if let Some(s) = special(v.is_nan(), v.is_infinite(), v.is_sign_negative()) {
        return s.to_owned();
    }
    if extra_float_digits > 0 {
        shortest(&format!("{v:e}"), 6)
    } else {
        // float4out widens to double before printf, so rounding happens on the exact value.
        let wide = f64::from(v);
        printf_g(&|p| format!("{wide:.p$e}"), (6 + extra_float_digits).max(1))
    }
}

fn special(nan: bool, inf: bool, negative: bool) -> Option<&'static str> {
    if nan {
        Some("NaN")
    } else if inf {
        Some(if negative { "-Infinity" } else { "Infinity" })
    } else {
        None
    }
}

/// Splits Rust's `{:e}` output (`-1.2345e-7`) into sign, digits without the point, exponent.
fn split_exp(s: &str) -> (bool, String, i32) {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    (negative, digits, exp.parse().unwrap_or(0))
}

/// Lays out shortest digits as PostgreSQL's Ryu output does: fixed notation when the decimal
/// exponent is in `-4..limit`, otherwise `d.ddde+XX`.
fn shortest(rust_exp: &str, limit: i32) -> String {
    let (negative, digits, exp) = split_exp(rust_exp);
    let digits = {
        let trimmed = digits.trim_end_matches('0');
        if trimmed.is_empty() {
            "0".to_owned()
        } else {
            trimmed.to_owned()
        }
    };
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if (-4..limit).contains(&exp) {
        fixed(&mut out, &digits, exp);
    } else {
        scientific(&mut out, &digits, exp);
    }
    out
}

fn fixed(out: &mut String, digits: &str, exp: i32) {
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else if exp + 1 >= n {
        out.push_str(digits);
        for _ in 0..(exp + 1 - n) {
            out.push('0');
        }
    } else {
        let split = usize::try_from(exp + 1).unwrap_or(0);
        out.push_str(&digits[..split]);
        out.push('.');
        out.push_str(&digits[split..]);
    }
}

fn scientific(out: &mut String, digits: &str, exp: i32) {
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
}

/// C's `%.{precision}g`: `render(p)` must give Rust's `{:.p$e}` of the value.
fn printf_g(render: &dyn Fn(usize) -> String, precision: i32) -> String {
    let p = usize::try_from(precision).unwrap_or(1);
    let (negative, digits, exp) = split_exp(&render(p - 1));
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= precision {
        scientific(&mut out, digits, exp);
    } else {
        fixed(&mut out, digits, exp);
    }
    out
}

fn syntax(ty: LogicalType) -> ValueError {
    ValueError::InvalidTextRepresentation {
        ty,
        hint: "expected a decimal number such as 1.5 or -2e-3, or NaN, Infinity, -Infinity",
    }
}

/// Checks the text against the decimal syntax `strtod` accepts (hexadecimal floats excepted)
/// and returns the trimmed number, or the special value it names.
fn scan(text: &str, ty: LogicalType) -> Result<Scanned<'_>, ValueError> {
    let t = text.trim_matches(is_pg_space);
    if t.is_empty() {
        return Err(syntax(ty));
    }
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let negative = t.starts_with('-');
    for (word, kind) in [
        ("infinity", Special::Inf),
        ("inf", Special::Inf),
        ("nan", Special::Nan),
    ] {
        if body.eq_ignore_ascii_case(word) {
            return Ok(Scanned::Special(kind, negative));
        }
    }
    let b = body.as_bytes();
    let mut i = 0;
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa_digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        mantissa_digits += i - frac_start;
    }
    if mantissa_digits == 0 {
        return Err(syntax(ty));
    }
    if b.get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"0x")) {
        // glibc's strtod reads hexadecimal floats; we refuse rather than guess.
        return Err(ValueError::InvalidTextRepresentation {
            ty,
            hint: "hexadecimal floating-point input is not supported; send a decimal number",
        });
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        // strtod stops before an exponent without digits, leaving it as trailing garbage.
        if j == exp_start {
            return Err(syntax(ty));
        }
        i = j;
    }
    if i != b.len() {
        return Err(syntax(ty));
    }
    let nonzero = body
        .split(['e', 'E'])
        .next()
        .is_some_and(|m| m.bytes().any(|c| matches!(c, b'1'..=b'9')));
    Ok(Scanned::Number(t, nonzero))
}

enum Special {
    Inf,
    Nan,
}

enum Scanned<'a> {
    Special(Special, bool),
    Number(&'a str, bool),
}

/// Parses `double precision` text as `float8in`.
pub(crate) fn parse_f64(text: &str) -> Result<f64, ValueError> {
    let ty = LogicalType::Float8;
    match scan(text, ty)? {
        Scanned::Special(Special::Nan, _) => Ok(f64::NAN),
        Scanned::Special(Special::Inf, neg) => Ok(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        Scanned::Number(t, nonzero) => {
            let v: f64 = t.parse().map_err(|_| syntax(ty))?;
            // strtod reports ERANGE on overflow and on underflow to zero.
            if v.is_infinite() || (v == 0.0 && nonzero) {
                return Err(ValueError::OutOfRange { ty });
            }
            Ok(v)
        }
    }
}

/// Parses `real` text as `float4in`.
pub(crate) fn parse_f32(text: &str) -> Result<f32, ValueError> {
    let ty = LogicalType::Float4;
    match scan(text, ty)? {
        Scanned::Special(Special::Nan, _) => Ok(f32::NAN),
        Scanned::Special(Special::Inf, neg) => Ok(if neg {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        }),
        Scanned::Number(t, nonzero) => {
            let v: f32 = t.parse().map_err(|_| syntax(ty))?;
            if v.is_infinite() || (v == 0.0 && nonzero) {
                return Err(ValueError::OutOfRange { ty });
            }
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float8_shortest_matches_postgres() {
        let cases: [(f64, &str); 14] = [
            (1.5, "1.5"),
            (1e20, "1e+20"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (123456789012345680000.0, "1.2345678901234568e+20"),
            (1e14, "100000000000000"),
            (1e15, "1e+15"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (-2.5e-300, "-2.5e-300"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (v, want) in cases {
            assert_eq!(format_f64(v, 1), want, "{v:e}");
        }
        assert_eq!(format_f64(f64::NAN, 1), "NaN");
        assert_eq!(format_f64(f64::NEG_INFINITY, 0), "-Infinity");
    }

    #[test]
    fn float4_shortest_matches_postgres() {
        assert_eq!(format_f32(1234567.0, 1), "1.234567e+06");
        assert_eq!(format_f32(100000.0, 1), "100000");
        assert_eq!(format_f32(0.1, 1), "0.1");
        assert_eq!(format_f32(0.1, 0), "0.1");
        assert_eq!(format_f32(0.1, 3), "0.1");
    }

    #[test]
    fn printf_g_for_low_extra_digits() {
        assert_eq!(format_f64(0.1, 0), "0.1");
        assert_eq!(format_f64(1.0 / 3.0, 0), "0.333333333333333");
        assert_eq!(format_f64(1e15, 0), "1e+15");
        assert_eq!(format_f64(123456.0, -10), "1.2346e+05");
        assert_eq!(format_f64(0.125, -13), "0.12");
        assert_eq!(format_f64(1e-5, 0), "1e-05");
        assert_eq!(format_f64(100.0, -14), "1e+02");
    }

    #[test]
    fn input_like_float8in() {
        assert_eq!(parse_f64(" 1.5 ").ok(), Some(1.5));
        assert_eq!(parse_f64("-inf").ok(), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64("Infinity").ok(), Some(f64::INFINITY));
        assert!(parse_f64("NaN").is_ok_and(f64::is_nan));
        assert_eq!(parse_f64(".5e1").ok(), Some(5.0));
        assert_eq!(parse_f64("5.").ok(), Some(5.0));
        for bad in ["", " ", "1e", "abc", "1.5x", "0x10", ". 5", "1 2", "--1"] {
            assert_eq!(
                parse_f64(bad).map_err(|e| e.sqlstate()),
                Err("22P02"),
                "{bad:?}"
            );
        }
        assert_eq!(parse_f64("1e309").map_err(|e| e.sqlstate()), Err("22003"));
        assert_eq!(parse_f64("1e-400").map_err(|e| e.sqlstate()), Err("22003"));
        assert_eq!(parse_f64("0e-400").ok(), Some(0.0));
        assert_eq!(parse_f32("1e39").map_err(|e| e.sqlstate()), Err("22003"));
    }
}
