//! Property tests: no input panics, every message round-trips byte for byte, and framing does
//! not depend on how the stream is split into reads.

use bytes::{Bytes, BytesMut};
use pgseal_wire::backend::{
    Authentication, BackendKeyData, CommandComplete, CopyResponse, DataRow, ErrorFields,
    FieldDescription, NegotiateProtocolVersion, NotificationResponse, ParameterDescription,
    ParameterStatus, ReadyForQuery, RowDescription, TransactionStatus,
};
use pgseal_wire::frontend::{
    Bind, Close, CopyFail, Describe, Execute, FunctionCall, Parse, Query, TargetKind,
};
use pgseal_wire::{
    decode_frame, decode_startup, BackendMessage, Frame, FrontendMessage, StartupPacket,
};
use proptest::collection::vec;
use proptest::prelude::*;

const MAX: usize = 1 << 20;

// ---- the checks (the fuzz target `wire_messages` runs the same ones) ----

/// Decodes `(tag, body)` both ways; whatever decodes must re-encode to exactly the frame.
fn check_frame(frame: &Frame) {
    check_borrowed_readers(&frame.body);
    let mut raw = BytesMut::new();
    frame.encode(&mut raw).expect("a frame re-encodes");
    if let Ok(message) = FrontendMessage::decode(frame) {
        let mut out = BytesMut::new();
        message
            .encode(&mut out)
            .expect("a decoded message re-encodes");
        assert_eq!(out, raw, "frontend {message:?}");
        assert_eq!(message.tag(), frame.tag);
    }
    if let Ok(message) = BackendMessage::decode(frame) {
        let mut out = BytesMut::new();
        message
            .encode(&mut out)
            .expect("a decoded message re-encodes");
        assert_eq!(out, raw, "backend {message:?}");
        assert_eq!(message.tag(), frame.tag);
    }
}

/// The readers that borrow from a body accept exactly what the full decoders accept, and
/// read the same names: the proxy judges forwarded messages with them.
fn check_borrowed_readers(body: &Bytes) {
    match (Bind::head_of(body), Bind::decode(body)) {
        (Ok(head), Ok(bind)) => {
            assert_eq!(head.portal, bind.portal);
            assert_eq!(head.statement, bind.statement);
            assert_eq!(head.params, bind.params.len());
            assert!(head
                .result_formats()
                .eq(bind.result_formats.iter().copied()));
            // Swapping the result formats in place writes what re-encoding would.
            for formats in [&[][..], &[1], &[1, 0, 1]] {
                let mut spliced = BytesMut::new();
                let mut encoded = BytesMut::new();
                let swapped = head.encode_with_result_formats(formats, &mut spliced);
                let with_formats = Bind {
                    result_formats: formats.to_vec(),
                    ..bind.clone()
                };
                assert_eq!(swapped, with_formats.encode(&mut encoded));
                assert_eq!(spliced, encoded);
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (head, bind) => panic!("Bind: in place {head:?}, decoded {bind:?}"),
    }
    match (Execute::portal_of(body), Execute::decode(body)) {
        (Ok((portal, max_rows)), Ok(execute)) => {
            assert_eq!(
                (portal, max_rows),
                (execute.portal.as_str(), execute.max_rows)
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (head, execute) => panic!("Execute: in place {head:?}, decoded {execute:?}"),
    }
    match (Describe::target_of(body), Describe::decode(body)) {
        (Ok((kind, name)), Ok(describe)) => {
            assert_eq!((kind, name), (describe.kind, describe.name.as_str()));
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (head, describe) => panic!("Describe: in place {head:?}, decoded {describe:?}"),
    }
}

/// Runs every decoder over `data` in every way it can be read.
fn check_bytes(data: &[u8]) {
    let mut src = BytesMut::from(data);
    if let Ok(Some(packet)) = decode_startup(&mut src, MAX) {
        let consumed = data.len() - src.len();
        let mut out = BytesMut::new();
        packet
            .encode(&mut out)
            .expect("a decoded packet re-encodes");
        assert_eq!(&out[..], &data[..consumed]);
    }
    if let Ok(packet) = StartupPacket::decode(&Bytes::copy_from_slice(data)) {
        let mut out = BytesMut::new();
        packet
            .encode(&mut out)
            .expect("a decoded packet re-encodes");
        assert_eq!(&out[4..], data);
    }
    let mut src = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut src, MAX) {
        check_frame(&frame);
    }
    if let Some((&tag, body)) = data.split_first() {
        check_frame(&Frame::new(tag, Bytes::copy_from_slice(body)));
    }
}

// ---- strategies ----

fn text() -> impl Strategy<Value = String> {
    "[^\\x00]{0,12}"
}

fn name() -> impl Strategy<Value = String> {
    "[^\\x00]{1,12}"
}

fn blob() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn values(max: usize) -> impl Strategy<Value = Vec<Option<Bytes>>> {
    vec(proptest::option::of(blob()), 0..max)
}

/// Values and format codes that obey the 0/1/n rule.
fn values_with_formats() -> impl Strategy<Value = (Vec<i16>, Vec<Option<Bytes>>)> {
    values(6).prop_flat_map(|values| {
        let n = values.len();
        let formats = prop_oneof![
            Just(vec![]),
            any::<i16>().prop_map(|f| vec![f]),
            vec(any::<i16>(), n..=n),
        ];
        (formats, Just(values))
    })
}

fn kind() -> impl Strategy<Value = TargetKind> {
    prop_oneof![Just(TargetKind::Statement), Just(TargetKind::Portal)]
}

fn unknown_tag(known: &'static [u8]) -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("tag has a decoder", move |t| !known.contains(t))
}

fn frontend_message() -> impl Strategy<Value = FrontendMessage> {
    prop_oneof![
        text().prop_map(|sql| FrontendMessage::Query(Query { sql })),
        (text(), text(), vec(any::<u32>(), 0..6)).prop_map(|(name, sql, param_types)| {
            FrontendMessage::Parse(Parse {
                name,
                sql,
                param_types,
            })
        }),
        (
            text(),
            text(),
            values_with_formats(),
            vec(any::<i16>(), 0..6)
        )
            .prop_map(
                |(portal, statement, (param_formats, params), result_formats)| {
                    FrontendMessage::Bind(Bind {
                        portal,
                        statement,
                        param_formats,
                        params,
                        result_formats,
                    })
                }
            ),
        (kind(), text())
            .prop_map(|(kind, name)| FrontendMessage::Describe(Describe { kind, name })),
        (kind(), text()).prop_map(|(kind, name)| FrontendMessage::Close(Close { kind, name })),
        (text(), any::<i32>())
            .prop_map(|(portal, max_rows)| FrontendMessage::Execute(Execute { portal, max_rows })),
        Just(FrontendMessage::Sync),
        Just(FrontendMessage::Flush),
        Just(FrontendMessage::Terminate),
        blob().prop_map(FrontendMessage::CopyData),
        Just(FrontendMessage::CopyDone),
        text().prop_map(|message| FrontendMessage::CopyFail(CopyFail { message })),
        (any::<u32>(), values_with_formats(), any::<i16>()).prop_map(
            |(oid, (arg_formats, args), result_format)| {
                FrontendMessage::FunctionCall(FunctionCall {
                    oid,
                    arg_formats,
                    args,
                    result_format,
                })
            }
        ),
        blob().prop_map(FrontendMessage::AuthResponse),
        (unknown_tag(b"QPBDECSHXdcfFp"), blob())
            .prop_map(|(tag, body)| FrontendMessage::Unknown { tag, body }),
    ]
}

fn authentication() -> impl Strategy<Value = Authentication> {
    prop_oneof![
        Just(Authentication::Ok),
        Just(Authentication::CleartextPassword),
        any::<[u8; 4]>().prop_map(|salt| Authentication::Md5Password { salt }),
        vec(name(), 0..3).prop_map(|mechanisms| Authentication::Sasl { mechanisms }),
        blob().prop_map(Authentication::SaslContinue),
        blob().prop_map(Authentication::SaslFinal),
        (
            any::<i32>().prop_filter("code has a variant", |c| ![0, 3, 5, 10, 11, 12].contains(c)),
            blob()
        )
            .prop_map(|(code, data)| Authentication::Other { code, data }),
    ]
}

fn field_description() -> impl Strategy<Value = FieldDescription> {
    (
        text(),
        any::<u32>(),
        any::<i16>(),
        any::<u32>(),
        any::<i16>(),
        any::<i32>(),
        any::<i16>(),
    )
        .prop_map(
            |(name, table_oid, column_attr, type_oid, type_size, type_modifier, format)| {
                FieldDescription {
                    name,
                    table_oid,
                    column_attr,
                    type_oid,
                    type_size,
                    type_modifier,
                    format,
                }
            },
        )
}

fn error_fields() -> impl Strategy<Value = ErrorFields> {
    vec((1u8.., text()), 0..5).prop_map(|fields| ErrorFields { fields })
}

fn copy_response() -> impl Strategy<Value = CopyResponse> {
    (any::<i8>(), vec(any::<i16>(), 0..5)).prop_map(|(format, column_formats)| CopyResponse {
        format,
        column_formats,
    })
}

fn backend_message() -> impl Strategy<Value = BackendMessage> {
    prop_oneof![
        authentication().prop_map(BackendMessage::Authentication),
        (any::<i32>(), any::<i32>())
            .prop_map(|(pid, key)| BackendMessage::BackendKeyData(BackendKeyData { pid, key })),
        (text(), text()).prop_map(|(name, value)| BackendMessage::ParameterStatus(
            ParameterStatus { name, value }
        )),
        prop_oneof![
            Just(TransactionStatus::Idle),
            Just(TransactionStatus::InTransaction),
            Just(TransactionStatus::Failed)
        ]
        .prop_map(|status| BackendMessage::ReadyForQuery(ReadyForQuery { status })),
        vec(field_description(), 0..4)
            .prop_map(|fields| BackendMessage::RowDescription(RowDescription { fields })),
        values(8).prop_map(|values| BackendMessage::DataRow(DataRow { values })),
        text().prop_map(|tag| BackendMessage::CommandComplete(CommandComplete { tag })),
        error_fields().prop_map(BackendMessage::ErrorResponse),
        error_fields().prop_map(BackendMessage::NoticeResponse),
        vec(any::<u32>(), 0..6)
            .prop_map(|types| BackendMessage::ParameterDescription(ParameterDescription { types })),
        Just(BackendMessage::ParseComplete),
        Just(BackendMessage::BindComplete),
        Just(BackendMessage::CloseComplete),
        Just(BackendMessage::NoData),
        Just(BackendMessage::PortalSuspended),
        Just(BackendMessage::EmptyQueryResponse),
        copy_response().prop_map(BackendMessage::CopyInResponse),
        copy_response().prop_map(BackendMessage::CopyOutResponse),
        copy_response().prop_map(BackendMessage::CopyBothResponse),
        blob().prop_map(BackendMessage::CopyData),
        Just(BackendMessage::CopyDone),
        (any::<i32>(), text(), text()).prop_map(|(pid, channel, payload)| {
            BackendMessage::NotificationResponse(NotificationResponse {
                pid,
                channel,
                payload,
            })
        }),
        proptest::option::of(blob()).prop_map(BackendMessage::FunctionCallResponse),
        (any::<i32>(), vec(text(), 0..3)).prop_map(|(newest_minor, unrecognized)| {
            BackendMessage::NegotiateProtocolVersion(NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            })
        }),
        (unknown_tag(b"RKSZTDCENt123nsIGHWdcAVv"), blob())
            .prop_map(|(tag, body)| BackendMessage::Unknown { tag, body }),
    ]
}

fn startup_packet() -> impl Strategy<Value = StartupPacket> {
    prop_oneof![
        (any::<u16>(), vec((name(), text()), 0..4)).prop_map(|(minor, params)| {
            StartupPacket::Startup {
                protocol: (3, minor),
                params,
            }
        }),
        Just(StartupPacket::SslRequest),
        Just(StartupPacket::GssEncRequest),
        (any::<i32>(), any::<i32>()).prop_map(|(process_id, secret_key)| StartupPacket::Cancel {
            process_id,
            secret_key
        }),
    ]
}

fn raw_frame() -> impl Strategy<Value = Frame> {
    (any::<u8>(), blob()).prop_map(|(tag, body)| Frame::new(tag, body))
}

/// Decodes every complete frame, feeding `stream` in the given chunks.
fn frames_in_chunks(stream: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        src.extend_from_slice(&stream[start..end]);
        start = end;
        while let Some(frame) = decode_frame(&mut src, MAX).expect("valid stream") {
            out.push(frame);
        }
    }
    assert!(src.is_empty(), "{} bytes left over", src.len());
    out
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..96)) {
        check_bytes(&data);
    }

    #[test]
    fn arbitrary_bytes_with_a_plausible_header_never_panic(
        tag in any::<u8>(),
        body in vec(any::<u8>(), 0..64),
        slack in 0usize..4,
    ) {
        // A length that matches the body, so the decoders get past framing.
        let mut data = vec![tag];
        let len = i32::try_from(body.len() + 4).expect("small");
        data.extend_from_slice(&len.to_be_bytes());
        data.extend_from_slice(&body);
        data.truncate(data.len().saturating_sub(slack));
        check_bytes(&data);
        check_bytes(&data[1..]);
    }

    #[test]
    fn bind_bodies_read_in_place_as_decoded(
        portal in "[a-z]{0,3}",
        statement in "[a-z]{0,3}",
        param_formats in vec(0i16..3, 0..4),
        params in vec(proptest::option::of(vec(any::<u8>(), 0..4)), 0..4),
        result_formats in vec(0i16..3, 0..4),
        trailing in vec(any::<u8>(), 0..2),
        cut in 0usize..3,
    ) {
        // Built by hand, not by Bind::encode, so the counts may disagree.
        let mut body = Vec::new();
        for name in [&portal, &statement] {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
        }
        let count = |n: usize| u16::try_from(n).expect("small").to_be_bytes();
        body.extend_from_slice(&count(param_formats.len()));
        for code in &param_formats {
            body.extend_from_slice(&code.to_be_bytes());
        }
        body.extend_from_slice(&count(params.len()));
        for value in &params {
            match value {
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(bytes) => {
                    let len = i32::try_from(bytes.len()).expect("small");
                    body.extend_from_slice(&len.to_be_bytes());
                    body.extend_from_slice(bytes);
                }
            }
        }
        body.extend_from_slice(&count(result_formats.len()));
        for code in &result_formats {
            body.extend_from_slice(&code.to_be_bytes());
        }
        body.extend_from_slice(&trailing);
        body.truncate(body.len().saturating_sub(cut));
        check_borrowed_readers(&Bytes::from(body));
    }

    #[test]
    fn frontend_messages_round_trip(message in frontend_message()) {
        let mut encoded = BytesMut::new();
        message.encode(&mut encoded).expect("encodable");
        if let FrontendMessage::Bind(bind) = &message {
            prop_assert_eq!(encoded.len(), bind.encoded_len());
        }
        let bytes = encoded.clone().freeze();
        let frame = decode_frame(&mut encoded, MAX).expect("valid").expect("complete");
        prop_assert!(encoded.is_empty());
        prop_assert_eq!(FrontendMessage::decode(&frame).expect("decodes"), message);
        check_bytes(&bytes);
    }

    #[test]
    fn backend_messages_round_trip(message in backend_message()) {
        let mut encoded = BytesMut::new();
        message.encode(&mut encoded).expect("encodable");
        if let BackendMessage::DataRow(row) = &message {
            prop_assert_eq!(encoded.len(), row.encoded_len());
        }
        let bytes = encoded.clone().freeze();
        let frame = decode_frame(&mut encoded, MAX).expect("valid").expect("complete");
        prop_assert!(encoded.is_empty());
        prop_assert_eq!(BackendMessage::decode(&frame).expect("decodes"), message);
        check_bytes(&bytes);
    }

    #[test]
    fn startup_packets_round_trip(packet in startup_packet()) {
        let mut encoded = BytesMut::new();
        packet.encode(&mut encoded).expect("encodable");
        let decoded = decode_startup(&mut encoded, MAX).expect("valid").expect("complete");
        prop_assert!(encoded.is_empty());
        prop_assert_eq!(decoded, packet);
    }

    #[test]
    fn a_stream_split_anywhere_decodes_to_the_same_frames(
        frames in vec(raw_frame(), 1..6),
    ) {
        let mut stream = BytesMut::new();
        for frame in &frames {
            frame.encode(&mut stream).expect("encodable");
        }
        for cut in 0..=stream.len() {
            prop_assert_eq!(&frames_in_chunks(&stream, &[cut]), &frames, "cut at {}", cut);
        }
        let every_byte: Vec<usize> = (1..stream.len()).collect();
        prop_assert_eq!(&frames_in_chunks(&stream, &every_byte), &frames);
    }

    #[test]
    fn startup_then_frames_split_anywhere(
        packet in startup_packet(),
        messages in vec(frontend_message(), 0..4),
    ) {
        let mut stream = BytesMut::new();
        packet.encode(&mut stream).expect("encodable");
        for m in &messages {
            m.encode(&mut stream).expect("encodable");
        }
        for cut in 0..=stream.len() {
            let mut src = BytesMut::from(&stream[..cut]);
            let mut got_packet = decode_startup(&mut src, MAX).expect("valid");
            src.extend_from_slice(&stream[cut..]);
            if got_packet.is_none() {
                got_packet = decode_startup(&mut src, MAX).expect("valid");
            }
            prop_assert_eq!(got_packet.as_ref(), Some(&packet));
            let mut got = Vec::new();
            while let Some(frame) = decode_frame(&mut src, MAX).expect("valid") {
                got.push(FrontendMessage::decode(&frame).expect("decodes"));
            }
            prop_assert!(src.is_empty());
            prop_assert_eq!(&got, &messages);
        }
    }
}
