//! `pgseal init`.

use pgseal::{load_master_keys_from_env, AuditLog};
use pgseal_store::InstallOutcome;

use super::CommandResult;
use crate::db::{connect, DatabaseArgs};

/// Flags of `pgseal init`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Installs or upgrades the schema and creates missing data keys.
pub async fn run(args: Args) -> CommandResult {
    // Keys first: a bad key must be refused before anything touches the database.
    let master = load_master_keys_from_env().map_err(|e| e.to_string())?;
    let audit = AuditLog::from_env().map_err(|e| e.to_string())?;
    master.record_loaded(&audit).map_err(|e| e.to_string())?;
    let mut client = connect(&args.database).await?;
    let report = pgseal::init(&mut client, &master.keyring, &audit)
        .await
        .map_err(|e| e.to_string())?;
    match report.schema {
        InstallOutcome::Installed { version } => println!(
            "installed the pgseal schema (version {version}) in database {}",
            report.database
        ),
        InstallOutcome::Upgraded { from, to } => println!(
            "upgraded the pgseal schema from version {from} to {to} in database {}",
            report.database
        ),
        InstallOutcome::AlreadyCurrent { version } => println!(
            "the pgseal schema in database {} is current (version {version})",
            report.database
        ),
    }
    for key in &report.created_keys {
        println!(
            "created {} key v{} for {} (wrapped by master key {})",
            key.purpose,
            key.version,
            key.column,
            master.fingerprint()
        );
    }
    if report.created_keys.is_empty() {
        println!("every encrypted column has its keys");
    }
    Ok(())
}
