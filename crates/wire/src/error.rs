//! The one error type of this crate.
//!
//! Errors name the field that was wrong (a static `Message.field` path) and the numbers involved,
//! never the contents of a message: message bodies carry SQL text, parameter values and row data,
//! any of which may be plaintext of an encrypted column.

/// Everything that can go wrong while decoding or encoding a protocol message.
///
/// Decoding errors mean the peer sent bytes that are not a valid PostgreSQL v3 message; the
/// stream cannot be resynchronised after one, so the connection should be closed (after an
/// `ErrorResponse` where the protocol allows one). Encoding errors mean the caller built a
/// message that cannot be represented on the wire; nothing is written to the buffer then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A length field is smaller than the smallest possible message.
    #[error(
        "invalid message length {len}: it must be at least {min}; the peer is not speaking \
         PostgreSQL protocol v3 or the stream is out of sync, so close the connection"
    )]
    InvalidLength {
        /// The length read from the wire.
        len: i32,
        /// The smallest valid length for this kind of message.
        min: i32,
    },

    /// A message is larger than the configured limit (or than the protocol can express).
    #[error(
        "message length {len} exceeds the limit of {max} bytes; raise the maximum message size \
         if such messages are legitimate, otherwise close the connection"
    )]
    MessageTooLarge {
        /// The message length (length field value, which counts itself but not the tag).
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },

    /// The message body ended before a fixed-size field or a value could be read.
    #[error(
        "{field}: the message ends early ({needed} bytes needed, {remaining} left); the message \
         is truncated or malformed"
    )]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the message body.
        remaining: usize,
    },

    /// A NUL-terminated string runs to the end of the message without its terminator.
    #[error("{field}: the string has no NUL terminator before the end of the message")]
    MissingNul {
        /// The field being read.
        field: &'static str,
    },

    /// A text field that must be UTF-8 is not.
    #[error(
        "{field}: the text is not valid UTF-8; pgseal requires client_encoding and \
         server_encoding to be UTF8"
    )]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },

    /// A count promises more elements than the rest of the message can possibly hold.
    #[error(
        "{field}: count {count} needs at least {needed} bytes but only {remaining} are left in \
         the message"
    )]
    CountExceedsBody {
        /// The counted field.
        field: &'static str,
        /// The count read from the wire.
        count: usize,
        /// The minimum number of bytes `count` elements occupy.
        needed: usize,
        /// Bytes left in the message body.
        remaining: usize,
    },

    /// A 32-bit count is negative.
    #[error("{field}: negative count {count}")]
    NegativeCount {
        /// The counted field.
        field: &'static str,
        /// The count read from the wire.
        count: i32,
    },

    /// A value length is negative but not -1 (the NULL marker).
    #[error("{field}: invalid value length {len}; only -1 (NULL) or a length >= 0 is allowed")]
    InvalidValueLength {
        /// The field being read.
        field: &'static str,
        /// The length read from the wire.
        len: i32,
    },

    /// Bytes follow the last field of a message.
    #[error("{message}: {extra} unexpected bytes after the end of the message")]
    TrailingBytes {
        /// The message being decoded.
        message: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },

    /// A startup packet asks for a protocol other than 3.x.
    #[error(
        "unsupported frontend protocol {major}.{minor}: pgseal speaks protocol 3.x; use a \
         client driver that supports protocol 3"
    )]
    UnsupportedProtocol {
        /// Requested major version.
        major: u16,
        /// Requested minor version.
        minor: u16,
    },

    /// A one-byte code field holds a value the protocol does not define.
    #[error("{field}: invalid code byte {code:#04x}")]
    InvalidCode {
        /// The field being read.
        field: &'static str,
        /// The byte found.
        code: u8,
    },

    /// A format code is neither 0 (text) nor 1 (binary).
    #[error("{field}: invalid format code {code}; only 0 (text) and 1 (binary) exist")]
    InvalidFormatCode {
        /// The field being read.
        field: &'static str,
        /// The code found.
        code: i16,
    },

    /// There are more than one but not exactly as many format codes as values.
    #[error(
        "{field}: {formats} format codes for {values} values; send 0 codes (all text), 1 code \
         (applies to all) or exactly one per value"
    )]
    FormatCountMismatch {
        /// The format-code field.
        field: &'static str,
        /// Number of format codes.
        formats: usize,
        /// Number of values they should describe.
        values: usize,
    },

    /// A format was asked for a value index that the message does not have.
    #[error("{field}: no format for index {index}: the message describes {count} values")]
    FormatIndexOutOfRange {
        /// The format-code field.
        field: &'static str,
        /// The index asked for.
        index: usize,
        /// Number of values described.
        count: usize,
    },

    /// Encoding: a string that the protocol NUL-terminates contains a NUL byte, which would
    /// let its tail be read as further fields.
    #[error("{field}: the string contains a NUL byte, which the protocol cannot carry")]
    InteriorNul {
        /// The field being written.
        field: &'static str,
    },

    /// Encoding: an item of a list that the protocol ends with an empty item (startup
    /// parameters, SASL mechanisms) is itself empty, so it would end the list early.
    #[error(
        "{field}: an empty item cannot be encoded: the protocol reads it as the end of the list"
    )]
    EmptyListItem {
        /// The list being written.
        field: &'static str,
    },

    /// Encoding: a list has more elements than its 16-bit count can express.
    #[error("{field}: {count} elements exceed the protocol's maximum of {max}")]
    TooManyValues {
        /// The list being written.
        field: &'static str,
        /// Its length.
        count: usize,
        /// The largest count the protocol allows.
        max: usize,
    },
}
