//! `pgseal-bench`: end-to-end benchmarks of the pgseal proxy.
//!
//! ```sh
//! cargo run --release -p pgseal-bench -- proxy            # 16 runs of 15 s, about 6 minutes
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

mod bench;
mod error;
mod pgbench;
mod pgbouncer;
mod proxy_process;
mod report;
mod rss;
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
        doc: (!args.no_doc).then_some(args.doc),
        command: command_line(),
    };
    tokio::select! {
        result = bench::run(settings) => result,
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
