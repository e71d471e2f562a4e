//! Typed values for encrypted columns: canonical encoding, PostgreSQL binary and text formats.
//!
//! A value has three representations:
//!
//! * the **canonical encoding** stored inside a ciphertext (docs/format.md 2.3): PostgreSQL's
//!   binary send format, independent of session settings ([`encode_canonical`],
//!   [`decode_canonical`], and [`index_input`] for blind indexes);
//! * PostgreSQL's **binary wire format** ([`encode_binary`], [`decode_binary`]);
//! * PostgreSQL's **text format**, which depends on the session's `DateStyle`, `TimeZone`,
//!   `extra_float_digits` and `bytea_output` ([`parse_text`], [`format_text`],
//!   [`SessionSettings`]).
//!
//! Output matches PostgreSQL 15 byte for byte in every `DateStyle`; the integration test
//! `tests/against_postgres.rs` checks thousands of values against a real server. Input accepts
//! what PostgreSQL accepts for the forms clients send and refuses everything else with
//! PostgreSQL's SQLSTATE: a value is never guessed at.
//!
//! Errors never contain the input: it may be the secret the column protects. [`Value`]'s
//! `Debug` output does show the value; never log values.
//!
//! # Design notes
//!
//! * **No I/O**, with one exception: IANA time zones are loaded by `jiff` from the system tzdata
//!   (`/usr/share/zoneinfo`), the same files Debian's PostgreSQL uses, when a session or a
//!   literal names a zone.
//! * **Canonical = send format.** The plaintext is exactly what the server's send function
//!   produces, so the binary result format needs no conversion and equal values have equal
//!   bytes. Two PostgreSQL details follow from it: numeric ±Infinity carry display scale 32 (an
//!   artefact of `numeric_send` reading the short header), and jsonb is the version byte 1
//!   followed by `jsonb_out` text.
//! * **Blind-index input.** [`index_input`] is the canonical encoding except for numeric,
//!   which drops trailing fractional zeros so that `1.50` and `1.5` (equal in SQL) index equal.
//!   Floats and jsonb are not searchable ([`LogicalType::supports_equality`]).
//! * **jsonb** is parsed by a small parser that follows PostgreSQL's JSON lexer rather than by
//!   serde_json: jsonb keeps numbers as exact `numeric` (`1.0` stays `1.0`, `1e400` is exact),
//!   rejects `\u0000` and lone surrogates, and orders keys by length then bytes. Nesting deeper
//!   than 1000 levels is refused to protect the stack.
//! * **Time zones in input.** A zone abbreviation is read only when it means the same offset in
//!   every `timezone_abbreviations` set PostgreSQL ships (so `CET`, `PDT`, `UTC` are read;
//!   `EST`, `CST`, `IST` are not, as the `Australia` and `India` sets redefine them), and
//!   abbreviations defined by zone history (`MSK`, `LMT`) are refused. Gaps and folds in a
//!   session zone resolve as PostgreSQL's `DetermineTimeZoneOffset` does: to the later instant.
//!   Beyond year 9999 (jiff's limit) offsets are found by shifting whole 400-year cycles, as
//!   PostgreSQL's own zone code extrapolates the final rule.
//! * **Session zones** are IANA names or fixed POSIX offsets (`<+03>-03`, what `SET TIME ZONE 3`
//!   reports); POSIX strings with daylight-saving rules are refused, because PostgreSQL completes
//!   them from its `posixrules` file.
//! * **Floats** print shortest round-trip digits (Rust's formatter gives the same digits as
//!   PostgreSQL's Ryu) laid out as PostgreSQL does, or `%.Ng` when `extra_float_digits <= 0`.
//!   Hexadecimal float input, which glibc's `strtod` accepts, is refused.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod assign;
mod binary;
mod datetime;
mod error;
mod float;
mod jsonb;
mod numeric;
mod session;
mod text;
mod types;

pub use assign::{assign, is_assignable};
pub use binary::{decode_binary, decode_canonical, encode_binary, encode_canonical, index_input};
pub use error::ValueError;
pub use numeric::Numeric;
pub use session::{
    ByteaOutput, DateOrder, DateOutputStyle, DateStyle, SessionSettings, SessionTimeZone,
};
pub use text::{format_text, parse_text};
pub use types::{LogicalType, Value};

/// The value whose canonical encoding is `canonical`, in the format a client asked for:
/// exactly what [`decode_canonical`] followed by [`encode_binary`] (`binary`) or
/// [`format_text`] gives, and the same errors.
///
/// Text and varchar values skip the intermediate [`Value`]: both their forms are their UTF-8
/// bytes, so only the checks are made and the bytes copied once. This runs for every
/// encrypted value the proxy returns.
pub fn canonical_to_client(
    ty: LogicalType,
    canonical: &[u8],
    binary: bool,
    session: &SessionSettings,
) -> Result<Vec<u8>, ValueError> {
    if matches!(ty, LogicalType::Text | LogicalType::Varchar) {
        return binary::check_utf8(ty, canonical).map(|text| text.as_bytes().to_vec());
    }
    let value = decode_canonical(ty, canonical)?;
    Ok(if binary {
        encode_binary(&value)
    } else {
        format_text(&value, session).into_bytes()
    })
}
