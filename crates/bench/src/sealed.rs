//! Target (d)'s data: a copy of `pgbench_accounts` whose `filler` is an encrypted `pgseal.text`
//! column, sealed row by row with `pgseal::Sealer` and loaded with a binary `COPY`.

use std::pin::pin;

use pgseal::{AuditLog, MasterKeyring, Sealer, Value};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use crate::pgbench::{PLAIN_ACCOUNTS, SEALED_ACCOUNTS};
use crate::BenchError;

/// pgbench's accounts per unit of scale.
const ACCOUNTS_PER_SCALE: i32 = 100_000;

/// `pgbench_accounts.filler` is `character(84)`: the sealed plaintexts have the same length.
const FILLER_LEN: usize = 84;

/// The plaintext `filler` of account `aid` before any update.
pub(crate) fn initial_filler(aid: i32) -> String {
    format!("{:<FILLER_LEN$}", format!("account {aid}"))
}

/// Checks that the encrypting proxy on `proxy_port` really decrypts: account 1's `filler` must
/// read back as its plaintext through the proxy, while the server (`direct`) holds pgseal
/// ciphertext (magic byte `0xB5`, docs/format.md 2). Without this, a proxy that passed
/// ciphertext through untouched would look fast for the wrong reason.
pub(crate) async fn verify_decryption(direct: &Client, proxy_port: u16) -> Result<(), String> {
    let stored: i32 = direct
        .query_one(
            &format!("SELECT get_byte(filler, 0) FROM {SEALED_ACCOUNTS} WHERE aid = 1"),
            &[],
        )
        .await
        .map_err(|e| {
            format!(
                "reading the stored value: {}",
                pgseal::describe_db_error(&e)
            )
        })?
        .get(0);
    if stored != 0xB5 {
        return Err(format!(
            "the stored filler starts with byte {stored:#04x}, not pgseal's 0xb5"
        ));
    }
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(proxy_port)
        .user(crate::pgbench::USER)
        .dbname(crate::pgbench::DATABASE);
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting: {}", pgseal::describe_db_error(&e)))?;
    let connection = tokio::spawn(connection);
    let query = format!("SELECT filler FROM {SEALED_ACCOUNTS} WHERE aid = 1");
    let text = client
        .simple_query(&query)
        .await
        .map_err(|e| {
            format!(
                "selecting through the proxy: {}",
                pgseal::describe_db_error(&e)
            )
        })?
        .into_iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        });
    drop(client);
    let _ = connection.await;
    match text {
        Some(text) if text == initial_filler(1) => Ok(()),
        Some(_) => Err(
            "the proxy returned something other than the plaintext of account 1's \
                        filler"
                .to_owned(),
        ),
        None => Err("the proxy returned no row for account 1".to_owned()),
    }
}

/// Creates the control target's plaintext copy of `pgbench_accounts`: the same rows as the
/// encrypted copy, with `filler` as plain `text`.
pub(crate) async fn create_plain_accounts(client: &Client) -> Result<(), BenchError> {
    // rpad gives the same 84-character text as `initial_filler`.
    for statement in [
        format!("DROP TABLE IF EXISTS {PLAIN_ACCOUNTS}"),
        format!(
            "CREATE TABLE {PLAIN_ACCOUNTS} WITH (fillfactor = 100) AS \
             SELECT aid, bid, abalance, rpad('account ' || aid, {FILLER_LEN})::text AS filler \
             FROM pgbench_accounts ORDER BY aid"
        ),
        format!("ALTER TABLE {PLAIN_ACCOUNTS} ADD PRIMARY KEY (aid)"),
        format!("VACUUM ANALYZE {PLAIN_ACCOUNTS}"),
    ] {
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| BenchError::db(format!("creating {PLAIN_ACCOUNTS}"), &e))?;
    }
    Ok(())
}

/// Installs the pgseal schema, creates the encrypted copy of `pgbench_accounts` for `scale` and
/// fills it. The database must already hold pgbench's tables.
pub(crate) async fn create_sealed_accounts(
    client: &mut Client,
    master: &MasterKeyring,
    scale: u32,
) -> Result<(), BenchError> {
    let audit = AuditLog::disabled();
    pgseal::init(client, master, &audit)
        .await
        .map_err(|source| BenchError::Pgseal {
            action: "installing the pgseal schema",
            source,
        })?;
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {SEALED_ACCOUNTS};
             CREATE TABLE {SEALED_ACCOUNTS} (
                 aid integer NOT NULL,
                 bid integer,
                 abalance integer,
                 filler pgseal.text
             ) WITH (fillfactor = 100);"
        ))
        .await
        .map_err(|e| BenchError::db(format!("creating {SEALED_ACCOUNTS}"), &e))?;
    // Creates the new column's data key, exactly as `pgseal init` would.
    let sealer = Sealer::new(client, master.clone(), audit)
        .await
        .map_err(|source| BenchError::Pgseal {
            action: "creating the encrypted column's keys",
            source,
        })?;

    let accounts = i32::try_from(scale)
        .ok()
        .and_then(|s| s.checked_mul(ACCOUNTS_PER_SCALE))
        .ok_or_else(|| BenchError::Parse(format!("scale {scale} is too large for pgbench")))?;
    let sink = client
        .copy_in(&format!(
            "COPY {SEALED_ACCOUNTS} (aid, bid, abalance, filler) FROM STDIN (FORMAT binary)"
        ))
        .await
        .map_err(|e| BenchError::db(format!("starting COPY into {SEALED_ACCOUNTS}"), &e))?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[Type::INT4, Type::INT4, Type::INT4, Type::BYTEA],
    ));
    for aid in 1..=accounts {
        let bid = (aid - 1) / ACCOUNTS_PER_SCALE + 1;
        let filler = Value::Text(initial_filler(aid));
        let sealed = sealer
            .seal(SEALED_ACCOUNTS, "filler", &filler)
            .map_err(|source| BenchError::Pgseal {
                action: "sealing a filler value",
                source,
            })?;
        writer
            .as_mut()
            .write(&[&aid, &bid, &0_i32, &sealed.as_bytes()])
            .await
            .map_err(|e| BenchError::db(format!("copying rows into {SEALED_ACCOUNTS}"), &e))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| BenchError::db(format!("finishing COPY into {SEALED_ACCOUNTS}"), &e))?;
    client
        .batch_execute(&format!(
            "ALTER TABLE {SEALED_ACCOUNTS} ADD PRIMARY KEY (aid)"
        ))
        .await
        .map_err(|e| BenchError::db(format!("indexing {SEALED_ACCOUNTS}"), &e))?;
    client
        .batch_execute(&format!("VACUUM ANALYZE {SEALED_ACCOUNTS}"))
        .await
        .map_err(|e| BenchError::db(format!("vacuuming {SEALED_ACCOUNTS}"), &e))?;
    Ok(())
}
