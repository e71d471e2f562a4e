//! `FunctionCall` ('F'): the legacy fast-path function call.

use bytes::{BufMut, Bytes, BytesMut};

use super::bind::check_format_count;
use crate::buf::{put_formats, put_values, read_formats, read_values, write_message, Reader};
use crate::{format_at, Format, WireError};

const ARG_FORMATS: &str = "FunctionCall.arg_formats";

/// `FunctionCall`: calls the function with OID `oid` on `args`.
#[derive(Clone, PartialEq, Eq)]
pub struct FunctionCall {
    /// The function's OID.
    pub oid: u32,
    /// Argument format codes: none (all text), one (for all) or one per argument.
    pub arg_formats: Vec<i16>,
    /// Argument values; `None` is SQL NULL.
    pub args: Vec<Option<Bytes>>,
    /// Format code of the result.
    pub result_format: i16,
}

impl std::fmt::Debug for FunctionCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionCall")
            .field("oid", &self.oid)
            .field("arg_formats", &self.arg_formats)
            .field("arg_count", &self.args.len())
            .field("result_format", &self.result_format)
            .finish()
    }
}

impl FunctionCall {
    /// Message type byte.
    pub const TAG: u8 = b'F';

    /// Decodes a `FunctionCall` body. Arguments are zero-copy slices of `body`.
    ///
    /// # Errors
    /// [`WireError::FormatCountMismatch`], [`WireError::InvalidValueLength`], or a structural
    /// error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let oid = r.u32("FunctionCall.oid")?;
        let arg_formats = read_formats(&mut r, ARG_FORMATS)?;
        let mut args = Vec::new();
        read_values(&mut r, "FunctionCall.args", &mut args)?;
        let result_format = r.i16("FunctionCall.result_format")?;
        r.finish("FunctionCall")?;
        check_format_count(ARG_FORMATS, arg_formats.len(), args.len())?;
        Ok(Self {
            oid,
            arg_formats,
            args,
            result_format,
        })
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::FormatCountMismatch`], [`WireError::TooManyValues`],
    /// [`WireError::MessageTooLarge`]; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        check_format_count(ARG_FORMATS, self.arg_formats.len(), self.args.len())?;
        write_message(dst, Some(Self::TAG), |dst| {
            dst.put_u32(self.oid);
            put_formats(dst, ARG_FORMATS, &self.arg_formats)?;
            put_values(dst, "FunctionCall.args", &self.args)?;
            dst.put_i16(self.result_format);
            Ok(())
        })
    }

    /// The format of argument `index` (0-based) under the 0/1/n rule.
    ///
    /// # Errors
    /// As for [`Bind::param_format`](super::Bind::param_format).
    pub fn arg_format(&self, index: usize) -> Result<Format, WireError> {
        check_format_count(ARG_FORMATS, self.arg_formats.len(), self.args.len())?;
        if index >= self.args.len() {
            return Err(WireError::FormatIndexOutOfRange {
                field: ARG_FORMATS,
                index,
                count: self.args.len(),
            });
        }
        format_at(ARG_FORMATS, &self.arg_formats, index)
    }
}
