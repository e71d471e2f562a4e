//! `Describe` ('D') and `Close` ('C'): both name a prepared statement or a portal.

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_cstr, write_message, Reader};
use crate::WireError;

/// What a `Describe` or `Close` refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// A prepared statement (`'S'`).
    Statement,
    /// A portal (`'P'`).
    Portal,
}

impl TargetKind {
    /// The wire byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Statement => b'S',
            Self::Portal => b'P',
        }
    }

    /// The kind for wire byte `code`.
    ///
    /// # Errors
    /// [`WireError::InvalidCode`] for anything but `'S'` and `'P'`.
    pub fn from_byte(field: &'static str, code: u8) -> Result<Self, WireError> {
        match code {
            b'S' => Ok(Self::Statement),
            b'P' => Ok(Self::Portal),
            _ => Err(WireError::InvalidCode { field, code }),
        }
    }
}

fn decode_target(
    body: &Bytes,
    message: &'static str,
    kind_field: &'static str,
    name_field: &'static str,
) -> Result<(TargetKind, String), WireError> {
    target_of(body, message, kind_field, name_field).map(|(kind, name)| (kind, name.to_owned()))
}

fn target_of<'a>(
    body: &'a Bytes,
    message: &'static str,
    kind_field: &'static str,
    name_field: &'static str,
) -> Result<(TargetKind, &'a str), WireError> {
    let mut r = Reader::new(body);
    let kind = TargetKind::from_byte(kind_field, r.u8(kind_field)?)?;
    let name = r.str(name_field)?;
    r.finish(message)?;
    Ok((kind, name))
}

fn encode_target(
    dst: &mut BytesMut,
    tag: u8,
    name_field: &'static str,
    kind: TargetKind,
    name: &str,
) -> Result<(), WireError> {
    write_message(dst, Some(tag), |dst| {
        dst.put_u8(kind.as_byte());
        put_cstr(dst, name_field, name.as_bytes())
    })
}

/// `Describe`: asks for the parameter and/or row description of a statement or portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    /// Statement or portal.
    pub kind: TargetKind,
    /// Its name; empty for the unnamed one.
    pub name: String,
}

impl Describe {
    /// Message type byte.
    pub const TAG: u8 = b'D';

    /// Decodes a `Describe` body.
    ///
    /// # Errors
    /// [`WireError::InvalidCode`] for an unknown kind, or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        decode_target(body, "Describe", "Describe.kind", "Describe.name")
            .map(|(kind, name)| Self { kind, name })
    }

    /// What a `Describe` body names, borrowed: for a layer that forwards the message
    /// unchanged, without a copy of the name.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn target_of(body: &Bytes) -> Result<(TargetKind, &str), WireError> {
        target_of(body, "Describe", "Describe.kind", "Describe.name")
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`] in the name; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        encode_target(dst, Self::TAG, "Describe.name", self.kind, &self.name)
    }
}

/// `Close`: closes a prepared statement or portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Statement or portal.
    pub kind: TargetKind,
    /// Its name; empty for the unnamed one.
    pub name: String,
}

impl Close {
    /// Message type byte.
    pub const TAG: u8 = b'C';

    /// Decodes a `Close` body.
    ///
    /// # Errors
    /// [`WireError::InvalidCode`] for an unknown kind, or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        decode_target(body, "Close", "Close.kind", "Close.name")
            .map(|(kind, name)| Self { kind, name })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`] in the name; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        encode_target(dst, Self::TAG, "Close.name", self.kind, &self.name)
    }
}
