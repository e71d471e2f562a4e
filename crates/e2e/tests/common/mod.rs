//! The end-to-end harness shared by every driver test: a fresh database with the table `vault`
//! (a column of every logical type), a master key, the proxy in-process, and the checks of what
//! the server stored.
//!
//! The table, in both modes (see the crate docs for the `encrypted` switch):
//!
//! ```text
//! vault (id bigint PRIMARY KEY, note text,          -- plaintext in both modes
//!        c_bool, c_int2, c_int4, c_int8, c_float4, c_float8, c_numeric, c_text, c_varchar,
//!        c_bytea, c_date, c_time, c_timestamp, c_timestamptz, c_uuid, c_jsonb, c_email, c_phone)
//! ```
//!
//! The driver programs in `tests/drivers/` rely on these names.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use pgseal::value::{decode_binary, encode_binary, format_text, parse_text, SessionSettings};
use pgseal::{init, AuditLog, Ciphertext, LogicalType, MasterKey, MasterKeyring, Sealer, Value};
use pgseal_proxy::ProxyConfig;
use pgseal_testkit::{TestCluster, TestDatabase};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The one switch of the suite: whether the proxy encrypts and `vault` uses `pgseal.*`
/// domains. Flip it with the Cargo feature `encrypted` (`crates/e2e/Cargo.toml`).
pub const ENCRYPTED: bool = cfg!(feature = "encrypted");

/// The name of the mode, as the driver programs receive it in `PGSEAL_E2E_MODE`.
pub const MODE_NAME: &str = if ENCRYPTED { "encrypted" } else { "plaintext" };

/// The table every test writes.
pub const TABLE: &str = "vault";

/// First byte of every pgseal ciphertext (docs/format.md 2).
pub const CIPHERTEXT_MAGIC: u8 = 0xB5;

/// One data column of `vault`.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name, the same in both modes.
    pub name: &'static str,
    /// The type of its values.
    pub ty: LogicalType,
    /// Its type in encrypted mode.
    pub domain: &'static str,
    /// Its type in the plaintext twin.
    pub plain: &'static str,
}

const fn column(
    name: &'static str,
    ty: LogicalType,
    domain: &'static str,
    plain: &'static str,
) -> Column {
    Column {
        name,
        ty,
        domain,
        plain,
    }
}

/// Every data column of `vault`, in table order: one per logical type, plus the two
/// searchable text domains.
pub const COLUMNS: [Column; 18] = [
    column("c_bool", LogicalType::Bool, "pgseal.bool", "boolean"),
    column("c_int2", LogicalType::Int2, "pgseal.int2", "smallint"),
    column("c_int4", LogicalType::Int4, "pgseal.int4", "integer"),
    column("c_int8", LogicalType::Int8, "pgseal.int8", "bigint"),
    column("c_float4", LogicalType::Float4, "pgseal.float4", "real"),
    column(
        "c_float8",
        LogicalType::Float8,
        "pgseal.float8",
        "double precision",
    ),
    column(
        "c_numeric",
        LogicalType::Numeric,
        "pgseal.numeric",
        "numeric",
    ),
    column("c_text", LogicalType::Text, "pgseal.text", "text"),
    column(
        "c_varchar",
        LogicalType::Varchar,
        "pgseal.varchar",
        "varchar",
    ),
    column("c_bytea", LogicalType::Bytea, "pgseal.bytea", "bytea"),
    column("c_date", LogicalType::Date, "pgseal.date", "date"),
    column("c_time", LogicalType::Time, "pgseal.time", "time"),
    column(
        "c_timestamp",
        LogicalType::Timestamp,
        "pgseal.timestamp",
        "timestamp",
    ),
    column(
        "c_timestamptz",
        LogicalType::Timestamptz,
        "pgseal.timestamptz",
        "timestamptz",
    ),
    column("c_uuid", LogicalType::Uuid, "pgseal.uuid", "uuid"),
    column("c_jsonb", LogicalType::Jsonb, "pgseal.jsonb", "jsonb"),
    column("c_email", LogicalType::Text, "pgseal.email", "text"),
    column("c_phone", LogicalType::Text, "pgseal.phone", "text"),
];

/// The `CREATE TABLE` of `vault` for the current mode.
pub fn schema_sql() -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|c| {
            format!(
                "    {} {}",
                c.name,
                if ENCRYPTED { c.domain } else { c.plain }
            )
        })
        .collect();
    format!(
        "CREATE TABLE {TABLE} (\n    id bigint PRIMARY KEY,\n    note text,\n{}\n)",
        columns.join(",\n")
    )
}

/// A comma-separated list of every data column, for `SELECT` and `INSERT` lists.
pub fn column_list() -> String {
    COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, $first+1, ...` for every data column.
pub fn placeholders(first: usize) -> String {
    (0..COLUMNS.len())
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row the Rust tests write: a value (or `NULL`) for each of [`COLUMNS`].
#[derive(Debug, Clone)]
pub struct SampleRow {
    /// Primary key.
    pub id: i64,
    /// The plaintext column.
    pub note: String,
    /// One per column of [`COLUMNS`], in order.
    pub values: Vec<Option<Value>>,
}

/// Parses the text form of a value as PostgreSQL would (ISO dates, UTC).
pub fn value(ty: LogicalType, text: &str) -> Value {
    parse_text(ty, text, &SessionSettings::default())
        .unwrap_or_else(|e| panic!("sample {text:?} is not a valid {}: {e}", ty.sql_name()))
}

fn sample(id: i64, note: &str, texts: [Option<&str>; 18]) -> SampleRow {
    SampleRow {
        id,
        note: note.to_owned(),
        values: COLUMNS
            .iter()
            .zip(texts)
            .map(|(c, text)| text.map(|t| value(c.ty, t)))
            .collect(),
    }
}

/// Three rows: ordinary values, edge values (extremes, infinities, empty strings, non-ASCII),
/// and `NULL` everywhere.
pub fn sample_rows() -> Vec<SampleRow> {
    vec![
        sample(
            1,
            "ordinary",
            [
                Some("true"),
                Some("12345"),
                Some("-2000000000"),
                Some("9007199254740993"),
                Some("1.5"),
                Some("-0.1"),
                Some("12345.67890"),
                Some("Sun in Leo, Moon in Pisces ☽"),
                Some("varchar value"),
                Some("\\x000102b5ff"),
                Some("2024-02-29"),
                Some("13:45:30.123456"),
                Some("1999-12-31 23:59:59.999999"),
                Some("2024-07-01 12:00:00+00"),
                Some("123e4567-e89b-12d3-a456-426614174000"),
                Some(r#"{"b": [true, null], "a": 1.50}"#),
                Some("Ada@Example.com"),
                Some("+44 20 7946 0018"),
            ],
        ),
        sample(
            2,
            "edges",
            [
                Some("false"),
                Some("-32768"),
                Some("2147483647"),
                Some("-9223372036854775808"),
                Some("3.4028235e+38"),
                Some("1e-300"),
                Some("-0.000100"),
                Some(""),
                Some("ünïcødé 🦀 'quoted' \"double\" \\ back"),
                Some("\\x"),
                Some("-infinity"),
                Some("24:00:00"),
                Some("infinity"),
                Some("-infinity"),
                Some("ffffffff-ffff-ffff-ffff-ffffffffffff"),
                Some(r#""a \"string\" with ☃""#),
                Some("  MiXeD@Case.ORG "),
                Some("(555) 010-9999"),
            ],
        ),
        sample(3, "nulls", [None; 18]),
    ]
}

/// What each row becomes after the update the tests run: new values for some columns.
pub fn updated_values() -> Vec<(&'static str, Value)> {
    vec![
        ("c_text", value(LogicalType::Text, "updated text ✓")),
        ("c_int8", value(LogicalType::Int8, "-42")),
        ("c_numeric", value(LogicalType::Numeric, "0.5")),
        ("c_date", value(LogicalType::Date, "1970-01-01")),
        (
            "c_timestamptz",
            value(LogicalType::Timestamptz, "2000-01-01 00:00:00.000001+00"),
        ),
        ("c_bytea", value(LogicalType::Bytea, "\\xdeadbeef")),
        ("c_bool", value(LogicalType::Bool, "true")),
        ("c_email", value(LogicalType::Text, "new@example.org")),
    ]
}

/// The index of `name` in [`COLUMNS`].
pub fn column_index(name: &str) -> usize {
    COLUMNS
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("vault has no column {name}"))
}

/// A value of any of [`COLUMNS`]' types in PostgreSQL's binary format, for drivers that have
/// no native type for it (tokio-postgres and sqlx without their chrono/uuid/decimal features).
///
/// It accepts exactly the type OID of its logical type: if the proxy described an encrypted
/// column as `bytea` instead of its logical type, binding or decoding fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed(pub Value);

impl Typed {
    /// The value's binary wire format.
    pub fn binary(&self) -> Vec<u8> {
        encode_binary(&self.0)
    }
}

fn is_logical_oid(oid: u32) -> bool {
    LogicalType::from_oid(oid).is_some()
}

impl ToSql for Typed {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let expected = self.0.logical_type();
        if ty.oid() != expected.oid() {
            return Err(format!(
                "parameter is described as {ty} (oid {}), the value is {}",
                ty.oid(),
                expected.sql_name()
            )
            .into());
        }
        out.extend_from_slice(&encode_binary(&self.0));
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        is_logical_oid(ty.oid())
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Typed {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let logical = LogicalType::from_oid(ty.oid())
            .ok_or_else(|| format!("column type {ty} is not a pgseal logical type"))?;
        Ok(Typed(decode_binary(logical, raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        is_logical_oid(ty.oid())
    }
}

/// A running proxy; dropping it stops the proxy.
struct RunningProxy {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), pgseal_proxy::ProxyError>>,
}

/// A database with `vault`, its master key, and the proxy in front of it.
pub struct Harness {
    db: TestDatabase,
    master: MasterKeyring,
    proxy: RunningProxy,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("database", &self.db.name())
            .field("proxy", &self.proxy.addr)
            .field("mode", &MODE_NAME)
            .finish_non_exhaustive()
    }
}

fn clone_master(ring: &MasterKeyring) -> MasterKeyring {
    MasterKeyring::new(
        MasterKey::from_base64("test", &ring.current().expose_base64())
            .expect("a generated master key reads back from its own base64"),
        Vec::new(),
    )
}

impl Harness {
    /// A fresh database, `pgseal init` with a new master key, `vault`, and the proxy on
    /// 127.0.0.1 with a free port, serving on the current runtime.
    pub async fn start() -> Harness {
        let db = TestCluster::shared().create_database().await;
        let mut client = db.connect().await;
        let master = MasterKeyring::new(MasterKey::generate(), Vec::new());
        init(&mut client, &master, &AuditLog::disabled())
            .await
            .expect("pgseal init installs the schema in a fresh database");
        client
            .batch_execute(&schema_sql())
            .await
            .expect("create vault");
        // The second init registers vault's encrypted columns and creates their keys.
        init(&mut client, &master, &AuditLog::disabled())
            .await
            .expect("pgseal init creates the keys of vault's columns");
        let proxy = start_proxy(db.url(), clone_master(&master)).await;
        Harness { db, master, proxy }
    }

    /// The URL of the test database through the proxy.
    pub fn proxy_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.proxy.addr.port(),
            self.db.name()
        )
    }

    /// The URL of the test database, straight to the server.
    pub fn direct_url(&self) -> String {
        self.db.url().to_owned()
    }

    /// Environment for the driver programs: `PGSEAL_PROXY_URL`, `PGSEAL_DIRECT_URL`,
    /// `PGSEAL_E2E_MODE`.
    pub fn driver_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGSEAL_PROXY_URL", self.proxy_url()),
            ("PGSEAL_DIRECT_URL", self.direct_url()),
            ("PGSEAL_E2E_MODE", MODE_NAME.to_owned()),
        ]
    }

    /// A tokio-postgres connection through the proxy.
    pub async fn proxy_client(&self) -> Client {
        connect(&self.proxy_url()).await
    }

    /// A tokio-postgres connection straight to the server.
    pub async fn direct_client(&self) -> Client {
        connect(&self.direct_url()).await
    }

    /// Checks what the server stored for every row of `vault` and returns the row count.
    ///
    /// For each data column of each row:
    /// * encrypted mode: the stored bytes (read directly) are a pgseal ciphertext (`0xB5`,
    ///   format version 1, the column's type tag) that opens, with the master key, to the value
    ///   the proxy returns in binary format; `NULL` stays `NULL`;
    /// * plaintext mode: the value read directly equals the value read through the proxy;
    ///
    /// and in both modes the proxy's text format equals PostgreSQL's text output of that value
    /// (ISO dates, UTC).
    pub async fn check_storage(&self) -> usize {
        let proxy = self.proxy_client().await;
        proxy
            .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'")
            .await
            .expect("session settings through the proxy");
        let direct = self.direct_client().await;
        let select = format!("SELECT id, {} FROM {TABLE} ORDER BY id", column_list());
        let through_proxy = proxy
            .query(&select, &[])
            .await
            .expect("select every row through the proxy");
        let texts = proxy_texts(&proxy, &select).await;
        assert_eq!(
            texts.len(),
            through_proxy.len(),
            "text and binary row counts"
        );
        let stored = direct
            .query(&select, &[])
            .await
            .expect("select every row directly");
        assert_eq!(stored.len(), through_proxy.len(), "row count direct/proxy");
        let sealer = if ENCRYPTED {
            let mut control = self.direct_client().await;
            Some(
                Sealer::new(
                    &mut control,
                    clone_master(&self.master),
                    AuditLog::disabled(),
                )
                .await
                .expect("a sealer for the test database"),
            )
        } else {
            None
        };
        let settings = SessionSettings::default();
        for ((p, d), text_row) in through_proxy.iter().zip(&stored).zip(&texts) {
            let id: i64 = p.get(0);
            assert_eq!(d.get::<_, i64>(0), id, "rows in the same order");
            for (i, c) in COLUMNS.iter().enumerate() {
                let seen: Option<Typed> = p
                    .try_get(i + 1)
                    .unwrap_or_else(|e| panic!("row {id}: decode {} from the proxy: {e}", c.name));
                let kept: Option<Value> = match &sealer {
                    Some(sealer) => {
                        let raw: Option<Ciphertext> = d.get(i + 1);
                        raw.map(|raw| {
                            let bytes = raw.as_bytes();
                            assert!(
                                bytes.len() >= 52
                                    && bytes[0] == CIPHERTEXT_MAGIC
                                    && bytes[1] == 1
                                    && bytes[2] == c.ty.tag(),
                                "row {id}: {} is stored as something other than a pgseal \
                                 ciphertext of type {}",
                                c.name,
                                c.ty.sql_name()
                            );
                            sealer.open(TABLE, c.name, &raw).unwrap_or_else(|e| {
                                panic!("row {id}: the stored {} does not open: {e}", c.name)
                            })
                        })
                    }
                    None => d.get::<_, Option<Typed>>(i + 1).map(|Typed(value)| value),
                };
                assert_eq!(
                    seen.as_ref().map(Typed::binary),
                    kept.as_ref().map(encode_binary),
                    "row {id}: {} through the proxy differs from what the server stored",
                    c.name
                );
                assert_eq!(
                    text_row[i + 1],
                    kept.as_ref().map(|v| format_text(v, &settings)),
                    "row {id}: text format of {} through the proxy",
                    c.name
                );
            }
        }
        stored.len()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(shutdown) = self.proxy.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.proxy.task.abort();
    }
}

/// Connects with tokio-postgres; the connection runs on the current runtime.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(async move {
        // Errors surface on the client; the task only drives the socket.
        let _ = connection.await;
    });
    client
}

/// Rows of `sql` in text format (simple query protocol): one `Option<String>` per column.
pub async fn proxy_texts(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("simple query {sql:?}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn proxy_config() -> ProxyConfig {
    let cluster = TestCluster::shared().cluster();
    let mut config = ProxyConfig::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        cluster.host(),
        cluster.port(),
    );
    config.startup_timeout = Duration::from_secs(30);
    config
}

/// Passthrough: the connection layer alone.
#[cfg(not(feature = "encrypted"))]
async fn start_proxy(_control_url: &str, _master: MasterKeyring) -> RunningProxy {
    let proxy = pgseal_proxy::Proxy::bind(proxy_config())
        .await
        .expect("bind the proxy on 127.0.0.1:0");
    let addr = proxy.local_addr();
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(proxy.serve(async move {
        let _ = stop.await;
    }));
    RunningProxy {
        addr,
        shutdown: Some(shutdown),
        task,
    }
}

/// The encrypting proxy, reading columns and keys through `control_url`.
#[cfg(feature = "encrypted")]
async fn start_proxy(control_url: &str, master: MasterKeyring) -> RunningProxy {
    let options = pgseal_proxy::EncryptionOptions {
        control_url: control_url.to_owned(),
        master,
        audit: AuditLog::disabled(),
        reload_interval: Duration::from_secs(1),
    };
    let (ready, listening) = oneshot::channel::<SocketAddr>();
    let (shutdown, stop) = oneshot::channel::<()>();
    let mut task = tokio::spawn(pgseal_proxy::serve_encrypted(
        proxy_config(),
        options,
        move |addr| {
            let _ = ready.send(addr);
        },
        async move {
            let _ = stop.await;
        },
    ));
    let addr = tokio::select! {
        addr = listening => addr.expect("serve_encrypted reports its address before serving"),
        ended = &mut task => panic!("the encrypting proxy stopped before serving: {ended:?}"),
    };
    RunningProxy {
        addr,
        shutdown: Some(shutdown),
        task,
    }
}

/// Whether an external tool may be missing: outside CI a missing tool skips its test with a
/// notice; with `CI=true` it is a failure, as CI installs everything (`scripts/install-deps`).
pub fn require_tool(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !in_ci,
        "{what} is missing and CI is set: run scripts/install-deps to install it"
    );
    println!("SKIPPED: {what} is missing; run scripts/install-deps to install it");
    false
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Runs a program to completion on the runtime (so the in-process proxy keeps serving) and
/// panics with its output if it fails.
pub async fn run_checked(cmd: &mut tokio::process::Command, what: &str) -> String {
    cmd.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 5 minutes"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}

/// Whether `program --version` (or `args`) runs successfully.
pub async fn tool_runs(program: &str, args: &[&str]) -> bool {
    tokio::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}
