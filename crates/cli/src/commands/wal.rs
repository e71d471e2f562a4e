//! `pgseal wal push` / `pgseal wal fetch`: encrypted WAL archiving for `archive_command` and
//! `restore_command`.

use std::path::PathBuf;

use pgseal_backup::wal::{self, FetchOutcome, PushOutcome};
use pgseal_backup::{load_backup_keys_from_env, LocalDir};

use super::CommandResult;

/// Flags of `pgseal wal`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: WalCommand,
}

#[derive(clap::Subcommand)]
enum WalCommand {
    /// Archive one WAL file: `archive_command = 'pgseal wal push %p %f --repo DIR'`.
    ///
    /// Succeeds if the same content is already archived; fails if different content is.
    Push(PushArgs),
    /// Restore one archived WAL file: `restore_command = 'pgseal wal fetch %f %p --repo DIR'`.
    ///
    /// Exits with status 1 and no message when the file is not in the archive, as recovery
    /// expects at the end of the archived WAL.
    Fetch(FetchArgs),
}

#[derive(clap::Args)]
struct Repo {
    /// The backup repository directory.
    #[arg(long, env = "PGSEAL_BACKUP_REPO")]
    repo: PathBuf,
}

#[derive(clap::Args)]
struct PushArgs {
    /// Path of the WAL file (`%p`, relative to the data directory).
    path: PathBuf,
    /// Its file name (`%f`).
    name: String,
    #[command(flatten)]
    repo: Repo,
}

#[derive(clap::Args)]
struct FetchArgs {
    /// The WAL file name to restore (`%f`).
    name: String,
    /// Where to write it (`%p`).
    path: PathBuf,
    #[command(flatten)]
    repo: Repo,
}

/// Runs `pgseal wal`.
pub async fn run(args: Args) -> CommandResult {
    tokio::task::spawn_blocking(move || match args.command {
        WalCommand::Push(args) => push(args),
        WalCommand::Fetch(args) => fetch(args),
    })
    .await
    .map_err(|e| format!("internal error: the WAL worker stopped: {e}"))?
}

fn push(args: PushArgs) -> CommandResult {
    let keyring = load_backup_keys_from_env().map_err(|e| e.to_string())?;
    let store = LocalDir::open(&args.repo.repo).map_err(|e| e.to_string())?;
    match wal::push(&store, &keyring, &args.path, &args.name).map_err(|e| e.to_string())? {
        PushOutcome::Stored => {
            tracing::info!("archived {} in {}", args.name, args.repo.repo.display());
        }
        PushOutcome::AlreadyArchived => {
            tracing::info!("{} was already archived with the same content", args.name);
        }
    }
    Ok(())
}

fn fetch(args: FetchArgs) -> CommandResult {
    let keyring = load_backup_keys_from_env().map_err(|e| e.to_string())?;
    let store = LocalDir::open(&args.repo.repo).map_err(|e| e.to_string())?;
    match wal::fetch(&store, &keyring, &args.name, &args.path).map_err(|e| e.to_string())? {
        FetchOutcome::Restored => Ok(()),
        FetchOutcome::Missing => {
            // Recovery asks for files past the end of the archive as a matter of course; a
            // message for each would fill the server log with false alarms.
            std::process::exit(1);
        }
    }
}
