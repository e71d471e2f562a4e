//! The differential SQL suite: every case of `tests/sql/cases/` runs directly against plain
//! tables and through the encrypting proxy against the same tables with `pgseal.*` columns, in
//! text (simple query protocol) and binary (extended protocol) result format, and must give the
//! same column names, types and rows — or, for statements the proxy refuses, the documented
//! SQLSTATE with the sealed database unchanged and the connection still usable.
//!
//! Layout (`tests/sql/`):
//!
//! * `schema.sql`: the schema as a template, one `{domain}` placeholder per encrypted column,
//!   instantiated once with plain types (database *plain*) and once with the domains (database
//!   *sealed*, `pgseal init` run so the proxy knows the columns);
//! * `seed.sql`: rows written directly into *plain* and through the proxy into *sealed*;
//! * `cases/NNN_slug.sql`: a header `-- expect: same`, `-- expect: error SQLSTATE` or
//!   `-- expect: known-bug DESCRIPTION` (a proxy bug the case shows: it must still differ, so
//!   that a fix is noticed), then the statements; optional `NNN_slug.setup.sql` and
//!   `NNN_slug.teardown.sql` run on both sides around each run of the case.
//!
//! After each case both databases must read the same through their side (a case that leaks
//! state fails there, not in a later case), and at the end every stored value of an encrypted
//! column must be a pgseal ciphertext.

#[path = "differential/case.rs"]
mod case;

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use case::{instantiate, load_cases, read, Case, Expect, Flavour};
use pgseal::{init, AuditLog, MasterKey, MasterKeyring};
use pgseal_proxy::ProxyConfig;
use pgseal_testkit::{TestCluster, TestDatabase};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The tables of `schema.sql`, read after every case to check that both sides still agree.
const TABLES: [&str; 2] = ["users", "readings"];

/// Longest a case may take (both modes, both sides); a hung proxy fails the case instead of the
/// whole run.
const CASE_TIMEOUT: Duration = Duration::from_secs(20);

/// First byte of every pgseal ciphertext (docs/format.md 2).
const CIPHERTEXT_MAGIC: u8 = 0xB5;

/// Shortest pgseal ciphertext: a header of 36 bytes and the GCM tag (docs/format.md 2).
const MIN_CIPHERTEXT_LEN: usize = 52;

fn sql_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sql")
}

/// Any value of any type, as the raw bytes of its binary format: the comparison must not
/// depend on a decoder that could hide a difference.
#[derive(Debug)]
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// The two result formats each case runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Simple query protocol, the whole case as one query string, text values.
    Text,
    /// Extended protocol, one statement at a time, binary values and column type OIDs.
    Binary,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Text => "text",
            Mode::Binary => "binary",
        }
    }
}

/// The result of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Output {
    /// `name` (text) or `name:oid` (binary).
    columns: Vec<String>,
    /// Text values, or the binary values in hex.
    rows: Vec<Vec<Option<String>>>,
    /// The command tag's row count (text), or the affected rows of a statement without
    /// columns (binary).
    count: Option<u64>,
}

/// An error from the server or the proxy; two are the same when their SQLSTATEs are.
#[derive(Debug, Clone)]
struct Failure {
    code: String,
    message: String,
}

impl PartialEq for Failure {
    fn eq(&self, other: &Failure) -> bool {
        self.code == other.code
    }
}

impl Eq for Failure {}

fn failure(e: &tokio_postgres::Error) -> Failure {
    match e.as_db_error() {
        Some(db) => Failure {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
        },
        // Not an ErrorResponse: a broken connection or a protocol the client did not expect.
        None => Failure {
            code: "client".to_owned(),
            message: e.to_string(),
        },
    }
}

/// The results of a case on one side in one mode: the statements that completed, then the
/// error that stopped it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    outputs: Vec<Output>,
    error: Option<Failure>,
}

impl Run {
    fn render(&self) -> String {
        let mut out = String::new();
        for (n, output) in self.outputs.iter().enumerate() {
            let _ = writeln!(
                out,
                "    [{n}] columns ({}) count {:?}",
                output.columns.join(", "),
                output.count
            );
            for row in &output.rows {
                let cells: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
                let _ = writeln!(out, "        {}", cells.join(" | "));
            }
        }
        if let Some(error) = &self.error {
            let _ = writeln!(out, "    ERROR {}: {}", error.code, error.message);
        }
        out
    }
}

async fn run_text(client: &Client, script: &str) -> Run {
    match client.simple_query(script).await {
        Ok(messages) => Run {
            outputs: text_outputs(messages),
            error: None,
        },
        Err(e) => Run {
            outputs: Vec::new(),
            error: Some(failure(&e)),
        },
    }
}

fn text_outputs(messages: Vec<SimpleQueryMessage>) -> Vec<Output> {
    let mut outputs = Vec::new();
    let mut current: Option<Output> = None;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                current = Some(Output {
                    columns: columns.iter().map(|c| c.name().to_owned()).collect(),
                    rows: Vec::new(),
                    count: None,
                });
            }
            SimpleQueryMessage::Row(row) => {
                let values = (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect();
                current
                    .get_or_insert_with(|| Output {
                        columns: Vec::new(),
                        rows: Vec::new(),
                        count: None,
                    })
                    .rows
                    .push(values);
            }
            SimpleQueryMessage::CommandComplete(count) => {
                let mut output = current.take().unwrap_or(Output {
                    columns: Vec::new(),
                    rows: Vec::new(),
                    count: None,
                });
                output.count = Some(count);
                outputs.push(output);
            }
            // tokio-postgres may learn new messages; they carry no result data the case
            // compares.
            _ => {}
        }
    }
    outputs.extend(current);
    outputs
}

async fn run_binary(client: &Client, statements: &[String]) -> Run {
    let mut outputs = Vec::new();
    for sql in statements {
        match binary_statement(client, sql).await {
            Ok(output) => outputs.push(output),
            Err(e) => {
                return Run {
                    outputs,
                    error: Some(failure(&e)),
                }
            }
        }
    }
    Run {
        outputs,
        error: None,
    }
}

async fn binary_statement(client: &Client, sql: &str) -> Result<Output, tokio_postgres::Error> {
    let statement = client.prepare(sql).await?;
    let columns: Vec<String> = statement
        .columns()
        .iter()
        .map(|c| format!("{}:{}", c.name(), c.type_().oid()))
        .collect();
    if columns.is_empty() {
        let count = client.execute(&statement, &[]).await?;
        return Ok(Output {
            columns,
            rows: Vec::new(),
            count: Some(count),
        });
    }
    let rows = client.query(&statement, &[]).await?;
    let mut values = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut cells = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let raw: Option<Raw> = row.try_get(i)?;
            cells.push(raw.map(|Raw(bytes)| format!("\\x{}", hex(&bytes))));
        }
        values.push(cells);
    }
    Ok(Output {
        columns,
        rows: values,
        count: None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

async fn run(mode: Mode, client: &Client, case: &Case) -> Run {
    match mode {
        Mode::Text => run_text(client, &case.script).await,
        Mode::Binary => run_binary(client, &case.statements).await,
    }
}

/// The connections a case uses.
struct Sides {
    /// Straight to the plain database.
    plain: Client,
    /// Through the proxy to the sealed database.
    proxy: Client,
    /// Straight to the sealed database, to see what is stored.
    sealed: Client,
}

/// A running encrypting proxy; dropping it stops the proxy.
struct RunningProxy {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), pgseal_proxy::ProxyError>>,
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}

struct Suite {
    plain: TestDatabase,
    sealed: TestDatabase,
    proxy: RunningProxy,
}

impl Suite {
    async fn start() -> Suite {
        let schema = read(&sql_dir().join("schema.sql")).unwrap_or_else(|e| panic!("{e}"));
        let cluster = TestCluster::shared();

        let plain = cluster.create_database().await;
        let plain_schema = instantiate(&schema, Flavour::Plain).unwrap_or_else(|e| panic!("{e}"));
        plain
            .connect()
            .await
            .batch_execute(&plain_schema)
            .await
            .unwrap_or_else(|e| panic!("schema.sql in the plain database: {e}"));

        let sealed = cluster.create_database().await;
        let sealed_schema = instantiate(&schema, Flavour::Sealed).unwrap_or_else(|e| panic!("{e}"));
        let mut control = sealed.connect().await;
        let master = MasterKeyring::new(MasterKey::generate(), Vec::new());
        init(&mut control, &master, &AuditLog::disabled())
            .await
            .expect("pgseal init installs the schema in a fresh database");
        control
            .batch_execute(&sealed_schema)
            .await
            .unwrap_or_else(|e| panic!("schema.sql in the sealed database: {e}"));
        // The second init registers the encrypted columns and creates their keys.
        init(&mut control, &master, &AuditLog::disabled())
            .await
            .expect("pgseal init creates the keys of the schema's columns");
        let proxy = start_proxy(sealed.url(), master).await;
        Suite {
            plain,
            sealed,
            proxy,
        }
    }

    fn proxy_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.proxy.addr.port(),
            self.sealed.name()
        )
    }

    async fn sides(&self) -> Sides {
        Sides {
            plain: connect(self.plain.url()).await,
            proxy: connect(&self.proxy_url()).await,
            sealed: connect(self.sealed.url()).await,
        }
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(async move {
        // Errors surface on the client; the task only drives the socket.
        let _ = connection.await;
    });
    client
}

fn clone_master(ring: &MasterKeyring) -> MasterKeyring {
    MasterKeyring::new(
        MasterKey::from_base64("test", &ring.current().expose_base64())
            .expect("a generated master key reads back from its own base64"),
        Vec::new(),
    )
}

async fn start_proxy(control_url: &str, master: MasterKeyring) -> RunningProxy {
    let cluster = TestCluster::shared().cluster();
    let mut config = ProxyConfig::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        cluster.host(),
        cluster.port(),
    );
    config.startup_timeout = Duration::from_secs(30);
    let options = pgseal_proxy::EncryptionOptions {
        control_url: control_url.to_owned(),
        master: clone_master(&master),
        audit: AuditLog::disabled(),
        reload_interval: Duration::from_secs(1),
    };
    let (ready, listening) = oneshot::channel::<SocketAddr>();
    let (shutdown, stop) = oneshot::channel::<()>();
    let mut task = tokio::spawn(pgseal_proxy::serve_encrypted(
        config,
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

/// Runs `sql` (setup, teardown) on one side; an error is a broken case file.
async fn run_script(client: &Client, sql: &str, what: &str) -> Result<(), String> {
    client
        .simple_query(sql)
        .await
        .map(drop)
        .map_err(|e| format!("{what} failed: {}", failure(&e).message))
}

async fn setup(sides: &Sides, case: &Case) -> Result<(), String> {
    if let Some(sql) = &case.setup {
        run_script(&sides.plain, sql, "setup (plain)").await?;
        run_script(&sides.proxy, sql, "setup (through the proxy)").await?;
    }
    Ok(())
}

async fn teardown(sides: &Sides, case: &Case) -> Result<(), String> {
    if let Some(sql) = &case.teardown {
        run_script(&sides.plain, sql, "teardown (plain)").await?;
        run_script(&sides.proxy, sql, "teardown (through the proxy)").await?;
    }
    Ok(())
}

/// Every table's rows in text, read directly from the plain side and through the proxy.
async fn state_matches(sides: &Sides) -> Result<(), String> {
    for table in TABLES {
        let sql = format!("SELECT * FROM {table} ORDER BY id");
        let plain = run_text(&sides.plain, &sql).await;
        let sealed = run_text(&sides.proxy, &sql).await;
        if plain.error.is_some() || plain != sealed {
            return Err(format!(
                "table {table} differs after the case:\n  plain:\n{}  through pgseal:\n{}",
                plain.render(),
                sealed.render()
            ));
        }
    }
    Ok(())
}

/// A digest of everything stored in the sealed database's tables, ciphertexts included: a
/// refused statement must leave it exactly as it was.
async fn stored_digest(sides: &Sides) -> Result<String, String> {
    let mut digest = String::new();
    for table in TABLES {
        let sql = format!(
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM {table} t"
        );
        let run = run_text(&sides.sealed, &sql).await;
        let value = run
            .outputs
            .first()
            .and_then(|o| o.rows.first())
            .and_then(|r| r.first().cloned().flatten())
            .ok_or_else(|| format!("cannot read the stored rows of {table}: {}", run.render()))?;
        digest.push_str(&value);
    }
    Ok(digest)
}

async fn connection_works(mode: Mode, client: &Client) -> Result<(), String> {
    let one = match mode {
        Mode::Text => run_text(client, "SELECT 1").await,
        Mode::Binary => run_binary(client, &["SELECT 1".to_owned()]).await,
    };
    let expected = match mode {
        Mode::Text => "1".to_owned(),
        Mode::Binary => "\\x00000001".to_owned(),
    };
    let value = one
        .outputs
        .first()
        .and_then(|o| o.rows.first())
        .and_then(|r| r.first().cloned().flatten());
    if value.as_deref() == Some(expected.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "{}: `SELECT 1` after the refusal does not work:\n{}",
            mode.name(),
            one.render()
        ))
    }
}

/// What one mode of a `same` or `known-bug` case gave.
struct Comparison {
    mode: Mode,
    plain: Run,
    sealed: Run,
}

impl Comparison {
    fn differs(&self) -> bool {
        self.plain != self.sealed
    }

    fn render(&self) -> String {
        format!(
            "  {} plain:\n{}  {} through pgseal:\n{}",
            self.mode.name(),
            self.plain.render(),
            self.mode.name(),
            self.sealed.render()
        )
    }
}

async fn compare(sides: &Sides, case: &Case, mode: Mode) -> Result<Comparison, String> {
    setup(sides, case).await?;
    let plain = run(mode, &sides.plain, case).await;
    let sealed = run(mode, &sides.proxy, case).await;
    teardown(sides, case).await?;
    Ok(Comparison {
        mode,
        plain,
        sealed,
    })
}

/// Runs a case; `Ok` holds the table cells for the two modes, `Err` what went wrong.
async fn run_case(sides: &Sides, case: &Case) -> Result<[String; 2], String> {
    let outcome = match &case.expect {
        Expect::Same | Expect::KnownBug(_) => run_comparison(sides, case).await,
        Expect::Error(code) => run_refusal(sides, case, code).await,
    };
    // Even a failed case must not leave the two databases apart for the next one.
    let state = state_matches(sides).await;
    match (outcome, state) {
        (Ok(cells), Ok(())) => Ok(cells),
        (Ok(_), Err(state)) => Err(state),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(state)) => Err(format!("{e}\n{state}")),
    }
}

async fn run_comparison(sides: &Sides, case: &Case) -> Result<[String; 2], String> {
    let text = compare(sides, case, Mode::Text).await?;
    let binary = compare(sides, case, Mode::Binary).await?;
    let cells = [text.differs(), binary.differs()].map(|d| if d { "differs" } else { "same" });
    let cells = cells.map(str::to_owned);
    match &case.expect {
        Expect::KnownBug(what) => {
            if text.differs() || binary.differs() {
                Ok(cells)
            } else {
                Err(format!(
                    "known bug \"{what}\" no longer shows: both sides now agree; \
                     change the header to `-- expect: same`"
                ))
            }
        }
        _ => {
            let mut problems = String::new();
            for comparison in [&text, &binary] {
                if let Some(error) = &comparison.plain.error {
                    let _ = writeln!(
                        problems,
                        "{}: the case fails on the plain database ({}: {}); fix the case",
                        comparison.mode.name(),
                        error.code,
                        error.message
                    );
                } else if comparison.differs() {
                    problems.push_str(&comparison.render());
                }
            }
            if problems.is_empty() {
                Ok(cells)
            } else {
                Err(problems)
            }
        }
    }
}

async fn run_refusal(sides: &Sides, case: &Case, code: &str) -> Result<[String; 2], String> {
    // The statement must be valid SQL for the plain schema, or the refusal proves nothing.
    // Parse and Describe only: nothing runs, so the plain database is not changed.
    for sql in &case.statements {
        sides.plain.prepare(sql).await.map_err(|e| {
            format!(
                "the statement does not prepare on the plain database ({}); fix the case: {sql}",
                failure(&e).message
            )
        })?;
    }
    let mut cells = [String::new(), String::new()];
    for (cell, mode) in cells.iter_mut().zip([Mode::Text, Mode::Binary]) {
        setup(sides, case).await?;
        let before = stored_digest(sides).await?;
        let sealed = run(mode, &sides.proxy, case).await;
        let working = connection_works(mode, &sides.proxy).await;
        let after = stored_digest(sides).await?;
        teardown(sides, case).await?;
        match &sealed.error {
            Some(error) if error.code == code => {}
            _ => {
                return Err(format!(
                    "{}: expected the proxy to refuse with {code}, got:\n{}",
                    mode.name(),
                    sealed.render()
                ))
            }
        }
        working?;
        if before != after {
            return Err(format!(
                "{}: the refused statement changed the sealed database",
                mode.name()
            ));
        }
        *cell = code.to_owned();
    }
    Ok(cells)
}

/// Every stored value of every encrypted column must be a pgseal ciphertext.
async fn check_ciphertexts(sides: &Sides) -> Result<usize, String> {
    let columns = sides
        .sealed
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND domain_schema = 'pgseal' AND table_name = ANY($1) \
             ORDER BY table_name, ordinal_position",
            &[&TABLES.to_vec()],
        )
        .await
        .map_err(|e| format!("list the encrypted columns: {e}"))?;
    if columns.is_empty() {
        return Err(
            "the sealed database has no pgseal column: schema.sql is not sealed".to_owned(),
        );
    }
    let mut checked = 0;
    for column in &columns {
        let table: String = column.get(0);
        let name: String = column.get(1);
        let sql = format!(
            "SELECT count(*) FILTER (WHERE octet_length({name}) < {MIN_CIPHERTEXT_LEN} \
                 OR get_byte({name}, 0) <> {CIPHERTEXT_MAGIC}), count({name}) FROM {table}"
        );
        let row = sides
            .sealed
            .query_one(&sql, &[])
            .await
            .map_err(|e| format!("read {table}.{name}: {e}"))?;
        let bad: i64 = row.get(0);
        let stored: i64 = row.get(1);
        if bad != 0 {
            return Err(format!(
                "{table}.{name}: {bad} stored values are not pgseal ciphertexts"
            ));
        }
        checked += usize::try_from(stored).unwrap_or(0);
    }
    Ok(checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_sql_suite() {
    let started = Instant::now();
    let cases = load_cases(&sql_dir().join("cases")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cases.len() >= 40,
        "the suite has {} cases; it is meant to cover at least 40",
        cases.len()
    );
    let suite = Suite::start().await;
    let mut sides = suite.sides().await;

    let seed = read(&sql_dir().join("seed.sql")).unwrap_or_else(|e| panic!("{e}"));
    sides
        .plain
        .batch_execute(&seed)
        .await
        .unwrap_or_else(|e| panic!("seed.sql in the plain database: {e}"));
    sides
        .proxy
        .simple_query(&seed)
        .await
        .unwrap_or_else(|e| panic!("seed.sql through the proxy: {}", failure(&e).message));
    if let Err(e) = state_matches(&sides).await {
        panic!("the seed rows read differently through the proxy:\n{e}");
    }
    let seeded = check_ciphertexts(&sides)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(seeded > 0, "the seed stored no encrypted value");

    let mut failures = Vec::new();
    let mut known_bugs = Vec::new();
    println!(
        "{:<44} {:<12} {:<9} {:<9} result",
        "case", "expect", "text", "binary"
    );
    for case in &cases {
        let outcome = match tokio::time::timeout(CASE_TIMEOUT, run_case(&sides, case)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                // The connections may be mid-message: start the next case on fresh ones.
                sides = suite.sides().await;
                Err(format!("did not finish within {CASE_TIMEOUT:?}"))
            }
        };
        let expect = match &case.expect {
            Expect::KnownBug(_) => "known-bug".to_owned(),
            other => other.to_string(),
        };
        match outcome {
            Ok([text, binary]) => {
                println!("{:<44} {expect:<12} {text:<9} {binary:<9} ok", case.name);
                if let Expect::KnownBug(what) = &case.expect {
                    known_bugs.push(format!("{}: {what}", case.name));
                }
            }
            Err(problem) => {
                println!("{:<44} {expect:<12} {:<9} {:<9} FAIL", case.name, "-", "-");
                failures.push(format!("== {} ({expect})\n{problem}", case.name));
            }
        }
    }
    let stored = check_ciphertexts(&sides).await;
    println!(
        "{} cases in {:.1} s; {} known proxy bugs",
        cases.len(),
        started.elapsed().as_secs_f64(),
        known_bugs.len()
    );
    for bug in &known_bugs {
        println!("  known bug: {bug}");
    }
    if let Err(e) = stored {
        failures.push(format!("== stored values after the suite\n{e}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
