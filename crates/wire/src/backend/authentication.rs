//! `Authentication*` ('R'): the server's authentication requests and results.

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_cstr, write_message, Reader};
use crate::WireError;

/// An authentication message; the `Int32` code after the length selects the kind.
#[derive(Clone, PartialEq, Eq)]
pub enum Authentication {
    /// `AuthenticationOk` (0).
    Ok,
    /// `AuthenticationCleartextPassword` (3).
    CleartextPassword,
    /// `AuthenticationMD5Password` (5) with its salt.
    Md5Password {
        /// The 4-byte salt.
        salt: [u8; 4],
    },
    /// `AuthenticationSASL` (10): the mechanisms the server offers.
    Sasl {
        /// Mechanism names, e.g. `SCRAM-SHA-256`.
        mechanisms: Vec<String>,
    },
    /// `AuthenticationSASLContinue` (11): mechanism-specific challenge data.
    SaslContinue(Bytes),
    /// `AuthenticationSASLFinal` (12): mechanism-specific outcome data.
    SaslFinal(Bytes),
    /// Any other code (Kerberos 2, GSS 7, GSSContinue 8, SSPI 9, future ones) with the rest of
    /// the body. Codes that have a variant of their own always decode to that variant.
    Other {
        /// The authentication code.
        code: i32,
        /// Everything after the code.
        data: Bytes,
    },
}

impl std::fmt::Debug for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ok => f.write_str("AuthenticationOk"),
            Self::CleartextPassword => f.write_str("AuthenticationCleartextPassword"),
            Self::Md5Password { .. } => f.write_str("AuthenticationMD5Password"),
            Self::Sasl { mechanisms } => f
                .debug_struct("AuthenticationSASL")
                .field("mechanisms", mechanisms)
                .finish(),
            // SCRAM exchanges carry nonces, salts and proofs: sizes only.
            Self::SaslContinue(data) => f
                .debug_struct("AuthenticationSASLContinue")
                .field("len", &data.len())
                .finish(),
            Self::SaslFinal(data) => f
                .debug_struct("AuthenticationSASLFinal")
                .field("len", &data.len())
                .finish(),
            Self::Other { code, data } => f
                .debug_struct("Authentication")
                .field("code", code)
                .field("len", &data.len())
                .finish(),
        }
    }
}

const OK: i32 = 0;
const CLEARTEXT: i32 = 3;
const MD5: i32 = 5;
const SASL: i32 = 10;
const SASL_CONTINUE: i32 = 11;
const SASL_FINAL: i32 = 12;

impl Authentication {
    /// Message type byte.
    pub const TAG: u8 = b'R';

    /// The authentication code.
    pub fn code(&self) -> i32 {
        match self {
            Self::Ok => OK,
            Self::CleartextPassword => CLEARTEXT,
            Self::Md5Password { .. } => MD5,
            Self::Sasl { .. } => SASL,
            Self::SaslContinue(_) => SASL_CONTINUE,
            Self::SaslFinal(_) => SASL_FINAL,
            Self::Other { code, .. } => *code,
        }
    }

    /// Decodes an `Authentication*` body. Data is a zero-copy slice of `body`.
    ///
    /// # Errors
    /// A structural error, or [`WireError::InvalidUtf8`] for a mechanism name.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let message = match r.i32("Authentication.code")? {
            OK => Self::Ok,
            CLEARTEXT => Self::CleartextPassword,
            MD5 => Self::Md5Password {
                salt: r.array4("AuthenticationMD5Password.salt")?,
            },
            SASL => {
                let mut mechanisms = Vec::new();
                loop {
                    let name = r.cstr("AuthenticationSASL.mechanisms")?;
                    if name.is_empty() {
                        break;
                    }
                    let name = std::str::from_utf8(name).map_err(|_| WireError::InvalidUtf8 {
                        field: "AuthenticationSASL.mechanisms",
                    })?;
                    mechanisms.push(name.to_owned());
                }
                Self::Sasl { mechanisms }
            }
            SASL_CONTINUE => Self::SaslContinue(r.rest()),
            SASL_FINAL => Self::SaslFinal(r.rest()),
            code => Self::Other {
                code,
                data: r.rest(),
            },
        };
        r.finish("Authentication")?;
        Ok(message)
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InteriorNul`] or [`WireError::EmptyListItem`] in a mechanism name; `dst` is
    /// unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(Self::TAG), |dst| {
            dst.put_i32(self.code());
            match self {
                Self::Ok | Self::CleartextPassword => {}
                Self::Md5Password { salt } => dst.put_slice(salt),
                Self::Sasl { mechanisms } => {
                    for name in mechanisms {
                        if name.is_empty() {
                            return Err(WireError::EmptyListItem {
                                field: "AuthenticationSASL.mechanisms",
                            });
                        }
                        put_cstr(dst, "AuthenticationSASL.mechanisms", name.as_bytes())?;
                    }
                    dst.put_u8(0);
                }
                Self::SaslContinue(data) | Self::SaslFinal(data) | Self::Other { data, .. } => {
                    dst.put_slice(data);
                }
            }
            Ok(())
        })
    }
}
