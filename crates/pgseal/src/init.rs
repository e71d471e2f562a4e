//! `pgseal init`: install or upgrade the pgseal schema, then give every declared column its keys.

use pgseal_audit::{AuditEvent, AuditLog};
use pgseal_crypto::MasterKeyring;
use pgseal_store::InstallOutcome;
use tokio_postgres::Client;

use crate::keyring::{current_database, ensure_data_keys, CreatedKey};
use crate::Error;

/// What [`init`] did.
#[derive(Debug)]
pub struct InitReport {
    /// The database initialised.
    pub database: String,
    /// Whether the schema was installed, upgraded or already current.
    pub schema: InstallOutcome,
    /// Data keys created for columns that had none.
    pub created_keys: Vec<CreatedKey>,
}

/// Installs or upgrades the `pgseal` schema (idempotent) and creates the data keys of every
/// declared encrypted column that lacks them. Each step is one transaction; re-running is a no-op.
pub async fn init(
    client: &mut Client,
    master: &MasterKeyring,
    audit: &AuditLog,
) -> Result<InitReport, Error> {
    let database = current_database(client).await?;
    let schema = pgseal_store::install(client).await?;
    let event = match schema {
        InstallOutcome::Installed { version } => Some(AuditEvent::SchemaInstalled {
            database: database.clone(),
            version,
        }),
        InstallOutcome::Upgraded { from, to } => Some(AuditEvent::SchemaUpgraded {
            database: database.clone(),
            from,
            to,
        }),
        InstallOutcome::AlreadyCurrent { .. } => None,
    };
    if let Some(event) = event {
        audit
            .record(event)
            .map_err(|err| Error::Audit(err.to_string()))?;
    }
    let created_keys = ensure_data_keys(client, master, audit).await?;
    Ok(InitReport {
        database,
        schema,
        created_keys,
    })
}
