//! PostgreSQL `numeric`: exact decimal numbers in base-10000 digits.

use std::fmt;
use std::str::FromStr;

use crate::error::ValueError;
use crate::types::LogicalType;

/// Base of a numeric digit (`NBASE` in PostgreSQL).
const NBASE: u16 = 10_000;
/// Largest display scale PostgreSQL stores (`NUMERIC_DSCALE_MAX`).
pub(crate) const DSCALE_MAX: u16 = 0x3FFF;
/// Upper bound on the digit count `numeric_recv` accepts
/// (`NUMERIC_MAX_PRECISION + NUMERIC_MAX_RESULT_SCALE`).
const RECV_MAX_DIGITS: usize = 1000 + 2000;

pub(crate) const SIGN_POS: u16 = 0x0000;
pub(crate) const SIGN_NEG: u16 = 0x4000;
pub(crate) const SIGN_NAN: u16 = 0xC000;
pub(crate) const SIGN_PINF: u16 = 0xD000;
pub(crate) const SIGN_NINF: u16 = 0xF000;

/// A PostgreSQL `numeric`: NaN, ±Infinity, or a finite decimal with a display scale.
///
/// Finite values are kept as PostgreSQL keeps them: a sign, the weight of the first base-10000
/// digit, the display scale (`dscale`, digits shown after the decimal point) and base-10000 digits
/// with no leading or trailing zero digit. Zero has no digits, weight 0 and a positive sign.
/// Two values compare equal only if their display scale is equal too (`1.50` is not `1.5` here,
/// as their text forms differ); [`Numeric::trimmed`] gives the form used for equality search.
///
/// `Display` and `FromStr` follow PostgreSQL's `numeric_out` and `numeric_in`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Numeric {
    repr: Repr,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Repr {
    NaN,
    PosInf,
    NegInf,
    Finite {
        negative: bool,
        weight: i16,
        dscale: u16,
        digits: Vec<u16>,
    },
}

impl Numeric {
    /// Not-a-number.
    pub const NAN: Numeric = Numeric { repr: Repr::NaN };
    /// Positive infinity.
    pub const INFINITY: Numeric = Numeric { repr: Repr::PosInf };
    /// Negative infinity.
    pub const NEG_INFINITY: Numeric = Numeric { repr: Repr::NegInf };

    /// Zero with the given display scale (`0`, `0.0`, `0.00`, ...).
    ///
    /// Returns `None` if `dscale` exceeds PostgreSQL's maximum display scale (16383).
    pub fn zero(dscale: u16) -> Option<Numeric> {
        (dscale <= DSCALE_MAX).then_some(Numeric {
            repr: Repr::Finite {
                negative: false,
                weight: 0,
                dscale,
                digits: Vec::new(),
            },
        })
    }

    /// Builds a finite value from PostgreSQL's binary fields, normalising as `numeric_recv`
    /// does: digits hidden by `dscale` are truncated, leading and trailing zero digits stripped.
    ///
    /// `negative` is ignored for zero. Fails if a digit is not below 10000, the display scale is
    /// above 16383 or the weight leaves PostgreSQL's range.
    pub fn from_parts(
        negative: bool,
        weight: i16,
        dscale: u16,
        digits: &[u16],
    ) -> Result<Numeric, ValueError> {
        if dscale > DSCALE_MAX {
            return Err(malformed("display scale above 16383"));
        }
        if digits.iter().any(|&d| d >= NBASE) {
            return Err(malformed("digit not below 10000"));
        }
        Self::normalise(negative, i32::from(weight), dscale, digits.to_vec())
    }

    /// True for NaN.
    pub fn is_nan(&self) -> bool {
        matches!(self.repr, Repr::NaN)
    }

    /// True for positive or negative infinity.
    pub fn is_infinite(&self) -> bool {
        matches!(self.repr, Repr::PosInf | Repr::NegInf)
    }

    /// The display scale (digits after the decimal point in the text form); 0 for special values.
    pub fn dscale(&self) -> u16 {
        match &self.repr {
            Repr::Finite { dscale, .. } => *dscale,
            _ => 0,
        }
    }

    /// The same number with the display scale reduced so that the text form has no trailing
    /// fractional zeros (`1.50` → `1.5`, `2.000` → `2`). Blind indexes use this form so that
    /// values equal in SQL (`1.50 = 1.5`) index equal.
    pub fn trimmed(&self) -> Numeric {
        match &self.repr {
            Repr::Finite {
                negative,
                weight,
                digits,
                ..
            } => {
                let dscale = match digits.last() {
                    None => 0,
                    Some(&last) => {
                        // Fractional decimal digits actually present: base-10000 digits after
                        // the point, minus the trailing zeros of the last one.
                        let frac_groups = i32::try_from(digits.len()).unwrap_or(i32::MAX)
                            - 1
                            - i32::from(*weight);
                        let mut trailing = 0;
                        let mut d = last;
                        while d % 10 == 0 && trailing < 4 {
                            d /= 10;
                            trailing += 1;
                        }
                        let frac = frac_groups * 4 - trailing;
                        u16::try_from(frac.max(0)).unwrap_or(DSCALE_MAX)
                    }
                };
                Numeric {
                    repr: Repr::Finite {
                        negative: *negative,
                        weight: *weight,
                        dscale,
                        digits: digits.clone(),
                    },
                }
            }
            _ => self.clone(),
        }
    }

    /// The sign word of the binary form.
    pub(crate) fn sign_word(&self) -> u16 {
        match &self.repr {
            Repr::NaN => SIGN_NAN,
            Repr::PosInf => SIGN_PINF,
            Repr::NegInf => SIGN_NINF,
            Repr::Finite { negative: true, .. } => SIGN_NEG,
            Repr::Finite { .. } => SIGN_POS,
        }
    }

    /// `(weight, dscale, digits)`; special values have no digits.
    pub(crate) fn binary_parts(&self) -> (i16, u16, &[u16]) {
        match &self.repr {
            Repr::Finite {
                weight,
                dscale,
                digits,
                ..
            } => (*weight, *dscale, digits),
            // numeric_send reads the display scale out of the special value's short header:
            // 32 for the infinities, 0 for NaN.
            Repr::PosInf | Repr::NegInf => (0, 32, &[]),
            Repr::NaN => (0, 0, &[]),
        }
    }

    /// The special value a binary sign word denotes.
    pub(crate) fn special_from_sign(sign: u16) -> Option<Numeric> {
        match sign {
            SIGN_NAN => Some(Numeric::NAN),
            SIGN_PINF => Some(Numeric::INFINITY),
            SIGN_NINF => Some(Numeric::NEG_INFINITY),
            _ => None,
        }
    }

    /// Truncates digits hidden by `dscale`, strips zero digits and checks PostgreSQL's limits.
    fn normalise(
        negative: bool,
        weight: i32,
        dscale: u16,
        mut digits: Vec<u16>,
    ) -> Result<Numeric, ValueError> {
        // Digits past the display scale are invisible; numeric_recv drops them (trunc_var).
        let keep_groups = weight + 1 + (i32::from(dscale) + 3) / 4;
        if keep_groups <= 0 {
            digits.clear();
        } else if let Ok(keep) = usize::try_from(keep_groups) {
            if digits.len() > keep {
                digits.truncate(keep);
            }
            let boundary_kept = keep == digits.len();
            if let Some(last) = digits.last_mut() {
                if boundary_kept && !dscale.is_multiple_of(4) {
                    // Only whole decimal places up to dscale survive in the last group.
                    let cut = 10u16.pow(4 - u32::from(dscale % 4));
                    *last -= *last % cut;
                }
            }
        }
        let mut weight = weight;
        let lead = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..lead);
        weight -= i32::try_from(lead).unwrap_or(i32::MAX);
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Ok(Numeric {
                repr: Repr::Finite {
                    negative: false,
                    weight: 0,
                    dscale,
                    digits,
                },
            });
        }
        let weight = i16::try_from(weight).map_err(|_| ValueError::OutOfRange {
            ty: LogicalType::Numeric,
        })?;
        Ok(Numeric {
            repr: Repr::Finite {
                negative,
                weight,
                dscale,
                digits,
            },
        })
    }
}

fn malformed(reason: &'static str) -> ValueError {
    ValueError::MalformedBinary {
        ty: LogicalType::Numeric,
        reason,
    }
}

fn syntax() -> ValueError {
    ValueError::InvalidTextRepresentation {
        ty: LogicalType::Numeric,
        hint: "numeric accepts digits with an optional sign, decimal point and exponent, or NaN, Infinity, -Infinity",
    }
}

/// PostgreSQL's `isspace` set (C locale).
pub(crate) fn is_pg_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}')
}

impl FromStr for Numeric {
    type Err = ValueError;

    /// Parses as PostgreSQL 15's `numeric_in` (without a type modifier).
    fn from_str(s: &str) -> Result<Numeric, ValueError> {
        let t = s.trim_start_matches(is_pg_space);
        let special = [
            ("nan", Numeric::NAN),
            ("infinity", Numeric::INFINITY),
            ("+infinity", Numeric::INFINITY),
            ("-infinity", Numeric::NEG_INFINITY),
            ("inf", Numeric::INFINITY),
            ("+inf", Numeric::INFINITY),
            ("-inf", Numeric::NEG_INFINITY),
        ];
        for (word, value) in special {
            if t.len() >= word.len()
                && t.is_char_boundary(word.len())
                && t[..word.len()].eq_ignore_ascii_case(word)
            {
                if t[word.len()..].chars().all(is_pg_space) {
                    return Ok(value);
                }
                return Err(syntax());
            }
        }
        let b = t.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&c) = b.first() {
            if c == b'+' || c == b'-' {
                negative = c == b'-';
                i += 1;
            }
        }
        let mut decimal: Vec<u8> = Vec::new();
        let mut int_digits: i64 = 0;
        let mut frac_digits: i64 = 0;
        let mut have_dp = false;
        let mut any_digit = false;
        while i < b.len() {
            match b[i] {
                c @ b'0'..=b'9' => {
                    any_digit = true;
                    decimal.push(c - b'0');
                    if have_dp {
                        frac_digits += 1;
                    } else {
                        int_digits += 1;
                    }
                }
                b'.' if !have_dp => have_dp = true,
                _ => break,
            }
            i += 1;
        }
        if !any_digit {
            return Err(syntax());
        }
        let mut exponent: i64 = 0;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            // strtol: optional white space, optional sign, digits.
            while i < b.len() && is_pg_space(char::from(b[i])) {
                i += 1;
            }
            let mut exp_negative = false;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                exp_negative = b[i] == b'-';
                i += 1;
            }
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                exponent = exponent
                    .saturating_mul(10)
                    .saturating_add(i64::from(b[i] - b'0'));
                i += 1;
            }
            if i == start {
                return Err(syntax());
            }
            if exp_negative {
                exponent = -exponent;
            }
            if exponent.abs() >= i64::from(i32::MAX / 2) {
                return Err(ValueError::OutOfRange {
                    ty: LogicalType::Numeric,
                });
            }
        }
        if !t[i..].chars().all(is_pg_space) {
            return Err(syntax());
        }
        let dscale = (frac_digits - exponent).max(0);
        if dscale > i64::from(DSCALE_MAX) {
            return Err(ValueError::OutOfRange {
                ty: LogicalType::Numeric,
            });
        }
        let dscale = u16::try_from(dscale).map_err(|_| ValueError::OutOfRange {
            ty: LogicalType::Numeric,
        })?;
        // Decimal digit k (0-based) has decimal exponent point - 1 - k; group them so that
        // each base-10000 digit covers exponents 4w .. 4w+3.
        let point = int_digits + exponent;
        let first_exp = point - 1;
        let weight = first_exp.div_euclid(4);
        // Pad in front so the first decimal digit sits at its place within its group.
        let lead_pad = usize::try_from(3 - first_exp.rem_euclid(4)).unwrap_or(0);
        let total = lead_pad + decimal.len();
        let mut digits = Vec::with_capacity(total.div_ceil(4));
        let mut acc: u16 = 0;
        let mut n = 0;
        for d in std::iter::repeat_n(0u8, lead_pad).chain(decimal.iter().copied()) {
            acc = acc * 10 + u16::from(d);
            n += 1;
            if n == 4 {
                digits.push(acc);
                acc = 0;
                n = 0;
            }
        }
        if n > 0 {
            digits.push(acc * 10u16.pow(4 - n));
        }
        let weight = i32::try_from(weight).map_err(|_| ValueError::OutOfRange {
            ty: LogicalType::Numeric,
        })?;
        Numeric::normalise(negative, weight, dscale, digits)
    }
}

impl fmt::Display for Numeric {
    /// Formats as PostgreSQL's `numeric_out`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::NaN => f.write_str("NaN"),
            Repr::PosInf => f.write_str("Infinity"),
            Repr::NegInf => f.write_str("-Infinity"),
            Repr::Finite {
                negative,
                weight,
                dscale,
                digits,
            } => {
                let mut out = String::new();
                if *negative {
                    out.push('-');
                }
                let weight = i32::from(*weight);
                let digit_at = |idx: i32| -> u16 {
                    usize::try_from(idx)
                        .ok()
                        .and_then(|i| digits.get(i).copied())
                        .unwrap_or(0)
                };
                if weight < 0 {
                    out.push('0');
                } else {
                    for w in 0..=weight {
                        let d = digit_at(w);
                        if w == 0 {
                            out.push_str(&d.to_string());
                        } else {
                            push_group(&mut out, d);
                        }
                    }
                }
                if *dscale > 0 {
                    out.push('.');
                    let mut remaining = usize::from(*dscale);
                    let mut idx = weight + 1;
                    while remaining > 0 {
                        let mut group = String::with_capacity(4);
                        push_group(&mut group, digit_at(idx));
                        let take = remaining.min(4);
                        out.push_str(&group[..take]);
                        remaining -= take;
                        idx += 1;
                    }
                }
                f.write_str(&out)
            }
        }
    }
}

fn push_group(out: &mut String, d: u16) {
    let bytes = [
        b'0' + u8::try_from(d / 1000 % 10).unwrap_or(0),
        b'0' + u8::try_from(d / 100 % 10).unwrap_or(0),
        b'0' + u8::try_from(d / 10 % 10).unwrap_or(0),
        b'0' + u8::try_from(d % 10).unwrap_or(0),
    ];
    for b in bytes {
        out.push(char::from(b));
    }
}

/// Encodes a numeric in PostgreSQL's binary send format.
pub(crate) fn encode(n: &Numeric, out: &mut Vec<u8>) {
    let (weight, dscale, digits) = n.binary_parts();
    let ndigits = u16::try_from(digits.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&n.sign_word().to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

/// Decodes PostgreSQL's binary numeric as `numeric_recv` does.
///
/// With `strict`, the input must already be normalised (the canonical encoding).
pub(crate) fn decode(bytes: &[u8], strict: bool) -> Result<Numeric, ValueError> {
    if bytes.len() < 8 {
        return Err(malformed("shorter than the 8-byte header"));
    }
    let word = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
    let ndigits = usize::from(word(0));
    let weight = i16::from_be_bytes([bytes[2], bytes[3]]);
    let sign = word(4);
    let dscale = word(6);
    if ndigits > RECV_MAX_DIGITS {
        return Err(malformed("invalid digit count"));
    }
    if bytes.len() != 8 + 2 * ndigits {
        return Err(malformed("length does not match the digit count"));
    }
    let digits: Vec<u16> = (0..ndigits).map(|k| word(8 + 2 * k)).collect();
    let value = match sign {
        SIGN_POS | SIGN_NEG => {
            if dscale > DSCALE_MAX {
                return Err(malformed("display scale above 16383"));
            }
            if digits.iter().any(|&d| d >= NBASE) {
                return Err(malformed("digit not below 10000"));
            }
            Numeric::normalise(sign == SIGN_NEG, i32::from(weight), dscale, digits)?
        }
        other => Numeric::special_from_sign(other).ok_or(malformed("invalid sign"))?,
    };
    if strict {
        let mut again = Vec::with_capacity(bytes.len());
        encode(&value, &mut again);
        if again != bytes {
            return Err(malformed("not in canonical form"));
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> String {
        s.parse::<Numeric>()
            .map(|n| n.to_string())
            .unwrap_or_else(|e| format!("ERR {}", e.sqlstate()))
    }

    #[test]
    fn text_matches_postgres() {
        let cases = [
            ("0", "0"),
            (" -0.000 ", "0.000"),
            (".5", "0.5"),
            ("5.", "5"),
            ("-0", "0"),
            ("1.50", "1.50"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("1e 3", "1000"),
            ("1.2345e2", "123.45"),
            ("-12345678.000100", "-12345678.000100"),
            ("0.00001", "0.00001"),
            ("1e-5", "0.00001"),
            ("10000", "10000"),
            ("9999.9999", "9999.9999"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("inf", "Infinity"),
            ("-inf", "-Infinity"),
            ("+infinity", "Infinity"),
            ("nan", "NaN"),
            ("NaN ", "NaN"),
            ("abc", "ERR 22P02"),
            ("", "ERR 22P02"),
            ("1e", "ERR 22P02"),
            ("1..2", "ERR 22P02"),
            (".", "ERR 22P02"),
            ("- 1", "ERR 22P02"),
            ("-nan", "ERR 22P02"),
            ("1e-16384", "ERR 22003"),
            ("1e131072", "ERR 22003"),
        ];
        for (input, want) in cases {
            assert_eq!(rt(input), want, "input {input:?}");
        }
    }

    #[test]
    fn trimmed_drops_trailing_fraction_zeros() {
        let t = |s: &str| s.parse::<Numeric>().map(|n| n.trimmed().to_string());
        assert_eq!(t("1.50").ok().as_deref(), Some("1.5"));
        assert_eq!(t("1.5").ok().as_deref(), Some("1.5"));
        assert_eq!(t("2.000").ok().as_deref(), Some("2"));
        assert_eq!(t("0.000").ok().as_deref(), Some("0"));
        assert_eq!(t("1000.00010000").ok().as_deref(), Some("1000.0001"));
        assert_eq!(t("-0.12340").ok().as_deref(), Some("-0.1234"));
        assert_eq!(t("12345.6").ok().as_deref(), Some("12345.6"));
    }

    #[test]
    fn binary_recv_truncates_hidden_digits() {
        // 1.2345 sent with dscale 2 reads as 1.23 (numeric_recv's trunc_var).
        let mut b = Vec::new();
        for w in [2u16, 0, SIGN_POS, 2, 1, 2345] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        let n = decode(&b, false).map(|n| n.to_string());
        assert_eq!(n.ok().as_deref(), Some("1.23"));
        assert!(decode(&b, true).is_err());
    }
}
