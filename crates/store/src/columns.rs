//! The registry of encrypted columns: which columns have a pgseal domain, and their ids.

use std::collections::HashSet;

use tokio_postgres::{GenericClient, Transaction};

use crate::domains::{domain, DomainSpec};
use crate::error::missing_schema_as;
use crate::StoreError;

/// Index length for a column that is not registered yet (the column default in migration 0001).
const DEFAULT_INDEX_BYTES: u8 = 16;

/// Serialises registrations, so two `pgseal init` runs do not register a column twice.
const REGISTRY_LOCK: i64 = 0x7067_7365_616c_0002;

/// An encrypted column: a column of an ordinary or partitioned table whose type is a pgseal
/// domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedColumn {
    /// Its id in `pgseal.columns` (inside every ciphertext); `None` until registered.
    pub column_id: Option<u32>,
    /// `pg_class.oid` of the table: with `attnum`, what identifies the column on the wire.
    pub table_oid: u32,
    /// `pg_attribute.attnum`.
    pub attnum: i16,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Its pgseal domain.
    pub domain: &'static DomainSpec,
    /// Blind index length in bytes (4..=32).
    pub index_bytes: u8,
}

impl EncryptedColumn {
    /// `schema.table.column`, for messages and audit records.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}.{}", self.schema, self.table, self.column)
    }
}

/// A column the catalog says has a pgseal domain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveColumn {
    table_oid: u32,
    attnum: i16,
    names: Names,
    domain: &'static DomainSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Names {
    schema: String,
    table: String,
    column: String,
}

impl Names {
    fn qualified(&self) -> String {
        format!("{}.{}.{}", self.schema, self.table, self.column)
    }
}

/// A row of `pgseal.columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RegistryRow {
    column_id: u32,
    table_oid: u32,
    attnum: i16,
    names: Names,
    domain_name: String,
    index_bytes: u8,
}

const LIVE_COLUMNS_SQL: &str = "
SELECT c.oid, a.attnum, n.nspname::text, c.relname::text, a.attname::text, t.typname::text,
       (t.typnamespace = ps.oid AND t.typtype = 'd') AS direct,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_display
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
CROSS JOIN (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pgseal') ps
WHERE a.attnum > 0
  AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND (t.typnamespace = ps.oid
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_type b
                  WHERE b.oid IN (t.typelem, t.typbasetype) AND b.typnamespace = ps.oid))
ORDER BY n.nspname, c.relname, a.attnum";

/// Reads every live encrypted column from the catalog.
///
/// Partitions are left out: values are encrypted for the partitioned table's column, which is
/// what queries through the parent report. A column built on a pgseal domain indirectly (an
/// array of one, a domain over one) is refused: pgseal would not encrypt it.
async fn live_columns(client: &impl GenericClient) -> Result<Vec<LiveColumn>, StoreError> {
    let rows = client.query(LIVE_COLUMNS_SQL, &[]).await?;
    let mut live = Vec::with_capacity(rows.len());
    for row in rows {
        let names = Names {
            schema: row.try_get(2)?,
            table: row.try_get(3)?,
            column: row.try_get(4)?,
        };
        let type_name: String = row.try_get(5)?;
        let direct: bool = row.try_get(6)?;
        if !direct {
            return Err(StoreError::UnsupportedColumnType {
                column: names.qualified(),
                type_name: row.try_get(7)?,
            });
        }
        let Some(spec) = domain(&type_name) else {
            return Err(StoreError::UnknownDomain {
                column: names.qualified(),
                domain: type_name,
            });
        };
        live.push(LiveColumn {
            table_oid: row.try_get(0)?,
            attnum: row.try_get(1)?,
            names,
            domain: spec,
        });
    }
    Ok(live)
}

async fn registry_rows(client: &impl GenericClient) -> Result<Vec<RegistryRow>, StoreError> {
    let rows = client
        .query(
            "SELECT column_id, table_oid, attnum, schema_name::text, table_name::text,
                    column_name::text, domain_name, index_bytes
             FROM pgseal.columns ORDER BY column_id",
            &[],
        )
        .await
        .map_err(missing_schema_as)?;
    rows.iter()
        .map(|row| {
            let id: i32 = row.try_get(0)?;
            let index_bytes: i16 = row.try_get(7)?;
            Ok(RegistryRow {
                column_id: u32::try_from(id).map_err(|_| StoreError::Corrupt {
                    what: format!("pgseal.columns.column_id = {id}"),
                })?,
                table_oid: row.try_get(1)?,
                attnum: row.try_get(2)?,
                names: Names {
                    schema: row.try_get(3)?,
                    table: row.try_get(4)?,
                    column: row.try_get(5)?,
                },
                domain_name: row.try_get(6)?,
                index_bytes: checked_index_bytes(id, index_bytes)?,
            })
        })
        .collect()
}

fn checked_index_bytes(column_id: i32, value: i16) -> Result<u8, StoreError> {
    u8::try_from(value)
        .ok()
        .filter(|n| (4..=32).contains(n))
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("pgseal.columns.index_bytes = {value} for column {column_id}"),
        })
}

/// For each live column, the index of the registry row that is its registration, if any.
///
/// The table OID and attribute number identify a column across renames, so they are tried
/// first; names are the fallback that survives dump and restore (which assigns new OIDs). One
/// guard: after a restore, a new table can receive the OID a different table had before; an
/// OID match is therefore ignored when the row's names belong exactly to another live column of
/// another table, which is the row's real owner.
fn match_registry(live: &[LiveColumn], registry: &[RegistryRow]) -> Vec<Option<usize>> {
    let mut claimed = vec![false; registry.len()];
    let mut matches = vec![None; live.len()];
    for (li, column) in live.iter().enumerate() {
        let found = registry.iter().enumerate().find(|(ri, row)| {
            !claimed[*ri]
                && row.table_oid == column.table_oid
                && row.attnum == column.attnum
                && !live.iter().any(|other| {
                    other.names == row.names
                        && other.names != column.names
                        && other.table_oid != row.table_oid
                })
        });
        if let Some((ri, _)) = found {
            claimed[ri] = true;
            matches[li] = Some(ri);
        }
    }
    for (li, column) in live.iter().enumerate() {
        if matches[li].is_some() {
            continue;
        }
        let found = registry
            .iter()
            .enumerate()
            .find(|(ri, row)| !claimed[*ri] && row.names == column.names);
        if let Some((ri, _)) = found {
            claimed[ri] = true;
            matches[li] = Some(ri);
        }
    }
    matches
}

fn to_encrypted(column: &LiveColumn, row: Option<&RegistryRow>) -> EncryptedColumn {
    EncryptedColumn {
        column_id: row.map(|r| r.column_id),
        table_oid: column.table_oid,
        attnum: column.attnum,
        schema: column.names.schema.clone(),
        table: column.names.table.clone(),
        column: column.names.column.clone(),
        domain: column.domain,
        index_bytes: row.map_or(DEFAULT_INDEX_BYTES, |r| r.index_bytes),
    }
}

/// Every encrypted column in the database, with its registration when it has one (matched by
/// table OID and attribute number first, then by names). Does not write anything.
pub async fn discover_columns(
    client: &impl GenericClient,
) -> Result<Vec<EncryptedColumn>, StoreError> {
    let registry = registry_rows(client).await?;
    let live = live_columns(client).await?;
    let matches = match_registry(&live, &registry);
    Ok(live
        .iter()
        .zip(matches)
        .map(|(column, m)| to_encrypted(column, m.map(|ri| &registry[ri])))
        .collect())
}

/// Registers every encrypted column: inserts rows for new ones, refreshes OID, attribute number,
/// names and domain of moved ones (renamed, or dump and restore), and returns them all with ids.
///
/// Registry rows of columns that no longer exist are kept: their data keys may still be needed
/// to read a backup. Runs under an advisory lock; commit `tx` to keep the result.
pub async fn register_columns(tx: &Transaction<'_>) -> Result<Vec<EncryptedColumn>, StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REGISTRY_LOCK])
        .await?;
    let registry = registry_rows(tx).await?;
    let live = live_columns(tx).await?;
    let matches = match_registry(&live, &registry);

    // Unclaimed rows keep their names; a live column that now holds one of them would break the
    // registry's name uniqueness.
    let claimed: HashSet<usize> = matches.iter().flatten().copied().collect();
    for (ri, row) in registry.iter().enumerate() {
        if !claimed.contains(&ri) && live.iter().any(|c| c.names == row.names) {
            return Err(StoreError::RegistryConflict {
                column: row.names.qualified(),
                stale_column_id: row.column_id,
            });
        }
    }

    let mut out = Vec::with_capacity(live.len());
    for (column, m) in live.iter().zip(matches) {
        match m.map(|ri| &registry[ri]) {
            Some(row) => {
                let unchanged = row.table_oid == column.table_oid
                    && row.attnum == column.attnum
                    && row.names == column.names
                    && row.domain_name == column.domain.name;
                if !unchanged {
                    let id = i32::try_from(row.column_id).map_err(|_| StoreError::Corrupt {
                        what: format!("pgseal.columns.column_id = {}", row.column_id),
                    })?;
                    tx.execute(
                        "UPDATE pgseal.columns SET table_oid = $2, attnum = $3, schema_name = $4,
                                table_name = $5, column_name = $6, domain_name = $7
                         WHERE column_id = $1",
                        &[
                            &id,
                            &column.table_oid,
                            &column.attnum,
                            &column.names.schema,
                            &column.names.table,
                            &column.names.column,
                            &column.domain.name,
                        ],
                    )
                    .await?;
                }
                out.push(to_encrypted(column, Some(row)));
            }
            None => {
                let row = tx
                    .query_one(
                        "INSERT INTO pgseal.columns
                             (table_oid, attnum, schema_name, table_name, column_name, domain_name)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         RETURNING column_id, index_bytes",
                        &[
                            &column.table_oid,
                            &column.attnum,
                            &column.names.schema,
                            &column.names.table,
                            &column.names.column,
                            &column.domain.name,
                        ],
                    )
                    .await?;
                let id: i32 = row.try_get(0)?;
                let index_bytes: i16 = row.try_get(1)?;
                let mut registered = to_encrypted(column, None);
                registered.column_id =
                    Some(u32::try_from(id).map_err(|_| StoreError::Corrupt {
                        what: format!("pgseal.columns.column_id = {id}"),
                    })?);
                registered.index_bytes = checked_index_bytes(id, index_bytes)?;
                out.push(registered);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(schema: &str, table: &str, column: &str) -> Names {
        Names {
            schema: schema.into(),
            table: table.into(),
            column: column.into(),
        }
    }

    fn live(oid: u32, attnum: i16, n: Names) -> LiveColumn {
        LiveColumn {
            table_oid: oid,
            attnum,
            names: n,
            domain: domain("text").expect("text domain"),
        }
    }

    fn row(id: u32, oid: u32, attnum: i16, n: Names) -> RegistryRow {
        RegistryRow {
            column_id: id,
            table_oid: oid,
            attnum,
            names: n,
            domain_name: "text".into(),
            index_bytes: 16,
        }
    }

    #[test]
    fn rename_keeps_the_row_and_a_new_column_with_the_old_name_gets_a_new_one() {
        let registry = [row(1, 100, 3, names("public", "users", "email"))];
        let columns = [
            live(100, 3, names("public", "users", "mail")),
            live(100, 5, names("public", "users", "email")),
        ];
        assert_eq!(match_registry(&columns, &registry), vec![Some(0), None]);
    }

    #[test]
    fn restore_with_new_oids_matches_by_names_even_when_oids_collide() {
        // Before the dump: t1.c had OID 100, t2.c OID 200. After restore, t2 got OID 100.
        let registry = [
            row(1, 100, 2, names("public", "t1", "c")),
            row(2, 200, 2, names("public", "t2", "c")),
        ];
        let columns = [
            live(300, 2, names("public", "t1", "c")),
            live(100, 2, names("public", "t2", "c")),
        ];
        assert_eq!(match_registry(&columns, &registry), vec![Some(0), Some(1)]);
    }

    #[test]
    fn same_table_name_in_another_schema_is_another_column() {
        let registry = [row(1, 100, 2, names("public", "users", "email"))];
        let columns = [
            live(100, 2, names("public", "users", "email")),
            live(400, 2, names("crm", "users", "email")),
        ];
        assert_eq!(match_registry(&columns, &registry), vec![Some(0), None]);
    }

    #[test]
    fn swapped_names_follow_the_columns() {
        let registry = [
            row(1, 100, 1, names("public", "t", "a")),
            row(2, 100, 2, names("public", "t", "b")),
        ];
        let columns = [
            live(100, 1, names("public", "t", "b")),
            live(100, 2, names("public", "t", "a")),
        ];
        assert_eq!(match_registry(&columns, &registry), vec![Some(0), Some(1)]);
    }
}
