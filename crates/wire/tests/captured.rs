//! Byte strings written out by hand from the protocol documentation ("Message Formats",
//! PostgreSQL 15) for what libpq and the server actually send, decoded and re-encoded.

use bytes::{Bytes, BytesMut};
use pgseal_wire::backend::{
    Authentication, CommandComplete, DataRow, ErrorFields, FieldDescription,
    NegotiateProtocolVersion, ReadyForQuery, RowDescription, TransactionStatus,
};
use pgseal_wire::frontend::{Bind, Describe, Execute, Parse, TargetKind};
use pgseal_wire::{
    decode_frame, decode_startup, BackendMessage, Format, FrontendMessage, StartupPacket,
};

const MAX: usize = 1 << 20;

/// Splits every frame off `bytes`, requiring that nothing is left over.
fn frames(bytes: &[u8]) -> Vec<pgseal_wire::Frame> {
    let mut src = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(frame) = decode_frame(&mut src, MAX).expect("valid framing") {
        out.push(frame);
    }
    assert!(src.is_empty(), "{} bytes left over", src.len());
    out
}

/// What `PQexecParams(conn, "SELECT $1::int4", 1, NULL, {"42"}, NULL, NULL, 0)` sends:
/// Parse (no types), Bind (no param formats, one result format), Describe portal, Execute,
/// Sync.
const LIBPQ_PIPELINE: &[u8] = b"P\x00\x00\x00\x17\x00SELECT $1::int4\x00\x00\x00\
B\x00\x00\x00\x14\x00\x00\x00\x00\x00\x01\x00\x00\x00\x0242\x00\x01\x00\x00\
D\x00\x00\x00\x06P\x00\
E\x00\x00\x00\x09\x00\x00\x00\x00\x00\
S\x00\x00\x00\x04";

#[test]
fn libpq_extended_pipeline_decodes_and_reencodes_byte_for_byte() {
    let messages: Vec<FrontendMessage> = frames(LIBPQ_PIPELINE)
        .iter()
        .map(|f| FrontendMessage::decode(f).expect("valid message"))
        .collect();
    let expected = vec![
        FrontendMessage::Parse(Parse {
            name: String::new(),
            sql: "SELECT $1::int4".into(),
            param_types: vec![],
        }),
        FrontendMessage::Bind(Bind {
            portal: String::new(),
            statement: String::new(),
            param_formats: vec![],
            params: vec![Some(Bytes::from_static(b"42"))],
            result_formats: vec![0],
        }),
        FrontendMessage::Describe(Describe {
            kind: TargetKind::Portal,
            name: String::new(),
        }),
        FrontendMessage::Execute(Execute {
            portal: String::new(),
            max_rows: 0,
        }),
        FrontendMessage::Sync,
    ];
    assert_eq!(messages, expected);

    let mut out = BytesMut::new();
    for m in &messages {
        m.encode(&mut out).expect("encodable");
    }
    assert_eq!(&out[..], LIBPQ_PIPELINE);

    let FrontendMessage::Bind(bind) = &messages[1] else {
        unreachable!("checked above")
    };
    assert_eq!(bind.param_format(0), Ok(Format::Text));
    assert_eq!(bind.result_format(7), Ok(Format::Text));
}

/// The server's answer to the pipeline above.
const SERVER_RESPONSE: &[u8] = b"1\x00\x00\x00\x04\
2\x00\x00\x00\x04\
T\x00\x00\x00\x1d\x00\x01int4\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00\
D\x00\x00\x00\x0c\x00\x01\x00\x00\x00\x0242\
C\x00\x00\x00\x0dSELECT 1\x00\
Z\x00\x00\x00\x05I";

#[test]
fn server_response_decodes_and_reencodes_byte_for_byte() {
    let messages: Vec<BackendMessage> = frames(SERVER_RESPONSE)
        .iter()
        .map(|f| BackendMessage::decode(f).expect("valid message"))
        .collect();
    let expected = vec![
        BackendMessage::ParseComplete,
        BackendMessage::BindComplete,
        BackendMessage::RowDescription(RowDescription {
            fields: vec![FieldDescription {
                name: "int4".into(),
                table_oid: 0,
                column_attr: 0,
                type_oid: 23,
                type_size: 4,
                type_modifier: -1,
                format: 0,
            }],
        }),
        BackendMessage::DataRow(DataRow {
            values: vec![Some(Bytes::from_static(b"42"))],
        }),
        BackendMessage::CommandComplete(CommandComplete {
            tag: "SELECT 1".into(),
        }),
        BackendMessage::ReadyForQuery(ReadyForQuery {
            status: TransactionStatus::Idle,
        }),
    ];
    assert_eq!(messages, expected);
    let mut out = BytesMut::new();
    for m in &messages {
        m.encode(&mut out).expect("encodable");
    }
    assert_eq!(&out[..], SERVER_RESPONSE);
}

#[test]
fn libpq_startup_packet() {
    let bytes: &[u8] = b"\x00\x00\x00\x20\x00\x03\x00\x00user\x00alice\x00database\x00db\x00\x00";
    let mut src = BytesMut::from(bytes);
    let packet = decode_startup(&mut src, 10_000)
        .expect("valid")
        .expect("complete");
    assert!(src.is_empty());
    assert_eq!(
        packet,
        StartupPacket::startup(vec![
            ("user".into(), "alice".into()),
            ("database".into(), "db".into()),
        ])
    );
    assert_eq!(packet.param("database"), Some("db"));
    assert_eq!(packet.param("options"), None);
    let mut out = BytesMut::new();
    packet.encode(&mut out).expect("encodable");
    assert_eq!(&out[..], bytes);
}

#[test]
fn protocol_3_2_startup_is_accepted_with_its_minor() {
    let bytes: &[u8] = b"\x00\x00\x00\x19\x00\x03\x00\x02user\x00u\x00_pq_.x\x00y\x00\x00";
    let mut src = BytesMut::from(bytes);
    let packet = decode_startup(&mut src, 10_000)
        .expect("valid")
        .expect("complete");
    let StartupPacket::Startup { protocol, params } = &packet else {
        panic!("expected a startup message, got {packet:?}")
    };
    assert_eq!(*protocol, (3, 2));
    assert_eq!(params[1], ("_pq_.x".to_string(), "y".to_string()));
}

#[test]
fn ssl_gssenc_and_cancel_requests() {
    let cases: [(&[u8], StartupPacket); 3] = [
        (
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            StartupPacket::SslRequest,
        ),
        (
            b"\x00\x00\x00\x08\x04\xd2\x16\x30",
            StartupPacket::GssEncRequest,
        ),
        (
            b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x30\x39\xde\xad\xbe\xef",
            StartupPacket::Cancel {
                process_id: 12345,
                secret_key: 0xdead_beef_u32 as i32,
            },
        ),
    ];
    for (bytes, expected) in cases {
        let mut src = BytesMut::from(bytes);
        let packet = decode_startup(&mut src, 10_000)
            .expect("valid")
            .expect("complete");
        assert_eq!(packet, expected);
        let mut out = BytesMut::new();
        packet.encode(&mut out).expect("encodable");
        assert_eq!(&out[..], bytes);
    }
}

#[test]
fn negotiate_protocol_version_bytes() {
    let message = NegotiateProtocolVersion {
        newest_minor: 0,
        unrecognized: vec!["_pq_.x".into()],
    };
    let mut out = BytesMut::new();
    message.encode(&mut out).expect("encodable");
    assert_eq!(
        &out[..],
        b"v\x00\x00\x00\x13\x00\x00\x00\x00\x00\x00\x00\x01_pq_.x\x00"
    );
}

#[test]
fn sasl_and_md5_authentication_requests() {
    let sasl: &[u8] =
        b"R\x00\x00\x00\x2a\x00\x00\x00\x0aSCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00";
    let md5: &[u8] = b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04";
    let ok: &[u8] = b"R\x00\x00\x00\x08\x00\x00\x00\x00";
    let decoded: Vec<BackendMessage> = frames(&[sasl, md5, ok].concat())
        .iter()
        .map(|f| BackendMessage::decode(f).expect("valid"))
        .collect();
    assert_eq!(
        decoded,
        vec![
            BackendMessage::Authentication(Authentication::Sasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()],
            }),
            BackendMessage::Authentication(Authentication::Md5Password { salt: [1, 2, 3, 4] }),
            BackendMessage::Authentication(Authentication::Ok),
        ]
    );
}

#[test]
fn server_error_response_and_builder() {
    let bytes: &[u8] = b"E\x00\x00\x00\x3bSERROR\x00VERROR\x00C42P01\x00Mrelation \"x\" does not exist\x00P15\x00\x00";
    let frame = &frames(bytes)[0];
    let BackendMessage::ErrorResponse(fields) = BackendMessage::decode(frame).expect("valid")
    else {
        panic!("expected an ErrorResponse")
    };
    assert_eq!(fields.sqlstate(), Some("42P01"));
    assert_eq!(fields.severity(), Some("ERROR"));
    assert_eq!(fields.message(), Some("relation \"x\" does not exist"));
    assert_eq!(fields.get(ErrorFields::POSITION), Some("15"));

    let built = ErrorFields::error("42501", "denied").detail("d").hint("h");
    let mut out = BytesMut::new();
    built.encode(b'E', &mut out).expect("encodable");
    assert_eq!(
        &out[..],
        b"E\x00\x00\x00\x28SERROR\x00VERROR\x00C42501\x00Mdenied\x00Dd\x00Hh\x00\x00"
    );
}
