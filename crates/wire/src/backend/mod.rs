//! Messages the server sends to the client.

mod authentication;
mod copy;
mod data_row;
mod error_response;
mod function_call_response;
mod notification;
mod row_description;
mod session;

use bytes::{BufMut, Bytes, BytesMut};

pub use authentication::Authentication;
pub use copy::CopyResponse;
pub use data_row::DataRow;
pub use error_response::ErrorFields;
pub use function_call_response::{
    decode_function_call_response, encode_function_call_response, FUNCTION_CALL_RESPONSE_TAG,
};
pub use notification::NotificationResponse;
pub use row_description::{FieldDescription, ParameterDescription, RowDescription};
pub use session::{
    BackendKeyData, CommandComplete, NegotiateProtocolVersion, ParameterStatus, ReadyForQuery,
    TransactionStatus,
};

use crate::buf::write_message;
use crate::frontend::{COPY_DATA_TAG, COPY_DONE_TAG};
use crate::{Frame, WireError};

/// Tag of `ErrorResponse`.
pub const ERROR_RESPONSE_TAG: u8 = b'E';
/// Tag of `NoticeResponse`.
pub const NOTICE_RESPONSE_TAG: u8 = b'N';
/// Tag of `ParseComplete`.
pub const PARSE_COMPLETE_TAG: u8 = b'1';
/// Tag of `BindComplete`.
pub const BIND_COMPLETE_TAG: u8 = b'2';
/// Tag of `CloseComplete`.
pub const CLOSE_COMPLETE_TAG: u8 = b'3';
/// Tag of `NoData`.
pub const NO_DATA_TAG: u8 = b'n';
/// Tag of `PortalSuspended`.
pub const PORTAL_SUSPENDED_TAG: u8 = b's';
/// Tag of `EmptyQueryResponse`.
pub const EMPTY_QUERY_RESPONSE_TAG: u8 = b'I';

/// A decoded server-to-client message.
///
/// Deliberately not `#[non_exhaustive]`: the proxy matches it exhaustively, so a message type
/// added here is a compile error there rather than a silent fall-through to "forward as is".
#[derive(Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// `Authentication*` ('R').
    Authentication(Authentication),
    /// `BackendKeyData` ('K').
    BackendKeyData(BackendKeyData),
    /// `ParameterStatus` ('S').
    ParameterStatus(ParameterStatus),
    /// `ReadyForQuery` ('Z').
    ReadyForQuery(ReadyForQuery),
    /// `RowDescription` ('T').
    RowDescription(RowDescription),
    /// `DataRow` ('D').
    DataRow(DataRow),
    /// `CommandComplete` ('C').
    CommandComplete(CommandComplete),
    /// `ErrorResponse` ('E').
    ErrorResponse(ErrorFields),
    /// `NoticeResponse` ('N').
    NoticeResponse(ErrorFields),
    /// `ParameterDescription` ('t').
    ParameterDescription(ParameterDescription),
    /// `ParseComplete` ('1').
    ParseComplete,
    /// `BindComplete` ('2').
    BindComplete,
    /// `CloseComplete` ('3').
    CloseComplete,
    /// `NoData` ('n').
    NoData,
    /// `PortalSuspended` ('s').
    PortalSuspended,
    /// `EmptyQueryResponse` ('I').
    EmptyQueryResponse,
    /// `CopyInResponse` ('G').
    CopyInResponse(CopyResponse),
    /// `CopyOutResponse` ('H').
    CopyOutResponse(CopyResponse),
    /// `CopyBothResponse` ('W').
    CopyBothResponse(CopyResponse),
    /// `CopyData` ('d'): a chunk of `COPY TO STDOUT` data.
    CopyData(Bytes),
    /// `CopyDone` ('c').
    CopyDone,
    /// `NotificationResponse` ('A').
    NotificationResponse(NotificationResponse),
    /// `FunctionCallResponse` ('V'): the result, `None` for NULL.
    FunctionCallResponse(Option<Bytes>),
    /// `NegotiateProtocolVersion` ('v').
    NegotiateProtocolVersion(NegotiateProtocolVersion),
    /// A message type this codec does not know; forwarded as is.
    Unknown {
        /// The type byte.
        tag: u8,
        /// The body.
        body: Bytes,
    },
}

impl std::fmt::Debug for BackendMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Authentication(m) => m.fmt(f),
            Self::BackendKeyData(m) => m.fmt(f),
            Self::ParameterStatus(m) => m.fmt(f),
            Self::ReadyForQuery(m) => m.fmt(f),
            Self::RowDescription(m) => m.fmt(f),
            Self::DataRow(m) => m.fmt(f),
            Self::CommandComplete(m) => m.fmt(f),
            Self::ErrorResponse(m) => f.debug_tuple("ErrorResponse").field(m).finish(),
            Self::NoticeResponse(m) => f.debug_tuple("NoticeResponse").field(m).finish(),
            Self::ParameterDescription(m) => m.fmt(f),
            Self::ParseComplete => f.write_str("ParseComplete"),
            Self::BindComplete => f.write_str("BindComplete"),
            Self::CloseComplete => f.write_str("CloseComplete"),
            Self::NoData => f.write_str("NoData"),
            Self::PortalSuspended => f.write_str("PortalSuspended"),
            Self::EmptyQueryResponse => f.write_str("EmptyQueryResponse"),
            Self::CopyInResponse(m) => f.debug_tuple("CopyInResponse").field(m).finish(),
            Self::CopyOutResponse(m) => f.debug_tuple("CopyOutResponse").field(m).finish(),
            Self::CopyBothResponse(m) => f.debug_tuple("CopyBothResponse").field(m).finish(),
            // Row data and function results: sizes only.
            Self::CopyData(data) => f
                .debug_struct("CopyData")
                .field("len", &data.len())
                .finish(),
            Self::CopyDone => f.write_str("CopyDone"),
            Self::NotificationResponse(m) => m.fmt(f),
            Self::FunctionCallResponse(value) => f
                .debug_struct("FunctionCallResponse")
                .field("len", &value.as_ref().map(Bytes::len))
                .finish(),
            Self::NegotiateProtocolVersion(m) => m.fmt(f),
            Self::Unknown { tag, body } => f
                .debug_struct("Unknown")
                .field("tag", &char::from(*tag))
                .field("len", &body.len())
                .finish(),
        }
    }
}

fn empty(
    body: &Bytes,
    message: &'static str,
    value: BackendMessage,
) -> Result<BackendMessage, WireError> {
    match body.len() {
        0 => Ok(value),
        extra => Err(WireError::TrailingBytes { message, extra }),
    }
}

fn encode_raw(dst: &mut BytesMut, tag: u8, body: &[u8]) -> Result<(), WireError> {
    write_message(dst, Some(tag), |dst| {
        dst.put_slice(body);
        Ok(())
    })
}

impl BackendMessage {
    /// Decodes a frame read from the server. Tags this codec does not know become
    /// [`BackendMessage::Unknown`]; a known tag with a malformed body is an error.
    ///
    /// # Errors
    /// The decoding errors of the message type the tag names.
    pub fn decode(frame: &Frame) -> Result<Self, WireError> {
        let body = &frame.body;
        match frame.tag {
            Authentication::TAG => Authentication::decode(body).map(Self::Authentication),
            BackendKeyData::TAG => BackendKeyData::decode(body).map(Self::BackendKeyData),
            ParameterStatus::TAG => ParameterStatus::decode(body).map(Self::ParameterStatus),
            ReadyForQuery::TAG => ReadyForQuery::decode(body).map(Self::ReadyForQuery),
            RowDescription::TAG => RowDescription::decode(body).map(Self::RowDescription),
            DataRow::TAG => DataRow::decode(body).map(Self::DataRow),
            CommandComplete::TAG => CommandComplete::decode(body).map(Self::CommandComplete),
            ERROR_RESPONSE_TAG => ErrorFields::decode(body).map(Self::ErrorResponse),
            NOTICE_RESPONSE_TAG => ErrorFields::decode(body).map(Self::NoticeResponse),
            ParameterDescription::TAG => {
                ParameterDescription::decode(body).map(Self::ParameterDescription)
            }
            PARSE_COMPLETE_TAG => empty(body, "ParseComplete", Self::ParseComplete),
            BIND_COMPLETE_TAG => empty(body, "BindComplete", Self::BindComplete),
            CLOSE_COMPLETE_TAG => empty(body, "CloseComplete", Self::CloseComplete),
            NO_DATA_TAG => empty(body, "NoData", Self::NoData),
            PORTAL_SUSPENDED_TAG => empty(body, "PortalSuspended", Self::PortalSuspended),
            EMPTY_QUERY_RESPONSE_TAG => empty(body, "EmptyQueryResponse", Self::EmptyQueryResponse),
            CopyResponse::IN_TAG => CopyResponse::decode(body).map(Self::CopyInResponse),
            CopyResponse::OUT_TAG => CopyResponse::decode(body).map(Self::CopyOutResponse),
            CopyResponse::BOTH_TAG => CopyResponse::decode(body).map(Self::CopyBothResponse),
            COPY_DATA_TAG => Ok(Self::CopyData(body.clone())),
            COPY_DONE_TAG => empty(body, "CopyDone", Self::CopyDone),
            NotificationResponse::TAG => {
                NotificationResponse::decode(body).map(Self::NotificationResponse)
            }
            FUNCTION_CALL_RESPONSE_TAG => {
                decode_function_call_response(body).map(Self::FunctionCallResponse)
            }
            NegotiateProtocolVersion::TAG => {
                NegotiateProtocolVersion::decode(body).map(Self::NegotiateProtocolVersion)
            }
            tag => Ok(Self::Unknown {
                tag,
                body: body.clone(),
            }),
        }
    }

    /// The message type byte.
    pub fn tag(&self) -> u8 {
        match self {
            Self::Authentication(_) => Authentication::TAG,
            Self::BackendKeyData(_) => BackendKeyData::TAG,
            Self::ParameterStatus(_) => ParameterStatus::TAG,
            Self::ReadyForQuery(_) => ReadyForQuery::TAG,
            Self::RowDescription(_) => RowDescription::TAG,
            Self::DataRow(_) => DataRow::TAG,
            Self::CommandComplete(_) => CommandComplete::TAG,
            Self::ErrorResponse(_) => ERROR_RESPONSE_TAG,
            Self::NoticeResponse(_) => NOTICE_RESPONSE_TAG,
            Self::ParameterDescription(_) => ParameterDescription::TAG,
            Self::ParseComplete => PARSE_COMPLETE_TAG,
            Self::BindComplete => BIND_COMPLETE_TAG,
            Self::CloseComplete => CLOSE_COMPLETE_TAG,
            Self::NoData => NO_DATA_TAG,
            Self::PortalSuspended => PORTAL_SUSPENDED_TAG,
            Self::EmptyQueryResponse => EMPTY_QUERY_RESPONSE_TAG,
            Self::CopyInResponse(_) => CopyResponse::IN_TAG,
            Self::CopyOutResponse(_) => CopyResponse::OUT_TAG,
            Self::CopyBothResponse(_) => CopyResponse::BOTH_TAG,
            Self::CopyData(_) => COPY_DATA_TAG,
            Self::CopyDone => COPY_DONE_TAG,
            Self::NotificationResponse(_) => NotificationResponse::TAG,
            Self::FunctionCallResponse(_) => FUNCTION_CALL_RESPONSE_TAG,
            Self::NegotiateProtocolVersion(_) => NegotiateProtocolVersion::TAG,
            Self::Unknown { tag, .. } => *tag,
        }
    }

    /// Appends the message (tag, length, body) to `dst`.
    ///
    /// # Errors
    /// The encoding errors of the message type; `dst` is unchanged then.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let tag = self.tag();
        match self {
            Self::Authentication(m) => m.encode(dst),
            Self::BackendKeyData(m) => m.encode(dst),
            Self::ParameterStatus(m) => m.encode(dst),
            Self::ReadyForQuery(m) => m.encode(dst),
            Self::RowDescription(m) => m.encode(dst),
            Self::DataRow(m) => m.encode(dst),
            Self::CommandComplete(m) => m.encode(dst),
            Self::ErrorResponse(m) | Self::NoticeResponse(m) => m.encode(tag, dst),
            Self::ParameterDescription(m) => m.encode(dst),
            Self::CopyInResponse(m) | Self::CopyOutResponse(m) | Self::CopyBothResponse(m) => {
                m.encode(tag, dst)
            }
            Self::NotificationResponse(m) => m.encode(dst),
            Self::FunctionCallResponse(value) => encode_function_call_response(value.as_ref(), dst),
            Self::NegotiateProtocolVersion(m) => m.encode(dst),
            Self::ParseComplete
            | Self::BindComplete
            | Self::CloseComplete
            | Self::NoData
            | Self::PortalSuspended
            | Self::EmptyQueryResponse
            | Self::CopyDone => encode_raw(dst, tag, &[]),
            Self::CopyData(body) | Self::Unknown { body, .. } => encode_raw(dst, tag, body),
        }
    }
}
