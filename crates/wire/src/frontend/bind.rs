//! `Bind` ('B'): bind parameter values to a prepared statement, creating a portal.

use bytes::{Bytes, BytesMut};

use crate::buf::{
    put_cstr, put_formats, put_values, read_formats, read_values, value_len, write_message, Reader,
};
use crate::{format_at, Format, WireError};

const PARAM_FORMATS: &str = "Bind.param_formats";
const RESULT_FORMATS: &str = "Bind.result_formats";

/// `Bind`: creates portal `portal` from statement `statement` with parameter values.
#[derive(Clone, PartialEq, Eq)]
pub struct Bind {
    /// Portal name; empty for the unnamed portal.
    pub portal: String,
    /// Statement name; empty for the unnamed statement.
    pub statement: String,
    /// Parameter format codes: none (all text), one (for all) or one per parameter.
    pub param_formats: Vec<i16>,
    /// Parameter values; `None` is SQL NULL (length -1 on the wire).
    pub params: Vec<Option<Bytes>>,
    /// Result column format codes: none (all text), one (for all) or one per column.
    pub result_formats: Vec<i16>,
}

impl std::fmt::Debug for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bind")
            .field("portal", &self.portal)
            .field("statement", &self.statement)
            .field("param_formats", &self.param_formats)
            .field("param_count", &self.params.len())
            .field("result_formats", &self.result_formats)
            .finish()
    }
}

/// A `Bind` read in place ([`Bind::head_of`]): its names borrowed, its parameters checked but
/// not copied. For a layer that forwards most `Bind`s unchanged and needs only to know what
/// they bind.
#[derive(Debug, Clone, Copy)]
pub struct BindHead<'a> {
    /// The portal it creates; empty for the unnamed one.
    pub portal: &'a str,
    /// The prepared statement it binds; empty for the unnamed one.
    pub statement: &'a str,
    /// Number of parameter values.
    pub params: usize,
    /// The body up to the result format codes: names, parameter formats and values.
    before_results: &'a [u8],
    /// The result format codes as sent: two bytes each, big-endian.
    result_formats: &'a [u8],
}

impl BindHead<'_> {
    /// The result format codes.
    pub fn result_formats(&self) -> impl ExactSizeIterator<Item = i16> + '_ {
        self.result_formats
            .chunks_exact(2)
            .map(|code| i16::from_be_bytes([code[0], code[1]]))
    }

    /// Appends this `Bind` (tag, length, body) to `dst` with `formats` as its result format
    /// codes: names and parameters copied as they are, without decoding the values. For a
    /// layer that only changes the formats it fetches results in.
    ///
    /// # Errors
    /// [`WireError::TooManyValues`] for over 65535 codes, [`WireError::MessageTooLarge`];
    /// `dst` is unchanged then.
    pub fn encode_with_result_formats(
        &self,
        formats: &[i16],
        dst: &mut BytesMut,
    ) -> Result<(), WireError> {
        dst.reserve(1 + 4 + self.before_results.len() + 2 + 2 * formats.len());
        write_message(dst, Some(Bind::TAG), |dst| {
            dst.extend_from_slice(self.before_results);
            put_formats(dst, RESULT_FORMATS, formats)
        })
    }
}

impl Bind {
    /// Message type byte.
    pub const TAG: u8 = b'B';

    /// Reads a `Bind` body in place. It accepts and rejects exactly what
    /// [`decode`](Self::decode) does.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn head_of(body: &Bytes) -> Result<BindHead<'_>, WireError> {
        let mut r = Reader::new(body);
        let portal = r.str("Bind.portal")?;
        let statement = r.str("Bind.statement")?;
        let param_formats = r.count(PARAM_FORMATS, 2)?;
        r.raw(PARAM_FORMATS, 2 * param_formats)?;
        let params = r.count("Bind.params", 4)?;
        for _ in 0..params {
            r.skip_value("Bind.params")?;
        }
        let before_results = &body[..body.len() - r.remaining()];
        let results = r.count(RESULT_FORMATS, 2)?;
        let result_formats = r.raw(RESULT_FORMATS, 2 * results)?;
        r.finish("Bind")?;
        check_format_count(PARAM_FORMATS, param_formats, params)?;
        Ok(BindHead {
            portal,
            statement,
            params,
            before_results,
            result_formats,
        })
    }

    /// Decodes a `Bind` body. Parameter values are zero-copy slices of `body`.
    ///
    /// # Errors
    /// [`WireError::FormatCountMismatch`] when there are several parameter format codes but not
    /// one per parameter, [`WireError::InvalidUtf8`] for names that are not UTF-8,
    /// [`WireError::InvalidValueLength`] for a length below -1, or a structural error.
    pub fn decode(body: &Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let portal = r.string("Bind.portal")?;
        let statement = r.string("Bind.statement")?;
        let param_formats = read_formats(&mut r, PARAM_FORMATS)?;
        let mut params = Vec::new();
        read_values(&mut r, "Bind.params", &mut params)?;
        let result_formats = read_formats(&mut r, RESULT_FORMATS)?;
        r.finish("Bind")?;
        check_format_count(PARAM_FORMATS, param_formats.len(), params.len())?;
        Ok(Self {
            portal,
            statement,
            param_formats,
            params,
            result_formats,
        })
    }

    /// Number of bytes [`Bind::encode`] writes, so a caller can reserve once.
    pub fn encoded_len(&self) -> usize {
        1 + 4
            + self.portal.len()
            + 1
            + self.statement.len()
            + 1
            + 2
            + 2 * self.param_formats.len()
            + 2
            + self
                .params
                .iter()
                .map(|v| value_len(v.as_ref()))
                .sum::<usize>()
            + 2
            + 2 * self.result_formats.len()
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// [`WireError::FormatCountMismatch`], [`WireError::InteriorNul`] in a name,
    /// [`WireError::TooManyValues`] for a list over 65535 entries,
    /// [`WireError::MessageTooLarge`]; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        check_format_count(PARAM_FORMATS, self.param_formats.len(), self.params.len())?;
        dst.reserve(self.encoded_len());
        write_message(dst, Some(Self::TAG), |dst| {
            put_cstr(dst, "Bind.portal", self.portal.as_bytes())?;
            put_cstr(dst, "Bind.statement", self.statement.as_bytes())?;
            put_formats(dst, PARAM_FORMATS, &self.param_formats)?;
            put_values(dst, "Bind.params", &self.params)?;
            put_formats(dst, RESULT_FORMATS, &self.result_formats)
        })
    }

    /// The format of parameter `index` (0-based) under the 0/1/n rule.
    ///
    /// # Errors
    /// [`WireError::FormatIndexOutOfRange`] if there is no such parameter,
    /// [`WireError::FormatCountMismatch`] if the format codes do not fit the parameters,
    /// [`WireError::InvalidFormatCode`] for a code other than 0 or 1.
    pub fn param_format(&self, index: usize) -> Result<Format, WireError> {
        check_format_count(PARAM_FORMATS, self.param_formats.len(), self.params.len())?;
        if index >= self.params.len() {
            return Err(WireError::FormatIndexOutOfRange {
                field: PARAM_FORMATS,
                index,
                count: self.params.len(),
            });
        }
        format_at(PARAM_FORMATS, &self.param_formats, index)
    }

    /// The format requested for result column `index` (0-based) under the 0/1/n rule. The
    /// number of columns is only known from the statement's `RowDescription`, so with one code
    /// per column an index past the list is an error.
    ///
    /// # Errors
    /// [`WireError::FormatIndexOutOfRange`], [`WireError::InvalidFormatCode`].
    pub fn result_format(&self, index: usize) -> Result<Format, WireError> {
        format_at(RESULT_FORMATS, &self.result_formats, index)
    }
}

/// Several format codes must come one per value.
pub(crate) fn check_format_count(
    field: &'static str,
    formats: usize,
    values: usize,
) -> Result<(), WireError> {
    if formats > 1 && formats != values {
        return Err(WireError::FormatCountMismatch {
            field,
            formats,
            values,
        });
    }
    Ok(())
}
