//! `pgseal`: the command-line tool. Flag definitions and glue only; the work lives in the
//! library crates.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod db;

/// Encryption at rest for PostgreSQL: keys, schema, and the transparent encryption proxy.
#[derive(Parser)]
#[command(name = "pgseal", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a fresh random 256-bit key, base64-encoded, for PGSEAL_MASTER_KEY or PGSEAL_BACKUP_KEY.
    ///
    /// The key goes to standard output only; its fingerprint (the only name pgseal ever shows
    /// for it) goes to standard error.
    Keygen,
    /// Install or upgrade the pgseal schema, and create the data keys of every encrypted column
    /// that has none. Idempotent.
    Init(commands::init::Args),
    /// List every encrypted column with its type, search capability and data key versions.
    Columns(commands::columns::Args),
    /// Run the transparent encryption proxy: clients connect here instead of PostgreSQL and keep
    /// reading and writing plaintext; PostgreSQL only ever receives ciphertext for encrypted
    /// columns.
    Proxy(commands::proxy::Args),
    /// Start a throwaway local PostgreSQL with pgseal, a development key and sample encrypted
    /// data; Ctrl-C stops and removes it all.
    Dev(commands::dev::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGSEAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // The proxy's SQL analysis needs a deep stack; with this much it runs in place.
        .thread_stack_size(pgseal_proxy::RECOMMENDED_THREAD_STACK)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Keygen => commands::keygen::run(),
            Command::Init(args) => commands::init::run(args).await,
            Command::Columns(args) => commands::columns::run(args).await,
            Command::Dev(args) => commands::dev::run(args).await,
            Command::Proxy(args) => commands::proxy::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
