//! `pgseal encrypt-column` and `pgseal decrypt-column`, run for real against a temporary
//! PostgreSQL cluster: values readable after the migration, plaintext gone from the live table,
//! rollback, constraints carried over, refusals, and a run killed with SIGKILL then resumed.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use pgseal::{AuditLog, Ciphertext, MasterKey, MasterKeyring, Sealer, Value};
use pgseal_testkit::{TestCluster, TestDatabase};

use common::{command, fails_after_progress, initialised_database, key_env, ok};

/// No proxy runs in these tests: no need to wait for one.
const FAST: [&str; 2] = ["--proxy-grace", "0"];

fn email(i: i32) -> String {
    format!("User-{i}@Example.org")
}

/// `people(id, email varchar(80) NOT NULL, note text, born date, score numeric)`, `rows` rows;
/// every 7th note is NULL.
async fn populated(key: &MasterKey, rows: i32) -> TestDatabase {
    let db = initialised_database(key).await;
    let client = db.connect().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE people (id int PRIMARY KEY, email varchar(80) NOT NULL, note text,
                                  born date, score numeric);
             INSERT INTO people
             SELECT i, 'User-' || i || '@Example.org',
                    CASE WHEN i % 7 = 0 THEN NULL ELSE 'note ' || i || ' é' END,
                    date '1970-01-01' + i, (i::numeric / 4)::numeric(12, 2)
             FROM generate_series(1, {rows}) AS i;"
        ))
        .await
        .expect("populate");
    db
}

async fn sealer(db: &TestDatabase, key: &MasterKey) -> Sealer {
    let mut client = db.connect().await;
    Sealer::new(
        &mut client,
        MasterKeyring::new(key.clone(), vec![]),
        AuditLog::disabled(),
    )
    .await
    .expect("sealer")
}

async fn column_type(db: &TestDatabase, column: &str) -> (String, bool) {
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
             WHERE attrelid = 'people'::regclass AND attname = $1 AND NOT attisdropped",
            &[&column],
        )
        .await
        .expect("column");
    (row.get(0), row.get(1))
}

async fn column_names(db: &TestDatabase) -> Vec<String> {
    let client = db.connect().await;
    client
        .query(
            "SELECT attname::text FROM pg_attribute
             WHERE attrelid = 'people'::regclass AND attnum > 0 AND NOT attisdropped
             ORDER BY attnum",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The table's heap file as PostgreSQL has it on disk (after a checkpoint).
async fn heap_bytes(db: &TestDatabase) -> Vec<u8> {
    let client = db.connect().await;
    client
        .batch_execute("CHECKPOINT")
        .await
        .expect("checkpoint");
    client
        .query_one(
            "SELECT pg_read_binary_file(pg_relation_filepath('people'))",
            &[],
        )
        .await
        .expect("read heap")
        .get(0)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn encrypt_column_makes_every_value_readable_and_the_plaintext_leaves_the_table() {
    let key = MasterKey::generate();
    let b64 = key.expose_base64();
    let db = populated(&key, 3000).await;
    let env = key_env(&b64, &db);

    let out = ok(
        &[
            &[
                "encrypt-column",
                "people.email",
                "--search",
                "eq",
                "--batch-rows",
                "250",
            ][..],
            &FAST,
        ]
        .concat(),
        &env,
    );
    assert!(out.contains("encrypted public.people.email"), "{out}");
    assert!(
        out.contains("character varying(80) -> pgseal.varchar_eq"),
        "{out}"
    );
    // Until the table is rewritten, the dropped column's bytes and the old row versions are
    // still in the file (docs/operations.md says so, and what to do).
    assert!(contains(&heap_bytes(&db).await, b"@Example.org"));
    ok(
        &[&["encrypt-column", "people.note"][..], &FAST].concat(),
        &env,
    );
    ok(
        &[&["encrypt-column", "public.people.score"][..], &FAST].concat(),
        &env,
    );

    // Same names, same order of the other columns; the types are pgseal domains; NOT NULL kept.
    assert_eq!(
        column_names(&db).await,
        ["id", "born", "email", "note", "score"]
    );
    assert_eq!(
        column_type(&db, "email").await,
        ("pgseal.varchar_eq".to_owned(), true)
    );
    assert_eq!(
        column_type(&db, "note").await,
        ("pgseal.text".to_owned(), false)
    );

    // Every value opens, through the library, to the original; NULL stayed NULL.
    let sealer = sealer(&db, &key).await;
    let client = db.connect().await;
    let rows = client
        .query(
            "SELECT id, email, note, score::bytea FROM people ORDER BY id",
            &[],
        )
        .await
        .expect("select");
    assert_eq!(rows.len(), 3000);
    for row in &rows {
        let id: i32 = row.get(0);
        let mail: Ciphertext = row.get(1);
        assert_eq!(
            sealer.open("people", "email", &mail).expect("open email"),
            Value::Varchar(email(id))
        );
        let note: Option<Ciphertext> = row.get(2);
        let note = sealer
            .open_opt("people", "note", note.as_ref())
            .expect("open note");
        if id % 7 == 0 {
            assert_eq!(note, None);
        } else {
            assert_eq!(note, Some(Value::Text(format!("note {id} é"))));
        }
    }
    // The scale survives (1.50 stays 1.50, not 1.5).
    let score: Vec<u8> = client
        .query_one("SELECT score::bytea FROM people WHERE id = 6", &[])
        .await
        .expect("score")
        .get(0);
    let score = sealer
        .open("people", "score", &Ciphertext::from_bytes(score))
        .expect("open score");
    let shown = format!("{score:?}");
    assert!(
        shown.contains("dscale: 2") && shown.contains("[1, 5000]"),
        "{shown}"
    );

    // Equality search works on the migrated column.
    let terms = sealer
        .search_terms("people", "email", &Value::Varchar(email(42)))
        .expect("terms");
    let found: i32 = client
        .query_one(
            "SELECT id FROM people WHERE pgseal.blind_index(email) = ANY($1)",
            &[&terms],
        )
        .await
        .expect("search")
        .get(0);
    assert_eq!(found, 42);

    // The live values hold no plaintext; once the table is rewritten (VACUUM FULL, as
    // docs/operations.md says), neither does the file.
    let live = client
        .query("SELECT email::bytea, note::bytea FROM people", &[])
        .await
        .expect("raw");
    for row in &live {
        let mail: Vec<u8> = row.get(0);
        assert!(!contains(&mail, b"@Example.org"));
        assert_eq!(mail[0], 0xB5, "a pgseal ciphertext");
    }
    client
        .batch_execute("VACUUM FULL people")
        .await
        .expect("vacuum full");
    let heap = heap_bytes(&db).await;
    assert!(!heap.is_empty());
    assert!(
        !contains(&heap, b"@Example.org"),
        "plaintext left in the heap file"
    );
    for i in [1, 2, 1000, 2999] {
        assert!(!contains(&heap, format!("note {i} é").as_bytes()));
    }

    // The migrations are recorded as done; nothing of them is left on the table.
    let done: i64 = client
        .query_one(
            "SELECT count(*) FROM pgseal.column_migrations WHERE phase = 'done'",
            &[],
        )
        .await
        .expect("state")
        .get(0);
    assert_eq!(done, 3);
    let leftovers: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'people'::regclass)
                  + (SELECT count(*) FROM pg_constraint WHERE conrelid = 'people'::regclass
                     AND conname LIKE 'pgseal%')
                  + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'migrate\\_%')",
            &[],
        )
        .await
        .expect("leftovers")
        .get(0);
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn decrypt_column_restores_the_plaintext_and_its_original_type() {
    let key = MasterKey::generate();
    let b64 = key.expose_base64();
    let db = populated(&key, 500).await;
    let env = key_env(&b64, &db);
    let client = db.connect().await;
    let before = client
        .query("SELECT id, email, note FROM people ORDER BY id", &[])
        .await
        .expect("before");

    ok(
        &[&["encrypt-column", "people.email"][..], &FAST].concat(),
        &env,
    );
    ok(
        &[&["encrypt-column", "people.note"][..], &FAST].concat(),
        &env,
    );
    // Values written after the migration, as an application using the library would.
    let sealer = sealer(&db, &key).await;
    let sealed = sealer
        .seal(
            "people",
            "email",
            &Value::Varchar("late@example.org".into()),
        )
        .expect("seal");
    client
        .execute(
            "INSERT INTO people (id, email) VALUES (9999, $1)",
            &[&sealed],
        )
        .await
        .expect("insert sealed");

    let out = ok(
        &[&["decrypt-column", "people.email"][..], &FAST].concat(),
        &env,
    );
    assert!(out.contains("decrypted public.people.email"), "{out}");
    ok(
        &[&["decrypt-column", "people.note"][..], &FAST].concat(),
        &env,
    );
    assert_eq!(
        column_type(&db, "email").await,
        ("character varying(80)".to_owned(), true)
    );
    assert_eq!(column_type(&db, "note").await, ("text".to_owned(), false));
    let after = client
        .query(
            "SELECT id, email, note FROM people WHERE id < 9999 ORDER BY id",
            &[],
        )
        .await
        .expect("after");
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.get::<_, i32>(0), a.get::<_, i32>(0));
        assert_eq!(b.get::<_, String>(1), a.get::<_, String>(1));
        assert_eq!(b.get::<_, Option<String>>(2), a.get::<_, Option<String>>(2));
    }
    let late: String = client
        .query_one("SELECT email FROM people WHERE id = 9999", &[])
        .await
        .expect("late")
        .get(0);
    assert_eq!(late, "late@example.org");

    // And back again: the registry follows both ways without conflicts.
    ok(
        &[
            &["encrypt-column", "people.email", "--search", "eq"][..],
            &FAST,
        ]
        .concat(),
        &env,
    );
    let sealer = {
        let mut client = db.connect().await;
        Sealer::new(
            &mut client,
            MasterKeyring::new(key.clone(), vec![]),
            AuditLog::disabled(),
        )
        .await
        .expect("sealer after a second encrypt")
    };
    let mail: Ciphertext = client
        .query_one("SELECT email FROM people WHERE id = 3", &[])
        .await
        .expect("email")
        .get(0);
    assert_eq!(
        sealer.open("people", "email", &mail).expect("open"),
        Value::Varchar(email(3))
    );
}

#[tokio::test]
async fn refusals_name_the_problem_and_change_nothing() {
    let key = MasterKey::generate();
    let b64 = key.expose_base64();
    let db = populated(&key, 20).await;
    let env = key_env(&b64, &db);
    let client = db.connect().await;
    client
        .batch_execute(
            "ALTER TABLE people ADD COLUMN spot point, ADD COLUMN ratio float8,
                 ADD COLUMN secret pgseal.text, ADD COLUMN code text DEFAULT 'x',
                 ADD COLUMN tags text[];
             CREATE INDEX people_born ON people (born);
             CREATE VIEW born_view AS SELECT id, note FROM people;",
        )
        .await
        .expect("setup");
    let names_before = column_names(&db).await;
    let cases: [(&[&str], &str); 11] = [
        (&["encrypt-column", "people.nope"], "no such column"),
        (&["encrypt-column", "nobody.email"], "no such table"),
        (&["encrypt-column", "people"], "is not TABLE.COLUMN"),
        (&["encrypt-column", "people.secret"], "already encrypted"),
        (
            &["encrypt-column", "people.spot"],
            "type point has no pgseal domain",
        ),
        (
            &["encrypt-column", "people.tags"],
            "type text[] has no pgseal domain",
        ),
        (
            &["encrypt-column", "people.ratio", "--search", "eq"],
            "cannot be searchable",
        ),
        (&["encrypt-column", "people.born"], "index people_born"),
        (&["encrypt-column", "people.code"], "default value"),
        (&["encrypt-column", "people.note"], "born_view"),
        (&["decrypt-column", "people.email"], "it is not encrypted"),
    ];
    for (args, expected) in cases {
        let message = fails_after_progress(&[args, &FAST].concat(), &env);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    assert_eq!(column_names(&db).await, names_before);
    let recorded: i64 = client
        .query_one("SELECT count(*) FROM pgseal.column_migrations", &[])
        .await
        .expect("state")
        .get(0);
    assert_eq!(recorded, 0);
    // Without a master key nothing starts either.
    let message = fails_after_progress(
        &[&["encrypt-column", "people.email"][..], &FAST].concat(),
        &[("DATABASE_URL", db.url())],
    );
    assert!(message.contains("PGSEAL_MASTER_KEY"), "{message}");
}

#[tokio::test]
async fn a_migration_killed_mid_backfill_resumes_and_completes() {
    let key = MasterKey::generate();
    let b64 = key.expose_base64();
    let db = populated(&key, 40_000).await;
    let env = key_env(&b64, &db);
    let client = db.connect().await;

    let mut child = command(
        &[
            "encrypt-column",
            "people.email",
            "--proxy-grace",
            "0",
            "--batch-rows",
            "500",
            "--max-rows-per-second",
            "4000",
        ],
        &env,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    // Wait until part of the backfill is done, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = client
            .query(
                "SELECT rows_done FROM pgseal.column_migrations WHERE phase = 'backfill'",
                &[],
            )
            .await
            .expect("progress");
        if rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) >= 2000 {
            break;
        }
        assert!(Instant::now() < deadline, "the backfill never progressed");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished too soon"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    // Meanwhile an application changes rows, some already converted, some not.
    client
        .batch_execute(
            "UPDATE people SET email = 'changed-' || id || '@example.org' WHERE id % 1000 = 1",
        )
        .await
        .expect("concurrent update");
    let partial: (i64, i64) = {
        let row = client
            .query_one("SELECT count(email__pgseal), count(*) FROM people", &[])
            .await
            .expect("partial");
        (row.get(0), row.get(1))
    };
    assert!(partial.0 > 0 && partial.0 < partial.1, "{partial:?}");

    let out = ok(
        &[&["encrypt-column", "people.email"][..], &FAST].concat(),
        &env,
    );
    assert!(out.contains("resuming an interrupted run"), "{out}");
    let sealer = sealer(&db, &key).await;
    let rows = client
        .query("SELECT id, email FROM people", &[])
        .await
        .expect("select");
    assert_eq!(rows.len(), 40_000);
    for row in &rows {
        let id: i32 = row.get(0);
        let mail: Ciphertext = row.get(1);
        let expected = if id % 1000 == 1 {
            format!("changed-{id}@example.org")
        } else {
            email(id)
        };
        assert_eq!(
            sealer.open("people", "email", &mail).expect("open"),
            Value::Varchar(expected)
        );
    }
    assert!(column_type(&db, "email").await.1, "NOT NULL restored");
}

#[tokio::test]
async fn a_table_held_by_a_long_transaction_is_left_untouched_after_the_lock_attempts() {
    let key = MasterKey::generate();
    let b64 = key.expose_base64();
    let db = populated(&key, 50).await;
    let env = key_env(&b64, &db);
    let mut holder = db.connect().await;
    let tx = holder.transaction().await.expect("begin");
    tx.query("SELECT count(*) FROM people", &[])
        .await
        .expect("lock people");
    let started = Instant::now();
    let message = fails_after_progress(
        &[
            &[
                "encrypt-column",
                "people.email",
                "--lock-timeout",
                "0.2",
                "--lock-attempts",
                "3",
            ][..],
            &FAST,
        ]
        .concat(),
        &env,
    );
    assert!(message.contains("could not lock the table"), "{message}");
    assert!(message.contains("3 attempts"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(20));
    tx.rollback().await.expect("rollback");
    // Nothing half-done: no shadow column, no record; a later run goes through.
    assert_eq!(
        column_names(&db).await,
        ["id", "email", "note", "born", "score"]
    );
    let client = db.connect().await;
    let recorded: i64 = client
        .query_one("SELECT count(*) FROM pgseal.column_migrations", &[])
        .await
        .expect("state")
        .get(0);
    assert_eq!(recorded, 0);
    ok(
        &[&["encrypt-column", "people.email"][..], &FAST].concat(),
        &env,
    );
}

#[tokio::test]
async fn init_upgrades_a_version_1_schema_with_the_migration_table() {
    let key = MasterKey::generate();
    let b64 = key.expose_base64();
    let db = TestCluster::shared().create_database().await;
    let env = key_env(&b64, &db);
    ok(&["init"], &env);
    let client = db.connect().await;
    // What a pgseal of schema version 1 left behind.
    client
        .batch_execute(
            "DROP TABLE pgseal.column_migrations;
             UPDATE pgseal.schema_version SET version = 1",
        )
        .await
        .expect("downgrade");
    let out = ok(&["init"], &env);
    assert!(out.contains("from version 1 to 4"), "{out}");
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('pgseal.column_migrations') IS NOT NULL",
            &[],
        )
        .await
        .expect("table")
        .get(0);
    assert!(exists);
    let out = ok(&["init"], &env);
    assert!(out.contains("is current (version 4)"), "{out}");
}
