//! `pgseal columns`.

use std::collections::BTreeMap;

use pgseal_store::{EncryptedColumn, IndexNormalization, StoredDataKey};
use serde_json::json;

use super::CommandResult;
use crate::db::{connect, DatabaseArgs};

/// Flags of `pgseal columns`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn search(column: &EncryptedColumn) -> String {
    if !column.domain.searchable {
        return "none".to_owned();
    }
    let normalization = match column.domain.normalization {
        IndexNormalization::None => "",
        IndexNormalization::Lowercase => ", lower-cased",
        IndexNormalization::Digits => ", digits only",
    };
    format!("equality ({} B index{normalization})", column.index_bytes)
}

fn purpose(p: u8) -> &'static str {
    if p == 2 {
        "index"
    } else {
        "value"
    }
}

/// Lists encrypted columns. Needs no master key: it reads names, states and fingerprints only.
pub async fn run(args: Args) -> CommandResult {
    let client = connect(&args.database).await?;
    pgseal_store::check_schema(&client)
        .await
        .map_err(|e| e.to_string())?;
    let columns = pgseal_store::discover_columns(&client)
        .await
        .map_err(|e| e.to_string())?;
    let keys = pgseal_store::load_data_keys(&client)
        .await
        .map_err(|e| e.to_string())?;
    let mut by_column: BTreeMap<u32, Vec<&StoredDataKey>> = BTreeMap::new();
    for key in &keys {
        by_column.entry(key.column_id).or_default().push(key);
    }
    let key_list = |column: &EncryptedColumn| -> Vec<&StoredDataKey> {
        column
            .column_id
            .and_then(|id| by_column.get(&id))
            .cloned()
            .unwrap_or_default()
    };

    if args.json {
        let items: Vec<_> = columns
            .iter()
            .map(|c| {
                json!({
                    "column": c.qualified_name(),
                    "column_id": c.column_id,
                    "domain": format!("pgseal.{}", c.domain.name),
                    "logical_type": c.domain.logical_type.sql_name(),
                    "searchable": c.domain.searchable,
                    "index_bytes": c.domain.searchable.then_some(c.index_bytes),
                    "keys": key_list(c).iter().map(|k| json!({
                        "purpose": purpose(k.purpose),
                        "version": k.version,
                        "state": k.state.as_str(),
                        "master_key": k.master_key_fingerprint,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&items).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }

    if columns.is_empty() {
        println!(
            "no encrypted columns: declare one with a pgseal domain type, for example\n  \
             ALTER TABLE users ADD COLUMN email pgseal.email;\nthen run `pgseal init`"
        );
        return Ok(());
    }
    let rows: Vec<[String; 4]> = columns
        .iter()
        .map(|c| {
            let keys = key_list(c);
            let keys = if keys.is_empty() {
                "none yet: run `pgseal init`".to_owned()
            } else {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{} v{} {} ({})",
                            purpose(k.purpose),
                            k.version,
                            k.state.as_str(),
                            k.master_key_fingerprint
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            [
                c.qualified_name(),
                format!(
                    "{} (pgseal.{})",
                    c.domain.logical_type.sql_name(),
                    c.domain.name
                ),
                search(c),
                keys,
            ]
        })
        .collect();
    let header = ["COLUMN", "TYPE", "SEARCH", "DATA KEYS"];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 4]| {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    Ok(())
}
