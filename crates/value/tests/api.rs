//! Type catalogue, session settings and error hygiene.

use pgseal_value::{
    parse_text, ByteaOutput, DateOrder, DateOutputStyle, LogicalType, SessionSettings, ValueError,
};

#[test]
fn logical_type_catalogue_is_stable() {
    let tags: Vec<u8> = LogicalType::ALL.iter().map(|t| t.tag()).collect();
    assert_eq!(tags, (1..=16).collect::<Vec<u8>>());
    let oids: Vec<u32> = LogicalType::ALL.iter().map(|t| t.oid()).collect();
    assert_eq!(
        oids,
        [16, 21, 23, 20, 700, 701, 1700, 25, 1043, 17, 1082, 1083, 1114, 1184, 2950, 3802]
    );
    for ty in LogicalType::ALL {
        assert_eq!(LogicalType::from_tag(ty.tag()), Some(ty));
        assert_eq!(LogicalType::from_oid(ty.oid()), Some(ty));
        assert_eq!(LogicalType::from_sql_name(ty.sql_name()), Some(ty));
    }
    assert_eq!(LogicalType::from_tag(0), None);
    assert_eq!(LogicalType::from_tag(17), None);
    assert_eq!(LogicalType::from_oid(1186), None);
    assert_eq!(
        LogicalType::from_sql_name("TIMESTAMPTZ"),
        Some(LogicalType::Timestamptz)
    );
    assert_eq!(LogicalType::Timestamptz.sql_name(), "timestamptz");
    let no_eq: Vec<LogicalType> = LogicalType::ALL
        .into_iter()
        .filter(|t| !t.supports_equality())
        .collect();
    assert_eq!(
        no_eq,
        [LogicalType::Float4, LogicalType::Float8, LogicalType::Jsonb]
    );
    assert_eq!(LogicalType::Uuid.fixed_binary_len(), Some(16));
    assert_eq!(LogicalType::Date.fixed_binary_len(), Some(4));
    assert_eq!(LogicalType::Timestamptz.fixed_binary_len(), Some(8));
    assert_eq!(LogicalType::Numeric.fixed_binary_len(), None);
}

#[test]
fn session_defaults_and_parameters() {
    let mut s = SessionSettings::default();
    assert_eq!(s.date_style.output, DateOutputStyle::Iso);
    assert_eq!(s.date_style.order, DateOrder::Mdy);
    assert_eq!(s.time_zone.name(), "UTC");
    assert_eq!(s.extra_float_digits, 1);
    assert_eq!(s.bytea_output, ByteaOutput::Hex);

    s.apply_parameter("datestyle", "German").expect("German");
    assert_eq!(s.date_style.output, DateOutputStyle::German);
    assert_eq!(s.date_style.order, DateOrder::Dmy);
    s.apply_parameter("DateStyle", "SQL, YMD")
        .expect("SQL, YMD");
    assert_eq!(
        (s.date_style.output, s.date_style.order),
        (DateOutputStyle::Sql, DateOrder::Ymd)
    );
    s.apply_parameter("TimeZone", "America/New_York")
        .expect("IANA");
    s.apply_parameter("TimeZone", "<+03>-03")
        .expect("fixed POSIX");
    s.apply_parameter("TimeZone", "<+05:30>-05:30")
        .expect("fixed POSIX with minutes");
    s.apply_parameter("TimeZone", "UTC+3")
        .expect("POSIX counts west");
    s.apply_parameter("extra_float_digits", "-15").expect("-15");
    s.apply_parameter("bytea_output", "escape").expect("escape");
    s.apply_parameter("application_name", "anything")
        .expect("ignored");
    s.apply_parameter("client_encoding", "UTF8").expect("UTF8");

    let before = s.clone();
    for (name, value) in [
        ("TimeZone", "Mars/Olympus"),
        ("TimeZone", "<-05>+05<-04>,M3.2.0,M11.1.0"),
        ("TimeZone", ""),
        ("TimeZone", "<+03>"),
        ("TimeZone", "UTC+3x"),
        ("DateStyle", "Klingon"),
        ("extra_float_digits", "4"),
        ("extra_float_digits", "x"),
        ("bytea_output", "base64"),
        ("client_encoding", "LATIN1"),
        ("server_encoding", "SQL_ASCII"),
        ("integer_datetimes", "off"),
    ] {
        let err = s.apply_parameter(name, value).expect_err(value);
        assert!(
            matches!(err, ValueError::UnsupportedSetting { .. }),
            "{name}={value}: {err:?}"
        );
        assert_eq!(err.sqlstate(), "0A000");
    }
    assert_eq!(s, before, "a refused setting leaves the session unchanged");
}

#[test]
fn errors_never_echo_the_input() {
    let secret = "Zq9-SECRET-7xK";
    let s = SessionSettings::default();
    for ty in LogicalType::ALL {
        for input in [
            secret.to_owned(),
            format!("{secret}\0"),
            format!("[\"{secret}\\x\"]"),
        ] {
            if let Err(e) = parse_text(ty, &input, &s) {
                assert!(!e.to_string().contains("SECRET"), "{ty:?}: {e}");
                assert!(!format!("{e:?}").contains("SECRET"), "{ty:?}: {e:?}");
                assert!(!e.sqlstate().is_empty());
            }
        }
    }
}

#[test]
fn error_messages_say_what_to_do() {
    let s = SessionSettings::default();
    let e = parse_text(LogicalType::Int4, "abc", &s).expect_err("abc");
    assert_eq!(e.sqlstate(), "22P02");
    assert!(
        e.to_string()
            .starts_with("invalid input syntax for type integer"),
        "{e}"
    );
    let e = parse_text(LogicalType::Int2, "40000", &s).expect_err("40000");
    assert_eq!(e.sqlstate(), "22003");
    let e = parse_text(LogicalType::Timestamptz, "now", &s).expect_err("now");
    assert_eq!(e.sqlstate(), "22007");
    assert!(e.to_string().contains("explicit value"), "{e}");
    let e = parse_text(LogicalType::Text, "a\0b", &s).expect_err("NUL");
    assert_eq!(e.sqlstate(), "22021");
    let e = pgseal_value::decode_binary(LogicalType::Int4, &[1, 2]).expect_err("short");
    assert_eq!(e.sqlstate(), "08P01");
}
