//! Moving values from the column to its shadow: read a batch, seal (or open) each value, write it
//! back with a compare-and-swap so a concurrent application write is never overwritten.

use pgseal_crypto::ColumnCipher;
use pgseal_value::LogicalType;
use pgseal_value::{decode_binary, decode_canonical, encode_binary, encode_canonical, index_input};
use tokio_postgres::GenericClient;
use zeroize::Zeroizing;

use super::sql::{ident, qualified, RawBinary};
use super::Direction;
use crate::Error;

/// The SQL and keys of one migration's data movement.
pub(crate) struct Mover<'k> {
    pub(crate) direction: Direction,
    /// `schema.table.column`, for messages.
    pub(crate) name: String,
    /// The logical type of the values.
    pub(crate) ty: LogicalType,
    /// Seals (encrypt) or opens (decrypt).
    pub(crate) cipher: &'k ColumnCipher,
    table: String,
    column: String,
    shadow: String,
    update_sql: String,
}

/// One row read: its `ctid` and the source value in binary.
struct SourceRow {
    tid: RawBinary,
    source: RawBinary,
}

impl<'k> Mover<'k> {
    /// `send_fn` is the plaintext type's binary send function (encrypt only: the
    /// compare-and-swap compares binary forms, which are exact where `=` is not: `1.50 = 1.5`,
    /// nondeterministic collations).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        direction: Direction,
        name: String,
        ty: LogicalType,
        cipher: &'k ColumnCipher,
        schema: &str,
        table: &str,
        column: &str,
        shadow: &str,
        send_fn: &str,
    ) -> Mover<'k> {
        let table_sql = qualified(schema, table);
        let (c, s) = (ident(column), ident(shadow));
        let update_sql = match direction {
            Direction::Encrypt => format!(
                "UPDATE {table_sql} AS t SET {s} = v.val
                 FROM unnest($1::tid[], $2::bytea[], $3::bytea[]) AS v(tid, src, val)
                 WHERE t.ctid = ANY ($1::tid[]) AND t.ctid = v.tid
                   AND {send_fn}(t.{c}) = v.src AND t.{s} IS NULL"
            ),
            Direction::Decrypt => format!(
                "UPDATE {table_sql} AS t SET {s} = v.val
                 FROM unnest($1::tid[], $2::bytea[], $3::pg_catalog.{}[]) AS v(tid, src, val)
                 WHERE t.ctid = ANY ($1::tid[]) AND t.ctid = v.tid
                   AND t.{c}::bytea = v.src AND t.{s} IS NULL",
                ty.sql_name()
            ),
        };
        Mover {
            direction,
            name,
            ty,
            cipher,
            table: table_sql,
            column: c,
            shadow: s,
            update_sql,
        }
    }

    /// Rows whose shadow is still missing, in the block range `[from, to)` (a TID range scan:
    /// only those blocks are read).
    pub(crate) async fn move_block_range(
        &self,
        client: &impl GenericClient,
        from: u64,
        to: u64,
    ) -> Result<(usize, u64), Error> {
        // Block numbers are integers formatted here, never text from outside.
        let sql = format!(
            "SELECT ctid, {c} FROM {t} WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid
               AND {c} IS NOT NULL AND {s} IS NULL",
            c = self.column,
            t = self.table,
            s = self.shadow
        );
        self.move_rows(client, &sql).await
    }

    /// Up to `limit` rows (all when `None`) whose shadow is still missing, anywhere.
    pub(crate) async fn move_missing(
        &self,
        client: &impl GenericClient,
        limit: Option<usize>,
    ) -> Result<(usize, u64), Error> {
        let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let sql = format!(
            "SELECT ctid, {c} FROM {t} WHERE {c} IS NOT NULL AND {s} IS NULL{limit}",
            c = self.column,
            t = self.table,
            s = self.shadow
        );
        self.move_rows(client, &sql).await
    }

    /// Reads with `select_sql`, converts, writes back; returns (rows read, rows written). A row
    /// read but not written was changed concurrently: it is picked up again later.
    async fn move_rows(
        &self,
        client: &impl GenericClient,
        select_sql: &str,
    ) -> Result<(usize, u64), Error> {
        let rows = client.query(select_sql, &[]).await?;
        let mut read = Vec::with_capacity(rows.len());
        for row in &rows {
            read.push(SourceRow {
                tid: row.try_get(0)?,
                source: row.try_get(1)?,
            });
        }
        drop(rows);
        if read.is_empty() {
            return Ok((0, 0));
        }
        let mut tids = Vec::with_capacity(read.len());
        let mut sources = Vec::with_capacity(read.len());
        let mut values = Vec::with_capacity(read.len());
        for row in read {
            values.push(self.convert(&row.source.0)?);
            tids.push(row.tid);
            sources.push(row.source);
        }
        let written = client
            .execute(&self.update_sql, &[&tids, &sources, &values])
            .await?;
        Ok((tids.len(), written))
    }

    /// Encrypt: the plaintext's binary form → ciphertext. Decrypt: ciphertext → binary form.
    fn convert(&self, source: &[u8]) -> Result<RawBinary, Error> {
        match self.direction {
            Direction::Encrypt => {
                let value = decode_binary(self.ty, source).map_err(|source| Error::Value {
                    column: self.name.clone(),
                    source,
                })?;
                let plaintext = Zeroizing::new(encode_canonical(&value));
                let index = Zeroizing::new(index_input(&value));
                Ok(RawBinary(Zeroizing::new(
                    self.cipher.seal(&plaintext, &index),
                )))
            }
            Direction::Decrypt => {
                let value = self
                    .cipher
                    .open_with(source, |plaintext| decode_canonical(self.ty, plaintext))
                    .map_err(|source| Error::Crypto {
                        column: self.name.clone(),
                        source,
                    })?
                    .map_err(|source| Error::Value {
                        column: self.name.clone(),
                        source,
                    })?;
                Ok(RawBinary(Zeroizing::new(encode_binary(&value))))
            }
        }
    }

    /// How many rows still lack their shadow value (a full scan).
    pub(crate) async fn missing(&self, client: &impl GenericClient) -> Result<u64, Error> {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {t} WHERE {c} IS NOT NULL AND {s} IS NULL",
                    c = self.column,
                    t = self.table,
                    s = self.shadow
                ),
                &[],
            )
            .await?;
        let n: i64 = row.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
