//! `FunctionCallResponse` ('V'): the result of a fast-path `FunctionCall`. Its body is a single
//! value, so it is carried as `Option<Bytes>` in [`BackendMessage`](super::BackendMessage).

use bytes::{Bytes, BytesMut};

use crate::buf::{put_value, write_message, Reader};
use crate::WireError;

/// Type byte of `FunctionCallResponse`.
pub const FUNCTION_CALL_RESPONSE_TAG: u8 = b'V';

/// Decodes a `FunctionCallResponse` body: the result value, `None` for NULL.
///
/// # Errors
/// [`WireError::InvalidValueLength`], or a structural error.
pub fn decode_function_call_response(body: &Bytes) -> Result<Option<Bytes>, WireError> {
    let mut r = Reader::new(body);
    let value = r.value("FunctionCallResponse.value")?;
    r.finish("FunctionCallResponse")?;
    Ok(value)
}

/// Appends a `FunctionCallResponse` carrying `value` to `dst`.
///
/// # Errors
/// [`WireError::MessageTooLarge`]; `dst` is unchanged then.
pub fn encode_function_call_response(
    value: Option<&Bytes>,
    dst: &mut BytesMut,
) -> Result<(), WireError> {
    write_message(dst, Some(FUNCTION_CALL_RESPONSE_TAG), |dst| {
        put_value(dst, value)
    })
}
