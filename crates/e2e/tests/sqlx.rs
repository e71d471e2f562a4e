//! sqlx through the proxy: `PgPool` and `PgConnection`, `query()` with binds and typed decode,
//! sqlx's cache of named prepared statements reused many times, and transactions with an
//! error in the middle.
//!
//! sqlx is built without its `chrono`, `uuid`, `rust_decimal` and `json` features; the types it
//! cannot name natively travel as [`Typed`] (a `Type`/`Encode`/`Decode` implementation over the
//! binary format below), which declares their exact type OID in `Parse`.

mod common;

use common::{
    column_index, column_list, placeholders, sample_rows, updated_values, Harness, SampleRow,
    Typed, COLUMNS, TABLE,
};
use pgseal::value::{decode_binary, encode_binary};
use pgseal::{LogicalType, Value};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnection, PgPoolOptions, PgRow, PgTypeInfo, PgValueFormat,
    PgValueRef, Postgres,
};
use sqlx::query::Query;
use sqlx::{Connection, Decode, Encode, Row, ValueRef};

/// The declared type of a `Typed` with no value yet: sqlx asks before it sees the value, and
/// [`Encode::produces`] then names the real type.
const FALLBACK_OID: u32 = 25;

fn type_info(oid: u32) -> PgTypeInfo {
    PgTypeInfo::with_oid(sqlx::postgres::types::Oid(oid))
}

impl sqlx::Type<Postgres> for Typed {
    fn type_info() -> PgTypeInfo {
        type_info(FALLBACK_OID)
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        ty.oid()
            .is_some_and(|oid| LogicalType::from_oid(oid.0).is_some())
    }
}

impl Encode<'_, Postgres> for Typed {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&encode_binary(&self.0));
        Ok(IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(type_info(self.0.logical_type().oid()))
    }
}

impl<'r> Decode<'r, Postgres> for Typed {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let oid = value
            .type_info()
            .oid()
            .ok_or("a result column without a type OID")?;
        let ty = LogicalType::from_oid(oid.0)
            .ok_or_else(|| format!("result type oid {} is not a pgseal logical type", oid.0))?;
        if value.format() != PgValueFormat::Binary {
            return Err("sqlx asked for binary results and got text".into());
        }
        Ok(Typed(decode_binary(ty, value.as_bytes()?)?))
    }
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// Binds with sqlx's own type where it has one, [`Typed`] otherwise.
fn bind<'q>(query: PgQuery<'q>, ty: LogicalType, value: Option<&Value>) -> PgQuery<'q> {
    match (ty, value) {
        (_, Some(Value::Bool(v))) => query.bind(*v),
        (_, Some(Value::Int2(v))) => query.bind(*v),
        (_, Some(Value::Int4(v))) => query.bind(*v),
        (_, Some(Value::Int8(v))) => query.bind(*v),
        (_, Some(Value::Float4(v))) => query.bind(*v),
        (_, Some(Value::Float8(v))) => query.bind(*v),
        (_, Some(Value::Text(v) | Value::Varchar(v))) => query.bind(v.clone()),
        (_, Some(Value::Bytea(v))) => query.bind(v.clone()),
        (_, Some(other)) => query.bind(Typed(other.clone())),
        (LogicalType::Bool, None) => query.bind(None::<bool>),
        (LogicalType::Int2, None) => query.bind(None::<i16>),
        (LogicalType::Int4, None) => query.bind(None::<i32>),
        (LogicalType::Int8, None) => query.bind(None::<i64>),
        (LogicalType::Float4, None) => query.bind(None::<f32>),
        (LogicalType::Float8, None) => query.bind(None::<f64>),
        (LogicalType::Text | LogicalType::Varchar, None) => query.bind(None::<String>),
        (LogicalType::Bytea, None) => query.bind(None::<Vec<u8>>),
        // sqlx would declare `None::<Typed>` with the static type info (text), which the
        // server refuses for a date or uuid column: declare the column's own type instead.
        (ty, None) => query.bind(TypedNull(ty)),
    }
}

/// `NULL` of a logical type that sqlx has no Rust type for, declared with that type's OID.
struct TypedNull(LogicalType);

impl sqlx::Type<Postgres> for TypedNull {
    fn type_info() -> PgTypeInfo {
        type_info(FALLBACK_OID)
    }
}

impl Encode<'_, Postgres> for TypedNull {
    fn encode_by_ref(&self, _buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Ok(IsNull::Yes)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(type_info(self.0.oid()))
    }
}

fn get(row: &PgRow, idx: usize, ty: LogicalType) -> Option<Value> {
    let column = COLUMNS.get(idx.saturating_sub(2)).map_or("?", |c| c.name);
    let fail = |e: sqlx::Error| -> ! { panic!("decode {column} with sqlx: {e}") };
    match ty {
        LogicalType::Bool => row
            .try_get::<Option<bool>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(Value::Bool),
        LogicalType::Int2 => row
            .try_get::<Option<i16>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(Value::Int2),
        LogicalType::Int4 => row
            .try_get::<Option<i32>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(Value::Int4),
        LogicalType::Int8 => row
            .try_get::<Option<i64>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(Value::Int8),
        LogicalType::Float4 => row
            .try_get::<Option<f32>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(Value::Float4),
        LogicalType::Float8 => row
            .try_get::<Option<f64>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(Value::Float8),
        LogicalType::Text => row
            .try_get::<Option<String>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(Value::Text),
        LogicalType::Varchar => row
            .try_get::<Option<String>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(Value::Varchar),
        LogicalType::Bytea => row
            .try_get::<Option<Vec<u8>>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(Value::Bytea),
        _ => row
            .try_get::<Option<Typed>, _>(idx)
            .unwrap_or_else(|e| fail(e))
            .map(|Typed(v)| v),
    }
}

fn insert_sql() -> String {
    format!(
        "INSERT INTO {TABLE} (id, note, {}) VALUES ($1, $2, {})",
        column_list(),
        placeholders(3)
    )
}

async fn insert(conn: &mut PgConnection, row: &SampleRow) {
    let sql = insert_sql();
    let mut query = sqlx::query(&sql).bind(row.id).bind(row.note.clone());
    for (c, v) in COLUMNS.iter().zip(&row.values) {
        query = bind(query, c.ty, v.as_ref());
    }
    let done = query
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("insert row {} with sqlx: {e}", row.id));
    assert_eq!(done.rows_affected(), 1);
}

async fn assert_row(conn: &mut PgConnection, expected: &SampleRow) {
    let sql = format!(
        "SELECT id, note, {} FROM {TABLE} WHERE id = $1",
        column_list()
    );
    let row = sqlx::query(&sql)
        .bind(expected.id)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("select row {} with sqlx: {e}", expected.id));
    assert_eq!(row.get::<i64, _>(0), expected.id);
    assert_eq!(row.get::<String, _>(1), expected.note);
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
    let mut conn = PgConnection::connect(&h.proxy_url())
        .await
        .expect("sqlx connects through the proxy");
    let mut rows = sample_rows();
    for row in &rows {
        insert(&mut conn, row).await;
    }
    for row in &rows {
        assert_row(&mut conn, row).await;
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
        let mut query = sqlx::query(&sql);
        for (_, v) in &updates {
            query = bind(query, v.logical_type(), Some(v));
        }
        let done = query
            .bind(row.id)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("update row {} with sqlx: {e}", row.id));
        assert_eq!(done.rows_affected(), 1);
        for (name, v) in &updates {
            row.values[column_index(name)] = Some(v.clone());
        }
    }
    for row in &rows {
        assert_row(&mut conn, row).await;
    }
    conn.close().await.expect("close");
    assert_eq!(h.check_storage().await, rows.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_reuse_cached_statements() {
    const ROWS: i64 = 80;
    let h = Harness::start().await;
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .connect(&h.proxy_url())
        .await
        .expect("a sqlx pool through the proxy");
    let insert = format!(
        "INSERT INTO {TABLE} (id, note, c_text, c_int4, c_float8, c_bool, c_uuid, c_timestamptz) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    );
    let select = format!(
        "SELECT c_text, c_int4, c_float8, c_bool, c_uuid, c_timestamptz FROM {TABLE} WHERE id = $1"
    );
    let expected = |i: i64| {
        let small = i32::try_from(i).expect("small");
        let mut uuid = [0_u8; 16];
        uuid[8..].copy_from_slice(&i.to_be_bytes());
        (
            format!("pooled {i} ✓"),
            small * -31,
            f64::from(small) / 8.0,
            i % 3 == 0,
            Typed(Value::Uuid(uuid)),
            Typed(Value::Timestamptz(i * 86_400_000_123)),
        )
    };
    // Several tasks share the pool, so each statement is prepared on each connection once and
    // then executed from sqlx's statement cache.
    let mut tasks = Vec::new();
    for worker in 0..3_i64 {
        let pool = pool.clone();
        let insert = insert.clone();
        tasks.push(tokio::spawn(async move {
            for i in (0..ROWS).filter(|i| i % 3 == worker) {
                let (t, n, f, b, u, ts) = expected(i);
                sqlx::query(&insert)
                    .bind(i)
                    .bind("pooled")
                    .bind(t)
                    .bind(n)
                    .bind(f)
                    .bind(b)
                    .bind(u)
                    .bind(ts)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("pooled insert {i}: {e}"));
            }
        }));
    }
    for task in tasks {
        task.await.expect("insert task");
    }
    for i in 0..ROWS {
        let row = sqlx::query(&select)
            .bind(i)
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("pooled select {i}: {e}"));
        let (t, n, f, b, u, ts) = expected(i);
        assert_eq!(row.get::<String, _>(0), t);
        assert_eq!(row.get::<i32, _>(1), n);
        assert_eq!(row.get::<f64, _>(2).to_bits(), f.to_bits());
        assert_eq!(row.get::<bool, _>(3), b);
        assert_eq!(row.get::<Typed, _>(4), u);
        assert_eq!(row.get::<Typed, _>(5), ts);
    }
    pool.close().await;
    assert_eq!(
        h.check_storage().await,
        usize::try_from(ROWS).expect("small")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_rolls_back_and_the_connection_recovers() {
    let h = Harness::start().await;
    let mut conn = PgConnection::connect(&h.proxy_url())
        .await
        .expect("sqlx connects through the proxy");
    let rows = sample_rows();

    let mut tx = conn.begin().await.expect("begin");
    insert(&mut tx, &rows[0]).await;
    let duplicate = sqlx::query(&format!("INSERT INTO {TABLE} (id, c_text) VALUES ($1, $2)"))
        .bind(rows[0].id)
        .bind("duplicate")
        .execute(&mut *tx)
        .await
        .expect_err("a duplicate key fails");
    let code = duplicate
        .as_database_error()
        .and_then(|e| e.code().map(|c| c.into_owned()));
    assert_eq!(code.as_deref(), Some("23505"), "{duplicate}");
    let aborted = sqlx::query(&format!("SELECT c_text FROM {TABLE} WHERE id = $1"))
        .bind(rows[0].id)
        .fetch_one(&mut *tx)
        .await
        .expect_err("the transaction is aborted");
    let code = aborted
        .as_database_error()
        .and_then(|e| e.code().map(|c| c.into_owned()));
    assert_eq!(code.as_deref(), Some("25P02"), "{aborted}");
    tx.rollback().await.expect("rollback");
    let count: i64 = sqlx::query(&format!("SELECT count(*) FROM {TABLE}"))
        .fetch_one(&mut conn)
        .await
        .expect("count after rollback")
        .get(0);
    assert_eq!(count, 0, "the rolled-back insert left nothing");

    // A nested transaction (a savepoint in sqlx) fails; the outer one commits.
    let mut tx = conn.begin().await.expect("begin");
    insert(&mut tx, &rows[0]).await;
    {
        let mut nested = tx.begin().await.expect("savepoint");
        let failed = sqlx::query(&format!("UPDATE {TABLE} SET c_int8 = $1 WHERE id = 1 / $2"))
            .bind(5_i64)
            .bind(0_i32)
            .execute(&mut *nested)
            .await
            .expect_err("division by zero");
        let code = failed
            .as_database_error()
            .and_then(|e| e.code().map(|c| c.into_owned()));
        assert_eq!(code.as_deref(), Some("22012"), "{failed}");
        nested.rollback().await.expect("rollback to savepoint");
    }
    insert(&mut tx, &rows[1]).await;
    tx.commit().await.expect("commit");

    for row in &rows[..2] {
        assert_row(&mut conn, row).await;
    }
    conn.close().await.expect("close");
    assert_eq!(h.check_storage().await, 2);
}
