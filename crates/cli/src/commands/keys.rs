//! `pgseal keys`: master-key rewrap, data-key rotation, retirement and status.

use std::time::UNIX_EPOCH;

use pgseal::rotation::{self, ColumnSelection, ColumnStatus};
use pgseal::{load_master_keys_from_env, AuditLog};
use serde_json::json;

use super::CommandResult;
use crate::db::{connect, DatabaseArgs};

/// Flags of `pgseal keys`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(clap::Subcommand)]
enum KeysCommand {
    /// Rewrap every data key under the current master key (PGSEAL_MASTER_KEY), unwrapping with
    /// it or with PGSEAL_PREVIOUS_MASTER_KEYS. One transaction; idempotent.
    Rewrap(RewrapArgs),
    /// Create a new data key version for a column (or every column) and make it the one new
    /// writes use; the previous version becomes decrypt_only. Values keep their version until
    /// `pgseal reencrypt`.
    Rotate(RotateArgs),
    /// Mark a data key version retired. Refused while any value still uses it, and for the
    /// active version.
    Retire(RetireArgs),
    /// Per encrypted column: values per data key version, key states, and the master key
    /// fingerprint wrapping each data key.
    Status(StatusArgs),
}

#[derive(clap::Args)]
struct RewrapArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(clap::Args)]
struct RotateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The column, as TABLE.COLUMN or SCHEMA.TABLE.COLUMN.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    column: Option<String>,
    /// Rotate every encrypted column.
    #[arg(long)]
    all: bool,
    /// Also rotate the blind-index key of searchable columns. Every blind index changes with it:
    /// see "Key rotation" in docs/operations.md before using it.
    #[arg(long)]
    index: bool,
}

#[derive(clap::Args)]
struct RetireArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The column, as TABLE.COLUMN or SCHEMA.TABLE.COLUMN.
    column: String,
    /// The version to retire.
    #[arg(value_name = "VERSION")]
    key_version: u32,
    /// Retire a blind-index key version instead of a value key version.
    #[arg(long)]
    index: bool,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs a `pgseal keys` subcommand.
pub async fn run(args: Args) -> CommandResult {
    match args.command {
        KeysCommand::Rewrap(args) => rewrap(args).await,
        KeysCommand::Rotate(args) => rotate(args).await,
        KeysCommand::Retire(args) => retire(args).await,
        KeysCommand::Status(args) => status(args).await,
    }
}

async fn rewrap(args: RewrapArgs) -> CommandResult {
    let master = load_master_keys_from_env().map_err(|e| e.to_string())?;
    let audit = AuditLog::from_env().map_err(|e| e.to_string())?;
    let mut client = connect(&args.database).await?;
    pgseal_store::check_schema(&client)
        .await
        .map_err(|e| e.to_string())?;
    let report = rotation::rewrap(&mut client, &master.keyring, &audit)
        .await
        .map_err(|e| e.to_string())?;
    if report.rewrapped == 0 {
        println!(
            "every data key of database {} ({}) is already wrapped by {}; nothing to do",
            report.database, report.unchanged, report.master_key
        );
    } else {
        println!(
            "rewrapped {} data key(s) of database {} under {} (previously wrapped by {}); {} \
             already were",
            report.rewrapped,
            report.database,
            report.master_key,
            report.replaced.join(", "),
            report.unchanged
        );
    }
    Ok(())
}

fn selection(column: Option<String>, all: bool) -> Result<ColumnSelection, String> {
    match (column, all) {
        (Some(column), false) => Ok(ColumnSelection::One(column)),
        (None, true) => Ok(ColumnSelection::All),
        _ => Err("name one column (TABLE.COLUMN) or pass --all".to_owned()),
    }
}

async fn rotate(args: RotateArgs) -> CommandResult {
    let selection = selection(args.column, args.all)?;
    let master = load_master_keys_from_env().map_err(|e| e.to_string())?;
    let audit = AuditLog::from_env().map_err(|e| e.to_string())?;
    let mut client = connect(&args.database).await?;
    pgseal_store::check_schema(&client)
        .await
        .map_err(|e| e.to_string())?;
    let rotated = rotation::rotate(&mut client, &master.keyring, &audit, &selection, args.index)
        .await
        .map_err(|e| e.to_string())?;
    if rotated.is_empty() {
        println!("no encrypted column to rotate");
    }
    for key in &rotated {
        match key.previous {
            Some(previous) => println!(
                "{}: {} key v{} active (v{} now decrypt_only)",
                key.column, key.purpose, key.version, previous
            ),
            None => println!(
                "{}: {} key v{} active",
                key.column, key.purpose, key.version
            ),
        }
    }
    if !rotated.is_empty() {
        println!(
            "new writes use the new keys; run `pgseal reencrypt` to move existing values to them"
        );
    }
    Ok(())
}

async fn retire(args: RetireArgs) -> CommandResult {
    let audit = AuditLog::from_env().map_err(|e| e.to_string())?;
    let mut client = connect(&args.database).await?;
    pgseal_store::check_schema(&client)
        .await
        .map_err(|e| e.to_string())?;
    let retired = rotation::retire(
        &mut client,
        &audit,
        &ColumnSelection::One(args.column),
        args.key_version,
        args.index,
    )
    .await
    .map_err(|e| e.to_string())?;
    if retired.previous == pgseal_store::KeyState::Retired {
        println!(
            "{}: {} key v{} was already retired",
            retired.column, retired.purpose, retired.version
        );
    } else {
        println!(
            "{}: {} key v{} retired (was {})",
            retired.column, retired.purpose, retired.version, retired.previous
        );
    }
    Ok(())
}

async fn status(args: StatusArgs) -> CommandResult {
    let client = connect(&args.database).await?;
    pgseal_store::check_schema(&client)
        .await
        .map_err(|e| e.to_string())?;
    let columns = rotation::status(&client).await.map_err(|e| e.to_string())?;
    if args.json {
        let items: Vec<_> = columns.iter().map(status_json).collect();
        let text = serde_json::to_string_pretty(&items).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    if columns.is_empty() {
        println!("no encrypted column has keys yet");
        return Ok(());
    }
    for column in &columns {
        println!(
            "{} (id {}): {} value(s), {} to re-encrypt",
            column.column,
            column.column_id,
            column.values_total,
            column.values_to_reencrypt()
        );
        for key in &column.keys {
            println!(
                "  {:<5} v{:<4} {:<12} {:>12} value(s)  wrapped by {}",
                key.purpose,
                key.version,
                key.state.as_str(),
                key.values,
                key.master_key
            );
        }
        for (version, count) in &column.unknown_value_versions {
            println!("  value v{version:<4} UNKNOWN KEY  {count:>12} value(s) cannot be opened");
        }
    }
    Ok(())
}

fn status_json(column: &ColumnStatus) -> serde_json::Value {
    json!({
        "column": column.column,
        "column_id": column.column_id,
        "searchable": column.searchable,
        "values": column.values_total,
        "values_current": column.values_current,
        "values_to_reencrypt": column.values_to_reencrypt(),
        "keys": column.keys.iter().map(|k| json!({
            "purpose": k.purpose,
            "version": k.version,
            "state": k.state.as_str(),
            "master_key": k.master_key,
            "created_at": k.created_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "values": k.values,
        })).collect::<Vec<_>>(),
        "unknown_value_versions": column.unknown_value_versions.iter()
            .map(|(v, n)| json!({"version": v, "values": n}))
            .collect::<Vec<_>>(),
    })
}
