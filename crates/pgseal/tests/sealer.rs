//! The in-process library against a real PostgreSQL: every type round-trips through the
//! database, and every misuse fails with its own error.

use pgseal::{
    init, AuditLog, Ciphertext, Error, LogicalType, MasterKey, MasterKeyring, Sealer, Value,
};
use pgseal_testkit::{TestCluster, TestDatabase};
use tokio_postgres::Client;

const SCHEMA: &str = "
CREATE TABLE people (
    id      int PRIMARY KEY,
    b       pgseal.bool,
    i2      pgseal.int2,
    i4      pgseal.int4,
    i8      pgseal.int8_eq,
    f4      pgseal.float4,
    f8      pgseal.float8,
    num     pgseal.numeric_eq,
    txt     pgseal.text,
    vc      pgseal.varchar,
    raw     pgseal.bytea,
    born    pgseal.date,
    at      pgseal.time,
    ts      pgseal.timestamp,
    tstz    pgseal.timestamptz,
    uid     pgseal.uuid,
    doc     pgseal.jsonb,
    email   pgseal.email,
    phone   pgseal.phone
);
CREATE SCHEMA archive;
CREATE TABLE archive.people (id int PRIMARY KEY, txt pgseal.text);
";

async fn setup() -> (TestDatabase, Client, MasterKeyring, Sealer) {
    let db = TestCluster::shared().create_database().await;
    let mut client = db.connect().await;
    let master = MasterKeyring::new(MasterKey::generate(), Vec::new());
    init(&mut client, &master, &AuditLog::disabled())
        .await
        .expect("init installs the schema");
    client.batch_execute(SCHEMA).await.expect("schema");
    let sealer = Sealer::new(&mut client, master_clone(&master), AuditLog::disabled())
        .await
        .expect("sealer");
    (db, client, master, sealer)
}

fn master_clone(ring: &MasterKeyring) -> MasterKeyring {
    MasterKeyring::new(
        MasterKey::from_base64("test", &ring.current().expose_base64()).expect("valid key"),
        Vec::new(),
    )
}

fn samples() -> Vec<(&'static str, Value)> {
    vec![
        ("b", Value::Bool(true)),
        ("i2", Value::Int2(-12_345)),
        ("i4", Value::Int4(i32::MIN)),
        ("i8", Value::Int8(9_007_199_254_740_993)),
        ("f4", Value::Float4(1.5e-7)),
        ("f8", Value::Float8(-0.1)),
        (
            "num",
            Value::Numeric("-1234567890.000123400".parse().expect("numeric")),
        ),
        (
            "txt",
            Value::Text("Sun in Leo, Moon in Pisces ☽".to_owned()),
        ),
        ("vc", Value::Varchar(String::new())),
        ("raw", Value::Bytea(vec![0, 255, 0xb5, 1])),
        ("born", Value::Date(-3_650)),
        ("at", Value::Time(86_399_999_999)),
        ("ts", Value::Timestamp(i64::MAX)),
        ("tstz", Value::Timestamptz(789_012_345_678_901)),
        (
            "uid",
            Value::Uuid(*b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x12\x34\x56\x78\x9a\xbc\xde\xf0"),
        ),
        (
            "doc",
            Value::Jsonb("{\"a\": 1, \"sign\": \"leo\"}".to_owned()),
        ),
        ("email", Value::Text("Ada@Example.com".to_owned())),
        ("phone", Value::Text("+44 20 7946 0018".to_owned())),
    ]
}

#[tokio::test]
async fn every_type_round_trips_through_the_database() {
    let (_db, client, _master, sealer) = setup().await;
    for (id, (column, value)) in samples().into_iter().enumerate() {
        let sealed = sealer.seal("people", column, &value).expect("seal");
        client
            .execute(
                &format!("INSERT INTO people (id, {column}) VALUES ($1, $2)"),
                &[&(id as i32), &sealed],
            )
            .await
            .unwrap_or_else(|e| panic!("the database accepts a {column} ciphertext: {e}"));
        let row = client
            .query_one(
                &format!("SELECT {column} FROM people WHERE id = $1"),
                &[&(id as i32)],
            )
            .await
            .expect("select");
        let stored: Ciphertext = row.get(0);
        assert_eq!(stored, sealed);
        assert_eq!(
            sealer.open("people", column, &stored).expect("open"),
            value,
            "{column}"
        );
    }
}

#[tokio::test]
async fn null_stays_null() {
    let (_db, client, _master, sealer) = setup().await;
    let sealed = sealer.seal_opt("people", "txt", None).expect("seal none");
    assert!(sealed.is_none());
    client
        .execute("INSERT INTO people (id, txt) VALUES (1, $1)", &[&sealed])
        .await
        .expect("insert null");
    let row = client
        .query_one("SELECT txt FROM people", &[])
        .await
        .expect("select");
    let stored: Option<Ciphertext> = row.get(0);
    assert_eq!(
        sealer
            .open_opt("people", "txt", stored.as_ref())
            .expect("open"),
        None
    );
}

#[tokio::test]
async fn a_ciphertext_is_bound_to_its_column_and_any_change_is_detected() {
    let (_db, _client, _master, sealer) = setup().await;
    let value = Value::Text("Moon in Scorpio".to_owned());
    let sealed = sealer.seal("people", "txt", &value).expect("seal");

    // Same type, another column (and another schema's same-named table): refused.
    for (table, column) in [("people", "vc"), ("archive.people", "txt")] {
        let err = sealer
            .open(table, column, &sealed)
            .expect_err("wrong column");
        let text = err.to_string();
        assert!(matches!(err, Error::Crypto { .. }), "{text}");
        assert!(!text.contains("Scorpio"), "{text}");
    }

    // Every single-byte change fails, never yields another value.
    let bytes = sealed.as_bytes();
    for position in 0..bytes.len() {
        let mut tampered = bytes.to_vec();
        tampered[position] ^= 0x01;
        let result = sealer.open("people", "txt", &Ciphertext::from_bytes(tampered));
        assert!(result.is_err(), "flipping byte {position} must fail");
    }
    // Truncated at every length.
    for len in 0..bytes.len() {
        let truncated = Ciphertext::from_bytes(bytes[..len].to_vec());
        assert!(
            sealer.open("people", "txt", &truncated).is_err(),
            "length {len}"
        );
    }
}

#[tokio::test]
async fn misuse_is_reported_precisely() {
    let (_db, _client, _master, sealer) = setup().await;
    let err = sealer
        .seal("people", "born", &Value::Text("1990-01-01".into()))
        .expect_err("wrong type");
    assert!(
        matches!(
            err,
            Error::WrongType {
                expected: LogicalType::Date,
                found: LogicalType::Text,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        !err.to_string().contains("1990"),
        "values are never echoed: {err}"
    );

    let err = sealer
        .seal("people", "name", &Value::Text("x".into()))
        .expect_err("unknown column");
    assert!(matches!(err, Error::UnknownColumn(_)), "{err}");
}

#[tokio::test]
async fn search_terms_follow_the_column_normalisation() {
    let (_db, _client, _master, sealer) = setup().await;
    let a = sealer
        .search_terms("people", "email", &Value::Text(" Ada@Example.COM".into()))
        .expect("terms");
    let b = sealer
        .search_terms("people", "email", &Value::Text("ada@example.com".into()))
        .expect("terms");
    assert_eq!(a, b);
    assert_eq!(a.len(), 1);
    let p1 = sealer
        .search_terms(
            "people",
            "phone",
            &Value::Text("+44 (0)20 7946-0018".into()),
        )
        .expect("terms");
    let p2 = sealer
        .search_terms("people", "phone", &Value::Text("440207946 0018".into()))
        .expect("terms");
    assert_eq!(p1, p2);
    let n1 = sealer
        .search_terms(
            "people",
            "num",
            &Value::Numeric("1.50".parse().expect("numeric")),
        )
        .expect("terms");
    let n2 = sealer
        .search_terms(
            "people",
            "num",
            &Value::Numeric("1.5".parse().expect("numeric")),
        )
        .expect("terms");
    assert_eq!(n1, n2);
    assert!(
        sealer
            .search_terms("people", "txt", &Value::Text("x".into()))
            .is_err(),
        "non-searchable columns have no search terms"
    );

    // The stored index is what pgseal.blind_index() extracts, so lookups can use it.
    let sealed = sealer
        .seal("people", "email", &Value::Text("ADA@example.com".into()))
        .expect("seal");
    let header = pgseal_crypto::parse_ciphertext(sealed.as_bytes()).expect("header");
    assert_eq!(
        header.blind_index.map(|(_, i)| i.to_vec()),
        Some(a[0].clone())
    );
}

#[tokio::test]
async fn a_second_sealer_with_the_same_master_key_reads_what_the_first_wrote() {
    let (_db, mut client, master, sealer) = setup().await;
    let value = Value::Date(12_345);
    let sealed = sealer.seal("people", "born", &value).expect("seal");
    let second = Sealer::new(&mut client, master_clone(&master), AuditLog::disabled())
        .await
        .expect("second sealer");
    assert_eq!(second.open("people", "born", &sealed).expect("open"), value);

    // A different master key cannot even start.
    let other = MasterKeyring::new(MasterKey::generate(), Vec::new());
    let err = match Sealer::new(&mut client, other, AuditLog::disabled()).await {
        Ok(_) => panic!("a different master key must be refused"),
        Err(err) => err,
    };
    assert!(matches!(err, Error::MasterKeyMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("does not match the data keys in database"),
        "{err}"
    );
}
