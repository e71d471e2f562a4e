//! Cross-check against a real PostgreSQL: the server is the oracle for every output byte.
//!
//! For generated values of every type and several session settings:
//! * our binary encoding sent as a binary parameter must come back from the server with the
//!   text `format_text` produces, and with the same binary encoding (`$1::type::text`, `$1`);
//! * the server's text read back with `parse_text` must give the value again (for the forms
//!   `parse_text` supports);
//! * input strings sent as text (`$1::text::type`) must give what `parse_text` gives, or both
//!   must fail with the same SQLSTATE; inputs we refuse on purpose are listed explicitly.

use std::error::Error;

use bytes::BytesMut;
use pgseal_testkit::TestCluster;
use pgseal_value::{encode_binary, format_text, parse_text, LogicalType, SessionSettings, Value};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::Client;

/// Raw bytes sent as a binary parameter of any type.
#[derive(Debug)]
struct Raw(Vec<u8>);

impl ToSql for Raw {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// Raw bytes of a binary result of any type.
struct RawOut(Vec<u8>);

impl<'a> FromSql<'a> for RawOut {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawOut(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// splitmix64: deterministic, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        // hi exclusive
        let span = u64::try_from(i128::from(hi) - i128::from(lo)).unwrap_or(u64::MAX);
        lo.wrapping_add(i64::try_from(self.below(span) as u128 as i128).unwrap_or(0))
    }
}

const MIN_TS: i64 = -211_813_488_000_000_000;
const END_TS: i64 = 9_223_371_331_200_000_000;
const DAY: i64 = 86_400_000_000;

fn ts(s: &str) -> i64 {
    match parse_text(LogicalType::Timestamp, s, &SessionSettings::default()) {
        Ok(Value::Timestamp(t)) => t,
        other => panic!("bad test timestamp {s}: {other:?}"),
    }
}

fn values(ty: LogicalType, rng: &mut Rng) -> Vec<Value> {
    let s = SessionSettings::default();
    let from_text = |texts: &[&str]| -> Vec<Value> {
        texts
            .iter()
            .map(|t| parse_text(ty, t, &s).unwrap_or_else(|e| panic!("{ty:?} {t}: {e}")))
            .collect()
    };
    let mut v = Vec::new();
    match ty {
        LogicalType::Bool => v.extend([Value::Bool(true), Value::Bool(false)]),
        LogicalType::Int2 => {
            v.extend([0, 1, -1, i16::MIN, i16::MAX].map(Value::Int2));
            v.extend((0..20).map(|_| Value::Int2(rng.next() as i16)));
        }
        LogicalType::Int4 => {
            v.extend([0, 1, -1, i32::MIN, i32::MAX].map(Value::Int4));
            v.extend((0..20).map(|_| Value::Int4(rng.next() as i32)));
        }
        LogicalType::Int8 => {
            v.extend([0, 1, -1, i64::MIN, i64::MAX].map(Value::Int8));
            v.extend((0..20).map(|_| Value::Int8(rng.next() as i64)));
        }
        LogicalType::Float4 => {
            v.extend(
                [
                    0.0,
                    -0.0,
                    1.5,
                    0.1,
                    1e20,
                    1e-5,
                    1e-4,
                    123456.0,
                    1234567.0,
                    100000.0,
                    1e6,
                    f32::MAX,
                    f32::MIN_POSITIVE,
                    1e-45,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::NAN,
                    0.3333333,
                    9.999999e-5,
                    2.5,
                    0.125,
                ]
                .map(Value::Float4),
            );
            for _ in 0..40 {
                let f = f32::from_bits(rng.next() as u32);
                v.push(Value::Float4(f));
                let nice =
                    (rng.range(-100_000, 100_000) as f32) / 10f32.powi(rng.range(0, 6) as i32);
                v.push(Value::Float4(nice));
            }
        }
        LogicalType::Float8 => {
            v.extend(
                [
                    0.0,
                    -0.0,
                    1.5,
                    0.1,
                    1e20,
                    1e-5,
                    1e-4,
                    1e14,
                    1e15,
                    1e16,
                    123456789012345680000.0,
                    f64::MAX,
                    f64::MIN_POSITIVE,
                    5e-324,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::NAN,
                    1.0 / 3.0,
                    2.0 / 3.0,
                    0.125,
                    2.5,
                    99999999999999.99,
                    999999999999999.9,
                ]
                .map(Value::Float8),
            );
            for _ in 0..40 {
                v.push(Value::Float8(f64::from_bits(rng.next())));
                let nice = (rng.range(-10_000_000, 10_000_000) as f64)
                    / 10f64.powi(rng.range(0, 9) as i32);
                v.push(Value::Float8(nice));
            }
        }
        LogicalType::Numeric => {
            v.extend(from_text(&[
                "0",
                "0.000",
                "1.50",
                "-1.5",
                "NaN",
                "Infinity",
                "-Infinity",
                "1e-20",
                "9999",
                "10000",
                "0.0001",
                "0.00001",
                "123456789.123456789",
                "-0.00000001",
                "1e100",
                "99999999.99999999",
                "100000000",
                "0.1",
                "3.14159265358979323846264338327950288",
            ]));
            for _ in 0..40 {
                let int_len = rng.below(25) as usize;
                let frac_len = rng.below(25) as usize;
                let mut t = String::new();
                if rng.below(2) == 0 {
                    t.push('-');
                }
                for _ in 0..int_len.max(1) {
                    t.push(char::from(b'0' + rng.below(10) as u8));
                }
                if frac_len > 0 {
                    t.push('.');
                    for _ in 0..frac_len {
                        t.push(char::from(b'0' + rng.below(10) as u8));
                    }
                }
                if rng.below(4) == 0 {
                    t.push_str(&format!("e{}", rng.range(-30, 30)));
                }
                v.extend(from_text(&[&t]));
            }
        }
        LogicalType::Text | LogicalType::Varchar => {
            let texts = [
                "",
                "hello",
                "it's \"quoted\" \\ back",
                "naïve café",
                "日本語",
                "😀 emoji",
                "tab\there\nnewline",
                " spaces ",
                "\u{7f}\u{1}",
            ];
            for t in texts {
                v.push(if ty == LogicalType::Text {
                    Value::Text(t.into())
                } else {
                    Value::Varchar(t.into())
                });
            }
        }
        LogicalType::Bytea => {
            v.push(Value::Bytea(Vec::new()));
            v.push(Value::Bytea((0..=255).collect()));
            v.push(Value::Bytea(b"\\ab\\".to_vec()));
            for _ in 0..20 {
                let n = rng.below(40) as usize;
                v.push(Value::Bytea((0..n).map(|_| rng.next() as u8).collect()));
            }
        }
        LogicalType::Date => {
            v.extend(
                [
                    i32::MIN,
                    i32::MAX,
                    0,
                    -1,
                    -2_451_545,
                    2_147_483_494 - 2_451_545 - 1,
                    -730_120,
                    -730_119,
                    3_000_000,
                    59,
                    60,
                    -10_957,
                ]
                .map(Value::Date),
            );
            for _ in 0..30 {
                v.push(Value::Date(
                    rng.range(-2_451_545, 2_147_483_494 - 2_451_545) as i32,
                ));
                v.push(Value::Date(rng.range(-40_000, 40_000) as i32));
            }
        }
        LogicalType::Time => {
            v.extend([0, DAY, DAY - 1, 500_000, 45_296_789_012].map(Value::Time));
            for _ in 0..30 {
                let t = rng.range(0, DAY + 1);
                v.push(Value::Time(if rng.below(2) == 0 {
                    t - t % 1_000_000
                } else {
                    t
                }));
            }
        }
        LogicalType::Timestamp | LogicalType::Timestamptz => {
            let mut raw = vec![i64::MIN, i64::MAX, 0, -1, MIN_TS, END_TS - 1, 1];
            raw.extend(
                [
                    "2024-03-31 00:59:59",
                    "2024-03-31 01:00:00",
                    "2024-03-31 01:30:00",
                    "2024-10-27 00:30:00",
                    "2024-10-27 01:00:00",
                    "2024-10-27 01:30:00",
                    "2024-03-10 07:00:00",
                    "2024-11-03 06:30:00",
                    "1900-01-01 00:00:00",
                    "1800-06-01 12:00:00",
                    "2100-07-01 00:00:00",
                    "9999-12-31 23:59:59",
                    "12000-06-15 12:00:00",
                    "200000-01-01 00:00:00",
                    "0001-01-01 00:00:00",
                    "1970-01-01 00:00:00",
                ]
                .map(ts),
            );
            for _ in 0..40 {
                raw.push(rng.range(MIN_TS, END_TS));
                // 1900..2100, where zone rules are busiest.
                let t = rng.range(-3_155_760_000_000_000, 3_155_760_000_000_000);
                raw.push(match rng.below(3) {
                    0 => t - t.rem_euclid(1_000_000),
                    1 => t - t.rem_euclid(60_000_000),
                    _ => t,
                });
            }
            for t in raw {
                v.push(if ty == LogicalType::Timestamp {
                    Value::Timestamp(t)
                } else {
                    Value::Timestamptz(t)
                });
            }
        }
        LogicalType::Uuid => {
            v.push(Value::Uuid([0; 16]));
            v.push(Value::Uuid([0xff; 16]));
            for _ in 0..10 {
                let mut u = [0u8; 16];
                u.iter_mut().for_each(|b| *b = rng.next() as u8);
                v.push(Value::Uuid(u));
            }
        }
        LogicalType::Jsonb => {
            v.extend(from_text(&[
                "null",
                "true",
                "1",
                "1.0",
                "-0",
                "1e2",
                "1E-2",
                "\"x\"",
                "[]",
                "{}",
                r#"{"b": 1, "a": [1, 2.50, {"cc": null, "c": false}], "aa": "é\n\"\\"}"#,
                r#"{"a": 1, "a": 2}"#,
                r#"[1e400, -1.23e-5, 0.000]"#,
                r#""\u001f\b\f\r\t/""#,
                r#"{"": "", " ": " "}"#,
                r#"["😀", "\ud83d\ude00"]"#,
            ]));
        }
    }
    v
}

/// The session settings to test, as SET statements.
const SETTINGS: &[(&str, &str, i32, &str)] = &[
    ("ISO, MDY", "UTC", 1, "hex"),
    ("ISO, DMY", "Europe/Paris", 0, "escape"),
    ("SQL, MDY", "America/New_York", 3, "hex"),
    ("SQL, DMY", "Asia/Kolkata", -5, "escape"),
    ("Postgres, MDY", "Australia/Lord_Howe", 2, "hex"),
    ("Postgres, DMY", "3", -15, "hex"),
    ("German, DMY", "Europe/London", 1, "escape"),
    ("ISO, YMD", "America/St_Johns", -1, "hex"),
    ("SQL, MDY", "UTC", 1, "hex"),
    ("ISO, MDY", "Asia/Kathmandu", 1, "hex"),
    ("SQL, DMY", "INTERVAL '+05:30' HOUR TO MINUTE", 1, "hex"),
    ("German, DMY", "'UTC+3'", 1, "hex"),
    ("ISO, MDY", "-9.5", 1, "hex"),
];

/// Applies settings on the server and returns our settings built from what the server reports.
async fn apply(client: &Client, (ds, tz, efd, bytea): (&str, &str, i32, &str)) -> SessionSettings {
    client
        .batch_execute(&format!(
            "SET DateStyle = '{ds}'; SET TIME ZONE {}; SET extra_float_digits = {efd}; SET bytea_output = '{bytea}'",
            if tz.parse::<f64>().is_ok() || tz.starts_with(['I', '\'']) { tz.to_owned() } else { format!("'{tz}'") }
        ))
        .await
        .expect("SET");
    let mut s = SessionSettings::default();
    for name in [
        "DateStyle",
        "TimeZone",
        "extra_float_digits",
        "bytea_output",
    ] {
        let row = client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .expect("SHOW");
        let value: String = row.get(0);
        s.apply_parameter(name, &value)
            .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
    }
    s
}

fn pg_type(ty: LogicalType) -> Type {
    Type::from_oid(ty.oid()).expect("built-in type")
}

fn output_function(ty: LogicalType) -> &'static str {
    match ty {
        LogicalType::Bool => "boolout",
        LogicalType::Int2 => "int2out",
        LogicalType::Int4 => "int4out",
        LogicalType::Int8 => "int8out",
        LogicalType::Float4 => "float4out",
        LogicalType::Float8 => "float8out",
        LogicalType::Numeric => "numeric_out",
        LogicalType::Text => "textout",
        LogicalType::Varchar => "varcharout",
        LogicalType::Bytea => "byteaout",
        LogicalType::Date => "date_out",
        LogicalType::Time => "time_out",
        LogicalType::Timestamp => "timestamp_out",
        LogicalType::Timestamptz => "timestamptz_out",
        LogicalType::Uuid => "uuid_out",
        LogicalType::Jsonb => "jsonb_out",
    }
}

/// Whether parse_text is expected to read back the server's output in this style.
fn text_round_trip_supported(ty: LogicalType, s: &SessionSettings) -> bool {
    match ty {
        // With extra_float_digits <= 0 the output is rounded on purpose.
        LogicalType::Float4 | LogicalType::Float8 => s.extra_float_digits > 0,
        _ => true,
    }
}

/// Refusals allowed when reading back server output: zone abbreviations whose meaning depends
/// on the server's timezone_abbreviations (EST, CST, IST) or on zone history (LMT, MSK, ...).
fn allowed_refusal(ty: LogicalType, e: &pgseal_value::ValueError) -> bool {
    ty == LogicalType::Timestamptz
        && matches!(
            e,
            pgseal_value::ValueError::UnsupportedTimeZoneAbbreviation { .. }
        )
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float4(x), Value::Float4(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::Float8(x), Value::Float8(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        _ => a == b,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn output_matches_server_byte_for_byte() {
    let db = TestCluster::shared().create_database().await;
    let client = db.connect().await;
    client
        .batch_execute("SET log_statement = none")
        .await
        .expect("SET");
    let mut rng = Rng(0x5EA1_2024);
    let mut failures = Vec::new();
    let mut checked = 0usize;
    let mut round_trips = 0usize;
    let all: Vec<(LogicalType, Vec<Value>)> = LogicalType::ALL
        .iter()
        .map(|&ty| (ty, values(ty, &mut rng)))
        .collect();
    for &setting in SETTINGS {
        let session = apply(&client, setting).await;
        for (ty, vals) in &all {
            // The output function, not a cast: bool::text is 'true', boolout gives 't'.
            let stmt = client
                .prepare_typed(
                    &format!(
                        "SELECT textin({1}($1::{0})), $1::{0}",
                        ty.sql_name(),
                        output_function(*ty)
                    ),
                    &[pg_type(*ty)],
                )
                .await
                .expect("prepare");
            let reparse = client
                .prepare_typed(
                    &format!("SELECT $1::text::{}", ty.sql_name()),
                    &[Type::TEXT],
                )
                .await
                .expect("prepare");
            for v in vals {
                let row = match client.query_one(&stmt, &[&Raw(encode_binary(v))]).await {
                    Ok(row) => row,
                    Err(e) => {
                        failures.push(format!("{setting:?} {v:?}: server refused our binary: {e}"));
                        continue;
                    }
                };
                checked += 1;
                let server_text: String = row.get(0);
                let server_bin: RawOut = row.get(1);
                let ours = format_text(v, &session);
                if ours != server_text {
                    failures.push(format!(
                        "{setting:?} {v:?}: text ours {ours:?} server {server_text:?}"
                    ));
                }
                if server_bin.0 != encode_binary(v) {
                    failures.push(format!("{setting:?} {v:?}: binary differs"));
                }
                if text_round_trip_supported(*ty, &session) {
                    // Reading the text back must give what the server reads from it. That is
                    // the value itself, except where PostgreSQL's own output does not round
                    // trip (a zone abbreviation that means another offset on input, such as
                    // "UTC" for the zone UTC+3).
                    let server_back = client.query_one(&reparse, &[&server_text]).await;
                    match (parse_text(*ty, &server_text, &session), server_back) {
                        (Ok(back), Ok(row)) => {
                            let bin: RawOut = row.get(0);
                            if bin.0 != encode_binary(&back) {
                                failures.push(format!(
                                    "{setting:?} {v:?}: parse_text({server_text:?}) gave {back:?}, server differs"
                                ));
                            } else if same(&back, v) {
                                round_trips += 1;
                            }
                        }
                        (Err(e), Ok(_)) if allowed_refusal(*ty, &e) => {}
                        (Err(e), Err(server))
                            if server.code().map(|c| c.code()) == Some(e.sqlstate())
                                || allowed_refusal(*ty, &e) => {}
                        (ours, server) => failures.push(format!(
                            "{setting:?} {v:?}: parse_text({server_text:?}) gave {ours:?}, server ok={}",
                            server.is_ok()
                        )),
                    }
                }
            }
        }
    }
    assert!(checked > 3000, "only {checked} values checked");
    assert!(round_trips > 3000, "only {round_trips} text round trips");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Inputs per type: each is sent as text to the server and parsed by us.
fn inputs(ty: LogicalType) -> &'static [&'static str] {
    match ty {
        LogicalType::Bool => &[
            "t", "TRUE", " yes ", "on", "1", "f", "False", "no", "off", "0", "tr", "y", "of", "o",
            "", "2", "tru e", "truex", "n",
        ],
        LogicalType::Int2 => &[
            "0", " +5 ", "-32768", "32767", "32768", "-32769", "1_000", "0x10", "", "-", "1.0",
            " 12 3", "00012",
        ],
        LogicalType::Int4 => &[
            "2147483647",
            "-2147483648",
            "2147483648",
            "\t42\n",
            "abc",
            "1e3",
            "+0",
            "-0",
        ],
        LogicalType::Int8 => &[
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "99999999999999999999",
        ],
        LogicalType::Float4 => &[
            "1.5",
            " -2.5e-3 ",
            "NaN",
            "-inf",
            "Infinity",
            "+infinity",
            "1e39",
            "1e-46",
            "3.4028235e38",
            "1e-45",
            "0.1",
            "abc",
            "1e",
            ".5",
            "5.",
            "  ",
            "1.5 x",
        ],
        LogicalType::Float8 => &[
            "1.5",
            "1e308",
            "1e309",
            "1e-400",
            "4.9e-324",
            "-0",
            "nan",
            "INF",
            ".",
            "1.7976931348623157e308",
            "0.1e-1",
            "123456789012345678901234567890",
        ],
        LogicalType::Numeric => &[
            "1.50",
            " -0.000 ",
            "1e3",
            "1e 3",
            "1.2345e2",
            "NaN",
            "inf",
            "-Infinity",
            "abc",
            "1e-16384",
            "1..2",
            ".5",
            "5.",
            "-0",
            "0e5",
            "1e-5",
            "123456789012345678901234567890.123456789",
        ],
        LogicalType::Text | LogicalType::Varchar => &["", "hello", "naïve", "a\\b"],
        LogicalType::Bytea => &[
            "\\x",
            "\\x0102ff",
            "\\xDEADbeef",
            "\\x01 02\n03",
            "\\x012",
            "\\xzz",
            "abc",
            "a\\\\b",
            "\\001\\377x",
            "\\400",
            "\\",
            "\\12",
        ],
        LogicalType::Date => &[
            "2024-03-01",
            "1999-01-08",
            "03/01/2024",
            "01.03.2024",
            "2024/03/01",
            "20240301",
            "2024-02-29",
            "2023-02-29",
            "2024-13-01",
            "13/01/2024",
            "0044-03-15 BC",
            "12345-01-01",
            "infinity",
            "-infinity",
            "epoch",
            "2024-03-01 13:45:00",
            "99-01-08",
            "01/02/03",
            "4713-11-24 BC",
            "4714-11-24 BC",
            "5874897-12-31",
            "5874898-01-01",
            "0000-01-01",
            "2024-03-01T10:00",
            "today",
            "now",
            " 2024-03-01 ",
            "2024-3-1",
            "2024-03-01 AD",
        ],
        LogicalType::Time => &[
            "13:45",
            "13:45:00",
            "13:45:00.123456",
            "13:45:00.1234567",
            "13:45:00.9999999",
            "24:00:00",
            "24:00:01",
            "23:59:60",
            "23:59:60.5",
            "25:00",
            "12:60",
            "allballs",
            "13:45:00+02",
            "2024-03-01 13:45:00",
            "1:2:3",
            "13:45:00.5 Z",
            "now",
            "abc",
        ],
        LogicalType::Timestamp => &[
            "2024-03-01 13:45:00",
            "2024-03-01T13:45:00.123456",
            "2024-03-01 13:45:00.5+02",
            "2024-03-01",
            "03/01/2024 13:45",
            "01.03.2024 13:45:00",
            "2024-03-01 24:00:00",
            "2024-12-31 23:59:60",
            "0044-03-15 12:00:00 BC",
            "294276-12-31 23:59:59.999999",
            "294277-01-01 00:00:00",
            "4714-11-24 00:00:00 BC",
            "4714-11-23 23:59:59 BC",
            "infinity",
            "-infinity",
            "epoch",
            "2024-03-01 13:45:00.0000005",
            "2024-03-01 13:45:00.0000015",
            "2024-03-01 13:45:00 Europe/Paris",
            "now",
            "2024-03-01 13:45:00 +15:59",
            "2024-03-01 13:45:00 +16:00",
            "2024-03-01T13:45Z",
        ],
        LogicalType::Timestamptz => &[
            "2024-03-01 13:45:00",
            "2024-03-01 13:45:00+02",
            "2024-03-01 13:45:00+05:30",
            "2024-03-01 13:45:00-0800",
            "2024-03-01T13:45:00Z",
            "2024-03-01 13:45:00 UTC",
            "2024-03-01 13:45:00 GMT",
            "2024-03-01 10:00 Europe/Paris",
            "2024-07-01 10:00 Europe/Paris",
            "2024-03-31 02:30:00 Europe/Paris",
            "2024-10-27 02:30:00 Europe/Paris",
            "2024-03-31 02:30:00",
            "2024-10-27 02:30:00",
            "2024-03-10 02:30 America/New_York",
            "2024-11-03 01:30 America/New_York",
            "1800-01-01 00:00 Europe/Paris",
            "2024-03-01 13:45:00+00:09:21",
            "2024-03-01 13:45:00 +16",
            "2024-03-01 13:45:00 Mars/Olympus",
            "2024-03-01",
            "infinity",
            "-infinity",
            "epoch",
            "294276-12-31 23:59:59+00",
            "294276-12-31 23:59:59-01",
            "4714-11-24 00:00:00+00 BC",
            "4714-11-24 00:00:00+01 BC",
            "20000-07-01 12:00 Europe/Paris",
            "2024-03-01 13:45:00 CET",
            "2024-03-01 13:45:00 EST",
            "yesterday",
            "03/01/2024 13:45:00 UTC",
        ],
        LogicalType::Uuid => &[
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11}",
            "a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
        ],
        LogicalType::Jsonb => &[
            r#"{"b":1,"a":2}"#,
            "[1, 2.50, -0, 1e2]",
            r#""\u0000""#,
            r#""\ud800""#,
            "01",
            "1.",
            "nul",
            "[1,]",
            r#"{"a":1,"a":2}"#,
            " true ",
            r#""\u00e9""#,
            "{\"a\":\"\u{1}\"}",
            "",
            "[1 2]",
            r#"{"a" 1}"#,
            "1e1000",
            "-",
            "[\"\\/\"]",
        ],
    }
}

/// Random inputs in the forms clients send.
fn generated_inputs(ty: LogicalType, rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::new();
    let digits = |rng: &mut Rng, n: u64| -> String {
        (0..n)
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect()
    };
    let zones = [
        "",
        "Z",
        "+02",
        "-08",
        "+05:30",
        "-03:30",
        "+0545",
        "-00:09:21",
        " UTC",
        " Europe/Paris",
        " America/New_York",
        " Asia/Kolkata",
        " Australia/Lord_Howe",
        " +14",
    ];
    for _ in 0..40 {
        match ty {
            LogicalType::Numeric | LogicalType::Float4 | LogicalType::Float8 => {
                let mut t = String::new();
                if rng.below(3) == 0 {
                    t.push('-');
                }
                let int_len = rng.below(20);
                let at_least = u64::from(rng.below(2) == 0);
                t.push_str(&digits(rng, int_len.max(at_least)));
                if rng.below(2) == 0 || t.trim_start_matches('-').is_empty() {
                    t.push('.');
                    let frac_len = rng.below(20) + 1;
                    t.push_str(&digits(rng, frac_len));
                }
                if rng.below(3) == 0 {
                    let e = rng.range(-330, 330);
                    t.push_str(&format!("{}{e}", if rng.below(2) == 0 { "e" } else { "E" }));
                }
                out.push(t);
            }
            LogicalType::Date
            | LogicalType::Timestamp
            | LogicalType::Timestamptz
            | LogicalType::Time => {
                let year = match rng.below(4) {
                    0 => rng.range(1, 10_000),
                    1 => rng.range(1, 300_000),
                    _ => rng.range(1890, 2110),
                };
                let month = rng.range(1, 13);
                let day = rng.range(1, 29);
                let hour = rng.range(0, 24);
                let minute = rng.range(0, 60);
                let second = rng.range(0, 60);
                let mut t = format!("{year:04}-{month:02}-{day:02}");
                if ty != LogicalType::Date || rng.below(4) == 0 {
                    t.push(if rng.below(3) == 0 { 'T' } else { ' ' });
                    t.push_str(&format!("{hour:02}:{minute:02}:{second:02}"));
                    if rng.below(2) == 0 {
                        let n = rng.below(9) + 1;
                        t.push('.');
                        t.push_str(&digits(rng, n));
                    }
                    t.push_str(zones[rng.below(zones.len() as u64) as usize]);
                }
                if rng.below(8) == 0 {
                    t.push_str(" BC");
                }
                if ty == LogicalType::Time {
                    t = format!("{hour:02}:{minute:02}:{second:02}.{}", digits(rng, 6));
                }
                out.push(t);
            }
            _ => {}
        }
    }
    // Local times around daylight-saving transitions, read in the session zone.
    if ty == LogicalType::Timestamptz {
        for day in [
            "2024-03-31",
            "2024-10-27",
            "2024-03-10",
            "2024-11-03",
            "2024-04-07",
            "2024-10-06",
        ] {
            for hm in [
                "00:59:59",
                "01:00",
                "01:30",
                "01:59:59.999999",
                "02:00",
                "02:15",
                "02:30",
                "02:59",
                "03:00",
                "03:30",
            ] {
                out.push(format!("{day} {hm}"));
            }
        }
    }
    out
}

/// Inputs PostgreSQL accepts that we refuse on purpose (the reason is in `parse_text`'s docs).
const DELIBERATE_REFUSALS: &[(LogicalType, &str)] = &[
    (LogicalType::Date, "today"),
    (LogicalType::Date, "now"),
    (LogicalType::Time, "now"),
    (LogicalType::Timestamp, "now"),
    (LogicalType::Timestamptz, "yesterday"),
    (LogicalType::Timestamptz, "2024-03-01 13:45:00 CET"),
    (LogicalType::Timestamptz, "2024-03-01 13:45:00 EST"),
    (LogicalType::Timestamptz, "2024-03-01 13:45 IST"),
    (LogicalType::Timestamptz, "2024-03-01 13:45 MSK"),
    (LogicalType::Timestamptz, "Fri 2024-03-01"),
    (LogicalType::Time, "2024-03-01 13:45:00"),
];

#[tokio::test(flavor = "current_thread")]
async fn input_matches_server() {
    let db = TestCluster::shared().create_database().await;
    let client = db.connect().await;
    client
        .batch_execute("SET log_statement = none")
        .await
        .expect("SET");
    let mut failures = Vec::new();
    let mut accepted = 0usize;
    let mut rng = Rng(0xD47E_57A1);
    for &setting in SETTINGS {
        let session = apply(&client, setting).await;
        for &ty in &LogicalType::ALL {
            let stmt = client
                .prepare_typed(
                    &format!("SELECT $1::text::{}", ty.sql_name()),
                    &[Type::TEXT],
                )
                .await
                .expect("prepare");
            let generated = generated_inputs(ty, &mut rng);
            let all_inputs = inputs(ty)
                .iter()
                .copied()
                .chain(generated.iter().map(String::as_str));
            for input in all_inputs {
                let server = client.query_one(&stmt, &[&input]).await;
                let ours = parse_text(ty, input, &session);
                match (server, ours) {
                    (Ok(row), Ok(v)) => {
                        accepted += 1;
                        let bin: RawOut = row.get(0);
                        if bin.0 != encode_binary(&v) {
                            failures.push(format!(
                                "{setting:?} {ty:?} {input:?}: server {:?}, ours {v:?}",
                                bin.0
                            ));
                        }
                    }
                    (Err(e), Err(ours)) => {
                        let code = e.code().map(|c| c.code().to_owned()).unwrap_or_default();
                        if code != ours.sqlstate() {
                            failures.push(format!("{setting:?} {ty:?} {input:?}: server {code} ({e:?}), ours {} ({ours})", ours.sqlstate()));
                        }
                    }
                    (Ok(_), Err(ours)) => {
                        if !DELIBERATE_REFUSALS.contains(&(ty, input)) {
                            failures.push(format!(
                                "{setting:?} {ty:?} {input:?}: server accepts, we refuse: {ours}"
                            ));
                        }
                    }
                    (Err(e), Ok(v)) => failures.push(format!(
                        "{setting:?} {ty:?} {input:?}: server refuses ({e:?}), we accept {v:?}"
                    )),
                }
            }
        }
    }
    assert!(accepted > 1000, "only {accepted} inputs accepted");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn numeric_bytes(words: &[u16]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// Binary parameters, valid and not, as the server's receive functions see them.
fn binary_inputs() -> Vec<(LogicalType, Vec<u8>)> {
    use LogicalType as T;
    let jsonb = |version: u8, text: &str| {
        let mut b = vec![version];
        b.extend_from_slice(text.as_bytes());
        b
    };
    vec![
        (T::Bool, vec![0]),
        (T::Bool, vec![1]),
        (T::Bool, vec![2]),
        (T::Bool, vec![]),
        (T::Bool, vec![1, 1]),
        (T::Int4, vec![0, 0, 1]),
        (T::Int2, vec![0xff, 0xfe]),
        (T::Float8, 0x7ff8_0000_0000_0001u64.to_be_bytes().to_vec()),
        (T::Float4, 0x8000_0000u32.to_be_bytes().to_vec()),
        (T::Numeric, numeric_bytes(&[1, 0, 0x0000, 0, 0])),
        (T::Numeric, numeric_bytes(&[2, 0, 0x0000, 2, 1, 2345])),
        (T::Numeric, numeric_bytes(&[2, 0, 0x4000, 6, 1, 2345])),
        (T::Numeric, numeric_bytes(&[1, 0xffff, 0x0000, 8, 5000])),
        (T::Numeric, numeric_bytes(&[1, 5, 0x4000, 0, 1])),
        (T::Numeric, numeric_bytes(&[0, 10, 0x4000, 5])),
        (T::Numeric, numeric_bytes(&[0, 0, 0xC000, 7])),
        (T::Numeric, numeric_bytes(&[0, 0, 0xD000, 0])),
        (T::Numeric, numeric_bytes(&[1, 0, 0xF000, 3, 9])),
        (T::Numeric, numeric_bytes(&[1, 0, 0x0000, 0, 10000])),
        (T::Numeric, numeric_bytes(&[1, 0, 0x1234, 0, 1])),
        (T::Numeric, numeric_bytes(&[2, 0, 0x0000, 0, 1])),
        (T::Numeric, numeric_bytes(&[2, 0, 0x0000, 4, 1, 0])),
        (T::Numeric, numeric_bytes(&[3, 1, 0x0000, 3, 0, 7, 1234])),
        (T::Numeric, numeric_bytes(&[1, 0, 0x0000, 0x4000, 1])),
        (T::Numeric, numeric_bytes(&[1, 0x7fff, 0x0000, 0, 1])),
        (T::Numeric, numeric_bytes(&[2, 0x7fff, 0x0000, 0, 0, 1])),
        (T::Numeric, vec![0, 0, 0]),
        (T::Text, b"plain".to_vec()),
        (T::Text, vec![0xff, 0xfe]),
        (T::Text, vec![b'a', 0, b'b']),
        (T::Varchar, "é".as_bytes().to_vec()),
        (T::Bytea, vec![0, 1, 2, 255]),
        (T::Date, (-2_451_545i32).to_be_bytes().to_vec()),
        (T::Date, (-2_451_546i32).to_be_bytes().to_vec()),
        (
            T::Date,
            (2_147_483_494i32 - 2_451_545).to_be_bytes().to_vec(),
        ),
        (T::Date, i32::MAX.to_be_bytes().to_vec()),
        (T::Time, (-1i64).to_be_bytes().to_vec()),
        (T::Time, DAY.to_be_bytes().to_vec()),
        (T::Time, (DAY + 1).to_be_bytes().to_vec()),
        (T::Timestamp, (MIN_TS - 1).to_be_bytes().to_vec()),
        (T::Timestamp, END_TS.to_be_bytes().to_vec()),
        (T::Timestamptz, (END_TS - 1).to_be_bytes().to_vec()),
        (T::Timestamptz, i64::MIN.to_be_bytes().to_vec()),
        (T::Uuid, vec![7; 15]),
        (T::Uuid, vec![7; 16]),
        (T::Jsonb, jsonb(1, r#"{"b":1,"a":[1.50, 1e2]}"#)),
        (T::Jsonb, jsonb(2, "1")),
        (T::Jsonb, jsonb(1, "bad")),
        (T::Jsonb, jsonb(1, r#""\u0000""#)),
        (T::Jsonb, vec![]),
    ]
}

#[tokio::test(flavor = "current_thread")]
async fn binary_input_matches_server() {
    let db = TestCluster::shared().create_database().await;
    let client = db.connect().await;
    client
        .batch_execute("SET log_statement = none")
        .await
        .expect("SET");
    let mut failures = Vec::new();
    for (ty, bytes) in binary_inputs() {
        let stmt = client
            .prepare_typed(&format!("SELECT $1::{}", ty.sql_name()), &[pg_type(ty)])
            .await
            .expect("prepare");
        let server = client.query_one(&stmt, &[&Raw(bytes.clone())]).await;
        match (server, pgseal_value::decode_binary(ty, &bytes)) {
            (Ok(row), Ok(v)) => {
                let out: RawOut = row.get(0);
                if out.0 != encode_binary(&v) {
                    failures.push(format!("{ty:?} {bytes:?}: server {:?}, ours {v:?}", out.0));
                }
            }
            (Err(_), Err(_)) => {}
            (server, ours) => failures.push(format!(
                "{ty:?} {bytes:?}: server ok={}, ours {ours:?}",
                server.is_ok()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
