//! `pgseal encrypt-column` and `pgseal decrypt-column`: online migration of an existing column.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pgseal::migrate::{
    decrypt_column, encrypt_column, Direction, MigrationObserver, MigrationOptions, MigrationPhase,
    MigrationReport,
};
use pgseal::{load_master_keys_from_env, AuditLog};

use super::CommandResult;
use crate::db::{connect, DatabaseArgs};

/// Search capability to give the encrypted column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Search {
    /// Equality search through a blind index (`pgseal.<type>_eq`).
    Eq,
}

/// Flags shared by both commands.
#[derive(clap::Args)]
pub struct Common {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The column, as `table.column` or `schema.table.column` (names as stored, case-sensitive).
    column: String,
    /// Upper bound on rows converted per second during the backfill (default: no limit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_rows_per_second: Option<u32>,
    /// Rows per backfill transaction.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch_rows: u64,
    /// Seconds to wait, after adding the shadow column (and after a decrypt's cutover), for
    /// every proxy to reload its catalog: keep it above the proxies' --reload-interval.
    #[arg(long, value_name = "SECONDS", default_value_t = 6.0)]
    proxy_grace: f64,
    /// lock_timeout, in seconds, of each brief table lock (applications queue behind a waiting
    /// lock for at most this long).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    lock_timeout: f64,
    /// How many times a lock that timed out is tried again before giving up.
    #[arg(long, value_name = "N", default_value_t = 20)]
    lock_attempts: u32,
}

/// Flags of `pgseal encrypt-column`.
#[derive(clap::Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    common: Common,
    /// Make the column searchable by equality (a blind index): `--search eq`.
    #[arg(long, value_enum)]
    search: Option<Search>,
}

/// Flags of `pgseal decrypt-column`.
#[derive(clap::Args)]
pub struct DecryptArgs {
    #[command(flatten)]
    common: Common,
}

fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{flag} must be a number of seconds, 0 or more"))
}

/// Progress: a bar on a terminal, a log line every few seconds otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    state: Mutex<LogState>,
}

struct LogState {
    total: u64,
    last_line: Instant,
    started: Instant,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} rows, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            state: Mutex::new(LogState {
                total: 0,
                last_line: Instant::now(),
                started: Instant::now(),
            }),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl MigrationObserver for Progress {
    fn phase(&self, phase: MigrationPhase) {
        match &self.bar {
            Some(bar) => bar.set_message(phase.to_string()),
            None => eprintln!("{phase}"),
        }
    }

    fn backfill_started(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(rows);
            bar.set_position(0);
        }
        if let Ok(mut state) = self.state.lock() {
            state.total = rows;
            state.started = Instant::now();
        }
        if self.bar.is_none() {
            eprintln!("{rows} rows to convert");
        }
    }

    fn rows_done(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            // Rows written concurrently by applications can make the count exceed the estimate.
            if rows > bar.length().unwrap_or(0) {
                bar.set_length(rows);
            }
            bar.set_position(rows);
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.last_line.elapsed() < Duration::from_secs(5) {
            return;
        }
        state.last_line = Instant::now();
        let elapsed = state.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            rows as f64 / elapsed
        } else {
            0.0
        };
        let eta = if rate > 0.0 && state.total > rows {
            format!("{:.0} s", (state.total - rows) as f64 / rate)
        } else {
            "-".to_owned()
        };
        eprintln!("{rows}/{} rows, {rate:.0} rows/s, ETA {eta}", state.total);
    }
}

async fn run(direction: Direction, common: Common, searchable: bool) -> CommandResult {
    let (table, column) = common.column.rsplit_once('.').ok_or_else(|| {
        format!(
            "{} is not TABLE.COLUMN: name the column as table.column or schema.table.column",
            common.column
        )
    })?;
    if table.is_empty() || column.is_empty() {
        return Err(format!(
            "{} is not TABLE.COLUMN: name the column as table.column or schema.table.column",
            common.column
        ));
    }
    let options = MigrationOptions {
        searchable,
        batch_rows: usize::try_from(common.batch_rows).unwrap_or(1000),
        max_rows_per_second: common.max_rows_per_second,
        proxy_grace: seconds("proxy-grace", common.proxy_grace)?,
        lock_timeout: seconds("lock-timeout", common.lock_timeout)?,
        lock_attempts: common.lock_attempts,
    };
    // Keys first: a bad key must be refused before anything touches the database.
    let master = load_master_keys_from_env().map_err(|e| e.to_string())?;
    let audit = AuditLog::from_env().map_err(|e| e.to_string())?;
    let mut client = connect(&common.database).await?;
    let progress = Progress::new();
    let result = match direction {
        Direction::Encrypt => {
            encrypt_column(
                &mut client,
                &master.keyring,
                &audit,
                table,
                column,
                &options,
                &progress,
            )
            .await
        }
        Direction::Decrypt => {
            decrypt_column(
                &mut client,
                &master.keyring,
                &audit,
                table,
                column,
                &options,
                &progress,
            )
            .await
        }
    };
    progress.finish();
    let report = result.map_err(|e| e.to_string())?;
    print_summary(&report);
    Ok(())
}

fn print_summary(report: &MigrationReport) {
    let verb = match report.direction {
        Direction::Encrypt => "encrypted",
        Direction::Decrypt => "decrypted",
    };
    println!(
        "{verb} {} ({} -> {}){}",
        report.column,
        report.from_type,
        report.to_type,
        if report.resumed {
            ", resuming an interrupted run"
        } else {
            ""
        }
    );
    println!(
        "{} rows converted online, {} under the cutover lock ({} ms held, {} attempt(s)), \
         {:.1} s in all",
        report.rows_backfilled,
        report.rows_at_cutover,
        report.cutover_lock_held.as_millis(),
        report.cutover_attempts,
        report.elapsed.as_secs_f64()
    );
}

/// `pgseal encrypt-column`.
pub async fn run_encrypt(args: EncryptArgs) -> CommandResult {
    run(
        Direction::Encrypt,
        args.common,
        args.search == Some(Search::Eq),
    )
    .await
}

/// `pgseal decrypt-column`.
pub async fn run_decrypt(args: DecryptArgs) -> CommandResult {
    run(Direction::Decrypt, args.common, false).await
}
