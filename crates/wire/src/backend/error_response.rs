//! `ErrorResponse` ('E') and `NoticeResponse` ('N'): a list of typed fields.

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::{put_cstr, write_message, Reader};
use crate::WireError;

/// The fields of an `ErrorResponse` or `NoticeResponse`, in wire order: a code byte
/// (`ErrorFields::SQLSTATE`, ...) and its text each.
///
/// Build the proxy's own errors with [`ErrorFields::error`]:
///
/// ```
/// use pgseal_wire::backend::ErrorFields;
/// let fields = ErrorFields::error("42501", "permission denied for encrypted column")
///     .detail("column \"ssn\" is encrypted by pgseal")
///     .hint("connect through the pgseal proxy");
/// assert_eq!(fields.sqlstate(), Some("42501"));
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ErrorFields {
    /// `(code, value)` pairs in wire order.
    pub fields: Vec<(u8, String)>,
}

// Messages and details often quote data ("Key (email)=(...) already exists"), which may be
// plaintext of an encrypted column: Debug shows severity and SQLSTATE, and only the lengths of
// the other fields.
impl std::fmt::Debug for ErrorFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (code, value) in &self.fields {
            match *code {
                Self::SEVERITY | Self::SEVERITY_NONLOCALIZED | Self::SQLSTATE => {
                    list.entry(&(char::from(*code), value))
                }
                _ => list.entry(&(char::from(*code), value.len())),
            };
        }
        list.finish()
    }
}

impl ErrorFields {
    /// `S`: severity, possibly localized.
    pub const SEVERITY: u8 = b'S';
    /// `V`: severity, never localized.
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// `C`: SQLSTATE code.
    pub const SQLSTATE: u8 = b'C';
    /// `M`: primary message.
    pub const MESSAGE: u8 = b'M';
    /// `D`: detail.
    pub const DETAIL: u8 = b'D';
    /// `H`: hint.
    pub const HINT: u8 = b'H';
    /// `P`: cursor position in the query string (1-based, in characters).
    pub const POSITION: u8 = b'P';

    /// Fields with the given severity (in both `S` and `V`), SQLSTATE and message.
    pub fn new(severity: &str, sqlstate: &str, message: impl Into<String>) -> Self {
        Self {
            fields: vec![
                (Self::SEVERITY, severity.to_owned()),
                (Self::SEVERITY_NONLOCALIZED, severity.to_owned()),
                (Self::SQLSTATE, sqlstate.to_owned()),
                (Self::MESSAGE, message.into()),
            ],
        }
    }

    /// An `ERROR` with `sqlstate` and `message`.
    pub fn error(sqlstate: &str, message: impl Into<String>) -> Self {
        Self::new("ERROR", sqlstate, message)
    }

    /// A `FATAL` error (the session ends) with `sqlstate` and `message`.
    pub fn fatal(sqlstate: &str, message: impl Into<String>) -> Self {
        Self::new("FATAL", sqlstate, message)
    }

    /// Adds a detail (`D`) field.
    #[must_use]
    pub fn detail(self, detail: impl Into<String>) -> Self {
        self.with(Self::DETAIL, detail)
    }

    /// Adds a hint (`H`) field.
    #[must_use]
    pub fn hint(self, hint: impl Into<String>) -> Self {
        self.with(Self::HINT, hint)
    }

    /// Adds any field.
    #[must_use]
    pub fn with(mut self, code: u8, value: impl Into<String>) -> Self {
        self.fields.push((code, value.into()));
        self
    }

    /// The first field with `code`.
    pub fn get(&self, code: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }

    /// The SQLSTATE (`C`) field.
    pub fn sqlstate(&self) -> Option<&str> {
        self.get(Self::SQLSTATE)
    }

    /// The primary message (`M`) field.
    pub fn message(&self) -> Option<&str> {
        self.get(Self::MESSAGE)
    }

    /// The non-localized severity (`V`), or the possibly localized one (`S`) if `V` is absent
    /// (servers before 9.6).
    pub fn severity(&self) -> Option<&str> {
        self.get(Self::SEVERITY_NONLOCALIZED)
            .or_else(|| self.get(Self::SEVERITY))
    }

    /// Decodes an `ErrorResponse` or `NoticeResponse` body.
    ///
    /// # Errors
    /// [`WireError::InvalidUtf8`] for a field value, or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let mut fields = Vec::new();
        loop {
            let code = r.u8("ErrorResponse.code")?;
            if code == 0 {
                break;
            }
            fields.push((code, r.string("ErrorResponse.value")?));
        }
        r.finish("ErrorResponse")?;
        Ok(Self { fields })
    }

    /// Appends the fields as a message with type byte `tag` (`b'E'` or `b'N'`) to `dst`.
    ///
    /// # Errors
    /// [`WireError::InvalidCode`] for a field code 0 (it ends the list),
    /// [`WireError::InteriorNul`]; `dst` is unchanged then.
    pub fn encode(&self, tag: u8, dst: &mut BytesMut) -> Result<(), WireError> {
        write_message(dst, Some(tag), |dst| {
            for (code, value) in &self.fields {
                if *code == 0 {
                    return Err(WireError::InvalidCode {
                        field: "ErrorResponse.code",
                        code: 0,
                    });
                }
                dst.put_u8(*code);
                put_cstr(dst, "ErrorResponse.value", value.as_bytes())?;
            }
            dst.put_u8(0);
            Ok(())
        })
    }
}
