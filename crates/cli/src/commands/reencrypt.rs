//! `pgseal reencrypt`: online re-encryption with progress reporting.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pgseal::reencrypt::{
    reencrypt, ReencryptOptions, ReencryptProgress, DEFAULT_BATCH_SIZE, DEFAULT_MAX_PASSES,
};
use pgseal::rotation::ColumnSelection;
use pgseal::{load_master_keys_from_env, AuditLog};

use super::CommandResult;
use crate::db::{connect, DatabaseArgs};

/// How often plain progress lines are printed when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Flags of `pgseal reencrypt`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The column, as TABLE.COLUMN or SCHEMA.TABLE.COLUMN (every encrypted column of its table
    /// that needs work is rewritten in the same pass).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    column: Option<String>,
    /// Re-encrypt every encrypted column.
    #[arg(long)]
    all: bool,
    /// Rows per batch; each batch is one short transaction.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE, value_parser = batch_size)]
    batch_size: usize,
    /// Rewrite at most this many rows per second (default: no limit).
    #[arg(long, value_parser = positive_rate)]
    max_rows_per_second: Option<f64>,
    /// Milliseconds a batch may wait for a lock before it is rolled back and retried later.
    #[arg(long, default_value_t = 2000)]
    lock_timeout_ms: u64,
    /// Passes over a table before giving up on rows that keep changing concurrently.
    #[arg(long, default_value_t = DEFAULT_MAX_PASSES)]
    max_passes: u32,
}

fn batch_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err("expected a number of rows between 1 and 100000".to_owned()),
    }
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err("expected a positive number of rows per second".to_owned()),
    }
}

/// Shows progress: a bar on a terminal, a line every few seconds otherwise.
struct Reporter {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    current: Option<(String, u32)>,
    pass_started: Instant,
}

impl Reporter {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} rows, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        let now = Instant::now();
        Reporter {
            bar,
            started: now,
            last_line: now,
            current: None,
            pass_started: now,
        }
    }

    fn update(&mut self, p: &ReencryptProgress) {
        let key = (p.table.clone(), p.pass);
        let new_pass = self.current.as_ref() != Some(&key);
        if new_pass {
            self.current = Some(key);
            self.pass_started = Instant::now();
        }
        match &self.bar {
            Some(bar) => {
                if new_pass {
                    bar.reset();
                    bar.set_length(p.pass_todo);
                    bar.set_message(format!("{} (pass {})", p.table, p.pass));
                }
                bar.set_position(p.pass_done.min(p.pass_todo));
            }
            None => {
                if new_pass || self.last_line.elapsed() >= LOG_EVERY || p.pass_done >= p.pass_todo {
                    self.last_line = Instant::now();
                    let secs = self.pass_started.elapsed().as_secs_f64().max(0.001);
                    // Row counts stay far below 2^52.
                    #[allow(clippy::cast_precision_loss)]
                    let rate = p.pass_done as f64 / secs;
                    let left = p.pass_todo.saturating_sub(p.pass_done);
                    #[allow(clippy::cast_precision_loss)]
                    let eta = if rate > 0.0 {
                        format!("{:.0} s", left as f64 / rate)
                    } else {
                        "unknown".to_owned()
                    };
                    eprintln!(
                        "reencrypt: {} pass {}: {}/{} rows, {:.0} rows/s, ETA {}, {} skipped so far",
                        p.table, p.pass, p.pass_done, p.pass_todo, rate, eta, p.total_skipped
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Re-encrypts, then prints a summary.
pub async fn run(args: Args) -> CommandResult {
    let selection = match (args.column, args.all) {
        (Some(column), false) => ColumnSelection::One(column),
        (None, true) => ColumnSelection::All,
        _ => return Err("name one column (TABLE.COLUMN) or pass --all".to_owned()),
    };
    let master = load_master_keys_from_env().map_err(|e| e.to_string())?;
    let audit = AuditLog::from_env().map_err(|e| e.to_string())?;
    let mut client = connect(&args.database).await?;
    let options = ReencryptOptions {
        batch_size: args.batch_size,
        max_rows_per_second: args.max_rows_per_second,
        lock_timeout: Duration::from_millis(args.lock_timeout_ms.max(1)),
        max_passes: args.max_passes.max(1),
    };
    let mut reporter = Reporter::new();
    let result = reencrypt(
        &mut client,
        &master.keyring,
        &audit,
        &selection,
        &options,
        &mut |p| reporter.update(p),
    )
    .await;
    reporter.finish();
    let report = result.map_err(|e| e.to_string())?;
    for table in &report.tables {
        println!(
            "{}: {} row(s) rewritten in {} pass(es), {} skipped and retried (columns: {})",
            table.table,
            table.rewritten,
            table.passes,
            table.skipped,
            table.columns.join(", ")
        );
    }
    let secs = reporter.started.elapsed().as_secs_f64().max(0.001);
    #[allow(clippy::cast_precision_loss)]
    let rate = report.rewritten() as f64 / secs;
    println!(
        "re-encryption of database {} complete: {} row(s) rewritten in {:.1} s ({:.0} rows/s); \
         every value is under the active keys",
        report.database,
        report.rewritten(),
        secs,
        rate
    );
    Ok(())
}
