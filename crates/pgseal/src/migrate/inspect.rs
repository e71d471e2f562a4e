//! Finding the column to migrate in the catalog, and the reasons to refuse it.

use tokio_postgres::GenericClient;

use crate::Error;

/// What the catalog says about the column being migrated.
#[derive(Debug, Clone)]
pub(crate) struct ColumnInfo {
    pub(crate) table_oid: u32,
    pub(crate) schema: String,
    pub(crate) table: String,
    pub(crate) column: String,
    pub(crate) attnum: i16,
    pub(crate) type_oid: u32,
    /// `format_type(atttypid, atttypmod)`: `varchar(80)`, `pgseal.text_eq`, ...
    pub(crate) type_display: String,
    /// `pg_type.typname`, and whether the type is a domain in schema `pgseal`.
    pub(crate) type_name: String,
    pub(crate) pgseal_domain: bool,
    /// The type's binary send function (`textsend`, `numeric_send`, ...), as `regproc` text.
    pub(crate) send_fn: String,
    pub(crate) not_null: bool,
}

impl ColumnInfo {
    /// `schema.table.column`, for messages.
    pub(crate) fn qualified_name(&self) -> String {
        format!("{}.{}.{}", self.schema, self.table, self.column)
    }
}

/// The table named `table` (`name` or `schema.name`, exact spelling; an unqualified name is
/// looked up along the session's `search_path`).
async fn find_table(
    client: &impl GenericClient,
    table: &str,
) -> Result<(u32, String, String, String), Error> {
    let (schema, name) = match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    };
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relname = $2
               AND (($1::text IS NULL AND n.nspname = ANY (pg_catalog.current_schemas(false)))
                    OR n.nspname = $1::text)
             ORDER BY array_position(pg_catalog.current_schemas(false), n.nspname)
             LIMIT 1",
            &[&schema, &name],
        )
        .await?;
    let row = rows.first().ok_or_else(|| Error::MigrationRefused {
        column: table.to_owned(),
        reason: "no such table (check the spelling; qualify it as schema.table if it is not on \
                 the search_path)"
            .to_owned(),
    })?;
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    ))
}

/// Looks `table.column` up, refusing anything but a column of an ordinary table.
pub(crate) async fn column_info(
    client: &impl GenericClient,
    table: &str,
    column: &str,
) -> Result<ColumnInfo, Error> {
    let (table_oid, schema, table_name, relkind) = find_table(client, table).await?;
    let name = format!("{schema}.{table_name}.{column}");
    if relkind != "r" {
        return Err(Error::MigrationRefused {
            column: name,
            reason: "only ordinary tables can be migrated online (not views, partitioned tables \
                     or foreign tables); migrate each partition's data through a new table"
                .to_owned(),
        });
    }
    let rows = client
        .query(
            "SELECT a.attnum, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod),
                    t.typname::text, (tn.nspname = 'pgseal' AND t.typtype = 'd'),
                    t.typsend::regproc::text, a.attnotnull, a.attidentity::text,
                    a.attgenerated::text
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
             JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
             WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table_oid, &column],
        )
        .await?;
    let row = rows.first().ok_or_else(|| Error::MigrationRefused {
        column: name.clone(),
        reason: "no such column".to_owned(),
    })?;
    let identity: String = row.try_get(7)?;
    let generated: String = row.try_get(8)?;
    if !identity.is_empty() || !generated.is_empty() {
        return Err(Error::MigrationRefused {
            column: name,
            reason: "identity and generated columns cannot be encrypted (PostgreSQL computes \
                     their values)"
                .to_owned(),
        });
    }
    Ok(ColumnInfo {
        table_oid,
        schema,
        table: table_name,
        column: column.to_owned(),
        attnum: row.try_get(0)?,
        type_oid: row.try_get(1)?,
        type_display: row.try_get(2)?,
        type_name: row.try_get(3)?,
        pgseal_domain: row.try_get(4)?,
        send_fn: row.try_get(5)?,
        not_null: row.try_get(6)?,
    })
}

/// Objects that depend on the column (indexes, constraints, defaults, views, sequences owned
/// by it, statistics, ...), described by PostgreSQL. The migration drops the column at
/// cutover, so each of them would be dropped with it or block the drop: they are refused up
/// front and listed, rather than silently lost or carried over with a changed meaning (an index
/// or a `CHECK` on plaintext means nothing on ciphertext).
pub(crate) async fn dependents(
    client: &impl GenericClient,
    info: &ColumnInfo,
) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "SELECT DISTINCT pg_catalog.pg_describe_object(classid, objid, objsubid)
             FROM pg_catalog.pg_depend
             WHERE refclassid = 'pg_catalog.pg_class'::regclass
               AND refobjid = $1 AND refobjsubid = $2 AND deptype IN ('n', 'a')
             ORDER BY 1",
            &[&info.table_oid, &i32::from(info.attnum)],
        )
        .await?;
    rows.iter()
        .map(|row| row.try_get::<_, String>(0).map_err(Error::from))
        .collect()
}

/// Does a column of that name exist on the table?
pub(crate) async fn column_exists(
    client: &impl GenericClient,
    table_oid: u32,
    column: &str,
) -> Result<bool, Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                            WHERE attrelid = $1 AND attname = $2 AND attnum > 0
                              AND NOT attisdropped)",
            &[&table_oid, &column],
        )
        .await?;
    Ok(row.try_get(0)?)
}
