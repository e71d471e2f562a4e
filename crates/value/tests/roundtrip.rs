//! Property tests: every representation reads back to the same value, and no input panics.

use pgseal_value::{
    canonical_to_client, decode_binary, decode_canonical, encode_binary, encode_canonical,
    format_text, index_input, parse_text, LogicalType, Numeric, SessionSettings, Value,
};
use proptest::prelude::*;

const MIN_TS: i64 = -211_813_488_000_000_000;
const END_TS: i64 = 9_223_371_331_200_000_000;
const DAY: i64 = 86_400_000_000;

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float4(x), Value::Float4(y)) => x.to_bits() == y.to_bits(),
        (Value::Float8(x), Value::Float8(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn numeric() -> impl Strategy<Value = Numeric> {
    (
        any::<bool>(),
        "[0-9]{1,30}",
        proptest::option::of("[0-9]{1,30}"),
        -40i32..40,
        any::<bool>(),
    )
        .prop_map(|(neg, int, frac, exp, use_exp)| {
            let mut s = String::new();
            if neg {
                s.push('-');
            }
            s.push_str(&int);
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if use_exp {
                s.push_str(&format!("e{exp}"));
            }
            s.parse::<Numeric>()
                .expect("generated numeric text is valid")
        })
}

fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        (-1_000_000i64..1_000_000, 0u32..4).prop_map(|(n, scale)| {
            if scale == 0 {
                n.to_string()
            } else {
                format!("{n}e-{scale}")
            }
        }),
        "\\PC{0,8}".prop_map(|s| serde_like_quote(&s)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{0,4}", inner), 0..5).prop_map(|v| {
                let pairs: Vec<String> = v
                    .into_iter()
                    .map(|(k, val)| format!("{}:{val}", serde_like_quote(&k)))
                    .collect();
                format!("{{{}}}", pairs.join(","))
            }),
        ]
    })
}

/// JSON string literal, escaping quotes, backslashes and control characters.
fn serde_like_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\u0001"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn value() -> impl Strategy<Value = Value> {
    let no_nul = "[^\u{0}]{0,20}";
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i16>().prop_map(Value::Int2),
        any::<i32>().prop_map(Value::Int4),
        any::<i64>().prop_map(Value::Int8),
        any::<u32>().prop_map(|b| Value::Float4(f32::from_bits(b))),
        any::<u64>().prop_map(|b| Value::Float8(f64::from_bits(b))),
        numeric().prop_map(Value::Numeric),
        no_nul.prop_map(Value::Text),
        no_nul.prop_map(Value::Varchar),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytea),
        prop_oneof![
            Just(i32::MIN),
            Just(i32::MAX),
            -2_451_545i32..(2_147_483_494 - 2_451_545)
        ]
        .prop_map(Value::Date),
        (0..=DAY).prop_map(Value::Time),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), MIN_TS..END_TS].prop_map(Value::Timestamp),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), MIN_TS..END_TS].prop_map(Value::Timestamptz),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        json_text().prop_map(
            |t| parse_text(LogicalType::Jsonb, &t, &SessionSettings::default())
                .expect("generated JSON is valid")
        ),
    ]
}

fn sessions() -> Vec<SessionSettings> {
    let mut out = Vec::new();
    for (ds, tz, efd, bytea) in [
        ("ISO, MDY", "UTC", "1", "hex"),
        ("ISO, DMY", "Europe/Paris", "3", "escape"),
        ("ISO, YMD", "America/St_Johns", "2", "hex"),
        ("SQL, DMY", "UTC", "1", "escape"),
        ("German, DMY", "UTC", "1", "hex"),
        ("SQL, MDY", "<+03>-03", "1", "hex"),
    ] {
        let mut s = SessionSettings::default();
        s.apply_parameter("DateStyle", ds).expect("DateStyle");
        s.apply_parameter("TimeZone", tz).expect("TimeZone");
        s.apply_parameter("extra_float_digits", efd)
            .expect("extra_float_digits");
        s.apply_parameter("bytea_output", bytea)
            .expect("bytea_output");
        out.push(s);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn canonical_round_trip(v in value()) {
        let bytes = encode_canonical(&v);
        let back = decode_canonical(v.logical_type(), &bytes).expect("canonical decodes");
        prop_assert!(same(&back, &v), "{v:?} -> {back:?}");
    }

    #[test]
    fn binary_round_trip(v in value()) {
        let back = decode_binary(v.logical_type(), &encode_binary(&v)).expect("binary decodes");
        prop_assert!(same(&back, &v), "{v:?} -> {back:?}");
    }

    #[test]
    fn text_round_trip(v in value()) {
        for s in sessions() {
            let ty = v.logical_type();
            let text = format_text(&v, &s);
            // Non-ISO styles show zone abbreviations, which only parse for UTC; NaN payloads
            // and negative-zero NaNs print as plain NaN.
            let zone_abbrev = ty == LogicalType::Timestamptz
                && s.date_style.output != pgseal_value::DateOutputStyle::Iso
                && s.time_zone.name() != "UTC";
            let nan = matches!(v, Value::Float4(f) if f.is_nan()) || matches!(v, Value::Float8(f) if f.is_nan());
            if zone_abbrev || nan {
                continue;
            }
            let back = parse_text(ty, &text, &s);
            prop_assert!(back.as_ref().is_ok_and(|b| same(b, &v)), "{v:?} -> {text:?} -> {back:?}");
        }
    }

    #[test]
    fn parse_text_never_panics(ty_index in 0usize..16, text in "\\PC{0,40}|[0-9:.+\\- TtZBCbc/eE]{0,40}") {
        let ty = LogicalType::ALL[ty_index];
        for s in sessions() {
            if let Ok(v) = parse_text(ty, &text, &s) {
                prop_assert_eq!(v.logical_type(), ty);
                // Whatever we accept, we can print and read back.
                let again = parse_text(ty, &format_text(&v, &SessionSettings::default()), &SessionSettings::default());
                let nan = matches!(v, Value::Float4(f) if f.is_nan()) || matches!(v, Value::Float8(f) if f.is_nan());
                prop_assert!(nan || again.as_ref().is_ok_and(|a| same(a, &v)), "{text:?} -> {v:?} -> {again:?}");
            }
        }
    }

    #[test]
    fn decoders_never_panic(ty_index in 0usize..16, bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let ty = LogicalType::ALL[ty_index];
        if let Ok(v) = decode_binary(ty, &bytes) {
            let back = decode_canonical(ty, &encode_binary(&v));
            prop_assert!(back.as_ref().is_ok_and(|b| same(b, &v)), "{v:?} -> {back:?}");
        }
        let _ = decode_canonical(ty, &bytes);
    }

    #[test]
    fn numeric_index_ignores_trailing_zeros(n in numeric(), extra in 0usize..6) {
        let text = n.to_string();
        let padded = if text.contains('.') {
            format!("{text}{}", "0".repeat(extra))
        } else {
            format!("{text}.{}", "0".repeat(extra.max(1)))
        };
        let p: Numeric = padded.parse().expect("padded numeric parses");
        prop_assert_eq!(index_input(&Value::Numeric(p)), index_input(&Value::Numeric(n)));
    }
}

#[test]
fn index_input_distinguishes_values() {
    let s = SessionSettings::default();
    let idx = |ty, t: &str| index_input(&parse_text(ty, t, &s).expect("valid"));
    assert_eq!(
        idx(LogicalType::Numeric, "1.50"),
        idx(LogicalType::Numeric, "1.5")
    );
    assert_eq!(
        idx(LogicalType::Numeric, "100"),
        idx(LogicalType::Numeric, "1e2")
    );
    assert_ne!(
        idx(LogicalType::Numeric, "1.5"),
        idx(LogicalType::Numeric, "15")
    );
    assert_ne!(
        idx(LogicalType::Numeric, "-1.5"),
        idx(LogicalType::Numeric, "1.5")
    );
    assert_eq!(
        idx(LogicalType::Numeric, "0.000"),
        idx(LogicalType::Numeric, "-0")
    );
    assert_ne!(idx(LogicalType::Text, "a"), idx(LogicalType::Text, "A"));
}

proptest! {
    /// Values built by hand may break the documented invariants; printing them must still not
    /// panic.
    #[test]
    fn format_text_never_panics(d in any::<i32>(), t in any::<i64>()) {
        for s in sessions() {
            for v in [Value::Date(d), Value::Time(t), Value::Timestamp(t), Value::Timestamptz(t)] {
                let _ = format_text(&v, &s);
                let _ = encode_canonical(&v);
            }
        }
    }
}

/// What the client receives by the long way: decode, then encode or format.
fn client_bytes_slowly(
    ty: LogicalType,
    canonical: &[u8],
    binary: bool,
    session: &SessionSettings,
) -> Result<Vec<u8>, pgseal_value::ValueError> {
    let value = decode_canonical(ty, canonical)?;
    Ok(if binary {
        encode_binary(&value)
    } else {
        format_text(&value, session).into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The shortcut for what a client receives gives the same bytes as the long way, for
    /// every value in both formats and every session.
    #[test]
    fn the_client_form_is_the_decoded_value_encoded(v in value()) {
        let ty = v.logical_type();
        let canonical = encode_canonical(&v);
        for s in sessions() {
            for binary in [false, true] {
                let quick = canonical_to_client(ty, &canonical, binary, &s);
                let slow = client_bytes_slowly(ty, &canonical, binary, &s);
                prop_assert_eq!(quick.ok(), slow.ok(), "{:?} binary={}", ty, binary);
            }
        }
    }

    /// And the same refusals, for any bytes under any type: invalid UTF-8, NUL, wrong lengths.
    #[test]
    fn the_client_form_refuses_what_decoding_refuses(
        bytes in prop::collection::vec(any::<u8>(), 0..24),
        nul_in_text in any::<bool>(),
    ) {
        let mut bytes = bytes;
        if nul_in_text {
            bytes.extend_from_slice(b"a\0b");
        }
        let session = SessionSettings::default();
        for ty in LogicalType::ALL {
            for binary in [false, true] {
                let quick = canonical_to_client(ty, &bytes, binary, &session);
                let slow = client_bytes_slowly(ty, &bytes, binary, &session);
                prop_assert_eq!(quick.is_ok(), slow.is_ok(), "{:?}", ty);
                prop_assert_eq!(quick.ok(), slow.ok(), "{:?}", ty);
            }
        }
    }
}
