//! Installing and upgrading the pgseal schema.

use tokio_postgres::{Client, GenericClient};

use crate::error::{missing_schema_as, DatabaseError};
use crate::StoreError;

/// One schema migration: a SQL script applied once, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// A short name, for error messages.
    pub(crate) name: &'static str,
    /// The script, run with the simple query protocol (several statements allowed).
    pub(crate) sql: &'static str,
}

/// Every migration, oldest first; migration `i` (0-based) brings the schema to version `i + 1`.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        name: "0002_column_migrations",
        sql: include_str!("migrations/0002_column_migrations.sql"),
    },
    Migration {
        name: "0003_inlinable_checks",
        sql: include_str!("migrations/0003_inlinable_checks.sql"),
    },
    Migration {
        name: "0004_cutover_pending",
        sql: include_str!("migrations/0004_cutover_pending.sql"),
    },
];

/// The schema version this pgseal creates and requires: the number of migrations.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Serialises `pgseal init` runs on one database (the value is arbitrary: "pgseal" in ASCII, 1).
const INSTALL_LOCK: i64 = 0x7067_7365_616c_0001;

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The schema was created from scratch.
    Installed {
        /// The version now installed.
        version: i32,
    },
    /// An older schema was upgraded.
    Upgraded {
        /// The version found.
        from: i32,
        /// The version now installed.
        to: i32,
    },
    /// The schema was already at this pgseal's version; nothing changed.
    AlreadyCurrent {
        /// The version found.
        version: i32,
    },
}

/// Creates or upgrades the pgseal schema, in one transaction.
///
/// Safe to run concurrently: an advisory lock serialises installers, and the second one finds
/// the work done. A schema newer than this pgseal is refused with
/// [`StoreError::SchemaTooNew`] and left untouched.
pub async fn install(client: &mut Client) -> Result<InstallOutcome, StoreError> {
    install_migrations(client, MIGRATIONS).await
}

pub(crate) async fn install_migrations(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<InstallOutcome, StoreError> {
    let supported = i32::try_from(migrations.len()).map_err(|_| StoreError::InvalidArgument {
        what: "too many migrations".to_owned(),
    })?;
    let tx = client.transaction().await?;
    // Taken before reading anything: in READ COMMITTED each later statement then sees what a
    // concurrent installer committed before releasing the lock.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INSTALL_LOCK])
        .await?;
    let found = recorded_version(&tx).await?.unwrap_or(0);
    if found > supported {
        // Dropping `tx` rolls back; nothing was changed anyway.
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    if found == supported {
        tx.commit().await?;
        return Ok(InstallOutcome::AlreadyCurrent { version: found });
    }
    tx.batch_execute("CREATE SCHEMA IF NOT EXISTS pgseal")
        .await?;
    let first_new = usize::try_from(found).map_err(|_| StoreError::Corrupt {
        what: format!("pgseal.schema_version.version = {found}"),
    })?;
    for migration in &migrations[first_new..] {
        tx.batch_execute(migration.sql)
            .await
            .map_err(|e| StoreError::MigrationFailed {
                migration: migration.name,
                error: DatabaseError::new(e),
            })?;
    }
    let pgseal_version = env!("CARGO_PKG_VERSION");
    if found == 0 {
        tx.execute(
            "INSERT INTO pgseal.schema_version (version, pgseal_version) VALUES ($1, $2)",
            &[&supported, &pgseal_version],
        )
        .await?;
    } else {
        tx.execute(
            "UPDATE pgseal.schema_version SET version = $1, pgseal_version = $2, upgraded_at = now()",
            &[&supported, &pgseal_version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(if found == 0 {
        InstallOutcome::Installed { version: supported }
    } else {
        InstallOutcome::Upgraded {
            from: found,
            to: supported,
        }
    })
}

/// The version in `pgseal.schema_version`, or `None` when there is no such table.
async fn recorded_version(client: &impl GenericClient) -> Result<Option<i32>, StoreError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('pgseal.schema_version') IS NOT NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query("SELECT version FROM pgseal.schema_version", &[])
        .await
        .map_err(missing_schema_as)?;
    match rows.as_slice() {
        [row] => Ok(Some(row.try_get(0)?)),
        _ => Err(StoreError::Corrupt {
            what: format!("pgseal.schema_version has {} rows instead of 1", rows.len()),
        }),
    }
}

/// Checks that the database has exactly this pgseal's schema version, and returns it.
///
/// Errors: [`StoreError::SchemaMissing`] (run `pgseal init`), [`StoreError::SchemaTooOld`] (run
/// `pgseal init` to upgrade), [`StoreError::SchemaTooNew`] (upgrade pgseal).
pub async fn check_schema(client: &impl GenericClient) -> Result<i32, StoreError> {
    match recorded_version(client).await? {
        None => Err(StoreError::SchemaMissing),
        Some(found) if found < SCHEMA_VERSION => Err(StoreError::SchemaTooOld {
            found,
            supported: SCHEMA_VERSION,
        }),
        Some(found) if found > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        }),
        Some(found) => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgseal_testkit::TestCluster;

    const M2_TEST: Migration = Migration {
        name: "0002_test_only",
        sql: "CREATE TABLE pgseal.upgrade_probe (id int);
              INSERT INTO pgseal.upgrade_probe VALUES (42);",
    };

    const M2_BROKEN: Migration = Migration {
        name: "0002_broken",
        sql: "CREATE TABLE pgseal.half_done (id int); SELECT no_such_function();",
    };

    async fn version_row(client: &Client) -> (i32, bool) {
        let row = client
            .query_one(
                "SELECT version, upgraded_at IS NOT NULL FROM pgseal.schema_version",
                &[],
            )
            .await
            .expect("schema_version");
        (row.get(0), row.get(1))
    }

    #[tokio::test]
    async fn upgrades_from_an_older_schema() {
        let mut client = TestCluster::shared()
            .create_database()
            .await
            .connect()
            .await;
        let m1 = MIGRATIONS[0];
        assert_eq!(
            install_migrations(&mut client, &[m1])
                .await
                .expect("install v1"),
            InstallOutcome::Installed { version: 1 }
        );
        assert_eq!(version_row(&client).await, (1, false));

        // A failing migration changes nothing.
        let err = install_migrations(&mut client, &[m1, M2_BROKEN])
            .await
            .expect_err("broken migration");
        assert!(
            matches!(
                &err,
                StoreError::MigrationFailed {
                    migration: "0002_broken",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("42883"), "{err}");
        assert_eq!(version_row(&client).await, (1, false));
        let half_done: bool = client
            .query_one("SELECT to_regclass('pgseal.half_done') IS NULL", &[])
            .await
            .expect("probe")
            .get(0);
        assert!(half_done, "the broken migration was rolled back");

        assert_eq!(
            install_migrations(&mut client, &[m1, M2_TEST])
                .await
                .expect("upgrade"),
            InstallOutcome::Upgraded { from: 1, to: 2 }
        );
        assert_eq!(version_row(&client).await, (2, true));
        let probe: i32 = client
            .query_one("SELECT id FROM pgseal.upgrade_probe", &[])
            .await
            .expect("migration 2 ran")
            .get(0);
        assert_eq!(probe, 42);
        assert_eq!(
            install_migrations(&mut client, &[m1, M2_TEST])
                .await
                .expect("again"),
            InstallOutcome::AlreadyCurrent { version: 2 }
        );

        // A schema newer than this build: it must refuse, and check_schema agrees.
        let newer = SCHEMA_VERSION + 1;
        client
            .execute("UPDATE pgseal.schema_version SET version = $1", &[&newer])
            .await
            .expect("record a newer version");
        let err = install(&mut client).await.expect_err("too new for us");
        assert!(matches!(
            err,
            StoreError::SchemaTooNew { found, supported }
                if found == newer && supported == SCHEMA_VERSION
        ));
        assert!(matches!(
            check_schema(&client).await,
            Err(StoreError::SchemaTooNew { found, .. }) if found == newer
        ));
    }

    #[tokio::test]
    async fn check_schema_reports_an_old_schema() {
        let mut client = TestCluster::shared()
            .create_database()
            .await
            .connect()
            .await;
        install(&mut client).await.expect("install");
        // Simulate a database installed by an older pgseal by lowering the recorded version
        // below what this build needs: only possible while SCHEMA_VERSION > 1, so check the
        // message instead of the database in that case.
        if SCHEMA_VERSION > 1 {
            client
                .execute(
                    "UPDATE pgseal.schema_version SET version = $1",
                    &[&(SCHEMA_VERSION - 1)],
                )
                .await
                .expect("lower version");
            assert!(matches!(
                check_schema(&client).await,
                Err(StoreError::SchemaTooOld { .. })
            ));
        }
        let message = StoreError::SchemaTooOld {
            found: 1,
            supported: 2,
        }
        .to_string();
        assert!(
            message.contains("run `pgseal init` to upgrade"),
            "{message}"
        );
    }
}
