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
    /// Encrypted backups: create, verify, inspect, restore, rekey; base backups for
    /// point-in-time recovery. Needs PGSEAL_BACKUP_KEY, a key apart from the master key.
    Backup(commands::backup::Args),
    /// Encrypted WAL archiving: `wal push` for archive_command, `wal fetch` for restore_command.
    Wal(commands::wal::Args),
    /// Data-key and master-key rotation: rewrap, rotate, retire, status.
    Keys(commands::keys::Args),
    /// Rewrite values still under older data key versions with the active keys, online: short
    /// batches, compare-and-swap, resumable.
    Reencrypt(commands::reencrypt::Args),
    /// Encrypt a populated plaintext column online: shadow column, backfill, brief cutover.
    /// Resumable: run it again after an interruption.
    EncryptColumn(commands::migrate::EncryptArgs),
    /// Turn an encrypted column back into plaintext online (rollback of encrypt-column).
    DecryptColumn(commands::migrate::DecryptArgs),
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
            Command::Backup(args) => commands::backup::run(args).await,
            Command::Wal(args) => commands::wal::run(args).await,
            Command::Proxy(args) => commands::proxy::run(args).await,
            Command::Keys(args) => commands::keys::run(args).await,
            Command::Reencrypt(args) => commands::reencrypt::run(args).await,
            Command::EncryptColumn(args) => commands::migrate::run_encrypt(args).await,
            Command::DecryptColumn(args) => commands::migrate::run_decrypt(args).await,
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
