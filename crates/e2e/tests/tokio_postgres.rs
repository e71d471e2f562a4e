//! tokio-postgres through the proxy: every type as a bound parameter and a binary result,
//! updates, named prepared statements reused many times, pipelined statements with an error in
//! the middle, and transactions that fail and recover.

mod common;

use common::{
    column_index, column_list, placeholders, sample_rows, updated_values, Harness, SampleRow,
    Typed, COLUMNS, TABLE,
};
use pgseal::value::encode_binary;
use pgseal::{LogicalType, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

type Param = Box<dyn ToSql + Sync + Send>;

/// The driver's own Rust type where it has one, [`Typed`] otherwise.
fn param(ty: LogicalType, value: Option<&Value>) -> Param {
    match (ty, value) {
        (_, Some(Value::Bool(v))) => Box::new(*v),
        (_, Some(Value::Int2(v))) => Box::new(*v),
        (_, Some(Value::Int4(v))) => Box::new(*v),
        (_, Some(Value::Int8(v))) => Box::new(*v),
        (_, Some(Value::Float4(v))) => Box::new(*v),
        (_, Some(Value::Float8(v))) => Box::new(*v),
        (_, Some(Value::Text(v) | Value::Varchar(v))) => Box::new(v.clone()),
        (_, Some(Value::Bytea(v))) => Box::new(v.clone()),
        (_, Some(other)) => Box::new(Typed(other.clone())),
        (LogicalType::Bool, None) => Box::new(None::<bool>),
        (LogicalType::Int2, None) => Box::new(None::<i16>),
        (LogicalType::Int4, None) => Box::new(None::<i32>),
        (LogicalType::Int8, None) => Box::new(None::<i64>),
        (LogicalType::Float4, None) => Box::new(None::<f32>),
        (LogicalType::Float8, None) => Box::new(None::<f64>),
        (LogicalType::Text | LogicalType::Varchar, None) => Box::new(None::<String>),
        (LogicalType::Bytea, None) => Box::new(None::<Vec<u8>>),
        (_, None) => Box::new(None::<Typed>),
    }
}

fn get(row: &Row, idx: usize, ty: LogicalType) -> Option<Value> {
    match ty {
        LogicalType::Bool => row.get::<_, Option<bool>>(idx).map(Value::Bool),
        LogicalType::Int2 => row.get::<_, Option<i16>>(idx).map(Value::Int2),
        LogicalType::Int4 => row.get::<_, Option<i32>>(idx).map(Value::Int4),
        LogicalType::Int8 => row.get::<_, Option<i64>>(idx).map(Value::Int8),
        LogicalType::Float4 => row.get::<_, Option<f32>>(idx).map(Value::Float4),
        LogicalType::Float8 => row.get::<_, Option<f64>>(idx).map(Value::Float8),
        LogicalType::Text => row.get::<_, Option<String>>(idx).map(Value::Text),
        LogicalType::Varchar => row.get::<_, Option<String>>(idx).map(Value::Varchar),
        LogicalType::Bytea => row.get::<_, Option<Vec<u8>>>(idx).map(Value::Bytea),
        _ => row.get::<_, Option<Typed>>(idx).map(|Typed(v)| v),
    }
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

async fn insert(client: &impl GenericClient, row: &SampleRow) {
    let sql = format!(
        "INSERT INTO {TABLE} (id, note, {}) VALUES ($1, $2, {})",
        column_list(),
        placeholders(3)
    );
    let mut params: Vec<Param> = vec![Box::new(row.id), Box::new(row.note.clone())];
    params.extend(
        COLUMNS
            .iter()
            .zip(&row.values)
            .map(|(c, v)| param(c.ty, v.as_ref())),
    );
    let inserted = client
        .execute(&sql, &refs(&params))
        .await
        .unwrap_or_else(|e| panic!("insert row {}: {e}", row.id));
    assert_eq!(inserted, 1);
}

async fn assert_row(client: &impl GenericClient, expected: &SampleRow) {
    let sql = format!(
        "SELECT id, note, {} FROM {TABLE} WHERE id = $1",
        column_list()
    );
    let row = client
        .query_one(&sql, &[&expected.id])
        .await
        .unwrap_or_else(|e| panic!("select row {}: {e}", expected.id));
    assert_eq!(row.get::<_, String>(1), expected.note);
    for (i, (c, want)) in COLUMNS.iter().zip(&expected.values).enumerate() {
        let seen = get(&row, i + 2, c.ty);
        assert_eq!(
            seen.as_ref().map(encode_binary),
            want.as_ref().map(encode_binary),
            "row {}: {} read back {seen:?}, wrote {want:?}",
            expected.id,
            c.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_inserts_updates_and_reads_back() {
    let h = Harness::start().await;
    let client = h.proxy_client().await;
    let mut rows = sample_rows();
    for row in &rows {
        insert(&client, row).await;
    }
    for row in &rows {
        assert_row(&client, row).await;
    }

    let updates = updated_values();
    let sets: Vec<String> = updates
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = ${}", i + 1))
        .collect();
    let sql = format!(
        "UPDATE {TABLE} SET {} WHERE id = ${}",
        sets.join(", "),
        updates.len() + 1
    );
    for row in &mut rows {
        let mut params: Vec<Param> = updates
            .iter()
            .map(|(_, v)| param(v.logical_type(), Some(v)))
            .collect();
        params.push(Box::new(row.id));
        let updated = client
            .execute(&sql, &refs(&params))
            .await
            .unwrap_or_else(|e| panic!("update row {}: {e}", row.id));
        assert_eq!(updated, 1);
        for (name, v) in &updates {
            row.values[column_index(name)] = Some(v.clone());
        }
    }
    for row in &rows {
        assert_row(&client, row).await;
    }
    // Setting a value back to NULL goes through the same parameter path.
    client
        .execute(
            &format!("UPDATE {TABLE} SET c_uuid = $1, c_jsonb = $2 WHERE id = $3"),
            &[&None::<Typed>, &None::<Typed>, &1_i64],
        )
        .await
        .expect("update to NULL");
    rows[0].values[column_index("c_uuid")] = None;
    rows[0].values[column_index("c_jsonb")] = None;
    assert_row(&client, &rows[0]).await;

    assert_eq!(h.check_storage().await, rows.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_prepared_statements_are_reused_many_times() {
    const ROWS: i64 = 60;
    let h = Harness::start().await;
    let client = h.proxy_client().await;
    let insert = client
        .prepare(&format!(
            "INSERT INTO {TABLE} (id, note, c_text, c_int8, c_bytea, c_date, c_numeric, c_email) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .await
        .expect("prepare insert");
    let select = client
        .prepare(&format!(
            "SELECT c_text, c_int8, c_bytea, c_date, c_numeric, c_email FROM {TABLE} WHERE id = $1"
        ))
        .await
        .expect("prepare select");
    let expected = |i: i64| -> (String, i64, Vec<u8>, Typed, Typed, String) {
        (
            format!("text number {i} ✓"),
            i * 1_000_003 - 7,
            vec![u8::try_from(i % 256).expect("modulo 256"); usize::try_from(i).expect("small")],
            Typed(Value::Date(i32::try_from(i).expect("small") * 37 - 1000)),
            Typed(common::value(LogicalType::Numeric, &format!("{i}.{i:03}"))),
            format!("user{i}@example.com"),
        )
    };
    for i in 0..ROWS {
        let (t, n, b, d, num, e) = expected(i);
        client
            .execute(&insert, &[&i, &"prepared", &t, &n, &b, &d, &num, &e])
            .await
            .unwrap_or_else(|err| panic!("execution {i} of the prepared insert: {err}"));
    }
    for i in (0..ROWS).rev() {
        let row = client
            .query_one(&select, &[&i])
            .await
            .unwrap_or_else(|err| panic!("execution of the prepared select for {i}: {err}"));
        let (t, n, b, d, num, e) = expected(i);
        assert_eq!(row.get::<_, String>(0), t);
        assert_eq!(row.get::<_, i64>(1), n);
        assert_eq!(row.get::<_, Vec<u8>>(2), b);
        assert_eq!(row.get::<_, Typed>(3), d);
        assert_eq!(row.get::<_, Typed>(4).binary(), num.binary());
        assert_eq!(row.get::<_, String>(5), e);
    }
    assert_eq!(
        h.check_storage().await,
        usize::try_from(ROWS).expect("small")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_rolls_back_and_the_session_recovers() {
    let h = Harness::start().await;
    let mut client = h.proxy_client().await;
    let rows = sample_rows();

    // An error in the middle of a transaction: everything after it fails until ROLLBACK.
    client.batch_execute("BEGIN").await.expect("begin");
    insert(&client, &rows[0]).await;
    let duplicate = client
        .execute(
            &format!("INSERT INTO {TABLE} (id, c_text) VALUES ($1, $2)"),
            &[&rows[0].id, &"duplicate"],
        )
        .await
        .expect_err("a duplicate key fails");
    assert_eq!(duplicate.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let aborted = client
        .query(
            &format!("SELECT c_text FROM {TABLE} WHERE id = $1"),
            &[&rows[0].id],
        )
        .await
        .expect_err("the transaction is aborted");
    assert_eq!(aborted.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").await.expect("rollback");
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {TABLE}"), &[])
        .await
        .expect("count after rollback")
        .get(0);
    assert_eq!(count, 0, "the rolled-back insert left nothing");

    // Savepoints: the failure is undone, the work around it commits.
    let mut tx = client.transaction().await.expect("begin");
    insert(&tx, &rows[0]).await;
    let sp = tx.savepoint("before_failure").await.expect("savepoint");
    let failed = sp
        .execute(
            &format!("UPDATE {TABLE} SET c_int8 = $1 WHERE id = 1 / $2"),
            &[&5_i64, &0_i32],
        )
        .await
        .expect_err("division by zero");
    assert_eq!(failed.code(), Some(&SqlState::DIVISION_BY_ZERO));
    sp.rollback().await.expect("rollback to savepoint");
    insert(&tx, &rows[1]).await;
    tx.commit().await.expect("commit");

    // Pipelined: three statements in flight, the middle one fails; the others are unaffected
    // (tokio-postgres sends a Sync after each, as the protocol requires).
    let good = format!("SELECT c_text FROM {TABLE} WHERE id = $1");
    let bad = format!("SELECT c_text FROM {TABLE} WHERE id = $1 AND 1 / 0 = 1");
    let first_params: [&(dyn ToSql + Sync); 1] = [&rows[0].id];
    let second_params: [&(dyn ToSql + Sync); 1] = [&rows[1].id];
    let (first, second, third) = tokio::join!(
        client.query_one(&good, &first_params),
        client.query_one(&bad, &first_params),
        client.query_one(&good, &second_params),
    );
    let text = |v: &Option<Value>| match v {
        Some(Value::Text(t)) => Some(t.clone()),
        _ => None,
    };
    let want_text = |row: &SampleRow| text(&row.values[column_index("c_text")]);
    assert_eq!(
        first
            .expect("first pipelined query")
            .get::<_, Option<String>>(0),
        want_text(&rows[0])
    );
    assert_eq!(
        second.expect_err("the middle query fails").code(),
        Some(&SqlState::DIVISION_BY_ZERO)
    );
    assert_eq!(
        third
            .expect("third pipelined query")
            .get::<_, Option<String>>(0),
        want_text(&rows[1])
    );

    for row in &rows[..2] {
        assert_row(&client, row).await;
    }
    assert_eq!(h.check_storage().await, 2);
}
