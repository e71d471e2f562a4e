//! The pgseal schema against a real PostgreSQL (a local cluster from the testkit).

use pgseal_store::{
    check_schema, discover_columns, domain, insert_data_key, install, load_data_keys,
    next_key_version, register_columns, set_key_state, update_wrapped_key, EncryptedColumn,
    InstallOutcome, KeyState, NewDataKey, StoreError, DOMAINS, PURPOSE_INDEX, PURPOSE_VALUE,
    SCHEMA_VERSION,
};
use pgseal_testkit::TestCluster;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

async fn fresh_db() -> Client {
    TestCluster::shared()
        .create_database()
        .await
        .connect()
        .await
}

async fn installed_db() -> Client {
    let mut client = fresh_db().await;
    install(&mut client).await.expect("install");
    client
}

/// A synthetic ciphertext with a well-formed header (docs/format.md 2) and an empty plaintext.
fn fake_ciphertext(tag: u8, index_len: Option<u8>) -> Vec<u8> {
    let mut v = vec![0xB5, 0x01, tag, u8::from(index_len.is_some())];
    v.extend_from_slice(&7u32.to_be_bytes()); // column id
    v.extend_from_slice(&1u32.to_be_bytes()); // value key version
    v.extend_from_slice(&[0x5A; 24]); // nonce
    if let Some(n) = index_len {
        v.extend_from_slice(&1u16.to_be_bytes());
        v.push(n);
        v.extend(std::iter::repeat_n(0xC3, usize::from(n)));
    }
    v.extend_from_slice(&[0xEE; 16]); // GCM tag
    v
}

fn wrapped_key(fill: u8) -> Vec<u8> {
    let mut w = vec![fill; 70];
    w[0] = 0xB6;
    w[1] = 0x01;
    w
}

const FINGERPRINT: &str = "mk_3f2a9c0d1e7b5a44";

async fn schema_version_row(client: &Client) -> (i32, String, bool) {
    let row = client
        .query_one(
            "SELECT version, installed_at::text, upgraded_at IS NULL FROM pgseal.schema_version",
            &[],
        )
        .await
        .expect("schema_version row");
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn install_is_idempotent() {
    let mut client = fresh_db().await;
    assert!(matches!(
        check_schema(&client).await,
        Err(StoreError::SchemaMissing)
    ));
    assert!(matches!(
        discover_columns(&client).await,
        Err(StoreError::SchemaMissing)
    ));
    assert_eq!(
        install(&mut client).await.expect("first install"),
        InstallOutcome::Installed {
            version: SCHEMA_VERSION
        }
    );
    let before = schema_version_row(&client).await;
    assert_eq!(before.0, SCHEMA_VERSION);
    assert!(before.2, "a fresh install is not an upgrade");
    let objects = "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n
                   ON n.oid = c.relnamespace WHERE n.nspname = 'pgseal'";
    let count_before: i64 = client.query_one(objects, &[]).await.expect("count").get(0);

    assert_eq!(
        install(&mut client).await.expect("second install"),
        InstallOutcome::AlreadyCurrent {
            version: SCHEMA_VERSION
        }
    );
    assert_eq!(schema_version_row(&client).await, before, "nothing changed");
    let count_after: i64 = client.query_one(objects, &[]).await.expect("count").get(0);
    assert_eq!(count_before, count_after);
    assert_eq!(check_schema(&client).await.expect("check"), SCHEMA_VERSION);
}

#[tokio::test]
async fn refuses_a_schema_newer_than_this_pgseal() {
    let mut client = installed_db().await;
    client
        .execute("UPDATE pgseal.schema_version SET version = 999", &[])
        .await
        .expect("set version");
    let err = install(&mut client).await.expect_err("too new");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, supported } if supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the pgseal schema in this database is version 999 but this pgseal supports up to \
             {SCHEMA_VERSION}: upgrade pgseal"
        )
    );
    assert_eq!(schema_version_row(&client).await.0, 999, "left untouched");
    assert!(matches!(
        check_schema(&client).await,
        Err(StoreError::SchemaTooNew { found: 999, .. })
    ));
}

#[tokio::test]
async fn concurrent_installs_both_succeed() {
    let db = TestCluster::shared().create_database().await;
    let mut a = db.connect().await;
    let mut b = db.connect().await;
    let (ra, rb) = tokio::join!(install(&mut a), install(&mut b));
    let mut outcomes = [ra.expect("install a"), rb.expect("install b")];
    outcomes.sort_by_key(|o| matches!(o, InstallOutcome::AlreadyCurrent { .. }));
    assert_eq!(
        outcomes,
        [
            InstallOutcome::Installed {
                version: SCHEMA_VERSION
            },
            InstallOutcome::AlreadyCurrent {
                version: SCHEMA_VERSION
            }
        ]
    );
    assert_eq!(check_schema(&a).await.expect("check"), SCHEMA_VERSION);
}

async fn insert_bytes(
    client: &Client,
    table: &str,
    value: &[u8],
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            &format!("INSERT INTO {table} (v) VALUES ($1::bytea)"),
            &[&value],
        )
        .await
}

fn assert_check_violation(result: Result<u64, tokio_postgres::Error>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(
        err.code(),
        Some(&SqlState::CHECK_VIOLATION),
        "{what}: {err}"
    );
    assert_eq!(
        err.as_db_error().and_then(|db| db.constraint()),
        Some("pgseal_ciphertext_required"),
        "{what}"
    );
}

#[tokio::test]
async fn every_domain_refuses_plaintext_and_accepts_only_its_own_ciphertexts() {
    let client = installed_db().await;
    let in_db: Vec<String> = client
        .query(
            "SELECT t.typname::text FROM pg_catalog.pg_type t
             JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = 'pgseal' AND t.typtype = 'd' ORDER BY 1",
            &[],
        )
        .await
        .expect("list domains")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected: Vec<String> = DOMAINS.iter().map(|d| d.name.to_owned()).collect();
    expected.sort();
    assert_eq!(in_db, expected, "the migration creates exactly DOMAINS");

    for spec in DOMAINS {
        let table = format!("t_{}", spec.name);
        client
            .batch_execute(&format!("CREATE TABLE {table} (v pgseal.{})", spec.name))
            .await
            .expect("create table");
        let comment: Option<String> = client
            .query_one(
                "SELECT obj_description(format('pgseal.%s', $1::text)::regtype, 'pg_type')",
                &[&spec.name],
            )
            .await
            .expect("comment")
            .get(0);
        assert!(
            comment.is_some_and(|c| c.contains("pgseal-encrypted")),
            "{}",
            spec.name
        );

        let tag = spec.logical_type.tag();
        let index = spec.searchable.then_some(16u8);
        let good = fake_ciphertext(tag, index);
        insert_bytes(&client, &table, &good)
            .await
            .unwrap_or_else(|e| panic!("{}: well-formed ciphertext refused: {e}", spec.name));
        client
            .execute(&format!("INSERT INTO {table} (v) VALUES (NULL)"), &[])
            .await
            .expect("NULL is stored as NULL");

        let err = client
            .execute(
                &format!("INSERT INTO {table} (v) VALUES ('alice@example.com')"),
                &[],
            )
            .await
            .expect_err("plaintext literal");
        assert_eq!(
            err.code(),
            Some(&SqlState::CHECK_VIOLATION),
            "{}",
            spec.name
        );
        let message = err
            .as_db_error()
            .map(|db| db.message().to_owned())
            .unwrap_or_default();
        // PostgreSQL quotes domain names that are keywords (pgseal."numeric").
        let quoted = format!("pgseal.{}", spec.name);
        let keyword = format!("pgseal.\"{}\"", spec.name);
        let suffix = " violates check constraint \"pgseal_ciphertext_required\"";
        assert!(
            message == format!("value for domain {quoted}{suffix}")
                || message == format!("value for domain {keyword}{suffix}"),
            "{message}"
        );
        let store_error = StoreError::from(err);
        assert!(!store_error.to_string().contains("alice"), "{store_error}");
        assert!(store_error.to_string().contains("23514"), "{store_error}");

        let wrong_tag = fake_ciphertext(if tag == 16 { 1 } else { tag + 1 }, index);
        assert_check_violation(insert_bytes(&client, &table, &wrong_tag).await, "wrong tag");
        let wrong_flag = fake_ciphertext(tag, if spec.searchable { None } else { Some(16) });
        assert_check_violation(
            insert_bytes(&client, &table, &wrong_flag).await,
            "wrong flag",
        );
        assert_check_violation(
            insert_bytes(&client, &table, &good[..good.len() - 1]).await,
            "one byte short",
        );
        for (offset, what) in [(0, "magic"), (1, "format version")] {
            let mut bad = good.clone();
            bad[offset] ^= 0x80;
            assert_check_violation(insert_bytes(&client, &table, &bad).await, what);
        }
        for (range, what) in [(4..8, "column id 0"), (8..12, "key version 0")] {
            let mut bad = good.clone();
            bad[range].fill(0);
            assert_check_violation(insert_bytes(&client, &table, &bad).await, what);
        }
        assert_check_violation(insert_bytes(&client, &table, &[]).await, "empty");
        if spec.searchable {
            for n in [3u8, 33] {
                assert_check_violation(
                    insert_bytes(&client, &table, &fake_ciphertext(tag, Some(n))).await,
                    "index length out of range",
                );
            }
            let mut bad = good.clone();
            bad[36..38].fill(0);
            assert_check_violation(insert_bytes(&client, &table, &bad).await, "index version 0");
            for n in [4u8, 32] {
                insert_bytes(&client, &table, &fake_ciphertext(tag, Some(n)))
                    .await
                    .unwrap_or_else(|e| panic!("{}: index length {n}: {e}", spec.name));
            }
        }
    }
}

#[tokio::test]
async fn blind_index_extracts_the_index_bytes() {
    let client = installed_db().await;
    let searchable = fake_ciphertext(8, Some(8));
    let plain = fake_ciphertext(8, None);
    let row = client
        .query_one(
            "SELECT pgseal.blind_index($1::bytea), pgseal.blind_index($2::bytea),
                    pgseal.blind_index('\\x00'::bytea)",
            &[&searchable, &plain],
        )
        .await
        .expect("blind_index");
    assert_eq!(row.get::<_, Option<Vec<u8>>>(0), Some(vec![0xC3; 8]));
    assert_eq!(row.get::<_, Option<Vec<u8>>>(1), None);
    assert_eq!(row.get::<_, Option<Vec<u8>>>(2), None);
    let volatility: Vec<String> = client
        .query(
            "SELECT p.provolatile::text || p.proparallel::text || p.proisstrict::text
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'pgseal' ORDER BY p.proname",
            &[],
        )
        .await
        .expect("functions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        volatility,
        ["isfalse", "isfalse"],
        "immutable, parallel safe, not strict (inlinable: migration 0003)"
    );
}

fn find<'a>(columns: &'a [EncryptedColumn], qualified: &str) -> &'a EncryptedColumn {
    columns
        .iter()
        .find(|c| c.qualified_name() == qualified)
        .unwrap_or_else(|| panic!("{qualified} not found in {columns:?}"))
}

async fn register(client: &mut Client) -> Result<Vec<EncryptedColumn>, StoreError> {
    let tx = client.transaction().await.expect("begin");
    let columns = register_columns(&tx).await?;
    tx.commit().await.expect("commit");
    Ok(columns)
}

#[tokio::test]
async fn discovers_and_registers_columns_across_schemas_and_renames() {
    let mut client = installed_db().await;
    client
        .batch_execute(
            "CREATE SCHEMA crm;
             CREATE TABLE public.users (id int, email pgseal.email, name text, born pgseal.date);
             CREATE TABLE crm.users (email pgseal.email);
             CREATE TABLE events (at timestamptz, payload pgseal.jsonb) PARTITION BY RANGE (at);
             CREATE TABLE events_2026 PARTITION OF events
                 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             CREATE VIEW user_emails AS SELECT email FROM public.users;",
        )
        .await
        .expect("create tables");

    let discovered = discover_columns(&client).await.expect("discover");
    let names: Vec<String> = discovered
        .iter()
        .map(EncryptedColumn::qualified_name)
        .collect();
    assert_eq!(
        names,
        [
            "crm.users.email",
            "public.events.payload",
            "public.users.email",
            "public.users.born"
        ],
        "tables and partitioned tables only; no partitions, views or plain columns"
    );
    assert!(discovered.iter().all(|c| c.column_id.is_none()));
    let email = find(&discovered, "public.users.email");
    assert_eq!(email.domain, domain("email").expect("email"));
    assert_eq!(email.attnum, 2);
    assert_eq!(email.index_bytes, 16);

    let registered = register(&mut client).await.expect("register");
    assert_eq!(registered.len(), 4);
    let public_id = find(&registered, "public.users.email")
        .column_id
        .expect("id");
    let crm_id = find(&registered, "crm.users.email").column_id.expect("id");
    assert_ne!(
        public_id, crm_id,
        "same table name in another schema is another column"
    );
    let ids: std::collections::HashSet<_> = registered.iter().map(|c| c.column_id).collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(
        discover_columns(&client).await.expect("discover"),
        registered
    );

    // Registering again changes nothing.
    assert_eq!(
        register(&mut client).await.expect("register again"),
        registered
    );

    // A column rename and a table rename keep the id; a new column gets a new one.
    client
        .batch_execute(
            "ALTER TABLE public.users RENAME COLUMN email TO mail;
             ALTER TABLE public.users RENAME TO customers;
             ALTER TABLE public.customers ADD COLUMN email pgseal.text_eq;",
        )
        .await
        .expect("rename");
    let after = register(&mut client).await.expect("register after rename");
    assert_eq!(
        find(&after, "public.customers.mail").column_id,
        Some(public_id)
    );
    let new_email = find(&after, "public.customers.email");
    assert!(new_email
        .column_id
        .is_some_and(|id| id != public_id && id != crm_id));
    assert_eq!(new_email.domain.name, "text_eq");
    let row = client
        .query_one(
            "SELECT table_name::text, column_name::text FROM pgseal.columns WHERE column_id = $1",
            &[&i32::try_from(public_id).expect("id fits")],
        )
        .await
        .expect("registry row");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("customers".to_owned(), "mail".to_owned())
    );

    // Dropped columns stay registered (their keys may be needed for backups) but are not live.
    client
        .batch_execute("ALTER TABLE crm.users DROP COLUMN email")
        .await
        .expect("drop");
    let live = register(&mut client).await.expect("register after drop");
    assert!(live.iter().all(|c| c.schema != "crm"));
    let registry_rows: i64 = client
        .query_one("SELECT count(*) FROM pgseal.columns", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(registry_rows, 5);
}

#[tokio::test]
async fn refuses_columns_it_would_not_encrypt() {
    let mut client = installed_db().await;
    client
        .batch_execute("CREATE TABLE t (emails pgseal.email[])")
        .await
        .expect("create");
    let err = register(&mut client)
        .await
        .expect_err("array of a pgseal domain");
    assert!(
        matches!(&err, StoreError::UnsupportedColumnType { column, .. } if column == "public.t.emails"),
        "{err:?}"
    );
    client
        .batch_execute(
            "DROP TABLE t; CREATE DOMAIN pgseal.custom AS bytea; CREATE TABLE u (c pgseal.custom)",
        )
        .await
        .expect("create");
    let err = discover_columns(&client).await.expect_err("unknown domain");
    assert!(
        matches!(&err, StoreError::UnknownDomain { domain, .. } if domain == "custom"),
        "{err:?}"
    );
}

#[tokio::test]
async fn data_keys_lifecycle() {
    let mut client = installed_db().await;
    client
        .batch_execute("CREATE TABLE users (email pgseal.email)")
        .await
        .expect("create");
    let column_id = register(&mut client).await.expect("register")[0]
        .column_id
        .expect("registered");

    let tx = client.transaction().await.expect("begin");
    assert_eq!(
        next_key_version(&tx, column_id, PURPOSE_VALUE)
            .await
            .expect("next"),
        1
    );
    let stored = insert_data_key(
        &tx,
        &NewDataKey {
            column_id,
            purpose: PURPOSE_VALUE,
            version: 1,
            state: KeyState::Active,
            wrapped_key: wrapped_key(0x11),
            master_key_fingerprint: FINGERPRINT.into(),
        },
    )
    .await
    .expect("insert v1");
    assert_eq!(stored.version, 1);
    assert_eq!(stored.state, KeyState::Active);
    assert!(
        stored.created_at.elapsed().expect("created in the past")
            < std::time::Duration::from_secs(60)
    );
    insert_data_key(
        &tx,
        &NewDataKey {
            column_id,
            purpose: PURPOSE_INDEX,
            version: 1,
            state: KeyState::Active,
            wrapped_key: wrapped_key(0x22),
            master_key_fingerprint: FINGERPRINT.into(),
        },
    )
    .await
    .expect("insert index key");
    assert_eq!(
        next_key_version(&tx, column_id, PURPOSE_VALUE)
            .await
            .expect("next"),
        2
    );
    tx.commit().await.expect("commit");

    // A second active value key is refused.
    let tx = client.transaction().await.expect("begin");
    let v2 = NewDataKey {
        column_id,
        purpose: PURPOSE_VALUE,
        version: 2,
        state: KeyState::Active,
        wrapped_key: wrapped_key(0x33),
        master_key_fingerprint: FINGERPRINT.into(),
    };
    let err = insert_data_key(&tx, &v2).await.expect_err("two active");
    assert!(
        matches!(err, StoreError::ActiveKeyExists { column_id: c, purpose: 1 } if c == column_id),
        "{err:?}"
    );
    drop(tx);

    // Rotation: add v2 decrypt-only, demote v1, promote v2.
    let tx = client.transaction().await.expect("begin");
    insert_data_key(
        &tx,
        &NewDataKey {
            state: KeyState::DecryptOnly,
            ..v2.clone()
        },
    )
    .await
    .expect("insert v2");
    assert_eq!(
        set_key_state(&tx, column_id, PURPOSE_VALUE, 1, KeyState::DecryptOnly)
            .await
            .expect("demote"),
        KeyState::Active
    );
    assert_eq!(
        set_key_state(&tx, column_id, PURPOSE_VALUE, 2, KeyState::Active)
            .await
            .expect("promote"),
        KeyState::DecryptOnly
    );
    let err = set_key_state(&tx, column_id, PURPOSE_VALUE, 1, KeyState::Active)
        .await
        .expect_err("v2 is active");
    assert!(matches!(err, StoreError::ActiveKeyExists { .. }), "{err:?}");
    // The failed statement aborted the transaction: roll it back.
    drop(tx);

    let tx = client.transaction().await.expect("begin");
    insert_data_key(
        &tx,
        &NewDataKey {
            state: KeyState::DecryptOnly,
            ..v2.clone()
        },
    )
    .await
    .expect("insert v2 again");
    set_key_state(&tx, column_id, PURPOSE_VALUE, 1, KeyState::DecryptOnly)
        .await
        .expect("demote");
    set_key_state(&tx, column_id, PURPOSE_VALUE, 2, KeyState::Active)
        .await
        .expect("promote");
    // Master key rotation: rewrap.
    update_wrapped_key(
        &tx,
        column_id,
        PURPOSE_VALUE,
        1,
        &wrapped_key(0x44),
        "mk_00000000000000ff",
    )
    .await
    .expect("rewrap");
    let err = update_wrapped_key(
        &tx,
        column_id,
        PURPOSE_VALUE,
        9,
        &wrapped_key(0x44),
        FINGERPRINT,
    )
    .await
    .expect_err("no v9");
    assert!(
        matches!(err, StoreError::KeyNotFound { version: 9, .. }),
        "{err:?}"
    );
    tx.commit().await.expect("commit");

    let keys = load_data_keys(&client).await.expect("load");
    let summary: Vec<(u8, u32, KeyState, u8, &str)> = keys
        .iter()
        .map(|k| {
            (
                k.purpose,
                k.version,
                k.state,
                k.wrapped_key[2],
                k.master_key_fingerprint.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, 1, KeyState::DecryptOnly, 0x44, "mk_00000000000000ff"),
            (1, 2, KeyState::Active, 0x33, FINGERPRINT),
            (2, 1, KeyState::Active, 0x22, FINGERPRINT),
        ]
    );
    assert!(keys
        .iter()
        .all(|k| k.column_id == column_id && k.wrapped_key.len() == 70));

    // Unknown columns and invalid arguments are caught before the database.
    let tx = client.transaction().await.expect("begin");
    let err = next_key_version(&tx, column_id + 100, PURPOSE_VALUE)
        .await
        .expect_err("unknown column");
    assert!(matches!(err, StoreError::UnknownColumn { .. }), "{err:?}");
    let err = insert_data_key(
        &tx,
        &NewDataKey {
            purpose: 3,
            ..v2.clone()
        },
    )
    .await
    .expect_err("purpose 3");
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err:?}");
    let err = set_key_state(&tx, column_id, PURPOSE_INDEX, 5, KeyState::Retired)
        .await
        .expect_err("no such key");
    assert!(
        matches!(
            err,
            StoreError::KeyNotFound {
                purpose: 2,
                version: 5,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_stale_registration_holding_a_live_name_is_reported() {
    let mut client = installed_db().await;
    client
        .batch_execute("CREATE TABLE t (old pgseal.text, email pgseal.email)")
        .await
        .expect("create");
    let first = register(&mut client).await.expect("register");
    let old_id = find(&first, "public.t.old").column_id.expect("id");
    client
        .batch_execute("ALTER TABLE t DROP COLUMN old; ALTER TABLE t RENAME COLUMN email TO old")
        .await
        .expect("drop and rename");
    let err = register(&mut client)
        .await
        .expect_err("name held by a dropped column's row");
    assert!(
        matches!(&err, StoreError::RegistryConflict { column, stale_column_id }
            if column == "public.t.old" && *stale_column_id == old_id),
        "{err:?}"
    );
    assert!(err.to_string().contains("public.t.old"), "{err}");
}

#[tokio::test]
async fn database_errors_never_show_row_values() {
    let client = fresh_db().await;
    client
        .batch_execute("CREATE TABLE u (v text UNIQUE); INSERT INTO u VALUES ('secret-value')")
        .await
        .expect("setup");
    let err = client
        .execute("INSERT INTO u VALUES ($1)", &[&"secret-value"])
        .await
        .expect_err("duplicate");
    assert!(
        err.as_db_error()
            .and_then(|db| db.detail())
            .is_some_and(|d| d.contains("secret-value")),
        "the server's DETAIL quotes the value"
    );
    let err = StoreError::from(err);
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("secret-value"), "{shown}");
    assert!(shown.contains("23505"), "{shown}");
    assert_eq!(err.sqlstate(), Some(&SqlState::UNIQUE_VIOLATION));
}

/// The header checks must stay inlinable (not STRICT): a STRICT SQL function is called once per
/// value, which made bulk loads several times slower (migration 0003). NULL still passes the
/// domain CHECK and has no blind index.
#[tokio::test]
async fn header_checks_are_inlinable_and_keep_their_null_behaviour() {
    let client = installed_db().await;
    let strict: Vec<(String, bool)> = client
        .query(
            "SELECT proname::text, proisstrict FROM pg_proc
             WHERE pronamespace = 'pgseal'::regnamespace
               AND proname IN ('is_ciphertext', 'blind_index') ORDER BY proname",
            &[],
        )
        .await
        .expect("pg_proc")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        strict,
        vec![
            ("blind_index".to_owned(), false),
            ("is_ciphertext".to_owned(), false)
        ]
    );
    client
        .batch_execute("CREATE TABLE n (v pgseal.text_eq); INSERT INTO n VALUES (NULL)")
        .await
        .expect("NULL passes the CHECK");
    let row = client
        .query_one(
            "SELECT pgseal.blind_index(NULL), pgseal.blind_index($1), pgseal.is_ciphertext($1, 8, true)",
            &[&fake_ciphertext(8, Some(16))],
        )
        .await
        .expect("select");
    assert_eq!(row.get::<_, Option<Vec<u8>>>(0), None);
    assert_eq!(row.get::<_, Option<Vec<u8>>>(1), Some(vec![0xC3; 16]));
    assert_eq!(row.get::<_, Option<bool>>(2), Some(true));
    let err = client
        .execute("INSERT INTO n VALUES ('\\x00')", &[])
        .await
        .expect_err("not a ciphertext");
    assert_eq!(err.code(), Some(&SqlState::CHECK_VIOLATION));
}
