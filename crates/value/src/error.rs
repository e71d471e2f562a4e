//! The crate's error type.

use crate::types::LogicalType;

/// Why a value could not be parsed, decoded or formatted.
///
/// Messages follow PostgreSQL's wording but never include the offending input: it may be the
/// very secret the column protects. [`ValueError::sqlstate`] gives the SQLSTATE PostgreSQL would
/// report for the same input, so the proxy can answer the client as the server would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Text input that does not follow the type's syntax (SQLSTATE 22P02).
    #[error("invalid input syntax for type {}; {hint}", ty.pg_display_name())]
    InvalidTextRepresentation {
        /// The type being parsed.
        ty: LogicalType,
        /// What the type accepts.
        hint: &'static str,
    },
    /// A number outside the type's range (SQLSTATE 22003).
    #[error("value out of range for type {}", ty.pg_display_name())]
    OutOfRange {
        /// The type being parsed.
        ty: LogicalType,
    },
    /// A date or time outside the range PostgreSQL supports (SQLSTATE 22008).
    #[error("{} out of range; PostgreSQL supports 4713 BC to 294276 AD (5874897 AD for date)", ty.pg_display_name())]
    DatetimeOutOfRange {
        /// The type being parsed.
        ty: LogicalType,
    },
    /// A date or time field with an impossible value, such as month 13 (SQLSTATE 22008).
    #[error("date/time field value out of range for type {}; {hint}", ty.pg_display_name())]
    DatetimeFieldOverflow {
        /// The type being parsed.
        ty: LogicalType,
        /// What to check.
        hint: &'static str,
    },
    /// Date/time text in a form this crate does not accept (SQLSTATE 22007).
    #[error("invalid input syntax for type {}; {hint}", ty.pg_display_name())]
    InvalidDatetimeFormat {
        /// The type being parsed.
        ty: LogicalType,
        /// What is accepted instead.
        hint: &'static str,
    },
    /// A time zone offset beyond ±15:59:59 (SQLSTATE 22009).
    #[error("time zone displacement out of range for type {}; offsets must be within ±15:59:59", ty.pg_display_name())]
    TimeZoneDisplacementOutOfRange {
        /// The type being parsed.
        ty: LogicalType,
    },
    /// A time zone name that is neither an IANA zone nor UTC/GMT/Z (SQLSTATE 22023).
    #[error("time zone not recognized in {} input; use an IANA name such as Europe/Paris or a numeric offset such as +02:00", ty.pg_display_name())]
    UnknownTimeZone {
        /// The type being parsed.
        ty: LogicalType,
    },
    /// A time zone abbreviation this crate does not read, because its offset depends on the
    /// server's `timezone_abbreviations` setting (EST, CST, IST) or on a zone's history (MSK,
    /// LMT), or because PostgreSQL does not know it either (SQLSTATE 22007).
    #[error("time zone abbreviation not accepted in {} input; use a numeric offset such as +02:00 or an IANA name such as Europe/Paris", ty.pg_display_name())]
    UnsupportedTimeZoneAbbreviation {
        /// The type being parsed.
        ty: LogicalType,
    },
    /// Text or bytes that are not valid UTF-8 or contain a NUL character (SQLSTATE 22021).
    #[error("invalid byte sequence for encoding \"UTF8\" in {} value; text must be UTF-8 without NUL characters", ty.pg_display_name())]
    CharacterNotInRepertoire {
        /// The type being parsed.
        ty: LogicalType,
    },
    /// A JSON `\u0000` escape, which jsonb cannot store (SQLSTATE 22P05).
    #[error(
        "unsupported Unicode escape sequence in jsonb input; \\u0000 cannot be converted to text"
    )]
    UntranslatableCharacter,
    /// An invalid parameter in the value, such as an odd number of hex digits in bytea input
    /// (SQLSTATE 22023).
    #[error("invalid {} input: {reason}", ty.pg_display_name())]
    InvalidParameterValue {
        /// The type being parsed.
        ty: LogicalType,
        /// What is wrong.
        reason: &'static str,
    },
    /// Binary data that is not a valid value of the type (SQLSTATE 08P01).
    #[error("malformed binary {} value: {reason}", ty.pg_display_name())]
    MalformedBinary {
        /// The type being decoded.
        ty: LogicalType,
        /// What is wrong.
        reason: &'static str,
    },
    /// A session setting this crate cannot reproduce output for (SQLSTATE 0A000). The proxy
    /// should refuse rather than send text that differs from the server's.
    #[error(
        "session setting {name} has a value pgseal cannot honour for encrypted columns; {hint}"
    )]
    UnsupportedSetting {
        /// The parameter name as given.
        name: String,
        /// Which values are supported.
        hint: &'static str,
    },
}

impl ValueError {
    /// The SQLSTATE PostgreSQL reports for the same problem.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ValueError::InvalidTextRepresentation { .. } => "22P02",
            ValueError::OutOfRange { .. } => "22003",
            ValueError::DatetimeOutOfRange { .. } | ValueError::DatetimeFieldOverflow { .. } => {
                "22008"
            }
            ValueError::InvalidDatetimeFormat { .. }
            | ValueError::UnsupportedTimeZoneAbbreviation { .. } => "22007",
            ValueError::TimeZoneDisplacementOutOfRange { .. } => "22009",
            ValueError::UnknownTimeZone { .. } | ValueError::InvalidParameterValue { .. } => {
                "22023"
            }
            ValueError::CharacterNotInRepertoire { .. } => "22021",
            ValueError::UntranslatableCharacter => "22P05",
            ValueError::MalformedBinary { .. } => "08P01",
            ValueError::UnsupportedSetting { .. } => "0A000",
        }
    }
}
