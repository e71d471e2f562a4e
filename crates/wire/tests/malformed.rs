//! Malformed input: each case must be a specific typed error, never a panic, and must not
//! allocate on the strength of a forged length or count.

use bytes::{Bytes, BytesMut};
use pgseal_wire::backend::{
    Authentication, BackendKeyData, DataRow, ErrorFields, NegotiateProtocolVersion, ReadyForQuery,
    RowDescription,
};
use pgseal_wire::frontend::{Bind, Describe, Execute, FunctionCall, Parse, Query};
use pgseal_wire::{
    decode_frame, decode_startup, BackendMessage, Format, Frame, FrontendMessage, StartupPacket,
    WireError,
};

fn body(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

fn frontend(tag: u8, bytes: &[u8]) -> Result<FrontendMessage, WireError> {
    FrontendMessage::decode(&Frame::new(tag, body(bytes)))
}

fn backend(tag: u8, bytes: &[u8]) -> Result<BackendMessage, WireError> {
    BackendMessage::decode(&Frame::new(tag, body(bytes)))
}

// ---- framing ----

#[test]
fn incomplete_frames_need_more_bytes_and_consume_nothing() {
    let full: &[u8] = b"Q\x00\x00\x00\x0dSELECT 1\x00";
    for cut in 0..full.len() {
        let mut src = BytesMut::from(&full[..cut]);
        assert_eq!(decode_frame(&mut src, 1024), Ok(None), "cut at {cut}");
        assert_eq!(&src[..], &full[..cut], "nothing consumed at {cut}");
    }
    let mut src = BytesMut::from(full);
    let frame = decode_frame(&mut src, 1024)
        .expect("valid")
        .expect("complete");
    assert_eq!(frame.tag, b'Q');
    assert_eq!(&frame.body[..], b"SELECT 1\x00");
    assert_eq!(frame.encoded_len(), full.len());
}

#[test]
fn frame_length_below_four_is_rejected() {
    for len in [0i32, 3, -1, i32::MIN] {
        let mut src = BytesMut::new();
        src.extend_from_slice(b"Q");
        src.extend_from_slice(&len.to_be_bytes());
        assert_eq!(
            decode_frame(&mut src, 1024),
            Err(WireError::InvalidLength { len, min: 4 })
        );
    }
}

#[test]
fn absurd_frame_length_is_rejected_without_reserving_it() {
    let mut src = BytesMut::with_capacity(16);
    src.extend_from_slice(b"D\x7f\xff\xff\xff");
    assert_eq!(
        decode_frame(&mut src, 1 << 20),
        Err(WireError::MessageTooLarge {
            len: i32::MAX as usize,
            max: 1 << 20
        })
    );
    // A length within the limit but not yet arrived reserves nothing either.
    let mut src = BytesMut::with_capacity(16);
    src.extend_from_slice(b"D\x7f\xff\xff\xff");
    assert_eq!(decode_frame(&mut src, usize::MAX), Ok(None));
    assert!(src.capacity() < 1024, "capacity grew to {}", src.capacity());
}

#[test]
fn frame_length_exactly_at_the_limit_is_accepted() {
    let mut src = BytesMut::from(&b"d\x00\x00\x00\x08abcd"[..]);
    assert!(decode_frame(&mut src, 8).expect("at the limit").is_some());
    let mut src = BytesMut::from(&b"d\x00\x00\x00\x08abcd"[..]);
    assert_eq!(
        decode_frame(&mut src, 7),
        Err(WireError::MessageTooLarge { len: 8, max: 7 })
    );
}

// ---- startup ----

fn startup(bytes: &[u8]) -> Result<Option<StartupPacket>, WireError> {
    decode_startup(&mut BytesMut::from(bytes), 10_000)
}

#[test]
fn startup_errors() {
    assert_eq!(
        startup(b"\x00\x00\x00\x07\x00\x03\x00"),
        Err(WireError::InvalidLength { len: 7, min: 8 })
    );
    assert_eq!(
        startup(b"\x00\x01\x00\x00"),
        Err(WireError::MessageTooLarge {
            len: 65536,
            max: 10_000
        })
    );
    assert_eq!(
        startup(b"\x00\x00\x00\x09\x00\x02\x00\x00\x00"),
        Err(WireError::UnsupportedProtocol { major: 2, minor: 0 })
    );
    assert_eq!(
        startup(b"\x00\x00\x00\x08\x04\xd2\x16\x31"),
        Err(WireError::UnsupportedProtocol {
            major: 1234,
            minor: 5681
        })
    );
    // No list terminator.
    assert_eq!(
        startup(b"\x00\x00\x00\x11\x00\x03\x00\x00user\x00bob\x00"),
        Err(WireError::MissingNul {
            field: "StartupMessage.name"
        })
    );
    // A name without its value.
    assert_eq!(
        startup(b"\x00\x00\x00\x0d\x00\x03\x00\x00user\x00"),
        Err(WireError::MissingNul {
            field: "StartupMessage.value"
        })
    );
    // Trailing bytes after the terminator, and after fixed-size requests.
    assert_eq!(
        startup(b"\x00\x00\x00\x0a\x00\x03\x00\x00\x00X"),
        Err(WireError::TrailingBytes {
            message: "StartupMessage",
            extra: 1
        })
    );
    assert_eq!(
        startup(b"\x00\x00\x00\x09\x04\xd2\x16\x2f\x00"),
        Err(WireError::TrailingBytes {
            message: "SSLRequest",
            extra: 1
        })
    );
    assert_eq!(
        startup(b"\x00\x00\x00\x0c\x04\xd2\x16\x2e\x00\x00\x00\x01"),
        Err(WireError::Truncated {
            field: "CancelRequest.secret_key",
            needed: 4,
            remaining: 0
        })
    );
    assert_eq!(
        startup(b"\x00\x00\x00\x10\x00\x03\x00\x00user\x00\xff\x00\x00"),
        Err(WireError::InvalidUtf8 {
            field: "StartupMessage.value"
        })
    );
}

#[test]
fn incomplete_startup_needs_more_bytes() {
    let full: &[u8] = b"\x00\x00\x00\x08\x04\xd2\x16\x2f";
    for cut in 0..full.len() {
        let mut src = BytesMut::from(&full[..cut]);
        assert_eq!(decode_startup(&mut src, 10_000), Ok(None));
        assert_eq!(src.len(), cut);
    }
}

// ---- frontend ----

#[test]
fn missing_cstring_terminator() {
    assert_eq!(
        frontend(b'Q', b"SELECT 1"),
        Err(WireError::MissingNul { field: "Query.sql" })
    );
    assert_eq!(
        frontend(b'P', b"\x00SELECT 1"),
        Err(WireError::MissingNul { field: "Parse.sql" })
    );
    assert_eq!(
        frontend(b'D', b"Sstmt"),
        Err(WireError::MissingNul {
            field: "Describe.name"
        })
    );
}

#[test]
fn trailing_garbage_after_the_body() {
    assert_eq!(
        frontend(b'Q', b"SELECT 1\x00;"),
        Err(WireError::TrailingBytes {
            message: "Query",
            extra: 1
        })
    );
    assert_eq!(
        frontend(b'S', b"\x00"),
        Err(WireError::TrailingBytes {
            message: "Sync",
            extra: 1
        })
    );
    assert_eq!(
        frontend(b'E', b"\x00\x00\x00\x00\x00\x00\x00"),
        Err(WireError::TrailingBytes {
            message: "Execute",
            extra: 2
        })
    );
    assert_eq!(
        backend(b'Z', b"II"),
        Err(WireError::TrailingBytes {
            message: "ReadyForQuery",
            extra: 1
        })
    );
    assert_eq!(
        backend(b'K', b"\x00\x00\x00\x01\x00\x00\x00\x02\x00"),
        Err(WireError::TrailingBytes {
            message: "BackendKeyData",
            extra: 1
        })
    );
}

#[test]
fn truncated_bodies() {
    assert_eq!(
        Execute::decode(&body(b"\x00\x00\x00")),
        Err(WireError::Truncated {
            field: "Execute.max_rows",
            needed: 4,
            remaining: 2
        })
    );
    assert_eq!(
        Parse::decode(&body(b"\x00x\x00\x00\x01\x00\x00")),
        Err(WireError::CountExceedsBody {
            field: "Parse.param_types",
            count: 1,
            needed: 4,
            remaining: 2
        })
    );
    assert_eq!(
        Bind::decode(&body(b"\x00\x00\x00\x00\x00\x01\x00\x00")),
        Err(WireError::CountExceedsBody {
            field: "Bind.params",
            count: 1,
            needed: 4,
            remaining: 2
        })
    );
    assert_eq!(
        frontend(b'B', b"\x00\x00\x00\x00\x00\x00"),
        Err(WireError::Truncated {
            field: "Bind.result_formats",
            needed: 2,
            remaining: 0
        })
    );
    assert_eq!(
        backend(b'R', b"\x00\x00\x00\x05\x01\x02"),
        Err(WireError::Truncated {
            field: "AuthenticationMD5Password.salt",
            needed: 4,
            remaining: 2
        })
    );
    assert_eq!(
        backend(b'Z', b""),
        Err(WireError::Truncated {
            field: "ReadyForQuery.status",
            needed: 1,
            remaining: 0
        })
    );
}

#[test]
fn value_lengths_past_the_end() {
    // DataRow: one column claiming 100 bytes with 2 present.
    assert_eq!(
        DataRow::decode(&body(b"\x00\x01\x00\x00\x00\x64ab")),
        Err(WireError::Truncated {
            field: "DataRow.values",
            needed: 100,
            remaining: 2
        })
    );
    // Bind: a parameter claiming i32::MAX bytes.
    assert_eq!(
        Bind::decode(&body(b"\x00\x00\x00\x00\x00\x01\x7f\xff\xff\xff\x00\x00")),
        Err(WireError::Truncated {
            field: "Bind.params",
            needed: i32::MAX as usize,
            remaining: 2
        })
    );
    assert_eq!(
        backend(b'V', b"\x00\x00\x00\x05abc"),
        Err(WireError::Truncated {
            field: "FunctionCallResponse.value",
            needed: 5,
            remaining: 3
        })
    );
}

#[test]
fn negative_lengths_and_counts() {
    assert_eq!(
        DataRow::decode(&body(b"\x00\x01\xff\xff\xff\xfe")),
        Err(WireError::InvalidValueLength {
            field: "DataRow.values",
            len: -2
        })
    );
    assert_eq!(
        FunctionCall::decode(&body(
            b"\x00\x00\x00\x01\x00\x00\x00\x01\x80\x00\x00\x00\x00\x00"
        )),
        Err(WireError::InvalidValueLength {
            field: "FunctionCall.args",
            len: i32::MIN
        })
    );
    assert_eq!(
        NegotiateProtocolVersion::decode(&body(b"\x00\x00\x00\x00\xff\xff\xff\xff")),
        Err(WireError::NegativeCount {
            field: "NegotiateProtocolVersion.unrecognized",
            count: -1
        })
    );
    // 16-bit counts are unsigned, as PostgreSQL reads them: 0xffff is 65535, which this body
    // cannot hold.
    assert_eq!(
        Bind::decode(&body(b"\x00\x00\xff\xff\x00\x00")),
        Err(WireError::CountExceedsBody {
            field: "Bind.param_formats",
            count: 65535,
            needed: 131_070,
            remaining: 2
        })
    );
}

#[test]
fn counts_larger_than_the_body_fail_before_allocating() {
    assert_eq!(
        DataRow::decode(&body(b"\x7f\xff\x00\x00\x00\x00")),
        Err(WireError::CountExceedsBody {
            field: "DataRow.values",
            count: 32767,
            needed: 131_068,
            remaining: 4
        })
    );
    assert_eq!(
        RowDescription::decode(&Bytes::from([&b"\x00\x02x\x00"[..], &[0u8; 18]].concat())),
        Err(WireError::CountExceedsBody {
            field: "RowDescription.fields",
            count: 2,
            needed: 38,
            remaining: 20
        })
    );
    let mut values = Vec::new();
    let err = DataRow::decode_into(&body(b"\xff\xff"), &mut values);
    assert!(matches!(err, Err(WireError::CountExceedsBody { .. })));
    assert_eq!(values.capacity(), 0, "nothing reserved for a forged count");
}

#[test]
fn invalid_codes_and_text() {
    assert_eq!(
        frontend(b'D', b"X\x00"),
        Err(WireError::InvalidCode {
            field: "Describe.kind",
            code: b'X'
        })
    );
    assert_eq!(
        frontend(b'C', b"\x00\x00"),
        Err(WireError::InvalidCode {
            field: "Close.kind",
            code: 0
        })
    );
    assert_eq!(
        ReadyForQuery::decode(&body(b"Q")),
        Err(WireError::InvalidCode {
            field: "ReadyForQuery.status",
            code: b'Q'
        })
    );
    assert_eq!(
        Query::decode(&body(b"SELECT '\xc3\x28'\x00")),
        Err(WireError::InvalidUtf8 { field: "Query.sql" })
    );
    assert_eq!(
        backend(b'S', b"client_encoding\x00LATIN1\xe9\x00"),
        Err(WireError::InvalidUtf8 {
            field: "ParameterStatus.value"
        })
    );
    assert_eq!(
        ErrorFields::decode(&body(b"SERROR\x00")),
        Err(WireError::Truncated {
            field: "ErrorResponse.code",
            needed: 1,
            remaining: 0
        })
    );
    assert_eq!(
        Authentication::decode(&body(b"\x00\x00\x00\x0aSCRAM-SHA-256\x00")),
        Err(WireError::MissingNul {
            field: "AuthenticationSASL.mechanisms"
        })
    );
}

#[test]
fn bind_format_rule() {
    let mut bind = Bind {
        portal: String::new(),
        statement: "s1".into(),
        param_formats: vec![],
        params: vec![Some(body(b"1")), None, Some(body(b"\x00\x03"))],
        result_formats: vec![],
    };
    // No codes: all text.
    for i in 0..3 {
        assert_eq!(bind.param_format(i), Ok(Format::Text));
    }
    // One code: applies to all.
    bind.param_formats = vec![1];
    for i in 0..3 {
        assert_eq!(bind.param_format(i), Ok(Format::Binary));
    }
    // One per parameter.
    bind.param_formats = vec![0, 0, 1];
    assert_eq!(bind.param_format(1), Ok(Format::Text));
    assert_eq!(bind.param_format(2), Ok(Format::Binary));
    assert_eq!(
        bind.param_format(3),
        Err(WireError::FormatIndexOutOfRange {
            field: "Bind.param_formats",
            index: 3,
            count: 3
        })
    );
    // Several codes, but not one per parameter.
    bind.param_formats = vec![0, 1];
    let mismatch = WireError::FormatCountMismatch {
        field: "Bind.param_formats",
        formats: 2,
        values: 3,
    };
    assert_eq!(bind.param_format(0), Err(mismatch.clone()));
    let mut dst = BytesMut::from(&b"keep"[..]);
    assert_eq!(bind.encode(&mut dst), Err(mismatch.clone()));
    assert_eq!(&dst[..], b"keep");
    // And on the wire: 2 formats, 3 params.
    assert_eq!(
        Bind::decode(&body(
            b"\x00\x00\x00\x02\x00\x00\x00\x01\x00\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00"
        )),
        Err(mismatch)
    );
    // Invalid code.
    bind.param_formats = vec![2];
    assert_eq!(
        bind.param_format(0),
        Err(WireError::InvalidFormatCode {
            field: "Bind.param_formats",
            code: 2
        })
    );
    // Result formats: the column count is not in the message.
    bind.result_formats = vec![];
    assert_eq!(bind.result_format(99), Ok(Format::Text));
    bind.result_formats = vec![1];
    assert_eq!(bind.result_format(99), Ok(Format::Binary));
    bind.result_formats = vec![1, 0];
    assert_eq!(bind.result_format(1), Ok(Format::Text));
    assert_eq!(
        bind.result_format(2),
        Err(WireError::FormatIndexOutOfRange {
            field: "Bind.result_formats",
            index: 2,
            count: 2
        })
    );
}

// ---- encoding ----

#[test]
fn encoding_refuses_unrepresentable_messages_and_leaves_dst_unchanged() {
    let mut dst = BytesMut::from(&b"prefix"[..]);
    let smuggle = Query {
        sql: "SELECT 1\0Q\0\0\0\x0dDROP TABLE".into(),
    };
    assert_eq!(
        smuggle.encode(&mut dst),
        Err(WireError::InteriorNul { field: "Query.sql" })
    );
    let too_many = Parse {
        name: String::new(),
        sql: "SELECT".into(),
        param_types: vec![0; 65_536],
    };
    assert_eq!(
        too_many.encode(&mut dst),
        Err(WireError::TooManyValues {
            field: "Parse.param_types",
            count: 65_536,
            max: 65_535
        })
    );
    let wide_row = DataRow {
        values: vec![None; 65_536],
    };
    assert_eq!(
        wide_row.encode(&mut dst),
        Err(WireError::TooManyValues {
            field: "DataRow.values",
            count: 65_536,
            max: 65_535
        })
    );
    assert_eq!(
        StartupPacket::startup(vec![(String::new(), "x".into())]).encode(&mut dst),
        Err(WireError::EmptyListItem {
            field: "StartupMessage.name"
        })
    );
    assert_eq!(
        Authentication::Sasl {
            mechanisms: vec![String::new()]
        }
        .encode(&mut dst),
        Err(WireError::EmptyListItem {
            field: "AuthenticationSASL.mechanisms"
        })
    );
    assert_eq!(
        ErrorFields::default().with(0, "x").encode(b'E', &mut dst),
        Err(WireError::InvalidCode {
            field: "ErrorResponse.code",
            code: 0
        })
    );
    assert_eq!(
        Describe {
            kind: pgseal_wire::frontend::TargetKind::Statement,
            name: "a\0b".into()
        }
        .encode(&mut dst),
        Err(WireError::InteriorNul {
            field: "Describe.name"
        })
    );
    assert_eq!(&dst[..], b"prefix");
}

// ---- hot path and hygiene ----

#[test]
fn data_row_decode_is_zero_copy_and_reuses_the_vec() {
    let raw = body(b"\x00\x03\x00\x00\x00\x03abc\xff\xff\xff\xff\x00\x00\x00\x00");
    let mut values = Vec::with_capacity(8);
    let ptr = values.as_ptr();
    DataRow::decode_into(&raw, &mut values).expect("valid");
    assert_eq!(values, vec![Some(body(b"abc")), None, Some(Bytes::new())]);
    assert_eq!(values.as_ptr(), ptr, "the caller's allocation was reused");
    let first = values[0].as_ref().expect("not null");
    let start = raw.as_ptr() as usize;
    let at = first.as_ptr() as usize;
    assert!(
        at >= start && at + 3 <= start + raw.len(),
        "value points into the body"
    );

    let row = DataRow { values };
    let mut dst = BytesMut::new();
    row.encode(&mut dst).expect("encodable");
    assert_eq!(dst.len(), row.encoded_len());
    assert_eq!(dst[0], b'D');
    assert_eq!(&dst[5..], &raw[..]);
}

#[test]
fn debug_never_shows_sql_values_or_secrets() {
    let secret = "4111-1111-1111-1111";
    let shown = [
        format!(
            "{:?}",
            FrontendMessage::Query(Query {
                sql: format!("SELECT '{secret}'")
            })
        ),
        format!(
            "{:?}",
            Parse {
                name: "s".into(),
                sql: format!("INSERT INTO t VALUES ('{secret}')"),
                param_types: vec![]
            }
        ),
        format!(
            "{:?}",
            Bind {
                portal: String::new(),
                statement: String::new(),
                param_formats: vec![],
                params: vec![Some(Bytes::from(secret))],
                result_formats: vec![]
            }
        ),
        format!(
            "{:?}",
            DataRow {
                values: vec![Some(Bytes::from(secret))]
            }
        ),
        format!("{:?}", FrontendMessage::AuthResponse(Bytes::from(secret))),
        format!("{:?}", FrontendMessage::CopyData(Bytes::from(secret))),
        format!(
            "{:?}",
            BackendMessage::ErrorResponse(
                ErrorFields::error("23505", format!("duplicate {secret}"))
                    .detail(format!("Key (card)=({secret}) already exists"))
            )
        ),
        format!("{:?}", Frame::new(b'Q', Bytes::from(secret))),
    ];
    for s in &shown {
        assert!(!s.contains(secret), "leaked in {s}");
    }
    let key = format!(
        "{:?}",
        BackendKeyData {
            pid: 7,
            key: 987_654_321
        }
    );
    assert!(!key.contains("987654321"), "{key}");
    let cancel = format!(
        "{:?}",
        StartupPacket::Cancel {
            process_id: 7,
            secret_key: 987_654_321
        }
    );
    assert!(!cancel.contains("987654321"), "{cancel}");
    // Severity and SQLSTATE stay visible for diagnosis.
    assert!(shown[6].contains("23505"));
}

#[test]
fn error_builder_sets_severity_in_both_fields() {
    let fields = ErrorFields::error("XX000", "boom").hint("retry");
    assert_eq!(
        fields.fields,
        vec![
            (b'S', "ERROR".to_string()),
            (b'V', "ERROR".to_string()),
            (b'C', "XX000".to_string()),
            (b'M', "boom".to_string()),
            (b'H', "retry".to_string()),
        ]
    );
    assert_eq!(ErrorFields::fatal("08P01", "bye").severity(), Some("FATAL"));
}
