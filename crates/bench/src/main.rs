//! `pgseal-bench`: end-to-end benchmarks of the pgseal proxy.
//!
//! ```sh
//! cargo run --release -p pgseal-bench -- proxy   # 3 rounds of 20 runs of 15 s, about 20 minutes
//! cargo run --release -p pgseal-bench -- proxy --seconds 5 --no-doc
//! ```
//!
//! `proxy` starts a temporary PostgreSQL cluster, loads it with `pgbench -i`, and runs pgbench
//! against (a) PostgreSQL directly, (b) pgbouncer, (c) the pgseal proxy and (d) the pgseal proxy
//! with an encrypted column, in simple and prepared mode, select-only and read-write. It then
//! measures each proxy's memory with 100 idle clients, prints a markdown section and puts it in
//! `docs/performance.md` between `<!-- proxy-bench:start -->` and `<!-- proxy-bench:end -->`.
//!
//! Each proxy runs in a child process (this binary, `serve-proxy`), as pgbouncer does. Ctrl-C
//! stops every process started and removes every temporary directory.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backup;
mod bench;
mod copy;
mod error;
mod lookup;
mod migrate;
mod pgbench;
mod pgbouncer;
mod proxy_process;
mod reencrypt;
mod report;
mod rss;
mod scratch;
mod sealed;
mod serve;
mod stats;
mod system;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) use error::BenchError;

#[derive(Parser)]
#[command(
    name = "pgseal-bench",
    about = "End-to-end benchmarks of the pgseal proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// pgbench against PostgreSQL, pgbouncer and the pgseal proxy (plain and encrypted).
    Proxy(ProxyArgs),
    /// Equality lookups on a searchable encrypted column through the proxy vs plaintext.
    Lookup(LookupArgs),
    /// `encrypt-column` on a large table vs a plain `UPDATE t SET c = c` of the same rows.
    Migrate(MigrateArgs),
    /// `pgseal backup create`/`restore` vs `pg_dump -Fc`/`pg_restore` on a database of >= 1 GB.
    Backup(BackupArgs),
    /// Online re-encryption rows/s vs `UPDATE t SET c = c`, and client p99 during it vs idle.
    Reencrypt(ReencryptArgs),
    /// COPY FROM/TO through the proxy with encrypted columns vs plaintext directly.
    Copy(CopyArgs),
    /// Runs one proxy for `proxy` (internal: started by the benchmark itself).
    #[command(hide = true)]
    ServeProxy(ServeArgs),
}

#[derive(clap::Args)]
struct ProxyArgs {
    /// Length of each measured pgbench run, in seconds.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// Length of the unmeasured warm-up run, in seconds (0: none).
    #[arg(long, default_value_t = 5)]
    warmup: u32,
    /// Rounds: each runs every target × mode × workload once, in an order that rotates from
    /// round to round; the report gives each cell's median TPS and range.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// pgbench scale factor (`pgbench -i -s`); 100 000 accounts per unit.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    scale: u32,
    /// Concurrent pgbench clients (`-c`).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    clients: u32,
    /// pgbench worker threads (`-j`).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
    /// Idle client connections opened for the memory measurement.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    idle_clients: u32,
    /// The document whose marked section receives the results.
    #[arg(long, default_value_os_t = default_doc())]
    doc: PathBuf,
    /// Print the results only; leave the document alone.
    #[arg(long)]
    no_doc: bool,
}

#[derive(clap::Args)]
struct BackupArgs {
    /// Size of the database to back up, in MB (at least this much).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    size_mb: u32,
    /// The document whose marked section receives the results.
    #[arg(long, default_value_os_t = default_doc())]
    doc: PathBuf,
    /// Print the results only; leave the document alone.
    #[arg(long)]
    no_doc: bool,
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// Rows in the table.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..=100_000_000))]
    rows: u32,
    /// The document whose marked section receives the results.
    #[arg(long, default_value_os_t = default_doc())]
    doc: PathBuf,
    /// Print the results only; leave the document alone.
    #[arg(long)]
    no_doc: bool,
}

#[derive(clap::Args)]
struct LookupArgs {
    /// Rows in the table.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..=100_000_000))]
    rows: u32,
    /// Measured lookups per target.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    lookups: u32,
    /// Unmeasured warm-up lookups per target.
    #[arg(long, default_value_t = 2_000)]
    warmup: u32,
    /// The document whose marked section receives the results.
    #[arg(long, default_value_os_t = default_doc())]
    doc: PathBuf,
    /// Print the results only; leave the document alone.
    #[arg(long)]
    no_doc: bool,
}

#[derive(clap::Args)]
struct ReencryptArgs {
    /// Rows in the table.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..=100_000_000))]
    rows: u32,
    /// Rows per re-encryption batch (`pgseal reencrypt --batch-size`).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
    /// Seconds of client load measured with nothing else running.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=3600))]
    idle_seconds: u32,
    /// `--max-rows-per-second` of the third phase: a re-encryption throttled as an operator
    /// would run it next to live traffic (0: skip that phase).
    #[arg(long, default_value_t = 25_000)]
    throttled_rows_per_second: u32,
    /// `--batch-size` of that throttled phase: smaller batches hold a core (and their row
    /// locks) for less time at once.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    throttled_batch_size: u32,
    /// The document whose marked section receives the results.
    #[arg(long, default_value_os_t = default_doc())]
    doc: PathBuf,
    /// Print the results only; leave the document alone.
    #[arg(long)]
    no_doc: bool,
}

#[derive(clap::Args)]
struct CopyArgs {
    /// Rows loaded and exported per target and round.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..=100_000_000))]
    rows: u32,
    /// Rounds; the report gives each target's median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// The document whose marked section receives the results.
    #[arg(long, default_value_os_t = default_doc())]
    doc: PathBuf,
    /// Print the results only; leave the document alone.
    #[arg(long)]
    no_doc: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TCP port of the PostgreSQL server on 127.0.0.1.
    #[arg(long)]
    upstream_port: u16,
    /// Serve the encrypting proxy (master key from `PGSEAL_MASTER_KEY`).
    #[arg(long, requires = "control_url")]
    encrypted: bool,
    /// Connection URL for the encrypting proxy's catalog and key reads.
    #[arg(long)]
    control_url: Option<String>,
}

/// `docs/performance.md` of the repository this binary was built from.
fn default_doc() -> PathBuf {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/bench -> the workspace root.
    crate_dir
        .ancestors()
        .nth(2)
        .unwrap_or(crate_dir)
        .join("docs/performance.md")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // The proxy's SQL analysis needs a deep stack; with this much it runs in place.
        .thread_stack_size(pgseal_proxy::RECOMMENDED_THREAD_STACK)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pgseal-bench: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Proxy(args) => runtime.block_on(run_benchmark(args)),
        Command::Lookup(args) => runtime.block_on(run_lookup(args)),
        Command::Copy(args) => runtime.block_on(run_copy(args)),
        Command::Reencrypt(args) => runtime.block_on(run_reencrypt(args)),
        Command::Migrate(args) => runtime.block_on(run_migrate(args)),
        Command::Backup(args) => runtime.block_on(backup::run(backup::BackupSettings {
            size_mb: args.size_mb,
            doc: (!args.no_doc).then_some(args.doc),
            command: command_line(),
        })),
        Command::ServeProxy(args) => {
            let control_url = args.control_url.filter(|_| args.encrypted);
            runtime.block_on(serve::serve_proxy(args.upstream_port, control_url))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pgseal-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark until it ends or Ctrl-C/SIGTERM arrives; either way, dropping its future
/// stops every process and removes every directory it created.
async fn run_benchmark(args: ProxyArgs) -> Result<(), BenchError> {
    use tokio::signal::unix::{signal, SignalKind};
    // Installed before any work starts, so an early Ctrl-C is caught rather than killing the
    // process with its children still running.
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| BenchError::io("install the SIGINT handler", e))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| BenchError::io("install the SIGTERM handler", e))?;
    let settings = bench::Settings {
        seconds: args.seconds,
        warmup_seconds: args.warmup,
        scale: args.scale,
        clients: args.clients,
        threads: args.threads,
        idle_clients: args.idle_clients as usize,
        rounds: args.rounds,
        doc: (!args.no_doc).then_some(args.doc),
        command: command_line(),
    };
    tokio::select! {
        result = bench::run(settings) => result,
        _ = interrupt.recv() => Err(BenchError::Interrupted),
        _ = terminate.recv() => Err(BenchError::Interrupted),
    }
}

/// `lookup`, stopped cleanly by Ctrl-C/SIGTERM like `proxy`.
async fn run_lookup(args: LookupArgs) -> Result<(), BenchError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| BenchError::io("install the SIGINT handler", e))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| BenchError::io("install the SIGTERM handler", e))?;
    let settings = lookup::LookupSettings {
        rows: args.rows,
        lookups: args.lookups,
        warmup: args.warmup,
        doc: (!args.no_doc).then_some(args.doc),
        command: command_line(),
    };
    tokio::select! {
        result = lookup::run(settings) => result,
        _ = interrupt.recv() => Err(BenchError::Interrupted),
        _ = terminate.recv() => Err(BenchError::Interrupted),
    }
}

/// `migrate`, stopped cleanly by Ctrl-C/SIGTERM like `proxy`.
async fn run_migrate(args: MigrateArgs) -> Result<(), BenchError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| BenchError::io("install the SIGINT handler", e))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| BenchError::io("install the SIGTERM handler", e))?;
    let settings = migrate::MigrateSettings {
        rows: args.rows,
        doc: (!args.no_doc).then_some(args.doc),
        command: command_line(),
    };
    tokio::select! {
        result = migrate::run(settings) => result,
        _ = interrupt.recv() => Err(BenchError::Interrupted),
        _ = terminate.recv() => Err(BenchError::Interrupted),
    }
}

/// `reencrypt`, stopped cleanly by Ctrl-C/SIGTERM like `proxy`.
async fn run_reencrypt(args: ReencryptArgs) -> Result<(), BenchError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| BenchError::io("install the SIGINT handler", e))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| BenchError::io("install the SIGTERM handler", e))?;
    let settings = reencrypt::ReencryptSettings {
        rows: args.rows,
        batch_size: args.batch_size as usize,
        idle_seconds: args.idle_seconds,
        throttled_rows_per_second: args.throttled_rows_per_second,
        throttled_batch_size: args.throttled_batch_size as usize,
        doc: (!args.no_doc).then_some(args.doc),
        command: command_line(),
    };
    tokio::select! {
        result = reencrypt::run(settings) => result,
        _ = interrupt.recv() => Err(BenchError::Interrupted),
        _ = terminate.recv() => Err(BenchError::Interrupted),
    }
}

/// `copy`, stopped cleanly by Ctrl-C/SIGTERM like `proxy`.
async fn run_copy(args: CopyArgs) -> Result<(), BenchError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| BenchError::io("install the SIGINT handler", e))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| BenchError::io("install the SIGTERM handler", e))?;
    let settings = copy::CopySettings {
        rows: args.rows,
        rounds: args.rounds,
        doc: (!args.no_doc).then_some(args.doc),
        command: command_line(),
    };
    tokio::select! {
        result = copy::run(settings) => result,
        _ = interrupt.recv() => Err(BenchError::Interrupted),
        _ = terminate.recv() => Err(BenchError::Interrupted),
    }
}

/// The command that reproduces this run, as the report shows it.
fn command_line() -> String {
    let features = if serve::ENCRYPTION_BUILT {
        ""
    } else {
        " --no-default-features"
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "cargo run --release -p pgseal-bench{features} -- {}",
        args.join(" ")
    )
}
