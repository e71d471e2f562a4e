//! `pgseal`: the command-line tool. Flag definitions and glue only; the work lives in the
//! library crates.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod db;

/// Encryption at rest for PostgreSQL: keys, schema, and (soon) the transparent proxy.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
